#!/usr/bin/env bash
# Subscribers that run handlers on their I/O thread
# (MICRO_BROKER_INLINE_HANDLERS=true) receive what handler threads would:
# every broadcast message once, and a queue group's messages once in total.
# An invalid value stops the subscriber with an error naming it.
source "$(dirname "$0")/pubsub_common.sh"

MICRO_BROKER_INLINE_HANDLERS=maybe "$CMICRO_BIN" sub news >"$WORK/bad.out" 2>"$WORK/bad.err" &&
	fail "a subscriber started with MICRO_BROKER_INLINE_HANDLERS=maybe"
grep -q 'MICRO_BROKER_INLINE_HANDLERS="maybe" is not a boolean' "$WORK/bad.err" ||
	fail "the error does not name the invalid value: $(cat "$WORK/bad.err")"

export MICRO_BROKER_INLINE_HANDLERS=true
start_sub b1 news
start_sub q1 jobs --queue workers
start_sub q2 jobs --queue workers
unset MICRO_BROKER_INLINE_HANDLERS

seq 1 50 | sed 's/^/news-/' | "$CMICRO_BIN" pub news - --timeout 30 >"$WORK/pub1.out" \
	2>"$WORK/pub1.err" || fail "publishing to news failed"
seq 1 40 | sed 's/^/job-/' | "$CMICRO_BIN" pub jobs - --timeout 30 >"$WORK/pub2.out" \
	2>"$WORK/pub2.err" || fail "publishing to jobs failed"

[ "$(wc -l <"$WORK/b1.out")" -eq 50 ] || fail "the inline subscriber did not get 50 lines"
for n in $(seq 1 50); do
	[ "$(count_body "$WORK/b1.out" "news-$n")" -eq 1 ] ||
		fail "the inline subscriber did not get news-$n exactly once"
done
cat "$WORK"/q?.out >"$WORK/queue.all"
[ "$(wc -l <"$WORK/queue.all")" -eq 40 ] || fail "the inline queue group did not get 40 messages"
for n in $(seq 1 40); do
	[ "$(count_body "$WORK/queue.all" "job-$n")" -eq 1 ] ||
		fail "the inline queue group did not get job-$n exactly once"
done

stop_sub b1
stop_sub q1
stop_sub q2
echo "ok: inline handlers receive broadcast and queue-group messages"
