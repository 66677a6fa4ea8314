#!/usr/bin/env bash
# The durable outbox and duplicate dropping between real cmicro processes.
# Messages acknowledged by a publisher that is then SIGKILLed arrive after a
# restart. A subscriber SIGKILLed mid-stream and replaced still gets every
# message. When a publisher sends its messages again (its outbox as it was
# before the deletes), a --dedup subscriber's handler gets each once. Bad
# outbox paths fail with exit status 2 and a clear message.
source "$(dirname "$0")/pubsub_common.sh"

# Counts the lines of file $1 whose body is $2, as count_body does.
count() { count_body "$1" "$2"; }

# Rows left in an outbox file, read with the sqlite3 tool.
rows() { sqlite3 "$1" 'SELECT count(*) FROM messages'; }

# --- 1. Publisher SIGKILLed after its publishes were acknowledged --------
mkfifo "$WORK/pub1.in"
"$CMICRO_BIN" pub crash - --outbox "$WORK/ob1.db" --wait --timeout 120 \
	<"$WORK/pub1.in" >"$WORK/pub1.out" 2>"$WORK/pub1.err" &
pub1=$!
PIDS+=("$pub1")
exec 3>"$WORK/pub1.in"
for i in $(seq 1 20); do
	echo "c-$i" >&3
done
# --wait prints one result line per publish, after publish has returned,
# so 20 lines mean 20 acknowledged (committed) messages.
for ((t = 0; t < 150; t++)); do
	[ "$(grep -c 'no subscriber of this topic' "$WORK/pub1.out" || true)" -ge 20 ] && break
	sleep 0.1
done
acked=$(grep -c 'no subscriber of this topic' "$WORK/pub1.out" || true)
[ "$acked" -eq 20 ] || fail "the publisher acknowledged $acked of 20 messages"
kill -KILL "$pub1"
wait "$pub1" 2>/dev/null || true
exec 3>&-
[ "$(rows "$WORK/ob1.db")" -eq 20 ] || fail "outbox holds $(rows "$WORK/ob1.db") rows after SIGKILL, expected 20"

start_sub r1 crash
"$CMICRO_BIN" pub --drain --outbox "$WORK/ob1.db" --timeout 30 >"$WORK/drain1.out" \
	2>"$WORK/drain1.err" || fail "draining the outbox after the restart failed"
wait_for "$WORK/r1.out" " c-20\$"
for i in $(seq 1 20); do
	[ "$(count "$WORK/r1.out" "c-$i")" -eq 1 ] || fail "c-$i arrived $(count "$WORK/r1.out" "c-$i") times, expected once"
done
received=$(wc -l <"$WORK/r1.out")
[ "$received" -eq 20 ] || fail "sent 20, received $received"
[ "$(rows "$WORK/ob1.db")" -eq 0 ] || fail "delivered messages are still in the outbox"
stop_sub r1
echo "ok: 20 acknowledged, publisher SIGKILLed, 20 received after the restart"

# --- 2. Subscriber SIGKILLed mid-stream and replaced ----------------------
start_sub q1 stream --queue workers
(for i in $(seq 1 40); do
	echo "s-$i"
	sleep 0.05
done) | "$CMICRO_BIN" pub stream - --outbox "$WORK/ob2.db" --timeout 120 \
	>"$WORK/pub2.out" 2>"$WORK/pub2.err" &
pub2=$!
PIDS+=("$pub2")
wait_for "$WORK/q1.out" " s-10\$"
kill -KILL "$PID_q1"
wait "$PID_q1" 2>/dev/null || true
start_sub q2 stream --queue workers
wait "$pub2" || fail "the publisher exited with status $? although a subscriber came back"
cat "$WORK/q1.out" "$WORK/q2.out" >"$WORK/stream.all"
for i in $(seq 1 40); do
	[ "$(count "$WORK/stream.all" "s-$i")" -ge 1 ] || fail "s-$i never arrived"
done
[ "$(rows "$WORK/ob2.db")" -eq 0 ] || fail "the outbox still holds $(rows "$WORK/ob2.db") messages"
stop_sub q2
echo "ok: 40 sent, subscriber SIGKILLed after $(wc -l <"$WORK/q1.out"), $(wc -l <"$WORK/stream.all") lines received, none missing"

# --- 3. A publisher sends its messages again: --dedup handles each once --
"$CMICRO_BIN" pub dup - --outbox "$WORK/ob3.db" --timeout 1 < <(seq 1 10 | sed 's/^/d-/') \
	>"$WORK/pub3.out" 2>"$WORK/pub3.err" && fail "publishing without subscribers reported success"
[ "$(rows "$WORK/ob3.db")" -eq 10 ] || fail "the outbox holds $(rows "$WORK/ob3.db") rows, expected 10"
# The copy is the outbox as it was before the deletes of the first
# delivery, as a publisher killed after sending but before deleting leaves
# it. The publisher closed cleanly, so there is no -wal file to copy.
cp "$WORK/ob3.db" "$WORK/ob3-before.db"

start_sub dd dup --dedup
start_sub nd dup
"$CMICRO_BIN" pub --drain --outbox "$WORK/ob3.db" --timeout 30 >"$WORK/drain3.out" \
	2>"$WORK/drain3.err" || fail "the first delivery failed"
"$CMICRO_BIN" pub --drain --outbox "$WORK/ob3-before.db" --timeout 30 >"$WORK/drain4.out" \
	2>"$WORK/drain4.err" || fail "sending the messages again failed"
wait_for "$WORK/nd.out" " d-10\$"
for ((t = 0; t < 100; t++)); do
	[ "$(wc -l <"$WORK/nd.out")" -ge 20 ] && break
	sleep 0.1
done
stop_sub dd
stop_sub nd
# Without --dedup every message reaches the handler twice, which shows the
# second sending happened; with --dedup each reaches it once.
for i in $(seq 1 10); do
	[ "$(count "$WORK/nd.out" "d-$i")" -eq 2 ] || fail "d-$i reached the plain subscriber $(count "$WORK/nd.out" "d-$i") times, expected 2"
	[ "$(count "$WORK/dd.out" "d-$i")" -eq 1 ] || fail "d-$i reached the --dedup subscriber $(count "$WORK/dd.out" "d-$i") times, expected 1"
done
grep -q "^handled 10 messages, dropped 10 duplicates$" "$WORK/dd.err" ||
	fail "the --dedup subscriber's summary is not 10 handled, 10 duplicates"
echo "ok: 10 messages sent twice, --dedup handled 10 and dropped 10, the plain subscriber handled 20"

# --- 4. Bad outbox paths and a second process ------------------------------
mkdir "$WORK/adir"
set +e
"$CMICRO_BIN" pub t m --outbox "$WORK/adir" >"$WORK/bad1.out" 2>"$WORK/bad1.err"
st1=$?
head -c 4096 /dev/urandom >"$WORK/corrupt.db"
"$CMICRO_BIN" pub t m --outbox "$WORK/corrupt.db" >"$WORK/bad2.out" 2>"$WORK/bad2.err"
st2=$?
"$CMICRO_BIN" pub --drain >"$WORK/bad3.out" 2>"$WORK/bad3.err"
st3=$?
"$CMICRO_BIN" pub "two words" m --outbox "$WORK/ob5.db" >"$WORK/bad4.out" 2>"$WORK/bad4.err"
st4=$?
"$CMICRO_BIN" pub t m --header $'K=a\nb' >"$WORK/bad5.out" 2>"$WORK/bad5.err"
st5=$?
set -e
[ "$st1" -eq 2 ] || fail "a directory as outbox exited $st1, expected 2"
grep -q "is a directory" "$WORK/bad1.err" || fail "the directory error does not say so"
[ "$st2" -eq 2 ] || fail "a corrupt outbox exited $st2, expected 2"
grep -q "not a valid SQLite database" "$WORK/bad2.err" || fail "the corrupt-file error does not say so"
[ "$st3" -eq 2 ] || fail "--drain without an outbox exited $st3, expected 2"
[ "$st4" -eq 2 ] || fail "a topic with a space exited $st4, expected 2"
grep -q "may not contain spaces" "$WORK/bad4.err" || fail "the topic error does not give the rule"
[ "$(rows "$WORK/ob5.db")" -eq 0 ] || fail "a rejected publish left a row in the outbox"
[ "$st5" -eq 2 ] || fail "a header with a line break exited $st5, expected 2"
grep -q "line feed" "$WORK/bad5.err" || fail "the header error does not name the line feed"

mkfifo "$WORK/hold.in"
"$CMICRO_BIN" pub held - --outbox "$WORK/ob6.db" <"$WORK/hold.in" >/dev/null 2>&1 &
holder=$!
PIDS+=("$holder")
exec 4>"$WORK/hold.in"
for ((t = 0; t < 100; t++)); do
	[ -s "$WORK/ob6.db.lock" ] && break
	sleep 0.1
done
set +e
"$CMICRO_BIN" pub t m --outbox "$WORK/ob6.db" >"$WORK/bad6.out" 2>"$WORK/bad6.err"
st6=$?
set -e
exec 4>&-
wait "$holder" || true
[ "$st6" -eq 2 ] || fail "a second process on one outbox exited $st6, expected 2"
grep -q "in use by another broker (process $holder" "$WORK/bad6.err" ||
	fail "the lock error does not name the holding process $holder"
echo "ok: bad outbox paths, a locked outbox and invalid input exit 2 with the cause"
