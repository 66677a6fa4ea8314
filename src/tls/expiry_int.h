/*
 * Certificate expiry monitoring of the TLS layer: the stage a certificate
 * has reached before its notAfter, and warnings logged once per certificate
 * and stage. A bounded table also keeps the peer certificates seen in
 * verifications, for the broker's timer and metrics.
 */
#ifndef CMICRO_TLS_EXPIRY_INT_H
#define CMICRO_TLS_EXPIRY_INT_H

#include <stdint.h>

#include "tls/tls_int.h"

/* Certificates whose warning stage is remembered; the least recently seen
 * entry is replaced when the table is full. */
#define CMI_TLS_EXPIRY_MAX 512

/* Default days before notAfter at which warnings start. */
#define CMI_TLS_EXPIRY_WARN_DAYS 30

enum cmi_expiry_kind {
	CMI_EXPIRY_OWN = 0, /* the node's own certificate */
	CMI_EXPIRY_CA,      /* a CA of the configured trust (not the system roots) */
	CMI_EXPIRY_PEER     /* the leaf of a verified or audited peer */
};

/* Stages in increasing urgency. THRESHOLD starts at the configured number
 * of days (30 by default); 7D and 1D follow inside that threshold. */
enum cmi_expiry_stage {
	CMI_EXPIRY_STAGE_NONE = 0,
	CMI_EXPIRY_STAGE_THRESHOLD,
	CMI_EXPIRY_STAGE_7D,
	CMI_EXPIRY_STAGE_1D,
	CMI_EXPIRY_STAGE_EXPIRED
};

/* Facts about one certificate, as the expiry checks and metrics use them. */
struct cmi_expiry_cert {
	enum cmi_expiry_kind kind;
	char fingerprint[100]; /* SHA-256, "AB:CD:..." */
	char subject[256];     /* RFC 2253 */
	char label[128];       /* peer label ("127.0.0.1:8443"), or "" */
	int64_t not_after;     /* Unix seconds */
};

/* Returns the log id of a stage ("TLS-EXPIRY-7D"), or NULL for NONE. */
const char *cmi_tls_expiry_stage_id(enum cmi_expiry_stage stage);

/* Returns the stage of a certificate with seconds_left before notAfter
 * (negative once expired) under a threshold of warn_days (at least 1). */
enum cmi_expiry_stage cmi_tls_expiry_stage(long long seconds_left, int warn_days);

/* Fills facts for x. Returns CMICRO_EINVAL when its notAfter or digest
 * cannot be read, with a detail message. */
int cmi_tls_expiry_facts(X509 *x, enum cmi_expiry_kind kind, const char *label,
			 struct cmi_expiry_cert *out);

/*
 * Checks x against warn_days at time now (Unix seconds) and logs a warning
 * when its stage is more urgent than any logged for it before, so each
 * certificate is reported once per stage. Returns the stage.
 * NOTE: with more than CMI_TLS_EXPIRY_MAX certificates in use, an evicted
 * certificate loses its recorded stage and is reported again when next
 * checked.
 */
enum cmi_expiry_stage cmi_tls_expiry_check(X509 *x, enum cmi_expiry_kind kind,
					   const char *label, int warn_days, int64_t now);

/* Checks the configuration's own certificate (own, or cfg's when own is
 * NULL) and the CAs loaded from its CA files, then every peer seen. */
void cmi_tls_expiry_check_config(struct cmicro_tls_config *cfg, X509 *own,
				 int warn_days, int64_t now);

/*
 * Records the leaf of a peer that passed verification or was audited, and
 * checks it with the threshold of the latest check. peer labels it in logs
 * and metrics (may be NULL). Safe from any thread.
 */
void cmi_tls_expiry_observe(X509 *leaf, const char *peer);

/* Copies the peers seen (most recent label per certificate) into *out
 * (free with free); *n may be 0 with *out NULL. */
int cmi_tls_expiry_peers(struct cmi_expiry_cert **out, size_t *n);

/* Copies the CAs loaded from cfg's CA files; as cmi_tls_expiry_peers. */
int cmi_tls_expiry_config_cas(struct cmicro_tls_config *cfg, struct cmi_expiry_cert **out,
			      size_t *n);

/* Forgets every remembered certificate and stage (tests only). */
void cmi_tls_expiry_reset(void);

#endif
