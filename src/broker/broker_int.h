/* Internal interface of the broker layer: the message type and its
 * go-micro JSON codec, shared by the broker modules, the tests and the fuzz
 * targets. */
#ifndef CMICRO_BROKER_INT_H
#define CMICRO_BROKER_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <cmicro/broker.h>

#include "common/common_int.h"

/* The header that carries the topic inside go-micro's message envelope. */
#define CMI_TOPIC_HEADER "Micro-Topic"

struct cmi_header {
	char *key;
	char *value;
};

/* Headers are kept sorted by key in byte order, the order Go's
 * encoding/json writes map keys in. */
struct cmicro_message {
	struct cmi_header *headers;
	size_t n_headers;
	size_t cap_headers;
	unsigned char *body; /* NUL-terminated; never NULL */
	size_t body_len;
};

/* The header that carries a message's unique id: go-micro's client sets it
 * on every published event, and subscribers de-duplicate by it. */
#define CMI_ID_HEADER "Micro-Id"

/* Maximum length of a topic accepted by publish and subscribe, in bytes. Node ids are
 * "<topic>-<broker id>", so this keeps them under 300 bytes. */
#define CMI_TOPIC_MAX 255

/* Returns true for a topic that can travel in the envelope: non-empty
 * UTF-8. */
bool cmi_topic_valid(const char *topic);

/* Checks the topic rule of publish and subscribe: 1 to CMI_TOPIC_MAX bytes
 * of UTF-8 without spaces, ASCII control characters or C1 controls.
 * Returns CMICRO_EINVAL with a detail message naming the problem. */
int cmi_topic_check(const char *topic);

/* A window of the ids of recently handled messages (dedup.c). It keeps a
 * 128-bit digest of each id, so memory is fixed by the window size. Not
 * thread-safe: one subscription's handler thread uses it at a time. */
struct cmi_dedup;

int cmi_dedup_new(size_t window, struct cmi_dedup **out);
void cmi_dedup_free(struct cmi_dedup *d);
/* Returns true when id is among the last window ids added. */
bool cmi_dedup_seen(const struct cmi_dedup *d, const char *id);
/* Adds id, forgetting the oldest id once the window is full. */
void cmi_dedup_add(struct cmi_dedup *d, const char *id);

/*
 * Encodes msg as go-micro's broker envelope with the Micro-Topic header set
 * to topic: {"Header":{...},"Body":"<standard base64>"}, keys in Go's
 * order. *json is NUL-terminated; free with free.
 */
int cmi_message_encode(const struct cmicro_message *msg, const char *topic, char **json,
		       size_t *len);

/*
 * Decodes an envelope as Go's encoding/json does for go-micro's Message:
 * field names match case-insensitively, unknown fields are ignored, a null
 * Header or Body is empty, Body is standard base64 with padding (line
 * breaks ignored). Returns CMICRO_EPROTO with a detail message naming the
 * problem, or CMICRO_ENOMEM.
 */
int cmi_message_decode(const char *json, size_t len, struct cmicro_message **out);

/* A TLS report read back from GET /debug/tls (tls_report.c). */
struct cmi_tls_report {
	char broker_id[64];
	char address[96];
	char mode[16];
	struct cmicro_tls_finding *findings;
	size_t n;
};

/* Parses the JSON that cmicro_broker_tls_report writes. Returns
 * CMICRO_EPROTO naming what is wrong, or CMICRO_ENOMEM. */
int cmi_brk_tls_report_parse(const char *json, size_t len, struct cmi_tls_report **out);
void cmi_brk_tls_report_free(struct cmi_tls_report *rep);

/* ---- broker internals ---- */

#include <pthread.h>
#include <stdatomic.h>

#include <event2/event.h>

#include "http/http_int.h"
#include "registry/registry_int.h"

struct brk_job;
struct brk_msg;
struct brk_topic;
struct brk_logged;
struct cmi_brk_metrics;
struct cmi_outbox;

/* Seconds between two log lines of one rate-limited kind. */
#define BRK_LOG_INTERVAL_S 5.0

struct brk_ratelimit {
	double last;
	unsigned long skipped;
};

/* One node a message is sent to in one attempt. */
struct brk_target {
	struct brk_msg *msg;
	char *node_id;
	char *address;
	char *queue; /* NULL for a broadcast node */
	bool https;
	bool no_spread; /* the node runs handler threads (cmi_http_post.no_spread) */
	bool done;
	bool ok;
	struct cmi_http_result res;
};

/*
 * A published message through its life: the control thread resolves its
 * targets, the loop thread delivers it and keeps it in its topic's backlog
 * until every node of the topic has it. One thread owns it at a time; the
 * queues between them hand it over.
 */
struct brk_msg {
	struct brk_msg *next;
	struct cmicro_broker *broker;
	char *topic;
	char *json;
	size_t len;
	struct cmicro_publication *pub; /* until the first attempt is reported */
	int attempts;
	bool retry;                     /* this attempt comes from the backlog */
	bool ever_delivered;
	char **got_nodes;               /* broadcast nodes that have it */
	size_t n_got_nodes;
	char **got_queues;              /* queue groups that have it */
	size_t n_got_queues;
	struct brk_target *targets;
	size_t n_targets;
	size_t n_done;
	char resolve_error[256];        /* why no target could be looked up */
	char *id;                       /* the Micro-Id header inside json */
	long long outbox_seq;           /* its outbox row, or 0 without an outbox */
	bool got_changed;               /* got_nodes or got_queues grew this attempt */
};

void cmi_brk_msg_free(struct brk_msg *m);
/* Records in the outbox, while an attempt is under way, every node that has
 * responded to m with 2xx (loop thread). */
void cmi_brk_outbox_target_ok(struct cmicro_broker *b, struct brk_msg *m);
/* Frees the targets of m's last attempt (the nodes that have it stay). */
void cmi_brk_clear_targets(struct brk_msg *m);

/* A subscription; referenced by its owner and, while subscribed, by the
 * broker. Fields below the lock comment are guarded by broker->lock. */
struct cmicro_subscription {
	atomic_int refs;
	char *topic;
	char *queue;   /* NULL for broadcast */
	char *node_id;
	char *address;
	cmicro_handler_fn fn;
	void *user;
	struct cmicro_service *svc; /* what is registered */

	/* Guarded by broker->lock. */
	struct cmicro_broker *broker; /* NULL once unsubscribed */
	struct cmicro_subscription *next;      /* in broker->subs */
	struct cmicro_subscription *next_run;  /* in broker->run_head */
	struct brk_job *jobs_head, *jobs_tail;
	size_t queued;
	bool scheduled; /* in the run queue or being run */
	bool running;
	pthread_t runner;
	struct brk_ratelimit rl_error; /* used by the one thread running it */

	/* Serialises the registry calls that use svc, and its replacement. */
	pthread_mutex_t reg_lock;
	unsigned meta_gen; /* broker->meta_gen that svc's metadata was built at */
	struct cmi_dedup *dedup;       /* NULL unless the broker de-duplicates */
};

struct cmicro_publication {
	atomic_int refs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	struct cmicro_publish_result result;
	cmicro_publish_fn fn;
	void *user;
};

struct brk_counters {
	atomic_uint_least64_t published, delivered, failed, backlogged, retried, dropped, backlog;
	atomic_uint_least64_t received, handler_errors, rejected, duplicates;
};

struct cmicro_broker {
	struct cmicro_broker_opts opts; /* defaults applied; address owned */
	char *address_conf;
	char id[40];
	struct cmicro_registry *reg;
	struct cmi_registry_cache *cache;
	struct cmicro_tls_config *tls;   /* held: opts.tls, or from the environment */
	bool serve_tls;
	struct brk_counters stats;

	/* Guards everything below, and the subscription fields it names. */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* workers, control thread, flush, unsubscribe */
	bool connected;
	bool stopping;
	char *address;      /* the bound "host:port" */
	char *advertised;   /* host registered for nodes */
	struct cmicro_subscription *subs;
	struct cmicro_subscription *run_head, *run_tail;
	struct brk_msg *ctl_head, *ctl_tail; /* messages to resolve */
	bool ctl_running;
	bool ctl_stop;
	struct brk_msg *send_head, *send_tail; /* resolved, for the loop */
	uint64_t pending; /* published messages not yet delivered or dropped */

	/* Threads and loop objects, created by connect. */
	pthread_t loop_thread, ctl_thread;
	/* The I/O loop's polling counters (loop thread; read after it ends). */
	struct cmi_http_loop_stats loop_stats;
	pthread_t *workers;
	int n_workers;
	/* The stopped handler threads' pool, freed once the I/O loop stopped:
	 * the loop may still signal its condition variable (workers.c). */
	void *workers_retired;
	struct event_base *base;
	struct event *send_ev;
	/* Wakes a handler thread once the I/O thread has queued every request
	 * of what it read, and the condition variable to signal (loop thread). */
	struct event *wake_ev;
	pthread_cond_t *wake_pending;
	struct cmi_http_server *server;
	struct cmi_http_client *client;
	struct cmicro_tls_context *server_ctx, *client_ctx;
	/* Guarded by lock: a reload rewrites them while subscriptions read them. */
	char cert_fingerprint[100]; /* SHA-256 of the served certificate, "AB:CD:..." */
	char cert_not_after[32];    /* its expiry, RFC 3339 UTC */
	unsigned meta_gen;          /* bumped when either changes */
	bool renew_now;             /* the control thread renews at once */

	/* Metrics and expiry monitoring (metrics.c, monitor.c). */
	struct cmi_brk_metrics *metrics;
	bool metrics_on;         /* GET /metrics on the broker's listener */
	char *metrics_conf;      /* "host:port" of the separate listener, or NULL */
	char *metrics_address;   /* its bound "host:port" once connected */
	int expiry_warn_days;
	struct cmi_http_server *metrics_server;
	struct event *expiry_ev;
	struct event *reload_ev; /* polls the TLS files (monitor.c) */
	uint64_t reload_seen;

	/* Durable outbox (outbox.c) and duplicate dropping, fixed at creation. */
	struct cmi_outbox *outbox;  /* NULL without one */
	char *outbox_path;
	bool dedup;
	struct brk_ratelimit rl_outbox;

	/* Loop thread only. */
	struct brk_topic *topics;
	struct brk_logged *logged;
	struct brk_ratelimit rl_drop;
	bool closing;
	size_t outbox_kept; /* messages left in the outbox by this disconnect */
};

/* address.c */
#define CMI_BRK_ID_SIZE 37 /* a UUID string and its NUL */
/* Writes a random version 4 UUID. */
int cmi_brk_new_id(char *buf, size_t size);
/* Writes a version 4 UUID for a message id: unique within the process and
 * random across processes, at a fraction of the cost of cmi_brk_new_id. */
int cmi_brk_message_id(char out[CMI_BRK_ID_SIZE]);
/* True for "", "0.0.0.0", "::" and NULL: listening on every interface. */
bool cmi_brk_host_is_any(const char *host);
int cmi_brk_advertised_host(const char *listen_host, char *out, size_t size);
int cmi_brk_local_ips(char ***ips, size_t *n);
void cmi_brk_free_strings(char **list, size_t n);
int cmi_brk_join_host_port(const char *host, int port, char *out, size_t size);

/* Logs how many lines the limiter held back (if any), so that a burst that
 * ends is accounted for; what names them ("dropped messages"). */
void cmi_brk_log_flush(struct brk_ratelimit *rl, enum cmicro_log_level level, const char *msg_id,
		       const char *what);

/* Logs through a rate limiter; returns without logging inside the interval. */
void cmi_brk_log_limited(struct brk_ratelimit *rl, enum cmicro_log_level level,
			 const char *msg_id, const char *fmt, ...) CMI_PRINTF(4, 5);

/* One incoming message and the handlers it still waits for; the HTTP reply
 * goes out when the last one has finished. */
struct brk_delivery {
	struct cmicro_broker *broker;
	atomic_int remaining;
	atomic_int failed;   /* handlers that returned an error */
	atomic_int closed;   /* handlers that never ran: the subscription closed */
	struct cmicro_message *msg;
	struct cmi_http_request *req;
	char *topic;
};

struct brk_job {
	struct brk_job *next;
	struct brk_delivery *d;
};

/* Records one handler's outcome (0 success, > 0 handler error, < 0 never ran
 * because the subscription closed) and replies once the last is in. */
void cmi_brk_delivery_done(struct brk_delivery *d, int outcome);

int cmi_brk_wait(pthread_cond_t *cond, pthread_mutex_t *mutex, const bool *flag, int timeout_ms);

/* metrics.c: per-topic counters for the metrics text. */
enum cmi_metric {
	CMI_METRIC_PUBLISHED = 0,
	CMI_METRIC_DELIVERED,
	CMI_METRIC_FAILED,
	CMI_METRIC_BACKLOGGED,
	CMI_METRIC_DROPPED,
	CMI_METRIC_COUNT
};

/* Counts one event of topic; safe from any thread. The broker's global
 * counters (struct brk_counters) are kept separately by their callers. */
void cmi_brk_metrics_count(struct cmicro_broker *b, const char *topic, enum cmi_metric which);

/* Adds delta to the backlog depth of topic (negative when messages leave). */
void cmi_brk_metrics_backlog(struct cmicro_broker *b, const char *topic, int delta);

/* Counts one failed registry request (register, deregister, look-up). */
void cmi_brk_metrics_registry_error(struct cmicro_broker *b);

/* selfcheck.c */
/* Days before expiry that start warnings: MICRO_TLS_EXPIRY_WARN_DAYS or 30;
 * -1 with an error set for an invalid value. */
int cmi_brk_expiry_warn_days(void);
/* monitor.c: seconds between checks of the TLS files
 * (MICRO_TLS_RELOAD_INTERVAL, 0 for never); -1 with an error set for an
 * invalid value. */
int cmi_brk_reload_interval(void);

/* The default and the largest maximum polling window of the I/O thread,
 * in microseconds (busy_poll_us). */
#define CMI_BRK_BUSY_POLL_US 200
#define CMI_BRK_BUSY_POLL_MAX_US 10000

/* Parses a MICRO_BROKER_BUSY_POLL_US value: decimal digits from 0 to
 * CMI_BRK_BUSY_POLL_MAX_US. Sets *us to the window, or -1 for 0 (off).
 * Returns 0, or CMICRO_ECONFIG naming the value and the fix. */
int cmi_brk_parse_busy_poll(const char *text, int *us);
/* Records the served certificate's facts and logs its problems. */
void cmi_brk_self_check(struct cmicro_broker *b);

/* subscribe.c and workers.c */
void cmi_brk_on_request(void *user, struct cmi_http_request *req);
/* Registers (renews) sub, with its metadata rebuilt first when the served
 * certificate changed since it was built. Does nothing for a subscription
 * that was unsubscribed, also when that happens concurrently. */
int cmi_brk_sub_renew(struct cmicro_broker *b, struct cmicro_subscription *sub);
int cmi_brk_workers_start(struct cmicro_broker *b);
void cmi_brk_workers_stop(struct cmicro_broker *b);
/* Frees the pool of the stopped handler threads; call once the I/O loop
 * has stopped. */
void cmi_brk_workers_release(struct cmicro_broker *b);
/* Runs sub's handler for d on the calling thread, the I/O thread when the
 * broker runs handlers inline (broker->lock not held). */
void cmi_brk_run_inline(struct cmicro_broker *b, struct cmicro_subscription *sub,
			struct brk_delivery *d);
/* Queues job for sub (b->lock held; the caller checked the queue's room).
 * When an idle handler thread must take it, sets *wake to the condition
 * variable to signal once the caller has released b->lock, which stays
 * valid until cmi_brk_workers_release. */
void cmi_brk_enqueue(struct cmicro_broker *b, struct cmicro_subscription *sub,
		     struct brk_job *job, pthread_cond_t **wake);
/* Signals the condition variable that the last cmi_brk_enqueue of this pass
 * of the loop returned (wake_ev). */
void cmi_brk_wake_cb(evutil_socket_t fd, short what, void *arg);
void cmi_brk_unsubscribe_all(struct cmicro_broker *b);
void cmi_brk_sub_release(struct cmicro_subscription *sub);

/* publish.c and deliver.c */
int cmi_brk_ctl_start(struct cmicro_broker *b);
void cmi_brk_ctl_stop(struct cmicro_broker *b);
void cmi_brk_send_cb(evutil_socket_t fd, short what, void *arg);
void cmi_brk_loop_shutdown(struct cmicro_broker *b);
/* Hands m to the control thread for (re)resolution (takes the lock). */
void cmi_brk_ctl_push(struct cmicro_broker *b, struct brk_msg *m);
/* Ends m: reports a pending publication with err, counts a drop, wakes
 * flush, frees it. */
void cmi_brk_msg_finish(struct cmicro_broker *b, struct brk_msg *m, int err, bool dropped);
/* Drops m with a log line saying why; counts it. */
void cmi_brk_drop(struct cmicro_broker *b, struct brk_msg *m, const char *why);
/* Handles the outcome of an attempt once every target has responded (loop thread). */
void cmi_brk_attempt_done(struct cmicro_broker *b, struct brk_msg *m);
/* Reports the first attempt's outcome to the publication and releases it. */
void cmi_brk_pub_report(struct brk_msg *m, int err, bool backlogged);

#endif
