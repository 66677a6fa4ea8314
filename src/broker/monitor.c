/*
 * Monitoring of a connected broker: the expiry check of its certificates,
 * run at connect and then every CMI_EXPIRY_CHECK_INTERVAL_S on the I/O
 * loop, and the separate plain-HTTP listener that serves GET /metrics.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/metrics_int.h"

/* The certificate this broker presents: the served one (which may be
 * self-signed), else the configuration's client identity. */
static X509 *mon_own_cert(const struct cmicro_broker *b)
{
	if (b->server_ctx != NULL)
		return SSL_CTX_get0_certificate(cmicro_tls_context_ssl_ctx(b->server_ctx));
	if (b->client_ctx != NULL)
		return SSL_CTX_get0_certificate(cmicro_tls_context_ssl_ctx(b->client_ctx));
	return NULL;
}

void cmi_brk_expiry_check(struct cmicro_broker *b)
{
	X509 *own = mon_own_cert(b);

	cmi_brk_metrics_set_own(b, own);
	cmi_tls_expiry_check_config(b->tls, own, b->expiry_warn_days, (int64_t)time(NULL));
}

static void mon_expiry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	cmi_brk_expiry_check(arg);
}

static int mon_expiry_timer(struct cmicro_broker *b)
{
	struct timeval tv = {.tv_sec = CMI_EXPIRY_CHECK_INTERVAL_S};

	b->expiry_ev = event_new(b->base, -1, EV_PERSIST, mon_expiry_cb, b);
	if (b->expiry_ev == NULL || event_add(b->expiry_ev, &tv) != 0)
		return cmi_error(CMICRO_ENOMEM, "cannot create the certificate expiry timer");
	return 0;
}

static int mon_listener(struct cmicro_broker *b)
{
	struct cmi_http_server_opts so = {0};
	char host[256], bound[300];
	int port, rc;

	rc = cmi_http_split_address(b->metrics_conf, host, sizeof(host), &port);
	if (rc != 0)
		return rc;
	so.host = host;
	so.port = port;
	so.max_body = 1024;
	so.max_connections = 64;
	so.read_timeout_ms = b->opts.read_timeout_ms;
	so.handler = cmi_brk_metrics_on_request;
	so.user = b;
	rc = cmi_http_server_new(b->base, &so, &b->metrics_server);
	if (rc != 0)
		return rc;

	cmi_brk_join_host_port(host[0] ? host : "0.0.0.0", cmi_http_server_port(b->metrics_server),
			       bound, sizeof(bound));
	free(b->metrics_address);
	b->metrics_address = cmi_strdup(bound);
	if (b->metrics_address == NULL)
		return CMICRO_ENOMEM;
	cmi_log(CMICRO_LOG_INFO, "broker", "BROKER-METRICS-LISTEN",
		"broker %s serves metrics on http://%s/metrics", b->id, b->metrics_address);
	return 0;
}

int cmi_brk_monitor_start(struct cmicro_broker *b)
{
	int rc;

	cmi_brk_expiry_check(b);
	rc = mon_expiry_timer(b);
	if (rc == 0 && b->metrics_conf != NULL)
		rc = mon_listener(b);
	return rc;
}

/* Runs after the I/O thread has stopped, before the loop is freed. */
void cmi_brk_monitor_stop(struct cmicro_broker *b)
{
	if (b->expiry_ev != NULL)
		event_free(b->expiry_ev);
	b->expiry_ev = NULL;
	cmi_http_server_free(b->metrics_server);
	b->metrics_server = NULL;
	free(b->metrics_address);
	b->metrics_address = NULL;
}

CMICRO_API const char *cmicro_broker_metrics_address(const struct cmicro_broker *b)
{
	return b ? b->metrics_address : NULL;
}
