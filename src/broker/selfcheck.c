/*
 * The serving node's look at its own certificate when it connects, before
 * any subscription registers: the facts it publishes in its registry
 * metadata (fingerprint and expiry), and the problems a peer would trip
 * over, each logged with its fix.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "broker/broker_int.h"

#define SC_DEFAULT_WARN_DAYS 30

int cmi_brk_expiry_warn_days(void)
{
	const char *env = cmi_getenv("MICRO_TLS_EXPIRY_WARN_DAYS");
	char *end = NULL;
	long v;

	if (env == NULL || env[0] == '\0')
		return SC_DEFAULT_WARN_DAYS;
	v = strtol(env, &end, 10);
	if (end != env && *end == '\0' && v >= 1 && v <= 3650)
		return (int)v;
	cmi_error(CMICRO_EINVAL,
		  "MICRO_TLS_EXPIRY_WARN_DAYS=\"%.60s\" is not a number of days from 1 to 3650; set "
		  "it to how many days before expiry warnings start, or unset it for %d",
		  env, SC_DEFAULT_WARN_DAYS);
	return -1;
}

/* Fills b->cert_fingerprint ("AB:CD:...") and b->cert_not_after (RFC 3339
 * UTC) from the certificate the listener serves. Under the broker's lock,
 * because a reload rewrites them while subscriptions read them. */
static void sc_identity_facts(struct cmicro_broker *b, X509 *x)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char fingerprint[sizeof(b->cert_fingerprint)] = "";
	char not_after[sizeof(b->cert_not_after)] = "";
	struct tm tm;

	if (X509_digest(x, EVP_sha256(), md, &len) == 1) {
		for (unsigned int i = 0; i < len; i++)
			cmi_append(fingerprint, sizeof(fingerprint), "%s%02X", i ? ":" : "",
				   md[i]);
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		strftime(not_after, sizeof(not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	pthread_mutex_lock(&b->lock);
	if (strcmp(b->cert_fingerprint, fingerprint) != 0 ||
	    strcmp(b->cert_not_after, not_after) != 0) {
		memcpy(b->cert_fingerprint, fingerprint, sizeof(fingerprint));
		memcpy(b->cert_not_after, not_after, sizeof(not_after));
		/* Registered subscriptions carry the old facts: the control
		 * thread renews them now, with rebuilt metadata. */
		b->meta_gen++;
		b->renew_now = true;
		pthread_cond_broadcast(&b->cond);
	}
	pthread_mutex_unlock(&b->lock);
}

static void sc_check_name(struct cmicro_broker *b, X509 *x)
{
	char names[512], text[640];

	if (cmi_host_matches(x, b->advertised, names, sizeof(names)) == 1)
		return;
	cmi_host_mismatch_message(x, b->advertised, text, sizeof(text));
	cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-CERT-NAME",
		"this node's certificate does not cover the address it registers (%s): %s; "
		"publishers in secure mode will reject it: reissue the certificate with %s %s",
		b->advertised, text, cmi_host_is_ip(b->advertised) ? "IP SAN" : "DNS SAN",
		b->advertised);
}

static void sc_check_usage(struct cmicro_broker *b, X509 *x)
{
	uint32_t eku = X509_get_extended_key_usage(x);
	bool mutual = cmicro_tls_config_get_client_auth(b->tls) != CMICRO_TLS_CLIENT_AUTH_NONE;

	if (!(eku & XKU_SSL_SERVER))
		cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-CERT-USAGE",
			"this node's certificate does not allow serverAuth (extended key usage), "
			"so verifying publishers reject it: reissue it with serverAuth (cmicro cert "
			"issue --usage server or both)");
	if (mutual && !(eku & XKU_SSL_CLIENT))
		cmi_log(CMICRO_LOG_WARNING, "broker", "BROKER-CERT-USAGE",
			"mutual TLS is on but this node's certificate does not allow clientAuth "
			"(extended key usage), so subscribers that require client certificates "
			"reject its deliveries: reissue it with --usage both");
}

void cmi_brk_self_check(struct cmicro_broker *b)
{
	X509 *x = b->server_ctx ? cmi_tls_context_own_cert(b->server_ctx) : NULL;

	if (x == NULL)
		return;
	sc_identity_facts(b, x);
	sc_check_name(b, x);
	sc_check_usage(b, x);
	X509_free(x);
}
