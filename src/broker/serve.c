/*
 * The serving side of go-micro's HTTP broker protocol. A request must be a
 * POST of the JSON envelope with a Micro-Topic header, addressed with
 * ?id=<node id>. Answers:
 *   405 another method, 404 a POST to a path other than "/" (go-micro
 *   posts to "/"), 400 a body that is not the envelope, lacks Micro-Topic
 *   or comes without ?id= (go-micro replies 500 there; 400 tells the
 *   sender not to retry), 404 no subscription of that topic with that
 *   node id,
 *   503 the subscription's queue is full or it closed meanwhile,
 *   500 a handler returned an error, 200 every handler succeeded.
 * The HTTP layer itself replies 413 to a body over the limit, 431 to a
 * head over its limit, and 400 to a request that breaks HTTP/1.1 framing
 * rules (docs/limits.md lists them all).
 * Rejections are logged at most once every few seconds per client host and
 * reason, so one noisy client neither floods the log nor hides another.
 */
#include <stdlib.h>
#include <string.h>

#include "broker/metrics_int.h"
#include "http/http_server_int.h"

/* reason names the kind of rejection in the rate limit of the log. */
static void serve_reject(struct cmicro_broker *b, struct cmi_http_request *req, int status,
			 const char *reason, const char *text)
{
	atomic_fetch_add(&b->stats.rejected, 1);
	cmi_http_request_log_rejected(req, "broker", reason, "BROKER-REQUEST-REJECTED",
				      "rejected a request from %s with %d: %s",
				      cmi_http_request_peer(req), status, text);
	cmi_http_reply(req, status, text);
}

static void delivery_free(struct brk_delivery *d)
{
	cmicro_message_free(d->msg);
	free(d->topic);
	free(d);
}

void cmi_brk_delivery_done(struct brk_delivery *d, int outcome)
{
	if (outcome > 0)
		atomic_fetch_add(&d->failed, 1);
	else if (outcome < 0)
		atomic_fetch_add(&d->closed, 1);
	if (atomic_fetch_sub(&d->remaining, 1) != 1)
		return;

	if (atomic_load(&d->failed) > 0)
		cmi_http_reply(d->req, 500, "a handler of this topic returned an error");
	else if (atomic_load(&d->closed) > 0)
		cmi_http_reply(d->req, 503, "the subscription closed before handling the message");
	else
		cmi_http_reply(d->req, 200, NULL);
	delivery_free(d);
}

/* Checks the request and decodes its message; replies itself on failure. */
static struct brk_delivery *serve_parse(struct cmicro_broker *b, struct cmi_http_request *req)
{
	struct brk_delivery *d;
	const char *body, *topic;
	char text[640];
	size_t len = 0;

	if (!cmi_http_request_is_post(req)) {
		cmi_fmt(text, sizeof(text), "method %s not allowed; the broker accepts POST",
			cmi_http_request_method(req));
		serve_reject(b, req, 405, "method", text);
		return NULL;
	}
	if (strcmp(cmi_http_request_path(req), "/") != 0) {
		cmi_fmt(text, sizeof(text), "unknown path \"%.200s\"; the broker accepts POST "
					    "/?id=NODE_ID", cmi_http_request_path(req));
		serve_reject(b, req, 404, "path", text);
		return NULL;
	}
	d = cmi_calloc(1, sizeof(*d));
	body = d ? cmi_http_request_body(req, &len) : NULL;
	if (body == NULL) {
		free(d);
		cmi_http_reply(req, 503, "out of memory");
		return NULL;
	}
	if (cmi_message_decode(body, len, &d->msg) != 0) {
		serve_reject(b, req, 400, "envelope", cmicro_last_errmsg());
		free(d);
		return NULL;
	}
	topic = cmicro_message_get_header(d->msg, CMI_TOPIC_HEADER);
	if (topic == NULL || topic[0] == '\0' || (d->topic = strdup(topic)) == NULL) {
		serve_reject(b, req, 400, "topic", "message has no Micro-Topic header; the "
						   "publisher must set it to the topic");
		delivery_free(d);
		return NULL;
	}
	d->broker = b;
	d->req = req;
	return d;
}

/* Counts the subscriptions that take the message and whether each has
 * room (lock held). */
static int serve_match(struct cmicro_broker *b, const struct brk_delivery *d, const char *id,
		       bool *full)
{
	int n = 0;

	*full = false;
	for (struct cmicro_subscription *s = b->subs; s != NULL; s = s->next) {
		if (id == NULL || strcmp(s->topic, d->topic) != 0 || strcmp(s->node_id, id) != 0)
			continue;
		n++;
		if (s->queued >= (size_t)b->opts.handler_queue_max)
			*full = true;
	}
	return n;
}

/* Runs the handlers of d on this thread, the I/O thread. The matching
 * subscriptions are taken (with a reference each) under the lock, and their
 * handlers run without it, since a handler may publish or unsubscribe. */
static int serve_inline(struct cmicro_broker *b, struct brk_delivery *d, const char *id)
{
	struct cmicro_subscription *subs[64], **taken = subs;
	size_t n = 0;
	int total = 0;

	pthread_mutex_lock(&b->lock);
	for (struct cmicro_subscription *s = b->subs; s != NULL; s = s->next)
		total += id != NULL && strcmp(s->topic, d->topic) == 0 && strcmp(s->node_id, id) == 0;
	if (total == 0) {
		pthread_mutex_unlock(&b->lock);
		return 404;
	}
	if ((size_t)total > CMI_ARRAY_LEN(subs) &&
	    (taken = malloc((size_t)total * sizeof(*taken))) == NULL) {
		pthread_mutex_unlock(&b->lock);
		return 503;
	}
	for (struct cmicro_subscription *s = b->subs; s != NULL; s = s->next) {
		if (strcmp(s->topic, d->topic) != 0 || strcmp(s->node_id, id) != 0)
			continue;
		atomic_fetch_add(&s->refs, 1);
		taken[n++] = s;
	}
	pthread_mutex_unlock(&b->lock);

	/* One extra count, released last, keeps d alive through every handler. */
	atomic_init(&d->remaining, (int)n + 1);
	for (size_t i = 0; i < n; i++) {
		cmi_brk_run_inline(b, taken[i], d);
		cmi_brk_sub_release(taken[i]);
	}
	if (taken != subs)
		free(taken);
	cmi_brk_delivery_done(d, 0);
	return 0;
}

static int serve_dispatch(struct cmicro_broker *b, struct brk_delivery *d, const char *id)
{
	pthread_cond_t *wake = NULL;
	bool full;
	int n;

	if (b->opts.inline_handlers)
		return serve_inline(b, d, id);
	pthread_mutex_lock(&b->lock);
	n = serve_match(b, d, id, &full);
	if (n == 0 || full) {
		pthread_mutex_unlock(&b->lock);
		return n == 0 ? 404 : 503;
	}
	/* One extra count, released below, keeps d alive until every job is
	 * queued even when workers finish the first ones meanwhile. */
	atomic_init(&d->remaining, n + 1);
	for (struct cmicro_subscription *s = b->subs; s != NULL; s = s->next) {
		struct brk_job *job;

		if (strcmp(s->topic, d->topic) != 0 || strcmp(s->node_id, id) != 0)
			continue;
		job = calloc(1, sizeof(*job));
		if (job == NULL) {
			atomic_fetch_add(&d->closed, 1);
			atomic_fetch_sub(&d->remaining, 1);
			continue;
		}
		job->d = d;
		cmi_brk_enqueue(b, s, job, &wake);
	}
	pthread_mutex_unlock(&b->lock);
	/* Once every request of this read is queued, so that the woken thread
	 * finds them all and keeps back their replies until the last one
	 * (workers.c). Signalling after the unlock also spares the thread from
	 * blocking on the lock at once. */
	if (wake != NULL) {
		b->wake_pending = wake;
		event_active(b->wake_ev, 0, 0);
	}
	cmi_brk_delivery_done(d, 0);
	return 0;
}

/* Replies to the read-only status paths (/debug/tls, and /metrics when
 * enabled). Returns false for any other path, which then gets the 405 of
 * the message protocol. */
static bool serve_debug(struct cmicro_broker *b, struct cmi_http_request *req)
{
	const char *path = cmi_http_request_path(req);
	char *json = NULL;

	if (b->metrics_on && strcmp(path, "/metrics") == 0) {
		cmi_brk_metrics_reply(b, req);
		return true;
	}
	if (strcmp(path, "/debug/tls") != 0)
		return false;
	if (cmicro_broker_tls_report(b, &json) != 0) {
		cmi_http_reply(req, 503, cmicro_last_errmsg());
		return true;
	}
	cmi_http_reply_typed(req, 200, "application/json", json);
	free(json);
	return true;
}

void cmi_brk_on_request(void *user, struct cmi_http_request *req)
{
	struct cmicro_broker *b = user;
	struct brk_delivery *d;
	const char *id;
	char text[640];
	int status;

	if (cmi_http_request_is_get(req) && serve_debug(b, req))
		return;
	d = serve_parse(b, req);
	if (d == NULL)
		return;
	id = cmi_http_request_query(req, "id");
	if (id == NULL) {
		serve_reject(b, req, 400, "id", "missing id query parameter; address the node as "
						"POST /?id=NODE_ID with the node id from the registry");
		delivery_free(d);
		return;
	}
	status = serve_dispatch(b, d, id);
	if (status == 0)
		return;
	if (status == 404)
		cmi_fmt(text, sizeof(text), "no subscription of topic \"%.100s\" with node id "
					    "\"%.200s\" on this broker; the registry entry is stale",
			d->topic, id);
	else
		cmi_fmt(text, sizeof(text), "the handler queue of topic \"%.100s\" is full (%d "
					    "messages); retry later",
			d->topic, b->opts.handler_queue_max);
	serve_reject(b, req, status, status == 404 ? "node" : "queue", text);
	delivery_free(d);
}
