/*
 * One server connection: a non-blocking socket, an OpenSSL object driven on
 * it directly, the framing of requests and the writing of replies. Every
 * request head passes the strict check of http_head.c before it is parsed.
 * The socket stays registered for reading only, and the replies of the
 * requests framed in one pass leave in one write, so a kept-alive
 * connection costs no epoll_ctl per request. A handler may reply later from
 * another thread. The requests behind it are framed and handed over
 * meanwhile, and the replies leave in the order of the requests.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "http/http_server_int.h"

/* Minimum free space in the input before each read, because a TLS record
 * is up to 16 KiB. */
#define SRV_READ_MIN 16384
/* Maximum bytes of pipelined requests read ahead while framing cannot go
 * on: a request waits for its reply, a write waits for the socket, or the
 * last reply is being written. Reading pauses past this. */
#define SRV_PIPELINE_MAX (64u * 1024)
/* Maximum time that a rejected or closing client is read from after the
 * last reply, so that it receives that reply instead of a reset.
 * SRV_DRAIN_BYTES bounds the bytes dropped in one wakeup. */
#define SRV_DRAIN_MS 2000
#define SRV_DRAIN_BYTES (64u << 20)
/* Bytes of replies to pipelined requests gathered before they are written. */
#define SRV_OUT_BATCH (64u * 1024)

static void conn_io(evutil_socket_t fd, short what, void *arg);
static void conn_process(struct srv_conn *conn);
static bool conn_write(struct srv_conn *conn);

/* ---- buffers ---- */

/* Moves the pointers of the parsed head from the old input to the new. */
static const char *rebase(const char *p, const char *old, size_t len, const char *new_base)
{
	if (p == NULL || (uintptr_t)p < (uintptr_t)old || (uintptr_t)p >= (uintptr_t)old + len)
		return p; /* a static string such as "/" */
	return new_base + ((uintptr_t)p - (uintptr_t)old);
}

/* Makes room for need bytes of input. The parsed head points into the
 * input, so a move carries those pointers along. */
static int conn_grow(struct srv_conn *conn, size_t need)
{
	size_t cap = conn->in_cap ? conn->in_cap : SRV_READ_MIN;
	struct cmi_http_req_head *h = &conn->head;
	char *in;

	if (need <= conn->in_cap)
		return 0;
	/* Doubling past this would wrap around. The body limit keeps real
	 * requests far below it. */
	if (need > SIZE_MAX / 2)
		return -1;
	while (cap < need)
		cap *= 2;
	in = malloc(cap);
	if (in == NULL)
		return -1;
	if (conn->in_len > 0)
		memcpy(in, conn->in, conn->in_len);
	if (conn->head_len > 0) {
		h->path = rebase(h->path, conn->in, conn->head_len, in);
		h->query = rebase(h->query, conn->in, conn->head_len, in);
		for (unsigned i = 0; i < h->n_fields; i++) {
			h->fields[i].name = rebase(h->fields[i].name, conn->in, conn->head_len, in);
			h->fields[i].value = rebase(h->fields[i].value, conn->in, conn->head_len, in);
		}
	}
	free(conn->in);
	conn->in = in;
	conn->in_cap = cap;
	return 0;
}

static int out_reserve(struct srv_conn *conn, size_t n)
{
	size_t cap = conn->out_cap ? conn->out_cap : 1024;
	char *out;

	if (conn->out_len + n <= conn->out_cap)
		return 0;
	while (cap < conn->out_len + n)
		cap *= 2;
	out = realloc(conn->out, cap);
	if (out == NULL)
		return -1;
	conn->out = out;
	conn->out_cap = cap;
	return 0;
}

static void out_put(struct srv_conn *conn, const char *s, size_t n)
{
	memcpy(conn->out + conn->out_len, s, n);
	conn->out_len += n;
}

static void out_str(struct srv_conn *conn, const char *s)
{
	out_put(conn, s, strlen(s));
}

static void out_uint(struct srv_conn *conn, size_t v)
{
	char digits[24];
	size_t n = sizeof(digits);

	do {
		digits[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	out_put(conn, digits + n, sizeof(digits) - n);
}

/* Appends a whole reply. */
static int out_reply(struct srv_conn *conn, int status, const char *content_type,
		     const char *body, bool head_only, const char *connection, bool allow)
{
	size_t body_len = body ? strlen(body) + 1 : 0;
	size_t type_len = content_type ? strlen(content_type) : 0;

	/* 512 bytes cover the status line and the fields of fixed length. */
	if (out_reserve(conn, 512 + type_len + (head_only ? 0 : body_len)) != 0)
		return -1;
	out_str(conn, "HTTP/1.1 ");
	out_uint(conn, (size_t)status);
	out_str(conn, " ");
	out_str(conn, cmi_srv_status_phrase(status));
	out_str(conn, "\r\nDate: ");
	out_str(conn, cmi_srv_date(conn->srv));
	out_str(conn, "\r\nContent-Length: ");
	out_uint(conn, body_len);
	if (body != NULL) {
		out_str(conn, "\r\nContent-Type: ");
		out_str(conn, content_type ? content_type : "text/plain; charset=utf-8");
	}
	if (allow)
		out_str(conn, "\r\nAllow: POST");
	if (connection != NULL) {
		out_str(conn, "\r\nConnection: ");
		out_str(conn, connection);
	}
	out_str(conn, "\r\n\r\n");
	if (body != NULL && !head_only) {
		out_put(conn, body, body_len - 1);
		out_put(conn, "\n", 1);
	}
	return 0;
}

bool cmi_srv_conn_flushed(const struct srv_conn *conn)
{
	return conn->out_off == conn->out_len;
}

/* ---- events ---- */

static void conn_want_write(struct srv_conn *conn, bool on)
{
	cmi_http_event_set(conn->wev, &conn->wev_added, on);
}

static void conn_want_read(struct srv_conn *conn, bool on)
{
	if (on == conn->rev_added)
		return;
	cmi_http_event_set(conn->rev, &conn->rev_added, on);
	if (!on)
		return;
	/* Records that OpenSSL read ahead before reading paused are no longer
	 * in the socket, so epoll would never report them. */
	if (conn->ssl != NULL && SSL_has_pending(conn->ssl))
		event_active(conn->rev, EV_READ, 0);
}

void cmi_srv_conn_arm(struct srv_conn *conn)
{
	int ms = conn->srv->opts.read_timeout_ms;
	struct timeval tv;

	if (conn->phase == SRV_DRAIN && ms > SRV_DRAIN_MS)
		ms = SRV_DRAIN_MS;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	event_add(conn->deadline, &tv);
}

void cmi_srv_conn_close(struct srv_conn *conn)
{
	struct cmi_http_server *srv = conn->srv;

	if (conn->dead)
		return;
	conn->dead = true;
	/* close_notify shows the client that the connection ended on purpose,
	 * not by a cut, and lets OpenSSL clients keep the session for
	 * resumption (RFC 8446, section 6.1). */
	if (conn->ssl != NULL && SSL_is_init_finished(conn->ssl) && conn->phase != SRV_DRAIN)
		SSL_shutdown(conn->ssl);
	ERR_clear_error();
	event_del(conn->rev);
	event_del(conn->wev);
	event_del(conn->deadline);
	if (conn->fd >= 0)
		close(conn->fd);
	conn->fd = -1;
	cmi_srv_forget_conn(srv, conn);
	/* The requests still with the handler are freed when they reply. */
	for (struct cmi_http_request *r = conn->q_head, *next; r != NULL; r = next) {
		next = r->q_next;
		if (r->replied)
			cmi_srv_request_free(r);
	}
	conn->q_head = conn->q_tail = NULL;
	conn->n_queued = 0;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		srv->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	srv->n_conns--;
	conn->prev = NULL;
	conn->next = srv->dead;
	srv->dead = conn;
	event_active(srv->reap_ev, 0, 0);
}

void cmi_srv_conn_free(struct srv_conn *conn)
{
	if (conn->rev != NULL)
		event_free(conn->rev);
	if (conn->wev != NULL)
		event_free(conn->wev);
	if (conn->deadline != NULL)
		event_free(conn->deadline);
	SSL_free(conn->ssl);
	if (conn->fd >= 0)
		close(conn->fd);
	free(conn->in);
	free(conn->out);
	free(conn);
}

/* ---- ending a connection ---- */

/* Logs why the TLS handshake failed (once per client host and reason) and
 * leaves the socket lingering so that the client reads the alert. */
static void conn_handshake_failed(struct srv_conn *conn)
{
	struct cmicro_tls_verdict verdict;
	char key[96];

	if (SSL_in_before(conn->ssl) || BIO_number_read(SSL_get_rbio(conn->ssl)) == 0) {
		/* The client ended before sending a handshake byte, as a port
		 * probe or a TCP health check does, so nothing is logged. */
		ERR_clear_error();
		cmi_srv_conn_close(conn);
		return;
	}
	memset(&verdict, 0, sizeof(verdict));
	if (ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		/* OpenSSL's own text for this is "unexpected eof while reading". */
		ERR_clear_error();
		cmi_fmt(verdict.message, sizeof(verdict.message),
			"the client closed the connection during the handshake; a client that "
			"rejects this node's certificate does that, and its log names the cause");
	} else {
		cmicro_tls_ssl_failure(conn->ssl, &verdict);
	}
	cmi_srv_log_key(conn->peer, cmicro_tls_reason_name(verdict.reason), key, sizeof(key));
	cmi_srv_log_keyed(conn->srv, SRV_LOG_HANDSHAKE, key, "HTTP-TLS-HANDSHAKE",
			  "TLS handshake with client %s failed: %s", conn->peer,
			  verdict.message[0] ? verdict.message : "the client closed the connection");
	event_del(conn->rev);
	event_del(conn->wev);
	if (cmi_http_linger(conn->srv->base, conn->fd))
		conn->fd = -1;
	conn->phase = SRV_DRAIN; /* no close_notify after a failed handshake */
	cmi_srv_conn_close(conn);
}

/* Shuts the sending side once the last reply is written, and reads what the
 * client still sends so that it receives the reply instead of a reset. */
static void conn_closing_written(struct srv_conn *conn)
{
	if (conn->peer_eof) {
		cmi_srv_conn_close(conn);
		return;
	}
	if (conn->ssl != NULL && SSL_is_init_finished(conn->ssl))
		SSL_shutdown(conn->ssl);
	ERR_clear_error();
	shutdown(conn->fd, SHUT_WR);
	conn->phase = SRV_DRAIN;
	conn->in_len = 0;
	conn_want_read(conn, true);
	cmi_srv_conn_arm(conn);
}

/* Queues a reply of status with reason as its body and ends the connection
 * after it. It runs only between requests. When earlier requests still wait
 * for their replies, it is written after those. */
static void conn_reject(struct srv_conn *conn, int status, const char *reason)
{
	char key[160];

	cmi_srv_log_key(conn->peer, reason, key, sizeof(key));
	cmi_srv_log_keyed(conn->srv, SRV_LOG_REQUEST, key, "HTTP-BAD-REQUEST",
			  "rejected a request from %s with %d: %s", conn->peer, status, reason);
	conn->rejecting = true;
	conn->phase = SRV_CLOSING;
	conn->in_len = 0;
	conn->head_len = 0;
	if (conn->n_queued > 0) {
		conn->reject_status = status;
		cmi_fmt(conn->reject_text, sizeof(conn->reject_text), "%s", reason);
		return;
	}
	if (out_reply(conn, status, NULL, reason, false, "close", false) != 0) {
		cmi_srv_conn_close(conn);
		return;
	}
	/* The deadline now bounds the write to a client that stops reading. */
	cmi_srv_conn_arm(conn);
}

static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct srv_conn *conn = arg;
	char key[160];

	(void)fd;
	(void)what;
	/* Handlers are running; their last reply restarts the deadline. */
	if (conn->phase == SRV_BUSY || conn->n_queued > 0)
		return;
	if (conn->phase == SRV_CLOSING && conn->rejecting) {
		cmi_log(CMICRO_LOG_DEBUG, "http", "HTTP-REJECT-TIMEOUT",
			"client %s did not read the rejection within %d ms; closing the connection",
			conn->peer, conn->srv->opts.read_timeout_ms);
	} else if (conn->phase == SRV_CLOSING || conn->phase == SRV_DRAIN ||
		   !cmi_srv_conn_flushed(conn)) {
		cmi_log(CMICRO_LOG_DEBUG, "http", "HTTP-CLOSE",
			"closing the connection of client %s", conn->peer);
	} else if (conn->requests > 0 && conn->phase == SRV_HEAD && conn->in_len == 0) {
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
	cmi_srv_conn_close(conn);
}

/* ---- framing ---- */

/* Puts back the byte that the body's terminating NUL covered. */
static void conn_unterminate(struct srv_conn *conn)
{
	if (conn->nul_set)
		conn->in[conn->nul_at] = conn->nul_saved;
	conn->nul_set = false;
}

/* Removes the request just handed to the handler from the input, which
 * then starts with the next one. */
static void conn_consume(struct srv_conn *conn)
{
	size_t rest = conn->in_len - conn->req_end;

	memmove(conn->in, conn->in + conn->req_end, rest);
	conn->in_len = rest;
	conn->head_len = conn->body_len = conn->raw_off = conn->req_end = 0;
	conn->scanned = 0;
	conn->continue_sent = false;
	cmi_http_head_init(&conn->scan, 0);
	/* A large body leaves a large buffer, which an idle connection frees. */
	if (conn->in_cap > 4 * SRV_READ_MIN && conn->in_len == 0) {
		free(conn->in);
		conn->in = NULL;
		conn->in_cap = 0;
	}
}

/* Hands the framed request to the handler. The body is NUL-terminated for
 * the handler's parsers. The byte under that NUL may belong to the next
 * request, so it is put back when the handler returns. The handler reads
 * the request only until it returns, so the input moves on at once. */
static void conn_dispatch(struct srv_conn *conn)
{
	size_t end = conn->head_len + conn->body_len;
	bool keep = conn->head.keep_alive;

	if (conn_grow(conn, end + 1) != 0) {
		conn_reject(conn, 503, "out of memory reading the request; retry later");
		return;
	}
	conn->phase = SRV_BUSY;
	event_del(conn->deadline);
	conn->nul_set = end < conn->in_len;
	conn->nul_at = end;
	conn->nul_saved = conn->in[end];
	conn->in[end] = '\0';
	cmi_srv_dispatch(conn->srv, conn);
	conn_unterminate(conn);
	/* A handler that replies later may hold its reply (cmi_http_reply_hold),
	 * which the poll takes within CMI_SRV_REPLY_POLL_MAX_MS. */
	if (conn->n_queued > 0)
		cmi_srv_reply_poll_arm(conn->srv);
	/* A reply that ended the connection has set the phase already. */
	if (conn->dead || conn->phase != SRV_BUSY)
		return;
	conn_consume(conn);
	if (!keep) {
		/* Nothing after it is a request: the connection ends after its reply. */
		conn->in_len = 0;
		return;
	}
	conn->phase = SRV_HEAD;
	if (conn->n_queued == 0)
		cmi_srv_conn_arm(conn);
}

/* Tells a client waiting for "100 Continue" to send its body. Not while
 * earlier requests wait for their replies, which must come first. */
static void conn_continue(struct srv_conn *conn)
{
	const struct cmi_http_req_head *h = &conn->head;

	if ((conn->phase == SRV_BODY || conn->phase == SRV_CHUNKED) && h->expect_continue &&
	    conn->in_len == conn->head_len && !conn->continue_sent && conn->n_queued == 0 &&
	    out_reserve(conn, 32) == 0) {
		out_str(conn, "HTTP/1.1 100 Continue\r\n\r\n");
		conn->continue_sent = true;
	}
}

/* Starts the body of a parsed head, or dispatches a request without one. */
static void conn_head_done(struct srv_conn *conn)
{
	const struct cmi_http_req_head *h = &conn->head;
	char text[160];

	conn->requests++;
	if (h->chunked) {
		conn->phase = SRV_CHUNKED;
		conn->raw_off = conn->head_len;
		cmi_http_chunked_init(&conn->chunk);
	} else if (h->has_length && h->length > 0) {
		if (h->length > conn->srv->opts.max_body) {
			cmi_fmt(text, sizeof(text),
				"body over the size limit of %zu bytes (Payload Too Large); send "
				"smaller messages",
				conn->srv->opts.max_body);
			conn_reject(conn, 413, text);
			return;
		}
		conn->phase = SRV_BODY;
		if (conn_grow(conn, conn->head_len + (size_t)h->length + 1) != 0) {
			conn_reject(conn, 503, "out of memory reading the request; retry later");
			return;
		}
	} else {
		conn->req_end = conn->head_len;
		conn_dispatch(conn);
		return;
	}
	conn_continue(conn);
}

/* Checks and parses the head at the front of the input. Returns false
 * when more bytes are needed. */
static bool conn_head(struct srv_conn *conn)
{
	size_t max = conn->srv->opts.max_headers, used = 0;
	enum cmi_http_head_result rc;
	char text[160];
	int status;

	if (conn->scanned == conn->in_len)
		return false;
	rc = cmi_http_head_feed(&conn->scan, conn->in + conn->scanned,
				conn->in_len - conn->scanned, &used);
	conn->scanned += used;
	if (rc == CMI_HTTP_HEAD_BAD) {
		conn_reject(conn, conn->scan.status, conn->scan.reason);
		return true;
	}
	if (conn->scanned > max) {
		cmi_fmt(text, sizeof(text), "request head over the size limit of %zu bytes; send "
					    "shorter header fields and request target",
			max);
		conn_reject(conn, 431, text);
		return true;
	}
	if (rc == CMI_HTTP_HEAD_MORE)
		return false;
	conn->head_len = conn->scanned;
	status = cmi_http_req_head_parse(conn->in, conn->head_len, &conn->head);
	if (status == 501 && conn->head.method == NULL) {
		/* The parser ended the method token with a NUL, so it can be named;
		 * the head check allowed no control bytes in it. */
		cmi_fmt(text, sizeof(text), "unknown request method \"%.32s\"; the broker accepts "
					    "POST",
			conn->in);
		conn->head_len = 0;
		conn_reject(conn, status, text);
		return true;
	}
	if (status != 0) {
		conn->head_len = 0;
		conn_reject(conn, status, conn->head.reason);
		return true;
	}
	conn_head_done(conn);
	return true;
}

static bool conn_body(struct srv_conn *conn)
{
	size_t end = conn->head_len + (size_t)conn->head.length;

	if (conn->in_len < end)
		return false;
	conn->body_len = (size_t)conn->head.length;
	conn->req_end = end;
	conn_dispatch(conn);
	return true;
}

/* Drops the framing bytes already decoded, so that the input contains the
 * head, the body and what is not decoded yet. Chunk extensions can make
 * the framing thousands of times larger than the body. */
static void conn_chunked_compact(struct srv_conn *conn)
{
	size_t body_end = conn->head_len + conn->body_len;

	if (conn->raw_off == body_end)
		return;
	memmove(conn->in + body_end, conn->in + conn->raw_off, conn->in_len - conn->raw_off);
	conn->in_len -= conn->raw_off - body_end;
	conn->raw_off = body_end;
}

/* Decodes what arrived of a chunked body in place: the data moves to
 * just after the head, over the framing bytes already read. */
static bool conn_chunked(struct srv_conn *conn)
{
	size_t max = conn->srv->opts.max_body;
	char text[160];

	while (conn->raw_off < conn->in_len) {
		size_t used, off, n;
		enum cmi_http_chunk_result rc =
			cmi_http_chunked_feed(&conn->chunk, conn->in + conn->raw_off,
					      conn->in_len - conn->raw_off, &used, &off, &n);

		if (rc == CMI_HTTP_CHUNK_BAD) {
			conn_reject(conn, 400, conn->chunk.reason);
			return true;
		}
		if (conn->body_len + n > max) {
			cmi_fmt(text, sizeof(text),
				"body over the size limit of %zu bytes (Payload Too Large); send "
				"smaller messages",
				max);
			conn_reject(conn, 413, text);
			return true;
		}
		memmove(conn->in + conn->head_len + conn->body_len, conn->in + conn->raw_off + off, n);
		conn->body_len += n;
		conn->raw_off += used;
		if (rc == CMI_HTTP_CHUNK_DONE) {
			conn->req_end = conn->raw_off;
			conn_dispatch(conn);
			return true;
		}
	}
	conn_chunked_compact(conn);
	return false;
}

void cmi_srv_conn_queue(struct srv_conn *conn, struct cmi_http_request *req)
{
	req->q_next = NULL;
	if (conn->q_tail != NULL)
		conn->q_tail->q_next = req;
	else
		conn->q_head = req;
	conn->q_tail = req;
	conn->n_queued++;
}

/* Removes req from conn's queue, wherever it is. */
static void conn_unqueue(struct srv_conn *conn, struct cmi_http_request *req)
{
	struct cmi_http_request **link = &conn->q_head, *prev = NULL;

	while (*link != NULL && *link != req) {
		prev = *link;
		link = &(*link)->q_next;
	}
	if (*link != req)
		return;
	*link = req->q_next;
	if (conn->q_tail == req)
		conn->q_tail = prev;
	conn->n_queued--;
}

/* Appends the replies at the front of the queue that have come, in the order
 * of their requests. */
static void conn_take_replies(struct srv_conn *conn)
{
	while (!conn->dead && conn->q_head != NULL && conn->q_head->replied) {
		struct cmi_http_request *req = conn->q_head;
		/* A client that closed its sending side still gets the replies to
		 * the requests it sent before, and the last of them carries "close". */
		bool last = req->q_next == NULL && conn->reject_status == 0 && conn->peer_eof &&
			    conn->in_len == conn->req_end;
		bool keep = req->keep_alive && !last;
		const char *connection = NULL;
		int rc;

		conn->q_head = req->q_next;
		if (conn->q_head == NULL)
			conn->q_tail = NULL;
		conn->n_queued--;
		if (!keep)
			connection = "close";
		else if (req->minor == 0)
			connection = "keep-alive";
		rc = out_reply(conn, req->status, req->content_type, req->reply_body, req->head_only,
			       connection, req->status == 405);
		cmi_srv_request_free(req);
		if (rc != 0) {
			cmi_srv_conn_close(conn);
			return;
		}
		if (!keep) {
			/* Nothing is framed after it, so it was the last queued. */
			conn->phase = SRV_CLOSING;
			conn->in_len = 0;
			cmi_srv_conn_arm(conn);
			return;
		}
	}
	if (conn->dead || conn->q_head != NULL)
		return;
	if (conn->reject_status != 0) {
		int status = conn->reject_status;

		conn->reject_status = 0;
		if (out_reply(conn, status, NULL, conn->reject_text, false, "close", false) != 0) {
			cmi_srv_conn_close(conn);
			return;
		}
		cmi_srv_conn_arm(conn);
		return;
	}
	/* The deadline waits for the next request again, unless a handler on
	 * this stack has it (conn_dispatch restarts it). */
	if (conn->phase != SRV_BUSY && conn->phase != SRV_CLOSING)
		cmi_srv_conn_arm(conn);
	conn_continue(conn);
}

void cmi_srv_conn_replied(struct srv_conn *conn, struct cmi_http_request *req)
{
	struct cmi_http_server *srv = conn->srv;

	req->replied = true;
	if (conn->dead) {
		conn_unqueue(conn, req);
		cmi_srv_request_free(req);
		return;
	}
	conn_take_replies(conn);
	if (conn->dead)
		return;
	if (srv->gathering) {
		if (!conn->dirty) {
			conn->dirty = true;
			conn->dirty_next = srv->dirty;
			srv->dirty = conn;
		}
		return;
	}
	/* A handler that replied inside conn_process returns to its framing
	 * loop, which goes on with the next request. */
	if (!conn->processing)
		conn_process(conn);
}

void cmi_srv_conns_flush_dirty(struct cmi_http_server *srv)
{
	while (srv->dirty != NULL) {
		struct srv_conn *conn = srv->dirty;

		srv->dirty = conn->dirty_next;
		conn->dirty_next = NULL;
		conn->dirty = false;
		if (!conn->dead)
			conn_process(conn);
	}
}

/* Returns true while a write waits for the socket, so framing more
 * requests waits too. */
static bool conn_write_blocked(const struct srv_conn *conn)
{
	return conn->wev_added || conn->write_wants_read;
}

/* Frames requests until one waits for its reply or for more input. Returns
 * true when it stopped only because enough replies wait to be written. */
static bool conn_frame(struct srv_conn *conn)
{
	bool progress = true;

	while (progress && !conn->dead) {
		if (conn->out_len - conn->out_off >= SRV_OUT_BATCH)
			return true;
		/* Each request with the handler keeps a decoded message in memory. */
		if (conn->n_queued >= (unsigned)conn->srv->opts.pipeline_max)
			return false; /* resumed by the replies */
		switch (conn->phase) {
		case SRV_HEAD:
			progress = conn_head(conn);
			break;
		case SRV_BODY:
			progress = conn_body(conn);
			break;
		case SRV_CHUNKED:
			progress = conn_chunked(conn);
			break;
		default:
			progress = false;
			break;
		}
	}
	return false;
}

/* Frames the requests in the input and writes their replies, so that the
 * replies to the requests framed in one pass leave in one write. */
static void conn_process(struct srv_conn *conn)
{
	if (conn->processing || conn->dead || conn_write_blocked(conn))
		return;
	conn->processing = true;
	for (;;) {
		bool more = conn_frame(conn);

		if (conn->dead || !conn_write(conn))
			break;
		if (conn->phase == SRV_CLOSING && conn->n_queued == 0) {
			conn_closing_written(conn);
			break;
		}
		if (!more)
			break;
	}
	conn->processing = false;
	if (conn->dead || conn->phase > SRV_CHUNKED)
		return;
	/* The client closed its side with a request still incomplete. */
	if (conn->peer_eof && cmi_srv_conn_flushed(conn) && conn->n_queued == 0) {
		cmi_srv_conn_close(conn);
		return;
	}
	/* conn_read pauses while a write waits or too many requests are with
	 * the handler, and resumes here. */
	if (!conn->peer_eof && !conn_write_blocked(conn))
		conn_want_read(conn, true);
}

/* ---- socket I/O ---- */

/* After a fatal error, such as a client that closes without close_notify,
 * SSL_is_init_finished is false even when the handshake had finished. The
 * client's Finished message exists only when the handshake got that far. */
static bool conn_handshake_done(const struct srv_conn *conn)
{
	unsigned char finished[64];

	return SSL_get_peer_finished(conn->ssl, finished, sizeof(finished)) > 0;
}

/* Reads into buf. Returns the bytes read, 0 when nothing can be read now,
 * -1 when the peer closed or the connection failed, and -2 when the TLS
 * handshake failed, which closed the connection. */
static ssize_t conn_recv(struct srv_conn *conn, char *buf, size_t len)
{
	ssize_t n;

	ERR_clear_error();
	if (conn->ssl != NULL) {
		int r = SSL_read(conn->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
		int e;

		if (r > 0)
			return r;
		e = SSL_get_error(conn->ssl, r);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		if (e == SSL_ERROR_WANT_WRITE) {
			conn->read_wants_write = true;
			conn_want_write(conn, true);
			return 0;
		}
		if (!conn_handshake_done(conn)) {
			conn_handshake_failed(conn);
			return -2;
		}
		return -1;
	}
	do {
		n = recv(conn->fd, buf, len, 0);
	} while (n < 0 && errno == EINTR);
	if (n > 0)
		return n;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return -1;
}

/* Reads and drops what a closing client still sends. */
static void conn_drain(struct srv_conn *conn)
{
	char buf[16384];

	for (size_t total = 0; total < SRV_DRAIN_BYTES && !conn->dead;) {
		ssize_t n = conn_recv(conn, buf, sizeof(buf));

		if (n == 0)
			return;
		if (n < 0) {
			cmi_srv_conn_close(conn);
			return;
		}
		total += (size_t)n;
	}
	cmi_srv_conn_close(conn);
}

/* Returns true when the framing loop cannot take more input now. */
static bool conn_blocked(const struct srv_conn *conn)
{
	return conn->phase == SRV_BUSY || conn->phase == SRV_CLOSING ||
	       conn->n_queued >= (unsigned)conn->srv->opts.pipeline_max ||
	       conn_write_blocked(conn);
}

static void conn_read(struct srv_conn *conn)
{
	conn->read_wants_write = false;
	while (!conn->dead) {
		ssize_t n;

		/* Also after the last reply went out in this loop, with records
		 * that OpenSSL read ahead still to drop. */
		if (conn->phase == SRV_DRAIN) {
			conn_drain(conn);
			return;
		}
		if (conn_blocked(conn) && conn->in_len >= conn->req_end + SRV_PIPELINE_MAX) {
			/* Resumed by conn_process. */
			conn_want_read(conn, false);
			return;
		}
		if (conn_grow(conn, conn->in_len + SRV_READ_MIN) != 0) {
			cmi_srv_conn_close(conn);
			return;
		}
		n = conn_recv(conn, conn->in + conn->in_len, conn->in_cap - conn->in_len);
		if (n == 0)
			return;
		if (n == -2)
			return; /* a failed handshake, handled */
		if (n < 0) {
			conn->peer_eof = true;
			conn_want_read(conn, false);
			if (conn->phase == SRV_CLOSING || conn->phase == SRV_BUSY ||
			    conn->n_queued > 0)
				return; /* the replies still go out */
			conn_process(conn);
			return;
		}
		conn->in_len += (size_t)n;
		if (!conn_blocked(conn))
			conn_process(conn);
		/* Level-triggered epoll reports bytes left in the socket again, but
		 * not records OpenSSL already read ahead. */
		if (conn->ssl == NULL || !SSL_has_pending(conn->ssl))
			return;
	}
}

/* Writes the replies waiting. Returns true when all are written. */
static bool conn_write(struct srv_conn *conn)
{
	conn->write_wants_read = false;
	while (conn->out_off < conn->out_len) {
		size_t left = conn->out_len - conn->out_off;
		ssize_t n;

		ERR_clear_error();
		if (conn->ssl != NULL) {
			int r = SSL_write(conn->ssl, conn->out + conn->out_off,
					  left > INT32_MAX ? INT32_MAX : (int)left);

			if (r <= 0) {
				int e = SSL_get_error(conn->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE)
					conn_want_write(conn, true);
				else if (e == SSL_ERROR_WANT_READ)
					conn->write_wants_read = true;
				else
					cmi_srv_conn_close(conn);
				return false;
			}
			n = r;
		} else {
			n = send(conn->fd, conn->out + conn->out_off, left, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					conn_want_write(conn, true);
				else
					cmi_srv_conn_close(conn);
				return false;
			}
		}
		conn->out_off += (size_t)n;
	}
	conn->out_off = conn->out_len = 0;
	if (!conn->read_wants_write)
		conn_want_write(conn, false);
	return true;
}

/* Goes on after a write that waited for the socket: with the closing, or
 * with the framing of the requests that waited for the write. */
static void conn_written(struct srv_conn *conn)
{
	if (conn->phase == SRV_CLOSING && conn->n_queued == 0)
		conn_closing_written(conn);
	else if (conn->phase != SRV_DRAIN)
		conn_process(conn);
}

static void conn_io(evutil_socket_t fd, short what, void *arg)
{
	struct srv_conn *conn = arg;

	(void)fd;
	cmi_http_loop_note_activity();
	if ((what & EV_WRITE) && !conn->dead) {
		bool read_resumed = conn->read_wants_write;

		if (read_resumed)
			conn_read(conn);
		if (!conn->dead && conn->out_off < conn->out_len) {
			if (conn_write(conn))
				conn_written(conn);
		} else if (!conn->dead && !conn->read_wants_write) {
			conn_want_write(conn, false);
			/* While the write event was registered, conn_read counted the
			 * connection as blocked and framed nothing of what it read. */
			if (read_resumed)
				conn_process(conn);
		}
	}
	if ((what & EV_READ) && !conn->dead) {
		if (conn->write_wants_read && conn_write(conn))
			conn_written(conn);
		if (!conn->dead)
			conn_read(conn);
	}
}

/* ---- opening ---- */

static int conn_tls(struct cmi_http_server *srv, struct srv_conn *conn)
{
	char host[64];
	int port;
	int rc = cmicro_tls_ssl_new(srv->opts.tls, NULL, "incoming client", &conn->ssl);

	if (rc != 0)
		return rc;
	if (SSL_set_fd(conn->ssl, conn->fd) != 1)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot attach TLS to the connection of %s",
				      conn->peer);
	SSL_set_accept_state(conn->ssl);
	SSL_set_mode(conn->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* One read(2) takes a whole record, header and body, and often the
	 * next records too. conn_read checks SSL_has_pending for those. */
	SSL_set_read_ahead(conn->ssl, 1);
	/* Findings name the client by its host only, because its port changes
	 * with every connection, which would defeat logging each peer once. */
	if (cmi_http_split_address(conn->peer, host, sizeof(host), &port) != 0) {
		cmi_error_clear();
		cmi_fmt(host, sizeof(host), "%s", conn->peer);
	}
	if (cmi_tls_ssl_set_peer(conn->ssl, host, NULL) != 0)
		cmi_error_clear();
	return 0;
}

int cmi_srv_conn_open(struct cmi_http_server *srv, int fd, const char *peer)
{
	struct srv_conn *conn = calloc(1, sizeof(*conn));
	int rc = 0;

	if (conn == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory accepting a connection");
	conn->srv = srv;
	conn->fd = fd;
	cmi_fmt(conn->peer, sizeof(conn->peer), "%s", peer);
	cmi_http_head_init(&conn->scan, 0);
	conn->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, conn_io, conn);
	conn->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, conn_io, conn);
	conn->deadline = event_new(srv->base, -1, 0, conn_deadline, conn);
	if (conn->rev == NULL || conn->wev == NULL || conn->deadline == NULL)
		rc = cmi_error(CMICRO_ENOMEM, "out of memory accepting a connection");
	else if (srv->opts.tls != NULL)
		rc = conn_tls(srv, conn);
	if (rc != 0) {
		conn->fd = -1; /* the caller closes it */
		cmi_srv_conn_free(conn);
		return rc;
	}
	conn->next = srv->conns;
	if (srv->conns != NULL)
		srv->conns->prev = conn;
	srv->conns = conn;
	srv->n_conns++;
	conn_want_read(conn, true);
	cmi_srv_conn_arm(conn);
	return 0;
}
