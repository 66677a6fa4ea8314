/*
 * Internals of the HTTP client, shared by the pool of calls and kept-alive
 * connections (http_client.c) and the I/O of one connection
 * (http_client_io.c). Everything runs on the thread of the client's
 * event_base.
 */
#ifndef CMICRO_HTTP_CLIENT_INT_H
#define CMICRO_HTTP_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "http/http_int.h"
#include "http/http_response.h"

/* Bytes read from a connection before the response parser takes them; a
 * response head must fit. */
#define CLI_IN_SIZE CMI_HTTP_RESP_HEAD_MAX

/* Maximum size of a response body that a GET keeps. */
#define CMI_HTTP_GET_BODY_MAX (4u * 1024 * 1024)

/* Maximum connections kept to one node. A subscriber accepts 1024 at once
 * by default, so a few publishers each at this cap stay under its limit,
 * while 64 requests in flight per node keep a loopback link busy. */
#define CLI_CONNS_PER_NODE 64

/* Requests one connection carries at once (HTTP/1.1 pipelining). Requests
 * started in one pass of the loop leave together in one write, and their
 * responses come back in one read, so a burst costs a few system calls
 * instead of two per message. With 64 messages in flight, 8 used less CPU
 * and reached a higher rate than 4 or 2 (bench/cpustat.sh,
 * docs/benchmarks.md). */
#define CLI_PIPELINE_DEPTH 8

/* A few requests in flight go out over several connections before any
 * connection carries more than CLI_SPREAD_DEPTH. With all of them in one
 * batch, the publisher and the subscriber take turns: each waits while the
 * other works on the batch. Spread over 4 connections of 2, one works on a
 * batch while the other works on the next. At 8 in flight with inline
 * handlers the rate went from about 82,000 to 166,000 messages per second
 * with 16% more CPU per message (bench/cpustat.sh, 64 B, 2 cores). A
 * subscriber with handler threads moves each batch it reads to a handler
 * thread and back, so there smaller batches cost more hand-offs: its rate
 * fell a little and its CPU per message rose by about half. Its requests
 * are not spread (cmi_http_post.no_spread). */
#define CLI_SPREAD_CONNS 4
#define CLI_SPREAD_DEPTH 2

enum cli_state {
	CLI_CONNECTING,  /* TCP connect in progress */
	CLI_HANDSHAKING, /* TLS handshake in progress */
	CLI_OPEN,
	CLI_DEAD         /* closed or failed, and freed by the reaper once no call uses it */
};

struct cli_call;

struct cli_conn {
	struct cli_conn *next;
	struct cmi_http_client *client;
	enum cli_state state;
	int fd;
	SSL *ssl;          /* NULL for plain HTTP */
	struct event *rev; /* persistent read event, added once connected */
	struct event *wev; /* write event, added only while a write waits */
	bool wev_added;
	bool read_wants_write; /* SSL_read needs the socket writable */
	bool write_wants_read; /* SSL_write needs the socket readable */
	char key[320];     /* "https://host:port" */
	char address[256]; /* "host:port", for messages */
	/* The calls whose requests went, or go, out on this connection, oldest
	 * first: the responses come back in this order. */
	struct cli_call *head, *tail;
	unsigned n_calls;
	/* Writes the requests queued during this pass of the loop. */
	struct event *flush_ev;
	bool flush_pending;
	/* Requests not yet written, copied from their calls. */
	char *out;
	size_t out_cap, out_len, out_off;
	uint64_t queued; /* request bytes queued since the connection opened */
	uint64_t sent;   /* and written */
	char *in; /* CLI_IN_SIZE bytes read, not yet parsed */
	size_t in_len;
	struct cmi_http_resp resp;
	unsigned responses; /* complete responses read: the connection was kept alive */
	/* A request behind those still carried timed out: the connection takes
	 * no new request and ends once their responses arrive. */
	bool retiring;
	struct cmi_http_result failure; /* err 0 until a connection failure is seen */
};

struct cli_call {
	struct cli_call *prev, *next; /* in client->calls until done runs */
	struct cmi_http_client *client;
	struct cli_conn *conn; /* NULL while waiting and once the request is over */
	struct cli_call *cnext; /* in conn's calls */
	uint64_t wire_end;      /* conn->queued at the end of this request */
	cmi_http_done_fn done;
	void *arg;
	struct event *ev; /* the deadline, and activated on completion */
	bool completed;
	struct cmi_http_result result;
	char address[256];
	char label[256];
	char key[320];
	char *node_id;
	bool https;
	bool get;
	bool no_spread; /* cmi_http_post.no_spread */
	bool resent; /* sent again after a kept-alive connection turned out closed */
	char *body;  /* response body of a GET */
	struct timeval timeout;
	/* The whole request, head and body, so it leaves in one write. */
	char *wire;
	size_t wire_len;
	/* A call waiting for a connection: every node's connections are capped,
	 * so a burst queues here instead of opening a socket per message. */
	bool pending;
	struct cli_call *pnext; /* in client->pend_head */
};

struct cmi_http_client {
	struct event_base *base;
	struct cmicro_tls_context *tls;
	struct cli_conn *conns;
	struct cli_call *calls;
	struct cli_call *pend_head, *pend_tail; /* FIFO of calls waiting for a connection */
	struct event *reap_ev;
	/* CLI_SPREAD_CONNS and CLI_CONNS_PER_NODE, or what
	 * cmi_http_client_set_conns set */
	int spread_conns, max_conns;
};

/* http_client.c */

/* Delivers the call's result from a separate event, never from inside the
 * I/O callback that ended it. */
void cli_call_finish(struct cli_call *call);
/* Schedules the reaper, which frees dead connections without a call. */
void cli_reap_soon(struct cmi_http_client *client);
/* Sends call again on a new connection, once: the kept-alive connection it
 * went out on had been closed by the server. */
void cli_call_resend(struct cli_call *call);
/* Starts call again as if new: the server cannot have processed it. */
void cli_call_restart(struct cli_call *call);

/* http_client_io.c */

/* Opens a connection for call to call->address; requests added to it
 * are written once it is connected. */
int cli_conn_open(struct cmi_http_client *client, const struct cli_call *call,
		  struct cli_conn **out);
/* Adds the request of call behind those conn already carries. It is written
 * with the others added in the same pass of the loop. */
int cli_conn_add(struct cli_conn *conn, struct cli_call *call);
/* Takes call, whose deadline passed, out of conn's calls, and fails the
 * calls behind it with f. When calls ahead of it may still get their
 * responses, conn takes no new call and ends after those. Otherwise it ends
 * at once, and every call on it fails with f. */
void cli_conn_drop(struct cli_conn *conn, struct cli_call *call, const struct cmi_http_result *f);
/* Marks conn dead: its events stop and the reaper frees it. */
void cli_conn_kill(struct cli_conn *conn);
void cli_conn_free(struct cli_conn *conn);

#endif
