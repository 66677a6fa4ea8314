/*
 * HTTP server on libevent's evhttp. evhttp of libevent 2.1 has no limit on
 * connections and no hook when one opens, so every connection gets its
 * bufferevent from srv_new_bev: the server counts it there, and adopts its
 * evhttp_connection (close callback, deadline) once evhttp has set it up.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/http_server_int.h"

/* Returns the slot of (kind, key): the existing one, else a free one, else
 * the least recently logged one, whose pending count is reported first. */
static struct srv_log_slot *srv_log_slot(struct cmi_http_server *srv, enum srv_log_kind kind,
					 const char *key)
{
	struct srv_log_slot *oldest = &srv->log_slots[0];

	for (size_t i = 0; i < SRV_LOG_SLOTS; i++) {
		struct srv_log_slot *slot = &srv->log_slots[i];

		if (!slot->used || (slot->kind == kind && strcmp(slot->key, key) == 0))
			return slot;
		if (slot->last < oldest->last)
			oldest = slot;
	}
	if (oldest->suppressed > 0)
		cmi_log(CMICRO_LOG_WARNING, oldest->component, oldest->msg_id,
			"%lu similar messages suppressed (%s)", oldest->suppressed, oldest->key);
	oldest->used = false;
	return oldest;
}

static void srv_log_vkeyed(struct cmi_http_server *srv, enum srv_log_kind kind,
			   const char *component, const char *key, const char *msg_id,
			   const char *fmt, va_list ap) CMI_PRINTF(6, 0);

static void srv_log_vkeyed(struct cmi_http_server *srv, enum srv_log_kind kind,
			   const char *component, const char *key, const char *msg_id,
			   const char *fmt, va_list ap)
{
	struct srv_log_slot *slot = srv_log_slot(srv, kind, key);
	double now = cmi_now_mono();
	unsigned long skipped;
	char text[768];

	if (!slot->used) {
		memset(slot, 0, sizeof(*slot));
		slot->used = true;
		slot->kind = kind;
		slot->component = component;
		slot->last = -SRV_LOG_INTERVAL_S;
		cmi_fmt(slot->key, sizeof(slot->key), "%s", key);
		cmi_fmt(slot->msg_id, sizeof(slot->msg_id), "%s", msg_id);
	}
	if (now - slot->last < SRV_LOG_INTERVAL_S) {
		slot->suppressed++;
		return;
	}
	skipped = slot->suppressed;
	slot->suppressed = 0;
	slot->last = now;
	vsnprintf(text, sizeof(text), fmt, ap);
	if (skipped > 0)
		cmi_log(CMICRO_LOG_WARNING, component, msg_id,
			"%s (%lu similar messages suppressed in the previous %.0f s)", text, skipped,
			SRV_LOG_INTERVAL_S);
	else
		cmi_log(CMICRO_LOG_WARNING, component, msg_id, "%s", text);
}

void cmi_srv_log_keyed(struct cmi_http_server *srv, enum srv_log_kind kind, const char *key,
		       const char *msg_id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	srv_log_vkeyed(srv, kind, "http", key, msg_id, fmt, ap);
	va_end(ap);
}

void cmi_srv_log_component(struct cmi_http_server *srv, const char *component, const char *key,
			   const char *msg_id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	srv_log_vkeyed(srv, SRV_LOG_REQUEST, component, key, msg_id, fmt, ap);
	va_end(ap);
}

/* Logs one event of a kind at most every SRV_LOG_INTERVAL_S seconds, with
 * the number of events left out since the previous line. */
void cmi_srv_log(struct cmi_http_server *srv, enum srv_log_kind kind, const char *msg_id,
		 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	srv_log_vkeyed(srv, kind, "http", "", msg_id, fmt, ap);
	va_end(ap);
}

void cmi_srv_log_flush(struct cmi_http_server *srv)
{
	for (size_t i = 0; i < SRV_LOG_SLOTS; i++) {
		struct srv_log_slot *slot = &srv->log_slots[i];

		if (slot->used && slot->suppressed > 0)
			cmi_log(CMICRO_LOG_WARNING, slot->component, slot->msg_id,
				"%lu similar messages suppressed (%s)", slot->suppressed,
				slot->key[0] ? slot->key : "all clients");
		slot->suppressed = 0;
	}
}

static void conn_unlink(struct srv_conn *conn)
{
	struct cmi_http_server *srv = conn->srv;

	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	srv->n_conns--;
}

static void conn_release(struct srv_conn *conn)
{
	conn_unlink(conn);
	cmi_srv_forget_conn(conn->srv, conn);
	if (conn->deadline != NULL)
		event_free(conn->deadline);
	if (conn->reject_ev != NULL)
		event_free(conn->reject_ev);
	if (!conn->adopted)
		bufferevent_decref(conn->bev);
	free(conn);
}

void cmi_srv_log_key(const char *peer, const char *cause, char *key, size_t size)
{
	char host[64];
	int port;

	if (cmi_http_split_address(peer, host, sizeof(host), &port) != 0) {
		cmi_error_clear();
		cmi_fmt(host, sizeof(host), "%s", peer);
	}
	cmi_fmt(key, size, "client %s, %s", host, cause);
}

static void conn_log_handshake(struct srv_conn *conn)
{
	struct cmicro_tls_verdict verdict;
	char key[96];
	SSL *ssl;

	if (conn->srv->opts.tls == NULL || conn->requests > 0)
		return;
	ssl = bufferevent_openssl_get_ssl(conn->bev);
	if (ssl == NULL || SSL_is_init_finished(ssl) || SSL_in_before(ssl))
		return;
	memset(&verdict, 0, sizeof(verdict));
	cmi_http_requeue_ssl_errors(conn->bev);
	cmicro_tls_ssl_failure(ssl, &verdict);
	cmi_srv_log_key(conn->peer, cmicro_tls_reason_name(verdict.reason), key, sizeof(key));
	cmi_srv_log_keyed(conn->srv, SRV_LOG_HANDSHAKE, key, "HTTP-TLS-HANDSHAKE",
			  "TLS handshake with client %s failed: %s", conn->peer,
			  verdict.message[0] ? verdict.message : "the client closed the connection");
	cmi_http_linger(conn->srv->base, bufferevent_getfd(conn->bev));
}

/* Sends TLS close_notify before evhttp closes the socket. Without it a
 * client sees an unexpected end of file and OpenSSL clients drop the
 * session, so the next connection cannot resume it (RFC 8446, 6.1). */
static void conn_send_close_notify(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;

	if (ssl == NULL || !SSL_is_init_finished(ssl))
		return;
	SSL_shutdown(ssl);
	ERR_clear_error();
}

/* evhttp calls this when it frees a connection. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct srv_conn *conn = arg;

	cmi_srv_conn_unwatch(conn);
	conn_send_close_notify(evcon);
	conn_log_handshake(conn);
	conn_release(conn);
}

/* True when the client has sent part of a request: a byte of its head, or
 * the whole head and maybe part of the body. evhttp may have taken complete
 * lines from the input already, so an empty input proves nothing. */
static bool conn_mid_request(const struct srv_conn *conn)
{
	if (!conn->scanning)
		return true;
	return cmi_http_head_started(&conn->head) ||
	       evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0;
}

static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct srv_conn *conn = arg;
	char key[160];

	(void)fd;
	(void)what;
	if (conn->busy || conn->evcon == NULL)
		return;
	if (conn->rejecting) {
		cmi_log(CMICRO_LOG_DEBUG, "http", "HTTP-REJECT-TIMEOUT",
			"client %s did not read the rejection within %d ms; closing the connection",
			conn->peer, conn->srv->opts.read_timeout_ms);
	} else if (conn->requests > 0 && !conn_mid_request(conn)) {
		/* A keep-alive connection idle after its requests is closed without a
		 * warning: only a client that started a request and stalled is worth
		 * one. */
		cmi_log(CMICRO_LOG_DEBUG, "http", "HTTP-IDLE-CLOSE",
			"closing the idle connection of client %s after %d ms", conn->peer,
			conn->srv->opts.read_timeout_ms);
	} else {
		cmi_srv_log_key(conn->peer, "slow client", key, sizeof(key));
		cmi_srv_log_keyed(conn->srv, SRV_LOG_SLOW, key, "HTTP-SLOW-CLIENT",
				  "client %s sent no complete request within %d ms; closing the "
				  "connection",
				  conn->peer, conn->srv->opts.read_timeout_ms);
	}
	evhttp_connection_free(conn->evcon); /* calls conn_closed */
}

void cmi_srv_conn_arm(struct srv_conn *conn)
{
	struct timeval tv;

	tv.tv_sec = conn->srv->opts.read_timeout_ms / 1000;
	tv.tv_usec = (conn->srv->opts.read_timeout_ms % 1000) * 1000;
	if (conn->deadline != NULL)
		event_add(conn->deadline, &tv);
}

static void conn_set_peer(struct srv_conn *conn)
{
	char *host = NULL;
	ev_uint16_t port = 0;

	evhttp_connection_get_peer(conn->evcon, &host, &port);
	if (host != NULL && strchr(host, ':') != NULL)
		cmi_fmt(conn->peer, sizeof(conn->peer), "[%s]:%u", host, port);
	else
		cmi_fmt(conn->peer, sizeof(conn->peer), "%s:%u", host ? host : "?", port);
}

/* Names the client in TLS findings by its host only: its port changes
 * with every connection, which would defeat logging each peer once. */
static void conn_name_tls_peer(struct srv_conn *conn)
{
	SSL *ssl = conn->srv->opts.tls ? bufferevent_openssl_get_ssl(conn->bev) : NULL;
	char host[64];
	int port;

	if (ssl == NULL)
		return;
	if (cmi_http_split_address(conn->peer, host, sizeof(host), &port) != 0)
		cmi_fmt(host, sizeof(host), "%s", conn->peer);
	if (cmi_tls_ssl_set_peer(ssl, host, NULL) != 0)
		cmi_error_clear();
}

/* Takes over the evhttp_connection that evhttp built around conn->bev. */
static void conn_adopt(struct srv_conn *conn)
{
	struct cmi_http_server *srv = conn->srv;
	bufferevent_data_cb readcb = NULL;
	void *arg = NULL;
	char key[160];
	int one = 1;

	bufferevent_getcb(conn->bev, &readcb, NULL, NULL, &arg);
	if (readcb == NULL) {
		/* evhttp failed to set the connection up and freed it already. */
		conn_release(conn);
		return;
	}
	conn->evcon = arg;
	conn->adopted = true;
	bufferevent_decref(conn->bev);
	evhttp_connection_set_closecb(conn->evcon, conn_closed, conn);
	conn_set_peer(conn);
	conn_name_tls_peer(conn);
	setsockopt(bufferevent_getfd(conn->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (srv->n_conns > srv->opts.max_connections) {
		cmi_srv_log_key(conn->peer, "connection limit", key, sizeof(key));
		cmi_srv_log_keyed(srv, SRV_LOG_LIMIT, key, "HTTP-CONN-LIMIT",
				  "closed connection from %s: %d connections open, the limit is %d; "
				  "raise max_connections or add subscribers",
				  conn->peer, srv->n_conns - 1, srv->opts.max_connections);
		evhttp_connection_free(conn->evcon); /* calls conn_closed */
		return;
	}
	conn->deadline = event_new(srv->base, -1, 0, conn_deadline, conn);
	if (conn->deadline == NULL || cmi_srv_conn_watch(conn) != 0) {
		cmi_srv_log(srv, SRV_LOG_LIMIT, "HTTP-CONN-SETUP",
			    "closed connection from %s: %s", conn->peer, cmicro_last_errmsg());
		evhttp_connection_free(conn->evcon); /* calls conn_closed */
		return;
	}
	cmi_srv_conn_arm(conn);
}

void cmi_srv_adopt_pending(struct cmi_http_server *srv)
{
	struct srv_conn *conn = srv->conns, *next;

	for (; conn != NULL; conn = next) {
		next = conn->next;
		if (!conn->adopted)
			conn_adopt(conn);
	}
}

static void srv_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cmi_srv_adopt_pending(arg);
}

static struct bufferevent *srv_make_bev(struct cmi_http_server *srv)
{
	SSL *ssl = NULL;

	if (srv->opts.tls == NULL)
		return bufferevent_socket_new(srv->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (cmicro_tls_ssl_new(srv->opts.tls, NULL, "incoming client", &ssl) != 0) {
		cmi_srv_log(srv, SRV_LOG_HANDSHAKE, "HTTP-TLS-SETUP",
			    "cannot set up TLS for a new connection: %s", cmicro_last_errmsg());
		return NULL;
	}
	return bufferevent_openssl_socket_new(srv->base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

/* evhttp requests the bufferevent of each accepted connection here. */
static struct bufferevent *srv_new_bev(struct event_base *base, void *arg)
{
	struct cmi_http_server *srv = arg;
	struct bufferevent *bev = srv_make_bev(srv);
	struct srv_conn *conn;

	(void)base;
	if (bev == NULL)
		return NULL; /* evhttp then uses a plain bufferevent; TLS clients fail */
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return bev;
	conn->srv = srv;
	conn->bev = bev;
	cmi_fmt(conn->peer, sizeof(conn->peer), "unknown peer");
	/* The extra reference keeps bev readable in conn_adopt even when evhttp
	 * frees the connection on a setup failure before then. */
	bufferevent_incref(bev);
	conn->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->n_conns++;
	event_active(srv->adopt_ev, 0, 0);
	return bev;
}

struct srv_conn *cmi_srv_conn_of(struct cmi_http_server *srv, struct evhttp_request *evreq)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(evreq);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	cmi_srv_adopt_pending(srv);
	for (struct srv_conn *c = srv->conns; c != NULL; c = c->next) {
		if (c->bev == bev && c->adopted)
			return c;
	}
	return NULL;
}

static int srv_bind(struct cmi_http_server *srv, const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd;

	srv->bound = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
	if (srv->bound == NULL)
		return cmi_error(CMICRO_EIO, "cannot listen on %s:%d: the address is in use or not "
					     "local; choose another address",
				 host, port);
	fd = evhttp_bound_socket_get_fd(srv->bound);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return cmi_error(CMICRO_EIO, "cannot read the port bound on %s", host);
	if (ss.ss_family == AF_INET6)
		srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static int srv_setup(struct cmi_http_server *srv)
{
	struct timeval tv;

	srv->http = evhttp_new(srv->base);
	srv->adopt_ev = event_new(srv->base, -1, 0, srv_adopt_cb, srv);
	srv->reply_ev = event_new(srv->base, -1, 0, cmi_srv_reply_cb, srv);
	if (srv->http == NULL || srv->adopt_ev == NULL || srv->reply_ev == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory creating the HTTP server");

	/* The connection deadline (cmi_srv_conn_arm) closes slow and idle
	 * clients and logs which they were. evhttp's own timeout, twice as long,
	 * only bounds a reply write to a client that stops reading, so it must
	 * not close a connection first and skip that log line. */
	tv.tv_sec = (time_t)(2LL * srv->opts.read_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(2LL * srv->opts.read_timeout_ms % 1000 * 1000);
	evhttp_set_timeout_tv(srv->http, &tv);
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->opts.max_body);
	evhttp_set_max_headers_size(srv->http, (ev_ssize_t)srv->opts.max_headers);
	/* Every method reaches the handler, which replies 405 itself. */
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						      EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						      EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	/* Read an oversized body to its end before replying 413, so clients
	 * that send without waiting see the status instead of a reset. */
	evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_bevcb(srv->http, srv_new_bev, srv);
	evhttp_set_gencb(srv->http, cmi_srv_request_cb, srv);
	return 0;
}

static void srv_apply_defaults(struct cmi_http_server_opts *o)
{
	if (o->max_body == 0)
		o->max_body = 4u << 20;
	if (o->max_headers == 0)
		o->max_headers = 64u << 10;
	if (o->max_connections <= 0)
		o->max_connections = 1024;
	if (o->read_timeout_ms <= 0)
		o->read_timeout_ms = 10000;
}

int cmi_http_server_new(struct event_base *base, const struct cmi_http_server_opts *opts,
			struct cmi_http_server **out)
{
	struct cmi_http_server *srv;
	const char *host;
	int rc;

	if (base == NULL || opts == NULL || opts->handler == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL, "HTTP server: base, options and handler are required");
	*out = NULL;
	srv = cmi_calloc(1, sizeof(*srv));
	if (srv == NULL)
		return CMICRO_ENOMEM;
	srv->base = base;
	srv->opts = *opts;
	srv_apply_defaults(&srv->opts);
	pthread_mutex_init(&srv->lock, NULL);

	host = (opts->host == NULL || opts->host[0] == '\0') ? "0.0.0.0" : opts->host;
	rc = srv_setup(srv);
	if (rc == 0)
		rc = srv_bind(srv, host, opts->port);
	if (rc != 0) {
		cmi_http_server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int cmi_http_server_port(const struct cmi_http_server *srv)
{
	return srv ? srv->port : 0;
}

bool cmi_http_server_flushed(struct cmi_http_server *srv)
{
	bool queued;

	pthread_mutex_lock(&srv->lock);
	queued = srv->reply_head != NULL;
	pthread_mutex_unlock(&srv->lock);
	if (queued)
		return false;
	for (const struct srv_conn *c = srv->conns; c != NULL; c = c->next) {
		if (c->bev != NULL && evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
			return false;
	}
	return true;
}

int cmi_http_server_connections(const struct cmi_http_server *srv)
{
	return srv ? srv->n_conns : 0;
}

void cmi_http_server_free(struct cmi_http_server *srv)
{
	if (srv == NULL)
		return;
	cmi_srv_detach_requests(srv);
	for (struct srv_conn *c = srv->conns; c != NULL; c = c->next) {
		if (c->adopted)
			evhttp_connection_set_closecb(c->evcon, NULL, NULL);
	}
	if (srv->http != NULL)
		evhttp_free(srv->http); /* frees every connection */
	while (srv->conns != NULL)
		conn_release(srv->conns);
	cmi_srv_log_flush(srv);
	cmi_http_linger_drop(srv->base);
	if (srv->adopt_ev != NULL)
		event_free(srv->adopt_ev);
	if (srv->reply_ev != NULL)
		event_free(srv->reply_ev);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
