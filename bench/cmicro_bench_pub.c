/*
 * cmicro_bench_pub CA CERT KEY REGISTRY TOPIC COUNT SIZE INFLIGHT TIMEOUT_S
 *
 * Publishes COUNT messages of SIZE bytes to TOPIC, keeping INFLIGHT of them
 * in flight. The main thread publishes the first INFLIGHT. Each result that
 * comes back through cmicro_broker_publish_notify (every subscriber
 * returned 2xx, or the first attempt failed) then publishes the next
 * message from the callback, on the broker's I/O thread, as an
 * event-driven service would. Prints "PUB ok=N failed=N" on standard
 * error, and gives up after TIMEOUT_S seconds.
 */
#include <pthread.h>

#include "bench_common.h"
#include "cmicro_bench.h"

struct pub_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cmicro_broker *broker;
	const char *topic;
	struct cmicro_message *msg; /* used on the I/O thread only */
	unsigned char *body;
	size_t size;
	long count;
	long published;
	long ok;
	long failed;
	int error; /* the first publish that failed */
};

static void pub_done(void *user, const struct cmicro_publish_result *result);

/* Publishes the next message (lock held). Returns false when all are out
 * or publishing failed. */
static bool pub_next(struct pub_state *st, struct cmicro_message *msg, unsigned char *body)
{
	int rc;

	if (st->published >= st->count || st->error != 0)
		return false;
	bench_stamp(body);
	rc = cmicro_message_set_body(msg, body, st->size);
	if (rc == 0)
		rc = cmicro_broker_publish_notify(st->broker, st->topic, msg, pub_done, st);
	if (rc != 0) {
		st->error = rc;
		bench_fail("publish", rc);
		return false;
	}
	st->published++;
	return true;
}

/* Runs on the broker's I/O thread: counts the result and publishes the
 * next message in its place. */
static void pub_done(void *user, const struct cmicro_publish_result *result)
{
	struct pub_state *st = user;

	pthread_mutex_lock(&st->lock);
	if (result->err == 0 && result->received == result->targets)
		st->ok++;
	else
		st->failed++;
	pub_next(st, st->msg, st->body);
	if (st->ok + st->failed >= st->published)
		pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static int pub_run(struct pub_state *st, long inflight, long timeout_s)
{
	struct cmicro_message *first = NULL;
	unsigned char *body = bench_payload_new(st->size);
	struct timespec deadline;
	int rc = body == NULL ? CMICRO_ENOMEM : cmicro_message_new(&first);

	st->body = bench_payload_new(st->size);
	if (rc == 0 && st->body == NULL)
		rc = CMICRO_ENOMEM;
	if (rc == 0)
		rc = cmicro_message_new(&st->msg);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_s;
	pthread_mutex_lock(&st->lock);
	for (long i = 0; rc == 0 && i < inflight && pub_next(st, first, body); i++)
		;
	while (rc == 0 && st->ok + st->failed < st->published &&
	       pthread_cond_timedwait(&st->cond, &st->lock, &deadline) == 0)
		;
	if (rc == 0 && st->error != 0)
		rc = st->error;
	if (rc == 0 && st->ok + st->failed < st->count) {
		fprintf(stderr, "bench: timed out after %ld messages\n", st->ok + st->failed);
		rc = CMICRO_ETIMEDOUT;
	}
	pthread_mutex_unlock(&st->lock);
	cmicro_message_free(first);
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

	st.broker = b;
	st.topic = argv[5];
	st.count = count;
	st.size = (size_t)size;
	rc = pub_run(&st, inflight, timeout_s);
	/* Freeing the broker first ends the callbacks that use st. */
	cmicro_broker_free(b);
	fprintf(stderr, "PUB ok=%ld failed=%ld\n", st.ok, st.failed);
	cmicro_message_free(st.msg);
	free(st.body);
	return rc == 0 && st.failed == 0 ? 0 : 1;
}
