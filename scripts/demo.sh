#!/usr/bin/env bash
# The main job: installs what is missing, builds cmicro, then runs
# `cmicro demo`: services exchanging messages over verified TLS on the
# embedded (SQLite) registry, a rejected untrusted node, and audit mode.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
exec build/tools/cmicro/cmicro demo "$@"
