/*
 * The control thread: resolves each message's targets from the registry
 * cache (a registry request may block, so neither publishers nor the I/O
 * loop do it) and renews the registrations of the subscriptions.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "broker/broker_int.h"

static bool ctl_has(char **list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i], s) == 0)
			return true;
	}
	return false;
}

static size_t ctl_random(size_t n)
{
	unsigned int r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned int)time(NULL);
	return (size_t)r % n;
}

static int ctl_add_target(struct brk_msg *m, const struct cmicro_node *node, const char *queue)
{
	struct brk_target *grown = realloc(m->targets, (m->n_targets + 1) * sizeof(*grown));
	struct brk_target *t;
	const char *secure = cmicro_kv_get(node->metadata, node->n_metadata, "secure");

	if (grown == NULL)
		return CMICRO_ENOMEM;
	m->targets = grown;
	t = &m->targets[m->n_targets];
	memset(t, 0, sizeof(*t));
	t->msg = m;
	t->node_id = strdup(node->id);
	t->address = strdup(node->address ? node->address : "");
	t->queue = queue ? strdup(queue) : NULL;
	t->https = secure != NULL && strcmp(secure, "true") == 0;
	m->n_targets++;
	return (t->node_id && t->address && (!queue || t->queue)) ? 0 : CMICRO_ENOMEM;
}

static bool ctl_node_matches(const struct cmicro_node *node, const char *topic)
{
	const char *broker = cmicro_kv_get(node->metadata, node->n_metadata, "broker");
	const char *t = cmicro_kv_get(node->metadata, node->n_metadata, "topic");

	return broker && t && node->id && strcmp(broker, "http") == 0 && strcmp(t, topic) == 0;
}

/* Adds one random member of a queue group that has not received m. */
static int ctl_queue_target(struct brk_msg *m, const struct cmicro_service *svc)
{
	size_t count = 0, want;

	if (ctl_has(m->got_queues, m->n_got_queues, svc->version))
		return 0;
	for (size_t i = 0; i < svc->n_nodes; i++)
		count += ctl_node_matches(&svc->nodes[i], m->topic);
	if (count == 0)
		return 0;
	want = ctl_random(count);
	for (size_t i = 0; i < svc->n_nodes; i++) {
		if (ctl_node_matches(&svc->nodes[i], m->topic) && want-- == 0)
			return ctl_add_target(m, &svc->nodes[i], svc->version);
	}
	return 0;
}

/* Adds the targets of one service version: every broadcast node that does
 * not have the message yet, or one member of a queue group. */
static int ctl_targets_of(struct brk_msg *m, const struct cmicro_service *svc)
{
	int rc = 0;

	if (svc->version == NULL || strcmp(svc->version, CMICRO_BROKER_BROADCAST) != 0)
		return svc->version ? ctl_queue_target(m, svc) : 0;
	for (size_t i = 0; i < svc->n_nodes && rc == 0; i++) {
		const struct cmicro_node *node = &svc->nodes[i];

		if (ctl_node_matches(node, m->topic) &&
		    !ctl_has(m->got_nodes, m->n_got_nodes, node->id))
			rc = ctl_add_target(m, node, NULL);
	}
	return rc;
}

static void ctl_resolve(struct cmicro_broker *b, struct brk_msg *m)
{
	struct cmicro_service **list = NULL;
	size_t n = 0;
	int rc;

	m->resolve_error[0] = '\0';
	rc = cmi_registry_cache_get_service(b->cache, CMICRO_BROKER_SERVICE, &list, &n);
	if (rc != 0) {
		cmi_brk_metrics_registry_error(b);
		cmi_fmt(m->resolve_error, sizeof(m->resolve_error), "registry look-up failed: %s",
			cmicro_last_errmsg());
		return;
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = ctl_targets_of(m, list[i]);
	if (rc != 0)
		cmi_fmt(m->resolve_error, sizeof(m->resolve_error), "out of memory listing targets");
	cmicro_service_list_free(list, n);
}

void cmi_brk_ctl_push(struct cmicro_broker *b, struct brk_msg *m)
{
	m->next = NULL;
	pthread_mutex_lock(&b->lock);
	if (b->ctl_tail != NULL)
		b->ctl_tail->next = m;
	else
		b->ctl_head = m;
	b->ctl_tail = m;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* Hands a resolved message to the loop (lock held). */
static void ctl_to_loop(struct cmicro_broker *b, struct brk_msg *m)
{
	m->next = NULL;
	if (b->send_tail != NULL)
		b->send_tail->next = m;
	else
		b->send_head = m;
	b->send_tail = m;
	event_active(b->send_ev, 0, 0);
}

static void ctl_renew(struct cmicro_broker *b)
{
	struct cmicro_subscription *subs[256];
	size_t n = 0;

	pthread_mutex_lock(&b->lock);
	for (struct cmicro_subscription *s = b->subs; s && n < CMI_ARRAY_LEN(subs); s = s->next) {
		atomic_fetch_add(&s->refs, 1);
		subs[n++] = s;
	}
	pthread_mutex_unlock(&b->lock);
	for (size_t i = 0; i < n; i++) {
		if (__atomic_load_n(&subs[i]->broker, __ATOMIC_ACQUIRE) != NULL &&
		    cmicro_registry_register(b->reg, subs[i]->svc, b->opts.register_ttl_s) != 0) {
			cmi_brk_metrics_registry_error(b);
			cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-RENEW",
				"cannot renew the registration of node %s: %s; retrying in %d s",
				subs[i]->node_id, cmicro_last_errmsg(), b->opts.register_interval_s);
		}
		cmi_brk_sub_release(subs[i]);
	}
}

static void *ctl_main(void *arg)
{
	struct cmicro_broker *b = arg;
	double next_renew = cmi_now_mono() + b->opts.register_interval_s;

	pthread_mutex_lock(&b->lock);
	while (!b->ctl_stop) {
		struct brk_msg *m = b->ctl_head;

		if (m != NULL) {
			b->ctl_head = m->next;
			if (b->ctl_head == NULL)
				b->ctl_tail = NULL;
			pthread_mutex_unlock(&b->lock);
			ctl_resolve(b, m);
			pthread_mutex_lock(&b->lock);
			ctl_to_loop(b, m);
		} else if (cmi_now_mono() >= next_renew) {
			pthread_mutex_unlock(&b->lock);
			ctl_renew(b);
			next_renew = cmi_now_mono() + b->opts.register_interval_s;
			pthread_mutex_lock(&b->lock);
		} else {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&b->cond, &b->lock, &ts);
		}
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

int cmi_brk_ctl_start(struct cmicro_broker *b)
{
	b->ctl_stop = false;
	if (cmi_thread_create(&b->ctl_thread, ctl_main, b) != 0)
		return cmi_error(CMICRO_EIO, "cannot start the broker's control thread");
	b->ctl_running = true;
	return 0;
}

void cmi_brk_ctl_stop(struct cmicro_broker *b)
{
	struct brk_msg *m;

	pthread_mutex_lock(&b->lock);
	b->ctl_stop = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (b->ctl_running)
		pthread_join(b->ctl_thread, NULL);
	b->ctl_running = false;

	pthread_mutex_lock(&b->lock);
	m = b->ctl_head;
	b->ctl_head = b->ctl_tail = NULL;
	pthread_mutex_unlock(&b->lock);
	while (m != NULL) {
		struct brk_msg *next = m->next;

		cmi_brk_msg_finish(b, m, CMICRO_ECLOSED, true);
		m = next;
	}
}
