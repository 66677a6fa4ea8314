# shellcheck shell=bash
# shellcheck disable=SC2154 # src, build, work and the limits are set by run.sh
# Functions of bench/run.sh: build, certificates, one measurement per system,
# handshakes and idle memory. Sourced by run.sh, which sets src, build, work,
# client_timeout, wrk_seconds and hs_seconds.

bench_pids=()

# Stops every server and client still running, by the PIDs this script
# started, and removes the temporary directory.
bench_cleanup() {
	local pid
	for pid in "${bench_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${bench_pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	bench_pids=()
	if [ "${keep_work:-1}" -eq 0 ] && [ -n "${work:-}" ]; then
		rm -rf "$work"
	fi
}

bench_die() {
	echo "bench: error: $*" >&2
	exit 1
}

bench_check_tools() {
	local tool missing=()
	for tool in cmake go mosquitto nats-server nginx wrk openssl ss pkg-config; do
		command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		bench_die "missing ${missing[*]}; run bench/setup.sh (and scripts/bootstrap.sh) first"
	fi
	pkg-config --exists libmosquitto libnats ||
		bench_die "libmosquitto-dev or libnats-dev is missing; run bench/setup.sh first"
}

bench_sbin() {
	command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"
}

# Builds the library and CLI in Release mode, then the benchmark programs.
bench_build() {
	local gen=() cc=${CC:-cc} libs
	command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
	echo "bench: building in $build" >&2
	cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
		-DCMICRO_BUILD_TESTS=OFF >"$work/build.log" 2>&1 ||
		bench_die "cmake configure failed; see $work/build.log"
	cmake --build "$build" --target cmicro_static cmicro_cli >>"$work/build.log" 2>&1 ||
		bench_die "building cmicro failed; see $work/build.log"

	bin=$build/bench
	mkdir -p "$bin"
	libs="$build/libcmicro.a $(pkg-config --libs libssl libcrypto libevent_openssl \
		libevent_pthreads libevent jansson sqlite3) -lpthread"
	local flags=(-O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$src/include")
	# shellcheck disable=SC2086
	{
		$cc "${flags[@]}" -o "$bin/runstat" "$src/bench/runstat.c" &&
			$cc "${flags[@]}" -o "$bin/cmicro_bench_sub" "$src/bench/cmicro_bench_sub.c" $libs &&
			$cc "${flags[@]}" -o "$bin/cmicro_bench_pub" "$src/bench/cmicro_bench_pub.c" $libs &&
			$cc "${flags[@]}" -o "$bin/slow_handler" "$src/bench/slow_handler.c" $libs &&
			$cc "${flags[@]}" -o "$bin/mqtt_bench" "$src/bench/mqtt_bench.c" -lmosquitto &&
			$cc "${flags[@]}" -o "$bin/nats_bench" "$src/bench/nats_bench.c" -lnats -lpthread
	} >>"$work/build.log" 2>&1 || bench_die "building the benchmark programs failed; see $work/build.log"
	# Standard library only, so no module is downloaded.
	(cd "$src/bench/go" && GOPROXY=off GOFLAGS=-mod=mod GOCACHE="$build/gocache" \
		go build -o "$bin/gobroker" .) >>"$work/build.log" 2>&1 ||
		bench_die "building the Go peer failed; see $work/build.log"
}

# A local CA and one node certificate (ECDSA P-256) made by `cmicro cert`.
# The SANs are 127.0.0.1 for the IP-addressed peers and localhost for nats.c,
# which checks a host name only.
bench_certs() {
	local cli=$build/tools/cmicro/cmicro
	tls=$work/tls
	# A kept --out directory of an earlier run has certificates already.
	rm -rf "$tls"
	mkdir -p "$tls"
	"$cli" cert ca --out-cert "$tls/ca.pem" --out-key "$tls/ca.key" --cn "cmicro bench CA" \
		>"$work/cert.log" 2>&1 || bench_die "cmicro cert ca failed; see $work/cert.log"
	"$cli" cert issue --ca-cert "$tls/ca.pem" --ca-key "$tls/ca.key" --out-cert "$tls/node.pem" \
		--out-key "$tls/node.key" 127.0.0.1 localhost >>"$work/cert.log" 2>&1 ||
		bench_die "cmicro cert issue failed; see $work/cert.log"
}

bench_machine_info() {
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpus: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
	echo "kernel: $(uname -sr)"
	echo "cmicro: $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
		"(Release, $(${CC:-cc} --version | head -1))"
	echo "openssl: $(openssl version)"
	echo "libevent: $(pkg-config --modversion libevent)"
	echo "go: $(go version)"
	echo "mosquitto: $("$(bench_sbin mosquitto)" -h 2>&1 | sed -n 's/^mosquitto version //p' | head -1)," \
		"libmosquitto $(pkg-config --modversion libmosquitto)"
	echo "nats-server: $("$(bench_sbin nats-server)" --version 2>&1 | head -1)," \
		"nats.c $(pkg-config --modversion libnats)"
	echo "nginx: $("$(bench_sbin nginx)" -v 2>&1 | sed 's/^nginx version: //')"
	echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
}

# Picks a free 127.0.0.1 port below the ephemeral range, so that no client
# connection of an earlier measurement (s_time opens thousands) uses it.
bench_free_port() {
	local port i low
	low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$low" -gt 11000 ] || low=32768
	for i in $(seq 1 200); do
		port=$((10000 + RANDOM % (low - 10000)))
		if ! ss -Htan "sport = :$port" | grep -q .; then
			echo "$port"
			return 0
		fi
	done
	bench_die "no free TCP port found on 127.0.0.1"
}

# Waits up to 10 seconds for a line matching pattern in file.
bench_wait_line() {
	local i
	for i in $(seq 1 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

bench_wait_port() {
	local i
	for i in $(seq 1 200); do
		ss -Htln "sport = :$1" | grep -q . && return 0
		sleep 0.05
	done
	return 1
}

# Starts a command in the background under runstat (stats to $1.stat, output
# to $1.out and $1.err) with a hard time limit; sets bench_last_pid.
bench_start() {
	local prefix=$1
	shift
	"$bin/runstat" "$prefix.stat" timeout -k 5 $((client_timeout + 20)) "$@" \
		>"$prefix.out" 2>"$prefix.err" &
	bench_last_pid=$!
	bench_pids+=("$bench_last_pid")
}

# Stops a process started by bench_start and waits for its stats.
bench_stop() {
	local pid=$1 kept=() p
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${bench_pids[@]}"; do
		[ "$p" = "$pid" ] || kept+=("$p")
	done
	bench_pids=("${kept[@]}")
}

# Waits for a process started by bench_start to end by itself; its exit
# status is in its stat file.
bench_join() {
	local kept=() p
	wait "$1" 2>/dev/null || true
	for p in "${bench_pids[@]}"; do
		[ "$p" = "$1" ] || kept+=("$p")
	done
	bench_pids=("${kept[@]}")
}

# Prints the value of key (cpu_s, maxrss_kb, status) from a runstat file.
bench_stat() {
	sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" "$1" 2>/dev/null | head -1
}

# Prints the value of key from the RESULT line of a subscriber's output.
bench_result() {
	sed -n "s/^RESULT.*\\b$2=\\([^ ]*\\).*/\\1/p" "$1" 2>/dev/null | head -1
}

# Prints one results.tsv line from a subscriber's RESULT line and the stat
# files. The CPU time adds up the subscriber, the publisher and the server.
bench_emit() {
	local run=$1 system=$2 payload=$3 inflight=$4 n=$5 sub=$6 pub=$7 srv=$8
	local status=ok received cpu=0 f c
	received=$(bench_result "$sub.out" received)
	for f in "$sub" "$pub" "$srv"; do
		[ -n "$f" ] || continue
		c=$(bench_stat "$f.stat" cpu_s)
		cpu=$(awk -v a="$cpu" -v b="${c:-0}" 'BEGIN { print a + b }')
	done
	if [ "${received:-0}" != "$n" ]; then
		status="incomplete:${received:-0}/$n"
	elif ! grep -q "failed=0" "$pub.err"; then
		status="publish-failures"
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$system" "$payload" \
		"$inflight" "$(bench_result "$sub.out" rate)" \
		"$(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.2f", c / n * 100000 }')" \
		"$(bench_stat "$sub.stat" maxrss_kb)" "$(bench_stat "$pub.stat" maxrss_kb)" \
		"$( [ -n "$srv" ] && bench_stat "$srv.stat" maxrss_kb || echo -)" \
		"$(bench_result "$sub.out" p50_us)" "$(bench_result "$sub.out" p99_us)" "$status"
}

# Runs a subscriber (command in the array sub_cmd), waits for READY, runs the
# publisher (pub_cmd) in the foreground, then waits for the subscriber.
bench_pubsub() {
	local prefix=$1 sub_pid
	bench_start "$prefix.sub" "${sub_cmd[@]}"
	sub_pid=$bench_last_pid
	if ! bench_wait_line "$prefix.sub.out" '^READY'; then
		echo "bench: subscriber of $prefix did not start; see $prefix.sub.err" >&2
		bench_stop "$sub_pid"
		return 0
	fi
	ready_line=$(grep -m1 '^READY' "$prefix.sub.out")
	bench_expand_pub
	"$bin/runstat" "$prefix.pub.stat" timeout -k 5 "$client_timeout" "${pub_cmd[@]}" \
		>"$prefix.pub.out" 2>"$prefix.pub.err" || true
	bench_join "$sub_pid"
}

# Lets a publisher command refer to the subscriber's URL, known after READY.
bench_expand_pub() {
	local url i
	url=$(echo "$ready_line" | sed -n 's/.*url=\([^ ]*\).*/\1/p')
	for i in "${!pub_cmd[@]}"; do
		[ "${pub_cmd[$i]}" = "@URL@" ] && pub_cmd[i]=$url
	done
	return 0
}

# $6 is the system name: cmicro runs handlers on handler threads (the
# default), cmicro-inline on the subscriber's I/O thread.
bench_cell_cmicro() {
	local run=$1 payload=$2 inflight=$3 n=$4 p=$5 system=$6 inline=false
	local t=$tls
	[ "$system" = cmicro-inline ] && inline=true
	rm -f "$p.db"
	sub_cmd=(env "MICRO_BROKER_INLINE_HANDLERS=$inline" "$bin/cmicro_bench_sub" "$t/ca.pem"
		"$t/node.pem" "$t/node.key" "$p.db" bench "$n" "$client_timeout")
	pub_cmd=("$bin/cmicro_bench_pub" "$t/ca.pem" "$t/node.pem" "$t/node.key" "$p.db" bench "$n"
		"$payload" "$inflight" "$client_timeout")
	bench_pubsub "$p"
	bench_emit "$run" "$system" "$payload" "$inflight" "$n" "$p.sub" "$p.pub" ""
}

bench_cell_go() {
	local run=$1 payload=$2 inflight=$3 n=$4 p=$5
	sub_cmd=("$bin/gobroker" sub "$tls/node.pem" "$tls/node.key" "$n" "$client_timeout")
	pub_cmd=("$bin/gobroker" pub "$tls/ca.pem" @URL@ "$n" "$payload" "$inflight"
		"$client_timeout")
	bench_pubsub "$p"
	bench_emit "$run" go "$payload" "$inflight" "$n" "$p.sub" "$p.pub" ""
}

# mosquitto as its users run it with TLS: a TLS listener with the CA, the
# server certificate and TLS 1.3; queues unlimited so QoS 1 loses nothing.
bench_cell_mosquitto() {
	local run=$1 payload=$2 inflight=$3 n=$4 p=$5 qos=$6 port srv
	port=$(bench_free_port)
	cat >"$p.conf" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
user $(id -un)
log_dest stderr
log_type error
log_type warning
max_queued_messages 0
listener $port 127.0.0.1
cafile $tls/ca.pem
certfile $tls/node.pem
keyfile $tls/node.key
tls_version tlsv1.3
EOF
	bench_start "$p.srv" "$(bench_sbin mosquitto)" -c "$p.conf"
	srv=$bench_last_pid
	bench_wait_port "$port" || echo "bench: mosquitto did not listen on $port; see $p.srv.err" >&2
	sub_cmd=("$bin/mqtt_bench" sub "$tls/ca.pem" "$port" "$qos" "$n" "$client_timeout")
	pub_cmd=("$bin/mqtt_bench" pub "$tls/ca.pem" "$port" "$qos" "$n" "$payload" "$inflight"
		"$client_timeout")
	bench_pubsub "$p"
	bench_stop "$srv"
	bench_emit "$run" "mosquitto-qos$qos" "$payload" "$inflight" "$n" "$p.sub" "$p.pub" "$p.srv"
}

bench_cell_nats() {
	local run=$1 payload=$2 inflight=$3 n=$4 p=$5 port srv
	port=$(bench_free_port)
	cat >"$p.conf" <<EOF
listen: 127.0.0.1:$port
tls {
  cert_file: "$tls/node.pem"
  key_file: "$tls/node.key"
}
EOF
	bench_start "$p.srv" "$(bench_sbin nats-server)" -c "$p.conf"
	srv=$bench_last_pid
	bench_wait_port "$port" || echo "bench: nats-server did not listen on $port; see $p.srv.err" >&2
	sub_cmd=("$bin/nats_bench" sub "$tls/ca.pem" "$port" "$n" "$client_timeout")
	pub_cmd=("$bin/nats_bench" pub "$tls/ca.pem" "$port" "$n" "$payload" "$inflight"
		"$client_timeout")
	bench_pubsub "$p"
	bench_stop "$srv"
	bench_emit "$run" nats "$payload" "$inflight" "$n" "$p.sub" "$p.pub" "$p.srv"
}

# Converts a wrk latency ("812.00us", "1.20ms", "2.00s") to microseconds.
bench_wrk_us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1000000
	}'
}

# Measures nginx returning an empty 200 to a POST of the payload over TLS 1.3
# with keep-alive. wrk opens one connection per request in flight.
bench_cell_nginx() {
	local run=$1 payload=$2 inflight=$3 p=$4 port srv reqs rate cpu
	port=$(bench_free_port)
	mkdir -p "$p.nginx/logs"
	cat >"$p.nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $p.nginx/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $p.nginx/body;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $tls/node.pem;
    ssl_certificate_key $tls/node.key;
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    location / { return 200; }
  }
}
EOF
	printf 'wrk.method = "POST"\nwrk.body = string.rep("x", %d)\n' "$payload" >"$p.lua"
	printf 'wrk.headers["Content-Type"] = "application/json"\n' >>"$p.lua"
	bench_start "$p.srv" "$(bench_sbin nginx)" -p "$p.nginx" -c "$p.nginx/nginx.conf"
	srv=$bench_last_pid
	bench_wait_port "$port" || echo "bench: nginx did not listen on $port; see $p.srv.err" >&2
	"$bin/runstat" "$p.pub.stat" timeout -k 5 "$client_timeout" wrk -t1 -c"$inflight" \
		-d"${wrk_seconds}s" --latency -s "$p.lua" "https://127.0.0.1:$port/" \
		>"$p.pub.out" 2>"$p.pub.err" || true
	bench_stop "$srv"

	reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$p.pub.out")
	rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$p.pub.out")
	cpu=$(awk -v a="$(bench_stat "$p.srv.stat" cpu_s)" -v b="$(bench_stat "$p.pub.stat" cpu_s)" \
		-v n="${reqs:-0}" 'BEGIN { if (n > 0) printf "%.2f", (a + b) / n * 100000; else print "" }')
	printf '%s\tnginx\t%s\t%s\t%s\t%s\t-\t%s\t%s\t%s\t%s\t%s\n' "$run" "$payload" "$inflight" \
		"${rate:-}" "$cpu" "$(bench_stat "$p.pub.stat" maxrss_kb)" \
		"$(bench_stat "$p.srv.stat" maxrss_kb)" \
		"$(bench_wrk_us "$(awk '$1 == "50%" { print $2 }' "$p.pub.out")")" \
		"$(bench_wrk_us "$(awk '$1 == "99%" { print $2 }' "$p.pub.out")")" \
		"$( [ -n "$reqs" ] && grep -q 'Non-2xx' "$p.pub.out" && echo non-2xx || echo ok)"
}

bench_cell() {
	local run=$1 system=$2 payload=$3 inflight=$4 n=$5 p
	mkdir -p "$work/logs"
	p="$work/logs/r$run-$system-$payload-$inflight"
	echo "bench:   $system payload=$payload in-flight=$inflight" >&2
	case "$system" in
	cmicro | cmicro-inline) bench_cell_cmicro "$run" "$payload" "$inflight" "$n" "$p" "$system" ;;
	go) bench_cell_go "$run" "$payload" "$inflight" "$n" "$p" ;;
	mosquitto-qos0) bench_cell_mosquitto "$run" "$payload" "$inflight" "$n" "$p" 0 ;;
	mosquitto-qos1) bench_cell_mosquitto "$run" "$payload" "$inflight" "$n" "$p" 1 ;;
	nats) bench_cell_nats "$run" "$payload" "$inflight" "$n" "$p" ;;
	nginx) bench_cell_nginx "$run" "$payload" "$inflight" "$p" ;;
	esac
}

# One openssl s_time measurement against a server started by the caller;
# prints a handshakes.tsv line. Resumption needs -www: a TLS 1.3 client
# receives its session ticket only when it reads after the handshake.
bench_s_time() {
	local run=$1 server=$2 mode=$3 port=$4 srv=$5 p=$6 conns secs reused
	local args=(-connect "127.0.0.1:$port" "-$mode" -time "$hs_seconds" -CAfile "$tls/ca.pem"
		-verify 1)
	[ "$mode" = reuse ] && args+=(-www /)
	timeout -k 5 $((hs_seconds * 3 + 10)) openssl s_time "${args[@]}" >"$p.stime.out" 2>&1 || true
	bench_stop "$srv"
	conns=$(sed -n 's/^\([0-9]*\) connections in [0-9]* real seconds.*/\1/p' "$p.stime.out" | tail -1)
	secs=$(sed -n 's/^[0-9]* connections in \([0-9]*\) real seconds.*/\1/p' "$p.stime.out" | tail -1)
	# s_time prints one character per connection: "*" new, "r" resumed.
	reused=$(grep -E '^[*r]+$' "$p.stime.out" | tr -cd 'r' | wc -c)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$server" "$mode" "${conns:-0}" "$reused" \
		"${secs:-0}" "$(bench_stat "$p.srv.stat" cpu_s)"
}

# Measures full (-new) and resumed (-reuse) TLS 1.3 handshakes against openssl
# s_server and a cmicro subscriber. Each gets a fresh server, so its CPU time
# is that of the handshakes plus its start-up.
bench_handshakes() {
	local run=$1 mode port p
	mkdir -p "$work/logs"
	for mode in new reuse; do
		p="$work/logs/r$run-hs-s_server-$mode"
		port=$(bench_free_port)
		bench_start "$p.srv" openssl s_server -accept "127.0.0.1:$port" -cert "$tls/node.pem" \
			-key "$tls/node.key" -tls1_3 -quiet -www
		bench_wait_port "$port" || echo "bench: openssl s_server did not listen; see $p.srv.err" >&2
		bench_s_time "$run" s_server "$mode" "$port" "$bench_last_pid" "$p"

		p="$work/logs/r$run-hs-cmicro-$mode"
		rm -f "$p.db"
		bench_start "$p.srv" "$bin/cmicro_bench_sub" "$tls/ca.pem" "$tls/node.pem" \
			"$tls/node.key" "$p.db" bench 1000000 "$client_timeout"
		bench_wait_line "$p.srv.out" '^READY' ||
			echo "bench: cmicro subscriber did not start; see $p.srv.err" >&2
		port=$(sed -n 's/^READY.*address=[^ ]*:\([0-9]*\).*/\1/p' "$p.srv.out")
		bench_s_time "$run" cmicro "$mode" "$port" "$bench_last_pid" "$p"
	done
}

# Resident memory of a subscriber one second after it subscribed, with no
# traffic: cmicro's and, for reference, the Go peer's.
bench_idle() {
	local run=$1 p pid
	p="$work/logs/r$run-idle-cmicro"
	rm -f "$p.db"
	bench_start "$p" "$bin/cmicro_bench_sub" "$tls/ca.pem" "$tls/node.pem" "$tls/node.key" \
		"$p.db" bench 1 "$client_timeout"
	bench_idle_rss "$run" cmicro "$p" "$bench_last_pid"

	p="$work/logs/r$run-idle-go"
	bench_start "$p" "$bin/gobroker" sub "$tls/node.pem" "$tls/node.key" 1 "$client_timeout"
	bench_idle_rss "$run" go "$p" "$bench_last_pid"
}

bench_idle_rss() {
	local run=$1 system=$2 p=$3 runstat_pid=$4 pid rss
	if ! bench_wait_line "$p.out" '^READY'; then
		echo "bench: $system subscriber did not start; see $p.err" >&2
		bench_stop "$runstat_pid"
		return 0
	fi
	sleep 1
	pid=$(sed -n 's/^READY pid=\([0-9]*\).*/\1/p' "$p.out")
	rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$pid/status")
	bench_stop "$runstat_pid"
	printf '%s\t%s\t%s\n' "$run" "$system" "$rss"
}
