#!/usr/bin/env bash
# The shared library exports the public cmicro_ API and nothing else, so
# internal cmi_ helpers and dependencies' symbols never leak to users.
set -euo pipefail
lib="$CMICRO_BUILD_DIR/libcmicro.so"
[ -f "$lib" ] || { echo "FAIL: $lib not built"; exit 1; }

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}')
count=$(printf '%s\n' "$exported" | grep -c '^cmicro_' || true)
others=$(printf '%s\n' "$exported" | grep -v '^cmicro_' | grep -v '^_' || true)

if [ "$count" -lt 10 ]; then
  echo "FAIL: only $count cmicro_ symbols exported"
  exit 1
fi
if [ -n "$others" ]; then
  echo "FAIL: symbols exported without the cmicro_ prefix:"
  printf '%s\n' "$others"
  exit 1
fi

# Every public function declared in the headers is exported.
missing=0
for name in $(grep -ho 'cmicro_[a-z0-9_]*(' "$CMICRO_SOURCE_DIR"/include/cmicro/*.h | tr -d '(' | sort -u); do
  if ! grep -qx "$name" <<<"$exported"; then
    echo "FAIL: $name is declared in a public header but not exported"
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1
echo "ok: $count cmicro_ symbols exported, no others"
