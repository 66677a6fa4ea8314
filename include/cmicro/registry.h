/*
 * Service registry: go-micro's registry model (services with versions,
 * metadata, endpoints and nodes) with time-to-live registrations, and its
 * implementations (memory, SQLite file).
 *
 * Every implementation stores one entry per node, keyed by service name and
 * node id, holding the JSON of the service with that one node: the layout of
 * go-micro's etcd registry. Reads merge the entries back into one service
 * per name and version.
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

/* Creates an empty service; version NULL means "". Both strings are copied. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_new(const char *name, const char *version,
						   struct cmicro_service **out);
/* Appends a node (id required, address NULL means ""); *node, when node is
 * not NULL, stays valid until the next add. */
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
 * nodes; nodes have id, address, metadata). Every string must be UTF-8.
 * Free with cmicro_free. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_to_json(const struct cmicro_service *svc,
						       char **json);
/* Decodes go-micro's JSON. Unknown fields are ignored; null stands for an
 * empty metadata, endpoints or nodes member. Wrong types, a missing name or
 * node id, non-string metadata values, invalid UTF-8 and documents over
 * 1 MiB fail with CMICRO_EPROTO or CMICRO_ELIMIT and a message naming the
 * field. */
CMICRO_API CMICRO_NODISCARD int cmicro_service_from_json(const char *json, size_t len,
							 struct cmicro_service **out);

/* A registry. Reference counted: cmicro_registry_hold adds,
 * cmicro_registry_free drops. All calls are thread-safe. */
struct cmicro_registry;

/* A registry private to this process. Expired nodes are removed by a
 * background thread. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_memory_new(struct cmicro_registry **out);

/* A registry in an SQLite file shared by the processes of one machine.
 * path NULL uses MICRO_REGISTRY_ADDRESS, else
 * $XDG_RUNTIME_DIR/cmicro/registry.db, else /tmp/cmicro-<uid>/registry.db
 * (the last two create their directory with mode 0700). A file that is not
 * a cmicro registry, a directory, or a path in a missing directory fails with
 * a message naming the path and the fix. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_sqlite_new(const char *path,
							   struct cmicro_registry **out);

struct cmicro_tls_config;

/* Settings of an etcd registry. All-zero (or a NULL pointer) means every
 * default. Strings are copied. */
struct cmicro_etcd_opts {
	/* Comma-separated HOST[:PORT], [IPV6][:PORT] or http(s)://HOST[:PORT];
	 * port 2379 when missing. NULL: MICRO_REGISTRY_ADDRESS, else
	 * 127.0.0.1:2379. */
	const char *endpoints;
	/* User for etcd's authentication; NULL: ETCD_USERNAME (none when unset). */
	const char *username;
	/* NULL: ETCD_PASSWORD. Never logged. */
	const char *password;
	/* TLS for https endpoints, with a client certificate for etcd's
	 * --client-cert-auth (held). NULL: cmicro_tls_config_from_env. */
	struct cmicro_tls_config *tls;
	/* Limit of one request, connect included, in milliseconds; 0: 5000. */
	int timeout_ms;
};

/*
 * A registry in etcd 3, shared with go-micro's etcd registry: keys
 * /micro/registry/<service>/<node id> holding the JSON of the service with
 * that one node, attached to a lease whose TTL is the registration's. Talks
 * to etcd's v3 JSON gateway, failing over between the endpoints. Fails with
 * CMICRO_ECONNECT or CMICRO_ETIMEDOUT, naming every endpoint, when none
 * answers; with CMICRO_ECONFIG for a malformed endpoint list or rejected
 * credentials.
 *
 * While it runs, it keeps the leases of its registrations alive. When etcd
 * becomes unreachable it logs REGISTRY-ETCD-OUTAGE once, and when etcd
 * answers again it registers every node it holds again with fresh leases
 * (REGISTRY-ETCD-RESTORED).
 */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_etcd_new(const struct cmicro_etcd_opts *opts,
							 struct cmicro_registry **out);

/* Selects a registry from MICRO_REGISTRY (memory, sqlite, etcd; default
 * sqlite) and MICRO_REGISTRY_ADDRESS. An unknown name, or a name whose
 * registry is not built in (mdns), fails with CMICRO_ECONFIG and lists the
 * known ones. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_from_env(struct cmicro_registry **out);

CMICRO_API struct cmicro_registry *cmicro_registry_hold(struct cmicro_registry *reg);
CMICRO_API void cmicro_registry_free(struct cmicro_registry *reg);

/* The implementation name ("memory", "sqlite") and its address (file path). */
CMICRO_API const char *cmicro_registry_name(const struct cmicro_registry *reg);
CMICRO_API const char *cmicro_registry_address(const struct cmicro_registry *reg);

/*
 * Registers (or renews) every node of svc for ttl_seconds; 0 means no expiry.
 * svc needs at least one node and unique node ids. A node replaces the
 * stored node of the same service name and id, also one of another version.
 * Watchers see CREATE for a new node and UPDATE for a changed one; a renewal
 * that changes nothing but the expiry sends no event.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_register(struct cmicro_registry *reg,
							 const struct cmicro_service *svc,
							 int ttl_seconds);
/* Removes the stored nodes of svc's name whose ids are those of svc's nodes
 * (whatever their version); unknown ids are ignored. */
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

/* Receives a change: svc contains the service with the one node concerned
 * (borrowed for the call); DELETE also reports expired nodes. Called from
 * the watcher's own thread, never under a registry lock. */
typedef void (*cmicro_registry_watch_fn)(void *user, enum cmicro_registry_event event,
					 const struct cmicro_service *svc);

struct cmicro_registry_watcher;

/* Starts watching the changes made from now on to every service (service
 * NULL) or to one. The SQLite registry reports changes made by other
 * processes within about 200 ms, its polling period. */
CMICRO_API CMICRO_NODISCARD int cmicro_registry_watch(struct cmicro_registry *reg,
						      const char *service,
						      cmicro_registry_watch_fn fn, void *user,
						      struct cmicro_registry_watcher **out);
/* Stops a watcher; no callback runs after it returns, except when it is
 * called from the watcher's own callback, which then finishes normally. */
CMICRO_API void cmicro_registry_watcher_free(struct cmicro_registry_watcher *w);

#ifdef __cplusplus
}
#endif

#endif
