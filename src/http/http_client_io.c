/*
 * One client connection: a non-blocking socket, an OpenSSL object driven
 * on it directly, and the response parser. The requests queued on a
 * connection during one pass of the loop leave in a single SSL_write (one
 * TLS record, one write(2)). The socket stays registered for reading only,
 * so a kept-alive connection costs no epoll_ctl per request. OpenSSL reads
 * ahead, so the responses to such a batch usually take one read(2).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "http/http_client_int.h"

static void cli_io(evutil_socket_t fd, short what, void *arg);

/* ---- failures ---- */

/* A server that requires client certificates rejects one in TLS 1.3 after
 * the client's side of the handshake is done. When the connection is reset
 * before its alert could be read, what remains known is that the server
 * asked for a certificate and then dropped the connection. */
static bool cli_client_cert_rejected(const struct cli_conn *conn, struct cmi_http_result *f)
{
	if (conn->ssl == NULL || !SSL_is_init_finished(conn->ssl) ||
	    !cmi_tls_ssl_cert_requested(conn->ssl))
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

/* Fills f for a socket error (err, an errno value). */
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
static void cli_verdict_failure(const struct cli_conn *conn, struct cmi_http_result *f)
{
	struct cmicro_tls_verdict v;

	memset(&v, 0, sizeof(v));
	cmicro_tls_ssl_failure(conn->ssl, &v);
	f->tls_reason = v.reason;
	f->err = (v.reason != CMICRO_TLS_REASON_NONE && v.openssl_code != 0) ? CMICRO_EVERIFY
									      : CMICRO_EHANDSHAKE;
	cmi_fmt(f->message, sizeof(f->message), "TLS handshake failed with %s: %s", conn->address,
		v.message[0] ? v.message : "the peer closed the connection during the handshake");
}

/* The connection closed, or failed with saved_errno, before a response:
 * fills f with the most specific cause known. */
static void cli_lost_failure(const struct cli_conn *conn, int saved_errno,
			     struct cmi_http_result *f)
{
	if (conn->ssl != NULL && ERR_peek_error() != 0) {
		cli_verdict_failure(conn, f);
		return;
	}
	if (saved_errno != 0) {
		cli_socket_failure(conn, saved_errno, f);
		return;
	}
	if (cli_client_cert_rejected(conn, f))
		return;
	f->err = CMICRO_ECONNECT;
	f->tls_reason = CMICRO_TLS_REASON_NONE;
	if (conn->head != NULL && conn->head->resent) {
		cmi_fmt(f->message, sizeof(f->message),
			"%s closed a kept-alive connection and then a new one before a response; "
			"the node is restarting or stopping",
			conn->address);
		return;
	}
	if (conn->responses > 0) {
		cmi_fmt(f->message, sizeof(f->message),
			"%s closed a kept-alive connection before a response; the node restarted, "
			"or it closes idle connections",
			conn->address);
		return;
	}
	cmi_fmt(f->message, sizeof(f->message),
		"the connection to %s closed before a response; check that the node serves %s",
		conn->address,
		conn->ssl ? "HTTPS (its metadata says secure=true)"
			  : "plain HTTP (its metadata says secure=false)");
}

/* What becomes of a call taken off a connection that ends. */
enum cli_fate {
	CLI_FAIL,    /* fails with the connection's failure */
	CLI_RESEND,  /* goes once more on a new connection, or fails if sent twice */
	CLI_RESTART  /* starts again as new: the server processed none of it */
};

/* Settles each call of list, a chain through cnext already taken off its
 * connection: the first according to first, the others according to rest.
 * f is the failure of CLI_FAIL and of a CLI_RESEND call already sent twice. */
static void cli_calls_settle(struct cli_call *list, enum cli_fate first, enum cli_fate rest,
			     const struct cmi_http_result *f)
{
	enum cli_fate fate = first;

	while (list != NULL) {
		struct cli_call *call = list;

		list = call->cnext;
		call->cnext = NULL;
		call->conn = NULL;
		if (fate == CLI_RESTART) {
			cli_call_restart(call);
		} else if (fate == CLI_RESEND && !call->resent) {
			cli_call_resend(call);
		} else {
			call->result = *f;
			cli_call_finish(call);
		}
		fate = rest;
	}
}

/* Kills conn and returns its calls, oldest first, for cli_calls_settle. */
static struct cli_call *cli_conn_take_calls(struct cli_conn *conn)
{
	struct cli_call *list = conn->head;

	ERR_clear_error();
	conn->head = conn->tail = NULL;
	conn->n_calls = 0;
	cli_conn_kill(conn);
	/* A connection killed earlier with calls attached is freed now. */
	cli_reap_soon(conn->client);
	return list;
}

/*
 * Ends conn after a failure. Its first call goes once more on a new
 * connection when resend_first is set, and fails with f otherwise. The
 * calls behind it, whose responses had not started, do the same according
 * to resend_rest. A call already sent twice fails.
 */
static void cli_conn_end(struct cli_conn *conn, const struct cmi_http_result *f,
			 bool resend_first, bool resend_rest)
{
	cli_calls_settle(cli_conn_take_calls(conn), resend_first ? CLI_RESEND : CLI_FAIL,
			 resend_rest ? CLI_RESEND : CLI_FAIL, f);
}

void cli_conn_drop(struct cli_conn *conn, struct cli_call *call, const struct cmi_http_result *f)
{
	struct cli_call **link = &conn->head, *prev = NULL, *behind;
	unsigned ahead = 0;

	while (*link != NULL && *link != call) {
		prev = *link;
		link = &(*link)->cnext;
		ahead++;
	}
	behind = *link == call ? call->cnext : NULL;
	call->cnext = NULL;
	call->conn = NULL;
	if (prev == NULL || conn->state != CLI_OPEN) {
		/* No call ahead can still get its response. */
		if (*link == call) {
			*link = behind;
			if (conn->tail == call)
				conn->tail = prev;
			conn->n_calls--;
		}
		cli_conn_end(conn, f, false, false);
		return;
	}
	/* The calls ahead keep their deadlines and get their responses. The
	 * connection then ends, before the late response of call is read. */
	*link = NULL;
	conn->tail = prev;
	conn->n_calls = ahead;
	conn->retiring = true;
	cli_calls_settle(behind, CLI_FAIL, CLI_FAIL, f);
}

/*
 * A server may close a kept-alive connection while it is idle, and requests
 * written before that close was read find it closed. When not a byte of a
 * response came back, each request goes once more on a new connection, as
 * Go's HTTP client does for a connection closed while idle. A server that
 * read a request and then closed without a response gets it twice, with
 * the same Micro-Id, which delivery at least once allows.
 */
static bool cli_conn_stale(const struct cli_conn *conn, int saved_errno)
{
	return conn->responses > 0 &&
	       (saved_errno == 0 || saved_errno == ECONNRESET || saved_errno == EPIPE) &&
	       (conn->ssl == NULL || ERR_peek_error() == 0);
}

/* Returns true while no byte of the first call's response has come. */
static bool cli_first_untouched(const struct cli_conn *conn)
{
	return conn->resp.status == 0 && conn->resp.phase == CMI_HTTP_RESP_HEAD &&
	       conn->in_len == 0;
}

/* The connection closed, or failed with saved_errno, before the responses
 * of its calls: ends it with the most specific cause known. */
static void cli_conn_lost(struct cli_conn *conn, int saved_errno)
{
	struct cmi_http_result f = {0};
	bool stale = cli_conn_stale(conn, saved_errno);

	if (conn->head == NULL) {
		ERR_clear_error();
		cli_conn_kill(conn);
		return;
	}
	cli_lost_failure(conn, saved_errno, &f);
	cli_conn_end(conn, &f, stale && cli_first_untouched(conn), stale);
}

static void cli_read(struct cli_conn *conn);

/* A request could not be written: reads what the peer sent first, since a
 * server that rejected this client's certificate sent an alert before it
 * reset the connection. */
static void cli_write_failed(struct cli_conn *conn, int saved_errno)
{
	/* What the peer sent first may be a whole response (a server that
	 * refused the rest of a large body) or its end, which reading
	 * completes, fails or resends itself. */
	if (ERR_peek_error() == 0) {
		cli_read(conn);
		if (conn->state == CLI_DEAD || conn->head == NULL)
			return;
	}
	cli_conn_lost(conn, saved_errno);
}

/* ---- events ---- */

static void cli_want_write(struct cli_conn *conn, bool on)
{
	cmi_http_event_set(conn->wev, &conn->wev_added, on);
}

void cli_conn_kill(struct cli_conn *conn)
{
	if (conn->state == CLI_DEAD)
		return;
	conn->state = CLI_DEAD;
	event_del(conn->rev);
	event_del(conn->wev);
	event_del(conn->flush_ev);
	conn->wev_added = false;
	conn->flush_pending = false;
	cli_reap_soon(conn->client);
}

void cli_conn_free(struct cli_conn *conn)
{
	if (conn->rev != NULL)
		event_free(conn->rev);
	if (conn->wev != NULL)
		event_free(conn->wev);
	if (conn->flush_ev != NULL)
		event_free(conn->flush_ev);
	SSL_free(conn->ssl);
	if (conn->fd >= 0)
		close(conn->fd);
	cmi_http_resp_clear(&conn->resp);
	free(conn->in);
	free(conn->out);
	free(conn);
}

/* ---- response ---- */

static void cli_response_done(struct cli_conn *conn)
{
	struct cli_call *call = conn->head;
	struct cmi_http_resp *r = &conn->resp;
	/* A server rejecting a large body responds before it has read the whole
	 * request, and the rest of that request cannot be followed by another. */
	bool early = conn->sent < call->wire_end;

	call->result.status = r->status;
	if (r->status < 200 || r->status > 299)
		cmi_fmt(call->result.message, sizeof(call->result.message), "HTTP %d %s", r->status,
			r->reason);
	if (call->get) {
		/* The call takes the body; an empty one still gets a string. */
		call->body = r->body != NULL ? r->body : cmi_strdup("");
		r->body = NULL;
		r->body_cap = 0;
		call->result.body = call->body;
		call->result.body_len = r->body_len;
	}
	conn->head = call->cnext;
	if (conn->head == NULL)
		conn->tail = NULL;
	conn->n_calls--;
	call->cnext = NULL;
	call->conn = NULL;
	conn->responses++;
	cli_call_finish(call);
	if (conn->retiring && conn->head == NULL) {
		/* The next response would be that of a request that timed out. */
		cli_conn_kill(conn);
		return;
	}
	/* A server processes no request after the one whose response carries
	 * "Connection: close" (RFC 9112, section 9.6), and the requests behind
	 * an early response were not written. */
	if (r->close || early) {
		conn->out_len = conn->out_off = 0;
		cli_calls_settle(cli_conn_take_calls(conn), CLI_RESTART, CLI_RESTART, NULL);
		return;
	}
	if (conn->head != NULL)
		cmi_http_resp_init(r, conn->head->get ? CMI_HTTP_GET_BODY_MAX : 0);
}

/* Parses what was read: the responses of the calls in order. Bytes with no
 * request waiting for them close the connection. */
static void cli_parse(struct cli_conn *conn)
{
	while (conn->state == CLI_OPEN) {
		size_t used;

		if (conn->head == NULL) {
			if (conn->in_len > 0)
				cli_conn_kill(conn);
			return;
		}
		used = cmi_http_resp_feed(&conn->resp, conn->in, conn->in_len);
		memmove(conn->in, conn->in + used, conn->in_len - used);
		conn->in_len -= used;
		if (conn->resp.phase == CMI_HTTP_RESP_BAD) {
			struct cmi_http_result f = {0};

			f.err = CMICRO_EPROTO;
			cmi_fmt(f.message, sizeof(f.message), "%s from %s; check that the address is "
							      "a broker node",
				conn->resp.error, conn->address);
			cli_conn_end(conn, &f, false, false);
			return;
		}
		if (conn->resp.phase != CMI_HTTP_RESP_DONE)
			return;
		cli_response_done(conn);
		if (conn->in_len == 0)
			return;
	}
}

/* The peer ended the connection (saved_errno 0) or it failed. */
static void cli_lost(struct cli_conn *conn, int saved_errno)
{
	if (conn->head != NULL && !cli_first_untouched(conn) && saved_errno == 0 &&
	    conn->sent >= conn->head->wire_end) {
		struct cmi_http_result f = {0};

		/* A response whose body runs to the end of the connection. */
		if (cmi_http_resp_eof(&conn->resp)) {
			cli_response_done(conn);
			if (conn->state != CLI_DEAD)
				cli_conn_lost(conn, 0);
			return;
		}
		f.err = CMICRO_EPROTO;
		cmi_fmt(f.message, sizeof(f.message), "%s from %s", conn->resp.error, conn->address);
		cli_conn_end(conn, &f, false, cli_conn_stale(conn, 0));
		return;
	}
	cli_conn_lost(conn, saved_errno);
}

static void cli_read(struct cli_conn *conn)
{
	conn->read_wants_write = false;
	while (conn->state == CLI_OPEN) {
		size_t space = CLI_IN_SIZE - conn->in_len;
		ssize_t n;
		int saved;

		if (space == 0) {
			/* The parser keeps less than a full buffer unless it failed,
			 * so this is a safeguard. */
			struct cmi_http_result f = {0};

			f.err = CMICRO_EPROTO;
			cmi_fmt(f.message, sizeof(f.message),
				"response head from %s over %d bytes; check that the address is a "
				"broker node",
				conn->address, CLI_IN_SIZE);
			cli_conn_end(conn, &f, false, false);
			return;
		}
		ERR_clear_error();
		if (conn->ssl != NULL) {
			int r = SSL_read(conn->ssl, conn->in + conn->in_len, (int)space);

			saved = errno;
			if (r > 0) {
				n = r;
			} else {
				int e = SSL_get_error(conn->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					conn->read_wants_write = true;
					cli_want_write(conn, true);
					return;
				}
				/* A close without close_notify ends a response framed by
				 * the connection as well: HTTP marks its own ends. */
				if (e == SSL_ERROR_ZERO_RETURN ||
				    (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && saved == 0))
					cli_lost(conn, 0);
				else
					cli_lost(conn, e == SSL_ERROR_SYSCALL ? saved : 0);
				return;
			}
		} else {
			n = recv(conn->fd, conn->in + conn->in_len, space, 0);
			saved = errno;
			if (n == 0) {
				cli_lost(conn, 0);
				return;
			}
			if (n < 0) {
				if (saved == EINTR)
					continue;
				if (saved != EAGAIN && saved != EWOULDBLOCK)
					cli_lost(conn, saved);
				return;
			}
		}
		conn->in_len += (size_t)n;
		cli_parse(conn);
		/* Level-triggered epoll reports bytes left in the socket again, but
		 * not records OpenSSL already read ahead. */
		if (conn->ssl != NULL ? !SSL_has_pending(conn->ssl) : (size_t)n < space)
			return;
	}
}

/* ---- request ---- */

/* Above this, the output buffer of a connection is freed once written. */
#define CLI_OUT_KEEP (64u * 1024)

static void cli_flush(struct cli_conn *conn)
{
	conn->write_wants_read = false;
	while (conn->state == CLI_OPEN && conn->out_off < conn->out_len) {
		size_t left = conn->out_len - conn->out_off;
		ssize_t n;
		int saved;

		ERR_clear_error();
		if (conn->ssl != NULL) {
			int r = SSL_write(conn->ssl, conn->out + conn->out_off,
					  left > (size_t)INT32_MAX ? INT32_MAX : (int)left);

			saved = errno;
			if (r <= 0) {
				int e = SSL_get_error(conn->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE) {
					cli_want_write(conn, true);
				} else if (e == SSL_ERROR_WANT_READ) {
					conn->write_wants_read = true;
				} else {
					cli_write_failed(conn, e == SSL_ERROR_SYSCALL ? saved : 0);
				}
				return;
			}
			n = r;
		} else {
			n = send(conn->fd, conn->out + conn->out_off, left, MSG_NOSIGNAL);
			saved = errno;
			if (n < 0) {
				if (saved == EINTR)
					continue;
				if (saved == EAGAIN || saved == EWOULDBLOCK)
					cli_want_write(conn, true);
				else
					cli_write_failed(conn, saved);
				return;
			}
		}
		conn->out_off += (size_t)n;
		conn->sent += (uint64_t)n;
	}
	if (conn->state != CLI_OPEN)
		return;
	conn->out_off = conn->out_len = 0;
	if (conn->out_cap > CLI_OUT_KEEP) {
		free(conn->out);
		conn->out = NULL;
		conn->out_cap = 0;
	}
	if (!conn->read_wants_write)
		cli_want_write(conn, false);
}

/* Runs once per pass of the loop in which requests were queued. */
static void cli_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cli_conn *conn = arg;

	(void)fd;
	(void)what;
	conn->flush_pending = false;
	/* A write waiting for the socket takes the new requests along. */
	if (conn->state == CLI_OPEN && !conn->wev_added && !conn->write_wants_read)
		cli_flush(conn);
}

int cli_conn_add(struct cli_conn *conn, struct cli_call *call)
{
	size_t need = conn->out_len + call->wire_len;

	if (need > conn->out_cap) {
		size_t cap = conn->out_cap ? conn->out_cap : 4096;
		char *out;

		while (cap < need)
			cap *= 2;
		out = realloc(conn->out, cap);
		if (out == NULL)
			return cmi_error(CMICRO_ENOMEM, "out of memory queueing a request to %s",
					 conn->address);
		conn->out = out;
		conn->out_cap = cap;
	}
	memcpy(conn->out + conn->out_len, call->wire, call->wire_len);
	conn->out_len += call->wire_len;
	conn->queued += call->wire_len;
	call->wire_end = conn->queued;
	call->conn = conn;
	call->cnext = NULL;
	if (conn->tail != NULL) {
		conn->tail->cnext = call;
	} else {
		conn->head = call;
		cmi_http_resp_init(&conn->resp, call->get ? CMI_HTTP_GET_BODY_MAX : 0);
	}
	conn->tail = call;
	conn->n_calls++;
	/* A connection still opening writes them all once it is open. */
	if (conn->state == CLI_OPEN && !conn->flush_pending) {
		conn->flush_pending = true;
		event_active(conn->flush_ev, 0, 0);
	}
	return 0;
}

/* ---- connecting ---- */

static void cli_opened(struct cli_conn *conn)
{
	conn->state = CLI_OPEN;
	if (conn->head != NULL)
		cli_flush(conn);
	else
		cli_want_write(conn, false);
}

static void cli_handshake(struct cli_conn *conn)
{
	int r, e, saved;

	ERR_clear_error();
	r = SSL_do_handshake(conn->ssl);
	saved = errno;
	if (r == 1) {
		cli_opened(conn);
		return;
	}
	e = SSL_get_error(conn->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		cli_want_write(conn, false);
		return;
	}
	if (e == SSL_ERROR_WANT_WRITE) {
		cli_want_write(conn, true);
		return;
	}
	{
		struct cmi_http_result f = {0};

		if (ERR_peek_error() == 0 && e == SSL_ERROR_SYSCALL && saved != 0)
			cli_socket_failure(conn, saved, &f);
		else
			cli_verdict_failure(conn, &f);
		cli_conn_end(conn, &f, false, false);
	}
}

static void cli_connected(struct cli_conn *conn)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
		soerr = errno;
	if (soerr == EINPROGRESS)
		return;
	if (soerr != 0) {
		struct cmi_http_result f = {0};

		cli_socket_failure(conn, soerr, &f);
		cli_conn_end(conn, &f, false, false);
		return;
	}
	event_add(conn->rev, NULL);
	if (conn->ssl == NULL) {
		cli_opened(conn);
		return;
	}
	conn->state = CLI_HANDSHAKING;
	cli_handshake(conn);
}

static void cli_io(evutil_socket_t fd, short what, void *arg)
{
	struct cli_conn *conn = arg;

	(void)fd;
	cmi_http_loop_note_activity();
	if (what & EV_WRITE)
		conn->wev_added = false;
	switch (conn->state) {
	case CLI_CONNECTING:
		if (what & EV_WRITE)
			cli_connected(conn);
		break;
	case CLI_HANDSHAKING:
		cli_handshake(conn);
		break;
	case CLI_OPEN:
		if ((what & EV_WRITE) || ((what & EV_READ) && conn->write_wants_read))
			cli_flush(conn);
		if (conn->state == CLI_OPEN &&
		    ((what & EV_READ) || ((what & EV_WRITE) && conn->read_wants_write)))
			cli_read(conn);
		break;
	case CLI_DEAD:
		break;
	}
}

static int cli_new_ssl(struct cmi_http_client *client, struct cli_conn *conn, const char *host,
		       const struct cli_call *call)
{
	int rc;

	if (client->tls == NULL)
		return cmi_error(CMICRO_ECONFIG, "https to %s needs a TLS client context", call->label);
	rc = cmicro_tls_ssl_new(client->tls, host, call->label, &conn->ssl);
	if (rc == 0)
		rc = cmi_tls_ssl_set_peer(conn->ssl, call->address, call->node_id);
	if (rc == 0 && SSL_set_fd(conn->ssl, conn->fd) != 1)
		rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot attach a TLS session to the socket");
	if (rc != 0)
		return rc;
	SSL_set_connect_state(conn->ssl);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* OpenSSL 3 reports a close without close_notify (a node that was
	 * killed) as an SSL error, which would read as a failed handshake.
	 * HTTP frames its own messages, so such a close is an end of the
	 * connection like any other. */
	SSL_set_options(conn->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_set_mode(conn->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_read_ahead(conn->ssl, 1);
	return 0;
}

/* Resolves host and starts a non-blocking connect to its first address, as
 * libevent's bufferevent_socket_connect_hostname does without a DNS base.
 * Returns 0 with the connect under way, or 0 with *connect_errno set when
 * connect failed at once; the call reports that like a later failure.
 * Returns an error when the host cannot be resolved or no socket is left. */
static int cli_connect(struct cli_conn *conn, const char *host, int port, int *connect_errno)
{
	struct addrinfo hints, *res = NULL;
	char service[8];
	int gai, enable = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	hints.ai_flags = AI_NUMERICSERV;
	cmi_fmt(service, sizeof(service), "%d", port);
	gai = getaddrinfo(host, service, &hints, &res);
	if (gai != 0)
		return cmi_error(CMICRO_ECONNECT, "cannot resolve \"%s\" of %s: %s; check the node's "
						  "registered address",
				 host, conn->address, gai_strerror(gai));
	conn->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (conn->fd < 0) {
		int err = errno;

		freeaddrinfo(res);
		return cmi_error(CMICRO_ECONNECT, "cannot create a socket for %s: %s", conn->address,
				 CMI_ERRNO_TEXT(err));
	}
	/* A request must leave without waiting for the acknowledgement of the
	 * previous one. */
	(void)setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &enable, sizeof(enable));
	if (connect(conn->fd, res->ai_addr, res->ai_addrlen) != 0 && errno != EINPROGRESS)
		*connect_errno = errno;
	freeaddrinfo(res);
	return 0;
}

int cli_conn_open(struct cmi_http_client *client, const struct cli_call *call,
		  struct cli_conn **out)
{
	struct cli_conn *conn;
	char host[256];
	int port, rc, connect_err = 0;

	*out = NULL;
	rc = cmi_http_split_address(call->address, host, sizeof(host), &port);
	if (rc != 0)
		return rc;
	conn = cmi_calloc(1, sizeof(*conn));
	if (conn == NULL)
		return CMICRO_ENOMEM;
	conn->fd = -1;
	conn->client = client;
	conn->state = CLI_CONNECTING;
	cmi_fmt(conn->key, sizeof(conn->key), "%s", call->key);
	cmi_fmt(conn->address, sizeof(conn->address), "%s", call->address);
	conn->in = malloc(CLI_IN_SIZE);
	rc = conn->in != NULL ? cli_connect(conn, host, port, &connect_err) : CMICRO_ENOMEM;
	if (rc == 0 && call->https)
		rc = cli_new_ssl(client, conn, host, call);
	if (rc == 0) {
		conn->rev = event_new(client->base, conn->fd, EV_READ | EV_PERSIST, cli_io, conn);
		conn->wev = event_new(client->base, conn->fd, EV_WRITE, cli_io, conn);
		conn->flush_ev = event_new(client->base, -1, 0, cli_flush_cb, conn);
		if (conn->rev == NULL || conn->wev == NULL || conn->flush_ev == NULL)
			rc = cmi_error(CMICRO_ENOMEM, "out of memory creating a connection to %s",
				       call->address);
	}
	if (rc != 0) {
		cli_conn_free(conn);
		return rc;
	}
	conn->next = client->conns;
	client->conns = conn;
	if (connect_err != 0) {
		cli_socket_failure(conn, connect_err, &conn->failure);
		cli_conn_kill(conn);
	} else {
		cli_want_write(conn, true);
	}
	*out = conn;
	return 0;
}
