#!/usr/bin/env bash
# A short bounded soak (scripts/soak.sh): three publishers, a broadcast
# subscriber and a queue group of two over verified TLS, every message
# accounted for, no descriptor growth in the subscribers. In a build
# without AddressSanitizer it also runs the subscribers under valgrind
# memcheck at a reduced count.
set -euo pipefail
: "${CMICRO_BIN:?set CMICRO_BIN to the cmicro binary}"
: "${CMICRO_SOURCE_DIR:?set CMICRO_SOURCE_DIR to the source tree}"
soak="$CMICRO_SOURCE_DIR/scripts/soak.sh"

bash "$soak" --messages 900 --seconds 30 --rate 50

if ! command -v valgrind >/dev/null; then
	echo "skip: valgrind run: valgrind is not installed"
elif grep -q AddressSanitizer "$CMICRO_BIN"; then
	echo "skip: valgrind run: $CMICRO_BIN is built with AddressSanitizer"
else
	bash "$soak" --messages 90 --seconds 20 --rate 10 --valgrind
fi
