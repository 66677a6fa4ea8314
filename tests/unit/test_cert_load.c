/*
 * Certificate loading and saving: round trips, file modes, certificates made
 * by the openssl command-line tool, and every kind of bad file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "testkit.h"
#include "tls/tls_int.h"

static char *g_dir;
static struct cmicro_cert *g_ca;
static struct cmicro_cert *g_leaf;

/* One CA and one leaf for every test, saved as ca.pem/ca.key and
 * leaf.pem (leaf then CA) / leaf.key. */
static int group_setup(void **state)
{
	const char *hosts[] = {"load.test", "127.0.0.1"};
	struct cmicro_cert_opts opts;
	char cert[512];
	char key[512];

	(void)state;
	g_dir = tk_tmpdir();
	cmicro_cert_opts_init(&opts);
	TK_OK(cmicro_cert_ca_new(&opts, &g_ca));
	opts.hosts = hosts;
	opts.n_hosts = 2;
	TK_OK(cmicro_cert_issue(g_ca, &opts, &g_leaf));

	TK_OK(cmicro_cert_save(g_ca, tk_path(cert, sizeof(cert), g_dir, "ca.pem"),
	                       tk_path(key, sizeof(key), g_dir, "ca.key"), 0));
	TK_OK(cmicro_cert_save(g_leaf, tk_path(cert, sizeof(cert), g_dir, "leaf.pem"),
	                       tk_path(key, sizeof(key), g_dir, "leaf.key"),
	                       CMICRO_CERT_SAVE_CHAIN));
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cmicro_cert_free(g_leaf);
	cmicro_cert_free(g_ca);
	tk_tmpdir_remove(g_dir);
	return 0;
}

static const char *path_of(const char *name)
{
	static char buf[4][512];
	static int next;

	next = (next + 1) % 4;
	return tk_path(buf[next], sizeof(buf[next]), g_dir, name);
}

/* Returns the whole file (caller frees). */
static char *slurp(const char *name)
{
	FILE *f = fopen(path_of(name), "rb");
	char *buf;
	long len;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len >= 0);
	rewind(f);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return buf;
}

static void run_ok(const char *cmd)
{
	char *out = NULL;
	int rc = tk_run(&out, 60, "cd %s && %s", g_dir, cmd);

	if (rc != 0)
		fail_msg("%s exited %d: %s", cmd, rc, out);
	free(out);
}

static void test_cert_save_load_roundtrip(void **state)
{
	struct cmicro_cert *cert = NULL;
	struct cmicro_cert_info *orig = NULL;
	struct cmicro_cert_info *info = NULL;
	struct cmicro_cert_info *issuer = NULL;

	(void)state;
	TK_OK(cmicro_cert_load(path_of("leaf.pem"), path_of("leaf.key"), NULL, &cert));
	assert_true(cmicro_cert_has_key(cert));
	assert_int_equal(cmicro_cert_chain_len(cert), 2);

	TK_OK(cmicro_cert_inspect(g_leaf, 0, &orig));
	TK_OK(cmicro_cert_inspect(cert, 0, &info));
	TK_OK(cmicro_cert_inspect(cert, 1, &issuer));
	assert_string_equal(info->sha256_fingerprint, orig->sha256_fingerprint);
	assert_string_equal(info->subject, "CN=load.test,O=Micro");
	assert_string_equal(issuer->subject, "CN=cmicro CA,O=Micro");
	assert_int_equal(EVP_PKEY_eq(cert->key, g_leaf->key), 1);

	cmicro_cert_info_free(issuer);
	cmicro_cert_info_free(info);
	cmicro_cert_info_free(orig);
	cmicro_cert_free(cert);
}

static void test_cert_save_key_mode_0600(void **state)
{
	struct stat st;

	(void)state;
	/* An existing world-readable key must not keep its mode when replaced. */
	tk_write(path_of("mode.key"), "old key\n");
	assert_int_equal(chmod(path_of("mode.key"), 0644), 0);
	TK_OK(cmicro_cert_save(g_leaf, path_of("mode.pem"), path_of("mode.key"), 0));

	assert_int_equal(stat(path_of("mode.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(path_of("mode.pem"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(stat(path_of("leaf.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_cert_save_chain_flag_controls_bundle(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	TK_OK(cmicro_cert_save(g_leaf, path_of("nochain.pem"), NULL, 0));
	TK_OK(cmicro_cert_load(path_of("nochain.pem"), NULL, NULL, &cert));
	assert_int_equal(cmicro_cert_chain_len(cert), 1);
	assert_false(cmicro_cert_has_key(cert));
	cmicro_cert_free(cert);
}

static void test_cert_save_missing_dir_fails(void **state)
{
	(void)state;
	TK_FAIL(cmicro_cert_save(g_leaf, path_of("no/such/dir.pem"), NULL, 0), CMICRO_EIO);
	TK_CONTAINS(cmicro_last_errmsg(), "no/such/dir.pem");
	TK_FAIL(cmicro_cert_save(NULL, path_of("x.pem"), NULL, 0), CMICRO_EINVAL);
}

static void test_cert_load_missing_file_enoent(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	TK_FAIL(cmicro_cert_load(path_of("absent.pem"), NULL, NULL, &cert), CMICRO_ENOENT);
	TK_CONTAINS(cmicro_last_errmsg(), "absent.pem");
	TK_FAIL(cmicro_cert_load(path_of("leaf.pem"), path_of("absent.key"), NULL, &cert),
	        CMICRO_ENOENT);
	TK_CONTAINS(cmicro_last_errmsg(), "absent.key");
	assert_null(cert);
}

static void test_cert_load_empty_file_epem(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	tk_write(path_of("empty.pem"), "");
	TK_FAIL(cmicro_cert_load(path_of("empty.pem"), NULL, NULL, &cert), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "empty.pem is empty");

	tk_write(path_of("empty.key"), "\n\n");
	TK_FAIL(cmicro_cert_load(path_of("leaf.pem"), path_of("empty.key"), NULL, &cert),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "empty.key is empty");
	assert_null(cert);
}

static void test_cert_load_broken_block_epem(void **state)
{
	struct cmicro_cert *cert = NULL;
	char *pem = slurp("ca.pem");
	char *body = strchr(pem, '\n') + 1;

	(void)state;
	/* Characters outside the base64 alphabet in the first data line. */
	memcpy(body + 10, "!!!!", 4);
	tk_write(path_of("broken.pem"), pem);
	TK_FAIL(cmicro_cert_load(path_of("broken.pem"), NULL, NULL, &cert), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "broken.pem line 1");
	assert_null(cert);
	free(pem);
}

static void test_cert_load_damaged_chain_block_rejected(void **state)
{
	struct cmicro_cert *cert = NULL;
	char *pem = slurp("leaf.pem");
	char *last_end =
	    strstr(strstr(pem, "-----END CERTIFICATE-----") + 1, "-----END CERTIFICATE-----");

	(void)state;
	assert_non_null(last_end);
	*last_end = '\0';
	tk_write(path_of("cut.pem"), pem);
	TK_FAIL(cmicro_cert_load(path_of("cut.pem"), NULL, NULL, &cert), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "has no END CERTIFICATE line");
	TK_CONTAINS(cmicro_last_errmsg(), "cut.pem line");
	assert_null(cert);
	free(pem);
}

static char *to_crlf(const char *text)
{
	char *out = calloc(2, strlen(text) + 1);
	char *p = out;

	assert_non_null(out);
	for (; *text != '\0'; text++) {
		if (*text == '\n')
			*p++ = '\r';
		*p++ = *text;
	}
	return out;
}

static void test_cert_load_crlf_bundle_loads(void **state)
{
	struct cmicro_cert *cert = NULL;
	char *pem = slurp("leaf.pem");
	char *key = slurp("leaf.key");
	char *crlf_pem = to_crlf(pem);
	char *crlf_key = to_crlf(key);

	(void)state;
	tk_write(path_of("crlf.pem"), crlf_pem);
	tk_write(path_of("crlf.key"), crlf_key);
	TK_OK(cmicro_cert_load(path_of("crlf.pem"), path_of("crlf.key"), NULL, &cert));
	assert_int_equal(cmicro_cert_chain_len(cert), 2);
	assert_true(cmicro_cert_has_key(cert));

	cmicro_cert_free(cert);
	free(crlf_key);
	free(crlf_pem);
	free(key);
	free(pem);
}

static void test_cert_load_key_mismatch_names_both(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	TK_FAIL(cmicro_cert_load(path_of("leaf.pem"), path_of("ca.key"), NULL, &cert), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "ca.key does not match the certificate in");
	TK_CONTAINS(cmicro_last_errmsg(), "leaf.pem");
	TK_CONTAINS(cmicro_last_errmsg(), "CN=load.test");
	TK_CONTAINS(cmicro_last_errmsg(), "belongs to CA certificate 2");
	assert_null(cert);
}

static void test_cert_load_key_of_second_cert_hints_order(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	run_ok("cat ca.pem leaf.pem > reversed.pem");
	TK_FAIL(cmicro_cert_load(path_of("reversed.pem"), path_of("leaf.key"), NULL, &cert),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "matches certificate 2");
	TK_CONTAINS(cmicro_last_errmsg(), "put the leaf certificate first");
}

static void test_cert_load_encrypted_key_passphrase(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	run_ok("openssl pkey -in leaf.key -aes256 -passout pass:s3cret-phrase -out enc.key");
	TK_FAIL(cmicro_cert_load(path_of("leaf.pem"), path_of("enc.key"), NULL, &cert),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "enc.key is encrypted");
	TK_FAIL(cmicro_cert_load(path_of("leaf.pem"), path_of("enc.key"), "wrong", &cert),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "passphrase is wrong");
	assert_null(strstr(cmicro_last_errmsg(), "wrong\""));

	TK_OK(cmicro_cert_load(path_of("leaf.pem"), path_of("enc.key"), "s3cret-phrase", &cert));
	assert_true(cmicro_cert_has_key(cert));
	cmicro_cert_free(cert);
}

static void test_cert_load_swapped_files_rejected(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	TK_FAIL(cmicro_cert_load(path_of("leaf.pem"), path_of("leaf.pem"), NULL, &cert),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "contains a certificate, not a private key");
	TK_FAIL(cmicro_cert_load(path_of("leaf.key"), NULL, NULL, &cert), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "contains a private key, not a certificate");
	assert_null(cert);
}

static void test_cert_load_der_file_hints_convert(void **state)
{
	struct cmicro_cert *cert = NULL;

	(void)state;
	run_ok("openssl x509 -in ca.pem -outform DER -out ca.der");
	TK_FAIL(cmicro_cert_load(path_of("ca.der"), NULL, NULL, &cert), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "binary DER");
}

static void test_cert_load_pem_memory(void **state)
{
	static const char garbage[] = "\x01\x02not a certificate at all";
	struct cmicro_cert *cert = NULL;
	char *cert_pem = NULL;
	char *key_pem = NULL;

	(void)state;
	TK_OK(cmicro_cert_to_pem(g_leaf, CMICRO_CERT_SAVE_CHAIN, &cert_pem, &key_pem));
	TK_OK(cmicro_cert_load_pem(cert_pem, strlen(cert_pem), key_pem, strlen(key_pem), NULL,
	                           &cert));
	assert_int_equal(cmicro_cert_chain_len(cert), 2);
	assert_true(cmicro_cert_has_key(cert));
	cmicro_cert_free(cert);

	TK_FAIL(cmicro_cert_load_pem(garbage, sizeof(garbage) - 1, NULL, 0, NULL, &cert),
	        CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "certificate PEM");
	TK_FAIL(cmicro_cert_load_pem(NULL, 0, NULL, 0, NULL, &cert), CMICRO_EINVAL);
	TK_FAIL(cmicro_cert_load_pem(cert_pem, strlen(cert_pem), garbage, sizeof(garbage) - 1, NULL,
	                             &cert),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "key PEM");
	assert_null(cert);

	cmicro_free(cert_pem);
	cmicro_free(key_pem);
}

static void test_cert_without_key_cannot_write_key(void **state)
{
	struct cmicro_cert *cert = NULL;
	char *key_pem = NULL;

	(void)state;
	TK_OK(cmicro_cert_load(path_of("leaf.pem"), NULL, NULL, &cert));
	TK_FAIL(cmicro_cert_to_pem(cert, 0, NULL, &key_pem), CMICRO_EKEY);
	assert_null(key_pem);
	TK_FAIL(cmicro_cert_save(cert, path_of("nokey.pem"), path_of("nokey.key"), 0), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "loaded without one");
	cmicro_cert_free(cert);
}

static void test_cert_inspect_openssl_rsa_cert(void **state)
{
	struct cmicro_cert *cert = NULL;
	struct cmicro_cert_info *info = NULL;

	(void)state;
	run_ok("openssl req -x509 -newkey rsa:2048 -nodes -keyout ossl.key -out ossl.pem "
	       "-subj /O=Acme/CN=openssl.test -days 10 "
	       "-addext subjectAltName=DNS:openssl.test,IP:10.1.2.3,IP:fd00::5 "
	       "-addext extendedKeyUsage=clientAuth 2>/dev/null");
	TK_OK(cmicro_cert_load(path_of("ossl.pem"), path_of("ossl.key"), NULL, &cert));
	TK_OK(cmicro_cert_inspect(cert, 0, &info));

	assert_string_equal(info->subject, "CN=openssl.test,O=Acme");
	assert_true(info->self_signed);
	assert_true(info->is_ca);
	assert_int_equal(info->n_dns_names, 1);
	assert_string_equal(info->dns_names[0], "openssl.test");
	assert_int_equal(info->n_ip_addresses, 2);
	assert_string_equal(info->ip_addresses[0], "10.1.2.3");
	assert_string_equal(info->ip_addresses[1], "fd00::5");
	assert_string_equal(info->key_type, "RSA");
	assert_int_equal(info->key_bits, 2048);
	assert_null(info->curve);
	assert_string_equal(info->signature_algorithm, "sha256WithRSAEncryption");
	assert_true(info->client_auth);
	assert_false(info->server_auth);
	assert_true(info->days_until_expiry >= 9 && info->days_until_expiry <= 10);

	cmicro_cert_info_free(info);
	cmicro_cert_free(cert);
}

static void test_cert_inspect_openssl_ec_cert_without_eku(void **state)
{
	struct cmicro_cert *cert = NULL;
	struct cmicro_cert_info *info = NULL;

	(void)state;
	run_ok("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes "
	       "-keyout ossl384.key -out ossl384.pem -subj /CN=ec.test -days 3 "
	       "-addext basicConstraints=critical,CA:FALSE 2>/dev/null");
	TK_OK(cmicro_cert_load(path_of("ossl384.pem"), path_of("ossl384.key"), NULL, &cert));
	TK_OK(cmicro_cert_inspect(cert, 0, &info));

	assert_string_equal(info->key_type, "EC");
	assert_int_equal(info->key_bits, 384);
	assert_string_equal(info->curve, "P-384");
	assert_false(info->is_ca);
	assert_int_equal(info->n_dns_names, 0);
	/* No extendedKeyUsage extension: every usage is allowed. */
	assert_true(info->server_auth);
	assert_true(info->client_auth);

	cmicro_cert_info_free(info);
	cmicro_cert_free(cert);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cert_save_load_roundtrip),
	    cmocka_unit_test(test_cert_save_key_mode_0600),
	    cmocka_unit_test(test_cert_save_chain_flag_controls_bundle),
	    cmocka_unit_test(test_cert_save_missing_dir_fails),
	    cmocka_unit_test(test_cert_load_missing_file_enoent),
	    cmocka_unit_test(test_cert_load_empty_file_epem),
	    cmocka_unit_test(test_cert_load_broken_block_epem),
	    cmocka_unit_test(test_cert_load_damaged_chain_block_rejected),
	    cmocka_unit_test(test_cert_load_crlf_bundle_loads),
	    cmocka_unit_test(test_cert_load_key_mismatch_names_both),
	    cmocka_unit_test(test_cert_load_key_of_second_cert_hints_order),
	    cmocka_unit_test(test_cert_load_encrypted_key_passphrase),
	    cmocka_unit_test(test_cert_load_swapped_files_rejected),
	    cmocka_unit_test(test_cert_load_der_file_hints_convert),
	    cmocka_unit_test(test_cert_load_pem_memory),
	    cmocka_unit_test(test_cert_without_key_cannot_write_key),
	    cmocka_unit_test(test_cert_inspect_openssl_rsa_cert),
	    cmocka_unit_test(test_cert_inspect_openssl_ec_cert_without_eku),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
