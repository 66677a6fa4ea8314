/* The envelope encoder that writes go-micro's JSON without a jansson tree:
 * its escaping against bytes that Go's json.Marshal wrote, and its length
 * bookkeeping against every escape class. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "testkit.h"

static struct cmicro_message *make_msg(const void *body, size_t len)
{
	struct cmicro_message *msg = NULL;

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_body(msg, body, len));
	return msg;
}

static void test_envelope_escapes_match_go_marshal(void **state)
{
	/* Printed by Go 1.19's json.Marshal of broker.Message with these
	 * headers and the body 00 01 02 ff. */
	static const char go[] = "{\"Header\":{\"Micro-Topic\":\"t\",\"a\\u003cb\\u003e\\u0026c\":"
				 "\"q\\\"\\\\/\\u0001\\u001f\x7f\\u2028\\u2029\xc3\xa9\\t\"},"
				 "\"Body\":\"AAEC/w==\"}";
	static const unsigned char body[] = {0x00, 0x01, 0x02, 0xff};
	struct cmicro_message *msg = make_msg(body, sizeof(body));
	char *json = NULL;
	size_t len = 0;

	(void)state;
	TK_OK(cmicro_message_set_header(msg, "a<b>&c",
					"q\"\\/\x01\x1f\x7f\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\t"));
	TK_OK(cmi_message_encode(msg, "t", &json, &len));
	assert_string_equal(json, go);
	assert_int_equal(len, strlen(go));
	free(json);
	cmicro_message_free(msg);
}

static void test_envelope_every_ascii_byte_round_trips(void **state)
{
	struct cmicro_message *msg = make_msg("x", 1);
	struct cmicro_message *back = NULL;
	char value[128];
	char *json = NULL;
	size_t n = 0, len = 0;

	(void)state;
	/* CR and LF are left out because header values reject them. */
	for (int c = 1; c < 128; c++) {
		if (c != '\r' && c != '\n')
			value[n++] = (char)c;
	}
	value[n] = '\0';
	TK_OK(cmicro_message_set_header(msg, value, value));
	TK_OK(cmi_message_encode(msg, "every byte", &json, &len));
	assert_int_equal(len, strlen(json));
	TK_OK(cmi_message_decode(json, len, &back));
	assert_string_equal(cmicro_message_get_header(back, value), value);
	assert_string_equal(cmicro_message_get_header(back, CMI_TOPIC_HEADER), "every byte");
	free(json);
	cmicro_message_free(back);
	cmicro_message_free(msg);
}

static void test_envelope_topic_header_sorted_last(void **state)
{
	struct cmicro_message *msg = make_msg("", 0);
	char *json = NULL;
	size_t len = 0;

	(void)state;
	TK_OK(cmicro_message_set_header(msg, "A", "1"));
	TK_OK(cmicro_message_set_header(msg, "Micro-Id", "2"));
	TK_OK(cmi_message_encode(msg, "z", &json, &len));
	assert_string_equal(json, "{\"Header\":{\"A\":\"1\",\"Micro-Id\":\"2\",\"Micro-Topic\":"
				  "\"z\"},\"Body\":\"\"}");
	assert_int_equal(len, strlen(json));
	free(json);
	cmicro_message_free(msg);
}

static void test_envelope_body_sizes_round_trip(void **state)
{
	static const size_t sizes[] = {1, 2, 3, 4, 5, 63, 64, 65, 4096, 65537};
	unsigned char *body = malloc(65537);

	(void)state;
	assert_non_null(body);
	for (size_t i = 0; i < 65537; i++)
		body[i] = (unsigned char)(i * 31 + 7);
	for (size_t i = 0; i < CMI_ARRAY_LEN(sizes); i++) {
		struct cmicro_message *msg = make_msg(body, sizes[i]);
		struct cmicro_message *back = NULL;
		const void *got;
		char *json = NULL;
		size_t len = 0, got_len = 0;

		TK_OK(cmi_message_encode(msg, "sizes", &json, &len));
		assert_int_equal(len, strlen(json));
		TK_OK(cmi_message_decode(json, len, &back));
		got = cmicro_message_body(back, &got_len);
		assert_int_equal(got_len, sizes[i]);
		assert_memory_equal(got, body, sizes[i]);
		free(json);
		cmicro_message_free(back);
		cmicro_message_free(msg);
	}
	free(body);
}

static void test_envelope_base64_bad_characters_rejected(void **state)
{
	static const char *const bodies[] = {
		"{\"Body\":\"aGk\\t\"}",
		"{\"Body\":\"aG-k\"}",
		"{\"Body\":\"aG_k\"}",
		"{\"Body\":\"aGk=\\n=\"}",
		"{\"Body\":\"=aGk\"}",
	};
	struct cmicro_message *msg = NULL;

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(bodies); i++) {
		int rc = cmi_message_decode(bodies[i], strlen(bodies[i]), &msg);

		if (rc != CMICRO_EPROTO)
			fail_msg("decode(%s) returned %s", bodies[i], cmicro_err_name(rc));
		assert_null(msg);
		TK_CONTAINS(cmicro_last_errmsg(), "not valid base64");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_escapes_match_go_marshal),
		cmocka_unit_test(test_envelope_every_ascii_byte_round_trips),
		cmocka_unit_test(test_envelope_topic_header_sorted_last),
		cmocka_unit_test(test_envelope_body_sizes_round_trip),
		cmocka_unit_test(test_envelope_base64_bad_characters_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
