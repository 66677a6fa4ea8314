/*
 * Target resolution and the control thread. A message whose service list
 * is fresh in the registry cache is resolved on the thread that pushes it
 * and goes straight to the I/O loop. Otherwise the control thread resolves
 * it, because a registry request may block and neither publishers nor the
 * I/O loop may wait for one. The control thread also renews the
 * registrations of the subscriptions.
 *
 * Messages reach the loop in the order they were pushed. The fast path is
 * taken only while the control thread's queue is empty, and the control
 * thread keeps the message it resolves at the head of that queue until it
 * hands the message to the loop.
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
	const char *handlers = cmicro_kv_get(node->metadata, node->n_metadata, "handlers");

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
	t->no_spread = handlers != NULL && strcmp(handlers, "threads") == 0;
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

static int ctl_targets_from(struct brk_msg *m, const struct cmi_service_snapshot *snap)
{
	int rc = 0;

	for (size_t i = 0; i < snap->n && rc == 0; i++)
		rc = ctl_targets_of(m, snap->services[i]);
	return rc;
}

static void ctl_resolve(struct cmicro_broker *b, struct brk_msg *m)
{
	struct cmi_service_snapshot *snap = NULL;
	int rc;

	m->resolve_error[0] = '\0';
	rc = cmi_registry_cache_snapshot(b->cache, CMICRO_BROKER_SERVICE, &snap);
	if (rc != 0) {
		cmi_brk_metrics_registry_error(b);
		cmi_fmt(m->resolve_error, sizeof(m->resolve_error), "registry look-up failed: %s",
			cmicro_last_errmsg());
		return;
	}
	if (ctl_targets_from(m, snap) != 0)
		cmi_fmt(m->resolve_error, sizeof(m->resolve_error), "out of memory listing targets");
	cmi_service_snapshot_release(snap);
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

/* Resolves m from a fresh cached service list without blocking. Returns
 * false, with m unchanged, when the control thread must resolve it. */
static bool ctl_resolve_now(struct cmicro_broker *b, struct brk_msg *m)
{
	struct cmi_service_snapshot *snap;
	int rc;

	snap = cmi_registry_cache_peek(b->cache, CMICRO_BROKER_SERVICE);
	if (snap == NULL)
		return false;
	m->resolve_error[0] = '\0';
	rc = ctl_targets_from(m, snap);
	cmi_service_snapshot_release(snap);
	if (rc != 0)
		cmi_brk_clear_targets(m);
	return rc == 0;
}

void cmi_brk_ctl_push(struct cmicro_broker *b, struct brk_msg *m)
{
	bool resolved = ctl_resolve_now(b, m);

	m->next = NULL;
	pthread_mutex_lock(&b->lock);
	/* stopping is set before the loop and its send event are torn down. */
	if (resolved && b->ctl_head == NULL && b->connected && !b->stopping) {
		ctl_to_loop(b, m);
		pthread_mutex_unlock(&b->lock);
		return;
	}

	/* Earlier messages wait for the control thread, so m waits behind them. */
	if (resolved)
		cmi_brk_clear_targets(m);
	if (b->ctl_tail != NULL)
		b->ctl_tail->next = m;
	else
		b->ctl_head = m;
	b->ctl_tail = m;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
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
		if (cmi_brk_sub_renew(b, subs[i]) != 0) {
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
			/* m stays at the head while it is resolved, which keeps
			 * later pushes off the fast path (see the file comment). */
			pthread_mutex_unlock(&b->lock);
			ctl_resolve(b, m);
			pthread_mutex_lock(&b->lock);
			b->ctl_head = m->next;
			if (b->ctl_head == NULL)
				b->ctl_tail = NULL;
			ctl_to_loop(b, m);
		} else if (cmi_now_mono() >= next_renew || b->renew_now) {
			b->renew_now = false;
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
		/* An outbox message stays in the file for the next connect, so it
		 * is not dropped (the loop thread, which counts these too, only
		 * does so after this thread has stopped). */
		bool kept = b->outbox != NULL && m->outbox_seq > 0;

		if (kept)
			b->outbox_kept++;
		cmi_brk_msg_finish(b, m, CMICRO_ECLOSED, !kept);
		m = next;
	}
}
