/*
 * The broker's view of the registry. Services are kept in memory and fetched
 * again when a watch event touches them or their copy is older than the TTL.
 * While the registry fails, the last good copy is returned, so publishing
 * continues through a registry outage.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"

struct cache_entry {
	struct cache_entry *next;
	char *name;
	struct cmicro_service **services;
	size_t n;
	bool fetched;      /* services contains a registry result */
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

/* Stores a registry result (taking list); the caller holds the lock. */
static void store_result(struct cmi_registry_cache *c, struct cache_entry *e, unsigned long seq,
			 struct cmicro_service **list, size_t n)
{
	if (c->outage) {
		cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-RESTORED",
			"the %s registry %s works again", c->reg->ops->name, c->reg->address);
		c->outage = false;
	}
	cmicro_service_list_free(e->services, e->n);
	e->services = list;
	e->n = n;
	e->fetched = true;
	e->fetched_at = cmi_now_mono();
	e->stale = e->seq != seq;
	cache_watch_locked(c);
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

int cmi_registry_cache_get_service(struct cmi_registry_cache *cache, const char *name,
				   struct cmicro_service ***out, size_t *n)
{
	struct cmicro_service **list = NULL;
	struct cache_entry *e;
	unsigned long seq;
	size_t count = 0;
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&cache->lock);
	e = cache_find(cache, name);
	if (e == NULL && (e = cache_add(cache, name)) == NULL) {
		rc = CMICRO_ENOMEM;
		goto out;
	}
	if (entry_fresh(cache, e)) {
		rc = copy_services(e->services, e->n, out, n);
		goto out;
	}

	seq = e->seq;
	pthread_mutex_unlock(&cache->lock);
	rc = cmicro_registry_get_service(cache->reg, name, &list, &count);
	pthread_mutex_lock(&cache->lock);

	/* Entries are only removed by cmi_registry_cache_free, so e is valid. */
	if (rc == 0) {
		store_result(cache, e, seq, list, count);
	} else {
		note_outage(cache, e);
		if (e->fetched)
			rc = 0;
	}
	if (rc == 0)
		rc = copy_services(e->services, e->n, out, n);
out:
	pthread_mutex_unlock(&cache->lock);
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
		cmicro_service_list_free(e->services, e->n);
		free(e->name);
		free(e);
	}
	pthread_mutex_destroy(&cache->lock);
	cmicro_registry_free(cache->reg);
	free(cache);
}
