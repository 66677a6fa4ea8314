#!/usr/bin/env bash
# The durable outbox and duplicate dropping between real cmicro processes.
# Messages acknowledged by a publisher that is then SIGKILLed arrive after a
# restart. A subscriber SIGKILLed mid-stream and replaced still gets every
# message. When a publisher sends its messages again (its outbox as it was
# before the deletes), a --dedup subscriber's handler gets each once. Bad
# outbox paths, a second opener through any name, files that are not
# outboxes and a missing outbox to drain fail with exit status 2 and a
# clear message. The closing summary adds up with a stopped subscriber.
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
grep -q "^sent 20 messages from outbox $WORK/ob1.db\$" "$WORK/drain1.out" ||
	fail "the drain did not print that it sent 20 messages"
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
"$CMICRO_BIN" pub t m --header $'K=a\nb' --outbox "$WORK/ob5h.db" >"$WORK/bad5.out" 2>"$WORK/bad5.err"
st5=$?
"$CMICRO_BIN" pub t m --header Micro-Id= --outbox "$WORK/ob5i.db" >"$WORK/bad6.out" 2>"$WORK/bad6.err"
st6=$?
# A header key of 402 bytes ("kk", then 200 two-byte characters) is valid
# and must reach the broker whole, neither cut nor cut inside a character.
longkey="kk$(printf '\xc3\xa9%.0s' $(seq 1 200))"
"$CMICRO_BIN" pub t m --header "$longkey=v" --outbox "$WORK/ob5k.db" --timeout 1 \
	>"$WORK/long.out" 2>"$WORK/long.err"
st7=$?
set -e
[ "$st1" -eq 2 ] || fail "a directory as outbox exited $st1, expected 2"
grep -q "is a directory" "$WORK/bad1.err" || fail "the directory error does not say so"
[ "$st2" -eq 2 ] || fail "a corrupt outbox exited $st2, expected 2"
grep -q "is not a cmicro outbox" "$WORK/bad2.err" || fail "the error for random bytes does not say they are no outbox"
[ "$st3" -eq 2 ] || fail "--drain without an outbox exited $st3, expected 2"
[ "$st4" -eq 2 ] || fail "a topic with a space exited $st4, expected 2"
grep -q "may not contain spaces" "$WORK/bad4.err" || fail "the topic error does not give the rule"
# The topic is checked before the broker starts, so not even the outbox exists.
[ ! -e "$WORK/ob5.db" ] || fail "a publish with a bad topic created the outbox"
[ "$st5" -eq 2 ] || fail "a header with a line break exited $st5, expected 2"
grep -q "line feed" "$WORK/bad5.err" || fail "the header error does not name the line feed"
[ ! -e "$WORK/ob5h.db" ] || fail "a publish with a bad header created the outbox"
[ "$st6" -eq 2 ] || fail "an empty --header Micro-Id= exited $st6, expected 2"
grep -q "Micro-Id= is empty" "$WORK/bad6.err" || fail "the empty id error does not say so"
[ ! -e "$WORK/ob5i.db" ] || fail "a publish with an empty Micro-Id created the outbox"
[ "$st7" -ne 2 ] || fail "a long valid header key was rejected: $(cat "$WORK/long.err")"
if grep -q "not valid UTF-8" "$WORK/long.err"; then
	fail "a long valid header key was cut inside a character"
fi
[ "$(rows "$WORK/ob5k.db")" -eq 1 ] || fail "the message with a long header key is not in the outbox"
sqlite3 "$WORK/ob5k.db" 'SELECT CAST(envelope AS TEXT) FROM messages' | grep -qF "\"$longkey\":\"v\"" ||
	fail "the outbox envelope does not carry the whole long header key"

mkfifo "$WORK/hold.in"
"$CMICRO_BIN" pub held - --outbox "$WORK/ob6.db" <"$WORK/hold.in" >/dev/null 2>"$WORK/hold.err" &
holder=$!
PIDS+=("$holder")
exec 4>"$WORK/hold.in"
wait_for "$WORK/hold.err" "BROKER-LISTEN"
ln -s "$WORK/ob6.db" "$WORK/ob6-symlink.db"
ln "$WORK/ob6.db" "$WORK/ob6-hardlink.db"
set +e
"$CMICRO_BIN" pub t m --outbox "$WORK/ob6.db" >"$WORK/bad6.out" 2>"$WORK/bad6.err"
st6=$?
"$CMICRO_BIN" pub t m --outbox "$WORK/ob6-symlink.db" >"$WORK/bad7.out" 2>"$WORK/bad7.err"
st7=$?
"$CMICRO_BIN" pub --drain --outbox "$WORK/ob6-hardlink.db" >"$WORK/bad8.out" 2>"$WORK/bad8.err"
st8=$?
set -e
exec 4>&-
wait "$holder" || true
[ "$st6" -eq 2 ] || fail "a second process on one outbox exited $st6, expected 2"
grep -q "in use by another broker (process $holder" "$WORK/bad6.err" ||
	fail "the lock error does not name the holding process $holder"
[ "$st7" -eq 2 ] || fail "a second process through a symbolic link exited $st7, expected 2"
grep -q "in use by another broker (process $holder" "$WORK/bad7.err" ||
	fail "the symbolic link got past the lock"
[ "$st8" -eq 2 ] || fail "a drain through a hard link exited $st8, expected 2"
grep -q "in use by another broker (process $holder" "$WORK/bad8.err" ||
	fail "the hard link got past the lock"
echo "ok: bad outbox paths, a locked outbox (by any name) and invalid input exit 2 with the cause"

# --- 5. Files that are not outboxes, drains that cannot work --------------
printf 'not an outbox\n' >"$WORK/notes.txt"
chmod 644 "$WORK/notes.txt"
set +e
"$CMICRO_BIN" pub t m --outbox "$WORK/notes.txt" >"$WORK/bad9.out" 2>"$WORK/bad9.err"
st9=$?
"$CMICRO_BIN" pub --drain --outbox "$WORK/missing.db" >"$WORK/bad10.out" 2>"$WORK/bad10.err"
st10=$?
MICRO_BROKER_OUTBOX="$WORK/missing2.db" "$CMICRO_BIN" pub --drain >"$WORK/bad11.out" \
	2>"$WORK/bad11.err"
st11=$?
printf 'a\nb\n' | "$CMICRO_BIN" pub t - --header Micro-Id=fixed >"$WORK/bad12.out" \
	2>"$WORK/bad12.err"
st12=$?
set -e
[ "$st9" -eq 2 ] || fail "a text file as outbox exited $st9, expected 2"
grep -q "$WORK/notes.txt is not a cmicro outbox" "$WORK/bad9.err" ||
	fail "the text-file error does not say it is no outbox"
[ "$(stat -c %a "$WORK/notes.txt")" = 644 ] || fail "the rejected text file's mode changed"
[ "$(cat "$WORK/notes.txt")" = "not an outbox" ] || fail "the rejected text file changed"
[ ! -e "$WORK/notes.txt.lock" ] || fail "the rejected open left notes.txt.lock behind"
[ "$st10" -eq 2 ] || fail "draining a missing outbox exited $st10, expected 2"
grep -q "outbox $WORK/missing.db does not exist" "$WORK/bad10.err" ||
	fail "the missing-outbox error does not name the path"
[ ! -e "$WORK/missing.db" ] || fail "draining a missing outbox created it"
[ ! -e "$WORK/missing.db.lock" ] || fail "draining a missing outbox created a lock file"
[ "$st11" -eq 2 ] || fail "draining a missing MICRO_BROKER_OUTBOX exited $st11, expected 2"
[ ! -e "$WORK/missing2.db" ] || fail "draining a missing MICRO_BROKER_OUTBOX created it"
[ "$st12" -eq 2 ] || fail "a fixed Micro-Id with \"-\" exited $st12, expected 2"
grep -q "leave it out to give each line its own random id" "$WORK/bad12.err" ||
	fail "the fixed Micro-Id error does not give the fix"

# A row that cannot be sent stays, so the drain has not emptied the outbox.
set +e
"$CMICRO_BIN" pub badrow m --outbox "$WORK/ob7.db" --timeout 1 >/dev/null 2>"$WORK/pub7.err"
set -e
[ "$(rows "$WORK/ob7.db")" -eq 1 ] || fail "the outbox for the bad row holds $(rows "$WORK/ob7.db") rows"
sqlite3 "$WORK/ob7.db" "UPDATE messages SET topic = 'bad topic'"
set +e
"$CMICRO_BIN" pub --drain --outbox "$WORK/ob7.db" --timeout 2 >"$WORK/drain7.out" \
	2>"$WORK/drain7.err"
st13=$?
set -e
[ "$st13" -eq 1 ] || fail "a drain that left an invalid row exited $st13, expected 1"
grep -q "BROKER-OUTBOX-BAD-ROW" "$WORK/drain7.err" || fail "the invalid row was not logged"
grep -q "1 kept in outbox $WORK/ob7.db" "$WORK/drain7.err" || fail "the drain summary does not count the kept row"
[ "$(rows "$WORK/ob7.db")" -eq 1 ] || fail "the invalid row left the outbox"
echo "ok: a text file stays unchanged, a missing outbox is not drained, a fixed Micro-Id with - and an unsendable row are reported"

# --- 6. The closing summary counts messages in flight at the timeout -------
# summary_numbers FILE: "published delivered dropped kept" from the summary.
summary_numbers() {
	sed -n 's/.*; \([0-9]*\) published, \([0-9]*\) delivered, 0 in the backlog, \([0-9]*\) dropped\(, \([0-9]*\) kept in outbox .*\)\{0,1\}$/\1 \2 \3 \5/p' "$1"
}
start_sub frozen frozen
kill -STOP "$PID_frozen"
set +e
printf 'f-1\nf-2\nf-3\n' | "$CMICRO_BIN" pub frozen - --timeout 1 >"$WORK/pub8.out" \
	2>"$WORK/pub8.err"
st14=$?
printf 'g-1\ng-2\n' | "$CMICRO_BIN" pub frozen - --timeout 1 --outbox "$WORK/ob8.db" \
	>"$WORK/pub9.out" 2>"$WORK/pub9.err"
st15=$?
set -e
kill -CONT "$PID_frozen"
stop_sub frozen
[ "$st14" -eq 1 ] || fail "publishing to a stopped subscriber exited $st14, expected 1"
read -r published delivered dropped kept < <(summary_numbers "$WORK/pub8.err")
[ "${published:-}" = 3 ] || fail "the summary without an outbox does not count 3 published"
[ "$dropped" = 3 ] || fail "the summary counts $dropped dropped, expected the 3 in flight"
[ "$delivered" = 0 ] || fail "the summary counts $delivered delivered to a stopped subscriber"
[ "$((delivered + dropped + ${kept:-0}))" -eq "$published" ] ||
	fail "delivered, dropped and kept do not add up to published"
[ "$st15" -eq 1 ] || fail "publishing with an outbox to a stopped subscriber exited $st15, expected 1"
read -r published delivered dropped kept < <(summary_numbers "$WORK/pub9.err")
[ "${published:-}" = 2 ] || fail "the summary with an outbox does not count 2 published"
[ "$kept" = 2 ] || fail "the summary counts $kept kept in the outbox, expected 2"
[ "$dropped" = 0 ] || fail "the summary counts $dropped dropped with an outbox"
[ "$((delivered + dropped + kept))" -eq "$published" ] ||
	fail "delivered, dropped and kept do not add up to published with an outbox"
[ "$(rows "$WORK/ob8.db")" -eq 2 ] || fail "the outbox holds $(rows "$WORK/ob8.db") rows, expected 2"
echo "ok: messages in flight at the timeout are counted as dropped, or kept with an outbox"
