/*
 * Internal interface of the HTTP layer: a small HTTP/1.1 server and client
 * that drive their sockets and OpenSSL (when given a cmicro TLS context)
 * directly on a libevent loop. Both run on the thread of their event_base; only
 * cmi_http_reply may be called from other threads. The layer knows nothing
 * of topics or messages.
 */
#ifndef CMICRO_HTTP_INT_H
#define CMICRO_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include <cmicro/tls.h>

#include "common/common_int.h"
#include "tls/tls_int.h"

/* Makes libevent thread-safe (evthread_use_pthreads) once per process.
 * Every event_base that other threads touch must be created after it. */
int cmi_http_threads_init(void);

/* Creates an event_base with epoll's change list on, which merges the
 * changes to one socket's events within a pass of the loop into one
 * epoll_ctl call. The HTTP layer never clones a socket with dup(), which the
 * change list mishandles. Returns NULL when out of memory. */
struct event_base *cmi_http_base_new(void);

/* The first polling window after a sleep that polling would have saved. */
#define CMI_HTTP_LOOP_FIRST_WINDOW_NS 10000

/* Counters and the current window of cmi_http_loop_run, for tests and
 * benchmarks (written by the loop thread). */
struct cmi_http_loop_stats {
	int64_t window_ns;        /* the current polling window */
	unsigned long polls;      /* passes of the loop that did not sleep */
	unsigned long poll_hits;  /* of them, passes with socket activity */
	unsigned long sleeps;     /* passes that could sleep */
};

/* Runs base's loop until event_base_loopexit. After socket activity it
 * polls for up to max_poll_us before it sleeps, over a window that adapts
 * to the traffic (http_loop.c); 0 or less sleeps at once. stats_out may
 * be NULL. Returns 0, or -1 when the loop failed. */
int cmi_http_loop_run(struct event_base *base, int max_poll_us,
		      struct cmi_http_loop_stats *stats_out);

/* Returns the polling window after a sleep of slept_ns that ended with
 * socket activity: doubled (from CMI_HTTP_LOOP_FIRST_WINDOW_NS, up to max_ns)
 * when a longer window would have saved the sleep, halved (down to 0)
 * when the sleep was longer than max_ns. */
int64_t cmi_http_loop_next_window(int64_t window_ns, int64_t slept_ns, int64_t max_ns);

/* Counts socket activity of the calling thread's loop, which keeps
 * cmi_http_loop_run polling: reads, writes, replies that handler threads
 * hand over, and messages to send. Called at the start of the callback. */
void cmi_http_loop_note_activity(void);

/* Adds ev (without a timeout) or deletes it, only when that changes
 * *added, so a connection that keeps its interest costs no epoll_ctl. */
void cmi_http_event_set(struct event *ev, bool *added, bool on);

/* ---- server ---- */

struct cmi_http_server;

/*
 * One request waiting for its reply. Accessors run on the loop thread (in
 * the handler) and copy what a worker needs; cmi_http_reply may run on any
 * thread and must be called exactly once.
 */
struct cmi_http_request;

typedef void (*cmi_http_handler_fn)(void *user, struct cmi_http_request *req);

struct cmi_http_server_opts {
	const char *host;          /* "" or NULL: every interface */
	int port;                  /* 0: any free port */
	struct cmicro_tls_context *tls; /* server role; NULL for plain HTTP */
	size_t max_body;           /* larger bodies get 413; at most SIZE_MAX / 4 */
	size_t max_headers;        /* bytes of the request line and headers; more get 431 */
	int max_connections;       /* more are closed right after accept */
	int read_timeout_ms;       /* time for one complete request */
	/* Pipelined requests of one connection with the handler at once (0:
	 * 64); at 1 the next request is framed only after the reply. */
	int pipeline_max;
	cmi_http_handler_fn handler;
	void *user;
};

int cmi_http_server_new(struct event_base *base, const struct cmi_http_server_opts *opts,
			struct cmi_http_server **out);
/* Stops listening and closes every connection. Requests still waiting for
 * a reply are detached: a later cmi_http_reply only releases them. */
void cmi_http_server_free(struct cmi_http_server *srv);
/* The bound port (useful with port 0). */
int cmi_http_server_port(const struct cmi_http_server *srv);
/* Connections open now. */
int cmi_http_server_connections(const struct cmi_http_server *srv);
/* True when no reply waits to be sent and every connection's output was
 * written to its socket (loop thread). */
bool cmi_http_server_flushed(struct cmi_http_server *srv);

const char *cmi_http_request_method(const struct cmi_http_request *req);
bool cmi_http_request_is_post(const struct cmi_http_request *req);
/* The value of one query parameter (decoded), or NULL. */
const char *cmi_http_request_query(const struct cmi_http_request *req, const char *name);
const char *cmi_http_request_header(const struct cmi_http_request *req, const char *name);
/* The body, contiguous and NUL-terminated. It stays valid until the
 * handler returns or replies, whichever comes first: a reply made in the
 * handler lets the server move its input. */
const char *cmi_http_request_body(struct cmi_http_request *req, size_t *len);
bool cmi_http_request_is_get(const struct cmi_http_request *req);
/* The path of the request URI, without the query ("/" when empty). */
const char *cmi_http_request_path(const struct cmi_http_request *req);
/* "ip:port" of the client. */
const char *cmi_http_request_peer(const struct cmi_http_request *req);

/* Sends status with a text/plain body (a line end is added) and releases
 * req. Thread-safe; the reply is written by the loop thread. */
void cmi_http_reply(struct cmi_http_request *req, int status, const char *body);
/* As cmi_http_reply with a Content-Type (a static string) instead of
 * text/plain. */
void cmi_http_reply_typed(struct cmi_http_request *req, int status, const char *content_type,
			  const char *body);
/* From cmi_http_reply_hold to cmi_http_reply_release, the replies that this
 * thread (not a loop thread) makes to requests of srv are queued without
 * waking srv's loop thread, which then writes them together. The loop
 * thread also takes them within CMI_SRV_REPLY_POLL_MAX_MS (16 ms) on its
 * own, so a late release does not delay them more. Replies to other
 * servers are not held. The caller ensures that srv is not freed before the
 * release. */
void cmi_http_reply_hold(struct cmi_http_server *srv);
void cmi_http_reply_release(void);

/* ---- client ---- */

struct cmi_http_client;

/* tls: client role, used for https requests (NULL: https fails). */
int cmi_http_client_new(struct event_base *base, struct cmicro_tls_context *tls,
			struct cmi_http_client **out);
/* Closes every connection; requests still running complete with
 * CMICRO_ECLOSED before it returns. */
void cmi_http_client_free(struct cmi_http_client *client);

/* Sets over how many connections to a node the client spreads a few
 * requests before one connection carries more than 2 (default 4), and how
 * many connections it keeps to one node (default 64). With a spread of 1,
 * a connection takes up to 8 requests before another opens. Tests use
 * these to put a whole burst on one connection or to reach the cap with
 * a few requests. */
void cmi_http_client_set_conns(struct cmi_http_client *client, int spread, int max);

struct cmi_http_result {
	int err;        /* 0 when a response arrived (any status) */
	int status;     /* HTTP status, 0 without a response */
	enum cmicro_tls_reason tls_reason;
	char message[512]; /* the failure, with the fix where known */
	const char *body;  /* response body of a GET (borrowed for the callback), or NULL */
	size_t body_len;
};

typedef void (*cmi_http_done_fn)(void *arg, const struct cmi_http_result *result);

struct cmi_http_post {
	bool https;
	const char *address;     /* "host:port" or "[v6]:port" */
	const char *path;        /* "/?id=..." already encoded */
	const char *peer_label;  /* names the peer in logs and TLS messages */
	const char *node_id;     /* the peer's registry node id for TLS findings, or NULL */
	const char *body;
	size_t body_len;
	int timeout_ms;          /* whole request: connect, handshake, response */
	bool get;                /* GET without a body, keeping the response body */
	/* No spread over several connections: the node hands each batch of
	 * requests it reads to other threads and back (a cmicro subscriber
	 * with handler threads), so fewer, fuller batches cost it less. */
	bool no_spread;
};

/*
 * Sends a POST with Content-Type application/json (or a GET when post->get
 * is set, whose response body, at most 4 MiB, is passed to done) over a kept-alive
 * connection to the address (a new one when none is idle). done is called
 * exactly once on the loop thread, never before this returns 0. A failure
 * to start returns an error and done is not called.
 */
int cmi_http_client_post(struct cmi_http_client *client, const struct cmi_http_post *post,
			 cmi_http_done_fn done, void *arg);

struct bufferevent;

/* Moves the OpenSSL errors that the bufferevent kept back onto the
 * thread's error queue, where cmicro_tls_ssl_failure reads them. Returns
 * the SSL_get_error() code libevent recorded with them (SSL_ERROR_SYSCALL
 * for a socket error, whose errno OpenSSL does not queue), or 0. */
int cmi_http_requeue_ssl_errors(struct bufferevent *bev);

/* Splits "host:port" or "[v6]:port" into host (without brackets) and port.
 * Returns CMICRO_EINVAL naming the address when it has no valid port. */
int cmi_http_split_address(const char *address, char *host, size_t host_size, int *port);

/* Takes socket fd and keeps it open for reading for up to two seconds after
 * a shutdown of its sending side (http_linger.c). A peer still sending can
 * then read what was sent to it (a TLS alert) instead of a reset. At most 64
 * sockets linger per process; past that it returns false and the caller
 * keeps fd. */
bool cmi_http_linger(struct event_base *base, int fd);

/* Ends every lingering socket of base, before the base is freed. */
void cmi_http_linger_drop(struct event_base *base);

#endif
