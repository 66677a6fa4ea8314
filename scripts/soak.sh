#!/usr/bin/env bash
# A bounded soak: publishers and subscribers as separate cmicro processes on
# loopback, over TLS with verification on (MICRO_TLS_SECURE=true, a CA made
# with the openssl command-line tool), sharing an SQLite registry in a
# temporary directory. One broadcast subscriber and a queue group of two
# subscribe to one topic; every publisher sends its share of the messages.
#
# It samples the RSS, the peak RSS and the open file descriptors of every
# process at start and at end. It checks that every message sent reached
# the broadcast subscriber and one member of the queue group. A message
# that its publisher counted as dropped fails the run too.
#
# usage: soak.sh [--messages N] [--seconds S] [--publishers P] [--rate R]
#                [--valgrind] [--keep]
#   --messages N    messages in total, split between the publishers
#                   (default 3000; 300 with --valgrind)
#   --seconds S     time limit for sending; publishers stop early when it
#                   ends, and what they sent is still checked (default 60)
#   --publishers P  publisher processes (default 3)
#   --rate R        messages per second per publisher (default 200)
#   --valgrind      run the subscribers under valgrind memcheck (full leak
#                   check); any error fails the run
#   --keep          keep the work directory with every log
# The binary is CMICRO_BIN, else build/tools/cmicro/cmicro of this tree.
# Exit status: 0 every message accounted for and every process clean, 1 a
# loss, a drop, an error exit or a valgrind error, 2 wrong usage.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
BIN=${CMICRO_BIN:-$here/../build/tools/cmicro/cmicro}
MESSAGES=
SECONDS_LIMIT=60
PUBLISHERS=3
RATE=200
VALGRIND=0
KEEP=0
TOPIC=soak
SUBS=(b1 q1 q2)
PIDS=()
FAILED=0

# Prints the usage text of the header comment, from "usage:" to the end of
# the comment.
usage() {
	sed -n '/^# usage:/,/^[^#]/ { /^#/ s/^# \{0,1\}//p }' "$0"
}

die() {
	echo "soak.sh: error: $*" >&2
	exit 2
}

problem() {
	echo "soak: FAIL: $*" >&2
	FAILED=1
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--messages) MESSAGES=${2:-}; shift 2 ;;
		--seconds) SECONDS_LIMIT=${2:-}; shift 2 ;;
		--publishers) PUBLISHERS=${2:-}; shift 2 ;;
		--rate) RATE=${2:-}; shift 2 ;;
		--valgrind) VALGRIND=1; shift ;;
		--keep) KEEP=1; shift ;;
		-h | --help) usage; exit 0 ;;
		*) die "unknown argument \"$1\"; see soak.sh --help" ;;
		esac
	done
	[ -n "$MESSAGES" ] || MESSAGES=$((VALGRIND ? 300 : 3000))
	local v
	for v in MESSAGES SECONDS_LIMIT PUBLISHERS RATE; do
		[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "${v,,} \"${!v}\" is not a positive whole number"
	done
	[ -x "$BIN" ] || die "cmicro binary $BIN not found; build it or set CMICRO_BIN"
	if [ "$VALGRIND" = 1 ]; then
		command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
		! grep -q AddressSanitizer "$BIN" ||
			die "$BIN is built with AddressSanitizer, which valgrind cannot run; use a gcc build"
	fi
}

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "$KEEP" = 1 ]; then
		echo "soak: logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
}

make_certs() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=cmicro soak CA" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$WORK/node.key" -out "$WORK/node.csr" -subj "/CN=127.0.0.1" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' \
		>"$WORK/node.ext"
	openssl x509 -req -in "$WORK/node.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
		-CAcreateserial -days 2 -extfile "$WORK/node.ext" -out "$WORK/node.pem" 2>/dev/null ||
		die "openssl could not issue the node certificate"
	export MICRO_TLS_SECURE=true MICRO_TLS_CA_FILE="$WORK/ca.pem" \
		MICRO_TLS_CERT_FILE="$WORK/node.pem" MICRO_TLS_KEY_FILE="$WORK/node.key"
	export MICRO_REGISTRY=sqlite MICRO_REGISTRY_ADDRESS="$WORK/registry.db"
	unset MICRO_TLS_INSECURE MICRO_BROKER_ADDRESS MICRO_BROKER_OUTBOX
}

# wait_for FILE TEXT LIMIT_S
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	die "\"$2\" did not appear in $1 within $3 s"
}

# sample NAME WHEN: appends "NAME WHEN rss_kb peak_rss_kb fds" to samples.
sample() {
	local pid rss hwm fds
	eval "pid=\$PID_$1"
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
	fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	echo "$1 $2 ${rss:-0} ${hwm:-0} $fds" >>"$WORK/samples"
}

# spawn CMD...: runs CMD with every descriptor above 2 closed. A child that
# inherited the write end of a publisher's FIFO would keep that publisher
# from reading end of file, and inherited descriptors would count in the fd
# samples. Run it in a background subshell.
spawn() {
	local fd
	for fd in /proc/$BASHPID/fd/*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
	done
	exec "$@"
}

start_subscribers() {
	local name queue wrap=()
	if [ "$VALGRIND" = 1 ]; then
		wrap=(valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,indirect
			--error-exitcode=99 --log-file="$WORK/%q{SUB}.vg")
	fi
	for name in "${SUBS[@]}"; do
		queue=()
		[ "$name" = b1 ] || queue=(--queue workers)
		(SUB=$name spawn "${wrap[@]}" "$BIN" sub "$TOPIC" "${queue[@]}") \
			>"$WORK/$name.out" 2>"$WORK/$name.err" </dev/null &
		PIDS+=($!)
		eval "PID_$name=$!"
	done
	for name in "${SUBS[@]}"; do
		wait_for "$WORK/$name.err" "^subscribed to" $((VALGRIND ? 120 : 30))
		sample "$name" start
	done
}

# Publisher k reads FIFO pk.in; fd FD_pk is its write end, opened here.
start_publishers() {
	local k fd
	for ((k = 1; k <= PUBLISHERS; k++)); do
		mkfifo "$WORK/p$k.in"
		(spawn "$BIN" pub "$TOPIC" - --timeout $((SECONDS_LIMIT + 60))) <"$WORK/p$k.in" \
			>"$WORK/p$k.out" 2>"$WORK/p$k.err" &
		PIDS+=($!)
		eval "PID_p$k=$!"
		exec {fd}>"$WORK/p$k.in"
		eval "FD_p$k=$fd"
	done
	for ((k = 1; k <= PUBLISHERS; k++)); do
		wait_for "$WORK/p$k.err" "BROKER-LISTEN" 30
		sample "p$k" start
	done
}

# Sends every publisher's share at RATE per second, in batches of a tenth
# of a second, until the share or the time limit is used up.
feed() {
	local share=$((MESSAGES / PUBLISHERS)) batch=$(((RATE + 9) / 10)) k i fd
	local deadline=$((SECONDS + SECONDS_LIMIT)) most=$((share + (MESSAGES % PUBLISHERS > 0)))
	for ((i = 1; i <= most; i += batch)); do
		[ "$SECONDS" -lt "$deadline" ] || break
		for ((k = 1; k <= PUBLISHERS; k++)); do
			eval "fd=\$FD_p$k"
			feed_batch "$k" "$i" "$((k <= MESSAGES % PUBLISHERS ? share + 1 : share))" \
				"$batch" "$fd"
		done
		sleep 0.1
	done
}

# feed_batch K FIRST SHARE BATCH FD: writes pK-FIRST.. (at most BATCH, not
# past SHARE) and adds them to the sent list.
feed_batch() {
	local k=$1 first=$2 share=$3 batch=$4 fd=$5 i
	for ((i = first; i < first + batch && i <= share; i++)); do
		echo "p$k-$i" >&"$fd"
		echo "p$k-$i" >>"$WORK/sent"
	done
}

finish_publishers() {
	local k fd rc
	for ((k = 1; k <= PUBLISHERS; k++)); do
		sample "p$k" end
		eval "fd=\$FD_p$k"
		exec {fd}>&-
	done
	for ((k = 1; k <= PUBLISHERS; k++)); do
		rc=0
		eval "wait \$PID_p$k" || rc=$?
		[ "$rc" -eq 0 ] || problem "publisher p$k exited $rc: $(grep -v '^20..-' "$WORK/p$k.err" | tail -n 2)"
	done
}

# Waits (at most 30 s) until the broadcast subscriber and the queue group
# have every message sent, then samples and stops the subscribers.
finish_subscribers() {
	local i name rc
	for ((i = 0; i < 300; i++)); do
		[ "$(missing b1.out | wc -l)" -eq 0 ] && [ "$(missing q1.out q2.out | wc -l)" -eq 0 ] &&
			break
		sleep 0.1
	done
	for name in "${SUBS[@]}"; do
		settle_fds "$name"
		sample "$name" end
		eval "kill -TERM \$PID_$name"
	done
	for name in "${SUBS[@]}"; do
		rc=0
		eval "wait \$PID_$name" || rc=$?
		[ "$rc" -eq 0 ] || problem "subscriber $name exited $rc on SIGTERM (99: valgrind errors)"
	done
}

# settle_fds NAME: waits (at most 15 s) until subscriber NAME has no more open
# descriptors than at start, because it closes the connections of exited
# publishers only when its event loop reads their end of file.
settle_fds() {
	local pid start i
	eval "pid=\$PID_$1"
	start=$(awk -v n="$1" '$1 == n && $2 == "start" { print $5 }' "$WORK/samples")
	for ((i = 0; i < 150; i++)); do
		[ "$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)" -le "$start" ] && return 0
		sleep 0.1
	done
}

# missing FILE...: the sent messages that no FILE contains.
missing() {
	(cd "$WORK" && awk 'FNR == NR { sent[$1] = 1; next } { delete sent[$NF] } END { for (m in sent) print m }' \
		sent "$@")
}

duplicates() { (cd "$WORK" && awk '{ print $NF }' "$@" | sort | uniq -d | wc -l); }

machine() {
	echo "soak: machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# Prints one row per process, the totals, and checks the descriptors: a
# subscriber that has more open descriptors at the end than at the start,
# after its publishers exited, leaks them.
report() {
	local duration=$1 sent b1_missing q_missing peak
	sent=$(wc -l <"$WORK/sent")
	b1_missing=$(missing b1.out | wc -l)
	q_missing=$(missing q1.out q2.out | wc -l)
	printf '%-4s %12s %12s %12s %9s %9s\n' process rss_start_kb rss_end_kb peak_rss_kb \
		fds_start fds_end
	awk '{ key = $1; if ($2 == "start") { rs[key] = $3; fs[key] = $5; order[++n] = key }
		else { re[key] = $3; hw[key] = $4; fe[key] = $5 } }
		END { for (i = 1; i <= n; i++) { k = order[i];
			printf "%-4s %12d %12d %12d %9d %9d\n", k, rs[k], re[k], hw[k], fs[k], fe[k] } }' \
		"$WORK/samples"
	peak=$(awk '$2 == "end" && $4 > m { m = $4 } END { print m + 0 }' "$WORK/samples")
	awk '$2 == "start" && $1 ~ /^[bq]/ { s[$1] = $5 } $2 == "end" && $1 in s && $5 > s[$1] + 2 {
		print $1, s[$1], $5 }' "$WORK/samples" >"$WORK/fd_growth"
	while read -r name from to; do
		problem "subscriber $name held $from descriptors at start and $to at the end"
	done <"$WORK/fd_growth"
	[ "$b1_missing" -eq 0 ] || problem "$b1_missing messages never reached the broadcast subscriber"
	[ "$q_missing" -eq 0 ] || problem "$q_missing messages never reached the queue group"
	echo "soak: sent $sent of $MESSAGES messages with $PUBLISHERS publishers, run time ${duration} s;" \
		"b1 received $(wc -l <"$WORK/b1.out"), q1 $(wc -l <"$WORK/q1.out"), q2 $(wc -l <"$WORK/q2.out")"
	echo "soak: losses b1 $b1_missing, queue group $q_missing; duplicates b1 $(duplicates b1.out)," \
		"queue group $(duplicates q1.out q2.out); peak RSS ${peak} kB"
	if [ "$VALGRIND" = 1 ]; then
		echo "soak: valgrind: $(grep -h "ERROR SUMMARY" "$WORK"/*.vg | sed 's/^==[0-9]*== //' |
			sort | uniq -c | sed 's/^ *//' | paste -sd ';')"
	fi
}

main() {
	local started
	parse_args "$@"
	WORK=$(mktemp -d /tmp/cmicro-soak-XXXXXX)
	trap cleanup EXIT
	: >"$WORK/sent"
	: >"$WORK/samples"
	machine
	make_certs
	started=$SECONDS
	start_subscribers
	start_publishers
	feed
	finish_publishers
	finish_subscribers
	report $((SECONDS - started))
	machine
	if [ "$FAILED" -ne 0 ]; then
		echo "soak: FAIL" >&2
		exit 1
	fi
	echo "soak: ok"
}

main "$@"
