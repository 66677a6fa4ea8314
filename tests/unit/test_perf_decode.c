/* The fast envelope decoder: what it decodes itself, each kind of input it
 * leaves to the jansson decoder, and that cmi_message_decode returns the
 * jansson decoder's result for those. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/message_json_int.h"
#include "testkit.h"

/* Asserts that a and b have the same headers and body. */
static void assert_same_message(const struct cmicro_message *a, const struct cmicro_message *b)
{
	assert_int_equal(a->n_headers, b->n_headers);
	for (size_t i = 0; i < a->n_headers; i++) {
		assert_string_equal(a->headers[i].key, b->headers[i].key);
		assert_string_equal(a->headers[i].value, b->headers[i].value);
	}
	assert_int_equal(a->body_len, b->body_len);
	assert_memory_equal(a->body, b->body, a->body_len);
}

/* Decodes json with the fast decoder, which must accept it, and checks the
 * result against the jansson decoder's. */
static struct cmicro_message *decode_fast_checked(const char *json)
{
	struct cmicro_message *fast = NULL, *slow = NULL;

	TK_OK(cmi_message_decode_fast(json, strlen(json), &fast));
	TK_OK(cmi_message_decode_jansson(json, strlen(json), &slow));
	assert_same_message(fast, slow);
	cmicro_message_free(slow);
	return fast;
}

static void test_decode_fast_go_escapes_decoded(void **state)
{
	static const char json[] = "{\"Header\":{\"Micro-Topic\":\"t\",\"a\\u003cb\\u003e\\u0026c\":"
				   "\"q\\\"\\\\\\/\\u0001\\u001f\x7f\\u2028\\u2029\xc3\xa9\\t\"},"
				   "\"Body\":\"AAEC/w==\"}";
	static const unsigned char body[] = {0x00, 0x01, 0x02, 0xff};
	struct cmicro_message *msg;

	(void)state;
	msg = decode_fast_checked(json);
	assert_string_equal(cmicro_message_get_header(msg, "a<b>&c"),
			    "q\"\\/\x01\x1f\x7f\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\t");
	assert_string_equal(cmicro_message_get_header(msg, CMI_TOPIC_HEADER), "t");
	assert_int_equal(msg->body_len, sizeof(body));
	assert_memory_equal(msg->body, body, sizeof(body));
	cmicro_message_free(msg);
}

static void test_decode_fast_body_before_header_decoded(void **state)
{
	static const char json[] = "{\"Body\":\"aGk=\",\"Header\":{\"Micro-Topic\":\"t\"}}";
	struct cmicro_message *msg;

	(void)state;
	msg = decode_fast_checked(json);
	assert_string_equal(cmicro_message_get_header(msg, CMI_TOPIC_HEADER), "t");
	assert_string_equal((const char *)msg->body, "hi");
	cmicro_message_free(msg);
}

static void test_decode_fast_encoder_output_decoded(void **state)
{
	struct cmicro_message *msg = NULL, *back;
	unsigned char body[300];
	char *json = NULL;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (unsigned char)(i * 7);
	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, body, sizeof(body)));
	TK_OK(cmicro_message_set_header(msg, "Micro-Id", "9f2c"));
	TK_OK(cmicro_message_set_header(msg, "old escapes", "\b\f<&>\xe2\x80\xa8"));
	TK_OK(cmi_message_encode(msg, "orders", &json, &len));
	back = decode_fast_checked(json);
	assert_string_equal(cmicro_message_get_header(back, "old escapes"),
			    "\b\f<&>\xe2\x80\xa8");
	assert_int_equal(back->body_len, sizeof(body));
	assert_memory_equal(back->body, body, sizeof(body));
	free(json);
	cmicro_message_free(back);
	cmicro_message_free(msg);
}

/* One input for each reason the fast decoder declines. */
static const char *const fallback_cases[] = {
	" {\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aGk=\"}",
	"{\"Header\" :{\"Micro-Topic\":\"t\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aGk=\"}\n",
	"{\"header\":{\"Micro-Topic\":\"t\"},\"BODY\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aGk=\",\"Extra\":1}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"\",\"Header\":{\"x\":\"y\"}}",
	"{\"Header\":null,\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":null}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":1},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"\\u00e9\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"\\ud83d\\ude00\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"\\u0000\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"\xc3\x28\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"a\\nb\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"a\\nb\",\"k\":\"c\"},\"Body\":\"aGk=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aGVs\\r\\nbG8=\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aGk\"}",
	"{\"Header\":{\"Micro-Topic\":\"t\"},\"Body\":\"aG-k\"}",
	"[1,2]",
	"",
};

static void test_decode_fast_fallback_matches_jansson(void **state)
{
	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(fallback_cases); i++) {
		const char *json = fallback_cases[i];
		struct cmicro_message *fast = NULL, *slow = NULL, *both = NULL;
		char slow_err[512];
		int rc_fast, rc_slow, rc_both;

		rc_fast = cmi_message_decode_fast(json, strlen(json), &fast);
		rc_slow = cmi_message_decode_jansson(json, strlen(json), &slow);
		snprintf(slow_err, sizeof(slow_err), "%s", cmicro_last_errmsg());
		rc_both = cmi_message_decode(json, strlen(json), &both);
		if (rc_fast != CMI_DECODE_FALLBACK)
			fail_msg("fast decode of case %zu (%s) returned %d, expected a fallback", i,
				 json, rc_fast);
		assert_null(fast);
		if (rc_both != rc_slow)
			fail_msg("decode of case %zu (%s) returned %d, jansson %d", i, json,
				 rc_both, rc_slow);
		if (rc_slow == 0)
			assert_same_message(both, slow);
		else
			assert_string_equal(cmicro_last_errmsg(), slow_err);
		cmicro_message_free(slow);
		cmicro_message_free(both);
	}
}

static void test_decode_fast_long_header_falls_back(void **state)
{
	struct cmicro_message *fast = NULL, *both = NULL;
	char json[4096], value[2048];

	(void)state;
	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	snprintf(json, sizeof(json), "{\"Header\":{\"Micro-Topic\":\"t\",\"k\":\"%s\"},"
				     "\"Body\":\"aGk=\"}", value);
	TK_FAIL(cmi_message_decode_fast(json, strlen(json), &fast), CMI_DECODE_FALLBACK);
	assert_null(fast);
	TK_OK(cmi_message_decode(json, strlen(json), &both));
	assert_string_equal(cmicro_message_get_header(both, "k"), value);
	cmicro_message_free(both);
}

static void test_decode_fast_repeated_header_last_wins(void **state)
{
	static const char json[] = "{\"Header\":{\"k\":\"1\",\"Micro-Topic\":\"t\",\"k\":\"2\"},"
				   "\"Body\":\"\"}";
	struct cmicro_message *msg;

	(void)state;
	msg = decode_fast_checked(json);
	assert_string_equal(cmicro_message_get_header(msg, "k"), "2");
	assert_int_equal(msg->n_headers, 2);
	cmicro_message_free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_fast_go_escapes_decoded),
		cmocka_unit_test(test_decode_fast_body_before_header_decoded),
		cmocka_unit_test(test_decode_fast_encoder_output_decoded),
		cmocka_unit_test(test_decode_fast_fallback_matches_jansson),
		cmocka_unit_test(test_decode_fast_long_header_falls_back),
		cmocka_unit_test(test_decode_fast_repeated_header_last_wins),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
