#!/usr/bin/env bash
# Certificate rotation without restart: a subscriber serving certificate and
# key files picks up replacements while a publisher keeps publishing; no
# message is lost, `cmicro tls check` sees the new certificate, and broken
# replacements (damaged PEM, a key of another certificate) are kept out
# while the last good certificate stays in use.
source "$(dirname "$0")/pubsub_common.sh"
make_ca

# Prints the SHA-256 fingerprint of the leaf the server at $1 presents, as
# `cmicro tls check --json` reports it.
served_fp() {
	"$CMICRO_BIN" tls check "$1" --ca "$WORK/ca.pem" --no-system-roots --json \
		>"$WORK/check.json" 2>"$WORK/check.err" || fail "tls check of $1 failed"
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chain"][0]["sha256_fingerprint"])' \
		"$WORK/check.json"
}
file_fp() { openssl x509 -in "$1" -noout -fingerprint -sha256 | sed 's/.*=//'; }

# Waits until the fingerprint served at $1 is $2 (at most 20 s).
wait_fp() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(served_fp "$1")" = "$2" ] && return 0
		sleep 0.2
	done
	fail "the server at $1 still does not present certificate $2"
}

cp "$WORK/node.pem" "$WORK/live.pem"
cp "$WORK/node.key" "$WORK/live.key"
chmod 600 "$WORK/live.key"
export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem"
export MICRO_TLS_CERT_FILE="$WORK/live.pem" MICRO_TLS_KEY_FILE="$WORK/live.key"
export MICRO_TLS_RELOAD_INTERVAL=1

start_sub s1 orders
addr=$(sub_addr s1)
old_fp=$(file_fp "$WORK/node.pem")
[ "$(served_fp "$addr")" = "$old_fp" ] || fail "the subscriber does not serve live.pem at start"

# One publisher process, one message every 50 ms, through every step below
# (at most 2000 messages), until the test creates the stop file.
(
	i=0
	while [ ! -e "$WORK/stop" ] && ((i < 2000)); do
		i=$((i + 1))
		echo "msg-$i"
		sleep 0.05
	done
	echo "$i" >"$WORK/sent"
) | "$CMICRO_BIN" pub orders - --timeout 60 >"$WORK/pub.out" 2>"$WORK/pub.err" &
pub_pid=$!
PIDS+=("$pub_pid")

# The replacement is issued by cmicro (the first by openssl), written next
# to the live files and renamed over them, as deployment tools do.
"$CMICRO_BIN" cert issue --ca-cert "$WORK/ca.pem" --ca-key "$WORK/ca.key" --usage both \
	--out-cert "$WORK/new.pem" --out-key "$WORK/new.key" 127.0.0.1 >/dev/null 2>&1 ||
	fail "cmicro cert issue failed"
new_fp=$(file_fp "$WORK/new.pem")
[ "$new_fp" != "$old_fp" ] || fail "the new certificate has the old fingerprint"
sleep 1
cp "$WORK/new.key" "$WORK/live.key.tmp" && mv "$WORK/live.key.tmp" "$WORK/live.key"
cp "$WORK/new.pem" "$WORK/live.pem.tmp" && mv "$WORK/live.pem.tmp" "$WORK/live.pem"
wait_for "$WORK/s1.err" "TLS-RELOADED" 20
wait_fp "$addr" "$new_fp"
echo "ok: the new certificate is served without a restart"

# The node's registry metadata follows, so `cmicro registry ls` and the
# scan show the new fingerprint without connecting.
registered_fp() {
	"$CMICRO_BIN" registry ls --json micro.http.broker 2>/dev/null | python3 -c '
import json, sys
for svc in json.load(sys.stdin):
    for node in svc.get("nodes") or []:
        if node["address"] == sys.argv[1]:
            print(node["metadata"].get("tls_fingerprint", ""))' "$addr"
}
for ((i = 0; i < 50; i++)); do
	[ "$(registered_fp)" = "$new_fp" ] && break
	sleep 0.2
done
[ "$(registered_fp)" = "$new_fp" ] ||
	fail "the registry still lists fingerprint $(registered_fp), not $new_fp"
echo "ok: the registry metadata lists the new fingerprint"

# A damaged certificate file is refused and the last good one stays.
printf -- '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n' >"$WORK/live.pem"
wait_for "$WORK/s1.err" "TLS-RELOAD-FAILED" 20
[ "$(served_fp "$addr")" = "$new_fp" ] || fail "a damaged file replaced the served certificate"
grep -q "previous certificate, key and CAs stay in use" "$WORK/s1.err" ||
	fail "the reload failure does not say the old material stays in use"

# So is a certificate whose key is another one's.
before=$(grep -c "TLS-RELOAD-FAILED" "$WORK/s1.err")
cp "$WORK/node.pem" "$WORK/live.pem"
for ((i = 0; i < 100; i++)); do
	[ "$(grep -c "TLS-RELOAD-FAILED" "$WORK/s1.err")" -gt "$before" ] && break
	sleep 0.2
done
grep "TLS-RELOAD-FAILED" "$WORK/s1.err" | tail -n 1 | grep -q "does not match" ||
	fail "a certificate with the wrong key was not refused as a mismatch"
[ "$(served_fp "$addr")" = "$new_fp" ] || fail "a mismatched pair replaced the served certificate"
echo "ok: damaged and mismatched replacements are refused, the good certificate stays"

# Every message arrived exactly once, before, during and after the rotation.
touch "$WORK/stop"
wait "$pub_pid" || fail "the publisher exited with status $? (some message was not delivered)"
total=$(cat "$WORK/sent")
[ "$total" -ge 20 ] || fail "only $total messages were published during the test"
stop_sub s1
for ((i = 1; i <= total; i++)); do
	n=$(count_body "$WORK/s1.out" "msg-$i")
	[ "$n" -eq 1 ] || fail "msg-$i was received $n times"
done
[ "$(grep -c . "$WORK/s1.out")" -eq "$total" ] || fail "the subscriber printed extra lines"
echo "ok: $total of $total messages delivered across the rotation"

# A value that is not a number of seconds stops the subscriber with the fix.
cp "$WORK/new.pem" "$WORK/live.pem"
set +e
MICRO_TLS_RELOAD_INTERVAL=often "$CMICRO_BIN" sub orders >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "MICRO_TLS_RELOAD_INTERVAL=often exited $rc, expected 2"
grep -q 'MICRO_TLS_RELOAD_INTERVAL="often"' "$WORK/bad.err" || fail "the bad value is not named"
echo "ok: a bad MICRO_TLS_RELOAD_INTERVAL is refused"
