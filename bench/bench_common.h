/*
 * Helpers shared by the C benchmark programs (cmicro, mosquitto and NATS
 * publishers and subscribers): the timestamp carried in each message, the
 * latency record of a subscriber and its one-line result.
 *
 * Every message body starts with the publisher's CLOCK_REALTIME in
 * nanoseconds as a little-endian 64-bit integer, so a subscriber in another
 * process (or written in Go) computes publish-to-handler latency. The clock
 * is shared because publisher and subscriber run on the same machine.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_STAMP_LEN 8

static inline int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void bench_stamp(unsigned char *body)
{
	uint64_t now = (uint64_t)bench_now_ns();

	for (int i = 0; i < BENCH_STAMP_LEN; i++)
		body[i] = (unsigned char)(now >> (8 * i));
}

static inline int64_t bench_read_stamp(const void *body, size_t len)
{
	const unsigned char *p = body;
	uint64_t v = 0;

	if (len < BENCH_STAMP_LEN)
		return -1;
	for (int i = 0; i < BENCH_STAMP_LEN; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return (int64_t)v;
}

/* A payload of len bytes (at least the stamp) filled with printable bytes. */
static inline unsigned char *bench_payload_new(size_t len)
{
	unsigned char *p = malloc(len < BENCH_STAMP_LEN ? BENCH_STAMP_LEN : len);

	if (p != NULL)
		memset(p, 'x', len < BENCH_STAMP_LEN ? BENCH_STAMP_LEN : len);
	return p;
}

/*
 * Latencies of one subscriber. The first `warmup` messages (connection set-up,
 * TLS handshakes, cold caches) are left out of the rate and the percentiles.
 */
struct bench_record {
	long expected;
	long warmup;
	long received;
	int64_t *latency_ns;   /* one per measured message */
	int64_t window_start;  /* send time of the first measured message */
	int64_t last_recv;     /* receive time of the latest message */
};

static inline int bench_record_init(struct bench_record *r, long expected)
{
	memset(r, 0, sizeof(*r));
	r->expected = expected;
	r->warmup = expected / 10 < 200 ? expected / 10 : 200;
	r->latency_ns = calloc((size_t)expected, sizeof(int64_t));
	return r->latency_ns == NULL ? -1 : 0;
}

/* Records one message; returns 1 once every expected message arrived. The
 * caller serialises calls. */
static inline int bench_record_add(struct bench_record *r, const void *body, size_t len)
{
	int64_t now = bench_now_ns();
	int64_t sent = bench_read_stamp(body, len);

	if (r->received >= r->expected)
		return 1;
	if (r->received == r->warmup)
		r->window_start = sent;
	if (r->received >= r->warmup)
		r->latency_ns[r->received - r->warmup] = now - sent;
	r->received++;
	r->last_recv = now;
	return r->received >= r->expected;
}

static int bench_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a;
	int64_t y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Prints "RESULT received=N rate=R p50_us=A p99_us=B" on stdout. */
static inline void bench_record_print(struct bench_record *r)
{
	long n = r->received - r->warmup;
	double secs = (double)(r->last_recv - r->window_start) / 1e9;
	double p50 = 0;
	double p99 = 0;

	if (n > 0) {
		qsort(r->latency_ns, (size_t)n, sizeof(int64_t), bench_cmp_i64);
		p50 = (double)r->latency_ns[(n - 1) * 50 / 100] / 1e3;
		p99 = (double)r->latency_ns[(n - 1) * 99 / 100] / 1e3;
	}
	printf("RESULT received=%ld rate=%.1f p50_us=%.1f p99_us=%.1f\n", r->received,
	       n > 0 && secs > 0 ? (double)n / secs : 0.0, p50, p99);
	fflush(stdout);
}

static inline void bench_record_free(struct bench_record *r)
{
	free(r->latency_ns);
	r->latency_ns = NULL;
}

static inline long bench_parse_long(const char *s, const char *name, long min, long max)
{
	char *end = NULL;
	long v = strtol(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "bench: %s \"%s\" is not a number from %ld to %ld\n", name, s,
			min, max);
		exit(2);
	}
	return v;
}

#endif
