/*
 * Certificate generation: go-micro's self-signed development certificate, a
 * root CA, and certificates (leaves and intermediate CAs) issued from a CA.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

#define CERT_DEFAULT_LEAF_DAYS 365
#define CERT_DEFAULT_CA_DAYS   3650
#define CERT_MAX_DAYS          36500
#define CERT_DEFAULT_RSA_BITS  2048
#define CERT_SKEW_SECONDS      60
#define CERT_SECONDS_PER_DAY   86400

/* The extension set a certificate receives. */
enum cert_profile {
	CERT_PROFILE_GO_SELFSIGNED, /* go-micro's Certificate(hosts...) */
	CERT_PROFILE_CA,            /* root or intermediate CA */
	CERT_PROFILE_LEAF           /* end-entity certificate for a server or client */
};

/* The options after defaults and validation. */
struct cert_plan {
	enum cert_profile profile;
	const struct cmicro_cert_opts *opts;
	const char *common_name; /* NULL: no CN in the subject */
	const char *organization;
	time_t not_before;
	time_t not_after;
	const char *digest;
};

CMICRO_API void cmicro_cert_opts_init(struct cmicro_cert_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->usage = CMICRO_CERT_USAGE_SERVER;
	opts->key_type = CMICRO_KEY_EC_P256;
	opts->path_len = -1;
}

static bool cert_is_ip(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static bool cert_label_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Checks one DNS label; "*" is accepted only as the whole first label. */
static bool cert_label_valid(const char *label, size_t len, bool first)
{
	if (len == 0 || len > 63)
		return false;
	if (first && len == 1 && label[0] == '*')
		return true;
	for (size_t i = 0; i < len; i++) {
		if (!cert_label_char(label[i]))
			return false;
	}
	return label[0] != '-' && label[len - 1] != '-';
}

static int cert_check_dns(const char *host)
{
	size_t len = strlen(host);
	const char *label = host;
	bool digits_only = strspn(host, "0123456789.") == len;

	if (len == 0 || len > 253 || host[len - 1] == '.' || digits_only)
		goto bad;
	if (strcmp(host, "*") == 0 || (host[0] == '*' && strchr(host + 2, '.') == NULL))
		goto bad;
	while (label != NULL) {
		const char *dot = strchr(label, '.');
		size_t label_len = dot ? (size_t)(dot - label) : strlen(label);

		if (!cert_label_valid(label, label_len, label == host))
			goto bad;
		label = dot ? dot + 1 : NULL;
	}
	return 0;

bad:
	return cmi_error(CMICRO_EINVAL,
	                 "invalid host \"%s\": expected an IPv4 or IPv6 address (IPv6 without "
	                 "brackets) or a DNS name of letters, digits, '-' and '.', without a "
	                 "trailing dot; a wildcard must be the whole first label (*.example.com)",
	                 host);
}

static int cert_check_hosts(const struct cmicro_cert_opts *opts, bool required)
{
	if (opts->n_hosts > 0 && opts->hosts == NULL)
		return cmi_error(CMICRO_EINVAL, "n_hosts is %zu but hosts is NULL", opts->n_hosts);
	if (required && opts->n_hosts == 0)
		return cmi_error(CMICRO_EINVAL, "empty host list: a server or client certificate "
		                                "needs at least one DNS name or IP address");

	for (size_t i = 0; i < opts->n_hosts; i++) {
		const char *host = opts->hosts[i];

		if (host == NULL)
			return cmi_error(CMICRO_EINVAL, "host %zu is NULL", i);
		if (!cert_is_ip(host) && cert_check_dns(host) != 0)
			return CMICRO_EINVAL;
	}
	return 0;
}

static int cert_plan_validity(struct cert_plan *plan, int default_days)
{
	const struct cmicro_cert_opts *opts = plan->opts;
	time_t now = time(NULL);
	int days = opts->days != 0 ? opts->days : default_days;

	if (opts->days < 0 || opts->days > CERT_MAX_DAYS)
		return cmi_error(CMICRO_EINVAL,
		                 "invalid validity of %d days: give a number of "
		                 "days from 1 to %d (0 selects the default)",
		                 opts->days, CERT_MAX_DAYS);

	plan->not_before = opts->not_before;
	if (plan->not_before == 0)
		plan->not_before =
		    plan->profile == CERT_PROFILE_GO_SELFSIGNED ? now : now - CERT_SKEW_SECONDS;

	plan->not_after = opts->not_after;
	if (plan->not_after == 0)
		plan->not_after = plan->not_before + (time_t)days * CERT_SECONDS_PER_DAY;

	if (plan->not_after <= plan->not_before)
		return cmi_error(CMICRO_EINVAL,
		                 "not_after (%lld) is not later than not_before (%lld): the "
		                 "certificate would never be valid; set not_after after not_before",
		                 (long long)plan->not_after, (long long)plan->not_before);
	return 0;
}

static int cert_plan_key(const struct cmicro_cert_opts *opts)
{
	switch (opts->key_type) {
	case CMICRO_KEY_EC_P256:
	case CMICRO_KEY_EC_P384:
	case CMICRO_KEY_ED25519:
		return 0;
	case CMICRO_KEY_RSA:
		if (opts->rsa_bits == 0 || (opts->rsa_bits >= 1024 && opts->rsa_bits <= 8192))
			return 0;
		return cmi_error(CMICRO_EINVAL,
		                 "invalid RSA key size %d bits: use 2048, 3072 or "
		                 "4096 (1024 to 8192 are accepted)",
		                 opts->rsa_bits);
	}
	return cmi_error(CMICRO_EINVAL, "invalid key type %d: use one of enum cmicro_key_type",
	                 (int)opts->key_type);
}

static int cert_plan_usage(const struct cmicro_cert_opts *opts)
{
	if (opts->usage >= CMICRO_CERT_USAGE_SERVER && opts->usage <= CMICRO_CERT_USAGE_BOTH)
		return 0;
	return cmi_error(CMICRO_EINVAL,
	                 "invalid usage %d: use CMICRO_CERT_USAGE_SERVER, _CLIENT "
	                 "or _BOTH",
	                 (int)opts->usage);
}

static int cert_plan_digest(struct cert_plan *plan)
{
	plan->digest = plan->opts->digest != NULL ? plan->opts->digest : "sha256";
	if (EVP_get_digestbyname(plan->digest) == NULL)
		return cmi_error(CMICRO_EINVAL,
		                 "unknown signature digest \"%s\": use sha256 "
		                 "(the default), sha384, sha512 or, for tests, sha1",
		                 plan->digest);
	return 0;
}

static int cert_plan_url(const char *url)
{
	if (url == NULL)
		return 0;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		goto bad;
	for (const char *p = url; *p != '\0'; p++) {
		if (!isgraph((unsigned char)*p) || *p == ',')
			goto bad;
	}
	return 0;

bad:
	return cmi_error(CMICRO_EINVAL,
	                 "invalid caIssuers URL \"%s\": give an http:// or "
	                 "https:// URL without spaces or commas",
	                 url);
}

static const char *cert_default_cn(const struct cert_plan *plan, bool intermediate)
{
	const struct cmicro_cert_opts *opts = plan->opts;

	if (opts->common_name != NULL)
		return opts->common_name;
	if (plan->profile == CERT_PROFILE_CA)
		return intermediate ? "cmicro intermediate CA" : "cmicro CA";
	/* RFC 5280 limits a common name to 64 characters, and the SANs carry the host anyway. */
	if (opts->n_hosts > 0 && strlen(opts->hosts[0]) <= 64)
		return opts->hosts[0];
	return NULL;
}

/* Applies defaults to opts and checks every field; intermediate is true for a
 * CA issued by another CA. */
static int cert_plan_make(struct cert_plan *plan, const struct cmicro_cert_opts *opts,
                          enum cert_profile profile, bool intermediate)
{
	int rc;

	memset(plan, 0, sizeof(*plan));
	plan->profile = profile;
	plan->opts = opts;
	if (opts == NULL)
		return cmi_error(CMICRO_EINVAL, "certificate options are NULL: fill a struct "
		                                "cmicro_cert_opts with cmicro_cert_opts_init");

	rc = cert_check_hosts(opts, profile == CERT_PROFILE_LEAF);
	if (rc == 0)
		rc = cert_plan_validity(plan, profile == CERT_PROFILE_CA ? CERT_DEFAULT_CA_DAYS
		                                                         : CERT_DEFAULT_LEAF_DAYS);
	if (rc == 0)
		rc = cert_plan_key(opts);
	if (rc == 0 && profile == CERT_PROFILE_LEAF)
		rc = cert_plan_usage(opts);
	if (rc == 0 && profile == CERT_PROFILE_LEAF && opts->path_len >= 0)
		rc = cmi_error(CMICRO_EINVAL,
		               "path length %d is set for a leaf certificate, but only a CA "
		               "has one: set is_ca for an intermediate CA, or leave path_len "
		               "at -1",
		               opts->path_len);
	if (rc == 0)
		rc = cert_plan_digest(plan);
	if (rc == 0)
		rc = cert_plan_url(opts->ca_issuers_url);
	if (rc != 0)
		return rc;

	if (opts->common_name != NULL &&
	    (opts->common_name[0] == '\0' || strlen(opts->common_name) > 64))
		return cmi_error(CMICRO_EINVAL,
		                 "invalid common name \"%.80s\": give 1 to 64 "
		                 "characters, or NULL for the default",
		                 opts->common_name);
	plan->common_name = cert_default_cn(plan, intermediate);
	plan->organization = opts->organization != NULL ? opts->organization : "Micro";
	return 0;
}

static int cert_new_key(const struct cmicro_cert_opts *opts, EVP_PKEY **out)
{
	size_t bits = opts->rsa_bits != 0 ? (size_t)opts->rsa_bits : CERT_DEFAULT_RSA_BITS;

	switch (opts->key_type) {
	case CMICRO_KEY_EC_P384:
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case CMICRO_KEY_RSA:
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
		break;
	case CMICRO_KEY_ED25519:
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	default:
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	}
	if (*out == NULL)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot generate a private key of type %d",
		                      (int)opts->key_type);
	return 0;
}

/* Sets a random positive 128-bit serial, as go-micro does. */
static int cert_set_serial(X509 *x)
{
	unsigned char bytes[16];
	BIGNUM *bn = NULL;
	int rc = 0;

	do {
		if (RAND_bytes(bytes, sizeof(bytes)) != 1)
			return cmi_error_ossl(CMICRO_ECRYPTO, "cannot draw a random serial number");
		BN_free(bn);
		bn = BN_bin2bn(bytes, sizeof(bytes), NULL);
		if (bn == NULL)
			return cmi_error_ossl(CMICRO_ENOMEM, "out of memory for a serial number");
	} while (BN_is_zero(bn));

	if (BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot set the serial number");
	BN_free(bn);
	return rc;
}

static int cert_set_subject(X509 *x, const struct cert_plan *plan)
{
	X509_NAME *name = X509_get_subject_name(x);
	const unsigned char *org = (const unsigned char *)plan->organization;
	const unsigned char *cn = (const unsigned char *)plan->common_name;

	if (X509_NAME_add_entry_by_NID(name, NID_organizationName, MBSTRING_UTF8, org, -1, -1, 0) !=
	    1)
		return cmi_error_ossl(CMICRO_EINVAL, "invalid organization \"%.80s\"",
		                      plan->organization);
	if (cn != NULL &&
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, cn, -1, -1, 0) != 1)
		return cmi_error_ossl(CMICRO_EINVAL, "invalid common name \"%.80s\"",
		                      plan->common_name);
	return 0;
}

static int cert_set_validity(X509 *x, const struct cert_plan *plan)
{
	if (ASN1_TIME_set(X509_getm_notBefore(x), plan->not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), plan->not_after) == NULL)
		return cmi_error_ossl(CMICRO_EINVAL,
		                      "cannot encode the validity period %lld to "
		                      "%lld (seconds since 1970)",
		                      (long long)plan->not_before, (long long)plan->not_after);
	return 0;
}

static GENERAL_NAME *cert_general_name(const char *host)
{
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_STRING *value = NULL;
	int type = GEN_DNS;

	if (gn == NULL)
		return NULL;

	if (cert_is_ip(host)) {
		type = GEN_IPADD;
		value = a2i_IPADDRESS(host);
	} else {
		value = ASN1_IA5STRING_new();
		if (value != NULL && ASN1_STRING_set(value, host, -1) != 1) {
			ASN1_STRING_free(value);
			value = NULL;
		}
	}
	if (value == NULL) {
		GENERAL_NAME_free(gn);
		return NULL;
	}
	GENERAL_NAME_set0_value(gn, type, value);
	return gn;
}

/* IP hosts become iPAddress SANs and the rest dNSName SANs, as go-micro's
 * generator and crypto/x509 do. */
static int cert_add_san(X509 *x, const struct cmicro_cert_opts *opts)
{
	GENERAL_NAMES *names = sk_GENERAL_NAME_new_null();
	int rc = 0;

	if (names == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory for the subjectAltName");

	for (size_t i = 0; i < opts->n_hosts; i++) {
		GENERAL_NAME *gn = cert_general_name(opts->hosts[i]);

		if (gn == NULL || sk_GENERAL_NAME_push(names, gn) <= 0) {
			GENERAL_NAME_free(gn);
			rc = cmi_error_ossl(CMICRO_ECRYPTO,
			                    "cannot add host \"%s\" to the "
			                    "subjectAltName",
			                    opts->hosts[i]);
			goto out;
		}
	}

	if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0, X509V3_ADD_REPLACE) != 1)
		rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot add the subjectAltName extension");
out:
	GENERAL_NAMES_free(names);
	return rc;
}

static int cert_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot build extension %s = %s",
		                      OBJ_nid2sn(nid), value);
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot add extension %s", OBJ_nid2sn(nid));
	return 0;
}

static const char *cert_eku_value(enum cmicro_cert_usage usage)
{
	switch (usage) {
	case CMICRO_CERT_USAGE_CLIENT:
		return "clientAuth";
	case CMICRO_CERT_USAGE_BOTH:
		return "serverAuth,clientAuth";
	default:
		return "serverAuth";
	}
}

/* Returns the basicConstraints, keyUsage and extendedKeyUsage values of the
 * plan's profile; eku is NULL when the profile has none. */
static void cert_profile_values(const struct cert_plan *plan, const EVP_PKEY *key, char *bc,
                                size_t bc_size, const char **ku, const char **eku)
{
	switch (plan->profile) {
	case CERT_PROFILE_GO_SELFSIGNED:
		cmi_fmt(bc, bc_size, "critical,CA:TRUE");
		*ku = "critical,digitalSignature,keyEncipherment,keyCertSign";
		*eku = "serverAuth";
		break;
	case CERT_PROFILE_CA:
		if (plan->opts->path_len >= 0)
			cmi_fmt(bc, bc_size, "critical,CA:TRUE,pathlen:%d", plan->opts->path_len);
		else
			cmi_fmt(bc, bc_size, "critical,CA:TRUE");
		*ku = "critical,digitalSignature,keyCertSign,cRLSign";
		*eku = NULL;
		break;
	default:
		cmi_fmt(bc, bc_size, "critical,CA:FALSE");
		/* keyEncipherment only means something for RSA key transport. */
		*ku = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA
		          ? "critical,digitalSignature,keyEncipherment"
		          : "critical,digitalSignature";
		*eku = cert_eku_value(plan->opts->usage);
		break;
	}
}

/* Adds the profile's extensions; issuer is x itself for a self-signed
 * certificate (its subjectKeyIdentifier must already be present for the
 * authorityKeyIdentifier, so the order matters). */
static int cert_add_extensions(X509 *x, X509 *issuer, const struct cert_plan *plan,
                               const EVP_PKEY *key)
{
	X509V3_CTX ctx;
	char bc[64];
	char aia[1100];
	const char *ku = NULL;
	const char *eku = NULL;
	int rc;

	cert_profile_values(plan, key, bc, sizeof(bc), &ku, &eku);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);

	rc = cert_add_ext(x, &ctx, NID_basic_constraints, bc);
	if (rc == 0)
		rc = cert_add_ext(x, &ctx, NID_key_usage, ku);
	if (rc == 0 && eku != NULL)
		rc = cert_add_ext(x, &ctx, NID_ext_key_usage, eku);
	if (rc == 0)
		rc = cert_add_ext(x, &ctx, NID_subject_key_identifier, "hash");
	/* go-micro's certificate has no authorityKeyIdentifier because Go's
	 * crypto/x509 sets one only when the issuer name differs from the subject. */
	if (rc == 0 && plan->profile != CERT_PROFILE_GO_SELFSIGNED)
		rc = cert_add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	if (rc == 0 && plan->opts->n_hosts > 0)
		rc = cert_add_san(x, plan->opts);
	if (rc == 0 && plan->opts->ca_issuers_url != NULL) {
		if (strlen(plan->opts->ca_issuers_url) > 1000)
			return cmi_error(CMICRO_EINVAL,
			                 "caIssuers URL is longer than 1000 characters");
		cmi_fmt(aia, sizeof(aia), "caIssuers;URI:%s", plan->opts->ca_issuers_url);
		rc = cert_add_ext(x, &ctx, NID_info_access, aia);
	}
	return rc;
}

static int cert_sign(X509 *x, EVP_PKEY *key, const char *digest)
{
	const EVP_MD *md = NULL;
	int id = EVP_PKEY_get_base_id(key);

	/* OpenSSL requires a NULL digest for EdDSA keys, which hash the message themselves. */
	if (id != EVP_PKEY_ED25519 && id != EVP_PKEY_ED448)
		md = EVP_get_digestbyname(digest);
	if (X509_sign(x, key, md) <= 0)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot sign the certificate with digest %s",
		                      md != NULL ? digest : "(none, EdDSA)");
	return 0;
}

/* Fills every field of x for key; issuer NULL makes x self-signed. */
static int cert_fill(X509 *x, EVP_PKEY *key, const struct cert_plan *plan,
                     const struct cmicro_cert *issuer)
{
	X509_NAME *issuer_name;
	int rc;

	if (X509_set_version(x, X509_VERSION_3) != 1 || X509_set_pubkey(x, key) != 1)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot set the certificate version or key");

	rc = cert_set_serial(x);
	if (rc == 0)
		rc = cert_set_subject(x, plan);
	if (rc == 0)
		rc = cert_set_validity(x, plan);
	if (rc != 0)
		return rc;

	issuer_name =
	    issuer != NULL ? X509_get_subject_name(issuer->x509) : X509_get_subject_name(x);
	if (X509_set_issuer_name(x, issuer_name) != 1)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot set the issuer name");

	rc = cert_add_extensions(x, issuer != NULL ? issuer->x509 : x, plan, key);
	if (rc != 0)
		return rc;
	return cert_sign(x, issuer != NULL ? issuer->key : key, plan->digest);
}

/* Copies the issuer and the issuer's chain, nearest first, for a new leaf. */
static int cert_issuer_chain(const struct cmicro_cert *issuer, STACK_OF(X509) * *out)
{
	STACK_OF(X509) *chain = sk_X509_new_null();

	*out = NULL;
	if (chain == NULL || X509_add_cert(chain, issuer->x509, X509_ADD_FLAG_UP_REF) != 1 ||
	    X509_add_certs(chain, issuer->chain, X509_ADD_FLAG_UP_REF) != 1) {
		sk_X509_pop_free(chain, X509_free);
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory copying the issuer chain");
	}
	*out = chain;
	return 0;
}

static int cert_build(const struct cert_plan *plan, const struct cmicro_cert *issuer,
                      struct cmicro_cert **out)
{
	EVP_PKEY *key = NULL;
	STACK_OF(X509) *chain = NULL;
	X509 *x = NULL;
	int rc;

	rc = cert_new_key(plan->opts, &key);
	if (rc != 0)
		return rc;

	x = X509_new();
	if (x == NULL) {
		rc = cmi_error_ossl(CMICRO_ENOMEM, "out of memory for a certificate");
		goto out;
	}

	rc = cert_fill(x, key, plan, issuer);
	if (rc == 0 && issuer != NULL)
		rc = cert_issuer_chain(issuer, &chain);
	if (rc == 0) {
		rc = cmi_cert_wrap(x, chain, key, out);
		x = NULL;
		key = NULL;
	}
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return rc;
}

static int cert_check_issuer(const struct cmicro_cert *issuer)
{
	char subject[256];
	X509 *x;

	if (issuer == NULL)
		return cmi_error(CMICRO_EINVAL, "issuer is NULL: pass a CA made by "
		                                "cmicro_cert_ca_new or loaded with its key");
	x = issuer->x509;
	cmi_tls_name_text(X509_get_subject_name(x), subject, sizeof(subject));

	if (issuer->key == NULL)
		return cmi_error(CMICRO_EKEY,
		                 "issuer %s has no private key: load the CA "
		                 "certificate together with its key file",
		                 subject);
	if ((X509_get_extension_flags(x) & EXFLAG_CA) == 0)
		return cmi_error(CMICRO_EINVAL,
		                 "issuer %s is not a CA (its basicConstraints do "
		                 "not say CA:TRUE): issue from a CA certificate",
		                 subject);
	if ((X509_get_extension_flags(x) & EXFLAG_KUSAGE) != 0 &&
	    (X509_get_key_usage(x) & KU_KEY_CERT_SIGN) == 0)
		return cmi_error(CMICRO_EINVAL,
		                 "issuer %s may not sign certificates (its keyUsage "
		                 "lacks keyCertSign): issue from a CA certificate",
		                 subject);
	if (EVP_PKEY_eq(X509_get0_pubkey(x), issuer->key) != 1) {
		ERR_clear_error();
		return cmi_error(CMICRO_EKEY,
		                 "the private key of issuer %s does not match its "
		                 "certificate: load the key file made with it",
		                 subject);
	}
	return 0;
}

/* Rejects an intermediate CA that verifiers would reject anyway, because the
 * issuer's basicConstraints pathLenConstraint allows no further CA below it. */
static int cert_check_path_len(const struct cmicro_cert *issuer,
                               const struct cmicro_cert_opts *opts)
{
	long allowed = X509_get_pathlen(issuer->x509);
	char subject[256];

	if (!opts->is_ca || allowed < 0)
		return 0;
	cmi_tls_name_text(X509_get_subject_name(issuer->x509), subject, sizeof(subject));
	if (allowed == 0)
		return cmi_error(CMICRO_EINVAL,
		                 "issuer %s has basicConstraints pathlen:0, so no CA may be "
		                 "issued below it: issue the intermediate CA from its parent "
		                 "CA, or issue a leaf certificate from this one",
		                 subject);
	if (opts->path_len >= allowed)
		return cmi_error(CMICRO_EINVAL,
		                 "path length %d is not below the pathlen:%ld of issuer %s: give "
		                 "a path length from 0 to %ld",
		                 opts->path_len, allowed, subject, allowed - 1);
	return 0;
}

CMICRO_API int cmicro_cert_selfsigned(const char *const *hosts, size_t n_hosts,
                                      struct cmicro_cert **out)
{
	struct cmicro_cert_opts opts;
	struct cert_plan plan;
	int rc;

	*out = NULL;
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = n_hosts;
	rc = cert_plan_make(&plan, &opts, CERT_PROFILE_GO_SELFSIGNED, false);
	if (rc == 0 && n_hosts == 0)
		rc = cmi_error(CMICRO_EINVAL, "empty host list: a self-signed certificate needs at "
		                              "least one DNS name or IP address");
	if (rc != 0)
		return rc;

	/* go-micro's subject carries only the organisation, no common name. */
	plan.common_name = NULL;
	return cert_build(&plan, NULL, out);
}

CMICRO_API int cmicro_cert_ca_new(const struct cmicro_cert_opts *opts, struct cmicro_cert **out)
{
	struct cert_plan plan;
	int rc;

	*out = NULL;
	rc = cert_plan_make(&plan, opts, CERT_PROFILE_CA, false);
	if (rc != 0)
		return rc;
	return cert_build(&plan, NULL, out);
}

CMICRO_API int cmicro_cert_issue(const struct cmicro_cert *issuer,
                                 const struct cmicro_cert_opts *opts, struct cmicro_cert **out)
{
	struct cert_plan plan;
	int rc;

	*out = NULL;
	rc = cert_check_issuer(issuer);
	if (rc == 0 && opts != NULL)
		rc = cert_check_path_len(issuer, opts);
	if (rc != 0)
		return rc;

	rc = cert_plan_make(
	    &plan, opts, opts != NULL && opts->is_ca ? CERT_PROFILE_CA : CERT_PROFILE_LEAF, true);
	if (rc != 0)
		return rc;
	return cert_build(&plan, issuer, out);
}
