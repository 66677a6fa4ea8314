#!/usr/bin/env bash
# A subscriber ends each TLS connection with close_notify, so OpenSSL
# clients keep the session and resume it on the next connection.
# `openssl s_time -reuse` prints one "r" per resumed connection.
source "$(dirname "$0")/pubsub_common.sh"
make_ca
export MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"

start_sub s resume.topic
addr=$(sub_addr s)
timeout 30 openssl s_time -connect "$addr" -reuse -time 1 -www / -CAfile "$WORK/ca.pem" \
	>"$WORK/stime.out" 2>&1 || fail "openssl s_time against $addr failed"
# The progress lines hold one character per connection: "r" when resumed.
resumed=$(grep -E '^[rt3*.]+$' "$WORK/stime.out" | tr -cd r | wc -c)
[ "$resumed" -ge 5 ] || fail "only $resumed resumed connections; sessions are not resumed"
grep -q "connections in" "$WORK/stime.out" || fail "s_time printed no summary"
kill -0 "$PID_s" || fail "the subscriber died during the connections"
stop_sub s
echo "ok: $resumed connections resumed their TLS session"
