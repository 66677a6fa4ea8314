/*
 * Outcome of a delivery attempt and the per-topic backlog (loop thread).
 *
 * A message is complete once every broadcast node listed at its last
 * attempt and one member of every queue group listed then has it. A message
 * that found no subscriber at all waits in the backlog for one, as in
 * go-micro, whose inbox keeps such messages for the next publish. Retries
 * go to the nodes registered at retry time that do not have the message
 * yet, so a subscriber that restarted with a new node id still gets it.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/outbox_int.h"

struct brk_topic {
	struct brk_topic *next;
	struct cmicro_broker *broker;
	char *name;
	struct brk_msg *head, *tail;
	size_t count;
	struct event *timer;
	int backoff_ms;
};

/* A node and failure already logged, so repeats stay quiet until the node
 * recovers. */
struct brk_logged {
	struct brk_logged *next;
	char *node_id;
	int err;
	int status;
	enum cmicro_tls_reason reason;
};

/* Removes m's outbox row once no further attempt will be made. A failure
 * only means the message is sent once more on the next connect. */
static void bl_outbox_remove(struct cmicro_broker *b, struct brk_msg *m)
{
	if (m->outbox_seq <= 0 || cmi_outbox_delete(b->outbox, m->outbox_seq, m->len) == 0)
		return;
	cmi_brk_log_limited(&b->rl_outbox, CMICRO_LOG_WARNING, "BROKER-OUTBOX-DELETE",
			    "cannot remove message %s of topic %s from outbox %s: %s; it is sent "
			    "again on the next connect",
			    m->id, m->topic, b->outbox_path, cmicro_last_errmsg());
}

/* Stores which nodes have m after a partial delivery, so a restart sends
 * it only to the others. */
static void bl_outbox_progress(struct cmicro_broker *b, struct brk_msg *m)
{
	if (m->outbox_seq <= 0 || !m->got_changed)
		return;
	m->got_changed = false;
	if (cmi_outbox_set_got(b->outbox, m->outbox_seq, m->got_nodes, m->n_got_nodes,
			       m->got_queues, m->n_got_queues) != 0)
		cmi_brk_log_limited(&b->rl_outbox, CMICRO_LOG_WARNING, "BROKER-OUTBOX-UPDATE",
				    "cannot record the nodes that have message %s in outbox %s: "
				    "%s; after a restart they may get it again",
				    m->id, b->outbox_path, cmicro_last_errmsg());
}

void cmi_brk_drop(struct cmicro_broker *b, struct brk_msg *m, const char *why)
{
	/* A disconnect leaves an outbox message in the file for the next
	 * connect, so it is not given up. */
	if (b->closing && m->outbox_seq > 0) {
		b->outbox_kept++;
		cmi_brk_msg_finish(b, m, CMICRO_ECLOSED, false);
		return;
	}
	cmi_brk_log_limited(&b->rl_drop, CMICRO_LOG_WARNING, "BROKER-DROPPED",
			    "dropped message %s of topic %s after %d attempts: %s", m->id,
			    m->topic, m->attempts, why);
	bl_outbox_remove(b, m);
	cmi_brk_msg_finish(b, m, b->closing ? CMICRO_ECLOSED : CMICRO_ELIMIT, true);
}

static bool bl_logged_before(struct cmicro_broker *b, const struct brk_target *t)
{
	for (struct brk_logged *l = b->logged; l != NULL; l = l->next) {
		if (strcmp(l->node_id, t->node_id) == 0 && l->err == t->res.err &&
		    l->status == t->res.status && l->reason == t->res.tls_reason)
			return true;
	}
	return false;
}

static void bl_log_failure(struct cmicro_broker *b, const struct brk_msg *m,
			   const struct brk_target *t)
{
	struct brk_logged *l;

	if (bl_logged_before(b, t))
		return;
	cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-DELIVERY-FAILED",
		"delivery of topic %s to node %s at %s://%s failed (%s%s%s): %s; the message stays "
		"in the backlog, and further failures of this node for this reason are not logged "
		"until it recovers",
		m->topic, t->node_id, t->https ? "https" : "http", t->address,
		cmicro_err_name(t->res.err),
		t->res.tls_reason != CMICRO_TLS_REASON_NONE ? ", TLS " : "",
		t->res.tls_reason != CMICRO_TLS_REASON_NONE ? cmicro_tls_reason_name(t->res.tls_reason)
							   : "",
		t->res.message);
	l = calloc(1, sizeof(*l));
	if (l == NULL || (l->node_id = strdup(t->node_id)) == NULL) {
		free(l);
		return;
	}
	l->err = t->res.err;
	l->status = t->res.status;
	l->reason = t->res.tls_reason;
	l->next = b->logged;
	b->logged = l;
}

static void bl_log_recovery(struct cmicro_broker *b, const struct brk_target *t)
{
	struct brk_logged **link = &b->logged;
	bool was_failing = false;

	while (*link != NULL) {
		struct brk_logged *l = *link;

		if (strcmp(l->node_id, t->node_id) == 0) {
			*link = l->next;
			free(l->node_id);
			free(l);
			was_failing = true;
		} else {
			link = &l->next;
		}
	}
	if (was_failing)
		cmi_log(CMICRO_LOG_INFO, "broker", "BROKER-DELIVERY-RECOVERED",
			"delivery to node %s at %s works again", t->node_id, t->address);
}

/* Records in the outbox each node that has m as soon as it responds with
 * 2xx, not only when the slowest node of the attempt has responded. A
 * publisher restarted in between would otherwise send m again to every node
 * that had it. The last response of an attempt is recorded by
 * bl_outbox_progress. */
void cmi_brk_outbox_target_ok(struct cmicro_broker *b, struct brk_msg *m)
{
	size_t n_nodes = 0, n_queues = 0;
	char **nodes, **queues;

	if (b->outbox == NULL || m->outbox_seq <= 0)
		return;
	nodes = calloc(m->n_got_nodes + m->n_targets + 1, sizeof(*nodes));
	queues = calloc(m->n_got_queues + m->n_targets + 1, sizeof(*queues));
	if (nodes != NULL && queues != NULL) {
		for (size_t i = 0; i < m->n_got_nodes; i++)
			nodes[n_nodes++] = m->got_nodes[i];
		for (size_t i = 0; i < m->n_got_queues; i++)
			queues[n_queues++] = m->got_queues[i];
		for (size_t i = 0; i < m->n_targets; i++) {
			const struct brk_target *t = &m->targets[i];

			if (!t->done || !t->ok)
				continue;
			if (t->queue != NULL)
				queues[n_queues++] = t->queue;
			else
				nodes[n_nodes++] = t->node_id;
		}
		if (cmi_outbox_set_got(b->outbox, m->outbox_seq, nodes, n_nodes, queues,
				       n_queues) != 0)
			cmi_brk_log_limited(&b->rl_outbox, CMICRO_LOG_WARNING,
					    "BROKER-OUTBOX-UPDATE",
					    "cannot record the nodes that have message %s in outbox "
					    "%s: %s; after a restart they may get it again",
					    m->id, b->outbox_path, cmicro_last_errmsg());
	}
	free(nodes);
	free(queues);
}

static int bl_remember(char ***list, size_t *n, const char *s)
{
	char **grown = realloc(*list, (*n + 1) * sizeof(**list));

	if (grown == NULL)
		return -1;
	*list = grown;
	grown[*n] = strdup(s);
	if (grown[*n] == NULL)
		return -1;
	(*n)++;
	return 0;
}

/* Counts the attempt, remembers who has the message; returns the number of
 * failed targets and sets *first_err. */
static size_t bl_account(struct cmicro_broker *b, struct brk_msg *m, int *first_err)
{
	size_t failed = 0;

	*first_err = 0;
	for (size_t i = 0; i < m->n_targets; i++) {
		struct brk_target *t = &m->targets[i];

		if (!t->ok) {
			atomic_fetch_add(&b->stats.failed, 1);
			cmi_brk_metrics_count(b, m->topic, CMI_METRIC_FAILED);
			if (failed++ == 0)
				*first_err = t->res.err;
			bl_log_failure(b, m, t);
			continue;
		}
		atomic_fetch_add(&b->stats.delivered, 1);
		cmi_brk_metrics_count(b, m->topic, CMI_METRIC_DELIVERED);
		m->ever_delivered = true;
		m->got_changed = true;
		bl_log_recovery(b, t);
		if (t->queue != NULL)
			bl_remember(&m->got_queues, &m->n_got_queues, t->queue);
		else
			bl_remember(&m->got_nodes, &m->n_got_nodes, t->node_id);
	}
	return failed;
}

void cmi_brk_clear_targets(struct brk_msg *m)
{
	for (size_t i = 0; i < m->n_targets; i++) {
		free(m->targets[i].node_id);
		free(m->targets[i].address);
		free(m->targets[i].queue);
	}
	free(m->targets);
	m->targets = NULL;
	m->n_targets = 0;
}

static struct brk_topic *bl_topic(struct cmicro_broker *b, const char *name);

static void bl_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct brk_topic *t = arg;
	struct cmicro_broker *b = t->broker;
	struct brk_msg *list = t->head;

	(void)fd;
	(void)what;
	t->head = t->tail = NULL;
	atomic_fetch_sub(&b->stats.backlog, t->count);
	cmi_brk_metrics_backlog(b, t->name, -(int)t->count);
	t->count = 0;
	t->backoff_ms = t->backoff_ms * 2 > b->opts.retry_max_ms ? b->opts.retry_max_ms
								 : t->backoff_ms * 2;
	while (list != NULL) {
		struct brk_msg *next = list->next;

		list->retry = true;
		atomic_fetch_add(&b->stats.retried, 1);
		cmi_brk_ctl_push(b, list);
		list = next;
	}
}

static struct brk_topic *bl_topic(struct cmicro_broker *b, const char *name)
{
	struct brk_topic *t;

	for (t = b->topics; t != NULL; t = t->next) {
		if (strcmp(t->name, name) == 0)
			return t;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->name = strdup(name)) == NULL ||
	    (t->timer = event_new(b->base, -1, 0, bl_timer_cb, t)) == NULL) {
		if (t != NULL)
			free(t->name);
		free(t);
		return NULL;
	}
	t->broker = b;
	t->backoff_ms = b->opts.retry_initial_ms;
	t->next = b->topics;
	b->topics = t;
	return t;
}

static void bl_arm(struct brk_topic *t)
{
	struct timeval tv = {t->backoff_ms / 1000, (t->backoff_ms % 1000) * 1000};

	if (!event_pending(t->timer, EV_TIMEOUT, NULL))
		event_add(t->timer, &tv);
}

static void bl_push(struct cmicro_broker *b, struct brk_msg *m)
{
	struct brk_topic *t = bl_topic(b, m->topic);

	if (t == NULL) {
		cmi_brk_drop(b, m, "out of memory for the backlog");
		return;
	}
	/* With an outbox, its limits bound the backlog, and publish fails
	 * past them instead of an old message being dropped here. */
	if (t->count >= (size_t)b->opts.backlog_max && b->outbox == NULL) {
		struct brk_msg *oldest = t->head;

		t->head = oldest->next;
		if (t->head == NULL)
			t->tail = NULL;
		t->count--;
		atomic_fetch_sub(&b->stats.backlog, 1);
		cmi_brk_metrics_backlog(b, t->name, -1);
		cmi_brk_drop(b, oldest, "the topic's backlog is full; fix the failing subscribers, "
					"raise backlog_max, or keep messages in an outbox "
					"(MICRO_BROKER_OUTBOX, cmicro pub --outbox)");
	}
	m->next = NULL;
	if (t->tail != NULL)
		t->tail->next = m;
	else
		t->head = m;
	t->tail = m;
	t->count++;
	atomic_fetch_add(&b->stats.backlog, 1);
	atomic_fetch_add(&b->stats.backlogged, 1);
	cmi_brk_metrics_count(b, m->topic, CMI_METRIC_BACKLOGGED);
	cmi_brk_metrics_backlog(b, t->name, 1);
	bl_arm(t);
}

static void bl_after_success(struct cmicro_broker *b, struct brk_msg *m)
{
	struct brk_topic *t;

	if (!m->retry)
		return;
	for (t = b->topics; t != NULL; t = t->next) {
		if (strcmp(t->name, m->topic) == 0)
			t->backoff_ms = b->opts.retry_initial_ms;
	}
}

/* A 413 or 400 response cannot turn into a success on retry, unlike a 404
 * (a stale registry entry that a restarted subscriber replaces) or a 5xx.
 * Returns whether every failed target got one, and writes the reason of the
 * first into why.
 * NOTE: when other targets of the message failed for a retryable reason,
 * the message is kept and the 413 node is retried with them. */
static bool bl_failed_for_good(const struct brk_msg *m, char *why, size_t size)
{
	bool any = false;

	for (size_t i = 0; i < m->n_targets; i++) {
		const struct brk_target *t = &m->targets[i];
		int status = t->res.status;

		if (t->ok)
			continue;
		if (status != 413 && status != 400)
			return false;
		if (any)
			continue;
		any = true;
		if (status == 413)
			cmi_fmt(why, size, "node %s at %s answered 413: the message of %zu bytes is "
					   "larger than the subscriber's body limit (its max_body_bytes); "
					   "raise that limit or send smaller messages",
				t->node_id, t->address, m->len);
		else
			cmi_fmt(why, size, "node %s at %s answered 400 (bad request), which a retry "
					   "cannot change: %s",
				t->node_id, t->address, t->res.message);
	}
	return any;
}

void cmi_brk_attempt_done(struct cmicro_broker *b, struct brk_msg *m)
{
	int first_err = 0;
	char why[512] = "";
	size_t failed = bl_account(b, m, &first_err);
	bool complete = failed == 0 && (m->n_targets > 0 || m->ever_delivered);
	bool rejected = !complete && bl_failed_for_good(m, why, sizeof(why));
	/* An outbox message is retried until delivered: dropping it would
	 * lose what the outbox promised to keep. */
	bool keep = !complete && !rejected && !b->closing &&
		    (m->attempts < b->opts.retry_max_attempts || m->outbox_seq > 0);
	int err = m->n_targets == 0 ? CMICRO_ENOTFOUND : first_err;

	if (m->pub != NULL) {
		if (m->n_targets == 0 && m->resolve_error[0] != '\0')
			err = CMICRO_EDB;
		cmi_brk_pub_report(m, m->n_targets > failed ? 0 : err, keep);
	}
	cmi_brk_clear_targets(m);
	if (complete) {
		bl_after_success(b, m);
		bl_outbox_remove(b, m);
		cmi_brk_msg_finish(b, m, 0, false);
	} else if (b->closing) {
		cmi_brk_drop(b, m, "the broker disconnected");
	} else if (rejected) {
		cmi_brk_drop(b, m, why);
	} else if (!keep) {
		cmi_brk_drop(b, m, "no more delivery attempts (retry_max_attempts)");
	} else {
		if (m->n_targets == 0 && m->resolve_error[0] != '\0')
			cmi_brk_log_limited(&b->rl_drop, CMICRO_LOG_WARNING, "BROKER-NO-TARGETS",
					    "topic %s: %s; the message waits in the backlog",
					    m->topic, m->resolve_error);
		bl_outbox_progress(b, m);
		bl_push(b, m);
	}
}

void cmi_brk_loop_shutdown(struct cmicro_broker *b)
{
	struct brk_msg *list;

	b->closing = true;
	cmi_http_client_free(b->client); /* ends running deliveries */
	b->client = NULL;

	pthread_mutex_lock(&b->lock);
	list = b->send_head;
	b->send_head = b->send_tail = NULL;
	pthread_mutex_unlock(&b->lock);
	for (struct brk_msg *next; list != NULL; list = next) {
		next = list->next;
		cmi_brk_drop(b, list, "the broker disconnected");
	}
	while (b->topics != NULL) {
		struct brk_topic *t = b->topics;

		b->topics = t->next;
		for (struct brk_msg *m = t->head, *next; m != NULL; m = next) {
			next = m->next;
			atomic_fetch_sub(&b->stats.backlog, 1);
			cmi_brk_metrics_backlog(b, t->name, -1);
			cmi_brk_drop(b, m, "the broker disconnected with the message in the backlog");
		}
		event_free(t->timer);
		free(t->name);
		free(t);
	}
	cmi_brk_log_flush(&b->rl_drop, CMICRO_LOG_WARNING, "BROKER-DROPPED", "dropped messages");
	if (b->outbox_kept > 0)
		cmi_log(CMICRO_LOG_NOTICE, "broker", "BROKER-OUTBOX-KEPT",
			"%zu undelivered messages stay in outbox %s and are sent on the next "
			"connect",
			b->outbox_kept, b->outbox_path);
	b->outbox_kept = 0;
	while (b->logged != NULL) {
		struct brk_logged *l = b->logged;

		b->logged = l->next;
		free(l->node_id);
		free(l);
	}
	b->closing = false;
}
