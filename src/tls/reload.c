/*
 * Reloading a frozen configuration's files (certificate, key, CA files and
 * directories, CRL) when they change on disk. The new material is read and
 * checked completely before anything is replaced, so a broken or
 * mismatched file leaves the node on its previous material. Contexts pick
 * up a successful reload before their next connection.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "tls/tls_config_int.h"

struct reload_set {
	struct cmicro_cert *cert;
	STACK_OF(X509) *cas;
	STACK_OF(X509_CRL) *crls;
	X509_STORE *store;
};

static uint64_t stamp_mix(uint64_t h, uint64_t v)
{
	/* splitmix64's finaliser: any change in v moves every bit of h. */
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static uint64_t stamp_text(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* Device, inode, size and both times: a rename over the file, a rewrite
 * in place and a symbolic link switched to another target (as Kubernetes
 * updates mounted secrets) each change one of them. */
static uint64_t stamp_stat(const struct stat *st)
{
	uint64_t h = stamp_mix(0, (uint64_t)st->st_dev);

	h = stamp_mix(h, (uint64_t)st->st_ino);
	h = stamp_mix(h, (uint64_t)st->st_size);
	h = stamp_mix(h, (uint64_t)st->st_mtim.tv_sec);
	h = stamp_mix(h, (uint64_t)st->st_mtim.tv_nsec);
	h = stamp_mix(h, (uint64_t)st->st_ctim.tv_sec);
	return stamp_mix(h, (uint64_t)st->st_ctim.tv_nsec);
}

/* Entries are combined with XOR, so the order readdir returns them in does
 * not matter. */
static uint64_t stamp_dir(const char *path, uint64_t h)
{
	DIR *dir = opendir(path);
	struct dirent *entry;
	uint64_t entries = 0;

	if (dir == NULL)
		return stamp_mix(h, (uint64_t)errno);
	while ((entry = readdir(dir)) != NULL) {
		char full[4096];
		struct stat st;

		if (entry->d_name[0] == '.')
			continue;
		cmi_fmt(full, sizeof(full), "%s/%s", path, entry->d_name);
		if (stat(full, &st) == 0)
			entries ^= stamp_mix(stamp_text(entry->d_name), stamp_stat(&st));
	}
	closedir(dir);
	return stamp_mix(h, entries);
}

static uint64_t stamp_path(uint64_t h, const char *path)
{
	struct stat st;

	if (path == NULL)
		return stamp_mix(h, 0);
	if (stat(path, &st) != 0)
		return stamp_mix(h, 0x100u + (uint64_t)errno);
	h = stamp_mix(h, stamp_stat(&st));
	return S_ISDIR(st.st_mode) ? stamp_dir(path, h) : h;
}

/* The paths of a frozen configuration never change, so no lock is needed. */
static uint64_t stamp_config(const struct cmicro_tls_config *cfg)
{
	uint64_t h = stamp_path(1, cfg->cert_file);

	h = stamp_path(h, cfg->key_file);
	for (size_t i = 0; i < cfg->n_ca_paths; i++)
		h = stamp_path(h, cfg->ca_paths[i]);
	h = stamp_path(h, cfg->crl_file);
	return h != 0 ? h : 1;
}

uint64_t cmi_tls_config_files_stamp(const struct cmicro_tls_config *cfg)
{
	return stamp_config(cfg);
}

static void set_free(struct reload_set *set)
{
	cmicro_cert_free(set->cert);
	sk_X509_pop_free(set->cas, X509_free);
	sk_X509_CRL_pop_free(set->crls, X509_CRL_free);
	X509_STORE_free(set->store);
	memset(set, 0, sizeof(*set));
}

/* OpenSSL refuses some identities that parse fine (an RSA key under 2048
 * bits at security level 2): find out now, not at the next handshake. */
static int reload_check_usable(const struct cmicro_cert *cert, const char *cert_file)
{
	SSL_CTX *probe = SSL_CTX_new(TLS_server_method());
	int ok;

	if (probe == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "cannot create an OpenSSL context");
	ok = SSL_CTX_use_cert_and_key(probe, cert->x509, cert->key, cert->chain, 1) == 1;
	SSL_CTX_free(probe);
	if (ok)
		return 0;
	return cmi_error_ossl(CMICRO_EKEY,
	                      "OpenSSL refuses certificate %s as an identity (a key under RSA "
	                      "2048 bits or a SHA-1 signature); reissue it with ECDSA P-256 or "
	                      "RSA >= 2048 and SHA-256",
	                      cert_file);
}

/* Returns whether x is valid now (between notBefore and notAfter). */
static bool reload_valid_now(X509 *x)
{
	return X509_cmp_current_time(X509_get0_notBefore(x)) < 0 &&
	       X509_cmp_current_time(X509_get0_notAfter(x)) > 0;
}

/* Rejects a replacement that is expired or not yet valid while the
 * certificate in use is still valid: every verifying peer would reject this
 * node, and such a file is a likely slip in a rotation (an old copy). */
static int reload_check_dates(struct cmicro_tls_config *cfg, const struct cmicro_cert *fresh)
{
	struct cmicro_cert *current = cmi_tls_config_cert_hold(cfg);
	bool reject = current != NULL && reload_valid_now(current->x509) &&
		      !reload_valid_now(fresh->x509);

	cmicro_cert_free(current);
	if (!reject)
		return 0;
	return cmi_error(CMICRO_ECONFIG,
			 "certificate %s is %s, while the one in use is still valid; install a "
			 "certificate that is valid now (check it with cmicro cert inspect)",
			 cfg->cert_file,
			 X509_cmp_current_time(X509_get0_notAfter(fresh->x509)) <= 0
			     ? "expired"
			     : "not valid yet (its notBefore is in the future)");
}

static int reload_trust(struct cmicro_tls_config *cfg, struct reload_set *set)
{
	int rc = 0;

	set->cas = sk_X509_new_null();
	if (set->cas == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "out of memory reloading the CA files");
	for (size_t i = 0; rc == 0 && i < cfg->n_ca_paths; i++)
		rc = cmi_tls_trust_read_path(cfg->ca_paths[i], set->cas);
	for (int i = 0; rc == 0 && i < sk_X509_num(cfg->mem_ca_certs); i++) {
		X509 *x = sk_X509_value(cfg->mem_ca_certs, i);

		if (!X509_up_ref(x))
			rc = cmi_error_ossl(CMICRO_EINTERNAL, "cannot reference a CA certificate");
		else if (!sk_X509_push(set->cas, x)) {
			X509_free(x);
			rc = cmi_error_ossl(CMICRO_ENOMEM, "out of memory reloading the CA files");
		}
	}
	if (rc == 0 && cfg->crl_file != NULL)
		rc = cmi_pem_read_crl_file(cfg->crl_file, &set->crls);
	if (rc == 0)
		rc = cmi_tls_trust_build(cfg->system_roots, set->cas, set->crls, cfg->crl_file,
		                         &set->store);
	return rc;
}

static int reload_read(struct cmicro_tls_config *cfg, struct reload_set *set)
{
	int rc = 0;

	if (cfg->cert_file != NULL) {
		rc = cmi_tls_load_identity(cfg->cert_file, cfg->key_file, cfg->key_passphrase,
		                           &set->cert);
		if (rc == 0)
			rc = reload_check_usable(set->cert, cfg->cert_file);
		if (rc == 0)
			rc = reload_check_dates(cfg, set->cert);
	}
	if (rc == 0)
		rc = reload_trust(cfg, set);
	return rc;
}

/* Puts the new material in place; set receives the old, to be freed. The
 * replaced identity is kept (see retired in the structure). */
static int reload_swap(struct cmicro_tls_config *cfg, struct reload_set *set)
{
	struct cmicro_cert **retired = NULL;
	struct cmicro_cert *old_cert;
	STACK_OF(X509) *old_cas;
	STACK_OF(X509_CRL) *old_crls;
	X509_STORE *old_store;

	pthread_mutex_lock(&cfg->lock);
	if (set->cert != NULL && cfg->cert != NULL) {
		retired = realloc(cfg->retired, (cfg->n_retired + 1) * sizeof(*retired));
		if (retired == NULL) {
			pthread_mutex_unlock(&cfg->lock);
			return cmi_error(CMICRO_ENOMEM, "out of memory reloading the TLS files");
		}
		cfg->retired = retired;
		cfg->retired[cfg->n_retired++] = cfg->cert;
		cfg->cert = NULL;
	}
	old_cert = cfg->cert;
	old_cas = cfg->ca_certs;
	old_crls = cfg->crls;
	old_store = cfg->store;
	if (set->cert != NULL)
		cfg->cert = set->cert;
	else
		old_cert = NULL;
	cfg->ca_certs = set->cas;
	cfg->crls = set->crls;
	cfg->store = set->store;
	atomic_fetch_add(&cfg->generation, 1);
	pthread_mutex_unlock(&cfg->lock);

	set->cert = old_cert;
	set->cas = old_cas;
	set->crls = old_crls;
	set->store = old_store;
	return 0;
}

static void reload_log_success(struct cmicro_tls_config *cfg)
{
	struct cmicro_cert *cert = cmi_tls_config_cert_hold(cfg);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char identity[384] = "no certificate of its own";
	char subject[256];
	int n_cas;

	if (cert != NULL) {
		cmi_tls_name_text(X509_get_subject_name(cert->x509), subject, sizeof(subject));
		cmi_fmt(identity, sizeof(identity), "certificate %s", subject);
		if (X509_digest(cert->x509, EVP_sha256(), md, &md_len) && md_len >= 4)
			cmi_append(identity, sizeof(identity), " (SHA-256 %02X:%02X:%02X:%02X...)",
			           md[0], md[1], md[2], md[3]);
	}
	pthread_mutex_lock(&cfg->lock);
	n_cas = sk_X509_num(cfg->ca_certs);
	pthread_mutex_unlock(&cfg->lock);
	cmi_log(CMICRO_LOG_INFO, "tls", "TLS-RELOADED",
	        "reloaded the TLS files: %s, %d trusted CA certificates from files and memory; "
	        "new connections use them, open ones continue",
	        identity, n_cas);
	cmicro_cert_free(cert);
}

/* Reads, checks and installs the files' current content (reload_lock held). */
static int reload_locked(struct cmicro_tls_config *cfg, uint64_t stamp)
{
	struct reload_set set = {0};
	int rc = reload_read(cfg, &set);

	if (rc == 0)
		rc = reload_swap(cfg, &set);
	if (rc != 0) {
		char why[512];

		cmi_fmt(why, sizeof(why), "%s", cmicro_last_errmsg());
		set_free(&set);
		cfg->failed_stamp = stamp;
		cmi_log(CMICRO_LOG_ERR, "tls", "TLS-RELOAD-FAILED",
		        "the TLS files changed but cannot be used: %s; the previous certificate, "
		        "key and CAs stay in use until the files are fixed",
		        why);
		return cmi_error(rc, "%s", why);
	}
	set_free(&set);
	cfg->files_stamp = stamp;
	cfg->failed_stamp = 0;
	ERR_clear_error();
	reload_log_success(cfg);
	return 0;
}

CMICRO_API int cmicro_tls_config_reload(struct cmicro_tls_config *cfg, bool *changed)
{
	uint64_t stamp;
	int rc = 0;

	if (changed != NULL)
		*changed = false;
	if (cfg == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_reload: the configuration is "
		                                "NULL");
	if (!atomic_load(&cfg->frozen))
		return 0;

	pthread_mutex_lock(&cfg->reload_lock);
	stamp = stamp_config(cfg);
	if (stamp != cfg->files_stamp) {
		rc = reload_locked(cfg, stamp);
		if (rc == 0 && changed != NULL)
			*changed = true;
	}
	pthread_mutex_unlock(&cfg->reload_lock);
	return rc;
}

int cmi_tls_config_poll(struct cmicro_tls_config *cfg, uint64_t *seen, bool *changed)
{
	uint64_t stamp;

	*changed = false;
	if (cfg == NULL || !atomic_load(&cfg->frozen))
		return 0;
	/* A change is loaded only once the files have stayed the same for a
	 * whole poll interval, so that a certificate and key copied one after
	 * the other are read as a pair. */
	stamp = stamp_config(cfg);
	if (stamp != *seen) {
		*seen = stamp;
		return 0;
	}
	pthread_mutex_lock(&cfg->reload_lock);
	stamp = cfg->files_stamp == *seen || cfg->failed_stamp == *seen ? 0 : *seen;
	pthread_mutex_unlock(&cfg->reload_lock);
	if (stamp == 0)
		return 0;
	return cmicro_tls_config_reload(cfg, changed);
}

struct cmicro_cert *cmi_tls_config_cert_hold(struct cmicro_tls_config *cfg)
{
	struct cmicro_cert *copy = NULL;

	if (cfg == NULL)
		return NULL;
	pthread_mutex_lock(&cfg->lock);
	if (cfg->cert != NULL && cmi_cert_ref_copy(cfg->cert, &copy) != 0)
		copy = NULL;
	pthread_mutex_unlock(&cfg->lock);
	return copy;
}

STACK_OF(X509) *cmi_tls_config_cas_hold(struct cmicro_tls_config *cfg)
{
	STACK_OF(X509) *copy;

	pthread_mutex_lock(&cfg->lock);
	copy = X509_chain_up_ref(cfg->ca_certs);
	pthread_mutex_unlock(&cfg->lock);
	return copy;
}

unsigned cmi_tls_config_generation(struct cmicro_tls_config *cfg)
{
	return atomic_load(&cfg->generation);
}
