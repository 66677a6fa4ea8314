/* The I/O loop that polls before it sleeps: the rule of its window, and a
 * real loop on a socket pair that polls while traffic comes, sleeps when it
 * stops, and ends on event_base_loopexit. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "http/http_int.h"
#include "testkit.h"

#define MAX_NS 200000 /* the broker's default maximum, 200 us */
#define ROUND_TRIPS 2000
#define WAIT_MS 5000

/* ---- the window rule ---- */

static void test_loop_window_grows_to_max(void **state)
{
	int64_t window = 0, prev;
	int steps = 0;

	(void)state;
	/* Short sleeps that ended with socket activity: a longer window would
	 * have saved each, so it opens and doubles up to the maximum. */
	window = cmi_http_loop_next_window(window, 1000, MAX_NS);
	assert_int_equal(window, CMI_HTTP_LOOP_FIRST_WINDOW_NS);
	do {
		prev = window;
		window = cmi_http_loop_next_window(window, 1000, MAX_NS);
		steps++;
		assert_true(window == MAX_NS || window == 2 * prev);
	} while (window < MAX_NS && steps < 64);
	assert_int_equal(window, MAX_NS);
	/* A sleep as long as the maximum still counts as short. */
	assert_int_equal(cmi_http_loop_next_window(MAX_NS, MAX_NS, MAX_NS), MAX_NS);
}

static void test_loop_window_closes_after_long_sleeps(void **state)
{
	int64_t window = MAX_NS;
	int steps = 0;

	(void)state;
	while (window > 0 && steps < 64) {
		int64_t next = cmi_http_loop_next_window(window, MAX_NS + 1, MAX_NS);

		assert_true(next == window / 2 || (next == 0 && window / 2 < CMI_HTTP_LOOP_FIRST_WINDOW_NS));
		window = next;
		steps++;
	}
	assert_int_equal(window, 0);
	/* From 200 us to closed in a handful of sleeps. */
	assert_true(steps <= 6);
	assert_int_equal(cmi_http_loop_next_window(0, 10 * MAX_NS, MAX_NS), 0);
}

static void test_loop_window_small_max(void **state)
{
	const int64_t max = CMI_HTTP_LOOP_FIRST_WINDOW_NS / 2;

	(void)state;
	assert_int_equal(cmi_http_loop_next_window(0, 1, max), max);
	assert_int_equal(cmi_http_loop_next_window(max, 1, max), max);
	assert_int_equal(cmi_http_loop_next_window(max, max + 1, max), 0);
}

/* ---- a real loop ---- */

struct echo_loop {
	struct event_base *base;
	struct event *ev;
	int sv[2]; /* sv[0] the test's end, sv[1] the loop's */
	int max_poll_us;
	long callback_us; /* how long each echo takes before it writes */
	struct event *tick; /* a timer set to every millisecond, or NULL */
	struct cmi_http_loop_stats stats;
	int rc;
	pthread_t thread;
};

/* Sends back what it reads, counted as socket activity as the HTTP
 * connections count theirs. */
static void echo_cb(evutil_socket_t fd, short what, void *arg)
{
	struct echo_loop *loop = arg;
	char buf[256];
	ssize_t n;

	(void)what;
	cmi_http_loop_note_activity();
	n = read(fd, buf, sizeof(buf));
	if (n <= 0)
		return;
	if (loop->callback_us > 0) {
		struct timespec work = {0, loop->callback_us * 1000};

		nanosleep(&work, NULL);
	}
	if (write(fd, buf, (size_t)n) != n)
		fail_msg("the echo could not write %zd bytes: %s", n, strerror(errno));
}

static void *echo_main(void *arg)
{
	struct echo_loop *loop = arg;

	loop->rc = cmi_http_loop_run(loop->base, loop->max_poll_us, &loop->stats);
	return NULL;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static void echo_start_with(struct echo_loop *loop, int max_poll_us, long callback_us, bool tick)
{
	memset(loop, 0, sizeof(*loop));
	loop->callback_us = callback_us;
	TK_OK(cmi_http_threads_init());
	loop->base = cmi_http_base_new();
	assert_non_null(loop->base);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, loop->sv), 0);
	loop->ev = event_new(loop->base, loop->sv[1], EV_READ | EV_PERSIST, echo_cb, loop);
	assert_non_null(loop->ev);
	assert_int_equal(event_add(loop->ev, NULL), 0);
	if (tick) {
		struct timeval ms = {0, 1000};

		loop->tick = event_new(loop->base, -1, EV_PERSIST, tick_cb, NULL);
		assert_non_null(loop->tick);
		assert_int_equal(event_add(loop->tick, &ms), 0);
	}
	loop->max_poll_us = max_poll_us;
	loop->rc = -2;
	assert_int_equal(pthread_create(&loop->thread, NULL, echo_main, loop), 0);
}

static void echo_start(struct echo_loop *loop, int max_poll_us)
{
	echo_start_with(loop, max_poll_us, 0, false);
}

/* Ends the loop from this thread and waits for it. */
static void echo_stop(struct echo_loop *loop)
{
	assert_int_equal(event_base_loopexit(loop->base, NULL), 0);
	assert_int_equal(pthread_join(loop->thread, NULL), 0);
	assert_int_equal(loop->rc, 0);
	if (loop->tick != NULL)
		event_free(loop->tick);
	event_free(loop->ev);
	event_base_free(loop->base);
	close(loop->sv[0]);
	close(loop->sv[1]);
}

/* One byte there and back, within WAIT_MS. */
static void round_trip(struct echo_loop *loop, char byte)
{
	struct pollfd p = {.fd = loop->sv[0], .events = POLLIN};
	char got = 0;

	assert_int_equal(write(loop->sv[0], &byte, 1), 1);
	if (poll(&p, 1, WAIT_MS) != 1)
		fail_msg("no echo of byte '%c' within %d ms", byte, WAIT_MS);
	assert_int_equal(read(loop->sv[0], &got, 1), 1);
	assert_int_equal(got, byte);
}

static void test_loop_polls_while_traffic_comes(void **state)
{
	struct echo_loop loop;

	(void)state;
	/* A wide maximum, so that the window covers a slow round trip on a
	 * loaded machine too. */
	echo_start(&loop, 2000);
	for (int i = 0; i < ROUND_TRIPS; i++)
		round_trip(&loop, (char)('a' + i % 26));
	echo_stop(&loop);
	/* Each echo comes back within microseconds, so the loop opened its
	 * window and found the next byte while it polled. */
	if (loop.stats.poll_hits == 0)
		fail_msg("%d round trips: %lu polls, %lu sleeps, no byte found while polling",
			 ROUND_TRIPS, loop.stats.polls, loop.stats.sleeps);
	assert_true(loop.stats.polls >= loop.stats.poll_hits);
}

static void test_loop_without_polling_sleeps(void **state)
{
	struct echo_loop loop;

	(void)state;
	echo_start(&loop, 0);
	for (int i = 0; i < ROUND_TRIPS / 4; i++)
		round_trip(&loop, (char)('A' + i % 26));
	echo_stop(&loop);
	assert_int_equal(loop.stats.polls, 0);
	assert_int_equal(loop.stats.window_ns, 0);
}

static double thread_cpu_ms(pthread_t t)
{
	clockid_t clock;
	struct timespec ts;

	assert_int_equal(pthread_getcpuclockid(t, &clock), 0);
	assert_int_equal(clock_gettime(clock, &ts), 0);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Returns the CPU time the loop thread used in 300 ms without traffic,
 * then checks that the loop still serves. */
static double quiet_cpu_ms(struct echo_loop *loop)
{
	struct timespec quiet = {0, 300 * 1000 * 1000};
	double before = thread_cpu_ms(loop->thread);
	double spent;

	nanosleep(&quiet, NULL);
	spent = thread_cpu_ms(loop->thread) - before;
	round_trip(loop, '!');
	return spent;
}

/* After the traffic stops, the loop polls one window at most and then
 * sleeps: 300 ms of silence cost its thread almost no CPU, where a loop
 * that kept polling would spend them all. */
static void test_loop_sleeps_when_traffic_stops(void **state)
{
	struct echo_loop loop;
	double spent;

	(void)state;
	echo_start(&loop, (int)(MAX_NS / 1000));
	for (int i = 0; i < ROUND_TRIPS / 4; i++)
		round_trip(&loop, (char)('0' + i % 10));
	spent = quiet_cpu_ms(&loop);
	echo_stop(&loop);
	if (spent > 30.0)
		fail_msg("the loop thread used %.1f ms of CPU in 300 ms without traffic", spent);
}

/* A callback that runs longer than the maximum window does not close the
 * window: the sleep before it is what counts. */
static void test_loop_long_callback_keeps_polling(void **state)
{
	struct echo_loop loop;

	(void)state;
	echo_start_with(&loop, (int)(MAX_NS / 1000), 300, false);
	for (int i = 0; i < ROUND_TRIPS / 4; i++)
		round_trip(&loop, (char)('a' + i % 26));
	echo_stop(&loop);
	if (loop.stats.poll_hits == 0)
		fail_msg("%d round trips with 300 us callbacks: %lu polls, %lu sleeps, no byte "
			 "found while polling",
			 ROUND_TRIPS / 4, loop.stats.polls, loop.stats.sleeps);
}

/* A timer that fires after the traffic stopped does not start a poll, so a
 * timer every millisecond costs the quiet loop almost no CPU. */
static void test_loop_timer_starts_no_poll(void **state)
{
	struct echo_loop loop;
	double spent;

	(void)state;
	/* Round trips 500 us apart widen the window towards the 2 ms maximum,
	 * which a poll after each tick would then fill. */
	echo_start_with(&loop, 2000, 0, true);
	for (int i = 0; i < 40; i++) {
		struct timespec gap = {0, 500 * 1000};

		nanosleep(&gap, NULL);
		round_trip(&loop, (char)('k' + i % 10));
	}
	spent = quiet_cpu_ms(&loop);
	echo_stop(&loop);
	if (spent > 25.0)
		fail_msg("the loop thread used %.1f ms of CPU in 300 ms of timer wake-ups "
			 "without traffic",
			 spent);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loop_window_grows_to_max),
		cmocka_unit_test(test_loop_window_closes_after_long_sleeps),
		cmocka_unit_test(test_loop_window_small_max),
		cmocka_unit_test(test_loop_polls_while_traffic_comes),
		cmocka_unit_test(test_loop_without_polling_sleeps),
		cmocka_unit_test(test_loop_sleeps_when_traffic_stops),
		cmocka_unit_test(test_loop_long_callback_keeps_polling),
		cmocka_unit_test(test_loop_timer_starts_no_poll),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
