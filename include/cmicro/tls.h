/*
 * The TLS layer: configurations (go-micro's Config, SecureConfig and
 * InsecureConfig, and custom ones), OpenSSL contexts built from them, and
 * classified verification results.
 */
#ifndef CMICRO_TLS_H
#define CMICRO_TLS_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include <cmicro/cert.h>
#include <cmicro/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A TLS configuration. Reference counted (cmicro_tls_config_hold adds,
 * cmicro_tls_config_free drops) and frozen once a context has been built from
 * it: setters then fail with CMICRO_EBUSY. */
struct cmicro_tls_config;

enum cmicro_tls_verify {
	CMICRO_TLS_VERIFY_OFF = 0, /* any chain and any name accepted */
	CMICRO_TLS_VERIFY_ON,      /* failures reject the handshake */
	CMICRO_TLS_VERIFY_AUDIT    /* failures are logged and counted, never enforced */
};

/* Origin of the verification mode, printed by `cmicro tls config`. */
enum cmicro_tls_source {
	CMICRO_TLS_SOURCE_DEFAULT = 0,   /* nothing set: the build's default */
	CMICRO_TLS_SOURCE_SECURE_ENV,    /* MICRO_TLS_SECURE */
	CMICRO_TLS_SOURCE_INSECURE_ENV,  /* MICRO_TLS_INSECURE */
	CMICRO_TLS_SOURCE_CODE           /* a preset or a setter */
};

enum cmicro_tls_version {
	CMICRO_TLS_1_2 = 0x0303,
	CMICRO_TLS_1_3 = 0x0304
};

enum cmicro_tls_client_auth {
	CMICRO_TLS_CLIENT_AUTH_NONE = 0,
	CMICRO_TLS_CLIENT_AUTH_REQUEST, /* ask; verify what is presented */
	CMICRO_TLS_CLIENT_AUTH_REQUIRE  /* reject peers without a valid certificate */
};

/* Reason a peer failed (or would fail) verification. */
enum cmicro_tls_reason {
	CMICRO_TLS_REASON_NONE = 0, /* verified */
	CMICRO_TLS_REASON_UNKNOWN_AUTHORITY,
	CMICRO_TLS_REASON_SELF_SIGNED,
	CMICRO_TLS_REASON_INCOMPLETE_CHAIN,
	CMICRO_TLS_REASON_EXPIRED,
	CMICRO_TLS_REASON_NOT_YET_VALID,
	CMICRO_TLS_REASON_REVOKED,
	CMICRO_TLS_REASON_HOSTNAME_MISMATCH,
	CMICRO_TLS_REASON_BAD_USAGE,
	CMICRO_TLS_REASON_WEAK_KEY,
	CMICRO_TLS_REASON_WEAK_SIGNATURE,
	CMICRO_TLS_REASON_PROTOCOL_VERSION,
	CMICRO_TLS_REASON_NO_CERTIFICATE,
	CMICRO_TLS_REASON_PLAINTEXT,
	CMICRO_TLS_REASON_OTHER,
	CMICRO_TLS_REASON_COUNT
};

/* Returns the static snake_case name of a reason ("unknown_authority"). */
CMICRO_API const char *cmicro_tls_reason_name(enum cmicro_tls_reason reason);

/* Returns a static one-line hint for fixing a reason. */
CMICRO_API const char *cmicro_tls_reason_hint(enum cmicro_tls_reason reason);

/*
 * Builds the configuration from the environment, as go-micro's Config():
 * MICRO_TLS_SECURE, MICRO_TLS_INSECURE, MICRO_TLS_CA_FILE,
 * MICRO_TLS_CERT_FILE, MICRO_TLS_KEY_FILE, MICRO_TLS_CLIENT_AUTH,
 * SSLKEYLOGFILE, and the CMICRO_SECURE_BY_DEFAULT build option. Emits each
 * warning (TLS-VERIFY-OFF, TLS-AUDIT-MODE, TLS-SECURE-UNRECOGNISED) at most
 * once per process through the log handler. An unrecognised
 * MICRO_TLS_SECURE value verifies (fails closed); an unrecognised
 * MICRO_TLS_CLIENT_AUTH, or only one of MICRO_TLS_CERT_FILE and
 * MICRO_TLS_KEY_FILE, is CMICRO_ECONFIG.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_from_env(struct cmicro_tls_config **out);

/* go-micro's SecureConfig(): verification on, system roots, TLS 1.2. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_secure(struct cmicro_tls_config **out);

/* go-micro's InsecureConfig(): verification off, TLS 1.2. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_insecure(struct cmicro_tls_config **out);

/* A custom configuration to build with the setters below; starts as the
 * secure preset. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_new(struct cmicro_tls_config **out);

CMICRO_API struct cmicro_tls_config *cmicro_tls_config_hold(struct cmicro_tls_config *cfg);
CMICRO_API void cmicro_tls_config_free(struct cmicro_tls_config *cfg);

/* Setters. Each returns 0, CMICRO_EINVAL, a load error naming the file, or
 * CMICRO_EBUSY once the configuration is frozen. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_verify(struct cmicro_tls_config *cfg,
							      enum cmicro_tls_verify mode);
/* Whether the system roots (honouring SSL_CERT_FILE and SSL_CERT_DIR) are
 * trusted. Default true; adding a CA file keeps them unless this is false. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_system_roots(struct cmicro_tls_config *cfg,
								    bool use);
/* Adds every valid certificate of a PEM bundle to the trust. Damaged blocks
 * are reported with their line numbers; a bundle without one valid
 * certificate is an error. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_add_ca_file(struct cmicro_tls_config *cfg,
							       const char *path);
/* Adds every PEM certificate of a directory (any file name; hidden files
 * and files without certificates are skipped with a warning) to the trust.
 * A directory without one certificate is an error. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_add_ca_dir(struct cmicro_tls_config *cfg,
							      const char *path);
/* Adds a certificate already in memory to the trust. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_add_ca_cert(struct cmicro_tls_config *cfg,
							       const struct cmicro_cert *ca);
/* Sets the node's own certificate (with chain) and key from files: the server
 * identity, and the client identity for mutual TLS. The files are loaded now,
 * so errors surface here. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_cert_files(struct cmicro_tls_config *cfg,
								  const char *cert_file,
								  const char *key_file,
								  const char *passphrase);
/* As above, from a certificate in memory (copied; it must hold a key). */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_cert(struct cmicro_tls_config *cfg,
							    const struct cmicro_cert *cert);
/* Name to verify the server against instead of the host connected to. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_server_name(struct cmicro_tls_config *cfg,
								   const char *name);
/* CMICRO_TLS_1_2 (default) or CMICRO_TLS_1_3; anything older is rejected. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_min_version(struct cmicro_tls_config *cfg,
								   int version);
/* A PEM file of CRLs, checked for the leaf and the intermediates. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_crl_file(struct cmicro_tls_config *cfg,
								const char *path);
/*
 * Rotation without restart: reloads the files a frozen configuration was
 * given by path (certificate and key, CA files and directories, CRL file)
 * when any of them changed on disk since the last load. Everything is read
 * and checked first (PEM, key against certificate, usable by OpenSSL). A
 * failure is logged (TLS-RELOAD-FAILED), returned, and leaves the previous
 * material in use. On success (TLS-RELOADED) *changed (may be NULL) is set,
 * every context built from cfg uses the new material for its next
 * connection, open connections continue, and client contexts forget their
 * cached sessions. Certificates and CAs given in memory are kept. Does
 * nothing on a configuration no context uses yet. A connected broker calls
 * this itself every MICRO_TLS_RELOAD_INTERVAL seconds (default 5).
 */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_reload(struct cmicro_tls_config *cfg,
							  bool *changed);
/* Appends TLS secrets in NSS key log format to path (for Wireshark). The
 * file is opened (created with mode 0600) here, so a wrong path fails now.
 * A warning (TLS-KEYLOG) is logged each time a context starts using it. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_keylog_file(struct cmicro_tls_config *cfg,
								   const char *path);
/* Whether a server requests certificates from clients (mutual TLS). The
 * verification mode still applies to what clients present: off accepts any
 * certificate, audit logs failures, on rejects them. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_set_client_auth(struct cmicro_tls_config *cfg,
								   enum cmicro_tls_client_auth mode);

/* Getters. Strings are borrowed from the configuration. */
CMICRO_API enum cmicro_tls_verify cmicro_tls_config_get_verify(const struct cmicro_tls_config *cfg);
CMICRO_API enum cmicro_tls_source cmicro_tls_config_get_source(const struct cmicro_tls_config *cfg);
/* A sentence saying where the mode came from, e.g.
 * "MICRO_TLS_SECURE=true". */
CMICRO_API const char *cmicro_tls_config_get_source_text(const struct cmicro_tls_config *cfg);
CMICRO_API int cmicro_tls_config_get_min_version(const struct cmicro_tls_config *cfg);
CMICRO_API bool cmicro_tls_config_get_system_roots(const struct cmicro_tls_config *cfg);
/* The CA files and directories added, in order (in-memory CAs are not
 * listed). */
CMICRO_API size_t cmicro_tls_config_ca_count(const struct cmicro_tls_config *cfg);
CMICRO_API const char *cmicro_tls_config_ca_path(const struct cmicro_tls_config *cfg, size_t i);
CMICRO_API bool cmicro_tls_config_has_cert(const struct cmicro_tls_config *cfg);
/* The own certificate (borrowed; NULL when none). It stays valid until the
 * configuration is freed, also across reloads, which keep the certificates
 * they replace until then. */
CMICRO_API const struct cmicro_cert *cmicro_tls_config_get_cert(const struct cmicro_tls_config *cfg);
CMICRO_API const char *cmicro_tls_config_get_cert_file(const struct cmicro_tls_config *cfg);
CMICRO_API const char *cmicro_tls_config_get_server_name(const struct cmicro_tls_config *cfg);
CMICRO_API const char *cmicro_tls_config_get_crl_file(const struct cmicro_tls_config *cfg);
CMICRO_API const char *cmicro_tls_config_get_keylog_file(const struct cmicro_tls_config *cfg);
CMICRO_API enum cmicro_tls_client_auth
cmicro_tls_config_get_client_auth(const struct cmicro_tls_config *cfg);
/* go-micro's InsecureSkipVerify: true when verification is off. */
CMICRO_API bool cmicro_tls_config_insecure_skip_verify(const struct cmicro_tls_config *cfg);

/* Counts of verification failures per reason seen through contexts built from
 * this configuration, one per failed verification, in on and audit modes
 * (off mode does not verify). */
CMICRO_API uint64_t cmicro_tls_config_reason_count(const struct cmicro_tls_config *cfg,
						    enum cmicro_tls_reason reason);

/* One distinct verification failure (peer, reason) seen through contexts
 * built from a configuration, in audit or secure mode. */
struct cmicro_tls_finding {
	char address[96];    /* "host:port" of a server, the host of a client; "" unknown */
	char node_id[160];   /* registry node id of the peer; "" unknown */
	char peer[160];      /* the peer's label in logs */
	bool peer_is_client; /* found by the serving side, checking a client certificate */
	enum cmicro_tls_reason reason;
	char message[512];   /* the cause and the fix */
	uint64_t count;      /* failures of this peer for this reason */
	int64_t first_seen;  /* Unix seconds */
	int64_t last_seen;
};

/* The number of findings kept (at most 256; later distinct failures are
 * counted by cmicro_tls_config_reason_count only). */
CMICRO_API size_t cmicro_tls_config_finding_count(const struct cmicro_tls_config *cfg);

/* Copies finding i (in the order first seen). Returns CMICRO_EINVAL when i
 * is out of range. */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_config_finding(const struct cmicro_tls_config *cfg,
							   size_t i,
							   struct cmicro_tls_finding *out);

/* Verifications that passed (on and audit modes). */
CMICRO_API uint64_t cmicro_tls_config_verified_count(const struct cmicro_tls_config *cfg);

/* The outcome of one peer's verification. */
struct cmicro_tls_verdict {
	enum cmicro_tls_reason reason; /* NONE when verified */
	bool accepted;       /* the handshake was allowed to continue */
	long openssl_code;   /* X509_V_ERR_* or 0 */
	int depth;           /* chain position of the failing certificate */
	char message[512];   /* "certificate has expired: ..." with the fix */
};

/* An OpenSSL context for one role built from a configuration. */
struct cmicro_tls_context;

enum cmicro_tls_role {
	CMICRO_TLS_CLIENT = 0,
	CMICRO_TLS_SERVER
};

/*
 * Builds a context and freezes cfg. identity overrides the configuration's
 * own certificate (a server without one passes a self-signed certificate);
 * NULL uses the configuration's. The context holds a reference to cfg.
 * SSL objects made from the context must be freed before it.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_context_new(struct cmicro_tls_config *cfg,
							enum cmicro_tls_role role,
							const struct cmicro_cert *identity,
							struct cmicro_tls_context **out);
CMICRO_API void cmicro_tls_context_free(struct cmicro_tls_context *ctx);

/* The OpenSSL context new connections use now (borrowed). A reload of the
 * configuration's files replaces it before the next connection, so it is
 * valid until then. Take a reference with SSL_CTX_up_ref to keep it. */
CMICRO_API SSL_CTX *cmicro_tls_context_ssl_ctx(const struct cmicro_tls_context *ctx);

/* The configuration the context was built from (borrowed). */
CMICRO_API struct cmicro_tls_config *cmicro_tls_context_config(const struct cmicro_tls_context *ctx);

/*
 * Creates an SSL object ready to handshake. For a client, host is the name
 * or IP connected to (used for SNI and verification unless the configuration
 * sets a server name); peer_label names the peer in logs ("127.0.0.1:8443",
 * or a node id). Both are copied. A client that verifies (on or audit)
 * needs host or a configured server name: CMICRO_EINVAL otherwise.
 */
CMICRO_API CMICRO_NODISCARD int cmicro_tls_ssl_new(struct cmicro_tls_context *ctx,
						    const char *host, const char *peer_label,
						    SSL **out);

/* Fills verdict for an SSL object after (or after a failed) handshake. A
 * resumed session, off mode, or a server that asked for no client
 * certificate leaves reason NONE and accepted true. Returns CMICRO_EINVAL
 * when ssl was not made by cmicro_tls_ssl_new. */
CMICRO_API int cmicro_tls_ssl_verdict(const SSL *ssl, struct cmicro_tls_verdict *verdict);

/*
 * Classifies a failed handshake for messages. When verification rejected the
 * peer, the verdict is that rejection; otherwise it is protocol_version,
 * no_certificate, plaintext or other, from the OpenSSL error queue (which
 * this drains).
 */
CMICRO_API void cmicro_tls_ssl_failure(const SSL *ssl, struct cmicro_tls_verdict *verdict);

#ifdef __cplusplus
}
#endif

#endif
