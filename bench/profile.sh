#!/usr/bin/env bash
# Counts instructions, heap allocations and system calls per message of the
# cmicro benchmark publisher and subscriber (see docs/benchmarks.md).
#
# usage: bench/profile.sh [--count N] [--size BYTES] [--inflight N] [--out DIR]
#
#   --count N      messages of the run (default 3000)
#   --size BYTES   payload size (default 64)
#   --inflight N   results outstanding (default 8)
#   --out DIR      keep the callgrind and strace files in DIR (default: a
#                  temporary directory, removed at the end)
#
# Three bounded runs: the publisher under valgrind's callgrind with the
# subscriber native, then the reverse, then both native under strace -c -f.
# Instruction counts include start-up and are divided by the message count.
# Needs valgrind and strace; builds into BENCH_BUILD_DIR (default build-bench).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD_DIR:-$src/build-bench}
count=3000
size=64
inflight=8
out=""

while [ $# -gt 0 ]; do
	case "$1" in
	--count) count=${2:-}; shift 2 || true ;;
	--size) size=${2:-}; shift 2 || true ;;
	--inflight) inflight=${2:-}; shift 2 || true ;;
	--out) out=${2:-}; shift 2 || true ;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "profile: unknown option \"$1\"; see bench/profile.sh --help" >&2
		exit 2
		;;
	esac
done
for v in "$count" "$size" "$inflight"; do
	case "$v" in
	'' | *[!0-9]*)
		echo "profile: \"$v\" is not a positive number" >&2
		exit 2
		;;
	esac
done
for tool in valgrind callgrind_annotate strace; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "profile: $tool is missing; run bench/setup.sh" >&2; exit 1; }
done

if [ -n "$out" ]; then
	mkdir -p "$out"
	work=$(cd "$out" && pwd)
	keep_work=1
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/cmicro-profile.XXXXXX")
	keep_work=0
fi
client_timeout=120 # seconds; valgrind slows a process about 50 times

# shellcheck source=bench/lib.sh
. "$src/bench/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

profile_build() {
	local libs flags=(-O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$src/include")
	echo "profile: building in $build" >&2
	cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
		-DCMICRO_BUILD_TESTS=OFF >"$work/build.log" 2>&1 &&
		cmake --build "$build" --target cmicro_static cmicro_cli >>"$work/build.log" 2>&1 ||
		bench_die "building cmicro failed; see $work/build.log"
	bin=$build/bench
	mkdir -p "$bin"
	libs="$build/libcmicro.a $(pkg-config --libs libssl libcrypto libevent_openssl \
		libevent_pthreads libevent jansson sqlite3) -lpthread"
	# shellcheck disable=SC2086
	{
		cc "${flags[@]}" -o "$bin/cmicro_bench_sub" "$src/bench/cmicro_bench_sub.c" $libs &&
			cc "${flags[@]}" -o "$bin/cmicro_bench_pub" "$src/bench/cmicro_bench_pub.c" $libs
	} >>"$work/build.log" 2>&1 || bench_die "building the benchmark programs failed"
}

# Runs one subscriber and one publisher; $1 and $2 prefix the commands of
# each (valgrind, strace or nothing).
profile_pair() {
	local name=$1 sub_wrap=$2 pub_wrap=$3 p sub_pid
	p=$work/$name
	rm -f "$p.db"
	# shellcheck disable=SC2086
	timeout -k 5 "$client_timeout" $sub_wrap "$bin/cmicro_bench_sub" "$tls/ca.pem" \
		"$tls/node.pem" "$tls/node.key" "$p.db" bench "$count" "$client_timeout" \
		>"$p.sub.out" 2>"$p.sub.err" &
	sub_pid=$!
	bench_pids+=("$sub_pid")
	bench_wait_line "$p.sub.out" '^READY' || sleep 20
	grep -q '^READY' "$p.sub.out" || bench_die "the subscriber did not start; see $p.sub.err"
	# shellcheck disable=SC2086
	timeout -k 5 "$client_timeout" $pub_wrap "$bin/cmicro_bench_pub" "$tls/ca.pem" \
		"$tls/node.pem" "$tls/node.key" "$p.db" bench "$count" "$size" "$inflight" \
		"$client_timeout" >"$p.pub.out" 2>"$p.pub.err" || true
	bench_join "$sub_pid"
	grep -q "ok=$count failed=0" "$p.pub.err" ||
		echo "profile: warning: the $name run did not deliver every message; see $p.pub.err" >&2
}

# Prints how many times per message each of the named functions was called,
# summed over every caller, from a callgrind file.
profile_calls() {
	local file=$1
	shift
	awk -v n="$count" -v want="$*" '
		BEGIN { split(want, w, " "); for (i in w) wanted[w[i]] = 1 }
		/^cfn=/ {
			id = $1; sub(/^cfn=/, "", id); name = ""
			if (match($0, /\) .*/)) { name = substr($0, RSTART + 2); names[id] = name }
			else if (id in names) name = names[id]
			else { name = id; sub(/^\([0-9]+\) */, "", name) }
			current = name
			next
		}
		/^fn=/ {
			id = $1; sub(/^fn=/, "", id)
			if (match($0, /\) .*/)) names[id] = substr($0, RSTART + 2)
			next
		}
		/^calls=/ {
			split($1, c, "="); if (current in wanted) total[current] += c[2]
			current = ""
		}
		END { for (f in total) printf "  %-14s %6.1f\n", f, total[f] / n }' "$file"
}

profile_build
bench_certs

echo "profile: publisher under callgrind" >&2
profile_pair pub "" "valgrind --tool=callgrind --callgrind-out-file=$work/pub.callgrind"
echo "profile: subscriber under callgrind" >&2
profile_pair sub "valgrind --tool=callgrind --callgrind-out-file=$work/sub.callgrind" ""
echo "profile: both under strace -c -f" >&2
profile_pair strace "strace -c -f -o $work/sub.strace" "strace -c -f -o $work/pub.strace"

mode=""
case "${MICRO_BROKER_INLINE_HANDLERS:-}" in
true | TRUE | True | 1 | yes | on) mode=", inline handlers" ;;
esac
for role in pub sub; do
	callgrind_annotate --inclusive=yes "$work/$role.callgrind" >"$work/$role.inclusive.txt" \
		2>/dev/null
	callgrind_annotate "$work/$role.callgrind" >"$work/$role.self.txt" 2>/dev/null
	echo "== $role ($count messages of $size B, $inflight in flight$mode)"
	awk -v n="$count" '/PROGRAM TOTALS/ { gsub(",", "", $1);
		printf "instructions per message: %.0f\n", $1 / n }' "$work/$role.self.txt"
	echo "heap calls per message:"
	profile_calls "$work/$role.callgrind" malloc calloc realloc
	echo "free calls per message (free(NULL) included): $(profile_calls \
		"$work/$role.callgrind" free | awk '{ print $2 }')"
	echo "system calls per message:"
	awk -v n="$count" '$1 ~ /^[0-9.]+$/ && NF >= 5 {
		calls = $4; name = $NF; if (name != "total" && calls / n >= 0.1)
		printf "  %-14s %6.2f\n", name, calls / n }' "$work/$role.strace"
done
if [ "$keep_work" -eq 1 ]; then
	echo "profile: callgrind files in $work (callgrind_annotate FILE)" >&2
else
	echo "profile: pass --out DIR to keep the callgrind files" >&2
fi
