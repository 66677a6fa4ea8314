/* The registry object: reference counting, argument checks shared by every
 * implementation, and the choice of implementation from the environment. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "registry/registry_int.h"

int cmi_registry_new(const struct cmi_registry_ops *ops, void *impl, const char *address,
		     struct cmicro_registry **out)
{
	struct cmicro_registry *reg = cmi_calloc(1, sizeof(*reg));

	if (reg != NULL)
		reg->address = cmi_strdup(address ? address : "");
	if (reg == NULL || reg->address == NULL) {
		free(reg);
		ops->destroy(&(struct cmicro_registry){.ops = ops, .impl = impl});
		return CMICRO_ENOMEM;
	}
	reg->ops = ops;
	reg->impl = impl;
	atomic_init(&reg->refs, 1);
	*out = reg;
	return 0;
}

CMICRO_API struct cmicro_registry *cmicro_registry_hold(struct cmicro_registry *reg)
{
	if (reg != NULL)
		atomic_fetch_add(&reg->refs, 1);
	return reg;
}

CMICRO_API void cmicro_registry_free(struct cmicro_registry *reg)
{
	if (reg == NULL || atomic_fetch_sub(&reg->refs, 1) != 1)
		return;
	reg->ops->destroy(reg);
	free(reg->address);
	free(reg);
}

CMICRO_API const char *cmicro_registry_name(const struct cmicro_registry *reg)
{
	return reg ? reg->ops->name : "";
}

CMICRO_API const char *cmicro_registry_address(const struct cmicro_registry *reg)
{
	return reg ? reg->address : "";
}

CMICRO_API int cmicro_registry_register(struct cmicro_registry *reg,
					const struct cmicro_service *svc, int ttl_seconds)
{
	int rc;

	if (reg == NULL || svc == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_register: registry and service "
						"are required");
	if (ttl_seconds < 0)
		return cmi_error(CMICRO_EINVAL,
				 "cmicro_registry_register: ttl_seconds is %d; "
				 "use a positive number of seconds, or 0 for no expiry",
				 ttl_seconds);
	rc = cmi_service_check(svc, true);
	if (rc != 0)
		return rc;
	return reg->ops->register_service(reg, svc, ttl_seconds);
}

CMICRO_API int cmicro_registry_deregister(struct cmicro_registry *reg,
					  const struct cmicro_service *svc)
{
	int rc;

	if (reg == NULL || svc == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_deregister: registry and service "
						"are required");
	rc = cmi_service_check(svc, false);
	if (rc != 0)
		return rc;
	return reg->ops->deregister(reg, svc);
}

static int finish_list(int rc, struct cmi_service_list *list, struct cmicro_service ***out,
		       size_t *n)
{
	if (rc != 0) {
		cmi_service_list_clear(list);
		return rc;
	}
	cmi_service_list_sort(list);
	return cmi_service_list_take(list, out, n);
}

CMICRO_API int cmicro_registry_get_service(struct cmicro_registry *reg, const char *name,
					   struct cmicro_service ***out, size_t *n)
{
	struct cmi_service_list list = {0};

	if (out != NULL)
		*out = NULL;
	if (n != NULL)
		*n = 0;
	if (reg == NULL || out == NULL || n == NULL || name == NULL || name[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_get_service: registry, a service "
						"name and both outputs are required");
	return finish_list(reg->ops->get_service(reg, name, &list), &list, out, n);
}

CMICRO_API int cmicro_registry_list_services(struct cmicro_registry *reg,
					     struct cmicro_service ***out, size_t *n)
{
	struct cmi_service_list list = {0};

	if (out != NULL)
		*out = NULL;
	if (n != NULL)
		*n = 0;
	if (reg == NULL || out == NULL || n == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_list_services: registry and both "
						"outputs are required");
	return finish_list(reg->ops->list_services(reg, &list), &list, out, n);
}

/* Registries that MICRO_REGISTRY may name, for the error on unknown names. */
#define KNOWN_REGISTRIES                                                                           \
	"sqlite (the default: processes of one machine), etcd (a fleet; MICRO_REGISTRY_ADDRESS "   \
	"lists its endpoints) or memory (one process)"

CMICRO_API int cmicro_registry_from_env(struct cmicro_registry **out)
{
	const char *name = cmi_getenv("MICRO_REGISTRY");

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_from_env: the output is NULL");
	*out = NULL;
	if (name == NULL || name[0] == '\0' || strcasecmp(name, "sqlite") == 0)
		return cmicro_registry_sqlite_new(NULL, out);
	if (strcasecmp(name, "memory") == 0)
		return cmicro_registry_memory_new(out);
	if (strcasecmp(name, "etcd") == 0)
		return cmicro_registry_etcd_new(NULL, out);
	if (strcasecmp(name, "mdns") == 0)
		return cmi_error(CMICRO_ECONFIG,
				 "MICRO_REGISTRY=%s: the %s registry is not built "
				 "into this cmicro yet; use " KNOWN_REGISTRIES,
				 name, name);
	return cmi_error(CMICRO_ECONFIG,
			 "MICRO_REGISTRY=\"%.64s\" is not a known registry; "
			 "use " KNOWN_REGISTRIES,
			 name);
}
