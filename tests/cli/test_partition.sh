#!/usr/bin/env bash
# A network partition between a publisher and a subscriber in two network
# namespaces joined by a veth pair (a private /30), with verified TLS and
# the SQLite registry file shared through the file system. The subscriber's
# end of the link goes down while messages are published, then comes back
# up: the messages published during the partition arrive after healing.
# Skips when network namespaces cannot be created here. The namespaces are
# removed on exit, also on failure.
source "$(dirname "$0")/pubsub_common.sh"
source "$(dirname "$0")/faults_common.sh"

NS_PUB="cmicro-pub-$$"
NS_SUB="cmicro-sub-$$"
VETH_PUB="cmp$$"
VETH_SUB="cms$$"
# One /30 chosen from the PID, so that parallel runs differ; the addresses
# exist only inside the two namespaces.
NET="10.$((200 + $$ % 50)).$(($$ / 50 % 250))"
ADDR_PUB="$NET.1"
ADDR_SUB="$NET.2"

if ! command -v ip >/dev/null || ! ip netns add "$NS_PUB" 2>"$WORK/netns.err"; then
	echo "skip: cannot create a network namespace ($(cat "$WORK/netns.err" 2>/dev/null)); run as root with CAP_NET_ADMIN"
	exit 0
fi

remove_namespaces() {
	cleanup
	ip netns del "$NS_PUB" 2>/dev/null || true
	ip netns del "$NS_SUB" 2>/dev/null || true
}
trap remove_namespaces EXIT

ip netns add "$NS_SUB" || fail "cannot create namespace $NS_SUB"
ip link add "$VETH_PUB" netns "$NS_PUB" type veth peer name "$VETH_SUB" netns "$NS_SUB" ||
	fail "cannot create the veth pair"
ip -n "$NS_PUB" addr add "$ADDR_PUB/30" dev "$VETH_PUB"
ip -n "$NS_SUB" addr add "$ADDR_SUB/30" dev "$VETH_SUB"
ip -n "$NS_PUB" link set "$VETH_PUB" up
ip -n "$NS_SUB" link set "$VETH_SUB" up

# A CA and a node certificate for the subscriber's veth address, made with
# the openssl command-line tool; the publisher verifies it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=cmicro partition CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/node.key" \
	-out "$WORK/node.csr" -subj "/CN=$ADDR_SUB" 2>/dev/null
printf 'subjectAltName=IP:%s,IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
	"$ADDR_SUB" "$ADDR_PUB" >"$WORK/node.ext"
openssl x509 -req -in "$WORK/node.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
	-CAcreateserial -days 2 -extfile "$WORK/node.ext" -out "$WORK/node.pem" 2>/dev/null ||
	fail "openssl could not issue the node certificate"
export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem" \
	MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"

run_bg far /dev/null ip netns exec "$NS_SUB" "$CMICRO_BIN" sub partitioned \
	--address "$ADDR_SUB:0"
wait_for "$WORK/far.err" "^subscribed to" 30
grep -q "at $ADDR_SUB:[0-9]* (broadcast, https)" "$WORK/far.err" ||
	fail "the subscriber is not registered at $ADDR_SUB over HTTPS"

PUB_WRAPPER=(ip netns exec "$NS_PUB")
MICRO_BROKER_ADDRESS="$ADDR_PUB:0" start_pub p partitioned --wait --timeout 120
pub_send p 1 5
wait_for "$WORK/far.out" " p-5$" 30

# The partition: with the subscriber's end down, packets to it are lost, so
# deliveries fail after the delivery timeout (or at once when the kernel
# reports the route unreachable) and the messages stay in the backlog.
ip -n "$NS_SUB" link set "$VETH_SUB" down
pub_send p 6 8
wait_count "$WORK/p.out" "received by 0 of 1 nodes; kept in the backlog for retry" 3 90
grep -q "BROKER-DELIVERY-FAILED" "$WORK/p.err" || fail "the failed deliveries were not logged"
! grep -q " p-[678]$" "$WORK/far.out" ||
	fail "a message crossed the link while it was down"

ip -n "$NS_SUB" link set "$VETH_SUB" up
pub_send p 9 12
pub_close p

[ "$RC_p" -eq 0 ] || fail "the publisher exited $RC_p although the link is back up"
grep -q "every message delivered" "$WORK/p.out" || fail "the publisher did not report the retries"
missing=$(missing_bodies p 1 12 "$WORK/far.out")
[ -z "$missing" ] || fail "messages lost across the partition: $(echo $missing)"
echo "ok: partition healed: 12 sent, 3 during the partition, 12 received," \
	"$(duplicate_count "$WORK/far.out") duplicates"
