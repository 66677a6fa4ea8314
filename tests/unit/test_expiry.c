/* Certificate expiry warnings: stages, one log line per certificate and
 * stage, peers seen in verifications, configured CAs, and a broker's check
 * at connect. Certificates are made at test time by cmicro and by the
 * openssl command-line tool. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/metrics_int.h"
#include "tls/expiry_int.h"
#include "testkit.h"

#define DAY 86400LL

static struct cmicro_cert *issue_days(int days, const char *cn)
{
	const char *hosts[] = {"127.0.0.1"};
	struct cmicro_cert_opts o;
	struct cmicro_cert *ca = NULL, *leaf = NULL;

	cmicro_cert_opts_init(&o);
	TK_OK(cmicro_cert_ca_new(&o, &ca));
	o.hosts = hosts;
	o.n_hosts = 1;
	o.days = days;
	o.common_name = cn;
	TK_OK(cmicro_cert_issue(ca, &o, &leaf));
	cmicro_cert_free(ca);
	return leaf;
}

static int setup(void **state)
{
	(void)state;
	cmi_tls_expiry_reset();
	tk_log_capture_start();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tk_log_capture_stop();
	cmi_tls_expiry_reset();
	return 0;
}

static void test_expiry_stage_boundaries_match(void **state)
{
	(void)state;
	assert_int_equal(cmi_tls_expiry_stage(-1, 30), CMI_EXPIRY_STAGE_EXPIRED);
	assert_int_equal(cmi_tls_expiry_stage(0, 30), CMI_EXPIRY_STAGE_EXPIRED);
	assert_int_equal(cmi_tls_expiry_stage(DAY, 30), CMI_EXPIRY_STAGE_1D);
	assert_int_equal(cmi_tls_expiry_stage(DAY + 1, 30), CMI_EXPIRY_STAGE_7D);
	assert_int_equal(cmi_tls_expiry_stage(7 * DAY, 30), CMI_EXPIRY_STAGE_7D);
	assert_int_equal(cmi_tls_expiry_stage(7 * DAY + 1, 30), CMI_EXPIRY_STAGE_THRESHOLD);
	assert_int_equal(cmi_tls_expiry_stage(30 * DAY, 30), CMI_EXPIRY_STAGE_THRESHOLD);
	assert_int_equal(cmi_tls_expiry_stage(30 * DAY + 1, 30), CMI_EXPIRY_STAGE_NONE);
	assert_int_equal(cmi_tls_expiry_stage(40 * DAY, 45), CMI_EXPIRY_STAGE_THRESHOLD);
	assert_int_equal(cmi_tls_expiry_stage(5 * DAY, 3), CMI_EXPIRY_STAGE_NONE);
}

static void test_expiry_five_days_warns_7d_once(void **state)
{
	struct cmicro_cert *c = issue_days(5, "five.example");
	int64_t now = (int64_t)time(NULL);

	(void)state;
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now),
			 CMI_EXPIRY_STAGE_7D);
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 60),
			 CMI_EXPIRY_STAGE_7D);
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 1);
	assert_int_equal(tk_log_count("TLS-EXPIRY-30D"), 0);
	TK_CONTAINS(tk_log_captured(), "this node's own certificate");
	TK_CONTAINS(tk_log_captured(), "CN=five.example");
	TK_CONTAINS(tk_log_captured(), "in 5 days");
	TK_CONTAINS(tk_log_captured(), "renew it");
	cmicro_cert_free(c);
}

static void test_expiry_twenty_days_warns_30d_once(void **state)
{
	struct cmicro_cert *c = issue_days(20, "twenty.example");
	int64_t now = (int64_t)time(NULL);

	(void)state;
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now),
			 CMI_EXPIRY_STAGE_THRESHOLD);
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 3600),
			 CMI_EXPIRY_STAGE_THRESHOLD);
	assert_int_equal(tk_log_count("TLS-EXPIRY-30D"), 1);
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 0);
	TK_CONTAINS(tk_log_captured(), "in 20 days");
	TK_CONTAINS(tk_log_captured(), "warning threshold 30 days");
	cmicro_cert_free(c);
}

static void test_expiry_forty_days_logs_nothing(void **state)
{
	struct cmicro_cert *c = issue_days(40, "forty.example");

	(void)state;
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, time(NULL)),
			 CMI_EXPIRY_STAGE_NONE);
	assert_int_equal(tk_log_count("TLS-EXPIRY-30D"), 0);
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 0);
	assert_int_equal(tk_log_count("TLS-EXPIRY-1D"), 0);
	cmicro_cert_free(c);
}

static void test_expiry_later_stages_warn_again(void **state)
{
	struct cmicro_cert *c = issue_days(20, "aging.example");
	int64_t now = (int64_t)time(NULL);

	(void)state;
	cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now);
	cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 15 * DAY);
	cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 16 * DAY);
	cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 19 * DAY + 3600);
	cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 21 * DAY);
	cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 30, now + 22 * DAY);
	assert_int_equal(tk_log_count("TLS-EXPIRY-30D"), 1);
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 1);
	assert_int_equal(tk_log_count("TLS-EXPIRY-1D"), 1);
	assert_int_equal(tk_log_count("TLS-EXPIRY-EXPIRED"), 1);
	TK_CONTAINS(tk_log_captured(), "days ago");
	cmicro_cert_free(c);
}

static void test_expiry_custom_threshold_warns_earlier(void **state)
{
	struct cmicro_cert *c = issue_days(40, "early.example");

	(void)state;
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_OWN, NULL, 45, time(NULL)),
			 CMI_EXPIRY_STAGE_THRESHOLD);
	assert_int_equal(tk_log_count("TLS-EXPIRY-30D"), 1);
	TK_CONTAINS(tk_log_captured(), "warning threshold 45 days");
	cmicro_cert_free(c);
}

/* A certificate made by the openssl tool, so the dates are not only read
 * back from cmicro's own generator. */
static void test_expiry_openssl_cert_warns_7d(void **state)
{
	char *dir = tk_tmpdir(), cert[512], key[512], *output = NULL;
	struct cmicro_cert *c = NULL;

	(void)state;
	tk_path(cert, sizeof(cert), dir, "cert.pem");
	tk_path(key, sizeof(key), dir, "key.pem");
	assert_int_equal(tk_run(&output, 30,
				"openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
				"-nodes -days 5 -subj /CN=openssl.example -keyout %s -out %s",
				key, cert),
			 0);
	free(output);
	TK_OK(cmicro_cert_load(cert, key, NULL, &c));
	assert_int_equal(cmi_tls_expiry_check(c->x509, CMI_EXPIRY_CA, NULL, 30, time(NULL)),
			 CMI_EXPIRY_STAGE_7D);
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 1);
	TK_CONTAINS(tk_log_captured(), "the trusted CA certificate");
	TK_CONTAINS(tk_log_captured(), "CN=openssl.example");
	cmicro_cert_free(c);
	tk_tmpdir_remove(dir);
}

static void test_expiry_observed_peer_listed(void **state)
{
	struct cmicro_cert *c = issue_days(5, "peer.example");
	struct cmi_expiry_cert *peers = NULL;
	size_t n = 0;

	(void)state;
	cmi_tls_expiry_observe(c->x509, "127.0.0.1:8443");
	cmi_tls_expiry_observe(c->x509, "127.0.0.1:8443");
	TK_OK(cmi_tls_expiry_peers(&peers, &n));
	assert_int_equal(n, 1);
	assert_string_equal(peers[0].label, "127.0.0.1:8443");
	assert_string_equal(peers[0].subject, "CN=peer.example,O=Micro");
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 1);
	TK_CONTAINS(tk_log_captured(), "peer 127.0.0.1:8443");
	free(peers);
	cmicro_cert_free(c);
}

static void test_expiry_config_ca_warns(void **state)
{
	const char *hosts[] = {"127.0.0.1"};
	char *dir = tk_tmpdir(), path[512];
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_cert *ca = NULL;
	struct cmicro_cert_opts o;

	(void)state;
	cmicro_cert_opts_init(&o);
	o.hosts = hosts;
	o.n_hosts = 1;
	o.days = 20;
	o.common_name = "short-lived CA";
	TK_OK(cmicro_cert_ca_new(&o, &ca));
	tk_path(path, sizeof(path), dir, "ca.pem");
	TK_OK(cmicro_cert_save(ca, path, NULL, 0));
	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_add_ca_file(cfg, path));
	cmi_tls_expiry_check_config(cfg, NULL, 30, time(NULL));
	assert_int_equal(tk_log_count("TLS-EXPIRY-30D"), 1);
	TK_CONTAINS(tk_log_captured(), "the trusted CA certificate (subject CN=short-lived CA");
	TK_CONTAINS(tk_log_captured(), "MICRO_TLS_CA_FILE");
	cmicro_tls_config_free(cfg);
	cmicro_cert_free(ca);
	tk_tmpdir_remove(dir);
}

static void test_expiry_null_cert_rejected(void **state)
{
	struct cmi_expiry_cert f;

	(void)state;
	TK_FAIL(cmi_tls_expiry_facts(NULL, CMI_EXPIRY_OWN, NULL, &f), CMICRO_EINVAL);
	assert_int_equal(cmi_tls_expiry_check(NULL, CMI_EXPIRY_PEER, "x", 30, time(NULL)),
			 CMI_EXPIRY_STAGE_NONE);
}

/* Two brokers in one process serving the same certificate warn once. */
static void test_expiry_broker_connect_warns_once(void **state)
{
	struct cmicro_cert *c = issue_days(5, "127.0.0.1");
	struct cmicro_registry *reg = NULL;
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_broker *b1 = NULL, *b2 = NULL;
	struct cmicro_broker_opts o;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	TK_OK(cmicro_tls_config_insecure(&cfg));
	TK_OK(cmicro_tls_config_set_cert(cfg, c));
	cmicro_broker_opts_init(&o);
	o.registry = reg;
	o.tls = cfg;
	TK_OK(cmicro_broker_new(&o, &b1));
	TK_OK(cmicro_broker_connect(b1));
	TK_OK(cmicro_broker_new(&o, &b2));
	TK_OK(cmicro_broker_connect(b2));
	assert_int_equal(tk_log_count("TLS-EXPIRY-7D"), 1);
	TK_CONTAINS(tk_log_captured(), "CN=127.0.0.1");
	cmicro_broker_free(b1);
	cmicro_broker_free(b2);
	cmicro_tls_config_free(cfg);
	cmicro_registry_free(reg);
	cmicro_cert_free(c);
}

static void test_expiry_broker_bad_days_rejected(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_broker *b = NULL;
	struct cmicro_broker_opts o;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	cmicro_broker_opts_init(&o);
	o.registry = reg;
	o.expiry_warn_days = 4000;
	TK_FAIL(cmicro_broker_new(&o, &b), CMICRO_EINVAL);
	assert_null(b);
	TK_CONTAINS(cmicro_last_errmsg(), "expiry_warn_days 4000");
	cmicro_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_expiry_stage_boundaries_match, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_five_days_warns_7d_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_twenty_days_warns_30d_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expiry_forty_days_logs_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_later_stages_warn_again, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_custom_threshold_warns_earlier, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expiry_openssl_cert_warns_7d, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_observed_peer_listed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_config_ca_warns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_null_cert_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expiry_broker_connect_warns_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_expiry_broker_bad_days_rejected, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
