/*
 * The broker's metrics: per-topic message counters kept for the Prometheus
 * text exposition (GET /metrics and cmicro_broker_metrics_text), and the
 * expiry checks of the certificates the broker uses.
 */
#ifndef CMICRO_BROKER_METRICS_INT_H
#define CMICRO_BROKER_METRICS_INT_H

#include <stdint.h>
#include <stdio.h>

#include "broker/broker_int.h"
#include "tls/expiry_int.h"

/* Topics with series of their own; later topics are counted under
 * topic="_other", so a publisher of many topics cannot grow the output
 * without bound. */
#define CMI_METRICS_TOPICS_MAX 256
#define CMI_METRICS_OTHER_TOPIC "_other"

/* Seconds between two expiry checks of a connected broker. */
#define CMI_EXPIRY_CHECK_INTERVAL_S 3600

/* Default seconds between two looks at the TLS files for a reload. */
#define CMI_RELOAD_INTERVAL_S 5

struct cmi_brk_metrics;

int cmi_brk_metrics_new(struct cmi_brk_metrics **out);
void cmi_brk_metrics_free(struct cmi_brk_metrics *m);

/* Records the facts of the certificate this broker presents (NULL: none). */
void cmi_brk_metrics_set_own(struct cmicro_broker *b, X509 *own);

/* Counts a reload of the TLS files that succeeded (ok) or failed. */
void cmi_brk_metrics_tls_reload(struct cmicro_broker *b, bool ok);

/* Writes value as a Prometheus label value: backslash, double quote and
 * line feed escaped as \\, \" and \n. */
void cmi_brk_metrics_escape(FILE *out, const char *value);

/* Serves GET /metrics on the separate metrics listener (loop thread). */
void cmi_brk_metrics_on_request(void *user, struct cmi_http_request *req);

/* Replies to a GET /metrics request with the exposition text. */
void cmi_brk_metrics_reply(struct cmicro_broker *b, struct cmi_http_request *req);

/* monitor.c: the expiry check timer and the separate metrics listener,
 * started by connect and stopped by disconnect. */
int cmi_brk_monitor_start(struct cmicro_broker *b);
void cmi_brk_monitor_stop(struct cmicro_broker *b);
/* Checks the own certificate, the configured CAs and the peers seen now. */
void cmi_brk_expiry_check(struct cmicro_broker *b);

#endif
