/*
 * Verdict messages: the words Go users search for ("certificate signed by
 * unknown authority", "certificate has expired", ...) followed by the
 * certificate involved and the fix.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "tls/tls_verify_int.h"

void cmi_tls_name_text(const X509_NAME *name, char *buf, size_t size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len = 0;

	cmi_fmt(buf, size, "(unnamed)");
	if (bio == NULL || name == NULL)
		goto out;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	if (len > 0)
		cmi_fmt(buf, size, "%.*s", (int)len, data);
out:
	BIO_free(bio);
	ERR_clear_error();
}

void cmi_tls_time_text(const ASN1_TIME *t, char *buf, size_t size)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm) ||
	    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		cmi_fmt(buf, size, "(unreadable time)");
}

/* Formats a span in the largest unit that rounds to at least 2, so that
 * "33 days" and "2 hours" read naturally and a few seconds are not "0 days". */
void cmi_tls_span_text(long long seconds, char *buf, size_t size)
{
	static const struct {
		long long unit;
		const char *name;
	} units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};

	if (seconds < 0)
		seconds = -seconds;
	for (size_t i = 0; i < CMI_ARRAY_LEN(units); i++) {
		long long n = (seconds + units[i].unit / 2) / units[i].unit;

		if (n >= 2 || units[i].unit == 1) {
			cmi_fmt(buf, size, "%lld %s%s", n, units[i].name, n == 1 ? "" : "s");
			return;
		}
	}
}

/* Returns seconds from now to t (negative when t is in the past). */
long long cmi_tls_seconds_from_now(const ASN1_TIME *t)
{
	int days = 0;
	int secs = 0;

	if (!ASN1_TIME_diff(&days, &secs, NULL, t)) {
		ERR_clear_error();
		return 0;
	}
	return (long long)days * 86400 + secs;
}

static void text_subject(X509 *x, char *buf, size_t size)
{
	cmi_tls_name_text(X509_get_subject_name(x), buf, size);
}

static const char *text_role_of(int depth, int chain_len)
{
	if (depth == 0)
		return "";
	return depth + 1 >= chain_len ? "root CA " : "intermediate CA ";
}

void cmi_tls_text_expired(struct cmicro_tls_verdict *v, X509 *x, int depth, int chain_len)
{
	const ASN1_TIME *t = X509_get0_notAfter(x);
	char when[32], span[32], subject[256];

	cmi_tls_time_text(t, when, sizeof(when));
	cmi_tls_span_text(cmi_tls_seconds_from_now(t), span, sizeof(span));
	text_subject(x, subject, sizeof(subject));
	v->reason = CMICRO_TLS_REASON_EXPIRED;
	if (depth == 0)
		cmi_fmt(v->message, sizeof(v->message),
		        "certificate has expired: not after %s, %s "
		        "ago (subject %s); renew it",
		        when, span, subject);
	else
		cmi_fmt(
		    v->message, sizeof(v->message),
		    "certificate has expired: the %scertificate "
		    "%s (depth %d) is not valid after %s, %s ago; renew that CA certificate and "
		    "deploy it with the chain",
		    text_role_of(depth, chain_len), subject, depth, when, span);
}

void cmi_tls_text_not_yet_valid(struct cmicro_tls_verdict *v, X509 *x, int depth, int chain_len)
{
	const ASN1_TIME *t = X509_get0_notBefore(x);
	char when[32], span[32], subject[256];

	cmi_tls_time_text(t, when, sizeof(when));
	cmi_tls_span_text(cmi_tls_seconds_from_now(t), span, sizeof(span));
	text_subject(x, subject, sizeof(subject));
	v->reason = CMICRO_TLS_REASON_NOT_YET_VALID;
	if (depth == 0)
		cmi_fmt(
		    v->message, sizeof(v->message),
		    "certificate is not yet valid: not before "
		    "%s, %s ahead of the local clock (subject %s); check the clock (NTP) on both "
		    "hosts",
		    when, span, subject);
	else
		cmi_fmt(v->message, sizeof(v->message),
		        "certificate is not yet valid: the "
		        "%scertificate %s (depth %d) is not valid before %s, %s ahead of the local "
		        "clock; check the clock (NTP) on both hosts",
		        text_role_of(depth, chain_len), subject, depth, when, span);
}

static const char *text_key_kind(const EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_RSA:
	case EVP_PKEY_RSA_PSS:
		return "RSA";
	case EVP_PKEY_EC:
		return "EC";
	case EVP_PKEY_DSA:
		return "DSA";
	case EVP_PKEY_DH:
		return "DH";
	default:
		return "public";
	}
}

void cmi_tls_text_weak_key(struct cmicro_tls_verdict *v, X509 *x, int depth)
{
	EVP_PKEY *key = X509_get0_pubkey(x);
	char subject[256];

	text_subject(x, subject, sizeof(subject));
	v->reason = CMICRO_TLS_REASON_WEAK_KEY;
	if (key == NULL)
		cmi_fmt(v->message, sizeof(v->message),
		        "certificate key cannot be read (subject "
		        "%s, depth %d); reissue it with an ECDSA P-256 or RSA >= 2048 key",
		        subject, depth);
	else
		cmi_fmt(v->message, sizeof(v->message),
		        "%s %d-bit key is too small (subject %s, "
		        "depth %d); use ECDSA P-256 or RSA >= 2048",
		        text_key_kind(key), EVP_PKEY_get_bits(key), subject, depth);
	ERR_clear_error();
}

void cmi_tls_text_weak_signature(struct cmicro_tls_verdict *v, X509 *x, int depth)
{
	int md = NID_undef;
	char subject[256];

	text_subject(x, subject, sizeof(subject));
	if (!X509_get_signature_info(x, &md, NULL, NULL, NULL))
		md = NID_undef;
	v->reason = CMICRO_TLS_REASON_WEAK_SIGNATURE;
	cmi_fmt(v->message, sizeof(v->message),
	        "certificate is signed with an insecure algorithm "
	        "(%s, digest %s; subject %s, depth %d); reissue it with a SHA-256 or stronger "
	        "signature",
	        OBJ_nid2ln(X509_get_signature_nid(x)), md != NID_undef ? OBJ_nid2sn(md) : "unknown",
	        subject, depth);
	ERR_clear_error();
}

void cmi_tls_text_revoked(struct cmicro_tls_verdict *v, X509 *x, int depth)
{
	char subject[256];
	char serial[128] = "?";
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	if (hex != NULL)
		cmi_fmt(serial, sizeof(serial), "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	text_subject(x, subject, sizeof(subject));
	v->reason = CMICRO_TLS_REASON_REVOKED;
	cmi_fmt(v->message, sizeof(v->message),
	        "certificate has been revoked by its CA (subject "
	        "%s, serial %s, depth %d); install a newly issued certificate on the peer",
	        subject, serial, depth);
	ERR_clear_error();
}

/* Lists the usages an extended key usage extension allows. */
static void text_usages(X509 *x, char *buf, size_t size)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
	    {XKU_SSL_SERVER, "serverAuth"}, {XKU_SSL_CLIENT, "clientAuth"},
	    {XKU_SMIME, "emailProtection"}, {XKU_CODE_SIGN, "codeSigning"},
	    {XKU_OCSP_SIGN, "OCSPSigning"}, {XKU_TIMESTAMP, "timeStamping"},
	};
	uint32_t xku = X509_get_extended_key_usage(x);

	buf[0] = '\0';
	for (size_t i = 0; i < CMI_ARRAY_LEN(names); i++) {
		if (xku & names[i].bit)
			cmi_append(buf, size, "%s%s", buf[0] ? ", " : "", names[i].name);
	}
	if (buf[0] == '\0')
		cmi_fmt(buf, size, "no TLS purpose");
}

void cmi_tls_text_bad_usage(struct cmicro_tls_verdict *v, X509 *x, int depth,
                            enum cmicro_tls_role verifier)
{
	bool want_server = verifier == CMICRO_TLS_CLIENT;
	char usages[128], subject[256];

	text_usages(x, usages, sizeof(usages));
	text_subject(x, subject, sizeof(subject));
	v->reason = CMICRO_TLS_REASON_BAD_USAGE;
	cmi_fmt(v->message, sizeof(v->message),
	        "certificate not valid for %s authentication: "
	        "%s extended key usage allows only %s (subject %s); reissue it with "
	        "extendedKeyUsage %s",
	        want_server ? "server" : "client", depth == 0 ? "its" : "the issuing CA's", usages,
	        subject, want_server ? "serverAuth" : "clientAuth");
}

void cmi_tls_text_other(struct cmicro_tls_verdict *v, X509 *x, int depth, long code)
{
	char subject[256] = "(none)";

	if (x != NULL)
		text_subject(x, subject, sizeof(subject));
	v->reason = CMICRO_TLS_REASON_OTHER;
	cmi_fmt(v->message, sizeof(v->message),
	        "certificate verification failed: %s (OpenSSL "
	        "error %ld, subject %s, depth %d); run `cmicro tls check HOST:PORT` for the chain",
	        X509_verify_cert_error_string(code), code, subject, depth);
}
