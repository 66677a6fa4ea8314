/* The TLS report reader: a report written by a broker reads back, and bad
 * input is rejected with a message naming the problem. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/broker_int.h"

static const char good_report[] =
    "{\"broker_id\":\"b1\",\"address\":\"127.0.0.1:1\",\"mode\":\"audit\",\"findings\":["
    "{\"address\":\"127.0.0.1:2\",\"node_id\":\"t-1\",\"peer\":\"t-1\",\"side\":\"client\","
    "\"reason\":\"plaintext\",\"message\":\"m\",\"count\":3,\"first_seen\":1,"
    "\"last_seen\":2}]}";

static void test_tls_report_valid_parses_finding(void **state)
{
	struct cmi_tls_report *rep = NULL;

	(void)state;
	assert_int_equal(cmi_brk_tls_report_parse(good_report, strlen(good_report), &rep), 0);
	assert_string_equal(rep->broker_id, "b1");
	assert_string_equal(rep->mode, "audit");
	assert_int_equal(rep->n, 1);
	assert_string_equal(rep->findings[0].node_id, "t-1");
	assert_int_equal(rep->findings[0].reason, CMICRO_TLS_REASON_PLAINTEXT);
	assert_true(rep->findings[0].peer_is_client);
	assert_int_equal(rep->findings[0].count, 3);
	cmi_brk_tls_report_free(rep);
}

static void expect_proto(const char *json, const char *words)
{
	struct cmi_tls_report *rep = NULL;

	assert_int_equal(cmi_brk_tls_report_parse(json, strlen(json), &rep), CMICRO_EPROTO);
	assert_null(rep);
	assert_non_null(strstr(cmicro_last_errmsg(), words));
}

static void test_tls_report_not_json_rejected(void **state)
{
	(void)state;
	expect_proto("<html>", "not valid JSON");
}

static void test_tls_report_missing_fields_rejected(void **state)
{
	(void)state;
	expect_proto("{\"mode\":\"off\",\"findings\":[]}", "the TLS report is invalid");
}

static void test_tls_report_findings_object_rejected(void **state)
{
	(void)state;
	expect_proto("{\"broker_id\":\"b\",\"mode\":\"off\",\"findings\":{}}", "not an array");
}

static void test_tls_report_bad_finding_rejected(void **state)
{
	(void)state;
	expect_proto("{\"broker_id\":\"b\",\"mode\":\"off\",\"findings\":[{\"count\":\"x\"}]}",
		     "finding 0 is invalid");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_report_valid_parses_finding),
	    cmocka_unit_test(test_tls_report_not_json_rejected),
	    cmocka_unit_test(test_tls_report_missing_fields_rejected),
	    cmocka_unit_test(test_tls_report_findings_object_rejected),
	    cmocka_unit_test(test_tls_report_bad_finding_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
