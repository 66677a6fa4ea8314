#!/usr/bin/env bash
# cmicro sub, pub and registry ls with MICRO_REGISTRY=etcd against private
# etcd servers on loopback: go-micro's key layout and JSON, a node put by
# hand in go-micro's form reached by pub, the TTL expiry of a killed
# subscriber, and secure pub/sub through an etcd that requires client
# certificates. Every etcd started here is stopped by its PID on exit.
source "$(dirname "$0")/pubsub_common.sh"
: "${CMICRO_SOURCE_DIR:?set CMICRO_SOURCE_DIR to the source tree}"
ETCD_SCRIPT="$CMICRO_SOURCE_DIR/scripts/etcd-server.sh"
ETCD_DIRS=()

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

stop_etcds() {
	for d in "${ETCD_DIRS[@]}"; do
		bash "$ETCD_SCRIPT" stop "$d" || true
	done
	cleanup
}
trap stop_etcds EXIT

# start_etcd NAME [FLAGS...]: sets PORT_<NAME>.
start_etcd() {
	local name=$1 port peer
	shift
	port=$(free_port)
	peer=$(free_port)
	ETCD_DIRS+=("$WORK/etcd-$name")
	bash "$ETCD_SCRIPT" start "$WORK/etcd-$name" "$port" "$peer" "$@" >/dev/null ||
		fail "etcd $name did not start"
	eval "PORT_$name=$port"
}

start_etcd plain
export MICRO_REGISTRY=etcd MICRO_REGISTRY_ADDRESS="127.0.0.1:$PORT_plain"
ctl() { ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$PORT_plain" "$@"; }
# has_key TEXT: whether a registry key contains TEXT (read whole first, so
# grep -q never cuts etcdctl's output short under pipefail).
has_key() {
	ctl get --prefix --keys-only /micro/registry/ >"$WORK/keys" || fail "etcdctl get failed"
	grep -q -- "$1" "$WORK/keys"
}

# A subscriber killed with SIGKILL cannot deregister: its lease expires.
start_sub victim doomed
victim=$(sub_node victim)
kill -KILL "$PID_victim"
wait "$PID_victim" 2>/dev/null || true
has_key "$victim" || fail "the killed subscriber's key is missing before its TTL"
killed_at=$SECONDS

# Layout: the key and the JSON that go-micro's etcd registry writes.
start_sub s1 orders
node=$(sub_node s1)
addr=$(sub_addr s1)
ctl get /micro/registry/micro.http.broker/"$node" --print-value-only >"$WORK/doc.json"
[ -s "$WORK/doc.json" ] || fail "no key /micro/registry/micro.http.broker/$node"
python3 - "$WORK/doc.json" "$node" "$addr" <<'PY' || fail "the stored JSON is not go-micro's Service"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["name"] == "micro.http.broker", doc
assert doc["version"] == "ff.http.broadcast", doc
assert isinstance(doc["metadata"], dict) and isinstance(doc["endpoints"], list), doc
assert len(doc["nodes"]) == 1, doc
n = doc["nodes"][0]
assert n["id"] == sys.argv[2] and n["address"] == sys.argv[3], n
meta = n["metadata"]
assert {k: meta[k] for k in ("broker", "topic", "secure")} == \
    {"broker": "http", "topic": "orders", "secure": "true"}, n
# TLS subscribers also publish their certificate's fingerprint and expiry,
# and every cmicro subscriber where its handlers run.
assert set(meta) <= {"broker", "topic", "secure", "handlers", "tls_fingerprint",
                     "tls_not_after"}, n
assert meta["handlers"] == "threads", n
assert all(isinstance(v, str) for v in meta.values()), n
PY
ctl get /micro/registry/micro.http.broker/"$node" -w json >"$WORK/kv.json"
lease=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["kvs"][0].get("lease", 0))' \
	"$WORK/kv.json")
[ "$lease" != 0 ] || fail "the node key has no lease"
"$CMICRO_BIN" registry ls >"$WORK/ls.out" 2>"$WORK/ls.err" || fail "registry ls failed"
grep -q "^registry etcd http://127.0.0.1:$PORT_plain" "$WORK/ls.out" || fail "ls names no etcd"
grep -q "$node" "$WORK/ls.out" || fail "registry ls lacks $node"
"$CMICRO_BIN" pub orders "via etcd" --wait --timeout 10 >"$WORK/pub.out" 2>"$WORK/pub.err" ||
	fail "publishing through etcd failed"
wait_for "$WORK/s1.out" "via etcd"

# A node registered only by a document in go-micro's form, put by hand with
# a lease, receives a publish: a small HTTP server that records POSTs.
hport=$(free_port)
python3 - "$hport" "$WORK/handmade.out" >/dev/null 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(sys.argv[2], "ab") as f:
            f.write(self.path.encode() + b" " + body + b"\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)
grant=$(ctl lease grant 60) || fail "etcdctl lease grant failed"
lid=$(sed -n 's/^lease \([0-9a-f]*\) granted.*/\1/p' <<<"$grant")
doc='{"name":"micro.http.broker","version":"ff.http.broadcast","metadata":null,"endpoints":[],"nodes":[{"id":"handmade-go-1","address":"127.0.0.1:'$hport'","metadata":{"broker":"http","topic":"handmade","secure":"false"}}]}'
ctl put --lease="$lid" /micro/registry/micro.http.broker/handmade-go-1 "$doc" >/dev/null ||
	fail "etcdctl put failed"
for ((i = 0; i < 50; i++)); do
	(exec 3<>/dev/tcp/127.0.0.1/"$hport") 2>/dev/null && break
	sleep 0.1
done
"$CMICRO_BIN" pub handmade "hello go" --wait --timeout 10 >"$WORK/pub2.out" 2>"$WORK/pub2.err" ||
	fail "publishing to the hand-made node failed"
grep -q "node handmade-go-1 127.0.0.1:$hport ok" "$WORK/pub2.out" || fail "no ok for handmade-go-1"
grep -q '^/?id=handmade-go-1 .*"Micro-Topic":"handmade"' "$WORK/handmade.out" ||
	fail "the hand-made node did not receive the message"

# Bad input: a malformed address and unreachable endpoints exit 2 with the value.
set +e
MICRO_REGISTRY_ADDRESS="http://a:b:c" "$CMICRO_BIN" registry ls >/dev/null 2>"$WORK/bad.err"
rc_bad=$?
dead=$(free_port)
MICRO_REGISTRY_ADDRESS="127.0.0.1:$dead" "$CMICRO_BIN" registry ls >/dev/null 2>"$WORK/dead.err"
rc_dead=$?
set -e
[ "$rc_bad" -eq 2 ] || fail "a malformed MICRO_REGISTRY_ADDRESS exited $rc_bad, expected 2"
grep -q 'etcd endpoint "http://a:b:c"' "$WORK/bad.err" || fail "the error does not name the entry"
[ "$rc_dead" -eq 2 ] || fail "an unreachable etcd exited $rc_dead, expected 2"
grep -q "cannot reach etcd at http://127.0.0.1:$dead" "$WORK/dead.err" ||
	fail "the error does not name the unreachable endpoint"

# Secure mode: subscribers and publisher verify each other with a CA, and
# reach an etcd that requires client certificates over https.
make_ca
start_etcd tls --cert-file "$WORK/node.pem" --key-file "$WORK/node.key" \
	--client-cert-auth --trusted-ca-file "$WORK/ca.pem"
(
	export MICRO_REGISTRY_ADDRESS="https://127.0.0.1:$PORT_tls"
	export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem"
	export MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"
	start_sub t1 secure --count 1
	start_sub t2 secure --count 1
	"$CMICRO_BIN" pub secure "over tls" --wait --timeout 15 >"$WORK/tpub.out" 2>"$WORK/tpub.err" ||
		fail "secure publish through etcd failed"
	grep -q "received by 2 of 2 nodes" "$WORK/tpub.out" || fail "not every secure node received"
	wait "$PID_t1" || fail "secure subscriber t1 did not exit 0"
	wait "$PID_t2" || fail "secure subscriber t2 did not exit 0"
	grep -q "over tls" "$WORK/t1.out" || fail "t1 lacks the message"
	! grep -q TLS-VERIFY-OFF "$WORK/t1.err" "$WORK/tpub.err" || fail "secure mode warned"
	unset MICRO_TLS_CERT_FILE MICRO_TLS_KEY_FILE
	set +e
	"$CMICRO_BIN" registry ls >/dev/null 2>"$WORK/nocert.err"
	rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "etcd without a client certificate exited $rc, expected 2"
)

# The killed subscriber's node is gone once its 60 s lease ran out.
while ((SECONDS - killed_at < 75)); do
	has_key "$victim" || break
	sleep 1
done
! has_key "$victim" || fail "the killed subscriber's node outlived its TTL"
echo "ok: etcd layout, go-micro documents, TTL expiry, bad input and secure pub/sub"
