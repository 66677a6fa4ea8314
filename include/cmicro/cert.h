/*
 * Certificates: go-micro's self-signed certificates, a small CA, PEM loading
 * and saving, and inspection.
 */
#ifndef CMICRO_CERT_H
#define CMICRO_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <cmicro/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A certificate with its chain (issuers, leaf first) and, when known, its
 * private key. Opaque; released with cmicro_cert_free. */
struct cmicro_cert;

/* Extended key usages of an issued certificate. */
enum cmicro_cert_usage {
	CMICRO_CERT_USAGE_SERVER = 1, /* serverAuth */
	CMICRO_CERT_USAGE_CLIENT = 2, /* clientAuth */
	CMICRO_CERT_USAGE_BOTH = 3
};

enum cmicro_key_type {
	CMICRO_KEY_EC_P256 = 0, /* the default, as go-micro's Certificate() */
	CMICRO_KEY_EC_P384,
	CMICRO_KEY_RSA,  /* size from rsa_bits, default 2048 */
	CMICRO_KEY_ED25519
};

/*
 * Options for a CA or an issued certificate. Zero everywhere means the
 * defaults given per field; fill with cmicro_cert_opts_init.
 */
struct cmicro_cert_opts {
	/* DNS names and IP addresses for the subjectAltNames: IPv4 or IPv6
	 * (without brackets) become iPAddress entries, the rest dNSName entries
	 * (letters, digits, '-', '_', no trailing dot, "*" only as the whole
	 * first label). Required for a leaf, optional for a CA. */
	const char *const *hosts;
	size_t n_hosts;
	/* 1 to 64 characters. Default: the first host (when it fits), "cmicro
	 * CA" for a root CA, "cmicro intermediate CA" for an intermediate. */
	const char *common_name;
	const char *organization; /* default "Micro" */
	enum cmicro_cert_usage usage; /* default SERVER; ignored for a CA */
	enum cmicro_key_type key_type;
	int rsa_bits;            /* 1024 to 8192; 0 means 2048 */
	int days;                /* 1 to 36500; 0 means 365 (leaf) or 3650 (CA) */
	time_t not_before;       /* 0: now minus one minute of clock-skew margin */
	time_t not_after;        /* 0: not_before + days; must be after not_before */
	bool is_ca;              /* issue an intermediate CA (cmicro_cert_issue) */
	int path_len;            /* CA path length; -1 (the default) for none */
	/* Signature digest, default "sha256"; "sha1" signs too (for tests of
	 * weak signatures). Ignored when the signing key is Ed25519. */
	const char *digest;
	const char *ca_issuers_url; /* optional AIA caIssuers http(s) URI */
};

/* Fills opts with defaults: all zero except usage SERVER and path_len -1. */
CMICRO_API void cmicro_cert_opts_init(struct cmicro_cert_opts *opts);

/*
 * Creates go-micro's development certificate for hosts (its Certificate()):
 * ECDSA P-256, valid from now for 365 days, subject O=Micro without a common
 * name, a random 128-bit serial, IP SANs for IP hosts and DNS SANs for the
 * rest, CA:TRUE, key usages digitalSignature, keyEncipherment and
 * keyCertSign, extended usage serverAuth. hosts must not be empty. Free the
 * result with cmicro_cert_free.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_selfsigned(const char *const *hosts, size_t n_hosts,
							struct cmicro_cert **out);

/* Creates a self-signed root CA with its key: CA:TRUE, keyCertSign, cRLSign
 * and digitalSignature, subject and authority key identifiers. Fails with
 * CMICRO_EINVAL and a message naming the field when opts is invalid. */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_ca_new(const struct cmicro_cert_opts *opts,
						   struct cmicro_cert **out);

/*
 * Issues a certificate signed by issuer, which must be a CA (basicConstraints
 * CA:TRUE, keyCertSign when keyUsage is present) holding its matching key
 * (else CMICRO_EINVAL or CMICRO_EKEY). A leaf gets CA:FALSE,
 * digitalSignature (plus keyEncipherment for RSA keys) and the usages asked
 * for; with opts->is_ca an intermediate CA. The result's chain contains the
 * issuer and the issuer's own chain.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_issue(const struct cmicro_cert *issuer,
						  const struct cmicro_cert_opts *opts,
						  struct cmicro_cert **out);

/*
 * Loads a certificate file (leaf first, then any chain; CRLF line ends are
 * accepted) and optionally its key, which must match the leaf. key_file NULL
 * loads no key; passphrase NULL means the key must not be encrypted (cmicro
 * never prompts on a terminal). A damaged block anywhere in the file is an
 * error, so a chain is never loaded incomplete. Errors name the file and the
 * fix: CMICRO_ENOENT (missing), CMICRO_EPEM (empty, broken PEM, a key where
 * a certificate was expected), CMICRO_EKEY (mismatch, encrypted, wrong
 * passphrase, a certificate where a key was expected).
 */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_load(const char *cert_file, const char *key_file,
						 const char *passphrase, struct cmicro_cert **out);

/* Loads from PEM text in memory: cert_pem contains the leaf, then its chain. */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_load_pem(const char *cert_pem, size_t cert_len,
						     const char *key_pem, size_t key_len,
						     const char *passphrase, struct cmicro_cert **out);

/* Flags for cmicro_cert_save. */
#define CMICRO_CERT_SAVE_CHAIN 1u /* append the issuers to cert_file */

/* Writes the certificate (and chain with CMICRO_CERT_SAVE_CHAIN) to
 * cert_file with mode 0644 and the key, when key_file is not NULL, to
 * key_file with mode 0600 as unencrypted PKCS #8 PEM. Both files are written
 * to temporaries first and renamed only when both succeeded, so a failure
 * leaves the previous files (or none) in place. */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_save(const struct cmicro_cert *cert,
						 const char *cert_file, const char *key_file,
						 unsigned flags);

/* Returns the PEM text of the certificate (with chain for CMICRO_CERT_SAVE_CHAIN) and
 * of the key (unencrypted PKCS #8; CMICRO_EKEY when the certificate has no
 * key); either out pointer may be NULL. Free both with cmicro_free. */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_to_pem(const struct cmicro_cert *cert, unsigned flags,
						   char **cert_pem, char **key_pem);

/* Returns true when the certificate carries its private key. */
CMICRO_API bool cmicro_cert_has_key(const struct cmicro_cert *cert);

CMICRO_API void cmicro_cert_free(struct cmicro_cert *cert);

/* Details of one certificate, as cmicro_cert_inspect returns them: plain
 * data owned by the structure and released with cmicro_cert_info_free.
 * Strings are printable ASCII, because names from the certificate have other
 * bytes replaced by '?' (or escaped as \XX in subject and issuer). */
struct cmicro_cert_info {
	char *subject;              /* RFC 2253 form, "CN=host,O=Micro" */
	char *issuer;
	char *serial;               /* hexadecimal */
	char **dns_names;
	size_t n_dns_names;
	char **ip_addresses;
	size_t n_ip_addresses;
	time_t not_before;
	time_t not_after;
	long days_until_expiry;     /* negative once expired */
	char *key_type;             /* "EC", "RSA", "ED25519", ... or "unknown" */
	int key_bits;
	char *curve;                /* "P-256" for EC keys, else NULL */
	char *signature_algorithm;  /* "ecdsa-with-SHA256", "sha256WithRSAEncryption" */
	bool is_ca;
	bool self_signed;
	/* The extendedKeyUsage allows serverAuth / clientAuth; both are true
	 * when the certificate has no extendedKeyUsage (RFC 5280, 4.2.1.12). */
	bool server_auth;
	bool client_auth;
	char sha256_fingerprint[96]; /* "AB:CD:..." */
	/* The certificate has an extendedKeyUsage extension; when false, every
	 * usage is allowed. Added last to keep the layout of the fields above. */
	bool has_eku;
};

/* Inspects the leaf (depth 0) or a chain entry (depth 1 and up); CMICRO_EINVAL
 * beyond the chain. Free the result with cmicro_cert_info_free. */
CMICRO_API CMICRO_NODISCARD int cmicro_cert_inspect(const struct cmicro_cert *cert, size_t depth,
						    struct cmicro_cert_info **out);

/* Returns the number of certificates: the leaf plus its chain. */
CMICRO_API size_t cmicro_cert_chain_len(const struct cmicro_cert *cert);

CMICRO_API void cmicro_cert_info_free(struct cmicro_cert_info *info);

#ifdef __cplusplus
}
#endif

#endif
