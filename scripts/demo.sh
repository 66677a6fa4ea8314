#!/usr/bin/env bash
# The main job: installs what is missing, builds cmicro, then runs
# `cmicro demo`: services exchanging messages over verified TLS on the
# embedded (SQLite) registry, a rejected untrusted node, and audit mode.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh >&2
# The same build directory and settings as scripts/test.sh, so running one
# after the other reuses the build instead of reconfiguring it.
log=$(mktemp "${TMPDIR:-/tmp}/cmicro-demo-build.XXXXXX")
if ! { cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc \
	-DCMICRO_WERROR=ON && cmake --build build -j "$(nproc)"; } >"$log" 2>&1; then
	tail -n 30 "$log" >&2
	echo "demo: the build failed; the full output is in $log" >&2
	exit 1
fi
rm -f "$log"
exec build/tools/cmicro/cmicro demo "$@"
