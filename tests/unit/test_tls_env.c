/* The configuration from the environment: the verification table row by
 * row, the once-per-process warnings (also under concurrent callers), and
 * the variables cmicro adds (CA files, own identity, client auth, key log). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testkit.h"
#include "tls/tls_config_int.h"

static const char *const env_vars[] = {
    "MICRO_TLS_SECURE",   "MICRO_TLS_INSECURE",    "MICRO_TLS_CA_FILE", "MICRO_TLS_CERT_FILE",
    "MICRO_TLS_KEY_FILE", "MICRO_TLS_CLIENT_AUTH", "SSLKEYLOGFILE", "MICRO_TLS_MIN_VERSION",
};

static char *tmp;

static void env_clear(void)
{
	for (size_t i = 0; i < CMI_ARRAY_LEN(env_vars); i++)
		unsetenv(env_vars[i]);
}

static int setup(void **state)
{
	char *out = NULL;

	(void)state;
	tmp = tk_tmpdir();
	if (tk_run(&out, 60,
	           "cd %s && for n in ca1 ca2; do openssl req -x509 -newkey ec "
	           "-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key -out $n.pem "
	           "-subj /CN=$n -days 30 || exit 1; done",
	           tmp) != 0)
		fail_msg("openssl failed: %s", out);
	free(out);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	env_clear();
	tk_tmpdir_remove(tmp);
	return 0;
}

static int reset(void **state)
{
	(void)state;
	env_clear();
	cmi_tls_env_reset_warnings();
	return 0;
}

struct env_row {
	const char *secure;
	const char *insecure;
	bool secure_by_default;
	enum cmicro_tls_verify mode;
	enum cmicro_tls_source source;
	const char *warning_id; /* NULL: no warning */
};

static const struct env_row env_table[] = {
    {NULL, NULL, false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_DEFAULT, "TLS-VERIFY-OFF"},
    {NULL, NULL, true, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_DEFAULT, NULL},
    {"true", NULL, false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV, NULL},
    {"TRUE", NULL, false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV, NULL},
    {"1", NULL, false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV, NULL},
    {"Yes", NULL, false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV, NULL},
    {"on", NULL, false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV, NULL},
    {"false", NULL, false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {"0", NULL, false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {"NO", NULL, false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {"off", NULL, false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {"", NULL, false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {"false", NULL, true, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {"audit", NULL, false, CMICRO_TLS_VERIFY_AUDIT, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-AUDIT-MODE"},
    {"AUDIT", NULL, true, CMICRO_TLS_VERIFY_AUDIT, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-AUDIT-MODE"},
    {"maybe", NULL, false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV,
     "TLS-SECURE-UNRECOGNISED"},
    {"truee", NULL, true, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV,
     "TLS-SECURE-UNRECOGNISED"},
    {NULL, "true", false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_INSECURE_ENV, "TLS-VERIFY-OFF"},
    {NULL, "true", true, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_INSECURE_ENV, "TLS-VERIFY-OFF"},
    {"true", "true", false, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_SECURE_ENV, NULL},
    {"audit", "true", false, CMICRO_TLS_VERIFY_AUDIT, CMICRO_TLS_SOURCE_SECURE_ENV,
     "TLS-AUDIT-MODE"},
    {"false", "true", true, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_SECURE_ENV, "TLS-VERIFY-OFF"},
    {NULL, "false", true, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_DEFAULT, NULL},
    {NULL, "false", false, CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_SOURCE_DEFAULT, "TLS-VERIFY-OFF"},
    {NULL, "bogus", true, CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SOURCE_DEFAULT, NULL},
};

static void test_env_decide_table_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(env_table); i++) {
		const struct env_row *row = &env_table[i];
		struct cmi_tls_env_decision d;
		const char *want = row->warning_id ? row->warning_id : "(none)";
		const char *got;

		cmi_tls_env_decide(row->secure, row->insecure, row->secure_by_default, &d);
		got = d.warning_id ? d.warning_id : "(none)";
		if (d.mode != row->mode || d.source != row->source || strcmp(got, want) != 0)
			fail_msg("row %zu (SECURE=%s INSECURE=%s by_default=%d): mode %d source %d "
			         "warning %s, expected mode %d source %d warning %s",
			         i, row->secure ? row->secure : "(unset)",
			         row->insecure ? row->insecure : "(unset)", row->secure_by_default,
			         d.mode, d.source, got, row->mode, row->source, want);
		if (d.warning_id != NULL && strstr(d.warning, "MICRO_TLS_SECURE=true") == NULL &&
		    strstr(d.warning, "accepted values") == NULL)
			fail_msg("row %zu: warning does not say how to turn verification on: %s", i,
			         d.warning);
	}
}

static void test_env_unrecognised_warning_names_value(void **state)
{
	struct cmi_tls_env_decision d;

	(void)state;
	cmi_tls_env_decide("enabled\n", NULL, false, &d);
	assert_int_equal(d.mode, CMICRO_TLS_VERIFY_ON);
	TK_CONTAINS(d.warning, "MICRO_TLS_SECURE=\"enabled\\x0a\" is not recognised");
	TK_CONTAINS(d.warning, "true, false, audit");
	TK_CONTAINS(d.warning, "fails closed");
}

static void test_env_default_follows_build(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	bool secure = cmi_tls_secure_by_default();

	(void)state;
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(cmicro_tls_config_get_verify(cfg),
	                 secure ? CMICRO_TLS_VERIFY_ON : CMICRO_TLS_VERIFY_OFF);
	assert_int_equal(cmicro_tls_config_insecure_skip_verify(cfg), !secure);
	assert_int_equal(cmicro_tls_config_get_source(cfg), CMICRO_TLS_SOURCE_DEFAULT);
	assert_int_equal(cmicro_tls_config_get_min_version(cfg), CMICRO_TLS_1_2);
	cmicro_tls_config_free(cfg);
}

static void test_env_secure_true_verifies(void **state)
{
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	setenv("MICRO_TLS_SECURE", "true", 1);
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_false(cmicro_tls_config_insecure_skip_verify(cfg));
	assert_string_equal(cmicro_tls_config_get_source_text(cfg), "MICRO_TLS_SECURE=true");
	assert_true(cmicro_tls_config_get_system_roots(cfg));
	assert_int_equal(tk_log_count("TLS-VERIFY-OFF"), 0);
	tk_log_capture_stop();
	cmicro_tls_config_free(cfg);
}

static void test_env_warning_once_per_process(void **state)
{
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	setenv("MICRO_TLS_SECURE", "false", 1);
	tk_log_capture_start();
	for (int i = 0; i < 3; i++) {
		TK_OK(cmicro_tls_config_from_env(&cfg));
		assert_true(cmicro_tls_config_insecure_skip_verify(cfg));
		cmicro_tls_config_free(cfg);
	}
	assert_int_equal(tk_log_count("TLS-VERIFY-OFF"), 1);
	TK_CONTAINS(tk_log_captured(), "set MICRO_TLS_SECURE=true");
	tk_log_capture_stop();
}

#define ENV_THREADS 8
#define ENV_CALLS   25

static void *env_thread(void *arg)
{
	int *failures = arg;

	for (int i = 0; i < ENV_CALLS; i++) {
		struct cmicro_tls_config *cfg = NULL;

		if (cmicro_tls_config_from_env(&cfg) != 0)
			(*failures)++;
		cmicro_tls_config_free(cfg);
	}
	return NULL;
}

static void test_env_warning_once_across_threads(void **state)
{
	pthread_t threads[ENV_THREADS];
	int failures[ENV_THREADS] = {0};

	(void)state;
	setenv("MICRO_TLS_SECURE", "audit", 1);
	tk_log_capture_start();
	for (int i = 0; i < ENV_THREADS; i++)
		assert_int_equal(pthread_create(&threads[i], NULL, env_thread, &failures[i]), 0);
	for (int i = 0; i < ENV_THREADS; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(failures[i], 0);
	}
	assert_int_equal(tk_log_count("TLS-AUDIT-MODE"), 1);
	assert_int_equal(tk_log_count("TLS-VERIFY-OFF"), 0);
	tk_log_capture_stop();
}

static void test_env_unknown_secure_value_fails_closed(void **state)
{
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	setenv("MICRO_TLS_SECURE", "sometimes", 1);
	setenv("MICRO_TLS_INSECURE", "true", 1);
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(cmicro_tls_config_get_verify(cfg), CMICRO_TLS_VERIFY_ON);
	assert_int_equal(tk_log_count("TLS-SECURE-UNRECOGNISED"), 1);
	TK_CONTAINS(tk_log_captured(), "\"sometimes\"");
	tk_log_capture_stop();
	cmicro_tls_config_free(cfg);
}

static void test_env_unknown_insecure_value_warns(void **state)
{
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	setenv("MICRO_TLS_INSECURE", "garbage", 1);
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(tk_log_count("TLS-INSECURE-UNRECOGNISED"), 1);
	TK_CONTAINS(tk_log_captured(), "MICRO_TLS_INSECURE=\"garbage\" is not recognised");
	tk_log_capture_stop();
	cmicro_tls_config_free(cfg);

	setenv("MICRO_TLS_SECURE", "true", 1);
	cmi_tls_env_reset_warnings();
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(tk_log_count("TLS-INSECURE-UNRECOGNISED"), 1);
	tk_log_capture_stop();
	cmicro_tls_config_free(cfg);
}

static void test_env_insecure_under_secure_noted_once(void **state)
{
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	setenv("MICRO_TLS_SECURE", "true", 1);
	setenv("MICRO_TLS_INSECURE", "true", 1);
	tk_log_capture_start();
	for (int i = 0; i < 3; i++) {
		TK_OK(cmicro_tls_config_from_env(&cfg));
		assert_int_equal(cmicro_tls_config_get_verify(cfg), CMICRO_TLS_VERIFY_ON);
		cmicro_tls_config_free(cfg);
	}
	assert_int_equal(tk_log_count("TLS-INSECURE-IGNORED"), 1);
	TK_CONTAINS(tk_log_captured(), "is ignored because MICRO_TLS_SECURE requests verification");
	tk_log_capture_stop();

	setenv("MICRO_TLS_SECURE", "false", 1);
	cmi_tls_env_reset_warnings();
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(tk_log_count("TLS-INSECURE-IGNORED"), 0);
	tk_log_capture_stop();
	cmicro_tls_config_free(cfg);
}

static void test_env_ca_file_list_blanks_trimmed(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	char list[1200], a[512], b[512];

	(void)state;
	tk_path(a, sizeof(a), tmp, "ca1.pem");
	tk_path(b, sizeof(b), tmp, "ca2.pem");
	snprintf(list, sizeof(list), " %s ,\t%s , ", a, b);
	setenv("MICRO_TLS_CA_FILE", list, 1);
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(cmicro_tls_config_ca_count(cfg), 2);
	assert_string_equal(cmicro_tls_config_ca_path(cfg, 0), a);
	assert_string_equal(cmicro_tls_config_ca_path(cfg, 1), b);
	cmicro_tls_config_free(cfg);

	snprintf(list, sizeof(list), "%s, %s/no such.pem", a, tmp);
	setenv("MICRO_TLS_CA_FILE", list, 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_ENOENT);
	TK_CONTAINS(cmicro_last_errmsg(), "/no such.pem\": ");
}

static void test_env_cert_without_key_rejected(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	char path[512];

	(void)state;
	setenv("MICRO_TLS_CERT_FILE", tk_path(path, sizeof(path), tmp, "ca1.pem"), 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_TLS_CERT_FILE is set but MICRO_TLS_KEY_FILE "
	                                  "is not");
	assert_null(cfg);
	unsetenv("MICRO_TLS_CERT_FILE");
	setenv("MICRO_TLS_KEY_FILE", tk_path(path, sizeof(path), tmp, "ca1.key"), 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_TLS_KEY_FILE is set but MICRO_TLS_CERT_FILE "
	                                  "is not");
}

static void test_env_cert_and_key_loaded(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	char cert[512], key[512];

	(void)state;
	setenv("MICRO_TLS_CERT_FILE", tk_path(cert, sizeof(cert), tmp, "ca1.pem"), 1);
	setenv("MICRO_TLS_KEY_FILE", tk_path(key, sizeof(key), tmp, "ca1.key"), 1);
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_true(cmicro_tls_config_has_cert(cfg));
	assert_string_equal(cmicro_tls_config_get_cert_file(cfg), cert);
	cmicro_tls_config_free(cfg);
	setenv("MICRO_TLS_KEY_FILE", tk_path(key, sizeof(key), tmp, "ca2.key"), 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_TLS_CERT_FILE/MICRO_TLS_KEY_FILE: key");
}

static void test_env_ca_file_list_split(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	char list[1200], a[512], b[512];

	(void)state;
	tk_path(a, sizeof(a), tmp, "ca1.pem");
	tk_path(b, sizeof(b), tmp, "ca2.pem");
	snprintf(list, sizeof(list), "%s,%s", a, b);
	setenv("MICRO_TLS_CA_FILE", list, 1);
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_int_equal(cmicro_tls_config_ca_count(cfg), 2);
	assert_string_equal(cmicro_tls_config_ca_path(cfg, 0), a);
	assert_string_equal(cmicro_tls_config_ca_path(cfg, 1), b);
	assert_true(cmicro_tls_config_get_system_roots(cfg));
	cmicro_tls_config_free(cfg);

	snprintf(list, sizeof(list), "%s:%s/missing.pem", a, tmp);
	setenv("MICRO_TLS_CA_FILE", list, 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_ENOENT);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_TLS_CA_FILE entry \"");
	TK_CONTAINS(cmicro_last_errmsg(), "missing.pem: file not found");
}

static void test_env_client_auth_values(void **state)
{
	static const struct {
		const char *text;
		enum cmicro_tls_client_auth mode;
	} ok[] = {
	    {"none", CMICRO_TLS_CLIENT_AUTH_NONE},
	    {"", CMICRO_TLS_CLIENT_AUTH_NONE},
	    {"request", CMICRO_TLS_CLIENT_AUTH_REQUEST},
	    {"REQUIRE", CMICRO_TLS_CLIENT_AUTH_REQUIRE},
	    {" require ", CMICRO_TLS_CLIENT_AUTH_REQUIRE},
	};
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(ok); i++) {
		setenv("MICRO_TLS_CLIENT_AUTH", ok[i].text, 1);
		TK_OK(cmicro_tls_config_from_env(&cfg));
		if (cmicro_tls_config_get_client_auth(cfg) != ok[i].mode)
			fail_msg("MICRO_TLS_CLIENT_AUTH=\"%s\" gave %d, expected %d", ok[i].text,
			         cmicro_tls_config_get_client_auth(cfg), ok[i].mode);
		cmicro_tls_config_free(cfg);
	}
	setenv("MICRO_TLS_CLIENT_AUTH", "optional", 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_TLS_CLIENT_AUTH=\"optional\" is not recognised");
	TK_CONTAINS(cmicro_last_errmsg(), "none, request and require");
}

static void test_env_min_version_values_parsed(void **state)
{
	static const struct {
		const char *text;
		int version;
	} ok[] = {
	    {"1.2", CMICRO_TLS_1_2}, {"1.3", CMICRO_TLS_1_3}, {"TLSv1.3", CMICRO_TLS_1_3},
	    {"0x0304", CMICRO_TLS_1_3}, {"", CMICRO_TLS_1_2},
	};
	static const char *const bad[] = {"1.1", "1.0", "ssl3", "latest"};
	struct cmicro_tls_config *cfg = NULL;
	char want[96];

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(ok); i++) {
		setenv("MICRO_TLS_MIN_VERSION", ok[i].text, 1);
		TK_OK(cmicro_tls_config_from_env(&cfg));
		if (cmicro_tls_config_get_min_version(cfg) != ok[i].version)
			fail_msg("MICRO_TLS_MIN_VERSION=\"%s\" gave 0x%04x, expected 0x%04x",
			         ok[i].text, cmicro_tls_config_get_min_version(cfg), ok[i].version);
		cmicro_tls_config_free(cfg);
	}
	for (size_t i = 0; i < CMI_ARRAY_LEN(bad); i++) {
		setenv("MICRO_TLS_MIN_VERSION", bad[i], 1);
		TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_ECONFIG);
		snprintf(want, sizeof(want), "MICRO_TLS_MIN_VERSION=\"%s\" is not recognised",
		         bad[i]);
		TK_CONTAINS(cmicro_last_errmsg(), want);
		TK_CONTAINS(cmicro_last_errmsg(), "1.2 and 1.3");
	}
}

static void test_env_keylog_file_honoured(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	char path[512];

	(void)state;
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_null(cmicro_tls_config_get_keylog_file(cfg));
	cmicro_tls_config_free(cfg);
	setenv("SSLKEYLOGFILE", tk_path(path, sizeof(path), tmp, "keys.log"), 1);
	TK_OK(cmicro_tls_config_from_env(&cfg));
	assert_string_equal(cmicro_tls_config_get_keylog_file(cfg), path);
	cmicro_tls_config_free(cfg);
	setenv("SSLKEYLOGFILE", "/nonexistent-dir/keys.log", 1);
	TK_FAIL(cmicro_tls_config_from_env(&cfg), CMICRO_EIO);
	TK_CONTAINS(cmicro_last_errmsg(), "SSLKEYLOGFILE: key log file /nonexistent-dir/keys.log");
}

static void test_env_version_parser_rejects_old(void **state)
{
	static const char *const bad[] = {"1.0",   "1.1", "0x0301", "0x0302",
	                                  "SSLv3", "1.4", "",       "tls1.2x"};
	int version = 0;

	(void)state;
	assert_int_equal(cmi_tls_parse_version("1.2", &version), 0);
	assert_int_equal(version, CMICRO_TLS_1_2);
	assert_int_equal(cmi_tls_parse_version("TLSv1.3", &version), 0);
	assert_int_equal(version, CMICRO_TLS_1_3);
	for (size_t i = 0; i < CMI_ARRAY_LEN(bad); i++) {
		if (cmi_tls_parse_version(bad[i], &version) != -1)
			fail_msg("version \"%s\" was accepted", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_decide_table_rows),
	    cmocka_unit_test(test_env_unrecognised_warning_names_value),
	    cmocka_unit_test_setup(test_env_default_follows_build, reset),
	    cmocka_unit_test_setup(test_env_secure_true_verifies, reset),
	    cmocka_unit_test_setup(test_env_warning_once_per_process, reset),
	    cmocka_unit_test_setup(test_env_warning_once_across_threads, reset),
	    cmocka_unit_test_setup(test_env_unknown_secure_value_fails_closed, reset),
	    cmocka_unit_test_setup(test_env_cert_without_key_rejected, reset),
	    cmocka_unit_test_setup(test_env_cert_and_key_loaded, reset),
	    cmocka_unit_test_setup(test_env_ca_file_list_split, reset),
	    cmocka_unit_test_setup(test_env_client_auth_values, reset),
	    cmocka_unit_test_setup(test_env_min_version_values_parsed, reset),
	    cmocka_unit_test_setup(test_env_keylog_file_honoured, reset),
	    cmocka_unit_test_setup(test_env_unknown_insecure_value_warns, reset),
	    cmocka_unit_test_setup(test_env_insecure_under_secure_noted_once, reset),
	    cmocka_unit_test_setup(test_env_ca_file_list_blanks_trimmed, reset),
	    cmocka_unit_test(test_env_version_parser_rejects_old),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
