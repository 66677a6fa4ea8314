/*
 * Mutual TLS between brokers in one process over HTTPS on 127.0.0.1: a
 * subscriber that requires client certificates, and publishers that present
 * a good one, none, one from a foreign CA, an expired one or one made for
 * servers only. Both sides must name the cause: the publisher in its
 * delivery result, the subscriber in its log with the client's address.
 * Certificates come from cmicro's generator, and the foreign one from the
 * openssl CLI.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker/broker_int.h"
#include "testkit.h"

#define WAIT_MS 10000

static char *tmp;
static struct cmicro_cert *ca, *server_cert;

static atomic_int received;

static int count_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	(void)user;
	(void)topic;
	(void)msg;
	atomic_fetch_add(&received, 1);
	return 0;
}

static struct cmicro_cert *issue(enum cmicro_cert_usage usage, const char *cn, time_t not_after)
{
	const char *hosts[] = {"127.0.0.1"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *cert = NULL;

	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.common_name = cn;
	opts.usage = usage;
	if (not_after != 0) {
		opts.not_before = not_after - 7 * 86400;
		opts.not_after = not_after;
	}
	TK_OK(cmicro_cert_issue(ca, &opts, &cert));
	return cert;
}

static int setup(void **state)
{
	struct cmicro_cert_opts opts;

	(void)state;
	tmp = tk_tmpdir();
	cmicro_cert_opts_init(&opts);
	opts.common_name = "mtls test CA";
	TK_OK(cmicro_cert_ca_new(&opts, &ca));
	server_cert = issue(CMICRO_CERT_USAGE_SERVER, "subscriber", 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cmicro_cert_free(server_cert);
	cmicro_cert_free(ca);
	tk_tmpdir_remove(tmp);
	return 0;
}

/* A verifying configuration that trusts only the test CA. */
static struct cmicro_tls_config *tls_with(const struct cmicro_cert *own)
{
	struct cmicro_tls_config *cfg = NULL;

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	TK_OK(cmicro_tls_config_add_ca_cert(cfg, ca));
	if (own != NULL)
		TK_OK(cmicro_tls_config_set_cert(cfg, own));
	return cfg;
}

/* Loads foreign.pem and foreign.key from dir. */
static int load_foreign_cert(const char *dir, struct cmicro_cert **out)
{
	char cert[512], key[512];

	return cmicro_cert_load(tk_path(cert, sizeof(cert), dir, "foreign.pem"),
				tk_path(key, sizeof(key), dir, "foreign.key"), NULL, out);
}

static struct cmicro_broker *broker_on(struct cmicro_registry *reg, struct cmicro_tls_config *tls)
{
	struct cmicro_broker_opts opts;
	struct cmicro_broker *b = NULL;

	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.tls = tls;
	opts.retry_initial_ms = 60000;
	TK_OK(cmicro_broker_new(&opts, &b));
	TK_OK(cmicro_broker_connect(b));
	return b;
}

struct mtls_run {
	struct cmicro_registry *reg;
	struct cmicro_tls_config *sub_tls, *pub_tls;
	struct cmicro_broker *sb, *pb;
	struct cmicro_subscription *sub;
	struct cmicro_publication *pub;
	const struct cmicro_publish_result *r;
};

/* Publishes one message from a publisher presenting client (NULL: no
 * certificate) to a subscriber that requires client certificates. */
static void mtls_publish(struct mtls_run *run, const struct cmicro_cert *client)
{
	struct cmicro_message *msg = NULL;

	memset(run, 0, sizeof(*run));
	atomic_store(&received, 0);
	TK_OK(cmicro_registry_memory_new(&run->reg));
	run->sub_tls = tls_with(server_cert);
	TK_OK(cmicro_tls_config_set_client_auth(run->sub_tls, CMICRO_TLS_CLIENT_AUTH_REQUIRE));
	run->pub_tls = tls_with(client);
	run->sb = broker_on(run->reg, run->sub_tls);
	run->pb = broker_on(run->reg, run->pub_tls);
	TK_OK(cmicro_broker_subscribe(run->sb, "orders", NULL, count_handler, NULL, &run->sub));

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, "hello", 5));
	TK_OK(cmicro_broker_publish(run->pb, "orders", msg, &run->pub));
	cmicro_message_free(msg);
	TK_OK(cmicro_publication_wait(run->pub, WAIT_MS, &run->r));
	assert_int_equal(run->r->targets, 1);
}

/* Stops the subscriber first, so that its log of the rejection is written. */
static void mtls_end(struct mtls_run *run)
{
	cmicro_publication_free(run->pub);
	cmicro_subscription_free(run->sub);
	cmicro_broker_free(run->sb);
	cmicro_broker_free(run->pb);
	cmicro_tls_config_free(run->pub_tls);
	cmicro_tls_config_free(run->sub_tls);
	cmicro_registry_free(run->reg);
}

/* Returns the subscriber's log lines about failed handshakes. */
static const char *handshake_log(void)
{
	const char *line = strstr(tk_log_captured(), "HTTP-TLS-HANDSHAKE");

	return line != NULL ? line : "(no HTTP-TLS-HANDSHAKE line)";
}

/* A client certificate with clientAuth from a CA the subscriber does not
 * trust, made by the openssl CLI. */
static struct cmicro_cert *foreign_client_cert(void)
{
	struct cmicro_cert *cert = NULL;
	char *out = NULL;
	int rc;

	rc = tk_run(&out, 60,
		    "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
		    "-nodes -keyout foreign.key -out foreign.pem -days 30 -subj /CN=foreign "
		    "-addext basicConstraints=critical,CA:FALSE "
		    "-addext extendedKeyUsage=clientAuth",
		    tmp);
	if (rc != 0)
		fail_msg("openssl req failed: %s", out ? out : "");
	free(out);
	TK_OK(load_foreign_cert(tmp, &cert));
	return cert;
}

static void test_mtls_good_client_cert_accepted(void **state)
{
	struct cmicro_cert *client = issue(CMICRO_CERT_USAGE_CLIENT, "publisher", 0);
	struct mtls_run run;

	(void)state;
	tk_log_capture_start();
	mtls_publish(&run, client);
	assert_int_equal(run.r->received, 1);
	assert_int_equal(run.r->err, 0);
	assert_true(run.r->deliveries[0].ok);
	mtls_end(&run);
	assert_int_equal(atomic_load(&received), 1);
	assert_int_equal(tk_log_count("HTTP-TLS-HANDSHAKE"), 0);
	cmicro_cert_free(client);
	tk_log_capture_stop();
}

/* Publishes with client, checks the publisher's result, then returns after
 * the subscriber stopped, so that its log is complete. */
static void expect_rejected(const struct cmicro_cert *client, enum cmicro_tls_reason reason,
			    const char *pub_text, const char *sub_text)
{
	struct mtls_run run;
	const struct cmicro_delivery *d;

	tk_log_capture_start();
	mtls_publish(&run, client);
	d = &run.r->deliveries[0];
	assert_int_equal(run.r->received, 0);
	assert_false(d->ok);
	assert_int_equal(d->err, CMICRO_EHANDSHAKE);
	assert_string_equal(cmicro_tls_reason_name(d->tls_reason), cmicro_tls_reason_name(reason));
	TK_CONTAINS(d->message, pub_text);
	assert_null(strstr(d->message, "lib(0)"));
	assert_null(strstr(d->message, "serves HTTPS"));
	mtls_end(&run);
	assert_int_equal(atomic_load(&received), 0);
	TK_CONTAINS(handshake_log(), "with client 127.0.0.1:");
	TK_CONTAINS(handshake_log(), sub_text);
	tk_log_capture_stop();
}

static void test_mtls_no_client_cert_named(void **state)
{
	(void)state;
	expect_rejected(NULL, CMICRO_TLS_REASON_NO_CERTIFICATE,
			"requires a client certificate and none was sent; set MICRO_TLS_CERT_FILE",
			"the client sent no certificate");
}

static void test_mtls_foreign_ca_named(void **state)
{
	struct cmicro_cert *client = foreign_client_cert();

	(void)state;
	expect_rejected(client, CMICRO_TLS_REASON_UNKNOWN_AUTHORITY,
			"rejected this node's certificate: unknown CA", "CN=foreign");
	cmicro_cert_free(client);
}

static void test_mtls_expired_client_cert_named(void **state)
{
	struct cmicro_cert *client =
	    issue(CMICRO_CERT_USAGE_CLIENT, "old publisher", time(NULL) - 86400);

	(void)state;
	expect_rejected(client, CMICRO_TLS_REASON_EXPIRED, "expired", "certificate has expired");
	cmicro_cert_free(client);
}

static void test_mtls_server_only_cert_named(void **state)
{
	struct cmicro_cert *client = issue(CMICRO_CERT_USAGE_SERVER, "server-only publisher", 0);

	(void)state;
	expect_rejected(client, CMICRO_TLS_REASON_BAD_USAGE,
			"needs extended key usage clientAuth; issue it with cmicro cert issue "
			"--usage client|both",
			"clientAuth");
	cmicro_cert_free(client);
}

/* Publishes one message from a new publisher presenting client to the
 * subscriber of run, and returns the first delivery's error. */
static int publish_from(struct mtls_run *run, const struct cmicro_cert *client)
{
	struct cmicro_tls_config *tls = tls_with(client);
	struct cmicro_broker *pb = broker_on(run->reg, tls);
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub = NULL;
	struct cmicro_message *msg = NULL;
	int err;

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_broker_publish(pb, "orders", msg, &pub));
	cmicro_message_free(msg);
	TK_OK(cmicro_publication_wait(pub, WAIT_MS, &r));
	err = r->n_deliveries == 1 ? r->deliveries[0].err : -1;
	cmicro_publication_free(pub);
	cmicro_broker_free(pb);
	cmicro_tls_config_free(tls);
	return err;
}

/* Three rejections of one client host for three causes within the rate
 * limit's interval: each cause gets its own log line. */
static void test_mtls_each_reject_cause_logged(void **state)
{
	struct cmicro_cert *foreign = foreign_client_cert();
	struct cmicro_cert *server_only = issue(CMICRO_CERT_USAGE_SERVER, "server-only", 0);
	struct mtls_run run;
	const char *log;

	(void)state;
	tk_log_capture_start();
	memset(&run, 0, sizeof(run));
	TK_OK(cmicro_registry_memory_new(&run.reg));
	run.sub_tls = tls_with(server_cert);
	TK_OK(cmicro_tls_config_set_client_auth(run.sub_tls, CMICRO_TLS_CLIENT_AUTH_REQUIRE));
	run.sb = broker_on(run.reg, run.sub_tls);
	TK_OK(cmicro_broker_subscribe(run.sb, "orders", NULL, count_handler, NULL, &run.sub));

	assert_int_equal(publish_from(&run, foreign), CMICRO_EHANDSHAKE);
	assert_int_equal(publish_from(&run, server_only), CMICRO_EHANDSHAKE);
	assert_int_equal(publish_from(&run, NULL), CMICRO_EHANDSHAKE);
	mtls_end(&run);

	log = tk_log_captured();
	assert_int_equal(tk_log_count("HTTP-TLS-HANDSHAKE"), 3);
	TK_CONTAINS(log, "CN=foreign");
	TK_CONTAINS(log, "clientAuth");
	TK_CONTAINS(log, "the client sent no certificate");
	cmicro_cert_free(server_only);
	cmicro_cert_free(foreign);
	tk_log_capture_stop();
}

/* A registered HTTPS node whose process is gone: the port refuses. */
static void test_mtls_refused_node_econnect(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_tls_config *tls = tls_with(NULL);
	struct cmicro_service *svc = NULL;
	struct cmicro_node *node = NULL;
	struct cmicro_broker *pb;
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub = NULL;
	struct cmicro_message *msg = NULL;
	char addr[64], expected[160];

	(void)state;
	tk_log_capture_start();
	cmi_fmt(addr, sizeof(addr), "127.0.0.1:%d", tk_free_port());
	TK_OK(cmicro_registry_memory_new(&reg));
	TK_OK(cmicro_service_new(CMICRO_BROKER_SERVICE, CMICRO_BROKER_BROADCAST, &svc));
	TK_OK(cmicro_service_add_node(svc, "gone-node", addr, &node));
	TK_OK(cmicro_service_set_meta(svc, node, "broker", "http"));
	TK_OK(cmicro_service_set_meta(svc, node, "topic", "orders"));
	TK_OK(cmicro_service_set_meta(svc, node, "secure", "true"));
	TK_OK(cmicro_registry_register(reg, svc, 60));
	pb = broker_on(reg, tls);

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_broker_publish(pb, "orders", msg, &pub));
	cmicro_message_free(msg);
	TK_OK(cmicro_publication_wait(pub, WAIT_MS, &r));
	assert_int_equal(r->n_deliveries, 1);
	assert_int_equal(r->deliveries[0].err, CMICRO_ECONNECT);
	assert_int_equal(r->deliveries[0].tls_reason, CMICRO_TLS_REASON_NONE);
	cmi_fmt(expected, sizeof(expected),
		"cannot connect: connection refused by %s (is the subscriber running?)",
		addr);
	assert_string_equal(r->deliveries[0].message, expected);
	assert_true(r->backlogged);

	cmicro_publication_free(pub);
	cmicro_broker_free(pb);
	cmicro_service_free(svc);
	cmicro_tls_config_free(tls);
	cmicro_registry_free(reg);
	tk_log_capture_stop();
}

/* A message over the subscriber's body limit is dropped at once, counted
 * and logged with the limit, instead of being retried. */
static void test_mtls_oversized_message_dropped(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker_opts opts;
	struct cmicro_broker *sb = NULL, *pb;
	struct cmicro_subscription *sub = NULL;
	const struct cmicro_publish_result *r = NULL;
	struct cmicro_publication *pub = NULL;
	struct cmicro_message *msg = NULL;
	struct cmicro_broker_stats st;
	char body[4096];

	(void)state;
	tk_log_capture_start();
	atomic_store(&received, 0);
	memset(body, 'x', sizeof(body));
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&opts);
	opts.registry = reg;
	opts.max_body_bytes = 1024;
	TK_OK(cmicro_broker_new(&opts, &sb));
	TK_OK(cmicro_broker_connect(sb));
	TK_OK(cmicro_broker_subscribe(sb, "big", NULL, count_handler, NULL, &sub));
	pb = broker_on(reg, NULL);

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, body, sizeof(body)));
	TK_OK(cmicro_broker_publish(pb, "big", msg, &pub));
	cmicro_message_free(msg);
	TK_OK(cmicro_publication_wait(pub, WAIT_MS, &r));
	assert_int_equal(r->deliveries[0].http_status, 413);
	assert_false(r->backlogged);
	TK_OK(cmicro_broker_flush(pb, WAIT_MS));
	cmicro_broker_get_stats(pb, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.backlog, 0);
	TK_CONTAINS(tk_log_captured(), "BROKER-DROPPED");
	TK_CONTAINS(tk_log_captured(), "max_body_bytes");
	assert_int_equal(atomic_load(&received), 0);

	cmicro_publication_free(pub);
	cmicro_subscription_free(sub);
	cmicro_broker_free(pb);
	cmicro_broker_free(sb);
	cmicro_registry_free(reg);
	tk_log_capture_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mtls_good_client_cert_accepted),
		cmocka_unit_test(test_mtls_no_client_cert_named),
		cmocka_unit_test(test_mtls_foreign_ca_named),
		cmocka_unit_test(test_mtls_expired_client_cert_named),
		cmocka_unit_test(test_mtls_server_only_cert_named),
		cmocka_unit_test(test_mtls_each_reject_cause_logged),
		cmocka_unit_test(test_mtls_refused_node_econnect),
		cmocka_unit_test(test_mtls_oversized_message_dropped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
