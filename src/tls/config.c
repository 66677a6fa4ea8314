/*
 * TLS configuration objects: the presets, reference counting, the freeze
 * that happens when a context is built, simple setters and the getters.
 * Trust (CAs, CRLs) is set in trust.c, the own identity in identity.c, the
 * environment in env.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tls/tls_config_int.h"

/* Locks cfg for a setter; fails with CMICRO_EBUSY once it is frozen, because
 * contexts built from it already use the old values. */
int cmi_tls_config_lock(struct cmicro_tls_config *cfg, const char *setter)
{
	if (cfg == NULL)
		return cmi_error(CMICRO_EINVAL, "%s: the configuration is NULL", setter);
	pthread_mutex_lock(&cfg->lock);
	if (atomic_load(&cfg->frozen)) {
		pthread_mutex_unlock(&cfg->lock);
		return cmi_error(CMICRO_EBUSY,
		                 "%s: the TLS configuration can no longer change "
		                 "because a context was built from it; set every option before "
		                 "creating contexts, or start a new configuration",
		                 setter);
	}
	return 0;
}

int cmi_tls_config_check_open(struct cmicro_tls_config *cfg, const char *setter)
{
	int rc = cmi_tls_config_lock(cfg, setter);

	if (rc == 0)
		cmi_tls_config_unlock(cfg);
	return rc;
}

void cmi_tls_config_unlock(struct cmicro_tls_config *cfg)
{
	pthread_mutex_unlock(&cfg->lock);
}

static struct cmicro_tls_config *config_alloc(enum cmicro_tls_verify mode, const char *origin)
{
	struct cmicro_tls_config *cfg = cmi_calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	cfg->ca_certs = sk_X509_new_null();
	cfg->mem_ca_certs = sk_X509_new_null();
	if (cfg->ca_certs == NULL || cfg->mem_ca_certs == NULL) {
		sk_X509_free(cfg->ca_certs);
		sk_X509_free(cfg->mem_ca_certs);
		free(cfg);
		cmi_error_ossl(CMICRO_ENOMEM, "out of memory creating a TLS configuration");
		return NULL;
	}
	atomic_init(&cfg->refs, 1);
	atomic_init(&cfg->frozen, false);
	pthread_mutex_init(&cfg->lock, NULL);
	pthread_mutex_init(&cfg->audit.lock, NULL);
	pthread_mutex_init(&cfg->reload_lock, NULL);
	atomic_init(&cfg->generation, 0);
	cfg->verify = mode;
	cfg->source = CMICRO_TLS_SOURCE_CODE;
	cmi_fmt(cfg->source_text, sizeof(cfg->source_text), "%s", origin);
	cfg->min_version = CMICRO_TLS_1_2;
	cfg->system_roots = true;
	cfg->client_auth = CMICRO_TLS_CLIENT_AUTH_NONE;
	return cfg;
}

static int config_make(struct cmicro_tls_config **out, enum cmicro_tls_verify mode,
                       const char *origin)
{
	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "%s: out must not be NULL", origin);
	*out = config_alloc(mode, origin);
	return *out != NULL ? 0 : CMICRO_ENOMEM;
}

CMICRO_API int cmicro_tls_config_secure(struct cmicro_tls_config **out)
{
	return config_make(out, CMICRO_TLS_VERIFY_ON,
	                   "code: the secure preset "
	                   "(cmicro_tls_config_secure)");
}

CMICRO_API int cmicro_tls_config_insecure(struct cmicro_tls_config **out)
{
	return config_make(out, CMICRO_TLS_VERIFY_OFF,
	                   "code: the insecure preset "
	                   "(cmicro_tls_config_insecure)");
}

CMICRO_API int cmicro_tls_config_new(struct cmicro_tls_config **out)
{
	return config_make(out, CMICRO_TLS_VERIFY_ON,
	                   "code: a custom configuration "
	                   "(cmicro_tls_config_new)");
}

CMICRO_API struct cmicro_tls_config *cmicro_tls_config_hold(struct cmicro_tls_config *cfg)
{
	if (cfg != NULL)
		atomic_fetch_add(&cfg->refs, 1);
	return cfg;
}

static void config_destroy(struct cmicro_tls_config *cfg)
{
	for (size_t i = 0; i < cfg->n_ca_paths; i++)
		free(cfg->ca_paths[i]);
	free(cfg->ca_paths);
	sk_X509_pop_free(cfg->ca_certs, X509_free);
	sk_X509_pop_free(cfg->mem_ca_certs, X509_free);
	cmicro_cert_free(cfg->cert);
	for (size_t i = 0; i < cfg->n_retired; i++)
		cmicro_cert_free(cfg->retired[i]);
	free(cfg->retired);
	free(cfg->cert_file);
	free(cfg->key_file);
	if (cfg->key_passphrase != NULL)
		OPENSSL_cleanse(cfg->key_passphrase, strlen(cfg->key_passphrase));
	free(cfg->key_passphrase);
	free(cfg->server_name);
	free(cfg->crl_file);
	sk_X509_CRL_pop_free(cfg->crls, X509_CRL_free);
	free(cfg->keylog_file);
	X509_STORE_free(cfg->store);
	free(cfg->audit.hashes);
	free(cfg->audit.findings);
	pthread_mutex_destroy(&cfg->audit.lock);
	pthread_mutex_destroy(&cfg->reload_lock);
	pthread_mutex_destroy(&cfg->lock);
	free(cfg);
}

CMICRO_API void cmicro_tls_config_free(struct cmicro_tls_config *cfg)
{
	if (cfg == NULL)
		return;
	if (atomic_fetch_sub(&cfg->refs, 1) == 1)
		config_destroy(cfg);
}

CMICRO_API int cmicro_tls_config_set_verify(struct cmicro_tls_config *cfg,
                                            enum cmicro_tls_verify mode)
{
	int rc;

	if (mode != CMICRO_TLS_VERIFY_OFF && mode != CMICRO_TLS_VERIFY_ON &&
	    mode != CMICRO_TLS_VERIFY_AUDIT)
		return cmi_error(CMICRO_EINVAL,
		                 "verification mode %d is not valid; use "
		                 "CMICRO_TLS_VERIFY_OFF, _ON or _AUDIT",
		                 (int)mode);
	rc = cmi_tls_config_lock(cfg, "cmicro_tls_config_set_verify");
	if (rc != 0)
		return rc;
	cfg->verify = mode;
	cfg->source = CMICRO_TLS_SOURCE_CODE;
	cmi_fmt(cfg->source_text, sizeof(cfg->source_text), "code: cmicro_tls_config_set_verify");
	cmi_tls_config_unlock(cfg);
	return 0;
}

CMICRO_API int cmicro_tls_config_set_system_roots(struct cmicro_tls_config *cfg, bool use)
{
	int rc = cmi_tls_config_lock(cfg, "cmicro_tls_config_set_system_roots");

	if (rc != 0)
		return rc;
	cfg->system_roots = use;
	cmi_tls_config_unlock(cfg);
	return 0;
}

static const char *config_version_name(int version)
{
	switch (version) {
	case 0x0300:
		return "SSL 3.0";
	case 0x0301:
		return "TLS 1.0";
	case 0x0302:
		return "TLS 1.1";
	case 0x0303:
		return "TLS 1.2";
	case 0x0304:
		return "TLS 1.3";
	default:
		return "not a TLS version";
	}
}

CMICRO_API int cmicro_tls_config_set_min_version(struct cmicro_tls_config *cfg, int version)
{
	int rc;

	if (version != CMICRO_TLS_1_2 && version != CMICRO_TLS_1_3)
		return cmi_error(CMICRO_EINVAL,
		                 "minimum TLS version 0x%04x (%s) is not allowed; "
		                 "use CMICRO_TLS_1_2 (the default) or CMICRO_TLS_1_3, because "
		                 "older versions have known attacks",
		                 (unsigned)version, config_version_name(version));
	rc = cmi_tls_config_lock(cfg, "cmicro_tls_config_set_min_version");
	if (rc != 0)
		return rc;
	cfg->min_version = version;
	cmi_tls_config_unlock(cfg);
	return 0;
}

/* Replaces *slot with a copy of value (NULL or "" clears it). */
static int config_set_string(struct cmicro_tls_config *cfg, const char *setter, char **slot,
                             const char *value)
{
	char *copy = NULL;
	int rc;

	if (value != NULL && value[0] != '\0') {
		copy = cmi_strdup(value);
		if (copy == NULL)
			return CMICRO_ENOMEM;
	}
	rc = cmi_tls_config_lock(cfg, setter);
	if (rc != 0) {
		free(copy);
		return rc;
	}
	free(*slot);
	*slot = copy;
	cmi_tls_config_unlock(cfg);
	return 0;
}

CMICRO_API int cmicro_tls_config_set_server_name(struct cmicro_tls_config *cfg, const char *name)
{
	return config_set_string(cfg, "cmicro_tls_config_set_server_name",
	                         cfg ? &cfg->server_name : NULL, name);
}

/* The key log is opened here once so that a wrong path fails at set time
 * rather than at the first handshake. */
CMICRO_API int cmicro_tls_config_set_keylog_file(struct cmicro_tls_config *cfg, const char *path)
{
	int fd;

	if (cfg == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_set_keylog_file: the "
		                                "configuration is NULL");
	if (path != NULL && path[0] != '\0') {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return cmi_error(CMICRO_EIO,
			                 "key log file %s cannot be opened for appending: "
			                 "%s; fix the path or unset SSLKEYLOGFILE",
			                 path, CMI_ERRNO_TEXT(errno));
		close(fd);
	}
	return config_set_string(cfg, "cmicro_tls_config_set_keylog_file", &cfg->keylog_file, path);
}

CMICRO_API int cmicro_tls_config_set_client_auth(struct cmicro_tls_config *cfg,
                                                 enum cmicro_tls_client_auth mode)
{
	int rc;

	if (mode != CMICRO_TLS_CLIENT_AUTH_NONE && mode != CMICRO_TLS_CLIENT_AUTH_REQUEST &&
	    mode != CMICRO_TLS_CLIENT_AUTH_REQUIRE)
		return cmi_error(CMICRO_EINVAL,
		                 "client authentication mode %d is not valid; use "
		                 "CMICRO_TLS_CLIENT_AUTH_NONE, _REQUEST or _REQUIRE",
		                 (int)mode);
	rc = cmi_tls_config_lock(cfg, "cmicro_tls_config_set_client_auth");
	if (rc != 0)
		return rc;
	cfg->client_auth = mode;
	cmi_tls_config_unlock(cfg);
	return 0;
}

CMICRO_API enum cmicro_tls_verify cmicro_tls_config_get_verify(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->verify : CMICRO_TLS_VERIFY_ON;
}

CMICRO_API enum cmicro_tls_source cmicro_tls_config_get_source(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->source : CMICRO_TLS_SOURCE_CODE;
}

CMICRO_API const char *cmicro_tls_config_get_source_text(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->source_text : "";
}

CMICRO_API int cmicro_tls_config_get_min_version(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->min_version : CMICRO_TLS_1_2;
}

CMICRO_API bool cmicro_tls_config_get_system_roots(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->system_roots : false;
}

CMICRO_API size_t cmicro_tls_config_ca_count(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->n_ca_paths : 0;
}

CMICRO_API const char *cmicro_tls_config_ca_path(const struct cmicro_tls_config *cfg, size_t i)
{
	return cfg && i < cfg->n_ca_paths ? cfg->ca_paths[i] : NULL;
}

CMICRO_API bool cmicro_tls_config_has_cert(const struct cmicro_tls_config *cfg)
{
	return cfg != NULL && cfg->cert != NULL;
}

CMICRO_API const struct cmicro_cert *cmicro_tls_config_get_cert(const struct cmicro_tls_config *cfg)
{
	struct cmicro_tls_config *c = (struct cmicro_tls_config *)cfg;
	const struct cmicro_cert *cert;

	if (c == NULL)
		return NULL;
	/* The lock orders the read after a concurrent reload's write; the
	 * pointer stays valid because reloads retire, not free, the old one. */
	pthread_mutex_lock(&c->lock);
	cert = c->cert;
	pthread_mutex_unlock(&c->lock);
	return cert;
}

CMICRO_API const char *cmicro_tls_config_get_cert_file(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->cert_file : NULL;
}

CMICRO_API const char *cmicro_tls_config_get_server_name(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->server_name : NULL;
}

CMICRO_API const char *cmicro_tls_config_get_crl_file(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->crl_file : NULL;
}

CMICRO_API const char *cmicro_tls_config_get_keylog_file(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->keylog_file : NULL;
}

CMICRO_API enum cmicro_tls_client_auth
cmicro_tls_config_get_client_auth(const struct cmicro_tls_config *cfg)
{
	return cfg ? cfg->client_auth : CMICRO_TLS_CLIENT_AUTH_NONE;
}

CMICRO_API bool cmicro_tls_config_insecure_skip_verify(const struct cmicro_tls_config *cfg)
{
	return cfg != NULL && cfg->verify == CMICRO_TLS_VERIFY_OFF;
}

CMICRO_API uint64_t cmicro_tls_config_reason_count(const struct cmicro_tls_config *cfg,
                                                   enum cmicro_tls_reason reason)
{
	if (cfg == NULL || (int)reason < 0 || reason >= CMICRO_TLS_REASON_COUNT)
		return 0;
	return atomic_load(&((struct cmicro_tls_config *)cfg)->reason_counts[reason]);
}
