/*
 * Watching the etcd registry through the gateway's /v3/watch stream: one
 * long HTTP response carrying one JSON message per line. A thread per
 * watcher reads the stream on its own event loop and queues the events for
 * the watcher. When the stream breaks, it reconnects (to the next endpoint)
 * and resumes after the last revision it saw, so no event is lost unless
 * etcd compacted that history or lost its data.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "registry/etcd_int.h"

/* Pause before reconnecting a broken stream, in milliseconds. */
#define WATCH_RETRY_MS 1000

/* Limit of silence on a stream. etcd sends a progress message on an idle
 * watch every 10 minutes (the --experimental-watch-progress-notify-interval
 * default of etcd 3.4), so only a stalled connection reaches it. */
#define WATCH_IDLE_MS (15 * 60 * 1000)

struct etcd_watch {
	struct cmicro_registry_watcher *w;
	struct cmi_etcd_client *client;
	int64_t revision; /* the last revision seen; the stream resumes after it */
	size_t endpoint;
	pthread_t thread;
	bool started;

	pthread_mutex_t lock; /* guards base, stop_ev and stopping */
	pthread_cond_t cond;
	bool stopping;
	struct event_base *base;
	struct event *stop_ev;

	/* Owned by the watch thread. */
	struct cmi_etcd_conn conn;
	struct evbuffer *pending; /* the start of a message not yet complete */
	bool responded;
	int status;
	bool abort;            /* end this stream and reconnect */
	bool lost_logged;
	char why[512];
};

static void watch_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_watch *ws = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(ws->base);
}

static void emit_event(struct etcd_watch *ws, const struct cmi_etcd_event *ev)
{
	enum cmicro_registry_event type = CMICRO_REGISTRY_DELETE;
	struct cmicro_service *svc = NULL;

	if (ev->type == CMI_ETCD_PUT) {
		type = ev->kv.version == 1 ? CMICRO_REGISTRY_CREATE : CMICRO_REGISTRY_UPDATE;
		svc = cmi_etcd_kv_service(&ev->kv);
	} else if (ev->prev.key != NULL) {
		svc = cmi_etcd_kv_service(&ev->prev);
	}
	/* A deletion without a readable previous value still names its node. */
	if (svc == NULL && ev->type == CMI_ETCD_DELETE)
		svc = cmi_etcd_key_service(ev->kv.key);
	if (svc == NULL) {
		cmi_log(CMICRO_LOG_DEBUG, "registry", "REGISTRY-ETCD-BAD-VALUE",
			"skipping a watch event of etcd key %.200s: %s", ev->kv.key,
			cmicro_last_errmsg());
		return;
	}
	cmi_watcher_push(ws->w, type, svc);
	cmicro_service_free(svc);
}

static void stream_abort(struct etcd_watch *ws, const char *why)
{
	cmi_fmt(ws->why, sizeof(ws->why), "%s", why);
	ws->abort = true;
	event_base_loopbreak(ws->base);
}

/* Handles the start of a stream: a reset store (a revision older than the
 * one seen) has a new history, so the stream restarts from its present. */
static void handle_created(struct etcd_watch *ws, const struct cmi_etcd_watch_msg *msg)
{
	if (ws->lost_logged) {
		cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-ETCD-WATCH-RESTORED",
			"watching etcd at %s works again", ws->conn.ep->url);
		ws->lost_logged = false;
	}
	if (msg->revision > 0 && msg->revision < ws->revision) {
		/* NOTE: changes made to the new store before this point are not
		 * reported; readers see them through the cache's refresh. */
		ws->revision = msg->revision;
		stream_abort(ws, "etcd's revision went back, so its data was reset");
	}
}

static void handle_message(struct etcd_watch *ws, const char *line, size_t len)
{
	struct cmi_etcd_watch_msg msg;

	if (cmi_etcd_parse_watch(line, len, &msg) != 0) {
		stream_abort(ws, cmicro_last_errmsg());
		return;
	}
	if (msg.created)
		handle_created(ws, &msg);
	if (msg.canceled) {
		/* A compacted start revision: resume from the oldest one kept.
		 * NOTE: the events in between are lost to watchers. */
		if (msg.compact_revision > 0)
			ws->revision = msg.compact_revision - 1;
		stream_abort(ws, msg.cancel_reason[0] ? msg.cancel_reason
						      : "etcd cancelled the watch");
	}
	for (size_t i = 0; !ws->abort && i < msg.n_events; i++)
		emit_event(ws, &msg.events[i]);
	if (!ws->abort && msg.revision > ws->revision)
		ws->revision = msg.revision;
	cmi_etcd_watch_msg_clear(&msg);
}

static void stream_chunk(struct evhttp_request *req, void *arg)
{
	struct cmi_etcd_conn *conn = arg;
	struct etcd_watch *ws = conn->user;
	size_t len;
	char *line;

	ws->status = evhttp_request_get_response_code(req);
	evbuffer_add_buffer(ws->pending, evhttp_request_get_input_buffer(req));
	if (ws->status != 200)
		return;
	while (!ws->abort &&
	       (line = evbuffer_readln(ws->pending, &len, EVBUFFER_EOL_LF)) != NULL) {
		handle_message(ws, line, len);
		free(line);
	}
	if (!ws->abort && evbuffer_get_length(ws->pending) > CMI_ETCD_WATCH_MESSAGE_MAX)
		stream_abort(ws, "a watch message is larger than 16 MiB");
}

static void stream_done(struct cmi_etcd_conn *conn, struct evhttp_request *req)
{
	struct etcd_watch *ws = conn->user;

	ws->responded = req != NULL && evhttp_request_get_response_code(req) != 0;
	if (ws->responded)
		ws->status = evhttp_request_get_response_code(req);
	event_base_loopbreak(ws->base);
}

/* Explains why the stream that just ended stopped, into ws->why. */
static int stream_explain(struct etcd_watch *ws)
{
	char text[256];
	size_t len = evbuffer_get_length(ws->pending);
	char *body = cmi_calloc(1, len + 1);

	if (ws->abort)
		return CMICRO_EPROTO;
	if (!ws->responded && ws->status == 0) {
		free(body);
		return cmi_etcd_conn_explain(&ws->conn, ws->why, sizeof(ws->why));
	}
	if (body != NULL)
		evbuffer_copyout(ws->pending, body, len);
	cmi_etcd_error_text(body, body ? len : 0, text, sizeof(text));
	free(body);
	if (ws->status == 200)
		cmi_fmt(ws->why, sizeof(ws->why), "etcd closed the stream");
	else
		cmi_fmt(ws->why, sizeof(ws->why), "HTTP %d: %s", ws->status, text);
	return ws->status == 401 ? CMICRO_ECONFIG : CMICRO_EIO;
}

static int stream_start(struct etcd_watch *ws, const struct cmi_etcd_endpoint *ep)
{
	char *body = cmi_etcd_body_watch(CMI_REGISTRY_KEY_PREFIX, ws->revision + 1);
	struct evhttp_request *req;
	int rc;

	if (body == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_etcd_conn_open(ws->client, ep, ws->base, WATCH_IDLE_MS, &ws->conn);
	ws->conn.done = stream_done;
	ws->conn.user = ws;
	req = rc == 0 ? cmi_etcd_request_new(ws->client, &ws->conn, body) : NULL;
	free(body);
	if (rc != 0)
		return rc;
	if (req == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory building the etcd watch request");
	evhttp_request_set_chunked_cb(req, stream_chunk);
	return cmi_etcd_conn_start(&ws->conn, req, "/v3/watch");
}

/* Creates the loop of one stream; false when the watcher is stopping. */
static bool loop_open(struct etcd_watch *ws)
{
	struct event_base *base = event_base_new();
	struct event *stop_ev = base ? event_new(base, -1, 0, watch_stop_cb, ws) : NULL;
	bool ok;

	pthread_mutex_lock(&ws->lock);
	ok = !ws->stopping && stop_ev != NULL;
	if (ok) {
		ws->base = base;
		ws->stop_ev = stop_ev;
	}
	pthread_mutex_unlock(&ws->lock);
	if (!ok) {
		if (stop_ev != NULL)
			event_free(stop_ev);
		if (base != NULL)
			event_base_free(base);
	}
	return ok;
}

static void loop_close(struct etcd_watch *ws)
{
	cmi_etcd_conn_close(&ws->conn);
	pthread_mutex_lock(&ws->lock);
	event_free(ws->stop_ev);
	event_base_free(ws->base);
	ws->stop_ev = NULL;
	ws->base = NULL;
	pthread_mutex_unlock(&ws->lock);
}

static bool stopping(struct etcd_watch *ws)
{
	bool stop;

	pthread_mutex_lock(&ws->lock);
	stop = ws->stopping;
	pthread_mutex_unlock(&ws->lock);
	return stop;
}

/* Runs one stream until it ends; returns why in ws->why. */
static int stream_once(struct etcd_watch *ws)
{
	const struct cmi_etcd_endpoint *ep = &ws->client->endpoints[ws->endpoint];
	int rc = cmi_etcd_ensure_token(ws->client, false);

	ws->responded = false;
	ws->status = 0;
	ws->abort = false;
	ws->why[0] = '\0';
	evbuffer_drain(ws->pending, evbuffer_get_length(ws->pending));
	if (rc != 0 || !loop_open(ws)) {
		cmi_fmt(ws->why, sizeof(ws->why), "%s", rc ? cmicro_last_errmsg() : "stopping");
		return rc ? rc : CMICRO_ECLOSED;
	}
	rc = stream_start(ws, ep);
	if (rc == 0) {
		event_base_dispatch(ws->base);
		rc = stopping(ws) ? CMICRO_ECLOSED : stream_explain(ws);
	} else {
		cmi_fmt(ws->why, sizeof(ws->why), "%s", cmicro_last_errmsg());
	}
	loop_close(ws);
	return rc;
}

static bool wait_retry(struct etcd_watch *ws)
{
	struct timespec deadline;
	bool stopping;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += WATCH_RETRY_MS / 1000;
	pthread_mutex_lock(&ws->lock);
	if (!ws->stopping)
		pthread_cond_timedwait(&ws->cond, &ws->lock, &deadline);
	stopping = ws->stopping;
	pthread_mutex_unlock(&ws->lock);
	return !stopping;
}

static void *watch_main(void *arg)
{
	struct etcd_watch *ws = arg;

	do {
		int rc = stream_once(ws);
		const char *url = ws->client->endpoints[ws->endpoint].url;

		if (rc == CMICRO_ECLOSED)
			break;
		if (!ws->lost_logged)
			cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-ETCD-WATCH-LOST",
				"the etcd watch stream at %s ended (%s); reconnecting every %d ms "
				"while the cache refreshes services by age",
				url, ws->why, WATCH_RETRY_MS);
		ws->lost_logged = true;
		if (rc == CMICRO_ECONFIG && cmi_etcd_ensure_token(ws->client, true) != 0)
			cmi_error_clear();
		if (rc != 0)
			ws->endpoint = (ws->endpoint + 1) % ws->client->n_endpoints;
	} while (wait_retry(ws));
	return NULL;
}

static void watch_detach(struct cmicro_registry_watcher *w)
{
	struct etcd_watch *ws = w->impl;

	if (ws == NULL || !ws->started)
		return;
	pthread_mutex_lock(&ws->lock);
	ws->stopping = true;
	if (ws->stop_ev != NULL)
		event_active(ws->stop_ev, 0, 0);
	pthread_cond_signal(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	pthread_join(ws->thread, NULL);
	ws->started = false;
}

static void watch_release(struct cmicro_registry_watcher *w)
{
	struct etcd_watch *ws = w->impl;

	if (ws == NULL)
		return;
	watch_detach(w);
	if (ws->pending != NULL)
		evbuffer_free(ws->pending);
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
	w->impl = NULL;
}

/* Reads the current revision, so the stream reports every change made
 * after cmicro_registry_watch returns, however late it connects. */
static int watch_start_revision(struct etcd_watch *ws)
{
	struct cmi_etcd_reply reply;
	struct cmi_etcd_kv *kvs = NULL;
	size_t n = 0;
	char *body = cmi_etcd_body_range(CMI_REGISTRY_KEY_PREFIX, true);
	int rc = body ? cmi_etcd_call(ws->client, "/v3/kv/range", body, &reply) : CMICRO_ENOMEM;

	free(body);
	if (rc != 0)
		return rc;
	rc = cmi_etcd_parse_range(reply.body, reply.len, &ws->revision, &kvs, &n);
	cmi_etcd_reply_clear(&reply);
	for (size_t i = 0; i < n; i++)
		cmi_etcd_kv_clear(&kvs[i]);
	free(kvs);
	return rc;
}

int cmi_etcd_watch(struct cmicro_registry *reg, struct cmi_etcd_client *client,
		   struct cmicro_registry_watcher *w)
{
	struct etcd_watch *ws = cmi_calloc(1, sizeof(*ws));
	pthread_condattr_t attr;
	int rc;

	(void)reg;
	if (ws == NULL)
		return CMICRO_ENOMEM;
	ws->w = w;
	ws->client = client;
	pthread_mutex_init(&ws->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ws->cond, &attr);
	pthread_condattr_destroy(&attr);
	w->impl = ws;
	w->release = watch_release;
	ws->pending = evbuffer_new();
	if (ws->pending == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory starting an etcd watch");
	pthread_mutex_lock(&client->lock);
	ws->endpoint = client->current;
	pthread_mutex_unlock(&client->lock);

	rc = watch_start_revision(ws);
	if (rc != 0)
		return rc;
	rc = cmi_thread_create(&ws->thread, watch_main, ws);
	if (rc != 0)
		return cmi_error(CMICRO_EIO, "cannot start an etcd watch thread: %s; raise the "
					     "process thread limit",
				 strerror_r(rc, (char[128]){0}, 128));
	ws->started = true;
	w->detach = watch_detach;
	return 0;
}
