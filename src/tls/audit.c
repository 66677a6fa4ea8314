/*
 * Verification failures of a configuration: counted per reason, kept as
 * findings (peer, reason, message, counts) for reports, and in audit mode
 * logged once per peer and reason, so a peer failing on every connection
 * is logged once and memory stays bounded.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tls/tls_config_int.h"

/* FNV-1a over the reason and the peer's names: the audit set stores hashes
 * only, so its memory does not depend on label lengths. */
static uint64_t audit_hash(const char *address, const char *node, enum cmicro_tls_reason reason)
{
	uint64_t h = 14695981039346656037ull;

	h = (h ^ (uint64_t)reason) * 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)address; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ull;
	h = (h ^ 0xffu) * 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)node; *p != '\0'; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h != 0 ? h : 1;
}

/* Returns true when hash was not seen before and is now recorded; false
 * when seen, or when the set is full (reported once through *full_now).
 * Called with set->lock held. */
static bool audit_first(struct tls_audit_set *set, uint64_t hash, bool *full_now)
{
	const size_t slots = 2 * CMI_TLS_AUDIT_MAX;

	if (set->hashes == NULL)
		set->hashes = calloc(slots, sizeof(*set->hashes));
	for (size_t i = hash % slots, n = 0; set->hashes != NULL && n < slots;
	     i = (i + 1) % slots, n++) {
		if (set->hashes[i] == hash)
			return false;
		if (set->hashes[i] != 0)
			continue;
		if (set->used < CMI_TLS_AUDIT_MAX) {
			set->hashes[i] = hash;
			set->used++;
			return true;
		}
		if (!set->full_reported) {
			set->full_reported = true;
			*full_now = true;
		}
		return false;
	}
	return false;
}

/* Updates or appends the finding of (address, node, reason); lock held. */
static void audit_keep(struct tls_audit_set *set, const struct cmicro_tls_finding *f)
{
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; i < set->n_findings; i++) {
		struct cmicro_tls_finding *old = &set->findings[i];

		if (old->reason == f->reason && strcmp(old->address, f->address) == 0 &&
		    strcmp(old->node_id, f->node_id) == 0 && strcmp(old->peer, f->peer) == 0) {
			old->count++;
			old->last_seen = now;
			memcpy(old->message, f->message, sizeof(old->message));
			return;
		}
	}
	if (set->findings == NULL)
		set->findings = calloc(CMI_TLS_FINDINGS_MAX, sizeof(*set->findings));
	if (set->findings == NULL || set->n_findings == CMI_TLS_FINDINGS_MAX)
		return;
	set->findings[set->n_findings] = *f;
	set->findings[set->n_findings].count = 1;
	set->findings[set->n_findings].first_seen = now;
	set->findings[set->n_findings].last_seen = now;
	set->n_findings++;
}

/* Writes "peer 127.0.0.1:8443 (node orders-1)" or the label alone. */
static void audit_peer_text(const struct cmicro_tls_finding *f, char *buf, size_t size)
{
	if (f->address[0] != '\0' && f->node_id[0] != '\0')
		cmi_fmt(buf, size, "%s %s (node %s)", f->peer_is_client ? "client" : "peer",
		        f->address, f->node_id);
	else if (f->address[0] != '\0')
		cmi_fmt(buf, size, "%s %s", f->peer_is_client ? "client" : "peer", f->address);
	else
		cmi_fmt(buf, size, "peer %s", f->peer);
}

static void audit_log(const struct cmicro_tls_config *cfg, const struct cmicro_tls_finding *f,
                      bool first, bool full_now)
{
	char who[320];

	audit_peer_text(f, who, sizeof(who));
	if (cfg->verify != CMICRO_TLS_VERIFY_AUDIT) {
		cmi_log(CMICRO_LOG_DEBUG, "tls", "TLS-VERIFY-FAIL", "%s rejected (%s): %s", who,
		        cmicro_tls_reason_name(f->reason), f->message);
		return;
	}
	if (first)
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-AUDIT",
		        "audit: %s would be rejected in secure mode (%s): %s", who,
		        cmicro_tls_reason_name(f->reason), f->message);
	if (full_now)
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-AUDIT",
		        "audit: %d distinct peer failures logged; further new ones are only "
		        "counted (cmicro_tls_config_reason_count)",
		        CMI_TLS_AUDIT_MAX);
}

static void audit_record(struct cmicro_tls_config *cfg, const struct cmicro_tls_finding *f)
{
	bool first, full_now = false;

	if (f->reason == CMICRO_TLS_REASON_NONE || f->reason >= CMICRO_TLS_REASON_COUNT)
		return;
	atomic_fetch_add(&cfg->reason_counts[f->reason], 1);
	pthread_mutex_lock(&cfg->audit.lock);
	first = audit_first(&cfg->audit, audit_hash(f->address[0] ? f->address : f->peer,
	                                            f->node_id, f->reason),
	                    &full_now);
	audit_keep(&cfg->audit, f);
	pthread_mutex_unlock(&cfg->audit.lock);
	audit_log(cfg, f, first, full_now);
}

void cmi_tls_config_record(struct cmicro_tls_config *cfg, const struct tls_ssl_data *data,
                           enum cmicro_tls_role role, const struct cmicro_tls_verdict *verdict)
{
	struct cmicro_tls_finding f;

	if (verdict->reason == CMICRO_TLS_REASON_NONE) {
		atomic_fetch_add(&cfg->audit.handshakes_ok, 1);
		return;
	}
	memset(&f, 0, sizeof(f));
	cmi_fmt(f.peer, sizeof(f.peer), "%s",
	        data && data->peer_label ? data->peer_label : "(unnamed peer)");
	if (data != NULL && data->address != NULL)
		cmi_fmt(f.address, sizeof(f.address), "%s", data->address);
	if (data != NULL && data->node_id != NULL)
		cmi_fmt(f.node_id, sizeof(f.node_id), "%s", data->node_id);
	f.peer_is_client = role == CMICRO_TLS_SERVER;
	f.reason = verdict->reason;
	cmi_fmt(f.message, sizeof(f.message), "%s", verdict->message);
	audit_record(cfg, &f);
}

void cmi_tls_record_failure(struct cmicro_tls_config *cfg, const char *address,
                            const char *node_id, enum cmicro_tls_reason reason, const char *message)
{
	struct cmicro_tls_finding f;

	if (cfg == NULL)
		return;
	memset(&f, 0, sizeof(f));
	cmi_fmt(f.address, sizeof(f.address), "%s", address ? address : "");
	cmi_fmt(f.node_id, sizeof(f.node_id), "%s", node_id ? node_id : "");
	cmi_fmt(f.peer, sizeof(f.peer), "%s", node_id ? node_id : (address ? address : "?"));
	f.reason = reason;
	cmi_fmt(f.message, sizeof(f.message), "%s", message ? message : "");
	audit_record(cfg, &f);
}

CMICRO_API size_t cmicro_tls_config_finding_count(const struct cmicro_tls_config *cfg)
{
	struct cmicro_tls_config *c = (struct cmicro_tls_config *)cfg;
	size_t n;

	if (c == NULL)
		return 0;
	pthread_mutex_lock(&c->audit.lock);
	n = c->audit.n_findings;
	pthread_mutex_unlock(&c->audit.lock);
	return n;
}

CMICRO_API int cmicro_tls_config_finding(const struct cmicro_tls_config *cfg, size_t i,
                                         struct cmicro_tls_finding *out)
{
	struct cmicro_tls_config *c = (struct cmicro_tls_config *)cfg;
	int rc = 0;

	if (c == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_finding: configuration and out "
		                                "must be given");
	pthread_mutex_lock(&c->audit.lock);
	if (i < c->audit.n_findings)
		*out = c->audit.findings[i];
	else
		rc = cmi_error(CMICRO_EINVAL, "finding %zu does not exist: the configuration has "
		                              "%zu; use cmicro_tls_config_finding_count",
		               i, c->audit.n_findings);
	pthread_mutex_unlock(&c->audit.lock);
	return rc;
}

CMICRO_API uint64_t cmicro_tls_config_verified_count(const struct cmicro_tls_config *cfg)
{
	return cfg ? atomic_load(&((struct cmicro_tls_config *)cfg)->audit.handshakes_ok) : 0;
}
