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

# A topic with a space fails before the subscriber listens or registers.
rc=0
timeout 20 "$CMICRO_BIN" sub "two words" >"$out" 2>&1 || rc=$?
if [ "$rc" -ne 2 ]; then
  echo "FAIL: sub \"two words\" exited with $rc, expected 2 (usage error)"
  cat "$out"
  exit 1
fi
if ! grep -q 'may not contain spaces' "$out"; then
  echo "FAIL: sub \"two words\" did not give the topic rule:"
  cat "$out"
  exit 1
fi
if grep -qE 'subscribed|listening' "$out"; then
  echo "FAIL: sub \"two words\" started before rejecting the topic:"
  cat "$out"
  exit 1
fi
echo "PASS: sub rejects a topic with a space before it starts"
