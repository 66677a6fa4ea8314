/*
 * Reloading certificate, key and CA files while contexts are in use:
 * real handshakes through in-memory BIO pairs, certificates made at test
 * time by the library and by the openssl command.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls_config_int.h"
#include "testkit.h"

struct fixture {
	char *dir;
	struct cmicro_cert *ca;  /* trusted by the client */
	struct cmicro_cert *ca2; /* another CA, trusted only after a rotation */
	char cert_file[512], key_file[512], ca_file[512];
};

static struct fixture fx;

static struct cmicro_cert *make_ca(const char *cn)
{
	struct cmicro_cert_opts o;
	struct cmicro_cert *ca = NULL;

	cmicro_cert_opts_init(&o);
	o.common_name = cn;
	TK_OK(cmicro_cert_ca_new(&o, &ca));
	return ca;
}

static struct cmicro_cert *make_leaf(const struct cmicro_cert *ca, const char *cn)
{
	static const char *const hosts[] = {"localhost"};
	struct cmicro_cert_opts o;
	struct cmicro_cert *leaf = NULL;

	cmicro_cert_opts_init(&o);
	o.common_name = cn;
	o.hosts = hosts;
	o.n_hosts = 1;
	TK_OK(cmicro_cert_issue(ca, &o, &leaf));
	return leaf;
}

/* Writes leaf's certificate and key to the fixture's files (each by an
 * atomic rename, as deployment tools do). */
static void install(const struct cmicro_cert *leaf)
{
	TK_OK(cmicro_cert_save(leaf, fx.cert_file, fx.key_file, 0));
}

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.dir = tk_tmpdir();
	tk_path(fx.cert_file, sizeof(fx.cert_file), fx.dir, "node.crt");
	tk_path(fx.key_file, sizeof(fx.key_file), fx.dir, "node.key");
	tk_path(fx.ca_file, sizeof(fx.ca_file), fx.dir, "ca.crt");
	fx.ca = make_ca("reload test CA");
	fx.ca2 = make_ca("reload test CA 2");
	TK_OK(cmicro_cert_save(fx.ca, fx.ca_file, NULL, 0));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cmicro_cert_free(fx.ca);
	cmicro_cert_free(fx.ca2);
	tk_tmpdir_remove(fx.dir);
	return 0;
}

static struct cmicro_tls_context *server_from_files(struct cmicro_tls_config **cfg_out)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;

	TK_OK(cmicro_tls_config_secure(&cfg));
	TK_OK(cmicro_tls_config_set_cert_files(cfg, fx.cert_file, fx.key_file, NULL));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, NULL, &ctx));
	*cfg_out = cfg;
	return ctx;
}

static struct cmicro_tls_context *client_trusting(const char *ca_file,
						  struct cmicro_tls_config **cfg_out)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *ctx = NULL;

	TK_OK(cmicro_tls_config_secure(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	TK_OK(cmicro_tls_config_add_ca_file(cfg, ca_file));
	TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &ctx));
	*cfg_out = cfg;
	return ctx;
}

/* Runs a handshake between client and server over a BIO pair, bounded in
 * rounds. Returns true when both sides completed; *peer receives the
 * server certificate the client saw (a new reference, or NULL). */
static bool handshake(SSL *client, SSL *server, X509 **peer)
{
	BIO *cb = NULL, *sb = NULL;
	bool c_done = false, s_done = false, failed = false;

	assert_int_equal(BIO_new_bio_pair(&cb, 0, &sb, 0), 1);
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	for (int round = 0; round < 100 && !(c_done && s_done) && !failed; round++) {
		int rc;

		if (!c_done) {
			rc = SSL_do_handshake(client);
			c_done = rc == 1;
			failed |= rc <= 0 && SSL_get_error(client, rc) != SSL_ERROR_WANT_READ;
		}
		if (!s_done) {
			rc = SSL_do_handshake(server);
			s_done = rc == 1;
			failed |= rc <= 0 && SSL_get_error(server, rc) != SSL_ERROR_WANT_READ;
		}
	}
	if (peer != NULL)
		*peer = c_done ? SSL_get1_peer_certificate(client) : NULL;
	ERR_clear_error();
	return c_done && s_done && !failed;
}

/* A complete handshake from fresh SSL objects of both contexts. */
static bool connect_pair(struct cmicro_tls_context *cctx, struct cmicro_tls_context *sctx,
			 X509 **peer)
{
	SSL *c = NULL, *s = NULL;
	bool ok;

	TK_OK(cmicro_tls_ssl_new(cctx, "localhost", "reload test server", &c));
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "reload test client", &s));
	ok = handshake(c, s, peer);
	SSL_free(c);
	SSL_free(s);
	return ok;
}

static void assert_same_cert(X509 *seen, const struct cmicro_cert *want)
{
	assert_non_null(seen);
	assert_int_equal(X509_cmp(seen, want->x509), 0);
}

/* Distinct metadata for the next write: some file systems keep only whole
 * seconds of modification time, but the inode changes with every rename. */
static void touch_apart(void)
{
	struct timespec ts = {.tv_nsec = 20 * 1000 * 1000};

	nanosleep(&ts, NULL);
}

static void test_reload_new_cert_used_by_next_handshake(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_cert *b = make_leaf(fx.ca, "node b");
	struct cmicro_tls_config *scfg = NULL, *ccfg = NULL;
	struct cmicro_tls_context *sctx, *cctx;
	SSL *old_c = NULL, *old_s = NULL;
	X509 *peer = NULL;
	bool changed = false;

	(void)state;
	install(a);
	sctx = server_from_files(&scfg);
	cctx = client_trusting(fx.ca_file, &ccfg);
	assert_true(connect_pair(cctx, sctx, &peer));
	assert_same_cert(peer, a);
	X509_free(peer);

	/* A connection set up before the rotation completes with the old
	 * certificate. */
	TK_OK(cmicro_tls_ssl_new(cctx, "localhost", "old", &old_c));
	TK_OK(cmicro_tls_ssl_new(sctx, NULL, "old", &old_s));

	touch_apart();
	install(b);
	TK_OK(cmicro_tls_config_reload(scfg, &changed));
	assert_true(changed);
	assert_true(connect_pair(cctx, sctx, &peer));
	assert_same_cert(peer, b);
	X509_free(peer);

	assert_true(handshake(old_c, old_s, &peer));
	assert_same_cert(peer, a);
	X509_free(peer);
	SSL_free(old_c);
	SSL_free(old_s);

	assert_int_equal(X509_cmp(cmicro_tls_config_get_cert(scfg)->x509, b->x509), 0);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(cctx);
	cmicro_tls_config_free(scfg);
	cmicro_tls_config_free(ccfg);
	cmicro_cert_free(a);
	cmicro_cert_free(b);
}

static void test_reload_unchanged_files_nothing_done(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_tls_config *scfg = NULL;
	struct cmicro_tls_context *sctx;
	bool changed = true;

	(void)state;
	install(a);
	sctx = server_from_files(&scfg);
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_reload(scfg, &changed));
	assert_false(changed);
	assert_int_equal(tk_log_count("TLS-RELOADED"), 0);
	tk_log_capture_stop();
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(scfg);
	cmicro_cert_free(a);
}

/* Checks that a bad replacement is rejected with want_rc, logged, and that
 * handshakes go on with the certificate loaded before. */
static void check_rejected(const char *cert_text, const char *key_text, int want_rc)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_tls_config *scfg = NULL, *ccfg = NULL;
	struct cmicro_tls_context *sctx, *cctx;
	X509 *peer = NULL;
	bool changed = true;

	install(a);
	sctx = server_from_files(&scfg);
	cctx = client_trusting(fx.ca_file, &ccfg);
	touch_apart();
	if (cert_text != NULL)
		tk_write(fx.cert_file, cert_text);
	if (key_text != NULL)
		tk_write(fx.key_file, key_text);

	tk_log_capture_start();
	assert_int_equal(cmicro_tls_config_reload(scfg, &changed), want_rc);
	assert_false(changed);
	assert_int_equal(tk_log_count("TLS-RELOAD-FAILED"), 1);
	assert_non_null(strstr(tk_log_captured(), "previous certificate"));
	tk_log_capture_stop();

	assert_true(connect_pair(cctx, sctx, &peer));
	assert_same_cert(peer, a);
	X509_free(peer);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(cctx);
	cmicro_tls_config_free(scfg);
	cmicro_tls_config_free(ccfg);
	cmicro_cert_free(a);
}

static void test_reload_broken_pem_keeps_old(void **state)
{
	(void)state;
	check_rejected("-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
		      "-----END CERTIFICATE-----\n",
		      NULL, CMICRO_EPEM);
}

static void test_reload_mismatched_key_keeps_old(void **state)
{
	struct cmicro_cert *other = make_leaf(fx.ca, "someone else");
	char *key_pem = NULL;

	(void)state;
	TK_OK(cmicro_cert_to_pem(other, 0, NULL, &key_pem));
	check_rejected(NULL, key_pem, CMICRO_EKEY);
	cmicro_free(key_pem);
	cmicro_cert_free(other);
}

/* The fix after a refused file is picked up by the next reload. */
static void test_reload_fixed_file_after_failure_loaded(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_cert *b = make_leaf(fx.ca, "node b");
	struct cmicro_tls_config *scfg = NULL;
	struct cmicro_tls_context *sctx;
	bool changed = false;

	(void)state;
	install(a);
	sctx = server_from_files(&scfg);
	touch_apart();
	tk_write(fx.cert_file, "garbage\n");
	assert_int_not_equal(cmicro_tls_config_reload(scfg, &changed), 0);
	touch_apart();
	install(b);
	TK_OK(cmicro_tls_config_reload(scfg, &changed));
	assert_true(changed);
	assert_int_equal(X509_cmp(cmicro_tls_config_get_cert(scfg)->x509, b->x509), 0);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(scfg);
	cmicro_cert_free(a);
	cmicro_cert_free(b);
}

/* A client that does not trust the server's CA does after its CA file
 * gains that CA (written by the openssl command, so the library's and
 * OpenSSL's PEM check each other). */
static void test_reload_ca_file_rotation_trusts_new_ca(void **state)
{
	struct cmicro_cert *leaf = make_leaf(fx.ca2, "node of ca2");
	struct cmicro_tls_config *scfg = NULL, *ccfg = NULL;
	struct cmicro_tls_context *sctx, *cctx;
	char ca2_file[512], client_ca[512];
	X509 *peer = NULL;
	bool changed = false;

	(void)state;
	install(leaf);
	tk_path(ca2_file, sizeof(ca2_file), fx.dir, "ca2.crt");
	tk_path(client_ca, sizeof(client_ca), fx.dir, "client-ca.crt");
	TK_OK(cmicro_cert_save(fx.ca2, ca2_file, NULL, 0));
	TK_OK(tk_run(NULL, 30, "cp %s %s", fx.ca_file, client_ca));
	sctx = server_from_files(&scfg);
	cctx = client_trusting(client_ca, &ccfg);
	assert_false(connect_pair(cctx, sctx, NULL));

	touch_apart();
	TK_OK(tk_run(NULL, 30, "cat %s > %s.new && openssl x509 -in %s >> %s.new && "
			       "mv %s.new %s",
		     fx.ca_file, client_ca, ca2_file, client_ca, client_ca, client_ca));
	TK_OK(cmicro_tls_config_reload(ccfg, &changed));
	assert_true(changed);
	assert_true(connect_pair(cctx, sctx, &peer));
	assert_same_cert(peer, leaf);
	X509_free(peer);
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(cctx);
	cmicro_tls_config_free(scfg);
	cmicro_tls_config_free(ccfg);
	cmicro_cert_free(leaf);
}

/* An in-memory CA is not in any file, and a reload keeps it. */
static void test_reload_in_memory_ca_kept(void **state)
{
	struct cmicro_cert *leaf = make_leaf(fx.ca2, "node of ca2");
	struct cmicro_tls_config *scfg = NULL, *ccfg = NULL;
	struct cmicro_tls_context *sctx, *cctx = NULL;
	char client_ca[512];
	bool changed = false;

	(void)state;
	install(leaf);
	tk_path(client_ca, sizeof(client_ca), fx.dir, "client-ca-mem.crt");
	TK_OK(cmicro_cert_save(fx.ca, client_ca, NULL, 0));
	sctx = server_from_files(&scfg);
	TK_OK(cmicro_tls_config_secure(&ccfg));
	TK_OK(cmicro_tls_config_set_system_roots(ccfg, false));
	TK_OK(cmicro_tls_config_add_ca_file(ccfg, client_ca));
	TK_OK(cmicro_tls_config_add_ca_cert(ccfg, fx.ca2));
	TK_OK(cmicro_tls_context_new(ccfg, CMICRO_TLS_CLIENT, NULL, &cctx));
	assert_true(connect_pair(cctx, sctx, NULL));

	touch_apart();
	TK_OK(cmicro_cert_save(fx.ca, client_ca, NULL, 0));
	TK_OK(cmicro_tls_config_reload(ccfg, &changed));
	assert_true(changed);
	assert_true(connect_pair(cctx, sctx, NULL));
	cmicro_tls_context_free(sctx);
	cmicro_tls_context_free(cctx);
	cmicro_tls_config_free(scfg);
	cmicro_tls_config_free(ccfg);
	cmicro_cert_free(leaf);
}

/* An encrypted key made by the openssl command is reloaded with the
 * passphrase given at the start. */
static void test_reload_encrypted_key_uses_passphrase(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_cert *b = make_leaf(fx.ca, "node b");
	struct cmicro_tls_config *scfg = NULL;
	struct cmicro_tls_context *sctx = NULL;
	char plain[512];
	bool changed = false;

	(void)state;
	tk_path(plain, sizeof(plain), fx.dir, "plain.key");
	TK_OK(cmicro_cert_save(a, fx.cert_file, plain, 0));
	TK_OK(tk_run(NULL, 30, "openssl pkey -in %s -aes256 -passout pass:s3cret -out %s",
		     plain, fx.key_file));
	TK_OK(cmicro_tls_config_secure(&scfg));
	TK_OK(cmicro_tls_config_set_cert_files(scfg, fx.cert_file, fx.key_file, "s3cret"));
	TK_OK(cmicro_tls_context_new(scfg, CMICRO_TLS_SERVER, NULL, &sctx));

	touch_apart();
	TK_OK(cmicro_cert_save(b, fx.cert_file, plain, 0));
	TK_OK(tk_run(NULL, 30, "openssl pkey -in %s -aes256 -passout pass:s3cret -out %s.new "
			       "&& mv %s.new %s",
		     plain, fx.key_file, fx.key_file, fx.key_file));
	TK_OK(cmicro_tls_config_reload(scfg, &changed));
	assert_true(changed);
	assert_int_equal(X509_cmp(cmicro_tls_config_get_cert(scfg)->x509, b->x509), 0);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(scfg);
	cmicro_cert_free(a);
	cmicro_cert_free(b);
}

/* An expired replacement of a valid certificate is refused. */
static void test_reload_expired_replacement_keeps_old(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_cert *old = NULL;
	struct cmicro_cert_opts o;
	static const char *const hosts[] = {"localhost"};
	struct cmicro_tls_config *scfg = NULL;
	struct cmicro_tls_context *sctx;
	bool changed = true;

	(void)state;
	cmicro_cert_opts_init(&o);
	o.hosts = hosts;
	o.n_hosts = 1;
	o.not_before = time(NULL) - 10 * 86400;
	o.not_after = time(NULL) - 86400;
	TK_OK(cmicro_cert_issue(fx.ca, &o, &old));
	install(a);
	sctx = server_from_files(&scfg);
	touch_apart();
	install(old);
	tk_log_capture_start();
	TK_FAIL(cmicro_tls_config_reload(scfg, &changed), CMICRO_ECONFIG);
	assert_false(changed);
	TK_CONTAINS(cmicro_last_errmsg(), "is expired, while the one in use is still valid");
	assert_int_equal(tk_log_count("TLS-RELOAD-FAILED"), 1);
	tk_log_capture_stop();
	assert_int_equal(X509_cmp(cmicro_tls_config_get_cert(scfg)->x509, a->x509), 0);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(scfg);
	cmicro_cert_free(a);
	cmicro_cert_free(old);
}

static void test_reload_unused_config_ignored(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_tls_config *cfg = NULL;
	bool changed = true;

	(void)state;
	install(a);
	TK_OK(cmicro_tls_config_secure(&cfg));
	TK_OK(cmicro_tls_config_set_cert_files(cfg, fx.cert_file, fx.key_file, NULL));
	touch_apart();
	tk_write(fx.cert_file, "garbage\n");
	TK_OK(cmicro_tls_config_reload(cfg, &changed));
	assert_false(changed);
	assert_int_equal(cmicro_tls_config_reload(NULL, NULL), CMICRO_EINVAL);
	cmicro_tls_config_free(cfg);
	cmicro_cert_free(a);
}

/* The poll loads a change only after it stayed the same for one interval. */
static void test_reload_poll_waits_for_settled_files(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_cert *b = make_leaf(fx.ca, "node b");
	struct cmicro_tls_config *scfg = NULL;
	struct cmicro_tls_context *sctx;
	uint64_t seen = 0;
	bool changed = true;

	(void)state;
	install(a);
	sctx = server_from_files(&scfg);
	TK_OK(cmi_tls_config_poll(scfg, &seen, &changed));
	assert_false(changed);
	TK_OK(cmi_tls_config_poll(scfg, &seen, &changed));
	assert_false(changed);

	touch_apart();
	install(b);
	TK_OK(cmi_tls_config_poll(scfg, &seen, &changed));
	assert_false(changed);
	TK_OK(cmi_tls_config_poll(scfg, &seen, &changed));
	assert_true(changed);
	assert_int_equal(X509_cmp(cmicro_tls_config_get_cert(scfg)->x509, b->x509), 0);
	cmicro_tls_context_free(sctx);
	cmicro_tls_config_free(scfg);
	cmicro_cert_free(a);
	cmicro_cert_free(b);
}

static void test_key_mode_readable_by_others_warned(void **state)
{
	struct cmicro_cert *a = make_leaf(fx.ca, "node a");
	struct cmicro_tls_config *cfg = NULL;

	(void)state;
	install(a);
	assert_int_equal(chmod(fx.key_file, 0600), 0);
	TK_OK(cmicro_tls_config_secure(&cfg));
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_set_cert_files(cfg, fx.cert_file, fx.key_file, NULL));
	assert_int_equal(tk_log_count("TLS-KEY-MODE"), 0);

	assert_int_equal(chmod(fx.key_file, 0644), 0);
	TK_OK(cmicro_tls_config_set_cert_files(cfg, fx.cert_file, fx.key_file, NULL));
	assert_int_equal(tk_log_count("TLS-KEY-MODE"), 1);
	assert_non_null(strstr(tk_log_captured(), "chmod 600"));
	assert_non_null(strstr(tk_log_captured(), fx.key_file));
	tk_log_capture_stop();
	cmicro_tls_config_free(cfg);
	cmicro_cert_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reload_new_cert_used_by_next_handshake),
		cmocka_unit_test(test_reload_unchanged_files_nothing_done),
		cmocka_unit_test(test_reload_broken_pem_keeps_old),
		cmocka_unit_test(test_reload_mismatched_key_keeps_old),
		cmocka_unit_test(test_reload_fixed_file_after_failure_loaded),
		cmocka_unit_test(test_reload_ca_file_rotation_trusts_new_ca),
		cmocka_unit_test(test_reload_in_memory_ca_kept),
		cmocka_unit_test(test_reload_encrypted_key_uses_passphrase),
		cmocka_unit_test(test_reload_expired_replacement_keeps_old),
		cmocka_unit_test(test_reload_unused_config_ignored),
		cmocka_unit_test(test_reload_poll_waits_for_settled_files),
		cmocka_unit_test(test_key_mode_readable_by_others_warned),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
