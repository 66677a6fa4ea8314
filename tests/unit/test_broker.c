/* The broker in one process: several brokers share a memory registry and
 * exchange messages over real HTTP(S) on 127.0.0.1. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define WAIT_MS 10000

struct inbox {
	pthread_mutex_t lock;
	atomic_int count;
	atomic_int fail_first; /* handler errors to return before succeeding */
	int sleep_ms;
	char last[128];
	int seen[256];         /* per message number */
};

static int inbox_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct inbox *in = user;
	const char *n = cmicro_message_get_header(msg, "n");

	(void)topic;
	if (atomic_fetch_sub(&in->fail_first, 1) > 0)
		return -1;
	if (in->sleep_ms > 0)
		usleep((useconds_t)in->sleep_ms * 1000);
	pthread_mutex_lock(&in->lock);
	cmi_fmt(in->last, sizeof(in->last), "%s", (const char *)cmicro_message_body(msg, NULL));
	if (n != NULL && atoi(n) >= 0 && atoi(n) < 256)
		in->seen[atoi(n)]++;
	pthread_mutex_unlock(&in->lock);
	atomic_fetch_add(&in->count, 1);
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

static struct cmicro_broker *broker_new(struct cmicro_registry *reg, struct cmicro_tls_config *tls,
					const struct cmicro_broker_opts *base)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	if (base != NULL)
		opts = *base;
	else
		cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.tls = tls;
	TK_OK(cmicro_broker_new(&opts, &b));
	TK_OK(cmicro_broker_connect(b));
	return b;
}

static struct cmicro_tls_config *insecure_tls(void)
{
	struct cmicro_tls_config *cfg = NULL;

	TK_OK(cmicro_tls_config_insecure(&cfg));
	return cfg;
}

static void publish_n(struct cmicro_broker *b, const char *topic, int n, const char *body)
{
	for (int i = 0; i < n; i++) {
		struct cmicro_message *msg = NULL;
		char num[16];

		cmi_fmt(num, sizeof(num), "%d", i);
		TK_OK(cmicro_message_new(&msg));
		TK_OK(cmicro_message_set_header(msg, "n", num));
		TK_OK(cmicro_message_set_body(msg, body, strlen(body)));
		TK_OK(cmicro_broker_publish(b, topic, msg, NULL));
		cmicro_message_free(msg);
	}
}

/* Publishes one message and waits for the first attempt's result. */
static struct cmicro_publication *publish_wait(struct cmicro_broker *b, const char *topic,
					       const char *body,
					       const struct cmicro_publish_result **r)
{
	struct cmicro_message *msg = NULL;
	struct cmicro_publication *pub = NULL;

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, body, strlen(body)));
	TK_OK(cmicro_broker_publish(b, topic, msg, &pub));
	cmicro_message_free(msg);
	TK_OK(cmicro_publication_wait(pub, WAIT_MS, r));
	return pub;
}

static void wait_count(atomic_int *count, int want)
{
	for (int i = 0; i < WAIT_MS / 10 && atomic_load(count) < want; i++)
		usleep(10 * 1000);
}

static void test_broker_publish_reaches_subscriber(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub;
	struct inbox *in = inbox_new();

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_new(reg, NULL, NULL);
	pb = broker_new(reg, NULL, NULL);
	TK_OK(cmicro_broker_subscribe(sb, "greet", NULL, inbox_handler, in, &sub));
	pub = publish_wait(pb, "greet", "hello", &r);
	assert_int_equal(r->err, 0);
	assert_int_equal(r->targets, 1);
	assert_int_equal(r->received, 1);
	assert_false(r->backlogged);
	assert_string_equal(r->deliveries[0].node_id, cmicro_subscription_node_id(sub));
	assert_int_equal(r->deliveries[0].http_status, 200);
	wait_count(&in->count, 1);
	assert_string_equal(in->last, "hello");
	cmicro_publication_free(pub);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
}

static void test_broker_registration_matches_go_layout(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_service **list = NULL;
	struct cmicro_broker *b;
	struct cmicro_subscription *s1 = NULL, *s2 = NULL;
	struct inbox *in = inbox_new();
	char want_id[256];
	size_t n = 0;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	b = broker_new(reg, NULL, NULL);
	TK_OK(cmicro_broker_subscribe(b, "orders", NULL, inbox_handler, in, &s1));
	TK_OK(cmicro_broker_subscribe(b, "refunds", "workers", inbox_handler, in, &s2));
	cmi_fmt(want_id, sizeof(want_id), "orders-%s", cmicro_broker_id(b));
	assert_string_equal(cmicro_subscription_node_id(s1), want_id);
	assert_int_equal(strlen(cmicro_broker_id(b)), 36);

	TK_OK(cmicro_registry_get_service(reg, CMICRO_BROKER_SERVICE, &list, &n));
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		const struct cmicro_node *node = &list[i]->nodes[0];

		bool broadcast = strcmp(list[i]->version, CMICRO_BROKER_BROADCAST) == 0;

		assert_true(broadcast || strcmp(list[i]->version, "workers") == 0);
		assert_int_equal(list[i]->n_nodes, 1);
		assert_string_equal(node->id, broadcast ? want_id : cmicro_subscription_node_id(s2));
		assert_string_equal(node->address, cmicro_subscription_address(s1));
		assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "broker"), "http");
		assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "topic"),
				    broadcast ? "orders" : "refunds");
		assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "secure"), "false");
		/* Tells cmicro publishers not to spread requests (handler threads). */
		assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "handlers"),
				    "threads");
	}
	cmicro_service_list_free(list, n);

	TK_OK(cmicro_subscription_unsubscribe(s1));
	TK_OK(cmicro_subscription_unsubscribe(s1));
	TK_OK(cmicro_registry_get_service(reg, CMICRO_BROKER_SERVICE, &list, &n));
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->version, "workers");
	cmicro_service_list_free(list, n);
	cmicro_subscription_free(s1);
	cmicro_broker_free(b); /* deregisters s2 */
	TK_OK(cmicro_registry_get_service(reg, CMICRO_BROKER_SERVICE, &list, &n));
	assert_int_equal(n, 0);
	cmicro_subscription_free(s2);
	cmicro_registry_free(reg);
	inbox_free(in);
}

static void test_broker_broadcast_every_subscriber_receives(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_tls_config *tls = insecure_tls();
	struct cmicro_broker *subs[3], *pb;
	struct cmicro_subscription *s[3];
	struct inbox *in[3];

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	for (int i = 0; i < 3; i++) {
		in[i] = inbox_new();
		subs[i] = broker_new(reg, tls, NULL);
		TK_OK(cmicro_broker_subscribe(subs[i], "news", NULL, inbox_handler, in[i], &s[i]));
	}
	pb = broker_new(reg, tls, NULL);
	publish_n(pb, "news", 20, "item");
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	for (int i = 0; i < 3; i++) {
		wait_count(&in[i]->count, 20);
		assert_int_equal(atomic_load(&in[i]->count), 20);
		for (int m = 0; m < 20; m++)
			assert_int_equal(in[i]->seen[m], 1);
	}
	for (int i = 0; i < 3; i++) {
		cmicro_subscription_free(s[i]);
		cmicro_broker_free(subs[i]);
		inbox_free(in[i]);
	}
	cmicro_broker_free(pb);
	cmicro_tls_config_free(tls);
	cmicro_registry_free(reg);
}

static void test_broker_queue_group_delivers_once(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *subs[3], *pb;
	struct cmicro_subscription *s[3];
	struct inbox *in[3];
	int total = 0;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	for (int i = 0; i < 3; i++) {
		in[i] = inbox_new();
		subs[i] = broker_new(reg, NULL, NULL);
		TK_OK(cmicro_broker_subscribe(subs[i], "jobs", "workers", inbox_handler, in[i], &s[i]));
	}
	pb = broker_new(reg, NULL, NULL);
	publish_n(pb, "jobs", 60, "job");
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	for (int m = 0; m < 60; m++) {
		int got = 0;

		for (int i = 0; i < 3; i++)
			got += in[i]->seen[m];
		assert_int_equal(got, 1);
	}
	for (int i = 0; i < 3; i++) {
		/* A uniform pick leaves a member empty with probability about 3e-11. */
		assert_true(atomic_load(&in[i]->count) > 0);
		total += atomic_load(&in[i]->count);
	}
	assert_int_equal(total, 60);
	for (int i = 0; i < 3; i++) {
		cmicro_subscription_free(s[i]);
		cmicro_broker_free(subs[i]);
		inbox_free(in[i]);
	}
	cmicro_broker_free(pb);
	cmicro_registry_free(reg);
}

static void test_broker_handler_error_retried_from_backlog(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub;
	struct cmicro_broker_stats st;
	struct inbox *in = inbox_new();

	(void)state;
	tk_log_capture_start();
	cmicro_broker_opts_init(&opts);
	opts.retry_initial_ms = 50;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_new(reg, NULL, NULL);
	pb = broker_new(reg, NULL, &opts);
	TK_OK(cmicro_broker_subscribe(sb, "flaky", NULL, inbox_handler, in, &sub));
	atomic_store(&in->fail_first, 2);

	pub = publish_wait(pb, "flaky", "payload", &r);
	assert_int_equal(r->received, 0);
	assert_true(r->backlogged);
	assert_int_equal(r->deliveries[0].http_status, 500);
	assert_int_equal(r->deliveries[0].err, CMICRO_EPROTO);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.delivered, 1);
	assert_int_equal(st.failed, 2);
	assert_int_equal(st.retried, 2);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.backlog, 0);
	assert_int_equal(atomic_load(&in->count), 1);
	assert_int_equal(tk_log_count("BROKER-DELIVERY-FAILED"), 1);
	assert_int_equal(tk_log_count("BROKER-DELIVERY-RECOVERED"), 1);
	cmicro_publication_free(pub);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
	tk_log_capture_stop();
}

/* Registers a node of topic that only a raw socket (or nothing) serves. */
static struct cmicro_service *register_fake(struct cmicro_registry *reg, const char *topic,
					    const char *id, int port)
{
	struct cmicro_service *svc = NULL;
	struct cmicro_node *node = NULL;
	char addr[64];

	cmi_fmt(addr, sizeof(addr), "127.0.0.1:%d", port);
	TK_OK(cmicro_service_new(CMICRO_BROKER_SERVICE, CMICRO_BROKER_BROADCAST, &svc));
	TK_OK(cmicro_service_add_node(svc, id, addr, &node));
	TK_OK(cmicro_service_set_meta(svc, node, "broker", "http"));
	TK_OK(cmicro_service_set_meta(svc, node, "topic", topic));
	TK_OK(cmicro_service_set_meta(svc, node, "secure", "false"));
	TK_OK(cmicro_registry_register(reg, svc, 60));
	return svc;
}

static int listen_silent(int *port)
{
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void test_broker_silent_node_times_out(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *pb;
	struct cmicro_service *fake;
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub;
	int port, fd;

	(void)state;
	tk_log_capture_start();
	fd = listen_silent(&port);
	TK_OK(cmicro_registry_memory_new(&reg));
	fake = register_fake(reg, "quiet", "quiet-node", port);
	cmicro_broker_opts_init(&opts);
	opts.delivery_timeout_ms = 300;
	opts.retry_initial_ms = 60000;
	pb = broker_new(reg, NULL, &opts);
	pub = publish_wait(pb, "quiet", "anyone?", &r);
	assert_int_equal(r->targets, 1);
	assert_int_equal(r->received, 0);
	assert_int_equal(r->err, CMICRO_ETIMEDOUT);
	assert_int_equal(r->deliveries[0].err, CMICRO_ETIMEDOUT);
	assert_string_equal(r->deliveries[0].node_id, "quiet-node");
	assert_true(r->backlogged);
	cmicro_publication_free(pub);
	cmicro_broker_free(pb);
	cmicro_service_free(fake);
	cmicro_registry_free(reg);
	close(fd);
	tk_log_capture_stop();
}

static void test_broker_backlog_limit_counts_drops(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *pb;
	struct cmicro_service *fake;
	struct cmicro_broker_stats st;

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_registry_memory_new(&reg));
	fake = register_fake(reg, "lost", "gone-node", tk_free_port());
	cmicro_broker_opts_init(&opts);
	opts.retry_initial_ms = 60000;
	pb = broker_new(reg, NULL, &opts);
	publish_n(pb, "lost", 70, "x");
	for (int i = 0; i < WAIT_MS / 10; i++) {
		cmicro_broker_get_stats(pb, &st);
		if (st.failed >= 70)
			break;
		usleep(10 * 1000);
	}
	assert_int_equal(st.failed, 70);
	assert_int_equal(st.backlog, 64);
	assert_int_equal(st.dropped, 6);
	assert_int_equal(st.backlogged, 70);
	assert_true(tk_log_count("BROKER-DROPPED") >= 1);
	TK_FAIL(cmicro_broker_flush(pb, 10), CMICRO_ETIMEDOUT);
	cmicro_broker_free(pb);
	cmicro_service_free(fake);
	cmicro_registry_free(reg);
	tk_log_capture_stop();
}

static void test_broker_backlog_below_64_rejected(void **state)
{
	struct cmicro_broker_opts opts;
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *b = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.backlog_max = 10;
	TK_FAIL(cmicro_broker_new(&opts, &b), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "backlog_max 10");
	assert_null(b);
	cmicro_registry_free(reg);
}

static void test_broker_slow_handler_not_stalling_other(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *slow = NULL, *fast = NULL;
	struct inbox *in_slow = inbox_new(), *in_fast = inbox_new();

	(void)state;
	in_slow->sleep_ms = 1500;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_new(reg, NULL, NULL);
	pb = broker_new(reg, NULL, NULL);
	TK_OK(cmicro_broker_subscribe(sb, "slow", NULL, inbox_handler, in_slow, &slow));
	TK_OK(cmicro_broker_subscribe(sb, "fast", NULL, inbox_handler, in_fast, &fast));
	publish_n(pb, "slow", 2, "s");
	usleep(100 * 1000);
	publish_n(pb, "fast", 5, "f");
	wait_count(&in_fast->count, 5);
	assert_int_equal(atomic_load(&in_fast->count), 5);
	/* The slow handler is still in its first call. */
	assert_int_equal(atomic_load(&in_slow->count), 0);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	assert_int_equal(atomic_load(&in_slow->count), 2);
	cmicro_subscription_free(slow);
	cmicro_subscription_free(fast);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in_slow);
	inbox_free(in_fast);
}

static void test_broker_secure_publisher_rejects_selfsigned(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_tls_config *insecure = insecure_tls(), *secure = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub = NULL;
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub;
	struct inbox *in = inbox_new();

	(void)state;
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_new(&secure));
	TK_OK(cmicro_tls_config_set_system_roots(secure, false));
	cmicro_broker_opts_init(&opts);
	opts.retry_initial_ms = 60000;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_new(reg, insecure, NULL);
	pb = broker_new(reg, secure, &opts);
	TK_OK(cmicro_broker_subscribe(sb, "audit", NULL, inbox_handler, in, &sub));
	pub = publish_wait(pb, "audit", "secret", &r);
	assert_int_equal(r->received, 0);
	assert_int_equal(r->deliveries[0].err, CMICRO_EVERIFY);
	assert_true(r->deliveries[0].tls_reason == CMICRO_TLS_REASON_SELF_SIGNED ||
		    r->deliveries[0].tls_reason == CMICRO_TLS_REASON_UNKNOWN_AUTHORITY);
	assert_true(r->backlogged);
	assert_int_equal(atomic_load(&in->count), 0);
	TK_CONTAINS(tk_log_captured(), "BROKER-DELIVERY-FAILED");
	cmicro_publication_free(pub);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_tls_config_free(secure);
	cmicro_tls_config_free(insecure);
	cmicro_registry_free(reg);
	inbox_free(in);
	tk_log_capture_stop();
}

/* A request with a node id this broker does not serve gets 404. */
static void test_broker_unknown_node_id_404(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *sb;
	struct cmicro_subscription *sub = NULL;
	struct inbox *in = inbox_new();
	struct cmicro_broker_stats st;
	char *out = NULL;
	int rc;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	sb = broker_new(reg, NULL, NULL);
	TK_OK(cmicro_broker_subscribe(sb, "t", NULL, inbox_handler, in, &sub));
	rc = tk_run(&out, 20,
		    "curl -s -o /dev/null -w %%{http_code} -X POST "
		    "-d {\\\"Header\\\":{\\\"Micro-Topic\\\":\\\"t\\\"},\\\"Body\\\":\\\"\\\"} "
		    "http://%s/?id=nobody",
		    cmicro_subscription_address(sub));
	assert_int_equal(rc, 0);
	assert_string_equal(out, "404");
	free(out);
	cmicro_broker_get_stats(sb, &st);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(st.received, 0);
	assert_int_equal(atomic_load(&in->count), 0);
	cmicro_subscription_free(sub);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	inbox_free(in);
}

static void test_broker_calls_before_connect_rejected(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;
	struct cmicro_subscription *sub = NULL;
	struct cmicro_message *msg = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	TK_OK(cmicro_broker_new(&opts, &b));
	TK_OK(cmicro_message_new(&msg));
	TK_FAIL(cmicro_broker_subscribe(b, "t", NULL, inbox_handler, NULL, &sub), CMICRO_ESTATE);
	TK_FAIL(cmicro_broker_publish(b, "t", msg, NULL), CMICRO_ESTATE);
	TK_CONTAINS(cmicro_last_errmsg(), "cmicro_broker_connect");
	TK_OK(cmicro_broker_connect(b));
	TK_FAIL(cmicro_broker_publish(b, "", msg, NULL), CMICRO_EINVAL);
	cmicro_message_free(msg);
	cmicro_broker_free(b);
	cmicro_broker_free(NULL);
	cmicro_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broker_publish_reaches_subscriber),
		cmocka_unit_test(test_broker_registration_matches_go_layout),
		cmocka_unit_test(test_broker_broadcast_every_subscriber_receives),
		cmocka_unit_test(test_broker_queue_group_delivers_once),
		cmocka_unit_test(test_broker_handler_error_retried_from_backlog),
		cmocka_unit_test(test_broker_silent_node_times_out),
		cmocka_unit_test(test_broker_backlog_limit_counts_drops),
		cmocka_unit_test(test_broker_backlog_below_64_rejected),
		cmocka_unit_test(test_broker_slow_handler_not_stalling_other),
		cmocka_unit_test(test_broker_secure_publisher_rejects_selfsigned),
		cmocka_unit_test(test_broker_unknown_node_id_404),
		cmocka_unit_test(test_broker_calls_before_connect_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
