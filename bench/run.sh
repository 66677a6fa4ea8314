#!/usr/bin/env bash
# Benchmarks cmicro's HTTPS broker against its peers on this machine and
# prints the tables of docs/benchmarks.md.
#
# usage: bench/run.sh [--runs N] [--quick] [--out DIR]
#
#   --runs N   repeat every measurement N times (default 3); the tables show
#              the median and the range of the runs
#   --quick    smaller message counts, for checking the harness
#   --out DIR  keep raw results and logs in DIR (default: a temporary
#              directory, removed at the end)
#
# Every server listens on a free 127.0.0.1 port and is stopped by PID when the
# script ends, also on failure or Ctrl-C. Every client has a hard time limit.
# bench/setup.sh installs the peers (golang-go, mosquitto, nats-server,
# nginx, wrk); scripts/bootstrap.sh installs cmicro's build dependencies.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD_DIR:-$src/build-bench}
runs=3
quick=0
out=""

while [ $# -gt 0 ]; do
	case "$1" in
	--runs)
		runs=${2:-}
		shift 2 || true
		;;
	--quick)
		quick=1
		shift
		;;
	--out)
		out=${2:-}
		shift 2 || true
		;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "bench: unknown option \"$1\"; see bench/run.sh --help" >&2
		exit 2
		;;
	esac
done
case "$runs" in
'' | *[!0-9]*)
	echo "bench: --runs \"$runs\" is not a number from 1 to 20" >&2
	exit 2
	;;
esac
if [ "$runs" -lt 1 ] || [ "$runs" -gt 20 ]; then
	echo "bench: --runs \"$runs\" is not a number from 1 to 20" >&2
	exit 2
fi

# Messages per cell: at concurrency 1 a run is bound by latency, so it gets
# fewer. Sized so that three runs of every cell, with the handshake and idle
# measurements, take about four minutes on 2 cores.
if [ "$quick" -eq 1 ]; then
	count_c1=500
	count=2000
	wrk_seconds=1
	hs_seconds=1
else
	count_c1=3000
	count=12000
	wrk_seconds=3
	hs_seconds=3
fi
client_timeout=40 # seconds; each publisher and subscriber gives up after it
payloads=(64 4096)
inflights=(1 8 64)

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"

if [ -n "$out" ]; then
	mkdir -p "$out"
	work=$(cd "$out" && pwd)
	keep_work=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/cmicro-bench.XXXXXX")
	keep_work=0
fi
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_check_tools
bench_build
bench_certs
bench_machine_info >"$work/machine.txt"

results="$work/results.tsv"
printf 'run\tsystem\tpayload\tinflight\trate\tcpu100k\tsub_rss_kb\tpub_rss_kb\tsrv_rss_kb\tp50_us\tp99_us\tstatus\n' \
	>"$results"
handshakes="$work/handshakes.tsv"
printf 'run\tserver\tmode\tconnections\treused\tseconds\tserver_cpu_s\n' >"$handshakes"
idle="$work/idle.tsv"
printf 'run\tsystem\trss_kb\n' >"$idle"

for run in $(seq 1 "$runs"); do
	echo "bench: run $run of $runs (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	if awk '{ exit !($1 >= 1.5) }' /proc/loadavg; then
		echo "bench: warning: load average is 1.5 or more, so other work shares the CPUs" \
			"and the numbers of this run are noisy" >&2
	fi
	echo "$run $(cut -d' ' -f1-3 /proc/loadavg)" >>"$work/load.txt"
	for payload in "${payloads[@]}"; do
		for inflight in "${inflights[@]}"; do
			n=$count
			[ "$inflight" -eq 1 ] && n=$count_c1
			for system in cmicro cmicro-inline go mosquitto-qos0 mosquitto-qos1 nats nginx; do
				bench_cell "$run" "$system" "$payload" "$inflight" "$n" >>"$results"
			done
		done
	done
	bench_handshakes "$run" >>"$handshakes"
	bench_idle "$run" >>"$idle"
done

echo "# cmicro benchmark"
echo
if [ "$quick" -eq 1 ]; then
	echo "Quick run: $count_c1 messages at 1 in flight, $count at 8 and 64, wrk and s_time"
	echo "for $wrk_seconds s. Start-up weighs more in these counts, so CPU per message is"
	echo "higher than in a full run; use a full run to judge the targets."
	echo
fi
sed 's/^/    /' "$work/machine.txt"
echo "    load average before each run: $(awk '{ printf "%s%s", sep, $2; sep = ", " }' "$work/load.txt")"
echo
awk -f "$src/bench/summarize.awk" "$results" "$handshakes" "$idle"
if [ "$keep_work" -eq 1 ]; then
	echo "bench: raw results and logs in $work" >&2
fi
