/*
 * OpenSSL contexts built from a configuration: protocol floor, options,
 * identity, verification callback, ALPN, session resumption and key log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls_config_int.h"

/* ALPN wire format: one length-prefixed protocol. The broker speaks
 * HTTP/1.1 only, as go-micro's HTTP broker does. */
static const unsigned char ctx_alpn[] = "\x08http/1.1";

static const unsigned char ctx_session_id[] = "cmicro";

static int ctx_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                           const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *selected = NULL;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&selected, outlen, ctx_alpn, sizeof(ctx_alpn) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = selected;
	return SSL_TLSEXT_ERR_OK;
}

/* Records the version field of the peer's hello, so that a failed version
 * negotiation can name the version the peer offered, and whether the
 * server asked for a client certificate. */
static void ctx_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                       SSL *ssl, void *arg)
{
	const unsigned char *p = buf;
	struct tls_ssl_data *data;

	(void)version;
	(void)arg;
	if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1)
		return;
	data = cmi_tls_ssl_data(ssl);
	if (data == NULL)
		return;
	if (p[0] == SSL3_MT_CERTIFICATE_REQUEST)
		data->cert_requested = true;
	if ((p[0] == SSL3_MT_CLIENT_HELLO || p[0] == SSL3_MT_SERVER_HELLO) && len >= 6 &&
	    data->peer_version == 0)
		data->peer_version = (p[4] << 8) | p[5];
}

static void ctx_keylog_cb(const SSL *ssl, const char *line)
{
	struct cmicro_tls_context *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	size_t len = strlen(line);
	char *buf;

	if (ctx == NULL || ctx->keylog_fd < 0)
		return;
	buf = malloc(len + 1);
	if (buf == NULL)
		return;
	memcpy(buf, line, len);
	buf[len] = '\n';
	/* One write per line: with O_APPEND, lines of several processes
	 * sharing the file do not interleave. */
	if (write(ctx->keylog_fd, buf, len + 1) < 0)
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-KEYLOG",
		        "cannot append to key log file %s: "
		        "%s",
		        ctx->cfg->keylog_file, CMI_ERRNO_TEXT(errno));
	free(buf);
}

static int ctx_open_keylog(struct cmicro_tls_context *ctx)
{
	const char *path = ctx->cfg->keylog_file;

	if (path == NULL)
		return 0;
	ctx->keylog_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (ctx->keylog_fd < 0)
		return cmi_error(CMICRO_EIO,
		                 "key log file %s cannot be opened for appending: %s; "
		                 "fix the path or unset SSLKEYLOGFILE",
		                 path, CMI_ERRNO_TEXT(errno));
	cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-KEYLOG",
	        "TLS session keys are written to %s "
	        "(SSLKEYLOGFILE): anyone who can read that file can decrypt this node's traffic; "
	        "unset SSLKEYLOGFILE outside debugging",
	        path);
	return 0;
}

SSL_SESSION *cmi_tls_session_get(struct cmicro_tls_context *ctx, const char *key)
{
	SSL_SESSION *found = NULL;

	if (ctx == NULL || key == NULL)
		return NULL;
	pthread_mutex_lock(&ctx->session_lock);
	for (size_t i = 0; i < CMI_TLS_SESSION_MAX; i++) {
		struct tls_session_entry *e = &ctx->sessions[i];

		if (e->key != NULL && strcmp(e->key, key) == 0) {
			if (SSL_SESSION_up_ref(e->session))
				found = e->session;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->session_lock);
	return found;
}

/* Returns the entry for key, else an empty one, else the oldest. */
static struct tls_session_entry *ctx_session_slot(struct cmicro_tls_context *ctx, const char *key)
{
	struct tls_session_entry *empty = NULL;
	struct tls_session_entry *oldest = &ctx->sessions[0];

	for (size_t i = 0; i < CMI_TLS_SESSION_MAX; i++) {
		struct tls_session_entry *e = &ctx->sessions[i];

		if (e->key != NULL && strcmp(e->key, key) == 0)
			return e;
		if (e->key == NULL && empty == NULL)
			empty = e;
		if (e->stamp < oldest->stamp)
			oldest = e;
	}
	return empty != NULL ? empty : oldest;
}

int cmi_tls_session_put(struct cmicro_tls_context *ctx, const char *key, SSL_SESSION *session)
{
	struct tls_session_entry *e;
	char *copy;

	if (ctx == NULL || key == NULL || session == NULL)
		return cmi_error(CMICRO_EINVAL, "cmi_tls_session_put: context, key and session "
		                                "must be given");
	copy = cmi_strdup(key);
	if (copy == NULL)
		return CMICRO_ENOMEM;
	if (!SSL_SESSION_up_ref(session)) {
		free(copy);
		return cmi_error_ossl(CMICRO_EINTERNAL, "cannot reference a TLS session");
	}
	pthread_mutex_lock(&ctx->session_lock);
	e = ctx_session_slot(ctx, key);
	free(e->key);
	SSL_SESSION_free(e->session);
	e->key = copy;
	e->session = session;
	e->stamp = ++ctx->session_clock;
	pthread_mutex_unlock(&ctx->session_lock);
	return 0;
}

/* Caches the sessions the server sends, but only for connections whose
 * peer passed verification (or whose context does not verify): resuming
 * skips verification, so a session must never carry a failed peer forward. */
static int ctx_new_session_cb(SSL *ssl, SSL_SESSION *session)
{
	struct cmicro_tls_context *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);
	SSL_SESSION *copy;
	bool trusted;

	if (ctx == NULL || data == NULL || data->session_key == NULL)
		return 0;
	trusted = ctx->cfg->verify == CMICRO_TLS_VERIFY_OFF || SSL_session_reused(ssl) ||
	          (data->verified && data->verdict.reason == CMICRO_TLS_REASON_NONE);
	if (!trusted || !SSL_SESSION_is_resumable(session))
		return 0;

	/* A copy, because OpenSSL marks the connection's own session object
	 * not resumable when the connection is freed without a TLS close. */
	copy = SSL_SESSION_dup(session);
	if (copy == NULL) {
		ERR_clear_error();
		return 0;
	}
	(void)cmi_tls_session_put(ctx, data->session_key, copy);
	SSL_SESSION_free(copy);
	return 0;
}

int cmi_tls_session_resume(SSL *ssl, const char *key)
{
	struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);
	struct cmicro_tls_context *ctx;
	SSL_SESSION *session;
	char *copy;

	if (data == NULL || key == NULL)
		return cmi_error(CMICRO_EINVAL,
		                 "cmi_tls_session_resume: the SSL object must come "
		                 "from cmicro_tls_ssl_new and the key must be given");
	ctx = data->ctx;
	copy = cmi_strdup(key);
	if (copy == NULL)
		return CMICRO_ENOMEM;
	free(data->session_key);
	data->session_key = copy;

	session = cmi_tls_session_get(ctx, key);
	if (session == NULL)
		return 0;
	if (!SSL_set_session(ssl, session)) {
		SSL_SESSION_free(session);
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot offer the cached session for %s",
		                      key);
	}
	SSL_SESSION_free(session);
	return 0;
}

/* The protocol floor, and options that close known weaknesses:
 * renegotiation (CVE-2009-3555 class attacks and a DoS vector; TLS 1.3 has
 * none) and compression (CRIME). */
static int ctx_set_protocol(struct cmicro_tls_context *ctx, SSL_CTX *s)
{
	if (!SSL_CTX_set_min_proto_version(s, ctx->cfg->min_version))
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot set the minimum TLS version 0x%04x",
		                      (unsigned)ctx->cfg->min_version);
	SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Send exactly the configured chain, as Go does; OpenSSL would
	 * otherwise complete it from the trust store, hiding a chain file that
	 * Go peers would find incomplete. */
	SSL_CTX_set_mode(s, SSL_MODE_NO_AUTO_CHAIN);
	SSL_CTX_set_msg_callback(s, ctx_msg_cb);
	return 0;
}

static int ctx_set_identity(SSL_CTX *s, const struct cmicro_cert *id)
{
	char subject[256];

	if (id == NULL)
		return 0;
	if (id->key == NULL)
		return cmi_error(CMICRO_EKEY, "the identity certificate carries no private key; "
		                              "load it with its key");
	if (SSL_CTX_use_cert_and_key(s, id->x509, id->key, id->chain, 1) == 1)
		return 0;
	cmi_tls_name_text(X509_get_subject_name(id->x509), subject, sizeof(subject));
	return cmi_error_ossl(
	    CMICRO_EKEY,
	    "cannot use certificate %s as this node's identity "
	    "(a key under RSA 2048 bits or a SHA-1 signature is refused); reissue "
	    "it with ECDSA P-256 or RSA >= 2048 and SHA-256",
	    subject);
}

/* Clients always verify through the callback (which accepts everything in
 * off mode). A server requests client certificates per client_auth and
 * sends no CA list: Go clients then send their certificate whatever CA
 * issued it, instead of silently withholding it. */
static int ctx_set_verify(struct cmicro_tls_context *ctx, SSL_CTX *s)
{
	int mode = SSL_VERIFY_PEER;

	if (ctx->role == CMICRO_TLS_SERVER) {
		if (ctx->cfg->client_auth == CMICRO_TLS_CLIENT_AUTH_NONE)
			mode = SSL_VERIFY_NONE;
		else if (ctx->cfg->client_auth == CMICRO_TLS_CLIENT_AUTH_REQUIRE)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	}
	SSL_CTX_set_verify(s, mode, NULL);
	SSL_CTX_set_cert_verify_callback(s, cmi_tls_verify_cb, ctx);
	return 0;
}

static int ctx_set_alpn_and_sessions(struct cmicro_tls_context *ctx, SSL_CTX *s)
{
	if (ctx->role == CMICRO_TLS_CLIENT) {
		/* SSL_CTX_set_alpn_protos returns 0 on success. */
		if (SSL_CTX_set_alpn_protos(s, ctx_alpn, sizeof(ctx_alpn) - 1) != 0)
			return cmi_error_ossl(CMICRO_ECRYPTO, "cannot set ALPN protocols");
		SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_CLIENT |
		                                      SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(s, ctx_new_session_cb);
		return 0;
	}
	SSL_CTX_set_alpn_select_cb(s, ctx_alpn_select, NULL);
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER);
	if (!SSL_CTX_set_session_id_context(s, ctx_session_id, sizeof(ctx_session_id) - 1))
		return cmi_error_ossl(CMICRO_ECRYPTO, "cannot set the session id context");
	return 0;
}

static int ctx_check_args(struct cmicro_tls_config *cfg, enum cmicro_tls_role role,
                          const struct cmicro_cert *identity, struct cmicro_tls_context **out)
{
	if (out == NULL || cfg == NULL)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_tls_context_new: configuration and out must "
		                 "be given");
	*out = NULL;
	if (role != CMICRO_TLS_CLIENT && role != CMICRO_TLS_SERVER)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_tls_context_new: role %d is neither "
		                 "CMICRO_TLS_CLIENT nor CMICRO_TLS_SERVER",
		                 (int)role);
	if (role == CMICRO_TLS_SERVER && identity == NULL && cfg->cert == NULL)
		return cmi_error(CMICRO_ECONFIG,
		                 "a TLS server needs a certificate: set one with "
		                 "cmicro_tls_config_set_cert_files (or MICRO_TLS_CERT_FILE and "
		                 "MICRO_TLS_KEY_FILE), or pass an identity such as a "
		                 "cmicro_cert_selfsigned certificate");
	return 0;
}

/* Creates an OpenSSL context with every setting of ctx and identity id
 * (NULL: none), but no trust store yet. */
static int ctx_make(struct cmicro_tls_context *ctx, const struct cmicro_cert *id, SSL_CTX **out)
{
	SSL_CTX *s =
	    SSL_CTX_new(ctx->role == CMICRO_TLS_CLIENT ? TLS_client_method() : TLS_server_method());
	int rc;

	if (s == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "cannot create an OpenSSL context");
	SSL_CTX_set_app_data(s, ctx);
	rc = ctx_set_protocol(ctx, s);
	if (rc == 0)
		rc = ctx_set_identity(s, id);
	if (rc == 0)
		rc = ctx_set_verify(ctx, s);
	if (rc == 0)
		rc = ctx_set_alpn_and_sessions(ctx, s);
	if (rc != 0) {
		SSL_CTX_free(s);
		return rc;
	}
	if (ctx->keylog_fd >= 0)
		SSL_CTX_set_keylog_callback(s, ctx_keylog_cb);
	*out = s;
	return 0;
}

/* Returns a held copy of the identity to present: the one given to
 * cmicro_tls_context_new, else the configuration's. The copy keeps it alive
 * through a concurrent reload. */
static struct cmicro_cert *ctx_identity(struct cmicro_tls_context *ctx)
{
	struct cmicro_cert *id = NULL;

	if (ctx->identity != NULL)
		(void)cmi_cert_ref_copy(ctx->identity, &id);
	else
		id = cmi_tls_config_cert_hold(ctx->cfg);
	return id;
}

static int ctx_build(struct cmicro_tls_context *ctx)
{
	struct cmicro_cert *id;
	X509_STORE *store;
	int rc;

	/* Read before the material, so a reload racing with this build is
	 * seen as a newer generation at the next connection. */
	ctx->generation = cmi_tls_config_generation(ctx->cfg);
	id = ctx_identity(ctx);
	rc = ctx_open_keylog(ctx);
	if (rc == 0)
		rc = ctx_make(ctx, id, &ctx->ssl_ctx);
	cmicro_cert_free(id);
	if (rc != 0)
		return rc;

	/* Frozen last, so a context that fails to build leaves the
	 * configuration open for a fix. */
	store = cmi_tls_config_freeze(ctx->cfg);
	if (store == NULL)
		return CMICRO_ECRYPTO;
	SSL_CTX_set_cert_store(ctx->ssl_ctx, store);
	return 0;
}

/* Drops the cached client sessions: resuming skips verification, and the
 * trust they were verified under has just been replaced. */
static void ctx_flush_sessions(struct cmicro_tls_context *ctx)
{
	pthread_mutex_lock(&ctx->session_lock);
	for (size_t i = 0; i < CMI_TLS_SESSION_MAX; i++) {
		free(ctx->sessions[i].key);
		SSL_SESSION_free(ctx->sessions[i].session);
		ctx->sessions[i].key = NULL;
		ctx->sessions[i].session = NULL;
		ctx->sessions[i].stamp = 0;
	}
	pthread_mutex_unlock(&ctx->session_lock);
}

/* Builds a new OpenSSL context from reloaded material (swap_lock held).
 * Connections hold references to the old one, which lives until they end. */
static void ctx_rebuild(struct cmicro_tls_context *ctx, unsigned generation)
{
	struct cmicro_cert *id = ctx_identity(ctx);
	SSL_CTX *fresh = NULL;
	X509_STORE *store;
	int rc = ctx_make(ctx, id, &fresh);

	cmicro_cert_free(id);
	store = rc == 0 ? cmi_tls_config_freeze(ctx->cfg) : NULL;
	if (store == NULL) {
		SSL_CTX_free(fresh);
		cmi_log(CMICRO_LOG_ERR, "tls", "TLS-RELOAD-FAILED",
		        "cannot build a TLS context from the reloaded files: %s; connections keep "
		        "the previous certificate and CAs",
		        cmicro_last_errmsg());
		ctx->generation = generation;
		return;
	}
	SSL_CTX_set_cert_store(fresh, store);
	SSL_CTX_free(ctx->ssl_ctx);
	ctx->ssl_ctx = fresh;
	ctx->generation = generation;
	if (ctx->role == CMICRO_TLS_CLIENT)
		ctx_flush_sessions(ctx);
}

/* Returns the current OpenSSL context with a new reference, rebuilding it
 * first when the configuration was reloaded since it was built. */
static SSL_CTX *ctx_current(struct cmicro_tls_context *ctx)
{
	unsigned generation = cmi_tls_config_generation(ctx->cfg);
	SSL_CTX *s;

	pthread_mutex_lock(&ctx->swap_lock);
	if (generation != ctx->generation)
		ctx_rebuild(ctx, generation);
	s = ctx->ssl_ctx;
	if (!SSL_CTX_up_ref(s))
		s = NULL;
	pthread_mutex_unlock(&ctx->swap_lock);
	return s;
}

X509 *cmi_tls_context_own_cert(struct cmicro_tls_context *ctx)
{
	SSL_CTX *s = ctx != NULL ? ctx_current(ctx) : NULL;
	X509 *x = s != NULL ? SSL_CTX_get0_certificate(s) : NULL;

	if (x != NULL && !X509_up_ref(x))
		x = NULL;
	SSL_CTX_free(s);
	return x;
}

CMICRO_API int cmicro_tls_context_new(struct cmicro_tls_config *cfg, enum cmicro_tls_role role,
                                      const struct cmicro_cert *identity,
                                      struct cmicro_tls_context **out)
{
	struct cmicro_tls_context *ctx;
	int rc = ctx_check_args(cfg, role, identity, out);

	if (rc != 0)
		return rc;
	ctx = cmi_calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return CMICRO_ENOMEM;
	ctx->cfg = cmicro_tls_config_hold(cfg);
	ctx->role = role;
	ctx->keylog_fd = -1;
	pthread_mutex_init(&ctx->session_lock, NULL);
	pthread_mutex_init(&ctx->swap_lock, NULL);

	if (identity != NULL)
		rc = cmi_cert_ref_copy(identity, &ctx->identity);
	if (rc == 0)
		rc = ctx_build(ctx);
	if (rc != 0) {
		cmicro_tls_context_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

CMICRO_API void cmicro_tls_context_free(struct cmicro_tls_context *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < CMI_TLS_SESSION_MAX; i++) {
		free(ctx->sessions[i].key);
		SSL_SESSION_free(ctx->sessions[i].session);
	}
	/* Connections still open hold the context: their callbacks must find
	 * no cmicro state rather than a freed one. */
	if (ctx->ssl_ctx != NULL)
		SSL_CTX_set_app_data(ctx->ssl_ctx, NULL);
	SSL_CTX_free(ctx->ssl_ctx);
	if (ctx->keylog_fd >= 0)
		close(ctx->keylog_fd);
	cmicro_cert_free(ctx->identity);
	pthread_mutex_destroy(&ctx->swap_lock);
	pthread_mutex_destroy(&ctx->session_lock);
	cmicro_tls_config_free(ctx->cfg);
	free(ctx);
}

bool cmi_tls_ssl_cert_requested(const SSL *ssl)
{
	const struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);

	return data != NULL && data->cert_requested;
}

CMICRO_API SSL_CTX *cmicro_tls_context_ssl_ctx(const struct cmicro_tls_context *ctx)
{
	return ctx ? ctx->ssl_ctx : NULL;
}

CMICRO_API struct cmicro_tls_config *cmicro_tls_context_config(const struct cmicro_tls_context *ctx)
{
	return ctx ? ctx->cfg : NULL;
}

static int ctx_ssl_data_new(struct cmicro_tls_context *ctx, const char *host,
                            const char *peer_label, struct tls_ssl_data **out)
{
	struct tls_ssl_data *data = cmi_calloc(1, sizeof(*data));

	if (data == NULL)
		return CMICRO_ENOMEM;
	data->ctx = ctx;
	data->verdict.accepted = true;
	if (peer_label == NULL)
		peer_label = host != NULL ? host : "(unnamed peer)";
	data->host = host ? cmi_strdup(host) : NULL;
	data->peer_label = cmi_strdup(peer_label);
	if ((host != NULL && data->host == NULL) || data->peer_label == NULL) {
		free(data->host);
		free(data->peer_label);
		free(data);
		return CMICRO_ENOMEM;
	}
	*out = data;
	return 0;
}

/* SNI carries DNS names only: RFC 6066 section 3 forbids IP literals. */
static int ctx_client_setup(struct cmicro_tls_context *ctx, SSL *ssl, const char *host)
{
	const char *name = ctx->cfg->server_name ? ctx->cfg->server_name : host;

	if (name == NULL && ctx->cfg->verify != CMICRO_TLS_VERIFY_OFF)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_tls_ssl_new: a verifying client needs the "
		                 "host it connects to, to check the certificate's names; pass the "
		                 "host or set a server name");
	if (name != NULL && !cmi_host_is_ip(name) && !SSL_set_tlsext_host_name(ssl, name))
		return cmi_error_ossl(CMICRO_EINVAL,
		                      "cannot send server name \"%s\" (SNI); check "
		                      "the host name",
		                      name);
	SSL_set_connect_state(ssl);
	return 0;
}

CMICRO_API int cmicro_tls_ssl_new(struct cmicro_tls_context *ctx, const char *host,
                                  const char *peer_label, SSL **out)
{
	struct tls_ssl_data *data = NULL;
	SSL *ssl = NULL;
	SSL_CTX *s;
	int rc;

	if (ctx == NULL || out == NULL)
		return cmi_error(CMICRO_EINVAL,
		                 "cmicro_tls_ssl_new: context and out must be given");
	*out = NULL;
	s = ctx_current(ctx);
	ssl = s != NULL ? SSL_new(s) : NULL;
	SSL_CTX_free(s);
	if (ssl == NULL)
		return cmi_error_ossl(CMICRO_ENOMEM, "cannot create an SSL object");
	rc = ctx_ssl_data_new(ctx, host, peer_label, &data);
	if (rc != 0)
		goto out;
	if (!SSL_set_ex_data(ssl, cmi_tls_ssl_data_index(), data)) {
		free(data->host);
		free(data->peer_label);
		free(data);
		rc = cmi_error_ossl(CMICRO_ENOMEM, "cannot attach cmicro state to an SSL object");
		goto out;
	}
	if (ctx->role == CMICRO_TLS_CLIENT)
		rc = ctx_client_setup(ctx, ssl, host);
	else
		SSL_set_accept_state(ssl);
	if (rc != 0)
		goto out;
	*out = ssl;
	ssl = NULL;
out:
	SSL_free(ssl);
	return rc;
}
