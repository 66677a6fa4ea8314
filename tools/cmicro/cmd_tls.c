/*
 * `cmicro tls`: print the TLS configuration the environment gives, and check
 * whether a peer would pass secure mode.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cmicro/cmicro.h>

#include "cert_print.h"
#include "cli.h"
#include "tls_cli.h"
#include "broker/broker_int.h"
#include "tls/tls_int.h"

static const char tls_usage_text[] =
    "usage: cmicro tls SUBCOMMAND [OPTIONS]\n"
    "\n"
    "subcommands:\n"
    "  config   print the TLS configuration the environment (MICRO_TLS_*) gives\n"
    "  check    check whether a TLS server would pass secure mode, and if not why\n"
    "  report   print what secure mode would reject on running brokers (audit findings)\n"
    "  scan     check every broker node of the registry as secure mode would\n"
    "\n"
    "Run 'cmicro tls SUBCOMMAND --help' for its options.\n";

static const char tls_config_help[] =
    "usage: cmicro tls config [--json]\n"
    "\n"
    "Prints the TLS configuration that cmicro services started with this environment\n"
    "use: whether peers are verified (off, on or audit) and which variable decided it,\n"
    "InsecureSkipVerify as go-micro reports it, the minimum TLS version, the trusted\n"
    "roots (system roots, honouring SSL_CERT_FILE and SSL_CERT_DIR, and MICRO_TLS_CA_FILE),\n"
    "the node's own certificate (MICRO_TLS_CERT_FILE), client authentication\n"
    "(MICRO_TLS_CLIENT_AUTH) and the key log file (SSLKEYLOGFILE, reported but not\n"
    "created or opened). Exits 2 when the environment names files that cannot be loaded.\n"
    "\n"
    "  --json  print one JSON object instead of text\n";

static const char *tls_verify_name(enum cmicro_tls_verify mode)
{
	switch (mode) {
	case CMICRO_TLS_VERIFY_ON:
		return "on";
	case CMICRO_TLS_VERIFY_AUDIT:
		return "audit";
	default:
		return "off";
	}
}

static const char *tls_source_name(enum cmicro_tls_source source)
{
	switch (source) {
	case CMICRO_TLS_SOURCE_SECURE_ENV:
		return "MICRO_TLS_SECURE";
	case CMICRO_TLS_SOURCE_INSECURE_ENV:
		return "MICRO_TLS_INSECURE";
	case CMICRO_TLS_SOURCE_CODE:
		return "code";
	default:
		return "default";
	}
}

static const char *tls_version_name(int version)
{
	return version == CMICRO_TLS_1_3 ? "TLS 1.3" : "TLS 1.2";
}

static const char *tls_client_auth_name(enum cmicro_tls_client_auth mode)
{
	switch (mode) {
	case CMICRO_TLS_CLIENT_AUTH_REQUEST:
		return "request";
	case CMICRO_TLS_CLIENT_AUTH_REQUIRE:
		return "require";
	default:
		return "none";
	}
}

/* The sentence shown under the configuration when peers are not verified. */
static const char *tls_config_warning(enum cmicro_tls_verify mode)
{
	if (mode == CMICRO_TLS_VERIFY_OFF)
		return "certificate verification is OFF: any certificate and any host name are "
		       "accepted, so connections can be intercepted; set MICRO_TLS_SECURE=true "
		       "to verify peers (or MICRO_TLS_SECURE=audit to log failures first)";
	if (mode == CMICRO_TLS_VERIFY_AUDIT)
		return "audit mode: verification failures are logged and counted but not "
		       "enforced; set MICRO_TLS_SECURE=true once the logs show none";
	return NULL;
}

static const char *tls_or_none(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : "(none)";
}

/* Returns a note for a path that OpenSSL would silently skip. */
static const char *tls_path_note(const char *path)
{
	if (path == NULL || access(path, R_OK) == 0)
		return "";
	return errno == ENOENT ? " (does not exist)" : " (not readable)";
}

static void tls_config_roots_text(const struct cmicro_tls_config *cfg, char *buf, size_t size)
{
	const char *file = getenv("SSL_CERT_FILE");
	const char *dir = getenv("SSL_CERT_DIR");

	if (!cmicro_tls_config_get_system_roots(cfg)) {
		snprintf(buf, size, "no");
		return;
	}
	/* OpenSSL loads no system roots from a missing SSL_CERT_FILE, without an error. */
	snprintf(buf, size, "yes (SSL_CERT_FILE=%s%s, SSL_CERT_DIR=%s%s)",
	         file != NULL ? file : "unset", tls_path_note(file), dir != NULL ? dir : "unset",
	         tls_path_note(dir));
	if (file == NULL && dir == NULL)
		snprintf(buf, size, "yes (OpenSSL defaults: %s, %s)", X509_get_default_cert_file(),
		         X509_get_default_cert_dir());
}

static void tls_config_text(const struct cmicro_tls_config *cfg, const char *keylog)
{
	enum cmicro_tls_verify mode = cmicro_tls_config_get_verify(cfg);
	size_t n_ca = cmicro_tls_config_ca_count(cfg);
	const char *warning = tls_config_warning(mode);
	char roots[1024];

	tls_config_roots_text(cfg, roots, sizeof(roots));
	printf("%-19s %s\n", "verification:", tls_verify_name(mode));
	printf("%-19s %s\n", "source:", cmicro_tls_config_get_source_text(cfg));
	printf("%-19s %s\n", "InsecureSkipVerify:",
	       cmicro_tls_config_insecure_skip_verify(cfg) ? "true" : "false");
	printf("%-19s %s\n",
	       "minimum version:", tls_version_name(cmicro_tls_config_get_min_version(cfg)));
	printf("%-19s %s\n", "system roots:", roots);
	printf("%-19s %s\n", "CA files:", n_ca == 0 ? "(none)" : cmicro_tls_config_ca_path(cfg, 0));
	for (size_t i = 1; i < n_ca; i++)
		printf("%-19s %s\n", "", cmicro_tls_config_ca_path(cfg, i));
	printf("%-19s %s\n", "own certificate:", tls_or_none(cmicro_tls_config_get_cert_file(cfg)));
	printf("%-19s %s\n",
	       "client auth:", tls_client_auth_name(cmicro_tls_config_get_client_auth(cfg)));
	printf("%-19s %s\n", "CRL file:", tls_or_none(cmicro_tls_config_get_crl_file(cfg)));
	printf("%-19s %s%s\n", "key log file:", tls_or_none(keylog), tls_path_note(keylog));
	if (warning != NULL)
		printf("\nwarning: %s\n", warning);
}

static json_t *tls_json_string_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

static int tls_config_json(const struct cmicro_tls_config *cfg, const char *keylog)
{
	enum cmicro_tls_verify mode = cmicro_tls_config_get_verify(cfg);
	json_t *cas = json_array();
	json_t *obj;

	for (size_t i = 0; cas != NULL && i < cmicro_tls_config_ca_count(cfg); i++)
		json_array_append_new(cas, json_string(cmicro_tls_config_ca_path(cfg, i)));

	obj =
	    json_pack("{s:s, s:s, s:s, s:b, s:s, s:b, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o}",
	              "verification", tls_verify_name(mode), "source",
	              tls_source_name(cmicro_tls_config_get_source(cfg)), "source_text",
	              cmicro_tls_config_get_source_text(cfg), "insecure_skip_verify",
	              cmicro_tls_config_insecure_skip_verify(cfg), "min_version",
	              tls_version_name(cmicro_tls_config_get_min_version(cfg)), "system_roots",
	              cmicro_tls_config_get_system_roots(cfg), "ssl_cert_file",
	              tls_json_string_or_null(getenv("SSL_CERT_FILE")), "ssl_cert_dir",
	              tls_json_string_or_null(getenv("SSL_CERT_DIR")), "ca_files", cas, "cert_file",
	              tls_json_string_or_null(cmicro_tls_config_get_cert_file(cfg)), "client_auth",
	              tls_client_auth_name(cmicro_tls_config_get_client_auth(cfg)), "crl_file",
	              tls_json_string_or_null(cmicro_tls_config_get_crl_file(cfg)), "keylog_file",
	              tls_json_string_or_null(keylog), "warning",
	              tls_json_string_or_null(tls_config_warning(mode)));
	if (obj == NULL) {
		cli_error(
		    "cannot build the JSON output (out of memory or invalid UTF-8 in a path)");
		return CLI_EXIT_INTERNAL;
	}
	json_dumpf(obj, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(obj);
	return CLI_EXIT_OK;
}

static int tls_run_config(int argc, char **argv)
{
	struct cmicro_tls_config *cfg = NULL;
	char *keylog = NULL;
	bool json = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(tls_config_help, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(argv[i], "--json") != 0) {
			cli_error("unknown argument \"%s\" for 'cmicro tls config'; see --help",
			          argv[i]);
			return CLI_EXIT_USAGE;
		}
		json = true;
	}

	/* Loading SSLKEYLOGFILE creates the file, and this command only reports it. */
	keylog = getenv("SSLKEYLOGFILE");
	keylog = keylog != NULL && keylog[0] != '\0' ? cmi_strdup(keylog) : NULL;
	unsetenv("SSLKEYLOGFILE");
	rc = cmicro_tls_config_from_env(&cfg);
	if (keylog != NULL)
		setenv("SSLKEYLOGFILE", keylog, 1);
	/* A broker refuses to start with these, so the report must not pass
	 * them. Reading the log level logs an invalid CMICRO_LOG_LEVEL as a
	 * node would at its first log line. */
	if (rc == 0 && (cmi_brk_expiry_warn_days() < 0 || cmi_brk_reload_interval() < 0)) {
		rc = CMICRO_EINVAL;
		cmicro_tls_config_free(cfg);
		cfg = NULL;
	}
	(void)cmicro_log_get_level();
	if (rc != 0) {
		cli_error_rc("the TLS environment is invalid", rc);
		free(keylog);
		return CLI_EXIT_USAGE;
	}
	if (json)
		rc = tls_config_json(cfg, keylog);
	else
		tls_config_text(cfg, keylog);
	cmicro_tls_config_free(cfg);
	free(keylog);
	return rc;
}

static const char tls_check_help[] =
    "usage: cmicro tls check HOST:PORT [--ca FILE]... [--no-system-roots]\n"
    "                        [--server-name NAME] [--cert FILE --key FILE]\n"
    "                        [--timeout SECONDS] [--json]\n"
    "\n"
    "Connects to a TLS server, completes the handshake in audit mode and reports what\n"
    "secure mode (MICRO_TLS_SECURE=true) would decide, with the reason and the fix.\n"
    "Prints the protocol, cipher, ALPN and the certificate chain the server sent.\n"
    "HOST is a DNS name, an IPv4 address or an IPv6 address in brackets ([::1]:8443).\n"
    "Reports whether the server requests a client certificate, and whether it rejects\n"
    "the handshake without one (reason no_certificate).\n"
    "\n"
    "  --ca FILE           also trust the CA certificates in FILE (repeatable); the\n"
    "                      files of MICRO_TLS_CA_FILE (separated by ',' or ':') are\n"
    "                      trusted too\n"
    "  --no-system-roots   trust only the --ca files, not the system roots\n"
    "  --server-name NAME  verify the certificate for NAME instead of HOST (also sent\n"
    "                      as SNI)\n"
    "  --cert FILE         client certificate to present when the server requests one\n"
    "  --key FILE          private key of --cert (not encrypted)\n"
    "  --timeout SECONDS   limit for connecting and for the handshake (default: 10)\n"
    "  --json              print one JSON object instead of text\n"
    "\n"
    "Exit codes: 0 secure mode would accept the server, 1 it would reject it (the\n"
    "reason is printed; a plain-HTTP server is rejected with reason plaintext), 2 wrong\n"
    "usage, a CA or client certificate file that cannot be loaded, or no TLS handshake\n"
    "possible for another reason (connection refused, timeout, connection reset),\n"
    "3 internal error.\n";

enum tls_check_opt {
	TLS_OPT_CA = 256,
	TLS_OPT_NO_SYSTEM_ROOTS,
	TLS_OPT_SERVER_NAME,
	TLS_OPT_TIMEOUT,
	TLS_OPT_JSON,
	TLS_OPT_CERT,
	TLS_OPT_KEY,
	TLS_OPT_HELP
};

static const struct option tls_check_opts[] = {
    {"ca", required_argument, NULL, TLS_OPT_CA},
    {"no-system-roots", no_argument, NULL, TLS_OPT_NO_SYSTEM_ROOTS},
    {"server-name", required_argument, NULL, TLS_OPT_SERVER_NAME},
    {"timeout", required_argument, NULL, TLS_OPT_TIMEOUT},
    {"json", no_argument, NULL, TLS_OPT_JSON},
    {"cert", required_argument, NULL, TLS_OPT_CERT},
    {"key", required_argument, NULL, TLS_OPT_KEY},
    {"help", no_argument, NULL, TLS_OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Splits "host:port", "[v6]:port" into args->host and args->port. */
int tls_parse_target(struct tls_check_args *args)
{
	const char *t = args->target;
	const char *host = t;
	const char *colon;
	size_t host_len;
	char *end = NULL;
	long port;

	if (t[0] == '[') {
		const char *close = strchr(t, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		host = t + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(t, ':');
		if (colon == NULL || memchr(t, ':', (size_t)(colon - t)) != NULL)
			goto bad;
		host_len = (size_t)(colon - t);
	}
	if (host_len == 0 || host_len >= sizeof(args->host))
		goto bad;

	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535)
		goto bad;
	memcpy(args->host, host, host_len);
	args->host[host_len] = '\0';
	snprintf(args->port, sizeof(args->port), "%ld", port);
	return 0;

bad:
	cli_error("invalid target \"%s\": give HOST:PORT with a port from 1 to 65535, and an "
	          "IPv6 address in brackets ([::1]:8443)",
	          t);
	return -1;
}

static int tls_check_apply(struct tls_check_args *args, int opt, const char *value)
{
	char *end = NULL;
	long v;

	switch (opt) {
	case TLS_OPT_CA:
		if (args->n_cas == TLS_CHECK_MAX_CA) {
			cli_error("too many --ca options (at most %d); concatenate the CA files "
			          "into one bundle",
			          TLS_CHECK_MAX_CA);
			return -1;
		}
		args->cas[args->n_cas++] = value;
		return 0;
	case TLS_OPT_NO_SYSTEM_ROOTS:
		args->no_system_roots = true;
		return 0;
	case TLS_OPT_SERVER_NAME:
		args->server_name = value;
		return 0;
	case TLS_OPT_JSON:
		args->json = true;
		return 0;
	case TLS_OPT_CERT:
		args->cert_file = value;
		return 0;
	case TLS_OPT_KEY:
		args->key_file = value;
		return 0;
	case TLS_OPT_TIMEOUT:
		errno = 0;
		v = strtol(value, &end, 10);
		if (errno == 0 && end != value && *end == '\0' && v >= 1 && v <= 600) {
			args->timeout_s = (int)v;
			return 0;
		}
		cli_error("invalid --timeout \"%s\": give whole seconds from 1 to 600", value);
		return -1;
	default:
		return -1;
	}
}

/* Returns 1 for --help, 0 when valid, -1 after printing an error. */
static int tls_check_parse(int argc, char **argv, struct tls_check_args *args)
{
	int opt;

	args->timeout_s = 10;
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", tls_check_opts, NULL)) != -1) {
		if (opt == 'h' || opt == TLS_OPT_HELP)
			return 1;
		if (opt == ':' || opt == '?') {
			cli_error("%s %s; see 'cmicro tls check --help'",
			          opt == ':' ? "missing value for option" : "unknown option",
			          argv[optind - 1]);
			return -1;
		}
		if (tls_check_apply(args, opt, optarg) != 0)
			return -1;
	}
	if (argc - optind != 1) {
		cli_error("'cmicro tls check' takes exactly one HOST:PORT (got %d)", argc - optind);
		return -1;
	}
	if ((args->cert_file == NULL) != (args->key_file == NULL)) {
		cli_error("--cert and --key go together: give the client certificate and its "
		          "private key, or neither");
		return -1;
	}
	args->target = argv[optind];
	return tls_parse_target(args);
}

/* Waits for a non-blocking connect; returns 0 or an errno value. */
static int tls_wait_connect(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t len = sizeof(int);
	int err = 0;
	int n;

	do {
		n = poll(&p, 1, timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return ETIMEDOUT;
	if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return errno;
	return err;
}

/* Makes fd blocking again with send and receive timeouts, which bound the
 * handshake. */
static int tls_socket_timeouts(int fd, int timeout_s)
{
	struct timeval tv = {.tv_sec = timeout_s};
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return errno;
	return 0;
}

static int tls_connect_addr(const struct addrinfo *ai, int timeout_s, int *err)
{
	int fd =
	    socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		*err = 0;
	else if (errno == EINPROGRESS)
		*err = tls_wait_connect(fd, timeout_s * 1000);
	else
		*err = errno;
	if (*err == 0)
		*err = tls_socket_timeouts(fd, timeout_s);
	if (*err != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Connects over TCP to the first address of the target that accepts the
 * connection; res->error says why none did. */
static int tls_connect(const struct tls_check_args *args, struct tls_check_result *res)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai_list = NULL;
	int err = 0;
	int fd = -1;
	int gai = getaddrinfo(args->host, args->port, &hints, &ai_list);

	if (gai != 0) {
		snprintf(res->error, sizeof(res->error), "cannot resolve host \"%s\": %s; check "
		         "the name", args->host, gai_strerror(gai));
		return -1;
	}
	for (const struct addrinfo *ai = ai_list; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = tls_connect_addr(ai, args->timeout_s, &err);
	freeaddrinfo(ai_list);
	if (fd < 0)
		snprintf(res->error, sizeof(res->error), "cannot connect to %s: %s%s", args->target,
		         strerror(err),
		         err == ETIMEDOUT      ? " (raise --timeout or check the firewall)"
		         : err == ECONNREFUSED ? " (nothing listens there: check the address and "
		                                 "that the node runs)"
		                               : "");
	return fd;
}

/* Adds the files of MICRO_TLS_CA_FILE, split and trimmed as services do, so
 * that the check trusts what a service started here would trust. */
static int tls_add_env_cas(struct cmicro_tls_config *cfg)
{
	const char *p = getenv("MICRO_TLS_CA_FILE");

	while (p != NULL && *p != '\0') {
		size_t n = strcspn(p, ",:");
		const char *item = p;
		char path[4096];

		p += n + (p[n] != '\0');
		while (n > 0 && isspace((unsigned char)*item)) {
			item++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)item[n - 1]))
			n--;
		if (n == 0)
			continue;
		snprintf(path, sizeof(path), "%.*s", (int)n, item);
		if (cmicro_tls_config_add_ca_file(cfg, path) != 0) {
			cli_error("MICRO_TLS_CA_FILE entry \"%s\" cannot be loaded: %s", path,
			          cmicro_last_errmsg());
			return -1;
		}
	}
	return 0;
}

/* Builds the audit-mode client configuration: the handshake completes even
 * when verification fails, and the verdict reports what secure mode would do. */
int tls_check_context(const struct tls_check_args *args, struct cmicro_tls_context **ctx)
{
	struct cmicro_tls_config *cfg = NULL;
	int rc = cmicro_tls_config_new(&cfg);

	if (rc == 0)
		rc = cmicro_tls_config_set_verify(cfg, CMICRO_TLS_VERIFY_AUDIT);
	if (rc == 0)
		rc = cmicro_tls_config_set_system_roots(cfg, !args->no_system_roots);
	for (int i = 0; rc == 0 && i < args->n_cas; i++)
		rc = cmicro_tls_config_add_ca_file(cfg, args->cas[i]);
	if (rc == 0 && tls_add_env_cas(cfg) != 0) {
		cmicro_tls_config_free(cfg);
		return CMICRO_ECONFIG;
	}
	if (rc == 0 && args->server_name != NULL)
		rc = cmicro_tls_config_set_server_name(cfg, args->server_name);
	if (rc == 0 && args->cert_file != NULL)
		rc = cmicro_tls_config_set_cert_files(cfg, args->cert_file, args->key_file, NULL);
	if (rc == 0)
		rc = cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, ctx);
	cmicro_tls_config_free(cfg);
	if (rc != 0)
		cli_error_rc("cannot build the TLS client", rc);
	return rc;
}

static void tls_record_session(SSL *ssl, struct tls_check_result *res)
{
	const unsigned char *alpn = NULL;
	unsigned int alpn_len = 0;

	res->handshake_done = true;
	res->protocol = SSL_get_version(ssl);
	res->cipher = SSL_get_cipher_name(ssl);
	SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
	if (alpn_len >= sizeof(res->alpn))
		alpn_len = sizeof(res->alpn) - 1;
	if (alpn != NULL)
		memcpy(res->alpn, alpn, alpn_len);
	res->alpn[alpn_len] = '\0';
}

/* Called by OpenSSL on the client when the server sends a CertificateRequest. */
static int tls_note_cert_request(SSL *ssl, void *arg)
{
	struct tls_check_result *res = arg;

	res->cert_requested = true;
	res->cert_presented = SSL_get_certificate(ssl) != NULL;
	return 1;
}

/* Reports a server that closed the connection because no client certificate
 * came; alert names the TLS alert received. */
static void tls_no_cert_verdict(struct tls_check_result *res, const char *alert)
{
	res->cert_required = TLS_CERT_REQUIRED_YES;
	res->verdict.reason = CMICRO_TLS_REASON_NO_CERTIFICATE;
	snprintf(res->verdict.message, sizeof(res->verdict.message),
	         "the server requires a client certificate and ended the handshake without "
	         "one (%s); give --cert and --key with a certificate the server trusts",
	         alert != NULL ? alert : "alert received");
}

/* In TLS 1.3 the server checks the client certificate after the client has
 * finished its handshake, so a rejection arrives as an alert on the first
 * read. Waits up to two seconds (or --timeout) for it. */
static void tls_probe_cert_required(const struct tls_check_args *args, SSL *ssl, int fd,
                                    struct tls_check_result *res)
{
	struct timeval tv = {.tv_sec = args->timeout_s < 2 ? args->timeout_s : 2};
	char byte;
	int n;

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
		return;
	ERR_clear_error();
	n = SSL_peek(ssl, &byte, 1);
	if (n <= 0 && SSL_get_error(ssl, n) == SSL_ERROR_SSL) {
		if (res->verdict.reason == CMICRO_TLS_REASON_NONE)
			tls_no_cert_verdict(res, ERR_reason_error_string(ERR_peek_last_error()));
		else
			res->cert_required = TLS_CERT_REQUIRED_YES;
	} else {
		res->cert_required = TLS_CERT_REQUIRED_NO;
	}
	ERR_clear_error();
}

/* Runs the handshake; a failure leaves the classified reason in res. */
static void tls_handshake(const struct tls_check_args *args, SSL *ssl, int fd,
                          struct tls_check_result *res)
{
	int saved_errno;

	if (SSL_set_fd(ssl, fd) != 1) {
		cmicro_tls_ssl_failure(ssl, &res->verdict);
		return;
	}
	SSL_set_cert_cb(ssl, tls_note_cert_request, res);
	errno = 0;
	if (SSL_connect(ssl) == 1) {
		tls_record_session(ssl, res);
		if (cmicro_tls_ssl_verdict(ssl, &res->verdict) != 0)
			res->verdict.reason = CMICRO_TLS_REASON_OTHER;
		if (res->cert_requested && !res->cert_presented &&
		    SSL_version(ssl) >= TLS1_3_VERSION)
			tls_probe_cert_required(args, ssl, fd, res);
		else if (res->cert_requested && !res->cert_presented)
			res->cert_required = TLS_CERT_REQUIRED_NO;
		return;
	}

	saved_errno = errno;
	if (res->cert_requested && !res->cert_presented) {
		tls_no_cert_verdict(res, ERR_reason_error_string(ERR_peek_last_error()));
		ERR_clear_error();
		return;
	}
	cmicro_tls_ssl_failure(ssl, &res->verdict);
	if (res->verdict.reason == CMICRO_TLS_REASON_NONE)
		res->verdict.reason = CMICRO_TLS_REASON_OTHER;
	if (res->verdict.reason == CMICRO_TLS_REASON_OTHER &&
	    (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
		snprintf(res->verdict.message, sizeof(res->verdict.message),
		         "no reply within %d seconds; the port may not speak TLS, or raise "
		         "--timeout",
		         args->timeout_s);
}

/* Copies the certificates the server sent (leaf first) into a cmicro_cert. */
static struct cmicro_cert *tls_peer_chain(SSL *ssl)
{
	STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
	STACK_OF(X509) *rest = NULL;
	struct cmicro_cert *cert = NULL;
	X509 *leaf;

	if (sent == NULL || sk_X509_num(sent) == 0)
		return NULL;
	rest = sk_X509_new_null();
	if (rest == NULL || X509_add_certs(rest, sent, X509_ADD_FLAG_UP_REF) != 1) {
		sk_X509_pop_free(rest, X509_free);
		return NULL;
	}
	leaf = sk_X509_shift(rest);
	if (cmi_cert_wrap(leaf, rest, NULL, &cert) != 0)
		return NULL;
	return cert;
}

static bool tls_check_accepted(const struct tls_check_result *res)
{
	return res->handshake_done && res->verdict.reason == CMICRO_TLS_REASON_NONE;
}

static void tls_check_chain_text(const struct cmicro_cert *chain)
{
	size_t n = cmicro_cert_chain_len(chain);

	printf("\nchain sent by the server: %zu certificate%s\n", n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		struct cmicro_cert_info *info = NULL;

		if (cmicro_cert_inspect(chain, i, &info) != 0)
			continue;
		printf("certificate %zu of %zu (%s)\n", i + 1, n, cert_print_role(info, i));
		cert_print_text(stdout, info, "  ");
		cmicro_cert_info_free(info);
	}
}

static const char *tls_required_name(enum tls_cert_required required)
{
	switch (required) {
	case TLS_CERT_REQUIRED_YES:
		return "yes";
	case TLS_CERT_REQUIRED_NO:
		return "no";
	default:
		return "unknown";
	}
}

/* Describes the client certificate exchange: "not requested by the server",
 * or the request, whether it looks required and what was presented. */
static const char *tls_client_cert_text(const struct tls_check_args *args,
                                        const struct tls_check_result *res, char *buf,
                                        size_t size)
{
	if (!res->cert_requested)
		return "not requested by the server";
	if (res->cert_presented)
		snprintf(buf, size, "requested by the server; presented %s (required: unknown, "
		         "because a certificate was sent)", args->cert_file);
	else
		snprintf(buf, size, "requested by the server (required: %s as far as can be "
		         "told); none presented%s", tls_required_name(res->cert_required),
		         args->cert_file == NULL ? ", give --cert and --key to present one" : "");
	return buf;
}

static void tls_check_text(const struct tls_check_args *args, const struct tls_check_result *res,
                           const struct cmicro_cert *chain)
{
	enum cmicro_tls_reason reason = res->verdict.reason;
	char line[1024];

	printf("%-14s %s\n", "server:", args->target);
	printf("%-14s %s\n",
	       "verified as:", args->server_name != NULL ? args->server_name : args->host);
	printf("%-14s %s\n", "protocol:", res->protocol ? res->protocol : "(no handshake)");
	printf("%-14s %s\n", "cipher:", res->cipher ? res->cipher : "(none)");
	printf("%-14s %s\n", "ALPN:", res->alpn[0] != '\0' ? res->alpn : "(none)");
	printf("%-14s %s\n", "client cert:", tls_client_cert_text(args, res, line, sizeof(line)));
	if (chain != NULL)
		tls_check_chain_text(chain);

	if (tls_check_accepted(res)) {
		printf("\nverdict: ACCEPT: secure mode would accept this server\n");
		return;
	}
	if (reason == CMICRO_TLS_REASON_NO_CERTIFICATE)
		printf("\nverdict: REJECT: the server requires a client certificate and none was "
		       "presented; check again with --cert and --key\n");
	else
		printf("\nverdict: REJECT: secure mode would reject this server\n");
	printf("%-14s %s\n", "reason:", cmicro_tls_reason_name(reason));
	printf("%-14s %s\n", "message:", res->verdict.message);
	printf("%-14s %s\n", "hint:", cmicro_tls_reason_hint(reason));
}

static json_t *tls_check_chain_json(const struct cmicro_cert *chain)
{
	json_t *array = json_array();
	size_t n = cmicro_cert_chain_len(chain);

	for (size_t i = 0; array != NULL && i < n; i++) {
		struct cmicro_cert_info *info = NULL;
		json_t *obj;

		if (cmicro_cert_inspect(chain, i, &info) != 0)
			continue;
		obj = cert_print_json(info);
		if (obj != NULL) {
			json_object_set_new(obj, "position", json_integer((json_int_t)i));
			json_object_set_new(obj, "role", json_string(cert_print_role(info, i)));
			json_array_append_new(array, obj);
		}
		cmicro_cert_info_free(info);
	}
	return array;
}

/* {"requested": bool, "presented": bool, "required": true, false or null}. */
static json_t *tls_client_cert_json(const struct tls_check_result *res)
{
	json_t *required = json_null();

	if (res->cert_required == TLS_CERT_REQUIRED_YES)
		required = json_true();
	else if (res->cert_required == TLS_CERT_REQUIRED_NO)
		required = json_false();
	return json_pack("{s:b, s:b, s:o}", "requested", res->cert_requested, "presented",
	                 res->cert_presented, "required", required);
}

static int tls_check_json(const struct tls_check_args *args, const struct tls_check_result *res,
                          const struct cmicro_cert *chain)
{
	bool ok = tls_check_accepted(res);
	enum cmicro_tls_reason reason = res->verdict.reason;
	json_t *obj;

	obj = json_pack(
	    "{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:I, s:i, s:o}", "target", args->target,
	    "server_name", args->server_name != NULL ? args->server_name : args->host, "verdict",
	    ok ? "accept" : "reject", "reason", ok ? NULL : cmicro_tls_reason_name(reason),
	    "message", ok ? NULL : res->verdict.message, "hint",
	    ok ? NULL : cmicro_tls_reason_hint(reason), "protocol", res->protocol, "cipher",
	    res->cipher, "openssl_code", (json_int_t)res->verdict.openssl_code, "depth",
	    res->verdict.depth, "chain", tls_check_chain_json(chain));
	if (obj == NULL) {
		cli_error("cannot build the JSON output");
		return CLI_EXIT_INTERNAL;
	}
	if (res->alpn[0] != '\0')
		json_object_set_new(obj, "alpn", json_string(res->alpn));
	else
		json_object_set_new(obj, "alpn", json_null());
	json_object_set_new(obj, "client_certificate", tls_client_cert_json(res));
	json_dumpf(obj, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(obj);
	return ok ? CLI_EXIT_OK : CLI_EXIT_REJECT;
}

/* Prints the report and returns the exit code. A handshake that failed for no
 * classified reason (a reset or a timeout) gets exit 2 and no report. */
static int tls_check_report(const struct tls_check_args *args, const struct tls_check_result *res,
                            const struct cmicro_cert *chain)
{
	int rc;

	if (!res->handshake_done && res->verdict.reason == CMICRO_TLS_REASON_OTHER) {
		cli_error("TLS handshake with %s failed: %s", args->target, res->verdict.message);
		return CLI_EXIT_USAGE;
	}
	if (args->json) {
		rc = tls_check_json(args, res, chain);
	} else {
		tls_check_text(args, res, chain);
		rc = tls_check_accepted(res) ? CLI_EXIT_OK : CLI_EXIT_REJECT;
	}
	return rc;
}

static long long tls_leaf_not_after(SSL *ssl)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	struct tm tm;

	if (leaf == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1)
		return 0;
	return (long long)timegm(&tm);
}

/* Ends a completed session with close_notify and reads until the server's
 * own close (bounded by a short timeout). The checked node then gets a clean
 * shutdown instead of a reset, and logs no error for every check. */
static void tls_close(SSL *ssl, int fd, const struct tls_check_result *res)
{
	struct timeval tv = {.tv_sec = 1};
	char buf[512];

	if (!res->handshake_done)
		return;
	ERR_clear_error();
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
	    SSL_shutdown(ssl) == 0) {
		for (int i = 0; i < 16 && SSL_read(ssl, buf, sizeof(buf)) > 0; i++)
			continue;
	}
	ERR_clear_error();
}

int tls_check_run(const struct tls_check_args *args, struct cmicro_tls_context *ctx,
                  struct tls_check_result *res, struct cmicro_cert **chain_out)
{
	SSL *ssl = NULL;
	int fd = tls_connect(args, res);

	if (fd < 0)
		return -1;
	res->connected = true;
	if (cmicro_tls_ssl_new(ctx, args->host, args->target, &ssl) != 0) {
		snprintf(res->error, sizeof(res->error), "cannot start the TLS session: %s",
		         cmicro_last_errmsg());
		res->verdict.reason = CMICRO_TLS_REASON_OTHER;
		close(fd);
		return 0;
	}
	tls_handshake(args, ssl, fd, res);
	res->leaf_not_after = tls_leaf_not_after(ssl);
	if (chain_out != NULL)
		*chain_out = tls_peer_chain(ssl);
	tls_close(ssl, fd, res);
	SSL_free(ssl);
	close(fd);
	return 0;
}

static void tls_quiet_log(void *user, enum cmicro_log_level level, const char *component,
                          const char *msg_id, const char *text)
{
	if (strcmp(msg_id, "TLS-AUDIT") == 0 || strncmp(msg_id, "TLS-EXPIRY-", 11) == 0 ||
	    strcmp(msg_id, "TLS-AUDIT-MODE") == 0)
		return;
	cmicro_log_stderr(user, level, component, msg_id, text);
}

void tls_cli_quiet_findings(void)
{
	if (cmicro_log_get_level() < CMICRO_LOG_DEBUG)
		cmicro_log_set_handler(tls_quiet_log, NULL);
}

static int tls_run_check(int argc, char **argv)
{
	struct tls_check_args args;
	struct tls_check_result res;
	struct cmicro_tls_context *ctx = NULL;
	struct cmicro_cert *chain = NULL;
	int rc;

	memset(&args, 0, sizeof(args));
	memset(&res, 0, sizeof(res));
	rc = tls_check_parse(argc, argv, &args);
	if (rc != 0) {
		if (rc == 1)
			fputs(tls_check_help, stdout);
		return rc == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}

	tls_cli_quiet_findings();
	if (tls_check_context(&args, &ctx) != 0)
		return CLI_EXIT_USAGE;
	if (tls_check_run(&args, ctx, &res, &chain) != 0) {
		cli_error("%s", res.error);
		rc = CLI_EXIT_USAGE;
	} else {
		rc = tls_check_report(&args, &res, chain);
	}
	cmicro_cert_free(chain);
	cmicro_tls_context_free(ctx);
	return rc;
}

int cmd_tls(int argc, char **argv)
{
	if (argc < 2) {
		fputs(tls_usage_text, stderr);
		return CLI_EXIT_USAGE;
	}
	if (cli_is_help(argv[1])) {
		fputs(tls_usage_text, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "config") == 0)
		return tls_run_config(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return tls_run_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "report") == 0)
		return tls_run_report(argc - 1, argv + 1);
	if (strcmp(argv[1], "scan") == 0)
		return tls_run_scan(argc - 1, argv + 1);
	cli_error("unknown subcommand \"tls %s\"; run 'cmicro tls --help' for the list", argv[1]);
	return CLI_EXIT_USAGE;
}
