/* The base64 codec of message bodies: the vectors of RFC 4648, OpenSSL's
 * EVP_EncodeBlock on every length up to 300 bytes with a round trip through
 * the decoder, and the texts the decoder must reject. */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker/message_json_int.h"
#include "testkit.h"

struct vector {
	const char *plain;
	const char *encoded;
};

/* RFC 4648, section 10. */
static const struct vector rfc_vectors[] = {
	{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
	{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
};

static void test_b64_rfc_vectors_encode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
		const struct vector *v = &rfc_vectors[i];
		char out[16] = {0};
		size_t n = cmi_b64_encode(out, (const unsigned char *)v->plain, strlen(v->plain));

		assert_int_equal(n, strlen(v->encoded));
		assert_memory_equal(out, v->encoded, n);
	}
}

static void test_b64_rfc_vectors_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
		const struct vector *v = &rfc_vectors[i];
		size_t n = strlen(v->encoded), len = 99;
		unsigned char *out = NULL;

		TK_OK(cmi_b64_decode_plain(v->encoded, n, &out, &len));
		assert_int_equal(len, strlen(v->plain));
		assert_memory_equal(out, v->plain, len);
		assert_int_equal(out[len], '\0');
		free(out);
	}
}

/* Fills buf with bytes from a fixed linear congruential sequence, so a
 * failure repeats. */
static void fill(unsigned char *buf, size_t len, unsigned long seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 6364136223846793005UL + 1442695040888963407UL;
		buf[i] = (unsigned char)(seed >> 56);
	}
}

static void test_b64_matches_openssl_every_length(void **state)
{
	unsigned char plain[300] = {0}, ref[404], *back = NULL;
	char ours[404];

	(void)state;
	for (size_t len = 0; len <= sizeof(plain); len++) {
		size_t n, back_len = 0;
		int ref_n;

		fill(plain, len, len + 1);
		n = cmi_b64_encode(ours, plain, len);
		ref_n = EVP_EncodeBlock(ref, plain, (int)len);
		assert_int_equal(n, (size_t)ref_n);
		assert_memory_equal(ours, ref, n);

		TK_OK(cmi_b64_decode_plain(ours, n, &back, &back_len));
		assert_int_equal(back_len, len);
		if (len > 0)
			assert_memory_equal(back, plain, len);
		free(back);
		back = NULL;
	}
}

static void test_b64_padding_bits_ignored(void **state)
{
	unsigned char *out = NULL;
	size_t len = 0;

	(void)state;
	/* "Zh==" and "Zm9=" carry bits below their last byte, which Go's
	 * StdEncoding and OpenSSL ignore. */
	TK_OK(cmi_b64_decode_plain("Zh==", 4, &out, &len));
	assert_int_equal(len, 1);
	assert_int_equal(out[0], 'f');
	free(out);
	TK_OK(cmi_b64_decode_plain("Zm9=", 4, &out, &len));
	assert_int_equal(len, 2);
	assert_memory_equal(out, "fo", 2);
	free(out);
}

/* One bad character at each position of a valid text, padding included. */
static void test_b64_bad_character_rejected(void **state)
{
	static const char bad[] = {'!', '-', '_', ' ', '\n', '"', '\\', '\0', '\x80', '\xff'};
	const char *valid = "Zm9vYmE=";

	(void)state;
	for (size_t pos = 0; pos < 7; pos++) {
		for (size_t i = 0; i < sizeof(bad); i++) {
			char text[9];
			unsigned char *out = NULL;
			size_t len = 0;

			memcpy(text, valid, sizeof(text));
			text[pos] = bad[i];
			assert_int_equal(cmi_b64_decode_plain(text, 8, &out, &len), CMICRO_EPROTO);
			assert_null(out);
		}
	}
}

static void test_b64_bad_lengths_rejected(void **state)
{
	unsigned char *out = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(cmi_b64_decode_plain("Zm9", 3, &out, &len), CMICRO_EPROTO);
	assert_int_equal(cmi_b64_decode_plain("Zm9vY", 5, &out, &len), CMICRO_EPROTO);
	assert_int_equal(cmi_b64_decode_plain("Z===", 4, &out, &len), CMICRO_EPROTO);
	assert_int_equal(cmi_b64_decode_plain("====", 4, &out, &len), CMICRO_EPROTO);
	assert_int_equal(cmi_b64_decode_plain("Zm=v", 4, &out, &len), CMICRO_EPROTO);
	assert_int_equal(cmi_b64_decode_plain("Zg==Zg==", 8, &out, &len), CMICRO_EPROTO);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_rfc_vectors_encode),
		cmocka_unit_test(test_b64_rfc_vectors_decode),
		cmocka_unit_test(test_b64_matches_openssl_every_length),
		cmocka_unit_test(test_b64_padding_bits_ignored),
		cmocka_unit_test(test_b64_bad_character_rejected),
		cmocka_unit_test(test_b64_bad_lengths_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
