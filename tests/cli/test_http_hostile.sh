#!/usr/bin/env bash
# A running `cmicro sub`, over plain HTTP and over HTTPS, against malformed
# and abusive clients (hostile_client.py, raw sockets on 127.0.0.1). Each
# case gets its 4xx status or a closed connection and is logged once per
# client and reason. A normal `cmicro pub` to the same subscriber is
# delivered after it. Slow, stalled and idle clients are closed after the read timeout
# (10 s, the default), with a warning only for the ones that stalled.
source "$(dirname "$0")/pubsub_common.sh"
CLIENT="$(dirname "$0")/hostile_client.py"
export CMICRO_LOG_LEVEL=debug
make_ca
failures=0

check() { # check WHAT: counts a failed condition without stopping the run
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# hostile NAME CASE: runs one case against subscriber NAME, output in $WORK/NAME-CASE.txt.
hostile() {
	local name=$1 case=$2 ca=()
	local addr node
	addr=$(sub_addr "$name")
	node=$(sub_node "$name")
	[ "$name" = tls ] && ca=(--ca "$WORK/ca.pem")
	timeout 60 python3 "$CLIENT" "${ca[@]}" "${addr%:*}" "${addr##*:}" "$node" "$case" \
		>"$WORK/$name-$case.txt" 2>&1 || check "$name $case: the client failed: $(cat "$WORK/$name-$case.txt")"
}

# expect_case NAME CASE STATUS BODY: the last status of CASE, its body and the close.
expect_case() {
	local name=$1 case=$2 status=$3 body=$4 out="$WORK/$1-$2.txt"
	hostile "$name" "$case"
	grep -qx "status $status" "$out" || check "$name $case: expected status $status, got: $(cat "$out")"
	grep -qF -- "$body" "$out" || check "$name $case: the reply does not say \"$body\": $(cat "$out")"
	grep -qx closed "$out" || check "$name $case: the connection stayed open: $(cat "$out")"
}

# expect_delivered NAME TEXT: cmicro pub TEXT reaches subscriber NAME.
expect_delivered() {
	"$CMICRO_BIN" pub hostile "$2" --timeout 20 >"$WORK/pub.out" 2>"$WORK/pub.err" ||
		check "$1: cmicro pub \"$2\" failed: $(cat "$WORK/pub.err")"
	wait_for "$WORK/$1.out" " $2\$" 20
}

run_cases() {
	local name=$1
	expect_case "$name" cl_te 400 "both Content-Length and Transfer-Encoding"
	expect_case "$name" dup_cl_equal 400 "more than one Content-Length"
	expect_case "$name" dup_cl_different 400 "more than one Content-Length"
	expect_case "$name" cl_negative 400 "not a decimal number"
	expect_case "$name" cl_non_numeric 400 "not a decimal number"
	expect_case "$name" huge_header 431 "size limit"
	expect_case "$name" huge_request_line 431 "size limit"
	expect_case "$name" bare_cr_name 400 "bare CR"
	expect_case "$name" bare_cr_value 400 "bare CR"
	expect_case "$name" bare_lf 400 "bare LF"
	# The same bad request again at once, well within the 10 s interval of
	# the rejection log: still rejected, but not logged again.
	expect_case "$name" bare_lf 400 "bare LF"
	expect_case "$name" many_headers 431 "too many header fields"
	expect_case "$name" body_too_big 413 "Too Large"
	expect_case "$name" bad_chunk_size 400 "invalid chunk size"
	expect_case "$name" unknown_method 501 "unknown request method"
	expect_case "$name" pipelined_garbage 400 "control byte in the request line"
	grep -qx "status 200" "$WORK/$name-pipelined_garbage.txt" ||
		check "$name: the valid request before the garbage got no 200"
	hostile "$name" unknown_path
	grep -qx "status 404" "$WORK/$name-unknown_path.txt" ||
		check "$name unknown_path: expected 404, got: $(cat "$WORK/$name-unknown_path.txt")"
	expect_delivered "$name" "after-cases-$name"
}

start_sub plain hostile --plain
MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key" start_sub tls hostile
for name in plain tls; do
	run_cases "$name"
	n=$(grep -c "HTTP-BAD-REQUEST.*bare LF" "$WORK/$name.err" || true)
	[ "$n" -eq 1 ] || check "$name: bare LF was logged $n times, expected once per client and reason"
	n=$(grep -c "HTTP-BAD-REQUEST.*more than one Content-Length" "$WORK/$name.err" || true)
	[ "$n" -eq 1 ] || check "$name: duplicate Content-Length was logged $n times, expected once"
	grep -q "HTTP-BAD-REQUEST.*with 431" "$WORK/$name.err" || check "$name: the 431 was not logged"
	grep -q "HTTP-BAD-REQUEST.*with 413" "$WORK/$name.err" || check "$name: the 413 was not logged"
	grep -q 'HTTP-BAD-REQUEST.*with 501: unknown request method "BREW"' "$WORK/$name.err" ||
		check "$name: the 501 was not logged with the method"
	grep -q "BROKER-REQUEST-REJECTED.*with 404" "$WORK/$name.err" || check "$name: the 404 was not logged"
done

# Timed cases, both subscribers at once: each waits for the read timeout.
timed=()
for name in plain tls; do
	for case in slowloris stall idle; do
		hostile "$name" "$case" &
		timed+=($!)
	done
done
for pid in "${timed[@]}"; do
	wait "$pid" || true
done
for name in plain tls; do
	grep -qx closed "$WORK/$name-slowloris.txt" ||
		check "$name: the slowloris client was not closed: $(cat "$WORK/$name-slowloris.txt")"
	grep -qx closed "$WORK/$name-stall.txt" || check "$name: the stalled client was not closed"
	grep -qx closed "$WORK/$name-idle.txt" || check "$name: the idle client was not closed"
	grep -qx "status 200" "$WORK/$name-idle.txt" || check "$name: the idle client's request failed"
	grep -q "HTTP-IDLE-CLOSE" "$WORK/$name.err" || check "$name: the idle close was not logged at debug"
	n=$(grep -c "HTTP-SLOW-CLIENT" "$WORK/$name.err" || true)
	[ "$n" -ge 1 ] || check "$name: the stalled clients were not logged as HTTP-SLOW-CLIENT"
	# The slowloris and the stalled client come from one host: one line.
	[ "$n" -le 1 ] || check "$name: HTTP-SLOW-CLIENT logged $n times for one client host"
	expect_delivered "$name" "after-timeouts-$name"
done

# A flood of 2000 connections, over max_connections (1024): the extra ones
# are closed at once while a keep-alive client keeps being served.
hostile plain flood2000
out="$WORK/plain-flood2000.txt"
grep -qx "before HTTP/1.1 200 OK" "$out" || check "flood: the request before the flood failed: $(cat "$out")"
grep -qx "during HTTP/1.1 200 OK" "$out" || check "flood: the request during the flood failed: $(cat "$out")"
opened=$(sed -n 's/^opened //p' "$out")
closed=$(sed -n 's/^closed by server //p' "$out")
[ "${opened:-0}" -eq 2000 ] || check "flood: opened ${opened:-0} connections, expected 2000"
[ "${closed:-0}" -ge $((2000 - 1024)) ] ||
	check "flood: the server closed ${closed:-0} connections, expected at least 976 over the limit"
n=$(grep -c "HTTP-CONN-LIMIT" "$WORK/plain.err" || true)
[ "$n" -eq 1 ] || check "flood: HTTP-CONN-LIMIT logged $n times for one client host, expected once"
expect_delivered plain "after-flood"
kill -0 "$PID_plain" || check "the plain subscriber died"
kill -0 "$PID_tls" || check "the tls subscriber died"

stop_sub plain
stop_sub tls
[ "$failures" -eq 0 ] || fail "$failures checks failed"
echo "ok: hostile clients rejected or closed over HTTP and HTTPS, both subscribers kept serving"
