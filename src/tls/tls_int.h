/* Internal interface of the TLS layer, shared by its modules and the layers above. */
#ifndef CMICRO_TLS_INT_H
#define CMICRO_TLS_INT_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cmicro/cert.h>
#include <cmicro/tls.h>

#include "common/common_int.h"

struct cmicro_cert {
	X509 *x509;
	STACK_OF(X509) *chain; /* issuers, nearest first; never NULL */
	EVP_PKEY *key;         /* NULL when not loaded */
};

/* Wraps owned OpenSSL objects in a new cmicro_cert (takes ownership of all
 * three, even on failure). chain may be NULL. */
int cmi_cert_wrap(X509 *x509, STACK_OF(X509) *chain, EVP_PKEY *key, struct cmicro_cert **out);

/*
 * Reads every certificate of a PEM file or buffer. Damaged blocks are
 * reported in *errors (one "line N: reason" sentence each, caller frees with
 * free) and skipped; CRLF line ends are accepted. Returns CMICRO_ENOENT,
 * CMICRO_EIO or CMICRO_EPEM (nothing valid) with a detail message naming
 * label, or 0 with at least one certificate in *out.
 */
int cmi_pem_read_certs(const char *data, size_t len, const char *label, STACK_OF(X509) **out,
		       char **errors);
int cmi_pem_read_cert_file(const char *path, STACK_OF(X509) **out, char **errors);

/* Reads a private key from PEM without ever prompting; passphrase NULL
 * rejects encrypted keys with a message saying so. */
int cmi_pem_read_key(const char *data, size_t len, const char *label, const char *passphrase,
		     EVP_PKEY **out);

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
int cmi_read_file(const char *path, size_t max, char **data, size_t *len);

/* Writes data to path atomically (temporary file then rename) with mode. */
int cmi_write_file(const char *path, const void *data, size_t len, unsigned mode);

/* Go-compatible host name check of RFC 6125 as crypto/x509 applies it:
 * SANs only (never the subject CN), case-insensitive, one trailing dot
 * ignored, a wildcard only as the whole leftmost label, IP hosts only against
 * IP SANs. Returns 1 on match, 0 otherwise; names (may be NULL) receives the
 * list of SANs for messages ("a, b, c"). */
int cmi_host_matches(X509 *cert, const char *host, char *names, size_t names_size);

#endif
