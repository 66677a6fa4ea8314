/*
 * Connects the strict request head check (http_head.c) to the server's
 * connections. An evbuffer callback on each connection's input receives
 * every byte as the bufferevent adds it, before evhttp's read callback
 * parses it. So a head that fails the check never reaches evhttp. Its bytes
 * are drained, and the server writes the error reply itself and closes the
 * connection, because libevent 2.1 gives no access to a request before its
 * head is parsed.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>

#include "http/http_server_int.h"

static void conn_reject_start(struct srv_conn *conn, struct evbuffer *input)
{
	char key[160];

	conn->rejecting = true;
	conn->scanning = false;
	cmi_srv_log_key(conn->peer, conn->head.reason, key, sizeof(key));
	cmi_srv_log_keyed(conn->srv, SRV_LOG_REQUEST, key, "HTTP-BAD-REQUEST",
			  "rejected a request from %s with %d: %s", conn->peer, conn->head.status,
			  conn->head.reason);
	evbuffer_drain(input, evbuffer_get_length(input));
	/* A request still waiting for its reply goes first: send_one rejects
	 * this one after it. */
	if (!conn->busy)
		event_active(conn->reject_ev, 0, 0);
}

/* Feeds the unchecked bytes at the end of input to the head check. */
static void conn_scan_input(struct srv_conn *conn, struct evbuffer *input)
{
	enum cmi_http_head_result rc = CMI_HTTP_HEAD_MORE;
	size_t len = evbuffer_get_length(input);

	while (conn->scanned < len && rc == CMI_HTTP_HEAD_MORE) {
		struct evbuffer_iovec vec;
		struct evbuffer_ptr pos;
		size_t used = 0, n;

		if (evbuffer_ptr_set(input, &pos, conn->scanned, EVBUFFER_PTR_SET) != 0 ||
		    evbuffer_peek(input, (ev_ssize_t)(len - conn->scanned), &pos, &vec, 1) < 1)
			break;
		n = vec.iov_len < len - conn->scanned ? vec.iov_len : len - conn->scanned;
		rc = cmi_http_head_feed(&conn->head, vec.iov_base, n, &used);
		conn->scanned += used;
	}
	if (rc == CMI_HTTP_HEAD_DONE)
		conn->scanning = false; /* the body is evhttp's to frame */
	else if (rc == CMI_HTTP_HEAD_BAD)
		conn_reject_start(conn, input);
}

static void conn_input_cb(struct evbuffer *input, const struct evbuffer_cb_info *info, void *arg)
{
	struct srv_conn *conn = arg;

	/* Readers take bytes from the front only, so the checked prefix shrinks
	 * by what they took. */
	conn->scanned = info->n_deleted >= conn->scanned ? 0 : conn->scanned - info->n_deleted;
	if (info->n_added == 0)
		return;
	if (conn->rejecting)
		evbuffer_drain(input, evbuffer_get_length(input));
	else if (conn->scanning)
		conn_scan_input(conn, input);
}

void cmi_srv_conn_expect_head(struct srv_conn *conn)
{
	struct evbuffer *input = bufferevent_get_input(conn->bev);

	cmi_http_head_init(&conn->head, 0);
	conn->scanned = 0;
	conn->scanning = true;
	if (conn->input_cb == NULL)
		conn->input_cb = evbuffer_add_cb(input, conn_input_cb, conn);
	/* Bytes of a pipelined request may be waiting already. */
	conn_scan_input(conn, input);
}

/* Returns what makes evhttp send an error status on its own. */
static const char *conn_evhttp_cause(int status)
{
	switch (status) {
	case 400: return "malformed request line or header, or a head over the size limit";
	case 413: return "body over the size limit, or an invalid chunk size";
	case 501: return "unknown method";
	default: return "rejected by libevent";
	}
}

/* evhttp sends its own error replies (and "100 Continue") without calling
 * the server, which learns of them here, from the status line they add to
 * the output, to log them as it logs its own rejections. */
static void conn_output_cb(struct evbuffer *output, const struct evbuffer_cb_info *info,
			   void *arg)
{
	struct srv_conn *conn = arg;
	struct evbuffer_ptr pos;
	char line[16], key[160];
	int status;

	if (info->n_added < 12 || conn->replying || conn->rejecting)
		return;
	if (evbuffer_ptr_set(output, &pos, evbuffer_get_length(output) - info->n_added,
			     EVBUFFER_PTR_SET) != 0 ||
	    evbuffer_copyout_from(output, &pos, line, sizeof(line) - 1) < 12)
		return;
	line[sizeof(line) - 1] = '\0';
	if (sscanf(line, "HTTP/1.%*1d %3d ", &status) != 1 || status < 400)
		return;
	cmi_srv_log_key(conn->peer, conn_evhttp_cause(status), key, sizeof(key));
	cmi_srv_log_keyed(conn->srv, SRV_LOG_REQUEST, key, "HTTP-BAD-REQUEST",
			  "rejected a request from %s with %d: %s", conn->peer, status,
			  conn_evhttp_cause(status));
}

void cmi_srv_conn_unwatch(struct srv_conn *conn)
{
	if (conn->input_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(conn->bev), conn->input_cb);
	if (conn->output_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_output(conn->bev), conn->output_cb);
	conn->input_cb = NULL;
	conn->output_cb = NULL;
}

static void conn_reject_close(struct srv_conn *conn)
{
	cmi_log(CMICRO_LOG_DEBUG, "http", "HTTP-REJECT-CLOSE",
		"closing the connection of client %s after rejecting its request", conn->peer);
	evhttp_connection_free(conn->evcon); /* calls conn_closed */
}

static void conn_reject_written(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_reject_close(arg);
}

static void conn_reject_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_reject_close(arg);
}

/* Takes the bufferevent over from evhttp, which has not seen the rejected
 * head, writes the reply after whatever evhttp queued before, and frees
 * the connection once it is written. */
void cmi_srv_conn_reject(struct srv_conn *conn)
{
	struct bufferevent *bev = conn->bev;
	const char *reason = conn->head.reason;

	bufferevent_setcb(bev, NULL, conn_reject_written, conn_reject_event, conn);
	bufferevent_disable(bev, EV_READ);
	bufferevent_enable(bev, EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(bev),
			    "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			    conn->head.status, cmi_srv_status_phrase(conn->head.status),
			    strlen(reason) + 1, reason);
	/* The read deadline now bounds the write to a client that stops
	 * reading. */
	cmi_srv_conn_arm(conn);
}

static void conn_reject_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cmi_srv_conn_reject(arg);
}

int cmi_srv_conn_watch(struct srv_conn *conn)
{
	conn->reject_ev = event_new(conn->srv->base, -1, 0, conn_reject_cb, conn);
	if (conn->reject_ev == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory accepting a connection");
	conn->output_cb = evbuffer_add_cb(bufferevent_get_output(conn->bev), conn_output_cb, conn);
	cmi_srv_conn_expect_head(conn);
	if (conn->input_cb == NULL || conn->output_cb == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory accepting a connection");
	return 0;
}
