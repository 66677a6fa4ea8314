/* Private structures of the HTTP server, shared by its files. */
#ifndef CMICRO_HTTP_SERVER_INT_H
#define CMICRO_HTTP_SERVER_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include <openssl/ssl.h>

#include "http/http_head.h"
#include "http/http_int.h"
#include "http/http_request_parse.h"

/* Milliseconds between two takes of the reply queue while requests are
 * with the handler. A take that finds no reply doubles the interval up to
 * the maximum, so a slow handler with a long queue costs about 60 wake-ups
 * a second, and one that finds replies goes back to the minimum. The
 * maximum is the longest that a held reply waits. */
#define CMI_SRV_REPLY_POLL_MS 1
#define CMI_SRV_REPLY_POLL_MAX_MS 16

/* Seconds between two log lines of one kind of client problem. */
#define SRV_LOG_INTERVAL_S 10.0

enum srv_log_kind {
	SRV_LOG_LIMIT = 0,
	SRV_LOG_SLOW,
	SRV_LOG_HANDSHAKE,
	SRV_LOG_REQUEST,
	SRV_LOG_KINDS
};

/* Log categories (kind and key) whose repeats are suppressed. When all are
 * taken, the least recently logged one is reused. */
#define SRV_LOG_SLOTS 64

/* The rate limit of one category: a kind of problem and a key such as
 * "peer host + reason". */
struct srv_log_slot {
	enum srv_log_kind kind;
	char key[160];
	char msg_id[32];
	bool used;
	const char *component;    /* static */
	double last;              /* monotonic seconds of the last line logged */
	unsigned long suppressed; /* lines left out since then */
};

enum srv_phase {
	SRV_HEAD = 0, /* waiting for (the rest of) a request head */
	SRV_BODY,     /* waiting for the rest of a Content-Length body */
	SRV_CHUNKED,  /* decoding a chunked body */
	SRV_BUSY,     /* framing stopped: the handler has the request, or the
		       * connection ends after the replies it waits for */
	SRV_CLOSING,  /* the last reply is being written, then the connection ends */
	SRV_DRAIN     /* the write side is shut; input is read and dropped */
};

/* One accepted connection, owned by the loop thread. */
struct srv_conn {
	struct srv_conn *prev, *next;
	struct cmi_http_server *srv;
	int fd;
	SSL *ssl;                /* NULL for plain HTTP */
	struct event *rev;       /* persistent read event */
	struct event *wev;       /* added only while a write waits for room */
	struct event *deadline;  /* closes slow and idle clients */
	bool rev_added, wev_added;
	bool read_wants_write;   /* SSL_read needs the socket writable */
	bool write_wants_read;   /* SSL_write needs the socket readable */
	bool peer_eof;           /* the client closed its sending side */
	bool processing;         /* conn_process is on the stack */
	bool rejecting;          /* the last reply is an error that ends the connection */
	bool dead;               /* closed; freed once the stack unwinds */
	enum srv_phase phase;
	unsigned requests;
	char peer[64];

	/* Input: the current request starts at in[0]. */
	char *in;
	size_t in_cap, in_len;
	struct cmi_http_head_scan scan;
	size_t scanned;          /* head bytes already checked */
	size_t head_len;
	struct cmi_http_req_head head;
	size_t body_len;         /* body bytes, decoded, at in + head_len */
	size_t raw_off;          /* chunked: the next byte to decode */
	size_t req_end;          /* where the next pipelined request starts */
	struct cmi_http_chunked chunk;
	bool continue_sent;
	/* The byte under the NUL that ends the body while the handler runs. */
	bool nul_set;
	char nul_saved;
	size_t nul_at;

	/* Output: replies not yet written. */
	char *out;
	size_t out_cap, out_len, out_off;

	/* Requests handed to the handler whose replies are not written yet,
	 * oldest first: the replies leave in this order, so a connection
	 * carries several requests to handler threads at once. */
	struct cmi_http_request *q_head, *q_tail;
	unsigned n_queued;
	/* A rejection framed behind requests still waiting for their replies,
	 * written after them. */
	int reject_status;
	char reject_text[200];
	struct srv_conn *dirty_next; /* in srv->dirty, while replies are gathered */
	bool dirty;
};

/* Returns the decoded value of parameter name in a query string (without
 * the "?") as a new string to free, or NULL when name is missing, the query
 * is malformed or memory ran out. The rules are those of libevent's
 * evhttp_parse_query_str and evhttp_find_header. */
char *cmi_http_query_value(const char *query, const char *name);

struct srv_query_value {
	struct srv_query_value *next;
	char text[]; /* NUL-terminated */
};

struct cmi_http_request {
	struct cmi_http_request *prev, *next; /* in srv->pending */
	struct cmi_http_request *next_reply;  /* in the reply queue */
	struct cmi_http_request *q_next;      /* in conn's queue (loop thread) */
	bool replied;                         /* its reply reached the loop thread */
	struct cmi_http_server *srv;          /* NULL once the server is gone */
	struct srv_conn *conn;                /* NULL once the connection closed */
	/* Valid while the handler runs: they point into the connection's input. */
	const struct cmi_http_req_head *head;
	char *body;
	size_t body_len;
	struct srv_query_value *query_values; /* decoded by cmi_http_request_query */
	bool head_only;                       /* a HEAD request: the reply has no body */
	bool keep_alive;
	int minor;
	char peer[64];
	int status;
	char *reply_body;
	const char *content_type; /* static; NULL for text/plain */
};

struct cmi_http_server {
	struct event_base *base;
	struct cmi_http_server_opts opts;
	int listen_fd;
	struct event *accept_ev;
	struct event *accept_retry; /* re-enables accepting after running out of files */
	int port;
	struct srv_conn *conns;
	int n_conns;
	struct event *reply_ev;
	/* Takes queued replies while requests are with the handler, so that
	 * replies that a thread keeps back (cmi_http_reply_hold) wait no longer than
	 * CMI_SRV_REPLY_POLL_MAX_MS; poll_ms is its current interval. */
	struct event *poll_ev;
	int poll_ms;
	struct event *reap_ev;      /* frees dead connections */
	struct srv_conn *dead;      /* closed connections waiting for the reaper */
	/* While a batch of replies is taken from the queue, the connections
	 * that got some; each writes them at once after the batch. */
	bool gathering;
	struct srv_conn *dirty;

	/* Guards pending, the reply queue and every request's srv. */
	pthread_mutex_t lock;
	struct cmi_http_request *pending;
	struct cmi_http_request *reply_head, *reply_tail;

	struct srv_log_slot log_slots[SRV_LOG_SLOTS];

	/* The Date header of replies, formatted once a second (loop thread). */
	time_t date_sec;
	char date[40];
};

void cmi_srv_log(struct cmi_http_server *srv, enum srv_log_kind kind, const char *msg_id,
		 const char *fmt, ...) CMI_PRINTF(4, 5);
/* As cmi_srv_log, limited per (kind, key) so that one category of problem
 * does not hide another: key names the peer host and the cause. */
void cmi_srv_log_keyed(struct cmi_http_server *srv, enum srv_log_kind kind, const char *key,
		       const char *msg_id, const char *fmt, ...) CMI_PRINTF(5, 6);
/* As cmi_srv_log_keyed with a component other than "http" (static). */
void cmi_srv_log_component(struct cmi_http_server *srv, const char *component, const char *key,
			   const char *msg_id, const char *fmt, ...) CMI_PRINTF(5, 6);
/* Names a log category: the client's host, without the port that changes
 * with every connection, and the cause. */
void cmi_srv_log_key(const char *peer, const char *cause, char *key, size_t size);
/* Logs the count of each category whose suppressed lines were never
 * reported (at server shutdown). */
void cmi_srv_log_flush(struct cmi_http_server *srv);

/* In http_server_conn.c: one connection's reading, framing and writing. */
int cmi_srv_conn_open(struct cmi_http_server *srv, int fd, const char *peer);
/* Closes conn at once (sending close_notify when its handshake was done);
 * it is freed by the reaper. */
void cmi_srv_conn_close(struct srv_conn *conn);
void cmi_srv_conn_free(struct srv_conn *conn);
/* Takes req, whose reply came: appends the replies that are now next in
 * order, and goes on with the input. conn owns req from here. */
void cmi_srv_conn_replied(struct srv_conn *conn, struct cmi_http_request *req);
/* Adds req, handed to the handler now, to the end of conn's queue. */
void cmi_srv_conn_queue(struct srv_conn *conn, struct cmi_http_request *req);
/* Writes what the replies gathered in srv->dirty added (reply batch). */
void cmi_srv_conns_flush_dirty(struct cmi_http_server *srv);
bool cmi_srv_conn_flushed(const struct srv_conn *conn);
/* (Re)starts the deadline of conn: read_timeout_ms from now. */
void cmi_srv_conn_arm(struct srv_conn *conn);

/* In http_request.c. */
/* Hands the request that conn has framed to the handler. */
void cmi_srv_dispatch(struct cmi_http_server *srv, struct srv_conn *conn);
void cmi_srv_reply_cb(evutil_socket_t fd, short what, void *arg);
/* Starts the reply poll of srv unless it runs (loop thread). */
void cmi_srv_reply_poll_arm(struct cmi_http_server *srv);
void cmi_srv_reply_poll_cb(evutil_socket_t fd, short what, void *arg);
void cmi_srv_request_free(struct cmi_http_request *req);
void cmi_srv_detach_requests(struct cmi_http_server *srv);
/* Clears the connection of the requests that refer to conn, which closes. */
void cmi_srv_forget_conn(struct cmi_http_server *srv, struct srv_conn *conn);
const char *cmi_srv_status_phrase(int status);
/* Returns the Date field value, formatted again only when the second
 * changed since the previous call. */
const char *cmi_srv_date(struct cmi_http_server *srv);

/*
 * Logs a rejected request, at most once every SRV_LOG_INTERVAL_S seconds for
 * each client host and reason, with the count of the lines left out. Loop
 * thread only (in the handler). reason is a short category such as "method";
 * the line is fmt.
 * NOTE: this belongs in http_int.h, next to the other request accessors.
 */
void cmi_http_request_log_rejected(const struct cmi_http_request *req, const char *component,
				   const char *reason, const char *msg_id, const char *fmt, ...)
	CMI_PRINTF(5, 6);

#endif
