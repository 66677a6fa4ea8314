/*
 * Internal interface of the registry layer: the implementation table behind
 * struct cmicro_registry, the service-list merge shared by every storage that
 * keeps one document per node, the watcher thread, and the cache the broker
 * reads services through.
 */
#ifndef CMICRO_REGISTRY_INT_H
#define CMICRO_REGISTRY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <cmicro/registry.h>

#include "common/common_int.h"

/*
 * Limits on one service JSON document. They bound the memory that one writer
 * to a shared registry can make every reader allocate. go-micro sets no such
 * limits, and its broker documents are a few hundred bytes.
 */
#define CMI_SERVICE_JSON_MAX  (1024 * 1024) /* bytes of a whole document */
#define CMI_SERVICE_STR_MAX   4096          /* bytes of one name, id, address or metadata value */
#define CMI_SERVICE_META_MAX  256           /* metadata entries of a service or a node */
#define CMI_SERVICE_NODES_MAX 4096          /* nodes in one document */

/* Key prefix of go-micro's etcd registry. */
#define CMI_REGISTRY_KEY_PREFIX "/micro/registry/"

/* Period of the SQLite watcher's change check, in milliseconds. */
#define CMI_SQLITE_WATCH_POLL_MS 200

/* Default age, in milliseconds, after which the cache fetches a service from
 * the registry again even when no watch event arrived. */
#define CMI_REGISTRY_CACHE_TTL_MS 5000

/* Maximum events queued for one watcher whose callback is slow; more are
 * dropped and logged, and readers fall back on their own refresh. */
#define CMI_WATCH_QUEUE_MAX 10000

struct cmi_service_list;

/*
 * Operations of one registry implementation. Each receives arguments already
 * checked by the public wrappers (non-NULL, valid names, ttl >= 0, at least
 * one node on register) and sets a detail message on failure.
 */
struct cmi_registry_ops {
	const char *name;
	int (*register_service)(struct cmicro_registry *reg, const struct cmicro_service *svc,
				int ttl_seconds);
	int (*deregister)(struct cmicro_registry *reg, const struct cmicro_service *svc);
	/* Merges the live nodes of service name into list. */
	int (*get_service)(struct cmicro_registry *reg, const char *name,
			   struct cmi_service_list *list);
	/* Merges every live node into list. */
	int (*list_services)(struct cmicro_registry *reg, struct cmi_service_list *list);
	/* Fills the hooks of a new watcher (poll or push, detach, impl) before
	 * its thread starts. */
	int (*watch)(struct cmicro_registry *reg, struct cmicro_registry_watcher *w);
	/* Releases impl once the last reference is gone. */
	void (*destroy)(struct cmicro_registry *reg);
};

struct cmicro_registry {
	const struct cmi_registry_ops *ops;
	atomic_int refs;
	char *address; /* file path, or "" */
	void *impl;
};

/* Creates a registry object around impl (owned from then on: destroy
 * releases it, also when this fails). */
int cmi_registry_new(const struct cmi_registry_ops *ops, void *impl, const char *address,
		     struct cmicro_registry **out);

/* Services built from per-node documents, one entry per name and version. */
struct cmi_service_list {
	struct cmicro_service **items;
	size_t n;
	size_t cap;
};

/*
 * Merges a copy of doc into list. Its nodes join the entry of the same name
 * and version and replace a node of the same id. A new name or version gets
 * its own entry with doc's metadata and endpoints, so the first document
 * seen wins, as in go-micro's etcd registry.
 */
int cmi_service_list_merge(struct cmi_service_list *list, const struct cmicro_service *doc);
/* Sorts entries by name and version, and nodes by id, for stable output. */
void cmi_service_list_sort(struct cmi_service_list *list);
/* Moves the entries to the caller's array (NULL when empty) and empties list. */
int cmi_service_list_take(struct cmi_service_list *list, struct cmicro_service ***out, size_t *n);
void cmi_service_list_clear(struct cmi_service_list *list);

/* A shallow view of svc reduced to its node i (borrows every pointer). */
struct cmicro_service cmi_service_one_node(const struct cmicro_service *svc, size_t i);

/* Encodes the document stored for node i: the service with that node only. */
int cmi_service_node_json(const struct cmicro_service *svc, size_t i, char **json);

/*
 * Checks a service before it is encoded: a name, node ids that are set, and
 * sizes within the CMI_SERVICE_* limits. for_register also requires at least
 * one node and unique node ids. The detail message names the field.
 */
int cmi_service_check(const struct cmicro_service *svc, bool for_register);

/* Deep-copies src into dst (cleared on failure), and releases a node's
 * strings without freeing the node itself. */
int cmi_node_copy(struct cmicro_node *dst, const struct cmicro_node *src);
void cmi_node_clear(struct cmicro_node *node);

/* Appends a deep copy of node to svc. */
int cmi_service_append_node(struct cmicro_service *svc, const struct cmicro_node *node);

/* Returns go-micro's etcd key of a node, "/micro/registry/<service>/<node id>"
 * with every "/" inside the name and the id replaced by "-". Free with free. */
char *cmi_registry_node_key(const char *service, const char *node_id);

/*
 * A watcher. The generic part (watch.c) owns a thread that delivers queued
 * events, or calls poll every poll_ms for implementations that detect
 * changes by polling. Callbacks never run under a registry lock.
 */
struct cmi_watch_event;

struct cmicro_registry_watcher {
	struct cmicro_registry *reg; /* held */
	char *service;               /* filter; NULL for every service */
	cmicro_registry_watch_fn fn;
	void *user;

	/* Set by the implementation's watch op. */
	int poll_ms;
	void (*poll)(struct cmicro_registry_watcher *w);
	void (*detach)(struct cmicro_registry_watcher *w);  /* stop pushing; before the join */
	void (*release)(struct cmicro_registry_watcher *w); /* free impl; after the join */
	void *impl;

	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	bool free_on_exit; /* freed from its own callback: the thread frees it */
	struct cmi_watch_event *head;
	struct cmi_watch_event *tail;
	size_t queued;
	bool overflow_logged;
};

/* Queues a copy of svc for delivery (push implementations; safe under the
 * implementation's lock). Events for other services are skipped. */
void cmi_watcher_push(struct cmicro_registry_watcher *w, enum cmicro_registry_event event,
		      const struct cmicro_service *svc);
/* Calls the callback now (poll implementations, from the watcher thread). */
void cmi_watcher_emit(struct cmicro_registry_watcher *w, enum cmicro_registry_event event,
		      const struct cmicro_service *svc);
/* Returns true when the watcher wants events of service name. */
bool cmi_watcher_wants(const struct cmicro_registry_watcher *w, const char *name);

/* Returns the SQLite file path for path NULL: MICRO_REGISTRY_ADDRESS, else
 * $XDG_RUNTIME_DIR/cmicro/registry.db, else /tmp/cmicro-<uid>/registry.db,
 * creating the default directory with mode 0700. Free with free. */
int cmi_sqlite_default_path(char **out);

/*
 * A read-through cache of services for the broker. It serves from memory
 * (copies from get_service, shared snapshots from snapshot and peek), and
 * fetches an entry again when a watch event touched its service or when it
 * is older than ttl_ms. While the registry fails, the
 * last known nodes are still returned. The outage is logged once
 * (REGISTRY-OUTAGE), and so is its end (REGISTRY-RESTORED). Thread-safe.
 */
struct cmi_registry_cache;

/* Creates a cache over reg (held until cmi_registry_cache_free); ttl_ms 0
 * means CMI_REGISTRY_CACHE_TTL_MS. */
int cmi_registry_cache_new(struct cmicro_registry *reg, int ttl_ms,
			   struct cmi_registry_cache **out);
/* Returns copies of every version of name, as cmicro_registry_get_service.
 * Fails only when the registry fails and nothing is cached for name. */
int cmi_registry_cache_get_service(struct cmi_registry_cache *cache, const char *name,
				   struct cmicro_service ***out, size_t *n);
/*
 * The services of one name as the cache last fetched them: immutable and
 * shared by reference, so readers on several threads use one copy without
 * duplicating it. Hold it only while reading; release with
 * cmi_service_snapshot_release.
 */
struct cmi_service_snapshot {
	atomic_int refs;
	struct cmicro_service **services;
	size_t n;
};

/* As cmi_registry_cache_get_service, but returns a held snapshot instead of
 * copies. */
int cmi_registry_cache_snapshot(struct cmi_registry_cache *cache, const char *name,
				struct cmi_service_snapshot **out);
/* Returns a held snapshot of name when the cache has a fresh one, or NULL
 * when the next look-up must request it from the registry. It does not
 * call the registry, so it never waits for one. */
struct cmi_service_snapshot *cmi_registry_cache_peek(struct cmi_registry_cache *cache,
						     const char *name);
/* Drops one reference; the last one frees the services. NULL is a no-op. */
void cmi_service_snapshot_release(struct cmi_service_snapshot *snap);
/* Makes the next get_service of name ask the registry. */
void cmi_registry_cache_invalidate(struct cmi_registry_cache *cache, const char *name);
/* Returns true while the last registry request failed. */
bool cmi_registry_cache_in_outage(struct cmi_registry_cache *cache);
void cmi_registry_cache_free(struct cmi_registry_cache *cache);

#endif
