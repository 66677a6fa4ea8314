/* Shared parts of the `cmicro tls` subcommands (cmd_tls*.c). */
#ifndef CMICRO_TLS_CLI_H
#define CMICRO_TLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include <cmicro/cmicro.h>

#define TLS_CHECK_MAX_CA 16

/* Check settings: the target and the trust that secure mode would use. */
struct tls_check_args {
	const char *target;
	char host[256];
	char port[8];
	const char *cas[TLS_CHECK_MAX_CA];
	int n_cas;
	bool no_system_roots;
	const char *server_name;
	const char *cert_file; /* client certificate to present, or NULL */
	const char *key_file;
	int timeout_s;
	bool json;
};

/* Whether the server would go on without a client certificate. */
enum tls_cert_required {
	TLS_CERT_REQUIRED_UNKNOWN = 0, /* a certificate was presented, or no probe was possible */
	TLS_CERT_REQUIRED_NO,
	TLS_CERT_REQUIRED_YES
};

/* The outcome of one check, for the text and JSON reports. */
struct tls_check_result {
	struct cmicro_tls_verdict verdict;
	bool handshake_done;
	bool connected;       /* the TCP connection was made */
	const char *protocol;
	const char *cipher;
	char alpn[64];
	char error[512];      /* why no handshake was possible, when not connected */
	long long leaf_not_after; /* Unix seconds; 0 when no certificate arrived */
	bool cert_requested;  /* the server sent a CertificateRequest */
	bool cert_presented;  /* and the client presented --cert */
	enum tls_cert_required cert_required;
};

/* Splits args->target ("host:port" or "[v6]:port") into host and port;
 * prints the error and returns -1 when invalid. */
int tls_parse_target(struct tls_check_args *args);

/* Builds the audit-mode client context that computes what secure mode would
 * decide, trusting the --ca files and those of MICRO_TLS_CA_FILE. Prints the
 * error on failure. */
int tls_check_context(const struct tls_check_args *args, struct cmicro_tls_context **ctx);

/* Connects to args->target, runs the handshake with ctx and fills res.
 * Returns 0 after a handshake attempt, -1 when no TCP connection was made
 * (res->error contains the cause). *chain_out, when given, receives the chain sent. */
int tls_check_run(const struct tls_check_args *args, struct cmicro_tls_context *ctx,
		  struct tls_check_result *res, struct cmicro_cert **chain_out);

/*
 * Fetches GET path from a broker listener at address with a timeout in
 * milliseconds: over HTTPS without verification first (the listener of a
 * TLS broker), then plain HTTP when the peer does not speak TLS. Returns 0
 * with the body (free with free) and the HTTP status, or -1 with the error
 * in err.
 */
/* Keeps the library's per-peer findings (TLS-AUDIT, TLS-EXPIRY-*) off
 * standard error while a checker prints the same results on standard
 * output; CMICRO_LOG_LEVEL=debug shows them again. */
void tls_cli_quiet_findings(void);

int tls_cli_http_get(const char *address, const char *path, int timeout_ms, char **body,
		     int *status, char *err, size_t err_size);

int tls_run_report(int argc, char **argv);
int tls_run_scan(int argc, char **argv);

#endif
