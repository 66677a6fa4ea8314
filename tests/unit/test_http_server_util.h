/*
 * Fixture of the HTTP server behaviour tests: a server whose event loop runs
 * on its own thread, a handler that records what it saw, and a blocking raw
 * HTTP/1.1 client (plain or TLS) that reads responses from the wire. Every
 * client socket has SO_RCVTIMEO and SO_SNDTIMEO set, so every wait of a test
 * is bounded. The fixture owns every connection, certificate and thread of
 * a test, and the cmocka teardown st_teardown releases them even when the
 * test fails. The functions are static inline so that a test file may leave
 * some of them unused.
 */
#ifndef CMICRO_TEST_HTTP_SERVER_UTIL_H
#define CMICRO_TEST_HTTP_SERVER_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "http/http_int.h"
#include "testkit.h"

/* Bound of every blocking read, write and wait, in seconds. */
#define ST_IO_TIMEOUT_S 5

/* ---- raw client ---- */

/* Outcome of one read from the server. */
enum st_read {
	ST_READ_DATA = 0,
	ST_READ_EOF,     /* TCP end of file, or a TLS close_notify */
	ST_READ_RESET,   /* connection reset, or TLS ended without close_notify */
	ST_READ_TIMEOUT, /* nothing within ST_IO_TIMEOUT_S */
	ST_READ_FULL     /* the client's buffer is full */
};

struct st_conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int ssl_error; /* SSL_get_error() of the last TLS read that returned no data */
	size_t len;    /* bytes received and not yet parsed */
	char buf[1 << 16];
};

static inline int st_socket(int port)
{
	struct sockaddr_in sa = {0};
	struct timeval tv = {ST_IO_TIMEOUT_S, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		fail_msg("connect to 127.0.0.1:%d failed with errno %d", port, errno);
	return fd;
}

/* Fails the test with OpenSSL's queued errors. */
static inline void st_fail_ossl(const char *operation)
{
	char detail[512] = "";

	cmi_ossl_drain(detail, sizeof(detail));
	fail_msg("%s failed%s", operation, detail);
}

/* Runs a TLS handshake on c that verifies the server's certificate against
 * trust_file and the IP address 127.0.0.1, or checks nothing when
 * trust_file is NULL. */
static inline void st_conn_tls(struct st_conn *c, const char *trust_file)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL)
		st_fail_ossl("SSL_CTX_new");
	SSL_CTX_set_verify(c->ctx, trust_file ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (trust_file != NULL && SSL_CTX_load_verify_locations(c->ctx, trust_file, NULL) != 1)
		st_fail_ossl("loading the trusted certificate");
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		st_fail_ossl("SSL_new");
	if (trust_file != NULL &&
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1") != 1)
		st_fail_ossl("setting the expected IP address");
	if (SSL_connect(c->ssl) != 1)
		fail_msg("TLS handshake with the server failed: %s",
			 X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
}

static inline void st_close(struct st_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* Writes all len bytes. Returns false when the connection failed or a
 * write timed out. Safe to call from a thread other than the test's. */
static inline bool st_write(struct st_conn *c, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n;

		if (c->ssl != NULL)
			n = SSL_write(c->ssl, data, (int)len);
		else
			n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && c->ssl == NULL && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		data += n;
		len -= (size_t)n;
	}
	return true;
}

static inline void st_send(struct st_conn *c, const char *text)
{
	if (!st_write(c, text, strlen(text)))
		fail_msg("sending %zu bytes to the server failed (errno %d)", strlen(text), errno);
}

static inline enum st_read st_tls_fill(struct st_conn *c, size_t room)
{
	int n = SSL_read(c->ssl, c->buf + c->len, (int)room);
	int saved_errno;

	if (n > 0) {
		c->len += (size_t)n;
		return ST_READ_DATA;
	}
	saved_errno = errno;
	c->ssl_error = SSL_get_error(c->ssl, n);
	ERR_clear_error();
	if (c->ssl_error == SSL_ERROR_ZERO_RETURN)
		return ST_READ_EOF;
	/* A read that SO_RCVTIMEO ended comes back as a retry. */
	if (c->ssl_error == SSL_ERROR_WANT_READ ||
	    (c->ssl_error == SSL_ERROR_SYSCALL &&
	     (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)))
		return ST_READ_TIMEOUT;
	return ST_READ_RESET;
}

/* Appends what the server sends next to c->buf. */
static inline enum st_read st_fill(struct st_conn *c)
{
	size_t room = sizeof(c->buf) - c->len;
	ssize_t n;

	if (room == 0)
		return ST_READ_FULL;
	if (c->ssl != NULL)
		return st_tls_fill(c, room);
	do {
		n = recv(c->fd, c->buf + c->len, room, 0);
	} while (n < 0 && errno == EINTR);
	if (n > 0) {
		c->len += (size_t)n;
		return ST_READ_DATA;
	}
	if (n == 0)
		return ST_READ_EOF;
	return errno == EAGAIN || errno == EWOULDBLOCK ? ST_READ_TIMEOUT : ST_READ_RESET;
}

static inline const char *st_read_text(enum st_read rc)
{
	switch (rc) {
	case ST_READ_DATA: return "data";
	case ST_READ_EOF: return "the server closed the connection";
	case ST_READ_RESET: return "the connection was reset";
	case ST_READ_TIMEOUT: return "timed out";
	case ST_READ_FULL: return "the client buffer is full";
	}
	return "unknown";
}

static inline void st_consume(struct st_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Waits until the server closes the connection (bounded). Returns true when
 * it did, by end of file or reset, and counts in *extra the bytes that
 * arrived meanwhile, the unparsed ones included. */
static inline bool st_wait_closed(struct st_conn *c, size_t *extra)
{
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	enum st_read rc = ST_READ_DATA;

	*extra = c->len;
	c->len = 0;
	while (rc == ST_READ_DATA && cmi_now_mono() < deadline) {
		rc = st_fill(c);
		*extra += c->len;
		c->len = 0;
	}
	return rc == ST_READ_EOF || rc == ST_READ_RESET;
}

/* One response as received. */
struct st_response {
	char status_line[128];
	int status;
	char head[16384];     /* the header field lines, each ending in CRLF */
	long content_length;  /* -1 when the field is missing */
	bool close_delimited; /* no Content-Length: the body ended when the server closed */
	char body[8192];
	size_t body_len;
};

/* Copies the value of the first field called name (any case) without the
 * spaces around it into out. Returns out, or NULL when the field is missing. */
static inline const char *st_field(const struct st_response *r, const char *name, char *out,
				   size_t size)
{
	size_t name_len = strlen(name);

	for (const char *line = r->head; *line != '\0';) {
		const char *end = strstr(line, "\r\n");
		const char *v = line + name_len + 1;
		size_t n;

		if (end == NULL)
			break;
		if ((size_t)(end - line) > name_len && line[name_len] == ':' &&
		    strncasecmp(line, name, name_len) == 0) {
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			n = (size_t)(end - v);
			while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
				n--;
			cmi_fmt(out, size, "%.*s", (int)n, v);
			return out;
		}
		line = end + 2;
	}
	return NULL;
}

/* Reads until c->buf contains a whole response head, and sets *head_len to
 * its length with the empty line. Returns NULL, or why no head arrived. */
static inline const char *st_read_head(struct st_conn *c, size_t *head_len)
{
	for (;;) {
		const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		enum st_read rc;

		if (end != NULL) {
			*head_len = (size_t)(end - c->buf) + 4;
			return NULL;
		}
		rc = st_fill(c);
		if (rc != ST_READ_DATA)
			return st_read_text(rc);
	}
}

/* Parses the status line and keeps the field lines of a head of len bytes. */
static inline const char *st_parse_head(const char *head, size_t len, struct st_response *r)
{
	const char *eol = memmem(head, len, "\r\n", 2);
	size_t line_len = (size_t)(eol - head);
	char value[32], *end = NULL;

	if (line_len >= sizeof(r->status_line) || len - line_len - 2 >= sizeof(r->head))
		return "response head too long for the test client";
	memcpy(r->status_line, head, line_len);
	memcpy(r->head, eol + 2, len - line_len - 4);
	if (line_len < 13 || strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' ||
	    head[12] != ' ')
		return "malformed status line";
	for (int i = 9; i < 12; i++) {
		if (head[i] < '0' || head[i] > '9')
			return "malformed status code";
		r->status = r->status * 10 + (head[i] - '0');
	}

	r->content_length = -1;
	if (st_field(r, "Transfer-Encoding", value, sizeof(value)) != NULL)
		return "chunked response: the test client reads Content-Length bodies only";
	if (st_field(r, "Content-Length", value, sizeof(value)) != NULL) {
		r->content_length = strtol(value, &end, 10);
		if (value[0] < '0' || value[0] > '9' || *end != '\0' || r->content_length < 0)
			return "invalid Content-Length";
	}
	return NULL;
}

static inline void st_keep_body(struct st_conn *c, struct st_response *r, size_t want)
{
	memcpy(r->body, c->buf, want);
	r->body[want] = '\0';
	r->body_len = want;
	st_consume(c, want);
}

/* Reads a body that ends when the server closes (RFC 9112, section 6.3,
 * rule 8), which a server may send to an HTTP/1.0 client. */
static inline const char *st_read_body_to_close(struct st_conn *c, struct st_response *r)
{
	enum st_read rc = ST_READ_DATA;

	r->close_delimited = true;
	while (rc == ST_READ_DATA && c->len < sizeof(r->body))
		rc = st_fill(c);
	if (rc != ST_READ_EOF)
		return rc == ST_READ_DATA ? "response body too long for the test client"
					  : st_read_text(rc);
	st_keep_body(c, r, c->len);
	return NULL;
}

static inline const char *st_read_body(struct st_conn *c, struct st_response *r)
{
	size_t want = (size_t)r->content_length;

	if (r->content_length < 0)
		return st_read_body_to_close(c, r);
	if (want >= sizeof(r->body))
		return "response body too long for the test client";
	while (c->len < want) {
		enum st_read rc = st_fill(c);

		if (rc != ST_READ_DATA)
			return st_read_text(rc);
	}
	st_keep_body(c, r, want);
	return NULL;
}

/* Reads one response. The response to a HEAD request (head_request) has no
 * body. Returns NULL, or why no complete response arrived. */
static inline const char *st_read_response(struct st_conn *c, struct st_response *r,
					   bool head_request)
{
	size_t head_len = 0;
	const char *failure;

	memset(r, 0, sizeof(*r));
	failure = st_read_head(c, &head_len);
	if (failure == NULL)
		failure = st_parse_head(c->buf, head_len, r);
	if (failure != NULL)
		return failure;
	st_consume(c, head_len);

	/* 1xx, 204 and 304 responses and responses to HEAD end with their head
	 * (RFC 9112, section 6.3). */
	if (head_request || (r->status >= 100 && r->status < 200) || r->status == 204 ||
	    r->status == 304)
		return NULL;
	return st_read_body(c, r);
}

static inline void st_expect_response_to(struct st_conn *c, struct st_response *r,
					 bool head_request)
{
	const char *failure = st_read_response(c, r, head_request);

	if (failure != NULL)
		fail_msg("no complete response: %s (status line \"%s\", %zu bytes unparsed: "
			 "\"%.*s\")",
			 failure, r->status_line, c->len, (int)(c->len < 200 ? c->len : 200),
			 c->buf);
}

static inline void st_expect_response(struct st_conn *c, struct st_response *r)
{
	st_expect_response_to(c, r, false);
}

/* ---- server fixture ---- */

/* What the handler does with a request. */
enum st_mode {
	ST_MODE_ECHO = 0,  /* replies reply_status with the request body */
	ST_MODE_POST_ONLY, /* 200 "handled" to POST and HEAD, 405 to other methods */
	ST_MODE_HOLD,      /* keeps the request unanswered in held, in order */
};

/* Requests the handler keeps at once in ST_MODE_HOLD. It replies 503 to
 * more. */
#define ST_HELD_MAX 8

/* Requests whose details the handler records. Later ones are only counted. */
#define ST_SEEN_MAX 8

/* What the handler saw of one request, with "(none)" for a missing value. */
struct st_seen {
	char method[16];
	char path[128];
	char id[128];
	char body[256];
	size_t body_len;
	char probe[128];       /* field "X-Probe" */
	char probe_upper[128]; /* the same field, looked up as "X-PROBE" */
};

/* Server limits, where zero selects the server's default. */
struct st_limits {
	size_t max_body;
	size_t max_headers;
	int max_connections;
	int read_timeout_ms;
	int pipeline_max;
};

/* Client connections one test may open. */
#define ST_CONNS_MAX 8

struct st_fixture {
	struct event_base *base;
	struct event *stop_ev;
	struct cmi_http_server *srv;
	struct cmicro_tls_context *tls;
	struct cmicro_cert *cert; /* the server's certificate for TLS, set before st_serve */
	char *dir;                /* temporary directory of certificate files, or NULL */
	pthread_t loop;
	bool looping;
	int port;
	struct st_conn *conns[ST_CONNS_MAX];
	size_t n_conns;

	/* The writer thread of st_writer_start and what it wrote. */
	pthread_t writer;
	bool writing;
	struct st_conn *writer_conn;
	int to_write;
	int written;

	/* The sender thread of st_sender_start and whether its write succeeded. */
	pthread_t sender;
	bool sending;
	struct st_conn *sender_conn;
	char *send_data; /* freed by st_sender_join or st_free */
	size_t send_len;
	bool sent;

	bool capturing; /* log lines go to tk_log_captured() until st_free */

	/* Guards the fields below, which the loop thread and the test share. */
	pthread_mutex_t lock;
	enum st_mode mode;
	int reply_status;
	int requests;
	struct st_seen seen[ST_SEEN_MAX];
	struct cmi_http_request *held[ST_HELD_MAX];
	int n_held;
	int connections; /* cmi_http_server_connections() as st_count_cb read it */
	bool counted;
};

static inline void st_copy(char *dst, size_t size, const char *src)
{
	cmi_fmt(dst, size, "%s", src ? src : "(none)");
}

/* Called with f->lock held. */
static inline void st_record(struct st_fixture *f, struct cmi_http_request *req,
			     const char *body, size_t len)
{
	struct st_seen *s;

	if (f->requests >= ST_SEEN_MAX)
		return;
	s = &f->seen[f->requests];
	st_copy(s->method, sizeof(s->method), cmi_http_request_method(req));
	st_copy(s->path, sizeof(s->path), cmi_http_request_path(req));
	st_copy(s->id, sizeof(s->id), cmi_http_request_query(req, "id"));
	cmi_fmt(s->body, sizeof(s->body), "%.*s", (int)len, body ? body : "");
	s->body_len = len;
	st_copy(s->probe, sizeof(s->probe), cmi_http_request_header(req, "X-Probe"));
	st_copy(s->probe_upper, sizeof(s->probe_upper), cmi_http_request_header(req, "X-PROBE"));
}

static inline void st_handler(void *user, struct cmi_http_request *req)
{
	struct st_fixture *f = user;
	const char *method = cmi_http_request_method(req);
	size_t len = 0;
	const char *body = cmi_http_request_body(req, &len);
	enum st_mode mode;
	int status;

	pthread_mutex_lock(&f->lock);
	st_record(f, req, body, len);
	f->requests++;
	mode = f->mode;
	status = f->reply_status;
	if (mode == ST_MODE_HOLD && f->n_held < ST_HELD_MAX)
		f->held[f->n_held++] = req;
	else if (mode == ST_MODE_HOLD)
		status = 503;
	pthread_mutex_unlock(&f->lock);

	if (mode == ST_MODE_HOLD && status == 503)
		cmi_http_reply(req, 503, "too many held requests");

	if (mode == ST_MODE_ECHO)
		cmi_http_reply(req, status, body ? body : "");
	else if (mode == ST_MODE_POST_ONLY &&
		 (strcmp(method, "POST") == 0 || strcmp(method, "HEAD") == 0))
		cmi_http_reply(req, 200, "handled");
	else if (mode == ST_MODE_POST_ONLY)
		cmi_http_reply(req, 405, "method not allowed");
}

static inline void *st_loop_main(void *arg)
{
	struct st_fixture *f = arg;

	event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Breaks the loop from inside it, because an event made active stays
 * pending until the loop runs it. A loopbreak made before the loop thread
 * entered event_base_loop would be cleared by it and lost. */
static inline void st_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static inline void st_tls_server(struct st_fixture *f)
{
	struct cmicro_tls_config *cfg = NULL;

	TK_OK(cmicro_tls_config_insecure(&cfg));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, f->cert, &f->tls));
	cmicro_tls_config_free(cfg);
}

/* Creates an empty fixture that st_teardown will release. */
static inline struct st_fixture *st_fixture_new(void **state)
{
	struct st_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	*state = f;
	pthread_mutex_init(&f->lock, NULL);
	f->reply_status = 200;
	return f;
}

/* Starts a server on 127.0.0.1, over TLS when f->cert is set, and its loop
 * thread. limits may be NULL for the defaults. */
static inline void st_serve(struct st_fixture *f, const struct st_limits *limits)
{
	struct cmi_http_server_opts so = {0};

	TK_OK(cmi_http_threads_init());
	f->base = event_base_new();
	assert_non_null(f->base);
	f->stop_ev = event_new(f->base, -1, 0, st_stop_cb, f->base);
	assert_non_null(f->stop_ev);
	if (f->cert != NULL)
		st_tls_server(f);

	so.host = "127.0.0.1";
	so.tls = f->tls;
	if (limits != NULL) {
		so.max_body = limits->max_body;
		so.max_headers = limits->max_headers;
		so.max_connections = limits->max_connections;
		so.read_timeout_ms = limits->read_timeout_ms;
		so.pipeline_max = limits->pipeline_max;
	}
	so.handler = st_handler;
	so.user = f;
	TK_OK(cmi_http_server_new(f->base, &so, &f->srv));
	f->port = cmi_http_server_port(f->srv);
	assert_true(f->port > 0);

	assert_int_equal(pthread_create(&f->loop, NULL, st_loop_main, f), 0);
	f->looping = true;
}

/* Starts a plain HTTP server with its loop thread. */
static inline struct st_fixture *st_start(void **state, const struct st_limits *limits)
{
	struct st_fixture *f = st_fixture_new(state);

	st_serve(f, limits);
	return f;
}

/* Stops the loop thread, so that the test thread owns the server. */
static inline void st_stop_loop(struct st_fixture *f)
{
	if (!f->looping)
		return;
	event_active(f->stop_ev, 0, 0);
	assert_int_equal(pthread_join(f->loop, NULL), 0);
	f->looping = false;
}

/* Ends the writer thread. The shutdown makes a write it is blocked in fail. */
static inline void st_writer_stop(struct st_fixture *f)
{
	if (!f->writing)
		return;
	shutdown(f->writer_conn->fd, SHUT_RDWR);
	pthread_join(f->writer, NULL);
	f->writing = false;
}

/* Ends the sender thread. The shutdown makes a write it is blocked in fail. */
static inline void st_sender_stop(struct st_fixture *f)
{
	if (f->sending) {
		shutdown(f->sender_conn->fd, SHUT_RDWR);
		pthread_join(f->sender, NULL);
		f->sending = false;
	}
	free(f->send_data);
	f->send_data = NULL;
}

static inline void st_free(struct st_fixture *f)
{
	if (f == NULL)
		return;
	st_writer_stop(f);
	st_sender_stop(f);
	for (size_t i = 0; i < f->n_conns; i++)
		st_close(f->conns[i]);
	st_stop_loop(f);
	for (int i = 0; i < f->n_held; i++)
		cmi_http_reply(f->held[i], 503, "test over");
	cmi_http_server_free(f->srv);
	if (f->stop_ev != NULL)
		event_free(f->stop_ev);
	cmicro_tls_context_free(f->tls);
	if (f->base != NULL)
		event_base_free(f->base);
	cmicro_cert_free(f->cert);
	if (f->dir != NULL)
		tk_tmpdir_remove(f->dir);
	if (f->capturing)
		tk_log_capture_stop();
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* The cmocka teardown of every test that made a fixture. */
static inline int st_teardown(void **state)
{
	st_free(*state);
	*state = NULL;
	return 0;
}

static inline void st_set_mode(struct st_fixture *f, enum st_mode mode)
{
	pthread_mutex_lock(&f->lock);
	f->mode = mode;
	pthread_mutex_unlock(&f->lock);
}

static inline int st_requests(struct st_fixture *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->requests;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Waits until the handler has seen n requests (bounded) and returns the count. */
static inline int st_wait_requests(struct st_fixture *f, int n)
{
	const struct timespec step = {0, 5 * 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	int seen = st_requests(f);

	while (seen < n && cmi_now_mono() < deadline) {
		nanosleep(&step, NULL);
		seen = st_requests(f);
	}
	return seen;
}

static inline struct st_seen st_seen_at(struct st_fixture *f, int i)
{
	struct st_seen s;

	assert_true(i >= 0 && i < ST_SEEN_MAX);
	pthread_mutex_lock(&f->lock);
	s = f->seen[i];
	pthread_mutex_unlock(&f->lock);
	return s;
}

/* Sends log lines to tk_log_captured() for the rest of the test. */
static inline void st_capture_logs(struct st_fixture *f)
{
	tk_log_capture_start();
	f->capturing = true;
}

static inline void st_count_cb(evutil_socket_t fd, short what, void *arg)
{
	struct st_fixture *f = arg;
	int n = cmi_http_server_connections(f->srv);

	(void)fd;
	(void)what;
	pthread_mutex_lock(&f->lock);
	f->connections = n;
	f->counted = true;
	pthread_mutex_unlock(&f->lock);
}

/* Returns the server's open connections, read on the loop thread that owns
 * them (bounded wait). */
static inline int st_connections(struct st_fixture *f)
{
	const struct timespec step = {0, 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	bool counted = false;
	int open = 0;

	if (!f->looping)
		return cmi_http_server_connections(f->srv);
	pthread_mutex_lock(&f->lock);
	f->counted = false;
	pthread_mutex_unlock(&f->lock);
	assert_int_equal(event_base_once(f->base, -1, EV_TIMEOUT, st_count_cb, f, NULL), 0);
	while (!counted && cmi_now_mono() < deadline) {
		nanosleep(&step, NULL);
		pthread_mutex_lock(&f->lock);
		counted = f->counted;
		open = f->connections;
		pthread_mutex_unlock(&f->lock);
	}
	assert_true(counted);
	return open;
}

/* Waits until the server has n connections open (bounded) and returns the
 * last count. */
static inline int st_wait_connections(struct st_fixture *f, int n)
{
	const struct timespec step = {0, 5 * 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	int open = st_connections(f);

	while (open != n && cmi_now_mono() < deadline) {
		nanosleep(&step, NULL);
		open = st_connections(f);
	}
	return open;
}

/* Takes the oldest request the handler keeps in ST_MODE_HOLD, after waiting
 * (bounded) for one. */
static inline struct cmi_http_request *st_take_held(struct st_fixture *f)
{
	const struct timespec step = {0, 5 * 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	struct cmi_http_request *req = NULL;

	for (;;) {
		pthread_mutex_lock(&f->lock);
		if (f->n_held > 0) {
			req = f->held[0];
			f->n_held--;
			memmove(f->held, f->held + 1, (size_t)f->n_held * sizeof(f->held[0]));
		}
		pthread_mutex_unlock(&f->lock);
		if (req != NULL || cmi_now_mono() >= deadline)
			break;
		nanosleep(&step, NULL);
	}
	if (req == NULL)
		fail_msg("the handler held no request within %d s", ST_IO_TIMEOUT_S);
	return req;
}

/* Returns how many requests the handler keeps now. */
static inline int st_held_count(struct st_fixture *f)
{
	int n;

	pthread_mutex_lock(&f->lock);
	n = f->n_held;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* Opens a plain connection to the fixture's server. */
static inline struct st_conn *st_open(struct st_fixture *f)
{
	struct st_conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_true(f->n_conns < ST_CONNS_MAX);
	c->fd = -1;
	f->conns[f->n_conns++] = c;
	c->fd = st_socket(f->port);
	return c;
}

/* Opens a TLS connection to the fixture's server (see st_conn_tls). */
static inline struct st_conn *st_open_tls(struct st_fixture *f, const char *trust_file)
{
	struct st_conn *c = st_open(f);

	st_conn_tls(c, trust_file);
	return c;
}

/* Appends a POST of body to target, with Content-Length, to out. */
static inline void st_add_post(char *out, size_t size, const char *target, const char *body)
{
	cmi_append(out, size,
		   "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s", target,
		   strlen(body), body);
}

/* Sends one POST and checks that its echo comes back with status 200. */
static inline void st_post_echoed(struct st_conn *c, const char *body)
{
	char request[1024] = "", expected[512];
	struct st_response r;

	st_add_post(request, sizeof(request), "/?id=echo", body);
	st_send(c, request);
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	cmi_fmt(expected, sizeof(expected), "%s\n", body);
	assert_string_equal(r.body, expected);
}

/* Bound of the writer thread, in seconds. */
#define ST_WRITER_LIMIT_S 10.0

/* Bytes of each body the writer sends. 2000 echoes of them make about 8 MB
 * of responses, twice the largest send buffer of Linux's default tcp_wmem,
 * so the server's output to a client that does not read backs up. */
#define ST_WRITER_BODY_LEN 4000

/* Writes the body of the writer's request i, "m<i>-" padded with "p" to
 * ST_WRITER_BODY_LEN bytes, into out. */
static inline void st_writer_body(int i, char *out, size_t size)
{
	int n = snprintf(out, size, "m%d-", i);

	assert_true(n > 0 && size > ST_WRITER_BODY_LEN);
	memset(out + n, 'p', ST_WRITER_BODY_LEN - (size_t)n);
	out[ST_WRITER_BODY_LEN] = '\0';
}

static inline void *st_writer_main(void *arg)
{
	struct st_fixture *f = arg;
	double deadline = cmi_now_mono() + ST_WRITER_LIMIT_S;
	char request[ST_WRITER_BODY_LEN + 128], body[ST_WRITER_BODY_LEN + 1];

	for (int i = 0; i < f->to_write && cmi_now_mono() < deadline; i++) {
		st_writer_body(i, body, sizeof(body));
		request[0] = '\0';
		st_add_post(request, sizeof(request), "/?id=w", body);
		if (!st_write(f->writer_conn, request, strlen(request)))
			break;
		f->written++;
	}
	return NULL;
}

/* Starts a thread that writes count POSTs with the bodies of
 * st_writer_body to c, one after the other, without reading any response. It stops early when
 * a write fails or after ST_WRITER_LIMIT_S seconds. */
static inline void st_writer_start(struct st_fixture *f, struct st_conn *c, int count)
{
	f->writer_conn = c;
	f->to_write = count;
	f->written = 0;
	assert_int_equal(pthread_create(&f->writer, NULL, st_writer_main, f), 0);
	f->writing = true;
}

/* Waits for the writer thread to end and returns the requests it wrote. */
static inline int st_writer_join(struct st_fixture *f)
{
	assert_int_equal(pthread_join(f->writer, NULL), 0);
	f->writing = false;
	return f->written;
}

/* ---- large requests and responses ---- */

/* Returns a new POST of body_len bytes of fill to "/?id=big", with
 * Content-Length, and sets *len to its size. */
static inline char *st_big_post(size_t body_len, char fill, size_t *len)
{
	char head[128];
	int n = snprintf(head, sizeof(head),
			 "POST /?id=big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n",
			 body_len);
	char *request;

	assert_true(n > 0 && (size_t)n < sizeof(head));
	request = malloc((size_t)n + body_len);
	assert_non_null(request);
	memcpy(request, head, (size_t)n);
	memset(request + n, fill, body_len);
	*len = (size_t)n + body_len;
	return request;
}

/* Reads one response whose body may be larger than struct st_response can
 * contain, and drops the body. Sets *status and *length (its Content-Length).
 * Returns NULL, or why no complete response arrived. */
static inline const char *st_skip_response(struct st_conn *c, int *status, long *length)
{
	struct st_response *r = calloc(1, sizeof(*r));
	const char *failure;
	size_t head_len = 0, left;

	assert_non_null(r);
	failure = st_read_head(c, &head_len);
	if (failure == NULL)
		failure = st_parse_head(c->buf, head_len, r);
	if (failure == NULL && r->content_length < 0)
		failure = "response without Content-Length";
	*status = r->status;
	*length = r->content_length;
	free(r);
	if (failure != NULL)
		return failure;
	st_consume(c, head_len);
	for (left = (size_t)*length; left > 0;) {
		size_t n = c->len < left ? c->len : left;
		enum st_read rc;

		st_consume(c, n);
		left -= n;
		if (left == 0)
			break;
		rc = st_fill(c);
		if (rc != ST_READ_DATA)
			return st_read_text(rc);
	}
	return NULL;
}

static inline void *st_sender_main(void *arg)
{
	struct st_fixture *f = arg;

	f->sent = st_write(f->sender_conn, f->send_data, f->send_len);
	return NULL;
}

/* Starts a thread that writes data (taken, freed by the fixture) to c. It
 * sends a request larger than the socket buffers can take while the test
 * thread reads the responses. */
static inline void st_sender_start(struct st_fixture *f, struct st_conn *c, char *data,
				   size_t len)
{
	assert_false(f->sending);
	f->sender_conn = c;
	f->send_data = data;
	f->send_len = len;
	f->sent = false;
	assert_int_equal(pthread_create(&f->sender, NULL, st_sender_main, f), 0);
	f->sending = true;
}

/* Waits for the sender thread to end; returns true when it wrote all. */
static inline bool st_sender_join(struct st_fixture *f)
{
	assert_int_equal(pthread_join(f->sender, NULL), 0);
	f->sending = false;
	free(f->send_data);
	f->send_data = NULL;
	return f->sent;
}

/* ---- code on the loop thread ---- */

typedef void (*st_loop_fn)(struct st_fixture *f, void *arg);

struct st_loop_call {
	struct st_fixture *f;
	st_loop_fn fn;
	void *arg;
	bool done; /* guarded by f->lock */
};

static inline void st_loop_call_cb(evutil_socket_t fd, short what, void *arg)
{
	struct st_loop_call *call = arg;

	(void)fd;
	(void)what;
	call->fn(call->f, call->arg);
	pthread_mutex_lock(&call->f->lock);
	call->done = true;
	pthread_mutex_unlock(&call->f->lock);
}

/* Runs fn on the loop thread, which owns the server's connections, and
 * waits for it (bounded). The call is leaked when the loop never runs it,
 * because the loop may still run it after the test failed. */
static inline void st_on_loop(struct st_fixture *f, st_loop_fn fn, void *arg)
{
	const struct timespec step = {0, 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	struct st_loop_call *call;
	bool done = false;

	if (!f->looping) {
		fn(f, arg);
		return;
	}
	call = calloc(1, sizeof(*call));
	assert_non_null(call);
	call->f = f;
	call->fn = fn;
	call->arg = arg;
	assert_int_equal(event_base_once(f->base, -1, EV_TIMEOUT, st_loop_call_cb, call, NULL), 0);
	while (!done && cmi_now_mono() < deadline) {
		nanosleep(&step, NULL);
		pthread_mutex_lock(&f->lock);
		done = call->done;
		pthread_mutex_unlock(&f->lock);
	}
	if (!done)
		fail_msg("the server's loop thread did not run a call within %d s",
			 ST_IO_TIMEOUT_S);
	free(call);
}

#endif
