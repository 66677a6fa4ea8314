#!/usr/bin/env bash
# Broadcast and queue-group delivery between separate cmicro processes over
# TLS (self-signed certificates, verification off) with a SQLite registry.
# Every broadcast subscriber gets each message once. A queue group gets each
# message exactly once in total, spread over its members.
source "$(dirname "$0")/pubsub_common.sh"

for i in 1 2 3; do
	start_sub "b$i" news
	start_sub "q$i" jobs --queue workers
done

seq 1 20 | sed 's/^/news-/' | "$CMICRO_BIN" pub news - --timeout 30 >"$WORK/pub1.out" \
	2>"$WORK/pub1.err" || fail "publishing to news failed"
seq 1 30 | sed 's/^/job-/' | "$CMICRO_BIN" pub jobs - --timeout 30 >"$WORK/pub2.out" \
	2>"$WORK/pub2.err" || fail "publishing to jobs failed"

for i in 1 2 3; do
	[ "$(wc -l <"$WORK/b$i.out")" -eq 20 ] || fail "broadcast subscriber b$i did not get 20 lines"
	for n in $(seq 1 20); do
		[ "$(count_body "$WORK/b$i.out" "news-$n")" -eq 1 ] ||
			fail "broadcast subscriber b$i did not get news-$n exactly once"
	done
done

cat "$WORK"/q?.out >"$WORK/queue.all"
[ "$(wc -l <"$WORK/queue.all")" -eq 30 ] || fail "queue group did not get 30 messages in total"
for n in $(seq 1 30); do
	[ "$(count_body "$WORK/queue.all" "job-$n")" -eq 1 ] ||
		fail "queue group did not get job-$n exactly once"
done
for i in 1 2 3; do
	[ -s "$WORK/q$i.out" ] || fail "queue member q$i got no message (expected a spread)"
	grep -q "{Micro-Topic=jobs}" "$WORK/q$i.out" || fail "q$i lines lack the topic header"
done

for i in 1 2 3; do
	stop_sub "b$i"
	stop_sub "q$i"
done
echo "ok: broadcast to 3 subscribers and a queue group of 3 over TLS"
