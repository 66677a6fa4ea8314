# Helpers shared by the fault-injection tests (sourced after pubsub_common.sh,
# not run). Publishers read one message per line from a FIFO that the test
# writes, so a fault can be injected between two messages.
PUB_FDS=()
KNOWN_BUGS=0

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_count FILE PATTERN N [LIMIT_S]: waits until N lines of FILE match.
wait_count() {
	local file=$1 pattern=$2 want=$3 limit=${4:-60} i
	for ((i = 0; i < limit * 10; i++)); do
		[ "$(grep -c -- "$pattern" "$file" || true)" -ge "$want" ] && return 0
		sleep 0.1
	done
	fail "fewer than $want lines matching \"$pattern\" in $file within ${limit}s"
}

# known_bug TEXT: records a failed check that names a library bug, and lets
# the test go on so that the documented outcome is still checked after it.
known_bug() {
	echo "FAIL (library bug): $*" >&2
	KNOWN_BUGS=$((KNOWN_BUGS + 1))
}

# close_pub_fds: closes, in the current (sub)shell, the write ends of every
# publisher FIFO. Every process that may outlive a publisher starts after
# it (etcd too), because one inherited write end keeps that publisher's
# input open forever.
close_pub_fds() {
	local fd
	for fd in "${PUB_FDS[@]}"; do
		eval "exec $fd>&-"
	done
}

# run_bg NAME INPUT CMD...: runs CMD in the background with standard input
# from INPUT and output in NAME.out and NAME.err, and sets PID_NAME (the PID
# of CMD itself, which replaces the subshell).
run_bg() {
	local name=$1 input=$2
	shift 2
	{
		close_pub_fds
		exec "$@"
	} <"$input" >"$WORK/$name.out" 2>"$WORK/$name.err" &
	PIDS+=($!)
	eval "PID_$name=$!"
}

# start_subscriber NAME TOPIC [ARGS...]: cmicro sub, once it is registered.
start_subscriber() {
	local name=$1
	shift
	run_bg "$name" /dev/null "$CMICRO_BIN" sub "$@"
	wait_for "$WORK/$name.err" "^subscribed to" 60
}

# start_pub NAME TOPIC [ARGS...]: cmicro pub TOPIC - reading from a FIFO,
# run through the command in the array PUB_WRAPPER when it is set.
PUB_WRAPPER=()
start_pub() {
	local name=$1 topic=$2 fd
	shift 2
	mkfifo "$WORK/$name.in"
	run_bg "$name" "$WORK/$name.in" "${PUB_WRAPPER[@]}" "$CMICRO_BIN" pub "$topic" - "$@"
	exec {fd}>"$WORK/$name.in"
	PUB_FDS+=("$fd")
	eval "FD_$name=$fd"
}

# pub_send NAME FIRST LAST [DELAY_S]: writes the messages NAME-FIRST to
# NAME-LAST, one per line, with an optional pause after each.
pub_send() {
	local name=$1 first=$2 last=$3 delay=${4:-0} fd i
	eval "fd=\$FD_$name"
	for ((i = first; i <= last; i++)); do
		echo "$name-$i" >&"$fd"
		[ "$delay" = 0 ] || sleep "$delay"
	done
}

# pub_close NAME: ends the publisher's input and waits for its exit status,
# which goes to RC_NAME.
pub_close() {
	local name=$1 fd pid rc=0 kept=() f
	eval "fd=\$FD_$name; pid=\$PID_$name"
	exec {fd}>&-
	for f in "${PUB_FDS[@]}"; do
		[ "$f" = "$fd" ] || kept+=("$f")
	done
	PUB_FDS=("${kept[@]}")
	wait "$pid" || rc=$?
	eval "RC_$name=$rc"
}

# missing_bodies PREFIX FIRST LAST FILE...: prints every body PREFIX-FIRST
# to PREFIX-LAST that is not the last field of some line of the files.
missing_bodies() {
	local prefix=$1 first=$2 last=$3
	shift 3
	awk -v p="$prefix" -v a="$first" -v b="$last" \
		'{ seen[$NF] = 1 } END { for (i = a; i <= b; i++) if (!((p "-" i) in seen)) print p "-" i }' \
		"$@"
}

# duplicate_count FILE...: bodies received more than once (delivery is at
# least once, so a retry after a lost response may repeat a message).
duplicate_count() {
	awk '{ print $NF }' "$@" | sort | uniq -d | wc -l
}

# start_fault_server NAME MODE: a fault_server.py node in MODE; sets
# PORT_NAME. Its requests are logged in NAME.events.
start_fault_server() {
	local name=$1 i
	echo "$2" >"$WORK/$name.mode"
	: >"$WORK/$name.events"
	run_bg "$name" /dev/null python3 "$(dirname "${BASH_SOURCE[0]}")/fault_server.py" \
		"$WORK/$name.mode" "$WORK/$name.events" "$WORK/$name.port"
	for ((i = 0; i < 100; i++)); do
		[ -s "$WORK/$name.port" ] && break
		sleep 0.1
	done
	[ -s "$WORK/$name.port" ] || fail "fault server $name did not start"
	eval "PORT_$name=$(cat "$WORK/$name.port")"
}

# set_mode NAME MODE: switches a fault server to 200, 500 or hang.
set_mode() { echo "$2" >"$WORK/$1.mode.tmp" && mv "$WORK/$1.mode.tmp" "$WORK/$1.mode"; }

# register_node NODE_ID TOPIC PORT: puts a plain-HTTP broker node at
# 127.0.0.1:PORT into the SQLite registry, as another process would, with
# no expiry.
register_node() {
	local doc
	"$CMICRO_BIN" registry ls >/dev/null || fail "cannot open the registry $MICRO_REGISTRY_ADDRESS"
	doc=$(printf '{"name":"micro.http.broker","version":"ff.http.broadcast","metadata":null,"endpoints":[],"nodes":[{"id":"%s","address":"127.0.0.1:%s","metadata":{"broker":"http","topic":"%s","secure":"false"}}]}' \
		"$1" "$3" "$2")
	sqlite3 -cmd ".timeout 5000" "$MICRO_REGISTRY_ADDRESS" \
		"INSERT INTO nodes (service, node_id, version, doc, expires_at) VALUES ('micro.http.broker', '$1', 'ff.http.broadcast', '$doc', 0);" ||
		fail "cannot register node $1"
}

# deliveries NAME: the bodies that fault server NAME responded to with 200.
deliveries() { grep '^200 ' "$WORK/$1.events" || true; }
