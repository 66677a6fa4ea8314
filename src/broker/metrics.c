/*
 * The broker's metrics in the Prometheus text exposition format 0.0.4:
 * per-topic message counters (bounded to CMI_METRICS_TOPICS_MAX topics),
 * TLS verification outcomes read from the configuration's counters, and
 * the seconds until expiry of the certificates the broker uses or has seen.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker/metrics_int.h"

struct brk_metric_topic {
	char *name; /* NULL for the _other bucket */
	uint64_t count[CMI_METRIC_COUNT];
	int64_t depth;
};

struct cmi_brk_metrics {
	pthread_mutex_t lock; /* guards everything below */
	struct brk_metric_topic topics[CMI_METRICS_TOPICS_MAX];
	size_t n_topics;
	struct brk_metric_topic other;
	uint64_t registry_errors;
	uint64_t reloads[2]; /* failed, succeeded */
	struct cmi_expiry_cert own;
	bool has_own;
};

static const char *const metric_names[CMI_METRIC_COUNT] = {
	[CMI_METRIC_PUBLISHED] = "published",
	[CMI_METRIC_DELIVERED] = "delivered",
	[CMI_METRIC_FAILED] = "failed",
	[CMI_METRIC_BACKLOGGED] = "backlogged",
	[CMI_METRIC_DROPPED] = "dropped",
};

static const char *const metric_help[CMI_METRIC_COUNT] = {
	[CMI_METRIC_PUBLISHED] = "Messages accepted by publish.",
	[CMI_METRIC_DELIVERED] = "Deliveries a subscriber node answered with 2xx.",
	[CMI_METRIC_FAILED] = "Deliveries that failed.",
	[CMI_METRIC_BACKLOGGED] = "Times a message entered the retry backlog.",
	[CMI_METRIC_DROPPED] = "Messages given up: backlog full, attempts used up, disconnect.",
};

int cmi_brk_metrics_new(struct cmi_brk_metrics **out)
{
	struct cmi_brk_metrics *m = cmi_calloc(1, sizeof(*m));

	*out = NULL;
	if (m == NULL)
		return CMICRO_ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	*out = m;
	return 0;
}

void cmi_brk_metrics_free(struct cmi_brk_metrics *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n_topics; i++)
		free(m->topics[i].name);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Returns the entry of topic, adding it while there is room, else the
 * _other bucket (lock held). A topic named "_other" shares that bucket. */
static struct brk_metric_topic *metrics_topic(struct cmi_brk_metrics *m, const char *topic)
{
	struct brk_metric_topic *t;

	if (topic == NULL || strcmp(topic, CMI_METRICS_OTHER_TOPIC) == 0)
		return &m->other;
	for (size_t i = 0; i < m->n_topics; i++) {
		if (strcmp(m->topics[i].name, topic) == 0)
			return &m->topics[i];
	}
	if (m->n_topics == CMI_METRICS_TOPICS_MAX)
		return &m->other;
	t = &m->topics[m->n_topics];
	t->name = strdup(topic);
	if (t->name == NULL)
		return &m->other;
	m->n_topics++;
	return t;
}

void cmi_brk_metrics_count(struct cmicro_broker *b, const char *topic, enum cmi_metric which)
{
	struct cmi_brk_metrics *m = b ? b->metrics : NULL;

	if (m == NULL || which >= CMI_METRIC_COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	metrics_topic(m, topic)->count[which]++;
	pthread_mutex_unlock(&m->lock);
}

void cmi_brk_metrics_backlog(struct cmicro_broker *b, const char *topic, int delta)
{
	struct cmi_brk_metrics *m = b ? b->metrics : NULL;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	metrics_topic(m, topic)->depth += delta;
	pthread_mutex_unlock(&m->lock);
}

void cmi_brk_metrics_registry_error(struct cmicro_broker *b)
{
	struct cmi_brk_metrics *m = b ? b->metrics : NULL;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->registry_errors++;
	pthread_mutex_unlock(&m->lock);
}

void cmi_brk_metrics_tls_reload(struct cmicro_broker *b, bool ok)
{
	struct cmi_brk_metrics *m = b ? b->metrics : NULL;

	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	m->reloads[ok ? 1 : 0]++;
	pthread_mutex_unlock(&m->lock);
}

void cmi_brk_metrics_set_own(struct cmicro_broker *b, X509 *own)
{
	struct cmi_expiry_cert facts;
	bool ok = own != NULL && cmi_tls_expiry_facts(own, CMI_EXPIRY_OWN, NULL, &facts) == 0;

	if (b->metrics == NULL)
		return;
	pthread_mutex_lock(&b->metrics->lock);
	b->metrics->has_own = ok;
	if (ok)
		b->metrics->own = facts;
	pthread_mutex_unlock(&b->metrics->lock);
}

void cmi_brk_metrics_escape(FILE *out, const char *value)
{
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '"')
			fputs("\\\"", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
}

static void metrics_family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics_tls(FILE *out, const struct cmicro_broker *b)
{
	bool audit = cmicro_tls_config_get_verify(b->tls) == CMICRO_TLS_VERIFY_AUDIT;

	metrics_family(out, "cmicro_tls_handshakes_total", "counter",
		       "TLS peer verifications: ok passed, rejected failed in secure mode, "
		       "audited failed in audit mode and was allowed.");
	fprintf(out, "cmicro_tls_handshakes_total{outcome=\"ok\",reason=\"none\"} %llu\n",
		(unsigned long long)cmicro_tls_config_verified_count(b->tls));
	for (int r = 1; r < CMICRO_TLS_REASON_COUNT; r++) {
		uint64_t n = cmicro_tls_config_reason_count(b->tls, (enum cmicro_tls_reason)r);

		if (n == 0)
			continue;
		fprintf(out, "cmicro_tls_handshakes_total{outcome=\"%s\",reason=\"%s\"} %llu\n",
			audit ? "audited" : "rejected",
			cmicro_tls_reason_name((enum cmicro_tls_reason)r), (unsigned long long)n);
	}
}

static void metrics_topic_line(FILE *out, const char *family, const char *topic,
			       long long value)
{
	fprintf(out, "%s{topic=\"", family);
	cmi_brk_metrics_escape(out, topic);
	fprintf(out, "\"} %lld\n", value);
}

/* Writes one family over every topic (lock held); which < 0 writes the
 * backlog depth. The _other series appears once it has a value. */
static void metrics_topics(FILE *out, const struct cmi_brk_metrics *m, int which)
{
	char family[64];
	const struct brk_metric_topic *o = &m->other;

	if (which < 0) {
		cmi_fmt(family, sizeof(family), "cmicro_backlog_depth");
		metrics_family(out, family, "gauge", "Messages waiting in the retry backlog.");
	} else {
		cmi_fmt(family, sizeof(family), "cmicro_messages_%s_total", metric_names[which]);
		metrics_family(out, family, "counter", metric_help[which]);
	}
	for (size_t i = 0; i < m->n_topics; i++) {
		const struct brk_metric_topic *t = &m->topics[i];

		metrics_topic_line(out, family, t->name,
				   which < 0 ? (long long)t->depth : (long long)t->count[which]);
	}
	if (which < 0 ? o->depth != 0 : o->count[which] != 0)
		metrics_topic_line(out, family, CMI_METRICS_OTHER_TOPIC,
				   which < 0 ? (long long)o->depth : (long long)o->count[which]);
}

static void metrics_expiry_line(FILE *out, const struct cmi_expiry_cert *c, int64_t now)
{
	static const char *const kinds[] = {"own", "ca", "peer"};

	fprintf(out, "cmicro_cert_expiry_seconds{kind=\"%s\",subject=\"", kinds[c->kind]);
	cmi_brk_metrics_escape(out, c->subject);
	fprintf(out, "\",fingerprint=\"%s\"} %lld\n", c->fingerprint,
		(long long)(c->not_after - now));
}

static void metrics_expiry(FILE *out, const struct cmicro_broker *b, int64_t now)
{
	struct cmi_expiry_cert own, *list = NULL;
	bool has_own;
	size_t n = 0;

	metrics_family(out, "cmicro_cert_expiry_seconds", "gauge",
		       "Seconds until the certificate expires (negative once expired): own, "
		       "configured CAs, and peers seen in verifications.");
	pthread_mutex_lock(&b->metrics->lock);
	has_own = b->metrics->has_own;
	own = b->metrics->own;
	pthread_mutex_unlock(&b->metrics->lock);
	if (has_own)
		metrics_expiry_line(out, &own, now);

	if (cmi_tls_expiry_config_cas(b->tls, &list, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			metrics_expiry_line(out, &list[i], now);
		free(list);
	}
	/* NOTE: the peer table is process-wide, so several brokers in one
	 * process all list the peers any of them verified. */
	if (cmi_tls_expiry_peers(&list, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			metrics_expiry_line(out, &list[i], now);
		free(list);
	}
}

static void metrics_write(FILE *out, const struct cmicro_broker *b)
{
	struct cmi_brk_metrics *m = b->metrics;

	metrics_tls(out, b);
	pthread_mutex_lock(&m->lock);
	for (int which = 0; which < CMI_METRIC_COUNT; which++)
		metrics_topics(out, m, which);
	metrics_topics(out, m, -1);
	metrics_family(out, "cmicro_registry_errors_total", "counter",
		       "Registry requests that failed: register, deregister, look-up.");
	fprintf(out, "cmicro_registry_errors_total %llu\n",
		(unsigned long long)m->registry_errors);
	metrics_family(out, "cmicro_tls_reloads_total", "counter",
		       "Reloads of changed TLS files, by outcome.");
	fprintf(out, "cmicro_tls_reloads_total{outcome=\"ok\"} %llu\n",
		(unsigned long long)m->reloads[1]);
	fprintf(out, "cmicro_tls_reloads_total{outcome=\"failed\"} %llu\n",
		(unsigned long long)m->reloads[0]);
	pthread_mutex_unlock(&m->lock);
	metrics_expiry(out, b, (int64_t)time(NULL));
}

CMICRO_API int cmicro_broker_metrics_text(const struct cmicro_broker *b, char **text)
{
	char *buf = NULL;
	size_t size = 0;
	bool failed;
	FILE *out;

	if (text != NULL)
		*text = NULL;
	if (b == NULL || text == NULL || b->metrics == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_broker_metrics_text: broker and text must "
						"be given");
	out = open_memstream(&buf, &size);
	if (out == NULL)
		return cmi_error(CMICRO_ENOMEM, "out of memory building the metrics text");
	metrics_write(out, b);
	failed = ferror(out) != 0;
	if (fclose(out) != 0)
		failed = true;
	if (failed) {
		free(buf);
		return cmi_error(CMICRO_ENOMEM, "out of memory building the metrics text");
	}
	*text = buf;
	return 0;
}

void cmi_brk_metrics_reply(struct cmicro_broker *b, struct cmi_http_request *req)
{
	char *text = NULL;

	if (cmicro_broker_metrics_text(b, &text) != 0) {
		cmi_http_reply(req, 503, cmicro_last_errmsg());
		return;
	}
	cmi_http_reply_typed(req, 200, "text/plain; version=0.0.4; charset=utf-8", text);
	free(text);
}

void cmi_brk_metrics_on_request(void *user, struct cmi_http_request *req)
{
	const char *path = cmi_http_request_path(req);

	if (strcmp(path, "/metrics") != 0) {
		cmi_http_reply(req, 404, "not found; this listener serves only GET /metrics");
		return;
	}
	if (!cmi_http_request_is_get(req)) {
		cmi_http_reply(req, 405, "method not allowed; use GET /metrics");
		return;
	}
	cmi_brk_metrics_reply(user, req);
}
