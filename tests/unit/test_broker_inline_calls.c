/* Inline handlers that call what the broker header allows them to call:
 * publish, through the very broker whose I/O thread runs them, and
 * unsubscribe of another subscription. Neither may stall the broker. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define WAIT_MS  10000
#define MESSAGES 20

struct relay {
	struct cmicro_broker *b;         /* the broker whose handler publishes */
	struct cmicro_subscription *other; /* unsubscribed by the first handler call */
	atomic_int relayed, publish_failed, received, unsubscribe_rc;
};

/* Publishes each message again to rv.out on the broker that runs it. */
static int relay_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct relay *r = user;

	(void)topic;
	if (cmicro_broker_publish(r->b, "rv.out", msg, NULL) != 0)
		atomic_fetch_add(&r->publish_failed, 1);
	if (r->other != NULL && atomic_load(&r->relayed) == 0)
		atomic_store(&r->unsubscribe_rc, cmicro_subscription_unsubscribe(r->other));
	atomic_fetch_add(&r->relayed, 1);
	return 0;
}

static int count_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct relay *r = user;

	(void)topic;
	(void)msg;
	atomic_fetch_add(&r->received, 1);
	return 0;
}

static struct cmicro_broker *broker_start(struct cmicro_registry *reg, bool inline_handlers)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.inline_handlers = inline_handlers;
	TK_OK(cmicro_broker_new(&opts, &b));
	TK_OK(cmicro_broker_connect(b));
	return b;
}

static void publish_n(struct cmicro_broker *b, const char *topic, int n)
{
	for (int i = 0; i < n; i++) {
		struct cmicro_message *msg = NULL;

		TK_OK(cmicro_message_new(&msg));
		TK_OK(cmicro_message_set_body(msg, "{}", 2));
		TK_OK(cmicro_broker_publish(b, topic, msg, NULL));
		cmicro_message_free(msg);
	}
}

static bool wait_count(atomic_int *count, int want)
{
	for (int i = 0; i < WAIT_MS / 10 && atomic_load(count) < want; i++)
		usleep(10 * 1000);
	return atomic_load(count) >= want;
}

/* An inline handler publishes through the broker whose I/O thread runs it,
 * and unsubscribes another subscription. Every relayed message arrives, and
 * the other subscription is detached from the broker. */
static void test_broker_inline_handler_publish_unsubscribe_ok(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *in = NULL, *out = NULL, *other = NULL;
	struct relay *r = calloc(1, sizeof(*r));

	(void)state;
	assert_non_null(r);
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_start(reg, true);
	pb = broker_start(reg, false);
	r->b = sb;
	TK_OK(cmicro_broker_subscribe(sb, "rv.in", NULL, relay_handler, r, &in));
	TK_OK(cmicro_broker_subscribe(sb, "rv.out", NULL, count_handler, r, &out));
	TK_OK(cmicro_broker_subscribe(sb, "rv.other", NULL, count_handler, r, &other));
	r->other = other;

	publish_n(pb, "rv.in", MESSAGES);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	assert_true(wait_count(&r->relayed, MESSAGES));
	assert_true(wait_count(&r->received, MESSAGES));
	TK_OK(cmicro_broker_flush(sb, WAIT_MS));
	assert_int_equal(atomic_load(&r->publish_failed), 0);
	assert_int_equal(atomic_load(&r->unsubscribe_rc), 0);

	assert_int_equal(atomic_load(&r->received), MESSAGES);
	assert_null(__atomic_load_n(&other->broker, __ATOMIC_ACQUIRE));

	cmicro_subscription_free(in);
	cmicro_subscription_free(out);
	cmicro_subscription_free(other);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broker_inline_handler_publish_unsubscribe_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
