/*
 * cmicro_bench_sub CA CERT KEY REGISTRY TOPIC COUNT TIMEOUT_S
 *
 * Subscribes to TOPIC over TLS 1.3 and records the publish-to-handler latency
 * of COUNT messages, then prints one RESULT line (see bench_common.h). Prints
 * "READY pid=P address=A" once subscribed. Exits after COUNT messages or
 * TIMEOUT_S seconds, whichever comes first; status 1 when messages are
 * missing.
 */
#include <pthread.h>
#include <unistd.h>

#include "bench_common.h"
#include "cmicro_bench.h"

struct sub_state {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	struct bench_record rec;
	int done;
};

static int sub_handle(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct sub_state *st = user;
	size_t len = 0;
	const void *body = cmicro_message_body(msg, &len);

	(void)topic;
	pthread_mutex_lock(&st->lock);
	if (bench_record_add(&st->rec, body, len) && !st->done) {
		st->done = 1;
		pthread_cond_signal(&st->done_cond);
	}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

static void sub_wait(struct sub_state *st, long timeout_s)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_s;
	pthread_mutex_lock(&st->lock);
	while (!st->done) {
		if (pthread_cond_timedwait(&st->done_cond, &st->lock, &deadline) != 0)
			break;
	}
	pthread_mutex_unlock(&st->lock);
}

int main(int argc, char **argv)
{
	struct sub_state st = {.lock = PTHREAD_MUTEX_INITIALIZER,
			       .done_cond = PTHREAD_COND_INITIALIZER};
	struct bench_tls_files files;
	struct cmicro_broker *b = NULL;
	struct cmicro_subscription *sub = NULL;
	long count;
	long timeout_s;
	int rc;

	if (argc != 8) {
		fprintf(stderr, "usage: cmicro_bench_sub CA CERT KEY REGISTRY TOPIC COUNT "
				"TIMEOUT_S\n");
		return 2;
	}
	files = (struct bench_tls_files){argv[1], argv[2], argv[3]};
	count = bench_parse_long(argv[6], "COUNT", 1, 100000000);
	timeout_s = bench_parse_long(argv[7], "TIMEOUT_S", 1, 3600);
	if (bench_record_init(&st.rec, count) != 0)
		return 2;
	if (bench_broker_start(&files, argv[4], &b) != 0)
		return 2;
	rc = cmicro_broker_subscribe(b, argv[5], NULL, sub_handle, &st, &sub);
	if (rc != 0) {
		bench_fail("subscribe", rc);
		cmicro_broker_free(b);
		return 2;
	}
	printf("READY pid=%ld address=%s\n", (long)getpid(), cmicro_subscription_address(sub));
	fflush(stdout);

	sub_wait(&st, timeout_s);
	pthread_mutex_lock(&st.lock);
	bench_record_print(&st.rec);
	rc = st.rec.received >= count ? 0 : 1;
	pthread_mutex_unlock(&st.lock);

	cmicro_subscription_free(sub);
	cmicro_broker_free(b);
	bench_record_free(&st.rec);
	return rc;
}
