#!/usr/bin/env bash
# Splits the CPU time per message of one publisher and subscriber pair into
# user and system time and counts context switches, for cmicro with handler
# threads, cmicro with inline handlers and the Go peer (docs/benchmarks.md,
# "Profile").
#
# usage: bench/cpustat.sh [--count N] [--size BYTES] [--inflight N]
#
#   --count N      messages of each pair (default 20000)
#   --size BYTES   payload size (default 64)
#   --inflight N   results outstanding (default 8)
#
# Each process runs under `perf stat -e task-clock,context-switches,
# user_time,system_time`; start-up is included and divided by the count.
# The msg/s column is the rate the subscriber measured (its RESULT line).
# Needs perf (linux-perf) and the peers of bench/setup.sh; builds into
# BENCH_BUILD_DIR (default build-bench).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD_DIR:-$src/build-bench}
count=20000
size=64
inflight=8

while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=${2:-}; shift 2 || true ;;
	--size) size=${2:-}; shift 2 || true ;;
	--inflight) inflight=${2:-}; shift 2 || true ;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "cpustat: unknown option \"$1\"; see bench/cpustat.sh --help" >&2
		exit 2
		;;
	esac
done
for v in "$count" "$size" "$inflight"; do
	case "$v" in
	'' | *[!0-9]* | 0)
		echo "cpustat: \"$v\" is not a positive number" >&2
		exit 2
		;;
	esac
done
if ! command -v perf >/dev/null 2>&1; then
	echo "cpustat: perf is missing; run bench/setup.sh" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cmicro-cpustat.XXXXXX")
keep_work=0
client_timeout=120

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

stat_cmd=(perf stat -x, -e task-clock,context-switches,user_time,system_time -o)

# Prints one row from the perf stat file of a process; $3 is the rate that
# the subscriber measured, or "-".
cpustat_row() {
	awk -F, -v n="$count" -v who="$2" -v rate="$3" '
		$3 == "task-clock" { t = $1 } $3 == "context-switches" { c = $1 }
		$3 == "user_time" { u = $1 } $3 == "system_time" { s = $1 }
		END { printf "| %s | %.1f | %.1f | %.1f | %.2f | %s |\n", who, t * 1000 / n,
			u / 1000 / n, s / 1000 / n, c / n, rate }' "$1"
}

# Runs one pair; the subscriber and publisher commands are in sub_cmd and
# pub_cmd, where @URL@ stands for the subscriber's address.
cpustat_pair() {
	local name=$1 p=$work/$1 sub_pid url i
	bench_start "$p.sub" "${stat_cmd[@]}" "$p.sub.perf" "${sub_cmd[@]}"
	sub_pid=$bench_last_pid
	bench_wait_line "$p.sub.out" '^READY' ||
		bench_die "the $name subscriber did not start; see $p.sub.err"
	url=$(sed -n 's/.*url=\([^ ]*\).*/\1/p' "$p.sub.out" | head -1)
	for i in "${!pub_cmd[@]}"; do
		[ "${pub_cmd[$i]}" = "@URL@" ] && pub_cmd[i]=$url
	done
	timeout -k 5 "$client_timeout" "${stat_cmd[@]}" "$p.pub.perf" "${pub_cmd[@]}" \
		>"$p.pub.out" 2>"$p.pub.err" || true
	bench_join "$sub_pid"
	grep -q '^RESULT' "$p.sub.out" || bench_die "the $name pair did not finish; see $p.sub.err"
	cpustat_row "$p.pub.perf" "$name publisher" -
	cpustat_row "$p.sub.perf" "$name subscriber" \
		"$(sed -n 's/^RESULT.* rate=\([0-9]*\).*/\1/p' "$p.sub.out" | head -1)"
}

bench_build
bench_certs
echo "$count messages of $size B, $inflight in flight; per message:"
echo
echo "| process | CPU us | user us | system us | context switches | msg/s |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for mode in false true; do
	name=cmicro
	[ "$mode" = true ] && name=cmicro-inline
	rm -f "$work/$name.db"
	sub_cmd=(env "MICRO_BROKER_INLINE_HANDLERS=$mode" "$bin/cmicro_bench_sub" "$tls/ca.pem"
		"$tls/node.pem" "$tls/node.key" "$work/$name.db" bench "$count" "$client_timeout")
	pub_cmd=("$bin/cmicro_bench_pub" "$tls/ca.pem" "$tls/node.pem" "$tls/node.key"
		"$work/$name.db" bench "$count" "$size" "$inflight" "$client_timeout")
	cpustat_pair "$name"
done
sub_cmd=("$bin/gobroker" sub "$tls/node.pem" "$tls/node.key" "$count" "$client_timeout")
pub_cmd=("$bin/gobroker" pub "$tls/ca.pem" @URL@ "$count" "$size" "$inflight" "$client_timeout")
cpustat_pair go
