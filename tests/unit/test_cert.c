/*
 * Certificate generation and inspection. Every generated certificate is
 * checked field by field with cmicro_cert_inspect and again with the openssl
 * command-line tool, so the two implementations check each other.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <openssl/evp.h>

#include "testkit.h"
#include "tls/tls_int.h"

static char *g_dir;

static int group_setup(void **state)
{
	(void)state;
	g_dir = tk_tmpdir();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tk_tmpdir_remove(g_dir);
	return 0;
}

/* Writes name.pem (with chain for CMICRO_CERT_SAVE_CHAIN) and name.key into g_dir. */
static void save_pem(const struct cmicro_cert *cert, const char *name, unsigned flags)
{
	char path[512];
	char file[128];
	char *cert_pem = NULL;
	char *key_pem = NULL;

	TK_OK(cmicro_cert_to_pem(cert, flags, &cert_pem, &key_pem));
	snprintf(file, sizeof(file), "%s.pem", name);
	tk_write(tk_path(path, sizeof(path), g_dir, file), cert_pem);
	snprintf(file, sizeof(file), "%s.key", name);
	tk_write(tk_path(path, sizeof(path), g_dir, file), key_pem);
	cmicro_free(cert_pem);
	cmicro_free(key_pem);
}

/* Runs an openssl command in g_dir; returns its output (caller frees) and
 * stores its exit status in *status. */
static char *openssl_run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *openssl_run(int *status, const char *fmt, ...)
{
	char args[4096];
	char *out = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	*status = tk_run(&out, 60, "cd %s && openssl %s", g_dir, args);
	return out;
}

/* As openssl_run, failing the test unless the command succeeds. */
static char *openssl_ok(const char *args)
{
	int status;
	char *out = openssl_run(&status, "%s", args);

	if (status != 0)
		fail_msg("openssl %s exited %d: %s", args, status, out);
	return out;
}

static struct cmicro_cert *make_ca(enum cmicro_key_type type)
{
	struct cmicro_cert_opts opts;
	struct cmicro_cert *ca = NULL;

	cmicro_cert_opts_init(&opts);
	opts.key_type = type;
	TK_OK(cmicro_cert_ca_new(&opts, &ca));
	return ca;
}

static struct cmicro_cert *issue_leaf(const struct cmicro_cert *ca, const char *host,
                                      enum cmicro_cert_usage usage)
{
	const char *hosts[] = {host};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *leaf = NULL;

	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.usage = usage;
	TK_OK(cmicro_cert_issue(ca, &opts, &leaf));
	return leaf;
}

static struct cmicro_cert_info *inspect(const struct cmicro_cert *cert, size_t depth)
{
	struct cmicro_cert_info *info = NULL;

	TK_OK(cmicro_cert_inspect(cert, depth, &info));
	return info;
}

static void test_cert_selfsigned_fields_match_gomicro(void **state)
{
	const char *hosts[] = {"localhost", "127.0.0.1", "::1", "svc.example.com"};
	struct cmicro_cert *cert = NULL;
	struct cmicro_cert_info *info;
	time_t before = time(NULL);

	(void)state;
	TK_OK(cmicro_cert_selfsigned(hosts, 4, &cert));
	info = inspect(cert, 0);

	assert_string_equal(info->subject, "O=Micro");
	assert_string_equal(info->issuer, "O=Micro");
	assert_int_equal(info->n_dns_names, 2);
	assert_string_equal(info->dns_names[0], "localhost");
	assert_string_equal(info->dns_names[1], "svc.example.com");
	assert_int_equal(info->n_ip_addresses, 2);
	assert_string_equal(info->ip_addresses[0], "127.0.0.1");
	assert_string_equal(info->ip_addresses[1], "::1");
	assert_string_equal(info->key_type, "EC");
	assert_int_equal(info->key_bits, 256);
	assert_string_equal(info->curve, "P-256");
	assert_string_equal(info->signature_algorithm, "ecdsa-with-SHA256");
	assert_true(info->is_ca);
	assert_true(info->self_signed);
	assert_true(info->server_auth);
	assert_false(info->client_auth);
	assert_true(info->not_before >= before && info->not_before <= time(NULL));
	assert_int_equal(info->not_after - info->not_before, 365L * 86400);
	assert_true(info->days_until_expiry >= 364 && info->days_until_expiry <= 365);
	assert_true(cmicro_cert_has_key(cert));
	assert_int_equal(cmicro_cert_chain_len(cert), 1);

	cmicro_cert_info_free(info);
	cmicro_cert_free(cert);
}

static void test_cert_selfsigned_openssl_extensions_agree(void **state)
{
	const char *hosts[] = {"localhost", "127.0.0.1", "::1"};
	struct cmicro_cert *cert = NULL;
	char *out;

	(void)state;
	TK_OK(cmicro_cert_selfsigned(hosts, 3, &cert));
	save_pem(cert, "self", 0);

	out = openssl_ok("x509 -in self.pem -noout -ext "
	                 "subjectAltName,keyUsage,extendedKeyUsage,basicConstraints");
	TK_CONTAINS(out, "CA:TRUE");
	TK_CONTAINS(out, "Digital Signature, Key Encipherment, Certificate Sign");
	TK_CONTAINS(out, "TLS Web Server Authentication");
	TK_CONTAINS(out, "DNS:localhost");
	TK_CONTAINS(out, "IP Address:127.0.0.1");
	TK_CONTAINS(out, "IP Address:0:0:0:0:0:0:0:1");
	assert_null(strstr(out, "Client Authentication"));
	free(out);

	out = openssl_ok("x509 -in self.pem -noout -subject -text");
	TK_CONTAINS(out, "subject=O = Micro");
	TK_CONTAINS(out, "ASN1 OID: prime256v1");
	TK_CONTAINS(out, "Subject Key Identifier");
	free(out);

	out = openssl_ok("verify -CAfile self.pem self.pem");
	TK_CONTAINS(out, "self.pem: OK");
	free(out);
	cmicro_cert_free(cert);
}

static void test_cert_selfsigned_serials_random(void **state)
{
	const char *hosts[] = {"localhost"};
	struct cmicro_cert *a = NULL;
	struct cmicro_cert *b = NULL;
	struct cmicro_cert_info *ia;
	struct cmicro_cert_info *ib;

	(void)state;
	TK_OK(cmicro_cert_selfsigned(hosts, 1, &a));
	TK_OK(cmicro_cert_selfsigned(hosts, 1, &b));
	ia = inspect(a, 0);
	ib = inspect(b, 0);

	assert_string_not_equal(ia->serial, ib->serial);
	assert_true(strlen(ia->serial) <= 32);
	assert_string_not_equal(ia->sha256_fingerprint, ib->sha256_fingerprint);

	cmicro_cert_info_free(ia);
	cmicro_cert_info_free(ib);
	cmicro_cert_free(a);
	cmicro_cert_free(b);
}

static void test_cert_ca_defaults_inspected(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert_info *info = inspect(ca, 0);
	char *out;

	(void)state;
	assert_string_equal(info->subject, "CN=cmicro CA,O=Micro");
	assert_string_equal(info->issuer, info->subject);
	assert_true(info->is_ca);
	assert_true(info->self_signed);
	assert_int_equal(info->n_dns_names, 0);
	assert_int_equal(info->not_after - info->not_before, 3650L * 86400);
	assert_true(info->not_before <= time(NULL) - 59);

	save_pem(ca, "ca_defaults", 0);
	out = openssl_ok("x509 -in ca_defaults.pem -noout -ext keyUsage,basicConstraints");
	TK_CONTAINS(out, "critical");
	TK_CONTAINS(out, "CA:TRUE");
	TK_CONTAINS(out, "Certificate Sign, CRL Sign");
	assert_null(strstr(out, "pathlen"));
	free(out);

	cmicro_cert_info_free(info);
	cmicro_cert_free(ca);
}

static void test_cert_issue_server_leaf_verifies(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "node1.test", CMICRO_CERT_USAGE_SERVER);
	struct cmicro_cert_info *ca_info = inspect(ca, 0);
	struct cmicro_cert_info *info = inspect(leaf, 0);
	char *out;

	(void)state;
	assert_string_equal(info->subject, "CN=node1.test,O=Micro");
	assert_string_equal(info->issuer, ca_info->subject);
	assert_false(info->is_ca);
	assert_false(info->self_signed);
	assert_true(info->server_auth);
	assert_false(info->client_auth);
	assert_int_equal(info->not_after - info->not_before, 365L * 86400);
	assert_int_equal(cmicro_cert_chain_len(leaf), 2);

	save_pem(ca, "ca1", 0);
	save_pem(leaf, "leaf1", 0);
	out = openssl_ok("verify -CAfile ca1.pem -purpose sslserver leaf1.pem");
	TK_CONTAINS(out, "leaf1.pem: OK");
	free(out);

	out = openssl_ok("x509 -in leaf1.pem -noout -ext keyUsage,basicConstraints,"
	                 "extendedKeyUsage,subjectAltName");
	TK_CONTAINS(out, "CA:FALSE");
	TK_CONTAINS(out, "Digital Signature");
	assert_null(strstr(out, "Key Encipherment"));
	TK_CONTAINS(out, "TLS Web Server Authentication");
	TK_CONTAINS(out, "DNS:node1.test");
	free(out);

	cmicro_cert_info_free(ca_info);
	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_client_usage_only_client(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "client.test", CMICRO_CERT_USAGE_CLIENT);
	struct cmicro_cert_info *info = inspect(leaf, 0);
	char *out;
	int status;

	(void)state;
	assert_true(info->client_auth);
	assert_false(info->server_auth);

	save_pem(ca, "ca2", 0);
	save_pem(leaf, "client2", 0);
	out = openssl_ok("verify -CAfile ca2.pem -purpose sslclient client2.pem");
	TK_CONTAINS(out, "client2.pem: OK");
	free(out);
	out = openssl_run(&status, "verify -CAfile ca2.pem -purpose sslserver client2.pem");
	assert_int_not_equal(status, 0);
	TK_CONTAINS(out, "unsuitable certificate purpose");
	free(out);

	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_both_usages_set(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "10.0.0.7", CMICRO_CERT_USAGE_BOTH);
	struct cmicro_cert_info *info = inspect(leaf, 0);
	char *out;

	(void)state;
	assert_true(info->client_auth);
	assert_true(info->server_auth);
	assert_int_equal(info->n_ip_addresses, 1);
	assert_string_equal(info->ip_addresses[0], "10.0.0.7");
	assert_int_equal(info->n_dns_names, 0);

	save_pem(leaf, "both3", 0);
	out = openssl_ok("x509 -in both3.pem -noout -ext extendedKeyUsage,subjectAltName");
	TK_CONTAINS(out, "TLS Web Server Authentication, TLS Web Client Authentication");
	TK_CONTAINS(out, "IP Address:10.0.0.7");
	free(out);

	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_intermediate_chain_verifies(void **state)
{
	struct cmicro_cert *root = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *inter = NULL;
	struct cmicro_cert *leaf;
	struct cmicro_cert_opts opts;
	struct cmicro_cert_info *info;
	char *out;

	(void)state;
	cmicro_cert_opts_init(&opts);
	opts.is_ca = true;
	opts.path_len = 0;
	TK_OK(cmicro_cert_issue(root, &opts, &inter));
	leaf = issue_leaf(inter, "deep.test", CMICRO_CERT_USAGE_SERVER);

	info = inspect(inter, 0);
	assert_true(info->is_ca);
	assert_false(info->self_signed);
	assert_string_equal(info->subject, "CN=cmicro intermediate CA,O=Micro");
	assert_int_equal(info->not_after - info->not_before, 3650L * 86400);
	cmicro_cert_info_free(info);

	assert_int_equal(cmicro_cert_chain_len(leaf), 3);
	info = inspect(leaf, 2);
	assert_string_equal(info->subject, "CN=cmicro CA,O=Micro");
	cmicro_cert_info_free(info);

	save_pem(root, "root4", 0);
	save_pem(inter, "inter4", 0);
	save_pem(leaf, "leaf4", 0);
	save_pem(leaf, "leaf4chain", CMICRO_CERT_SAVE_CHAIN);
	out = openssl_ok("verify -CAfile root4.pem -untrusted inter4.pem leaf4.pem");
	TK_CONTAINS(out, "leaf4.pem: OK");
	free(out);
	out = openssl_ok("verify -CAfile root4.pem -untrusted leaf4chain.pem leaf4chain.pem");
	TK_CONTAINS(out, "leaf4chain.pem: OK");
	free(out);
	out = openssl_ok("x509 -in inter4.pem -noout -ext basicConstraints");
	TK_CONTAINS(out, "CA:TRUE, pathlen:0");
	free(out);

	cmicro_cert_free(leaf);
	cmicro_cert_free(inter);
	cmicro_cert_free(root);
}

static void test_cert_issue_key_types_verify(void **state)
{
	static const struct {
		enum cmicro_key_type type;
		const char *key_type;
		int bits;
		const char *curve;
		const char *sigalg; /* of a leaf signed by a CA of the same type */
		const char *openssl_ku;
	} cases[] = {
	    {CMICRO_KEY_EC_P256, "EC", 256, "P-256", "ecdsa-with-SHA256", "Digital Signature\n"},
	    {CMICRO_KEY_EC_P384, "EC", 384, "P-384", "ecdsa-with-SHA256", "Digital Signature\n"},
	    {CMICRO_KEY_RSA, "RSA", 2048, NULL, "sha256WithRSAEncryption",
	     "Digital Signature, Key Encipherment"},
	    {CMICRO_KEY_ED25519, "ED25519", 256, NULL, "ED25519", "Digital Signature\n"},
	};

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		const char *hosts[] = {"keys.test"};
		struct cmicro_cert *ca = make_ca(cases[i].type);
		struct cmicro_cert *leaf = NULL;
		struct cmicro_cert_opts opts;
		struct cmicro_cert_info *info;
		char args[256];
		char *out;

		cmicro_cert_opts_init(&opts);
		opts.hosts = hosts;
		opts.n_hosts = 1;
		opts.key_type = cases[i].type;
		TK_OK(cmicro_cert_issue(ca, &opts, &leaf));
		info = inspect(leaf, 0);
		assert_string_equal(info->key_type, cases[i].key_type);
		assert_int_equal(info->key_bits, cases[i].bits);
		if (cases[i].curve != NULL)
			assert_string_equal(info->curve, cases[i].curve);
		else
			assert_null(info->curve);
		assert_string_equal(info->signature_algorithm, cases[i].sigalg);

		save_pem(ca, "ca5", 0);
		save_pem(leaf, "leaf5", 0);
		out = openssl_ok("verify -CAfile ca5.pem leaf5.pem");
		TK_CONTAINS(out, "leaf5.pem: OK");
		free(out);
		out = openssl_ok("x509 -in leaf5.pem -noout -ext keyUsage");
		TK_CONTAINS(out, cases[i].openssl_ku);
		free(out);
		snprintf(args, sizeof(args), "pkey -in leaf5.key -noout -text");
		out = openssl_ok(args);
		TK_CONTAINS(out, cases[i].type == CMICRO_KEY_ED25519 ? "ED25519 Private-Key"
		                                                     : "Private-Key");
		free(out);

		cmicro_cert_info_free(info);
		cmicro_cert_free(leaf);
		cmicro_cert_free(ca);
	}
}

static struct cmicro_cert *issue_window(const struct cmicro_cert *ca, time_t from, time_t to)
{
	const char *hosts[] = {"window.test"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *leaf = NULL;

	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.not_before = from;
	opts.not_after = to;
	TK_OK(cmicro_cert_issue(ca, &opts, &leaf));
	return leaf;
}

static void test_cert_issue_expired_rejected_by_openssl(void **state)
{
	time_t now = time(NULL);
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_window(ca, now - 10 * 86400, now - 2 * 86400 - 3600);
	struct cmicro_cert_info *info = inspect(leaf, 0);
	char *out;
	int status;

	(void)state;
	assert_int_equal(info->not_before, now - 10 * 86400);
	assert_int_equal(info->not_after, now - 2 * 86400 - 3600);
	assert_int_equal(info->days_until_expiry, -3);

	save_pem(ca, "ca6", 0);
	save_pem(leaf, "expired6", 0);
	out = openssl_run(&status, "verify -CAfile ca6.pem expired6.pem");
	assert_int_not_equal(status, 0);
	TK_CONTAINS(out, "certificate has expired");
	free(out);

	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_future_rejected_by_openssl(void **state)
{
	time_t now = time(NULL);
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_window(ca, now + 5 * 86400, now + 30 * 86400);
	struct cmicro_cert_info *info = inspect(leaf, 0);
	char *out;
	int status;

	(void)state;
	assert_true(info->days_until_expiry >= 29 && info->days_until_expiry <= 30);
	save_pem(ca, "ca7", 0);
	save_pem(leaf, "future7", 0);
	out = openssl_run(&status, "verify -CAfile ca7.pem future7.pem");
	assert_int_not_equal(status, 0);
	TK_CONTAINS(out, "certificate is not yet valid");
	free(out);

	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_sha1_digest_used(void **state)
{
	const char *hosts[] = {"old.test"};
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_RSA);
	struct cmicro_cert *leaf = NULL;
	struct cmicro_cert_opts opts;
	struct cmicro_cert_info *info;
	char *out;

	(void)state;
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.digest = "sha1";
	TK_OK(cmicro_cert_issue(ca, &opts, &leaf));
	info = inspect(leaf, 0);
	assert_string_equal(info->signature_algorithm, "sha1WithRSAEncryption");

	save_pem(leaf, "sha1_8", 0);
	out = openssl_ok("x509 -in sha1_8.pem -noout -text");
	TK_CONTAINS(out, "Signature Algorithm: sha1WithRSAEncryption");
	free(out);

	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_aia_and_key_ids_present(void **state)
{
	const char *hosts[] = {"aia.test"};
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = NULL;
	struct cmicro_cert_opts opts;
	char *ca_out;
	char *out;
	char *skid;

	(void)state;
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.ca_issuers_url = "http://127.0.0.1:8080/ca.pem";
	TK_OK(cmicro_cert_issue(ca, &opts, &leaf));

	save_pem(ca, "ca9", 0);
	save_pem(leaf, "aia9", 0);
	out = openssl_ok("x509 -in aia9.pem -noout -text");
	TK_CONTAINS(out, "CA Issuers - URI:http://127.0.0.1:8080/ca.pem");
	ca_out = openssl_ok("x509 -in ca9.pem -noout -ext subjectKeyIdentifier");
	/* The value is on the line after the extension name. */
	skid = strchr(ca_out, '\n');
	assert_non_null(skid);
	skid += strspn(skid, " \n");
	skid[strcspn(skid, "\n")] = '\0';
	assert_true(strlen(skid) > 20);
	TK_CONTAINS(out, skid);
	TK_CONTAINS(out, "X509v3 Authority Key Identifier");

	free(ca_out);
	free(out);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_inspect_matches_openssl_fields(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "fields.test", CMICRO_CERT_USAGE_SERVER);
	struct cmicro_cert_info *info = inspect(leaf, 0);
	char want[256];
	char date[64];
	char *out;

	(void)state;
	save_pem(leaf, "fields10", 0);
	out = openssl_ok("x509 -in fields10.pem -noout -serial -fingerprint -sha256 -enddate "
	                 "-startdate -dateopt iso_8601");

	snprintf(want, sizeof(want), "serial=%s\n", info->serial);
	TK_CONTAINS(out, want);
	snprintf(want, sizeof(want), "Fingerprint=%s\n", info->sha256_fingerprint);
	TK_CONTAINS(out, want);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%SZ", gmtime(&info->not_after));
	snprintf(want, sizeof(want), "notAfter=%s", date);
	TK_CONTAINS(out, want);
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%SZ", gmtime(&info->not_before));
	snprintf(want, sizeof(want), "notBefore=%s", date);
	TK_CONTAINS(out, want);

	free(out);
	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_to_pem_key_matches_cert(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "pem.test", CMICRO_CERT_USAGE_SERVER);
	char *cert_pem = NULL;
	char *key_pem = NULL;
	char *from_cert;
	char *from_key;

	(void)state;
	TK_OK(cmicro_cert_to_pem(leaf, CMICRO_CERT_SAVE_CHAIN, &cert_pem, &key_pem));
	TK_CONTAINS(key_pem, "-----BEGIN PRIVATE KEY-----");
	assert_non_null(
	    strstr(strstr(cert_pem, "-----END CERTIFICATE-----"), "-----BEGIN CERTIFICATE-----"));
	cmicro_free(cert_pem);
	cmicro_free(key_pem);

	TK_OK(cmicro_cert_to_pem(leaf, 0, &cert_pem, NULL));
	assert_null(strstr(strstr(cert_pem, "-----END CERTIFICATE-----"), "BEGIN"));
	cmicro_free(cert_pem);

	save_pem(leaf, "pem11", 0);
	from_cert = openssl_ok("x509 -in pem11.pem -noout -pubkey");
	from_key = openssl_ok("pkey -in pem11.key -pubout");
	assert_string_equal(from_cert, from_key);

	free(from_cert);
	free(from_key);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_opts_invalid_rejected(void **state)
{
	static const char long_cn[] =
	    "a-common-name-that-is-longer-than-the-64-characters-rfc5280-allows";
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	static const struct {
		const char *host; /* NULL: no host */
		int days;
		long not_before_offset; /* seconds from now; 0: default */
		long not_after_offset;
		const char *digest;
		int rsa_bits;
		int key_type;
		int usage;
		const char *url;
		const char *cn;
		const char *expect; /* in the error message */
	} cases[] = {
	    {NULL, 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "empty host list"},
	    {"bad host", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"bad host\""},
	    {"-lead.test", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"-lead.test\""},
	    {"a..b", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"a..b\""},
	    {"256.1.1.1", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"256.1.1.1\""},
	    {"*.com", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"*.com\""},
	    {"a.*.test", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"a.*.test\""},
	    {"[::1]", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "IPv6 without brackets"},
	    {"host.test.", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "trailing dot"},
	    {"", 0, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid host \"\""},
	    {"ok.test", -1, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid validity of -1 days"},
	    {"ok.test", 40000, 0, 0, NULL, 0, 0, 1, NULL, NULL, "invalid validity of 40000"},
	    {"ok.test", 0, 3600, 60, NULL, 0, 0, 1, NULL, NULL, "is not later than not_before"},
	    {"ok.test", 0, 0, 0, "md17", 0, 0, 1, NULL, NULL, "unknown signature digest \"md17\""},
	    {"ok.test", 0, 0, 0, NULL, 512, CMICRO_KEY_RSA, 1, NULL, NULL, "RSA key size 512"},
	    {"ok.test", 0, 0, 0, NULL, 0, 99, 1, NULL, NULL, "invalid key type 99"},
	    {"ok.test", 0, 0, 0, NULL, 0, 0, 0, NULL, NULL, "invalid usage 0"},
	    {"ok.test", 0, 0, 0, NULL, 0, 0, 7, NULL, NULL, "invalid usage 7"},
	    {"ok.test", 0, 0, 0, NULL, 0, 0, 1, "ftp://x/ca", NULL, "invalid caIssuers URL"},
	    {"ok.test", 0, 0, 0, NULL, 0, 0, 1, "http://a b/", NULL, "invalid caIssuers URL"},
	    {"ok.test", 0, 0, 0, NULL, 0, 0, 1, NULL, "", "invalid common name \"\""},
	    {"ok.test", 0, 0, 0, NULL, 0, 0, 1, NULL, long_cn, "give 1 to 64 characters"},
	};
	time_t now = time(NULL);

	(void)state;
	for (size_t i = 0; i < CMI_ARRAY_LEN(cases); i++) {
		const char *hosts[] = {cases[i].host};
		struct cmicro_cert_opts opts;
		struct cmicro_cert *out = (struct cmicro_cert *)&opts;
		int rc;

		cmicro_cert_opts_init(&opts);
		opts.hosts = cases[i].host != NULL ? hosts : NULL;
		opts.n_hosts = cases[i].host != NULL ? 1 : 0;
		opts.days = cases[i].days;
		opts.not_before = cases[i].not_before_offset ? now + cases[i].not_before_offset : 0;
		opts.not_after = cases[i].not_after_offset ? now + cases[i].not_after_offset : 0;
		opts.digest = cases[i].digest;
		opts.rsa_bits = cases[i].rsa_bits;
		opts.key_type = (enum cmicro_key_type)cases[i].key_type;
		opts.usage = (enum cmicro_cert_usage)cases[i].usage;
		opts.ca_issuers_url = cases[i].url;
		opts.common_name = cases[i].cn;

		rc = cmicro_cert_issue(ca, &opts, &out);
		if (rc != CMICRO_EINVAL)
			fail_msg("case %zu (%s): returned %s, expected CMICRO_EINVAL", i,
			         cases[i].expect, cmicro_err_name(rc));
		assert_null(out);
		TK_CONTAINS(cmicro_last_errmsg(), cases[i].expect);
	}
	cmicro_cert_free(ca);
}

static void test_cert_selfsigned_and_ca_bad_input_rejected(void **state)
{
	const char *bad[] = {"under score ok?"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *out = NULL;

	(void)state;
	TK_FAIL(cmicro_cert_selfsigned(NULL, 0, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "empty host list");
	TK_FAIL(cmicro_cert_selfsigned(bad, 1, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "under score ok?");
	TK_FAIL(cmicro_cert_ca_new(NULL, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "cmicro_cert_opts_init");

	cmicro_cert_opts_init(&opts);
	opts.days = -5;
	TK_FAIL(cmicro_cert_ca_new(&opts, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "-5 days");
	assert_null(out);
}

/* Returns a new certificate with the X.509 of cert_from and the key of key_from
 * (no key when key_from is NULL). */
static struct cmicro_cert *rewrap(const struct cmicro_cert *cert_from,
                                  const struct cmicro_cert *key_from)
{
	struct cmicro_cert *out = NULL;
	EVP_PKEY *key = NULL;

	if (key_from != NULL) {
		key = key_from->key;
		EVP_PKEY_up_ref(key);
	}
	X509_up_ref(cert_from->x509);
	TK_OK(cmi_cert_wrap(cert_from->x509, NULL, key, &out));
	return out;
}

static void test_cert_issue_bad_issuer_rejected(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *other = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "leaf.test", CMICRO_CERT_USAGE_SERVER);
	struct cmicro_cert *no_key = rewrap(ca, NULL);
	struct cmicro_cert *wrong_key = rewrap(ca, other);
	const char *hosts[] = {"x.test"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *out = NULL;

	(void)state;
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;

	TK_FAIL(cmicro_cert_issue(NULL, &opts, &out), CMICRO_EINVAL);
	TK_FAIL(cmicro_cert_issue(no_key, &opts, &out), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "has no private key");
	TK_FAIL(cmicro_cert_issue(leaf, &opts, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "issuer CN=leaf.test,O=Micro is not a CA");
	TK_FAIL(cmicro_cert_issue(wrong_key, &opts, &out), CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "does not match its certificate");
	assert_null(out);

	cmicro_cert_free(wrong_key);
	cmicro_cert_free(no_key);
	cmicro_cert_free(leaf);
	cmicro_cert_free(other);
	cmicro_cert_free(ca);
}

static void test_cert_inspect_depth_out_of_range(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert_info *info = NULL;

	(void)state;
	TK_FAIL(cmicro_cert_inspect(ca, 1, &info), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "no certificate at depth 1");
	assert_null(info);
	TK_FAIL(cmicro_cert_inspect(NULL, 0, &info), CMICRO_EINVAL);
	cmicro_cert_free(ca);
}

static void test_cert_free_null_noop(void **state)
{
	(void)state;
	cmicro_cert_free(NULL);
	cmicro_cert_info_free(NULL);
	assert_false(cmicro_cert_has_key(NULL));
	assert_int_equal(cmicro_cert_chain_len(NULL), 0);
}

static void test_cert_save_failed_cert_leaves_no_key(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	char cert_path[512];
	char key_path[512];

	(void)state;
	tk_path(cert_path, sizeof(cert_path), g_dir, "missing-dir/pair.pem");
	tk_path(key_path, sizeof(key_path), g_dir, "pair.key");
	TK_FAIL(cmicro_cert_save(ca, cert_path, key_path, 0), CMICRO_EIO);
	TK_CONTAINS(cmicro_last_errmsg(), "missing-dir/pair.pem: cannot create a file");
	assert_int_not_equal(access(key_path, F_OK), 0);

	tk_path(cert_path, sizeof(cert_path), g_dir, "pair.pem");
	tk_path(key_path, sizeof(key_path), g_dir, "missing-dir/pair.key");
	TK_FAIL(cmicro_cert_save(ca, cert_path, key_path, 0), CMICRO_EIO);
	TK_CONTAINS(cmicro_last_errmsg(), "missing-dir/pair.key: cannot create a file");
	assert_int_not_equal(access(cert_path, F_OK), 0);

	tk_path(key_path, sizeof(key_path), g_dir, "pair.key");
	TK_OK(cmicro_cert_save(ca, cert_path, key_path, 0));
	assert_int_equal(access(cert_path, F_OK), 0);
	assert_int_equal(access(key_path, F_OK), 0);
	cmicro_cert_free(ca);
}

static void test_cert_inspect_eku_presence_reported(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *leaf = issue_leaf(ca, "eku.test", CMICRO_CERT_USAGE_SERVER);
	struct cmicro_cert_info *info;

	(void)state;
	info = inspect(ca, 0);
	assert_false(info->has_eku);
	assert_true(info->server_auth);
	assert_true(info->client_auth);
	cmicro_cert_info_free(info);

	info = inspect(leaf, 0);
	assert_true(info->has_eku);
	assert_true(info->server_auth);
	assert_false(info->client_auth);
	cmicro_cert_info_free(info);
	cmicro_cert_free(leaf);
	cmicro_cert_free(ca);
}

static void test_cert_issue_path_len_constraints_enforced(void **state)
{
	struct cmicro_cert *root = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *inter = NULL;
	struct cmicro_cert *out = NULL;
	const char *hosts[] = {"p.test"};
	struct cmicro_cert_opts opts;

	(void)state;
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	opts.path_len = 0;
	TK_FAIL(cmicro_cert_issue(root, &opts, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "path length 0 is set for a leaf certificate");

	opts.is_ca = true;
	TK_OK(cmicro_cert_issue(root, &opts, &inter));
	opts.path_len = -1;
	TK_FAIL(cmicro_cert_issue(inter, &opts, &out), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(),
	            "issuer CN=cmicro intermediate CA,O=Micro has basicConstraints pathlen:0");
	assert_null(out);

	opts.is_ca = false;
	TK_OK(cmicro_cert_issue(inter, &opts, &out));
	cmicro_cert_free(out);
	cmicro_cert_free(inter);
	cmicro_cert_free(root);
}

static void test_cert_load_mismatch_names_rfc2253(void **state)
{
	struct cmicro_cert *ca = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *other = make_ca(CMICRO_KEY_EC_P256);
	struct cmicro_cert *out = NULL;
	char *cert_pem = NULL;
	char *key_pem = NULL;

	(void)state;
	TK_OK(cmicro_cert_to_pem(ca, 0, &cert_pem, NULL));
	TK_OK(cmicro_cert_to_pem(other, 0, NULL, &key_pem));
	TK_FAIL(cmicro_cert_load_pem(cert_pem, strlen(cert_pem), key_pem, strlen(key_pem), NULL,
	                             &out),
	        CMICRO_EKEY);
	TK_CONTAINS(cmicro_last_errmsg(), "(CN=cmicro CA,O=Micro)");
	cmicro_free(cert_pem);
	cmicro_free(key_pem);
	cmicro_cert_free(other);
	cmicro_cert_free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cert_selfsigned_fields_match_gomicro),
	    cmocka_unit_test(test_cert_selfsigned_openssl_extensions_agree),
	    cmocka_unit_test(test_cert_selfsigned_serials_random),
	    cmocka_unit_test(test_cert_ca_defaults_inspected),
	    cmocka_unit_test(test_cert_issue_server_leaf_verifies),
	    cmocka_unit_test(test_cert_issue_client_usage_only_client),
	    cmocka_unit_test(test_cert_issue_both_usages_set),
	    cmocka_unit_test(test_cert_issue_intermediate_chain_verifies),
	    cmocka_unit_test(test_cert_issue_key_types_verify),
	    cmocka_unit_test(test_cert_issue_expired_rejected_by_openssl),
	    cmocka_unit_test(test_cert_issue_future_rejected_by_openssl),
	    cmocka_unit_test(test_cert_issue_sha1_digest_used),
	    cmocka_unit_test(test_cert_issue_aia_and_key_ids_present),
	    cmocka_unit_test(test_cert_inspect_matches_openssl_fields),
	    cmocka_unit_test(test_cert_to_pem_key_matches_cert),
	    cmocka_unit_test(test_cert_opts_invalid_rejected),
	    cmocka_unit_test(test_cert_selfsigned_and_ca_bad_input_rejected),
	    cmocka_unit_test(test_cert_issue_bad_issuer_rejected),
	    cmocka_unit_test(test_cert_inspect_depth_out_of_range),
	    cmocka_unit_test(test_cert_free_null_noop),
	    cmocka_unit_test(test_cert_save_failed_cert_leaves_no_key),
	    cmocka_unit_test(test_cert_inspect_eku_presence_reported),
	    cmocka_unit_test(test_cert_issue_path_len_constraints_enforced),
	    cmocka_unit_test(test_cert_load_mismatch_names_rfc2253),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
