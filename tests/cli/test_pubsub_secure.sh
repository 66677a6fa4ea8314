#!/usr/bin/env bash
# Secure mode end to end: a subscriber serving a CA-issued certificate and a
# publisher verifying it (MICRO_TLS_SECURE=true with the CA), the --json
# output, --count, and the delivery report of --wait.
source "$(dirname "$0")/pubsub_common.sh"
make_ca

export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem"
export MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"

start_sub s1 orders --json --count 1
node=$(sub_node s1)
"$CMICRO_BIN" pub orders "paid 42" --header kind=invoice --wait --timeout 20 \
	>"$WORK/pub.out" 2>"$WORK/pub.err" || fail "secure publish failed"
grep -q "^node $node 127.0.0.1:[0-9]* ok (HTTP 200)" "$WORK/pub.out" ||
	fail "the --wait report lacks the ok line for $node"
grep -q "received by 1 of 1 nodes" "$WORK/pub.out" || fail "the --wait summary is missing"
wait "$PID_s1" || fail "the subscriber did not exit 0 after --count 1"
grep -q '"topic":"orders"' "$WORK/s1.out" || fail "--json lacks the topic"
grep -q '"kind":"invoice"' "$WORK/s1.out" || fail "--json lacks the header"
grep -q '"body":"paid 42"' "$WORK/s1.out" || fail "--json lacks the body"
if grep -q "TLS-VERIFY-OFF" "$WORK/s1.err" "$WORK/pub.err"; then
	fail "secure mode still warned that verification is off"
fi

# Without a subscriber the publisher reports it and exits 1.
set +e
"$CMICRO_BIN" pub nobody "x" --wait --timeout 2 >"$WORK/none.out" 2>"$WORK/none.err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "publishing to a topic without subscribers exited $rc, expected 1"
grep -q "no subscriber of this topic" "$WORK/none.out" || fail "missing no-subscriber report"

# Usage errors exit 2.
set +e
"$CMICRO_BIN" pub >/dev/null 2>&1; rc1=$?
"$CMICRO_BIN" sub --count 0 t >/dev/null 2>&1; rc2=$?
set -e
[ "$rc1" -eq 2 ] && [ "$rc2" -eq 2 ] || fail "usage errors exited $rc1/$rc2, expected 2"
echo "ok: secure mode with a CA, --json, --count, --wait and exit codes"
