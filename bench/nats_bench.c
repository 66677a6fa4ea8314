/*
 * The NATS peer of the benchmark, with the nats.c client over TLS and
 * verification on (CA file; host name "localhost" checked against the
 * server certificate).
 *
 *   nats_bench sub CA PORT COUNT TIMEOUT_S
 *   nats_bench pub CA PORT COUNT SIZE INFLIGHT TIMEOUT_S
 *
 * The publisher runs INFLIGHT threads on one connection, each publishing a
 * message and flushing it (a PING/PONG round trip to the server) before the
 * next, so INFLIGHT messages are in flight.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <unistd.h>

#include "bench_common.h"

#define NATS_SUBJECT "bench"

struct nats_sub_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct bench_record rec;
	int done;
};

struct nats_pub_state {
	natsConnection *nc;
	long count;
	long size;
	int64_t deadline;
	long next;
	long ok;
	long failed;
	pthread_mutex_t lock;
};

static void check(natsStatus s, const char *operation)
{
	if (s != NATS_OK) {
		fprintf(stderr, "nats_bench: %s failed: %s\n", operation, natsStatus_GetText(s));
		exit(2);
	}
}

static natsConnection *nats_connect(const char *ca, const char *port)
{
	natsOptions *opts = NULL;
	natsConnection *nc = NULL;
	char url[64];

	snprintf(url, sizeof(url), "tls://127.0.0.1:%s", port);
	check(natsOptions_Create(&opts), "options");
	check(natsOptions_SetURL(opts, url), "URL");
	check(natsOptions_SetSecure(opts, true), "TLS");
	check(natsOptions_LoadCATrustedCertificates(opts, ca), "CA file");
	check(natsOptions_SetExpectedHostname(opts, "localhost"), "expected host name");
	check(natsConnection_Connect(&nc, opts), "connect");
	natsOptions_Destroy(opts);
	return nc;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *user)
{
	struct nats_sub_state *st = user;

	(void)nc;
	(void)sub;
	pthread_mutex_lock(&st->lock);
	if (bench_record_add(&st->rec, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg)) &&
	    !st->done) {
		st->done = 1;
		pthread_cond_signal(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
	natsMsg_Destroy(msg);
}

static int run_sub(char **argv)
{
	struct nats_sub_state st = {.lock = PTHREAD_MUTEX_INITIALIZER,
				    .cond = PTHREAD_COND_INITIALIZER};
	long count = bench_parse_long(argv[2], "COUNT", 1, 100000000);
	struct timespec deadline;
	natsConnection *nc;
	natsSubscription *sub = NULL;
	int rc;

	if (bench_record_init(&st.rec, count) != 0)
		return 2;
	nc = nats_connect(argv[0], argv[1]);
	check(natsConnection_Subscribe(&sub, nc, NATS_SUBJECT, on_msg, &st), "subscribe");
	check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits");
	check(natsConnection_FlushTimeout(nc, 5000), "flush");
	printf("READY pid=%ld\n", (long)getpid());
	fflush(stdout);

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += bench_parse_long(argv[3], "TIMEOUT_S", 1, 3600);
	pthread_mutex_lock(&st.lock);
	while (!st.done && pthread_cond_timedwait(&st.cond, &st.lock, &deadline) == 0)
		;
	bench_record_print(&st.rec);
	rc = st.rec.received >= count ? 0 : 1;
	pthread_mutex_unlock(&st.lock);

	natsSubscription_Unsubscribe(sub);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
	bench_record_free(&st.rec);
	return rc;
}

static void *pub_worker(void *arg)
{
	struct nats_pub_state *st = arg;
	unsigned char *body = bench_payload_new((size_t)st->size);

	for (;;) {
		natsStatus s;

		pthread_mutex_lock(&st->lock);
		if (st->next >= st->count || bench_now_ns() > st->deadline) {
			pthread_mutex_unlock(&st->lock);
			break;
		}
		st->next++;
		pthread_mutex_unlock(&st->lock);

		bench_stamp(body);
		s = natsConnection_Publish(st->nc, NATS_SUBJECT, body, (int)st->size);
		if (s == NATS_OK)
			s = natsConnection_FlushTimeout(st->nc, 10000);

		pthread_mutex_lock(&st->lock);
		if (s == NATS_OK)
			st->ok++;
		else
			st->failed++;
		pthread_mutex_unlock(&st->lock);
	}
	free(body);
	return NULL;
}

static int run_pub(char **argv)
{
	struct nats_pub_state st = {.lock = PTHREAD_MUTEX_INITIALIZER};
	long inflight = bench_parse_long(argv[4], "INFLIGHT", 1, 1024);
	pthread_t threads[1024];

	st.count = bench_parse_long(argv[2], "COUNT", 1, 100000000);
	st.size = bench_parse_long(argv[3], "SIZE", BENCH_STAMP_LEN, 1 << 20);
	st.deadline = bench_now_ns() + bench_parse_long(argv[5], "TIMEOUT_S", 1, 3600) * 1000000000LL;
	st.nc = nats_connect(argv[0], argv[1]);
	for (long i = 0; i < inflight; i++)
		pthread_create(&threads[i], NULL, pub_worker, &st);
	for (long i = 0; i < inflight; i++)
		pthread_join(threads[i], NULL);
	fprintf(stderr, "PUB ok=%ld failed=%ld\n", st.ok, st.failed);
	natsConnection_Destroy(st.nc);
	return st.ok >= st.count ? 0 : 1;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc == 6 && strcmp(argv[1], "sub") == 0) {
		rc = run_sub(argv + 2);
	} else if (argc == 8 && strcmp(argv[1], "pub") == 0) {
		rc = run_pub(argv + 2);
	} else {
		fprintf(stderr, "usage: nats_bench sub CA PORT COUNT TIMEOUT_S\n"
				"       nats_bench pub CA PORT COUNT SIZE INFLIGHT TIMEOUT_S\n");
		return 2;
	}
	nats_Close();
	return rc;
}
