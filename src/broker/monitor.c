/*
 * Monitoring of a connected broker: the expiry check of its certificates,
 * run at connect and then every CMI_EXPIRY_CHECK_INTERVAL_S on the I/O
 * loop, and the separate plain-HTTP listener that serves GET /metrics.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/metrics_int.h"

/* The certificate this broker presents, with a reference: the served one
 * (which may be self-signed), else the configuration's client identity. */
static X509 *mon_own_cert(const struct cmicro_broker *b)
{
	if (b->server_ctx != NULL)
		return cmi_tls_context_own_cert(b->server_ctx);
	if (b->client_ctx != NULL)
		return cmi_tls_context_own_cert(b->client_ctx);
	return NULL;
}

void cmi_brk_expiry_check(struct cmicro_broker *b)
{
	X509 *own = mon_own_cert(b);

	cmi_brk_metrics_set_own(b, own);
	cmi_tls_expiry_check_config(b->tls, own, b->expiry_warn_days, (int64_t)time(NULL));
	X509_free(own);
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
	if (rc != 0) {
		char detail[CMI_ERRMSG_MAX];

		cmi_fmt(detail, sizeof(detail), "%s", cmicro_last_errmsg());
		return cmi_error(rc, "metrics listener (MICRO_METRICS_ADDRESS or the metrics_address "
				     "option): %s",
				 detail);
	}

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

/* Returns the seconds between two checks of the TLS files
 * (MICRO_TLS_RELOAD_INTERVAL, where 0 turns reloading off), or -1 for an
 * invalid value. */
int cmi_brk_reload_interval(void)
{
	const char *env = cmi_getenv("MICRO_TLS_RELOAD_INTERVAL");
	char *end = NULL;
	long v;

	if (env == NULL || env[0] == '\0')
		return CMI_RELOAD_INTERVAL_S;
	v = strtol(env, &end, 10);
	if (end != env && *end == '\0' && v >= 0 && v <= 86400)
		return (int)v;
	cmi_error(CMICRO_EINVAL,
		  "MICRO_TLS_RELOAD_INTERVAL=\"%.60s\" is not a number of seconds from 0 to "
		  "86400; set it to how often the TLS files are checked for changes, or 0 to "
		  "never reload them",
		  env);
	return -1;
}

/* Checks the files and, after a reload, runs the start-up self-check on
 * the new certificate and updates the metrics and expiry warnings. */
static void mon_reload_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cmicro_broker *b = arg;
	bool changed = false;

	(void)fd;
	(void)what;
	if (cmi_tls_config_poll(b->tls, &b->reload_seen, &changed) != 0) {
		cmi_brk_metrics_tls_reload(b, false);
		return;
	}
	if (!changed)
		return;
	cmi_brk_metrics_tls_reload(b, true);
	cmi_brk_self_check(b);
	cmi_brk_expiry_check(b);
}

static int mon_reload_timer(struct cmicro_broker *b)
{
	int seconds = cmi_brk_reload_interval();
	struct timeval tv = {.tv_sec = seconds};

	if (seconds < 0)
		return CMICRO_EINVAL;
	if (seconds == 0 || b->tls == NULL)
		return 0;
	b->reload_seen = 0;
	b->reload_ev = event_new(b->base, -1, EV_PERSIST, mon_reload_cb, b);
	if (b->reload_ev == NULL || event_add(b->reload_ev, &tv) != 0)
		return cmi_error(CMICRO_ENOMEM, "cannot create the TLS file reload timer");
	return 0;
}

int cmi_brk_monitor_start(struct cmicro_broker *b)
{
	int rc;

	cmi_brk_expiry_check(b);
	rc = mon_expiry_timer(b);
	if (rc == 0)
		rc = mon_reload_timer(b);
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
	if (b->reload_ev != NULL)
		event_free(b->reload_ev);
	b->reload_ev = NULL;
	cmi_http_server_free(b->metrics_server);
	b->metrics_server = NULL;
	free(b->metrics_address);
	b->metrics_address = NULL;
}

CMICRO_API const char *cmicro_broker_metrics_address(const struct cmicro_broker *b)
{
	return b ? b->metrics_address : NULL;
}
