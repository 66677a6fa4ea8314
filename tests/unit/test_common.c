#include <stdlib.h>
#include <string.h>

#include "common/common_int.h"
#include "testkit.h"

static void test_errors_every_code_has_name_and_text(void **state)
{
	(void)state;
	for (int code = CMICRO_OK; code >= CMICRO_EINTERNAL; code--) {
		assert_string_not_equal(cmicro_err_name(code), "CMICRO_EUNKNOWN");
		assert_string_not_equal(cmicro_strerror(code), "unknown error");
	}
	assert_string_equal(cmicro_err_name(CMICRO_EPEM), "CMICRO_EPEM");
	assert_int_equal(cmicro_err_kind(CMICRO_EVERIFY), CMICRO_KIND_VERIFY);
}

static void test_errors_unknown_code_static_text(void **state)
{
	(void)state;
	assert_string_equal(cmicro_strerror(12345), "unknown error");
	assert_string_equal(cmicro_err_name(-999), "CMICRO_EUNKNOWN");
	assert_int_equal(cmicro_err_kind(-999), CMICRO_KIND_INTERNAL);
}

static void test_errors_detail_message_kept(void **state)
{
	(void)state;
	cmi_error_clear();
	assert_string_equal(cmicro_last_errmsg(), "");
	assert_int_equal(cmi_error(CMICRO_ENOENT, "file %s not found", "/x"), CMICRO_ENOENT);
	assert_string_equal(cmicro_last_errmsg(), "file /x not found");
}

static void test_parse_bool_table(void **state)
{
	static const struct {
		const char *in;
		int want;
	} cases[] = {
		{"true", 1},  {"TRUE", 1},  {"1", 1},	  {"yes", 1},	{"On", 1},   {" on ", 1},
		{"false", 0}, {"0", 0},	    {"no", 0},	  {"OFF", 0},	{"", 0},     {"  ", 0},
		{"audit", -1}, {"2", -1},   {"truee", -1}, {"enable", -1}, {"a-very-long-value-here", -1},
	};

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		if (cmi_parse_bool(cases[i].in) != cases[i].want)
			fail_msg("cmi_parse_bool(\"%s\") = %d, expected %d", cases[i].in,
				 cmi_parse_bool(cases[i].in), cases[i].want);
	}
}

static void test_log_handler_receives_line(void **state)
{
	(void)state;
	tk_log_capture_start();
	cmi_log(CMICRO_LOG_WARNING, "tls", "TEST-ID", "value %d\nsecond", 42);
	TK_CONTAINS(tk_log_captured(), "warning TEST-ID value 42 second");
	assert_int_equal(tk_log_count("TEST-ID"), 1);
	cmicro_log_set_level(CMICRO_LOG_ERR);
	cmi_log(CMICRO_LOG_WARNING, "tls", "HIDDEN", "not shown");
	assert_int_equal(tk_log_count("HIDDEN"), 0);
	cmicro_log_set_level(CMICRO_LOG_INFO);
	tk_log_capture_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_every_code_has_name_and_text),
		cmocka_unit_test(test_errors_unknown_code_static_text),
		cmocka_unit_test(test_errors_detail_message_kept),
		cmocka_unit_test(test_parse_bool_table),
		cmocka_unit_test(test_log_handler_receives_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
