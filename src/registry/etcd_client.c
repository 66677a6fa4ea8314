/*
 * A blocking client of etcd's v3 JSON gateway: each request runs a libevent
 * loop of its own on the calling thread, so any thread may call it and
 * calls do not wait for each other. Requests go to the endpoint that served
 * the last one. They fail over to the others, in order, when an endpoint
 * cannot be reached or is not a working v3 gateway (404, 502, 503, 504).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "http/http_server_int.h"
#include "registry/etcd_int.h"

#define ENDPOINT_FORMS "HOST[:PORT], [IPV6][:PORT] or http(s)://HOST[:PORT], separated by commas"

/* ---- endpoints ---- */

static int endpoint_error(const char *spec, const char *item, const char *why)
{
	return cmi_error(CMICRO_ECONFIG,
			 "MICRO_REGISTRY_ADDRESS=\"%.200s\": etcd endpoint \"%.100s\" %s; use "
			 ENDPOINT_FORMS " (port %d when missing)",
			 spec, item, why, CMI_ETCD_DEFAULT_PORT);
}

static int parse_port(const char *spec, const char *item, const char *text, int *port)
{
	long value = 0;

	if (text[0] == '\0' || strlen(text) > 5)
		return endpoint_error(spec, item, "has an invalid port");
	for (const char *p = text; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return endpoint_error(spec, item, "has an invalid port");
		value = value * 10 + (*p - '0');
	}
	if (value < 1 || value > 65535)
		return endpoint_error(spec, item, "has a port outside 1-65535");
	*port = (int)value;
	return 0;
}

/* Splits "host", "host:port", "[v6]" or "[v6]:port" into ep. */
static int parse_host_port(const char *spec, const char *item, char *rest,
			   struct cmi_etcd_endpoint *ep)
{
	char *host = rest;
	char *port = NULL;

	if (rest[0] == '[') {
		char *close = strchr(rest, ']');

		if (close == NULL || (close[1] != '\0' && close[1] != ':'))
			return endpoint_error(spec, item, "has an unclosed IPv6 bracket");
		host = rest + 1;
		*close = '\0';
		port = close[1] == ':' ? close + 2 : NULL;
	} else if (strchr(rest, ':') != NULL) {
		if (strchr(rest, ':') != strrchr(rest, ':'))
			return endpoint_error(spec, item, "is an IPv6 address without brackets");
		port = strchr(rest, ':');
		*port++ = '\0';
	}
	if (host[0] == '\0' || strlen(host) >= sizeof(ep->host))
		return endpoint_error(spec, item, "has no host name");
	cmi_fmt(ep->host, sizeof(ep->host), "%s", host);
	ep->port = CMI_ETCD_DEFAULT_PORT;
	return port != NULL ? parse_port(spec, item, port, &ep->port) : 0;
}

static int parse_endpoint(const char *spec, const char *item, struct cmi_etcd_endpoint *ep)
{
	char rest[512];
	const char *start = item;
	size_t len;
	int rc;

	memset(ep, 0, sizeof(*ep));
	if (strncmp(item, "https://", 8) == 0) {
		ep->https = true;
		start += 8;
	} else if (strncmp(item, "http://", 7) == 0) {
		start += 7;
	} else if (strstr(item, "://") != NULL) {
		return endpoint_error(spec, item, "has an unknown scheme");
	}
	len = strlen(start);
	if (len > 0 && start[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(rest))
		return endpoint_error(spec, item, "is empty or too long");
	memcpy(rest, start, len);
	rest[len] = '\0';
	if (strchr(rest, '/') != NULL || strchr(rest, '@') != NULL)
		return endpoint_error(spec, item, "has a path or user part");

	rc = parse_host_port(spec, item, rest, ep);
	if (rc != 0)
		return rc;
	if (strchr(ep->host, ':') != NULL)
		cmi_fmt(ep->address, sizeof(ep->address), "[%s]:%d", ep->host, ep->port);
	else
		cmi_fmt(ep->address, sizeof(ep->address), "%s:%d", ep->host, ep->port);
	cmi_fmt(ep->url, sizeof(ep->url), "%s://%s", ep->https ? "https" : "http", ep->address);
	return 0;
}

/* Copies the item of spec that starts at *pos, without surrounding blanks. */
static void next_item(const char *spec, size_t *pos, char *item, size_t size)
{
	size_t start = *pos;
	size_t end = start + strcspn(spec + start, ",");

	*pos = spec[end] == ',' ? end + 1 : end;
	while (start < end && isspace((unsigned char)spec[start]))
		start++;
	while (end > start && isspace((unsigned char)spec[end - 1]))
		end--;
	cmi_fmt(item, size, "%.*s", (int)(end - start), spec + start);
}

int cmi_etcd_parse_endpoints(const char *spec, struct cmi_etcd_endpoint **out, size_t *n)
{
	struct cmi_etcd_endpoint *eps;
	size_t pos = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (spec == NULL || spec[strspn(spec, " \t")] == '\0')
		spec = CMI_ETCD_DEFAULT_ENDPOINT;
	eps = cmi_calloc(CMI_ETCD_ENDPOINTS_MAX, sizeof(*eps));
	if (eps == NULL)
		return CMICRO_ENOMEM;
	while (rc == 0 && (pos == 0 || spec[pos - 1] == ',')) {
		char item[600];

		next_item(spec, &pos, item, sizeof(item));
		if (*n == CMI_ETCD_ENDPOINTS_MAX)
			rc = cmi_error(CMICRO_ECONFIG, "MICRO_REGISTRY_ADDRESS lists more than %d etcd "
						       "endpoints; list at most %d",
				       CMI_ETCD_ENDPOINTS_MAX, CMI_ETCD_ENDPOINTS_MAX);
		else
			rc = parse_endpoint(spec, item, &eps[*n]);
		if (rc == 0)
			(*n)++;
	}
	if (rc != 0) {
		free(eps);
		*n = 0;
		return rc;
	}
	*out = eps;
	return 0;
}

/* ---- one connection ---- */

/* Classifies a failed connect or TLS handshake before evhttp resets the
 * connection, which puts the SSL object back into its initial state. */
static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct cmi_etcd_conn *conn = arg;
	SSL *ssl = conn->bev ? bufferevent_openssl_get_ssl(conn->bev) : NULL;

	if (!(what & BEV_EVENT_CONNECTED) && ssl != NULL && !SSL_in_before(ssl) &&
	    conn->err == 0) {
		struct cmicro_tls_verdict v = {0};

		cmi_http_requeue_ssl_errors(conn->bev);
		cmicro_tls_ssl_failure(ssl, &v);
		conn->err = v.reason != CMICRO_TLS_REASON_NONE && v.openssl_code != 0
				    ? CMICRO_EVERIFY
				    : CMICRO_EHANDSHAKE;
		cmi_fmt(conn->failure, sizeof(conn->failure), "TLS handshake failed: %s",
			v.message[0] ? v.message : "the server closed the connection");
	}
	conn->evhttp_event_cb(bev, what, conn->evhttp_event_arg);
}

static int conn_new_tls(struct cmi_etcd_client *c, const struct cmi_etcd_endpoint *ep,
			struct event_base *base, struct bufferevent **out)
{
	SSL *ssl = NULL;
	int rc;

	*out = NULL;
	rc = cmicro_tls_ssl_new(c->tls, ep->host, ep->url, &ssl);
	if (rc != 0)
		return rc;
	*out = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
					      BEV_OPT_CLOSE_ON_FREE);
	if (*out == NULL) {
		SSL_free(ssl);
		return cmi_error(CMICRO_ENOMEM, "out of memory connecting to etcd at %s", ep->url);
	}
	/* HTTP marks the end of a response, so a close without close_notify
	 * is not an error. */
	bufferevent_openssl_set_allow_dirty_shutdown(*out, 1);
	return 0;
}

int cmi_etcd_conn_open(struct cmi_etcd_client *c, const struct cmi_etcd_endpoint *ep,
		       struct event_base *base, int timeout_ms, struct cmi_etcd_conn *conn)
{
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	int rc;

	memset(conn, 0, sizeof(*conn));
	conn->ep = ep;
	conn->evhttp_error = -1;
	if (ep->https) {
		rc = conn_new_tls(c, ep, base, &conn->bev);
		if (rc != 0)
			return rc;
	}
	conn->evcon = evhttp_connection_base_bufferevent_new(base, NULL, conn->bev, ep->host,
							     (ev_uint16_t)ep->port);
	if (conn->evcon == NULL) {
		if (conn->bev != NULL)
			bufferevent_free(conn->bev);
		return cmi_error(CMICRO_ENOMEM, "cannot create a connection to etcd at %s", ep->url);
	}
	evhttp_connection_set_retries(conn->evcon, 0);
	evhttp_connection_set_timeout_tv(conn->evcon, &tv);
	evhttp_connection_set_max_body_size(conn->evcon, CMI_ETCD_RESPONSE_MAX);
	return 0;
}

static void request_error(enum evhttp_request_error error, void *arg)
{
	struct cmi_etcd_conn *conn = arg;

	conn->evhttp_error = (int)error;
}

static void request_done(struct evhttp_request *req, void *arg)
{
	struct cmi_etcd_conn *conn = arg;

	conn->done(conn, req);
}

struct evhttp_request *cmi_etcd_request_new(struct cmi_etcd_client *c, struct cmi_etcd_conn *conn,
					    const char *body)
{
	struct evhttp_request *req = evhttp_request_new(request_done, conn);
	struct evkeyvalq *headers;
	int rc = req ? 0 : -1;

	if (req == NULL)
		return NULL;
	evhttp_request_set_error_cb(req, request_error);
	headers = evhttp_request_get_output_headers(req);
	rc |= evhttp_add_header(headers, "Host", conn->ep->address);
	rc |= evhttp_add_header(headers, "Content-Type", "application/json");
	pthread_mutex_lock(&c->lock);
	if (c->token != NULL)
		rc |= evhttp_add_header(headers, "Authorization", c->token);
	pthread_mutex_unlock(&c->lock);
	rc |= evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
	if (rc != 0) {
		evhttp_request_free(req);
		return NULL;
	}
	return req;
}

int cmi_etcd_conn_start(struct cmi_etcd_conn *conn, struct evhttp_request *req, const char *path)
{
	struct bufferevent *bev;
	bufferevent_data_cb rcb, wcb;
	bufferevent_event_cb ecb;
	void *arg;

	if (evhttp_make_request(conn->evcon, req, EVHTTP_REQ_POST, path) != 0) {
		evhttp_request_free(req);
		return cmi_error(CMICRO_ECONNECT, "cannot start a connection to etcd at %s",
				 conn->ep->url);
	}
	bev = evhttp_connection_get_bufferevent(conn->evcon);
	bufferevent_getcb(bev, &rcb, &wcb, &ecb, &arg);
	/* While connecting, evhttp sets only an event callback. */
	if (ecb != NULL && ecb != conn_event && rcb == NULL && wcb == NULL) {
		conn->evhttp_event_cb = ecb;
		conn->evhttp_event_arg = arg;
		bufferevent_setcb(bev, rcb, wcb, conn_event, conn);
	}
	return 0;
}

int cmi_etcd_conn_explain(struct cmi_etcd_conn *conn, char *buf, size_t size)
{
	if (conn->err != 0) {
		cmi_fmt(buf, size, "%s", conn->failure);
		return conn->err;
	}
	switch (conn->evhttp_error) {
	case EVREQ_HTTP_TIMEOUT:
		cmi_fmt(buf, size, "no response in time");
		return CMICRO_ETIMEDOUT;
	case EVREQ_HTTP_INVALID_HEADER:
	case EVREQ_HTTP_DATA_TOO_LONG:
		cmi_fmt(buf, size, "invalid or oversized HTTP response; check that this is an etcd "
				   "client URL");
		return CMICRO_EPROTO;
	default:
		cmi_fmt(buf, size, "%s", conn->bev ? "cannot connect, or the server does not serve "
						     "HTTPS"
						   : "cannot connect, or the server closed the "
						     "connection (an HTTPS server needs https://)");
		return CMICRO_ECONNECT;
	}
}

void cmi_etcd_conn_close(struct cmi_etcd_conn *conn)
{
	if (conn->evcon != NULL)
		evhttp_connection_free(conn->evcon);
	conn->evcon = NULL;
	conn->bev = NULL;
}

/* ---- one request ---- */

struct call_state {
	struct event_base *base;
	struct cmi_etcd_reply *reply;
	bool responded;
	bool oversized;
};

static void call_done(struct cmi_etcd_conn *conn, struct evhttp_request *req)
{
	struct call_state *st = conn->user;
	int status = req ? evhttp_request_get_response_code(req) : 0;
	struct evbuffer *in;
	size_t len;

	event_base_loopbreak(st->base);
	if (status == 0)
		return;
	in = evhttp_request_get_input_buffer(req);
	len = evbuffer_get_length(in);
	st->responded = true;
	st->reply->status = status;
	st->reply->body = cmi_calloc(1, len + 1);
	if (st->reply->body == NULL) {
		st->oversized = true;
		return;
	}
	evbuffer_remove(in, st->reply->body, len);
	st->reply->len = len;
}

/* Sends one request to ep. Returns 0 when a response arrived (any status),
 * else an error with the reason in why. */
static int request_once(struct cmi_etcd_client *c, const struct cmi_etcd_endpoint *ep,
			const char *path, const char *body, struct cmi_etcd_reply *reply,
			char *why, size_t why_size)
{
	struct call_state st = {.reply = reply};
	struct cmi_sigpipe_guard guard;
	struct cmi_etcd_conn conn;
	struct evhttp_request *req;
	int rc;

	st.base = event_base_new();
	if (st.base == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory creating an event loop for etcd");
	/* The request runs on the caller's thread, whose SIGPIPE is not ours. */
	cmi_sigpipe_block(&guard);
	rc = cmi_etcd_conn_open(c, ep, st.base, c->timeout_ms, &conn);
	if (rc != 0)
		goto out;
	conn.done = call_done;
	conn.user = &st;
	req = cmi_etcd_request_new(c, &conn, body);
	rc = req ? cmi_etcd_conn_start(&conn, req, path)
		 : cmi_error(CMICRO_ENOMEM, "out of memory building a request to etcd");
	if (rc == 0)
		event_base_dispatch(st.base);
	if (rc == 0 && st.oversized)
		rc = CMICRO_ENOMEM;
	else if (rc == 0 && !st.responded)
		rc = cmi_etcd_conn_explain(&conn, why, why_size);
	cmi_etcd_conn_close(&conn);
out:
	event_base_free(st.base);
	cmi_sigpipe_restore(&guard);
	return rc;
}

void cmi_etcd_reply_clear(struct cmi_etcd_reply *reply)
{
	free(reply->body);
	memset(reply, 0, sizeof(*reply));
}

bool cmi_etcd_unreachable(int rc)
{
	return rc == CMICRO_ECONNECT || rc == CMICRO_ETIMEDOUT;
}

/* True when an endpoint answered but cannot serve now (no leader, a member
 * cut off from the others), so the next endpoint is tried. */
static bool reply_unavailable(const struct cmi_etcd_reply *reply)
{
	/* The v3 gateway serves every path cmicro uses, so a 404 comes from
	 * something else on that port (an etcd peer port, another service) and
	 * the next endpoint is tried, as for a gateway that is down. */
	return reply->status == 404 || reply->status == 502 || reply->status == 503 ||
	       reply->status == 504;
}

/* Returns the error of a request that no endpoint served. why lists each
 * endpoint's failure. */
static int unreachable_error(struct cmi_etcd_client *c, int rc, const char *why)
{
	return cmi_error(rc,
			 "cannot reach etcd at %s (%s); start etcd there, or set "
			 "MICRO_REGISTRY_ADDRESS to its client URLs",
			 c->urls, why);
}

/* Tries every endpoint once, from the current one. */
static int call_any(struct cmi_etcd_client *c, const char *path, const char *body,
		    struct cmi_etcd_reply *reply)
{
	char why[1024] = "";
	size_t start;
	int rc = CMICRO_ECONNECT, first = 0;

	pthread_mutex_lock(&c->lock);
	start = c->current;
	pthread_mutex_unlock(&c->lock);
	for (size_t k = 0; k < c->n_endpoints; k++) {
		const struct cmi_etcd_endpoint *ep = &c->endpoints[(start + k) % c->n_endpoints];
		char one[512] = "";

		cmi_etcd_reply_clear(reply);
		rc = request_once(c, ep, path, body, reply, one, sizeof(one));
		if (rc == 0 && reply_unavailable(reply)) {
			cmi_etcd_error_text(reply->body, reply->len, one, sizeof(one));
			rc = CMICRO_ECONNECT;
		}
		if (rc == 0) {
			pthread_mutex_lock(&c->lock);
			c->current = (start + k) % c->n_endpoints;
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (rc == CMICRO_ENOMEM)
			return rc;
		first = first ? first : rc;
		cmi_append(why, sizeof(why), "%s%s: %s", why[0] ? "; " : "", ep->url,
			   one[0] ? one : cmicro_last_errmsg());
	}
	cmi_etcd_reply_clear(reply);
	return unreachable_error(c, first == rc ? rc : CMICRO_ECONNECT, why);
}

/* ---- authentication and the public call ---- */

static int authenticate(struct cmi_etcd_client *c)
{
	struct cmi_etcd_reply reply = {0};
	json_t *req = json_pack("{s:s, s:s}", "name", c->username, "password",
				c->password ? c->password : "");
	char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	char *token = NULL;
	int rc;

	json_decref(req);
	if (body == NULL)
		return cmi_error(CMICRO_EINVAL, "cannot encode ETCD_USERNAME as JSON; use UTF-8 "
						"text");
	rc = call_any(c, "/v3/auth/authenticate", body, &reply);
	/* The body contains the password, so it is cleared before it is freed. */
	OPENSSL_cleanse(body, strlen(body));
	free(body);
	if (rc == 0 && (reply.status < 200 || reply.status > 299)) {
		char text[256];

		cmi_etcd_error_text(reply.body, reply.len, text, sizeof(text));
		rc = cmi_error(CMICRO_ECONFIG,
			       "etcd rejected user \"%.64s\": %s; check ETCD_USERNAME and "
			       "ETCD_PASSWORD",
			       c->username, text);
	} else if (rc == 0) {
		rc = cmi_etcd_parse_token(reply.body, reply.len, &token);
	}
	cmi_etcd_reply_clear(&reply);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&c->lock);
	free(c->token);
	c->token = token;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int cmi_etcd_ensure_token(struct cmi_etcd_client *c, bool renew)
{
	bool have;

	if (c->username == NULL)
		return 0;
	pthread_mutex_lock(&c->lock);
	have = c->token != NULL;
	pthread_mutex_unlock(&c->lock);
	return have && !renew ? 0 : authenticate(c);
}

/* Turns a reply whose status is not 2xx into an error. */
static int reply_error(struct cmi_etcd_client *c, const char *path,
		       const struct cmi_etcd_reply *reply)
{
	char text[256];

	cmi_etcd_error_text(reply->body, reply->len, text, sizeof(text));
	if (c->username == NULL &&
	    (reply->status == 401 || reply->status == 403 || strstr(text, "user name is empty")))
		return cmi_error(CMICRO_ECONFIG,
				 "etcd at %s rejected %s: %s; etcd has authentication enabled, "
				 "so set ETCD_USERNAME and ETCD_PASSWORD",
				 c->urls, path, text);
	if (reply->status == 401 || reply->status == 403)
		return cmi_error(CMICRO_ECONFIG,
				 "etcd at %s rejected %s for user \"%.64s\": %s; grant the user "
				 "a role with read and write access to " CMI_REGISTRY_KEY_PREFIX,
				 c->urls, path, c->username, text);
	return cmi_error(CMICRO_EIO, "etcd at %s rejected %s (HTTP %d): %s", c->urls, path,
			 reply->status, text);
}

int cmi_etcd_call(struct cmi_etcd_client *c, const char *path, const char *body,
		  struct cmi_etcd_reply *reply)
{
	int rc = cmi_etcd_ensure_token(c, false);

	memset(reply, 0, sizeof(*reply));
	if (rc == 0)
		rc = call_any(c, path, body, reply);
	/* A token expires after etcd's --auth-token-ttl of inactivity, or when
	 * etcd restarts: authenticate again once. */
	if (rc == 0 && reply->status == 401 && c->username != NULL) {
		cmi_etcd_reply_clear(reply);
		rc = cmi_etcd_ensure_token(c, true);
		if (rc == 0)
			rc = call_any(c, path, body, reply);
	}
	if (rc == 0 && (reply->status < 200 || reply->status > 299))
		rc = reply_error(c, path, reply);
	if (rc != 0)
		cmi_etcd_reply_clear(reply);
	return rc;
}

void cmi_etcd_client_free(struct cmi_etcd_client *c)
{
	if (c == NULL)
		return;
	free(c->endpoints);
	cmicro_tls_context_free(c->tls);
	free(c->username);
	if (c->password != NULL)
		OPENSSL_cleanse(c->password, strlen(c->password));
	free(c->password);
	free(c->token);
	free(c->urls);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
