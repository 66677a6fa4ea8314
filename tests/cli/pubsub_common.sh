# Helpers shared by the pub/sub command-line tests (sourced, not run).
# Every process started here is recorded and ended by its PID on exit.
set -euo pipefail

: "${CMICRO_BIN:?set CMICRO_BIN to the cmicro binary}"
WORK=$(mktemp -d /tmp/cmicro-cli-XXXXXX)
PIDS=()
export MICRO_REGISTRY=sqlite
export MICRO_REGISTRY_ADDRESS="$WORK/registry.db"
unset MICRO_TLS_SECURE MICRO_TLS_INSECURE MICRO_TLS_CA_FILE MICRO_TLS_CERT_FILE \
	MICRO_TLS_KEY_FILE MICRO_BROKER_ADDRESS

cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	for f in "$WORK"/*.err "$WORK"/*.out; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 20 "$f"; } >&2
	done
	exit 1
}

# Waits (at most $3 seconds, default 15) until file $1 contains text $2.
wait_for() {
	local file=$1 text=$2 limit=${3:-15} i
	for ((i = 0; i < limit * 10; i++)); do
		grep -q -- "$text" "$file" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "\"$text\" did not appear in $file within ${limit}s"
}

# start_sub NAME TOPIC [ARGS...]: runs a subscriber in the background with
# the current environment and waits until it is registered.
start_sub() {
	local name=$1
	shift
	"$CMICRO_BIN" sub "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	PIDS+=($!)
	eval "PID_$name=$!"
	wait_for "$WORK/$name.err" "^subscribed to"
}

# stop_sub NAME: SIGTERM, then waits for the clean exit.
stop_sub() {
	local pid
	eval "pid=\$PID_$1"
	kill -TERM "$pid"
	wait "$pid" || fail "subscriber $1 exited with status $? on SIGTERM"
}

# Prints the node id and the address of subscriber NAME.
sub_node() { sed -n 's/^subscribed to .* as node \([^ ]*\) at .*/\1/p' "$WORK/$1.err"; }
sub_addr() { sed -n 's/^subscribed to .* at \([^ ]*\) (.*/\1/p' "$WORK/$1.err"; }

# make_ca: a CA and a certificate for 127.0.0.1 issued by it, with the
# openssl command-line tool (independent of cmicro's own generator).
make_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=cmicro test CA" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$WORK/node.key" -out "$WORK/node.csr" -subj "/CN=127.0.0.1" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' \
		>"$WORK/node.ext"
	openssl x509 -req -in "$WORK/node.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
		-CAcreateserial -days 2 -extfile "$WORK/node.ext" -out "$WORK/node.pem" 2>/dev/null
}

# Counts lines of file $1 that end with body $2.
count_body() { grep -c -- " $2\$" "$1" || true; }
