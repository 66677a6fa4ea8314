/*
 * HTTP client on libevent's evhttp with kept-alive connections per address.
 *
 * An evhttp_connection of libevent 2.1 reconnects by reusing its
 * bufferevent, which an OpenSSL bufferevent does not survive. So a
 * connection that closed or failed is never reused. It is marked dead and
 * freed from a separate event, because evhttp must not free a connection
 * from inside its own callbacks.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <openssl/err.h>

#include "http/http_server_int.h"

struct cli_call;

struct cli_conn {
	struct cli_conn *next;
	struct cmi_http_client *client;
	struct evhttp_connection *evcon;
	struct bufferevent *bev; /* the TLS bufferevent; NULL for plain HTTP */
	char key[320];           /* "https://host:port" */
	char address[256];       /* "host:port", for messages */
	bool busy;
	bool dead;
	bool nodelay; /* TCP_NODELAY is set on the socket */
	struct cli_call *call;
	/* evhttp's event callback while connecting, wrapped to see the TLS
	 * state before evhttp resets the connection. */
	bufferevent_event_cb evhttp_event_cb;
	void *evhttp_event_arg;
	struct cmi_http_result failure; /* err 0 until a connect failure is seen */
};

struct cli_call {
	struct cli_call *prev, *next; /* in client->calls until done runs */
	struct cmi_http_client *client;
	struct cli_conn *conn;        /* NULL once the request is over */
	cmi_http_done_fn done;
	void *arg;
	struct event *ev;  /* the timeout, and activated on completion */
	bool completed;
	int evhttp_error;  /* enum evhttp_request_error, or -1 */
	struct cmi_http_result result;
	char address[256];
	char label[256];
	bool get;
	char *body; /* response body of a GET */

	/* A call waiting for a connection: every node's connections are capped,
	 * so a burst queues here instead of opening a socket per message. */
	bool pending;
	struct cli_call *pnext;      /* in client->pend_head */
	struct evhttp_request *req;  /* built, not yet handed to evhttp */
	struct timeval timeout;
	char key[320];
	char *path;
	char *node_id;
	bool https;
};

/* Largest response body a GET keeps. */
#define CLI_GET_BODY_MAX (4u * 1024 * 1024)

/* Connections kept to one node at most. A subscriber accepts 1024 at once
 * by default, so a few publishers each at this cap stay under its limit,
 * while 64 requests in flight per node keep a loopback link busy. */
#define CLI_CONNS_PER_NODE 64

struct cmi_http_client {
	struct event_base *base;
	struct cmicro_tls_context *tls;
	struct cli_conn *conns;
	struct cli_call *calls;
	struct cli_call *pend_head, *pend_tail; /* FIFO of calls waiting for a connection */
	struct event *reap_ev;
};

static void cli_dispatch(struct cmi_http_client *client, const char *key);

static void cli_conn_free(struct cli_conn *conn)
{
	evhttp_connection_set_closecb(conn->evcon, NULL, NULL);
	evhttp_connection_free(conn->evcon);
	free(conn);
}

static void cli_reap(evutil_socket_t fd, short what, void *arg)
{
	struct cmi_http_client *client = arg;
	struct cli_conn **link = &client->conns;

	(void)fd;
	(void)what;
	while (*link != NULL) {
		struct cli_conn *conn = *link;

		if (conn->dead && !conn->busy) {
			char key[sizeof(conn->key)];

			*link = conn->next;
			memcpy(key, conn->key, sizeof(key));
			cli_conn_free(conn);
			/* Its slot under the cap is free for a waiting call. */
			cli_dispatch(client, key);
		} else {
			link = &conn->next;
		}
	}
}

static void cli_mark_dead(struct cli_conn *conn)
{
	conn->dead = true;
	event_active(conn->client->reap_ev, 0, 0);
}

static void cli_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	cli_mark_dead(arg);
}

static void cli_finish(struct cli_call *call)
{
	call->completed = true;
	event_active(call->ev, 0, 0);
}

static void cli_fail(struct cli_call *call, int err, const char *fmt, ...) CMI_PRINTF(3, 4);

static void cli_fail(struct cli_call *call, int err, const char *fmt, ...)
{
	va_list ap;

	call->result.err = err;
	va_start(ap, fmt);
	vsnprintf(call->result.message, sizeof(call->result.message), fmt, ap);
	va_end(ap);
}

/* Fills f for a socket error (err, an errno value) that ended the
 * connection before any TLS record arrived. */
/* A server that requires client certificates rejects one in TLS 1.3 after
 * the client's side of the handshake is done. When the connection is reset
 * before its alert could be read, what remains known is that the server
 * asked for a certificate and then dropped the connection. */
static bool cli_client_cert_rejected(const struct cli_conn *conn, struct cmi_http_result *f)
{
	SSL *ssl = conn->bev != NULL ? bufferevent_openssl_get_ssl(conn->bev) : NULL;

	if (ssl == NULL || !SSL_is_init_finished(ssl) || !cmi_tls_ssl_cert_requested(ssl))
		return false;
	f->err = CMICRO_EHANDSHAKE;
	f->tls_reason = CMICRO_TLS_REASON_NONE;
	cmi_fmt(f->message, sizeof(f->message),
		"%s asked for a client certificate and reset the connection after the TLS "
		"handshake: it rejected this node's certificate, or the lack of one; check "
		"MICRO_TLS_CERT_FILE and MICRO_TLS_KEY_FILE (usage clientAuth, issued by a CA the "
		"node trusts); the node's log names the cause",
		conn->address);
	return true;
}

static void cli_socket_failure(const struct cli_conn *conn, int err, struct cmi_http_result *f)
{
	if ((err == ECONNRESET || err == EPIPE) && cli_client_cert_rejected(conn, f))
		return;
	f->err = CMICRO_ECONNECT;
	f->tls_reason = CMICRO_TLS_REASON_NONE;
	if (err == ECONNREFUSED)
		cmi_fmt(f->message, sizeof(f->message),
			"cannot connect: connection refused by %s (is the subscriber running?)",
			conn->address);
	else
		cmi_fmt(f->message, sizeof(f->message), "cannot connect to %s: %s; check that the "
							"node is running and the address is reachable",
			conn->address, CMI_ERRNO_TEXT(err));
}

/* Fills f from the OpenSSL errors on the thread's queue. */
static void cli_verdict_failure(struct cli_conn *conn, struct cmi_http_result *f)
{
	struct cmicro_tls_verdict v;

	memset(&v, 0, sizeof(v));
	cmicro_tls_ssl_failure(bufferevent_openssl_get_ssl(conn->bev), &v);
	f->tls_reason = v.reason;
	f->err = (v.reason != CMICRO_TLS_REASON_NONE && v.openssl_code != 0) ? CMICRO_EVERIFY
									      : CMICRO_EHANDSHAKE;
	cmi_fmt(f->message, sizeof(f->message), "TLS handshake failed with %s: %s", conn->address,
		v.message[0] ? v.message : "the peer closed the connection during the handshake");
}

/* Fills f from the TLS errors the bufferevent kept. A socket error, such as
 * a refused connection, reaches OpenSSL as SSL_ERROR_SYSCALL with nothing
 * queued, so errno (saved_errno) names it. Returns false when there was
 * nothing to classify. */
static bool cli_tls_failure(struct cli_conn *conn, int saved_errno, struct cmi_http_result *f)
{
	int ssl_error = cmi_http_requeue_ssl_errors(conn->bev);

	if (ERR_peek_error() == 0) {
		if (ssl_error == SSL_ERROR_SYSCALL && saved_errno != 0) {
			cli_socket_failure(conn, saved_errno, f);
			return true;
		}
		if (ssl_error == 0)
			return false;
	}
	cli_verdict_failure(conn, f);
	return true;
}

/*
 * A TLS 1.3 server that rejects the client's certificate sends its alert
 * and closes right after the client's side of the handshake ends. When the
 * server's reset is already pending, evhttp treats the socket error as a
 * failed connect and ends the request without reading, so the alert is
 * read here first. Returns true when the connection is already dead.
 */
static bool cli_read_early_alert(struct cli_conn *conn, struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	int fd = bufferevent_getfd(bev);
	int soerr = 0;
	socklen_t len = sizeof(soerr);
	char byte;

	if (ssl == NULL || fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 ||
	    soerr == 0)
		return false;
	ERR_clear_error();
	if (SSL_peek(ssl, &byte, 1) <= 0 && ERR_peek_error() != 0)
		cli_verdict_failure(conn, &conn->failure);
	else
		cli_socket_failure(conn, soerr, &conn->failure);
	ERR_clear_error();
	return true;
}

/* Classifies a failed TLS handshake or connect, before evhttp resets the
 * connection (which puts the SSL object back into its initial state). */
static void cli_classify_connect(struct cli_conn *conn, short what)
{
	struct cmi_http_result *f = &conn->failure;
	int saved = errno;

	if (conn->bev != NULL && cli_tls_failure(conn, saved, f))
		return;
	if (saved != 0 && (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF))) {
		cli_socket_failure(conn, saved, f);
		return;
	}
	/* A node that is stopped (SIGSTOP) or overloaded still gets its
	 * connections accepted by the kernel, so the time runs out in the TLS
	 * handshake: that is not a node that cannot be reached. */
	if (what & BEV_EVENT_TIMEOUT) {
		f->err = CMICRO_ETIMEDOUT;
		cmi_fmt(f->message, sizeof(f->message),
			"%s did not complete the connection in time (TCP or TLS handshake); "
			"the node is stopped, overloaded or behind a filtering firewall",
			conn->address);
		return;
	}
	f->err = CMICRO_ECONNECT;
	cmi_fmt(f->message, sizeof(f->message), "cannot connect to %s; check that the node is "
						"running and the address is reachable",
		conn->address);
}

static void cli_connect_event(struct bufferevent *bev, short what, void *arg)
{
	struct cli_conn *conn = arg;

	if (!(what & BEV_EVENT_CONNECTED)) {
		cli_classify_connect(conn, what);
	} else if (conn->bev != NULL && cli_read_early_alert(conn, bev)) {
		/* Reported as a failed connect, so that evhttp does not write the
		 * request to a reset socket (SIGPIPE) after SO_ERROR was read. */
		errno = 0;
		what = BEV_EVENT_ERROR | BEV_EVENT_READING;
	}
	conn->evhttp_event_cb(bev, what, conn->evhttp_event_arg);
}

/* evhttp calls this before it resets the connection, which would drop the
 * TLS errors. With TLS 1.3 a server that rejects the client's certificate
 * sends its alert after the client's handshake is done, so the alert
 * arrives on the first read of the response. */
static void cli_request_error(enum evhttp_request_error error, void *arg)
{
	struct cli_call *call = arg;
	struct cli_conn *conn = call->conn;
	int saved = errno;

	call->evhttp_error = (int)error;
	if (conn != NULL && conn->bev != NULL && conn->failure.err == 0)
		cli_tls_failure(conn, saved, &conn->failure);
}

/* Fills the result of a request that got no response. */
static void cli_explain_failure(struct cli_call *call)
{
	struct cli_conn *conn = call->conn;

	if (conn->failure.err != 0 ||
	    (conn->bev != NULL && cli_tls_failure(conn, 0, &conn->failure))) {
		call->result = conn->failure;
		return;
	}
	switch (call->evhttp_error) {
	case EVREQ_HTTP_TIMEOUT:
		cli_fail(call, CMICRO_ETIMEDOUT, "no response in time; the node is overloaded or "
						 "stalled");
		break;
	case EVREQ_HTTP_INVALID_HEADER:
	case EVREQ_HTTP_DATA_TOO_LONG:
		cli_fail(call, CMICRO_EPROTO, "invalid HTTP response; check that the address is a "
					      "broker node");
		break;
	default:
		if (cli_client_cert_rejected(conn, &call->result))
			break;
		cli_fail(call, CMICRO_ECONNECT, "the connection closed before a response; check "
						"that the node serves %s",
			 conn->bev ? "HTTPS (its metadata says secure=true)"
				   : "plain HTTP (its metadata says secure=false)");
	}
}

static void cli_keep_body(struct cli_call *call, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);

	call->body = malloc(n + 1);
	if (call->body == NULL)
		return;
	evbuffer_copyout(in, call->body, n);
	call->body[n] = '\0';
	call->result.body = call->body;
	call->result.body_len = n;
}

static void cli_request_done(struct evhttp_request *req, void *arg)
{
	struct cli_call *call = arg;
	struct cli_conn *conn = call->conn;
	int status = req ? evhttp_request_get_response_code(req) : 0;

	if (call->completed)
		return;
	conn->busy = false;
	call->result.status = status;
	if (status == 0) {
		cli_explain_failure(call);
		cli_mark_dead(conn);
	} else if (call->get) {
		cli_keep_body(call, req);
	}
	if (status != 0 && (status < 200 || status > 299)) {
		cli_fail(call, 0, "HTTP %d %s", status,
			 req && evhttp_request_get_response_code_line(req)
				 ? evhttp_request_get_response_code_line(req)
				 : "");
	}
	conn->call = NULL;
	call->conn = NULL;
	cli_finish(call);
}

static void cli_call_release(struct cli_call *call)
{
	struct cmi_http_client *client = call->client;

	if (call->prev != NULL)
		call->prev->next = call->next;
	else
		client->calls = call->next;
	if (call->next != NULL)
		call->next->prev = call->prev;
	event_free(call->ev);
	if (call->req != NULL)
		evhttp_request_free(call->req);
	free(call->body);
	free(call->path);
	free(call->node_id);
	free(call);
}

/* Removes call from the waiting list. */
static void cli_unqueue(struct cli_call *call)
{
	struct cmi_http_client *client = call->client;
	struct cli_call **link = &client->pend_head;
	struct cli_call *prev = NULL;

	while (*link != NULL && *link != call) {
		prev = *link;
		link = &(*link)->pnext;
	}
	if (*link == call) {
		*link = call->pnext;
		if (client->pend_tail == call)
			client->pend_tail = prev;
	}
	call->pnext = NULL;
	call->pending = false;
}

/* Runs on completion, or at the deadline when the response is late. */
static void cli_call_event(evutil_socket_t fd, short what, void *arg)
{
	struct cli_call *call = arg;

	(void)fd;
	(void)what;
	if (!call->completed && call->pending) {
		cli_unqueue(call);
		cli_fail(call, CMICRO_ETIMEDOUT,
			 "no free connection to %s within the delivery timeout: %d requests were "
			 "already under way to that node, which is slow or overloaded",
			 call->address, CLI_CONNS_PER_NODE);
		call->completed = true;
	} else if (!call->completed) {
		struct cli_conn *conn = call->conn;

		cli_fail(call, CMICRO_ETIMEDOUT, "no response within the delivery timeout; the node "
						 "is slow, stalled or unreachable");
		call->completed = true;
		call->conn = NULL;
		conn->busy = false;
		conn->call = NULL;
		/* Freeing the connection drops the request without calling back. */
		cli_mark_dead(conn);
		cli_reap(-1, 0, conn->client);
	}
	{
		struct cmi_http_client *client = call->client;
		char key[sizeof(call->key)];

		memcpy(key, call->key, sizeof(key));
		call->done(call->arg, &call->result);
		cli_call_release(call);
		cli_dispatch(client, key);
	}
}

int cmi_http_split_address(const char *address, char *host, size_t host_size, int *port)
{
	const char *colon, *start = address, *end;
	char *tail = NULL;
	long p;

	if (address == NULL)
		return cmi_error(CMICRO_EINVAL, "address is NULL");
	if (address[0] == '[') {
		start = address + 1;
		end = strchr(start, ']');
		colon = end ? end + 1 : NULL;
		if (colon == NULL || *colon != ':')
			goto bad;
	} else {
		colon = strrchr(address, ':');
		end = colon;
		if (colon == NULL || strchr(address, ':') != colon)
			goto bad;
	}
	p = strtol(colon + 1, &tail, 10);
	if (colon[1] == '\0' || *tail != '\0' || p < 0 || p > 65535 ||
	    (size_t)(end - start) >= host_size)
		goto bad;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port = (int)p;
	return 0;

bad:
	return cmi_error(CMICRO_EINVAL, "address \"%.200s\" is not HOST:PORT (use [v6]:PORT for "
					"IPv6) with a port from 0 to 65535",
			 address);
}

static struct cli_conn *cli_find_idle(struct cmi_http_client *client, const char *key)
{
	for (struct cli_conn *c = client->conns; c != NULL; c = c->next) {
		if (!c->busy && !c->dead && strcmp(c->key, key) == 0)
			return c;
	}
	return NULL;
}

static int cli_new_bev(struct cmi_http_client *client, const char *host,
		       const struct cmi_http_post *post, struct bufferevent **out)
{
	const char *label = post->peer_label ? post->peer_label : post->address;
	SSL *ssl = NULL;
	int rc;

	*out = NULL;
	if (client->tls == NULL)
		return cmi_error(CMICRO_ECONFIG, "https to %s needs a TLS client context", label);
	rc = cmicro_tls_ssl_new(client->tls, host, label, &ssl);
	if (rc == 0)
		rc = cmi_tls_ssl_set_peer(ssl, post->address, post->node_id);
	if (rc != 0) {
		SSL_free(ssl);
		return rc;
	}
	*out = bufferevent_openssl_socket_new(client->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					      BEV_OPT_CLOSE_ON_FREE);
	if (*out == NULL) {
		SSL_free(ssl);
		return cmi_error(CMICRO_ENOMEM, "out of memory creating a TLS connection to %s", label);
	}
	/* HTTP marks the end of a response itself, so a peer closing without
	 * close_notify is not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(*out, 1);
	return 0;
}

static int cli_new_conn(struct cmi_http_client *client, const struct cmi_http_post *post,
			const char *key, struct cli_conn **out)
{
	struct cli_conn *conn;
	char host[256];
	int port, rc;

	rc = cmi_http_split_address(post->address, host, sizeof(host), &port);
	if (rc != 0)
		return rc;
	conn = cmi_calloc(1, sizeof(*conn));
	if (conn == NULL)
		return CMICRO_ENOMEM;
	conn->client = client;
	cmi_fmt(conn->key, sizeof(conn->key), "%s", key);
	cmi_fmt(conn->address, sizeof(conn->address), "%s", post->address);
	if (post->https) {
		rc = cli_new_bev(client, host, post, &conn->bev);
		if (rc != 0) {
			free(conn);
			return rc;
		}
	}
	conn->evcon = evhttp_connection_base_bufferevent_new(client->base, NULL, conn->bev, host,
							     (ev_uint16_t)port);
	if (conn->evcon == NULL) {
		if (conn->bev != NULL)
			bufferevent_free(conn->bev);
		free(conn);
		return cmi_error(CMICRO_ENOMEM, "cannot create a connection to %s", post->address);
	}
	evhttp_connection_set_retries(conn->evcon, 0);
	evhttp_connection_set_closecb(conn->evcon, cli_closed, conn);
	conn->next = client->conns;
	client->conns = conn;
	*out = conn;
	return 0;
}

/* Turns Nagle off once per socket: a request must leave without waiting
 * for the acknowledgement of the previous one. */
static void cli_set_nodelay(struct cli_conn *conn, struct bufferevent *bev)
{
	int fd = bufferevent_getfd(bev);
	int one = 1;

	if (conn->nodelay || fd < 0)
		return;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0)
		conn->nodelay = true;
}

/*
 * The OpenSSL bufferevent calls SSL_write once per evbuffer chain, and
 * evhttp leaves the headers and the body in separate chains. Making them one
 * chain sends the request as one TLS record and one write(2). On a new
 * connection the request is still queued in evhttp, so its first request
 * goes out in two records.
 */
static void cli_coalesce_output(struct bufferevent *bev)
{
	struct evbuffer *output = bufferevent_get_output(bev);

	if (evbuffer_get_length(output) > 0)
		evbuffer_pullup(output, -1);
}

/* Wraps evhttp's connect callback (installed by evhttp_make_request),
 * turns Nagle off and coalesces the request written to a kept-alive
 * connection. */
static void cli_after_start(struct cli_conn *conn)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(conn->evcon);
	bufferevent_data_cb rcb, wcb;
	bufferevent_event_cb ecb;
	void *arg;

	cli_set_nodelay(conn, bev);
	cli_coalesce_output(bev);
	bufferevent_getcb(bev, &rcb, &wcb, &ecb, &arg);
	/* While connecting evhttp sets only an event callback; the argument is
	 * shared by all three, so the read and write ones must be unset. */
	if (ecb != NULL && ecb != cli_connect_event && rcb == NULL && wcb == NULL) {
		conn->evhttp_event_cb = ecb;
		conn->evhttp_event_arg = arg;
		bufferevent_setcb(bev, rcb, wcb, cli_connect_event, conn);
	}
}

static struct evhttp_request *cli_build_request(struct cli_call *call,
						const struct cmi_http_post *post)
{
	struct evhttp_request *req = evhttp_request_new(cli_request_done, call);
	struct evkeyvalq *headers;

	if (req == NULL)
		return NULL;
	evhttp_request_set_error_cb(req, cli_request_error);
	headers = evhttp_request_get_output_headers(req);
	/* Go's HTTP server rejects HTTP/1.1 requests without Host. */
	evhttp_add_header(headers, "Host", post->address);
	if (post->get)
		return req;
	evhttp_add_header(headers, "Content-Type", "application/json");
	if (evbuffer_add(evhttp_request_get_output_buffer(req), post->body, post->body_len) != 0) {
		evhttp_request_free(req);
		return NULL;
	}
	return req;
}

static struct cli_call *cli_call_new(struct cmi_http_client *client,
				     const struct cmi_http_post *post, cmi_http_done_fn done,
				     void *arg)
{
	struct cli_call *call = cmi_calloc(1, sizeof(*call));

	if (call == NULL)
		return NULL;
	call->client = client;
	call->done = done;
	call->arg = arg;
	call->evhttp_error = -1;
	call->get = post->get;
	cmi_fmt(call->address, sizeof(call->address), "%s", post->address);
	cmi_fmt(call->label, sizeof(call->label), "%s",
		post->peer_label ? post->peer_label : post->address);
	call->ev = event_new(client->base, -1, 0, cli_call_event, call);
	if (call->ev == NULL) {
		free(call);
		return NULL;
	}
	call->next = client->calls;
	if (client->calls != NULL)
		client->calls->prev = call;
	client->calls = call;
	return call;
}

/* Counts the connections to key that are open or opening. */
static int cli_count(const struct cmi_http_client *client, const char *key)
{
	int n = 0;

	for (const struct cli_conn *c = client->conns; c != NULL; c = c->next)
		n += !c->dead && strcmp(c->key, key) == 0;
	return n;
}

/* Finds an idle connection to the call's node, or opens one while the node
 * is under the cap. Returns 0 with *out NULL when the call must wait. */
static int cli_conn_for(struct cmi_http_client *client, const struct cli_call *call,
			struct cli_conn **out)
{
	struct cmi_http_post post = {0};

	*out = cli_find_idle(client, call->key);
	if (*out != NULL || cli_count(client, call->key) >= CLI_CONNS_PER_NODE)
		return 0;
	post.https = call->https;
	post.address = call->address;
	post.peer_label = call->label;
	post.node_id = call->node_id;
	return cli_new_conn(client, &post, call->key, out);
}

/* Hands the call's request to evhttp on conn. A failure to start is
 * reported through the call like any other failure. */
static void cli_start(struct cli_call *call, struct cli_conn *conn)
{
	struct evhttp_request *req = call->req;

	call->req = NULL;
	call->conn = conn;
	conn->busy = true;
	conn->call = call;
	evhttp_connection_set_timeout_tv(conn->evcon, &call->timeout);
	if (call->get)
		evhttp_connection_set_max_body_size(conn->evcon, CLI_GET_BODY_MAX);
	if (evhttp_make_request(conn->evcon, req, call->get ? EVHTTP_REQ_GET : EVHTTP_REQ_POST,
				call->path) != 0) {
		/* evhttp keeps the request on failure; it never called back. */
		evhttp_request_free(req);
		cli_fail(call, CMICRO_ECONNECT, "cannot start a connection to %s", call->address);
		conn->busy = false;
		conn->call = NULL;
		call->conn = NULL;
		cli_mark_dead(conn);
		cli_finish(call);
		return;
	}
	cli_after_start(conn);
}

/* Starts the oldest call waiting for key, when a connection is free. */
static void cli_dispatch(struct cmi_http_client *client, const char *key)
{
	struct cli_call *call = client->pend_head;
	struct cli_conn *conn = NULL;

	while (call != NULL && strcmp(call->key, key) != 0)
		call = call->pnext;
	if (call == NULL || cli_conn_for(client, call, &conn) != 0 || conn == NULL)
		return;
	cli_unqueue(call);
	cli_start(call, conn);
}

static int cli_call_fill(struct cli_call *call, const struct cmi_http_post *post)
{
	cmi_fmt(call->key, sizeof(call->key), "%s://%s", post->https ? "https" : "http",
		post->address);
	call->https = post->https;
	call->timeout.tv_sec = post->timeout_ms / 1000;
	call->timeout.tv_usec = (post->timeout_ms % 1000) * 1000;
	call->path = cmi_strdup(post->path);
	call->node_id = post->node_id ? cmi_strdup(post->node_id) : NULL;
	call->req = cli_build_request(call, post);
	if (call->path == NULL || (post->node_id != NULL && call->node_id == NULL) ||
	    call->req == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory building a request to %s",
				 post->address);
	return 0;
}

int cmi_http_client_post(struct cmi_http_client *client, const struct cmi_http_post *post,
			 cmi_http_done_fn done, void *arg)
{
	struct cli_conn *conn = NULL;
	struct cli_call *call = cli_call_new(client, post, done, arg);
	int rc = call != NULL ? cli_call_fill(call, post) : CMICRO_ENOMEM;

	if (rc == 0)
		rc = cli_conn_for(client, call, &conn);
	if (rc != 0) {
		if (call != NULL)
			cli_call_release(call);
		return rc;
	}
	event_add(call->ev, &call->timeout);
	if (conn != NULL) {
		cli_start(call, conn);
		return 0;
	}
	call->pending = true;
	if (client->pend_tail != NULL)
		client->pend_tail->pnext = call;
	else
		client->pend_head = call;
	client->pend_tail = call;
	return 0;
}

int cmi_http_client_new(struct event_base *base, struct cmicro_tls_context *tls,
			struct cmi_http_client **out)
{
	struct cmi_http_client *client = cmi_calloc(1, sizeof(*client));

	*out = NULL;
	if (client == NULL)
		return CMICRO_ENOMEM;
	client->base = base;
	client->tls = tls;
	client->reap_ev = event_new(base, -1, 0, cli_reap, client);
	if (client->reap_ev == NULL) {
		free(client);
		return cmi_error(CMICRO_ENOMEM, "out of memory creating the HTTP client");
	}
	*out = client;
	return 0;
}

void cmi_http_client_free(struct cmi_http_client *client)
{
	if (client == NULL)
		return;
	while (client->calls != NULL) {
		struct cli_call *call = client->calls;

		if (call->pending)
			cli_unqueue(call);
		if (!call->completed)
			cli_fail(call, CMICRO_ECLOSED, "the broker closed before a response");
		call->completed = true;
		if (call->conn != NULL)
			call->conn->call = NULL;
		call->done(call->arg, &call->result);
		cli_call_release(call);
	}
	while (client->conns != NULL) {
		struct cli_conn *conn = client->conns;

		client->conns = conn->next;
		cli_conn_free(conn);
	}
	event_free(client->reap_ev);
	free(client);
}
