/*
 * Service registry: go-micro's registry model (services with versions,
 * metadata, endpoints and nodes) with time-to-live registrations, and its
 * implementations (memory, SQLite file).
 */
#ifndef CMICRO_REGISTRY_H
#define CMICRO_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <cmicro/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One metadata entry. */
struct cmicro_kv {
	char *key;
	char *value;
};

/* A node of a service: go-micro's registry.Node. Plain data. */
struct cmicro_node {
	char *id;
	char *address; /* "host:port" */
	struct cmicro_kv *metadata;
	size_t n_metadata;
};

/* A service: go-micro's registry.Service. Plain data owned by the structure,
 * built with the helpers below and released with cmicro_service_free. */
struct cmicro_service {
	char *name;
	char *version;
	struct cmicro_kv *metadata;
	size_t n_metadata;
	char *endpoints_json; /* the "endpoints" JSON array kept verbatim; NULL for none */
	struct cmicro_node *nodes;
	size_t n_nodes;
};

CMICRO_API CMICRO_NODISCARD int cmicro_service_new(const char *name, const char *version,
						   struct cmicro_service **out);
/* Appends a node; the returned pointer stays valid until the next add. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_add_node(struct cmicro_service *svc, const char *id,
							const char *address,
							struct cmicro_node **node);
/* Sets (replaces) a metadata entry of a node, or of the service when node is NULL. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_set_meta(struct cmicro_service *svc,
							struct cmicro_node *node, const char *key,
							const char *value);
/* Returns a metadata value, or NULL. */
CMICRO_API const char *cmicro_kv_get(const struct cmicro_kv *kvs, size_t n, const char *key);
CMICRO_API CMICRO_NODISCARD int cmicro_service_dup(const struct cmicro_service *svc,
						   struct cmicro_service **out);
CMICRO_API void cmicro_service_free(struct cmicro_service *svc);
CMICRO_API void cmicro_service_list_free(struct cmicro_service **list, size_t n);

/* Encodes as go-micro's JSON (fields name, version, metadata, endpoints,
 * nodes; nodes have id, address, metadata). Free with cmicro_free. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_to_json(const struct cmicro_service *svc,
						       char **json);
/* Decodes go-micro's JSON; errors name the offending field. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_from_json(const char *json, size_t len,
							 struct cmicro_service **out);

/* A registry. Reference counted: cmicro_registry_hold adds,
 * cmicro_registry_free drops. All calls are thread-safe. */
struct cmicro_registry;

/* A registry private to this process. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_memory_new(struct cmicro_registry **out);

/* A registry in an SQLite file shared by the processes of one machine.
 * path NULL uses MICRO_REGISTRY_ADDRESS, else
 * $XDG_RUNTIME_DIR/cmicro/registry.db, else /tmp/cmicro-<uid>/registry.db. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_sqlite_new(const char *path,
							   struct cmicro_registry **out);

/* Selects a registry from MICRO_REGISTRY (memory, sqlite; default sqlite)
 * and MICRO_REGISTRY_ADDRESS. An unknown name is an error that lists the
 * known ones. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_from_env(struct cmicro_registry **out);

CMICRO_API struct cmicro_registry *cmicro_registry_hold(struct cmicro_registry *reg);
CMICRO_API void cmicro_registry_free(struct cmicro_registry *reg);

/* The implementation name ("memory", "sqlite") and its address (file path). */
CMICRO_API const char *cmicro_registry_name(const struct cmicro_registry *reg);
CMICRO_API const char *cmicro_registry_address(const struct cmicro_registry *reg);

/* Registers (or renews) every node of svc for ttl_seconds; 0 means no expiry.
 * Nodes are merged into the stored service of the same name and version. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_register(struct cmicro_registry *reg,
							 const struct cmicro_service *svc,
							 int ttl_seconds);
/* Removes the nodes of svc from the stored service of the same name and version. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_deregister(struct cmicro_registry *reg,
							   const struct cmicro_service *svc);
/* Returns every version of a service (one entry per version) with its live
 * nodes; *n is 0 when there is none. Free with cmicro_service_list_free. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_get_service(struct cmicro_registry *reg,
							    const char *name,
							    struct cmicro_service ***out,
							    size_t *n);
/* Returns every service version with its live nodes. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_list_services(struct cmicro_registry *reg,
							      struct cmicro_service ***out,
							      size_t *n);

enum cmicro_registry_event {
	CMICRO_REGISTRY_CREATE = 1,
	CMICRO_REGISTRY_UPDATE,
	CMICRO_REGISTRY_DELETE
};

/* Receives a change: svc holds the service with the node(s) concerned
 * (borrowed for the call). Called from a registry thread. */
typedef void (*cmicro_registry_watch_fn)(void *user, enum cmicro_registry_event event,
					 const struct cmicro_service *svc);

struct cmicro_registry_watcher;

/* Starts watching every change (service NULL) or one service's. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_watch(struct cmicro_registry *reg,
						      const char *service,
						      cmicro_registry_watch_fn fn, void *user,
						      struct cmicro_registry_watcher **out);
/* Stops a watcher; no callback runs after it returns. */
CMICRO_API void cmicro_registry_watcher_free(struct cmicro_registry_watcher *w);

#ifdef __cplusplus
}
#endif

#endif
