/* cmicro_broker_publish_notify: the result reaches the callback on the
 * I/O thread, and a callback may publish the next message itself, which is
 * how an event-driven publisher keeps a fixed number in flight. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testkit.h"

#define WAIT_MS 10000
#define CHAIN 300
#define IN_FLIGHT 4

struct counter {
	atomic_int received;
	atomic_int bad_body; /* bodies not "n=<number>" */
	atomic_uint seen[CHAIN / 32 + 1]; /* one bit per number received */
};

static int count_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct counter *c = user;
	size_t len = 0;
	const char *body = cmicro_message_body(msg, &len);
	char text[32];
	int n;

	(void)topic;
	snprintf(text, sizeof(text), "%.*s", (int)(len < 31 ? len : 31), body ? body : "");
	if (sscanf(text, "n=%d", &n) != 1 || n < 0 || n >= CHAIN)
		atomic_fetch_add(&c->bad_body, 1);
	else
		atomic_fetch_or(&c->seen[n / 32], 1u << (n % 32));
	atomic_fetch_add(&c->received, 1);
	return 0;
}

/* The publisher side of a chain: each result publishes the next number. */
struct chain {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cmicro_broker *b;
	int next;       /* the next number to publish */
	int results;
	int ok;
	int not_found;  /* results with CMICRO_ENOTFOUND */
	int publish_rc; /* first failure of a publish made in the callback */
	pthread_t callback_thread;
	bool callback_thread_set;
	bool other_thread; /* a callback ran on another thread than the first */
};

static void chain_done(void *user, const struct cmicro_publish_result *result);

/* Publishes the next number (lock held). */
static void chain_publish(struct chain *ch)
{
	struct cmicro_message *msg = NULL;
	char body[32];
	int rc;

	if (ch->next >= CHAIN || ch->publish_rc != 0)
		return;
	snprintf(body, sizeof(body), "n=%d", ch->next);
	rc = cmicro_message_new(&msg);
	if (rc == 0)
		rc = cmicro_message_set_body(msg, body, strlen(body));
	if (rc == 0)
		rc = cmicro_broker_publish_notify(ch->b, "chain", msg, chain_done, ch);
	cmicro_message_free(msg);
	if (rc != 0)
		ch->publish_rc = rc;
	else
		ch->next++;
}

static void chain_done(void *user, const struct cmicro_publish_result *result)
{
	struct chain *ch = user;

	pthread_mutex_lock(&ch->lock);
	if (!ch->callback_thread_set) {
		ch->callback_thread = pthread_self();
		ch->callback_thread_set = true;
	} else if (!pthread_equal(ch->callback_thread, pthread_self())) {
		ch->other_thread = true;
	}
	ch->results++;
	ch->ok += result->err == 0 && result->received == result->targets && result->targets == 1;
	ch->not_found += result->err == CMICRO_ENOTFOUND;
	chain_publish(ch);
	pthread_cond_signal(&ch->cond);
	pthread_mutex_unlock(&ch->lock);
}

static struct cmicro_broker *broker_start(struct cmicro_registry *reg)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	TK_OK(cmicro_broker_new(&opts, &b));
	TK_OK(cmicro_broker_connect(b));
	return b;
}

static void wait_results(struct chain *ch, int want)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&ch->lock);
	while (ch->results < want &&
	       pthread_cond_timedwait(&ch->cond, &ch->lock, &deadline) == 0)
		;
	pthread_mutex_unlock(&ch->lock);
}

static void test_notify_callback_publishes_chain(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct counter *c = calloc(1, sizeof(*c));
	struct chain ch = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	int missing = 0;

	(void)state;
	assert_non_null(c);
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_start(reg);
	pb = broker_start(reg);
	TK_OK(cmicro_broker_subscribe(sb, "chain", NULL, count_handler, c, &sub));
	ch.b = pb;

	pthread_mutex_lock(&ch.lock);
	for (int i = 0; i < IN_FLIGHT; i++)
		chain_publish(&ch);
	pthread_mutex_unlock(&ch.lock);
	wait_results(&ch, CHAIN);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));

	pthread_mutex_lock(&ch.lock);
	assert_int_equal(ch.publish_rc, 0);
	assert_int_equal(ch.next, CHAIN);
	assert_int_equal(ch.results, CHAIN);
	assert_int_equal(ch.ok, CHAIN);
	assert_false(ch.other_thread);
	assert_false(pthread_equal(ch.callback_thread, pthread_self()));
	pthread_mutex_unlock(&ch.lock);
	for (int i = 0; i < WAIT_MS / 10 && atomic_load(&c->received) < CHAIN; i++)
		usleep(10 * 1000);
	assert_int_equal(atomic_load(&c->received), CHAIN);
	assert_int_equal(atomic_load(&c->bad_body), 0);
	for (int n = 0; n < CHAIN; n++)
		missing += (atomic_load(&c->seen[n / 32]) & (1u << (n % 32))) == 0;
	assert_int_equal(missing, 0);

	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	free(c);
}

/* A topic without subscribers: every result reports CMICRO_ENOTFOUND, and
 * a callback that publishes again on each one stops when the chain ends. */
static void test_notify_no_subscriber_chain_ends(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *pb;
	struct chain ch = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct cmicro_broker_stats stats;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	pb = broker_start(reg);
	ch.b = pb;
	ch.next = CHAIN - 20;

	pthread_mutex_lock(&ch.lock);
	chain_publish(&ch);
	pthread_mutex_unlock(&ch.lock);
	wait_results(&ch, 20);

	pthread_mutex_lock(&ch.lock);
	assert_int_equal(ch.publish_rc, 0);
	assert_int_equal(ch.results, 20);
	assert_int_equal(ch.ok, 0);
	assert_int_equal(ch.not_found, 20);
	pthread_mutex_unlock(&ch.lock);
	cmicro_broker_get_stats(pb, &stats);
	assert_int_equal(stats.published, 20);
	assert_int_equal(stats.delivered, 0);

	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
}

/* Waits, with lock held, until *flag is set or WAIT_MS passed. */
static void wait_flag_locked(pthread_mutex_t *lock, pthread_cond_t *cond, const bool *flag)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT_MS / 1000;
	while (!*flag && pthread_cond_timedwait(cond, lock, &deadline) == 0)
		;
}

/* A handler that returns at once for "fast" and blocks on "slow" until the
 * test opens the gate. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open;
	bool slow_entered;
};

static int gate_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct gate *g = user;
	size_t len = 0;
	const char *body = cmicro_message_body(msg, &len);

	(void)topic;
	if (body == NULL || len != 4 || memcmp(body, "slow", 4) != 0)
		return 0;
	pthread_mutex_lock(&g->lock);
	g->slow_entered = true;
	pthread_cond_broadcast(&g->cond);
	wait_flag_locked(&g->lock, &g->cond, &g->open);
	pthread_mutex_unlock(&g->lock);
	return 0;
}

struct outcome {
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	bool done;
	int err;
	size_t received;
};

static void outcome_done(void *user, const struct cmicro_publish_result *result)
{
	struct outcome *o = user;

	pthread_mutex_lock(o->lock);
	o->done = true;
	o->err = result->err;
	o->received = result->received;
	pthread_cond_broadcast(o->cond);
	pthread_mutex_unlock(o->lock);
}

static void publish_on(struct cmicro_broker *b, const char *topic, const char *body,
		       struct outcome *o)
{
	struct cmicro_message *msg = NULL;

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, body, strlen(body)));
	TK_OK(cmicro_broker_publish_notify(b, topic, msg, outcome_done, o));
	cmicro_message_free(msg);
}

/* Waits (bounded) until o is done; returns whether it is. */
static bool outcome_wait(struct outcome *o)
{
	bool done;

	pthread_mutex_lock(o->lock);
	wait_flag_locked(o->lock, o->cond, &o->done);
	done = o->done;
	pthread_mutex_unlock(o->lock);
	return done;
}

/* Two messages published together reach one handler thread in a row. The
 * reply to the first, which the thread holds to send with the next, still
 * reaches the publisher while the second handler blocks. */
static void test_notify_reply_not_held_by_slow_handler(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
	struct outcome fast = {&g.lock, &g.cond, false, 0, 0};
	struct outcome slow = {&g.lock, &g.cond, false, 0, 0};
	bool fast_done;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_start(reg);
	pb = broker_start(reg);
	TK_OK(cmicro_broker_subscribe(sb, "gated", NULL, gate_handler, &g, &sub));

	publish_on(pb, "gated", "fast", &fast);
	publish_on(pb, "gated", "slow", &slow);
	fast_done = outcome_wait(&fast);

	pthread_mutex_lock(&g.lock);
	assert_false(slow.done);
	g.open = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	assert_true(fast_done);
	assert_int_equal(fast.err, 0);
	assert_int_equal(fast.received, 1);
	assert_true(outcome_wait(&slow));
	assert_int_equal(slow.err, 0);
	assert_int_equal(slow.received, 1);

	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
}

/* State of a handler that unsubscribes from and frees another broker, which
 * replies 503 to that broker's queued message from a handler thread. */
struct closer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool blocked_entered;
	bool open;
	bool closed;
	struct cmicro_broker *other;
	struct cmicro_subscription *other_sub;
};

static int blocked_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct closer *x = user;

	(void)topic;
	(void)msg;
	pthread_mutex_lock(&x->lock);
	x->blocked_entered = true;
	pthread_cond_broadcast(&x->cond);
	wait_flag_locked(&x->lock, &x->cond, &x->open);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

static int closer_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct closer *x = user;

	(void)topic;
	(void)msg;
	pthread_mutex_lock(&x->lock);
	x->open = true;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	/* The queued message gets 503 from this thread, then its server is freed. */
	cmicro_subscription_free(x->other_sub);
	cmicro_broker_free(x->other);
	pthread_mutex_lock(&x->lock);
	x->closed = true;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	return 0;
}

/* The 503 that a handler thread of one broker makes for another broker's
 * queued message must not leave that thread holding the other broker's
 * server, which the handler then frees. */
static void test_notify_handler_frees_other_broker(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *closer_b, *pb;
	struct cmicro_subscription *closer_sub = NULL;
	struct closer x = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct outcome first = {&x.lock, &x.cond, false, 0, 0};
	struct outcome queued = {&x.lock, &x.cond, false, 0, 0};
	struct outcome close = {&x.lock, &x.cond, false, 0, 0};
	bool entered;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	closer_b = broker_start(reg);
	x.other = broker_start(reg);
	pb = broker_start(reg);
	TK_OK(cmicro_broker_subscribe(x.other, "blocked", NULL, blocked_handler, &x, &x.other_sub));
	TK_OK(cmicro_broker_subscribe(closer_b, "closer", NULL, closer_handler, &x, &closer_sub));

	publish_on(pb, "blocked", "x", &first);
	pthread_mutex_lock(&x.lock);
	wait_flag_locked(&x.lock, &x.cond, &x.blocked_entered);
	entered = x.blocked_entered;
	pthread_mutex_unlock(&x.lock);
	assert_true(entered);
	publish_on(pb, "blocked", "x", &queued);
	usleep(300 * 1000); /* the second message reaches the handler queue */

	publish_on(pb, "closer", "x", &close);
	assert_true(outcome_wait(&close));
	assert_int_equal(close.err, 0);
	assert_true(outcome_wait(&queued));
	assert_true(x.closed);

	cmicro_subscription_free(closer_sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(closer_b);
	cmicro_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notify_callback_publishes_chain),
		cmocka_unit_test(test_notify_no_subscriber_chain_ends),
		cmocka_unit_test(test_notify_reply_not_held_by_slow_handler),
		cmocka_unit_test(test_notify_handler_frees_other_broker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
