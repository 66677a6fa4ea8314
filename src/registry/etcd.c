/*
 * The etcd registry, in go-micro's etcd layout: one key per node,
 * /micro/registry/<service>/<node id>, holding the JSON of the service with
 * that one node and attached to a lease of the registration's TTL.
 *
 * The registry keeps what it registered in memory. A keeper thread renews
 * the leases, and when etcd was unreachable or lost a lease (a restart with
 * an empty data directory), it puts every node again with a fresh lease.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/etcd_int.h"

/* Bounds of the keeper's period, in milliseconds: a third of the shortest
 * TTL within these, and the retry period while etcd is unreachable. */
#define KEEPER_MIN_MS   500
#define KEEPER_MAX_MS   10000
#define KEEPER_RETRY_MS 1000

/* Interval between two warnings about undecodable values, in milliseconds. */
#define BAD_VALUE_LOG_MS 60000

struct etcd_node_reg {
	char *service;
	char *node_id;
	char *key;
	char *json;
	int ttl;
	int64_t lease; /* 0 without TTL */
};

struct etcd_registry {
	struct cmi_etcd_client *client;

	/* Guards everything below and serialises lease work, so the keeper and
	 * a register call never grant two leases for one node. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct etcd_node_reg *regs;
	size_t n_regs;
	size_t cap;
	bool outage;
	bool stopping;
	pthread_t keeper;
	bool keeper_started;
	long long bad_value_logged_ms;
};

/* ---- etcd requests ---- */

/* Sends body to path and discards the reply. */
static int etcd_send(struct cmi_etcd_client *c, const char *path, char *body)
{
	struct cmi_etcd_reply reply;
	int rc;

	if (body == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_etcd_call(c, path, body, &reply);
	free(body);
	cmi_etcd_reply_clear(&reply);
	return rc;
}

static int etcd_grant(struct cmi_etcd_client *c, int ttl, int64_t *lease)
{
	struct cmi_etcd_reply reply;
	char *body = cmi_etcd_body_lease("TTL", ttl);
	int64_t granted_ttl = 0;
	int rc;

	if (body == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_etcd_call(c, "/v3/lease/grant", body, &reply);
	free(body);
	if (rc == 0)
		rc = cmi_etcd_parse_grant(reply.body, reply.len, lease, &granted_ttl);
	cmi_etcd_reply_clear(&reply);
	return rc;
}

/* Renews lease once; *ttl is 0 when etcd has no such lease any more. */
static int etcd_keepalive(struct cmi_etcd_client *c, int64_t lease, int64_t *ttl)
{
	struct cmi_etcd_reply reply;
	char *body = cmi_etcd_body_lease("ID", lease);
	int rc;

	*ttl = 0;
	if (body == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_etcd_call(c, "/v3/lease/keepalive", body, &reply);
	free(body);
	if (rc == 0)
		rc = cmi_etcd_parse_keepalive(reply.body, reply.len, ttl);
	cmi_etcd_reply_clear(&reply);
	return rc;
}

/* Revokes a lease that no key uses any more; a failure only delays its
 * expiry, so it is not reported. */
static void etcd_revoke(struct cmi_etcd_client *c, int64_t lease)
{
	if (lease != 0 && etcd_send(c, "/v3/lease/revoke", cmi_etcd_body_lease("ID", lease)) != 0)
		cmi_error_clear();
}

/* ---- registrations ---- */

static void node_reg_clear(struct etcd_node_reg *r)
{
	free(r->service);
	free(r->node_id);
	free(r->key);
	free(r->json);
	memset(r, 0, sizeof(*r));
}

static struct etcd_node_reg *find_locked(struct etcd_registry *e, const char *key)
{
	for (size_t i = 0; i < e->n_regs; i++) {
		if (strcmp(e->regs[i].key, key) == 0)
			return &e->regs[i];
	}
	return NULL;
}

static void remove_locked(struct etcd_registry *e, struct etcd_node_reg *r)
{
	node_reg_clear(r);
	*r = e->regs[--e->n_regs];
}

static void note_outage_locked(struct etcd_registry *e, int rc)
{
	if (!cmi_etcd_unreachable(rc) || e->outage)
		return;
	e->outage = true;
	cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-ETCD-OUTAGE",
		"etcd is unreachable, so registrations are kept in memory and put again when "
		"it answers: %s",
		cmicro_last_errmsg());
}

/* Puts r->json under r->key with a fresh lease (none without TTL), then
 * revokes the lease it replaces. */
static int put_fresh(struct etcd_registry *e, struct etcd_node_reg *r)
{
	int64_t lease = 0;
	int rc = 0;

	if (r->ttl > 0)
		rc = etcd_grant(e->client, r->ttl, &lease);
	if (rc == 0)
		rc = etcd_send(e->client, "/v3/kv/put", cmi_etcd_body_put(r->key, r->json, lease));
	if (rc != 0) {
		/* The new lease, if any, expires by itself. */
		return rc;
	}
	if (r->lease != lease)
		etcd_revoke(e->client, r->lease);
	r->lease = lease;
	return 0;
}

/* Renews r when nothing changed and its lease is alive; else puts it. */
static int renew_or_put(struct etcd_registry *e, struct etcd_node_reg *r, bool changed)
{
	int64_t left = 0;
	int rc;

	if (!changed && r->lease != 0) {
		rc = etcd_keepalive(e->client, r->lease, &left);
		if (rc != 0 || left > 0)
			return rc;
	}
	return put_fresh(e, r);
}

static int add_locked(struct etcd_registry *e, const struct etcd_node_reg *r)
{
	if (e->n_regs == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		struct etcd_node_reg *grown = realloc(e->regs, cap * sizeof(*grown));

		if (grown == NULL)
			return cmi_error(CMICRO_ENOMEM, "out of memory keeping %zu etcd registrations",
					 e->n_regs + 1);
		e->regs = grown;
		e->cap = cap;
	}
	e->regs[e->n_regs++] = *r;
	return 0;
}

/* Registers node i of svc; takes ownership of nr's strings. */
static int register_node_locked(struct etcd_registry *e, struct etcd_node_reg *nr)
{
	struct etcd_node_reg *held = find_locked(e, nr->key);
	int rc;

	if (held != NULL) {
		bool changed = strcmp(held->json, nr->json) != 0 || held->ttl != nr->ttl;

		free(held->json);
		held->json = nr->json;
		held->ttl = nr->ttl;
		nr->json = NULL;
		node_reg_clear(nr);
		return renew_or_put(e, held, changed);
	}
	rc = put_fresh(e, nr);
	if (rc == 0)
		rc = add_locked(e, nr);
	if (rc != 0) {
		etcd_revoke(e->client, nr->lease);
		node_reg_clear(nr);
	}
	return rc;
}

static int node_reg_build(const struct cmicro_service *svc, size_t i, int ttl,
			  struct etcd_node_reg *nr)
{
	int rc;

	memset(nr, 0, sizeof(*nr));
	nr->ttl = ttl;
	nr->service = cmi_strdup(svc->name);
	nr->node_id = cmi_strdup(svc->nodes[i].id);
	nr->key = cmi_registry_node_key(svc->name, svc->nodes[i].id);
	rc = nr->service && nr->node_id && nr->key ? 0 : CMICRO_ENOMEM;
	if (rc == 0)
		rc = cmi_service_node_json(svc, i, &nr->json);
	if (rc != 0)
		node_reg_clear(nr);
	return rc;
}

static int etcd_register(struct cmicro_registry *reg, const struct cmicro_service *svc,
			 int ttl_seconds)
{
	struct etcd_registry *e = reg->impl;
	int rc = 0;

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; rc == 0 && i < svc->n_nodes; i++) {
		struct etcd_node_reg nr;

		rc = node_reg_build(svc, i, ttl_seconds, &nr);
		if (rc == 0)
			rc = register_node_locked(e, &nr);
	}
	note_outage_locked(e, rc);
	/* The keeper's period depends on the shortest TTL. */
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

static int etcd_deregister(struct cmicro_registry *reg, const struct cmicro_service *svc)
{
	struct etcd_registry *e = reg->impl;
	int rc = 0;

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < svc->n_nodes; i++) {
		char *key = cmi_registry_node_key(svc->name, svc->nodes[i].id);
		struct etcd_node_reg *held = key ? find_locked(e, key) : NULL;
		int one = key ? etcd_send(e->client, "/v3/kv/deleterange", cmi_etcd_body_delete(key))
			      : CMICRO_ENOMEM;

		/* The node is forgotten even when etcd is unreachable, so it is
		 * not put again later; its lease then ends it. */
		if (held != NULL) {
			if (one == 0)
				etcd_revoke(e->client, held->lease);
			remove_locked(e, held);
		}
		rc = rc ? rc : one;
		free(key);
	}
	note_outage_locked(e, rc);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* ---- reads ---- */

static void warn_bad_value(struct etcd_registry *e, const char *key)
{
	long long now = cmi_now_ms();

	pthread_mutex_lock(&e->lock);
	if (e->bad_value_logged_ms == 0 || now - e->bad_value_logged_ms >= BAD_VALUE_LOG_MS) {
		e->bad_value_logged_ms = now;
		cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-ETCD-BAD-VALUE",
			"skipping etcd key %.200s: %s (reported once a minute)", key,
			cmicro_last_errmsg());
	}
	pthread_mutex_unlock(&e->lock);
}

/* Merges the nodes under prefix into list; name NULL keeps every service. */
static int etcd_collect(struct etcd_registry *e, const char *prefix, const char *name,
			struct cmi_service_list *list)
{
	struct cmi_etcd_reply reply;
	struct cmi_etcd_kv *kvs = NULL;
	size_t n = 0;
	int64_t revision = 0;
	char *body = cmi_etcd_body_range(prefix, false);
	int rc = body ? cmi_etcd_call(e->client, "/v3/kv/range", body, &reply) : CMICRO_ENOMEM;

	free(body);
	if (rc != 0)
		return rc;
	rc = cmi_etcd_parse_range(reply.body, reply.len, &revision, &kvs, &n);
	cmi_etcd_reply_clear(&reply);
	for (size_t i = 0; i < n; i++) {
		struct cmicro_service *svc = rc == 0 ? cmi_etcd_kv_service(&kvs[i]) : NULL;

		if (rc == 0 && svc == NULL)
			warn_bad_value(e, kvs[i].key);
		else if (svc != NULL && (name == NULL || strcmp(svc->name, name) == 0))
			rc = cmi_service_list_merge(list, svc);
		cmicro_service_free(svc);
		cmi_etcd_kv_clear(&kvs[i]);
	}
	free(kvs);
	return rc;
}

static int etcd_get_service(struct cmicro_registry *reg, const char *name,
			    struct cmi_service_list *list)
{
	/* Names that differ only by "/" and "-" share a prefix, so the
	 * documents are filtered by their own name too. */
	char *prefix = cmi_registry_node_key(name, "");
	int rc = prefix ? etcd_collect(reg->impl, prefix, name, list) : CMICRO_ENOMEM;

	free(prefix);
	return rc;
}

static int etcd_list_services(struct cmicro_registry *reg, struct cmi_service_list *list)
{
	return etcd_collect(reg->impl, CMI_REGISTRY_KEY_PREFIX, NULL, list);
}

static int etcd_watch_op(struct cmicro_registry *reg, struct cmicro_registry_watcher *w)
{
	struct etcd_registry *e = reg->impl;

	return cmi_etcd_watch(reg, e->client, w);
}

/* ---- keeper ---- */

/* Puts every held node again with a fresh lease, after an outage. */
static int reregister_all_locked(struct etcd_registry *e)
{
	for (size_t i = 0; i < e->n_regs; i++) {
		int rc = put_fresh(e, &e->regs[i]);

		if (rc != 0)
			return rc;
	}
	cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-ETCD-RESTORED",
		"etcd at %s answers again; registered %zu node%s again with fresh leases",
		e->client->urls, e->n_regs, e->n_regs == 1 ? "" : "s");
	e->outage = false;
	return 0;
}

/* Renews every lease; a lease etcd lost is replaced by a fresh one. */
static int renew_all_locked(struct etcd_registry *e)
{
	for (size_t i = 0; i < e->n_regs; i++) {
		struct etcd_node_reg *r = &e->regs[i];
		int64_t left = 0;
		int rc;

		if (r->lease == 0)
			continue;
		rc = etcd_keepalive(e->client, r->lease, &left);
		if (rc == 0 && left > 0)
			continue;
		if (rc == 0) {
			cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-ETCD-LEASE-LOST",
				"etcd lost the lease of node \"%s\" of service \"%s\"; putting it "
				"again with a fresh lease",
				r->node_id, r->service);
			rc = put_fresh(e, r);
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int keeper_period_locked(const struct etcd_registry *e)
{
	int period = KEEPER_MAX_MS;

	if (e->outage)
		return KEEPER_RETRY_MS;
	for (size_t i = 0; i < e->n_regs; i++) {
		if (e->regs[i].ttl > 0 && e->regs[i].ttl * 1000 / 3 < period)
			period = e->regs[i].ttl * 1000 / 3;
	}
	return period < KEEPER_MIN_MS ? KEEPER_MIN_MS : period;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *keeper_main(void *arg)
{
	struct etcd_registry *e = arg;

	pthread_mutex_lock(&e->lock);
	while (!e->stopping) {
		struct timespec deadline;
		int rc;

		deadline_after(&deadline, keeper_period_locked(e));
		if (pthread_cond_timedwait(&e->cond, &e->lock, &deadline) == 0 || e->stopping)
			continue;
		if (e->n_regs == 0)
			continue;
		rc = e->outage ? reregister_all_locked(e) : renew_all_locked(e);
		if (rc != 0 && !cmi_etcd_unreachable(rc))
			cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-ETCD-RENEW-FAILED",
				"renewing etcd registrations failed, retrying: %s",
				cmicro_last_errmsg());
		note_outage_locked(e, rc);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* ---- life cycle ---- */

static void etcd_free_impl(struct etcd_registry *e)
{
	for (size_t i = 0; i < e->n_regs; i++)
		node_reg_clear(&e->regs[i]);
	free(e->regs);
	cmi_etcd_client_free(e->client);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
}

static void etcd_destroy(struct cmicro_registry *reg)
{
	struct etcd_registry *e = reg->impl;

	if (e == NULL)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->lock);
	if (e->keeper_started)
		pthread_join(e->keeper, NULL);
	etcd_free_impl(e);
}

static const struct cmi_registry_ops etcd_ops = {
	.name = "etcd",
	.register_service = etcd_register,
	.deregister = etcd_deregister,
	.get_service = etcd_get_service,
	.list_services = etcd_list_services,
	.watch = etcd_watch_op,
	.destroy = etcd_destroy,
};

static int etcd_impl_new(struct cmi_etcd_client *client, struct etcd_registry **out)
{
	struct etcd_registry *e = cmi_calloc(1, sizeof(*e));
	pthread_condattr_t attr;
	int rc;

	*out = NULL;
	if (e == NULL) {
		cmi_etcd_client_free(client);
		return CMICRO_ENOMEM;
	}
	e->client = client;
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cond, &attr);
	pthread_condattr_destroy(&attr);

	rc = cmi_thread_create(&e->keeper, keeper_main, e);
	if (rc != 0) {
		etcd_free_impl(e);
		return cmi_error(CMICRO_EIO, "cannot start the etcd registry's lease thread: %s; "
					     "raise the process thread limit",
				 strerror_r(rc, (char[128]){0}, 128));
	}
	e->keeper_started = true;
	*out = e;
	return 0;
}

CMICRO_API int cmicro_registry_etcd_new(const struct cmicro_etcd_opts *opts,
					struct cmicro_registry **out)
{
	struct cmi_etcd_client *client = NULL;
	struct etcd_registry *e = NULL;
	int rc;

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_etcd_new: the output is NULL");
	*out = NULL;
	rc = cmi_etcd_client_new(opts, &client);
	if (rc != 0)
		return rc;
	rc = cmi_etcd_probe(client);
	if (rc != 0) {
		cmi_etcd_client_free(client);
		return rc;
	}
	rc = etcd_impl_new(client, &e);
	if (rc != 0)
		return rc;
	return cmi_registry_new(&etcd_ops, e, e->client->urls, out);
}
