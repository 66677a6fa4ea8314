/* PEM loading: bundles with damaged blocks, line endings, wrong file kinds,
 * encrypted keys, mismatched pairs and size limits. Fixtures are made at test
 * time by the openssl CLI and by cmicro's own generator. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "testkit.h"
#include "tls/tls_int.h"

struct fixture {
	char *dir;
	char path[512];
	/* Receives what fx_read reads: a local variable there would make gcc -O3
	 * warn that the result may point to it (-Wdangling-pointer). */
	char *read;
};

static char *fx_path(struct fixture *fx, const char *name)
{
	return tk_path(fx->path, sizeof(fx->path), fx->dir, name);
}

/* Runs an openssl CLI command in the fixture directory; fails the test
 * with the command's output when it fails. */
static void fx_openssl(struct fixture *fx, const char *args)
{
	char *out = NULL;
	int rc = tk_run(&out, 60, "cd %s && openssl %s", fx->dir, args);

	if (rc != 0)
		fail_msg("openssl %s failed (%d): %s", args, rc, out);
	free(out);
}

static void fx_selfsigned(struct fixture *fx, const char *name, const char *cn)
{
	char args[512];

	snprintf(args, sizeof(args),
	         "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
	         "-nodes -keyout %s.key -out %s.pem -subj /CN=%s -days 30",
	         name, name, cn);
	fx_openssl(fx, args);
}

static char *fx_read(struct fixture *fx, const char *name, size_t *len)
{
	fx->read = NULL;
	TK_OK(cmi_read_file(fx_path(fx, name), 1 << 20, &fx->read, len));
	return fx->read;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	fx->dir = tk_tmpdir();
	fx_selfsigned(fx, "a", "alpha");
	fx_selfsigned(fx, "b", "bravo");
	fx_selfsigned(fx, "c", "charlie");
	fx_openssl(fx, "pkey -in a.key -out a-enc.key -aes256 -passout pass:s3cret");
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	tk_tmpdir_remove(fx->dir);
	free(fx);
	return 0;
}

/* Counts the 1-based line of the n-th (1-based) BEGIN line of text. */
static int nth_begin_line(const char *text, int n)
{
	int line = 1;

	for (const char *p = text; *p != '\0'; p++) {
		if ((p == text || p[-1] == '\n') && strncmp(p, "-----BEGIN", 10) == 0 && --n == 0)
			return line;
		if (*p == '\n')
			line++;
	}
	return -1;
}

/* Writes a.pem + b.pem + c.pem with the base64 of b's second line
 * replaced by characters outside the base64 alphabet. */
static char *write_damaged_bundle(struct fixture *fx)
{
	size_t la, lb, lc;
	char *a = fx_read(fx, "a.pem", &la);
	char *b = fx_read(fx, "b.pem", &lb);
	char *c = fx_read(fx, "c.pem", &lc);
	char *bundle = calloc(1, la + lb + lc + 1);
	char *second;

	second = strchr(strchr(b, '\n') + 1, '\n') + 1;
	memset(second, '!', 20);
	memcpy(bundle, a, la);
	memcpy(bundle + la, b, lb);
	memcpy(bundle + la + lb, c, lc);
	tk_write(fx_path(fx, "bundle.pem"), bundle);
	free(a);
	free(b);
	free(c);
	return bundle;
}

static void test_pem_damaged_middle_block_skipped(void **state)
{
	struct fixture *fx = *state;
	char *bundle = write_damaged_bundle(fx);
	STACK_OF(X509) *certs = NULL;
	char *errors = NULL;
	char expected[128];

	TK_OK(cmi_pem_read_cert_file(fx_path(fx, "bundle.pem"), &certs, &errors));
	assert_int_equal(sk_X509_num(certs), 2);
	snprintf(expected, sizeof(expected),
	         "bundle.pem line %d: BEGIN CERTIFICATE block is not "
	         "valid base64 / DER",
	         nth_begin_line(bundle, 2));
	TK_CONTAINS(errors, expected);
	sk_X509_pop_free(certs, X509_free);
	free(errors);
	free(bundle);
}

static void test_pem_crlf_bundle_loads(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *a = fx_read(fx, "a.pem", &len);
	char *crlf = calloc(1, 2 * len + 1);
	STACK_OF(X509) *certs = NULL;
	char *errors = NULL;
	size_t j = 0;

	for (size_t i = 0; i < len; i++) {
		if (a[i] == '\n')
			crlf[j++] = '\r';
		crlf[j++] = a[i];
	}
	TK_OK(cmi_pem_read_certs(crlf, j, "crlf.pem", &certs, &errors));
	assert_int_equal(sk_X509_num(certs), 1);
	assert_null(errors);
	sk_X509_pop_free(certs, X509_free);
	free(crlf);
	free(a);
}

static void test_pem_empty_file_rejected(void **state)
{
	struct fixture *fx = *state;
	STACK_OF(X509) *certs = NULL;

	tk_write(fx_path(fx, "empty.pem"), "");
	TK_FAIL(cmi_pem_read_cert_file(fx->path, &certs, NULL), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "empty.pem is empty");
	assert_null(certs);
}

static void test_pem_missing_file_not_found(void **state)
{
	struct fixture *fx = *state;
	STACK_OF(X509) *certs = NULL;

	TK_FAIL(cmi_pem_read_cert_file(fx_path(fx, "nope.pem"), &certs, NULL), CMICRO_ENOENT);
	TK_CONTAINS(cmicro_last_errmsg(), "nope.pem: file not found");
}

static void test_pem_key_as_certificate_rejected(void **state)
{
	struct fixture *fx = *state;
	STACK_OF(X509) *certs = NULL;

	TK_FAIL(cmi_pem_read_cert_file(fx_path(fx, "a.key"), &certs, NULL), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "a.key contains a private key, not a certificate");
}

static void test_pem_certificate_as_key_rejected(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *pem = fx_read(fx, "a.pem", &len);
	EVP_PKEY *key = NULL;

	TK_FAIL(cmi_pem_read_key(pem, len, "a.pem", NULL, &key), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "a.pem contains a certificate, not a private key");
	assert_null(key);
	free(pem);
}

static void test_pem_encrypted_key_needs_passphrase(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *pem = fx_read(fx, "a-enc.key", &len);
	EVP_PKEY *key = NULL;

	TK_FAIL(cmi_pem_read_key(pem, len, "a-enc.key", NULL, &key), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "key a-enc.key is encrypted and no passphrase was given");
	TK_CONTAINS(cmicro_last_errmsg(), "openssl pkey -in a-enc.key -out a-enc.key.plain");
	assert_null(key);
	free(pem);
}

static void test_pem_encrypted_key_with_passphrase_loads(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *pem = fx_read(fx, "a-enc.key", &len);
	EVP_PKEY *key = NULL;

	TK_OK(cmi_pem_read_key(pem, len, "a-enc.key", "s3cret", &key));
	assert_non_null(key);
	assert_int_equal(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
	EVP_PKEY_free(key);
	free(pem);
}

static void test_pem_wrong_passphrase_rejected(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *pem = fx_read(fx, "a-enc.key", &len);
	EVP_PKEY *key = NULL;

	TK_FAIL(cmi_pem_read_key(pem, len, "a-enc.key", "wrong", &key), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "passphrase is wrong");
	assert_null(key);
	free(pem);
}

/* Returns how often needle occurs in haystack. */
static int count_occurrences(const char *haystack, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(haystack, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void test_pem_key_errors_list_reason_once(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *pem = fx_read(fx, "a-enc.key", &len);
	EVP_PKEY *key = NULL;

	TK_FAIL(cmi_pem_read_key(pem, len, "a-enc.key", NULL, &key), CMICRO_EKEY);
	assert_int_equal(count_occurrences(cmicro_last_errmsg(), "interrupted or cancelled"), 0);
	assert_int_equal(count_occurrences(cmicro_last_errmsg(), "passphrase argument"), 0);

	TK_FAIL(cmi_pem_read_key(pem, len, "a-enc.key", "wrong", &key), CMICRO_EKEY);
	assert_in_range(count_occurrences(cmicro_last_errmsg(), "bad decrypt"), 0, 1);
	assert_in_range(count_occurrences(cmicro_last_errmsg(), "unsupported"), 0, 1);
	assert_null(key);
	free(pem);
}

static void test_pem_key_cert_mismatch_rejected(void **state)
{
	struct fixture *fx = *state;
	struct cmicro_tls_config *cfg = NULL;
	char cert[512], key[512];

	TK_OK(cmicro_tls_config_new(&cfg));
	tk_path(cert, sizeof(cert), fx->dir, "a.pem");
	tk_path(key, sizeof(key), fx->dir, "b.key");
	TK_FAIL(cmicro_tls_config_set_cert_files(cfg, cert, key, NULL), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "b.key does not match certificate");
	TK_CONTAINS(cmicro_last_errmsg(), "CN=alpha");
	assert_false(cmicro_tls_config_has_cert(cfg));
	tk_path(key, sizeof(key), fx->dir, "a.key");
	TK_OK(cmicro_tls_config_set_cert_files(cfg, cert, key, NULL));
	assert_true(cmicro_tls_config_has_cert(cfg));
	assert_string_equal(cmicro_tls_config_get_cert_file(cfg), cert);
	cmicro_tls_config_free(cfg);
}

static void test_pem_huge_file_rejected(void **state)
{
	struct fixture *fx = *state;
	STACK_OF(X509) *certs = NULL;
	int fd = open(fx_path(fx, "huge.pem"), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 17 * 1024 * 1024), 0);
	close(fd);
	TK_FAIL(cmi_pem_read_cert_file(fx->path, &certs, NULL), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "huge.pem is larger than the 16777216-byte limit");
}

static void test_pem_missing_end_line_reported(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	char *a = fx_read(fx, "a.pem", &len);
	STACK_OF(X509) *certs = NULL;
	char *errors = NULL;
	char *end = strstr(a, "-----END");

	*end = '\0';
	TK_FAIL(cmi_pem_read_certs(a, strlen(a), "cut.pem", &certs, &errors), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "cut.pem line 1: BEGIN CERTIFICATE block has no END "
	                                  "CERTIFICATE line");
	assert_null(certs);
	free(a);
}

static void test_pem_der_file_gets_convert_hint(void **state)
{
	struct fixture *fx = *state;
	STACK_OF(X509) *certs = NULL;

	fx_openssl(fx, "x509 -in a.pem -outform DER -out a.der");
	TK_FAIL(cmi_pem_read_cert_file(fx_path(fx, "a.der"), &certs, NULL), CMICRO_EPEM);
	TK_CONTAINS(cmicro_last_errmsg(), "looks like binary DER");
	TK_CONTAINS(cmicro_last_errmsg(), "openssl x509 -inform DER");
}

static void test_pem_library_generated_bundle_loads(void **state)
{
	static const char *const hosts[] = {"localhost", "127.0.0.1"};
	struct cmicro_cert *cert = NULL;
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	char *cert_pem = NULL;
	char *key_pem = NULL;

	(void)state;
	TK_OK(cmicro_cert_selfsigned(hosts, 2, &cert));
	TK_OK(cmicro_cert_to_pem(cert, 0, &cert_pem, &key_pem));
	TK_OK(cmi_pem_read_certs(cert_pem, strlen(cert_pem), "generated", &certs, NULL));
	assert_int_equal(sk_X509_num(certs), 1);
	assert_int_equal(X509_cmp(sk_X509_value(certs, 0), cert->x509), 0);
	TK_OK(cmi_pem_read_key(key_pem, strlen(key_pem), "generated key", NULL, &key));
	assert_int_equal(EVP_PKEY_eq(key, cert->key), 1);
	EVP_PKEY_free(key);
	sk_X509_pop_free(certs, X509_free);
	cmicro_free(cert_pem);
	cmicro_free(key_pem);
	cmicro_cert_free(cert);
}

static void test_pem_ca_file_damage_logged(void **state)
{
	struct fixture *fx = *state;
	struct cmicro_tls_config *cfg = NULL;
	char *bundle = write_damaged_bundle(fx);

	TK_OK(cmicro_tls_config_new(&cfg));
	tk_log_capture_start();
	TK_OK(cmicro_tls_config_add_ca_file(cfg, fx_path(fx, "bundle.pem")));
	assert_int_equal(tk_log_count("TLS-CA-DAMAGED"), 1);
	TK_CONTAINS(tk_log_captured(), "2 certificates loaded");
	tk_log_capture_stop();
	assert_int_equal(cmicro_tls_config_ca_count(cfg), 1);
	assert_string_equal(cmicro_tls_config_ca_path(cfg, 0), fx->path);
	cmicro_tls_config_free(cfg);
	free(bundle);
}

static void test_fileio_write_replaces_atomically(void **state)
{
	struct fixture *fx = *state;
	struct stat st;
	char *data = NULL;
	size_t len = 0;

	TK_OK(cmi_write_file(fx_path(fx, "out.txt"), "first", 5, 0600));
	TK_OK(cmi_write_file(fx->path, "second", 6, 0644));
	TK_OK(cmi_read_file(fx->path, 100, &data, &len));
	assert_int_equal(len, 6);
	assert_string_equal(data, "second");
	free(data);
	assert_int_equal(stat(fx->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	TK_FAIL(cmi_write_file(fx_path(fx, "no-such-dir/out.txt"), "x", 1, 0600), CMICRO_EIO);
	TK_CONTAINS(cmicro_last_errmsg(), "no-such-dir/out.txt");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pem_damaged_middle_block_skipped),
	    cmocka_unit_test(test_pem_crlf_bundle_loads),
	    cmocka_unit_test(test_pem_empty_file_rejected),
	    cmocka_unit_test(test_pem_missing_file_not_found),
	    cmocka_unit_test(test_pem_key_as_certificate_rejected),
	    cmocka_unit_test(test_pem_certificate_as_key_rejected),
	    cmocka_unit_test(test_pem_encrypted_key_needs_passphrase),
	    cmocka_unit_test(test_pem_encrypted_key_with_passphrase_loads),
	    cmocka_unit_test(test_pem_key_errors_list_reason_once),
	    cmocka_unit_test(test_pem_wrong_passphrase_rejected),
	    cmocka_unit_test(test_pem_key_cert_mismatch_rejected),
	    cmocka_unit_test(test_pem_huge_file_rejected),
	    cmocka_unit_test(test_pem_missing_end_line_reported),
	    cmocka_unit_test(test_pem_der_file_gets_convert_hint),
	    cmocka_unit_test(test_pem_library_generated_bundle_loads),
	    cmocka_unit_test(test_pem_ca_file_damage_logged),
	    cmocka_unit_test(test_fileio_write_replaces_atomically),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
