/*
 * The fast path of the envelope decoder. jansson's lexer reads its input
 * one character at a time through a stream with UTF-8 checks, about 150
 * instructions per byte, so a 4 KiB body (5.5 KB of base64) costs it most
 * of a subscriber's time. This decoder reads the form that Go's
 * encoding/json and cmi_message_encode write in one pass and decodes the
 * base64 Body where it lies in the request buffer.
 *
 * It accepts only input that jansson's decoder accepts with the same
 * result. Anything else returns CMI_DECODE_FALLBACK, and the jansson
 * decoder then decodes it or reports the error in its own words. The
 * fallback cases are whitespace, keys other than exactly "Header" and
 * "Body", a repeated key, null, numbers and arrays. Strings fall back when
 * they exceed FAST_STRING_MAX bytes, carry a \u escape of a character other
 * than U+0001 to U+007F, U+2028 and U+2029, or form a header that
 * cmicro_message_set_header rejects. A Body falls back unless it is plain
 * base64. fuzz_message_differential checks the two decoders against each
 * other.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/message_json_int.h"

/* Largest decoded header key or value the fast path takes, in bytes. */
#define FAST_STRING_MAX 1024

struct fast_cursor {
	const unsigned char *p;
	const unsigned char *end;
};

static bool fast_eat(struct fast_cursor *c, unsigned char ch)
{
	if (c->p == c->end || *c->p != ch)
		return false;
	c->p++;
	return true;
}

static bool fast_eat_text(struct fast_cursor *c, const char *text, size_t len)
{
	if ((size_t)(c->end - c->p) < len || memcmp(c->p, text, len) != 0)
		return false;
	c->p += len;
	return true;
}

/* Returns the code point of the four hex digits at p, or -1. */
static long fast_hex4(const unsigned char *p)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int d = cmi_hex_digit(p[i]);

		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

size_t cmi_utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
	size_t n;
	unsigned long v;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, v = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, v = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, v = p[0] & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10ffff ||
	    (v >= 0xd800 && v <= 0xdfff))
		return 0;
	return n;
}

long cmi_utf8_invalid_at(const char *s)
{
	const unsigned char *start = (const unsigned char *)s;
	const unsigned char *p = start, *end = start + strlen(s);

	while (p < end) {
		size_t n = *p < 0x80 ? 1 : cmi_utf8_seq_len(p, end);

		if (n == 0)
			return (long)(p - start);
		p += n;
	}
	return -1;
}

/* Decodes the escape after a backslash into out; returns the bytes
 * written, or 0 for an escape the fast path leaves to jansson. */
static size_t fast_unescape(struct fast_cursor *c, char *out)
{
	static const char shorts[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
	long cp;

	if (c->p == c->end)
		return 0;
	if (*c->p != 'u') {
		for (size_t i = 0; shorts[i] != '\0'; i += 2) {
			if (shorts[i] == (char)*c->p) {
				*out = shorts[i + 1];
				c->p++;
				return 1;
			}
		}
		return 0;
	}
	if (c->end - c->p < 5 || (cp = fast_hex4(c->p + 1)) < 0)
		return 0;
	c->p += 5;
	if (cp >= 0x01 && cp <= 0x7f) {
		*out = (char)cp;
		return 1;
	}
	if (cp != 0x2028 && cp != 0x2029)
		return 0;
	memcpy(out, cp == 0x2028 ? "\xe2\x80\xa8" : "\xe2\x80\xa9", 3);
	return 3;
}

/* Copies one byte or UTF-8 sequence of a string body into out; returns
 * the bytes written, or 0 when jansson would reject the byte. */
static size_t fast_copy_char(struct fast_cursor *c, char *out)
{
	size_t n = 1;

	if (*c->p < 0x20)
		return 0;
	if (*c->p >= 0x80 && (n = cmi_utf8_seq_len(c->p, c->end)) == 0)
		return 0;
	memcpy(out, c->p, n);
	c->p += n;
	return n;
}

/* Reads a JSON string whose opening quote is at the cursor into out, a
 * buffer of FAST_STRING_MAX + 1 bytes, as a C string. */
static bool fast_string(struct fast_cursor *c, char *out)
{
	size_t len = 0;

	if (!fast_eat(c, '"'))
		return false;
	while (c->p < c->end && *c->p != '"') {
		size_t n;

		/* Each step writes at most 4 bytes. */
		if (len + 4 > FAST_STRING_MAX)
			return false;
		if (*c->p == '\\') {
			c->p++;
			n = fast_unescape(c, out + len);
		} else {
			n = fast_copy_char(c, out + len);
		}
		if (n == 0)
			return false;
		len += n;
	}
	out[len] = '\0';
	return fast_eat(c, '"');
}

/* Reads {"key":"value",...} into msg. A repeated key overwrites the value
 * as in jansson's object, and cmicro_message_set_header would do the same. */
static bool fast_headers(struct fast_cursor *c, struct cmicro_message *msg)
{
	char key[FAST_STRING_MAX + 1], value[FAST_STRING_MAX + 1];

	if (!fast_eat(c, '{'))
		return false;
	if (fast_eat(c, '}'))
		return true;
	do {
		if (!fast_string(c, key) || !fast_eat(c, ':') || !fast_string(c, value))
			return false;
		if (cmicro_message_set_header(msg, key, value) != 0)
			return false;
	} while (fast_eat(c, ','));
	return fast_eat(c, '}');
}


/* Decodes a Body string that is base64 with at most two = of padding, and
 * checks its characters in the same pass. Anything else, such as an
 * escape, is left to the full parser. */
static bool fast_body(struct fast_cursor *c, struct cmicro_message *msg)
{
	const unsigned char *text, *close;
	unsigned char *data = NULL;
	size_t len = 0;

	if (!fast_eat(c, '"'))
		return false;
	text = c->p;
	close = memchr(text, '"', (size_t)(c->end - text));
	if (close == NULL ||
	    cmi_b64_decode_plain((const char *)text, (size_t)(close - text), &data, &len) != 0)
		return false;
	c->p = close + 1;
	free(msg->body);
	msg->body = data;
	msg->body_len = len;
	return true;
}

static bool fast_fields(struct fast_cursor *c, struct cmicro_message *msg)
{
	bool have_header = false, have_body = false;

	if (!fast_eat(c, '{'))
		return false;
	if (fast_eat(c, '}'))
		return true;
	do {
		bool ok;

		if (!have_header && fast_eat_text(c, "\"Header\":", 9)) {
			have_header = true;
			ok = fast_headers(c, msg);
		} else if (!have_body && fast_eat_text(c, "\"Body\":", 7)) {
			have_body = true;
			ok = fast_body(c, msg);
		} else {
			ok = false;
		}
		if (!ok)
			return false;
	} while (fast_eat(c, ','));
	return fast_eat(c, '}');
}

int cmi_message_decode_fast(const char *json, size_t len, struct cmicro_message **out)
{
	struct fast_cursor c = {(const unsigned char *)json, (const unsigned char *)json + len};
	struct cmicro_message *msg = NULL;

	*out = NULL;
	if (cmicro_message_new(&msg) != 0)
		return CMI_DECODE_FALLBACK;
	if (!fast_fields(&c, msg) || c.p != c.end) {
		cmicro_message_free(msg);
		return CMI_DECODE_FALLBACK;
	}
	*out = msg;
	return 0;
}
