/*
 * JSON of etcd's v3 gateway, with jansson. The gateway encodes protobuf
 * messages as JSON: "bytes" fields (keys, values) in standard base64, 64-bit
 * integers as decimal strings, and fields with their default value (0,
 * false, PUT) left out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "registry/etcd_int.h"

/* ---- base64 and keys ---- */

char *cmi_etcd_b64_encode(const void *data, size_t len)
{
	char *out;

	if (len > (size_t)INT32_MAX / 2) {
		cmi_error(CMICRO_ELIMIT, "cannot encode %zu bytes for etcd; the limit is 1 GiB", len);
		return NULL;
	}
	out = cmi_calloc(1, 4 * ((len + 2) / 3) + 1);
	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int cmi_etcd_b64_decode(const char *text, char **out, size_t *len)
{
	size_t n = strlen(text);
	size_t pad = 0;
	char *buf;
	int got;

	*out = NULL;
	*len = 0;
	if (n % 4 != 0 || n > (size_t)INT32_MAX)
		return cmi_error(CMICRO_EPROTO, "etcd sent invalid base64 of %zu characters (not a "
						"multiple of 4)",
				 n);
	while (pad < 2 && pad < n && text[n - 1 - pad] == '=')
		pad++;
	buf = cmi_calloc(1, n / 4 * 3 + 1);
	if (buf == NULL)
		return CMICRO_ENOMEM;

	/* EVP_DecodeBlock counts padding as zero bytes, so pad is removed. */
	got = EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)text, (int)n);
	if (got < 0 || (size_t)got < pad) {
		free(buf);
		return cmi_error_ossl(CMICRO_EPROTO, "etcd sent invalid base64 \"%.40s\"", text);
	}
	*len = (size_t)got - pad;
	buf[*len] = '\0';
	*out = buf;
	return 0;
}

char *cmi_etcd_prefix_end(const char *prefix)
{
	char *end = cmi_strdup(prefix);
	size_t n = strlen(prefix);

	/* Every prefix used here ends with '/', so the last byte never
	 * overflows; 0xff bytes would need the carry of clientv3. */
	if (end != NULL && n > 0)
		end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	return end;
}

/* ---- request bodies ---- */

static char *dump_body(json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

	json_decref(obj);
	if (text == NULL)
		cmi_error(CMICRO_ENOMEM, "out of memory building an etcd request");
	return text;
}

static int set_b64(json_t *obj, const char *field, const char *value)
{
	char *b64 = cmi_etcd_b64_encode(value, strlen(value));
	int rc = 0;

	if (b64 == NULL || json_object_set_new(obj, field, json_string(b64)) != 0)
		rc = CMICRO_ENOMEM;
	free(b64);
	return rc;
}

static int set_int64(json_t *obj, const char *field, int64_t value)
{
	char text[24];

	cmi_fmt(text, sizeof(text), "%" PRId64, value);
	return json_object_set_new(obj, field, json_string(text)) != 0 ? CMICRO_ENOMEM : 0;
}

char *cmi_etcd_body_range(const char *prefix, bool count_only)
{
	json_t *obj = json_object();
	char *end = cmi_etcd_prefix_end(prefix);
	int rc = obj && end ? 0 : CMICRO_ENOMEM;

	if (rc == 0)
		rc = set_b64(obj, "key", prefix);
	if (rc == 0)
		rc = set_b64(obj, "range_end", end);
	/* Serializable reads, as go-micro's etcd registry makes them: any
	 * member answers without asking the leader. */
	if (rc == 0 && json_object_set_new(obj, "serializable", json_true()) != 0)
		rc = CMICRO_ENOMEM;
	if (rc == 0 && count_only && json_object_set_new(obj, "count_only", json_true()) != 0)
		rc = CMICRO_ENOMEM;
	free(end);
	if (rc != 0) {
		json_decref(obj);
		obj = NULL;
	}
	return dump_body(obj);
}

char *cmi_etcd_body_put(const char *key, const char *value, int64_t lease)
{
	json_t *obj = json_object();
	int rc = obj ? set_b64(obj, "key", key) : CMICRO_ENOMEM;

	if (rc == 0)
		rc = set_b64(obj, "value", value);
	if (rc == 0 && lease != 0)
		rc = set_int64(obj, "lease", lease);
	if (rc != 0) {
		json_decref(obj);
		obj = NULL;
	}
	return dump_body(obj);
}

char *cmi_etcd_body_delete(const char *key)
{
	json_t *obj = json_object();

	if (obj != NULL && set_b64(obj, "key", key) != 0) {
		json_decref(obj);
		obj = NULL;
	}
	return dump_body(obj);
}

char *cmi_etcd_body_lease(const char *field, int64_t value)
{
	json_t *obj = json_object();

	if (obj != NULL && set_int64(obj, field, value) != 0) {
		json_decref(obj);
		obj = NULL;
	}
	return dump_body(obj);
}

char *cmi_etcd_body_watch(const char *prefix, int64_t start_revision)
{
	json_t *create = json_object();
	char *end = cmi_etcd_prefix_end(prefix);
	int rc = create && end ? 0 : CMICRO_ENOMEM;

	if (rc == 0)
		rc = set_b64(create, "key", prefix);
	if (rc == 0)
		rc = set_b64(create, "range_end", end);
	/* The previous value names the node of a DELETE event. */
	if (rc == 0 && json_object_set_new(create, "prev_kv", json_true()) != 0)
		rc = CMICRO_ENOMEM;
	if (rc == 0 && start_revision > 0)
		rc = set_int64(create, "start_revision", start_revision);
	free(end);
	if (rc != 0) {
		json_decref(create);
		return dump_body(NULL);
	}
	return dump_body(json_pack("{s:o}", "create_request", create));
}

/* ---- responses ---- */

static json_t *parse_object(const char *body, size_t len, const char *what)
{
	json_error_t err;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);

	if (root == NULL) {
		cmi_error(CMICRO_EPROTO, "etcd's %s response is not valid JSON (%s, at byte %d); "
					 "check that the address is an etcd v3 client URL",
			  what, err.text, err.position);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		cmi_error(CMICRO_EPROTO, "etcd's %s response is not a JSON object; check that the "
					 "address is an etcd v3 client URL",
			  what);
		return NULL;
	}
	return root;
}

/* Reads a 64-bit integer field, a decimal string or a number; 0 when absent. */
static int get_int64(json_t *obj, const char *field, const char *what, int64_t *out)
{
	json_t *v = json_object_get(obj, field);
	const char *text;
	char *end = NULL;
	long long parsed;

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	text = json_string_value(v);
	if (text == NULL || text[0] == '\0')
		goto bad;
	errno = 0;
	parsed = strtoll(text, &end, 10);
	if (errno != 0 || *end != '\0')
		goto bad;
	*out = parsed;
	return 0;
bad:
	return cmi_error(CMICRO_EPROTO, "etcd's %s response has an invalid \"%s\"; a decimal "
					"integer was expected",
			 what, field);
}

static bool get_bool(json_t *obj, const char *field)
{
	return json_is_true(json_object_get(obj, field));
}

void cmi_etcd_error_text(const char *body, size_t len, char *buf, size_t size)
{
	json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *text = NULL;

	if (json_is_object(root)) {
		text = json_string_value(json_object_get(root, "error"));
		if (text == NULL)
			text = json_string_value(json_object_get(root, "message"));
	}
	if (text != NULL)
		cmi_fmt(buf, size, "%s", text);
	else
		cmi_fmt(buf, size, "%.*s", (int)(len > 200 ? 200 : len), body ? body : "");
	json_decref(root);
}

int cmi_etcd_parse_grant(const char *body, size_t len, int64_t *lease, int64_t *ttl)
{
	json_t *root = parse_object(body, len, "lease grant");
	int rc;

	if (root == NULL)
		return CMICRO_EPROTO;
	rc = get_int64(root, "ID", "lease grant", lease);
	if (rc == 0)
		rc = get_int64(root, "TTL", "lease grant", ttl);
	if (rc == 0 && *lease == 0)
		rc = cmi_error(CMICRO_EPROTO, "etcd's lease grant response has no lease \"ID\"");
	json_decref(root);
	return rc;
}

int cmi_etcd_parse_keepalive(const char *body, size_t len, int64_t *ttl)
{
	json_t *root = parse_object(body, len, "lease keep-alive");
	json_t *result;
	int rc;

	if (root == NULL)
		return CMICRO_EPROTO;
	result = json_object_get(root, "result");
	if (!json_is_object(result))
		rc = cmi_error(CMICRO_EPROTO, "etcd's lease keep-alive response has no \"result\" "
					      "object");
	else
		rc = get_int64(result, "TTL", "lease keep-alive", ttl);
	json_decref(root);
	return rc;
}

int cmi_etcd_parse_token(const char *body, size_t len, char **token)
{
	json_t *root = parse_object(body, len, "authenticate");
	const char *text;
	bool valid;

	*token = NULL;
	if (root == NULL)
		return CMICRO_EPROTO;
	text = json_string_value(json_object_get(root, "token"));
	valid = text != NULL && text[0] != '\0' && strlen(text) < 4096;
	if (valid)
		*token = cmi_strdup(text);
	json_decref(root);
	if (!valid)
		return cmi_error(CMICRO_EPROTO, "etcd's authenticate response has no valid "
						"\"token\"");
	return *token ? 0 : CMICRO_ENOMEM;
}

void cmi_etcd_kv_clear(struct cmi_etcd_kv *kv)
{
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

/* Decodes one mvccpb.KeyValue object; a missing value is left NULL. */
static int parse_kv(json_t *obj, const char *what, struct cmi_etcd_kv *kv)
{
	const char *key = json_string_value(json_object_get(obj, "key"));
	const char *value = json_string_value(json_object_get(obj, "value"));
	size_t key_len;
	int rc;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_object(obj) || key == NULL)
		return cmi_error(CMICRO_EPROTO, "etcd's %s response has a key-value without a "
						"\"key\" string",
				 what);
	rc = cmi_etcd_b64_decode(key, &kv->key, &key_len);
	if (rc == 0 && strlen(kv->key) != key_len)
		rc = cmi_error(CMICRO_EPROTO, "etcd's %s response has a key with a NUL byte", what);
	if (rc == 0 && value != NULL)
		rc = cmi_etcd_b64_decode(value, &kv->value, &kv->value_len);
	if (rc == 0)
		rc = get_int64(obj, "version", what, &kv->version);
	if (rc != 0)
		cmi_etcd_kv_clear(kv);
	return rc;
}

static int parse_kv_array(json_t *array, const char *what, struct cmi_etcd_kv **kvs, size_t *n)
{
	size_t count = json_array_size(array);
	int rc = 0;

	if (array != NULL && !json_is_array(array))
		return cmi_error(CMICRO_EPROTO, "etcd's %s response has a \"kvs\" that is not an "
						"array",
				 what);
	if (count == 0)
		return 0;
	*kvs = cmi_calloc(count, sizeof(**kvs));
	if (*kvs == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		rc = parse_kv(json_array_get(array, i), what, &(*kvs)[i]);
		if (rc == 0)
			(*n)++;
	}
	return rc;
}

int cmi_etcd_parse_range(const char *body, size_t len, int64_t *revision,
			 struct cmi_etcd_kv **kvs, size_t *n)
{
	json_t *root = parse_object(body, len, "range");
	int rc;

	*kvs = NULL;
	*n = 0;
	if (root == NULL)
		return CMICRO_EPROTO;
	rc = get_int64(json_object_get(root, "header"), "revision", "range", revision);
	if (rc == 0)
		rc = parse_kv_array(json_object_get(root, "kvs"), "range", kvs, n);
	json_decref(root);
	if (rc != 0) {
		for (size_t i = 0; i < *n; i++)
			cmi_etcd_kv_clear(&(*kvs)[i]);
		free(*kvs);
		*kvs = NULL;
		*n = 0;
	}
	return rc;
}

void cmi_etcd_watch_msg_clear(struct cmi_etcd_watch_msg *msg)
{
	for (size_t i = 0; i < msg->n_events; i++) {
		cmi_etcd_kv_clear(&msg->events[i].kv);
		cmi_etcd_kv_clear(&msg->events[i].prev);
	}
	free(msg->events);
	memset(msg, 0, sizeof(*msg));
}

static int parse_event(json_t *obj, struct cmi_etcd_event *ev)
{
	const char *type = json_string_value(json_object_get(obj, "type"));
	json_t *prev = json_object_get(obj, "prev_kv");
	int rc;

	if (!json_is_object(obj))
		return cmi_error(CMICRO_EPROTO, "etcd's watch response has an event that is not an "
						"object");
	if (type == NULL || strcmp(type, "PUT") == 0)
		ev->type = CMI_ETCD_PUT;
	else if (strcmp(type, "DELETE") == 0)
		ev->type = CMI_ETCD_DELETE;
	else
		return cmi_error(CMICRO_EPROTO, "etcd's watch response has an unknown event type "
						"\"%.32s\"",
				 type);
	rc = parse_kv(json_object_get(obj, "kv"), "watch", &ev->kv);
	if (rc == 0 && prev != NULL)
		rc = parse_kv(prev, "watch", &ev->prev);
	return rc;
}

static int parse_events(json_t *array, struct cmi_etcd_watch_msg *msg)
{
	size_t count = json_array_size(array);
	int rc = 0;

	if (array != NULL && !json_is_array(array))
		return cmi_error(CMICRO_EPROTO, "etcd's watch response has \"events\" that is not "
						"an array");
	if (count == 0)
		return 0;
	msg->events = cmi_calloc(count, sizeof(*msg->events));
	if (msg->events == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		msg->n_events++;
		rc = parse_event(json_array_get(array, i), &msg->events[i]);
	}
	return rc;
}

int cmi_etcd_parse_watch(const char *body, size_t len, struct cmi_etcd_watch_msg *msg)
{
	json_t *root = parse_object(body, len, "watch");
	json_t *result;
	const char *reason;
	int rc;

	memset(msg, 0, sizeof(*msg));
	if (root == NULL)
		return CMICRO_EPROTO;
	result = json_object_get(root, "result");
	if (!json_is_object(result)) {
		char text[256];

		cmi_etcd_error_text(body, len, text, sizeof(text));
		json_decref(root);
		return cmi_error(CMICRO_EIO, "etcd ended the watch: %s", text);
	}
	msg->created = get_bool(result, "created");
	msg->canceled = get_bool(result, "canceled");
	reason = json_string_value(json_object_get(result, "cancel_reason"));
	cmi_fmt(msg->cancel_reason, sizeof(msg->cancel_reason), "%s", reason ? reason : "");
	rc = get_int64(json_object_get(result, "header"), "revision", "watch", &msg->revision);
	if (rc == 0)
		rc = get_int64(result, "compact_revision", "watch", &msg->compact_revision);
	if (rc == 0)
		rc = parse_events(json_object_get(result, "events"), msg);
	json_decref(root);
	if (rc != 0)
		cmi_etcd_watch_msg_clear(msg);
	return rc;
}

/* ---- stored documents ---- */

/* True when key is the node key of a service named name ("/" mapped). */
static bool key_names_service(const char *key, const char *name)
{
	char *expected = cmi_registry_node_key(name, "");
	bool same = expected != NULL && strncmp(key, expected, strlen(expected)) == 0 &&
		    strchr(key + strlen(expected), '/') == NULL;

	free(expected);
	return same;
}

struct cmicro_service *cmi_etcd_kv_service(const struct cmi_etcd_kv *kv)
{
	struct cmicro_service *svc = NULL;

	if (kv->value == NULL) {
		cmi_error(CMICRO_EPROTO, "etcd key %.200s has no value", kv->key);
		return NULL;
	}
	if (cmicro_service_from_json(kv->value, kv->value_len, &svc) != 0)
		return NULL;
	if (svc->n_nodes == 0 || !key_names_service(kv->key, svc->name)) {
		cmi_error(CMICRO_EPROTO, "etcd key %.200s holds service \"%.64s\" with %zu nodes; "
					 "a registry entry holds the service named by its key with "
					 "its one node",
			  kv->key, svc->name, svc->n_nodes);
		cmicro_service_free(svc);
		return NULL;
	}
	return svc;
}

struct cmicro_service *cmi_etcd_key_service(const char *key)
{
	size_t plen = strlen(CMI_REGISTRY_KEY_PREFIX);
	struct cmicro_service *svc = NULL;
	const char *slash;
	char *name;

	if (strncmp(key, CMI_REGISTRY_KEY_PREFIX, plen) != 0 ||
	    (slash = strchr(key + plen, '/')) == NULL || slash == key + plen ||
	    slash[1] == '\0' || strchr(slash + 1, '/') != NULL) {
		cmi_error(CMICRO_EPROTO, "etcd key %.200s is not a registry node key "
					 CMI_REGISTRY_KEY_PREFIX "<service>/<node id>",
			  key);
		return NULL;
	}
	name = cmi_strndup(key + plen, (size_t)(slash - key) - plen);
	if (name == NULL)
		return NULL;
	if (cmicro_service_new(name, "", &svc) != 0 ||
	    cmicro_service_add_node(svc, slash + 1, "", NULL) != 0) {
		cmicro_service_free(svc);
		svc = NULL;
	}
	free(name);
	return svc;
}
