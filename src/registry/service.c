/* The registry model: services, nodes and metadata as plain owned data. */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"

static void kvs_free(struct cmicro_kv *kvs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kvs[i].key);
		free(kvs[i].value);
	}
	free(kvs);
}

void cmi_node_clear(struct cmicro_node *node)
{
	free(node->id);
	free(node->address);
	kvs_free(node->metadata, node->n_metadata);
	memset(node, 0, sizeof(*node));
}

CMICRO_API void cmicro_service_free(struct cmicro_service *svc)
{
	if (svc == NULL)
		return;
	free(svc->name);
	free(svc->version);
	kvs_free(svc->metadata, svc->n_metadata);
	free(svc->endpoints_json);
	for (size_t i = 0; i < svc->n_nodes; i++)
		cmi_node_clear(&svc->nodes[i]);
	free(svc->nodes);
	free(svc);
}

CMICRO_API void cmicro_service_list_free(struct cmicro_service **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		cmicro_service_free(list[i]);
	free(list);
}

CMICRO_API int cmicro_service_new(const char *name, const char *version,
				  struct cmicro_service **out)
{
	struct cmicro_service *svc;

	if (out == NULL || name == NULL || name[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "cmicro_service_new: the service name is missing; "
						"pass a name such as \"micro.http.broker\"");
	*out = NULL;
	svc = cmi_calloc(1, sizeof(*svc));
	if (svc == NULL)
		return CMICRO_ENOMEM;
	svc->name = cmi_strdup(name);
	svc->version = cmi_strdup(version ? version : "");
	if (svc->name == NULL || svc->version == NULL) {
		cmicro_service_free(svc);
		return CMICRO_ENOMEM;
	}
	*out = svc;
	return 0;
}

CMICRO_API const char *cmicro_kv_get(const struct cmicro_kv *kvs, size_t n, const char *key)
{
	if (kvs == NULL || key == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(kvs[i].key, key) == 0)
			return kvs[i].value;
	}
	return NULL;
}

/* Replaces the value of key, or appends the entry. */
static int kvs_set(struct cmicro_kv **kvs, size_t *n, const char *key, const char *value)
{
	char *copy = cmi_strdup(value);
	struct cmicro_kv *grown;

	if (copy == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*kvs)[i].key, key) == 0) {
			free((*kvs)[i].value);
			(*kvs)[i].value = copy;
			return 0;
		}
	}

	grown = realloc(*kvs, (*n + 1) * sizeof(**kvs));
	if (grown == NULL) {
		free(copy);
		return cmi_error(CMICRO_ENOMEM, "out of memory adding metadata \"%s\"", key);
	}
	*kvs = grown;
	grown[*n].key = cmi_strdup(key);
	grown[*n].value = copy;
	if (grown[*n].key == NULL) {
		free(copy);
		return CMICRO_ENOMEM;
	}
	(*n)++;
	return 0;
}

static int kvs_copy(struct cmicro_kv **dst, size_t *n_dst, const struct cmicro_kv *src, size_t n)
{
	*dst = NULL;
	*n_dst = 0;
	for (size_t i = 0; i < n; i++) {
		int rc = kvs_set(dst, n_dst, src[i].key, src[i].value);

		if (rc != 0)
			return rc;
	}
	return 0;
}

CMICRO_API int cmicro_service_set_meta(struct cmicro_service *svc, struct cmicro_node *node,
				       const char *key, const char *value)
{
	if (svc == NULL || key == NULL || key[0] == '\0' || value == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_service_set_meta: service, key and value "
						"are required and the key must not be empty");
	if (node == NULL)
		return kvs_set(&svc->metadata, &svc->n_metadata, key, value);
	if (node < svc->nodes || node >= svc->nodes + svc->n_nodes)
		return cmi_error(CMICRO_EINVAL,
				 "cmicro_service_set_meta: the node is not one of "
				 "service \"%s\"; pass a pointer from "
				 "cmicro_service_add_node on the same service",
				 svc->name);
	return kvs_set(&node->metadata, &node->n_metadata, key, value);
}

/* Grows the node array by one zeroed node and returns it. */
static struct cmicro_node *nodes_grow(struct cmicro_service *svc)
{
	struct cmicro_node *grown = realloc(svc->nodes, (svc->n_nodes + 1) * sizeof(*grown));

	if (grown == NULL) {
		cmi_error(CMICRO_ENOMEM, "out of memory adding a node to service \"%s\"",
			  svc->name);
		return NULL;
	}
	svc->nodes = grown;
	memset(&grown[svc->n_nodes], 0, sizeof(*grown));
	return &grown[svc->n_nodes];
}

CMICRO_API int cmicro_service_add_node(struct cmicro_service *svc, const char *id,
				       const char *address, struct cmicro_node **node)
{
	struct cmicro_node *added;

	if (node != NULL)
		*node = NULL;
	if (svc == NULL || id == NULL || id[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "cmicro_service_add_node: the node id is missing; "
						"give each node a unique id such as "
						"\"<topic>-<uuid>\"");
	added = nodes_grow(svc);
	if (added == NULL)
		return CMICRO_ENOMEM;
	added->id = cmi_strdup(id);
	added->address = cmi_strdup(address ? address : "");
	if (added->id == NULL || added->address == NULL) {
		cmi_node_clear(added);
		return CMICRO_ENOMEM;
	}
	svc->n_nodes++;
	if (node != NULL)
		*node = added;
	return 0;
}

int cmi_node_copy(struct cmicro_node *dst, const struct cmicro_node *src)
{
	int rc;

	memset(dst, 0, sizeof(*dst));
	dst->id = cmi_strdup(src->id);
	dst->address = cmi_strdup(src->address ? src->address : "");
	if (dst->id == NULL || dst->address == NULL) {
		cmi_node_clear(dst);
		return CMICRO_ENOMEM;
	}

	rc = kvs_copy(&dst->metadata, &dst->n_metadata, src->metadata, src->n_metadata);
	if (rc != 0)
		cmi_node_clear(dst);
	return rc;
}

int cmi_service_append_node(struct cmicro_service *svc, const struct cmicro_node *node)
{
	struct cmicro_node *added = nodes_grow(svc);
	int rc;

	if (added == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_node_copy(added, node);
	if (rc != 0)
		return rc;
	svc->n_nodes++;
	return 0;
}

/* Copies everything but the nodes. */
static int service_copy_head(const struct cmicro_service *svc, struct cmicro_service **out)
{
	struct cmicro_service *copy;
	int rc = cmicro_service_new(svc->name, svc->version, &copy);

	if (rc != 0)
		return rc;
	rc = kvs_copy(&copy->metadata, &copy->n_metadata, svc->metadata, svc->n_metadata);
	if (rc == 0 && svc->endpoints_json != NULL) {
		copy->endpoints_json = cmi_strdup(svc->endpoints_json);
		if (copy->endpoints_json == NULL)
			rc = CMICRO_ENOMEM;
	}
	if (rc != 0) {
		cmicro_service_free(copy);
		return rc;
	}
	*out = copy;
	return 0;
}

CMICRO_API int cmicro_service_dup(const struct cmicro_service *svc, struct cmicro_service **out)
{
	struct cmicro_service *copy = NULL;
	int rc;

	if (svc == NULL || out == NULL || svc->name == NULL)
		return cmi_error(CMICRO_EINVAL,
				 "cmicro_service_dup: service and output are required");
	*out = NULL;
	rc = service_copy_head(svc, &copy);
	for (size_t i = 0; rc == 0 && i < svc->n_nodes; i++)
		rc = cmi_service_append_node(copy, &svc->nodes[i]);
	if (rc != 0) {
		cmicro_service_free(copy);
		return rc;
	}
	*out = copy;
	return 0;
}

struct cmicro_service cmi_service_one_node(const struct cmicro_service *svc, size_t i)
{
	struct cmicro_service view = *svc;

	view.nodes = &svc->nodes[i];
	view.n_nodes = 1;
	return view;
}

char *cmi_registry_node_key(const char *service, const char *node_id)
{
	size_t len = strlen(CMI_REGISTRY_KEY_PREFIX) + strlen(service) + 1 + strlen(node_id) + 1;
	char *key = cmi_calloc(1, len);
	char *p;

	if (key == NULL)
		return NULL;
	cmi_fmt(key, len, "%s%s/", CMI_REGISTRY_KEY_PREFIX, service);
	for (p = key + strlen(CMI_REGISTRY_KEY_PREFIX); p[1] != '\0'; p++) {
		if (*p == '/')
			*p = '-';
	}
	p++;
	cmi_append(key, len, "%s", node_id);
	for (; *p != '\0'; p++) {
		if (*p == '/')
			*p = '-';
	}
	return key;
}
