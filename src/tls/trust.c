/*
 * The trust of a configuration: system roots, CA files, directories and
 * in-memory certificates, CRLs, and the X509_STORE built from them when the
 * configuration freezes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include "tls/tls_config_int.h"

/* Appends certs (all of them, references taken) and path to the trust of a
 * locked configuration. */
static int trust_add_locked(struct cmicro_tls_config *cfg, const char *path, STACK_OF(X509) *certs)
{
	char **paths;
	char *copy = NULL;

	if (path != NULL) {
		copy = cmi_strdup(path);
		paths = realloc(cfg->ca_paths, (cfg->n_ca_paths + 1) * sizeof(*paths));
		if (copy == NULL || paths == NULL) {
			free(copy);
			return cmi_error(CMICRO_ENOMEM, "out of memory adding %s to the trust",
			                 path);
		}
		cfg->ca_paths = paths;
	}
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		if (!X509_up_ref(x)) {
			free(copy);
			return cmi_error_ossl(CMICRO_EINTERNAL,
			                      "cannot reference a CA certificate");
		}
		if (!sk_X509_push(cfg->ca_certs, x)) {
			X509_free(x);
			free(copy);
			return cmi_error_ossl(CMICRO_ENOMEM,
			                      "out of memory adding a CA to the trust");
		}
	}
	if (copy != NULL)
		cfg->ca_paths[cfg->n_ca_paths++] = copy;
	return 0;
}

static int trust_add(struct cmicro_tls_config *cfg, const char *setter, const char *path,
                     STACK_OF(X509) *certs)
{
	int rc = cmi_tls_config_lock(cfg, setter);

	if (rc != 0)
		return rc;
	rc = trust_add_locked(cfg, path, certs);
	cmi_tls_config_unlock(cfg);
	return rc;
}

CMICRO_API int cmicro_tls_config_add_ca_file(struct cmicro_tls_config *cfg, const char *path)
{
	STACK_OF(X509) *certs = NULL;
	char *damaged = NULL;
	int rc;

	if (cfg == NULL || path == NULL || path[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_add_ca_file: give a "
		                                "configuration and a CA file path");
	rc = cmi_tls_config_check_open(cfg, "cmicro_tls_config_add_ca_file");
	if (rc == 0)
		rc = cmi_pem_read_cert_file(path, &certs, &damaged);
	if (rc != 0)
		return rc;

	/* The valid certificates are still trusted: one damaged block in a
	 * large bundle must not take a node offline. */
	if (damaged != NULL)
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-CA-DAMAGED",
		        "skipped damaged blocks of CA "
		        "file %s (%d certificates loaded): %s",
		        path, sk_X509_num(certs), damaged);
	rc = trust_add(cfg, "cmicro_tls_config_add_ca_file", path, certs);
	sk_X509_pop_free(certs, X509_free);
	free(damaged);
	return rc;
}

CMICRO_API int cmicro_tls_config_add_ca_cert(struct cmicro_tls_config *cfg,
                                             const struct cmicro_cert *ca)
{
	STACK_OF(X509) *one;
	int rc;

	if (cfg == NULL || ca == NULL || ca->x509 == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_add_ca_cert: give a "
		                                "configuration and a certificate");
	one = sk_X509_new_null();
	if (one == NULL || !sk_X509_push(one, ca->x509)) {
		sk_X509_free(one);
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory adding a CA to the trust");
	}
	rc = trust_add(cfg, "cmicro_tls_config_add_ca_cert", NULL, one);
	if (rc == 0 && cmi_tls_config_lock(cfg, "cmicro_tls_config_add_ca_cert") == 0) {
		/* Remembered apart from the files, so that reloads keep it. */
		if (!X509_up_ref(ca->x509))
			rc = cmi_error_ossl(CMICRO_EINTERNAL, "cannot reference a CA certificate");
		else if (!sk_X509_push(cfg->mem_ca_certs, ca->x509)) {
			X509_free(ca->x509);
			rc = cmi_error_ossl(CMICRO_ENOMEM, "out of memory adding a CA to the trust");
		}
		cmi_tls_config_unlock(cfg);
	}
	sk_X509_free(one);
	return rc;
}

/* Moves every certificate of from onto to. */
static int trust_move(STACK_OF(X509) *to, STACK_OF(X509) *from)
{
	X509 *x;

	while ((x = sk_X509_shift(from)) != NULL) {
		if (!sk_X509_push(to, x)) {
			X509_free(x);
			return cmi_error_ossl(CMICRO_ENOMEM,
			                      "out of memory reading a CA directory");
		}
	}
	return 0;
}

/* Reads one directory entry; files without certificates are skipped with a
 * warning, as OpenSSL's hashed directories tolerate unrelated files. */
static int trust_read_dir_file(const char *dir, const char *name, STACK_OF(X509) *all)
{
	STACK_OF(X509) *certs = NULL;
	char path[4096];
	struct stat st;
	char *damaged = NULL;
	int rc;

	cmi_fmt(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	rc = cmi_pem_read_cert_file(path, &certs, &damaged);
	if (rc == CMICRO_ENOMEM)
		return rc;
	if (rc != 0) {
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-CA-SKIP",
		        "skipped %s in CA directory %s: %s", name, dir, cmicro_last_errmsg());
		return 0;
	}
	if (damaged != NULL)
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-CA-DAMAGED",
		        "skipped damaged blocks of %s: "
		        "%s",
		        path, damaged);
	rc = trust_move(all, certs);
	sk_X509_pop_free(certs, X509_free);
	free(damaged);
	return rc;
}

static int trust_read_dir(const char *path, STACK_OF(X509) *all)
{
	struct dirent *entry;
	DIR *dir = opendir(path);
	int rc = 0;

	if (dir == NULL && errno == ENOENT)
		return cmi_error(CMICRO_ENOENT, "CA directory %s not found; check the path", path);
	if (dir == NULL)
		return cmi_error(CMICRO_EIO, "CA directory %s cannot be opened: %s", path,
		                 CMI_ERRNO_TEXT(errno));
	while (rc == 0 && (entry = readdir(dir)) != NULL) {
		if (entry->d_name[0] != '.')
			rc = trust_read_dir_file(path, entry->d_name, all);
	}
	closedir(dir);
	if (rc == 0 && sk_X509_num(all) == 0)
		rc = cmi_error(CMICRO_EPEM,
		               "CA directory %s contains no PEM certificate; put the "
		               "CA certificates there as PEM files",
		               path);
	return rc;
}

int cmi_tls_trust_read_path(const char *path, STACK_OF(X509) *certs)
{
	STACK_OF(X509) *found = NULL;
	char *damaged = NULL;
	struct stat st;
	int rc;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return trust_read_dir(path, certs);
	rc = cmi_pem_read_cert_file(path, &found, &damaged);
	if (rc != 0)
		return rc;
	if (damaged != NULL)
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-CA-DAMAGED",
		        "skipped damaged blocks of CA file %s (%d certificates loaded): %s", path,
		        sk_X509_num(found), damaged);
	rc = trust_move(certs, found);
	sk_X509_pop_free(found, X509_free);
	free(damaged);
	return rc;
}

CMICRO_API int cmicro_tls_config_add_ca_dir(struct cmicro_tls_config *cfg, const char *path)
{
	STACK_OF(X509) *all;
	int rc;

	if (cfg == NULL || path == NULL || path[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_add_ca_dir: give a "
		                                "configuration and a directory");
	rc = cmi_tls_config_check_open(cfg, "cmicro_tls_config_add_ca_dir");
	if (rc != 0)
		return rc;
	all = sk_X509_new_null();
	if (all == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory reading CA directory %s", path);
	rc = trust_read_dir(path, all);
	if (rc == 0)
		rc = trust_add(cfg, "cmicro_tls_config_add_ca_dir", path, all);
	sk_X509_pop_free(all, X509_free);
	return rc;
}

CMICRO_API int cmicro_tls_config_set_crl_file(struct cmicro_tls_config *cfg, const char *path)
{
	STACK_OF(X509_CRL) *crls = NULL;
	char *copy = NULL;
	int rc;

	if (cfg == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_set_crl_file: the configuration "
		                                "is NULL");
	rc = cmi_tls_config_check_open(cfg, "cmicro_tls_config_set_crl_file");
	if (rc != 0)
		return rc;
	if (path != NULL && path[0] != '\0') {
		rc = cmi_pem_read_crl_file(path, &crls);
		copy = rc == 0 ? cmi_strdup(path) : NULL;
		if (rc == 0 && copy == NULL)
			rc = CMICRO_ENOMEM;
		if (rc != 0)
			goto out;
	}
	rc = cmi_tls_config_lock(cfg, "cmicro_tls_config_set_crl_file");
	if (rc != 0)
		goto out;
	sk_X509_CRL_pop_free(cfg->crls, X509_CRL_free);
	free(cfg->crl_file);
	cfg->crls = crls;
	cfg->crl_file = copy;
	crls = NULL;
	copy = NULL;
	cmi_tls_config_unlock(cfg);
out:
	sk_X509_CRL_pop_free(crls, X509_CRL_free);
	free(copy);
	return rc;
}

/* X509_STORE_set_default_paths reads SSL_CERT_FILE and SSL_CERT_DIR (else
 * OpenSSL's built-in paths), which is also how Go finds its system roots on
 * Linux, so one fleet environment serves both. */
int cmi_tls_trust_build(bool system_roots, STACK_OF(X509) *cas, STACK_OF(X509_CRL) *crls,
                        const char *crl_file, X509_STORE **out)
{
	X509_STORE *store = X509_STORE_new();
	int rc = 0;

	if (store == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory creating the trust store");
	if (system_roots && !X509_STORE_set_default_paths(store)) {
		rc =
		    cmi_error_ossl(CMICRO_ECRYPTO,
		                   "cannot load the system CA roots (SSL_CERT_FILE "
		                   "or SSL_CERT_DIR); check those variables or the ca-certificates "
		                   "package");
		goto out;
	}
	for (int i = 0; rc == 0 && i < sk_X509_num(cas); i++) {
		if (!X509_STORE_add_cert(store, sk_X509_value(cas, i)))
			rc = cmi_error_ossl(CMICRO_ECRYPTO, "cannot add a CA to the trust store");
	}
	for (int i = 0; rc == 0 && i < sk_X509_CRL_num(crls); i++) {
		if (!X509_STORE_add_crl(store, sk_X509_CRL_value(crls, i)))
			rc = cmi_error_ossl(CMICRO_ECRYPTO,
			                    "cannot add a CRL of %s to the trust "
			                    "store",
			                    crl_file);
	}
out:
	if (rc != 0) {
		X509_STORE_free(store);
		return rc;
	}
	ERR_clear_error();
	*out = store;
	return 0;
}

X509_STORE *cmi_tls_config_freeze(struct cmicro_tls_config *cfg)
{
	X509_STORE *store = NULL;

	pthread_mutex_lock(&cfg->lock);
	if (cfg->store == NULL &&
	    cmi_tls_trust_build(cfg->system_roots, cfg->ca_certs, cfg->crls, cfg->crl_file,
	                        &cfg->store) != 0)
		goto out;
	if (!X509_STORE_up_ref(cfg->store)) {
		cmi_error_ossl(CMICRO_EINTERNAL, "cannot reference the trust store");
		goto out;
	}
	store = cfg->store;
	/* No reload runs before the first freeze, so the stamp needs no
	 * reload_lock here (taking it under lock would invert their order). */
	if (!atomic_load(&cfg->frozen))
		cfg->files_stamp = cmi_tls_config_files_stamp(cfg);
	atomic_store(&cfg->frozen, true);
out:
	pthread_mutex_unlock(&cfg->lock);
	return store;
}
