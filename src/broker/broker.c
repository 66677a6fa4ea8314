/* The broker object: options, life cycle (connect starts the I/O loop, the
 * control thread and the handler threads), getters and counters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/metrics_int.h"
#include "broker/outbox_int.h"

#define BRK_DEFAULT_ADDRESS "127.0.0.1:0"

CMICRO_API void cmicro_broker_opts_init(struct cmicro_broker_opts *opts)
{
	if (opts != NULL)
		memset(opts, 0, sizeof(*opts));
}

static int opt_default(int value, int def)
{
	return value > 0 ? value : def;
}

static int brk_apply_defaults(struct cmicro_broker_opts *o)
{
	if (o->backlog_max > 0 && o->backlog_max < 64)
		return cmi_error(CMICRO_EINVAL, "backlog_max %d is below the minimum of 64 messages "
						"per topic (go-micro's floor); use 0 for the default or 64 "
						"and more",
				 o->backlog_max);
	if (o->max_body_bytes == 0)
		o->max_body_bytes = 4u << 20;
	o->max_connections = opt_default(o->max_connections, 1024);
	o->read_timeout_ms = opt_default(o->read_timeout_ms, 10000);
	o->delivery_timeout_ms = opt_default(o->delivery_timeout_ms, 10000);
	o->handler_threads = opt_default(o->handler_threads, 4);
	o->handler_queue_max = opt_default(o->handler_queue_max, 1024);
	o->backlog_max = opt_default(o->backlog_max, 64);
	o->retry_initial_ms = opt_default(o->retry_initial_ms, 500);
	o->retry_max_ms = opt_default(o->retry_max_ms, 30000);
	if (o->retry_max_ms < o->retry_initial_ms)
		o->retry_max_ms = o->retry_initial_ms;
	o->retry_max_attempts = opt_default(o->retry_max_attempts, 20);
	if (o->expiry_warn_days < 0 || o->expiry_warn_days > 3650)
		return cmi_error(CMICRO_EINVAL, "expiry_warn_days %d is not a number of days from 1 "
						"to 3650; use 0 for MICRO_TLS_EXPIRY_WARN_DAYS or the "
						"default of 30",
				 o->expiry_warn_days);
	if (o->dedup_window < 0 || o->dedup_window > (1 << 24))
		return cmi_error(CMICRO_EINVAL, "dedup_window %d is not a number of ids from 1 to "
						"16777216; use 0 for the default of 4096",
				 o->dedup_window);
	o->dedup_window = opt_default(o->dedup_window, 4096);
	o->register_ttl_s = opt_default(o->register_ttl_s, 60);
	o->register_interval_s = opt_default(o->register_interval_s, 30);
	return 0;
}

int cmi_brk_parse_busy_poll(const char *text, int *us)
{
	long value = 0;
	size_t n = 0;

	/* Digits only: no sign, spaces or suffix. The value stops growing past
	 * the maximum, so no length of digits overflows it. */
	for (; text[n] >= '0' && text[n] <= '9'; n++) {
		if (value <= CMI_BRK_BUSY_POLL_MAX_US)
			value = value * 10 + (text[n] - '0');
	}
	if (n == 0 || text[n] != '\0' || value > CMI_BRK_BUSY_POLL_MAX_US)
		return cmi_error(CMICRO_ECONFIG, "MICRO_BROKER_BUSY_POLL_US=\"%.60s\" is not a number "
						 "of microseconds from 0 to %d; set it to how long the "
						 "I/O thread polls before it sleeps, 0 to turn polling "
						 "off, or unset it for %d",
				 text, CMI_BRK_BUSY_POLL_MAX_US, CMI_BRK_BUSY_POLL_US);
	*us = value == 0 ? -1 : (int)value;
	return 0;
}

/* Resolves opts->busy_poll_us: the option, MICRO_BROKER_BUSY_POLL_US or
 * the default; -1 when polling is off. */
static int brk_busy_poll(struct cmicro_broker_opts *o)
{
	const char *env;

	if (o->busy_poll_us < -1 || o->busy_poll_us > CMI_BRK_BUSY_POLL_MAX_US)
		return cmi_error(CMICRO_EINVAL, "busy_poll_us %d is not a number of microseconds "
						"from 1 to %d; use 0 for MICRO_BROKER_BUSY_POLL_US or "
						"the default of %d, or -1 to turn polling off",
				 o->busy_poll_us, CMI_BRK_BUSY_POLL_MAX_US, CMI_BRK_BUSY_POLL_US);
	if (o->busy_poll_us != 0)
		return 0;
	env = cmi_getenv("MICRO_BROKER_BUSY_POLL_US");
	if (env == NULL || env[0] == '\0') {
		o->busy_poll_us = CMI_BRK_BUSY_POLL_US;
		return 0;
	}
	return cmi_brk_parse_busy_poll(env, &o->busy_poll_us);
}

static int brk_allow_plaintext(const struct cmicro_broker_opts *opts, bool *allow)
{
	const char *env = cmi_getenv("MICRO_TLS_ALLOW_PLAINTEXT");
	int v = env ? cmi_parse_bool(env) : 0;

	if (v < 0)
		return cmi_error(CMICRO_ECONFIG, "MICRO_TLS_ALLOW_PLAINTEXT=\"%.100s\" is not a "
						 "boolean; set true to allow plaintext delivery in secure "
						 "mode, or unset it",
				 env);
	*allow = opts->allow_plaintext || v == 1;
	return 0;
}

/* Reads the metrics settings: the option or MICRO_BROKER_METRICS for the
 * broker's listener, the option or MICRO_METRICS_ADDRESS for a separate
 * one, checked now so a typo fails at creation rather than at connect. */
static int brk_metrics_settings(struct cmicro_broker *b, const struct cmicro_broker_opts *opts)
{
	const char *env = cmi_getenv("MICRO_BROKER_METRICS");
	const char *address = opts->metrics_address;
	int v = env ? cmi_parse_bool(env) : 0;
	char host[256];
	int port;

	if (v < 0)
		return cmi_error(CMICRO_ECONFIG, "MICRO_BROKER_METRICS=\"%.100s\" is not a boolean; "
						 "set true to serve GET /metrics on the broker's "
						 "listener, or unset it",
				 env);
	b->metrics_on = opts->metrics || v == 1;
	if (address == NULL || address[0] == '\0')
		address = cmi_getenv("MICRO_METRICS_ADDRESS");
	if (address == NULL || address[0] == '\0')
		return 0;
	if (cmi_http_split_address(address, host, sizeof(host), &port) != 0)
		return cmi_error(CMICRO_ECONFIG, "metrics address \"%.100s\" (MICRO_METRICS_ADDRESS or "
						 "the metrics_address option) is not host:port; use "
						 "for example 127.0.0.1:9464",
				 address);
	b->metrics_conf = cmi_strdup(address);
	return b->metrics_conf ? 0 : CMICRO_ENOMEM;
}

/* Opens the outbox of the option or MICRO_BROKER_OUTBOX, and reads
 * MICRO_BROKER_DEDUP and MICRO_BROKER_INLINE_HANDLERS. Opening at creation holds the outbox's lock for the
 * broker's lifetime and reports a bad path before anything is published. */
static int brk_delivery_settings(struct cmicro_broker *b, const struct cmicro_broker_opts *opts)
{
	const char *env = cmi_getenv("MICRO_BROKER_DEDUP");
	const char *path = opts->outbox_path;
	int v = env ? cmi_parse_bool(env) : 0;
	int rc;

	if (v < 0)
		return cmi_error(CMICRO_ECONFIG, "MICRO_BROKER_DEDUP=\"%.100s\" is not a boolean; set "
						 "true to drop duplicate messages by Micro-Id, or unset it",
				 env);
	b->dedup = opts->dedup || v == 1;
	env = cmi_getenv("MICRO_BROKER_INLINE_HANDLERS");
	v = env ? cmi_parse_bool(env) : 0;
	if (v < 0)
		return cmi_error(CMICRO_ECONFIG, "MICRO_BROKER_INLINE_HANDLERS=\"%.100s\" is not a "
						 "boolean (true, 1, yes, on, or false, 0, no, off); set "
						 "true to run handlers on the I/O thread, or unset it",
				 env);
	b->opts.inline_handlers = opts->inline_handlers || v == 1;
	if (path == NULL || path[0] == '\0')
		path = cmi_getenv("MICRO_BROKER_OUTBOX");
	if (path == NULL || path[0] == '\0')
		return 0;
	b->outbox_path = cmi_strdup(path);
	if (b->outbox_path == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_outbox_open(path, opts->outbox_max_messages, opts->outbox_max_bytes, &b->outbox);
	if (rc != 0)
		return rc;
	b->opts.outbox_max_messages = b->outbox->max_messages;
	b->opts.outbox_max_bytes = b->outbox->max_bytes;
	return 0;
}

static int brk_resolve_deps(struct cmicro_broker *b, const struct cmicro_broker_opts *opts)
{
	const char *env = cmi_getenv("MICRO_BROKER_ADDRESS");
	int rc;

	if (opts->address != NULL && opts->address[0] != '\0')
		b->address_conf = cmi_strdup(opts->address);
	else
		b->address_conf = cmi_strdup(env && env[0] ? env : BRK_DEFAULT_ADDRESS);
	if (b->address_conf == NULL)
		return CMICRO_ENOMEM;
	if (opts->registry != NULL)
		b->reg = cmicro_registry_hold(opts->registry);
	else if ((rc = cmicro_registry_from_env(&b->reg)) != 0)
		return rc;
	if (opts->tls != NULL)
		b->tls = cmicro_tls_config_hold(opts->tls);
	else if ((rc = cmicro_tls_config_from_env(&b->tls)) != 0)
		return rc;
	b->serve_tls = opts->secure || opts->tls != NULL;
	rc = brk_allow_plaintext(opts, &b->opts.allow_plaintext);
	if (rc == 0)
		rc = brk_metrics_settings(b, opts);
	if (rc == 0)
		rc = cmi_brk_metrics_new(&b->metrics);
	if (rc == 0)
		rc = brk_delivery_settings(b, opts);
	if (rc != 0)
		return rc;
	b->expiry_warn_days = opts->expiry_warn_days > 0 ? opts->expiry_warn_days
							 : cmi_brk_expiry_warn_days();
	if (b->expiry_warn_days < 0)
		return CMICRO_EINVAL;
	return cmi_registry_cache_new(b->reg, 0, &b->cache);
}

CMICRO_API int cmicro_broker_new(const struct cmicro_broker_opts *opts,
				 struct cmicro_broker **out)
{
	struct cmicro_broker_opts defaults = {0};
	struct cmicro_broker *b;
	int rc;

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_new: out is NULL");
	*out = NULL;
	if (opts == NULL)
		opts = &defaults;
	b = cmi_calloc(1, sizeof(*b));
	if (b == NULL)
		return CMICRO_ENOMEM;
	b->opts = *opts;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	rc = brk_apply_defaults(&b->opts);
	if (rc == 0)
		rc = brk_busy_poll(&b->opts);
	if (rc == 0)
		rc = cmi_brk_new_id(b->id, sizeof(b->id));
	if (rc == 0)
		rc = brk_resolve_deps(b, opts);
	if (rc != 0) {
		cmicro_broker_free(b);
		return rc;
	}
	b->opts.address = b->address_conf;
	b->opts.registry = b->reg;
	b->opts.tls = b->tls;
	b->opts.metrics = b->metrics_on;
	b->opts.metrics_address = b->metrics_conf;
	b->opts.expiry_warn_days = b->expiry_warn_days;
	b->opts.outbox_path = b->outbox_path;
	b->opts.dedup = b->dedup;
	*out = b;
	return 0;
}

CMICRO_API void cmicro_broker_free(struct cmicro_broker *b)
{
	int rc;

	if (b == NULL)
		return;
	rc = cmicro_broker_disconnect(b);

	(void)rc;
	cmi_registry_cache_free(b->cache);
	cmicro_registry_free(b->reg);
	cmicro_tls_config_free(b->tls);
	cmi_brk_metrics_free(b->metrics);
	cmi_outbox_close(b->outbox);
	free(b->outbox_path);
	free(b->metrics_conf);
	free(b->address_conf);
	free(b->address);
	free(b->advertised);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

CMICRO_API const char *cmicro_broker_address(const struct cmicro_broker *b)
{
	if (b == NULL)
		return NULL;
	return b->address ? b->address : b->address_conf;
}

CMICRO_API const char *cmicro_broker_id(const struct cmicro_broker *b)
{
	return b ? b->id : NULL;
}

CMICRO_API bool cmicro_broker_is_secure(const struct cmicro_broker *b)
{
	return b != NULL && b->serve_tls;
}

CMICRO_API void cmicro_broker_get_stats(const struct cmicro_broker *b,
					struct cmicro_broker_stats *s)
{
	if (s == NULL)
		return;
	memset(s, 0, sizeof(*s));
	if (b == NULL)
		return;
	s->published = atomic_load(&b->stats.published);
	s->delivered = atomic_load(&b->stats.delivered);
	s->failed = atomic_load(&b->stats.failed);
	s->backlogged = atomic_load(&b->stats.backlogged);
	s->retried = atomic_load(&b->stats.retried);
	s->dropped = atomic_load(&b->stats.dropped);
	s->backlog = atomic_load(&b->stats.backlog);
	s->received = atomic_load(&b->stats.received);
	s->handler_errors = atomic_load(&b->stats.handler_errors);
	s->rejected = atomic_load(&b->stats.rejected);
	s->duplicates = atomic_load(&b->stats.duplicates);
	if (b->outbox != NULL) {
		size_t n = 0;

		cmi_outbox_usage(b->outbox, &n, NULL);
		s->outbox = n;
	}
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits on cond until *flag is true; returns ETIMEDOUT past timeout_ms
 * (negative: no limit). mutex is held by the caller. */
int cmi_brk_wait(pthread_cond_t *cond, pthread_mutex_t *mutex, const bool *flag, int timeout_ms)
{
	struct timespec ts;

	deadline_after(&ts, timeout_ms < 0 ? 0 : timeout_ms);
	while (!*flag) {
		int rc = timeout_ms < 0 ? pthread_cond_wait(cond, mutex)
					: pthread_cond_timedwait(cond, mutex, &ts);

		if (rc == ETIMEDOUT)
			return *flag ? 0 : ETIMEDOUT;
	}
	return 0;
}

CMICRO_API int cmicro_broker_flush(struct cmicro_broker *b, int timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	if (b == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_flush: broker is NULL");
	deadline_after(&ts, timeout_ms < 0 ? 0 : timeout_ms);
	pthread_mutex_lock(&b->lock);
	while (b->pending > 0 && rc != ETIMEDOUT)
		rc = timeout_ms < 0 ? pthread_cond_wait(&b->cond, &b->lock)
				    : pthread_cond_timedwait(&b->cond, &b->lock, &ts);
	rc = b->pending > 0 ? cmi_error(CMICRO_ETIMEDOUT, "%llu published messages are still "
							  "pending after %d ms; see the backlog "
							  "counters and delivery log lines",
					(unsigned long long)b->pending, timeout_ms)
			    : 0;
	pthread_mutex_unlock(&b->lock);
	return rc;
}
