#!/usr/bin/env bash
# Runs `cmicro tls config` under each MICRO_TLS_SECURE value and `cmicro tls
# check` against `openssl s_server` processes started here on free loopback
# ports, with certificates made by both `cmicro cert` and the openssl CLI.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"

: "${CMICRO_BIN:?set CMICRO_BIN to the path of the cmicro binary}"
work=$(mktemp -d /tmp/cmicro-tls-cli-XXXXXX)
server_pid=""

cleanup() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null
		wait "$server_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1

cmicro() {
	"$CMICRO_BIN" "$@"
}

# Runs cmicro with a clean TLS environment plus the given assignments.
cmicro_env() {
	env -u MICRO_TLS_SECURE -u MICRO_TLS_INSECURE -u MICRO_TLS_CA_FILE \
		-u MICRO_TLS_CERT_FILE -u MICRO_TLS_KEY_FILE -u MICRO_TLS_CLIENT_AUTH \
		-u SSLKEYLOGFILE "$@"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$1, for at most 10 seconds.
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# start_server CERT KEY [s_server options...]: serves on a free port in $port.
start_server() {
	local cert=$1 key=$2
	shift 2
	port=$(free_port)
	openssl s_server -accept "127.0.0.1:$port" -cert "$cert" -key "$key" -www -quiet "$@" \
		>server.log 2>&1 &
	server_pid=$!
	wait_port "$port" || fail "openssl s_server did not listen on port $port: $(cat server.log)"
}

stop_server() {
	kill "$server_pid" 2>/dev/null
	wait "$server_pid" 2>/dev/null
	server_pid=""
}

# --- tls config ---------------------------------------------------------------
expect_exit 0 cmicro tls --help
expect_in out.txt "usage: cmicro tls SUBCOMMAND"
expect_exit 0 cmicro tls config --help
expect_in out.txt "usage: cmicro tls config"
expect_exit 0 cmicro tls check --help
expect_in out.txt "usage: cmicro tls check"
expect_exit 2 cmicro tls
expect_exit 2 cmicro tls frobnicate
expect_in err.txt "unknown subcommand \"tls frobnicate\""
expect_exit 2 cmicro tls config --yaml
expect_in err.txt "unknown argument \"--yaml\""

expect_exit 0 cmicro_env "$CMICRO_BIN" tls config
expect_in out.txt "verification:       off"
expect_in out.txt "InsecureSkipVerify: true"
expect_in out.txt "minimum version:    TLS 1.2"
expect_in out.txt "warning: certificate verification is OFF"
expect_in err.txt "TLS-VERIFY-OFF"

expect_exit 0 cmicro_env MICRO_TLS_SECURE=true "$CMICRO_BIN" tls config
expect_in out.txt "verification:       on"
expect_in out.txt "source:             MICRO_TLS_SECURE=true"
expect_in out.txt "InsecureSkipVerify: false"
expect_not_in out.txt "warning:"
expect_not_in err.txt "warning"

expect_exit 0 cmicro_env MICRO_TLS_SECURE=FALSE "$CMICRO_BIN" tls config
expect_in out.txt "verification:       off"
expect_in out.txt "source:             MICRO_TLS_SECURE=FALSE"
expect_in out.txt "InsecureSkipVerify: true"
expect_in err.txt "TLS-VERIFY-OFF"

expect_exit 0 cmicro_env MICRO_TLS_SECURE=audit "$CMICRO_BIN" tls config
expect_in out.txt "verification:       audit"
expect_in out.txt "warning: audit mode"
expect_in err.txt "TLS-AUDIT-MODE"

expect_exit 0 cmicro_env MICRO_TLS_SECURE=maybe "$CMICRO_BIN" tls config
expect_in out.txt "verification:       on"
expect_in err.txt "MICRO_TLS_SECURE=\"maybe\" is not recognised"

# Values a node refuses at start-up fail the report too, naming the value.
expect_exit 2 cmicro_env MICRO_TLS_EXPIRY_WARN_DAYS=0 "$CMICRO_BIN" tls config
expect_in err.txt 'MICRO_TLS_EXPIRY_WARN_DAYS="0" is not a number of days from 1 to 3650'
expect_exit 2 cmicro_env MICRO_TLS_RELOAD_INTERVAL=-3 "$CMICRO_BIN" tls config --json
expect_in err.txt 'MICRO_TLS_RELOAD_INTERVAL="-3" is not a number of seconds from 0 to 86400'
expect_exit 0 cmicro_env MICRO_TLS_EXPIRY_WARN_DAYS=14 MICRO_TLS_RELOAD_INTERVAL=0 \
	"$CMICRO_BIN" tls config
expect_in out.txt "verification:       off"
expect_exit 0 cmicro_env CMICRO_LOG_LEVEL=loud "$CMICRO_BIN" tls config
expect_in err.txt 'CMICRO_LOG_LEVEL="loud" is not a level'

expect_exit 0 cmicro_env MICRO_TLS_SECURE=audit "$CMICRO_BIN" tls config --json
expect_json 'j["verification"] == "audit" and j["source"] == "MICRO_TLS_SECURE"'
expect_json 'j["min_version"] == "TLS 1.2" and j["warning"].startswith("audit mode")'
expect_exit 0 cmicro_env MICRO_TLS_SECURE=true "$CMICRO_BIN" tls config --json
expect_json 'j["verification"] == "on" and j["insecure_skip_verify"] is False'
expect_json 'j["warning"] is None and j["ca_files"] == []'
expect_exit 0 cmicro_env "$CMICRO_BIN" tls config --json
expect_json 'j["verification"] == "off" and j["insecure_skip_verify"] is True'
expect_json 'j["source"] == "default"'

# --- certificates -------------------------------------------------------------
cmicro cert ca --out-cert ca.pem --out-key ca.key >/dev/null 2>&1 || fail "cmicro cert ca"
cmicro cert issue --ca-cert ca.pem --ca-key ca.key --out-cert good.pem --out-key good.key \
	localhost 127.0.0.1 ::1 >/dev/null 2>&1 || fail "cmicro cert issue good"
cmicro cert issue --ca-cert ca.pem --ca-key ca.key --out-cert other.pem --out-key other.key \
	other.test >/dev/null 2>&1 || fail "cmicro cert issue other"
cmicro cert selfsigned --out-cert self.pem --out-key self.key localhost 127.0.0.1 \
	>/dev/null 2>&1 || fail "cmicro cert selfsigned"
cmicro cert issue --ca-cert ca.pem --ca-key ca.key --intermediate --out-cert int.pem \
	--out-key int.key >/dev/null 2>&1 || fail "cmicro cert issue --intermediate"
cmicro cert issue --ca-cert int.pem --ca-key int.key --out-cert deep.pem --out-key deep.key \
	127.0.0.1 >/dev/null 2>&1 || fail "cmicro cert issue from the intermediate"

# An expired certificate signed by the cmicro CA with `openssl ca`, which can
# back-date a certificate.
mkdir -p db && : >db/index.txt && echo 1000 >db/serial
cat >ca.cnf <<'EOF'
[ca]
default_ca = test_ca
[test_ca]
database = db/index.txt
new_certs_dir = db
serial = db/serial
default_md = sha256
policy = any_name
copy_extensions = copy
[any_name]
commonName = supplied
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout expired.key \
	-out expired.csr -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 || fail "openssl req"
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
	-out expired.pem -startdate 20200101000000Z -enddate 20200201000000Z -notext \
	>/dev/null 2>&1 || fail "openssl ca could not back-date a certificate"

# A CA and a server certificate made only by the openssl CLI.
openssl req -x509 -newkey rsa:2048 -nodes -keyout ossl-ca.key -out ossl-ca.pem -days 5 \
	-subj "/CN=OpenSSL Test CA" >/dev/null 2>&1 || fail "openssl req -x509"
openssl req -new -newkey rsa:2048 -nodes -keyout ossl.key -out ossl.csr -subj /CN=localhost \
	>/dev/null 2>&1 || fail "openssl req -new"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >ossl.ext
openssl x509 -req -in ossl.csr -CA ossl-ca.pem -CAkey ossl-ca.key -CAcreateserial \
	-days 5 -extfile ossl.ext -out ossl.pem >/dev/null 2>&1 || fail "openssl x509 -req"

# tls config with trust and identity files from the environment.
expect_exit 0 cmicro_env MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$work/ca.pem" \
	MICRO_TLS_CERT_FILE="$work/good.pem" MICRO_TLS_KEY_FILE="$work/good.key" \
	SSL_CERT_FILE="$work/ossl-ca.pem" "$CMICRO_BIN" tls config
expect_in out.txt "CA files:           $work/ca.pem"
expect_in out.txt "own certificate:    $work/good.pem"
expect_in out.txt "SSL_CERT_FILE=$work/ossl-ca.pem"
expect_exit 0 cmicro_env MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$work/ca.pem" \
	SSL_CERT_FILE="$work/ossl-ca.pem" "$CMICRO_BIN" tls config --json
expect_json 'j["ca_files"] == ["'"$work"'/ca.pem"] and j["cert_file"] is None'
expect_json 'j["ssl_cert_file"] == "'"$work"'/ossl-ca.pem" and j["system_roots"] is True'
expect_exit 2 cmicro_env MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$work/missing-ca.pem" \
	"$CMICRO_BIN" tls config
expect_in err.txt "missing-ca.pem"

# --- tls check: accepted ------------------------------------------------------
start_server good.pem good.key
expect_exit 0 cmicro tls check "127.0.0.1:$port" --ca ca.pem
expect_in out.txt "verdict: ACCEPT"
expect_in out.txt "certificate 1 of 1 (leaf)"
expect_in out.txt "DNS names:     localhost"
expect_in out.txt "protocol:      TLSv1.3"
expect_exit 0 cmicro tls check "localhost:$port" --ca ca.pem --no-system-roots --json
expect_json 'j["verdict"] == "accept" and j["reason"] is None'
expect_json 'j["protocol"].startswith("TLSv1.") and len(j["chain"]) == 1'
expect_json 'j["chain"][0]["role"] == "leaf" and j["chain"][0]["ip_addresses"] == ["127.0.0.1", "::1"]'

# Wrong name: the certificate lists localhost, 127.0.0.1 and ::1 only.
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem --server-name wrong.test
expect_in out.txt "verdict: REJECT"
expect_in out.txt "reason:        hostname_mismatch"
# The verdict is on standard output only, not repeated as a log line.
expect_not_in err.txt "TLS-AUDIT"
expect_in out.txt "wrong.test"
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem --server-name wrong.test --json
expect_json 'j["verdict"] == "reject" and j["reason"] == "hostname_mismatch"'
expect_json 'j["message"] and j["hint"] and len(j["chain"]) == 1'

# Unknown CA: the cmicro CA is not among the system roots.
expect_exit 1 cmicro tls check "127.0.0.1:$port"
expect_in out.txt "reason:        unknown_authority"
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ossl-ca.pem --no-system-roots --json
expect_json 'j["reason"] == "unknown_authority"'
stop_server

# IPv6 loopback, when this machine has it.
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
	port6=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0)); print(s.getsockname()[1])')
	openssl s_server -accept "[::1]:$port6" -cert good.pem -key good.key -www -quiet \
		>server.log 2>&1 &
	server_pid=$!
	sleep 1
	expect_exit 0 cmicro tls check "[::1]:$port6" --ca ca.pem --timeout 5
	expect_in out.txt "verified as:   ::1"
	stop_server
fi

# --- tls check: rejected ------------------------------------------------------
start_server expired.pem expired.key
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem
expect_in out.txt "reason:        expired"
expect_in out.txt "EXPIRED"
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem --json
expect_json 'j["reason"] == "expired" and j["chain"][0]["days_until_expiry"] < 0'
stop_server

start_server other.pem other.key
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem
expect_in out.txt "reason:        hostname_mismatch"
expect_in out.txt "other.test"
stop_server

start_server self.pem self.key
expect_exit 1 cmicro tls check "127.0.0.1:$port"
expect_in out.txt "reason:        self_signed"
# Trusting that very certificate makes it acceptable, as go-micro's CA:TRUE allows.
expect_exit 0 cmicro tls check "127.0.0.1:$port" --ca self.pem
stop_server

# The openssl-made chain: trusted only with its CA.
start_server ossl.pem ossl.key
expect_exit 0 cmicro tls check "127.0.0.1:$port" --ca ossl-ca.pem
expect_in out.txt "key:           RSA (2048 bits)"
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem --no-system-roots
expect_in out.txt "reason:        unknown_authority"
stop_server

# A leaf from an intermediate: accepted when the server sends the chain.
start_server deep.pem deep.key -cert_chain int.pem
expect_exit 0 cmicro tls check "127.0.0.1:$port" --ca ca.pem --json
expect_json 'len(j["chain"]) == 2 and j["chain"][1]["role"] == "intermediate"'
stop_server
start_server deep.pem deep.key
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem --json
expect_json 'j["verdict"] == "reject" and len(j["chain"]) == 1'
stop_server

# A server that offers only TLS 1.1: secure mode would see the same failure.
start_server good.pem good.key -tls1_1 -cipher "DEFAULT:@SECLEVEL=0"
expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem
expect_in out.txt "reason:        protocol_version"
stop_server

# --- tls check: cannot connect, bad usage -------------------------------------
closed=$(free_port)
expect_exit 2 cmicro tls check "127.0.0.1:$closed" --ca ca.pem
expect_in err.txt "cannot connect to 127.0.0.1:$closed"
expect_in err.txt "Connection refused"
# A listener that accepts and never answers: the handshake times out.
silent=$(free_port)
timeout 60 python3 -c "
import socket, time
s = socket.socket()
s.bind(('127.0.0.1', $silent))
s.listen(4)
c, _ = s.accept()
time.sleep(30)
" &
server_pid=$!
wait_port "$silent" || fail "the silent listener did not start"
expect_exit 2 cmicro tls check "127.0.0.1:$silent" --ca ca.pem --timeout 1
expect_in err.txt "no reply within 1 seconds"
stop_server

expect_exit 2 cmicro tls check
expect_in err.txt "takes exactly one HOST:PORT"
expect_exit 2 cmicro tls check localhost
expect_in err.txt "invalid target \"localhost\""
expect_exit 2 cmicro tls check 127.0.0.1:70000
expect_in err.txt "invalid target"
expect_exit 2 cmicro tls check ::1:443
expect_in err.txt "IPv6 address in brackets"
expect_exit 2 cmicro tls check 127.0.0.1:443 --bogus
expect_in err.txt "unknown option --bogus"
expect_exit 2 cmicro tls check 127.0.0.1:443 --timeout 0
expect_in err.txt "invalid --timeout \"0\""
expect_exit 2 cmicro tls check "127.0.0.1:$closed" --ca missing-ca.pem
expect_in err.txt "missing-ca.pem"

# --- exit codes and environment named in --help ---------------------------------
expect_exit 0 cmicro tls check --help
expect_in out.txt "a plain-HTTP server is rejected with reason plaintext"
expect_in out.txt "MICRO_TLS_CA_FILE"
expect_in out.txt "--cert FILE"

# --- MICRO_TLS_CA_FILE is trusted by tls check ----------------------------------
start_server good.pem good.key
expect_exit 1 cmicro_env "$CMICRO_BIN" tls check "127.0.0.1:$port" --no-system-roots
expect_exit 0 cmicro_env MICRO_TLS_CA_FILE=" $work/ca.pem " "$CMICRO_BIN" tls check \
	"127.0.0.1:$port" --no-system-roots
expect_in out.txt "verdict: ACCEPT"
expect_in out.txt "client cert:   not requested by the server"
expect_exit 2 cmicro_env MICRO_TLS_CA_FILE="$work/none.pem" "$CMICRO_BIN" tls check \
	"127.0.0.1:$port" --no-system-roots
expect_in err.txt "MICRO_TLS_CA_FILE entry \"$work/none.pem\" cannot be loaded"
stop_server

# --- client certificates --------------------------------------------------------
cmicro cert issue --ca-cert ca.pem --ca-key ca.key --usage client --out-cert client.pem \
	--out-key client.key client-1 >/dev/null 2>&1 || fail "cmicro cert issue --usage client"
for version in -tls1_3 -tls1_2; do
	start_server good.pem good.key -Verify 1 -CAfile ca.pem "$version"
	expect_exit 1 cmicro tls check "127.0.0.1:$port" --ca ca.pem
	expect_in out.txt "reason:        no_certificate"
	expect_in out.txt "verdict: REJECT: the server requires a client certificate"
	expect_in out.txt "requested by the server (required: yes"
	expect_exit 0 cmicro tls check "127.0.0.1:$port" --ca ca.pem --cert client.pem \
		--key client.key
	expect_in out.txt "presented client.pem"
	expect_in out.txt "verdict: ACCEPT"
	stop_server
done
start_server good.pem good.key -verify 1 -CAfile ca.pem
expect_exit 0 cmicro tls check "127.0.0.1:$port" --ca ca.pem --json
python3 -c 'import json,sys; c=json.load(open("out.txt"))["client_certificate"]; sys.exit(0 if c=={"requested":True,"presented":False,"required":False} else 1)' ||
	fail "client_certificate of a requesting server: $(cat out.txt)"
checks=$((checks + 1))
stop_server
expect_exit 2 cmicro tls check 127.0.0.1:443 --cert client.pem
expect_in err.txt "--cert and --key go together"

# --- tls config reports files without creating them ----------------------------
expect_exit 0 cmicro_env SSLKEYLOGFILE="$work/keys.log" "$CMICRO_BIN" tls config
expect_in out.txt "key log file:       $work/keys.log (does not exist)"
checks=$((checks + 1))
[ ! -e "$work/keys.log" ] || fail "tls config created the key log file"
expect_exit 0 cmicro_env SSL_CERT_FILE=/nonexistent/roots.pem "$CMICRO_BIN" tls config
expect_in out.txt "SSL_CERT_FILE=/nonexistent/roots.pem (does not exist)"

checks_finish
