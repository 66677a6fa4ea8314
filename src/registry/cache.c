/*
 * The broker's view of the registry. Services are kept in memory and fetched
 * again when a watch event touches them or their copy is older than the TTL.
 * While the registry fails, the last good copy is returned, so publishing
 * continues through a registry outage. Each fetch result is an immutable
 * snapshot: a reader holds a reference instead of copying the services, and
 * a new fetch replaces the entry's snapshot without touching held ones.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"

struct cache_entry {
	struct cache_entry *next;
	char *name;
	struct cmi_service_snapshot *snap; /* NULL until the first fetch */
	bool fetched;      /* snap contains a registry result */
	double fetched_at; /* monotonic seconds */
	bool stale;        /* a watch event arrived since the fetch */
	unsigned long seq; /* counts watch events, to spot one during a fetch */
};

struct cmi_registry_cache {
	struct cmicro_registry *reg;
	int ttl_ms;
	pthread_mutex_t lock;
	struct cache_entry *entries;
	struct cmicro_registry_watcher *watcher;
	bool watch_warned;
	bool outage;
};

static struct cache_entry *cache_find(struct cmi_registry_cache *c, const char *name)
{
	for (struct cache_entry *e = c->entries; e != NULL; e = e->next) {
		if (strcmp(e->name, name) == 0)
			return e;
	}
	return NULL;
}

static struct cache_entry *cache_add(struct cmi_registry_cache *c, const char *name)
{
	struct cache_entry *e = cmi_calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->name = cmi_strdup(name);
	if (e->name == NULL) {
		free(e);
		return NULL;
	}
	e->next = c->entries;
	c->entries = e;
	return e;
}

static void cache_on_event(void *user, enum cmicro_registry_event event,
			   const struct cmicro_service *svc)
{
	struct cmi_registry_cache *c = user;
	struct cache_entry *e;

	(void)event;
	pthread_mutex_lock(&c->lock);
	e = cache_find(c, svc->name);
	if (e != NULL) {
		e->stale = true;
		e->seq++;
	}
	pthread_mutex_unlock(&c->lock);
}

/* Starts the watch unless it runs; without one the TTL still refreshes.
 * The caller holds the lock. */
static void cache_watch_locked(struct cmi_registry_cache *c)
{
	if (c->watcher != NULL)
		return;
	if (cmicro_registry_watch(c->reg, NULL, cache_on_event, c, &c->watcher) == 0)
		return;
	if (!c->watch_warned)
		cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-CACHE-NOWATCH",
			"cannot watch the %s registry, so cached services refresh every %d ms "
			"only: %s",
			c->reg->ops->name, c->ttl_ms, cmicro_last_errmsg());
	c->watch_warned = true;
}

void cmi_service_snapshot_release(struct cmi_service_snapshot *snap)
{
	if (snap == NULL || atomic_fetch_sub(&snap->refs, 1) != 1)
		return;
	cmicro_service_list_free(snap->services, snap->n);
	free(snap);
}

static struct cmi_service_snapshot *snap_hold(struct cmi_service_snapshot *snap)
{
	atomic_fetch_add(&snap->refs, 1);
	return snap;
}

static int copy_services(struct cmicro_service *const *src, size_t n, struct cmicro_service ***out,
			 size_t *n_out)
{
	struct cmicro_service **copy;

	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return 0;
	copy = cmi_calloc(n, sizeof(*copy));
	if (copy == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int rc = cmicro_service_dup(src[i], &copy[i]);

		if (rc != 0) {
			cmicro_service_list_free(copy, i);
			return rc;
		}
	}
	*out = copy;
	*n_out = n;
	return 0;
}

static bool entry_fresh(const struct cmi_registry_cache *c, const struct cache_entry *e)
{
	return e->fetched && !e->stale && (cmi_now_mono() - e->fetched_at) * 1000.0 < c->ttl_ms;
}

/* Stores a registry result (taking list, also on failure); the caller
 * holds the lock. */
static int store_result(struct cmi_registry_cache *c, struct cache_entry *e, unsigned long seq,
			struct cmicro_service **list, size_t n)
{
	struct cmi_service_snapshot *snap = cmi_calloc(1, sizeof(*snap));

	if (snap == NULL) {
		cmicro_service_list_free(list, n);
		return CMICRO_ENOMEM;
	}
	atomic_init(&snap->refs, 1);
	snap->services = list;
	snap->n = n;
	if (c->outage) {
		cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-RESTORED",
			"the %s registry %s works again", c->reg->ops->name, c->reg->address);
		c->outage = false;
	}
	cmi_service_snapshot_release(e->snap);
	e->snap = snap;
	e->fetched = true;
	e->fetched_at = cmi_now_mono();
	e->stale = e->seq != seq;
	cache_watch_locked(c);
	return 0;
}

/* Notes a failed request; the caller holds the lock. */
static void note_outage(struct cmi_registry_cache *c, struct cache_entry *e)
{
	if (!c->outage)
		cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-OUTAGE",
			"the %s registry %s failed, so cached nodes are served until it answers "
			"again (retried every %d ms): %s",
			c->reg->ops->name, c->reg->address, c->ttl_ms, cmicro_last_errmsg());
	c->outage = true;
	/* Wait a TTL before asking again instead of on every request. */
	e->fetched_at = cmi_now_mono();
	e->stale = false;
}

/* Finds or adds the entry of name; the caller holds the lock. */
static struct cache_entry *cache_entry_of(struct cmi_registry_cache *c, const char *name)
{
	struct cache_entry *e = cache_find(c, name);

	return e != NULL ? e : cache_add(c, name);
}

/* Fetches name from the registry into e, unlocking around the request; the
 * caller holds the lock. Returns an error only when nothing is cached. */
static int cache_fetch_locked(struct cmi_registry_cache *c, struct cache_entry *e,
			      const char *name)
{
	struct cmicro_service **list = NULL;
	unsigned long seq = e->seq;
	size_t count = 0;
	int rc;

	pthread_mutex_unlock(&c->lock);
	rc = cmicro_registry_get_service(c->reg, name, &list, &count);
	pthread_mutex_lock(&c->lock);

	/* Entries are only removed by cmi_registry_cache_free, so e is valid. */
	if (rc == 0)
		return store_result(c, e, seq, list, count);
	note_outage(c, e);
	return e->fetched ? 0 : rc;
}

int cmi_registry_cache_snapshot(struct cmi_registry_cache *cache, const char *name,
				struct cmi_service_snapshot **out)
{
	struct cache_entry *e;
	int rc = 0;

	*out = NULL;
	pthread_mutex_lock(&cache->lock);
	e = cache_entry_of(cache, name);
	if (e == NULL)
		rc = CMICRO_ENOMEM;
	else if (!entry_fresh(cache, e))
		rc = cache_fetch_locked(cache, e, name);
	if (rc == 0)
		*out = snap_hold(e->snap);
	pthread_mutex_unlock(&cache->lock);
	return rc;
}

struct cmi_service_snapshot *cmi_registry_cache_peek(struct cmi_registry_cache *cache,
						     const char *name)
{
	struct cmi_service_snapshot *snap = NULL;
	struct cache_entry *e;

	pthread_mutex_lock(&cache->lock);
	e = cache_find(cache, name);
	if (e != NULL && entry_fresh(cache, e))
		snap = snap_hold(e->snap);
	pthread_mutex_unlock(&cache->lock);
	return snap;
}

int cmi_registry_cache_get_service(struct cmi_registry_cache *cache, const char *name,
				   struct cmicro_service ***out, size_t *n)
{
	struct cmi_service_snapshot *snap = NULL;
	int rc;

	*out = NULL;
	*n = 0;
	rc = cmi_registry_cache_snapshot(cache, name, &snap);
	if (rc == 0)
		rc = copy_services(snap->services, snap->n, out, n);
	cmi_service_snapshot_release(snap);
	return rc;
}

void cmi_registry_cache_invalidate(struct cmi_registry_cache *cache, const char *name)
{
	struct cache_entry *e;

	pthread_mutex_lock(&cache->lock);
	e = cache_find(cache, name);
	if (e != NULL) {
		e->stale = true;
		e->seq++;
	}
	pthread_mutex_unlock(&cache->lock);
}

bool cmi_registry_cache_in_outage(struct cmi_registry_cache *cache)
{
	bool outage;

	pthread_mutex_lock(&cache->lock);
	outage = cache->outage;
	pthread_mutex_unlock(&cache->lock);
	return outage;
}

int cmi_registry_cache_new(struct cmicro_registry *reg, int ttl_ms, struct cmi_registry_cache **out)
{
	struct cmi_registry_cache *c;

	*out = NULL;
	if (reg == NULL || ttl_ms < 0)
		return cmi_error(CMICRO_EINVAL, "registry cache: a registry and a TTL of 0 "
						"(default) or more milliseconds are required");
	c = cmi_calloc(1, sizeof(*c));
	if (c == NULL)
		return CMICRO_ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->reg = cmicro_registry_hold(reg);
	c->ttl_ms = ttl_ms ? ttl_ms : CMI_REGISTRY_CACHE_TTL_MS;

	pthread_mutex_lock(&c->lock);
	cache_watch_locked(c);
	pthread_mutex_unlock(&c->lock);
	*out = c;
	return 0;
}

void cmi_registry_cache_free(struct cmi_registry_cache *cache)
{
	struct cache_entry *e;

	if (cache == NULL)
		return;
	/* Stopped first, so no callback touches the entries freed below. */
	cmicro_registry_watcher_free(cache->watcher);
	while ((e = cache->entries) != NULL) {
		cache->entries = e->next;
		cmi_service_snapshot_release(e->snap);
		free(e->name);
		free(e);
	}
	pthread_mutex_destroy(&cache->lock);
	cmicro_registry_free(cache->reg);
	free(cache);
}
