/*
 * Measures what a subscriber costs while a slow handler has messages queued:
 * one process subscribes with a handler that sleeps 200 ms, publishes N
 * messages to itself through a second broker, and prints the wall time, the
 * CPU time and the voluntary context switches until all were delivered.
 *
 * usage: slow_handler [N]   (default 25; built by bench/run.sh and
 *                           bench/cpustat.sh into BENCH_BUILD_DIR/bench)
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmicro/cmicro.h>

#define HANDLER_SLEEP_US (200 * 1000)
#define FLUSH_MS 120000

static int slow_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	(void)user;
	(void)topic;
	(void)msg;
	usleep(HANDLER_SLEEP_US);
	return 0;
}

static double cpu_ms(const struct rusage *a, const struct rusage *b)
{
	return ((double)(b->ru_utime.tv_sec - a->ru_utime.tv_sec) +
		(double)(b->ru_stime.tv_sec - a->ru_stime.tv_sec)) * 1e3 +
	       ((double)(b->ru_utime.tv_usec - a->ru_utime.tv_usec) +
		(double)(b->ru_stime.tv_usec - a->ru_stime.tv_usec)) / 1e3;
}

static int fail(const char *what)
{
	fprintf(stderr, "slow_handler: %s: %s\n", what, cmicro_last_errmsg());
	return 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 25;
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *sub_b = NULL, *pub_b = NULL;
	struct cmicro_subscription *sub = NULL;
	struct rusage before, after;
	struct timespec t0, t1;

	if (n < 1 || n > 1000) {
		fprintf(stderr, "slow_handler: N \"%s\" is not a count from 1 to 1000\n", argv[1]);
		return 2;
	}
	cmicro_log_set_handler(cmicro_log_null, NULL);
	cmicro_broker_opts_init(&opts);
	if (cmicro_registry_memory_new(&reg) != 0)
		return fail("registry");
	opts.registry = reg;
	if (cmicro_broker_new(&opts, &sub_b) != 0 || cmicro_broker_connect(sub_b) != 0 ||
	    cmicro_broker_new(&opts, &pub_b) != 0 || cmicro_broker_connect(pub_b) != 0)
		return fail("broker");
	if (cmicro_broker_subscribe(sub_b, "slow", NULL, slow_handler, NULL, &sub) != 0)
		return fail("subscribe");

	getrusage(RUSAGE_SELF, &before);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		struct cmicro_message *msg = NULL;

		if (cmicro_message_new(&msg) != 0 || cmicro_message_set_body(msg, "x", 1) != 0 ||
		    cmicro_broker_publish(pub_b, "slow", msg, NULL) != 0)
			return fail("publish");
		cmicro_message_free(msg);
	}
	if (cmicro_broker_flush(pub_b, FLUSH_MS) != 0)
		return fail("flush");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	getrusage(RUSAGE_SELF, &after);

	printf("%d messages, %.2f s, CPU %.1f ms, voluntary context switches %ld\n", n,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       cpu_ms(&before, &after), after.ru_nvcsw - before.ru_nvcsw);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pub_b);
	cmicro_broker_free(sub_b);
	cmicro_registry_free(reg);
	return 0;
}
