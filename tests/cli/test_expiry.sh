#!/usr/bin/env bash
# Expiry warnings of a subscriber serving certificates made by the openssl
# tool to expire in 5, 20 and 40 days: the 7-day stage, the threshold
# stage, nothing, and a threshold raised with MICRO_TLS_EXPIRY_WARN_DAYS.
source "$(dirname "$0")/pubsub_common.sh"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
	-keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=expiry test CA" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$WORK/node.ext"

# issue DAYS: a certificate for 127.0.0.1 valid for DAYS, as node-DAYS.pem.
issue() {
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=node $1" \
		-keyout "$WORK/node-$1.key" -out "$WORK/node-$1.csr" 2>/dev/null
	openssl x509 -req -in "$WORK/node-$1.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
		-CAcreateserial -days "$1" -extfile "$WORK/node.ext" -out "$WORK/node-$1.pem" 2>/dev/null
}

# run_sub NAME DAYS: a subscriber serving node-DAYS.pem, stopped once registered.
run_sub() {
	MICRO_TLS_CERT_FILE="$WORK/node-$2.pem" MICRO_TLS_KEY_FILE="$WORK/node-$2.key" \
		start_sub "$1" orders
	stop_sub "$1"
}

export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem"
for days in 5 20 40; do issue "$days"; done

run_sub five 5
[ "$(grep -c 'TLS-EXPIRY-7D' "$WORK/five.err")" -eq 1 ] || fail "5 days: expected one TLS-EXPIRY-7D"
grep -q "this node's own certificate (subject CN=node 5) expires on .*, in 5 days" \
	"$WORK/five.err" || fail "5 days: the warning lacks the subject or the days left"
! grep -q 'TLS-EXPIRY-30D' "$WORK/five.err" || fail "5 days: the threshold stage was logged too"

run_sub twenty 20
[ "$(grep -c 'TLS-EXPIRY-30D' "$WORK/twenty.err")" -eq 1 ] || fail "20 days: expected one TLS-EXPIRY-30D"
! grep -q 'TLS-EXPIRY-7D' "$WORK/twenty.err" || fail "20 days: the 7-day stage was logged"

run_sub forty 40
! grep -q 'TLS-EXPIRY-' "$WORK/forty.err" || fail "40 days: a warning was logged"

MICRO_TLS_EXPIRY_WARN_DAYS=45 run_sub wide 40
grep -q 'TLS-EXPIRY-30D.*in 40 days (warning threshold 45 days' "$WORK/wide.err" ||
	fail "MICRO_TLS_EXPIRY_WARN_DAYS=45 did not warn about the 40-day certificate"
echo "ok: expiry warnings at 5, 20 and 40 days and with a raised threshold"

# A threshold that is not a number of days stops the subscriber with the fix.
set +e
MICRO_TLS_EXPIRY_WARN_DAYS=soon MICRO_TLS_CERT_FILE="$WORK/node-40.pem" \
	MICRO_TLS_KEY_FILE="$WORK/node-40.key" "$CMICRO_BIN" sub orders >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "MICRO_TLS_EXPIRY_WARN_DAYS=soon exited $rc, expected 2"
grep -q 'MICRO_TLS_EXPIRY_WARN_DAYS="soon" is not a number of days' "$WORK/bad.err" ||
	fail "the bad threshold is not named"
echo "ok: an invalid MICRO_TLS_EXPIRY_WARN_DAYS is refused"
