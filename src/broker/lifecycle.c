/* Connecting and disconnecting a broker: TLS contexts, the HTTP server and
 * client, and the threads. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/metrics_int.h"
#include "broker/outbox_int.h"

/* Creates the certificate a TLS subscriber presents when its configuration
 * has none: for the listen host, or for every local IP (go-micro's
 * Certificate(hosts...) with maddr.IPs()). */
static int lc_selfsigned(const char *host, struct cmicro_cert **out)
{
	char **ips = NULL;
	size_t n = 0;
	int rc;

	if (!cmi_brk_host_is_any(host)) {
		const char *one[] = {host};

		return cmicro_cert_selfsigned(one, 1, out);
	}
	rc = cmi_brk_local_ips(&ips, &n);
	if (rc == 0)
		rc = cmicro_cert_selfsigned((const char *const *)ips, n, out);
	cmi_brk_free_strings(ips, n);
	return rc;
}

static int lc_tls_contexts(struct cmicro_broker *b, const char *host)
{
	struct cmicro_cert *self = NULL;
	int rc;

	rc = cmicro_tls_context_new(b->tls, CMICRO_TLS_CLIENT, NULL, &b->client_ctx);
	if (rc != 0 || !b->serve_tls)
		return rc;
	if (!cmicro_tls_config_has_cert(b->tls)) {
		rc = lc_selfsigned(host, &self);
		if (rc != 0)
			return rc;
		cmi_log(CMICRO_LOG_INFO, "broker", "BROKER-SELFSIGNED",
			"no certificate configured (MICRO_TLS_CERT_FILE); serving a self-signed "
			"certificate for %s, which peers in secure mode reject",
			cmi_brk_host_is_any(host) ? "every local IP" : host);
	}
	rc = cmicro_tls_context_new(b->tls, CMICRO_TLS_SERVER, self, &b->server_ctx);
	cmicro_cert_free(self);
	return rc;
}

static int lc_server(struct cmicro_broker *b, const char *host, int port)
{
	struct cmi_http_server_opts so = {0};
	char bound[300], adv[256];
	int rc;

	so.host = host;
	so.port = port;
	so.tls = b->server_ctx;
	so.max_body = b->opts.max_body_bytes;
	so.max_connections = b->opts.max_connections;
	so.read_timeout_ms = b->opts.read_timeout_ms;
	so.handler = cmi_brk_on_request;
	so.user = b;
	rc = cmi_http_server_new(b->base, &so, &b->server);
	if (rc == 0)
		rc = cmi_brk_advertised_host(host, adv, sizeof(adv));
	if (rc != 0)
		return rc;

	cmi_brk_join_host_port(host[0] ? host : "0.0.0.0", cmi_http_server_port(b->server), bound,
			       sizeof(bound));
	free(b->address);
	free(b->advertised);
	b->address = cmi_strdup(bound);
	b->advertised = cmi_strdup(adv);
	return (b->address && b->advertised) ? 0 : CMICRO_ENOMEM;
}

static void *lc_loop_main(void *arg)
{
	struct cmicro_broker *b = arg;

	if (cmi_http_loop_run(b->base, b->opts.busy_poll_us, &b->loop_stats) != 0)
		cmi_log(CMICRO_LOG_ERR, "broker", "BROKER-LOOP",
			"the I/O loop of broker %s failed; it no longer delivers or receives "
			"messages, so disconnect and connect it again",
			b->id);
	return NULL;
}

static int lc_setup(struct cmicro_broker *b)
{
	char host[256];
	int port, rc;

	rc = cmi_http_split_address(b->address_conf, host, sizeof(host), &port);
	if (rc == 0)
		rc = cmi_http_threads_init();
	if (rc != 0)
		return rc;
	b->base = cmi_http_base_new();
	b->send_ev = b->base ? event_new(b->base, -1, 0, cmi_brk_send_cb, b) : NULL;
	b->wake_ev = b->base ? event_new(b->base, -1, 0, cmi_brk_wake_cb, b) : NULL;
	if (b->send_ev == NULL || b->wake_ev == NULL)
		return cmi_error(CMICRO_ENOMEM, "cannot create the broker's event loop");
	rc = lc_tls_contexts(b, host);
	if (rc == 0)
		rc = lc_server(b, host, port);
	if (rc == 0)
		cmi_brk_self_check(b);
	if (rc == 0)
		rc = cmi_brk_monitor_start(b);
	if (rc == 0)
		rc = cmi_http_client_new(b->base, b->client_ctx, &b->client);
	return rc;
}

static int lc_copy_list(char ***dst, size_t *n_dst, char **src, size_t n)
{
	if (n == 0)
		return 0;
	*dst = cmi_calloc(n, sizeof(**dst));
	if (*dst == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i] = cmi_strdup(src[i]);
		if ((*dst)[i] == NULL)
			return CMICRO_ENOMEM;
		(*n_dst)++;
	}
	return 0;
}

/* Queues one stored message for delivery, as a retry of an earlier
 * publish: the same envelope, so the same Micro-Id. */
static int lc_outbox_row(void *user, const struct cmi_outbox_row *row)
{
	struct cmicro_broker *b = user;
	struct brk_msg *m = cmi_calloc(1, sizeof(*m));
	int rc = m ? 0 : CMICRO_ENOMEM;

	/* The envelope is copied by length: deliveries send m->len bytes. */
	if (rc == 0 && ((m->topic = cmi_strdup(row->topic)) == NULL ||
			(m->id = cmi_strdup(row->id)) == NULL ||
			(m->json = cmi_calloc(1, row->len + 1)) == NULL))
		rc = CMICRO_ENOMEM;
	if (rc == 0)
		memcpy(m->json, row->envelope, row->len);
	if (rc == 0)
		rc = lc_copy_list(&m->got_nodes, &m->n_got_nodes, row->got_nodes, row->n_got_nodes);
	if (rc == 0)
		rc = lc_copy_list(&m->got_queues, &m->n_got_queues, row->got_queues,
				  row->n_got_queues);
	if (rc != 0) {
		cmi_brk_msg_free(m);
		return rc;
	}
	m->broker = b;
	m->len = row->len;
	m->outbox_seq = row->seq;
	m->retry = true;
	m->ever_delivered = row->n_got_nodes > 0 || row->n_got_queues > 0;
	pthread_mutex_lock(&b->lock);
	b->pending++;
	pthread_mutex_unlock(&b->lock);
	cmi_brk_ctl_push(b, m);
	return 0;
}

/* Sends again what the outbox holds. Runs before the threads start, so no
 * publish of this connect can be loaded and sent twice. */
static int lc_outbox_load(struct cmicro_broker *b)
{
	size_t skipped = 0, count = 0;
	int rc;

	if (b->outbox == NULL)
		return 0;
	cmi_outbox_usage(b->outbox, &count, NULL);
	rc = cmi_outbox_load(b->outbox, lc_outbox_row, b, &skipped);
	if (rc != 0)
		return rc;
	if (count > 0)
		cmi_log(CMICRO_LOG_INFO, "broker", "BROKER-OUTBOX-LOADED",
			"sending %zu undelivered messages from outbox %s again%s", count - skipped,
			b->outbox_path, skipped > 0 ? " (some rows are invalid, see above)" : "");
	return 0;
}

static int lc_start_threads(struct cmicro_broker *b)
{
	int rc;

	memset(&b->loop_stats, 0, sizeof(b->loop_stats));
	if (cmi_thread_create(&b->loop_thread, lc_loop_main, b) != 0)
		return cmi_error(CMICRO_EIO, "cannot start the broker's I/O thread");
	b->connected = true;
	rc = cmi_brk_workers_start(b);
	if (rc == 0)
		rc = cmi_brk_ctl_start(b);
	return rc;
}

/* Frees what connect created; threads are stopped already. */
static void lc_teardown(struct cmicro_broker *b)
{
	if (b->base != NULL)
		cmi_brk_loop_shutdown(b);
	cmi_brk_monitor_stop(b);
	cmi_http_client_free(b->client);
	cmi_http_server_free(b->server);
	b->client = NULL;
	b->server = NULL;
	cmicro_tls_context_free(b->client_ctx);
	cmicro_tls_context_free(b->server_ctx);
	b->client_ctx = b->server_ctx = NULL;
	if (b->send_ev != NULL)
		event_free(b->send_ev);
	if (b->wake_ev != NULL)
		event_free(b->wake_ev);
	b->wake_ev = NULL;
	b->wake_pending = NULL;
	if (b->base != NULL)
		event_base_free(b->base);
	b->send_ev = NULL;
	b->base = NULL;
}

/* Time a disconnecting broker gives replies of handled messages to reach
 * their publishers, which otherwise send those messages again. */
#define LC_DRAIN_MS 500

struct lc_drain {
	struct cmicro_broker *b;
	struct event *ev;
	struct timespec deadline;
};

/* Ends the loop once every queued reply was written, or at the deadline. */
static void lc_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lc_drain *d = arg;
	struct timeval again = {0, 5000};
	struct timespec now;

	(void)fd;
	(void)what;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (d->b->server == NULL || cmi_http_server_flushed(d->b->server) ||
	    now.tv_sec > d->deadline.tv_sec ||
	    (now.tv_sec == d->deadline.tv_sec && now.tv_nsec >= d->deadline.tv_nsec)) {
		/* loopexit, not loopbreak: event_base_loop clears a break
		 * requested before the I/O thread entered it, and would then
		 * run forever, while the exit is an event the loop still runs. */
		event_base_loopexit(d->b->base, NULL);
		return;
	}
	event_add(d->ev, &again);
}

static void lc_stop_loop(struct cmicro_broker *b)
{
	struct lc_drain d = {.b = b};

	clock_gettime(CLOCK_MONOTONIC, &d.deadline);
	d.deadline.tv_nsec += (long)LC_DRAIN_MS * 1000000L;
	d.deadline.tv_sec += d.deadline.tv_nsec / 1000000000L;
	d.deadline.tv_nsec %= 1000000000L;
	d.ev = event_new(b->base, -1, 0, lc_drain_cb, &d);
	if (d.ev != NULL)
		event_active(d.ev, 0, 0);
	else
		event_base_loopexit(b->base, NULL);
	pthread_join(b->loop_thread, NULL);
	if (d.ev != NULL)
		event_free(d.ev);
}

static void lc_stop_threads(struct cmicro_broker *b)
{
	cmi_brk_workers_stop(b);
	cmi_brk_ctl_stop(b);
	if (b->connected && b->base != NULL)
		lc_stop_loop(b);
	cmi_brk_workers_release(b);
	b->connected = false;
}

CMICRO_API int cmicro_broker_connect(struct cmicro_broker *b)
{
	int rc;

	if (b == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_connect: broker is NULL");
	pthread_mutex_lock(&b->lock);
	if (b->connected) {
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	b->stopping = false;
	pthread_mutex_unlock(&b->lock);

	rc = lc_setup(b);
	if (rc == 0)
		rc = lc_outbox_load(b);
	if (rc == 0)
		rc = lc_start_threads(b);
	if (rc != 0) {
		lc_stop_threads(b);
		lc_teardown(b);
		return rc;
	}
	cmi_log(CMICRO_LOG_INFO, "broker", "BROKER-LISTEN", "broker %s listening on %s (%s), "
							  "advertised as %s%s",
		b->id, b->address, b->serve_tls ? "HTTPS" : "HTTP", b->advertised,
		b->opts.inline_handlers ? "; handlers run on the I/O thread" : "");
	return 0;
}

CMICRO_API int cmicro_broker_disconnect(struct cmicro_broker *b)
{
	if (b == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_disconnect: broker is NULL");
	pthread_mutex_lock(&b->lock);
	if (!b->connected && b->base == NULL) {
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	pthread_mutex_unlock(&b->lock);

	cmi_brk_unsubscribe_all(b);
	lc_stop_threads(b);
	lc_teardown(b);
	return 0;
}
