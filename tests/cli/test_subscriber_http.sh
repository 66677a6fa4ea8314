#!/usr/bin/env bash
# curl is an independent client of a running `cmicro sub` over TLS, and it
# checks the subscriber's CA-issued certificate. A go-micro message gets 200
# and reaches the subscriber. Every kind of bad request gets its status. A
# client that stalls mid-request is disconnected while others are served.
source "$(dirname "$0")/pubsub_common.sh"
make_ca
export MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"

start_sub s orders
node=$(sub_node s)
addr=$(sub_addr s)
url="https://$addr/?id=$node"

# post BODY [URL] [CURL ARGS...]: prints the HTTP status.
post() {
	local body=$1 to=${2:-$url}
	shift 2 || shift $#
	curl -s --cacert "$WORK/ca.pem" -o "$WORK/resp.txt" -w '%{http_code}' \
		-H 'Content-Type: application/json' --data-binary "$body" "$@" "$to"
}

status=$(post '{"Header":{"Micro-Topic":"orders","k":"v"},"Body":"aGVsbG8gZnJvbSBjdXJs"}')
[ "$status" = 200 ] || fail "a go-micro message got $status, expected 200"
wait_for "$WORK/s.out" "hello from curl"
grep -q "^orders {Micro-Topic=orders, k=v} hello from curl$" "$WORK/s.out" ||
	fail "the subscriber printed the message differently"

status=$(curl -s --cacert "$WORK/ca.pem" -o "$WORK/resp.txt" -w '%{http_code}' "$url")
[ "$status" = 405 ] || fail "GET got $status, expected 405"
grep -q "method GET not allowed" "$WORK/resp.txt" || fail "405 body does not say why"

status=$(post '{"Header":')
[ "$status" = 400 ] || fail "broken JSON got $status, expected 400"
grep -q "not valid JSON" "$WORK/resp.txt" || fail "400 body does not name the JSON error"

status=$(post '{"Header":{"Micro-Topic":"orders"},"Body":"no base64!"}')
[ "$status" = 400 ] || fail "bad base64 got $status, expected 400"
grep -q "not valid base64" "$WORK/resp.txt" || fail "400 body does not name base64"

status=$(post '{"Header":{"k":"v"},"Body":""}')
[ "$status" = 400 ] || fail "a message without Micro-Topic got $status, expected 400"
grep -q "Micro-Topic" "$WORK/resp.txt" || fail "400 body does not name Micro-Topic"

status=$(post '{"Header":{"Micro-Topic":"orders"},"Body":""}' "https://$addr/?id=somebody-else")
[ "$status" = 404 ] || fail "an unknown node id got $status, expected 404"

status=$(post '{"Header":{"Micro-Topic":"orders"},"Body":""}' "https://$addr/")
[ "$status" = 400 ] || fail "a POST without ?id= got $status, expected 400"
grep -q "missing id query parameter" "$WORK/resp.txt" || fail "400 body does not name the id"

head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' 'a' >"$WORK/big.json"
status=$(curl -s --cacert "$WORK/ca.pem" -o /dev/null -w '%{http_code}' \
	--data-binary @"$WORK/big.json" "$url")
[ "$status" = 413 ] || fail "a 5 MiB body got $status, expected 413"

# A client that sends part of a TLS ClientHello and stalls.
exec 4<>"/dev/tcp/${addr%:*}/${addr##*:}"
printf '\x16\x03\x01\x02\x00\x01' >&4
status=$(post '{"Header":{"Micro-Topic":"orders"},"Body":"c3RpbGwgc2VydmVk"}')
[ "$status" = 200 ] || fail "a request during the stalled connection got $status"
wait_for "$WORK/s.out" "still served"
# The subscriber closes the stalled connection after its read timeout (10 s).
set +e
timeout 30 cat <&4 >/dev/null
rc=$?
set -e
exec 4<&-
[ "$rc" -eq 0 ] || fail "the stalled connection was not closed by the subscriber"

[ "$(wc -l <"$WORK/s.out")" -eq 2 ] || fail "rejected requests reached the handler"
stop_sub s
echo "ok: curl over TLS: 200, 405, 400 (JSON, base64, topic, id), 404, 413, stalled client closed"
