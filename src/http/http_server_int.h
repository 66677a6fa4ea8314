/* Private structures of the HTTP server, shared by its two files. */
#ifndef CMICRO_HTTP_SERVER_INT_H
#define CMICRO_HTTP_SERVER_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/http_head.h"
#include "http/http_int.h"

/* Seconds between two log lines of one kind of client problem. */
#define SRV_LOG_INTERVAL_S 10.0

enum srv_log_kind {
	SRV_LOG_LIMIT = 0,
	SRV_LOG_SLOW,
	SRV_LOG_HANDSHAKE,
	SRV_LOG_REQUEST,
	SRV_LOG_KINDS
};

/* Log categories (kind and key) whose repeats are suppressed; the least
 * recently logged one is reused when all are taken. */
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

/* One accepted connection, owned by the loop thread. */
struct srv_conn {
	struct srv_conn *prev, *next;
	struct cmi_http_server *srv;
	struct bufferevent *bev;
	struct evhttp_connection *evcon; /* set once adopted */
	bool adopted;
	bool busy;                       /* a request waits for its reply */
	unsigned requests;
	struct event *deadline;          /* closes a client too slow to send a request */
	char peer[64];

	/* The strict check of each request head, fed from the input buffer
	 * before evhttp reads it (see http_head.h). */
	struct evbuffer_cb_entry *input_cb;
	struct evbuffer_cb_entry *output_cb; /* logs the errors evhttp sends itself */
	bool replying;                   /* the server, not evhttp, writes a reply */
	struct cmi_http_head_scan head;
	bool scanning;                   /* a request head is expected or arriving */
	size_t scanned;                  /* bytes at the front of the input already checked */
	bool rejecting;                  /* the check failed: the reply closes the connection */
	struct event *reject_ev;         /* sends that reply from the loop */
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
	struct cmi_http_server *srv;          /* NULL once the server is gone */
	struct evhttp_request *evreq;
	struct srv_conn *conn;
	struct srv_query_value *query_values; /* decoded by cmi_http_request_query */
	bool body_terminated;
	char peer[64];
	int status;
	char *reply_body;
	const char *content_type; /* static; NULL for text/plain */
};

struct cmi_http_server {
	struct event_base *base;
	struct cmi_http_server_opts opts;
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	int port;
	struct srv_conn *conns;
	int n_conns;
	struct event *adopt_ev;
	struct event *reply_ev;

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
void cmi_srv_adopt_pending(struct cmi_http_server *srv);
struct srv_conn *cmi_srv_conn_of(struct cmi_http_server *srv, struct evhttp_request *evreq);
void cmi_srv_conn_arm(struct srv_conn *conn);
/* Starts checking the request heads of an adopted connection (in
 * http_reject.c, as the functions below), and stops it before it closes. */
int cmi_srv_conn_watch(struct srv_conn *conn);
void cmi_srv_conn_unwatch(struct srv_conn *conn);
/* Starts the check of the next request head at the front of the input. */
void cmi_srv_conn_expect_head(struct srv_conn *conn);
/* Sends the rejection of a head that failed the check, after the reply
 * to the previous request, and closes the connection. */
void cmi_srv_conn_reject(struct srv_conn *conn);

/* In http_request.c. */
void cmi_srv_request_cb(struct evhttp_request *evreq, void *arg);
void cmi_srv_reply_cb(evutil_socket_t fd, short what, void *arg);
void cmi_srv_detach_requests(struct cmi_http_server *srv);
/* Clears the connection of the requests that refer to conn, which closes. */
void cmi_srv_forget_conn(struct cmi_http_server *srv, struct srv_conn *conn);
const char *cmi_srv_status_phrase(int status);

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

/* Moves the OpenSSL errors that the bufferevent kept back onto the
 * thread's error queue, where cmicro_tls_ssl_failure reads them. Returns
 * the SSL_get_error() code libevent recorded with them (SSL_ERROR_SYSCALL
 * for a socket error, whose errno OpenSSL does not queue), or 0. */
int cmi_http_requeue_ssl_errors(struct bufferevent *bev);

#endif
