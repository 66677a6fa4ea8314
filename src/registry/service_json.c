/*
 * go-micro's registry.Service JSON, with jansson: {"name", "version",
 * "metadata": {string: string}, "endpoints": [...], "nodes": [{"id",
 * "address", "metadata"}]}. Decoding is strict about the types of known
 * fields and ignores unknown ones, so newer writers stay readable.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "registry/registry_int.h"

#define JSON_FORM_HINT                                                                             \
	"expected go-micro's registry.Service form {\"name\": \"...\", \"version\": \"...\", "     \
	"\"nodes\": [{\"id\": \"...\", \"address\": \"host:port\"}]}"

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "an unknown value";
}

static int field_error(const char *field, const char *want, const json_t *got)
{
	return cmi_error(CMICRO_EPROTO, "invalid service JSON: field \"%s\" must be %s, not %s; %s",
			 field, want, json_type_name(got), JSON_FORM_HINT);
}

/* ---- encoding ---- */

static int put_string(json_t *obj, const char *key, const char *value, const char *what)
{
	json_t *s = json_string(value ? value : "");

	if (s == NULL)
		return cmi_error(CMICRO_EINVAL,
				 "cannot encode %s as JSON: \"%.64s\" is not valid "
				 "UTF-8; use UTF-8 text",
				 what, value);
	if (json_object_set_new(obj, key, s) != 0)
		return cmi_error(CMICRO_ENOMEM, "out of memory encoding %s", what);
	return 0;
}

static json_t *kvs_to_json(const struct cmicro_kv *kvs, size_t n, int *rc)
{
	json_t *obj = json_object();

	*rc = obj ? 0 : cmi_error(CMICRO_ENOMEM, "out of memory encoding metadata");
	for (size_t i = 0; *rc == 0 && i < n; i++) {
		json_t *key = json_string(kvs[i].key);

		if (key == NULL) {
			*rc = cmi_error(CMICRO_EINVAL,
					"cannot encode metadata key \"%.64s\" as JSON: "
					"it is not valid UTF-8; use UTF-8 text",
					kvs[i].key);
			break;
		}
		json_decref(key);
		*rc = put_string(obj, kvs[i].key, kvs[i].value, "a metadata value");
	}
	if (*rc != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static json_t *node_to_json(const struct cmicro_node *node, int *rc)
{
	json_t *obj = json_object();
	json_t *meta;

	if (obj == NULL) {
		*rc = cmi_error(CMICRO_ENOMEM, "out of memory encoding a node");
		return NULL;
	}
	*rc = put_string(obj, "id", node->id, "a node id");
	if (*rc == 0)
		*rc = put_string(obj, "address", node->address, "a node address");
	if (*rc == 0) {
		meta = kvs_to_json(node->metadata, node->n_metadata, rc);
		if (meta != NULL && json_object_set_new(obj, "metadata", meta) != 0)
			*rc = cmi_error(CMICRO_ENOMEM, "out of memory encoding a node");
	}
	if (*rc != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static json_t *endpoints_to_json(const char *text, int *rc)
{
	json_error_t err;
	json_t *arr;

	*rc = 0;
	if (text == NULL)
		return json_array();
	arr = json_loads(text, JSON_REJECT_DUPLICATES, &err);
	if (arr == NULL || !json_is_array(arr)) {
		json_decref(arr);
		*rc = cmi_error(CMICRO_EINVAL,
				"endpoints_json is not a JSON array (%s); set it to "
				"NULL or to go-micro's endpoints array text",
				arr == NULL ? err.text : "another JSON value");
		return NULL;
	}
	return arr;
}

static int add_nodes(json_t *obj, const struct cmicro_service *svc)
{
	json_t *nodes = json_array();
	int rc = 0;

	if (nodes == NULL || json_object_set_new(obj, "nodes", nodes) != 0)
		return cmi_error(CMICRO_ENOMEM, "out of memory encoding service \"%s\"", svc->name);
	for (size_t i = 0; rc == 0 && i < svc->n_nodes; i++) {
		json_t *node = node_to_json(&svc->nodes[i], &rc);

		if (node != NULL && json_array_append_new(nodes, node) != 0)
			rc = cmi_error(CMICRO_ENOMEM, "out of memory encoding a node");
	}
	return rc;
}

static int service_to_obj(const struct cmicro_service *svc, json_t **out)
{
	json_t *obj = json_object();
	json_t *part;
	int rc;

	if (obj == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory encoding service \"%s\"", svc->name);
	rc = put_string(obj, "name", svc->name, "the service name");
	if (rc == 0)
		rc = put_string(obj, "version", svc->version, "the service version");
	if (rc == 0) {
		part = kvs_to_json(svc->metadata, svc->n_metadata, &rc);
		if (part != NULL && json_object_set_new(obj, "metadata", part) != 0)
			rc = CMICRO_ENOMEM;
	}
	if (rc == 0) {
		part = endpoints_to_json(svc->endpoints_json, &rc);
		if (part != NULL && json_object_set_new(obj, "endpoints", part) != 0)
			rc = CMICRO_ENOMEM;
	}
	if (rc == 0)
		rc = add_nodes(obj, svc);
	if (rc != 0) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return 0;
}

/* Serialises into a buffer from our allocator, so cmicro_free releases it
 * whatever allocator the application gave jansson. */
static int dump_compact(const json_t *obj, char **out)
{
	size_t size = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	char *buf;

	if (size == 0)
		return cmi_error(CMICRO_EINTERNAL, "jansson could not serialise a service");
	buf = cmi_calloc(1, size + 1);
	if (buf == NULL)
		return CMICRO_ENOMEM;
	if (json_dumpb(obj, buf, size, JSON_COMPACT) != size) {
		free(buf);
		return cmi_error(CMICRO_EINTERNAL, "jansson serialised a service inconsistently");
	}
	*out = buf;
	return 0;
}

CMICRO_API int cmicro_service_to_json(const struct cmicro_service *svc, char **json)
{
	json_t *obj = NULL;
	int rc;

	if (json == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_service_to_json: the output is NULL");
	*json = NULL;
	rc = cmi_service_check(svc, false);
	if (rc == 0)
		rc = service_to_obj(svc, &obj);
	if (rc == 0)
		rc = dump_compact(obj, json);
	json_decref(obj);
	return rc;
}

int cmi_service_node_json(const struct cmicro_service *svc, size_t i, char **json)
{
	struct cmicro_service view = cmi_service_one_node(svc, i);

	return cmicro_service_to_json(&view, json);
}

/* ---- decoding ---- */

/* Reads an optional string member: absent or null gives "". */
static int get_string(const json_t *obj, const char *key, const char *field, bool required,
		      char **out)
{
	const json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return cmi_error(CMICRO_EPROTO,
					 "invalid service JSON: field \"%s\" is "
					 "missing; %s",
					 field, JSON_FORM_HINT);
		*out = cmi_strdup("");
		return *out ? 0 : CMICRO_ENOMEM;
	}
	if (!json_is_string(v))
		return field_error(field, "a string", v);
	if (json_string_length(v) > CMI_SERVICE_STR_MAX)
		return cmi_error(CMICRO_ELIMIT,
				 "invalid service JSON: field \"%s\" is %zu bytes, "
				 "more than the maximum %d",
				 field, json_string_length(v), CMI_SERVICE_STR_MAX);
	if (required && json_string_length(v) == 0)
		return cmi_error(CMICRO_EPROTO, "invalid service JSON: field \"%s\" is empty; %s",
				 field, JSON_FORM_HINT);
	*out = cmi_strndup(json_string_value(v), json_string_length(v));
	return *out ? 0 : CMICRO_ENOMEM;
}

static int get_meta_entry(const json_t *meta, const char *key, const char *prefix,
			  struct cmicro_kv *kv)
{
	char field[CMI_SERVICE_STR_MAX + 160];
	int rc;

	cmi_fmt(field, sizeof(field), "%smetadata.%.256s", prefix, key);
	if (key[0] == '\0')
		return cmi_error(CMICRO_EPROTO,
				 "invalid service JSON: field \"%smetadata\" has an empty key",
				 prefix);
	if (strlen(key) > CMI_SERVICE_STR_MAX)
		return cmi_error(
		    CMICRO_ELIMIT,
		    "invalid service JSON: a key of \"%smetadata\" is longer than %d bytes", prefix,
		    CMI_SERVICE_STR_MAX);
	if (json_is_null(json_object_get(meta, key)))
		return field_error(field, "a string", json_object_get(meta, key));

	rc = get_string(meta, key, field, false, &kv->value);
	if (rc != 0)
		return rc;
	kv->key = cmi_strdup(key);
	return kv->key ? 0 : CMICRO_ENOMEM;
}

static int get_metadata(const json_t *obj, const char *prefix, struct cmicro_kv **kvs, size_t *n)
{
	json_t *meta = json_object_get(obj, "metadata");
	char field[64];

	cmi_fmt(field, sizeof(field), "%smetadata", prefix);
	if (meta == NULL || json_is_null(meta))
		return 0;
	if (!json_is_object(meta))
		return field_error(field, "an object of strings", meta);
	if (json_object_size(meta) > CMI_SERVICE_META_MAX)
		return cmi_error(
		    CMICRO_ELIMIT,
		    "invalid service JSON: field \"%s\" has %zu entries, more than the "
		    "maximum %d",
		    field, json_object_size(meta), CMI_SERVICE_META_MAX);

	*kvs = cmi_calloc(json_object_size(meta) + 1, sizeof(**kvs));
	if (*kvs == NULL)
		return CMICRO_ENOMEM;
	for (void *it = json_object_iter(meta); it != NULL; it = json_object_iter_next(meta, it)) {
		/* Counted even when incomplete, so cmicro_service_free
		 * releases what was read. */
		int rc = get_meta_entry(meta, json_object_iter_key(it), prefix, &(*kvs)[(*n)++]);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static int get_endpoints(const json_t *obj, char **out)
{
	const json_t *eps = json_object_get(obj, "endpoints");

	*out = NULL;
	if (eps == NULL || json_is_null(eps))
		return 0;
	if (!json_is_array(eps))
		return field_error("endpoints", "an array", eps);
	return dump_compact(eps, out);
}

static int get_node(const json_t *obj, size_t i, struct cmicro_node *node)
{
	char prefix[48];
	char field[64];
	int rc;

	cmi_fmt(prefix, sizeof(prefix), "nodes[%zu].", i);
	if (!json_is_object(obj))
		return field_error(cmi_fmt(field, sizeof(field), "nodes[%zu]", i), "an object",
				   obj);
	rc = get_string(obj, "id", cmi_fmt(field, sizeof(field), "%sid", prefix), true, &node->id);
	if (rc == 0)
		rc = get_string(obj, "address", cmi_fmt(field, sizeof(field), "%saddress", prefix),
				false, &node->address);
	if (rc == 0)
		rc = get_metadata(obj, prefix, &node->metadata, &node->n_metadata);
	return rc;
}

static int get_nodes(const json_t *obj, struct cmicro_service *svc)
{
	const json_t *nodes = json_object_get(obj, "nodes");
	size_t count;

	if (nodes == NULL || json_is_null(nodes))
		return 0;
	if (!json_is_array(nodes))
		return field_error("nodes", "an array", nodes);
	count = json_array_size(nodes);
	if (count > CMI_SERVICE_NODES_MAX)
		return cmi_error(CMICRO_ELIMIT,
				 "invalid service JSON: field \"nodes\" has %zu "
				 "entries, more than the maximum %d",
				 count, CMI_SERVICE_NODES_MAX);

	svc->nodes = cmi_calloc(count + 1, sizeof(*svc->nodes));
	if (svc->nodes == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < count; i++) {
		int rc = get_node(json_array_get(nodes, i), i, &svc->nodes[i]);

		/* Counted even when incomplete, so cmicro_service_free
		 * releases what was read. */
		svc->n_nodes++;
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int service_from_obj(const json_t *root, struct cmicro_service **out)
{
	struct cmicro_service *svc;
	int rc;

	if (!json_is_object(root))
		return field_error("(document)", "an object", root);
	svc = cmi_calloc(1, sizeof(*svc));
	if (svc == NULL)
		return CMICRO_ENOMEM;
	rc = get_string(root, "name", "name", true, &svc->name);
	if (rc == 0)
		rc = get_string(root, "version", "version", false, &svc->version);
	if (rc == 0)
		rc = get_metadata(root, "", &svc->metadata, &svc->n_metadata);
	if (rc == 0)
		rc = get_endpoints(root, &svc->endpoints_json);
	if (rc == 0)
		rc = get_nodes(root, svc);
	if (rc != 0) {
		/* A partly read service may lack a name; free tolerates that. */
		cmicro_service_free(svc);
		return rc;
	}
	*out = svc;
	return 0;
}

CMICRO_API int cmicro_service_from_json(const char *json, size_t len, struct cmicro_service **out)
{
	json_error_t err;
	json_t *root;
	int rc;

	if (out == NULL || (json == NULL && len > 0))
		return cmi_error(CMICRO_EINVAL, "cmicro_service_from_json: text and output are "
						"required");
	*out = NULL;
	if (len > CMI_SERVICE_JSON_MAX)
		return cmi_error(CMICRO_ELIMIT,
				 "invalid service JSON: the document is %zu bytes, "
				 "more than the maximum %d",
				 len, CMI_SERVICE_JSON_MAX);

	root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL)
		return cmi_error(CMICRO_EPROTO,
				 "invalid service JSON at line %d, column %d: %s; %s", err.line,
				 err.column, err.text, JSON_FORM_HINT);
	rc = service_from_obj(root, out);
	json_decref(root);
	return rc;
}
