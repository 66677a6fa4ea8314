/* Targets: the base64 codec of message bodies, each implementation the CPU
 * runs, against OpenSSL's. The input is encoded by all and must give the
 * same text, which decodes back to the input. The input is also read as
 * base64 text, which every implementation must accept or reject alike.
 * When they accept it, EVP_DecodeBlock must give the same bytes (less the
 * padding it counts as zeros). When they reject it, the text must break a
 * rule of padded standard base64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "broker/message_json_int.h"
#include "common/common_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum cmi_b64_impl impls[] = {CMI_B64_SCALAR, CMI_B64_AVX2};

static void fuzz_encode_with(enum cmi_b64_impl impl, const uint8_t *data, size_t size)
{
	size_t cap = 4 * ((size + 2) / 3) + 1;
	char *ours = malloc(cap);
	unsigned char *ref = malloc(cap), *back = NULL;
	size_t n, back_len = 0;

	if (ours == NULL || ref == NULL)
		abort();
	n = cmi_b64_encode_with(impl, ours, data, size);
	if ((int)n != EVP_EncodeBlock(ref, data, (int)size) || memcmp(ours, ref, n) != 0)
		abort();
	if (cmi_b64_decode_with(impl, ours, n, &back, &back_len) != 0 || back_len != size ||
	    (size > 0 && memcmp(back, data, size) != 0) || back[back_len] != '\0')
		abort();
	free(back);
	free(ours);
	free(ref);
}

static void fuzz_encode(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		if (cmi_b64_impl_available(impls[i]))
			fuzz_encode_with(impls[i], data, size);
	}
}

/* True when text is padded standard base64: whole quads, the alphabet, and
 * at most two = at the end only. */
static bool valid_b64(const char *text, size_t n, size_t *pad)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789+/";

	*pad = 0;
	while (*pad < 2 && *pad < n && text[n - 1 - *pad] == '=')
		(*pad)++;
	if (n % 4 != 0)
		return false;
	for (size_t i = 0; i < n - *pad; i++) {
		if (text[i] == '\0' || strchr(alphabet, text[i]) == NULL)
			return false;
	}
	return true;
}

static void fuzz_decode_with(enum cmi_b64_impl impl, const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	unsigned char *ours = NULL, *ref;
	size_t len = 0, pad;
	bool valid = valid_b64(text, size, &pad);
	int rc = cmi_b64_decode_with(impl, text, size, &ours, &len);
	int ref_n;

	if ((rc == 0) != valid || (rc != 0 && rc != CMICRO_EPROTO))
		abort();
	if (rc != 0 || size == 0) {
		free(ours);
		return;
	}
	ref = malloc(size / 4 * 3 + 1);
	if (ref == NULL)
		abort();
	ref_n = EVP_DecodeBlock(ref, data, (int)size);
	if (ref_n < 0 || (size_t)ref_n != len + pad || memcmp(ours, ref, len) != 0)
		abort();
	free(ref);
	free(ours);
}

static void fuzz_decode(const uint8_t *data, size_t size)
{
	for (size_t i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		if (cmi_b64_impl_available(impls[i]))
			fuzz_decode_with(impls[i], data, size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 16)
		return 0;
	fuzz_encode(data, size);
	fuzz_decode(data, size);
	return 0;
}
