/*
 * The registry model and its JSON: go-micro's registry.Service documents in
 * both directions, every kind of bad input, and the helpers that the
 * per-node storage shares (merge, etcd keys).
 */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"
#include "testkit.h"

/* What go-micro v5's HTTP broker stores for a subscription: Go's
 * encoding/json writes nil maps and slices as null and sorts map keys. */
static const char gomicro_broker_doc[] =
	"{\"name\":\"micro.http.broker\",\"version\":\"ff.http.broadcast\",\"metadata\":null,"
	"\"endpoints\":null,\"nodes\":[{\"id\":\"orders-5b0f6f3e-2a5c-4c47-9a51-0d3c1b2e7f10\","
	"\"address\":\"10.0.0.5:40123\",\"metadata\":{\"broker\":\"http\",\"secure\":\"true\","
	"\"topic\":\"orders\"}}]}";

/* A go-micro RPC service with endpoints, and a "port" field that older
 * go-micro nodes carried and cmicro ignores. */
static const char gomicro_rpc_doc[] =
	"{\n  \"name\": \"helloworld\",\n  \"version\": \"latest\",\n  \"metadata\": {},\n"
	"  \"endpoints\": [{\"name\": \"Helloworld.Call\", \"request\": {\"name\": "
	"\"CallRequest\", \"type\": \"CallRequest\", \"values\": [{\"name\": \"name\", "
	"\"type\": \"string\", \"values\": null}]}, \"response\": {\"name\": \"CallResponse\", "
	"\"type\": \"CallResponse\", \"values\": null}, \"metadata\": {}}],\n"
	"  \"nodes\": [{\"id\": \"helloworld-1\", \"address\": \"192.168.1.10:36215\", "
	"\"port\": 36215, \"metadata\": {\"protocol\": \"mucp\", \"registry\": \"mdns\"}}]\n}";

static struct cmicro_service *decode(const char *json)
{
	struct cmicro_service *svc = NULL;

	TK_OK(cmicro_service_from_json(json, strlen(json), &svc));
	assert_non_null(svc);
	return svc;
}

static struct cmicro_service *sample_service(void)
{
	struct cmicro_service *svc = NULL;
	struct cmicro_node *node = NULL;

	TK_OK(cmicro_service_new("greeter", "1.2.0", &svc));
	TK_OK(cmicro_service_set_meta(svc, NULL, "team", "payments"));
	svc->endpoints_json = strdup("[{\"name\":\"Greeter.Hello\",\"metadata\":{\"a\":\"b\"}}]");
	TK_OK(cmicro_service_add_node(svc, "greeter-1", "127.0.0.1:8080", &node));
	TK_OK(cmicro_service_set_meta(svc, node, "broker", "http"));
	TK_OK(cmicro_service_set_meta(svc, node, "topic", "caf\xc3\xa9 \"quoted\"\n"));
	TK_OK(cmicro_service_add_node(svc, "greeter-2", "[::1]:8081", NULL));
	return svc;
}

static void test_model_json_round_trip_keeps_fields(void **state)
{
	struct cmicro_service *svc = sample_service();
	struct cmicro_service *back = NULL;
	char *json = NULL;

	(void)state;
	TK_OK(cmicro_service_to_json(svc, &json));
	back = decode(json);
	assert_string_equal(back->name, "greeter");
	assert_string_equal(back->version, "1.2.0");
	assert_int_equal(back->n_metadata, 1);
	assert_string_equal(cmicro_kv_get(back->metadata, back->n_metadata, "team"), "payments");
	assert_string_equal(back->endpoints_json, svc->endpoints_json);
	assert_int_equal(back->n_nodes, 2);
	assert_string_equal(back->nodes[0].id, "greeter-1");
	assert_string_equal(back->nodes[0].address, "127.0.0.1:8080");
	assert_int_equal(back->nodes[0].n_metadata, 2);
	assert_string_equal(cmicro_kv_get(back->nodes[0].metadata, 2, "topic"),
			    "caf\xc3\xa9 \"quoted\"\n");
	assert_string_equal(back->nodes[1].address, "[::1]:8081");
	assert_int_equal(back->nodes[1].n_metadata, 0);
	cmicro_free(json);
	cmicro_service_free(back);
	cmicro_service_free(svc);
}

/* The exact text go-micro expects, written out by hand. */
static void test_model_json_encoding_matches_gomicro(void **state)
{
	struct cmicro_service *svc = NULL;
	struct cmicro_node *node = NULL;
	char *json = NULL;

	(void)state;
	TK_OK(cmicro_service_new("micro.http.broker", "ff.http.broadcast", &svc));
	TK_OK(cmicro_service_add_node(svc, "orders-1", "127.0.0.1:8080", &node));
	TK_OK(cmicro_service_set_meta(svc, node, "broker", "http"));
	TK_OK(cmicro_service_set_meta(svc, node, "topic", "orders"));
	TK_OK(cmicro_service_to_json(svc, &json));
	assert_string_equal(json,
			    "{\"name\":\"micro.http.broker\",\"version\":\"ff.http.broadcast\","
			    "\"metadata\":{},\"endpoints\":[],\"nodes\":[{\"id\":\"orders-1\","
			    "\"address\":\"127.0.0.1:8080\",\"metadata\":{\"broker\":\"http\","
			    "\"topic\":\"orders\"}}]}");
	cmicro_free(json);
	cmicro_service_free(svc);
}

static void test_model_gomicro_broker_doc_decoded(void **state)
{
	struct cmicro_service *svc = decode(gomicro_broker_doc);
	const struct cmicro_node *node;

	(void)state;
	assert_string_equal(svc->name, "micro.http.broker");
	assert_string_equal(svc->version, "ff.http.broadcast");
	assert_int_equal(svc->n_metadata, 0);
	assert_null(svc->endpoints_json);
	assert_int_equal(svc->n_nodes, 1);
	node = &svc->nodes[0];
	assert_string_equal(node->id, "orders-5b0f6f3e-2a5c-4c47-9a51-0d3c1b2e7f10");
	assert_string_equal(node->address, "10.0.0.5:40123");
	assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "broker"), "http");
	assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "secure"), "true");
	assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "topic"), "orders");
	assert_null(cmicro_kv_get(node->metadata, node->n_metadata, "absent"));
	cmicro_service_free(svc);
}

static void test_model_gomicro_rpc_doc_decoded(void **state)
{
	struct cmicro_service *svc = decode(gomicro_rpc_doc);

	(void)state;
	assert_string_equal(svc->name, "helloworld");
	assert_string_equal(svc->version, "latest");
	assert_non_null(svc->endpoints_json);
	TK_CONTAINS(svc->endpoints_json, "\"name\":\"Helloworld.Call\"");
	TK_CONTAINS(svc->endpoints_json, "\"values\":null");
	assert_int_equal(svc->n_nodes, 1);
	assert_string_equal(svc->nodes[0].address, "192.168.1.10:36215");
	assert_string_equal(
	    cmicro_kv_get(svc->nodes[0].metadata, svc->nodes[0].n_metadata, "protocol"), "mucp");
	cmicro_service_free(svc);
}

/* Members left out or null decode as empty, and version defaults to "". */
static void test_model_absent_members_empty(void **state)
{
	struct cmicro_service *svc = decode("{\"name\":\"bare\",\"nodes\":null,\"future\":[1,2]}");

	(void)state;
	assert_string_equal(svc->version, "");
	assert_int_equal(svc->n_metadata, 0);
	assert_int_equal(svc->n_nodes, 0);
	assert_null(svc->endpoints_json);
	cmicro_service_free(svc);
}

struct bad_case {
	const char *label;
	const char *json;
	int code;
	const char *needle;
};

static const struct bad_case bad_cases[] = {
	{"empty input", "", CMICRO_EPROTO, "invalid service JSON at line"},
	{"not JSON", "name=orders", CMICRO_EPROTO, "invalid service JSON at line 1"},
	{"truncated", "{\"name\":\"a\"", CMICRO_EPROTO, "invalid service JSON"},
	{"trailing text", "{\"name\":\"a\"} extra", CMICRO_EPROTO, "invalid service JSON"},
	{"array document", "[{\"name\":\"a\"}]", CMICRO_EPROTO, "\"(document)\" must be an object"},
	{"missing name", "{\"version\":\"1\"}", CMICRO_EPROTO, "field \"name\" is missing"},
	{"null name", "{\"name\":null}", CMICRO_EPROTO, "field \"name\" is missing"},
	{"empty name", "{\"name\":\"\"}", CMICRO_EPROTO, "field \"name\" is empty"},
	{"numeric name", "{\"name\":42}", CMICRO_EPROTO,
	 "field \"name\" must be a string, not a number"},
	{"boolean version", "{\"name\":\"a\",\"version\":true}", CMICRO_EPROTO,
	 "field \"version\" must be a string, not a boolean"},
	{"metadata array", "{\"name\":\"a\",\"metadata\":[]}", CMICRO_EPROTO,
	 "field \"metadata\" must be an object of strings, not an array"},
	{"numeric metadata", "{\"name\":\"a\",\"metadata\":{\"port\":8080}}", CMICRO_EPROTO,
	 "field \"metadata.port\" must be a string, not a number"},
	{"null metadata value",
	 "{\"name\":\"a\",\"nodes\":[{\"id\":\"n\",\"metadata\":{\"k\":null}}]}", CMICRO_EPROTO,
	 "field \"nodes[0].metadata.k\" must be a string, not null"},
	{"empty metadata key", "{\"name\":\"a\",\"metadata\":{\"\":\"v\"}}", CMICRO_EPROTO,
	 "has an empty key"},
	{"endpoints object", "{\"name\":\"a\",\"endpoints\":{}}", CMICRO_EPROTO,
	 "field \"endpoints\" must be an array, not an object"},
	{"nodes object", "{\"name\":\"a\",\"nodes\":{\"id\":\"n\"}}", CMICRO_EPROTO,
	 "field \"nodes\" must be an array, not an object"},
	{"node string", "{\"name\":\"a\",\"nodes\":[\"n1\"]}", CMICRO_EPROTO,
	 "field \"nodes[0]\" must be an object, not a string"},
	{"node without id", "{\"name\":\"a\",\"nodes\":[{\"id\":\"n\"},{\"address\":\"h:1\"}]}",
	 CMICRO_EPROTO, "field \"nodes[1].id\" is missing"},
	{"numeric address", "{\"name\":\"a\",\"nodes\":[{\"id\":\"n\",\"address\":8080}]}",
	 CMICRO_EPROTO, "field \"nodes[0].address\" must be a string, not a number"},
	{"invalid UTF-8", "{\"name\":\"a\xff\"}", CMICRO_EPROTO, "invalid service JSON"},
	{"NUL escape", "{\"name\":\"a\\u0000b\"}", CMICRO_EPROTO, "invalid service JSON"},
	{"duplicate key", "{\"name\":\"a\",\"name\":\"b\"}", CMICRO_EPROTO, "duplicate object key"},
};

static void test_model_bad_json_rejected_with_field(void **state)
{
	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct cmicro_service *svc = (struct cmicro_service *)&bad_cases;
		int rc = cmicro_service_from_json(c->json, strlen(c->json), &svc);

		if (rc != c->code)
			fail_msg("%s: got %s (%s), expected %s", c->label, cmicro_err_name(rc),
				 cmicro_last_errmsg(), cmicro_err_name(c->code));
		if (strstr(cmicro_last_errmsg(), c->needle) == NULL)
			fail_msg("%s: message \"%s\" lacks \"%s\"", c->label, cmicro_last_errmsg(),
				 c->needle);
		if (svc != NULL)
			fail_msg("%s: output not reset to NULL", c->label);
	}
}

/* Builds {"name":"a","metadata":{...}} with count entries. */
static char *doc_with_metadata(size_t count)
{
	size_t cap = 64 + count * 32;
	char *doc = malloc(cap);

	assert_non_null(doc);
	strcpy(doc, "{\"name\":\"a\",\"metadata\":{");
	for (size_t i = 0; i < count; i++)
		cmi_append(doc, cap, "%s\"k%zu\":\"v\"", i ? "," : "", i);
	cmi_append(doc, cap, "}}");
	return doc;
}

static void test_model_size_limits_enforced(void **state)
{
	struct cmicro_service *svc = NULL;
	size_t huge = CMI_SERVICE_JSON_MAX + 1;
	char *doc = malloc(huge + 1);

	(void)state;
	assert_non_null(doc);
	memset(doc, ' ', huge);
	doc[huge] = '\0';
	TK_FAIL(cmicro_service_from_json(doc, huge, &svc), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "more than the maximum 1048576");

	/* A long string inside a document under the size limit. */
	memcpy(doc, "{\"name\":\"", 9);
	memset(doc + 9, 'x', CMI_SERVICE_STR_MAX + 1);
	memcpy(doc + 9 + CMI_SERVICE_STR_MAX + 1, "\"}", 3);
	TK_FAIL(cmicro_service_from_json(doc, strlen(doc), &svc), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "field \"name\" is 4097 bytes");
	free(doc);

	doc = doc_with_metadata(CMI_SERVICE_META_MAX + 1);
	TK_FAIL(cmicro_service_from_json(doc, strlen(doc), &svc), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "has 257 entries");
	free(doc);

	doc = doc_with_metadata(CMI_SERVICE_META_MAX);
	TK_OK(cmicro_service_from_json(doc, strlen(doc), &svc));
	assert_int_equal(svc->n_metadata, CMI_SERVICE_META_MAX);
	cmicro_service_free(svc);
	free(doc);
}

static void test_model_too_many_nodes_rejected(void **state)
{
	size_t cap = 64 + (CMI_SERVICE_NODES_MAX + 1) * 16;
	struct cmicro_service *svc = NULL;
	char *doc = malloc(cap);

	(void)state;
	assert_non_null(doc);
	strcpy(doc, "{\"name\":\"a\",\"nodes\":[");
	for (size_t i = 0; i <= CMI_SERVICE_NODES_MAX; i++)
		cmi_append(doc, cap, "%s{\"id\":\"%zu\"}", i ? "," : "", i);
	cmi_append(doc, cap, "]}");
	TK_FAIL(cmicro_service_from_json(doc, strlen(doc), &svc), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "field \"nodes\" has 4097 entries");
	free(doc);
}

/* Deeply nested endpoints stop at jansson's depth limit instead of
 * exhausting the stack. */
static void test_model_deep_nesting_rejected(void **state)
{
	size_t depth = 100000;
	size_t len = 32 + 2 * depth;
	char *doc = malloc(len);
	struct cmicro_service *svc = NULL;
	size_t pos;

	(void)state;
	assert_non_null(doc);
	pos = (size_t)snprintf(doc, len, "{\"name\":\"a\",\"endpoints\":");
	memset(doc + pos, '[', depth);
	memset(doc + pos + depth, ']', depth);
	memcpy(doc + pos + 2 * depth, "}", 2);
	TK_FAIL(cmicro_service_from_json(doc, strlen(doc), &svc), CMICRO_EPROTO);
	TK_CONTAINS(cmicro_last_errmsg(), "invalid service JSON");
	free(doc);
}

static void test_model_encode_rejects_bad_strings(void **state)
{
	struct cmicro_service *svc = sample_service();
	char *json = NULL;

	(void)state;
	TK_OK(cmicro_service_set_meta(svc, NULL, "bad", "\xc3\x28"));
	TK_FAIL(cmicro_service_to_json(svc, &json), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "not valid UTF-8");
	assert_null(json);
	cmicro_service_free(svc);

	svc = sample_service();
	free(svc->endpoints_json);
	svc->endpoints_json = strdup("{\"not\":\"an array\"}");
	TK_FAIL(cmicro_service_to_json(svc, &json), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "endpoints_json is not a JSON array");
	cmicro_service_free(svc);
}

static void test_model_set_meta_replaces_value(void **state)
{
	struct cmicro_service *svc = sample_service();
	struct cmicro_node *node = &svc->nodes[0];

	(void)state;
	TK_OK(cmicro_service_set_meta(svc, node, "broker", "grpc"));
	assert_int_equal(node->n_metadata, 2);
	assert_string_equal(cmicro_kv_get(node->metadata, node->n_metadata, "broker"), "grpc");
	TK_OK(cmicro_service_set_meta(svc, NULL, "team", "search"));
	assert_int_equal(svc->n_metadata, 1);
	assert_string_equal(cmicro_kv_get(svc->metadata, svc->n_metadata, "team"), "search");
	cmicro_service_free(svc);
}

static void test_model_bad_arguments_rejected(void **state)
{
	struct cmicro_service *svc = sample_service();
	struct cmicro_service *other = sample_service();
	struct cmicro_service *out = NULL;

	(void)state;
	TK_FAIL(cmicro_service_new("", "1", &out), CMICRO_EINVAL);
	TK_FAIL(cmicro_service_new(NULL, "1", &out), CMICRO_EINVAL);
	TK_FAIL(cmicro_service_add_node(svc, "", "127.0.0.1:1", NULL), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "node id is missing");
	TK_FAIL(cmicro_service_set_meta(svc, &other->nodes[0], "k", "v"), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "not one of service \"greeter\"");
	TK_FAIL(cmicro_service_set_meta(svc, NULL, "", "v"), CMICRO_EINVAL);
	TK_FAIL(cmicro_service_from_json("{}", 2, NULL), CMICRO_EINVAL);
	assert_null(cmicro_kv_get(NULL, 0, "k"));
	cmicro_service_free(NULL);
	cmicro_service_list_free(NULL, 3);
	cmicro_service_free(svc);
	cmicro_service_free(other);
}

static void test_model_dup_is_independent(void **state)
{
	struct cmicro_service *svc = sample_service();
	struct cmicro_service *copy = NULL;
	char *a = NULL, *b = NULL;

	(void)state;
	TK_OK(cmicro_service_dup(svc, &copy));
	TK_OK(cmicro_service_to_json(svc, &a));
	TK_OK(cmicro_service_to_json(copy, &b));
	assert_string_equal(a, b);
	assert_ptr_not_equal(copy->nodes[0].id, svc->nodes[0].id);
	cmicro_service_free(svc);
	assert_string_equal(copy->nodes[0].metadata[0].value, "http");
	cmicro_free(a);
	cmicro_free(b);
	cmicro_service_free(copy);
}

/* go-micro's etcd registry: /micro/registry/<service>/<node>, with "/"
 * inside either part turned into "-". */
static void test_model_etcd_key_replaces_slashes(void **state)
{
	char *key = cmi_registry_node_key("go.micro/srv", "node/1/a");

	(void)state;
	assert_string_equal(key, "/micro/registry/go.micro-srv/node-1-a");
	free(key);
	key = cmi_registry_node_key("micro.http.broker", "orders-42");
	assert_string_equal(key, "/micro/registry/micro.http.broker/orders-42");
	free(key);
}

/* Per-node documents merge into one service per version; the first
 * document's service metadata is kept, and a node id seen twice keeps the
 * later node. */
static void test_model_merge_groups_by_version(void **state)
{
	struct cmi_service_list list = {0};
	struct cmicro_service **out = NULL;
	size_t n = 0;
	const char *docs[] = {
	    "{\"name\":\"s\",\"version\":\"2\",\"metadata\":{\"m\":\"first\"},"
	    "\"nodes\":[{\"id\":\"b\",\"address\":\"h:2\"}]}",
	    "{\"name\":\"s\",\"version\":\"1\",\"nodes\":[{\"id\":\"z\",\"address\":\"h:9\"}]}",
	    "{\"name\":\"s\",\"version\":\"2\",\"metadata\":{\"m\":\"second\"},"
	    "\"nodes\":[{\"id\":\"a\",\"address\":\"h:1\"}]}",
	    "{\"name\":\"s\",\"version\":\"2\",\"nodes\":[{\"id\":\"b\",\"address\":\"h:3\"}]}",
	};

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(docs); i++) {
		struct cmicro_service *doc = decode(docs[i]);

		TK_OK(cmi_service_list_merge(&list, doc));
		cmicro_service_free(doc);
	}
	cmi_service_list_sort(&list);
	TK_OK(cmi_service_list_take(&list, &out, &n));
	assert_int_equal(n, 2);
	assert_string_equal(out[0]->version, "1");
	assert_string_equal(out[1]->version, "2");
	assert_string_equal(cmicro_kv_get(out[1]->metadata, out[1]->n_metadata, "m"), "first");
	assert_int_equal(out[1]->n_nodes, 2);
	assert_string_equal(out[1]->nodes[0].id, "a");
	assert_string_equal(out[1]->nodes[1].id, "b");
	assert_string_equal(out[1]->nodes[1].address, "h:3");
	assert_int_equal(list.n, 0);
	cmicro_service_list_free(out, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_json_round_trip_keeps_fields),
		cmocka_unit_test(test_model_json_encoding_matches_gomicro),
		cmocka_unit_test(test_model_gomicro_broker_doc_decoded),
		cmocka_unit_test(test_model_gomicro_rpc_doc_decoded),
		cmocka_unit_test(test_model_absent_members_empty),
		cmocka_unit_test(test_model_bad_json_rejected_with_field),
		cmocka_unit_test(test_model_size_limits_enforced),
		cmocka_unit_test(test_model_too_many_nodes_rejected),
		cmocka_unit_test(test_model_deep_nesting_rejected),
		cmocka_unit_test(test_model_encode_rejects_bad_strings),
		cmocka_unit_test(test_model_set_meta_replaces_value),
		cmocka_unit_test(test_model_bad_arguments_rejected),
		cmocka_unit_test(test_model_dup_is_independent),
		cmocka_unit_test(test_model_etcd_key_replaces_slashes),
		cmocka_unit_test(test_model_merge_groups_by_version),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
