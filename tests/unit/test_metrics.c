/* The broker's Prometheus metrics: families, per-topic counters and their
 * bound, label escaping, and GET /metrics on the broker's listener and on
 * a separate listener, fetched with curl. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/metrics_int.h"
#include "testkit.h"

struct fixture {
	struct cmicro_registry *reg;
	struct cmicro_broker *b;
};

static struct cmicro_broker *make_broker(struct fixture *f, bool metrics, const char *address)
{
	struct cmicro_broker_opts o;

	cmicro_broker_opts_init(&o);
	o.registry = f->reg;
	o.metrics = metrics;
	o.metrics_address = address;
	TK_OK(cmicro_broker_new(&o, &f->b));
	return f->b;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	TK_OK(cmicro_registry_memory_new(&f->reg));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	cmicro_broker_free(f->b);
	cmicro_registry_free(f->reg);
	free(f);
	return 0;
}

static char *metrics_text(struct cmicro_broker *b)
{
	char *text = NULL;

	TK_OK(cmicro_broker_metrics_text(b, &text));
	assert_non_null(text);
	return text;
}

static void test_metrics_escape_specials_escaped(void **state)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *out = open_memstream(&buf, &size);

	(void)state;
	assert_non_null(out);
	cmi_brk_metrics_escape(out, "a\\b\"c\nd");
	assert_int_equal(fclose(out), 0);
	assert_string_equal(buf, "a\\\\b\\\"c\\nd");
	free(buf);
}

static void test_metrics_text_lists_families(void **state)
{
	static const char *const families[] = {
		"cmicro_tls_handshakes_total",     "cmicro_messages_published_total",
		"cmicro_messages_delivered_total", "cmicro_messages_failed_total",
		"cmicro_messages_backlogged_total", "cmicro_messages_dropped_total",
		"cmicro_backlog_depth",            "cmicro_registry_errors_total",
		"cmicro_cert_expiry_seconds",
	};
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	char *text = metrics_text(b);

	for (size_t i = 0; i < CMI_ARRAY_LEN(families); i++) {
		char line[128];

		cmi_fmt(line, sizeof(line), "# HELP %s ", families[i]);
		TK_CONTAINS(text, line);
		cmi_fmt(line, sizeof(line), "# TYPE %s ", families[i]);
		TK_CONTAINS(text, line);
	}
	TK_CONTAINS(text, "cmicro_tls_handshakes_total{outcome=\"ok\",reason=\"none\"} 0\n");
	TK_CONTAINS(text, "cmicro_registry_errors_total 0\n");
	free(text);
}

static void test_metrics_topic_counts_rendered(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	char *text;

	for (int i = 0; i < 3; i++)
		cmi_brk_metrics_count(b, "orders", CMI_METRIC_PUBLISHED);
	cmi_brk_metrics_count(b, "orders", CMI_METRIC_DELIVERED);
	cmi_brk_metrics_count(b, "orders", CMI_METRIC_FAILED);
	cmi_brk_metrics_count(b, "orders", CMI_METRIC_BACKLOGGED);
	cmi_brk_metrics_count(b, "orders", CMI_METRIC_DROPPED);
	cmi_brk_metrics_backlog(b, "orders", 1);
	cmi_brk_metrics_backlog(b, "orders", 1);
	cmi_brk_metrics_backlog(b, "orders", -1);
	cmi_brk_metrics_registry_error(b);
	text = metrics_text(b);
	TK_CONTAINS(text, "cmicro_messages_published_total{topic=\"orders\"} 3\n");
	TK_CONTAINS(text, "cmicro_messages_delivered_total{topic=\"orders\"} 1\n");
	TK_CONTAINS(text, "cmicro_messages_failed_total{topic=\"orders\"} 1\n");
	TK_CONTAINS(text, "cmicro_messages_backlogged_total{topic=\"orders\"} 1\n");
	TK_CONTAINS(text, "cmicro_messages_dropped_total{topic=\"orders\"} 1\n");
	TK_CONTAINS(text, "cmicro_backlog_depth{topic=\"orders\"} 1\n");
	TK_CONTAINS(text, "cmicro_registry_errors_total 1\n");
	free(text);
}

static void test_metrics_quote_topic_escaped(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	char *text;

	cmi_brk_metrics_count(b, "say\"hi\\\n", CMI_METRIC_PUBLISHED);
	text = metrics_text(b);
	TK_CONTAINS(text, "cmicro_messages_published_total{topic=\"say\\\"hi\\\\\\n\"} 1\n");
	assert_null(strstr(text, "say\"hi"));
	free(text);
}

static void test_metrics_many_topics_bounded_other(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	char *text, *p;
	int series = 0;

	for (int i = 0; i < CMI_METRICS_TOPICS_MAX + 44; i++) {
		char topic[32];

		cmi_fmt(topic, sizeof(topic), "t%d", i);
		cmi_brk_metrics_count(b, topic, CMI_METRIC_PUBLISHED);
	}
	text = metrics_text(b);
	for (p = text; (p = strstr(p, "\ncmicro_messages_published_total{")) != NULL; p++)
		series++;
	assert_int_equal(series, CMI_METRICS_TOPICS_MAX + 1);
	TK_CONTAINS(text, "cmicro_messages_published_total{topic=\"_other\"} 44\n");
	TK_CONTAINS(text, "cmicro_messages_published_total{topic=\"t255\"} 1\n");
	assert_null(strstr(text, "topic=\"t256\""));
	free(text);
}

static void test_metrics_rejected_reason_counted(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	struct cmicro_tls_config *cfg;
	char *text;

	cfg = b->tls;
	cmi_tls_record_failure(cfg, "127.0.0.1:1", "node-1", CMICRO_TLS_REASON_PLAINTEXT,
			       "plaintext node");
	text = metrics_text(b);
	TK_CONTAINS(text, "reason=\"plaintext\"} 1\n");
	free(text);
}

static void test_metrics_own_cert_exposed(void **state)
{
	struct fixture *f = *state;
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_broker_opts o;
	char *text;

	TK_OK(cmicro_tls_config_insecure(&cfg));
	cmicro_broker_opts_init(&o);
	o.registry = f->reg;
	o.tls = cfg;
	o.address = "127.0.0.1:0";
	TK_OK(cmicro_broker_new(&o, &f->b));
	TK_OK(cmicro_broker_connect(f->b));
	text = metrics_text(f->b);
	TK_CONTAINS(text, "cmicro_cert_expiry_seconds{kind=\"own\",subject=\"O=Micro\",fingerprint=\"");
	TK_CONTAINS(text, f->b->cert_fingerprint);
	free(text);
	cmicro_tls_config_free(cfg);
}

static int count_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	(void)topic;
	(void)msg;
	__atomic_add_fetch((int *)user, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* Real publishes through a connected broker move the per-topic series: two
 * messages to a subscribed topic are published and delivered, one to a topic
 * without subscribers is published and backlogged. */
static void test_metrics_real_publish_counted(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	struct cmicro_subscription *sub = NULL;
	struct cmicro_message *msg = NULL;
	int received = 0;
	char *text;

	TK_OK(cmicro_broker_connect(b));
	TK_OK(cmicro_broker_subscribe(b, "metered", NULL, count_handler, &received, &sub));
	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, "x", 1));
	TK_OK(cmicro_broker_publish(b, "metered", msg, NULL));
	TK_OK(cmicro_broker_publish(b, "metered", msg, NULL));
	TK_OK(cmicro_broker_publish(b, "unheard", msg, NULL));
	for (int waited = 0; waited < 10000 && __atomic_load_n(&received, __ATOMIC_SEQ_CST) < 2;
	     waited += 50)
		usleep(50 * 1000);
	assert_int_equal(__atomic_load_n(&received, __ATOMIC_SEQ_CST), 2);

	/* The look-up of the topic without subscribers ends in the backlog on
	 * the broker's threads; wait (bounded) until it is counted. */
	text = metrics_text(b);
	for (int waited = 0;
	     waited < 10000 && strstr(text, "backlogged_total{topic=\"unheard\"} 1\n") == NULL;
	     waited += 50) {
		free(text);
		usleep(50 * 1000);
		text = metrics_text(b);
	}
	TK_CONTAINS(text, "cmicro_messages_published_total{topic=\"metered\"} 2\n");
	TK_CONTAINS(text, "cmicro_messages_delivered_total{topic=\"metered\"} 2\n");
	TK_CONTAINS(text, "cmicro_messages_published_total{topic=\"unheard\"} 1\n");
	TK_CONTAINS(text, "cmicro_messages_backlogged_total{topic=\"unheard\"} 1\n");
	free(text);
	cmicro_message_free(msg);
	cmicro_subscription_free(sub);
}

/* Fetches url with curl; returns the output (status code last). */
static char *curl_get(const char *url, const char *extra)
{
	char *output = NULL;

	assert_int_equal(tk_run(&output, 20, "curl -sk %s -w \"\\nSTATUS %%{http_code}\" %s",
				extra, url),
			 0);
	assert_non_null(output);
	return output;
}

static void test_metrics_listener_serves_when_enabled(void **state)
{
	struct cmicro_broker *b = make_broker(*state, true, NULL);
	char url[320], *out;

	TK_OK(cmicro_broker_connect(b));
	cmi_fmt(url, sizeof(url), "http://%s/metrics", cmicro_broker_address(b));
	out = curl_get(url, "");
	TK_CONTAINS(out, "# TYPE cmicro_messages_published_total counter");
	TK_CONTAINS(out, "STATUS 200");
	free(out);
}

static void test_metrics_listener_disabled_rejects(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, NULL);
	char url[320], *out;

	TK_OK(cmicro_broker_connect(b));
	cmi_fmt(url, sizeof(url), "http://%s/metrics", cmicro_broker_address(b));
	out = curl_get(url, "");
	TK_CONTAINS(out, "STATUS 405");
	assert_null(strstr(out, "cmicro_messages_published_total"));
	free(out);
}

static void test_metrics_separate_listener_serves(void **state)
{
	struct cmicro_broker *b = make_broker(*state, false, "127.0.0.1:0");
	char url[320], *out;

	assert_null(cmicro_broker_metrics_address(b));
	TK_OK(cmicro_broker_connect(b));
	assert_non_null(cmicro_broker_metrics_address(b));
	cmi_fmt(url, sizeof(url), "http://%s/metrics", cmicro_broker_metrics_address(b));
	out = curl_get(url, "");
	TK_CONTAINS(out, "# TYPE cmicro_cert_expiry_seconds gauge");
	TK_CONTAINS(out, "STATUS 200");
	free(out);
	cmi_fmt(url, sizeof(url), "http://%s/other", cmicro_broker_metrics_address(b));
	out = curl_get(url, "");
	TK_CONTAINS(out, "STATUS 404");
	free(out);
	cmi_fmt(url, sizeof(url), "http://%s/metrics", cmicro_broker_metrics_address(b));
	out = curl_get(url, "-X POST -d x");
	TK_CONTAINS(out, "STATUS 405");
	free(out);
}

static void test_metrics_bad_settings_rejected(void **state)
{
	struct fixture *f = *state;
	struct cmicro_broker_opts o;

	cmicro_broker_opts_init(&o);
	o.registry = f->reg;
	o.metrics_address = "no-port-here";
	TK_FAIL(cmicro_broker_new(&o, &f->b), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "\"no-port-here\"");
	o.metrics_address = NULL;
	setenv("MICRO_BROKER_METRICS", "maybe", 1);
	TK_FAIL(cmicro_broker_new(&o, &f->b), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_BROKER_METRICS=\"maybe\"");
	setenv("MICRO_BROKER_METRICS", "true", 1);
	TK_OK(cmicro_broker_new(&o, &f->b));
	unsetenv("MICRO_BROKER_METRICS");
	assert_true(f->b->metrics_on);
}

static void test_metrics_null_args_rejected(void **state)
{
	char *text = (char *)"unchanged";

	(void)state;
	TK_FAIL(cmicro_broker_metrics_text(NULL, &text), CMICRO_EINVAL);
	assert_null(text);
	assert_null(cmicro_broker_metrics_address(NULL));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_metrics_escape_specials_escaped),
		T(test_metrics_text_lists_families),
		T(test_metrics_real_publish_counted),
		T(test_metrics_topic_counts_rendered),
		T(test_metrics_quote_topic_escaped),
		T(test_metrics_many_topics_bounded_other),
		T(test_metrics_rejected_reason_counted),
		T(test_metrics_own_cert_exposed),
		T(test_metrics_listener_serves_when_enabled),
		T(test_metrics_listener_disabled_rejects),
		T(test_metrics_separate_listener_serves),
		T(test_metrics_bad_settings_rejected),
		T(test_metrics_null_args_rejected),
	};

	unsetenv("MICRO_BROKER_METRICS");
	unsetenv("MICRO_METRICS_ADDRESS");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
