/*
 * Publishing: the publication handle, the publish calls, and the control
 * thread that looks subscribers up in the registry (a request that may
 * block) and renews registrations.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <openssl/rand.h>

#include "broker/outbox_int.h"

static void pub_release(struct cmicro_publication *pub)
{
	struct cmicro_publish_result *r;

	if (pub == NULL || atomic_fetch_sub(&pub->refs, 1) != 1)
		return;
	r = &pub->result;
	for (size_t i = 0; i < r->n_deliveries; i++) {
		free(r->deliveries[i].node_id);
		free(r->deliveries[i].address);
		free(r->deliveries[i].message);
	}
	free(r->deliveries);
	pthread_cond_destroy(&pub->cond);
	pthread_mutex_destroy(&pub->lock);
	free(pub);
}

static int pub_fill_delivery(struct cmicro_delivery *d, const struct brk_target *t)
{
	d->node_id = strdup(t->node_id);
	d->address = strdup(t->address);
	d->ok = t->ok;
	d->err = t->ok ? 0 : (t->res.err != 0 ? t->res.err : CMICRO_EPROTO);
	d->http_status = t->res.status;
	d->tls_reason = t->res.tls_reason;
	d->message = strdup(t->ok ? "" : t->res.message);
	return (d->node_id && d->address && d->message) ? 0 : -1;
}

static void pub_fill(struct cmicro_publish_result *r, const struct brk_msg *m, int err,
		     bool backlogged)
{
	r->err = err;
	r->backlogged = backlogged;
	r->targets = m->n_targets;
	r->deliveries = m->n_targets ? calloc(m->n_targets, sizeof(*r->deliveries)) : NULL;
	for (size_t i = 0; r->deliveries != NULL && i < m->n_targets; i++) {
		if (m->targets[i].ok)
			r->received++;
		pub_fill_delivery(&r->deliveries[r->n_deliveries++], &m->targets[i]);
	}
}

void cmi_brk_pub_report(struct brk_msg *m, int err, bool backlogged)
{
	struct cmicro_publication *pub = m->pub;

	if (pub == NULL)
		return;
	m->pub = NULL;
	pthread_mutex_lock(&pub->lock);
	pub_fill(&pub->result, m, err, backlogged);
	pub->done = true;
	pthread_cond_broadcast(&pub->cond);
	pthread_mutex_unlock(&pub->lock);
	if (pub->fn != NULL)
		pub->fn(pub->user, &pub->result);
	pub_release(pub);
}

CMICRO_API int cmicro_publication_wait(struct cmicro_publication *pub, int timeout_ms,
				       const struct cmicro_publish_result **result)
{
	int rc;

	if (pub == NULL || result == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_publication_wait: publication and result "
						"must not be NULL");
	*result = NULL;
	pthread_mutex_lock(&pub->lock);
	rc = cmi_brk_wait(&pub->cond, &pub->lock, &pub->done, timeout_ms);
	pthread_mutex_unlock(&pub->lock);
	if (rc != 0)
		return cmi_error(CMICRO_ETIMEDOUT, "no delivery result after %d ms; the delivery "
						   "goes on, wait again or raise the timeout",
				 timeout_ms);
	*result = &pub->result;
	return 0;
}

CMICRO_API void cmicro_publication_free(struct cmicro_publication *pub)
{
	pub_release(pub);
}

void cmi_brk_msg_free(struct brk_msg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_targets; i++) {
		free(m->targets[i].node_id);
		free(m->targets[i].address);
		free(m->targets[i].queue);
	}
	free(m->targets);
	cmi_brk_free_strings(m->got_nodes, m->n_got_nodes);
	cmi_brk_free_strings(m->got_queues, m->n_got_queues);
	pub_release(m->pub);
	free(m->topic);
	free(m->json);
	free(m->id);
	free(m);
}

/* Encodes msg with a Micro-Id header added at its sorted position. The
 * copy shares the strings and the body of msg, so nothing large is
 * copied. */
static int pub_encode_with_id(const struct cmicro_message *msg, const char *topic,
			      const char *id, struct brk_msg *m)
{
	struct cmicro_message view = *msg;
	size_t at = 0;
	int rc;

	while (at < msg->n_headers && strcmp(msg->headers[at].key, CMI_ID_HEADER) < 0)
		at++;
	view.headers = cmi_calloc(msg->n_headers + 1, sizeof(*view.headers));
	if (view.headers == NULL)
		return CMICRO_ENOMEM;
	/* A message without headers has a NULL array, which memcpy must not
	 * get even for zero bytes. */
	for (size_t i = 0; i < msg->n_headers; i++)
		view.headers[i < at ? i : i + 1] = msg->headers[i];
	view.headers[at].key = (char *)CMI_ID_HEADER;
	view.headers[at].value = (char *)id;
	view.n_headers = view.cap_headers = msg->n_headers + 1;
	rc = cmi_message_encode(&view, topic, &m->json, &m->len);
	free(view.headers);
	return rc;
}

/* Encodes msg, keeping a caller-set Micro-Id or adding a generated UUID, so
 * every retry of the message carries the same id. */
static int pub_encode(const struct cmicro_message *msg, const char *topic, struct brk_msg *m)
{
	const char *id = cmicro_message_get_header(msg, CMI_ID_HEADER);
	char uuid[CMI_BRK_ID_SIZE];
	int rc;

	if (id != NULL && id[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "message header Micro-Id is empty; remove it to get "
						"a random id, or set a unique one");
	if (id != NULL) {
		m->id = cmi_strdup(id);
		return m->id ? cmi_message_encode(msg, topic, &m->json, &m->len) : CMICRO_ENOMEM;
	}
	rc = cmi_brk_message_id(uuid);
	if (rc == 0 && (m->id = cmi_strdup(uuid)) == NULL)
		rc = CMICRO_ENOMEM;
	return rc == 0 ? pub_encode_with_id(msg, topic, uuid, m) : rc;
}

static int pub_make_msg(const char *topic, const struct cmicro_message *msg,
			struct brk_msg **out)
{
	struct brk_msg *m;
	int rc = cmi_topic_check(topic);

	*out = NULL;
	if (rc != 0)
		return rc;
	m = cmi_calloc(1, sizeof(*m));
	if (m == NULL)
		return CMICRO_ENOMEM;
	rc = pub_encode(msg, topic, m);
	if (rc == 0 && (m->topic = cmi_strdup(topic)) == NULL)
		rc = CMICRO_ENOMEM;
	if (rc != 0) {
		cmi_brk_msg_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static struct cmicro_publication *pub_new(cmicro_publish_fn fn, void *user, int refs)
{
	struct cmicro_publication *pub = cmi_calloc(1, sizeof(*pub));

	if (pub == NULL)
		return NULL;
	atomic_init(&pub->refs, refs);
	pthread_mutex_init(&pub->lock, NULL);
	pthread_cond_init(&pub->cond, NULL);
	pub->fn = fn;
	pub->user = user;
	return pub;
}

static int pub_submit(struct cmicro_broker *b, struct brk_msg *m)
{
	pthread_mutex_lock(&b->lock);
	if (!b->connected || b->stopping) {
		pthread_mutex_unlock(&b->lock);
		return cmi_error(CMICRO_ESTATE, "cannot publish to \"%.64s\": the broker is not "
						"connected; call cmicro_broker_connect first",
				 m->topic);
	}
	b->pending++;
	pthread_mutex_unlock(&b->lock);
	m->broker = b;
	atomic_fetch_add(&b->stats.published, 1);
	cmi_brk_metrics_count(b, m->topic, CMI_METRIC_PUBLISHED);
	cmi_brk_ctl_push(b, m);
	return 0;
}

/* Undoes a publish that was not handed to the broker's threads. */
static void pub_abort(struct cmicro_broker *b, struct brk_msg *m,
		      struct cmicro_publication **out)
{
	/* A failed publish stores nothing, so the caller may simply retry. */
	if (m->outbox_seq > 0 && cmi_outbox_delete(b->outbox, m->outbox_seq, m->len) != 0)
		cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-OUTBOX-DELETE",
			"cannot remove message %s from outbox %s after a failed publish: %s; it is "
			"sent on the next connect",
			m->id, b->outbox_path, cmicro_last_errmsg());
	if (out != NULL && *out != NULL) {
		pub_release(*out);
		*out = NULL;
	}
	cmi_brk_msg_free(m);
}

static int pub_common(struct cmicro_broker *b, const char *topic,
		      const struct cmicro_message *msg, cmicro_publish_fn fn, void *user,
		      struct cmicro_publication **out)
{
	struct brk_msg *m = NULL;
	int rc;

	if (b == NULL || msg == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_publish: broker and message must not "
						"be NULL");
	rc = pub_make_msg(topic, msg, &m);
	if (rc != 0)
		return rc;
	if (out != NULL || fn != NULL) {
		m->pub = pub_new(fn, user, out != NULL ? 2 : 1);
		if (m->pub == NULL) {
			cmi_brk_msg_free(m);
			return CMICRO_ENOMEM;
		}
		if (out != NULL)
			*out = m->pub;
	}

	/* Committed before publish returns: from here on a crash loses nothing. */
	if (b->outbox != NULL)
		rc = cmi_outbox_put(b->outbox, m->id, m->topic, m->json, m->len, &m->outbox_seq);
	if (rc == 0)
		rc = pub_submit(b, m);
	if (rc != 0)
		pub_abort(b, m, out);
	return rc;
}

CMICRO_API int cmicro_broker_publish(struct cmicro_broker *b, const char *topic,
				     const struct cmicro_message *msg,
				     struct cmicro_publication **out)
{
	if (out != NULL)
		*out = NULL;
	return pub_common(b, topic, msg, NULL, NULL, out);
}

CMICRO_API int cmicro_broker_publish_notify(struct cmicro_broker *b, const char *topic,
					    const struct cmicro_message *msg, cmicro_publish_fn fn,
					    void *user)
{
	if (fn == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_publish_notify: callback is NULL");
	return pub_common(b, topic, msg, fn, user, NULL);
}
