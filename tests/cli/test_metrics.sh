#!/usr/bin/env bash
# GET /metrics of a running subscriber, on a separate plain-HTTP listener
# and on the broker's own HTTPS listener. Every line is parsed as
# Prometheus text and the families and labels are checked. The TLS
# verification counter must move after a mutual-TLS delivery, and a
# certificate subject with a double quote (and RFC 2253's backslash before
# it) must be escaped in its label.
source "$(dirname "$0")/pubsub_common.sh"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=metrics test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$WORK/node.key" -out "$WORK/node.csr" -subj '/CN=say"hi' 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$WORK/node.ext"
openssl x509 -req -in "$WORK/node.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
	-CAcreateserial -days 60 -extfile "$WORK/node.ext" -out "$WORK/node.pem" 2>/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem" MICRO_TLS_CLIENT_AUTH=require
export MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"
MICRO_METRICS_ADDRESS="127.0.0.1:$port" MICRO_BROKER_METRICS=true start_sub s1 orders
grep -q "BROKER-METRICS-LISTEN.*http://127.0.0.1:$port/metrics" "$WORK/s1.err" ||
	fail "the subscriber did not log its metrics listener"

# check_metrics FILE: parses FILE as Prometheus text; prints the value of
# cmicro_tls_handshakes_total{outcome="ok"}.
check_metrics() {
	python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
families = {"cmicro_tls_handshakes_total": "counter", "cmicro_messages_published_total": "counter",
            "cmicro_messages_delivered_total": "counter", "cmicro_messages_failed_total": "counter",
            "cmicro_messages_backlogged_total": "counter", "cmicro_messages_dropped_total": "counter",
            "cmicro_backlog_depth": "gauge", "cmicro_registry_errors_total": "counter",
            "cmicro_cert_expiry_seconds": "gauge"}
types, helps, samples = {}, set(), []
label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
for line in text.splitlines():
    if not line:
        continue
    if line.startswith("# HELP "):
        helps.add(line.split()[2]); continue
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(); types[name] = kind; continue
    m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9]+(?:\.[0-9]+)?)', line)
    assert m, "not a Prometheus sample line: %r" % line
    labels, rest = {}, m.group(2) or ""
    while rest:
        lm = label_re.match(rest)
        assert lm, "bad labels in %r" % line
        value = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), lm.group(2))
        labels[lm.group(1)] = value
        rest = rest[lm.end():]
    assert m.group(1) in types, "sample before its TYPE line: %r" % line
    samples.append((m.group(1), labels, float(m.group(3))))
for name, kind in families.items():
    assert types.get(name) == kind, "%s: TYPE %s, expected %s" % (name, types.get(name), kind)
    assert name in helps, "%s has no HELP line" % name
own = [l for n, l, v in samples if n == "cmicro_cert_expiry_seconds" and l.get("kind") == "own"]
assert len(own) == 1, own
assert own[0]["subject"] == 'CN=say\\"hi', own
assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", own[0]["fingerprint"]), own
ca = [(l, v) for n, l, v in samples if n == "cmicro_cert_expiry_seconds" and l.get("kind") == "ca"]
assert len(ca) == 1, ca
assert ca[0][0]["subject"] == "CN=metrics test CA", ca
assert 29 * 86400 < ca[0][1] <= 30 * 86400, ca
ok = [v for n, l, v in samples if n == "cmicro_tls_handshakes_total" and l.get("outcome") == "ok"]
assert len(ok) == 1, ok
print(int(ok[0]))
PY
}

curl -sf "http://127.0.0.1:$port/metrics" >"$WORK/m1.txt" || fail "GET /metrics on port $port failed"
# RFC 2253 writes the subject as CN=say\"hi, so the label escapes both
# the backslash and the quote.
grep -qF 'subject="CN=say\\\"hi"' "$WORK/m1.txt" || fail "the subject label is not escaped"
before=$(check_metrics "$WORK/m1.txt") || fail "the first scrape is not valid metrics text"

"$CMICRO_BIN" pub orders "paid" --wait --timeout 20 >"$WORK/pub.out" 2>"$WORK/pub.err" ||
	fail "the mutual-TLS publish failed"
curl -sf "http://127.0.0.1:$port/metrics" >"$WORK/m2.txt" || fail "the second scrape failed"
after=$(check_metrics "$WORK/m2.txt") || fail "the second scrape is not valid metrics text"
[ "$after" -gt "$before" ] || fail "verified handshakes stayed at $before after a delivery"

# The broker's own listener serves the same text over HTTPS.
addr=$(sub_addr s1)
curl -sf --cacert "$WORK/ca.pem" --cert "$WORK/node.pem" --key "$WORK/node.key" \
	"https://$addr/metrics" >"$WORK/m3.txt" || fail "GET https://$addr/metrics failed"
check_metrics "$WORK/m3.txt" >/dev/null || fail "the HTTPS scrape is not valid metrics text"

# A typo in the switch fails at start with the value named.
set +e
MICRO_BROKER_METRICS=maybe "$CMICRO_BIN" sub orders >"$WORK/bad.out" 2>"$WORK/bad.err"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "MICRO_BROKER_METRICS=maybe was accepted"
grep -q 'MICRO_BROKER_METRICS="maybe"' "$WORK/bad.err" || fail "the error does not name the value"
echo "ok: metrics endpoint, families, labels, escaping and counters"
