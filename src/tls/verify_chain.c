/*
 * Peer chain verification in the order of Go's crypto/x509, so that one
 * certificate gets one verdict across a fleet of C and Go nodes. The order
 * is the validity period of the peer's own certificate, the host name,
 * chain building (authority, intermediates' validity, revocation, key and
 * signature strength), and last the extended key usage.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "tls/tls_verify_int.h"

/* Errors one X509_verify_cert run reports. The callback continues after
 * each, so the classifier gets them all and can apply Go's order. */
#define CHAIN_MAX_ERRORS 32

struct chain_error {
	int code;
	int depth;
	X509 *cert; /* borrowed from the store context */
};

struct chain_run {
	struct chain_error errors[CHAIN_MAX_ERRORS];
	int n_errors;
};

static int chain_collect_cb(int ok, X509_STORE_CTX *store_ctx)
{
	struct chain_run *run = X509_STORE_CTX_get_app_data(store_ctx);
	int code = X509_STORE_CTX_get_error(store_ctx);

	if (ok)
		return 1;
	/* A CRL missing for some issuer is not a revocation: only the
	 * certificates a loaded CRL lists fail. */
	if (code == X509_V_ERR_UNABLE_TO_GET_CRL)
		return 1;
	if (run->n_errors < CHAIN_MAX_ERRORS) {
		struct chain_error *e = &run->errors[run->n_errors++];

		e->code = code;
		e->depth = X509_STORE_CTX_get_error_depth(store_ctx);
		e->cert = X509_STORE_CTX_get_current_cert(store_ctx);
	}
	return 1;
}

/* Leaf validity comes first in Go, before the name and the chain. */
static bool chain_check_leaf_time(X509 *leaf, struct cmicro_tls_verdict *v)
{
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
		cmi_tls_text_expired(v, leaf, 0, 1);
		v->openssl_code = X509_V_ERR_CERT_HAS_EXPIRED;
		return false;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
		cmi_tls_text_not_yet_valid(v, leaf, 0, 1);
		v->openssl_code = X509_V_ERR_CERT_NOT_YET_VALID;
		return false;
	}
	return true;
}

static bool chain_is_authority_error(int code)
{
	return code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
	       code == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
	       code == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE ||
	       code == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
	       code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN || code == X509_V_ERR_CERT_UNTRUSTED;
}

static const struct chain_error *chain_find(const struct chain_run *run, bool (*match)(int code))
{
	for (int i = 0; i < run->n_errors; i++) {
		if (match(run->errors[i].code))
			return &run->errors[i];
	}
	return NULL;
}

static bool chain_is_time_error(int code)
{
	return code == X509_V_ERR_CERT_HAS_EXPIRED || code == X509_V_ERR_CERT_NOT_YET_VALID;
}

static bool chain_is_strength_error(int code)
{
	return code == X509_V_ERR_EE_KEY_TOO_SMALL || code == X509_V_ERR_CA_KEY_TOO_SMALL ||
	       code == X509_V_ERR_CA_MD_TOO_WEAK;
}

static bool chain_is_revoked(int code)
{
	return code == X509_V_ERR_CERT_REVOKED;
}

static bool chain_is_any(int code)
{
	(void)code;
	return true;
}

/* Returns whether the certificate names its issuer's certificate in an
 * Authority Information Access caIssuers URI (RFC 5280 4.2.2.1). */
static bool chain_has_ca_issuers(X509 *x)
{
	AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
	bool found = false;

	for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
		ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);

		if (OBJ_obj2nid(ad->method) == NID_ad_ca_issuers && ad->location->type == GEN_URI)
			found = true;
	}
	AUTHORITY_INFO_ACCESS_free(aia);
	return found;
}

/* Counts the certificates the peer sent that the built chain did not use. */
static int chain_count_unused(STACK_OF(X509) *sent, STACK_OF(X509) *chain)
{
	int unused = 0;

	for (int i = 0; i < sk_X509_num(sent); i++) {
		bool used = false;

		for (int j = 0; !used && j < sk_X509_num(chain); j++)
			used = X509_cmp(sk_X509_value(sent, i), sk_X509_value(chain, j)) == 0;
		unused += !used;
	}
	return unused;
}

struct chain_facts {
	X509 *leaf;
	STACK_OF(X509) *sent;  /* as the peer sent it, leaf first */
	STACK_OF(X509) *chain; /* as X509_verify_cert built it */
};

static void chain_text_unknown(struct cmicro_tls_verdict *v, const char *issuer, bool leaf_only)
{
	v->reason = CMICRO_TLS_REASON_UNKNOWN_AUTHORITY;
	cmi_fmt(v->message, sizeof(v->message),
	        "certificate signed by unknown authority "
	        "(issuer: %s): add the issuing CA to the trust (MICRO_TLS_CA_FILE or --ca)",
	        issuer);
	if (leaf_only)
		cmi_append(v->message, sizeof(v->message),
		           "; the peer sent no intermediate "
		           "certificates; if %s is an intermediate CA, configure the peer to send "
		           "its full chain",
		           issuer);
}

/*
 * Tells a missing intermediate from an unknown CA. The chain is incomplete
 * only when the missing certificate is evidently an intermediate: the peer
 * sent its leaf alone and the leaf carries an AIA caIssuers URI (public and
 * most private CAs set one on leaves issued by intermediates), or the peer
 * sent intermediates and some of them went unused because a link between
 * them is missing. Otherwise the issuer is simply not trusted, which Go
 * reports as unknown authority; for a leaf sent alone the message then adds
 * that the issuer might be an intermediate the peer failed to send.
 */
static void chain_classify_authority(const struct chain_error *e, const struct chain_facts *f,
                                     struct cmicro_tls_verdict *v)
{
	int n_sent = sk_X509_num(f->sent);
	char subject[256], issuer[256];

	cmi_tls_name_text(X509_get_subject_name(e->cert), subject, sizeof(subject));
	cmi_tls_name_text(X509_get_issuer_name(e->cert), issuer, sizeof(issuer));
	if (e->code == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
		v->reason = CMICRO_TLS_REASON_SELF_SIGNED;
		cmi_fmt(v->message, sizeof(v->message),
		        "certificate signed by unknown authority: "
		        "the peer's certificate is self-signed (subject %s) and not in the trust; "
		        "add it to the trust (MICRO_TLS_CA_FILE or --ca) or give the peer a "
		        "certificate issued by a trusted CA",
		        subject);
	} else if (e->code == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
	           e->code == X509_V_ERR_CERT_UNTRUSTED) {
		chain_text_unknown(v, e->code == X509_V_ERR_CERT_UNTRUSTED ? issuer : subject,
		                   false);
	} else if (n_sent <= 1 && chain_has_ca_issuers(f->leaf)) {
		v->reason = CMICRO_TLS_REASON_INCOMPLETE_CHAIN;
		cmi_fmt(
		    v->message, sizeof(v->message),
		    "certificate chain is incomplete: the peer "
		    "sent only its own certificate, and its issuer %s, an intermediate CA named "
		    "in the certificate's CA Issuers URI, is not in the trust; configure the peer "
		    "to send its full chain (its certificate, then the intermediates)",
		    issuer);
	} else if (n_sent > 1 && chain_count_unused(f->sent, f->chain) > 0) {
		v->reason = CMICRO_TLS_REASON_INCOMPLETE_CHAIN;
		cmi_fmt(v->message, sizeof(v->message),
		        "certificate chain is incomplete: the peer "
		        "sent %d certificates but not %s, the issuer of %s, which belongs between "
		        "them; configure the peer to send its full chain in order",
		        n_sent, issuer, subject);
	} else {
		chain_text_unknown(v, issuer, n_sent <= 1);
	}
}

static void chain_classify_time(const struct chain_error *e, const struct chain_facts *f,
                                struct cmicro_tls_verdict *v)
{
	int len = sk_X509_num(f->chain);

	if (e->code == X509_V_ERR_CERT_HAS_EXPIRED)
		cmi_tls_text_expired(v, e->cert, e->depth, len);
	else
		cmi_tls_text_not_yet_valid(v, e->cert, e->depth, len);
}

/* Picks the error Go would report first among those one run collected. */
static void chain_classify(const struct chain_run *run, const struct chain_facts *f,
                           struct cmicro_tls_verdict *v)
{
	const struct chain_error *e;

	if ((e = chain_find(run, chain_is_authority_error)) != NULL)
		chain_classify_authority(e, f, v);
	else if ((e = chain_find(run, chain_is_time_error)) != NULL)
		chain_classify_time(e, f, v);
	else if ((e = chain_find(run, chain_is_strength_error)) != NULL &&
	         e->code == X509_V_ERR_CA_MD_TOO_WEAK)
		cmi_tls_text_weak_signature(v, e->cert, e->depth);
	else if (e != NULL)
		cmi_tls_text_weak_key(v, e->cert, e->depth);
	else if ((e = chain_find(run, chain_is_revoked)) != NULL)
		cmi_tls_text_revoked(v, e->cert, e->depth);
	else if ((e = chain_find(run, chain_is_any)) != NULL)
		cmi_tls_text_other(v, e->cert, e->depth, e->code);
	if (e != NULL) {
		v->openssl_code = e->code;
		v->depth = e->depth;
	}
}

/* Go checks extended key usage across the whole chain. A certificate
 * without the extension, or with anyExtendedKeyUsage, allows every usage,
 * and any other certificate must list the usage of the peer's role.
 * OpenSSL's purpose check also looks at keyUsage and Netscape types, which
 * Go ignores, so it is not used. */
static bool chain_check_usage(STACK_OF(X509) *chain, enum cmicro_tls_role verifier,
                              struct cmicro_tls_verdict *v)
{
	uint32_t want = verifier == CMICRO_TLS_CLIENT ? XKU_SSL_SERVER : XKU_SSL_CLIENT;

	for (int depth = 0; depth < sk_X509_num(chain); depth++) {
		X509 *x = sk_X509_value(chain, depth);
		uint32_t xku;

		if (!(X509_get_extension_flags(x) & EXFLAG_XKUSAGE))
			continue;
		xku = X509_get_extended_key_usage(x);
		if (xku & (want | XKU_ANYEKU))
			continue;
		cmi_tls_text_bad_usage(v, x, depth, verifier);
		v->openssl_code = X509_V_ERR_INVALID_PURPOSE;
		v->depth = depth;
		return false;
	}
	return true;
}

static void chain_internal_error(struct cmicro_tls_verdict *v, const char *what)
{
	char detail[512] = "";

	cmi_ossl_drain(detail, sizeof(detail));
	v->reason = CMICRO_TLS_REASON_OTHER;
	v->openssl_code = X509_V_ERR_UNSPECIFIED;
	cmi_fmt(v->message, sizeof(v->message), "certificate verification could not run: %s%s",
	        what, detail);
}

/* Auth level 2 makes OpenSSL flag keys under 112 bits of security (RSA <
 * 2048) and SHA-1 signatures. Partial chains are accepted because Go trusts
 * any certificate in its pool, intermediates included. */
static int chain_prepare(X509_STORE_CTX *sctx, struct cmicro_tls_config *cfg)
{
	X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(sctx);
	unsigned long flags = X509_V_FLAG_PARTIAL_CHAIN;

	if (cfg->crl_file != NULL)
		flags |= X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL;
	X509_VERIFY_PARAM_set_auth_level(param, 2);
	if (!X509_VERIFY_PARAM_set_flags(param, flags))
		return -1;
	X509_STORE_CTX_set_verify_cb(sctx, chain_collect_cb);
	return 0;
}

static void chain_run(struct cmicro_tls_config *cfg, X509_STORE *store,
                      enum cmicro_tls_role verifier, X509 *leaf, STACK_OF(X509) *sent,
                      struct cmicro_tls_verdict *v)
{
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	struct chain_run run = {.n_errors = 0};
	struct chain_facts facts = {.leaf = leaf, .sent = sent};

	if (sctx == NULL || !X509_STORE_CTX_init(sctx, store, leaf, sent) ||
	    chain_prepare(sctx, cfg) != 0 || !X509_STORE_CTX_set_app_data(sctx, &run)) {
		chain_internal_error(v, "cannot set up the chain check");
		goto out;
	}
	if (X509_verify_cert(sctx) < 0 && run.n_errors == 0) {
		chain_internal_error(v, "X509_verify_cert failed");
		goto out;
	}

	facts.chain = X509_STORE_CTX_get0_chain(sctx);
	if (run.n_errors > 0)
		chain_classify(&run, &facts, v);
	else
		chain_check_usage(facts.chain, verifier, v);
out:
	X509_STORE_CTX_free(sctx);
	ERR_clear_error();
}

void cmi_tls_verify_chain(struct cmicro_tls_config *cfg, X509_STORE *store,
                          enum cmicro_tls_role role, const char *host, X509 *leaf,
                          STACK_OF(X509) *sent, struct cmicro_tls_verdict *verdict)
{
	memset(verdict, 0, sizeof(*verdict));
	verdict->reason = CMICRO_TLS_REASON_NONE;
	verdict->accepted = true;
	if (leaf == NULL) {
		verdict->reason = CMICRO_TLS_REASON_NO_CERTIFICATE;
		cmi_fmt(verdict->message, sizeof(verdict->message),
		        "the peer sent no certificate; "
		        "give it a certificate and key");
		return;
	}
	if (!chain_check_leaf_time(leaf, verdict))
		return;
	if (role == CMICRO_TLS_CLIENT && host != NULL && !cmi_host_matches(leaf, host, NULL, 0)) {
		verdict->reason = CMICRO_TLS_REASON_HOSTNAME_MISMATCH;
		verdict->openssl_code = X509_V_ERR_HOSTNAME_MISMATCH;
		cmi_host_mismatch_message(leaf, host, verdict->message, sizeof(verdict->message));
		return;
	}
	chain_run(cfg, store, role, leaf, sent, verdict);
}
