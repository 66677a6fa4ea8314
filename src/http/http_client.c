/*
 * HTTP/1.1 client with kept-alive connections per address: the calls, the
 * pool of connections and the queue of calls waiting for one. The I/O of a
 * connection is in http_client_io.c. A connection carries up to
 * CLI_PIPELINE_DEPTH requests at a time (pipelined), and at most
 * CLI_CONNS_PER_NODE are open to one node (client->max_conns).
 *
 * RFC 9112 (section 9.3.2) states that a client should not pipeline after a
 * request that is not idempotent unless it can recover from a partial
 * failure.
 * Broker messages are delivered at least once and carry a Micro-Id that
 * subscribers use to drop repeats, so a request lost with its connection is
 * sent once more, and one that was handled and is sent again is a
 * duplicate the subscriber recognises.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_client_int.h"

static bool cli_dispatch(struct cmi_http_client *client, const char *key);

static void cli_reap(evutil_socket_t fd, short what, void *arg)
{
	struct cmi_http_client *client = arg;
	struct cli_conn **link = &client->conns;

	(void)fd;
	(void)what;
	while (*link != NULL) {
		struct cli_conn *conn = *link;

		if (conn->state == CLI_DEAD && conn->head == NULL) {
			char key[sizeof(conn->key)];

			*link = conn->next;
			memcpy(key, conn->key, sizeof(key));
			cli_conn_free(conn);
			/* Its slot under the cap is free for waiting calls: the
			 * first opens a connection that those behind it can join. */
			while (cli_dispatch(client, key))
				continue;
		} else {
			link = &conn->next;
		}
	}
}

void cli_reap_soon(struct cmi_http_client *client)
{
	event_active(client->reap_ev, 0, 0);
}

void cli_call_finish(struct cli_call *call)
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
	free(call->wire);
	free(call->body);
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

/* Fills the result of a call whose deadline passed on conn. */
static void cli_timed_out(struct cli_call *call, struct cli_conn *conn)
{
	if (conn->state == CLI_CONNECTING || conn->state == CLI_HANDSHAKING)
		/* A node that is stopped (SIGSTOP) or overloaded still gets its
		 * connections accepted by the kernel, so the time runs out in the
		 * TLS handshake: that is not a node that cannot be reached. */
		cli_fail(call, CMICRO_ETIMEDOUT,
			 "%s did not complete the connection in time (TCP or TLS handshake); "
			 "the node is stopped, overloaded or behind a filtering firewall",
			 call->address);
	else
		cli_fail(call, CMICRO_ETIMEDOUT, "no response within the delivery timeout; the "
						 "node is slow, stalled or unreachable");
}

/* Runs on completion, or at the deadline when the response is late. */
static void cli_call_event(evutil_socket_t fd, short what, void *arg)
{
	struct cli_call *call = arg;
	struct cmi_http_client *client = call->client;
	char key[sizeof(call->key)];

	(void)fd;
	(void)what;
	if (!call->completed && call->pending) {
		cli_unqueue(call);
		cli_fail(call, CMICRO_ETIMEDOUT,
			 "no free connection to %s within the delivery timeout: %d requests were "
			 "already under way to that node, which is slow or overloaded",
			 call->address, client->max_conns * CLI_PIPELINE_DEPTH);
		call->completed = true;
	} else if (!call->completed) {
		struct cmi_http_result behind = {0};

		cli_timed_out(call, call->conn);
		call->completed = true;
		/* A late response must not be read as the next request's, so the
		 * requests behind this one, which waited on the same node, fail. On
		 * a connection still opening they share its failure. */
		behind = call->result;
		if (call->conn->state == CLI_OPEN)
			cmi_fmt(behind.message, sizeof(behind.message),
				"a request ahead of this one on its connection to %s got no "
				"response within the delivery timeout; the node is slow, stalled "
				"or unreachable",
				call->address);
		cli_conn_drop(call->conn, call, &behind);
	}
	/* The slot this call held, and any other that responses read together
	 * with its own freed, go to the oldest calls waiting for the node before
	 * the callback can start new requests that would take them. */
	memcpy(key, call->key, sizeof(key));
	while (cli_dispatch(client, key))
		continue;
	call->done(call->arg, &call->result);
	cli_call_release(call);
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

/*
 * Chooses the connection for call. The first choice is one whose requests
 * of this pass of the loop are not written yet, or that is still opening,
 * so that they leave together. While fewer than client->spread_conns (one
 * for a no_spread call) connections to the node carry requests, such a
 * batch takes at most CLI_SPREAD_DEPTH of them, and further requests go to
 * another connection. Then comes an idle one, then a new one while the
 * node is under the cap, then a batch beyond CLI_SPREAD_DEPTH, then the
 * one carrying the fewest requests. Returns 0 with *out NULL when every
 * connection to the node carries CLI_PIPELINE_DEPTH. A call sent again goes on a connection opened
 * since, because the other idle ones may have been closed with the one that
 * failed it.
 */
static int cli_conn_for(struct cmi_http_client *client, const struct cli_call *call,
			struct cli_conn **out)
{
	struct cli_conn *batch = NULL, *short_batch = NULL, *idle = NULL, *least = NULL;
	int spread = call->no_spread ? 1 : client->spread_conns;
	int n = 0, busy = 0;

	*out = NULL;
	for (struct cli_conn *c = client->conns; c != NULL; c = c->next) {
		if (c->state == CLI_DEAD || strcmp(c->key, call->key) != 0)
			continue;
		n++;
		if (c->n_calls > 0)
			busy++;
		if (c->n_calls >= CLI_PIPELINE_DEPTH || c->retiring)
			continue;
		if (c->n_calls == 0) {
			if (idle == NULL)
				idle = c;
			continue;
		}
		if ((c->state != CLI_OPEN || c->flush_pending) &&
		    (!call->resent || c->responses == 0)) {
			if (batch == NULL)
				batch = c;
			if (short_batch == NULL && c->n_calls < CLI_SPREAD_DEPTH)
				short_batch = c;
		}
		if (least == NULL || c->n_calls < least->n_calls)
			least = c;
	}
	if (busy >= spread && batch != NULL) {
		*out = batch;
		return 0;
	}
	if (short_batch != NULL) {
		*out = short_batch;
		return 0;
	}
	if (idle != NULL && !call->resent) {
		*out = idle;
		return 0;
	}
	if (n < client->max_conns)
		return cli_conn_open(client, call, out);
	if (batch != NULL)
		*out = batch;
	else if (idle != NULL)
		*out = idle;
	else
		*out = least;
	return 0;
}

/* Starts the call's request on conn. A connection that failed as it opened
 * reports its failure through the call. */
static void cli_start(struct cli_call *call, struct cli_conn *conn)
{
	int rc;

	if (conn->state == CLI_DEAD) {
		call->result = conn->failure;
		cli_call_finish(call);
		return;
	}
	rc = cli_conn_add(conn, call);
	if (rc != 0) {
		cli_fail(call, rc, "%s", cmicro_last_errmsg());
		cli_call_finish(call);
	}
}

/* Starts the oldest call waiting for key, when a connection is free.
 * Returns true when it took a call off the queue, started or failed. */
static bool cli_dispatch(struct cmi_http_client *client, const char *key)
{
	struct cli_call *call = client->pend_head;
	struct cli_conn *conn = NULL;

	int rc;

	while (call != NULL && strcmp(call->key, key) != 0)
		call = call->pnext;
	if (call == NULL)
		return false;
	rc = cli_conn_for(client, call, &conn);
	if (rc == 0 && conn == NULL)
		return false;
	cli_unqueue(call);
	if (rc != 0) {
		/* The cause, not a timeout blaming the cap later. */
		cli_fail(call, rc, "%s", cmicro_last_errmsg());
		cli_call_finish(call);
		return true;
	}
	cli_start(call, conn);
	return true;
}

static void cli_enqueue(struct cli_call *call)
{
	struct cmi_http_client *client = call->client;

	call->pending = true;
	if (client->pend_tail != NULL)
		client->pend_tail->pnext = call;
	else
		client->pend_head = call;
	client->pend_tail = call;
}

void cli_call_resend(struct cli_call *call)
{
	call->resent = true;
	cli_call_restart(call);
}

void cli_call_restart(struct cli_call *call)
{
	struct cli_conn *conn = NULL;
	int rc;

	rc = cli_conn_for(call->client, call, &conn);
	if (rc != 0) {
		cli_fail(call, rc, "%s", cmicro_last_errmsg());
		cli_call_finish(call);
		return;
	}
	if (conn != NULL)
		cli_start(call, conn);
	else
		cli_enqueue(call);
}

static char *cli_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Builds the request, head and body, in one buffer. A POST carries Host,
 * Content-Type and Content-Length, and a GET carries Host only, because
 * Go's HTTP server rejects HTTP/1.1 requests without Host. */
static int cli_build_request(struct cli_call *call, const struct cmi_http_post *post)
{
	static const char post_line[] = "POST ", get_line[] = "GET ";
	static const char version[] = " HTTP/1.1\r\nHost: ";
	static const char type[] = "\r\nContent-Type: application/json\r\nContent-Length: ";
	size_t path_len = strlen(post->path), host_len = strlen(post->address);
	char length[24];
	size_t length_len = 0;
	size_t size;
	char *p;

	for (size_t i = 0; i < path_len; i++) {
		unsigned char c = (unsigned char)post->path[i];

		if (c <= 0x20 || c == 0x7f)
			return cmi_error(CMICRO_EINVAL, "request path \"%.200s\" has a space or a "
							"control character; percent-encode it",
					 post->path);
	}
	if (strpbrk(post->address, "\r\n") != NULL)
		return cmi_error(CMICRO_EINVAL, "address \"%.200s\" has a line break",
				 post->address);
	size = 4 + path_len + sizeof(version) + host_len + 4;
	if (!post->get) {
		length_len = (size_t)snprintf(length, sizeof(length), "%zu", post->body_len);
		size += sizeof(type) + length_len + post->body_len;
	}
	call->wire = malloc(size);
	if (call->wire == NULL)
		return CMICRO_ENOMEM;
	p = call->wire;
	p = post->get ? cli_put(p, get_line, sizeof(get_line) - 1)
		      : cli_put(p, post_line, sizeof(post_line) - 1);
	p = cli_put(p, post->path, path_len);
	p = cli_put(p, version, sizeof(version) - 1);
	p = cli_put(p, post->address, host_len);
	if (!post->get) {
		p = cli_put(p, type, sizeof(type) - 1);
		p = cli_put(p, length, length_len);
	}
	p = cli_put(p, "\r\n\r\n", 4);
	if (!post->get && post->body_len > 0)
		p = cli_put(p, post->body, post->body_len);
	call->wire_len = (size_t)(p - call->wire);
	return 0;
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
	call->get = post->get;
	call->no_spread = post->no_spread;
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

/* Copies s into out of size bytes, cut to fit. A formatted copy cost more
 * than the rest of starting a request (bench/profile.sh). */
static size_t cli_copy(char *out, size_t size, const char *s)
{
	size_t n = strlen(s);

	if (n >= size)
		n = size - 1;
	memcpy(out, s, n);
	out[n] = '\0';
	return n;
}

static int cli_call_fill(struct cli_call *call, const struct cmi_http_post *post)
{
	size_t scheme;

	cli_copy(call->address, sizeof(call->address), post->address);
	cli_copy(call->label, sizeof(call->label),
		 post->peer_label ? post->peer_label : post->address);
	scheme = cli_copy(call->key, sizeof(call->key), post->https ? "https://" : "http://");
	cli_copy(call->key + scheme, sizeof(call->key) - scheme, post->address);
	call->https = post->https;
	call->timeout.tv_sec = post->timeout_ms / 1000;
	call->timeout.tv_usec = (post->timeout_ms % 1000) * 1000;
	call->node_id = post->node_id ? cmi_strdup(post->node_id) : NULL;
	if (post->node_id != NULL && call->node_id == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory building a request to %s",
				 post->address);
	return cli_build_request(call, post);
}

int cmi_http_client_post(struct cmi_http_client *client, const struct cmi_http_post *post,
			 cmi_http_done_fn done, void *arg)
{
	struct cli_conn *conn = NULL;
	struct cli_call *call;
	int rc;

	if (post->address == NULL || post->path == NULL)
		return cmi_error(CMICRO_EINVAL, "a request needs an address and a path");
	call = cli_call_new(client, post, done, arg);
	rc = call != NULL ? cli_call_fill(call, post) : CMICRO_ENOMEM;
	if (rc == 0)
		rc = cli_conn_for(client, call, &conn);
	if (rc != 0) {
		if (call != NULL)
			cli_call_release(call);
		return rc;
	}
	event_add(call->ev, &call->timeout);
	if (conn != NULL)
		cli_start(call, conn);
	else
		cli_enqueue(call);
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
	client->spread_conns = CLI_SPREAD_CONNS;
	client->max_conns = CLI_CONNS_PER_NODE;
	client->reap_ev = event_new(base, -1, 0, cli_reap, client);
	if (client->reap_ev == NULL) {
		free(client);
		return cmi_error(CMICRO_ENOMEM, "out of memory creating the HTTP client");
	}
	*out = client;
	return 0;
}

void cmi_http_client_set_conns(struct cmi_http_client *client, int spread, int max)
{
	client->spread_conns = spread < 1 ? 1 : spread;
	client->max_conns = max < 1 ? 1 : max;
}

void cmi_http_client_free(struct cmi_http_client *client)
{
	if (client == NULL)
		return;
	for (struct cli_conn *c = client->conns; c != NULL; c = c->next) {
		c->head = c->tail = NULL;
		c->n_calls = 0;
	}
	while (client->calls != NULL) {
		struct cli_call *call = client->calls;

		if (call->pending)
			cli_unqueue(call);
		if (!call->completed)
			cli_fail(call, CMICRO_ECLOSED, "the broker closed before a response");
		call->completed = true;
		call->conn = NULL;
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
