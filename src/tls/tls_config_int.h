/*
 * Private to the TLS layer: the configuration and context structures and the
 * helpers that config.c, env.c, context.c and verify.c share. Layers above use
 * tls_int.h and the public API only.
 */
#ifndef CMICRO_TLS_CONFIG_INT_H
#define CMICRO_TLS_CONFIG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tls/tls_int.h"

/* Largest PEM file (certificates, keys, CRLs) the layer reads. */
#define CMI_TLS_FILE_MAX (16u * 1024 * 1024)

/* Distinct (peer, reason) pairs an audit-mode configuration remembers, so a
 * peer failing on every connection is logged once and memory stays bounded. */
#define CMI_TLS_AUDIT_MAX 4096

/* Resumable client sessions kept per context, one per "host:port". */
#define CMI_TLS_SESSION_MAX 256

/* Findings kept with their details for reports (cmicro tls report); later
 * distinct failures are still counted but not listed. */
#define CMI_TLS_FINDINGS_MAX 256

struct tls_audit_set {
	pthread_mutex_t lock;
	uint64_t *hashes; /* open addressing, 0 = empty slot */
	size_t used;
	bool full_reported;
	struct cmicro_tls_finding *findings; /* CMI_TLS_FINDINGS_MAX slots, allocated on use */
	size_t n_findings;
	_Atomic uint64_t handshakes_ok; /* verifications that passed */
};

struct cmicro_tls_config {
	atomic_int refs;
	atomic_bool frozen;
	pthread_mutex_t lock; /* serialises setters against the freeze */

	enum cmicro_tls_verify verify;
	enum cmicro_tls_source source;
	char source_text[160];
	int min_version;
	bool system_roots;
	enum cmicro_tls_client_auth client_auth;

	char **ca_paths; /* files and directories, in the order added */
	size_t n_ca_paths;
	STACK_OF(X509) *ca_certs;     /* every trusted certificate loaded so far */
	STACK_OF(X509) *mem_ca_certs; /* the ones given in memory, kept by reloads */

	struct cmicro_cert *cert; /* own identity with key, or NULL */
	char *cert_file;
	char *key_file;
	char *key_passphrase; /* kept for reloads; cleansed when freed */
	char *server_name;
	char *crl_file;
	STACK_OF(X509_CRL) *crls;
	char *keylog_file;

	X509_STORE *store; /* built when the configuration is frozen, rebuilt by reloads */

	/* Reloading (reload.c). cert, ca_certs, crls and store change only
	 * under lock, and each change bumps generation, which contexts compare
	 * to rebuild their OpenSSL context before the next connection. */
	pthread_mutex_t reload_lock; /* one reload at a time */
	atomic_uint generation;
	uint64_t files_stamp; /* of the files behind the material in use */
	uint64_t failed_stamp; /* of the last files that failed to load; 0 if none */
	/* Replaced identities, kept until the configuration is freed because
	 * cmicro_tls_config_get_cert hands out borrowed pointers. */
	struct cmicro_cert **retired;
	size_t n_retired;

	_Atomic uint64_t reason_counts[CMICRO_TLS_REASON_COUNT];
	struct tls_audit_set audit;
};

struct tls_session_entry {
	char *key; /* "host:port" */
	SSL_SESSION *session;
	uint64_t stamp; /* larger is newer; the oldest entry is replaced first */
};

struct cmicro_tls_context {
	SSL_CTX *ssl_ctx; /* guarded by swap_lock once built */
	struct cmicro_tls_config *cfg; /* held */
	enum cmicro_tls_role role;
	struct cmicro_cert *identity; /* given to cmicro_tls_context_new, or NULL */
	pthread_mutex_t swap_lock;
	unsigned generation; /* of the configuration material ssl_ctx was built from */

	int keylog_fd; /* -1 when no key log */

	pthread_mutex_t session_lock;
	struct tls_session_entry sessions[CMI_TLS_SESSION_MAX];
	uint64_t session_clock;
};

/* Per-SSL state stored in SSL ex_data by cmicro_tls_ssl_new. */
struct tls_ssl_data {
	struct cmicro_tls_context *ctx; /* borrowed: SSL objects die before their context */
	char *host;
	char *peer_label;
	char *session_key; /* set by cmi_tls_session_resume */
	char *address;     /* "host:port" of the peer, or its host for clients of a server */
	char *node_id;     /* the registry node id of the peer, when known */
	int peer_version;  /* version field of the peer's hello, 0 until seen */
	bool cert_requested; /* the server sent a CertificateRequest */
	bool verified;     /* the verification callback ran */
	struct cmicro_tls_verdict verdict;
};

/* The result of reading MICRO_TLS_SECURE and MICRO_TLS_INSECURE. */
struct cmi_tls_env_decision {
	enum cmicro_tls_verify mode;
	enum cmicro_tls_source source;
	const char *warning_id; /* NULL when no warning is due */
	char warning[640];
	char source_text[160];
};

/*
 * Decides the verification mode from the two variables' values (NULL when
 * unset) and the build's default, without reading the environment, so every
 * row of the table can be tested in one build.
 */
void cmi_tls_env_decide(const char *secure_value, const char *insecure_value,
                        bool secure_by_default, struct cmi_tls_env_decision *out);

/* Parses "none", "request" or "require" (any case, blanks ignored; empty is
 * none). Returns 0, or -1 for anything else. */
int cmi_tls_parse_client_auth(const char *text, enum cmicro_tls_client_auth *mode);

/* Parses a minimum version: "1.2", "1.3", "TLS1.2", "tlsv1.3" or the wire
 * numbers 0x0303 and 0x0304. Returns 0, or -1 for anything else (older
 * versions included). */
int cmi_tls_parse_version(const char *text, int *version);

/* Returns the build's CMICRO_SECURE_BY_DEFAULT setting. */
bool cmi_tls_secure_by_default(void);

/* Lets the once-per-process warnings fire again (tests only). */
void cmi_tls_env_reset_warnings(void);

/* Locks cfg for a setter named setter; returns CMICRO_EBUSY (unlocked) when
 * the configuration is frozen. */
int cmi_tls_config_lock(struct cmicro_tls_config *cfg, const char *setter);
void cmi_tls_config_unlock(struct cmicro_tls_config *cfg);

/* Fails with CMICRO_EBUSY when cfg is frozen, so setters that read files
 * reject a frozen configuration before the work; the setter's lock checks
 * again. */
int cmi_tls_config_check_open(struct cmicro_tls_config *cfg, const char *setter);

/* Builds the trust store on first use and freezes the configuration.
 * Returns the store with a new reference, or NULL with an error set. */
X509_STORE *cmi_tls_config_freeze(struct cmicro_tls_config *cfg);

/* Counts one failure and, in audit mode, logs it once per (address, node
 * id, reason); peer labels the peer when neither is known. Keeps the
 * finding for cmicro_tls_config_finding. */
void cmi_tls_config_record(struct cmicro_tls_config *cfg, const struct tls_ssl_data *data,
                           enum cmicro_tls_role role, const struct cmicro_tls_verdict *verdict);

/* The ex_data index of struct tls_ssl_data on SSL objects. */
int cmi_tls_ssl_data_index(void);
struct tls_ssl_data *cmi_tls_ssl_data(const SSL *ssl);

/* The certificate verification callback installed on every context. */
int cmi_tls_verify_cb(X509_STORE_CTX *store_ctx, void *arg);

/* Fills verdict for a peer chain without a handshake: the same checks as the
 * callback. host NULL skips the name check (servers checking clients). */
void cmi_tls_verify_chain(struct cmicro_tls_config *cfg, X509_STORE *store,
                          enum cmicro_tls_role role, const char *host, X509 *leaf,
                          STACK_OF(X509) *sent, struct cmicro_tls_verdict *verdict);


/* Returns a reference-holding copy of the configuration's identity (NULL
 * when it has none or out of memory) and of its trusted certificates
 * (NULL only out of memory), safe against a concurrent reload. */
struct cmicro_cert *cmi_tls_config_cert_hold(struct cmicro_tls_config *cfg);
STACK_OF(X509) *cmi_tls_config_cas_hold(struct cmicro_tls_config *cfg);

/* A fingerprint of the configuration's files' metadata (not content). */
uint64_t cmi_tls_config_files_stamp(const struct cmicro_tls_config *cfg);

/* Counts reloads that replaced the material; contexts compare it. */
unsigned cmi_tls_config_generation(struct cmicro_tls_config *cfg);

/* Copies src, taking references to its OpenSSL objects. */
int cmi_cert_ref_copy(const struct cmicro_cert *src, struct cmicro_cert **out);

/* Reads a CA file or directory path into certs (appending). */
int cmi_tls_trust_read_path(const char *path, STACK_OF(X509) *certs);

/* Builds a trust store from the given parts. */
int cmi_tls_trust_build(bool system_roots, STACK_OF(X509) *cas, STACK_OF(X509_CRL) *crls,
                        const char *crl_file, X509_STORE **out);

/* Returns the printable form of an untrusted value for a message: control
 * characters escaped, truncated to fit. */
const char *cmi_tls_printable(const char *value, char *buf, size_t size);

#endif
