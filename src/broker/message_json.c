/*
 * go-micro's broker envelope: Go's encoding/json form of
 *   type Message struct { Header map[string]string; Body []byte }
 * Go writes struct fields in declaration order, map keys sorted, and a
 * []byte as standard base64 with padding (a nil slice as null, an empty one
 * as ""). jansson keeps insertion order, so inserting in Go's order gives
 * Go's bytes for plain text.
 *
 * NOTE: Go also escapes <, > and & as \u003c, \u003e and \u0026 inside
 * strings and jansson does not; both forms decode to the same message.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "broker/broker_int.h"

static char *b64_encode(const unsigned char *data, size_t len)
{
	char *out;

	if (len > (size_t)0x3fffffff)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

/* Adds the headers, with Micro-Topic merged in at its sorted position. */
static int env_add_headers(json_t *obj, const struct cmicro_message *msg, const char *topic)
{
	bool topic_done = false;
	int rc = 0;

	for (size_t i = 0; i <= msg->n_headers && rc == 0; i++) {
		const struct cmi_header *h = i < msg->n_headers ? &msg->headers[i] : NULL;
		int c = h ? strcmp(h->key, CMI_TOPIC_HEADER) : 1;

		if (!topic_done && c >= 0) {
			rc = json_object_set_new(obj, CMI_TOPIC_HEADER, json_string(topic));
			topic_done = true;
		}
		if (h != NULL && c != 0 && rc == 0)
			rc = json_object_set_new(obj, h->key, json_string(h->value));
	}
	return rc == 0 ? 0 : -1;
}

static json_t *env_build(const struct cmicro_message *msg, const char *topic)
{
	json_t *root = json_object();
	json_t *headers = json_object();
	char *b64 = b64_encode(msg->body, msg->body_len);
	json_t *body = b64 ? json_string_nocheck(b64) : NULL;
	bool ok = root && headers && body && env_add_headers(headers, msg, topic) == 0;

	free(b64);
	if (ok)
		ok = json_object_set(root, "Header", headers) == 0 &&
		     json_object_set(root, "Body", body) == 0;
	json_decref(headers);
	json_decref(body);
	if (!ok) {
		json_decref(root);
		return NULL;
	}
	return root;
}

bool cmi_topic_valid(const char *topic)
{
	json_t *j;

	if (topic == NULL || topic[0] == '\0')
		return false;
	j = json_string(topic);
	json_decref(j);
	return j != NULL;
}

int cmi_message_encode(const struct cmicro_message *msg, const char *topic, char **json,
		       size_t *len)
{
	json_t *root;
	char *text;

	if (msg == NULL || topic == NULL || json == NULL)
		return cmi_error(CMICRO_EINVAL, "message encode: message, topic and output must "
						"not be NULL");
	*json = NULL;
	if (!cmi_topic_valid(topic))
		return cmi_error(CMICRO_EINVAL, "topic \"%.64s\" is empty or not valid UTF-8; use a "
						"non-empty UTF-8 name",
				 topic);
	root = env_build(msg, topic);
	text = root ? json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(root);
	if (text == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory encoding a message of %zu bytes",
				 msg->body_len);
	*json = text;
	if (len != NULL)
		*len = strlen(text);
	return 0;
}

/* Decodes standard base64 with padding, as Go's base64.StdEncoding, which
 * skips line breaks. EVP_DecodeBlock counts padding as zero bytes, so the
 * padding is validated here and subtracted. */
static int b64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *clean = malloc(len + 1);
	unsigned char *data = NULL;
	size_t n = 0, pad = 0;
	int decoded;

	if (clean == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < len; i++) {
		if (in[i] != '\r' && in[i] != '\n')
			clean[n++] = in[i];
	}
	if (n % 4 != 0 || n > (size_t)0x7ffffff0)
		goto bad;
	while (pad < 2 && pad < n && clean[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++) {
		if (clean[i] == '\0' || strchr(alphabet, clean[i]) == NULL)
			goto bad;
	}

	data = malloc(n / 4 * 3 + 1);
	if (data == NULL) {
		free(clean);
		return CMICRO_ENOMEM;
	}
	decoded = n > 0 ? EVP_DecodeBlock(data, (unsigned char *)clean, (int)n) : 0;
	if (decoded < 0 || (size_t)decoded < pad)
		goto bad;
	*out_len = (size_t)decoded - pad;
	data[*out_len] = '\0';
	*out = data;
	free(clean);
	return 0;

bad:
	free(clean);
	free(data);
	return cmi_error(CMICRO_EPROTO, "message Body is not valid base64: expected standard "
					"base64 with = padding (Go's encoding of []byte)");
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

int cmi_message_decode(const char *json, size_t len, struct cmicro_message **out)
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
