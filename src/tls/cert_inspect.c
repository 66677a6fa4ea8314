/* Certificate inspection: names, validity, key, usages and fingerprint. */
#include <arpa/inet.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

/* Copies len bytes of certificate text, replacing control and non-ASCII bytes
 * with '?' so that hostile names cannot drive a terminal or break a line. */
static char *inspect_printable(const unsigned char *data, size_t len)
{
	char *s = cmi_calloc(len + 1, 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
		s[i] = (data[i] >= 0x20 && data[i] < 0x7f) ? (char)data[i] : '?';
	return s;
}

static char *inspect_name(const X509_NAME *name)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	char *s = NULL;
	long len;

	if (bio == NULL)
		return NULL;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
		len = BIO_get_mem_data(bio, &data);
		if (len >= 0)
			s = inspect_printable((const unsigned char *)data, (size_t)len);
	}
	BIO_free(bio);
	return s;
}

static char *inspect_serial(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
	char *s = hex != NULL ? cmi_strdup(hex) : NULL;

	OPENSSL_free(hex);
	BN_free(bn);
	return s;
}

/* Appends value to a growing string array. */
static int inspect_push(char ***list, size_t *n, char *value)
{
	char **grown;

	if (value == NULL)
		return CMICRO_ENOMEM;
	grown = realloc(*list, (*n + 1) * sizeof(**list));
	if (grown == NULL) {
		free(value);
		return cmi_error(CMICRO_ENOMEM, "out of memory listing subjectAltNames");
	}
	grown[*n] = value;
	*list = grown;
	(*n)++;
	return 0;
}

static char *inspect_ip(const ASN1_OCTET_STRING *ip)
{
	char text[INET6_ADDRSTRLEN];
	int len = ASN1_STRING_length(ip);
	const unsigned char *data = ASN1_STRING_get0_data(ip);

	if (len == 4 && inet_ntop(AF_INET, data, text, sizeof(text)) != NULL)
		return cmi_strdup(text);
	if (len == 16 && inet_ntop(AF_INET6, data, text, sizeof(text)) != NULL)
		return cmi_strdup(text);
	cmi_fmt(text, sizeof(text), "(invalid %d-byte address)", len);
	return cmi_strdup(text);
}

static int inspect_sans(X509 *x, struct cmicro_cert_info *info)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int rc = 0;

	for (int i = 0; rc == 0 && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);

		if (gn->type == GEN_DNS)
			rc = inspect_push(
			    &info->dns_names, &info->n_dns_names,
			    inspect_printable(ASN1_STRING_get0_data(gn->d.dNSName),
			                      (size_t)ASN1_STRING_length(gn->d.dNSName)));
		else if (gn->type == GEN_IPADD)
			rc = inspect_push(&info->ip_addresses, &info->n_ip_addresses,
			                  inspect_ip(gn->d.iPAddress));
	}
	GENERAL_NAMES_free(names);
	/* A missing or undecodable extension leaves an error on the queue. */
	ERR_clear_error();
	return rc;
}

static time_t inspect_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

/* Whole days from now until not_after, rounded down, so a certificate that
 * expired an hour ago reports -1. */
static long inspect_days_left(X509 *x)
{
	int day = 0;
	int sec = 0;

	if (ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(x)) != 1) {
		ERR_clear_error();
		return 0;
	}
	return sec < 0 ? (long)day - 1 : (long)day;
}

static const char *inspect_key_type(const EVP_PKEY *key)
{
	switch (EVP_PKEY_get_base_id(key)) {
	case EVP_PKEY_EC:
		return "EC";
	case EVP_PKEY_RSA:
		return "RSA";
	case EVP_PKEY_RSA_PSS:
		return "RSA-PSS";
	case EVP_PKEY_ED25519:
		return "ED25519";
	case EVP_PKEY_ED448:
		return "ED448";
	case EVP_PKEY_DSA:
		return "DSA";
	default:
		return EVP_PKEY_get0_type_name(key) != NULL ? EVP_PKEY_get0_type_name(key)
		                                            : "unknown";
	}
}

/* Returns the NIST name of an EC key's curve ("P-256"), else the OpenSSL
 * group name, or NULL for keys without a curve. */
static int inspect_curve(const EVP_PKEY *key, char **out)
{
	char group[80];
	const char *nist;

	*out = NULL;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
		return 0;
	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                   NULL) != 1) {
		ERR_clear_error();
		return 0;
	}
	nist = EC_curve_nid2nist(OBJ_sn2nid(group));
	*out = cmi_strdup(nist != NULL ? nist : group);
	return *out != NULL ? 0 : CMICRO_ENOMEM;
}

static int inspect_key(X509 *x, struct cmicro_cert_info *info)
{
	const EVP_PKEY *key = X509_get0_pubkey(x);

	if (key == NULL) {
		/* An unsupported or damaged key is reported, not treated as fatal. */
		ERR_clear_error();
		info->key_type = cmi_strdup("unknown");
		return info->key_type != NULL ? 0 : CMICRO_ENOMEM;
	}
	info->key_type = cmi_strdup(inspect_key_type(key));
	if (info->key_type == NULL)
		return CMICRO_ENOMEM;
	info->key_bits = EVP_PKEY_get_bits(key);
	return inspect_curve(key, &info->curve);
}

static char *inspect_sigalg(const X509 *x)
{
	const X509_ALGOR *alg = NULL;
	const ASN1_OBJECT *oid = NULL;
	char text[128];
	int nid;

	X509_get0_signature(NULL, &alg, x);
	X509_ALGOR_get0(&oid, NULL, NULL, alg);
	nid = OBJ_obj2nid(oid);
	if (nid != NID_undef)
		return cmi_strdup(OBJ_nid2ln(nid));
	if (oid == NULL || OBJ_obj2txt(text, sizeof(text), oid, 1) <= 0)
		return cmi_strdup("unknown");
	return cmi_strdup(text);
}

static int inspect_fingerprint(const X509 *x, struct cmicro_cert_info *info)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	size_t pos = 0;

	if (X509_digest(x, EVP_sha256(), md, &len) != 1)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot compute the SHA-256 fingerprint");
	for (unsigned int i = 0; i < len && pos + 3 < sizeof(info->sha256_fingerprint); i++)
		pos += (size_t)snprintf(info->sha256_fingerprint + pos,
		                        sizeof(info->sha256_fingerprint) - pos,
		                        i == 0 ? "%02X" : ":%02X", md[i]);
	return 0;
}

static void inspect_flags(X509 *x, struct cmicro_cert_info *info)
{
	uint32_t xku = X509_get_extended_key_usage(x);

	info->is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
	info->self_signed = X509_self_signed(x, 1) == 1;
	/* Without an extendedKeyUsage extension every usage is allowed (RFC 5280,
	 * 4.2.1.12), and OpenSSL then returns all bits set. */
	info->server_auth = (xku & XKU_SSL_SERVER) != 0;
	info->client_auth = (xku & XKU_SSL_CLIENT) != 0;
	info->has_eku = (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) != 0;
	ERR_clear_error();
}

static int inspect_x509(X509 *x, struct cmicro_cert_info *info)
{
	int rc;

	info->subject = inspect_name(X509_get_subject_name(x));
	info->issuer = inspect_name(X509_get_issuer_name(x));
	info->serial = inspect_serial(x);
	info->signature_algorithm = inspect_sigalg(x);
	if (info->subject == NULL || info->issuer == NULL || info->serial == NULL ||
	    info->signature_algorithm == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory inspecting a certificate");

	info->not_before = inspect_time(X509_get0_notBefore(x));
	info->not_after = inspect_time(X509_get0_notAfter(x));
	info->days_until_expiry = inspect_days_left(x);
	inspect_flags(x, info);

	rc = inspect_sans(x, info);
	if (rc == 0)
		rc = inspect_key(x, info);
	if (rc == 0)
		rc = inspect_fingerprint(x, info);
	return rc;
}

CMICRO_API int cmicro_cert_inspect(const struct cmicro_cert *cert, size_t depth,
                                   struct cmicro_cert_info **out)
{
	struct cmicro_cert_info *info;
	X509 *x;
	int rc;

	*out = NULL;
	if (cert == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_cert_inspect: cert is NULL");
	if (depth >= cmicro_cert_chain_len(cert))
		return cmi_error(CMICRO_EINVAL,
		                 "no certificate at depth %zu: the chain holds %zu "
		                 "(0 is the leaf)",
		                 depth, cmicro_cert_chain_len(cert));

	x = depth == 0 ? cert->x509 : sk_X509_value(cert->chain, (int)depth - 1);
	info = cmi_calloc(1, sizeof(*info));
	if (info == NULL)
		return CMICRO_ENOMEM;

	rc = inspect_x509(x, info);
	if (rc != 0) {
		cmicro_cert_info_free(info);
		return rc;
	}
	*out = info;
	return 0;
}

static void inspect_free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

CMICRO_API void cmicro_cert_info_free(struct cmicro_cert_info *info)
{
	if (info == NULL)
		return;
	free(info->subject);
	free(info->issuer);
	free(info->serial);
	inspect_free_list(info->dns_names, info->n_dns_names);
	inspect_free_list(info->ip_addresses, info->n_ip_addresses);
	free(info->key_type);
	free(info->curve);
	free(info->signature_algorithm);
	free(info);
}
