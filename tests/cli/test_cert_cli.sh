#!/usr/bin/env bash
# Runs the real cmicro binary for each `cmicro cert` subcommand and checks the
# files it writes with the openssl command-line tool, the exit codes, the
# --json output (parsed by python3) and the refusal to overwrite keys.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

: "${CMICRO_BIN:?set CMICRO_BIN to the path of the cmicro binary}"
work=$(mktemp -d /tmp/cmicro-cert-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1

expect_eq() {
	checks=$((checks + 1))
	if [ "$1" != "$2" ]; then
		fail "$3: got '$1', expected '$2'"
	fi
}

cmicro() {
	"$CMICRO_BIN" "$@"
}

# --- help ---------------------------------------------------------------------
expect_exit 0 cmicro cert --help
expect_in out.txt "usage: cmicro cert SUBCOMMAND"
for sub in ca issue selfsigned inspect; do
	expect_exit 0 cmicro cert "$sub" --help
	expect_in out.txt "usage: cmicro cert $sub"
	expect_empty err.txt
done
expect_exit 2 cmicro cert
expect_in err.txt "usage: cmicro cert"

# --- ca -----------------------------------------------------------------------
expect_exit 0 cmicro cert ca --out-cert ca.pem --out-key ca.key --cn "Test Root" --days 30
expect_in out.txt "created root CA"
expect_in out.txt "CN=Test Root,O=Micro"
expect_eq "$(stat -c %a ca.key)" "600" "mode of ca.key"
openssl x509 -in ca.pem -noout -subject >subject.txt 2>&1
expect_in subject.txt "subject=O = Micro, CN = Test Root"
openssl x509 -in ca.pem -noout -checkend $((29 * 86400)) >/dev/null 2>&1 ||
	fail "ca.pem expires within 29 days, expected 30"
openssl x509 -in ca.pem -noout -checkend $((31 * 86400)) >/dev/null 2>&1 &&
	fail "ca.pem is valid beyond 31 days, expected 30"

key_before=$(sha256sum ca.key)
expect_exit 2 cmicro cert ca --out-cert ca.pem --out-key ca.key
expect_in err.txt "key file \"ca.key\" already exists; pass --force"
expect_empty out.txt
expect_eq "$(sha256sum ca.key)" "$key_before" "ca.key after a refused overwrite"

expect_exit 0 cmicro cert ca --out-cert ca2.pem --out-key ca.key --force
[ "$(sha256sum ca.key)" != "$key_before" ] || fail "--force did not replace ca.key"
expect_exit 0 cmicro cert ca --out-cert ca.pem --out-key ca.key --force --cn "Test Root"

# Defaults: ca.pem / ca.key in the current directory.
mkdir defaults && (cd defaults && "$CMICRO_BIN" cert ca >../out.txt 2>../err.txt) ||
	fail "cert ca with default outputs failed: $(cat err.txt)"
[ -f defaults/ca.pem ] && [ -f defaults/ca.key ] || fail "cert ca did not write ca.pem/ca.key"

for type in ed25519 ec384 rsa; do
	expect_exit 0 cmicro cert ca --out-cert "ca-$type.pem" --out-key "ca-$type.key" \
		--key-type "$type" --rsa-bits 3072
done
openssl x509 -in ca-ed25519.pem -noout -text >text.txt
expect_in text.txt "Public Key Algorithm: ED25519"
openssl x509 -in ca-ec384.pem -noout -text >text.txt
expect_in text.txt "NIST CURVE: P-384"
openssl x509 -in ca-rsa.pem -noout -text >text.txt
expect_in text.txt "Public-Key: (3072 bit)"

# --- issue --------------------------------------------------------------------
expect_exit 0 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --out-cert srv.pem \
	--out-key srv.key --chain localhost 127.0.0.1
expect_in out.txt "created certificate"
expect_eq "$(grep -c 'BEGIN CERTIFICATE' srv.pem)" "2" "certificates in srv.pem with --chain"
expect_eq "$(stat -c %a srv.key)" "600" "mode of srv.key"
openssl verify -CAfile ca.pem -untrusted srv.pem -purpose sslserver srv.pem >verify.txt 2>&1
expect_in verify.txt "srv.pem: OK"
openssl x509 -in srv.pem -noout -ext subjectAltName,basicConstraints,extendedKeyUsage >ext.txt
expect_in ext.txt "DNS:localhost, IP Address:127.0.0.1"
expect_in ext.txt "CA:FALSE"
expect_in ext.txt "TLS Web Server Authentication"
expect_eq "$(openssl x509 -in srv.pem -noout -pubkey)" "$(openssl pkey -in srv.key -pubout)" \
	"public key of srv.pem and srv.key"

expect_exit 0 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --out-cert cli.pem \
	--out-key cli.key --usage client client-1
openssl verify -CAfile ca.pem -purpose sslclient cli.pem >verify.txt 2>&1
expect_in verify.txt "cli.pem: OK"
openssl verify -CAfile ca.pem -purpose sslserver cli.pem >verify.txt 2>&1 &&
	fail "a client-only certificate passed openssl verify -purpose sslserver"
expect_eq "$(grep -c 'BEGIN CERTIFICATE' cli.pem)" "1" "certificates in cli.pem without --chain"

# Intermediate CA, then a leaf from it with the whole chain.
expect_exit 0 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --intermediate \
	--path-len 0 --cn "Test Intermediate" --out-cert int.pem --out-key int.key --chain
openssl x509 -in int.pem -noout -ext basicConstraints >ext.txt
expect_in ext.txt "CA:TRUE, pathlen:0"
expect_exit 0 cmicro cert issue --ca-cert int.pem --ca-key int.key --chain \
	--out-cert deep.pem --out-key deep.key deep.test
expect_eq "$(grep -c 'BEGIN CERTIFICATE' deep.pem)" "3" "certificates in deep.pem"
openssl verify -CAfile ca.pem -untrusted deep.pem deep.pem >verify.txt 2>&1
expect_in verify.txt "deep.pem: OK"

# Default outputs from the first host.
expect_exit 0 cmicro cert issue --ca-cert ca.pem --ca-key ca.key node-1.test ::1
[ -f node-1.test.pem ] && [ -f node-1.test.key ] || fail "default outputs node-1.test.pem/.key"
expect_exit 0 cmicro cert issue --ca-cert ca.pem --ca-key ca.key ::1
[ -f __1.pem ] && [ -f __1.key ] || fail "default outputs __1.pem/.key for host ::1"
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca.key node-1.test
expect_in err.txt "node-1.test.key\" already exists"

# A CA made by the openssl CLI issues through cmicro, and openssl verifies it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ossl-ca.key \
	-out ossl-ca.pem -subj "/CN=OpenSSL Test CA" -days 5 \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 ||
	fail "openssl req could not create a CA"
expect_exit 0 cmicro cert issue --ca-cert ossl-ca.pem --ca-key ossl-ca.key --out-cert x.pem \
	--out-key x.key x.test
openssl verify -CAfile ossl-ca.pem x.pem >verify.txt 2>&1
expect_in verify.txt "x.pem: OK"

# An encrypted CA key, with its passphrase from the environment.
openssl pkey -in ca.key -aes256 -passout pass:ca-secret -out ca-enc.key 2>/dev/null
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca-enc.key --out-cert e.pem \
	--out-key e.key e.test
expect_in err.txt "ca-enc.key is encrypted"
expect_exit 0 env CA_PASS=ca-secret "$CMICRO_BIN" cert issue --ca-cert ca.pem \
	--ca-key ca-enc.key --ca-pass-env CA_PASS --out-cert e.pem --out-key e.key e.test
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca-enc.key --ca-pass-env \
	CMICRO_TEST_UNSET_VARIABLE --out-cert e2.pem --out-key e2.key e.test
expect_in err.txt "CMICRO_TEST_UNSET_VARIABLE: the environment variable is not set"

# --- selfsigned ---------------------------------------------------------------
expect_exit 0 cmicro cert selfsigned --out-cert self.pem --out-key self.key localhost 127.0.0.1
openssl x509 -in self.pem -noout -subject -ext basicConstraints,keyUsage,subjectAltName >ext.txt
expect_in ext.txt "subject=O = Micro"
expect_in ext.txt "CA:TRUE"
expect_in ext.txt "Digital Signature, Key Encipherment, Certificate Sign"
expect_in ext.txt "DNS:localhost, IP Address:127.0.0.1"
openssl verify -CAfile self.pem self.pem >verify.txt 2>&1
expect_in verify.txt "self.pem: OK"
expect_exit 2 cmicro cert selfsigned --out-cert self.pem --out-key self.key localhost
expect_in err.txt "self.key\" already exists"

# --- inspect ------------------------------------------------------------------
expect_exit 0 cmicro cert inspect srv.pem
expect_in out.txt "srv.pem: 2 certificates"
expect_in out.txt "certificate 1 of 2 (leaf)"
expect_in out.txt "certificate 2 of 2 (root)"
expect_in out.txt "DNS names:     localhost"
expect_in out.txt "IP addresses:  127.0.0.1"
expect_in out.txt "key:           EC P-256 (256 bits)"
expect_in out.txt "usages:        serverAuth"
expect_empty err.txt

expect_exit 0 cmicro cert inspect srv.pem --json
fingerprint=$(openssl x509 -in srv.pem -noout -fingerprint -sha256 | cut -d= -f2)
cat >check_inspect.py <<'EOF'
import json, sys
certs = json.load(sys.stdin)
assert len(certs) == 2, certs
leaf, root = certs
assert leaf["position"] == 0, leaf
assert leaf["role"] == "leaf", leaf
assert leaf["dns_names"] == ["localhost"], leaf
assert leaf["ip_addresses"] == ["127.0.0.1"], leaf
assert leaf["is_ca"] is False, leaf
assert leaf["server_auth"] is True, leaf
assert leaf["client_auth"] is False, leaf
assert leaf["sha256_fingerprint"] == sys.argv[1], (leaf["sha256_fingerprint"], sys.argv[1])
assert leaf["key_type"] == "EC", leaf
assert leaf["curve"] == "P-256", leaf
assert 364 <= leaf["days_until_expiry"] <= 365, leaf
assert root["role"] == "root", root
assert root["is_ca"] is True, root
assert root["self_signed"] is True, root
assert root["subject"] == "CN=Test Root,O=Micro", root
EOF
checks=$((checks + 1))
python3 check_inspect.py "$fingerprint" <out.txt || fail "inspect --json output did not match"

# inspect reads certificates made by the openssl CLI too.
expect_exit 0 cmicro cert inspect ossl-ca.pem --json
checks=$((checks + 1))
python3 -c 'import json,sys; c=json.load(sys.stdin)[0]; assert c["subject"]=="CN=OpenSSL Test CA" and c["is_ca"], c' \
	<out.txt || fail "inspect of an openssl-made CA"

# --- bad usage and bad input: exit 2, message on stderr, nothing on stdout ----
expect_exit 2 cmicro cert frobnicate
expect_in err.txt "unknown subcommand \"cert frobnicate\""
expect_exit 2 cmicro cert ca --out-cert a.pem --out-key a.key --bogus
expect_in err.txt "unknown option --bogus"
expect_exit 2 cmicro cert ca --out-cert a.pem --out-key a.key --days 0
expect_in err.txt "invalid value \"0\" for --days"
expect_exit 2 cmicro cert ca --out-cert a.pem --out-key a.key --days soon
expect_in err.txt "invalid value \"soon\" for --days"
expect_exit 2 cmicro cert ca --out-cert a.pem --out-key a.key --key-type dsa
expect_in err.txt "invalid --key-type \"dsa\""
expect_exit 2 cmicro cert ca --out-cert a.pem --out-key a.key --days
expect_in err.txt "option --days needs a value"
expect_exit 2 cmicro cert ca --out-cert same.pem --out-key same.pem
expect_in err.txt "give two different files"
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --usage web --out-cert u.pem \
	--out-key u.key u.test
expect_in err.txt "invalid --usage \"web\""
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --out-cert h.pem --out-key h.key
expect_in err.txt "no HOST given"
expect_exit 2 cmicro cert issue --out-cert h.pem --out-key h.key h.test
expect_in err.txt "needs --ca-cert and --ca-key"
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --out-cert h.pem \
	--out-key h.key "bad host"
expect_in err.txt "invalid host \"bad host\""
expect_exit 2 cmicro cert issue --ca-cert srv.pem --ca-key srv.key --out-cert h.pem \
	--out-key h.key h.test
expect_in err.txt "is not a CA"
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key srv.key --out-cert h.pem \
	--out-key h.key h.test
expect_in err.txt "does not match the certificate in ca.pem"
[ ! -e h.pem ] && [ ! -e h.key ] || fail "a failed issue left h.pem or h.key behind"
expect_exit 2 cmicro cert selfsigned --out-cert s.pem --out-key s.key
expect_in err.txt "no HOST given"
expect_exit 2 cmicro cert inspect missing.pem
expect_in err.txt "missing.pem: file not found"
expect_empty out.txt
expect_exit 2 cmicro cert inspect srv.key
expect_in err.txt "contains a private key, not a certificate"
printf 'not a certificate\n' >junk.pem
expect_exit 2 cmicro cert inspect junk.pem
expect_in err.txt "junk.pem contains no PEM certificate"
expect_exit 2 cmicro cert inspect
expect_in err.txt "takes exactly one FILE"
expect_exit 2 cmicro cert inspect srv.pem --chain
expect_in err.txt "--chain is not an option of 'cmicro cert inspect'"

# --- outputs are written together or not at all --------------------------------
mkdir pair && cd pair || exit 1
expect_exit 2 cmicro cert ca --out-cert /nonexistent/y.pem --out-key y.key
expect_in err.txt "/nonexistent/y.pem: cannot create a file"
expect_eq "$(ls -A | grep -v -e out.txt -e err.txt)" "" "files left after a failed certificate write"
expect_exit 2 cmicro cert ca --out-cert y.pem --out-key /nonexistent/y.key
expect_in err.txt "/nonexistent/y.key: cannot create a file"
expect_eq "$(ls -A | grep -v -e out.txt -e err.txt)" "" "files left after a failed key write"
cd .. || exit 1

# --- an existing certificate needs --force ------------------------------------
expect_exit 0 cmicro cert ca --out-cert keep.pem --out-key keep.key
before=$(sha256sum keep.pem)
rm keep.key
expect_exit 2 cmicro cert ca --out-cert keep.pem --out-key keep.key
expect_in err.txt "certificate file \"keep.pem\" already exists; pass --force"
expect_eq "$(sha256sum keep.pem)" "$before" "keep.pem after a refused overwrite"
expect_exit 0 cmicro cert ca --out-cert keep.pem --out-key keep.key --force
checks=$((checks + 1))
[ "$(sha256sum keep.pem)" != "$before" ] || fail "keep.pem not replaced with --force"
expect_exit 2 cmicro cert selfsigned --out-cert keep.pem --out-key keep2.key h.test
expect_in err.txt "certificate file \"keep.pem\" already exists"

# --- options a subcommand does not take are named ------------------------------
expect_exit 2 cmicro cert selfsigned --days 5 h.test
expect_in err.txt "--days is not an option of 'cmicro cert selfsigned'"
expect_in err.txt "fixed one-year"
expect_exit 0 cmicro cert selfsigned --help
expect_in out.txt "--days, --cn, --key-type and the CA options are not accepted"

# --- choices that make unusable certificates ----------------------------------
expect_exit 2 cmicro cert ca --key-type rsa --rsa-bits 1024 --out-cert weak.pem --out-key weak.key
expect_in err.txt "--rsa-bits 1024 is too small"
expect_in err.txt "weak_key"
checks=$((checks + 1))
[ ! -e weak.pem ] || fail "weak.pem written although --rsa-bits 1024 was refused"
expect_exit 0 cmicro cert ca --key-type rsa --rsa-bits 1024 --allow-weak \
	--out-cert weak.pem --out-key weak.key
expect_in err.txt "warning: a 1024-bit RSA key is rejected as weak_key"
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --path-len 1 \
	--out-cert pl.pem --out-key pl.key pl.test
expect_in err.txt "--path-len applies only to a CA"
expect_exit 0 cmicro cert issue --ca-cert ca.pem --ca-key ca.key --intermediate --path-len 0 \
	--out-cert int0.pem --out-key int0.key
expect_exit 2 cmicro cert issue --ca-cert int0.pem --ca-key int0.key --intermediate \
	--out-cert int1.pem --out-key int1.key
expect_in err.txt "has basicConstraints pathlen:0, so no CA may be issued below it"
expect_in err.txt "issuer CN=cmicro intermediate CA,O=Micro"
expect_exit 0 cmicro cert issue --ca-cert int0.pem --ca-key int0.key \
	--out-cert below0.pem --out-key below0.key below0.test

# --- DN format and inspect labels ---------------------------------------------
expect_exit 2 cmicro cert issue --ca-cert srv.pem --ca-key srv.key --out-cert notca.pem \
	--out-key notca.key notca.test
expect_in err.txt "is not a CA"
checks=$((checks + 1))
grep -qF "/O=" err.txt && fail "slash-separated DN in: $(cat err.txt)"
expect_exit 0 cmicro cert inspect ca.pem
expect_in out.txt "certificate 1 of 1 (root)"
expect_in out.txt "usages:        any (no extendedKeyUsage extension)"
expect_exit 0 cmicro cert inspect ca.pem --json
python3 -c 'import json,sys; d=json.load(open("out.txt"))[0]; sys.exit(0 if d["role"]=="root" and d["has_eku"] is False else 1)' ||
	fail "ca.pem JSON: role root and has_eku false expected: $(cat out.txt)"
expect_exit 0 cmicro cert inspect srv.pem
expect_in out.txt "certificate 1 of 2 (leaf)"
expect_exit 2 cmicro cert inspect srv.key
expect_in err.txt "give the certificate file (-----BEGIN CERTIFICATE-----) in its place"

# --- encrypted CA key ---------------------------------------------------------
openssl pkey -in ca.key -aes256 -passout pass:secret -out ca-enc.key 2>/dev/null ||
	fail "openssl could not encrypt ca.key"
expect_exit 2 cmicro cert issue --ca-cert ca.pem --ca-key ca-enc.key --out-cert enc.pem \
	--out-key enc.key enc.test
expect_in err.txt "is encrypted and no passphrase was given"
expect_in err.txt "--ca-pass-env VAR"
checks=$((checks + 1))
[ "$(grep -o "interrupted or cancelled" err.txt | wc -l)" -le 1 ] ||
	fail "OpenSSL reason repeated: $(cat err.txt)"
expect_exit 0 env CA_PASS=secret "$CMICRO_BIN" cert issue --ca-cert ca.pem --ca-key ca-enc.key \
	--ca-pass-env CA_PASS --out-cert enc.pem --out-key enc.key enc.test

checks_finish
