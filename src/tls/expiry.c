/*
 * Certificate expiry warnings. Every certificate checked (the node's own,
 * the CAs of its CA files, the peers it verified) is kept in one
 * process-wide table by kind and SHA-256 fingerprint, with the most urgent
 * stage already logged. A certificate is therefore reported when it enters
 * the warning threshold, again at 7 days and 1 day, and when it expires.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "tls/expiry_int.h"
#include "tls/tls_config_int.h"

#define EXP_DAY_S 86400LL

struct exp_entry {
	struct cmi_expiry_cert facts;
	enum cmi_expiry_stage logged;
	uint64_t seen; /* exp_clock at the latest check; 0 marks a free slot */
};

static pthread_mutex_t exp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct exp_entry exp_table[CMI_TLS_EXPIRY_MAX];
static uint64_t exp_clock;
/* The threshold of the latest configuration check, used for peers seen
 * between two checks. */
static atomic_int exp_warn_days = CMI_TLS_EXPIRY_WARN_DAYS;

const char *cmi_tls_expiry_stage_id(enum cmi_expiry_stage stage)
{
	switch (stage) {
	case CMI_EXPIRY_STAGE_THRESHOLD:
		return "TLS-EXPIRY-30D";
	case CMI_EXPIRY_STAGE_7D:
		return "TLS-EXPIRY-7D";
	case CMI_EXPIRY_STAGE_1D:
		return "TLS-EXPIRY-1D";
	case CMI_EXPIRY_STAGE_EXPIRED:
		return "TLS-EXPIRY-EXPIRED";
	default:
		return NULL;
	}
}

enum cmi_expiry_stage cmi_tls_expiry_stage(long long seconds_left, int warn_days)
{
	if (seconds_left <= 0)
		return CMI_EXPIRY_STAGE_EXPIRED;
	if (seconds_left > (long long)(warn_days < 1 ? 1 : warn_days) * EXP_DAY_S)
		return CMI_EXPIRY_STAGE_NONE;
	if (seconds_left <= EXP_DAY_S)
		return CMI_EXPIRY_STAGE_1D;
	if (seconds_left <= 7 * EXP_DAY_S)
		return CMI_EXPIRY_STAGE_7D;
	return CMI_EXPIRY_STAGE_THRESHOLD;
}

static void exp_fingerprint(X509 *x, char *buf, size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	buf[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &len) != 1)
		return;
	for (unsigned int i = 0; i < len; i++)
		cmi_append(buf, size, "%s%02X", i ? ":" : "", md[i]);
}

int cmi_tls_expiry_facts(X509 *x, enum cmi_expiry_kind kind, const char *label,
			 struct cmi_expiry_cert *out)
{
	struct tm tm;

	memset(out, 0, sizeof(*out));
	if (x == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
		return cmi_error_ossl(CMICRO_EINVAL, "cannot read the notAfter time of a "
						     "certificate; check that it is a valid X.509 "
						     "certificate");
	exp_fingerprint(x, out->fingerprint, sizeof(out->fingerprint));
	if (out->fingerprint[0] == '\0')
		return cmi_error_ossl(CMICRO_EINVAL, "cannot compute the SHA-256 fingerprint of a "
						     "certificate");
	out->kind = kind;
	out->not_after = (int64_t)timegm(&tm);
	cmi_tls_name_text(X509_get_subject_name(x), out->subject, sizeof(out->subject));
	cmi_fmt(out->label, sizeof(out->label), "%s", label ? label : "");
	return 0;
}

/* Returns the entry of f, adding it in a free or the least recently seen
 * slot. Called with exp_lock held. */
static struct exp_entry *exp_entry_of(const struct cmi_expiry_cert *f)
{
	struct exp_entry *oldest = &exp_table[0];

	for (size_t i = 0; i < CMI_TLS_EXPIRY_MAX; i++) {
		struct exp_entry *e = &exp_table[i];

		if (e->seen != 0 && e->facts.kind == f->kind &&
		    strcmp(e->facts.fingerprint, f->fingerprint) == 0)
			return e;
		if (e->seen < oldest->seen)
			oldest = e;
	}
	memset(oldest, 0, sizeof(*oldest));
	return oldest;
}

static void exp_who(const struct cmi_expiry_cert *f, char *buf, size_t size)
{
	if (f->kind == CMI_EXPIRY_OWN)
		cmi_fmt(buf, size, "this node's own certificate (subject %s)", f->subject);
	else if (f->kind == CMI_EXPIRY_CA)
		cmi_fmt(buf, size, "the trusted CA certificate (subject %s)", f->subject);
	else
		cmi_fmt(buf, size, "the certificate of peer %s (subject %s)",
			f->label[0] ? f->label : "(unnamed)", f->subject);
}

static const char *exp_fix(enum cmi_expiry_kind kind)
{
	if (kind == CMI_EXPIRY_OWN)
		return "renew it (cmicro cert issue) and move the new certificate and key over "
		       "MICRO_TLS_CERT_FILE and MICRO_TLS_KEY_FILE (write them elsewhere, then mv): "
		       "a running node reloads them within MICRO_TLS_RELOAD_INTERVAL seconds";
	if (kind == CMI_EXPIRY_CA)
		return "add the CA's successor to MICRO_TLS_CA_FILE and reissue the certificates it "
		       "signed, because they stop verifying when it expires";
	return "renew the certificate on that peer";
}

static void exp_log(const struct cmi_expiry_cert *f, enum cmi_expiry_stage stage, int warn_days,
		    int64_t now)
{
	long long left = (long long)(f->not_after - now);
	char who[448], date[32];
	struct tm tm;
	time_t t = (time_t)f->not_after;

	exp_who(f, who, sizeof(who));
	date[0] = '\0';
	if (gmtime_r(&t, &tm) != NULL)
		strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (stage == CMI_EXPIRY_STAGE_EXPIRED) {
		cmi_log(CMICRO_LOG_ERR, "tls", cmi_tls_expiry_stage_id(stage),
			"%s expired on %s, %lld days ago; verifying peers reject it: %s", who, date,
			-left / EXP_DAY_S, exp_fix(f->kind));
		return;
	}
	/* Days left round up, so a certificate issued for 5 days reads "5 days"
	 * in the seconds after its issue. */
	cmi_log(stage == CMI_EXPIRY_STAGE_1D ? CMICRO_LOG_ERR : CMICRO_LOG_WARNING, "tls",
		cmi_tls_expiry_stage_id(stage),
		"%s expires on %s, in %lld days (warning threshold %d days, "
		"MICRO_TLS_EXPIRY_WARN_DAYS); before then, %s",
		who, date, (left + EXP_DAY_S - 1) / EXP_DAY_S, warn_days, exp_fix(f->kind));
}

/* Records f and logs it when its stage is new for it. */
static enum cmi_expiry_stage exp_check_facts(const struct cmi_expiry_cert *f, int warn_days,
					     int64_t now)
{
	enum cmi_expiry_stage stage = cmi_tls_expiry_stage(f->not_after - now, warn_days);
	struct exp_entry *e;
	bool report = false;

	pthread_mutex_lock(&exp_lock);
	e = exp_entry_of(f);
	e->facts = *f;
	e->seen = ++exp_clock;
	if (stage > e->logged) {
		e->logged = stage;
		report = true;
	}
	pthread_mutex_unlock(&exp_lock);

	if (report)
		exp_log(f, stage, warn_days, now);
	return stage;
}

enum cmi_expiry_stage cmi_tls_expiry_check(X509 *x, enum cmi_expiry_kind kind,
					   const char *label, int warn_days, int64_t now)
{
	struct cmi_expiry_cert f;

	if (cmi_tls_expiry_facts(x, kind, label, &f) != 0)
		return CMI_EXPIRY_STAGE_NONE;
	return exp_check_facts(&f, warn_days, now);
}

/* Checks every remembered peer again, because a peer seen once may not
 * connect again before its certificate expires. */
static void exp_check_peers(int warn_days, int64_t now)
{
	struct cmi_expiry_cert *peers = NULL;
	size_t n = 0;

	if (cmi_tls_expiry_peers(&peers, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++)
		exp_check_facts(&peers[i], warn_days, now);
	free(peers);
}

void cmi_tls_expiry_check_config(struct cmicro_tls_config *cfg, X509 *own, int warn_days,
				 int64_t now)
{
	struct cmicro_cert *held = NULL;
	STACK_OF(X509) *cas = cfg != NULL ? cmi_tls_config_cas_hold(cfg) : NULL;

	atomic_store(&exp_warn_days, warn_days);
	if (own == NULL && cfg != NULL) {
		held = cmi_tls_config_cert_hold(cfg);
		own = held != NULL ? held->x509 : NULL;
	}
	if (own != NULL)
		cmi_tls_expiry_check(own, CMI_EXPIRY_OWN, NULL, warn_days, now);
	for (int i = 0; i < sk_X509_num(cas); i++)
		cmi_tls_expiry_check(sk_X509_value(cas, i), CMI_EXPIRY_CA, NULL, warn_days, now);
	exp_check_peers(warn_days, now);
	sk_X509_pop_free(cas, X509_free);
	cmicro_cert_free(held);
}

void cmi_tls_expiry_observe(X509 *leaf, const char *peer)
{
	cmi_tls_expiry_check(leaf, CMI_EXPIRY_PEER, peer, atomic_load(&exp_warn_days),
			     (int64_t)time(NULL));
}

int cmi_tls_expiry_peers(struct cmi_expiry_cert **out, size_t *n)
{
	struct cmi_expiry_cert *list = cmi_calloc(CMI_TLS_EXPIRY_MAX, sizeof(*list));
	size_t count = 0;

	*out = NULL;
	*n = 0;
	if (list == NULL)
		return CMICRO_ENOMEM;
	pthread_mutex_lock(&exp_lock);
	for (size_t i = 0; i < CMI_TLS_EXPIRY_MAX; i++) {
		if (exp_table[i].seen != 0 && exp_table[i].facts.kind == CMI_EXPIRY_PEER)
			list[count++] = exp_table[i].facts;
	}
	pthread_mutex_unlock(&exp_lock);
	if (count == 0) {
		free(list);
		return 0;
	}
	*out = list;
	*n = count;
	return 0;
}

int cmi_tls_expiry_config_cas(struct cmicro_tls_config *cfg, struct cmi_expiry_cert **out,
			      size_t *n)
{
	STACK_OF(X509) *cas = cfg != NULL ? cmi_tls_config_cas_hold(cfg) : NULL;
	int total = sk_X509_num(cas);
	struct cmi_expiry_cert *list = NULL;
	size_t count = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (total > 0) {
		list = cmi_calloc((size_t)total, sizeof(*list));
		if (list == NULL)
			rc = CMICRO_ENOMEM;
	}
	for (int i = 0; list != NULL && i < total; i++) {
		if (cmi_tls_expiry_facts(sk_X509_value(cas, i), CMI_EXPIRY_CA, NULL,
					 &list[count]) == 0)
			count++;
	}
	sk_X509_pop_free(cas, X509_free);
	*out = list;
	*n = count;
	return rc;
}

void cmi_tls_expiry_reset(void)
{
	pthread_mutex_lock(&exp_lock);
	memset(exp_table, 0, sizeof(exp_table));
	exp_clock = 0;
	pthread_mutex_unlock(&exp_lock);
	atomic_store(&exp_warn_days, CMI_TLS_EXPIRY_WARN_DAYS);
}
