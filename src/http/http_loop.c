/*
 * The loop of an I/O thread that polls a while before it sleeps.
 *
 * A thread that sleeps in epoll_wait and is woken by a socket pays for the
 * wake-up. On the 2-core virtual machine of docs/benchmarks.md, 25 to 40
 * us passed between a wake-up and the thread running on the other CPU,
 * because an idle virtual CPU halts. With messages every few tens of
 * microseconds those waits, not the work, set the rate. So after socket
 * activity the loop keeps polling (epoll_wait with a zero timeout) for a
 * window before it sleeps.
 *
 * Between two polls the thread yields its CPU. Without that, a polling I/O
 * thread kept the handler thread it had just woken off the CPU they
 * shared, and on 2 cores two polling processes left it no CPU at all.
 *
 * The window adapts as KVM's halt polling does with a shrink factor of 2
 * (Linux, Documentation/virt/kvm/halt-polling.rst): see
 * cmi_http_loop_next_window. A broker that gets a message now and then
 * soon stops polling.
 */
#include <sched.h>
#include <stdint.h>
#include <time.h>

#include <event2/event.h>

#include "http/http_int.h"

/* The calling thread's loop state: the activity count, and while the loop
 * sleeps, when the first activity woke it. A sleep is measured up to that
 * wake-up, so a callback that runs long does not count as sleep. */
static _Thread_local unsigned long tl_activity;
static _Thread_local bool tl_sleeping;
static _Thread_local int64_t tl_woke_ns;

static int64_t loop_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

void cmi_http_loop_note_activity(void)
{
	tl_activity++;
	if (tl_sleeping) {
		tl_sleeping = false;
		tl_woke_ns = loop_now_ns();
	}
}

static bool loop_ended(struct event_base *base)
{
	return event_base_got_exit(base) || event_base_got_break(base);
}

int64_t cmi_http_loop_next_window(int64_t window_ns, int64_t slept_ns, int64_t max_ns)
{
	int64_t first = CMI_HTTP_LOOP_FIRST_WINDOW_NS < max_ns ? CMI_HTTP_LOOP_FIRST_WINDOW_NS
							       : max_ns;

	if (slept_ns > max_ns)
		return window_ns / 2 >= first ? window_ns / 2 : 0;
	if (window_ns <= 0)
		return first;
	return window_ns < max_ns / 2 ? window_ns * 2 : max_ns;
}

/* Runs the callbacks that are ready, without sleeping, until window_ns
 * pass without socket activity. Returns -1 on a loop error, 1 when
 * event_base_loopexit ended the loop, else 0. */
static int loop_poll(struct event_base *base, int64_t window_ns,
		     struct cmi_http_loop_stats *stats)
{
	int64_t start = loop_now_ns();

	for (;;) {
		unsigned long seen = tl_activity;
		int64_t now;

		if (event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY) < 0)
			return -1;
		stats->polls++;
		if (loop_ended(base))
			return 1;
		now = loop_now_ns();
		if (tl_activity != seen) {
			stats->poll_hits++;
			start = now;
		} else if (now - start >= window_ns) {
			return 0;
		} else {
			sched_yield();
		}
	}
}

int cmi_http_loop_run(struct event_base *base, int max_poll_us,
		      struct cmi_http_loop_stats *stats_out)
{
	struct cmi_http_loop_stats local = {0};
	struct cmi_http_loop_stats *stats = stats_out != NULL ? stats_out : &local;
	int64_t max_ns = (int64_t)max_poll_us * 1000;

	bool traffic = false;

	stats->window_ns = 0;
	if (max_poll_us <= 0)
		return event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY) < 0 ? -1 : 0;
	for (;;) {
		unsigned long seen;
		int64_t start;
		int rc;

		/* Only traffic starts a poll: a timer, such as the reply poll
		 * of slow handlers, wakes the loop without it. */
		if (traffic && stats->window_ns > 0) {
			rc = loop_poll(base, stats->window_ns, stats);
			if (rc != 0)
				return rc < 0 ? -1 : 0;
		}
		seen = tl_activity;
		start = loop_now_ns();
		tl_sleeping = true;
		rc = event_base_loop(base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
		tl_sleeping = false;
		if (rc < 0)
			return -1;
		stats->sleeps++;
		if (loop_ended(base))
			return 0;
		/* Timer callbacks are not traffic, so they leave the window as it is. */
		traffic = tl_activity != seen;
		if (traffic)
			stats->window_ns = cmi_http_loop_next_window(stats->window_ns,
								  tl_woke_ns - start, max_ns);
	}
}
