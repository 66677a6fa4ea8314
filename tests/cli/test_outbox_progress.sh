#!/usr/bin/env bash
# The outbox records each node that has a message as soon as that node
# responds, not when the slowest node of the attempt does. With one of two
# broadcast subscribers stopped, a publisher that exits keeps its messages
# with the running subscriber's node recorded, and the drain after the
# stopped one resumes delivers only to it.
source "$(dirname "$0")/pubsub_common.sh"

start_sub up progress
start_sub down progress
up=$(sub_node up)
# A stopped process ends on SIGTERM only once continued, so the cleanup
# continues it first, also when a check fails.
trap 'kill -CONT "$PID_down" 2>/dev/null; cleanup' EXIT
kill -STOP "$PID_down"

# The publisher gives up on the stopped node after its timeout and keeps
# the messages in the outbox.
set +e
printf 'p-1\np-2\np-3\n' | "$CMICRO_BIN" pub progress - --outbox "$WORK/ob.db" --timeout 3 \
	>"$WORK/pub.out" 2>"$WORK/pub.err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "the publisher exited $rc, expected 1 with the stopped node undelivered"
for i in 1 2 3; do
	wait_for "$WORK/up.out" " p-$i\$" 10
done

rows=$(sqlite3 "$WORK/ob.db" 'SELECT count(*) FROM messages')
[ "$rows" -eq 3 ] || fail "the outbox holds $rows messages, expected 3"
with_up=$(sqlite3 "$WORK/ob.db" "SELECT count(*) FROM messages WHERE got_nodes LIKE '%$up%'")
[ "$with_up" -eq 3 ] ||
	fail "$with_up of 3 outbox rows record node $up, which received every message"

# Resumed, the stopped node gets the messages; the running one not again.
kill -CONT "$PID_down"
"$CMICRO_BIN" pub --drain --outbox "$WORK/ob.db" --timeout 20 >"$WORK/drain.out" \
	2>"$WORK/drain.err" || fail "the drain exited with status $?"
for i in 1 2 3; do
	wait_for "$WORK/down.out" " p-$i\$" 10
done
sleep 1
for i in 1 2 3; do
	n=$(count_body "$WORK/up.out" "p-$i")
	[ "$n" -eq 1 ] || fail "the running subscriber got p-$i $n times"
done
echo "ok: the outbox recorded the responding node at once; the drain skipped it"
