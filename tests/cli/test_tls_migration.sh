#!/usr/bin/env bash
# Migration tooling end to end on a fleet of `cmicro sub` processes with
# certificates made at test time: `tls scan` verdicts and exit codes, audit
# mode reporting the same nodes, never sending plaintext in secure mode,
# `tls report`, the certificate metadata and the self-check warnings.
source "$(dirname "$0")/pubsub_common.sh"
make_ca
cd "$WORK"

# A second CA that no node trusts.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout other-ca.key -out other-ca.pem -subj "/CN=untrusted CA" 2>/dev/null
issue() { # issue NAME CA SAN DAYS EKU
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
		-out "$1.csr" -subj "/CN=$1" 2>/dev/null
	printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$3" "$5" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days "$4" \
		-extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
issue wrongname ca DNS:elsewhere.test 2 serverAuth
issue unknownca other-ca IP:127.0.0.1 2 serverAuth
# An expired certificate needs explicit dates, which `openssl ca` takes.
mkdir -p cadb && : >cadb/index.txt && echo 01 >cadb/serial
cat >ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = $WORK/cadb/index.txt
serial = $WORK/cadb/serial
new_certs_dir = $WORK/cadb
default_md = sha256
policy = p
[p]
commonName = supplied
CNF
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout expired.key \
	-out expired.csr -subj "/CN=expired" 2>/dev/null
openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
	-out expired.pem -startdate 20200101000000Z -enddate 20200201000000Z \
	-extfile node.ext 2>/dev/null || fail "openssl ca could not make the expired certificate"

# sub_with NAME CERT: a subscriber of topic fleet serving CERT (none: self-signed).
sub_with() {
	if [ "$2" = none ]; then
		start_sub "$1" fleet
	else
		MICRO_TLS_CERT_FILE="$2.pem" MICRO_TLS_KEY_FILE="$2.key" start_sub "$1" fleet
	fi
}
sub_with good node
sub_with expired expired
sub_with wrongname wrongname
sub_with unknownca unknownca
sub_with selfsigned none
start_sub plain fleet --plain

# Self-check: the wrong-name certificate does not cover 127.0.0.1.
grep -q "BROKER-CERT-NAME" wrongname.err || fail "no BROKER-CERT-NAME warning for wrongname"
# Expiry is the expiry monitor's job, once per stage: expired, and 7 days.
grep -q "TLS-EXPIRY-EXPIRED" expired.err || fail "no TLS-EXPIRY-EXPIRED warning"
grep -q "TLS-EXPIRY-7D.*in [12] days" good.err ||
	fail "no TLS-EXPIRY-7D warning for the good node's 2-day certificate"
[ "$(grep -c "expires on" good.err)" = 1 ] ||
	fail "the good node's expiry was warned more than once"
if grep -Eq "BROKER-CERT-(NAME|USAGE|EXPIRED)" good.err; then
	fail "the good node warned about its name, usage or expiry"
fi

# Metadata carries the fingerprint and expiry of the served certificate.
fp=$(openssl x509 -in node.pem -noout -fingerprint -sha256 | sed 's/.*=//')
"$CMICRO_BIN" registry ls >ls.out 2>ls.err || fail "registry ls failed"
grep -q "tls_fingerprint=$fp" ls.out || fail "registry ls lacks the good node's fingerprint $fp"
grep -q "tls_not_after=20[0-9-]*T[0-9:]*Z" ls.out || fail "registry ls lacks tls_not_after"

# Scan: exit 1, one row per node, the expected reasons.
set +e
"$CMICRO_BIN" tls scan --ca ca.pem --no-system-roots --timeout 5 >scan.out 2>scan.err
rc=$?
"$CMICRO_BIN" tls scan --ca ca.pem --no-system-roots --json >scan.json 2>scan-json.err
set -e
[ "$rc" -eq 1 ] || fail "tls scan exited $rc with rejected nodes, expected 1"
row() { grep -- "$(sub_node "$1")" scan.out | head -n 1; }
row good | grep -q "ACCEPT" || fail "the good node is not ACCEPT: $(row good)"
row expired | grep -q "REJECT *expired" || fail "expired row: $(row expired)"
row wrongname | grep -q "REJECT *hostname_mismatch" || fail "wrongname row: $(row wrongname)"
row unknownca | grep -q "REJECT *unknown_authority" || fail "unknownca row: $(row unknownca)"
row selfsigned | grep -q "REJECT *self_signed" || fail "selfsigned row: $(row selfsigned)"
row plain | grep -q "REJECT *plaintext" || fail "plain row: $(row plain)"
row good | grep -Eq " (0|1|2)$" || fail "the good node's days to expiry is not 0 or 1: $(row good)"
grep -q "^6 nodes: 1 would be accepted, 5 would be rejected" scan.out || fail "scan summary"
grep -q "fingerprint (registry): $fp" scan.out || fail "scan lacks the registry fingerprint"
python3 - scan.json <<'PY' || fail "scan --json is wrong"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["summary"] == {"nodes": 6, "accepted": 1, "rejected": 5}, d
assert sorted(n["reason"] or "-" for n in d["nodes"]) == sorted(
    ["-", "expired", "hostname_mismatch", "unknown_authority", "self_signed", "plaintext"])
PY

# Audit mode: one publish reaches every node and reports exactly the rejected ones.
MICRO_TLS_SECURE=audit MICRO_TLS_CA_FILE=ca.pem "$CMICRO_BIN" pub fleet "audit-1" --wait \
	--timeout 20 >audit.out 2>audit.err || fail "audit publish failed"
grep -q "received by 6 of 6 nodes" audit.out || fail "audit mode did not deliver to all 6"
sed -n 's/.*\[TLS-AUDIT\] audit: peer [^ ]* (node \([^)]*\)).*/\1/p' audit.err | sort >audit.ids
grep REJECT scan.out | awk '{print $2}' | sort >scan.ids
diff audit.ids scan.ids >/dev/null || fail "audit ids differ from scan rejects: $(diff audit.ids scan.ids)"
grep -q "TLS-AUDIT.*127.0.0.1:[0-9]* (node $(sub_node plain)).*(plaintext)" audit.err ||
	fail "audit mode did not report the plaintext node with address and node id"

# Secure mode never sends plaintext: the plain node is refused with reason plaintext.
set +e
MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE=ca.pem "$CMICRO_BIN" pub fleet "secure-1" --wait \
	--timeout 20 >secure.out 2>secure.err
set -e
grep -q "node $(sub_node plain) .*plaintext" secure.out ||
	fail "the plain node was not refused with reason plaintext"
grep -q "node $(sub_node good) .* ok (HTTP 200)" secure.out || fail "secure mode lost the good node"
if [ "$(count_body plain.out secure-1)" -ne 0 ]; then fail "secure mode sent plaintext"; fi
MICRO_TLS_SECURE=true MICRO_TLS_ALLOW_PLAINTEXT=true MICRO_TLS_CA_FILE=ca.pem \
	"$CMICRO_BIN" pub fleet "allowed-1" --wait --timeout 20 >allowed.out 2>allowed.err || true
grep -q "node $(sub_node plain) .* ok (HTTP 200)" allowed.out ||
	fail "MICRO_TLS_ALLOW_PLAINTEXT=true did not deliver to the plain node"
wait_for plain.out "allowed-1"
[ "$(count_body plain.out audit-1)" -eq 1 ] || fail "audit mode did not deliver to the plain node"
set +e
MICRO_TLS_ALLOW_PLAINTEXT=maybe "$CMICRO_BIN" pub fleet x >bad.out 2>bad.err; rc=$?
set -e
[ "$rc" -ne 0 ] && grep -q "MICRO_TLS_ALLOW_PLAINTEXT=\"maybe\"" bad.err ||
	fail "an invalid MICRO_TLS_ALLOW_PLAINTEXT was not rejected by name (exit $rc)"

# tls report reads a running broker's findings; a fresh one has none.
"$CMICRO_BIN" tls report --address "$(sub_addr good)" >report.out 2>report.err ||
	fail "tls report of a clean broker did not exit 0"
grep -q "(mode off): 0 findings" report.out || fail "tls report text: $(cat report.out)"
"$CMICRO_BIN" tls report --address "$(sub_addr plain)" --json >report.json 2>&1 ||
	fail "tls report over plain HTTP failed"
grep -q '"broker_id"' report.json || fail "tls report --json lacks broker_id"
set +e
"$CMICRO_BIN" tls report --address 127.0.0.1:1 >/dev/null 2>refused.err; rc1=$?
"$CMICRO_BIN" tls report >/dev/null 2>&1; rc2=$?
MICRO_REGISTRY_ADDRESS=/nonexistent/dir/reg.db "$CMICRO_BIN" tls scan >/dev/null 2>&1; rc3=$?
"$CMICRO_BIN" tls scan --concurrency 0 >/dev/null 2>&1; rc4=$?
set -e
[ "$rc1" -eq 2 ] || fail "tls report of a closed port exited $rc1, expected 2"
[ "$rc2" -eq 2 ] || fail "tls report without a target exited $rc2, expected 2"
[ "$rc3" -eq 2 ] || fail "tls scan of an unreadable registry exited $rc3, expected 2"
[ "$rc4" -eq 2 ] || fail "tls scan --concurrency 0 exited $rc4, expected 2"
echo "ok: tls scan, audit findings, never downgrade, tls report, metadata, self-check"
