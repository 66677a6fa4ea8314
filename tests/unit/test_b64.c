/* The base64 codec of message bodies, run with each implementation the CPU
 * supports. The tests cover the vectors of RFC 4648, OpenSSL's
 * EVP_EncodeBlock on every length up to 300 bytes and on bodies of several
 * KiB with a round trip through the decoder, and the texts the decoder
 * must reject. */
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

static const enum cmi_b64_impl all_impls[] = {CMI_B64_SCALAR, CMI_B64_AVX2};
static const char *const impl_names[] = {"scalar", "AVX2"};

/* Returns the number of implementations this CPU runs, stored in impls. */
static size_t usable_impls(enum cmi_b64_impl impls[2])
{
	size_t n = 0;

	for (size_t i = 0; i < 2; i++) {
		if (cmi_b64_impl_available(all_impls[i]))
			impls[n++] = all_impls[i];
		else
			print_message("base64 %s implementation not supported by this CPU; not tested\n",
				      impl_names[i]);
	}
	return n;
}

static void test_b64_scalar_always_available(void **state)
{
	(void)state;
	assert_true(cmi_b64_impl_available(CMI_B64_SCALAR));
#if CMI_B64_HAVE_AVX2
	if (__builtin_cpu_supports("avx2"))
		assert_true(cmi_b64_impl_available(CMI_B64_AVX2));
#else
	assert_false(cmi_b64_impl_available(CMI_B64_AVX2));
#endif
}

static void test_b64_rfc_vectors_encode(void **state)
{
	enum cmi_b64_impl impls[2];
	size_t n_impls = usable_impls(impls);

	(void)state;
	for (size_t k = 0; k < n_impls; k++) {
		for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
			const struct vector *v = &rfc_vectors[i];
			char out[16] = {0};
			size_t n = cmi_b64_encode_with(impls[k], out, (const unsigned char *)v->plain,
						       strlen(v->plain));

			assert_int_equal(n, strlen(v->encoded));
			assert_memory_equal(out, v->encoded, n);
		}
	}
}

static void test_b64_rfc_vectors_decode(void **state)
{
	enum cmi_b64_impl impls[2];
	size_t n_impls = usable_impls(impls);

	(void)state;
	for (size_t k = 0; k < n_impls; k++) {
		for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
			const struct vector *v = &rfc_vectors[i];
			size_t n = strlen(v->encoded), len = 99;
			unsigned char *out = NULL;

			TK_OK(cmi_b64_decode_with(impls[k], v->encoded, n, &out, &len));
			assert_int_equal(len, strlen(v->plain));
			assert_memory_equal(out, v->plain, len);
			assert_int_equal(out[len], '\0');
			free(out);
		}
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

/* Encodes len bytes of plain with impl, compares the text with OpenSSL's
 * and decodes it back with every implementation. */
static void check_round_trip(enum cmi_b64_impl impl, const enum cmi_b64_impl *impls, size_t n_impls,
			     const unsigned char *plain, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	char *ours = malloc(cap);
	unsigned char *ref = malloc(cap);
	size_t n;

	assert_non_null(ours);
	assert_non_null(ref);
	n = cmi_b64_encode_with(impl, ours, plain, len);
	assert_int_equal(n, (size_t)EVP_EncodeBlock(ref, plain, (int)len));
	assert_memory_equal(ours, ref, n);
	for (size_t k = 0; k < n_impls; k++) {
		unsigned char *back = NULL;
		size_t back_len = 0;

		TK_OK(cmi_b64_decode_with(impls[k], ours, n, &back, &back_len));
		assert_int_equal(back_len, len);
		if (len > 0)
			assert_memory_equal(back, plain, len);
		assert_int_equal(back[len], '\0');
		free(back);
	}
	free(ref);
	free(ours);
}

static void test_b64_matches_openssl_every_length(void **state)
{
	enum cmi_b64_impl impls[2];
	size_t n_impls = usable_impls(impls);
	unsigned char plain[300] = {0};

	(void)state;
	for (size_t k = 0; k < n_impls; k++) {
		for (size_t len = 0; len <= sizeof(plain); len++) {
			fill(plain, len, len + 1);
			check_round_trip(impls[k], impls, n_impls, plain, len);
		}
	}
}

/* Bodies of the size the benchmark sends and larger, where the vector
 * loops run many blocks, and every byte value at every offset in a block. */
static void test_b64_large_bodies(void **state)
{
	static const size_t sizes[] = {4094, 4095, 4096, 4097, 65536, 100003};
	enum cmi_b64_impl impls[2];
	size_t n_impls = usable_impls(impls);
	unsigned char *plain = malloc(100003);

	(void)state;
	assert_non_null(plain);
	for (size_t k = 0; k < n_impls; k++) {
		for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
			fill(plain, sizes[s], sizes[s]);
			check_round_trip(impls[k], impls, n_impls, plain, sizes[s]);
		}
		for (size_t i = 0; i < 256 * 3; i++)
			plain[i] = (unsigned char)(i / 3 + i % 3 * 85);
		check_round_trip(impls[k], impls, n_impls, plain, 256 * 3);
	}
	free(plain);
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
	enum cmi_b64_impl impls[2];
	size_t n_impls = usable_impls(impls);

	(void)state;
	for (size_t k = 0; k < n_impls; k++) {
		for (size_t pos = 0; pos < 7; pos++) {
			for (size_t i = 0; i < sizeof(bad); i++) {
				char text[9];
				unsigned char *out = NULL;
				size_t len = 0;

				memcpy(text, valid, sizeof(text));
				text[pos] = bad[i];
				assert_int_equal(cmi_b64_decode_with(impls[k], text, 8, &out, &len),
						 CMICRO_EPROTO);
				assert_null(out);
			}
		}
	}
}

/* Every byte value outside the alphabet, '=' included, at each position of
 * a text long enough for the vector loop, against the alphabet check. */
static void test_b64_every_bad_byte_in_long_text(void **state)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	enum cmi_b64_impl impls[2];
	size_t n_impls = usable_impls(impls);
	unsigned char plain[96];
	char valid[128];

	(void)state;
	fill(plain, sizeof(plain), 7);
	assert_int_equal(cmi_b64_encode_with(CMI_B64_SCALAR, valid, plain, sizeof(plain)), sizeof(valid));
	for (size_t k = 0; k < n_impls; k++) {
		for (unsigned c = 0; c < 256; c++) {
			bool in_alphabet = c != 0 && memchr(alphabet, (int)c, 64) != NULL;

			for (size_t pos = 0; pos < sizeof(valid); pos++) {
				char text[sizeof(valid)];
				unsigned char *out = NULL;
				size_t len = 0;
				int rc;

				memcpy(text, valid, sizeof(text));
				text[pos] = (char)c;
				rc = cmi_b64_decode_with(impls[k], text, sizeof(text), &out, &len);
				if (c == '=' && pos == sizeof(text) - 1) {
					/* A padded end: one byte fewer. */
					TK_OK(rc);
					assert_int_equal(len, sizeof(plain) - 1);
				} else if (in_alphabet) {
					TK_OK(rc);
					assert_int_equal(len, sizeof(plain));
				} else {
					assert_int_equal(rc, CMICRO_EPROTO);
					assert_null(out);
				}
				free(out);
			}
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
		cmocka_unit_test(test_b64_scalar_always_available),
		cmocka_unit_test(test_b64_rfc_vectors_encode),
		cmocka_unit_test(test_b64_rfc_vectors_decode),
		cmocka_unit_test(test_b64_matches_openssl_every_length),
		cmocka_unit_test(test_b64_large_bodies),
		cmocka_unit_test(test_b64_padding_bits_ignored),
		cmocka_unit_test(test_b64_bad_character_rejected),
		cmocka_unit_test(test_b64_every_bad_byte_in_long_text),
		cmocka_unit_test(test_b64_bad_lengths_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
