/*
 * Deliveries on the I/O loop: POSTs to every target of a message, the
 * outcome of each attempt, and the per-topic backlog of messages that some
 * node has not received, retried on a timer with exponential backoff.
 */
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

void cmi_brk_msg_finish(struct cmicro_broker *b, struct brk_msg *m, int err, bool dropped)
{
	if (m->pub != NULL)
		cmi_brk_pub_report(m, err, false);
	if (dropped) {
		atomic_fetch_add(&b->stats.dropped, 1);
		cmi_brk_metrics_count(b, m->topic, CMI_METRIC_DROPPED);
	}
	pthread_mutex_lock(&b->lock);
	if (b->pending > 0)
		b->pending--;
	if (b->pending == 0)
		pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	cmi_brk_msg_free(m);
}

static void dl_target_done(void *arg, const struct cmi_http_result *res)
{
	struct brk_target *t = arg;
	struct brk_msg *m = t->msg;

	t->res = *res;
	t->ok = res->err == 0 && res->status >= 200 && res->status <= 299;
	if (!t->ok && t->res.err == 0)
		t->res.err = CMICRO_EPROTO;
	t->done = true;
	if (++m->n_done == m->n_targets)
		cmi_brk_attempt_done(m->broker, m);
	else if (t->ok)
		cmi_brk_outbox_target_ok(m->broker, m);
}

/* go-micro picks http or https from the node's secure metadata, which
 * anyone who can write the registry sets, so in secure mode a plaintext
 * node is a downgrade. Returns true when t must not be sent to. */
static bool dl_refuse_plaintext(struct cmicro_broker *b, struct brk_target *t)
{
	enum cmicro_tls_verify mode = cmicro_tls_config_get_verify(b->tls);
	char text[400];

	if (t->https || mode == CMICRO_TLS_VERIFY_OFF || b->opts.allow_plaintext)
		return false;
	cmi_fmt(text, sizeof(text), "the node is registered with secure=false, so the message "
				    "would travel as plain HTTP; serve the node over TLS, or set "
				    "MICRO_TLS_ALLOW_PLAINTEXT=true to allow it");
	cmi_tls_record_failure(b->tls, t->address, t->node_id, CMICRO_TLS_REASON_PLAINTEXT, text);
	if (mode == CMICRO_TLS_VERIFY_AUDIT)
		return false;
	t->res.err = CMICRO_EVERIFY;
	t->res.tls_reason = CMICRO_TLS_REASON_PLAINTEXT;
	cmi_fmt(t->res.message, sizeof(t->res.message), "not sent: %s", text);
	return true;
}

/* Returns true when evhttp_uriencode would return s unchanged: every byte
 * is an RFC 3986 unreserved character, as in "<topic>-<uuid>" node ids. */
static bool dl_is_unreserved(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~'))
			return false;
	}
	return true;
}

/* Writes "/?id=<node id>" with the id percent-encoded. evhttp_uriencode
 * allocates for every byte it copies, so ids that need no encoding skip
 * it. */
static void dl_path(char *path, size_t size, const char *node_id)
{
	char *encoded;

	if (dl_is_unreserved(node_id)) {
		size_t n = strlen(node_id);

		if (n > size - 6)
			n = size - 6;
		memcpy(path, "/?id=", 5);
		memcpy(path + 5, node_id, n);
		path[5 + n] = '\0';
		return;
	}
	encoded = evhttp_uriencode(node_id, -1, 1);
	cmi_fmt(path, size, "/?id=%s", encoded ? encoded : "");
	free(encoded);
}

static void dl_start(struct cmicro_broker *b, struct brk_msg *m)
{
	m->attempts++;
	m->n_done = 0;
	if (m->n_targets == 0) {
		cmi_brk_attempt_done(b, m);
		return;
	}
	/* The last completion may end m, so the count is read once. */
	for (size_t i = 0, n = m->n_targets; i < n; i++) {
		struct brk_target *t = &m->targets[i];
		char path[1200];
		struct cmi_http_post post = {0};
		struct cmi_http_result res = {0};

		if (dl_refuse_plaintext(b, t)) {
			res = t->res;
			dl_target_done(t, &res);
			continue;
		}
		dl_path(path, sizeof(path), t->node_id);
		post.https = t->https;
		post.no_spread = t->no_spread;
		post.address = t->address;
		post.path = path;
		post.peer_label = t->node_id;
		post.node_id = t->node_id;
		post.body = m->json;
		post.body_len = m->len;
		post.timeout_ms = b->opts.delivery_timeout_ms;
		if (cmi_http_client_post(b->client, &post, dl_target_done, t) != 0) {
			res.err = CMICRO_ECONNECT;
			cmi_fmt(res.message, sizeof(res.message), "%s", cmicro_last_errmsg());
			dl_target_done(t, &res);
		}
	}
}

void cmi_brk_send_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmicro_broker *b = arg;
	struct brk_msg *list;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&b->lock);
	list = b->send_head;
	b->send_head = b->send_tail = NULL;
	pthread_mutex_unlock(&b->lock);
	if (list != NULL)
		cmi_http_loop_note_activity();
	while (list != NULL) {
		struct brk_msg *next = list->next;

		list->next = NULL;
		dl_start(b, list);
		list = next;
	}
}
