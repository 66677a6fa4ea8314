#!/usr/bin/env bash
# scripts/soak.sh itself: --help prints the usage text, a wrong argument
# exits 2, and the publishers it starts do not inherit the write ends of
# each other's input FIFOs, so every publisher starts with the same number
# of open descriptors.
set -euo pipefail
: "${CMICRO_BIN:?set CMICRO_BIN to the cmicro binary}"
: "${CMICRO_SOURCE_DIR:?set CMICRO_SOURCE_DIR to the source tree}"
soak="$CMICRO_SOURCE_DIR/scripts/soak.sh"
out=$(mktemp /tmp/cmicro-soak-test-XXXXXX)
trap 'rm -f "$out"' EXIT

fail() {
	echo "FAIL: $*" >&2
	cat "$out" >&2
	exit 1
}

bash "$soak" --help >"$out" 2>&1 || fail "soak.sh --help exited $?, expected 0"
grep -q "^usage: soak.sh \[--messages N\]" "$out" || fail "soak.sh --help does not print the usage line"
grep -q "^  --publishers P  publisher processes" "$out" || fail "soak.sh --help does not list the options"

rc=0
bash "$soak" --no-such-option >"$out" 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "an unknown option exited $rc, expected 2"
grep -q 'unknown argument "--no-such-option"' "$out" || fail "the unknown option is not named"

bash "$soak" --messages 30 --seconds 10 --rate 30 --publishers 3 >"$out" 2>&1 ||
	fail "a short soak failed"
fds=$(awk '$1 ~ /^p[0-9]+$/ && NF == 6 { print $5 }' "$out" | sort -u)
[ -n "$fds" ] || fail "the soak report has no publisher rows"
[ "$(echo "$fds" | wc -l)" -eq 1 ] ||
	fail "the publishers started with different descriptor counts: $(echo $fds)"
echo "ok: soak.sh --help, a wrong option, and equal descriptor counts at the publishers' start ($fds)"
