/* The two envelope decoders behind cmi_message_decode, exposed so that tests
 * and the differential fuzz target can run each on its own. */
#ifndef CMICRO_BROKER_MESSAGE_JSON_INT_H
#define CMICRO_BROKER_MESSAGE_JSON_INT_H

#include <stdbool.h>
#include <stddef.h>

struct cmicro_message;

/* Returned by cmi_message_decode_fast for input outside the subset it
 * decodes; cmi_message_decode then runs cmi_message_decode_jansson. */
#define CMI_DECODE_FALLBACK 1

/* Decodes the envelope as Go's encoding/json and cmi_message_encode write
 * it: no whitespace, exactly the keys "Header" and "Body" (each at most
 * once, in any order), a Header object of strings, a Body string of base64.
 * Returns 0 with *out set, or CMI_DECODE_FALLBACK with *out NULL for
 * anything else, including input the jansson decoder rejects. It never sets
 * an error of its own that the caller should report. */
int cmi_message_decode_fast(const char *json, size_t len, struct cmicro_message **out);

/* Decodes any JSON form of the envelope with jansson; returns 0 or a
 * negative enum cmicro_err with the error message set. */
int cmi_message_decode_jansson(const char *json, size_t len, struct cmicro_message **out);

/* Returns the length of the UTF-8 sequence at p, a byte of 0x80 or more,
 * or 0 when it is not valid UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF), the same rule as jansson's UTF-8 check. */
size_t cmi_utf8_seq_len(const unsigned char *p, const unsigned char *end);

/* Returns the offset of the first byte of the NUL-terminated s that starts
 * no valid UTF-8 sequence under the rule above, or -1 when s is valid. */
long cmi_utf8_invalid_at(const char *s);

/* Writes the standard base64 of len bytes of in, with = padding and no
 * NUL, to out, which has room for 4 * ((len + 2) / 3) characters. Returns
 * that count (message_b64.c). */
size_t cmi_b64_encode(char *out, const unsigned char *in, size_t len);

/* Decodes n characters of standard base64 with = padding and no line
 * breaks into a new NUL-terminated buffer, checking each character in the
 * same pass (message_b64.c). Returns 0, CMICRO_EPROTO for
 * text that is not such base64, or CMICRO_ENOMEM, and sets no error
 * message. Bits below the last byte of a padded end are ignored, as Go's
 * base64.StdEncoding and OpenSSL ignore them. */
int cmi_b64_decode_plain(const char *text, size_t n, unsigned char **out, size_t *out_len);

/* Implementations of the two functions above. They use the fastest one the
 * CPU supports; tests and the fuzz target run each and compare them. */
enum cmi_b64_impl {
	CMI_B64_SCALAR,
	CMI_B64_AVX2,
};

bool cmi_b64_impl_available(enum cmi_b64_impl impl);
size_t cmi_b64_encode_with(enum cmi_b64_impl impl, char *out, const unsigned char *in, size_t len);
int cmi_b64_decode_with(enum cmi_b64_impl impl, const char *text, size_t n, unsigned char **out,
			size_t *out_len);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CMI_B64_HAVE_AVX2 1

/* True when the CPU runs AVX2 (message_b64_avx2.c). */
bool cmi_b64_avx2_usable(void);

/* Encodes whole 24-byte blocks from the start of in while 28 bytes remain
 * to read, because each block loads 16 bytes twice. Returns the bytes
 * encoded; out then contains 4 / 3 as many characters. */
size_t cmi_b64_encode_blocks_avx2(char *out, const unsigned char *in, size_t len);

/* Decodes whole 32-character blocks of the n characters at text into 24
 * bytes each. text contains no padding. Returns the characters decoded,
 * and sets *bad when one of them is outside the alphabet. */
size_t cmi_b64_decode_blocks_avx2(unsigned char *out, const char *text, size_t n, bool *bad);
#else
#define CMI_B64_HAVE_AVX2 0
#endif

#endif
