/*
 * Real TLS handshakes between cmicro contexts over loopback TCP on
 * 127.0.0.1. Every certificate scenario is generated twice at test time:
 * once by cmicro's generator and once by the openssl CLI (`openssl req` and
 * `openssl ca`). Each runs in secure, insecure and audit mode, so the two
 * generators check each other and the verdicts hold whatever made the
 * certificate.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "testkit.h"
#include "tls/tls_config_int.h"

static char *tmp;

/* ---- certificates made by the openssl CLI -------------------------------- */

/* openssl ca needs a database and a configuration; the extension sections
 * give each scenario its profile. Dates are passed on the command line,
 * computed from the local clock at test time. */
static const char cli_config[] =
    "[ ca ]\n"
    "default_ca = ca_default\n"
    "[ ca_default ]\n"
    "database = ./index.txt\n"
    "new_certs_dir = ./newcerts\n"
    "serial = ./serial\n"
    "default_md = sha256\n"
    "default_crl_days = 30\n"
    "policy = policy_any\n"
    "unique_subject = no\n"
    "copy_extensions = none\n"
    "[ policy_any ]\n"
    "commonName = supplied\n"
    "organizationName = optional\n"
    "[ req ]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[ dn ]\n"
    "CN = unused\n"
    "[ ca_ext ]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign,digitalSignature\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "[ selfsigned_ext ]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[ leaf ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "keyUsage = critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectKeyIdentifier = hash\n"
    "authorityKeyIdentifier = keyid:always\n"
    "subjectAltName = DNS:localhost,DNS:*.wild.test,IP:127.0.0.1,IP:::1\n"
    "[ leaf_wrong_name ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:other.example,DNS:b.example\n"
    "[ leaf_dns_only ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost\n"
    "[ leaf_cn_only ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "extendedKeyUsage = serverAuth\n"
    "[ leaf_aia ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "extendedKeyUsage = serverAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "authorityInfoAccess = caIssuers;URI:http://ca.example/int.crt\n"
    "[ leaf_client_only ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[ client ]\n"
    "basicConstraints = critical,CA:FALSE\n"
    "extendedKeyUsage = clientAuth\n"
    "subjectAltName = DNS:client.local\n";

/* Each line: one shell step. $past/$future are dates around now. */
static const char cli_script[] =
    "set -e\n"
    "mkdir -p newcerts && : > index.txt && echo 1000 > serial\n"
    "d() { date -u -d \"$1\" +%y%m%d%H%M%SZ; }\n"
    "now=$(d \"-5 minutes\"); year=$(d \"+365 days\"); ten=$(d \"+3650 days\")\n"
    "ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1.key; }\n"
    "root() { ec $1; openssl req -config ca.cnf -x509 -new -key $1.key -subj \"/CN=$2\" "
    "-days 3650 -extensions ca_ext -out $1.pem; }\n"
    "csr() { openssl req -config ca.cnf -new -key $1.key -subj \"/CN=$2\" -out $1.csr; }\n"
    /* sign NAME ISSUER SECTION START END [DIGEST] */
    "sign() { openssl ca -config ca.cnf -batch -notext -cert $2.pem -keyfile $2.key "
    "-in $1.csr -out $1.pem -extensions $3 -startdate $4 -enddate $5 -md ${6:-sha256} "
    "2>ca.log || { cat ca.log; exit 1; }; }\n"
    "leaf() { ec $1; csr $1 $2; sign $1 $3 $4 ${5:-$now} ${6:-$year} $7; }\n"
    "chain() { cat $1.pem $2.pem > $1.crt; }\n"
    "root root \"cmicro test root\"\n"
    "ec int; csr int \"cmicro test intermediate\"; sign int root ca_ext $now $ten\n"
    "root other_root \"unknown test root\"\n"
    "ec other_int; csr other_int \"unknown test intermediate\"\n"
    "sign other_int other_root ca_ext $now $ten\n"
    "ec old_int; csr old_int \"expired test intermediate\"\n"
    "sign old_int root ca_ext $(d \"-400 days\") $(d \"-2 days\")\n"
    "leaf valid localhost int leaf; chain valid int\n"
    "leaf expired localhost int leaf $(d \"-40 days\") $(d \"-33 days\"); chain expired int\n"
    "leaf not_yet_valid localhost int leaf $(d \"+2 hours\") $(d \"+30 days\")\n"
    "chain not_yet_valid int\n"
    "leaf int_expired localhost old_int leaf; chain int_expired old_int\n"
    "leaf wrong_name other.example int leaf_wrong_name; chain wrong_name int\n"
    "leaf ip_no_ip_san localhost int leaf_dns_only; chain ip_no_ip_san int\n"
    "leaf cn_only localhost int leaf_cn_only; chain cn_only int\n"
    "ec self_signed; openssl req -config ca.cnf -x509 -new -key self_signed.key "
    "-subj /O=Micro -days 365 -extensions selfsigned_ext -out self_signed.pem\n"
    "cp self_signed.pem self_signed.crt\n"
    "leaf unknown_ca localhost other_int leaf; chain unknown_ca other_int\n"
    "leaf missing_int localhost int leaf_aia; cp missing_int.pem missing_int.crt\n"
    "leaf leaf_alone localhost int leaf; cp leaf_alone.pem leaf_alone.crt\n"
    "leaf client_eku localhost int leaf_client_only; chain client_eku int\n"
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.key\n"
    "csr rsa1024 localhost; sign rsa1024 int leaf $now $year; chain rsa1024 int\n"
    "leaf sha1 localhost int leaf $now $year sha1; chain sha1 int\n"
    "leaf client localhost int client; chain client int\n"
    "leaf client_wrong_ca localhost other_int client; chain client_wrong_ca other_int\n"
    "leaf client_server_only localhost int leaf; chain client_server_only int\n"
    "cat int.pem root.pem > int_root.pem\n"
    "leaf revoked localhost int leaf; chain revoked int\n"
    "openssl ca -config ca.cnf -batch -cert int.pem -keyfile int.key -revoke revoked.pem "
    "2>ca.log || { cat ca.log; exit 1; }\n"
    "openssl ca -config ca.cnf -batch -cert int.pem -keyfile int.key -gencrl -out crl.pem "
    "2>ca.log || { cat ca.log; exit 1; }\n";

static void gen_cli(const char *dir)
{
	char path[512];
	char *out = NULL;

	tk_write(tk_path(path, sizeof(path), dir, "ca.cnf"), cli_config);
	tk_write(tk_path(path, sizeof(path), dir, "gen.sh"), cli_script);
	if (tk_run(&out, 120, "cd %s && sh gen.sh", dir) != 0)
		fail_msg("generating certificates with the openssl CLI failed: %s", out);
	free(out);
}

/* ---- the same certificates made by cmicro's generator -------------------- */

static void lib_write(const char *dir, const char *name, const struct cmicro_cert *cert,
                      bool with_issuer)
{
	char path[512], file[128];
	FILE *f;

	snprintf(file, sizeof(file), "%s.crt", name);
	f = fopen(tk_path(path, sizeof(path), dir, file), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, cert->x509), 1);
	if (with_issuer && sk_X509_num(cert->chain) > 0)
		assert_int_equal(PEM_write_X509(f, sk_X509_value(cert->chain, 0)), 1);
	assert_int_equal(fclose(f), 0);

	snprintf(file, sizeof(file), "%s.pem", name);
	f = fopen(tk_path(path, sizeof(path), dir, file), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, cert->x509), 1);
	assert_int_equal(fclose(f), 0);

	snprintf(file, sizeof(file), "%s.key", name);
	f = fopen(tk_path(path, sizeof(path), dir, file), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, cert->key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static struct cmicro_cert *lib_ca(const struct cmicro_cert *issuer, const char *cn,
                                  time_t not_before, time_t not_after)
{
	struct cmicro_cert_opts opts;
	struct cmicro_cert *ca = NULL;

	cmicro_cert_opts_init(&opts);
	opts.common_name = cn;
	opts.not_before = not_before;
	opts.not_after = not_after;
	opts.is_ca = issuer != NULL;
	if (issuer == NULL)
		TK_OK(cmicro_cert_ca_new(&opts, &ca));
	else
		TK_OK(cmicro_cert_issue(issuer, &opts, &ca));
	return ca;
}

/* Options of one library-made leaf; zero fields keep the defaults. */
struct lib_leaf {
	const char *name;
	const struct cmicro_cert *issuer;
	const char *const *hosts;
	size_t n_hosts;
	time_t not_before, not_after;
	enum cmicro_cert_usage usage;
	int rsa_bits;
	const char *digest;
	const char *aia;
	bool leaf_only;
};

static void lib_leaf(const char *dir, const struct lib_leaf *l)
{
	static const char *const default_hosts[] = {"localhost", "*.wild.test", "127.0.0.1", "::1"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *cert = NULL;

	cmicro_cert_opts_init(&opts);
	opts.hosts = l->hosts ? l->hosts : default_hosts;
	opts.n_hosts = l->hosts ? l->n_hosts : CMI_ARRAY_LEN(default_hosts);
	opts.not_before = l->not_before;
	opts.not_after = l->not_after;
	if (l->usage != 0)
		opts.usage = l->usage;
	if (l->rsa_bits != 0) {
		opts.key_type = CMICRO_KEY_RSA;
		opts.rsa_bits = l->rsa_bits;
	}
	opts.digest = l->digest;
	opts.ca_issuers_url = l->aia;
	TK_OK(cmicro_cert_issue(l->issuer, &opts, &cert));
	lib_write(dir, l->name, cert, !l->leaf_only);
	cmicro_cert_free(cert);
}

static void gen_lib_leaves(const char *dir, const struct cmicro_cert *in,
                           const struct cmicro_cert *other_int, const struct cmicro_cert *old_int)
{
	static const char *const wrong[] = {"other.example", "b.example"};
	static const char *const dns_only[] = {"localhost"};
	static const char *const client[] = {"client.local"};
	time_t now = time(NULL);
	const struct lib_leaf leaves[] = {
	    {.name = "valid", .issuer = in},
	    {.name = "expired",
	     .issuer = in,
	     .not_before = now - 40 * 86400,
	     .not_after = now - 33 * 86400},
	    {.name = "not_yet_valid",
	     .issuer = in,
	     .not_before = now + 7200,
	     .not_after = now + 30 * 86400},
	    {.name = "int_expired", .issuer = old_int},
	    {.name = "wrong_name", .issuer = in, .hosts = wrong, .n_hosts = 2},
	    {.name = "ip_no_ip_san", .issuer = in, .hosts = dns_only, .n_hosts = 1},
	    {.name = "unknown_ca", .issuer = other_int},
	    {.name = "missing_int",
	     .issuer = in,
	     .aia = "http://ca.example/int.crt",
	     .leaf_only = true},
	    {.name = "leaf_alone", .issuer = in, .leaf_only = true},
	    {.name = "client_eku", .issuer = in, .usage = CMICRO_CERT_USAGE_CLIENT},
	    {.name = "rsa1024", .issuer = in, .rsa_bits = 1024},
	    {.name = "sha1", .issuer = in, .digest = "sha1"},
	    {.name = "client",
	     .issuer = in,
	     .hosts = client,
	     .n_hosts = 1,
	     .usage = CMICRO_CERT_USAGE_CLIENT},
	    {.name = "client_wrong_ca",
	     .issuer = other_int,
	     .hosts = client,
	     .n_hosts = 1,
	     .usage = CMICRO_CERT_USAGE_CLIENT},
	    {.name = "client_server_only", .issuer = in, .hosts = client, .n_hosts = 1},
	};

	for (size_t i = 0; i < CMI_ARRAY_LEN(leaves); i++)
		lib_leaf(dir, &leaves[i]);
}

static void gen_lib(const char *dir)
{
	static const char *const hosts[] = {"localhost", "127.0.0.1"};
	time_t now = time(NULL);
	struct cmicro_cert *root = lib_ca(NULL, "cmicro test root", 0, 0);
	struct cmicro_cert *in = lib_ca(root, "cmicro test intermediate", 0, 0);
	struct cmicro_cert *other_root = lib_ca(NULL, "unknown test root", 0, 0);
	struct cmicro_cert *other_int = lib_ca(other_root, "unknown test intermediate", 0, 0);
	struct cmicro_cert *old_int =
	    lib_ca(root, "expired test intermediate", now - 400 * 86400, now - 2 * 86400);
	struct cmicro_cert *self = NULL;

	lib_write(dir, "root", root, false);
	gen_lib_leaves(dir, in, other_int, old_int);
	TK_OK(cmicro_cert_selfsigned(hosts, 2, &self));
	lib_write(dir, "self_signed", self, false);
	cmicro_cert_free(self);
	cmicro_cert_free(old_int);
	cmicro_cert_free(other_int);
	cmicro_cert_free(other_root);
	cmicro_cert_free(in);
	cmicro_cert_free(root);
}

/* ---- the handshake harness ------------------------------------------------ */

enum side_state { SIDE_HANDSHAKE, SIDE_IO1, SIDE_IO2, SIDE_DONE, SIDE_FAILED };

struct side {
	SSL *ssl;
	int fd;
	bool client;
	enum side_state state;
	struct cmicro_tls_verdict verdict; /* filled when the side ends */
};

struct pair {
	struct side client;
	struct side server;
	int port;
};

/* Connects two TCP sockets through a listener on 127.0.0.1:0. */
static void tcp_pair(int *client_fd, int *server_fd, int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(lfd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	*client_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(*client_fd >= 0);
	assert_int_equal(connect(*client_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	*server_fd = accept(lfd, NULL, NULL);
	assert_true(*server_fd >= 0);
	close(lfd);
	fcntl(*client_fd, F_SETFL, O_NONBLOCK);
	fcntl(*server_fd, F_SETFL, O_NONBLOCK);
}

/* One operation of a side: the client handshakes, sends "ping" and reads
 * "pong"; the server handshakes, reads "ping" and sends "pong". The data
 * exchange makes TLS 1.3 failures that surface after the handshake (a
 * rejected client certificate, session tickets) visible. */
static int side_op(struct side *s)
{
	char buf[8];

	if (s->state == SIDE_HANDSHAKE)
		return SSL_do_handshake(s->ssl);
	if ((s->state == SIDE_IO1) == s->client)
		return SSL_write(s->ssl, s->client ? "ping" : "pong", 4);
	return SSL_read(s->ssl, buf, sizeof(buf));
}

/* Advances a side by one step; returns true when it made progress. */
static bool side_step(struct side *s)
{
	int rc, err;

	if (s->state == SIDE_DONE || s->state == SIDE_FAILED)
		return false;
	ERR_clear_error();
	rc = side_op(s);
	if (rc > 0) {
		s->state++;
		/* Raw OpenSSL servers of the harness carry no verdict. */
		if (s->state == SIDE_DONE && cmi_tls_ssl_data(s->ssl) != NULL)
			TK_OK(cmicro_tls_ssl_verdict(s->ssl, &s->verdict));
		return true;
	}
	err = SSL_get_error(s->ssl, rc);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
		return false;
	s->state = SIDE_FAILED;
	cmicro_tls_ssl_failure(s->ssl, &s->verdict);
	/* The other side then reads end of file instead of waiting. */
	shutdown(s->fd, SHUT_RDWR);
	return true;
}

static bool side_over(const struct side *s)
{
	return s->state == SIDE_DONE || s->state == SIDE_FAILED;
}

/* Runs both sides until each has finished or failed, bounded in steps. */
static void pair_run(struct pair *p)
{
	for (int i = 0; i < 4000 && !(side_over(&p->client) && side_over(&p->server)); i++) {
		bool moved = side_step(&p->client);

		moved |= side_step(&p->server);
		if (!moved) {
			struct pollfd fds[2] = {{.fd = p->client.fd, .events = POLLIN},
			                        {.fd = p->server.fd, .events = POLLIN}};

			poll(fds, 2, 20);
		}
	}
	if (!side_over(&p->client) || !side_over(&p->server))
		fail_msg("handshake did not finish (client state %d, server state %d)",
		         p->client.state, p->server.state);
}

static void pair_start(struct pair *p, SSL *client, SSL *server)
{
	int cfd, sfd;

	memset(p, 0, sizeof(*p));
	tcp_pair(&cfd, &sfd, &p->port);
	p->client = (struct side){.ssl = client, .fd = cfd, .client = true};
	p->server = (struct side){.ssl = server, .fd = sfd};
	assert_int_equal(SSL_set_fd(client, cfd), 1);
	assert_int_equal(SSL_set_fd(server, sfd), 1);
}

static void pair_end(struct pair *p)
{
	SSL_free(p->client.ssl);
	SSL_free(p->server.ssl);
	close(p->client.fd);
	close(p->server.fd);
	ERR_clear_error();
}

/* Makes a client SSL for host from ctx and a server SSL from sctx, and runs
 * the exchange. */
static void pair_connect(struct pair *p, struct cmicro_tls_context *ctx, const char *host,
                         const char *label, struct cmicro_tls_context *sctx)
{
	SSL *c = NULL, *s = NULL;

	TK_OK(cmicro_tls_ssl_new(ctx, host, label, &c));
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "test client", &s));
	pair_start(p, c, s);
	pair_run(p);
}

/* ---- fixtures --------------------------------------------------------------- */

static const char *const variants[] = {"lib", "cli"};

static char *var_path(char *buf, size_t size, const char *variant, const char *file)
{
	snprintf(buf, size, "%s/%s/%s", tmp, variant, file);
	return buf;
}

static int group_setup(void **state)
{
	char dir[512];

	(void)state;
	tmp = tk_tmpdir();
	for (size_t i = 0; i < CMI_ARRAY_LEN(variants); i++) {
		snprintf(dir, sizeof(dir), "%s/%s", tmp, variants[i]);
		assert_int_equal(mkdir(dir, 0700), 0);
	}
	gen_lib(var_path(dir, sizeof(dir), "lib", ""));
	gen_cli(var_path(dir, sizeof(dir), "cli", ""));
	cmicro_log_set_handler(cmicro_log_null, NULL);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cmicro_log_set_handler(NULL, NULL);
	tk_tmpdir_remove(tmp);
	return 0;
}

/* A client trusting only the variant's test root. */
static struct cmicro_tls_context *client_ctx(const char *variant, enum cmicro_tls_verify mode)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	char path[512];

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	TK_OK(
	    cmicro_tls_config_add_ca_file(cfg, var_path(path, sizeof(path), variant, "root.pem")));
	TK_OK(cmicro_tls_config_set_verify(cfg, mode));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
	cmicro_tls_config_free(cfg);
	return ctx;
}

/* A server presenting <name>.crt (with its chain) and <name>.key; it does
 * not ask for client certificates. */
static struct cmicro_tls_context *server_ctx(const char *variant, const char *name)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	char cert[512], key[512], file[128];

	snprintf(file, sizeof(file), "%s.crt", name);
	var_path(cert, sizeof(cert), variant, file);
	snprintf(file, sizeof(file), "%s.key", name);
	var_path(key, sizeof(key), variant, file);
	TK_OK(cmicro_tls_config_insecure(&cfg));
	TK_OK(cmicro_tls_config_set_cert_files(cfg, cert, key, NULL));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, NULL, &ctx));
	cmicro_tls_config_free(cfg);
	return ctx;
}

/*
 * A server built on OpenSSL directly, at security level 0. It can present a
 * certificate that level 2 refuses to load (RSA 1024, SHA-1), as a legacy
 * peer would, and with tls11 it speaks only TLS 1.1, which cmicro cannot be
 * configured to do. The cmicro client still classifies what it gets.
 */
static SSL *server_raw(const char *variant, const char *name, bool tls11)
{
	struct cmicro_cert *id = NULL;
	char cert[512], key[512], file[128];
	SSL_CTX *raw = SSL_CTX_new(TLS_server_method());
	SSL *ssl;

	assert_non_null(raw);
	snprintf(file, sizeof(file), "%s.crt", name);
	var_path(cert, sizeof(cert), variant, file);
	snprintf(file, sizeof(file), "%s.key", name);
	var_path(key, sizeof(key), variant, file);
	TK_OK(cmi_tls_load_identity(cert, key, NULL, &id));
	SSL_CTX_set_security_level(raw, 0);
	if (tls11) {
		assert_int_equal(SSL_CTX_set_min_proto_version(raw, TLS1_1_VERSION), 1);
		assert_int_equal(SSL_CTX_set_max_proto_version(raw, TLS1_1_VERSION), 1);
		assert_int_equal(SSL_CTX_set_cipher_list(raw, "DEFAULT@SECLEVEL=0"), 1);
	}
	assert_int_equal(SSL_CTX_use_cert_and_key(raw, id->x509, id->key, id->chain, 1), 1);
	ssl = SSL_new(raw);
	assert_non_null(ssl);
	SSL_set_accept_state(ssl);
	SSL_CTX_free(raw);
	cmicro_cert_free(id);
	return ssl;
}

/* ---- the scenario table ----------------------------------------------------- */

#define SC_CLI_ONLY    1u /* cmicro's generator always writes SANs */
#define SC_WEAK_SERVER 2u /* the server lowers its security level */
#define SC_TLS11       4u /* the server speaks only TLS 1.1 */

struct scenario {
	const char *name; /* files <name>.crt and <name>.key */
	const char *host; /* what the client connects to */
	enum cmicro_tls_reason reason;
	int depth;
	const char *words; /* expected in the verdict message */
	unsigned flags;
};

static const struct scenario scenarios[] = {
    {"valid", "localhost", CMICRO_TLS_REASON_NONE, 0, "", 0},
    {"expired", "localhost", CMICRO_TLS_REASON_EXPIRED, 0, "certificate has expired: not after ",
     0},
    {"not_yet_valid", "localhost", CMICRO_TLS_REASON_NOT_YET_VALID, 0,
     "certificate is not yet valid: not before ", 0},
    {"int_expired", "localhost", CMICRO_TLS_REASON_EXPIRED, 1,
     "the intermediate CA certificate CN=expired test intermediate", 0},
    {"wrong_name", "localhost", CMICRO_TLS_REASON_HOSTNAME_MISMATCH, 0,
     "certificate is valid for other.example, b.example, not localhost", 0},
    {"ip_no_ip_san", "127.0.0.1", CMICRO_TLS_REASON_HOSTNAME_MISMATCH, 0,
     "cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs", 0},
    {"cn_only", "localhost", CMICRO_TLS_REASON_HOSTNAME_MISMATCH, 0,
     "certificate relies on legacy Common Name field, use SANs instead", SC_CLI_ONLY},
    {"self_signed", "localhost", CMICRO_TLS_REASON_SELF_SIGNED, 0,
     "the peer's certificate is self-signed (subject O=Micro)", 0},
    {"unknown_ca", "localhost", CMICRO_TLS_REASON_UNKNOWN_AUTHORITY, 1,
     "certificate signed by unknown authority (issuer: CN=unknown test root", 0},
    {"missing_int", "localhost", CMICRO_TLS_REASON_INCOMPLETE_CHAIN, 0,
     "certificate chain is incomplete: the peer sent only its own certificate", 0},
    {"leaf_alone", "localhost", CMICRO_TLS_REASON_UNKNOWN_AUTHORITY, 0,
     "the peer sent no intermediate certificates; if CN=cmicro test intermediate", 0},
    {"client_eku", "localhost", CMICRO_TLS_REASON_BAD_USAGE, 0,
     "certificate not valid for server authentication: its extended key usage allows only "
     "clientAuth",
     0},
    {"rsa1024", "localhost", CMICRO_TLS_REASON_WEAK_KEY, 0, "RSA 1024-bit key is too small",
     SC_WEAK_SERVER},
    {"sha1", "localhost", CMICRO_TLS_REASON_WEAK_SIGNATURE, 0,
     "certificate is signed with an insecure algorithm", SC_WEAK_SERVER},
    {"valid", "localhost", CMICRO_TLS_REASON_PROTOCOL_VERSION, 0,
     "peer rejected TLS 1.2 and later (protocol_version alert)", SC_TLS11},
};

static const enum cmicro_tls_verify modes[] = {CMICRO_TLS_VERIFY_ON, CMICRO_TLS_VERIFY_OFF,
                                               CMICRO_TLS_VERIFY_AUDIT};
static const char *const mode_names[] = {"off", "on", "audit"};

/* Describes the case under test in failure messages. */
static char where[256];

static SSL *scenario_server(const struct scenario *sc, const char *variant,
                            struct cmicro_tls_context *sctx)
{
	SSL *s = NULL;

	if (sc->flags & (SC_TLS11 | SC_WEAK_SERVER))
		return server_raw(variant, sc->name, sc->flags & SC_TLS11);
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "test client", &s));
	return s;
}

static void check_rejected(const struct scenario *sc, const struct pair *p)
{
	const struct cmicro_tls_verdict *v = &p->client.verdict;

	if (p->client.state != SIDE_FAILED)
		fail_msg("%s: the handshake succeeded, expected %s", where,
		         cmicro_tls_reason_name(sc->reason));
	if (v->reason != sc->reason)
		fail_msg("%s: reason %s (%s), expected %s", where,
		         cmicro_tls_reason_name(v->reason), v->message,
		         cmicro_tls_reason_name(sc->reason));
	if (strstr(v->message, sc->words) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", where, v->message, sc->words);
	assert_false(v->accepted);
	if (!(sc->flags & SC_TLS11) && v->depth != sc->depth)
		fail_msg("%s: depth %d, expected %d", where, v->depth, sc->depth);
}

static void check_accepted(const struct scenario *sc, enum cmicro_tls_verify mode,
                           const struct pair *p)
{
	const struct cmicro_tls_verdict *v = &p->client.verdict;
	enum cmicro_tls_reason want =
	    mode == CMICRO_TLS_VERIFY_AUDIT ? sc->reason : CMICRO_TLS_REASON_NONE;

	if (p->client.state != SIDE_DONE || p->server.state != SIDE_DONE)
		fail_msg("%s: the exchange failed (client: %s; server: %s)", where,
		         p->client.verdict.message, p->server.verdict.message);
	if (v->reason != want)
		fail_msg("%s: reason %s (%s), expected %s", where,
		         cmicro_tls_reason_name(v->reason), v->message,
		         cmicro_tls_reason_name(want));
	if (want != CMICRO_TLS_REASON_NONE && strstr(v->message, sc->words) == NULL)
		fail_msg("%s: message \"%s\" lacks \"%s\"", where, v->message, sc->words);
	assert_true(v->accepted);
}

static void check_counts(const struct scenario *sc, enum cmicro_tls_verify mode,
                         const struct cmicro_tls_config *cfg, int handshakes)
{
	for (int r = 0; r < CMICRO_TLS_REASON_COUNT; r++) {
		uint64_t want = 0;

		if (r == (int)sc->reason && r != CMICRO_TLS_REASON_NONE &&
		    mode != CMICRO_TLS_VERIFY_OFF && !(sc->flags & SC_TLS11))
			want = (uint64_t)handshakes;
		if (cmicro_tls_config_reason_count(cfg, r) != want)
			fail_msg("%s: count of %s is %llu, expected %llu", where,
			         cmicro_tls_reason_name(r),
			         (unsigned long long)cmicro_tls_config_reason_count(cfg, r),
			         (unsigned long long)want);
	}
	if (mode == CMICRO_TLS_VERIFY_AUDIT && !(sc->flags & SC_TLS11) &&
	    tk_log_count("TLS-AUDIT") != (sc->reason != CMICRO_TLS_REASON_NONE))
		fail_msg("%s: %d TLS-AUDIT lines after %d handshakes, expected %d", where,
		         tk_log_count("TLS-AUDIT"), handshakes,
		         sc->reason != CMICRO_TLS_REASON_NONE);
}

/* Runs one scenario of one variant in one mode: audit mode connects twice
 * to show that the failure is counted twice but logged once. */
static void run_mode(const struct scenario *sc, const char *variant, enum cmicro_tls_verify mode)
{
	struct cmicro_tls_context *ctx = client_ctx(variant, mode);
	struct cmicro_tls_context *sctx =
	    server_ctx(variant, sc->flags & (SC_WEAK_SERVER | SC_TLS11) ? "valid" : sc->name);
	int handshakes = mode == CMICRO_TLS_VERIFY_AUDIT ? 2 : 1;
	bool reject = (sc->flags & SC_TLS11) ||
	              (mode == CMICRO_TLS_VERIFY_ON && sc->reason != CMICRO_TLS_REASON_NONE);

	snprintf(where, sizeof(where), "scenario %s (%s certificates, %s mode, host %s)",
	         sc->flags & SC_TLS11 ? "tls11" : sc->name, variant, mode_names[mode], sc->host);
	tk_log_capture_start();
	for (int i = 0; i < handshakes; i++) {
		struct pair p;
		SSL *c = NULL;

		TK_OK(cmicro_tls_ssl_new(ctx, sc->host, "127.0.0.1:test", &c));
		pair_start(&p, c, scenario_server(sc, variant, sctx));
		pair_run(&p);
		if (reject)
			check_rejected(sc, &p);
		else
			check_accepted(sc, mode, &p);
		pair_end(&p);
	}
	check_counts(sc, mode, cmicro_tls_context_config(ctx), handshakes);
	tk_log_capture_stop();
	cmicro_log_set_handler(cmicro_log_null, NULL);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(ctx);
}

static void run_scenario(const char *name, unsigned flags)
{
	const struct scenario *sc = NULL;

	for (size_t i = 0; i < CMI_ARRAY_LEN(scenarios) && sc == NULL; i++) {
		if (strcmp(scenarios[i].name, name) == 0 && scenarios[i].flags == flags)
			sc = &scenarios[i];
	}
	assert_non_null(sc);
	for (size_t v = 0; v < CMI_ARRAY_LEN(variants); v++) {
		if ((sc->flags & SC_CLI_ONLY) && strcmp(variants[v], "lib") == 0)
			continue;
		for (size_t m = 0; m < CMI_ARRAY_LEN(modes); m++)
			run_mode(sc, variants[v], modes[m]);
	}
}

#define SCENARIO_TEST(test, name, flags)                                                           \
	static void test(void **state)                                                             \
	{                                                                                          \
		(void)state;                                                                       \
		run_scenario(name, flags);                                                         \
	}

SCENARIO_TEST(test_handshake_valid_chain_accepted, "valid", 0)
SCENARIO_TEST(test_handshake_expired_leaf_classified, "expired", 0)
SCENARIO_TEST(test_handshake_future_leaf_classified, "not_yet_valid", 0)
SCENARIO_TEST(test_handshake_expired_intermediate_classified, "int_expired", 0)
SCENARIO_TEST(test_handshake_wrong_dns_name_classified, "wrong_name", 0)
SCENARIO_TEST(test_handshake_ip_without_ip_san_classified, "ip_no_ip_san", 0)
SCENARIO_TEST(test_handshake_cn_only_classified, "cn_only", SC_CLI_ONLY)
SCENARIO_TEST(test_handshake_self_signed_classified, "self_signed", 0)
SCENARIO_TEST(test_handshake_unknown_ca_classified, "unknown_ca", 0)
SCENARIO_TEST(test_handshake_missing_intermediate_classified, "missing_int", 0)
SCENARIO_TEST(test_handshake_leaf_alone_unknown_authority, "leaf_alone", 0)
SCENARIO_TEST(test_handshake_client_eku_classified, "client_eku", 0)
SCENARIO_TEST(test_handshake_rsa1024_weak_key_classified, "rsa1024", SC_WEAK_SERVER)
SCENARIO_TEST(test_handshake_sha1_weak_signature_classified, "sha1", SC_WEAK_SERVER)
SCENARIO_TEST(test_handshake_tls11_peer_protocol_version, "valid", SC_TLS11)

/* ---- host name rules ------------------------------------------------------- */

struct name_case {
	const char *host;
	int match;
};

static void check_names(X509 *x, const struct name_case *cases, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (cmi_host_matches(x, cases[i].host, NULL, 0) != cases[i].match)
			fail_msg("%s: host \"%s\" %s, expected %s", what, cases[i].host,
			         cases[i].match ? "did not match" : "matched",
			         cases[i].match ? "a match" : "no match");
	}
}

static void test_names_go_rules_hold(void **state)
{
	static const char *const hosts[] = {"*.example.com", "Mixed.Example.ORG", "10.0.0.1", "::1",
	                                    "localhost"};
	static const struct name_case cases[] = {
	    {"a.example.com", 1},
	    {"A.EXAMPLE.COM", 1},
	    {"a.example.com.", 1},
	    {"a.b.example.com", 0},
	    {"example.com", 0},
	    {".example.com", 0},
	    {"mixed.example.org", 1},
	    {"mixed.example.org.", 1},
	    {"mixed.example.org..", 0},
	    {"10.0.0.1", 1},
	    {"::ffff:10.0.0.1", 1},
	    {"10.0.0.2", 0},
	    {"::1", 1},
	    {"[::1]", 1},
	    {"0:0:0:0:0:0:0:1", 1},
	    {"[::2]", 0},
	    {"LocalHost", 1},
	    {"localhost.localdomain", 0},
	};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *ca = NULL, *leaf = NULL;

	(void)state;
	cmicro_cert_opts_init(&opts);
	TK_OK(cmicro_cert_ca_new(&opts, &ca));
	opts.hosts = hosts;
	opts.n_hosts = CMI_ARRAY_LEN(hosts);
	TK_OK(cmicro_cert_issue(ca, &opts, &leaf));
	check_names(leaf->x509, cases, CMI_ARRAY_LEN(cases), "library certificate");
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

/* Partial-label wildcards and CN fallbacks are OpenSSL extensions that Go
 * rejects; the certificate comes from the CLI because cmicro's generator
 * refuses to write such names. */
static void test_names_partial_wildcard_never_matches(void **state)
{
	static const struct name_case cases[] = {
	    {"foo.example.com", 0},
	    {"fo.example.com", 0},
	    {"f*o.example.com", 1},
	    {"www.example.net", 0},
	};
	char *out = NULL;
	char path[512];
	FILE *f;
	X509 *x;

	(void)state;
	if (tk_run(&out, 60,
	           "cd %s/cli && openssl req -x509 -newkey ec -pkeyopt "
	           "ec_paramgen_curve:P-256 -nodes -keyout pw.key -out pw.pem -days 1 "
	           "-subj /CN=www.example.net -addext subjectAltName=DNS:f*o.example.com",
	           tmp) != 0)
		fail_msg("openssl failed: %s", out);
	free(out);
	f = fopen(var_path(path, sizeof(path), "cli", "pw.pem"), "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	check_names(x, cases, CMI_ARRAY_LEN(cases), "f*o certificate");
	X509_free(x);
}

static void test_names_handshake_case_dot_ipv6(void **state)
{
	static const char *const hosts[] = {"LOCALHOST.", "::1", "[::1]", "127.0.0.1",
	                                    "x.wild.test"};

	(void)state;
	for (size_t v = 0; v < CMI_ARRAY_LEN(variants); v++) {
		struct cmicro_tls_context *ctx = client_ctx(variants[v], CMICRO_TLS_VERIFY_ON);
		struct cmicro_tls_context *sctx = server_ctx(variants[v], "valid");

		for (size_t i = 0; i < CMI_ARRAY_LEN(hosts); i++) {
			struct pair p;

			pair_connect(&p, ctx, hosts[i], "names", sctx);
			if (p.client.state != SIDE_DONE)
				fail_msg("%s certificates, host %s: %s", variants[v], hosts[i],
				         p.client.verdict.message);
			assert_int_equal(p.client.verdict.reason, CMICRO_TLS_REASON_NONE);
			pair_end(&p);
		}
		cmicro_tls_context_free(sctx);
		cmicro_tls_context_free(ctx);
	}
}

/* ---- protocol features -------------------------------------------------------- */

static void test_handshake_sni_only_for_names(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("lib", CMICRO_TLS_VERIFY_ON);
	struct cmicro_tls_context *sctx = server_ctx("lib", "valid");
	struct pair p;

	(void)state;
	pair_connect(&p, ctx, "localhost", "sni", sctx);
	assert_int_equal(p.client.state, SIDE_DONE);
	assert_non_null(SSL_get_servername(p.server.ssl, TLSEXT_NAMETYPE_host_name));
	assert_string_equal(SSL_get_servername(p.server.ssl, TLSEXT_NAMETYPE_host_name),
	                    "localhost");
	pair_end(&p);
	pair_connect(&p, ctx, "127.0.0.1", "sni", sctx);
	assert_int_equal(p.client.state, SIDE_DONE);
	assert_null(SSL_get_servername(p.server.ssl, TLSEXT_NAMETYPE_host_name));
	pair_end(&p);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(ctx);
}

static void test_handshake_whole_chain_sent(void **state)
{
	(void)state;
	for (size_t v = 0; v < CMI_ARRAY_LEN(variants); v++) {
		struct cmicro_tls_context *ctx = client_ctx(variants[v], CMICRO_TLS_VERIFY_ON);
		struct cmicro_tls_context *sctx = server_ctx(variants[v], "valid");
		STACK_OF(X509) *sent;
		struct pair p;

		pair_connect(&p, ctx, "localhost", "chain", sctx);
		assert_int_equal(p.client.state, SIDE_DONE);
		sent = SSL_get_peer_cert_chain(p.client.ssl);
		assert_int_equal(sk_X509_num(sent), 2);
		assert_int_equal(X509_check_issued(sk_X509_value(sent, 1), sk_X509_value(sent, 0)),
		                 X509_V_OK);
		pair_end(&p);
		cmicro_tls_context_free(sctx);
		cmicro_tls_context_free(ctx);
	}
}

static void test_handshake_alpn_http11_negotiated(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("cli", CMICRO_TLS_VERIFY_ON);
	struct cmicro_tls_context *sctx = server_ctx("cli", "valid");
	const unsigned char *proto = NULL;
	unsigned int len = 0;
	struct pair p;

	(void)state;
	pair_connect(&p, ctx, "localhost", "alpn", sctx);
	assert_int_equal(p.client.state, SIDE_DONE);
	SSL_get0_alpn_selected(p.client.ssl, &proto, &len);
	assert_int_equal(len, 8);
	assert_memory_equal(proto, "http/1.1", 8);
	SSL_get0_alpn_selected(p.server.ssl, &proto, &len);
	assert_int_equal(len, 8);
	pair_end(&p);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(ctx);
}

/* Connects with a resumption key; returns whether the session was reused. */
static bool connect_resuming(struct cmicro_tls_context *ctx, struct cmicro_tls_context *sctx,
                             const char *key, enum side_state *state)
{
	SSL *c = NULL, *s = NULL;
	struct pair p;
	bool reused;

	TK_OK(cmicro_tls_ssl_new(ctx, "localhost", key, &c));
	TK_OK(cmi_tls_session_resume(c, key));
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "resuming client", &s));
	pair_start(&p, c, s);
	pair_run(&p);
	*state = p.client.state;
	reused = SSL_session_reused(p.client.ssl) == 1;
	pair_end(&p);
	return reused;
}

static void test_handshake_session_resumed(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("lib", CMICRO_TLS_VERIFY_ON);
	struct cmicro_tls_context *sctx = server_ctx("lib", "valid");
	enum side_state st;

	(void)state;
	assert_false(connect_resuming(ctx, sctx, "localhost:1", &st));
	assert_int_equal(st, SIDE_DONE);
	assert_true(connect_resuming(ctx, sctx, "localhost:1", &st));
	assert_int_equal(st, SIDE_DONE);
	assert_false(connect_resuming(ctx, sctx, "localhost:2", &st));
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(ctx);
}

static void test_handshake_audit_failure_not_resumed(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("lib", CMICRO_TLS_VERIFY_AUDIT);
	struct cmicro_tls_context *sctx = server_ctx("lib", "wrong_name");
	enum side_state st;

	(void)state;
	assert_false(connect_resuming(ctx, sctx, "localhost:1", &st));
	assert_int_equal(st, SIDE_DONE);
	assert_false(connect_resuming(ctx, sctx, "localhost:1", &st));
	assert_int_equal(cmicro_tls_config_reason_count(cmicro_tls_context_config(ctx),
	                                                CMICRO_TLS_REASON_HOSTNAME_MISMATCH),
	                 2);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(ctx);
}
/* A raw OpenSSL client limited to versions lo..hi at security level 0. */
static SSL *client_raw(int lo, int hi)
{
	SSL_CTX *raw = SSL_CTX_new(TLS_client_method());
	SSL *ssl;

	assert_non_null(raw);
	SSL_CTX_set_security_level(raw, 0);
	assert_int_equal(SSL_CTX_set_min_proto_version(raw, lo), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(raw, hi), 1);
	assert_int_equal(SSL_CTX_set_cipher_list(raw, "DEFAULT@SECLEVEL=0"), 1);
	ssl = SSL_new(raw);
	assert_non_null(ssl);
	SSL_set_connect_state(ssl);
	SSL_CTX_free(raw);
	return ssl;
}

static void test_handshake_tls11_client_named_by_server(void **state)
{
	struct cmicro_tls_context *sctx = server_ctx("cli", "valid");
	SSL *s = NULL;
	struct pair p;

	(void)state;
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "old client", &s));
	pair_start(&p, client_raw(TLS1_1_VERSION, TLS1_1_VERSION), s);
	pair_run(&p);
	assert_int_equal(p.server.state, SIDE_FAILED);
	assert_int_equal(p.server.verdict.reason, CMICRO_TLS_REASON_PROTOCOL_VERSION);
	TK_CONTAINS(p.server.verdict.message, "peer offered only TLS 1.1; the minimum is TLS 1.2");
	pair_end(&p);
	cmicro_tls_context_free(sctx);
}

static void test_handshake_min_tls13_enforced(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *sctx = NULL;
	char cert[512], key[512];
	SSL *s = NULL;
	struct pair p;

	(void)state;
	TK_OK(cmicro_tls_config_insecure(&cfg));
	TK_OK(cmicro_tls_config_set_min_version(cfg, CMICRO_TLS_1_3));
	TK_OK(
	    cmicro_tls_config_set_cert_files(cfg, var_path(cert, sizeof(cert), "cli", "valid.crt"),
	                                     var_path(key, sizeof(key), "cli", "valid.key"), NULL));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, NULL, &sctx));
	assert_int_equal(cmicro_tls_config_get_min_version(cfg), CMICRO_TLS_1_3);

	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "tls12 client", &s));
	pair_start(&p, client_raw(TLS1_2_VERSION, TLS1_2_VERSION), s);
	pair_run(&p);
	assert_int_equal(p.server.state, SIDE_FAILED);
	TK_CONTAINS(p.server.verdict.message, "peer offered only TLS 1.2; the minimum is TLS 1.3");
	pair_end(&p);

	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "tls13 client", &s));
	pair_start(&p, client_raw(TLS1_2_VERSION, TLS1_3_VERSION), s);
	pair_run(&p);
	assert_int_equal(p.server.state, SIDE_DONE);
	assert_int_equal(SSL_version(p.server.ssl), TLS1_3_VERSION);
	pair_end(&p);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(cfg);
}

static void test_config_old_min_version_rejected(void **state)
{
	static const int bad[] = {0x0300, 0x0301, 0x0302, 0x0305, 0, -1, 12};
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	TK_OK(cmicro_tls_config_new(&cfg));
	TK_FAIL(cmicro_tls_config_set_min_version(cfg, 0x0301), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "minimum TLS version 0x0301 (TLS 1.0) is not allowed");
	TK_FAIL(cmicro_tls_config_set_min_version(cfg, 0x0302), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "0x0302 (TLS 1.1)");
	for (size_t i = 0; i < CMI_ARRAY_LEN(bad); i++)
		TK_FAIL(cmicro_tls_config_set_min_version(cfg, bad[i]), CMICRO_EINVAL);
	assert_int_equal(cmicro_tls_config_get_min_version(cfg), CMICRO_TLS_1_2);
	cmicro_tls_config_free(cfg);
}

static void test_config_frozen_setters_busy(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("lib", CMICRO_TLS_VERIFY_ON);
	struct cmicro_tls_config *cfg = cmicro_tls_context_config(ctx);
	char path[512];

	(void)state;
	TK_FAIL(cmicro_tls_config_set_verify(cfg, CMICRO_TLS_VERIFY_OFF), CMICRO_EBUSY);
	TK_CONTAINS(cmicro_last_errmsg(), "cmicro_tls_config_set_verify: the TLS configuration "
	                                  "can no longer change");
	TK_FAIL(cmicro_tls_config_add_ca_file(cfg, var_path(path, sizeof(path), "lib", "root.pem")),
	        CMICRO_EBUSY);
	TK_FAIL(cmicro_tls_config_set_min_version(cfg, CMICRO_TLS_1_3), CMICRO_EBUSY);
	TK_FAIL(cmicro_tls_config_set_server_name(cfg, "x"), CMICRO_EBUSY);
	TK_FAIL(cmicro_tls_config_set_client_auth(cfg, CMICRO_TLS_CLIENT_AUTH_REQUIRE),
	        CMICRO_EBUSY);
	assert_int_equal(cmicro_tls_config_get_verify(cfg), CMICRO_TLS_VERIFY_ON);
	assert_int_equal(cmicro_tls_config_ca_count(cfg), 1);
	cmicro_tls_context_free(ctx);
}

static void test_context_server_without_cert_rejected(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;

	(void)state;
	TK_OK(cmicro_tls_config_secure(&cfg));
	TK_FAIL(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, NULL, &ctx), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "a TLS server needs a certificate");
	assert_null(ctx);
	/* A failed build leaves the configuration open for the fix. */
	TK_OK(cmicro_tls_config_set_verify(cfg, CMICRO_TLS_VERIFY_AUDIT));
	cmicro_tls_config_free(cfg);
}

static void test_context_verifying_client_needs_host(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("lib", CMICRO_TLS_VERIFY_ON);
	SSL *ssl = NULL;

	(void)state;
	TK_FAIL(cmicro_tls_ssl_new(ctx, NULL, "nameless", &ssl), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "needs the host it connects to");
	assert_null(ssl);
	cmicro_tls_context_free(ctx);
}

/* SSL_CERT_FILE replaces OpenSSL's default roots, as it does Go's. */
static void test_config_ssl_cert_file_honoured(void **state)
{
	const char *cases[][2] = {{"root.pem", "none"}, {"self_signed.pem", "unknown_authority"}};
	char path[512];

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		struct cmicro_tls_config *cfg = NULL;
		struct cmicro_tls_context *ctx = NULL;
		struct cmicro_tls_context *sctx = server_ctx("cli", "valid");
		struct pair p;

		setenv("SSL_CERT_FILE", var_path(path, sizeof(path), "cli", cases[i][0]), 1);
		setenv("SSL_CERT_DIR", tmp, 1);
		TK_OK(cmicro_tls_config_secure(&cfg));
		assert_true(cmicro_tls_config_get_system_roots(cfg));
		TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
		pair_connect(&p, ctx, "localhost", "system roots", sctx);
		assert_string_equal(cmicro_tls_reason_name(p.client.verdict.reason), cases[i][1]);
		assert_int_equal(p.client.state, i == 0 ? SIDE_DONE : SIDE_FAILED);
		pair_end(&p);
		cmicro_tls_context_free(ctx);
		cmicro_tls_context_free(sctx);
		cmicro_tls_config_free(cfg);
	}
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
}

static void test_handshake_crl_revocation_rejected(void **state)
{
	const char *cases[][2] = {{"revoked", "revoked"}, {"valid", "none"}};
	char path[512];

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		struct cmicro_tls_config *cfg = NULL;
		struct cmicro_tls_context *ctx = NULL;
		struct cmicro_tls_context *sctx = server_ctx("cli", cases[i][0]);
		struct pair p;

		TK_OK(cmicro_tls_config_new(&cfg));
		TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
		TK_OK(cmicro_tls_config_add_ca_file(
		    cfg, var_path(path, sizeof(path), "cli", "root.pem")));
		TK_OK(cmicro_tls_config_set_crl_file(
		    cfg, var_path(path, sizeof(path), "cli", "crl.pem")));
		assert_string_equal(cmicro_tls_config_get_crl_file(cfg), path);
		TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
		pair_connect(&p, ctx, "localhost", "crl", sctx);
		assert_string_equal(cmicro_tls_reason_name(p.client.verdict.reason), cases[i][1]);
		if (i == 0)
			TK_CONTAINS(p.client.verdict.message, "certificate has been revoked");
		pair_end(&p);
		cmicro_tls_context_free(ctx);
		cmicro_tls_context_free(sctx);
		cmicro_tls_config_free(cfg);
	}
}

static void test_config_bad_crl_file_rejected(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	char path[512];

	(void)state;
	TK_OK(cmicro_tls_config_new(&cfg));
	TK_FAIL(
	    cmicro_tls_config_set_crl_file(cfg, var_path(path, sizeof(path), "cli", "root.pem")),
	    CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "contains no PEM CRL");
	assert_null(cmicro_tls_config_get_crl_file(cfg));
	cmicro_tls_config_free(cfg);
}

/* Renegotiation is refused in both directions: a cmicro client will not
 * start one, and a cmicro server will not go along with one. */
static void test_handshake_renegotiation_refused(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("cli", CMICRO_TLS_VERIFY_ON);
	struct cmicro_tls_context *sctx = server_ctx("cli", "valid");
	SSL *c = NULL, *s = NULL;
	struct pair p;
	char buf[8];
	int rc = 0;

	(void)state;
	TK_OK(cmicro_tls_ssl_new(ctx, "localhost", "reneg", &c));
	assert_int_equal(SSL_set_max_proto_version(c, TLS1_2_VERSION), 1);
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "reneg", &s));
	pair_start(&p, c, s);
	pair_run(&p);
	assert_int_equal(p.client.state, SIDE_DONE);
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	assert_int_equal(SSL_renegotiate(c), 0);
	pair_end(&p);

	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "reneg", &s));
	pair_start(&p, client_raw(TLS1_2_VERSION, TLS1_2_VERSION), s);
	pair_run(&p);
	assert_int_equal(p.client.state, SIDE_DONE);
	assert_int_equal(SSL_renegotiate(p.client.ssl), 1);
	for (int i = 0; i < 200 && rc <= 0; i++) {
		ERR_clear_error();
		rc = SSL_do_handshake(p.client.ssl);
		if (rc <= 0 && SSL_get_error(p.client.ssl, rc) == SSL_ERROR_SSL)
			break;
		(void)SSL_read(p.server.ssl, buf, sizeof(buf));
		poll(NULL, 0, 5);
	}
	assert_true(rc <= 0);
	assert_int_equal(SSL_get_error(p.client.ssl, rc), SSL_ERROR_SSL);
	assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_NO_RENEGOTIATION);
	pair_end(&p);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(ctx);
}

static void test_handshake_keylog_written(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	struct cmicro_tls_context *sctx = server_ctx("lib", "valid");
	char path[512];
	char *data = NULL;
	size_t len = 0;
	struct pair p;

	(void)state;
	TK_OK(cmicro_tls_config_insecure(&cfg));
	TK_OK(cmicro_tls_config_set_keylog_file(cfg, tk_path(path, sizeof(path), tmp, "keys.log")));
	tk_log_capture_start();
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
	assert_int_equal(tk_log_count("TLS-KEYLOG"), 1);
	TK_CONTAINS(tk_log_captured(), "anyone who can read that file can decrypt");
	tk_log_capture_stop();
	cmicro_log_set_handler(cmicro_log_null, NULL);
	pair_connect(&p, ctx, "localhost", "keylog", sctx);
	assert_int_equal(p.client.state, SIDE_DONE);
	pair_end(&p);
	TK_OK(cmi_read_file(path, 1 << 20, &data, &len));
	TK_CONTAINS(data, "CLIENT_HANDSHAKE_TRAFFIC_SECRET ");
	TK_CONTAINS(data, "SERVER_TRAFFIC_SECRET_0 ");
	free(data);
	cmicro_tls_context_free(ctx);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(cfg);
}

/* ---- audit log and counters -------------------------------------------------- */

static void test_audit_logged_once_per_peer_reason(void **state)
{
	struct cmicro_tls_context *ctx = client_ctx("lib", CMICRO_TLS_VERIFY_AUDIT);
	struct cmicro_tls_context *wrong = server_ctx("lib", "wrong_name");
	struct cmicro_tls_context *expired = server_ctx("lib", "expired");
	const struct {
		struct cmicro_tls_context *server;
		const char *label;
	} runs[] = {{wrong, "10.0.0.1:8080"},
	            {wrong, "10.0.0.1:8080"},
	            {wrong, "10.0.0.2:8080"},
	            {expired, "10.0.0.1:8080"},
	            {expired, "10.0.0.1:8080"}};
	struct cmicro_tls_config *cfg = cmicro_tls_context_config(ctx);

	(void)state;
	tk_log_capture_start();
	for (size_t i = 0; i < CMI_ARRAY_LEN(runs); i++) {
		struct pair p;

		pair_connect(&p, ctx, "localhost", runs[i].label, runs[i].server);
		assert_int_equal(p.client.state, SIDE_DONE);
		pair_end(&p);
	}
	assert_int_equal(tk_log_count("TLS-AUDIT"), 3);
	TK_CONTAINS(tk_log_captured(), "warning TLS-AUDIT audit: peer 10.0.0.2:8080 would be "
	                               "rejected in secure mode (hostname_mismatch)");
	tk_log_capture_stop();
	cmicro_log_set_handler(cmicro_log_null, NULL);
	assert_int_equal(cmicro_tls_config_reason_count(cfg, CMICRO_TLS_REASON_HOSTNAME_MISMATCH),
	                 3);
	assert_int_equal(cmicro_tls_config_reason_count(cfg, CMICRO_TLS_REASON_EXPIRED), 2);
	assert_int_equal(cmicro_tls_config_reason_count(cfg, CMICRO_TLS_REASON_NONE), 0);
	cmicro_tls_context_free(expired);
	cmicro_tls_context_free(wrong);
	cmicro_tls_context_free(ctx);
}

/* ---- mutual TLS ------------------------------------------------------------------ */

static struct cmicro_tls_context *mtls_server(enum cmicro_tls_client_auth auth)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	char cert[512], key[512], ca[512];

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	TK_OK(cmicro_tls_config_add_ca_file(cfg, var_path(ca, sizeof(ca), "cli", "root.pem")));
	TK_OK(
	    cmicro_tls_config_set_cert_files(cfg, var_path(cert, sizeof(cert), "cli", "valid.crt"),
	                                     var_path(key, sizeof(key), "cli", "valid.key"), NULL));
	TK_OK(cmicro_tls_config_set_client_auth(cfg, auth));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, NULL, &ctx));
	cmicro_tls_config_free(cfg);
	return ctx;
}

/* A verifying client presenting <name>.crt, or no certificate for NULL. */
static struct cmicro_tls_context *mtls_client(const char *name)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	char cert[512], key[512], ca[512], file[128];

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	TK_OK(cmicro_tls_config_add_ca_file(cfg, var_path(ca, sizeof(ca), "cli", "root.pem")));
	if (name != NULL) {
		snprintf(file, sizeof(file), "%s.crt", name);
		var_path(cert, sizeof(cert), "cli", file);
		snprintf(file, sizeof(file), "%s.key", name);
		var_path(key, sizeof(key), "cli", file);
		TK_OK(cmicro_tls_config_set_cert_files(cfg, cert, key, NULL));
	}
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
	cmicro_tls_config_free(cfg);
	return ctx;
}

static void test_mtls_client_certificates_classified(void **state)
{
	const struct {
		enum cmicro_tls_client_auth auth;
		const char *client; /* NULL: no certificate */
		enum side_state server_state;
		enum cmicro_tls_reason reason; /* as the server classifies it */
		const char *words;
	} cases[] = {
	    {CMICRO_TLS_CLIENT_AUTH_REQUIRE, "client", SIDE_DONE, CMICRO_TLS_REASON_NONE, ""},
	    {CMICRO_TLS_CLIENT_AUTH_REQUIRE, NULL, SIDE_FAILED, CMICRO_TLS_REASON_NO_CERTIFICATE,
	     "the client sent no certificate but this server requires one"},
	    {CMICRO_TLS_CLIENT_AUTH_REQUIRE, "client_wrong_ca", SIDE_FAILED,
	     CMICRO_TLS_REASON_UNKNOWN_AUTHORITY, "certificate signed by unknown authority"},
	    {CMICRO_TLS_CLIENT_AUTH_REQUIRE, "client_server_only", SIDE_FAILED,
	     CMICRO_TLS_REASON_BAD_USAGE,
	     "certificate not valid for client authentication: its extended key usage allows "
	     "only serverAuth"},
	    {CMICRO_TLS_CLIENT_AUTH_REQUEST, "client", SIDE_DONE, CMICRO_TLS_REASON_NONE, ""},
	    {CMICRO_TLS_CLIENT_AUTH_REQUEST, NULL, SIDE_DONE, CMICRO_TLS_REASON_NONE, ""},
	    {CMICRO_TLS_CLIENT_AUTH_REQUEST, "client_wrong_ca", SIDE_FAILED,
	     CMICRO_TLS_REASON_UNKNOWN_AUTHORITY, "certificate signed by unknown authority"},
	    {CMICRO_TLS_CLIENT_AUTH_REQUEST, "client_server_only", SIDE_FAILED,
	     CMICRO_TLS_REASON_BAD_USAGE, "not valid for client authentication"},
	};

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		struct cmicro_tls_context *sctx = mtls_server(cases[i].auth);
		struct cmicro_tls_context *ctx = mtls_client(cases[i].client);
		struct pair p;

		pair_connect(&p, ctx, "localhost", "mtls", sctx);
		if (p.server.state != cases[i].server_state ||
		    p.server.verdict.reason != cases[i].reason ||
		    strstr(p.server.verdict.message, cases[i].words) == NULL)
			fail_msg("case %zu (client %s): server state %d reason %s (%s)", i,
			         cases[i].client ? cases[i].client : "without certificate",
			         p.server.state, cmicro_tls_reason_name(p.server.verdict.reason),
			         p.server.verdict.message);
		/* The client learns of the rejection from the server's alert. */
		assert_int_equal(p.client.state, cases[i].server_state);
		if (cases[i].reason == CMICRO_TLS_REASON_NO_CERTIFICATE)
			TK_CONTAINS(p.client.verdict.message, "the server requires a client "
			                                      "certificate");
		pair_end(&p);
		cmicro_tls_context_free(ctx);
		cmicro_tls_context_free(sctx);
	}
}

/* ---- identities and trust sources -------------------------------------------- */

static void test_context_identity_override_serves(void **state)
{
	static const char *const hosts[] = {"localhost"};
	struct cmicro_tls_config *scfg = NULL;
	struct cmicro_tls_config *ccfg = NULL;
	struct cmicro_tls_context *sctx = NULL;
	struct cmicro_tls_context *ctx = NULL;
	struct cmicro_cert *self = NULL;
	struct pair p;

	(void)state;
	TK_OK(cmicro_cert_selfsigned(hosts, 1, &self));
	TK_OK(cmicro_tls_config_insecure(&scfg));
	TK_OK(cmicro_tls_context_new(scfg, CMICRO_TLS_SERVER, self, &sctx));
	assert_false(cmicro_tls_config_has_cert(scfg));

	/* The client trusts that very certificate, in memory. */
	TK_OK(cmicro_tls_config_new(&ccfg));
	TK_OK(cmicro_tls_config_set_system_roots(ccfg, false));
	TK_OK(cmicro_tls_config_add_ca_cert(ccfg, self));
	assert_int_equal(cmicro_tls_config_ca_count(ccfg), 0);
	TK_OK(cmicro_tls_context_new(ccfg, CMICRO_TLS_CLIENT, NULL, &ctx));
	pair_connect(&p, ctx, "localhost", "override", sctx);
	if (p.client.state != SIDE_DONE)
		fail_msg("handshake failed: %s", p.client.verdict.message);
	assert_int_equal(p.client.verdict.reason, CMICRO_TLS_REASON_NONE);
	pair_end(&p);
	cmicro_tls_context_free(ctx);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(ccfg);
	cmicro_tls_config_free(scfg);
	cmicro_cert_free(self);
}

static void test_config_memory_cert_needs_key(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_cert *id = NULL;
	struct cmicro_cert *bare = NULL;
	char cert[512], key[512];

	(void)state;
	TK_OK(cmi_tls_load_identity(var_path(cert, sizeof(cert), "lib", "valid.crt"),
	                            var_path(key, sizeof(key), "lib", "valid.key"), NULL, &id));
	assert_int_equal(X509_up_ref(id->x509), 1);
	TK_OK(cmi_cert_wrap(id->x509, NULL, NULL, &bare));
	TK_OK(cmicro_tls_config_new(&cfg));
	TK_FAIL(cmicro_tls_config_set_cert(cfg, bare), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "carries no private key");
	assert_false(cmicro_tls_config_has_cert(cfg));
	TK_OK(cmicro_tls_config_set_cert(cfg, id));
	assert_true(cmicro_tls_config_has_cert(cfg));
	assert_null(cmicro_tls_config_get_cert_file(cfg));
	assert_int_equal(X509_cmp(cmicro_tls_config_get_cert(cfg)->x509, id->x509), 0);
	cmicro_tls_config_free(cfg);
	cmicro_cert_free(bare);
	cmicro_cert_free(id);
}

static void test_config_ca_dir_trusted(void **state)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;
	struct cmicro_tls_context *sctx = server_ctx("cli", "valid");
	char dir[512], path[512];
	char *out = NULL;
	struct pair p;

	(void)state;
	tk_path(dir, sizeof(dir), tmp, "cadir");
	if (tk_run(&out, 30,
	           "mkdir -p %s && cp %s/cli/root.pem %s/anchor.crt && "
	           "echo not a certificate > %s/README",
	           dir, tmp, dir, dir) != 0)
		fail_msg("preparing the CA directory failed: %s", out);
	free(out);
	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_add_ca_dir(cfg, dir));
	assert_int_equal(tk_log_count("TLS-CA-SKIP"), 1);
	TK_CONTAINS(tk_log_captured(), "skipped README");
	tk_log_capture_stop();
	cmicro_log_set_handler(cmicro_log_null, NULL);
	assert_string_equal(cmicro_tls_config_ca_path(cfg, 0), dir);
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
	pair_connect(&p, ctx, "localhost", "ca dir", sctx);
	assert_int_equal(p.client.state, SIDE_DONE);
	pair_end(&p);

	TK_FAIL(cmicro_tls_config_add_ca_dir(cfg, tk_path(path, sizeof(path), tmp, "none")),
	        CMICRO_EBUSY);
	cmicro_tls_context_free(ctx);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(cfg);
	TK_OK(cmicro_tls_config_new(&cfg));
	TK_FAIL(cmicro_tls_config_add_ca_dir(cfg, tk_path(path, sizeof(path), tmp, "none")),
	        CMICRO_ENOENT);
	TK_CONTAINS(cmicro_last_errmsg(), "CA directory");
	cmicro_tls_config_free(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_valid_chain_accepted),
	    cmocka_unit_test(test_handshake_expired_leaf_classified),
	    cmocka_unit_test(test_handshake_future_leaf_classified),
	    cmocka_unit_test(test_handshake_expired_intermediate_classified),
	    cmocka_unit_test(test_handshake_wrong_dns_name_classified),
	    cmocka_unit_test(test_handshake_ip_without_ip_san_classified),
	    cmocka_unit_test(test_handshake_cn_only_classified),
	    cmocka_unit_test(test_handshake_self_signed_classified),
	    cmocka_unit_test(test_handshake_unknown_ca_classified),
	    cmocka_unit_test(test_handshake_missing_intermediate_classified),
	    cmocka_unit_test(test_handshake_leaf_alone_unknown_authority),
	    cmocka_unit_test(test_handshake_client_eku_classified),
	    cmocka_unit_test(test_handshake_rsa1024_weak_key_classified),
	    cmocka_unit_test(test_handshake_sha1_weak_signature_classified),
	    cmocka_unit_test(test_handshake_tls11_peer_protocol_version),
	    cmocka_unit_test(test_names_go_rules_hold),
	    cmocka_unit_test(test_names_partial_wildcard_never_matches),
	    cmocka_unit_test(test_names_handshake_case_dot_ipv6),
	    cmocka_unit_test(test_handshake_sni_only_for_names),
	    cmocka_unit_test(test_handshake_whole_chain_sent),
	    cmocka_unit_test(test_handshake_alpn_http11_negotiated),
	    cmocka_unit_test(test_handshake_session_resumed),
	    cmocka_unit_test(test_handshake_audit_failure_not_resumed),
	    cmocka_unit_test(test_handshake_tls11_client_named_by_server),
	    cmocka_unit_test(test_handshake_min_tls13_enforced),
	    cmocka_unit_test(test_config_old_min_version_rejected),
	    cmocka_unit_test(test_config_frozen_setters_busy),
	    cmocka_unit_test(test_context_server_without_cert_rejected),
	    cmocka_unit_test(test_context_verifying_client_needs_host),
	    cmocka_unit_test(test_config_ssl_cert_file_honoured),
	    cmocka_unit_test(test_handshake_crl_revocation_rejected),
	    cmocka_unit_test(test_config_bad_crl_file_rejected),
	    cmocka_unit_test(test_handshake_renegotiation_refused),
	    cmocka_unit_test(test_handshake_keylog_written),
	    cmocka_unit_test(test_audit_logged_once_per_peer_reason),
	    cmocka_unit_test(test_mtls_client_certificates_classified),
	    cmocka_unit_test(test_context_identity_override_serves),
	    cmocka_unit_test(test_config_memory_cert_needs_key),
	    cmocka_unit_test(test_config_ca_dir_trusted),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
