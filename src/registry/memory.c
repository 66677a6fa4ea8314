/*
 * The memory registry: one process. It stores one single-node service per
 * (service name, node id), as the SQLite and etcd registries do, so every
 * implementation merges and expires nodes the same way. A sweeper thread
 * expires nodes whose TTL passed, so watchers receive the deletion even when
 * no caller reads the registry.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/registry_int.h"

/* Period of the sweeper thread, in milliseconds. */
#define MEM_SWEEP_MS 250

struct mem_entry {
	struct cmicro_service *doc; /* the service with this one node */
	long long expires_ms;       /* wall clock; 0 never */
};

struct mem_registry {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mem_entry *entries;
	size_t n_entries;
	size_t cap;
	struct cmicro_registry_watcher **watchers;
	size_t n_watchers;
	pthread_t sweeper;
	bool stopping;
};

static void mem_notify_locked(struct mem_registry *m, enum cmicro_registry_event event,
			      const struct cmicro_service *doc)
{
	for (size_t i = 0; i < m->n_watchers; i++)
		cmi_watcher_push(m->watchers[i], event, doc);
}

static void mem_remove_locked(struct mem_registry *m, size_t i)
{
	cmicro_service_free(m->entries[i].doc);
	m->entries[i] = m->entries[m->n_entries - 1];
	m->n_entries--;
}

/* Removes expired nodes and queues their DELETE events. Called before every
 * read and by the sweeper. */
static void mem_expire_locked(struct mem_registry *m)
{
	long long now = cmi_now_ms();

	for (size_t i = 0; i < m->n_entries;) {
		struct mem_entry *e = &m->entries[i];

		if (e->expires_ms == 0 || e->expires_ms > now) {
			i++;
			continue;
		}
		cmi_log(CMICRO_LOG_DEBUG, "registry", "REGISTRY-EXPIRED",
			"node \"%s\" of service \"%s\" expired", e->doc->nodes[0].id, e->doc->name);
		mem_notify_locked(m, CMICRO_REGISTRY_DELETE, e->doc);
		mem_remove_locked(m, i);
	}
}

static struct mem_entry *mem_find_locked(struct mem_registry *m, const char *name,
					 const char *node_id)
{
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct cmicro_service *doc = m->entries[i].doc;

		if (strcmp(doc->name, name) == 0 && strcmp(doc->nodes[0].id, node_id) == 0)
			return &m->entries[i];
	}
	return NULL;
}

/* True when two single-node documents would encode to the same JSON. */
static bool mem_same_doc(const struct cmicro_service *a, const struct cmicro_service *b)
{
	char *ja = NULL;
	char *jb = NULL;
	bool same;

	if (cmi_service_node_json(a, 0, &ja) != 0 || cmi_service_node_json(b, 0, &jb) != 0) {
		free(ja);
		return false;
	}
	same = strcmp(ja, jb) == 0;
	free(ja);
	free(jb);
	return same;
}

static int mem_grow_locked(struct mem_registry *m)
{
	size_t cap = m->cap ? m->cap * 2 : 16;
	struct mem_entry *grown;

	if (m->n_entries < m->cap)
		return 0;
	grown = realloc(m->entries, cap * sizeof(*grown));
	if (grown == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory storing %zu registry nodes",
				 m->n_entries + 1);
	m->entries = grown;
	m->cap = cap;
	return 0;
}

/* Stores node i of svc, replacing the entry of the same name and node id. */
static int mem_put_locked(struct mem_registry *m, const struct cmicro_service *svc, size_t i,
			  long long expires_ms)
{
	struct cmicro_service view = cmi_service_one_node(svc, i);
	struct mem_entry *e = mem_find_locked(m, svc->name, svc->nodes[i].id);
	struct cmicro_service *doc;
	int rc = cmicro_service_dup(&view, &doc);

	if (rc != 0)
		return rc;
	if (e != NULL) {
		bool changed = !mem_same_doc(e->doc, doc);

		cmicro_service_free(e->doc);
		e->doc = doc;
		e->expires_ms = expires_ms;
		if (changed)
			mem_notify_locked(m, CMICRO_REGISTRY_UPDATE, doc);
		return 0;
	}

	rc = mem_grow_locked(m);
	if (rc != 0) {
		cmicro_service_free(doc);
		return rc;
	}
	m->entries[m->n_entries++] = (struct mem_entry){.doc = doc, .expires_ms = expires_ms};
	mem_notify_locked(m, CMICRO_REGISTRY_CREATE, doc);
	return 0;
}

static int mem_register(struct cmicro_registry *reg, const struct cmicro_service *svc,
			int ttl_seconds)
{
	struct mem_registry *m = reg->impl;
	long long expires_ms = ttl_seconds > 0 ? cmi_now_ms() + ttl_seconds * 1000LL : 0;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	mem_expire_locked(m);
	for (size_t i = 0; rc == 0 && i < svc->n_nodes; i++)
		rc = mem_put_locked(m, svc, i, expires_ms);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mem_deregister(struct cmicro_registry *reg, const struct cmicro_service *svc)
{
	struct mem_registry *m = reg->impl;

	pthread_mutex_lock(&m->lock);
	mem_expire_locked(m);
	for (size_t i = 0; i < svc->n_nodes; i++) {
		struct mem_entry *e = mem_find_locked(m, svc->name, svc->nodes[i].id);

		if (e == NULL)
			continue;
		mem_notify_locked(m, CMICRO_REGISTRY_DELETE, e->doc);
		mem_remove_locked(m, (size_t)(e - m->entries));
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* Merges the entries of name (every entry for name NULL) into list. */
static int mem_collect(struct mem_registry *m, const char *name, struct cmi_service_list *list)
{
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	mem_expire_locked(m);
	for (size_t i = 0; rc == 0 && i < m->n_entries; i++) {
		if (name == NULL || strcmp(m->entries[i].doc->name, name) == 0)
			rc = cmi_service_list_merge(list, m->entries[i].doc);
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mem_get_service(struct cmicro_registry *reg, const char *name,
			   struct cmi_service_list *list)
{
	return mem_collect(reg->impl, name, list);
}

static int mem_list_services(struct cmicro_registry *reg, struct cmi_service_list *list)
{
	return mem_collect(reg->impl, NULL, list);
}

static void mem_watch_detach(struct cmicro_registry_watcher *w)
{
	struct mem_registry *m = w->reg->impl;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n_watchers; i++) {
		if (m->watchers[i] == w) {
			m->watchers[i] = m->watchers[--m->n_watchers];
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

static int mem_watch(struct cmicro_registry *reg, struct cmicro_registry_watcher *w)
{
	struct mem_registry *m = reg->impl;
	struct cmicro_registry_watcher **grown;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	grown = realloc(m->watchers, (m->n_watchers + 1) * sizeof(*grown));
	if (grown == NULL) {
		rc = cmi_error(CMICRO_ENOMEM, "out of memory adding a registry watcher");
	} else {
		m->watchers = grown;
		m->watchers[m->n_watchers++] = w;
		w->detach = mem_watch_detach;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static void *mem_sweep_main(void *arg)
{
	struct mem_registry *m = arg;

	pthread_mutex_lock(&m->lock);
	while (!m->stopping) {
		struct timespec deadline;

		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_nsec += MEM_SWEEP_MS * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&m->cond, &m->lock, &deadline);
		mem_expire_locked(m);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

static void mem_free_impl(struct mem_registry *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		cmicro_service_free(m->entries[i].doc);
	free(m->entries);
	free(m->watchers);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static void mem_destroy(struct cmicro_registry *reg)
{
	struct mem_registry *m = reg->impl;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->sweeper, NULL);
	mem_free_impl(m);
}

static const struct cmi_registry_ops mem_ops = {
	.name = "memory",
	.register_service = mem_register,
	.deregister = mem_deregister,
	.get_service = mem_get_service,
	.list_services = mem_list_services,
	.watch = mem_watch,
	.destroy = mem_destroy,
};

CMICRO_API int cmicro_registry_memory_new(struct cmicro_registry **out)
{
	struct mem_registry *m;
	pthread_condattr_t attr;
	char reason[128];
	int rc;

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_memory_new: the output is NULL");
	*out = NULL;
	m = cmi_calloc(1, sizeof(*m));
	if (m == NULL)
		return CMICRO_ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &attr);
	pthread_condattr_destroy(&attr);

	rc = cmi_thread_create(&m->sweeper, mem_sweep_main, m);
	if (rc != 0) {
		mem_free_impl(m);
		return cmi_error(CMICRO_EIO,
				 "cannot start the memory registry's expiry thread: "
				 "%s; raise the process thread limit",
				 strerror_r(rc, reason, sizeof(reason)));
	}
	return cmi_registry_new(&mem_ops, m, "", out);
}
