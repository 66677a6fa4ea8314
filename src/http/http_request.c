/* Requests of the HTTP server: the handler call, accessors, and replies
 * that any thread can send through the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/util.h>

#include "http/http_server_int.h"

const char *cmi_srv_status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return status < 400 ? "OK" : "Error";
	}
}

static void pending_add(struct cmi_http_server *srv, struct cmi_http_request *req)
{
	pthread_mutex_lock(&srv->lock);
	req->next = srv->pending;
	if (srv->pending != NULL)
		srv->pending->prev = req;
	srv->pending = req;
	pthread_mutex_unlock(&srv->lock);
}

/* Called with srv->lock held. */
static void pending_remove(struct cmi_http_server *srv, struct cmi_http_request *req)
{
	if (req->prev != NULL)
		req->prev->next = req->next;
	else
		srv->pending = req->next;
	if (req->next != NULL)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

void cmi_srv_request_free(struct cmi_http_request *req)
{
	while (req->query_values != NULL) {
		struct srv_query_value *v = req->query_values;

		req->query_values = v->next;
		free(v);
	}
	free(req->reply_body);
	free(req);
}

/* The request whose handler the loop thread is running now, so that a reply
 * made inside that handler goes out at once (see cmi_http_reply). */
static _Thread_local struct cmi_http_request *tl_dispatching;

/* Held by a reply from another thread from the moment it reads req->srv
 * until it has queued the reply, and by a server that detaches its
 * requests. The server's own lock cannot do this, because a replier would
 * lock it after the server may have freed it. Lock order: this lock, then
 * srv->lock. */
static pthread_mutex_t detach_lock = PTHREAD_MUTEX_INITIALIZER;

/* Between cmi_http_reply_hold and cmi_http_reply_release: the server whose
 * replies this thread holds, and whether its loop thread has some of them to
 * write and was not woken. */
static _Thread_local struct cmi_http_server *tl_held_srv;
static _Thread_local bool tl_held_any;

void cmi_srv_dispatch(struct cmi_http_server *srv, struct srv_conn *conn)
{
	struct cmi_http_request *req = calloc(1, sizeof(*req));

	if (req == NULL) {
		cmi_srv_log(srv, SRV_LOG_LIMIT, "HTTP-NOMEM",
			    "closed connection from %s: out of memory for its request", conn->peer);
		cmi_srv_conn_close(conn);
		return;
	}
	req->srv = srv;
	req->conn = conn;
	req->head = &conn->head;
	req->body = conn->in + conn->head_len;
	req->body_len = conn->body_len;
	req->head_only = strcmp(conn->head.method, "HEAD") == 0;
	req->keep_alive = conn->head.keep_alive;
	req->minor = conn->head.minor;
	memcpy(req->peer, conn->peer, sizeof(req->peer));
	cmi_srv_conn_queue(conn, req);
	pending_add(srv, req);
	tl_dispatching = req;
	srv->opts.handler(srv->opts.user, req);
	tl_dispatching = NULL;
}

/* Formatting the date costs more than the rest of a reply head, and its
 * resolution is a second. */
const char *cmi_srv_date(struct cmi_http_server *srv)
{
	time_t now = time(NULL);
	struct tm tm;

	if (now != srv->date_sec || srv->date[0] == '\0') {
		int n = gmtime_r(&now, &tm) ? evutil_date_rfc1123(srv->date, sizeof(srv->date), &tm)
					    : -1;

		if (n <= 0 || (size_t)n >= sizeof(srv->date))
			cmi_fmt(srv->date, sizeof(srv->date), "Thu, 01 Jan 1970 00:00:00 GMT");
		srv->date_sec = now;
	}
	return srv->date;
}

/* Hands req to its connection, which owns it from then on. A request whose
 * connection closed is freed. */
static void send_one(struct cmi_http_request *req)
{
	if (req->conn != NULL)
		cmi_srv_conn_replied(req->conn, req);
	else
		cmi_srv_request_free(req);
}

void cmi_srv_reply_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmi_http_server *srv = arg;
	struct cmi_http_request *list, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&srv->lock);
	list = srv->reply_head;
	srv->reply_head = srv->reply_tail = NULL;
	for (struct cmi_http_request *r = list; r != NULL; r = r->next_reply)
		pending_remove(srv, r);
	pthread_mutex_unlock(&srv->lock);
	if (list != NULL)
		cmi_http_loop_note_activity();

	/* The replies of one connection in this batch leave in one write. */
	srv->gathering = true;
	for (; list != NULL; list = next) {
		next = list->next_reply;
		send_one(list);
	}
	srv->gathering = false;
	cmi_srv_conns_flush_dirty(srv);
}

void cmi_srv_reply_poll_arm(struct cmi_http_server *srv)
{
	struct timeval tv;

	if (event_pending(srv->poll_ev, EV_TIMEOUT, NULL))
		return;
	if (srv->poll_ms < CMI_SRV_REPLY_POLL_MS)
		srv->poll_ms = CMI_SRV_REPLY_POLL_MS;
	tv.tv_sec = 0;
	tv.tv_usec = srv->poll_ms * 1000;
	event_add(srv->poll_ev, &tv);
}

void cmi_srv_reply_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmi_http_server *srv = arg;
	bool found, waiting;

	pthread_mutex_lock(&srv->lock);
	found = srv->reply_head != NULL;
	pthread_mutex_unlock(&srv->lock);
	cmi_srv_reply_cb(fd, what, arg);
	if (found)
		srv->poll_ms = CMI_SRV_REPLY_POLL_MS;
	else if (srv->poll_ms < CMI_SRV_REPLY_POLL_MAX_MS)
		srv->poll_ms *= 2;
	pthread_mutex_lock(&srv->lock);
	waiting = srv->pending != NULL;
	pthread_mutex_unlock(&srv->lock);
	if (waiting)
		cmi_srv_reply_poll_arm(srv);
}

void cmi_http_reply_typed(struct cmi_http_request *req, int status, const char *content_type,
			  const char *body)
{
	if (req == NULL)
		return;
	req->content_type = content_type;
	cmi_http_reply(req, status, body);
}

void cmi_http_reply(struct cmi_http_request *req, int status, const char *body)
{
	struct cmi_http_server *srv;

	if (req == NULL)
		return;
	req->status = status;
	req->reply_body = body ? strdup(body) : NULL;

	/* A handler that replies on the loop thread, before it returns, sends
	 * the reply itself. That saves the queue and a pass of the loop per
	 * message, and the replies of pipelined requests leave together. */
	if (tl_dispatching == req) {
		srv = req->srv;
		tl_dispatching = NULL;
		pthread_mutex_lock(&srv->lock);
		pending_remove(srv, req);
		pthread_mutex_unlock(&srv->lock);
		send_one(req);
		return;
	}

	pthread_mutex_lock(&detach_lock);
	srv = req->srv;
	if (srv != NULL) {
		pthread_mutex_lock(&srv->lock);
		if (srv->reply_tail != NULL)
			srv->reply_tail->next_reply = req;
		else
			srv->reply_head = req;
		srv->reply_tail = req;
		/* Replies held for the server named by the hold only: one to
		 * another server, which this thread may free, wakes its loop. */
		if (tl_held_srv == srv)
			tl_held_any = true;
		else
			event_active(srv->reply_ev, 0, 0);
		pthread_mutex_unlock(&srv->lock);
	}
	pthread_mutex_unlock(&detach_lock);
	/* A server that is gone has detached req, and nothing else refers to it. */
	if (srv == NULL)
		cmi_srv_request_free(req);
}

void cmi_http_reply_hold(struct cmi_http_server *srv)
{
	tl_held_srv = srv;
	tl_held_any = false;
}

void cmi_http_reply_release(void)
{
	struct cmi_http_server *srv = tl_held_srv;
	bool any = tl_held_any;

	tl_held_srv = NULL;
	tl_held_any = false;
	if (srv != NULL && any)
		event_active(srv->reply_ev, 0, 0);
}

void cmi_srv_forget_conn(struct cmi_http_server *srv, struct srv_conn *conn)
{
	pthread_mutex_lock(&srv->lock);
	for (struct cmi_http_request *r = srv->pending; r != NULL; r = r->next) {
		if (r->conn == conn)
			r->conn = NULL;
	}
	pthread_mutex_unlock(&srv->lock);
}

void cmi_http_request_log_rejected(const struct cmi_http_request *req, const char *component,
				   const char *reason, const char *msg_id, const char *fmt, ...)
{
	char key[160], text[768];
	va_list ap;

	if (req->srv == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	cmi_srv_log_key(req->peer, reason, key, sizeof(key));
	cmi_srv_log_component(req->srv, component, key, msg_id, "%s", text);
}

void cmi_srv_detach_requests(struct cmi_http_server *srv)
{
	struct cmi_http_request *queued;

	pthread_mutex_lock(&detach_lock);
	pthread_mutex_lock(&srv->lock);
	for (struct cmi_http_request *r = srv->pending; r != NULL; r = r->next)
		r->srv = NULL;
	srv->pending = NULL;
	queued = srv->reply_head;
	srv->reply_head = srv->reply_tail = NULL;
	pthread_mutex_unlock(&srv->lock);
	pthread_mutex_unlock(&detach_lock);

	/* No other thread refers to the replies already queued. */
	while (queued != NULL) {
		struct cmi_http_request *next = queued->next_reply;

		cmi_srv_request_free(queued);
		queued = next;
	}
}

const char *cmi_http_request_method(const struct cmi_http_request *req)
{
	return req->head->method;
}

bool cmi_http_request_is_post(const struct cmi_http_request *req)
{
	return strcmp(req->head->method, "POST") == 0;
}

/* Decodes n bytes of a query value into out as evhttp_parse_query_str does:
 * "+" is a space, "%XX" a byte, and a "%" without two hex digits stays. */
static void query_decode(const char *value, size_t n, char *out)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (value[i] == '+') {
			out[j++] = ' ';
		} else if (value[i] == '%' && i + 2 < n &&
			   (hi = cmi_hex_digit(value[i + 1])) >= 0 &&
			   (lo = cmi_hex_digit(value[i + 2])) >= 0) {
			out[j++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[j++] = value[i];
		}
	}
	out[j] = '\0';
}

/* Finds name in query with the rules of evhttp_parse_query_str and
 * evhttp_find_header, without building their list. Every parameter must be
 * "key=value" with a key, or no parameter is found. Keys match without
 * regard to case and are not decoded, and the first match wins. */
static bool query_find(const char *query, const char *name, const char **value, size_t *len)
{
	size_t name_len = strlen(name);
	const char *p = query;
	bool found = false;

	while (*p != '\0') {
		const char *end = strchr(p, '&');
		const char *eq;

		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq == NULL || eq == p)
			return false;
		if (!found && (size_t)(eq - p) == name_len && strncasecmp(p, name, name_len) == 0) {
			found = true;
			*value = eq + 1;
			*len = (size_t)(end - eq - 1);
		}
		p = *end == '&' ? end + 1 : end;
	}
	return found;
}

char *cmi_http_query_value(const char *query, const char *name)
{
	const char *value = NULL;
	size_t len = 0;
	char *out;

	if (query == NULL || !query_find(query, name, &value, &len))
		return NULL;
	out = malloc(len + 1);
	if (out != NULL)
		query_decode(value, len, out);
	return out;
}

const char *cmi_http_request_query(const struct cmi_http_request *req, const char *name)
{
	struct cmi_http_request *r = (struct cmi_http_request *)req;
	const char *query = req->head->query;
	struct srv_query_value *v;
	const char *value = NULL;
	size_t len = 0;

	if (query == NULL || !query_find(query, name, &value, &len))
		return NULL;
	/* Kept until the request is released, like the list evhttp built. */
	v = malloc(sizeof(*v) + len + 1);
	if (v == NULL)
		return NULL;
	query_decode(value, len, v->text);
	v->next = r->query_values;
	r->query_values = v;
	return v->text;
}

const char *cmi_http_request_header(const struct cmi_http_request *req, const char *name)
{
	return cmi_http_req_head_field(req->head, name);
}

/* The server ended the body with a NUL already (see conn_dispatch). */
const char *cmi_http_request_body(struct cmi_http_request *req, size_t *len)
{
	if (len != NULL)
		*len = req->body_len;
	return req->body;
}

bool cmi_http_request_is_get(const struct cmi_http_request *req)
{
	return strcmp(req->head->method, "GET") == 0;
}

const char *cmi_http_request_path(const struct cmi_http_request *req)
{
	return req->head->path;
}

const char *cmi_http_request_peer(const struct cmi_http_request *req)
{
	return req->peer;
}
