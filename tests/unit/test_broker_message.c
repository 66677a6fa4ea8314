/* The message type and go-micro's JSON envelope. The Go samples below are
 * what encoding/json.Marshal writes for broker.Message{Header, Body}:
 * fields in declaration order, map keys sorted byte-wise, []byte as
 * standard base64 with padding, no spaces. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/broker_int.h"
#include "testkit.h"

static struct cmicro_message *make_msg(const char *body)
{
	struct cmicro_message *msg = NULL;

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, body, strlen(body)));
	return msg;
}

static void test_message_encode_matches_go_sample(void **state)
{
	static const char go[] = "{\"Header\":{\"Content-Type\":\"text/plain\",\"Micro-Topic\":"
				 "\"greetings\",\"id\":\"42\"},\"Body\":\"aGVsbG8sIHdvcmxk\"}";
	struct cmicro_message *msg = make_msg("hello, world");
	char *json = NULL;
	size_t len = 0;

	(void)state;
	TK_OK(cmicro_message_set_header(msg, "id", "42"));
	TK_OK(cmicro_message_set_header(msg, "Content-Type", "text/plain"));
	TK_OK(cmi_message_encode(msg, "greetings", &json, &len));
	assert_string_equal(json, go);
	assert_int_equal(len, strlen(go));
	free(json);
	cmicro_message_free(msg);
}

static void test_message_encode_padding_and_empty_body(void **state)
{
	struct cmicro_message *msg = make_msg("hi");
	char *json = NULL;

	(void)state;
	TK_OK(cmi_message_encode(msg, "t", &json, NULL));
	assert_string_equal(json, "{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aGk=\"}");
	free(json);
	TK_OK(cmicro_message_set_body(msg, NULL, 0));
	TK_OK(cmi_message_encode(msg, "t", &json, NULL));
	/* Go writes a non-nil empty []byte as "". */
	assert_string_equal(json, "{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"\"}");
	free(json);
	cmicro_message_free(msg);
}

static void test_message_topic_argument_wins(void **state)
{
	struct cmicro_message *msg = make_msg("x");
	struct cmicro_message *back = NULL;
	char *json = NULL;
	size_t len = 0;

	(void)state;
	TK_OK(cmicro_message_set_header(msg, "Micro-Topic", "old"));
	TK_OK(cmi_message_encode(msg, "new", &json, &len));
	TK_OK(cmi_message_decode(json, len, &back));
	assert_string_equal(cmicro_message_get_header(back, "Micro-Topic"), "new");
	assert_int_equal(cmicro_message_header_count(back), 1);
	free(json);
	cmicro_message_free(back);
	cmicro_message_free(msg);
}

static void test_message_round_trip_binary_body(void **state)
{
	unsigned char bytes[256 * 3 + 1];
	struct cmicro_message *msg = NULL, *back = NULL;
	const unsigned char *body;
	char *json = NULL;
	size_t len = 0, blen = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 7);
	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, bytes, sizeof(bytes)));
	TK_OK(cmicro_message_set_header(msg, "unicode", "h\xc3\xa9llo \xe2\x82\xac"));
	TK_OK(cmi_message_encode(msg, "bin", &json, &len));
	TK_OK(cmi_message_decode(json, len, &back));
	body = cmicro_message_body(back, &blen);
	assert_int_equal(blen, sizeof(bytes));
	assert_memory_equal(body, bytes, sizeof(bytes));
	assert_string_equal(cmicro_message_get_header(back, "unicode"), "h\xc3\xa9llo \xe2\x82\xac");
	free(json);
	cmicro_message_free(back);
	cmicro_message_free(msg);
}

static void test_message_decode_go_null_body_empty(void **state)
{
	static const char go[] = "{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":null}";
	struct cmicro_message *msg = NULL;
	size_t len = 99;

	(void)state;
	TK_OK(cmi_message_decode(go, strlen(go), &msg));
	cmicro_message_body(msg, &len);
	assert_int_equal(len, 0);
	cmicro_message_free(msg);
}

static void test_message_decode_go_field_rules(void **state)
{
	/* Go matches field names ignoring case and skips unknown fields. */
	static const char in[] = "{\"header\":{\"Micro-Topic\":\"t\"},\"BODY\":\"aGk=\","
				 "\"Extra\":[1,2],\"Header\":{\"k\":\"v\"}}";
	struct cmicro_message *msg = NULL;
	size_t len = 0;

	(void)state;
	TK_OK(cmi_message_decode(in, strlen(in), &msg));
	assert_string_equal(cmicro_message_get_header(msg, "Micro-Topic"), "t");
	assert_string_equal(cmicro_message_get_header(msg, "k"), "v");
	assert_string_equal(cmicro_message_body(msg, &len), "hi");
	assert_int_equal(len, 2);
	cmicro_message_free(msg);
}

static void test_message_decode_base64_line_breaks_accepted(void **state)
{
	static const char in[] = "{\"Body\":\"aGVs\\r\\nbG8=\"}";
	struct cmicro_message *msg = NULL;

	(void)state;
	TK_OK(cmi_message_decode(in, strlen(in), &msg));
	assert_string_equal(cmicro_message_body(msg, NULL), "hello");
	cmicro_message_free(msg);
}

static void test_message_decode_bad_inputs_rejected(void **state)
{
	static const struct {
		const char *json;
		const char *expect;
	} cases[] = {
		{"", "not valid JSON"},
		{"{\"Header\":", "not valid JSON"},
		{"[1,2]", "array, not an object"},
		{"null", "scalar, not an object"},
		{"{\"Header\":[]}", "Header is a JSON array"},
		{"{\"Header\":{\"a\":1}}", "header \"a\" is not a JSON string"},
		{"{\"Body\":42}", "Body is not a JSON string"},
		{"{\"Body\":\"abc\"}", "not valid base64"},
		{"{\"Body\":\"ab=c\"}", "not valid base64"},
		{"{\"Body\":\"a===\"}", "not valid base64"},
		{"{\"Body\":\"!!!!\"}", "not valid base64"},
		{"{\"Body\":\" aGk=\"}", "not valid base64"},
		{"{\"Body\":\"aGk=aGk=\"}", "not valid base64"},
	};
	struct cmicro_message *msg = NULL;

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		int rc = cmi_message_decode(cases[i].json, strlen(cases[i].json), &msg);

		if (rc != CMICRO_EPROTO)
			fail_msg("decode(%s) returned %s", cases[i].json, cmicro_err_name(rc));
		assert_null(msg);
		TK_CONTAINS(cmicro_last_errmsg(), cases[i].expect);
	}
}

static void test_message_headers_sorted_and_replaced(void **state)
{
	struct cmicro_message *msg = make_msg("");

	(void)state;
	TK_OK(cmicro_message_set_header(msg, "b", "1"));
	TK_OK(cmicro_message_set_header(msg, "a", "2"));
	TK_OK(cmicro_message_set_header(msg, "B", "3"));
	TK_OK(cmicro_message_set_header(msg, "b", "4"));
	assert_int_equal(cmicro_message_header_count(msg), 3);
	assert_string_equal(cmicro_message_header_key(msg, 0), "B");
	assert_string_equal(cmicro_message_header_key(msg, 1), "a");
	assert_string_equal(cmicro_message_header_key(msg, 2), "b");
	assert_string_equal(cmicro_message_header_value(msg, 2), "4");
	assert_null(cmicro_message_header_key(msg, 3));
	assert_null(cmicro_message_get_header(msg, "c"));
	cmicro_message_free(msg);
}

static void test_message_invalid_utf8_header_rejected(void **state)
{
	struct cmicro_message *msg = make_msg("");

	(void)state;
	TK_FAIL(cmicro_message_set_header(msg, "k", "\xff\xfe"), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "not valid UTF-8");
	assert_int_equal(cmicro_message_header_count(msg), 0);
	TK_FAIL(cmicro_message_set_header(msg, NULL, "v"), CMICRO_EINVAL);
	cmicro_message_free(msg);
}

/* The header check follows jansson's rule, which checks the same strings
 * when an envelope is decoded: both must agree on every case. */
static void test_message_utf8_rule_matches_jansson(void **state)
{
	static const char *const cases[] = {
		"plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf",
		"\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xe2\x82", "a\x80", "\xf0\x9f\x98",
		"\xef\xbf\xbf", "\xc2\x80",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cmicro_message *msg = make_msg("");
		json_t *j = json_string(cases[i]);
		int rc = cmicro_message_set_header(msg, "k", cases[i]);

		if ((rc == 0) != (j != NULL))
			fail_msg("case %zu: set_header returned %d, jansson %s it", i, rc,
				 j ? "accepts" : "rejects");
		if (rc != 0)
			TK_CONTAINS(cmicro_last_errmsg(), "not valid UTF-8");
		json_decref(j);
		cmicro_message_free(msg);
	}
}

static void test_message_empty_topic_rejected(void **state)
{
	struct cmicro_message *msg = make_msg("x");
	char *json = NULL;

	(void)state;
	TK_FAIL(cmi_message_encode(msg, "", &json, NULL), CMICRO_EINVAL);
	assert_null(json);
	TK_FAIL(cmi_message_encode(msg, "\xc3", &json, NULL), CMICRO_EINVAL);
	cmicro_message_free(msg);
}

static void test_message_dup_copies_everything(void **state)
{
	struct cmicro_message *msg = make_msg("body"), *copy = NULL;

	(void)state;
	TK_OK(cmicro_message_set_header(msg, "k", "v"));
	TK_OK(cmicro_message_dup(msg, &copy));
	cmicro_message_free(msg);
	assert_string_equal(cmicro_message_get_header(copy, "k"), "v");
	assert_string_equal(cmicro_message_body(copy, NULL), "body");
	cmicro_message_free(copy);
	cmicro_message_free(NULL);
}

/* Topics must be valid UTF-8 by jansson's rule, which the check follows
 * without building a JSON string: each case is compared with json_string. */
static void test_message_topic_utf8_matches_jansson(void **state)
{
	static const struct {
		const char *topic;
		bool valid;
	} cases[] = {
		{"orders", true},
		{"caf\xc3\xa9", true},
		{"\xf0\x9f\x98\x80", true},
		{"\xef\xbf\xbf", true},
		{"", false},
		{"\xff", false},
		{"a\x80", false},
		{"\xc0\xaf", false},
		{"\xe0\x80\xaf", false},
		{"\xed\xa0\x80", false},
		{"\xe2\x82", false},
		{"\xf4\x90\x80\x80", false},
		{"\xf5\x80\x80\x80", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_string(cases[i].topic);
		bool jansson_valid = j != NULL && cases[i].topic[0] != '\0';

		json_decref(j);
		assert_int_equal(cmi_topic_valid(cases[i].topic), cases[i].valid);
		assert_int_equal(jansson_valid, cases[i].valid);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_message_encode_matches_go_sample),
		cmocka_unit_test(test_message_encode_padding_and_empty_body),
		cmocka_unit_test(test_message_topic_argument_wins),
		cmocka_unit_test(test_message_round_trip_binary_body),
		cmocka_unit_test(test_message_decode_go_null_body_empty),
		cmocka_unit_test(test_message_decode_go_field_rules),
		cmocka_unit_test(test_message_decode_base64_line_breaks_accepted),
		cmocka_unit_test(test_message_decode_bad_inputs_rejected),
		cmocka_unit_test(test_message_headers_sorted_and_replaced),
		cmocka_unit_test(test_message_invalid_utf8_header_rejected),
		cmocka_unit_test(test_message_topic_utf8_matches_jansson),
		cmocka_unit_test(test_message_utf8_rule_matches_jansson),
		cmocka_unit_test(test_message_empty_topic_rejected),
		cmocka_unit_test(test_message_dup_copies_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
