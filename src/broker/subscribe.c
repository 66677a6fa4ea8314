/* Subscriptions: registration in the registry, and the serving side of the
 * wire protocol, which checks each request and queues it for a handler. */
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

/* Builds the service sub registers (b->lock held: it reads the served
 * certificate's facts, which a reload rewrites). */
static int sub_build_service(const struct cmicro_subscription *sub, const struct cmicro_broker *b,
			     struct cmicro_service **out)
{
	bool secure = b->serve_tls;
	struct cmicro_service *svc = NULL;
	struct cmicro_node *node = NULL;
	int rc;

	rc = cmicro_service_new(CMICRO_BROKER_SERVICE,
				sub->queue ? sub->queue : CMICRO_BROKER_BROADCAST, &svc);
	if (rc == 0)
		rc = cmicro_service_add_node(svc, sub->node_id, sub->address, &node);
	if (rc == 0)
		rc = cmicro_service_set_meta(svc, node, "broker", "http");
	if (rc == 0)
		rc = cmicro_service_set_meta(svc, node, "topic", sub->topic);
	if (rc == 0)
		rc = cmicro_service_set_meta(svc, node, "secure", secure ? "true" : "false");
	/* Lets cmicro publishers choose how to spread requests over
	 * connections (cmi_http_post.no_spread). go-micro ignores keys it does not
	 * know. */
	if (rc == 0)
		rc = cmicro_service_set_meta(svc, node, "handlers",
					     b->opts.inline_handlers ? "inline" : "threads");
	/* Lets `cmicro registry ls` and `cmicro tls scan` show the certificate
	 * without connecting. */
	if (rc == 0 && secure && b->cert_fingerprint[0] != '\0')
		rc = cmicro_service_set_meta(svc, node, "tls_fingerprint", b->cert_fingerprint);
	if (rc == 0 && secure && b->cert_not_after[0] != '\0')
		rc = cmicro_service_set_meta(svc, node, "tls_not_after", b->cert_not_after);
	if (rc != 0) {
		cmicro_service_free(svc);
		return rc;
	}
	*out = svc;
	return 0;
}

static int sub_new(struct cmicro_broker *b, const char *topic, const char *queue,
		   struct cmicro_subscription **out)
{
	struct cmicro_subscription *sub = cmi_calloc(1, sizeof(*sub));
	char id[512], addr[320];
	int port;
	int rc;

	*out = NULL;
	if (sub == NULL)
		return CMICRO_ENOMEM;
	atomic_init(&sub->refs, 1);
	port = cmi_http_server_port(b->server);
	/* NOTE: go-micro's node id leaves the queue out, so two subscriptions
	 * of one topic on one broker share an id. Registries keyed by node id
	 * (etcd, SQLite) then keep only the later one, as with go-micro. */
	cmi_fmt(id, sizeof(id), "%s-%s", topic, b->id);
	cmi_brk_join_host_port(b->advertised, port, addr, sizeof(addr));
	sub->topic = cmi_strdup(topic);
	sub->queue = (queue && queue[0]) ? cmi_strdup(queue) : NULL;
	sub->node_id = cmi_strdup(id);
	sub->address = cmi_strdup(addr);
	pthread_mutex_init(&sub->reg_lock, NULL);
	sub->meta_gen = b->meta_gen;
	rc = (sub->topic && sub->node_id && sub->address && (!queue || !queue[0] || sub->queue))
		     ? sub_build_service(sub, b, &sub->svc)
		     : CMICRO_ENOMEM;
	if (rc == 0 && b->dedup)
		rc = cmi_dedup_new((size_t)b->opts.dedup_window, &sub->dedup);
	if (rc != 0) {
		cmi_brk_sub_release(sub);
		return rc;
	}
	*out = sub;
	return 0;
}

void cmi_brk_sub_release(struct cmicro_subscription *sub)
{
	if (sub == NULL || atomic_fetch_sub(&sub->refs, 1) != 1)
		return;
	cmicro_service_free(sub->svc);
	pthread_mutex_destroy(&sub->reg_lock);
	cmi_dedup_free(sub->dedup);
	free(sub->topic);
	free(sub->queue);
	free(sub->node_id);
	free(sub->address);
	free(sub);
}

static int sub_check_args(struct cmicro_broker *b, const char *topic, cmicro_handler_fn fn,
			  struct cmicro_subscription **out)
{
	if (b == NULL || fn == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_subscribe: broker, handler and out "
						"must not be NULL");
	*out = NULL;
	return cmi_topic_check(topic);
}

CMICRO_API int cmicro_broker_subscribe(struct cmicro_broker *b, const char *topic,
				       const char *queue, cmicro_handler_fn fn, void *user,
				       struct cmicro_subscription **out)
{
	struct cmicro_subscription *sub = NULL;
	int rc = sub_check_args(b, topic, fn, out);

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&b->lock);
	rc = b->connected && !b->stopping ? sub_new(b, topic, queue, &sub)
		: cmi_error(CMICRO_ESTATE, "cannot subscribe to \"%.64s\": the broker is not "
					   "connected; call cmicro_broker_connect first",
			    topic);
	pthread_mutex_unlock(&b->lock);
	if (rc != 0)
		return rc;
	sub->fn = fn;
	sub->user = user;

	/* Registered before it is listed, so the first message finds it. */
	rc = cmicro_registry_register(b->reg, sub->svc, b->opts.register_ttl_s);
	if (rc != 0) {
		cmi_brk_metrics_registry_error(b);
		cmi_brk_sub_release(sub);
		return rc;
	}
	cmi_registry_cache_invalidate(b->cache, CMICRO_BROKER_SERVICE);
	pthread_mutex_lock(&b->lock);
	atomic_fetch_add(&sub->refs, 1);
	__atomic_store_n(&sub->broker, b, __ATOMIC_RELEASE);
	sub->next = b->subs;
	b->subs = sub;
	pthread_mutex_unlock(&b->lock);
	cmi_log(CMICRO_LOG_INFO, "broker", "BROKER-SUBSCRIBED", "subscribed to %s as node %s at %s "
								"(%s)",
		topic, sub->node_id, sub->address, sub->queue ? sub->queue : "broadcast");
	*out = sub;
	return 0;
}

/* Unlinks sub from the broker and takes its waiting jobs (lock held). */
static struct brk_job *sub_detach(struct cmicro_broker *b, struct cmicro_subscription *sub)
{
	struct cmicro_subscription **link = &b->subs;
	struct brk_job *jobs = sub->jobs_head;

	while (*link != NULL && *link != sub)
		link = &(*link)->next;
	if (*link == sub)
		*link = sub->next;
	sub->next = NULL;
	__atomic_store_n(&sub->broker, NULL, __ATOMIC_RELEASE);
	sub->jobs_head = sub->jobs_tail = NULL;
	sub->queued = 0;
	return jobs;
}

/* Unsubscribes sub from b unless another thread did already. */
static void sub_stop(struct cmicro_broker *b, struct cmicro_subscription *sub)
{
	struct brk_job *jobs, *next;
	int rc;

	pthread_mutex_lock(&b->lock);
	if (sub->broker != b) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	jobs = sub_detach(b, sub);
	pthread_mutex_unlock(&b->lock);

	/* After a renewal under way, which would otherwise register the node
	 * again right after this removes it. */
	pthread_mutex_lock(&sub->reg_lock);
	rc = cmicro_registry_deregister(b->reg, sub->svc);
	pthread_mutex_unlock(&sub->reg_lock);
	if (rc != 0) {
		cmi_brk_metrics_registry_error(b);
		cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-DEREGISTER",
			"cannot deregister node %s: %s; it expires from the registry after %d s",
			sub->node_id, cmicro_last_errmsg(), b->opts.register_ttl_s);
	}
	cmi_registry_cache_invalidate(b->cache, CMICRO_BROKER_SERVICE);
	for (; jobs != NULL; jobs = next) {
		next = jobs->next;
		cmi_brk_delivery_done(jobs->d, -1);
		free(jobs);
	}

	/* Wait for a running handler, unless this is that handler's thread. */
	pthread_mutex_lock(&b->lock);
	while (sub->running && !pthread_equal(sub->runner, pthread_self()))
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	cmi_brk_sub_release(sub); /* the broker's reference */
}

/* Replaces sub->svc when the served certificate's facts changed since it
 * was built (reg_lock held). On failure the old service stays. */
static int sub_refresh_service(struct cmicro_broker *b, struct cmicro_subscription *sub)
{
	struct cmicro_service *fresh = NULL;
	unsigned gen;
	int rc = 0;

	pthread_mutex_lock(&b->lock);
	gen = b->meta_gen;
	if (gen != sub->meta_gen)
		rc = sub_build_service(sub, b, &fresh);
	pthread_mutex_unlock(&b->lock);
	if (rc != 0 || fresh == NULL)
		return rc;
	cmicro_service_free(sub->svc);
	sub->svc = fresh;
	sub->meta_gen = gen;
	return 0;
}

int cmi_brk_sub_renew(struct cmicro_broker *b, struct cmicro_subscription *sub)
{
	int rc = 0;

	pthread_mutex_lock(&sub->reg_lock);
	if (__atomic_load_n(&sub->broker, __ATOMIC_ACQUIRE) != NULL) {
		rc = sub_refresh_service(b, sub);
		if (rc == 0)
			rc = cmicro_registry_register(b->reg, sub->svc, b->opts.register_ttl_s);
	}
	pthread_mutex_unlock(&sub->reg_lock);
	return rc;
}

CMICRO_API int cmicro_subscription_unsubscribe(struct cmicro_subscription *sub)
{
	struct cmicro_broker *b;

	if (sub == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_subscription_unsubscribe: subscription is NULL");
	b = __atomic_load_n(&sub->broker, __ATOMIC_ACQUIRE);
	if (b != NULL)
		sub_stop(b, sub);
	return 0;
}

void cmi_brk_unsubscribe_all(struct cmicro_broker *b)
{
	for (;;) {
		struct cmicro_subscription *sub;

		pthread_mutex_lock(&b->lock);
		sub = b->subs;
		if (sub != NULL)
			atomic_fetch_add(&sub->refs, 1);
		pthread_mutex_unlock(&b->lock);
		if (sub == NULL)
			return;
		sub_stop(b, sub);
		cmi_brk_sub_release(sub);
	}
}

CMICRO_API void cmicro_subscription_free(struct cmicro_subscription *sub)
{
	int rc;

	if (sub == NULL)
		return;
	rc = cmicro_subscription_unsubscribe(sub);
	(void)rc;
	cmi_brk_sub_release(sub);
}

CMICRO_API const char *cmicro_subscription_topic(const struct cmicro_subscription *sub)
{
	return sub ? sub->topic : NULL;
}

CMICRO_API const char *cmicro_subscription_queue(const struct cmicro_subscription *sub)
{
	return sub ? sub->queue : NULL;
}

CMICRO_API const char *cmicro_subscription_node_id(const struct cmicro_subscription *sub)
{
	return sub ? sub->node_id : NULL;
}

CMICRO_API const char *cmicro_subscription_address(const struct cmicro_subscription *sub)
{
	return sub ? sub->address : NULL;
}
