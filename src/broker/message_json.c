/*
 * go-micro's broker envelope: Go's encoding/json form of
 *   type Message struct { Header map[string]string; Body []byte }
 * Go writes struct fields in declaration order, map keys sorted, and a
 * []byte as standard base64 with padding (a nil slice as null, an empty one
 * as ""). The encoder writes these bytes straight into one buffer and
 * escapes strings as json.Marshal of Go 1.22 and later does, so the output
 * is Go's byte for byte. Go before 1.22 writes \u0008 and \u000c where
 * this encoder writes \b and \f, which decode to the same bytes. The
 * decoder tries the fast path of message_decode_fast.c for exactly that
 * form and parses anything else with jansson.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "broker/broker_int.h"
#include "broker/message_json_int.h"

/* Bytes that json.Marshal writes as \u00XX: control characters other than
 * the five with short escapes, and <, > and & (its HTML-safe escaping). */
static bool env_needs_unicode_escape(unsigned char c)
{
	if (c < 0x20)
		return c != '\b' && c != '\f' && c != '\n' && c != '\r' && c != '\t';
	return c == '<' || c == '>' || c == '&';
}

/* json.Marshal also escapes U+2028 and U+2029 (E2 80 A8 and E2 80 A9),
 * which end a line in JavaScript. */
static bool env_is_line_separator(const unsigned char *p)
{
	return p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9);
}

/* Returns the length of s as a JSON string, quotes included. */
static size_t env_string_len(const char *s)
{
	size_t n = 2;

	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (env_needs_unicode_escape(*p)) {
			n += 6;
		} else if (*p < 0x20 || *p == '"' || *p == '\\') {
			n += 2;
		} else if (env_is_line_separator(p)) {
			n += 6;
			p += 2;
		} else {
			n++;
		}
	}
	return n;
}

static char env_short_escape(unsigned char c)
{
	switch (c) {
	case '\b':
		return 'b';
	case '\f':
		return 'f';
	case '\n':
		return 'n';
	case '\r':
		return 'r';
	case '\t':
		return 't';
	default:
		return (char)c; /* '"' and '\\' */
	}
}

/* Writes s as a JSON string at out, env_string_len(s) bytes; returns the
 * end. */
static char *env_put_string(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	*out++ = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (env_needs_unicode_escape(*p)) {
			memcpy(out, "\\u00", 4);
			out[4] = hex[*p >> 4];
			out[5] = hex[*p & 0xf];
			out += 6;
		} else if (*p < 0x20 || *p == '"' || *p == '\\') {
			*out++ = '\\';
			*out++ = env_short_escape(*p);
		} else if (env_is_line_separator(p)) {
			memcpy(out, p[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			out += 6;
			p += 2;
		} else {
			*out++ = (char)*p;
		}
	}
	*out++ = '"';
	return out;
}

static char *env_put(char *out, const char *text, size_t len)
{
	memcpy(out, text, len);
	return out + len;
}

#define ENV_HEADER_OPEN "{\"Header\":{"
#define ENV_BODY_OPEN "},\"Body\":\""
#define ENV_CLOSE "\"}"
#define ENV_LIT(s) (s), sizeof(s) - 1

/* Walks the headers in Go's order, with Micro-Topic set to topic and
 * merged in at its sorted position. */
struct env_iter {
	const struct cmicro_message *msg;
	const char *topic;
	size_t i;
	bool topic_done;
};

static bool env_next_header(struct env_iter *it, const char **key, const char **value)
{
	while (it->i < it->msg->n_headers) {
		const struct cmi_header *h = &it->msg->headers[it->i];
		int c = strcmp(h->key, CMI_TOPIC_HEADER);

		if (!it->topic_done && c >= 0)
			break;
		it->i++;
		if (c != 0) {
			*key = h->key;
			*value = h->value;
			return true;
		}
	}
	if (it->topic_done)
		return false;
	it->topic_done = true;
	*key = CMI_TOPIC_HEADER;
	*value = it->topic;
	return true;
}

/* Returns the length of the envelope without its terminating NUL. Header
 * strings are C strings in memory and grow at most 6 times, and the body
 * is at most ENV_BODY_MAX bytes, so the sum does not overflow. */
static size_t env_encoded_len(const struct cmicro_message *msg, const char *topic)
{
	struct env_iter it = {msg, topic, 0, false};
	size_t len = sizeof(ENV_HEADER_OPEN ENV_BODY_OPEN ENV_CLOSE) - 1;
	const char *key, *value;

	/* Each header adds its colon and a comma; Micro-Topic is always
	 * there, and one comma fewer than headers is written. */
	while (env_next_header(&it, &key, &value))
		len += env_string_len(key) + 1 + env_string_len(value) + 1;
	return len - 1 + 4 * ((msg->body_len + 2) / 3);
}

static void env_write(char *out, const struct cmicro_message *msg, const char *topic)
{
	struct env_iter it = {msg, topic, 0, false};
	const char *key, *value;
	bool first = true;

	out = env_put(out, ENV_LIT(ENV_HEADER_OPEN));
	while (env_next_header(&it, &key, &value)) {
		if (!first)
			*out++ = ',';
		first = false;
		out = env_put_string(out, key);
		*out++ = ':';
		out = env_put_string(out, value);
	}
	out = env_put(out, ENV_LIT(ENV_BODY_OPEN));
	out += cmi_b64_encode(out, msg->body, msg->body_len);
	out = env_put(out, ENV_LIT(ENV_CLOSE));
	*out = '\0';
}

/* The same UTF-8 rule as jansson's json_string, which checked topics before
 * and cost two allocations per publish. */
bool cmi_topic_valid(const char *topic)
{
	return topic != NULL && topic[0] != '\0' && cmi_utf8_invalid_at(topic) < 0;
}

/* Largest body encoded: 1 GiB, whose envelope size cannot overflow. */
#define ENV_BODY_MAX ((size_t)0x3fffffff)

int cmi_message_encode(const struct cmicro_message *msg, const char *topic, char **json,
		       size_t *len)
{
	size_t size;
	char *text;

	if (msg == NULL || topic == NULL || json == NULL)
		return cmi_error(CMICRO_EINVAL, "message encode: message, topic and output must "
						"not be NULL");
	*json = NULL;
	if (!cmi_topic_valid(topic))
		return cmi_error(CMICRO_EINVAL, "topic \"%.64s\" is empty or not valid UTF-8; use a "
						"non-empty UTF-8 name",
				 topic);
	if (msg->body_len > ENV_BODY_MAX)
		return cmi_error(CMICRO_EINVAL, "message body of %zu bytes is larger than the "
						"maximum of %zu bytes; send smaller messages",
				 msg->body_len, ENV_BODY_MAX);

	size = env_encoded_len(msg, topic);
	text = malloc(size + 1);
	if (text == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory encoding a message of %zu bytes",
				 msg->body_len);
	env_write(text, msg, topic);
	*json = text;
	if (len != NULL)
		*len = size;
	return 0;
}

/* Copies in without CR and LF into a new buffer. */
static char *b64_strip_line_breaks(const char *in, size_t len, size_t *out_len)
{
	char *clean = malloc(len + 1);
	size_t n = 0;

	if (clean == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '\r' && in[i] != '\n')
			clean[n++] = in[i];
	}
	*out_len = n;
	return clean;
}

/* Decodes standard base64 with padding, as Go's base64.StdEncoding, which
 * skips line breaks. Text without line breaks, as Go writes it, is decoded
 * in place without a copy. */
static int b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	char *clean = NULL;
	const char *text = in;
	size_t n = len;
	int rc;

	if (memchr(in, '\n', len) != NULL || memchr(in, '\r', len) != NULL) {
		clean = b64_strip_line_breaks(in, len, &n);
		if (clean == NULL)
			return CMICRO_ENOMEM;
		text = clean;
	}
	rc = cmi_b64_decode_plain(text, n, out, out_len);
	free(clean);
	if (rc == CMICRO_EPROTO)
		return cmi_error(CMICRO_EPROTO, "message Body is not valid base64: expected "
						"standard base64 with = padding (Go's encoding of "
						"[]byte)");
	return rc;
}

static int dec_headers(struct cmicro_message *msg, json_t *headers)
{
	const char *key;
	json_t *value;
	int rc;

	if (json_is_null(headers))
		return 0;
	if (!json_is_object(headers))
		return cmi_error(CMICRO_EPROTO, "message Header is a JSON %s; expected an object "
						"of strings",
				 json_is_array(headers) ? "array" : "scalar");
	json_object_foreach(headers, key, value) {
		if (!json_is_string(value))
			return cmi_error(CMICRO_EPROTO, "message header \"%.64s\" is not a JSON "
							"string; header values must be strings",
					 key);
		rc = cmicro_message_set_header(msg, key, json_string_value(value));
		if (rc != 0)
			return rc == CMICRO_EINVAL ? CMICRO_EPROTO : rc;
	}
	return 0;
}

static int dec_body(struct cmicro_message *msg, json_t *body)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int rc;

	if (json_is_null(body))
		return cmicro_message_set_body(msg, NULL, 0);
	if (!json_is_string(body))
		return cmi_error(CMICRO_EPROTO, "message Body is not a JSON string; expected base64 "
						"text or null");
	rc = b64_decode(json_string_value(body), json_string_length(body), &data, &len);
	if (rc != 0)
		return rc;
	free(msg->body);
	msg->body = data;
	msg->body_len = len;
	return 0;
}

/* Go matches a JSON key to a field exactly, else ignoring case; a later
 * duplicate overwrites a scalar field and merges into a map field. */
static int dec_fields(struct cmicro_message *msg, json_t *root)
{
	const char *key;
	json_t *value;
	int rc = 0;

	json_object_foreach(root, key, value) {
		if (strcasecmp(key, "Header") == 0)
			rc = dec_headers(msg, value);
		else if (strcasecmp(key, "Body") == 0)
			rc = dec_body(msg, value);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int cmi_message_decode_jansson(const char *json, size_t len, struct cmicro_message **out)
{
	struct cmicro_message *msg = NULL;
	json_error_t jerr;
	json_t *root;
	int rc;

	if (json == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL, "message decode: input and output must not be NULL");
	*out = NULL;
	root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
	if (root == NULL)
		return cmi_error(CMICRO_EPROTO, "message is not valid JSON: %s at line %d column %d; "
						"expected go-micro's {\"Header\":{...},\"Body\":\"<base64>\"}",
				 jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		const char *kind = json_is_array(root) ? "array" : "scalar";

		json_decref(root);
		return cmi_error(CMICRO_EPROTO, "message is a JSON %s, not an object; expected "
						"{\"Header\":{...},\"Body\":\"<base64>\"}",
				 kind);
	}

	rc = cmicro_message_new(&msg);
	if (rc == 0)
		rc = dec_fields(msg, root);
	json_decref(root);
	if (rc != 0) {
		cmicro_message_free(msg);
		return rc;
	}
	*out = msg;
	return 0;
}

int cmi_message_decode(const char *json, size_t len, struct cmicro_message **out)
{
	if (json == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL, "message decode: input and output must not be NULL");
	if (cmi_message_decode_fast(json, len, out) == 0)
		return 0;
	return cmi_message_decode_jansson(json, len, out);
}
