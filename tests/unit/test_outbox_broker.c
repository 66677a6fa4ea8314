/* Delivery guarantees of the broker in one process: the outbox across
 * broker restarts, the Micro-Id header, duplicate dropping, the counted
 * drops of the in-memory backlog, and the header and topic rules. Brokers
 * share a memory registry and talk real HTTP on 127.0.0.1. */
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define WAIT_MS  10000
#define MAX_SEEN 64

struct inbox {
	pthread_mutex_t lock;
	atomic_int count;
	int sleep_ms;
	char ids[MAX_SEEN][128];
	char bodies[MAX_SEEN][32];
};

static int inbox_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct inbox *in = user;
	const char *id = cmicro_message_get_header(msg, "Micro-Id");
	int n;

	(void)topic;
	if (in->sleep_ms > 0)
		usleep((useconds_t)in->sleep_ms * 1000);
	pthread_mutex_lock(&in->lock);
	n = atomic_load(&in->count);
	if (n < MAX_SEEN) {
		cmi_fmt(in->ids[n], sizeof(in->ids[0]), "%s", id ? id : "");
		cmi_fmt(in->bodies[n], sizeof(in->bodies[0]), "%s",
		        (const char *)cmicro_message_body(msg, NULL));
	}
	atomic_fetch_add(&in->count, 1);
	pthread_mutex_unlock(&in->lock);
	return 0;
}

static struct inbox *inbox_new(void)
{
	struct inbox *in = calloc(1, sizeof(*in));

	assert_non_null(in);
	pthread_mutex_init(&in->lock, NULL);
	return in;
}

static void inbox_free(struct inbox *in)
{
	pthread_mutex_destroy(&in->lock);
	free(in);
}

static int inbox_find_body(struct inbox *in, const char *body)
{
	int found = 0;

	pthread_mutex_lock(&in->lock);
	for (int i = 0; i < atomic_load(&in->count) && i < MAX_SEEN; i++)
		found += strcmp(in->bodies[i], body) == 0;
	pthread_mutex_unlock(&in->lock);
	return found;
}

static struct cmicro_broker *broker_start(struct cmicro_registry *reg,
                                          struct cmicro_broker_opts *opts)
{
	struct cmicro_broker_opts defaults;
	struct cmicro_broker *b = NULL;

	if (opts == NULL) {
		cmicro_broker_opts_init(&defaults);
		opts = &defaults;
	}
	opts->registry = reg;
	TK_OK(cmicro_broker_new(opts, &b));
	TK_OK(cmicro_broker_connect(b));
	return b;
}

static void publish_body(struct cmicro_broker *b, const char *topic, const char *body,
                         const char *id)
{
	struct cmicro_message *msg = NULL;

	TK_OK(cmicro_message_new(&msg));
	if (id != NULL)
		TK_OK(cmicro_message_set_header(msg, "Micro-Id", id));
	TK_OK(cmicro_message_set_body(msg, body, strlen(body)));
	TK_OK(cmicro_broker_publish(b, topic, msg, NULL));
	cmicro_message_free(msg);
}

static void wait_count(atomic_int *count, int want)
{
	for (int i = 0; i < WAIT_MS / 10 && atomic_load(count) < want; i++)
		usleep(10 * 1000);
}

/* True for the text form of a version 4, variant 1 UUID. */
static bool is_uuid_v4(const char *s)
{
	if (strlen(s) != 36 || s[14] != '4' || strchr("89ab", s[19]) == NULL)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-'
		         : !(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

static void test_message_id_added_as_uuid_v4(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct inbox *in = inbox_new();

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_start(reg, NULL);
	pb = broker_start(reg, NULL);
	TK_OK(cmicro_broker_subscribe(sb, "ids", NULL, inbox_handler, in, &sub));
	publish_body(pb, "ids", "one", NULL);
	publish_body(pb, "ids", "two", NULL);
	publish_body(pb, "ids", "three", "caller-chosen-id");
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	wait_count(&in->count, 3);
	assert_int_equal(atomic_load(&in->count), 3);
	for (int i = 0; i < 3; i++) {
		if (strcmp(in->bodies[i], "three") == 0)
			assert_string_equal(in->ids[i], "caller-chosen-id");
		else if (!is_uuid_v4(in->ids[i]))
			fail_msg("Micro-Id \"%s\" is not a UUID v4", in->ids[i]);
	}
	assert_string_not_equal(in->ids[0], in->ids[1]);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
}

static void test_message_id_empty_rejected(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *pb;
	struct cmicro_message *msg = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	pb = broker_start(reg, NULL);
	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_header(msg, "Micro-Id", ""));
	TK_FAIL(cmicro_broker_publish(pb, "t", msg, NULL), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "Micro-Id is empty");
	cmicro_message_free(msg);
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
}

/* The retry after a delivery timeout carries the first attempt's id. */
static void test_message_id_same_on_retry(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_broker_stats st;
	struct inbox *in = inbox_new();

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.delivery_timeout_ms = 300;
	opts.retry_initial_ms = 100;
	sb = broker_start(reg, NULL);
	pb = broker_start(reg, &opts);
	in->sleep_ms = 1000;
	TK_OK(cmicro_broker_subscribe(sb, "slow", NULL, inbox_handler, in, &sub));
	publish_body(pb, "slow", "once", NULL);
	wait_count(&in->count, 2);
	cmicro_broker_get_stats(pb, &st);
	assert_true(st.retried >= 1);
	assert_true(atomic_load(&in->count) >= 2);
	assert_string_equal(in->bodies[0], "once");
	assert_string_equal(in->bodies[1], "once");
	assert_string_equal(in->ids[0], in->ids[1]);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
	tk_log_capture_stop();
}

static void test_dedup_retry_reaches_handler_once(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts popts, sopts;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_broker_stats pst, sst;
	struct inbox *in = inbox_new();

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&popts);
	popts.delivery_timeout_ms = 300;
	popts.retry_initial_ms = 100;
	cmicro_broker_opts_init(&sopts);
	sopts.dedup = true;
	sb = broker_start(reg, &sopts);
	pb = broker_start(reg, &popts);
	in->sleep_ms = 1000;
	TK_OK(cmicro_broker_subscribe(sb, "slow", NULL, inbox_handler, in, &sub));
	publish_body(pb, "slow", "once", NULL);

	/* The first attempt times out while the handler sleeps; the
	 * subscriber responds 200 to a retry from the window once the handler
	 * has finished. */
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	cmicro_broker_get_stats(pb, &pst);
	cmicro_broker_get_stats(sb, &sst);
	assert_true(pst.retried >= 1);
	assert_int_equal(pst.dropped, 0);
	assert_true(sst.duplicates >= 1);
	assert_int_equal(sst.received, 1);
	assert_int_equal(atomic_load(&in->count), 1);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
	tk_log_capture_stop();
}

static void test_dedup_env_invalid_rejected(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	setenv("MICRO_BROKER_DEDUP", "sometimes", 1);
	TK_FAIL(cmicro_broker_new(&opts, &b), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_BROKER_DEDUP=\"sometimes\"");
	unsetenv("MICRO_BROKER_DEDUP");
	opts.dedup_window = -1;
	TK_FAIL(cmicro_broker_new(&opts, &b), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "dedup_window -1");
	assert_null(b);
	cmicro_registry_free(reg);
}

static void test_dedup_window_forgets_oldest(void **state)
{
	struct cmi_dedup *d = NULL;
	char id[32];

	(void)state;
	TK_FAIL(cmi_dedup_new(0, &d), CMICRO_EINVAL);
	TK_OK(cmi_dedup_new(3, &d));
	assert_false(cmi_dedup_seen(d, "a"));
	cmi_dedup_add(d, "a");
	cmi_dedup_add(d, "b");
	cmi_dedup_add(d, "c");
	assert_true(cmi_dedup_seen(d, "a"));
	assert_true(cmi_dedup_seen(d, "c"));
	cmi_dedup_add(d, "d");
	assert_false(cmi_dedup_seen(d, "a"));
	assert_true(cmi_dedup_seen(d, "b"));
	assert_true(cmi_dedup_seen(d, "d"));
	/* Adding an id already in the window does not evict another. */
	cmi_dedup_add(d, "d");
	assert_true(cmi_dedup_seen(d, "b"));
	cmi_dedup_free(d);

	TK_OK(cmi_dedup_new(1000, &d));
	for (int i = 0; i < 5000; i++) {
		cmi_fmt(id, sizeof(id), "id-%d", i);
		cmi_dedup_add(d, id);
	}
	assert_true(cmi_dedup_seen(d, "id-4999"));
	assert_true(cmi_dedup_seen(d, "id-4000"));
	assert_false(cmi_dedup_seen(d, "id-3999"));
	assert_false(cmi_dedup_seen(d, "id-0"));
	cmi_dedup_free(d);
}

static void outbox_opts(struct cmicro_broker_opts *opts, const char *path)
{
	cmicro_broker_opts_init(opts);
	opts->outbox_path = path;
	opts->retry_initial_ms = 50;
	opts->retry_max_ms = 200;
}

/* Messages stored by one broker are delivered by the next broker that
 * opens the same outbox, and then removed from it. */
static void test_outbox_messages_survive_broker_restart(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], body[16];
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *pb, *sb;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_broker_stats st;
	struct inbox *in = inbox_new();

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	tk_path(path, sizeof(path), dir, "outbox.db");
	outbox_opts(&opts, path);
	pb = broker_start(reg, &opts);
	for (int i = 0; i < 5; i++) {
		cmi_fmt(body, sizeof(body), "m-%d", i);
		publish_body(pb, "later", body, NULL);
	}
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.outbox, 5);
	cmicro_broker_free(pb);
	assert_int_equal(tk_log_count("BROKER-OUTBOX-KEPT"), 1);

	sb = broker_start(reg, NULL);
	TK_OK(cmicro_broker_subscribe(sb, "later", NULL, inbox_handler, in, &sub));
	outbox_opts(&opts, path);
	pb = broker_start(reg, &opts);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	wait_count(&in->count, 5);
	assert_int_equal(atomic_load(&in->count), 5);
	for (int i = 0; i < 5; i++) {
		cmi_fmt(body, sizeof(body), "m-%d", i);
		assert_int_equal(inbox_find_body(in, body), 1);
	}
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.outbox, 0);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(tk_log_count("BROKER-OUTBOX-LOADED"), 1);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
	tk_log_capture_stop();
	tk_tmpdir_remove(dir);
}

static void test_outbox_second_broker_same_path_busy(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *pb, *other = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	outbox_opts(&opts, tk_path(path, sizeof(path), dir, "outbox.db"));
	pb = broker_start(reg, &opts);
	TK_FAIL(cmicro_broker_new(&opts, &other), CMICRO_EBUSY);
	assert_null(other);
	TK_CONTAINS(cmicro_last_errmsg(), path);
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
	tk_tmpdir_remove(dir);
}

static void test_outbox_env_path_used(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *pb;
	struct stat st;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	setenv("MICRO_BROKER_OUTBOX", tk_path(path, sizeof(path), dir, "env.db"), 1);
	pb = broker_start(reg, NULL);
	unsetenv("MICRO_BROKER_OUTBOX");
	publish_body(pb, "t", "kept", NULL);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
	tk_tmpdir_remove(dir);
}

/* Past the limit publish fails, and nothing stored earlier is dropped. */
static void test_outbox_full_rejects_publish(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *pb;
	struct cmicro_message *msg = NULL;
	struct cmicro_broker_stats st;

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	outbox_opts(&opts, tk_path(path, sizeof(path), dir, "outbox.db"));
	opts.outbox_max_messages = 3;
	pb = broker_start(reg, &opts);
	for (int i = 0; i < 3; i++)
		publish_body(pb, "nobody", "x", NULL);
	TK_OK(cmicro_message_new(&msg));
	TK_FAIL(cmicro_broker_publish(pb, "nobody", msg, NULL), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "outbox_max_messages");
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.published, 3);
	assert_int_equal(st.outbox, 3);
	assert_int_equal(st.dropped, 0);
	cmicro_message_free(msg);
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
	tk_log_capture_stop();
	tk_tmpdir_remove(dir);
}

static void test_outbox_bad_path_fails_broker_new(void **state)
{
	char *dir = tk_tmpdir();
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	outbox_opts(&opts, dir);
	opts.registry = reg;
	TK_FAIL(cmicro_broker_new(&opts, &b), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "is a directory");
	assert_null(b);
	cmicro_registry_free(reg);
	tk_tmpdir_remove(dir);
}

/* Without an outbox, attempts that run out drop the message and count it. */
static void test_backlog_attempts_exhausted_counted(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *pb;
	struct cmicro_broker_stats st;

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.retry_initial_ms = 20;
	opts.retry_max_ms = 20;
	opts.retry_max_attempts = 3;
	pb = broker_start(reg, &opts);
	publish_body(pb, "nobody", "lost", NULL);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.retried, 2);
	assert_int_equal(st.backlog, 0);
	assert_int_equal(tk_log_count("BROKER-DROPPED"), 1);
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
	tk_log_capture_stop();
}

/* Without an outbox, a disconnect drops the backlog and counts it. */
static void test_backlog_disconnect_drops_counted(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *pb;
	struct cmicro_broker_stats st;

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	pb = broker_start(reg, NULL);
	for (int i = 0; i < 4; i++)
		publish_body(pb, "nobody", "lost", NULL);
	TK_FAIL(cmicro_broker_flush(pb, 300), CMICRO_ETIMEDOUT);
	TK_OK(cmicro_broker_disconnect(pb));
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.dropped, 4);
	assert_int_equal(st.backlog, 0);
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
	tk_log_capture_stop();
}

static void test_message_header_line_break_rejected(void **state)
{
	struct cmicro_message *msg = NULL;

	(void)state;
	TK_OK(cmicro_message_new(&msg));
	TK_FAIL(cmicro_message_set_header(msg, "X-Note", "a\r\nInjected: 1"), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "\"X-Note\"");
	TK_CONTAINS(cmicro_last_errmsg(), "carriage return");
	TK_FAIL(cmicro_message_set_header(msg, "X-Note", "line\n"), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "line feed (LF) at byte 4");
	TK_FAIL(cmicro_message_set_header(msg, "Bad\nKey", "v"), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "its key contains");
	TK_OK(cmicro_message_set_header(msg, "X-Note", "tab\tis fine"));
	assert_int_equal(cmicro_message_header_count(msg), 1);
	cmicro_message_free(msg);
}

/* A received envelope with a line break in a header is bad input: the
 * decoder rejects it, so the subscriber responds 400 naming the header. */
static void test_message_decode_line_break_rejected(void **state)
{
	static const char in[] =
	    "{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"a\\nb\"},\"Body\":\"\"}";
	struct cmicro_message *msg = NULL;

	(void)state;
	TK_FAIL(cmi_message_decode(in, strlen(in), &msg), CMICRO_EPROTO);
	TK_CONTAINS(cmicro_last_errmsg(), "\"k\"");
	assert_null(msg);
}

static void test_topic_rule_cases(void **state)
{
	char longest[CMI_TOPIC_MAX + 2];
	static const struct {
		const char *topic;
		const char *why;
	} bad[] = {
	    {"", "empty"},
	    {"two words", "topic \"two\" is followed by a space at byte 3"},
	    {" lead", "topic begins with a space"},
	    {"tab\there", "followed by the control character 0x09 at byte 3"},
	    {"new\nline", "the control character 0x0a"},
	    {"del\x7f", "the control character 0x7f"},
	    {"c1\xc2\x85next", "followed by the control character U+0085 at byte 2"},
	    {"bad\xff", "followed by the byte 0xff (not valid UTF-8) at byte 3"},
	    {"\xc3(", "topic begins with the byte 0xc3 (not valid UTF-8)"},
	    /* The first byte that breaks either rule is named, so the quote
	     * before it carries no line break. */
	    {"a\nb\xff", "topic \"a\" is followed by the control character 0x0a at byte 1"},
	    {"a\xff" "b\n", "topic \"a\" is followed by the byte 0xff (not valid UTF-8) at byte 1"},
	};

	(void)state;
	TK_FAIL(cmi_topic_check(NULL), CMICRO_EINVAL);
	for (size_t i = 0; i < CMI_ARRAY_LEN(bad); i++) {
		TK_FAIL(cmi_topic_check(bad[i].topic), CMICRO_EINVAL);
		TK_CONTAINS(cmicro_last_errmsg(), bad[i].why);
	}
	memset(longest, 'a', CMI_TOPIC_MAX);
	longest[CMI_TOPIC_MAX] = '\0';
	TK_OK(cmi_topic_check(longest));
	longest[CMI_TOPIC_MAX] = 'a';
	longest[CMI_TOPIC_MAX + 1] = '\0';
	TK_FAIL(cmi_topic_check(longest), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "the maximum is 255 bytes");
	TK_OK(cmi_topic_check("orders.eu/paid-v2:\xc3\xa9t\xc3\xa9"));
}

/* Quotes of long topics stop at 64 bytes, never inside a character, so the
 * message stays valid UTF-8. */
static void test_topic_error_quote_is_utf8(void **state)
{
	char topic[2 * 200 + 2];
	const char *msg;

	(void)state;
	/* "x", then "é" (2 bytes) 70 times and a control character at byte 141:
	 * 64 bytes would end inside a character. */
	topic[0] = 'x';
	for (int i = 0; i < 70; i++)
		memcpy(topic + 1 + 2 * i, "\xc3\xa9", 2);
	topic[141] = '\x01';
	topic[142] = '\0';
	TK_FAIL(cmi_topic_check(topic), CMICRO_EINVAL);
	msg = cmicro_last_errmsg();
	TK_CONTAINS(msg, "...\" has the control character 0x01 at byte 141");
	assert_true(cmi_topic_valid(msg));

	/* Too long: 200 times "é" after "x". */
	for (int i = 0; i < 200; i++)
		memcpy(topic + 1 + 2 * i, "\xc3\xa9", 2);
	topic[401] = '\0';
	TK_FAIL(cmi_topic_check(topic), CMICRO_EINVAL);
	msg = cmicro_last_errmsg();
	TK_CONTAINS(msg, "is 401 bytes long");
	assert_true(cmi_topic_valid(msg));
}

static void test_topic_rule_applies_to_publish_and_subscribe(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *b;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_message *msg = NULL;
	struct inbox *in = inbox_new();

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	b = broker_start(reg, NULL);
	TK_OK(cmicro_message_new(&msg));
	TK_FAIL(cmicro_broker_publish(b, "two words", msg, NULL), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "topic \"two\"");
	TK_FAIL(cmicro_broker_publish(b, NULL, msg, NULL), CMICRO_EINVAL);
	TK_FAIL(cmicro_broker_subscribe(b, "two words", NULL, inbox_handler, in, &sub),
	        CMICRO_EINVAL);
	assert_null(sub);
	cmicro_message_free(msg);
	cmicro_broker_free(b);
	cmicro_registry_free(reg);
	inbox_free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_id_added_as_uuid_v4),
	    cmocka_unit_test(test_message_id_empty_rejected),
	    cmocka_unit_test(test_message_id_same_on_retry),
	    cmocka_unit_test(test_dedup_retry_reaches_handler_once),
	    cmocka_unit_test(test_dedup_env_invalid_rejected),
	    cmocka_unit_test(test_dedup_window_forgets_oldest),
	    cmocka_unit_test(test_outbox_messages_survive_broker_restart),
	    cmocka_unit_test(test_outbox_second_broker_same_path_busy),
	    cmocka_unit_test(test_outbox_env_path_used),
	    cmocka_unit_test(test_outbox_full_rejects_publish),
	    cmocka_unit_test(test_outbox_bad_path_fails_broker_new),
	    cmocka_unit_test(test_backlog_attempts_exhausted_counted),
	    cmocka_unit_test(test_backlog_disconnect_drops_counted),
	    cmocka_unit_test(test_message_header_line_break_rejected),
	    cmocka_unit_test(test_message_decode_line_break_rejected),
	    cmocka_unit_test(test_topic_rule_cases),
	    cmocka_unit_test(test_topic_error_quote_is_utf8),
	    cmocka_unit_test(test_topic_rule_applies_to_publish_and_subscribe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
