#!/usr/bin/env bash
# The mixed fleet of a rolling upgrade: a publisher already in secure mode
# meets a subscriber still serving a self-signed certificate. The delivery is
# rejected with the TLS reason and kept in the backlog. Once the subscriber
# restarts with a CA-issued certificate, the retry delivers the message.
source "$(dirname "$0")/pubsub_common.sh"
make_ca

start_sub old upgrade
old_node=$(sub_node old)

mkfifo "$WORK/pub.in"
MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem" \
	"$CMICRO_BIN" pub upgrade - --wait --timeout 60 <"$WORK/pub.in" >"$WORK/pub.out" \
	2>"$WORK/pub.err" &
pub_pid=$!
PIDS+=("$pub_pid")
exec 3>"$WORK/pub.in"
echo "during the upgrade" >&3

wait_for "$WORK/pub.out" "kept in the backlog for retry"
grep -q "^node $old_node .* failed: CMICRO_EVERIFY (tls \(self_signed\|unknown_authority\))" \
	"$WORK/pub.out" || fail "the rejection does not name the TLS reason"
grep -q "BROKER-DELIVERY-FAILED" "$WORK/pub.err" || fail "the failure was not logged"
[ ! -s "$WORK/old.out" ] || fail "the self-signed subscriber received the message"

stop_sub old
MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem" MICRO_TLS_CERT_FILE="$WORK/node.pem" \
	MICRO_TLS_KEY_FILE="$WORK/node.key" start_sub new upgrade 3>&-

exec 3>&-
status=0
wait "$pub_pid" || status=$?
[ "$status" -eq 0 ] || fail "the publisher exited $status although the retry should deliver"
grep -q " during the upgrade$" "$WORK/new.out" || fail "the backlogged message never arrived"
grep -q "every message delivered" "$WORK/pub.out" || fail "the publisher did not report the retry"
stop_sub new
echo "ok: rejected with the TLS reason, backlogged, delivered after the upgrade"
