/*
 * Standard base64 (RFC 4648, section 4) of message bodies, which go-micro
 * sends as the JSON encoding of a Go []byte. Every message is encoded once
 * and decoded once, so the codec touches every byte of every body. Under
 * callgrind, decoding a 4 KiB envelope took 103,000 instructions with a
 * check of the characters followed by EVP_DecodeBlock, and 47,000 with the
 * scalar decoder here, which checks as it decodes (bench/decode_loop.c).
 * On CPUs with AVX2 the whole blocks go to message_b64_avx2.c and the
 * scalar loops finish the rest. tests/fuzz/fuzz_b64.c compares both
 * implementations, in both directions, with OpenSSL's.
 */
#include <stdlib.h>

#include "broker/message_json_int.h"
#include "common/common_int.h"

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The value of each character of the alphabet, and 0xff for the other
 * bytes, so that one OR of a quad's values finds an invalid character. */
static const unsigned char b64_values[256] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3e, 0xff, 0xff, 0xff, 0x3f,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

bool cmi_b64_impl_available(enum cmi_b64_impl impl)
{
	switch (impl) {
	case CMI_B64_SCALAR:
		return true;
	case CMI_B64_AVX2:
#if CMI_B64_HAVE_AVX2
		return cmi_b64_avx2_usable();
#else
		return false;
#endif
	}
	return false;
}

static enum cmi_b64_impl b64_best(void)
{
	return cmi_b64_impl_available(CMI_B64_AVX2) ? CMI_B64_AVX2 : CMI_B64_SCALAR;
}

size_t cmi_b64_encode(char *out, const unsigned char *in, size_t len)
{
	return cmi_b64_encode_with(b64_best(), out, in, len);
}

int cmi_b64_decode_plain(const char *text, size_t n, unsigned char **out, size_t *out_len)
{
	return cmi_b64_decode_with(b64_best(), text, n, out, out_len);
}

size_t cmi_b64_encode_with(enum cmi_b64_impl impl, char *out, const unsigned char *in, size_t len)
{
	char *start = out;
	size_t i = 0;

#if CMI_B64_HAVE_AVX2
	if (impl == CMI_B64_AVX2) {
		i = cmi_b64_encode_blocks_avx2(out, in, len);
		out += i / 3 * 4;
	}
#else
	(void)impl;
#endif
	for (; i + 3 <= len; i += 3) {
		unsigned long v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];

		out[0] = b64_digits[v >> 18];
		out[1] = b64_digits[(v >> 12) & 63];
		out[2] = b64_digits[(v >> 6) & 63];
		out[3] = b64_digits[v & 63];
		out += 4;
	}
	if (len - i == 1) {
		out[0] = b64_digits[in[i] >> 2];
		out[1] = b64_digits[(in[i] & 3) << 4];
		out[2] = '=';
		out[3] = '=';
		out += 4;
	} else if (len - i == 2) {
		unsigned long v = (unsigned long)in[i] << 8 | in[i + 1];

		out[0] = b64_digits[v >> 10];
		out[1] = b64_digits[(v >> 4) & 63];
		out[2] = b64_digits[(v << 2) & 63];
		out[3] = '=';
		out += 4;
	}
	return (size_t)(out - start);
}

int cmi_b64_decode_with(enum cmi_b64_impl impl, const char *text, size_t n, unsigned char **out,
			size_t *out_len)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t pad = 0, full, len, i = 0;
	unsigned char *data, *p;
	unsigned bad = 0;

	while (pad < 2 && pad < n && t[n - 1 - pad] == '=')
		pad++;
	if (n % 4 != 0 || n > (size_t)0x7ffffff0)
		return CMICRO_EPROTO;
	len = n / 4 * 3 - pad;
	data = malloc(len + 1);
	if (data == NULL)
		return CMICRO_ENOMEM;
	/* The quads without padding, then the last one when it has some. */
	full = pad > 0 ? n - 4 : n;
	p = data;
#if CMI_B64_HAVE_AVX2
	if (impl == CMI_B64_AVX2) {
		bool invalid = false;

		i = cmi_b64_decode_blocks_avx2(data, text, full, &invalid);
		p += i / 4 * 3;
		if (invalid)
			bad = 0x80;
	}
#else
	(void)impl;
#endif
	for (; i < full; i += 4) {
		unsigned a = b64_values[t[i]], b = b64_values[t[i + 1]];
		unsigned c = b64_values[t[i + 2]], d = b64_values[t[i + 3]];
		unsigned long v = (unsigned long)a << 18 | (unsigned long)b << 12 | c << 6 | d;

		bad |= a | b | c | d;
		p[0] = (unsigned char)(v >> 16);
		p[1] = (unsigned char)(v >> 8);
		p[2] = (unsigned char)v;
		p += 3;
	}
	if (pad > 0) {
		unsigned a = b64_values[t[full]], b = b64_values[t[full + 1]];
		unsigned c = pad == 1 ? b64_values[t[full + 2]] : 0;
		unsigned long v = (unsigned long)a << 18 | (unsigned long)b << 12 | c << 6;

		bad |= a | b | c;
		*p++ = (unsigned char)(v >> 16);
		if (pad == 1)
			*p++ = (unsigned char)(v >> 8);
	}
	if (bad & 0x80) {
		free(data);
		return CMICRO_EPROTO;
	}
	*p = '\0';
	*out = data;
	*out_len = len;
	return 0;
}
