/*
 * cmicro_bench_pub CA CERT KEY REGISTRY TOPIC COUNT SIZE INFLIGHT TIMEOUT_S
 *
 * Publishes COUNT messages of SIZE bytes to TOPIC, keeping INFLIGHT of them
 * in flight: a new message is published only when the result of an earlier
 * one (every subscriber returned 2xx, or the first attempt failed) came back
 * through cmicro_broker_publish_notify. Prints "PUB ok=N failed=N" on
 * standard error. Gives up after TIMEOUT_S seconds.
 */
#include <pthread.h>

#include "bench_common.h"
#include "cmicro_bench.h"

struct pub_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long inflight;
	long ok;
	long failed;
};

/* Runs on the broker's I/O thread, so it only counts and wakes main. */
static void pub_done(void *user, const struct cmicro_publish_result *result)
{
	struct pub_state *st = user;

	pthread_mutex_lock(&st->lock);
	st->inflight--;
	if (result->err == 0 && result->received == result->targets)
		st->ok++;
	else
		st->failed++;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

/* Waits until fewer than max messages are in flight; false on timeout. */
static bool pub_wait_below(struct pub_state *st, long max, const struct timespec *deadline)
{
	bool ok = true;

	pthread_mutex_lock(&st->lock);
	while (st->inflight >= max && ok)
		ok = pthread_cond_timedwait(&st->cond, &st->lock, deadline) == 0;
	if (st->inflight < max)
		st->inflight++;
	pthread_mutex_unlock(&st->lock);
	return ok;
}

static int pub_run(struct cmicro_broker *b, const char *topic, long count, size_t size,
		   long inflight, long timeout_s, struct pub_state *st)
{
	struct cmicro_message *msg = NULL;
	unsigned char *body = bench_payload_new(size);
	struct timespec deadline;
	int rc = body == NULL ? CMICRO_ENOMEM : cmicro_message_new(&msg);

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_s;
	for (long i = 0; rc == 0 && i < count; i++) {
		if (!pub_wait_below(st, inflight, &deadline)) {
			fprintf(stderr, "bench: timed out after %ld messages\n", i);
			rc = CMICRO_ETIMEDOUT;
			break;
		}
		bench_stamp(body);
		rc = cmicro_message_set_body(msg, body, size);
		if (rc == 0)
			rc = cmicro_broker_publish_notify(b, topic, msg, pub_done, st);
		if (rc != 0)
			bench_fail("publish", rc);
	}
	if (rc == 0 && !pub_wait_below(st, 1, &deadline))
		rc = CMICRO_ETIMEDOUT;
	cmicro_message_free(msg);
	free(body);
	return rc;
}

int main(int argc, char **argv)
{
	struct pub_state st = {.lock = PTHREAD_MUTEX_INITIALIZER,
			       .cond = PTHREAD_COND_INITIALIZER};
	struct bench_tls_files files;
	struct cmicro_broker *b = NULL;
	long count;
	long size;
	long inflight;
	long timeout_s;
	int rc;

	if (argc != 10) {
		fprintf(stderr, "usage: cmicro_bench_pub CA CERT KEY REGISTRY TOPIC COUNT SIZE "
				"INFLIGHT TIMEOUT_S\n");
		return 2;
	}
	files = (struct bench_tls_files){argv[1], argv[2], argv[3]};
	count = bench_parse_long(argv[6], "COUNT", 1, 100000000);
	size = bench_parse_long(argv[7], "SIZE", BENCH_STAMP_LEN, 1 << 20);
	inflight = bench_parse_long(argv[8], "INFLIGHT", 1, 4096);
	timeout_s = bench_parse_long(argv[9], "TIMEOUT_S", 1, 3600);
	if (bench_broker_start(&files, argv[4], &b) != 0)
		return 2;

	rc = pub_run(b, argv[5], count, (size_t)size, inflight, timeout_s, &st);
	pthread_mutex_lock(&st.lock);
	fprintf(stderr, "PUB ok=%ld failed=%ld\n", st.ok, st.failed);
	pthread_mutex_unlock(&st.lock);
	cmicro_broker_free(b);
	return rc == 0 && st.failed == 0 ? 0 : 1;
}
