/*
 * Checks services before storage, and merges per-node documents into one
 * service per name and version, the shape go-micro's GetService returns.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "registry/registry_int.h"

static int check_str(const char *value, const char *svc_name, const char *field)
{
	json_t *utf8;

	if (value == NULL)
		return 0;
	if (strlen(value) > CMI_SERVICE_STR_MAX)
		return cmi_error(CMICRO_ELIMIT,
				 "service \"%.64s\": %s is longer than %d bytes; "
				 "shorten it",
				 svc_name, field, CMI_SERVICE_STR_MAX);

	/* Every string ends up in JSON, which must be UTF-8; jansson checks. */
	utf8 = json_string(value);
	if (utf8 == NULL)
		return cmi_error(CMICRO_EINVAL,
				 "service \"%.64s\": %s is not valid UTF-8; use "
				 "UTF-8 text",
				 svc_name, field);
	json_decref(utf8);
	return 0;
}

static int check_kvs(const struct cmicro_kv *kvs, size_t n, const char *svc_name, const char *where)
{
	char field[128];

	if (n > CMI_SERVICE_META_MAX)
		return cmi_error(CMICRO_ELIMIT,
				 "service \"%.64s\": %s has %zu metadata entries, "
				 "more than the maximum %d; keep fewer",
				 svc_name, where, n, CMI_SERVICE_META_MAX);
	for (size_t i = 0; i < n; i++) {
		int rc;

		if (kvs[i].key == NULL || kvs[i].key[0] == '\0' || kvs[i].value == NULL)
			return cmi_error(CMICRO_EINVAL,
					 "service \"%.64s\": %s has a metadata "
					 "entry without key or value",
					 svc_name, where);
		rc = check_str(kvs[i].key, svc_name,
			       cmi_fmt(field, sizeof(field), "a %s key", where));
		if (rc == 0)
			rc = check_str(
			    kvs[i].value, svc_name,
			    cmi_fmt(field, sizeof(field), "%s value \"%.32s\"", where, kvs[i].key));
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int check_node(const struct cmicro_service *svc, size_t i, bool unique)
{
	const struct cmicro_node *node = &svc->nodes[i];
	char where[96];
	int rc;

	if (node->id == NULL || node->id[0] == '\0')
		return cmi_error(CMICRO_EINVAL,
				 "service \"%.64s\": node %zu has no id; give every "
				 "node a unique id",
				 svc->name, i);
	for (size_t j = 0; unique && j < i; j++) {
		if (strcmp(svc->nodes[j].id, node->id) == 0)
			return cmi_error(CMICRO_EINVAL,
					 "service \"%.64s\": node id \"%.64s\" "
					 "appears twice; node ids must be unique",
					 svc->name, node->id);
	}
	rc = check_str(node->id, svc->name, "a node id");
	if (rc == 0)
		rc = check_str(node->address, svc->name, "a node address");
	if (rc == 0)
		rc = check_kvs(node->metadata, node->n_metadata, svc->name,
			       cmi_fmt(where, sizeof(where), "node \"%.64s\"", node->id));
	return rc;
}

int cmi_service_check(const struct cmicro_service *svc, bool for_register)
{
	int rc;

	if (svc == NULL || svc->name == NULL || svc->name[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "the service has no name; create it with "
						"cmicro_service_new(\"name\", ...)");
	rc = check_str(svc->name, svc->name, "the name");
	if (rc == 0)
		rc = check_str(svc->version, svc->name, "the version");
	if (rc == 0)
		rc = check_kvs(svc->metadata, svc->n_metadata, svc->name, "the service");
	if (rc != 0)
		return rc;

	if (for_register && svc->n_nodes == 0)
		return cmi_error(CMICRO_EINVAL,
				 "service \"%.64s\" has no nodes; add one with "
				 "cmicro_service_add_node before registering",
				 svc->name);
	if (svc->n_nodes > CMI_SERVICE_NODES_MAX)
		return cmi_error(CMICRO_ELIMIT,
				 "service \"%.64s\" has %zu nodes, more than the "
				 "maximum %d per call; register them in batches",
				 svc->name, svc->n_nodes, CMI_SERVICE_NODES_MAX);
	for (size_t i = 0; i < svc->n_nodes; i++) {
		rc = check_node(svc, i, for_register);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static struct cmicro_service *list_find(const struct cmi_service_list *list, const char *name,
					const char *version)
{
	for (size_t i = 0; i < list->n; i++) {
		if (strcmp(list->items[i]->name, name) == 0 &&
		    strcmp(list->items[i]->version, version) == 0)
			return list->items[i];
	}
	return NULL;
}

static int list_append(struct cmi_service_list *list, struct cmicro_service *svc)
{
	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 8;
		struct cmicro_service **grown = realloc(list->items, cap * sizeof(*grown));

		if (grown == NULL)
			return cmi_error(CMICRO_ENOMEM, "out of memory listing %zu services",
					 list->n + 1);
		list->items = grown;
		list->cap = cap;
	}
	list->items[list->n++] = svc;
	return 0;
}

/* Replaces the node of the same id in svc, or appends a copy. */
static int merge_node(struct cmicro_service *svc, const struct cmicro_node *node)
{
	for (size_t i = 0; i < svc->n_nodes; i++) {
		struct cmicro_node copy;
		int rc;

		if (strcmp(svc->nodes[i].id, node->id) != 0)
			continue;
		rc = cmi_node_copy(&copy, node);
		if (rc != 0)
			return rc;
		cmi_node_clear(&svc->nodes[i]);
		svc->nodes[i] = copy;
		return 0;
	}
	return cmi_service_append_node(svc, node);
}

int cmi_service_list_merge(struct cmi_service_list *list, const struct cmicro_service *doc)
{
	struct cmicro_service *entry = list_find(list, doc->name, doc->version);
	int rc;

	if (entry == NULL) {
		rc = cmicro_service_dup(doc, &entry);
		if (rc != 0)
			return rc;
		rc = list_append(list, entry);
		if (rc != 0)
			cmicro_service_free(entry);
		return rc;
	}

	for (size_t i = 0; i < doc->n_nodes; i++) {
		rc = merge_node(entry, &doc->nodes[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int compare_services(const void *a, const void *b)
{
	const struct cmicro_service *x = *(struct cmicro_service *const *)a;
	const struct cmicro_service *y = *(struct cmicro_service *const *)b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->version, y->version);
}

static int compare_nodes(const void *a, const void *b)
{
	return strcmp(((const struct cmicro_node *)a)->id, ((const struct cmicro_node *)b)->id);
}

void cmi_service_list_sort(struct cmi_service_list *list)
{
	if (list->n > 1)
		qsort(list->items, list->n, sizeof(*list->items), compare_services);
	for (size_t i = 0; i < list->n; i++) {
		struct cmicro_service *svc = list->items[i];

		if (svc->n_nodes > 1)
			qsort(svc->nodes, svc->n_nodes, sizeof(*svc->nodes), compare_nodes);
	}
}

int cmi_service_list_take(struct cmi_service_list *list, struct cmicro_service ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (list->n == 0) {
		cmi_service_list_clear(list);
		return 0;
	}
	*out = list->items;
	*n = list->n;
	memset(list, 0, sizeof(*list));
	return 0;
}

void cmi_service_list_clear(struct cmi_service_list *list)
{
	cmicro_service_list_free(list->items, list->n);
	memset(list, 0, sizeof(*list));
}
