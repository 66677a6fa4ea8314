/*
 * Internal interface of the etcd registry: the endpoint list, a blocking
 * client for etcd's v3 JSON gateway, the parsers of its responses, and the
 * watch stream.
 *
 * The project's HTTP client (http_int.h) is asynchronous, sends only POST
 * requests without extra headers and drops response bodies, while every
 * registry operation is synchronous. So each etcd request runs its own short
 * libevent loop on the calling thread (etcd_client.c), still with evhttp for
 * HTTP and the TLS layer for TLS.
 */
#ifndef CMICRO_REGISTRY_ETCD_INT_H
#define CMICRO_REGISTRY_ETCD_INT_H

#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "registry/registry_int.h"

#define CMI_ETCD_DEFAULT_PORT      2379
#define CMI_ETCD_DEFAULT_ENDPOINT  "127.0.0.1:2379"
#define CMI_ETCD_ENDPOINTS_MAX     16
#define CMI_ETCD_TIMEOUT_MS        5000 /* default for one request, connect included */
/* Largest response body read; a range of every node of a large fleet fits. */
#define CMI_ETCD_RESPONSE_MAX      (64 * 1024 * 1024)
/* Largest message of the watch stream (one batch of events). */
#define CMI_ETCD_WATCH_MESSAGE_MAX (16 * 1024 * 1024)

struct cmi_etcd_endpoint {
	bool https;
	char host[256];
	int port;
	char address[300]; /* "host:port", "[v6]:port" */
	char url[320];     /* "http://host:port", for messages */
};

/*
 * Parses MICRO_REGISTRY_ADDRESS: comma-separated HOST[:PORT], [V6][:PORT] or
 * http(s)://HOST[:PORT], port 2379 when missing. NULL or blank means
 * CMI_ETCD_DEFAULT_ENDPOINT. Errors name the entry and the accepted forms.
 */
int cmi_etcd_parse_endpoints(const char *spec, struct cmi_etcd_endpoint **out, size_t *n);

struct cmi_etcd_client {
	struct cmi_etcd_endpoint *endpoints;
	size_t n_endpoints;
	struct cmicro_tls_context *tls; /* NULL when no endpoint uses https */
	char *username;                 /* NULL without authentication */
	char *password;
	int timeout_ms;
	char *urls; /* every endpoint URL, comma-separated, for messages */

	pthread_mutex_t lock; /* guards token and current */
	char *token;
	size_t current; /* the endpoint that answered last */
};

/* A response body of the gateway (NUL-terminated) and its HTTP status. */
struct cmi_etcd_reply {
	int status;
	char *body;
	size_t len;
};

void cmi_etcd_reply_clear(struct cmi_etcd_reply *reply);

/*
 * Sends one gateway request (POST path with a JSON body) to the current
 * endpoint, failing over to the next ones while an endpoint cannot be
 * reached, and authenticating first when a user name is set. A reply whose
 * status is not 2xx is returned as CMICRO_EIO with etcd's error text.
 * CMICRO_ECONNECT or CMICRO_ETIMEDOUT mean that no endpoint answered; the
 * message names every endpoint and its failure.
 */
int cmi_etcd_call(struct cmi_etcd_client *c, const char *path, const char *body,
		  struct cmi_etcd_reply *reply);

/*
 * One HTTP connection to an endpoint on the caller's event_base, used by
 * cmi_etcd_call and by the watch stream. open never connects; start sends
 * req (owned by evhttp from then on) and connects. explain turns a request
 * that got no response into an error code and a message naming the
 * endpoint; close frees the connection and any request still running,
 * without calling its callback.
 */
struct cmi_etcd_conn {
	const struct cmi_etcd_endpoint *ep;
	struct evhttp_connection *evcon;
	struct bufferevent *bev; /* the TLS bufferevent; NULL for http */
	bufferevent_event_cb evhttp_event_cb;
	void *evhttp_event_arg;
	int evhttp_error; /* enum evhttp_request_error, or -1 */
	int err;          /* a classified connect or TLS failure, or 0 */
	char failure[512];
	/* Called once when the request ends; req is NULL or has status 0
	 * when no response arrived. */
	void (*done)(struct cmi_etcd_conn *conn, struct evhttp_request *req);
	void *user;
};

int cmi_etcd_conn_open(struct cmi_etcd_client *c, const struct cmi_etcd_endpoint *ep,
		       struct event_base *base, int timeout_ms, struct cmi_etcd_conn *conn);
/* Builds a POST of body, with the Authorization token when one is set,
 * whose callbacks (also a chunked one set later) receive conn. */
struct evhttp_request *cmi_etcd_request_new(struct cmi_etcd_client *c, struct cmi_etcd_conn *conn,
					    const char *body);
int cmi_etcd_conn_start(struct cmi_etcd_conn *conn, struct evhttp_request *req, const char *path);
int cmi_etcd_conn_explain(struct cmi_etcd_conn *conn, char *buf, size_t size);
void cmi_etcd_conn_close(struct cmi_etcd_conn *conn);

/* Authenticates when a user name is set and no token is held (or renew). */
int cmi_etcd_ensure_token(struct cmi_etcd_client *c, bool renew);

/* True for the errors of cmi_etcd_call that mean "etcd is unreachable". */
bool cmi_etcd_unreachable(int rc);

/* Builds a client from opts (NULL: defaults) and the environment
 * (etcd_open.c). */
int cmi_etcd_client_new(const struct cmicro_etcd_opts *opts, struct cmi_etcd_client **out);
/* Checks that some endpoint responds and that the credentials work. */
int cmi_etcd_probe(struct cmi_etcd_client *c);
void cmi_etcd_client_free(struct cmi_etcd_client *c);

/* ---- JSON of the gateway (etcd_json.c) ---- */

/* Base64 of the gateway's "bytes" fields. decode accepts only padded
 * standard base64 and returns a NUL-terminated copy. */
char *cmi_etcd_b64_encode(const void *data, size_t len);
int cmi_etcd_b64_decode(const char *text, char **out, size_t *len);

/* Returns the end of the range of keys starting with prefix: the prefix with
 * its last byte incremented, as etcd's clientv3.GetPrefixRangeEnd. */
char *cmi_etcd_prefix_end(const char *prefix);

/* Request bodies. Each returns a JSON string to free with free, or NULL
 * after setting a detail message. */
char *cmi_etcd_body_range(const char *prefix, bool keys_only_count);
char *cmi_etcd_body_put(const char *key, const char *value, int64_t lease);
char *cmi_etcd_body_delete(const char *key);
char *cmi_etcd_body_lease(const char *field, int64_t value);
char *cmi_etcd_body_watch(const char *prefix, int64_t start_revision);

/* One key-value pair of a range response or a watch event, decoded. */
struct cmi_etcd_kv {
	char *key;
	char *value; /* NUL-terminated; NULL when absent */
	size_t value_len;
	int64_t version;
};

void cmi_etcd_kv_clear(struct cmi_etcd_kv *kv);

/* Reads etcd's error text of a failed request ("error" or "message"). */
void cmi_etcd_error_text(const char *body, size_t len, char *buf, size_t size);

/* Parsers of the gateway's responses. Each fails with CMICRO_EPROTO and a
 * message naming the field when the body is not the expected JSON. */
int cmi_etcd_parse_grant(const char *body, size_t len, int64_t *lease, int64_t *ttl);
int cmi_etcd_parse_keepalive(const char *body, size_t len, int64_t *ttl);
int cmi_etcd_parse_token(const char *body, size_t len, char **token);
int cmi_etcd_parse_range(const char *body, size_t len, int64_t *revision,
			 struct cmi_etcd_kv **kvs, size_t *n);

enum cmi_etcd_event_type { CMI_ETCD_PUT = 0, CMI_ETCD_DELETE = 1 };

struct cmi_etcd_event {
	enum cmi_etcd_event_type type;
	struct cmi_etcd_kv kv;
	struct cmi_etcd_kv prev; /* prev.key NULL when etcd sent no previous value */
};

/* One message of the watch stream. */
struct cmi_etcd_watch_msg {
	int64_t revision;
	bool created;
	bool canceled;
	int64_t compact_revision;
	char cancel_reason[256];
	struct cmi_etcd_event *events;
	size_t n_events;
};

int cmi_etcd_parse_watch(const char *body, size_t len, struct cmi_etcd_watch_msg *msg);
void cmi_etcd_watch_msg_clear(struct cmi_etcd_watch_msg *msg);

/*
 * Decodes a stored value into the single-node service that key names.
 * Returns NULL (with a detail message) when the value is not a service
 * document, or its name or node id does not map to key, as a value that
 * other software put under the prefix would not.
 */
struct cmicro_service *cmi_etcd_kv_service(const struct cmi_etcd_kv *kv);

/* Builds the service of a deleted key from the key alone: its name and node
 * id with each "/" already turned into "-" by the key layout. */
struct cmicro_service *cmi_etcd_key_service(const char *key);

/* ---- watch (etcd_watch.c) ---- */

int cmi_etcd_watch(struct cmicro_registry *reg, struct cmi_etcd_client *client,
		   struct cmicro_registry_watcher *w);

#endif
