/* Inline handlers: with inline_handlers (or MICRO_BROKER_INLINE_HANDLERS)
 * a subscriber runs every handler on its I/O thread, one at a time, and
 * keeps the delivery rules of handler threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define WAIT_MS 10000
#define MESSAGES 200

struct recorder {
	pthread_mutex_t lock;
	atomic_int count;
	atomic_int fail_first; /* handler errors to return before succeeding */
	atomic_int concurrent; /* handlers running now */
	atomic_int max_concurrent;
	pthread_t threads[4];  /* distinct threads seen */
	int n_threads;
	struct cmicro_subscription *unsubscribe_me; /* unsubscribed by its own handler */
	int unsubscribe_rc;
};

static int record_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct recorder *r = user;
	int now = atomic_fetch_add(&r->concurrent, 1) + 1;
	bool known = false;

	(void)topic;
	(void)msg;
	if (now > atomic_load(&r->max_concurrent))
		atomic_store(&r->max_concurrent, now);
	if (atomic_fetch_sub(&r->fail_first, 1) > 0) {
		atomic_fetch_sub(&r->concurrent, 1);
		return -1;
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->n_threads; i++)
		known = known || pthread_equal(r->threads[i], pthread_self());
	if (!known && r->n_threads < 4)
		r->threads[r->n_threads++] = pthread_self();
	pthread_mutex_unlock(&r->lock);
	if (r->unsubscribe_me != NULL)
		r->unsubscribe_rc = cmicro_subscription_unsubscribe(r->unsubscribe_me);
	atomic_fetch_sub(&r->concurrent, 1);
	atomic_fetch_add(&r->count, 1);
	return 0;
}

static struct recorder *recorder_new(void)
{
	struct recorder *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

static void recorder_free(struct recorder *r)
{
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct cmicro_broker *broker_start_tls(struct cmicro_registry *reg, bool inline_handlers,
					      int retry_ms, bool tls)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;
	struct cmicro_tls_config *cfg = NULL;

	cmicro_broker_opts_init(&opts);
	if (tls) {
		TK_OK(cmicro_tls_config_insecure(&cfg));
		opts.tls = cfg;
	}
	opts.registry = reg;
	opts.inline_handlers = inline_handlers;
	opts.retry_initial_ms = retry_ms;
	TK_OK(cmicro_broker_new(&opts, &b));
	cmicro_tls_config_free(cfg);
	TK_OK(cmicro_broker_connect(b));
	return b;
}

static struct cmicro_broker *broker_start(struct cmicro_registry *reg, bool inline_handlers,
					  int retry_ms)
{
	return broker_start_tls(reg, inline_handlers, retry_ms, false);
}

static void publish_numbered(struct cmicro_broker *b, const char *topic, int n)
{
	for (int i = 0; i < n; i++) {
		struct cmicro_message *msg = NULL;
		char num[16];

		cmi_fmt(num, sizeof(num), "%d", i);
		TK_OK(cmicro_message_new(&msg));
		TK_OK(cmicro_message_set_header(msg, "n", num));
		TK_OK(cmicro_message_set_body(msg, num, strlen(num)));
		TK_OK(cmicro_broker_publish(b, topic, msg, NULL));
		cmicro_message_free(msg);
	}
}

static void wait_count(atomic_int *count, int want)
{
	for (int i = 0; i < WAIT_MS / 10 && atomic_load(count) < want; i++)
		usleep(10 * 1000);
}

/* A subscriber broker and a publisher broker on one memory registry, with
 * one subscription of the subscriber. */
struct pair {
	struct cmicro_registry *reg;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub;
};

static void pair_start(struct pair *p, bool inline_handlers, int retry_ms, const char *topic,
		       struct recorder *r)
{
	TK_OK(cmicro_registry_memory_new(&p->reg));
	p->sb = broker_start(p->reg, inline_handlers, 0);
	p->pb = broker_start(p->reg, false, retry_ms);
	p->sub = NULL;
	TK_OK(cmicro_broker_subscribe(p->sb, topic, NULL, record_handler, r, &p->sub));
}

static void pair_stop(struct pair *p)
{
	cmicro_subscription_free(p->sub);
	cmicro_broker_free(p->pb);
	cmicro_broker_free(p->sb);
	cmicro_registry_free(p->reg);
}

/* Checks that the subscription's node registers where its handlers run,
 * so that cmicro publishers spread requests to inline nodes only. */
static void check_handlers_meta(struct cmicro_registry *reg, const char *want)
{
	struct cmicro_service **list = NULL;
	size_t n = 0;

	TK_OK(cmicro_registry_get_service(reg, CMICRO_BROKER_SERVICE, &list, &n));
	assert_int_equal(n, 1);
	assert_int_equal(list[0]->n_nodes, 1);
	assert_string_equal(cmicro_kv_get(list[0]->nodes[0].metadata, list[0]->nodes[0].n_metadata,
					  "handlers"),
			    want);
	cmicro_service_list_free(list, n);
}

static void test_inline_one_thread_at_a_time(void **state)
{
	struct recorder *r = recorder_new();
	struct pair p;

	(void)state;
	pair_start(&p, true, 0, "inline.serial", r);
	publish_numbered(p.pb, "inline.serial", MESSAGES);
	TK_OK(cmicro_broker_flush(p.pb, WAIT_MS));
	wait_count(&r->count, MESSAGES);

	assert_int_equal(atomic_load(&r->count), MESSAGES);
	assert_int_equal(r->n_threads, 1);
	assert_int_equal(atomic_load(&r->max_concurrent), 1);
	/* The I/O thread is neither the caller's nor a handler pool's. */
	assert_false(pthread_equal(r->threads[0], pthread_self()));
	assert_null(p.sb->workers);
	check_handlers_meta(p.reg, "inline");
	pair_stop(&p);
	recorder_free(r);
}

/* Handler threads run the same workload on a pool, as a check that the
 * inline test can tell the two apart. */
static void test_inline_off_uses_pool(void **state)
{
	struct recorder *r = recorder_new();
	struct pair p;

	(void)state;
	pair_start(&p, false, 0, "pool.order", r);
	publish_numbered(p.pb, "pool.order", 20);
	TK_OK(cmicro_broker_flush(p.pb, WAIT_MS));
	wait_count(&r->count, 20);

	assert_int_equal(atomic_load(&r->count), 20);
	assert_non_null(p.sb->workers);
	check_handlers_meta(p.reg, "threads");
	pair_stop(&p);
	recorder_free(r);
}

static void test_inline_handler_error_retried(void **state)
{
	struct cmicro_broker_stats st;
	struct recorder *r = recorder_new();
	struct pair p;

	(void)state;
	pair_start(&p, true, 50, "inline.flaky", r);
	atomic_store(&r->fail_first, 2);
	publish_numbered(p.pb, "inline.flaky", 1);
	TK_OK(cmicro_broker_flush(p.pb, WAIT_MS));

	cmicro_broker_get_stats(p.pb, &st);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(st.failed, 2);
	cmicro_broker_get_stats(p.sb, &st);
	assert_int_equal(st.handler_errors, 2);
	assert_int_equal(atomic_load(&r->count), 1);
	pair_stop(&p);
	recorder_free(r);
}

/* A handler that unsubscribes its own subscription returns at once
 * instead of waiting for itself to finish. */
static void test_inline_handler_unsubscribes_itself(void **state)
{
	struct recorder *r = recorder_new();
	struct pair p;

	(void)state;
	pair_start(&p, true, 0, "inline.once", r);
	r->unsubscribe_me = p.sub;
	publish_numbered(p.pb, "inline.once", 1);
	TK_OK(cmicro_broker_flush(p.pb, WAIT_MS));
	wait_count(&r->count, 1);

	assert_int_equal(atomic_load(&r->count), 1);
	assert_int_equal(r->unsubscribe_rc, 0);
	pair_stop(&p);
	recorder_free(r);
}

struct slow_handler {
	atomic_int started;
	atomic_int finished;
};

static int slow_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct slow_handler *h = user;

	(void)topic;
	(void)msg;
	atomic_fetch_add(&h->started, 1);
	usleep(300 * 1000);
	atomic_fetch_add(&h->finished, 1);
	return 0;
}

/* A subscriber that disconnects while a handler runs still sends that
 * message's 200, so its publisher counts it delivered and does not send it
 * again. */
static void disconnect_during_handler(bool inline_handlers)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_publication *pub = NULL;
	struct cmicro_message *msg = NULL;
	const struct cmicro_publish_result *res = NULL;
	struct slow_handler h = {0};

	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_start_tls(reg, inline_handlers, 0, true);
	pb = broker_start_tls(reg, false, 0, true);
	TK_OK(cmicro_broker_subscribe(sb, "slow", NULL, slow_handler, &h, &sub));
	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, "x", 1));
	TK_OK(cmicro_broker_publish(pb, "slow", msg, &pub));
	wait_count(&h.started, 1);
	assert_int_equal(atomic_load(&h.started), 1);

	TK_OK(cmicro_broker_disconnect(sb));
	assert_int_equal(atomic_load(&h.finished), 1);
	TK_OK(cmicro_publication_wait(pub, WAIT_MS, &res));
	assert_int_equal(res->received, 1);
	assert_int_equal(res->deliveries[0].http_status, 200);
	assert_false(res->backlogged);

	cmicro_publication_free(pub);
	cmicro_message_free(msg);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
}

static void test_disconnect_replies_handled_pool(void **state)
{
	(void)state;
	disconnect_during_handler(false);
}

static void test_disconnect_replies_handled_inline(void **state)
{
	(void)state;
	disconnect_during_handler(true);
}

static void test_inline_env_switch_and_bad_value(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.registry = reg;

	setenv("MICRO_BROKER_INLINE_HANDLERS", "yes please", 1);
	TK_FAIL(cmicro_broker_new(&opts, &b), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_BROKER_INLINE_HANDLERS=\"yes please\"");
	TK_CONTAINS(cmicro_last_errmsg(), "not a boolean");

	setenv("MICRO_BROKER_INLINE_HANDLERS", "true", 1);
	TK_OK(cmicro_broker_new(&opts, &b));
	assert_true(b->opts.inline_handlers);
	cmicro_broker_free(b);
	b = NULL;

	setenv("MICRO_BROKER_INLINE_HANDLERS", "false", 1);
	TK_OK(cmicro_broker_new(&opts, &b));
	assert_false(b->opts.inline_handlers);
	cmicro_broker_free(b);
	unsetenv("MICRO_BROKER_INLINE_HANDLERS");
	cmicro_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inline_one_thread_at_a_time),
		cmocka_unit_test(test_inline_off_uses_pool),
		cmocka_unit_test(test_inline_handler_error_retried),
		cmocka_unit_test(test_inline_handler_unsubscribes_itself),
		cmocka_unit_test(test_inline_env_switch_and_bad_value),
		cmocka_unit_test(test_disconnect_replies_handled_pool),
		cmocka_unit_test(test_disconnect_replies_handled_inline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
