/*
 * Hardening of cmicro's TLS contexts, checked with real handshakes over TCP
 * on 127.0.0.1 against peers built directly with OpenSSL. The cases cover
 * the TLS 1.2 floor in every verification mode and both roles, renegotiation
 * and compression being off, and the warning for private key files that
 * others can read. They also check that no passphrase or key material
 * reaches error messages or logs. Certificates are generated at test time
 * by cmicro and by the openssl CLI.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "testkit.h"
#include "tls/tls_config_int.h"

static char *tmp;

/* Contains the right passphrase as "wrong" contains it, so a message that
 * echoes the passphrase it was given is caught either way. */
static const char passphrase[] = "unit-hardening-pass-48Qz";
static const char wrong_passphrase[] = "not-unit-hardening-pass-48Qz";

static const char *const variants[] = {"lib", "cli"};

static const enum cmicro_tls_verify modes[] = {CMICRO_TLS_VERIFY_OFF, CMICRO_TLS_VERIFY_ON,
                                               CMICRO_TLS_VERIFY_AUDIT};
static const char *const mode_names[] = {"off", "on", "audit"};

static const struct {
	int version;
	const char *name; /* as cmicro's messages write it */
} legacy[] = {{TLS1_VERSION, "TLS 1.0"}, {TLS1_1_VERSION, "TLS 1.1"}};

static char *file_in_tmp(char *buf, size_t size, const char *variant, const char *suffix)
{
	char name[128];

	snprintf(name, sizeof(name), "%s%s", variant, suffix);
	return tk_path(buf, size, tmp, name);
}

/* ---- certificates ------------------------------------------------------------ */

/* A CA and a leaf for 127.0.0.1 from cmicro's generator: lib-ca.pem,
 * lib.pem, lib.key. */
static void make_lib_certs(void)
{
	static const char *const hosts[] = {"127.0.0.1"};
	struct cmicro_cert *ca = NULL, *leaf = NULL;
	struct cmicro_cert_opts opts;
	char cert[512], key[512];

	cmicro_cert_opts_init(&opts);
	TK_OK(cmicro_cert_ca_new(&opts, &ca));
	TK_OK(cmicro_cert_save(ca, file_in_tmp(cert, sizeof(cert), "lib", "-ca.pem"), NULL, 0));
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.usage = CMICRO_CERT_USAGE_BOTH;
	TK_OK(cmicro_cert_issue(ca, &opts, &leaf));
	TK_OK(cmicro_cert_save(leaf, file_in_tmp(cert, sizeof(cert), "lib", ".pem"),
	                       file_in_tmp(key, sizeof(key), "lib", ".key"), 0));
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

/* The same with the openssl CLI: cli-ca.pem, cli.pem, cli.key. */
static void make_cli_certs(void)
{
	char *out = NULL;
	int rc =
	    tk_run(&out, 60,
	           "cd \"%s\" && "
	           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	           "-days 30 -subj \"/CN=hardening CA\" -keyout cli-ca.key -out cli-ca.pem && "
	           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	           "-subj /CN=127.0.0.1 -keyout cli.key -out cli.csr && "
	           "printf \"subjectAltName=IP:127.0.0.1\\n"
	           "extendedKeyUsage=serverAuth,clientAuth\\n\" >cli.ext && "
	           "openssl x509 -req -in cli.csr -CA cli-ca.pem -CAkey cli-ca.key "
	           "-CAcreateserial -days 30 -extfile cli.ext -out cli.pem && chmod 600 cli.key",
	           tmp);

	if (rc != 0)
		fail_msg("openssl CLI certificates failed (%d): %s", rc, out ? out : "");
	free(out);
}

/* Encrypted copies of lib.key with the openssl CLI, in PKCS #8 and in the
 * traditional PEM form with a DEK-Info header, a copy with one damaged
 * body line, a copy cut after two body lines, and an empty file. */
static void make_secret_keys(void)
{
	char *out = NULL;
	int rc =
	    tk_run(&out, 60,
	           "cd \"%s\" && "
	           "openssl pkcs8 -topk8 -v2 aes-256-cbc -in lib.key -out enc-pkcs8.key "
	           "-passout pass:%s && "
	           "openssl ec -in lib.key -aes256 -out enc-trad.key -passout pass:%s && "
	           "sed \"3s/^.\\{16\\}/AAAAAAAAAAAAAAAA/\" enc-pkcs8.key >damaged.key && "
	           "head -n 3 enc-pkcs8.key >truncated.key && : >empty.key && chmod 600 enc-*.key",
	           tmp, passphrase, passphrase);

	if (rc != 0)
		fail_msg("encrypting keys with the openssl CLI failed (%d): %s", rc,
		         out ? out : "");
	free(out);
}

static int group_setup(void **state)
{
	(void)state;
	tmp = tk_tmpdir();
	cmicro_log_set_handler(cmicro_log_null, NULL);
	make_lib_certs();
	make_cli_certs();
	make_secret_keys();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cmicro_log_set_handler(NULL, NULL);
	tk_tmpdir_remove(tmp);
	return 0;
}

/* ---- peers and handshakes -------------------------------------------------------- */

enum peer_state { PEER_RUNNING = 0, PEER_DONE, PEER_FAILED };

struct peer {
	SSL *ssl;
	int fd;
	enum peer_state state;
	struct cmicro_tls_verdict verdict; /* filled on failure of a cmicro peer */
	unsigned long error;               /* first OpenSSL error of a failure */
};

/* Connects a client and a server socket through a listener on 127.0.0.1:0. */
static void tcp_connect_pair(int *client_fd, int *server_fd)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	*client_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*client_fd >= 0);
	assert_int_equal(connect(*client_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*server_fd = accept(lfd, NULL, NULL);
	assert_true(*server_fd >= 0);
	close(lfd);
	assert_int_equal(fcntl(*client_fd, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(*server_fd, F_SETFL, O_NONBLOCK), 0);
}

static void peers_start(struct peer *client, struct peer *server, SSL *c, SSL *s)
{
	int cfd, sfd;

	tcp_connect_pair(&cfd, &sfd);
	*client = (struct peer){.ssl = c, .fd = cfd};
	*server = (struct peer){.ssl = s, .fd = sfd};
	assert_int_equal(SSL_set_fd(c, cfd), 1);
	assert_int_equal(SSL_set_fd(s, sfd), 1);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
}

/* Runs one handshake step; returns true when the peer made progress. */
static bool peer_step(struct peer *p)
{
	int rc, err;

	if (p->state != PEER_RUNNING)
		return false;
	ERR_clear_error();
	rc = SSL_do_handshake(p->ssl);
	if (rc == 1) {
		p->state = PEER_DONE;
		return true;
	}
	err = SSL_get_error(p->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return false;
	p->state = PEER_FAILED;
	p->error = ERR_peek_error();
	if (cmi_tls_ssl_data(p->ssl) != NULL)
		cmicro_tls_ssl_failure(p->ssl, &p->verdict);
	/* The other side then reads end of file instead of waiting. */
	shutdown(p->fd, SHUT_RDWR);
	return true;
}

/* Runs both handshakes until each has finished or failed, bounded in steps. */
static void peers_handshake(struct peer *client, struct peer *server)
{
	for (int i = 0; i < 2000; i++) {
		bool moved;

		if (client->state != PEER_RUNNING && server->state != PEER_RUNNING)
			return;
		moved = peer_step(client);
		moved |= peer_step(server);
		if (!moved) {
			struct pollfd fds[2] = {{.fd = client->fd, .events = POLLIN},
			                        {.fd = server->fd, .events = POLLIN}};

			poll(fds, 2, 20);
		}
	}
	fail_msg("handshake did not finish (client %d, server %d)", client->state, server->state);
}

static void peers_end(struct peer *client, struct peer *server)
{
	SSL_free(client->ssl);
	SSL_free(server->ssl);
	close(client->fd);
	close(server->fd);
	ERR_clear_error();
}

/* Creates an OpenSSL context limited to one protocol version. Security
 * level 0 lets it offer TLS 1.0 and 1.1 at all. cert and key may be NULL. */
static SSL_CTX *raw_ctx(bool server, int version, const char *cert, const char *key)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, version), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, version), 1);
	if (cert != NULL) {
		assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	}
	return ctx;
}

static SSL *raw_ssl(bool server, int version, const char *variant)
{
	char cert[512], key[512];
	SSL_CTX *ctx = raw_ctx(server, version, file_in_tmp(cert, sizeof(cert), variant, ".pem"),
	                       file_in_tmp(key, sizeof(key), variant, ".key"));
	SSL *ssl = SSL_new(ctx);

	assert_non_null(ssl);
	SSL_CTX_free(ctx);
	return ssl;
}

/* A cmicro context in mode that trusts the variant's CA (and only it) and,
 * as a server, presents the variant's certificate. */
static struct cmicro_tls_context *cmicro_ctx(enum cmicro_tls_verify mode, enum cmicro_tls_role role,
                                             const char *variant)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	char ca[512], cert[512], key[512];

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_verify(cfg, mode));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	TK_OK(cmicro_tls_config_add_ca_file(cfg, file_in_tmp(ca, sizeof(ca), variant, "-ca.pem")));
	if (role == CMICRO_TLS_SERVER)
		TK_OK(cmicro_tls_config_set_cert_files(
		    cfg, file_in_tmp(cert, sizeof(cert), variant, ".pem"),
		    file_in_tmp(key, sizeof(key), variant, ".key"), NULL));
	TK_OK(cmicro_tls_context_new(cfg, role, NULL, &ctx));
	cmicro_tls_config_free(cfg);
	return ctx;
}

static SSL *cmicro_ssl(struct cmicro_tls_context *ctx, const char *label)
{
	SSL *ssl = NULL;

	TK_OK(cmicro_tls_ssl_new(ctx, "127.0.0.1", label, &ssl));
	return ssl;
}

/* ---- protocol floor ---------------------------------------------------------- */

/* The legacy peers really speak their version: two raw OpenSSL peers of
 * that version complete a handshake, so a refusal below comes from cmicro. */
static void test_hardening_legacy_peers_work_alone(void **state)
{
	(void)state;
	for (size_t v = 0; v < CMI_ARRAY_LEN(legacy); v++) {
		struct peer c, s;

		peers_start(&c, &s, raw_ssl(false, legacy[v].version, "lib"),
		            raw_ssl(true, legacy[v].version, "lib"));
		peers_handshake(&c, &s);
		assert_int_equal(c.state, PEER_DONE);
		assert_int_equal(s.state, PEER_DONE);
		assert_int_equal(SSL_version(c.ssl), legacy[v].version);
		peers_end(&c, &s);
	}
}

static void check_client_rejects(enum cmicro_tls_verify mode, const char *variant, size_t v)
{
	struct cmicro_tls_context *ctx = cmicro_ctx(mode, CMICRO_TLS_CLIENT, variant);
	struct peer c, s;

	peers_start(&c, &s, cmicro_ssl(ctx, "legacy server"),
	            raw_ssl(true, legacy[v].version, variant));
	peers_handshake(&c, &s);
	if (c.state != PEER_FAILED)
		fail_msg("mode %s, %s certificates: the client accepted a %s server",
		         mode_names[mode], variant, legacy[v].name);
	assert_int_equal(s.state, PEER_FAILED);
	assert_int_equal(c.verdict.reason, CMICRO_TLS_REASON_PROTOCOL_VERSION);
	TK_CONTAINS(c.verdict.message, "the minimum is TLS 1.2");
	TK_CONTAINS(c.verdict.message, "upgrade the peer to TLS 1.2 or later");
	peers_end(&c, &s);
	cmicro_tls_context_free(ctx);
}

static void test_hardening_client_rejects_legacy_servers(void **state)
{
	(void)state;
	for (size_t m = 0; m < CMI_ARRAY_LEN(modes); m++)
		for (size_t i = 0; i < CMI_ARRAY_LEN(variants); i++)
			for (size_t v = 0; v < CMI_ARRAY_LEN(legacy); v++)
				check_client_rejects(modes[m], variants[i], v);
}

static void check_server_rejects(enum cmicro_tls_verify mode, const char *variant, size_t v)
{
	struct cmicro_tls_context *ctx = cmicro_ctx(mode, CMICRO_TLS_SERVER, variant);
	struct peer c, s;
	char expected[96];

	peers_start(&c, &s, raw_ssl(false, legacy[v].version, variant),
	            cmicro_ssl(ctx, "legacy client"));
	peers_handshake(&c, &s);
	if (s.state != PEER_FAILED)
		fail_msg("mode %s, %s certificates: the server accepted a %s client",
		         mode_names[mode], variant, legacy[v].name);
	assert_int_equal(c.state, PEER_FAILED);
	assert_int_equal(s.verdict.reason, CMICRO_TLS_REASON_PROTOCOL_VERSION);
	snprintf(expected, sizeof(expected), "peer offered only %s; the minimum is TLS 1.2",
	         legacy[v].name);
	TK_CONTAINS(s.verdict.message, expected);
	TK_CONTAINS(s.verdict.message, "upgrade the peer to TLS 1.2 or later");
	peers_end(&c, &s);
	cmicro_tls_context_free(ctx);
}

static void test_hardening_server_rejects_legacy_clients(void **state)
{
	(void)state;
	for (size_t m = 0; m < CMI_ARRAY_LEN(modes); m++)
		for (size_t i = 0; i < CMI_ARRAY_LEN(variants); i++)
			for (size_t v = 0; v < CMI_ARRAY_LEN(legacy); v++)
				check_server_rejects(modes[m], variants[i], v);
}

/* ---- renegotiation and compression --------------------------------------------- */

static void test_hardening_contexts_disable_reneg_compression(void **state)
{
	(void)state;
	for (size_t m = 0; m < CMI_ARRAY_LEN(modes); m++) {
		for (int role = CMICRO_TLS_CLIENT; role <= CMICRO_TLS_SERVER; role++) {
			struct cmicro_tls_context *ctx = cmicro_ctx(modes[m], role, "lib");
			uint64_t opts = SSL_CTX_get_options(cmicro_tls_context_ssl_ctx(ctx));

			assert_true((opts & SSL_OP_NO_RENEGOTIATION) != 0);
			assert_true((opts & SSL_OP_NO_COMPRESSION) != 0);
			assert_true((opts & SSL_OP_ALLOW_CLIENT_RENEGOTIATION) == 0);
			assert_true((opts & SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION) == 0);
			cmicro_tls_context_free(ctx);
		}
	}
}

static void test_hardening_handshake_has_no_compression(void **state)
{
	struct cmicro_tls_context *cctx =
	    cmicro_ctx(CMICRO_TLS_VERIFY_ON, CMICRO_TLS_CLIENT, "cli");
	struct cmicro_tls_context *sctx =
	    cmicro_ctx(CMICRO_TLS_VERIFY_ON, CMICRO_TLS_SERVER, "cli");
	static const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(versions); i++) {
		SSL *c = cmicro_ssl(cctx, "compression");
		struct peer pc, ps;

		assert_int_equal(SSL_set_max_proto_version(c, versions[i]), 1);
		peers_start(&pc, &ps, c, cmicro_ssl(sctx, "compression"));
		peers_handshake(&pc, &ps);
		assert_int_equal(pc.state, PEER_DONE);
		assert_int_equal(ps.state, PEER_DONE);
		assert_int_equal(SSL_version(pc.ssl), versions[i]);
		assert_null(SSL_get_current_compression(pc.ssl));
		assert_null(SSL_get_current_compression(ps.ssl));
		peers_end(&pc, &ps);
	}
	cmicro_tls_context_free(cctx);
	cmicro_tls_context_free(sctx);
}

/* Reads on a peer without expecting data; returns the OpenSSL reason of a
 * fatal error, or 0. */
static int peer_pump(struct peer *p)
{
	char buf[16];
	int rc;

	ERR_clear_error();
	rc = SSL_read(p->ssl, buf, sizeof(buf));
	if (rc <= 0 && SSL_get_error(p->ssl, rc) == SSL_ERROR_SSL)
		return ERR_GET_REASON(ERR_peek_error());
	return 0;
}

/* Asks the client for a renegotiation from the server side (a TLS 1.2
 * HelloRequest) and reads on both sides until the renegotiation has
 * completed (returns 0) or one side failed (returns the OpenSSL reason).
 * OpenSSL's server only sends the request in SSL_do_handshake, and both
 * sides process the rest inside SSL_read. */
static int renegotiate_from_server(struct peer *c, struct peer *s)
{
	int reason = 0;

	assert_int_equal(SSL_renegotiate(s->ssl), 1);
	ERR_clear_error();
	if (SSL_do_handshake(s->ssl) != 1)
		fail_msg("the server could not send the renegotiation request");
	for (int i = 0; i < 500 && SSL_renegotiate_pending(s->ssl); i++) {
		reason = peer_pump(c);
		if (reason == 0)
			reason = peer_pump(s);
		if (reason != 0)
			return reason;
		poll(NULL, 0, 5);
	}
	if (SSL_renegotiate_pending(s->ssl))
		fail_msg("the renegotiation did not end");
	return 0;
}

/* A cmicro client rejects a server's renegotiation request. A plain OpenSSL
 * client, which accepts such requests by default, first shows that the
 * request itself works. */
static void test_hardening_client_rejects_renegotiation(void **state)
{
	struct cmicro_tls_context *cctx =
	    cmicro_ctx(CMICRO_TLS_VERIFY_ON, CMICRO_TLS_CLIENT, "lib");
	struct peer c, s;

	(void)state;
	peers_start(&c, &s, raw_ssl(false, TLS1_2_VERSION, "lib"),
	            raw_ssl(true, TLS1_2_VERSION, "lib"));
	peers_handshake(&c, &s);
	assert_int_equal(c.state, PEER_DONE);
	assert_int_equal(renegotiate_from_server(&c, &s), 0);
	peers_end(&c, &s);

	peers_start(&c, &s, cmicro_ssl(cctx, "renegotiation"),
	            raw_ssl(true, TLS1_2_VERSION, "lib"));
	peers_handshake(&c, &s);
	assert_int_equal(c.state, PEER_DONE);
	assert_int_equal(SSL_version(c.ssl), TLS1_2_VERSION);
	assert_int_equal(renegotiate_from_server(&c, &s), SSL_R_NO_RENEGOTIATION);
	peers_end(&c, &s);
	cmicro_tls_context_free(cctx);
}

/* ---- private key file modes ------------------------------------------------------ */

/* Copies lib.key to key-MODE.key with that mode and loads it with lib.pem
 * as a node identity, capturing the log. */
static void load_key_with_mode(mode_t mode, char *key, size_t size)
{
	struct cmicro_tls_config *cfg = NULL;
	char name[64], cert[512];
	char *out = NULL;

	snprintf(name, sizeof(name), "key-%03o.key", (unsigned)mode);
	tk_path(key, size, tmp, name);
	if (tk_run(&out, 10, "cp \"%s/lib.key\" \"%s\"", tmp, key) != 0)
		fail_msg("cannot copy the key: %s", out ? out : "");
	free(out);
	assert_int_equal(chmod(key, mode), 0);

	TK_OK(cmicro_tls_config_new(&cfg));
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_set_cert_files(cfg, tk_path(cert, sizeof(cert), tmp, "lib.pem"),
	                                       key, NULL));
	cmicro_tls_config_free(cfg);
}

static void test_hardening_readable_key_warned(void **state)
{
	static const mode_t readable[] = {0640, 0604, 0644, 0660, 0444};
	char key[512], fix[600];

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(readable); i++) {
		load_key_with_mode(readable[i], key, sizeof(key));
		if (tk_log_count("TLS-KEY-MODE") != 1)
			fail_msg("mode %03o: expected one TLS-KEY-MODE warning, log: %s",
			         (unsigned)readable[i], tk_log_captured());
		TK_CONTAINS(tk_log_captured(), key);
		snprintf(fix, sizeof(fix), "chmod 600 %s", key);
		TK_CONTAINS(tk_log_captured(), fix);
		tk_log_capture_stop();
		cmicro_log_set_handler(cmicro_log_null, NULL);
	}
}

static void test_hardening_private_key_not_warned(void **state)
{
	static const mode_t private_modes[] = {0600, 0400};
	char key[512];

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(private_modes); i++) {
		load_key_with_mode(private_modes[i], key, sizeof(key));
		if (tk_log_count("TLS-KEY-MODE") != 0)
			fail_msg("mode %03o: unexpected TLS-KEY-MODE warning: %s",
			         (unsigned)private_modes[i], tk_log_captured());
		tk_log_capture_stop();
		cmicro_log_set_handler(cmicro_log_null, NULL);
	}
}

/* ---- secrets ---------------------------------------------------------------------- */

/* Any failure: a damaged encrypted key may fail in the decryption (a wrong
 * passphrase is indistinguishable) or in the PEM decoding. */
#define ANY_ERROR 1

struct key_load {
	const char *key;        /* file name in tmp */
	const char *passphrase; /* NULL: none given */
	int expected;           /* 0, the error code, or ANY_ERROR */
};

static const struct key_load key_loads[] = {
    {"enc-pkcs8.key", passphrase, 0},
    {"enc-trad.key", passphrase, 0},
    {"enc-pkcs8.key", wrong_passphrase, CMICRO_EKEY},
    {"enc-trad.key", wrong_passphrase, CMICRO_EKEY},
    {"enc-pkcs8.key", NULL, CMICRO_EKEY},
    {"enc-trad.key", NULL, CMICRO_EKEY},
    {"damaged.key", passphrase, ANY_ERROR},
    {"truncated.key", passphrase, CMICRO_EPEM},
    {"empty.key", NULL, CMICRO_EKEY},
};

/* Appends the body lines of a PEM key file (no armour or header lines) to
 * lines, separated by newlines. */
static void add_key_lines(char *lines, size_t size, const char *name)
{
	char path[512];
	char *data = NULL, *save = NULL;
	size_t len = 0;

	TK_OK(cmi_read_file(tk_path(path, sizeof(path), tmp, name), 1 << 20, &data, &len));
	for (char *line = strtok_r(data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "-----", 5) == 0 || strncmp(line, "Proc-Type:", 10) == 0 ||
		    strncmp(line, "DEK-Info:", 9) == 0)
			continue;
		strncat(lines, line, size - strlen(lines) - 2);
		strcat(lines, "\n");
	}
	free(data);
}

/* What the secret checks found; reported after the objects of the run are
 * freed, so a failure lists every case and leaks nothing. */
static char problems[16384];

static void note_problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note_problem(const char *fmt, ...)
{
	size_t used = strlen(problems);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problems + used, sizeof(problems) - used, fmt, ap);
	va_end(ap);
	used = strlen(problems);
	snprintf(problems + used, sizeof(problems) - used, "\n");
}

/* Notes each newline-separated line of lines that text contains. */
static void check_no_line_of(const char *text, const char *lines, const char *source)
{
	char *copy = strdup(lines), *save = NULL;

	assert_non_null(copy);
	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strstr(text, line) != NULL)
			note_problem("%s contains the key line \"%s\": %s", source, line, text);
	}
	free(copy);
}

/* Loads every case of key_loads at log level debug, as a node identity and
 * as a certificate with key. Calls check with each error message and then
 * with the whole log, and fails at the end listing the problems noted. */
static void run_key_loads(void (*check)(const char *text, const char *source))
{
	char cert[512], key[512], source[256];

	problems[0] = '\0';
	tk_path(cert, sizeof(cert), tmp, "lib.pem");
	cmicro_log_set_level(CMICRO_LOG_DEBUG);
	tk_log_capture_start();
	for (size_t i = 0; i < CMI_ARRAY_LEN(key_loads); i++) {
		const struct key_load *k = &key_loads[i];
		struct cmicro_tls_config *cfg = NULL;
		struct cmicro_cert *loaded = NULL;
		bool as_expected;
		int rc;

		tk_path(key, sizeof(key), tmp, k->key);
		TK_OK(cmicro_tls_config_new(&cfg));
		rc = cmicro_tls_config_set_cert_files(cfg, cert, key, k->passphrase);
		snprintf(source, sizeof(source), "the error of set_cert_files(%s, %s)", k->key,
		         k->passphrase == passphrase ? "the passphrase"
		         : k->passphrase != NULL     ? "a wrong passphrase"
		                                     : "no passphrase");
		if (k->expected == ANY_ERROR)
			as_expected = rc != 0;
		else
			as_expected = rc == k->expected;
		if (!as_expected)
			note_problem("%s: returned %s, expected %s", source, cmicro_err_name(rc),
			             k->expected == ANY_ERROR ? "an error"
			                                      : cmicro_err_name(k->expected));
		if (rc != 0)
			check(cmicro_last_errmsg(), source);
		cmicro_tls_config_free(cfg);

		rc = cmicro_cert_load(cert, key, k->passphrase, &loaded);
		if (rc != 0)
			check(cmicro_last_errmsg(), "the error of cmicro_cert_load");
		cmicro_cert_free(loaded);
	}
	check(tk_log_captured(), "the debug log");
	tk_log_capture_stop();
	cmicro_log_set_handler(cmicro_log_null, NULL);
	cmicro_log_set_level(CMICRO_LOG_INFO);
	if (problems[0] != '\0')
		fail_msg("%s", problems);
}

static char secret_lines[16384];

static void check_no_secret(const char *text, const char *source)
{
	if (strstr(text, passphrase) != NULL)
		note_problem("%s contains the passphrase: %s", source, text);
	check_no_line_of(text, secret_lines, source);
}

static void test_hardening_secret_not_in_messages(void **state)
{
	static const char *const keys[] = {"lib.key", "enc-pkcs8.key", "enc-trad.key"};

	(void)state;
	secret_lines[0] = '\0';
	for (size_t i = 0; i < CMI_ARRAY_LEN(keys); i++)
		add_key_lines(secret_lines, sizeof(secret_lines), keys[i]);
	assert_true(strlen(secret_lines) > 100);
	run_key_loads(check_no_secret);
}

/* Secret scanners match a private key's PEM armor line to find leaked keys,
 * so no message carries one, not even as a hint. Naming the block type in
 * words ("BEGIN PRIVATE KEY block") is allowed: it helps find the damage. */
static void check_no_key_label(const char *text, const char *source)
{
	if (strstr(text, "PRIVATE KEY-----") != NULL)
		note_problem("%s contains a private key PEM armor line: %s", source, text);
}

static void test_hardening_key_label_not_in_messages(void **state)
{
	(void)state;
	run_key_loads(check_no_key_label);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hardening_legacy_peers_work_alone),
	    cmocka_unit_test(test_hardening_client_rejects_legacy_servers),
	    cmocka_unit_test(test_hardening_server_rejects_legacy_clients),
	    cmocka_unit_test(test_hardening_contexts_disable_reneg_compression),
	    cmocka_unit_test(test_hardening_handshake_has_no_compression),
	    cmocka_unit_test(test_hardening_client_rejects_renegotiation),
	    cmocka_unit_test(test_hardening_readable_key_warned),
	    cmocka_unit_test(test_hardening_private_key_not_warned),
	    cmocka_unit_test(test_hardening_secret_not_in_messages),
	    cmocka_unit_test(test_hardening_key_label_not_in_messages),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
