/*
 * The certificate object: wrapping, release, PEM output, loading and saving.
 * Generation is in cert_issue.c and inspection in cert_inspect.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/tls_int.h"

int cmi_cert_wrap(X509 *x509, STACK_OF(X509) * chain, EVP_PKEY *key, struct cmicro_cert **out)
{
	struct cmicro_cert *cert = NULL;

	*out = NULL;
	if (chain == NULL)
		chain = sk_X509_new_null();
	if (chain == NULL) {
		cmi_error_ossl(CMICRO_ENOMEM, "out of memory creating a certificate chain");
		goto out;
	}

	cert = cmi_calloc(1, sizeof(*cert));
	if (cert == NULL)
		goto out;

	cert->x509 = x509;
	cert->chain = chain;
	cert->key = key;
	*out = cert;
	return 0;

out:
	X509_free(x509);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return CMICRO_ENOMEM;
}

CMICRO_API void cmicro_cert_free(struct cmicro_cert *cert)
{
	if (cert == NULL)
		return;
	X509_free(cert->x509);
	sk_X509_pop_free(cert->chain, X509_free);
	EVP_PKEY_free(cert->key);
	free(cert);
}

CMICRO_API bool cmicro_cert_has_key(const struct cmicro_cert *cert)
{
	return cert != NULL && cert->key != NULL;
}

CMICRO_API size_t cmicro_cert_chain_len(const struct cmicro_cert *cert)
{
	if (cert == NULL)
		return 0;
	return 1 + (size_t)sk_X509_num(cert->chain);
}

/* Copies the memory BIO's contents into a new NUL-terminated string. */
static int cert_bio_to_string(BIO *bio, char **out)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);

	*out = NULL;
	if (len < 0)
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot read PEM output from memory");
	*out = cmi_strndup(data, (size_t)len);
	return *out != NULL ? 0 : CMICRO_ENOMEM;
}

static int cert_pem_certs(const struct cmicro_cert *cert, unsigned flags, char **out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc = 0;

	if (bio == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory creating a PEM buffer");

	if (PEM_write_bio_X509(bio, cert->x509) != 1) {
		rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot encode the certificate as PEM");
		goto out;
	}

	for (int i = 0; (flags & CMICRO_CERT_SAVE_CHAIN) && i < sk_X509_num(cert->chain); i++) {
		if (PEM_write_bio_X509(bio, sk_X509_value(cert->chain, i)) != 1) {
			rc = cmi_error_ossl(CMICRO_ECRYPTO,
			                    "cannot encode chain certificate %d as PEM", i + 1);
			goto out;
		}
	}

	rc = cert_bio_to_string(bio, out);
out:
	BIO_free(bio);
	return rc;
}

/* Writes the key as unencrypted PKCS #8 ("BEGIN PRIVATE KEY"), the form both
 * OpenSSL and Go's tls.LoadX509KeyPair read for every key type. */
static int cert_pem_key(const struct cmicro_cert *cert, char **out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc;

	if (bio == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory creating a PEM buffer");

	if (PEM_write_bio_PrivateKey(bio, cert->key, NULL, NULL, 0, NULL, NULL) != 1)
		rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot encode the private key as PEM");
	else
		rc = cert_bio_to_string(bio, out);
	BIO_free(bio);
	return rc;
}

CMICRO_API int cmicro_cert_to_pem(const struct cmicro_cert *cert, unsigned flags, char **cert_pem,
                                  char **key_pem)
{
	int rc;

	if (cert_pem != NULL)
		*cert_pem = NULL;
	if (key_pem != NULL)
		*key_pem = NULL;
	if (cert == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_cert_to_pem: cert is NULL");
	if (key_pem != NULL && cert->key == NULL)
		return cmi_error(CMICRO_EKEY, "cannot write the private key: the certificate was "
		                              "loaded without one; load it with its key file");

	if (cert_pem != NULL) {
		rc = cert_pem_certs(cert, flags, cert_pem);
		if (rc != 0)
			return rc;
	}

	if (key_pem != NULL) {
		rc = cert_pem_key(cert, key_pem);
		if (rc != 0 && cert_pem != NULL) {
			free(*cert_pem);
			*cert_pem = NULL;
		}
		return rc;
	}
	return 0;
}

/* Certificate and key files are a few KiB, so a larger file is most likely a wrong path. */
#define CERT_MAX_FILE_BYTES (4u * 1024 * 1024)

/* Frees a string that held key material, wiping it first. */
static void cert_free_secret(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

/* Returns the 1-based position of the certificate of certs that key belongs
 * to, or 0 when none does. */
static int cert_key_owner(STACK_OF(X509) * certs, const EVP_PKEY *key)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, i)), key) == 1)
			return i + 1;
	}
	ERR_clear_error();
	return 0;
}

/* Explains a key that does not match the leaf. A key of a later certificate
 * means the file starts with an issuer (wrong order) or the key is the CA's. */
static int cert_mismatch_error(STACK_OF(X509) * certs, const EVP_PKEY *key, const char *cert_label,
                               const char *key_label)
{
	char subject[256];
	char other[256];
	int owner = cert_key_owner(certs, key);
	X509 *owner_x509;

	cmi_tls_name_text(X509_get_subject_name(sk_X509_value(certs, 0)), subject, sizeof(subject));
	if (owner <= 1)
		return cmi_error(CMICRO_EKEY,
		                 "the private key in %s does not match the certificate "
		                 "in %s (%s): give the key file that was created with "
		                 "this certificate",
		                 key_label, cert_label, subject);

	owner_x509 = sk_X509_value(certs, owner - 1);
	cmi_tls_name_text(X509_get_subject_name(owner_x509), other, sizeof(other));
	if (X509_get_extension_flags(owner_x509) & EXFLAG_CA)
		return cmi_error(CMICRO_EKEY,
		                 "the private key in %s does not match the certificate "
		                 "in %s (%s); it belongs to CA certificate %d of that "
		                 "file (%s): give the key of the first certificate",
		                 key_label, cert_label, subject, owner, other);
	return cmi_error(CMICRO_EKEY,
	                 "the private key in %s matches certificate %d of %s (%s), "
	                 "not the first one (%s): put the leaf certificate first in %s",
	                 key_label, owner, cert_label, other, subject, cert_label);
}

static int cert_read_chain(const char *data, size_t len, const char *label, STACK_OF(X509) * *out)
{
	char *damaged = NULL;
	int rc = cmi_pem_read_certs(data, len, label, out, &damaged);

	/* A damaged block is an error because skipping it would drop an
	 * intermediate, and the node would then serve an incomplete chain. */
	if (rc == 0 && damaged != NULL) {
		rc = cmi_error(CMICRO_EPEM, "%s; replace the damaged block with an intact copy",
		               damaged);
		sk_X509_pop_free(*out, X509_free);
		*out = NULL;
	}
	free(damaged);
	return rc;
}

static int cert_load_labelled(const char *cert_data, size_t cert_len, const char *cert_label,
                              const char *key_data, size_t key_len, const char *key_label,
                              const char *passphrase, struct cmicro_cert **out)
{
	STACK_OF(X509) *certs = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf;
	int rc;

	rc = cert_read_chain(cert_data, cert_len, cert_label, &certs);
	if (rc != 0)
		return rc;

	if (key_data != NULL) {
		rc = cmi_pem_read_key(key_data, key_len, key_label, passphrase, &key);
		if (rc == 0 && EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, 0)), key) != 1)
			rc = cert_mismatch_error(certs, key, cert_label, key_label);
		if (rc != 0)
			goto out;
	}

	leaf = sk_X509_shift(certs);
	rc = cmi_cert_wrap(leaf, certs, key, out);
	certs = NULL;
	key = NULL;
out:
	sk_X509_pop_free(certs, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

CMICRO_API int cmicro_cert_load_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
                                    size_t key_len, const char *passphrase,
                                    struct cmicro_cert **out)
{
	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_cert_load_pem: out is NULL");
	*out = NULL;
	if (cert_pem == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_cert_load_pem: cert_pem is NULL; give the "
		                                "PEM text of a certificate");
	return cert_load_labelled(cert_pem, cert_len, "certificate PEM", key_pem, key_len,
	                          "key PEM", passphrase, out);
}

CMICRO_API int cmicro_cert_load(const char *cert_file, const char *key_file, const char *passphrase,
                                struct cmicro_cert **out)
{
	char *cert_data = NULL;
	char *key_data = NULL;
	size_t cert_len = 0;
	size_t key_len = 0;
	int rc;

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_cert_load: out is NULL");
	*out = NULL;
	if (cert_file == NULL)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_cert_load: cert_file is NULL; give the path "
		                 "of a PEM certificate");

	rc = cmi_read_file(cert_file, CERT_MAX_FILE_BYTES, &cert_data, &cert_len);
	if (rc == 0 && key_file != NULL)
		rc = cmi_read_file(key_file, CERT_MAX_FILE_BYTES, &key_data, &key_len);
	if (rc == 0)
		rc = cert_load_labelled(cert_data, cert_len, cert_file, key_data, key_len, key_file,
		                        passphrase, out);

	free(cert_data);
	cert_free_secret(key_data);
	return rc;
}

/* Writes all of data to fd and flushes it to disk; errors name path, the
 * file the caller asked for. */
static int cert_fill(int fd, const char *path, const char *data, unsigned mode)
{
	size_t len = strlen(data);

	if (fchmod(fd, (mode_t)mode) != 0)
		return cmi_error(CMICRO_EIO, "%s: cannot set mode %03o: %s", path, mode,
		                 CMI_ERRNO_TEXT(errno));
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return cmi_error(CMICRO_EIO,
			                 "%s: write failed: %s; check the free space of its "
			                 "directory",
			                 path, CMI_ERRNO_TEXT(errno));
		data += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0)
		return cmi_error(CMICRO_EIO, "%s: fsync failed: %s", path, CMI_ERRNO_TEXT(errno));
	return 0;
}

/* Writes data to a temporary file next to path (path.tmp.XXXXXX), so that
 * nothing under the final name changes yet; *staged receives its name. */
static int cert_stage(const char *path, const char *data, unsigned mode, char **staged)
{
	int fd;
	int rc;

	if (asprintf(staged, "%s.tmp.XXXXXX", path) < 0) {
		*staged = NULL;
		return cmi_error(CMICRO_ENOMEM, "out of memory writing %s", path);
	}
	fd = mkstemp(*staged);
	if (fd < 0) {
		rc = cmi_error(CMICRO_EIO,
		               "%s: cannot create a file in its directory: %s; check that the "
		               "directory exists and is writable",
		               path, CMI_ERRNO_TEXT(errno));
		free(*staged);
		*staged = NULL;
		return rc;
	}
	rc = cert_fill(fd, path, data, mode);
	if (close(fd) != 0 && rc == 0)
		rc = cmi_error(CMICRO_EIO, "%s: close failed: %s", path, CMI_ERRNO_TEXT(errno));
	return rc;
}

static int cert_unstage(const char *staged, const char *path)
{
	if (rename(staged, path) != 0)
		return cmi_error(CMICRO_EIO, "%s: cannot replace the file: %s", path,
		                 CMI_ERRNO_TEXT(errno));
	return 0;
}

static void cert_discard(char *staged)
{
	if (staged != NULL)
		unlink(staged);
	free(staged);
}

/* Both files are staged first and renamed only when both were written, so a
 * failure (a missing directory, a full disk) leaves neither a new key next to
 * an old certificate nor the reverse. */
static int cert_save_pair(const char *cert_file, const char *cert_pem, const char *key_file,
                          const char *key_pem)
{
	char *cert_staged = NULL;
	char *key_staged = NULL;
	int rc = 0;

	if (key_file != NULL)
		rc = cert_stage(key_file, key_pem, 0600, &key_staged);
	if (rc == 0)
		rc = cert_stage(cert_file, cert_pem, 0644, &cert_staged);
	if (rc == 0 && key_staged != NULL)
		rc = cert_unstage(key_staged, key_file);
	/* NOTE: renames in one directory rarely fail; if the second one does, the
	 * key is already replaced and the old certificate stays. */
	if (rc == 0)
		rc = cert_unstage(cert_staged, cert_file);

	cert_discard(cert_staged);
	cert_discard(key_staged);
	return rc;
}

CMICRO_API int cmicro_cert_save(const struct cmicro_cert *cert, const char *cert_file,
                                const char *key_file, unsigned flags)
{
	char *cert_pem = NULL;
	char *key_pem = NULL;
	int rc;

	if (cert == NULL || cert_file == NULL)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_cert_save: cert and cert_file must be given");
	if (key_file != NULL && strcmp(cert_file, key_file) == 0)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_cert_save: cert_file and key_file are both \"%s\"; give "
		                 "two different files",
		                 cert_file);

	rc = cmicro_cert_to_pem(cert, flags, &cert_pem, key_file != NULL ? &key_pem : NULL);
	if (rc == 0)
		rc = cert_save_pair(cert_file, cert_pem, key_file, key_pem);

	free(cert_pem);
	cert_free_secret(key_pem);
	return rc;
}
