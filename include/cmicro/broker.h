/*
 * The HTTP broker: publish and subscribe with go-micro's HTTP broker wire
 * protocol, so C and Go (go-micro v5) services exchange messages through one
 * registry.
 *
 * Threading model. Each connected broker runs three kinds of threads:
 *  - one I/O thread runs a libevent loop with the HTTP server that receives
 *    messages, the HTTP client that delivers them, and the retry timers;
 *  - one control thread looks up subscriber nodes in the registry and renews
 *    registrations, because registry requests may block;
 *  - handler threads (opts.handler_threads) run subscription handlers, so a
 *    slow or failing handler stalls neither I/O, publishing nor other
 *    subscriptions. With opts.inline_handlers the I/O thread runs them
 *    instead, and no handler thread starts.
 * Every public function is thread-safe, except that a broker must not be
 * freed while another thread still calls it.
 *
 * Ordering. The messages of one subscription are handled one at a time, in
 * the order their requests arrived; different subscriptions run in
 * parallel. A message sent again from the backlog can arrive after newer
 * messages.
 *
 * Delivery guarantees. A message is delivered when every broadcast node
 * of its topic and one member of every queue group of its topic, as listed
 * in the registry at its last attempt, responded with 2xx. Delivery is at least
 * once: a message whose delivery timed out may still have reached its
 * handler, and is sent again with the same Micro-Id header.
 *
 * Without an outbox, undelivered messages wait in an in-memory backlog
 * and are dropped (counted in stats.dropped and logged as BROKER-DROPPED)
 * when: the topic's backlog holds backlog_max messages and a newer one
 * fails (the oldest goes); retry_max_attempts attempts have failed; a node
 * responded 400 or 413, which no retry changes; the broker disconnects or
 * the process ends. A process that ends loses its backlog.
 *
 * With an outbox (outbox_path or MICRO_BROKER_OUTBOX), publish first
 * stores the envelope in an SQLite file and commits it, synced to disk
 * (SQLite synchronous=FULL), so once publish has returned 0 the message
 * survives the end of the process, SIGKILL included. The row is removed when the
 * message is delivered, or when a node responded 400 or 413 (then it is
 * dropped, counted and logged). It is retried with backoff, without the
 * retry_max_attempts and backlog_max limits, and a disconnect leaves it in
 * the file: the next connect of a broker with the same outbox sends every
 * stored message again, skipping the nodes and queue groups recorded as
 * having it. The file is created with mode 0600 (an existing outbox is
 * changed to 0600; an empty file becomes an outbox, and any other file is
 * rejected and left unchanged) and the database file itself is locked
 * (flock) for the broker's lifetime, so a second process or broker opening
 * it under any name (a symbolic or hard link) fails with CMICRO_EBUSY.
 * When the file holds outbox_max_messages messages or outbox_max_bytes
 * bytes, publish fails with CMICRO_ELIMIT and nothing older is dropped;
 * when it cannot be written (disk full, read-only), publish fails with
 * CMICRO_EIO. In both cases the message was not stored and is not sent. A
 * stored row that is invalid (the file was edited or damaged) is logged as
 * BROKER-OUTBOX-BAD-ROW, kept and not sent.
 *
 * De-duplication. With dedup (or MICRO_BROKER_DEDUP=true) each
 * subscription remembers the Micro-Id of the last dedup_window messages
 * its handler accepted, and responds 200 to a repeat without calling the
 * handler again (counted in stats.duplicates). The window lives in
 * memory: a restarted subscriber handles a repeat again.
 */
#ifndef CMICRO_BROKER_H
#define CMICRO_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmicro/common.h>
#include <cmicro/registry.h>
#include <cmicro/tls.h>

#ifdef __cplusplus
extern "C" {
#endif

/* go-micro's registry names for broker subscriptions. */
#define CMICRO_BROKER_SERVICE "micro.http.broker"
#define CMICRO_BROKER_BROADCAST "ff.http.broadcast"

/* A message: headers (case-sensitive keys, as Go's map[string]string) and
 * a body of bytes. Opaque; released with cmicro_message_free. */
struct cmicro_message;

CMICRO_API CMICRO_NODISCARD int cmicro_message_new(struct cmicro_message **out);
CMICRO_API void cmicro_message_free(struct cmicro_message *msg);
CMICRO_API CMICRO_NODISCARD int cmicro_message_dup(const struct cmicro_message *msg,
						   struct cmicro_message **out);

/* Sets (replaces) a header; key and value are copied and must be valid
 * UTF-8, because they travel as JSON strings. A key or value containing CR
 * or LF fails with CMICRO_EINVAL naming the header; a subscriber
 * responds 400 to a received message with such a header. */
CMICRO_API CMICRO_NODISCARD int cmicro_message_set_header(struct cmicro_message *msg,
							  const char *key, const char *value);
/* Returns a header value (borrowed), or NULL. */
CMICRO_API const char *cmicro_message_get_header(const struct cmicro_message *msg,
						 const char *key);
/* Headers in key order: count, then key and value of entry i (borrowed). */
CMICRO_API size_t cmicro_message_header_count(const struct cmicro_message *msg);
CMICRO_API const char *cmicro_message_header_key(const struct cmicro_message *msg, size_t i);
CMICRO_API const char *cmicro_message_header_value(const struct cmicro_message *msg, size_t i);

/* Replaces the body with a copy of len bytes of data (any bytes). */
CMICRO_API CMICRO_NODISCARD int cmicro_message_set_body(struct cmicro_message *msg,
							const void *data, size_t len);
/* Returns the body (borrowed; NUL-terminated for convenience, the NUL not
 * counted in *len) and its length. Never NULL. */
CMICRO_API const void *cmicro_message_body(const struct cmicro_message *msg, size_t *len);

/* Broker settings. Zero (or NULL) in any field means its default. */
struct cmicro_broker_opts {
	/* "host:port" to listen on; NULL uses MICRO_BROKER_ADDRESS, else
	 * "127.0.0.1:0" (port 0: any free port). A host of "", "0.0.0.0" or
	 * "::" listens on every interface. */
	const char *address;
	/* Registry for subscriptions and publishing (held); NULL uses
	 * cmicro_registry_from_env(). */
	struct cmicro_registry *registry;
	/* TLS configuration (held). With one, the broker serves HTTPS and
	 * publishes with it. NULL serves plain HTTP unless secure is set, and
	 * publishes with cmicro_tls_config_from_env(). */
	struct cmicro_tls_config *tls;
	/* Serve HTTPS even without tls (go-micro's Secure option); the server
	 * then uses cmicro_tls_config_from_env(). */
	bool secure;
	/* Largest request body accepted by the subscriber side; default 4 MiB.
	 * Larger requests get 413. */
	size_t max_body_bytes;
	/* Incoming connections served at once; default 1024. More are closed
	 * right after accept. */
	int max_connections;
	/* Time a client has to send one complete request, in milliseconds;
	 * default 10000. Slower clients are disconnected. */
	int read_timeout_ms;
	/* Time one delivery may take (connect, TLS handshake, request and
	 * response), in milliseconds; default 10000. */
	int delivery_timeout_ms;
	/* Threads running handlers; default 4. */
	int handler_threads;
	/* Messages waiting for the handler of one subscription; default 1024.
	 * More get 503, so the publisher keeps them in its backlog. */
	int handler_queue_max;
	/* Run handlers on the I/O thread as their requests arrive, instead of
	 * on handler threads; also MICRO_BROKER_INLINE_HANDLERS=true. A
	 * message then costs no switch between threads, which cut a
	 * subscriber's CPU per message by about a third (docs/benchmarks.md,
	 * 64 B messages, 8 in flight). But a handler that blocks stalls every
	 * delivery and publish of the broker, so use it for handlers that
	 * return quickly. An inline handler may publish and unsubscribe (which
	 * waits for the registry on the I/O thread). It must not call
	 * cmicro_publication_wait, cmicro_broker_flush,
	 * cmicro_broker_disconnect or cmicro_broker_free, which wait for the
	 * I/O thread. handler_threads and handler_queue_max are then unused. */
	bool inline_handlers;
	/* Undelivered messages kept per topic for retry; default 64, and at
	 * least 64 when set. The oldest is dropped (and counted) past it. */
	int backlog_max;
	/* Delay before the first retry of a backlogged message, doubled after
	 * each failed retry up to retry_max_ms; defaults 500 and 30000. */
	int retry_initial_ms;
	int retry_max_ms;
	/* Delivery attempts of one message before it is dropped (and
	 * counted); default 20. */
	int retry_max_attempts;
	/* Registration time-to-live and renewal period, in seconds; defaults
	 * 60 and 30, as go-micro's. */
	int register_ttl_s;
	int register_interval_s;
	/* In secure mode (verification on) a node registered with
	 * secure=false is never sent a message in plain HTTP: the delivery
	 * fails with reason CMICRO_TLS_REASON_PLAINTEXT and the message stays
	 * in the backlog. true (or MICRO_TLS_ALLOW_PLAINTEXT=true) sends to
	 * such nodes anyway. Audit mode always sends and reports the node. */
	bool allow_plaintext;
	/* Serve GET /metrics (Prometheus text format) on the broker's own
	 * listener, over HTTPS when it serves TLS; also
	 * MICRO_BROKER_METRICS=true. */
	bool metrics;
	/* "host:port" of a separate plain-HTTP listener serving only GET
	 * /metrics (port 0: any free port); NULL uses MICRO_METRICS_ADDRESS,
	 * and no separate listener runs when that is unset too. */
	const char *metrics_address;
	/* Days before a certificate's expiry at which warnings start (then
	 * again at 7 days and 1 day); 1 to 3650, 0 uses
	 * MICRO_TLS_EXPIRY_WARN_DAYS, else 30. */
	int expiry_warn_days;
	/* Path of a durable outbox file (see "Delivery guarantees" above);
	 * NULL uses MICRO_BROKER_OUTBOX, and no outbox is kept when that is
	 * unset too. */
	const char *outbox_path;
	/* Limits of the outbox: messages and envelope bytes (JSON, body in
	 * base64) held at once; defaults 10000 and 64 MiB. Past either,
	 * publish fails with CMICRO_ELIMIT. */
	size_t outbox_max_messages;
	size_t outbox_max_bytes;
	/* Drop messages whose Micro-Id a subscription has handled recently:
	 * the broker responds 200 to them without calling the handler again, and
	 * counted in duplicates. Also MICRO_BROKER_DEDUP=true. */
	bool dedup;
	/* Ids remembered per subscription when dedup is on; default 4096, at
	 * most 16777216. Each costs about 28 bytes. */
	int dedup_window;
	/* Maximum time, in microseconds, that the I/O thread polls for more
	 * socket activity before it sleeps; 1 to 10000, 0 uses
	 * MICRO_BROKER_BUSY_POLL_US, else 200, and -1 turns polling off. The
	 * window adapts to the traffic: it grows while the thread is woken
	 * soon after it sleeps and shrinks when it sleeps long, so a broker
	 * that gets a message now and then stops polling. Where waking a
	 * sleeping thread is slow, as on virtual machines, polling more than
	 * doubled the rate at 8 messages in flight for about the same CPU
	 * per message (docs/benchmarks.md). It costs CPU while the thread
	 * polls. */
	int busy_poll_us;
};

/* Fills opts with zeros, which means every default. */
CMICRO_API void cmicro_broker_opts_init(struct cmicro_broker_opts *opts);

struct cmicro_broker;

/* Creates a broker (not yet listening). opts may be NULL for every
 * default. Fails with CMICRO_EINVAL naming a bad option, or with the error
 * of cmicro_registry_from_env / cmicro_tls_config_from_env. */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_new(const struct cmicro_broker_opts *opts,
						  struct cmicro_broker **out);

/* Disconnects (see cmicro_broker_disconnect) and releases the broker.
 * Subscriptions stay valid objects until freed, but are unsubscribed. */
CMICRO_API void cmicro_broker_free(struct cmicro_broker *b);

/* Starts listening and the broker's threads. Without a certificate of its
 * own, a TLS broker creates a self-signed one for its listen host, or for
 * every local IP address when it listens on all interfaces. Connecting a
 * connected broker does nothing. */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_connect(struct cmicro_broker *b);

/* Unsubscribes (deregistering) every subscription, stops listening and
 * stops the threads. Messages still in flight or in the backlog are
 * dropped and counted; call cmicro_broker_flush first to wait for them. */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_disconnect(struct cmicro_broker *b);

/* The listen address: "host:port" with the real port once connected, the
 * configured one before. Borrowed; valid until the next connect,
 * disconnect or free. */
CMICRO_API const char *cmicro_broker_address(const struct cmicro_broker *b);

/* The broker id, a random UUID as go-micro's; node ids are
 * "<topic>-<broker id>". Borrowed; valid until free. */
CMICRO_API const char *cmicro_broker_id(const struct cmicro_broker *b);

/* Whether subscribers are served over TLS (registered as secure=true). */
CMICRO_API bool cmicro_broker_is_secure(const struct cmicro_broker *b);

/*
 * Receives one message. Runs on a handler thread; msg is borrowed for the
 * call. Returning non-zero makes the request fail with 500, so the publisher
 * counts a failed delivery and retries it from its backlog.
 */
typedef int (*cmicro_handler_fn)(void *user, const char *topic, const struct cmicro_message *msg);

struct cmicro_subscription;

/* Checks topic against the rule below without a broker, so that a program
 * can reject a bad topic before it connects. Returns 0, or CMICRO_EINVAL
 * with a message that names the problem (cmicro_last_errmsg). */
CMICRO_API CMICRO_NODISCARD int cmicro_topic_check(const char *topic);

/*
 * Topics, for publish and subscribe: 1 to 255 bytes of UTF-8 without
 * spaces, ASCII control characters (0x00 to 0x1F, 0x7F) or C1 controls
 * (U+0080 to U+009F). Any other topic fails with CMICRO_EINVAL naming the
 * problem. Letters, digits and punctuation such as ".", "-", "_", "/" and
 * ":" are allowed.
 *
 * Subscribes to topic and registers it: service "micro.http.broker" with
 * version queue, or "ff.http.broadcast" when queue is NULL or "". Every
 * broadcast subscription receives each message; one member of a queue
 * group, picked at random per message, receives it. The broker must be
 * connected. Free the result with cmicro_subscription_free.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_subscribe(struct cmicro_broker *b,
							const char *topic, const char *queue,
							cmicro_handler_fn fn, void *user,
							struct cmicro_subscription **out);

/* Deregisters the subscription and stops its handler: returns once no call
 * of it runs any more (at once when called from the handler itself).
 * Messages still waiting get 503. Unsubscribing twice does nothing. */
CMICRO_API CMICRO_NODISCARD int cmicro_subscription_unsubscribe(struct cmicro_subscription *sub);

/* Unsubscribes when still subscribed, then releases the object. */
CMICRO_API void cmicro_subscription_free(struct cmicro_subscription *sub);

/* Borrowed strings, valid until the subscription is freed. */
CMICRO_API const char *cmicro_subscription_topic(const struct cmicro_subscription *sub);
/* The queue name, or NULL for a broadcast subscription. */
CMICRO_API const char *cmicro_subscription_queue(const struct cmicro_subscription *sub);
CMICRO_API const char *cmicro_subscription_node_id(const struct cmicro_subscription *sub);
/* The address registered for the node, "host:port". */
CMICRO_API const char *cmicro_subscription_address(const struct cmicro_subscription *sub);

/* The outcome of delivering one message to one node. */
struct cmicro_delivery {
	char *node_id;
	char *address;
	bool ok;                       /* the node responded with 2xx */
	int err;                       /* 0, or CMICRO_ECONNECT, CMICRO_EVERIFY, ... */
	int http_status;               /* 0 when no response arrived */
	enum cmicro_tls_reason tls_reason; /* why TLS verification rejected the node */
	char *message;                 /* "" when ok; else the cause and the fix */
};

/*
 * The outcome of the first delivery attempt of a published message. err is
 * 0 when at least one node received it, CMICRO_ENOTFOUND when the registry
 * has no subscriber of the topic, else the error of the first failure.
 * backlogged is true when the message was kept for retry, because a target
 * failed or none existed yet.
 */
struct cmicro_publish_result {
	int err;
	size_t targets;   /* nodes the message was sent to */
	size_t received;  /* nodes that responded with 2xx */
	bool backlogged;
	struct cmicro_delivery *deliveries; /* one per target */
	size_t n_deliveries;
};

/* Receives a publish result, on the broker's I/O thread: it must return
 * quickly and must not disconnect or free the broker. It may publish: the
 * new message leaves after the callback returns, so a callback that
 * publishes the next message keeps a fixed number in flight. result is
 * borrowed for the call. */
typedef void (*cmicro_publish_fn)(void *user, const struct cmicro_publish_result *result);

/* A handle on one published message; released with cmicro_publication_free. */
struct cmicro_publication;

/*
 * Publishes msg (copied) to topic and returns at once: encoding happens now,
 * the registry look-up and the deliveries on the broker's threads, so this
 * never waits on the network. With an outbox it waits for the message to be
 * committed to the file. The message carries a Micro-Id header: the one msg
 * has (an empty one fails with CMICRO_EINVAL), else a UUID version 4 that
 * no other message of the process carries. out may be NULL when the
 * caller does not need the result. The broker must be connected.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_publish(struct cmicro_broker *b, const char *topic,
						      const struct cmicro_message *msg,
						      struct cmicro_publication **out);

/* As cmicro_broker_publish, and calls fn with the result instead. */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_publish_notify(struct cmicro_broker *b,
							     const char *topic,
							     const struct cmicro_message *msg,
							     cmicro_publish_fn fn, void *user);

/* Waits up to timeout_ms (negative: without limit) for the result, which
 * stays owned by pub. Returns CMICRO_ETIMEDOUT when it is not there yet. */
CMICRO_API CMICRO_NODISCARD int
cmicro_publication_wait(struct cmicro_publication *pub, int timeout_ms,
			const struct cmicro_publish_result **result);

/* Releases the handle; the delivery itself goes on. */
CMICRO_API void cmicro_publication_free(struct cmicro_publication *pub);

/* Waits up to timeout_ms (negative: without limit) until every published
 * message is delivered or dropped, backlog included. Returns
 * CMICRO_ETIMEDOUT when some are still pending. */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_flush(struct cmicro_broker *b, int timeout_ms);

/* Counters since the broker was created. Per-node figures count each node
 * of a broadcast separately. */
struct cmicro_broker_stats {
	uint64_t published;   /* messages accepted by publish */
	uint64_t delivered;   /* deliveries that got a 2xx response */
	uint64_t failed;      /* deliveries that failed */
	uint64_t backlogged;  /* times a message entered the backlog */
	uint64_t retried;     /* delivery attempts made from the backlog */
	uint64_t dropped;     /* messages given up: backlog full, attempts used up, disconnect */
	uint64_t backlog;     /* messages in the backlog now */
	uint64_t received;    /* requests that reached a handler */
	uint64_t handler_errors; /* handler calls that returned an error */
	uint64_t rejected;    /* requests answered 4xx or 503 by this subscriber side */
	uint64_t duplicates;  /* requests given 200 without a handler call (dedup) */
	uint64_t outbox;      /* messages in the outbox now, this broker's and earlier ones */
};

CMICRO_API void cmicro_broker_get_stats(const struct cmicro_broker *b,
					struct cmicro_broker_stats *stats);

/*
 * Writes the broker's TLS report as one JSON object into *json (free with
 * cmicro_free): broker_id, address, mode (off, audit or secure), verified
 * (verifications passed), reasons (failures per reason) and findings, one
 * per distinct (peer, reason) with address, node_id, peer, side ("server"
 * for subscribers this broker published to, "client" for clients of its
 * listener), reason, message, count, first_seen and last_seen (Unix
 * seconds). The listener serves the same JSON on GET /debug/tls.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_tls_report(const struct cmicro_broker *b,
							 char **json);

/*
 * Writes the broker's metrics in the Prometheus text exposition format
 * (version 0.0.4) into *text (free with cmicro_free). The families are TLS
 * verifications by outcome and reason, messages per topic (published,
 * delivered, failed, backlogged, dropped), backlog depth per topic,
 * registry errors, and the seconds until expiry of the own, CA and peer
 * certificates. At most 256 topics get series of their own, and the rest
 * are counted under topic="_other".
 */
CMICRO_API CMICRO_NODISCARD int cmicro_broker_metrics_text(const struct cmicro_broker *b,
							   char **text);

/* The bound "host:port" of the separate metrics listener once connected,
 * or NULL when none runs. Borrowed; valid until the next connect,
 * disconnect or free. */
CMICRO_API const char *cmicro_broker_metrics_address(const struct cmicro_broker *b);

#ifdef __cplusplus
}
#endif

#endif
