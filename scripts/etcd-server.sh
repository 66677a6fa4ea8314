#!/usr/bin/env bash
# Starts and stops a private etcd server for tests, on loopback ports with
# its data under a directory of the caller's choice.
#
#   etcd-server.sh start DIR CLIENT_PORT PEER_PORT [ETCD_FLAG...]
#       Starts etcd in the background with its data in DIR/data, its log in
#       DIR/etcd.log and its PID in DIR/etcd.pid, then waits (at most
#       ETCD_START_TIMEOUT seconds, default 30) until it serves clients.
#       The client URL is https when the flags contain --cert-file. Flags
#       --name, --initial-cluster and --initial-cluster-state replace the
#       single-member defaults, for a cluster on loopback.
#       ETCD_NO_WAIT=1 returns at once (a cluster member waits for quorum);
#       then use "wait DIR".
#   etcd-server.sh wait DIR
#       Waits until the server of DIR serves clients.
#   etcd-server.sh stop DIR
#       Ends the server of DIR by its PID (SIGTERM, then SIGKILL after 10 s).
set -euo pipefail

die() {
	echo "etcd-server.sh: error: $*" >&2
	exit 1
}

has_flag() {
	local flag=$1 arg
	shift
	for arg in "$@"; do
		[ "${arg%%=*}" = "$flag" ] && return 0
	done
	return 1
}

wait_ready() {
	local dir=$1 limit=${ETCD_START_TIMEOUT:-30} pid i
	pid=$(cat "$dir/etcd.pid")
	for ((i = 0; i < limit * 10; i++)); do
		if grep -q "serving client traffic" "$dir/etcd.log" 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || {
			tail -n 20 "$dir/etcd.log" >&2
			die "etcd (PID $pid) exited during start-up; its log is $dir/etcd.log"
		}
		sleep 0.1
	done
	tail -n 20 "$dir/etcd.log" >&2
	die "etcd (PID $pid) did not serve clients within ${limit}s; its log is $dir/etcd.log"
}

start() {
	local dir=$1 client_port=$2 peer_port=$3 scheme=http
	shift 3
	command -v etcd >/dev/null || die "etcd is not installed; run scripts/bootstrap.sh (package etcd-server)"
	mkdir -p "$dir"
	has_flag --cert-file "$@" && scheme=https
	local flags=(
		--data-dir "$dir/data"
		--listen-client-urls "$scheme://127.0.0.1:$client_port"
		--advertise-client-urls "$scheme://127.0.0.1:$client_port"
		--listen-peer-urls "http://127.0.0.1:$peer_port"
		--initial-advertise-peer-urls "http://127.0.0.1:$peer_port"
		--logger zap --log-outputs stderr
	)
	if ! has_flag --name "$@"; then
		flags+=(--name "node$client_port")
	fi
	if ! has_flag --initial-cluster "$@"; then
		flags+=(--initial-cluster "node$client_port=http://127.0.0.1:$peer_port")
	fi
	etcd "${flags[@]}" "$@" >"$dir/etcd.log" 2>&1 </dev/null &
	echo $! >"$dir/etcd.pid"
	if [ "${ETCD_NO_WAIT:-0}" != 1 ]; then
		wait_ready "$dir"
	fi
	cat "$dir/etcd.pid"
}

stop() {
	local dir=$1 pid i
	[ -f "$dir/etcd.pid" ] || return 0
	pid=$(cat "$dir/etcd.pid")
	rm -f "$dir/etcd.pid"
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
}

case "${1:-}" in
start)
	[ $# -ge 4 ] || die "usage: etcd-server.sh start DIR CLIENT_PORT PEER_PORT [ETCD_FLAG...]"
	shift
	start "$@"
	;;
wait)
	[ $# -eq 2 ] || die "usage: etcd-server.sh wait DIR"
	wait_ready "$2"
	;;
stop)
	[ $# -eq 2 ] || die "usage: etcd-server.sh stop DIR"
	stop "$2"
	;;
*)
	die "usage: etcd-server.sh start|wait|stop DIR ...; see the comment at the top of this script"
	;;
esac
