/* The node's own certificate and key: loading, matching and setting. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls/tls_config_int.h"

/* Checks that key is the private half of the certificate's public key. */
static int identity_check_pair(X509 *x, EVP_PKEY *key, const char *cert_label,
                               const char *key_label)
{
	char subject[256];

	if (X509_check_private_key(x, key) == 1)
		return 0;
	cmi_tls_name_text(X509_get_subject_name(x), subject, sizeof(subject));
	return cmi_error_ossl(CMICRO_EKEY,
	                      "key %s does not match certificate %s (subject %s); "
	                      "give the key the certificate was issued for (compare `openssl x509 "
	                      "-noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)",
	                      key_label, cert_label, subject);
}

/* Warns when other accounts can read the key file, because they can copy
 * the key. The node still starts: rejecting the file would turn a
 * permission slip into an outage. */
static void identity_check_mode(const char *key_file)
{
	struct stat st;

	if (stat(key_file, &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) == 0)
		return;
	cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-KEY-MODE",
	        "private key file %s has mode %04o, so other accounts can read or change it; "
	        "restrict it with chmod 600 %s",
	        key_file, (unsigned)(st.st_mode & 07777), key_file);
}

static int identity_read_key(const char *key_file, const char *passphrase, EVP_PKEY **key)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	identity_check_mode(key_file);
	rc = cmi_read_file(key_file, CMI_TLS_FILE_MAX, &data, &len);
	if (rc == 0)
		rc = cmi_pem_read_key(data, len, key_file, passphrase, key);
	if (data != NULL)
		OPENSSL_cleanse(data, len);
	free(data);
	return rc;
}

int cmi_tls_load_identity(const char *cert_file, const char *key_file, const char *passphrase,
                          struct cmicro_cert **out)
{
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	char *damaged = NULL;
	X509 *leaf;
	int rc;

	rc = cmi_pem_read_cert_file(cert_file, &certs, &damaged);
	if (rc != 0)
		return rc;
	if (damaged != NULL) {
		/* A gap in one's own chain would make every peer fail, so here
		 * a damaged block is an error rather than a warning. */
		rc = cmi_error(CMICRO_EPEM, "%s; replace the certificate file with an intact copy",
		               damaged);
		goto out;
	}
	rc = identity_read_key(key_file, passphrase, &key);
	if (rc != 0)
		goto out;
	leaf = sk_X509_shift(certs);
	rc = identity_check_pair(leaf, key, cert_file, key_file);
	if (rc != 0) {
		X509_free(leaf);
		goto out;
	}
	rc = cmi_cert_wrap(leaf, certs, key, out);
	certs = NULL;
	key = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	EVP_PKEY_free(key);
	free(damaged);
	return rc;
}

/* Replaces the identity of cfg (takes ownership of cert in every case). */
static void identity_free_secret(char *s)
{
	if (s != NULL)
		OPENSSL_cleanse(s, strlen(s));
	free(s);
}

static int identity_set(struct cmicro_tls_config *cfg, const char *setter, struct cmicro_cert *cert,
                        const char *cert_file, const char *key_file, const char *passphrase)
{
	char *cert_copy = cert_file ? cmi_strdup(cert_file) : NULL;
	char *key_copy = key_file ? cmi_strdup(key_file) : NULL;
	char *pass_copy = passphrase ? cmi_strdup(passphrase) : NULL;
	int rc;

	if ((cert_file != NULL && cert_copy == NULL) || (key_file != NULL && key_copy == NULL) ||
	    (passphrase != NULL && pass_copy == NULL)) {
		rc = CMICRO_ENOMEM;
		goto out;
	}
	rc = cmi_tls_config_lock(cfg, setter);
	if (rc != 0)
		goto out;
	cmicro_cert_free(cfg->cert);
	free(cfg->cert_file);
	free(cfg->key_file);
	cfg->cert = cert;
	identity_free_secret(cfg->key_passphrase);
	cfg->cert_file = cert_copy;
	cfg->key_file = key_copy;
	cfg->key_passphrase = pass_copy;
	cert = NULL;
	cert_copy = NULL;
	key_copy = NULL;
	pass_copy = NULL;
	cmi_tls_config_unlock(cfg);
out:
	cmicro_cert_free(cert);
	free(cert_copy);
	free(key_copy);
	identity_free_secret(pass_copy);
	return rc;
}

CMICRO_API int cmicro_tls_config_set_cert_files(struct cmicro_tls_config *cfg,
                                                const char *cert_file, const char *key_file,
                                                const char *passphrase)
{
	struct cmicro_cert *cert = NULL;
	int rc;

	if (cfg == NULL || cert_file == NULL || key_file == NULL || cert_file[0] == '\0' ||
	    key_file[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_set_cert_files: give both a "
		                                "certificate file and a key file");
	rc = cmi_tls_config_check_open(cfg, "cmicro_tls_config_set_cert_files");
	if (rc == 0)
		rc = cmi_tls_load_identity(cert_file, key_file, passphrase, &cert);
	if (rc != 0)
		return rc;
	return identity_set(cfg, "cmicro_tls_config_set_cert_files", cert, cert_file, key_file,
	                    passphrase);
}

int cmi_cert_ref_copy(const struct cmicro_cert *src, struct cmicro_cert **out)
{
	STACK_OF(X509) *chain = X509_chain_up_ref(src->chain);

	if (chain == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory copying a certificate");
	if (!X509_up_ref(src->x509)) {
		sk_X509_pop_free(chain, X509_free);
		return cmi_error_ossl(CMICRO_EINTERNAL, "cannot reference a certificate");
	}
	if (src->key != NULL && !EVP_PKEY_up_ref(src->key)) {
		X509_free(src->x509);
		sk_X509_pop_free(chain, X509_free);
		return cmi_error_ossl(CMICRO_EINTERNAL, "cannot reference a private key");
	}
	return cmi_cert_wrap(src->x509, chain, src->key, out);
}

CMICRO_API int cmicro_tls_config_set_cert(struct cmicro_tls_config *cfg,
                                          const struct cmicro_cert *cert)
{
	struct cmicro_cert *copy = NULL;
	int rc;

	if (cfg == NULL || cert == NULL || cert->x509 == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_set_cert: give a configuration "
		                                "and a certificate");
	if (cert->key == NULL)
		return cmi_error(CMICRO_EKEY,
		                 "cmicro_tls_config_set_cert: the certificate carries "
		                 "no private key; load it with its key (cmicro_cert_load) or use "
		                 "one that cmicro generated");
	rc = identity_check_pair(cert->x509, cert->key, "(in memory)", "(in memory)");
	if (rc == 0)
		rc = cmi_cert_ref_copy(cert, &copy);
	if (rc != 0)
		return rc;
	return identity_set(cfg, "cmicro_tls_config_set_cert", copy, NULL, NULL, NULL);
}
