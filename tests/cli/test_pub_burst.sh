#!/usr/bin/env bash
# A publisher given a burst of messages faster than one subscriber responds
# keeps its connections to that node under the per-node cap and queues the
# rest, so the subscriber's connection limit is never reached and nothing is
# dropped.
source "$(dirname "$0")/pubsub_common.sh"

total=2000
start_sub s1 burst
python3 -c "
for i in range(1, $total + 1):
    print(f'b-{i}')" | "$CMICRO_BIN" pub burst - --timeout 120 >"$WORK/pub.out" 2>"$WORK/pub.err" &
pub_pid=$!
PIDS+=("$pub_pid")

# Samples the publisher's open descriptors while it runs (bounded: 1200
# samples of 0.1 s).
max_fds=0
for ((i = 0; i < 1200; i++)); do
	n=$(ls "/proc/$pub_pid/fd" 2>/dev/null | wc -l) || n=0
	[ "$n" -gt "$max_fds" ] && max_fds=$n
	kill -0 "$pub_pid" 2>/dev/null || break
	sleep 0.1
done
wait "$pub_pid" || fail "the publisher exited with status $? (some message was not delivered)"

# 64 connections per node, plus the listener, the registry, the loop's
# descriptors and the standard streams.
[ "$max_fds" -le 100 ] || fail "the publisher had $max_fds descriptors open, expected at most 100"
[ "$max_fds" -gt 0 ] || fail "the publisher's descriptors were never sampled"
for ((i = 0; i < 100; i++)); do
	[ "$(grep -c . "$WORK/s1.out")" -ge "$total" ] && break
	sleep 0.1
done
[ "$(grep -c . "$WORK/s1.out")" -eq "$total" ] ||
	fail "the subscriber printed $(grep -c . "$WORK/s1.out") of $total messages"
! grep -q "HTTP-CONN-LIMIT" "$WORK/s1.err" || fail "the subscriber hit its connection limit"
! grep -q "BROKER-DROPPED" "$WORK/pub.err" || fail "the publisher dropped messages"
echo "ok: $total of $total delivered with at most $max_fds descriptors in the publisher"
