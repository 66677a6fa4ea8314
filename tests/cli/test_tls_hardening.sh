#!/usr/bin/env bash
# Hardening of the TLS layer, checked through real cmicro processes and the
# openssl CLI on 127.0.0.1. The cases cover the TLS 1.2 floor on both sides,
# renegotiation and compression being off, the warning for private keys that
# others can read, and the absence of secrets in every output. Certificates
# come from `cmicro cert` and from `openssl req`/`openssl x509`, made at test
# time.
#
# Each case prints "ok", "FAIL" or "SKIP" with its name; a failed check
# prints why and the run goes on, so one run lists every failure.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/checks.sh"

: "${CMICRO_BIN:?set CMICRO_BIN to the path of the cmicro binary}"
work=$(mktemp -d /tmp/cmicro-tls-hardening-XXXXXX)
pids=()
skips=0
case_failed=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1

export MICRO_REGISTRY=sqlite
export MICRO_REGISTRY_ADDRESS="$work/registry.db"
unset MICRO_TLS_SECURE MICRO_TLS_INSECURE MICRO_TLS_CA_FILE MICRO_TLS_CERT_FILE \
	MICRO_TLS_KEY_FILE MICRO_TLS_CLIENT_AUTH MICRO_TLS_MIN_VERSION MICRO_BROKER_ADDRESS \
	SSLKEYLOGFILE CMICRO_LOG_LEVEL

# The legacy protocols need security level 0 in OpenSSL 3, or the openssl
# CLI cannot even build a TLS 1.0/1.1 hello or serve one.
legacy_ciphers='DEFAULT:@SECLEVEL=0'

cmicro() {
	"$CMICRO_BIN" "$@"
}

# --- processes --------------------------------------------------------------

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:$1, for at most 10 seconds.
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# Waits (at most 15 seconds) until file $1 contains the regular expression $2.
wait_for() {
	local i
	for ((i = 0; i < 150; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# Ends one process started here, by its PID.
stop_pid() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# start_sub NAME [VAR=VALUE...] -- [sub options...]: runs `cmicro sub
# topic-NAME` with the extra environment, output in NAME.out and NAME.err,
# and sets sub_pid and sub_port once it has subscribed. Returns 1 when it
# exited or did not subscribe within 15 seconds.
start_sub() {
	local name=$1
	local envs=()
	shift
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		envs+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	env "${envs[@]}" "$CMICRO_BIN" sub "topic-$name" "$@" >"$name.out" 2>"$name.err" &
	sub_pid=$!
	pids+=("$sub_pid")
	sub_port=""
	if ! wait_for "$name.err" "^subscribed to"; then
		fail "subscriber $name did not subscribe: $(cat "$name.err")"
		return 1
	fi
	sub_port=$(sed -n 's/^subscribed to .* at 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$name.err")
	sub_node=$(sed -n 's/^subscribed to .* as node \([^ ]*\) at .*/\1/p' "$name.err")
}

# start_openssl_server NAME [s_server options...]: serves node.pem on a free
# port (in server_port) with `openssl s_server -www`.
start_openssl_server() {
	local name=$1
	shift
	server_port=$(free_port)
	openssl s_server -accept "127.0.0.1:$server_port" -cert node.pem -key node.key \
		-www -quiet "$@" >"$name.log" 2>&1 &
	server_pid=$!
	pids+=("$server_pid")
	wait_port "$server_port" || fail "openssl s_server $* did not listen: $(cat "$name.log")"
}

# start_version_server NAME VERSION: an HTTPS server that speaks only TLS
# VERSION (1.2 or 1.3) and logs each POST with its protocol in NAME.log.
start_version_server() {
	local name=$1 version=$2 i
	rm -f "$name.port"
	python3 "$here/tls_hardening_server.py" node.pem node.key "$version" "$name.port" \
		"$name.log" 120 2>"$name.err" &
	server_pid=$!
	pids+=("$server_pid")
	for ((i = 0; i < 100; i++)); do
		[ -s "$name.port" ] && break
		sleep 0.1
	done
	server_port=$(cat "$name.port" 2>/dev/null)
	wait_port "$server_port" || fail "TLS $version server did not listen: $(cat "$name.err")"
}

# seed_node NODE_ID TOPIC PORT: registers a secure broker node for TOPIC at
# 127.0.0.1:PORT in the SQLite registry, as a go-micro writer leaves it, so
# that `cmicro pub` delivers to a server that is not a cmicro subscriber.
seed_node() {
	local doc
	doc=$(printf '{"name":"micro.http.broker","version":"ff.http.broadcast","nodes":[{"id":"%s","address":"127.0.0.1:%s","metadata":{"broker":"http","secure":"true","topic":"%s"}}]}' \
		"$1" "$3" "$2")
	cmicro registry ls >/dev/null 2>&1
	sqlite3 "$MICRO_REGISTRY_ADDRESS" "INSERT OR REPLACE INTO nodes (service, node_id, version, doc, expires_at) VALUES ('micro.http.broker', '$1', 'ff.http.broadcast', '$doc', 0);" ||
		fail "cannot seed node $1 in $MICRO_REGISTRY_ADDRESS"
}

# probe FILE PORT [s_client options...]: one `openssl s_client` connection
# that sends nothing, output (stdout and stderr) in FILE. Its "Protocol  :"
# line is printed only once a TLS 1.3 server sends a session ticket, which
# may come after s_client has closed. So for TLS 1.2 and 1.3 the checks read
# the "New, TLSv1.x, Cipher is" line, which names the version of the cipher
# suite. With the AEAD suites negotiated here, that is the protocol version.
probe() {
	local file=$1 port=$2
	shift 2
	timeout 10 openssl s_client -connect "127.0.0.1:$port" "$@" </dev/null >"$file" 2>&1
}

# post_message PORT NODE TOPIC BODY FILE [curl options...]: POSTs one
# go-micro broker message with curl; the verbose output goes to FILE.
post_message() {
	local port=$1 node=$2 topic=$3 body=$4 file=$5
	shift 5
	local json
	json=$(printf '{"Header":{"Micro-Topic":"%s"},"Body":"%s"}' "$topic" \
		"$(printf '%s' "$body" | base64)")
	curl -sS -k -v --max-time 10 -o /dev/null -w 'HTTP %{http_code}\n' \
		-H 'Content-Type: application/json' --data "$json" \
		"$@" "https://127.0.0.1:$port/?id=$node" >"$file" 2>&1
}

# --- certificates -------------------------------------------------------------

# The CA and node certificate of the openssl CLI, independent of cmicro's
# generator; cmicro's own CA signs the certificates of the key cases.
make_certs() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 400 \
		-keyout ossl-ca.key -out ossl-ca.pem -subj "/CN=hardening test CA" 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout node.key -out node.csr -subj "/CN=127.0.0.1" 2>/dev/null &&
		printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >node.ext &&
		openssl x509 -req -in node.csr -CA ossl-ca.pem -CAkey ossl-ca.key -CAcreateserial \
			-days 400 -extfile node.ext -out node.pem 2>/dev/null ||
		{ echo "FAIL: cannot make certificates with the openssl CLI" >&2; exit 1; }
	cmicro cert ca --out-cert ca.pem --out-key ca.key >/dev/null 2>&1 &&
		cmicro cert issue --ca-cert ca.pem --ca-key ca.key --usage both \
			--out-cert cm-node.pem --out-key cm-node.key 127.0.0.1 >/dev/null 2>&1 ||
		{ echo "FAIL: cannot make certificates with cmicro cert" >&2; exit 1; }
}

# --- cases --------------------------------------------------------------------

# Runs one case function and reports it by name.
run_case() {
	local before=$failures
	case_skipped=0
	"$1"
	if [ "$case_skipped" -eq 1 ]; then
		return
	elif [ "$failures" -eq "$before" ]; then
		echo "ok   $1"
	else
		echo "FAIL $1"
		case_failed+=("$1")
	fi
}

# skip_case NAME REASON: reports the running case as skipped, not passed.
skip_case() {
	echo "SKIP $1: $2"
	skips=$((skips + 1))
	case_skipped=1
}

# A client limited to one legacy version (FLAG) is rejected by a cmicro
# subscriber with a protocol_version alert, and the subscriber logs the
# version and the fix. The same client first completes a handshake with an
# openssl server of that version, so the rejection comes from cmicro and not
# from a client that cannot speak the version at all. Each version gets its
# own subscriber because the log line is written once per client and reason.
# FLAG is the s_client option, PROTOCOL OpenSSL's name of the version
# (TLSv1.1) and VERSION cmicro's (1.1).
check_sub_rejects_legacy_client() {
	local flag=$1 protocol=$2 version=$3 name=$4
	start_openssl_server "$name-control" "$flag" -cipher "$legacy_ciphers"
	probe "$name-control.txt" "$server_port" "$flag" -cipher "$legacy_ciphers"
	expect_in "$name-control.txt" "Protocol  : $protocol"
	expect_not_in "$name-control.txt" "Cipher is (NONE)"
	stop_pid "$server_pid"

	start_sub "$name" || return
	probe "$name.txt" "$sub_port" "$flag" -cipher "$legacy_ciphers"
	expect_in "$name.txt" "alert protocol version"
	expect_in "$name.txt" "Cipher is (NONE)"
	wait_for "$name.err" "HTTP-TLS-HANDSHAKE"
	expect_in "$name.err" "peer offered only TLS $version; the minimum is TLS 1.2"
	expect_in "$name.err" "upgrade the peer to TLS 1.2 or later"
	stop_pid "$sub_pid"
}

test_sub_tls1_0_client_rejected() {
	check_sub_rejects_legacy_client -tls1 TLSv1 1.0 sub-tls10
}

test_sub_tls1_1_client_rejected() {
	check_sub_rejects_legacy_client -tls1_1 TLSv1.1 1.1 sub-tls11
}

test_sub_tls1_2_and_1_3_clients_served() {
	local v
	start_sub modern || return
	for v in 1.2 1.3; do
		probe "modern-$v.txt" "$sub_port" "-tls${v/./_}"
		expect_in "modern-$v.txt" "New, TLSv$v, Cipher is "
		post_message "$sub_port" "$sub_node" topic-modern "hello over $v" "modern-post-$v.txt" \
			"--tlsv$v" --tls-max "$v"
		expect_in "modern-post-$v.txt" "HTTP 200"
		expect_in "modern-post-$v.txt" "SSL connection using TLSv$v"
	done
	wait_for modern.out "hello over 1.3"
	expect_in modern.out "hello over 1.2"
	expect_in modern.out "hello over 1.3"
	stop_pid "$sub_pid"
}

# check_pub_rejects_legacy_server FLAG NAME: `cmicro pub` to a node served
# by `openssl s_server FLAG` fails with reason protocol_version and the fix.
check_pub_rejects_legacy_server() {
	local flag=$1 name=$2
	start_openssl_server "$name" "$flag" -cipher "$legacy_ciphers"
	seed_node "$name-node" "topic-$name" "$server_port"
	expect_exit 1 cmicro pub "topic-$name" "to a legacy server" --wait --timeout 2
	expect_in out.txt "node $name-node 127.0.0.1:$server_port failed"
	expect_in out.txt "(tls protocol_version)"
	expect_in out.txt "peer rejected TLS 1.2 and later"
	expect_in out.txt "the minimum is TLS 1.2: upgrade the peer to TLS 1.2 or later"
	expect_in out.txt "received by 0 of 1 nodes"
	stop_pid "$server_pid"
}

test_pub_tls1_0_server_rejected() {
	check_pub_rejects_legacy_server -tls1 pub-tls10
}

test_pub_tls1_1_server_rejected() {
	check_pub_rejects_legacy_server -tls1_1 pub-tls11
}

test_pub_tls1_2_and_1_3_servers_served() {
	local v
	for v in 1.2 1.3; do
		start_version_server "pub-modern-$v" "$v"
		seed_node "modern-$v" "topic-pub-modern-$v" "$server_port"
		expect_exit 0 cmicro pub "topic-pub-modern-$v" "to TLS $v" --wait --timeout 5
		expect_in out.txt "node modern-$v 127.0.0.1:$server_port ok (HTTP 200)"
		expect_in "pub-modern-$v.log" "TLSv$v POST /?id=modern-$v"
		stop_pid "$server_pid"
	done
}

# check_tls_check_rejects_legacy_server FLAG NAME: `cmicro tls check` of an
# `openssl s_server FLAG` exits 1 with reason protocol_version and the fix.
check_tls_check_rejects_legacy_server() {
	local flag=$1 name=$2
	start_openssl_server "$name" "$flag" -cipher "$legacy_ciphers"
	expect_exit 1 cmicro tls check "127.0.0.1:$server_port" --ca ossl-ca.pem
	expect_in out.txt "reason:        protocol_version"
	expect_in out.txt "peer rejected TLS 1.2 and later"
	expect_in out.txt "hint:          upgrade the peer to TLS 1.2 or later"
	stop_pid "$server_pid"
}

test_tls_check_tls1_0_server_rejected() {
	check_tls_check_rejects_legacy_server -tls1 check-tls10
}

test_tls_check_tls1_1_server_rejected() {
	check_tls_check_rejects_legacy_server -tls1_1 check-tls11
}

test_tls_check_tls1_2_and_1_3_accepted() {
	local v
	for v in 1.2 1.3; do
		start_openssl_server "check-$v" "-tls${v/./_}"
		expect_exit 0 cmicro tls check "127.0.0.1:$server_port" --ca ossl-ca.pem \
			--no-system-roots
		expect_in out.txt "protocol:      TLSv$v"
		stop_pid "$server_pid"
	done
}

# OpenSSL 3 drops SSLv3 at build time unless configured with enable-ssl3;
# such a build has no -ssl3 option, so no SSLv3 hello can be made here.
test_sub_sslv3_client_rejected() {
	if ! openssl s_client -help 2>&1 | grep -q -- '^ *-ssl3 '; then
		skip_case "${FUNCNAME[0]}" \
			"$(openssl version | cut -d" " -f1-2) has no -ssl3 option (built without SSLv3), so no SSLv3 client can be made"
		return
	fi
	start_sub sub-ssl3 || return
	probe sub-ssl3.txt "$sub_port" -ssl3 -cipher "$legacy_ciphers"
	expect_in sub-ssl3.txt "Cipher is (NONE)"
	stop_pid "$sub_pid"
}

# MICRO_TLS_MIN_VERSION=1.3 raises the floor on both sides: a subscriber
# rejects a TLS 1.2 client and a publisher rejects a TLS 1.2 server.
test_min_version_1_3_rejects_1_2_peer() {
	expect_exit 0 env MICRO_TLS_MIN_VERSION=1.3 "$CMICRO_BIN" tls config
	expect_in out.txt "minimum version:    TLS 1.3"

	start_sub min13 MICRO_TLS_MIN_VERSION=1.3 || return
	probe min13-12.txt "$sub_port" -tls1_2
	expect_in min13-12.txt "alert protocol version"
	expect_in min13-12.txt "Cipher is (NONE)"
	probe min13-13.txt "$sub_port" -tls1_3
	expect_in min13-13.txt "New, TLSv1.3, Cipher is "
	wait_for min13.err "HTTP-TLS-HANDSHAKE"
	expect_in min13.err "peer offered only TLS 1.2; the minimum is TLS 1.3"
	stop_pid "$sub_pid"

	start_version_server min13-server 1.2
	seed_node min13-node topic-min13-server "$server_port"
	expect_exit 1 env MICRO_TLS_MIN_VERSION=1.3 "$CMICRO_BIN" pub topic-min13-server \
		"to a TLS 1.2 server" --wait --timeout 2
	expect_in out.txt "(tls protocol_version)"
	expect_in out.txt "the minimum is TLS 1.3"
	expect_not_in min13-server.log "POST"
	stop_pid "$server_pid"
}

# A TLS 1.2 client that asks for renegotiation (the s_client command "R")
# gets a no_renegotiation alert, and the subscriber still serves the next
# client. OpenSSL 3 servers reject client renegotiation unless configured
# with -client_renegotiation, so the same client first renegotiates with
# such a server: the check can then tell a rejection from a client that
# never requested one.
test_sub_renegotiation_rejected() {
	start_openssl_server reneg-control -tls1_2 -client_renegotiation
	{ echo R; sleep 2; } | timeout 10 openssl s_client -connect "127.0.0.1:$server_port" \
		-tls1_2 >reneg-control.txt 2>&1
	expect_in reneg-control.txt "RENEGOTIATING"
	expect_not_in reneg-control.txt "no renegotiation"
	stop_pid "$server_pid"

	start_sub reneg || return
	{ echo R; sleep 2; } | timeout 10 openssl s_client -connect "127.0.0.1:$sub_port" \
		-tls1_2 >reneg.txt 2>&1
	expect_in reneg.txt "New, TLSv1.2, Cipher is "
	expect_in reneg.txt "RENEGOTIATING"
	expect_in reneg.txt "no renegotiation"
	post_message "$sub_port" "$sub_node" topic-reneg "after renegotiation" reneg-post.txt
	expect_in reneg-post.txt "HTTP 200"
	wait_for reneg.out "after renegotiation"
	expect_in reneg.out "after renegotiation"
	stop_pid "$sub_pid"
}

# NOTE: Debian's OpenSSL 3 is built without zlib, so here the s_client line
# reads NONE whatever cmicro sets. test_tls_hardening.c checks
# SSL_OP_NO_COMPRESSION on the contexts themselves.
test_sub_compression_none() {
	local v
	start_sub compress || return
	for v in 1.2 1.3; do
		probe "compress-$v.txt" "$sub_port" "-tls${v/./_}"
		expect_in "compress-$v.txt" "New, TLSv$v, Cipher is "
		expect_in "compress-$v.txt" "Compression: NONE"
	done
	stop_pid "$sub_pid"
}

# --- private key file modes -------------------------------------------------------

# key_copy MODE: a copy of cm-node.key with MODE, named key-MODE.key.
key_copy() {
	cp cm-node.key "key-$1.key" && chmod "$1" "key-$1.key"
}

# expect_key_mode_warning FILE KEY: the TLS-KEY-MODE warning names KEY and the fix.
expect_key_mode_warning() {
	expect_in "$1" "TLS-KEY-MODE"
	expect_in "$1" "$2"
	expect_in "$1" "chmod 600 $2"
}

test_sub_readable_key_warned() {
	local mode
	for mode in 640 604 644; do
		key_copy "$mode"
		start_sub "keymode-$mode" MICRO_TLS_CERT_FILE="$work/cm-node.pem" \
			MICRO_TLS_KEY_FILE="$work/key-$mode.key" || continue
		expect_key_mode_warning "keymode-$mode.err" "$work/key-$mode.key"
		stop_pid "$sub_pid"
	done
}

test_sub_private_key_not_warned() {
	key_copy 600
	start_sub keymode-600 MICRO_TLS_CERT_FILE="$work/cm-node.pem" \
		MICRO_TLS_KEY_FILE="$work/key-600.key" || return
	expect_not_in keymode-600.err "TLS-KEY-MODE"
	stop_pid "$sub_pid"
}

test_tls_config_readable_key_warned() {
	key_copy 640
	key_copy 600
	expect_exit 0 env MICRO_TLS_CERT_FILE="$work/cm-node.pem" \
		MICRO_TLS_KEY_FILE="$work/key-640.key" "$CMICRO_BIN" tls config
	expect_key_mode_warning err.txt "$work/key-640.key"
	expect_exit 0 env MICRO_TLS_CERT_FILE="$work/cm-node.pem" \
		MICRO_TLS_KEY_FILE="$work/key-600.key" "$CMICRO_BIN" tls config
	expect_not_in err.txt "TLS-KEY-MODE"
}

test_tls_check_readable_key_warned() {
	key_copy 604
	key_copy 600
	start_openssl_server keymode-check -tls1_3
	expect_exit 0 cmicro tls check "127.0.0.1:$server_port" --ca ossl-ca.pem \
		--cert cm-node.pem --key key-604.key
	expect_key_mode_warning err.txt "key-604.key"
	expect_exit 0 cmicro tls check "127.0.0.1:$server_port" --ca ossl-ca.pem \
		--cert cm-node.pem --key key-600.key
	expect_not_in err.txt "TLS-KEY-MODE"
	stop_pid "$server_pid"
}

# --- secrets ---------------------------------------------------------------------

passphrase="hardening-passphrase-Zq81xv"

# Makes encrypted copies of the CA key (PKCS#8 and the traditional PEM form
# with DEK-Info) and of a node key, and damaged node and CA keys. Collects
# every PEM body line of these keys, plain and encrypted, in
# secret-lines.txt, because none of them may appear in any output.
make_secret_keys() {
	openssl pkcs8 -topk8 -v2 aes-256-cbc -in ca.key -out ca-pkcs8.key \
		-passout "pass:$passphrase" &&
		openssl ec -in ca.key -aes256 -out ca-trad.key -passout "pass:$passphrase" 2>/dev/null &&
		openssl pkcs8 -topk8 -v2 aes-256-cbc -in cm-node.key -out node-enc.key \
			-passout "pass:$passphrase" ||
		{ fail "cannot encrypt the test keys with the openssl CLI"; return 1; }
	chmod 600 ca-pkcs8.key ca-trad.key node-enc.key
	# Line 2 of the body is replaced by base64 of other bytes: the file is
	# still PEM, but the key inside it cannot be decoded.
	sed '3s/^.\{16\}/AAAAAAAAAAAAAAAA/' ca-pkcs8.key >ca-damaged.key
	sed '3s/^.\{16\}/AAAAAAAAAAAAAAAA/' node-enc.key >node-damaged.key
	# A copy cut short after two body lines, as an interrupted copy leaves it.
	head -n 3 node-enc.key >node-truncated.key
	chmod 600 ca-damaged.key node-damaged.key node-truncated.key
	cat ca.key ca-pkcs8.key ca-trad.key cm-node.key node-enc.key |
		grep -v -e '^-----' -e '^Proc-Type:' -e '^DEK-Info:' -e '^$' | sort -u >secret-lines.txt
}

# expect_no_secret FILE...: no file contains the passphrase or a line of a
# key body (separate checks), and none contains a private key's PEM armor.
expect_no_secret() {
	local f
	for f in "$@"; do
		[ -e "$f" ] || continue
		checks=$((checks + 1))
		if grep -qF -- "$passphrase" "$f"; then
			fail "$f contains the key passphrase: $(grep -F -- "$passphrase" "$f")"
		fi
		checks=$((checks + 1))
		if grep -qF -f secret-lines.txt -- "$f"; then
			fail "$f contains a line of a private key: $(grep -F -f secret-lines.txt -- "$f" | head -3)"
		fi
	done
}

expect_no_key_label() {
	local f
	for f in "$@"; do
		[ -e "$f" ] && expect_not_in "$f" "PRIVATE KEY-----"
	done
}

# debug_run NAME EXPECTED_EXIT CMD...: runs CMD at log level debug with the
# passphrase in CA_PASS and MICRO_TLS_KEY_PASSWORD, output in NAME.out and
# NAME.err. cmicro reads no MICRO_TLS_KEY_PASSWORD (node keys must be
# unencrypted), so it is set only to catch an environment dump.
debug_run() {
	local name=$1 want=$2
	shift 2
	expect_exit "$want" env CMICRO_LOG_LEVEL=debug CA_PASS="$passphrase" \
		MICRO_TLS_KEY_PASSWORD="$passphrase" "$@"
	mv out.txt "$name.out"
	mv err.txt "$name.err"
	secret_outputs+=("$name.out" "$name.err")
}

secret_outputs=()

issue_with() { # NAME EXIT CA_KEY [cert issue options...]
	local name=$1 want=$2 key=$3
	shift 3
	debug_run "$name" "$want" "$CMICRO_BIN" cert issue --ca-cert ca.pem --ca-key "$key" \
		--out-cert "$name.pem" --out-key "$name.key" "$@" 127.0.0.1
	secret_outputs+=("$name.pem")
}

# Runs every command that handles a secret, on success and failure paths,
# and keeps their outputs for the two cases below.
test_secret_commands_exit_as_expected() {
	make_secret_keys || return 1
	issue_with issue-pkcs8 0 ca-pkcs8.key --ca-pass-env CA_PASS
	expect_in issue-pkcs8.out "created certificate"
	issue_with issue-trad 0 ca-trad.key --ca-pass-env CA_PASS
	expect_in issue-trad.out "created certificate"
	issue_with issue-unset 2 ca-pkcs8.key --ca-pass-env UNSET_PASS
	issue_with issue-nopass 2 ca-pkcs8.key
	issue_with issue-damaged 2 ca-damaged.key --ca-pass-env CA_PASS
	# The wrong passphrase contains the right one, so echoing it is caught too.
	WRONG_PASS="not-$passphrase" issue_with issue-badpass 2 ca-pkcs8.key \
		--ca-pass-env WRONG_PASS
	expect_in issue-badpass.err "could not be decrypted"
	debug_run inspect-key 2 "$CMICRO_BIN" cert inspect ca-pkcs8.key

	local node_env=(MICRO_TLS_CERT_FILE="$work/cm-node.pem")
	debug_run sub-enc 2 env "${node_env[@]}" MICRO_TLS_KEY_FILE="$work/node-enc.key" \
		"$CMICRO_BIN" sub topic-secret
	expect_in sub-enc.err "is encrypted"
	debug_run sub-damaged 2 env "${node_env[@]}" MICRO_TLS_KEY_FILE="$work/node-damaged.key" \
		"$CMICRO_BIN" sub topic-secret
	debug_run sub-truncated 2 env "${node_env[@]}" \
		MICRO_TLS_KEY_FILE="$work/node-truncated.key" "$CMICRO_BIN" sub topic-secret
	debug_run pub-enc 2 env "${node_env[@]}" MICRO_TLS_KEY_FILE="$work/node-enc.key" \
		"$CMICRO_BIN" pub topic-secret "with an encrypted key"
	debug_run config-enc 2 env "${node_env[@]}" MICRO_TLS_KEY_FILE="$work/node-enc.key" \
		"$CMICRO_BIN" tls config
	debug_run config-damaged 2 env "${node_env[@]}" \
		MICRO_TLS_KEY_FILE="$work/node-damaged.key" "$CMICRO_BIN" tls config

	# A subscriber and a publisher that load the plain key and exchange a
	# message in secure mode, with every debug line.
	local secure_env=(MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$work/ca.pem"
		"${node_env[@]}" MICRO_TLS_KEY_FILE="$work/key-600.key")
	key_copy 600
	start_sub secret-sub CMICRO_LOG_LEVEL=debug MICRO_TLS_KEY_PASSWORD="$passphrase" \
		"${secure_env[@]}" || return 1
	debug_run secret-pub 0 env "${secure_env[@]}" "$CMICRO_BIN" pub topic-secret-sub \
		"secret-free message" --wait
	wait_for secret-sub.out "secret-free message"
	expect_in secret-sub.out "secret-free message"
	stop_pid "$sub_pid"
	secret_outputs+=(secret-sub.out secret-sub.err "$MICRO_REGISTRY_ADDRESS"
		"$MICRO_REGISTRY_ADDRESS-wal")
}

test_no_passphrase_or_key_line_in_output() {
	[ -s secret-lines.txt ] || { fail "no key lines were collected"; return; }
	expect_no_secret "${secret_outputs[@]}"
}

# Loggers and secret scanners match this text to find leaked keys, so no
# message may contain it, not even as the name of a PEM block.
test_no_private_key_label_in_output() {
	expect_no_key_label "${secret_outputs[@]}"
}

# In a sanitizer build every cmicro process above reports memory and
# undefined-behaviour errors on its stderr, which the cases kept in files.
test_no_sanitizer_report() {
	local f
	for f in *.err *.txt *.out; do
		[ -e "$f" ] || continue
		checks=$((checks + 1))
		if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
			fail "$f contains a sanitizer report: $(grep -E -A5 'Sanitizer|runtime error:' "$f" | head -20)"
		fi
	done
}

# --- run -------------------------------------------------------------------------

make_certs
run_case test_sub_tls1_0_client_rejected
run_case test_sub_tls1_1_client_rejected
run_case test_sub_sslv3_client_rejected
run_case test_sub_tls1_2_and_1_3_clients_served
run_case test_pub_tls1_0_server_rejected
run_case test_pub_tls1_1_server_rejected
run_case test_pub_tls1_2_and_1_3_servers_served
run_case test_tls_check_tls1_0_server_rejected
run_case test_tls_check_tls1_1_server_rejected
run_case test_tls_check_tls1_2_and_1_3_accepted
run_case test_min_version_1_3_rejects_1_2_peer
run_case test_sub_renegotiation_rejected
run_case test_sub_compression_none
run_case test_sub_readable_key_warned
run_case test_sub_private_key_not_warned
run_case test_tls_config_readable_key_warned
run_case test_tls_check_readable_key_warned
run_case test_secret_commands_exit_as_expected
run_case test_no_passphrase_or_key_line_in_output
run_case test_no_private_key_label_in_output
run_case test_no_sanitizer_report

echo "$skips skipped"
if [ ${#case_failed[@]} -gt 0 ]; then
	echo "failed cases: ${case_failed[*]}"
fi
checks_finish
