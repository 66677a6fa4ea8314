#!/usr/bin/env bash
# The library avoids C functions that overflow buffers, hide parse errors or
# are not thread-safe: sprintf/strcpy/strcat (no bound), strtok and raw
# strerror (shared static state), atoi (no error report), gets.
set -euo pipefail
cd "$CMICRO_SOURCE_DIR"
pattern='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets|strerror)[[:space:]]*\('
if hits=$(grep -rnE "$pattern" src/ --include='*.c' --include='*.h' | grep -v 'NOTE: allowed'); then
  echo "FAIL: banned functions in the library:"
  echo "$hits"
  exit 1
fi
echo "ok: no banned functions under src/"
