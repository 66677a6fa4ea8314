/* Busy polling of the broker's I/O thread: the option and
 * MICRO_BROKER_BUSY_POLL_US, their errors, and delivery with polling off,
 * at its default and at its smallest window. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define WAIT_MS 10000
#define MESSAGES 300

/* Returns the setting of a broker created with option value opt and the
 * environment as it is; -1 means off. */
static int resolved(struct cmicro_registry *reg, int opt)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;
	int value;

	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.busy_poll_us = opt;
	TK_OK(cmicro_broker_new(&opts, &b));
	value = b->opts.busy_poll_us;
	cmicro_broker_free(b);
	return value;
}

static void expect_error(struct cmicro_registry *reg, int opt, int err, const char *text)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.busy_poll_us = opt;
	TK_FAIL(cmicro_broker_new(&opts, &b), err);
	assert_null(b);
	TK_CONTAINS(cmicro_last_errmsg(), text);
}

static void test_poll_option_and_env(void **state)
{
	struct cmicro_registry *reg = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	unsetenv("MICRO_BROKER_BUSY_POLL_US");
	assert_int_equal(resolved(reg, 0), 200);
	assert_int_equal(resolved(reg, 50), 50);
	assert_int_equal(resolved(reg, 1), 1);
	assert_int_equal(resolved(reg, 10000), 10000);
	assert_int_equal(resolved(reg, -1), -1);
	expect_error(reg, -2, CMICRO_EINVAL, "busy_poll_us -2");
	expect_error(reg, 10001, CMICRO_EINVAL, "busy_poll_us 10001");

	setenv("MICRO_BROKER_BUSY_POLL_US", "75", 1);
	assert_int_equal(resolved(reg, 0), 75);
	/* The option wins over the variable. */
	assert_int_equal(resolved(reg, 20), 20);
	assert_int_equal(resolved(reg, -1), -1);
	setenv("MICRO_BROKER_BUSY_POLL_US", "0", 1);
	assert_int_equal(resolved(reg, 0), -1);
	setenv("MICRO_BROKER_BUSY_POLL_US", "", 1);
	assert_int_equal(resolved(reg, 0), 200);

	static const char *const bad[] = {"fast", "-5", "10001", "20us", " 20", "+20", "9999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[64];

		setenv("MICRO_BROKER_BUSY_POLL_US", bad[i], 1);
		cmi_fmt(want, sizeof(want), "MICRO_BROKER_BUSY_POLL_US=\"%s\"", bad[i]);
		expect_error(reg, 0, CMICRO_ECONFIG, want);
		TK_CONTAINS(cmicro_last_errmsg(), "0 to turn polling off");
	}
	/* A bad variable does not matter when the option is set. */
	assert_int_equal(resolved(reg, 30), 30);
	unsetenv("MICRO_BROKER_BUSY_POLL_US");
	cmicro_registry_free(reg);
}

static atomic_int handled;

static int count_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	(void)user;
	(void)topic;
	(void)msg;
	atomic_fetch_add(&handled, 1);
	return 0;
}

static struct cmicro_broker *broker_start(struct cmicro_registry *reg, int poll_us,
					  bool inline_handlers)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.busy_poll_us = poll_us;
	opts.inline_handlers = inline_handlers;
	TK_OK(cmicro_broker_new(&opts, &b));
	TK_OK(cmicro_broker_connect(b));
	return b;
}

/* Every message arrives once whatever the polling of both sides. */
static void check_delivery(int poll_us, bool inline_handlers)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_broker_stats st;

	atomic_store(&handled, 0);
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_start(reg, poll_us, inline_handlers);
	pb = broker_start(reg, poll_us, false);
	TK_OK(cmicro_broker_subscribe(sb, "poll.topic", NULL, count_handler, NULL, &sub));
	for (int i = 0; i < MESSAGES; i++) {
		struct cmicro_message *msg = NULL;

		TK_OK(cmicro_message_new(&msg));
		TK_OK(cmicro_message_set_body(msg, "x", 1));
		TK_OK(cmicro_broker_publish(pb, "poll.topic", msg, NULL));
		cmicro_message_free(msg);
	}
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.delivered, MESSAGES);
	assert_int_equal(atomic_load(&handled), MESSAGES);
	/* The loop threads have ended, so their counters can be read. */
	TK_OK(cmicro_broker_disconnect(pb));
	TK_OK(cmicro_broker_disconnect(sb));
	if (poll_us < 0) {
		assert_int_equal(sb->loop_stats.polls + pb->loop_stats.polls, 0);
	} else if (poll_us == 0 && sb->loop_stats.poll_hits + pb->loop_stats.poll_hits == 0) {
		/* Reads, writes and replies count as traffic, so the burst opened
		 * a 200 us window in which more of it came. A 1 us window opens
		 * only after a sleep of 1 us, so that case is not checked. */
		fail_msg("%d messages: no traffic found while polling (subscriber %lu polls, "
			 "%lu sleeps; publisher %lu polls, %lu sleeps)",
			 MESSAGES, sb->loop_stats.polls, sb->loop_stats.sleeps,
			 pb->loop_stats.polls, pb->loop_stats.sleeps);
	}
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
}

static void test_poll_off_delivers(void **state)
{
	(void)state;
	check_delivery(-1, false);
}

static void test_poll_default_delivers(void **state)
{
	(void)state;
	check_delivery(0, false);
	check_delivery(0, true);
}

static void test_poll_one_us_delivers(void **state)
{
	(void)state;
	check_delivery(1, false);
}

/* A broker that polls still stops when disconnected in the middle of
 * traffic: the loop checks for the exit between two polls. */
static void test_poll_disconnect_while_polling(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *b;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	b = broker_start(reg, 10000, false);
	for (int round = 0; round < 10; round++) {
		struct cmicro_subscription *sub = NULL;

		if (round > 0)
			TK_OK(cmicro_broker_connect(b));
		TK_OK(cmicro_broker_subscribe(b, "poll.self", NULL, count_handler, NULL, &sub));
		for (int i = 0; i < 30; i++) {
			struct cmicro_message *msg = NULL;

			TK_OK(cmicro_message_new(&msg));
			TK_OK(cmicro_message_set_body(msg, "y", 1));
			TK_OK(cmicro_broker_publish(b, "poll.self", msg, NULL));
			cmicro_message_free(msg);
		}
		TK_OK(cmicro_broker_disconnect(b));
		cmicro_subscription_free(sub);
	}
	cmicro_broker_free(b);
	cmicro_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poll_option_and_env),
		cmocka_unit_test(test_poll_off_delivers),
		cmocka_unit_test(test_poll_default_delivers),
		cmocka_unit_test(test_poll_one_us_delivers),
		cmocka_unit_test(test_poll_disconnect_while_polling),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
