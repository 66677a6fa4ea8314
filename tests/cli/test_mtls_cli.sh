#!/usr/bin/env bash
# Options of `cmicro sub` that would register a subscription other than the
# one asked for are rejected before anything is registered.
set -euo pipefail

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# An empty queue name would register as broadcast while reading as a group.
rc=0
timeout 20 "$CMICRO_BIN" sub t --queue "" >"$out" 2>&1 || rc=$?
if [ "$rc" -ne 2 ]; then
  echo "FAIL: sub --queue \"\" exited with $rc, expected 2 (usage error)"
  cat "$out"
  exit 1
fi
if ! grep -q -- '--queue needs a group name' "$out"; then
  echo "FAIL: sub --queue \"\" did not explain the empty group name:"
  cat "$out"
  exit 1
fi
if grep -q 'subscribed' "$out"; then
  echo "FAIL: sub --queue \"\" subscribed anyway:"
  cat "$out"
  exit 1
fi
echo "PASS: sub rejects an empty --queue"
