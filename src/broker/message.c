#include <stdlib.h>
#include <string.h>


#include "broker/broker_int.h"
#include "broker/message_json_int.h"

CMICRO_API int cmicro_message_new(struct cmicro_message **out)
{
	struct cmicro_message *msg;

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_message_new: out is NULL");
	*out = NULL;
	msg = cmi_calloc(1, sizeof(*msg));
	if (msg == NULL)
		return CMICRO_ENOMEM;
	msg->body = cmi_calloc(1, 1);
	if (msg->body == NULL) {
		free(msg);
		return CMICRO_ENOMEM;
	}
	*out = msg;
	return 0;
}

CMICRO_API void cmicro_message_free(struct cmicro_message *msg)
{
	if (msg == NULL)
		return;
	for (size_t i = 0; i < msg->n_headers; i++) {
		free(msg->headers[i].key);
		free(msg->headers[i].value);
	}
	free(msg->headers);
	free(msg->body);
	free(msg);
}

/* Returns the index of key, or the insertion point as -(index + 1). */
static long msg_find(const struct cmicro_message *msg, const char *key)
{
	size_t lo = 0, hi = msg->n_headers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(msg->headers[mid].key, key);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

/* Checks that s can travel as a JSON string; jansson validates UTF-8. */
static int msg_check_utf8(const char *what, const char *s)
{
	long bad = cmi_utf8_invalid_at(s);

	if (bad >= 0)
		return cmi_error(CMICRO_EINVAL, "message header %s is not valid UTF-8 at byte %ld; "
						"headers travel as JSON strings, so encode binary "
						"values (base64)",
				 what, bad);
	return 0;
}

/* Rejects CR and LF, which would let a header that some node copies into an
 * HTTP header or a log line split it. NUL cannot occur: keys and values
 * are C strings, and the JSON decoder rejects \u0000. */
static int msg_check_line(const char *key, const char *what, const char *s)
{
	const char *bad = strpbrk(s, "\r\n");

	if (bad == NULL)
		return 0;
	return cmi_error(CMICRO_EINVAL, "message header \"%.64s\": its %s contains a %s at byte "
					"%zu; header keys and values must be one line, so remove "
					"the line break or encode the value (base64)",
			 key, what, *bad == '\r' ? "carriage return (CR)" : "line feed (LF)",
			 (size_t)(bad - s));
}

static int msg_insert(struct cmicro_message *msg, size_t at, char *key, char *value)
{
	if (msg->n_headers == msg->cap_headers) {
		size_t cap = msg->cap_headers ? msg->cap_headers * 2 : 8;
		struct cmi_header *grown = realloc(msg->headers, cap * sizeof(*grown));

		if (grown == NULL)
			return cmi_error(CMICRO_ENOMEM, "out of memory growing message headers");
		msg->headers = grown;
		msg->cap_headers = cap;
	}
	memmove(&msg->headers[at + 1], &msg->headers[at],
		(msg->n_headers - at) * sizeof(msg->headers[0]));
	msg->headers[at].key = key;
	msg->headers[at].value = value;
	msg->n_headers++;
	return 0;
}

CMICRO_API int cmicro_message_set_header(struct cmicro_message *msg, const char *key,
					 const char *value)
{
	char *k = NULL, *v;
	long at;
	int rc;

	if (msg == NULL || key == NULL || value == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_message_set_header: message, key and value "
						"must not be NULL");
	rc = msg_check_utf8("key", key);
	if (rc == 0)
		rc = msg_check_utf8("value", value);
	if (rc == 0)
		rc = msg_check_line(key, "key", key);
	if (rc == 0)
		rc = msg_check_line(key, "value", value);
	if (rc != 0)
		return rc;

	v = cmi_strdup(value);
	if (v == NULL)
		return CMICRO_ENOMEM;
	at = msg_find(msg, key);
	if (at >= 0) {
		free(msg->headers[at].value);
		msg->headers[at].value = v;
		return 0;
	}

	k = cmi_strdup(key);
	rc = k ? msg_insert(msg, (size_t)(-at - 1), k, v) : CMICRO_ENOMEM;
	if (rc != 0) {
		free(k);
		free(v);
	}
	return rc;
}

CMICRO_API const char *cmicro_message_get_header(const struct cmicro_message *msg,
						 const char *key)
{
	long at;

	if (msg == NULL || key == NULL)
		return NULL;
	at = msg_find(msg, key);
	return at >= 0 ? msg->headers[at].value : NULL;
}

CMICRO_API size_t cmicro_message_header_count(const struct cmicro_message *msg)
{
	return msg ? msg->n_headers : 0;
}

CMICRO_API const char *cmicro_message_header_key(const struct cmicro_message *msg, size_t i)
{
	return (msg != NULL && i < msg->n_headers) ? msg->headers[i].key : NULL;
}

CMICRO_API const char *cmicro_message_header_value(const struct cmicro_message *msg, size_t i)
{
	return (msg != NULL && i < msg->n_headers) ? msg->headers[i].value : NULL;
}

CMICRO_API int cmicro_message_set_body(struct cmicro_message *msg, const void *data, size_t len)
{
	unsigned char *copy;

	if (msg == NULL || (data == NULL && len > 0))
		return cmi_error(CMICRO_EINVAL, "cmicro_message_set_body: message is NULL, or data "
						"is NULL with a length of %zu",
				 len);
	copy = malloc(len + 1);
	if (copy == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory copying a %zu-byte message body", len);
	if (len > 0)
		memcpy(copy, data, len);
	copy[len] = '\0';
	free(msg->body);
	msg->body = copy;
	msg->body_len = len;
	return 0;
}

CMICRO_API const void *cmicro_message_body(const struct cmicro_message *msg, size_t *len)
{
	if (msg == NULL) {
		if (len != NULL)
			*len = 0;
		return "";
	}
	if (len != NULL)
		*len = msg->body_len;
	return msg->body;
}

CMICRO_API int cmicro_message_dup(const struct cmicro_message *msg, struct cmicro_message **out)
{
	struct cmicro_message *copy = NULL;
	int rc;

	if (msg == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_message_dup: message and out must not be NULL");
	*out = NULL;
	rc = cmicro_message_new(&copy);
	if (rc == 0)
		rc = cmicro_message_set_body(copy, msg->body, msg->body_len);
	for (size_t i = 0; rc == 0 && i < msg->n_headers; i++)
		rc = cmicro_message_set_header(copy, msg->headers[i].key, msg->headers[i].value);
	if (rc != 0) {
		cmicro_message_free(copy);
		return rc;
	}
	*out = copy;
	return 0;
}

/* Returns the offset of the first byte that breaks the topic rule, or -1.
 * C1 controls are U+0080 to U+009F, encoded as 0xC2 0x80 to 0xC2 0x9F. */
static long topic_bad_byte(const char *topic)
{
	for (size_t i = 0; topic[i] != '\0'; i++) {
		unsigned char c = (unsigned char)topic[i];

		if (c <= 0x20 || c == 0x7f)
			return (long)i;
		if (c == 0xc2 && (unsigned char)topic[i + 1] >= 0x80 &&
		    (unsigned char)topic[i + 1] <= 0x9f)
			return (long)i;
	}
	return -1;
}

CMICRO_API int cmicro_topic_check(const char *topic)
{
	return cmi_topic_check(topic);
}


/* Returns how many bytes of the valid UTF-8 text s, at most max, can be
 * quoted without cutting a character in two. */
static int topic_quote_len(const char *s, long len, long max)
{
	long n = len < max ? len : max;

	while (n > 0 && n < len && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return (int)n;
}

/* Fails for the byte at offset bad, naming it with problem and quoting the
 * topic before it. That part breaks no rule, so the message stays one clean
 * line of UTF-8 whatever follows. */
static int topic_bad_byte_error(const char *topic, long bad, const char *problem)
{
	const char *rule = "topics must be UTF-8 and may not contain spaces or control "
			   "characters, so use for example \"-\" or \".\" instead";
	int quoted = topic_quote_len(topic, bad, 64);

	if (bad == 0)
		return cmi_error(CMICRO_EINVAL, "topic begins with %s; %s", problem, rule);
	if (quoted < bad)
		return cmi_error(CMICRO_EINVAL, "topic \"%.*s...\" has %s at byte %ld; %s", quoted,
				 topic, problem, bad, rule);
	return cmi_error(CMICRO_EINVAL, "topic \"%.*s\" is followed by %s at byte %ld; %s", quoted,
			 topic, problem, bad, rule);
}

int cmi_topic_check(const char *topic)
{
	size_t len = topic ? strlen(topic) : 0;
	long bad_utf8, bad;
	char problem[48];
	unsigned char c;

	if (len == 0)
		return cmi_error(CMICRO_EINVAL, "topic is %s; use a non-empty name such as "
						"\"orders\"",
				 topic ? "empty" : "NULL");
	/* The first byte that breaks either rule is reported, so the part
	 * quoted before it contains neither invalid UTF-8 nor control
	 * characters. */
	bad_utf8 = cmi_utf8_invalid_at(topic);
	bad = topic_bad_byte(topic);
	if (bad_utf8 >= 0 && (bad < 0 || bad_utf8 < bad)) {
		cmi_fmt(problem, sizeof(problem), "the byte 0x%02x (not valid UTF-8)",
			(unsigned char)topic[bad_utf8]);
		return topic_bad_byte_error(topic, bad_utf8, problem);
	}
	if (bad >= 0) {
		c = (unsigned char)topic[bad];
		if (c == ' ')
			cmi_fmt(problem, sizeof(problem), "a space");
		else if (c == 0xc2)
			cmi_fmt(problem, sizeof(problem), "the control character U+%04X",
				(unsigned)(unsigned char)topic[bad + 1]);
		else
			cmi_fmt(problem, sizeof(problem), "the control character 0x%02x", c);
		return topic_bad_byte_error(topic, bad, problem);
	}
	if (len > CMI_TOPIC_MAX)
		return cmi_error(CMICRO_EINVAL, "topic \"%.*s...\" is %zu bytes long; the maximum "
						"is %d bytes, so use a shorter name",
				 topic_quote_len(topic, (long)len, 64), topic, len, CMI_TOPIC_MAX);
	return 0;
}
