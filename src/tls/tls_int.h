/* Internal interface of the TLS layer, shared by its modules and the layers above. */
#ifndef CMICRO_TLS_INT_H
#define CMICRO_TLS_INT_H

#include <string.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cmicro/cert.h>
#include <cmicro/tls.h>

#include "common/common_int.h"

/* The text of an errno value. Thread-safe: GNU strerror_r writes into a
 * compound literal, which lives until the end of the enclosing block. */
#define CMI_ERRNO_TEXT(err) strerror_r((err), (char[128]){0}, 128)

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

/* Reads every CRL of a PEM file; any damaged CRL block fails the whole
 * file, because a skipped CRL would hide revocations. */
int cmi_pem_read_crl_file(const char *path, STACK_OF(X509_CRL) **out);

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

/* Returns whether host is an IPv4 or IPv6 literal (brackets allowed). */
bool cmi_host_is_ip(const char *host);

/* Writes Go's message for a host name mismatch into buf, with the fix:
 * "certificate is valid for a, b, not c", "cannot validate certificate for
 * 10.0.0.1 because it doesn't contain any IP SANs", or "certificate relies on
 * legacy Common Name field, use SANs instead". */
void cmi_host_mismatch_message(X509 *cert, const char *host, char *buf, size_t size);

/*
 * Loads a certificate file (leaf, then any chain) and its private key, and
 * checks that the key belongs to the certificate. passphrase NULL rejects
 * an encrypted key. Errors name the file and the fix.
 */
int cmi_tls_load_identity(const char *cert_file, const char *key_file, const char *passphrase,
			  struct cmicro_cert **out);

/*
 * Client session resumption, keyed by "host:port". cmi_tls_session_resume
 * offers the session cached under key (if any) on ssl and remembers key, so
 * that the sessions the server sends on this connection replace the cached
 * one. Only sessions of connections that passed verification, or of contexts
 * whose verification is off, are cached.
 */
int cmi_tls_session_resume(SSL *ssl, const char *key);

/* Returns the cached session with a new reference (release with
 * SSL_SESSION_free), or NULL. */
SSL_SESSION *cmi_tls_session_get(struct cmicro_tls_context *ctx, const char *key);

/* Caches session under key (taking a new reference), replacing the oldest
 * entry when the cache is full. */
int cmi_tls_session_put(struct cmicro_tls_context *ctx, const char *key, SSL_SESSION *session);

/* Names the peer of ssl for findings and audit logs: address ("host:port",
 * or the host of a client) and node id; either may be NULL. Copies both. */
int cmi_tls_ssl_set_peer(SSL *ssl, const char *address, const char *node_id);

/* Records a failure found outside a handshake (a node that would be sent
 * plaintext) as the verification callback records its own: counted, kept
 * as a finding, and logged once per peer and reason in audit mode. */
void cmi_tls_record_failure(struct cmicro_tls_config *cfg, const char *address,
			    const char *node_id, enum cmicro_tls_reason reason, const char *message);

/*
 * Polls the files of a frozen configuration: reloads them (as
 * cmicro_tls_config_reload) once a change has stayed the same for one whole
 * poll interval. *seen carries the last stamp between calls (start at 0).
 * Returns the reload's error, which has already been logged.
 */
int cmi_tls_config_poll(struct cmicro_tls_config *cfg, uint64_t *seen, bool *changed);

/* Returns whether the server of a client connection asked for a client
 * certificate during the handshake. */
bool cmi_tls_ssl_cert_requested(const SSL *ssl);

/* Returns the certificate ctx presents now, with a new reference (release
 * with X509_free), or NULL. */
X509 *cmi_tls_context_own_cert(struct cmicro_tls_context *ctx);

/* Formats name as RFC 2253 text ("CN=node,O=Micro"), the form every cmicro
 * message uses; "(unnamed)" when it cannot. */
void cmi_tls_name_text(const X509_NAME *name, char *buf, size_t size);

#endif
