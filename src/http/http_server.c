/*
 * HTTP server on its own sockets: a listening socket on the event loop,
 * the connection cap, and the log of client problems, limited per client
 * host and cause. Each connection's reading and writing is in
 * http_server_conn.c, and requests and replies in http_request.c.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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
			"%lu similar message%s suppressed (%s)", oldest->suppressed,
			oldest->suppressed == 1 ? "" : "s", oldest->key);
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
			"%s (%lu similar message%s suppressed since the previous line)", text, skipped,
			skipped == 1 ? "" : "s");
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
				"%lu similar message%s suppressed (%s)", slot->suppressed,
				slot->suppressed == 1 ? "" : "s", slot->key[0] ? slot->key : "all clients");
		slot->suppressed = 0;
	}
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


/* Frees the connections closed since it last ran. It runs as an event of
 * its own, so no callback that closed one is still using it. */
static void srv_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmi_http_server *srv = arg;

	(void)fd;
	(void)what;
	while (srv->dead != NULL) {
		struct srv_conn *conn = srv->dead;

		srv->dead = conn->next;
		cmi_srv_conn_free(conn);
	}
}

/* Formats the peer address as "ip:port", or "[ip]:port" for IPv6. */
static void srv_peer_name(const struct sockaddr_storage *ss, socklen_t len, char *out,
			  size_t size)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		cmi_fmt(out, size, "unknown peer");
	else if (ss->ss_family == AF_INET6)
		cmi_fmt(out, size, "[%s]:%s", host, serv);
	else
		cmi_fmt(out, size, "%s:%s", host, serv);
}

static void srv_accept_one(struct cmi_http_server *srv, int fd, const struct sockaddr_storage *ss,
			   socklen_t len)
{
	char peer[64], key[160];
	int one = 1;

	srv_peer_name(ss, len, peer, sizeof(peer));
	if (srv->n_conns >= srv->opts.max_connections) {
		cmi_srv_log_key(peer, "connection limit", key, sizeof(key));
		cmi_srv_log_keyed(srv, SRV_LOG_LIMIT, key, "HTTP-CONN-LIMIT",
				  "closed connection from %s: %d connections open, the limit is %d; "
				  "raise max_connections or add subscribers",
				  peer, srv->n_conns, srv->opts.max_connections);
		close(fd);
		return;
	}
	/* Replies are single small writes, so waiting to fill a segment only
	 * delays them. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (cmi_srv_conn_open(srv, fd, peer) != 0) {
		cmi_srv_log(srv, SRV_LOG_LIMIT, "HTTP-CONN-SETUP", "closed connection from %s: %s",
			    peer, cmicro_last_errmsg());
		close(fd);
	}
}

/* Stops accepting for a moment after running out of file descriptors,
 * instead of being woken at once again for the same pending connection. */
static void srv_accept_pause(struct cmi_http_server *srv, int err)
{
	struct timeval tv = {0, 100 * 1000};

	cmi_srv_log(srv, SRV_LOG_LIMIT, "HTTP-ACCEPT",
		    "cannot accept a connection: %s; raise the open file limit (ulimit -n) or "
		    "lower max_connections",
		    CMI_ERRNO_TEXT(err));
	event_del(srv->accept_ev);
	event_add(srv->accept_retry, &tv);
}

static void srv_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct cmi_http_server *srv = arg;

	(void)what;
	/* Bounded, so that a flood of connections does not starve the others. */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			srv_accept_one(srv, fd, &ss, len);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			srv_accept_pause(srv, errno);
		return;
	}
}

static void srv_accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmi_http_server *srv = arg;

	(void)fd;
	(void)what;
	event_add(srv->accept_ev, NULL);
}

/* Returns a socket listening on ai, or -1 with the cause in *err. */
static int srv_listen(const struct addrinfo *ai, int *err)
{
	int one = 1;
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

/* Listens on the first address of host that binds. */
static int srv_bind(struct cmi_http_server *srv, const char *host, int port)
{
	struct addrinfo hints = {0}, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char serv[16];
	int rc, err = 0;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	cmi_fmt(serv, sizeof(serv), "%d", port);
	rc = getaddrinfo(host, serv, &hints, &res);
	if (rc != 0)
		return cmi_error(CMICRO_EIO, "cannot listen on %s:%d: %s; use an IP address or a "
					     "host name of this machine",
				 host, port, gai_strerror(rc));
	for (const struct addrinfo *ai = res; ai != NULL && srv->listen_fd < 0; ai = ai->ai_next)
		srv->listen_fd = srv_listen(ai, &err);
	freeaddrinfo(res);
	if (srv->listen_fd < 0)
		return cmi_error(CMICRO_EIO, "cannot listen on %s:%d: %s; choose a free port or an "
					     "address of this machine",
				 host, port, CMI_ERRNO_TEXT(err));
	if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &len) != 0)
		return cmi_error(CMICRO_EIO, "cannot read the port bound on %s: %s", host,
				 CMI_ERRNO_TEXT(errno));
	if (ss.ss_family == AF_INET6)
		srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static int srv_setup(struct cmi_http_server *srv)
{
	srv->accept_ev = event_new(srv->base, srv->listen_fd, EV_READ | EV_PERSIST, srv_accept_cb,
				   srv);
	srv->accept_retry = evtimer_new(srv->base, srv_accept_retry_cb, srv);
	srv->reply_ev = event_new(srv->base, -1, 0, cmi_srv_reply_cb, srv);
	srv->poll_ev = evtimer_new(srv->base, cmi_srv_reply_poll_cb, srv);
	srv->reap_ev = event_new(srv->base, -1, 0, srv_reap_cb, srv);
	if (srv->accept_ev == NULL || srv->accept_retry == NULL || srv->reply_ev == NULL ||
	    srv->poll_ev == NULL || srv->reap_ev == NULL || event_add(srv->accept_ev, NULL) != 0)
		return cmi_error(CMICRO_ENOMEM, "out of memory creating the HTTP server");
	return 0;
}

/* Maximum value of max_body. A larger one is lowered to it. A body is held
 * whole in memory, so a larger limit means no limit in practice. This one
 * keeps the sizes of the input buffer (head, body and NUL, doubled as the
 * buffer grows) from wrapping around. */
#define SRV_MAX_BODY_LIMIT (SIZE_MAX / 4)

static void srv_apply_defaults(struct cmi_http_server_opts *o)
{
	if (o->max_body == 0)
		o->max_body = 4u << 20;
	if (o->max_body > SRV_MAX_BODY_LIMIT)
		o->max_body = SRV_MAX_BODY_LIMIT;
	if (o->max_headers == 0)
		o->max_headers = 64u << 10;
	if (o->max_connections <= 0)
		o->max_connections = 1024;
	if (o->read_timeout_ms <= 0)
		o->read_timeout_ms = 10000;
	if (o->pipeline_max <= 0)
		o->pipeline_max = 64;
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
	srv->listen_fd = -1;
	srv_apply_defaults(&srv->opts);
	pthread_mutex_init(&srv->lock, NULL);

	host = (opts->host == NULL || opts->host[0] == '\0') ? "0.0.0.0" : opts->host;
	rc = srv_bind(srv, host, opts->port);
	if (rc == 0)
		rc = srv_setup(srv);
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
		if (!cmi_srv_conn_flushed(c))
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
	/* Connections first: each frees the replies it keeps, and it can
	 * distinguish them from the requests still with the handler only while
	 * those requests exist. */
	while (srv->conns != NULL)
		cmi_srv_conn_close(srv->conns);
	cmi_srv_detach_requests(srv);
	srv_reap_cb(-1, 0, srv);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	cmi_srv_log_flush(srv);
	cmi_http_linger_drop(srv->base);
	if (srv->accept_ev != NULL)
		event_free(srv->accept_ev);
	if (srv->accept_retry != NULL)
		event_free(srv->accept_retry);
	if (srv->reply_ev != NULL)
		event_free(srv->reply_ev);
	if (srv->poll_ev != NULL)
		event_free(srv->poll_ev);
	if (srv->reap_ev != NULL)
		event_free(srv->reap_ev);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
