/*
 * The certificate verification callback of every cmicro context, and the
 * verdicts it leaves on SSL objects. OpenSSL's own verification is replaced
 * whole (SSL_CTX_set_cert_verify_callback), so the three modes share one
 * path: off accepts without looking, on and audit run the full check, and
 * only on rejects.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls/expiry_int.h"
#include "tls/tls_verify_int.h"

static int ssl_data_idx = -1;
static pthread_once_t ssl_data_once = PTHREAD_ONCE_INIT;

static void ssl_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
	struct tls_ssl_data *data = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (data == NULL)
		return;
	free(data->host);
	free(data->peer_label);
	free(data->session_key);
	free(data->address);
	free(data->node_id);
	free(data);
}

static void ssl_data_init(void)
{
	ssl_data_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_data_free);
}

int cmi_tls_ssl_data_index(void)
{
	pthread_once(&ssl_data_once, ssl_data_init);
	return ssl_data_idx;
}

struct tls_ssl_data *cmi_tls_ssl_data(const SSL *ssl)
{
	int idx = cmi_tls_ssl_data_index();

	if (ssl == NULL || idx < 0)
		return NULL;
	return SSL_get_ex_data(ssl, idx);
}

/* The X509_V_ERR code handed back to OpenSSL picks the TLS alert the peer
 * receives, such as certificate_expired rather than a generic failure. */
static int verify_alert_code(const struct cmicro_tls_verdict *v)
{
	if (v->openssl_code != 0)
		return (int)v->openssl_code;
	return X509_V_ERR_APPLICATION_VERIFICATION;
}

int cmi_tls_verify_cb(X509_STORE_CTX *store_ctx, void *arg)
{
	struct cmicro_tls_context *ctx = arg;
	struct cmicro_tls_config *cfg = ctx->cfg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);
	struct cmicro_tls_verdict local;
	struct cmicro_tls_verdict *v = data ? &data->verdict : &local;
	const char *host = NULL;

	if (cfg->verify == CMICRO_TLS_VERIFY_OFF) {
		memset(v, 0, sizeof(*v));
		v->accepted = true;
		X509_STORE_CTX_set_error(store_ctx, X509_V_OK);
		return 1;
	}

	if (ctx->role == CMICRO_TLS_CLIENT)
		host = cfg->server_name ? cfg->server_name : (data ? data->host : NULL);
	/* The connection's own store: after a reload, connections opened
	 * before it finish with the trust they started with. */
	cmi_tls_verify_chain(cfg, X509_STORE_CTX_get0_store(store_ctx), ctx->role, host,
	                     X509_STORE_CTX_get0_cert(store_ctx),
	                     X509_STORE_CTX_get0_untrusted(store_ctx), v);
	v->accepted = v->reason == CMICRO_TLS_REASON_NONE || cfg->verify == CMICRO_TLS_VERIFY_AUDIT;
	if (data != NULL)
		data->verified = true;
	cmi_tls_config_record(cfg, data, ctx->role, v);
	cmi_tls_expiry_observe(X509_STORE_CTX_get0_cert(store_ctx), data ? data->peer_label : NULL);

	if (!v->accepted) {
		X509_STORE_CTX_set_error(store_ctx, verify_alert_code(v));
		return 0;
	}
	X509_STORE_CTX_set_error(store_ctx, X509_V_OK);
	return 1;
}

int cmi_tls_ssl_set_peer(SSL *ssl, const char *address, const char *node_id)
{
	struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);
	char *a = address ? cmi_strdup(address) : NULL;
	char *n = node_id ? cmi_strdup(node_id) : NULL;

	if (data == NULL || (address && a == NULL) || (node_id && n == NULL)) {
		free(a);
		free(n);
		return data == NULL ? CMICRO_EINVAL : CMICRO_ENOMEM;
	}
	free(data->address);
	free(data->node_id);
	data->address = a;
	data->node_id = n;
	return 0;
}

CMICRO_API int cmicro_tls_ssl_verdict(const SSL *ssl, struct cmicro_tls_verdict *verdict)
{
	struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);

	if (verdict == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_ssl_verdict: verdict must not be NULL");
	memset(verdict, 0, sizeof(*verdict));
	if (data == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_ssl_verdict: the SSL object was not "
		                                "created by cmicro_tls_ssl_new");
	*verdict = data->verdict;
	if (!data->verified)
		verdict->accepted = true;
	return 0;
}

static const char *verify_version_name(int version)
{
	switch (version) {
	case SSL3_VERSION:
		return "SSL 3.0";
	case TLS1_VERSION:
		return "TLS 1.0";
	case TLS1_1_VERSION:
		return "TLS 1.1";
	case TLS1_2_VERSION:
		return "TLS 1.2";
	case TLS1_3_VERSION:
		return "TLS 1.3";
	default:
		return "an unknown TLS version";
	}
}

/* A peer that sent its hello names its version. A server that supports
 * none of the versions the client offered sends a protocol_version alert
 * instead, which only shows that it supports no version from the floor up. */
static void failure_protocol(const SSL *ssl, const struct tls_ssl_data *data, int reason,
                             struct cmicro_tls_verdict *v)
{
	int floor = SSL_get_min_proto_version((SSL *)ssl);
	const char *min = verify_version_name(floor);

	v->reason = CMICRO_TLS_REASON_PROTOCOL_VERSION;
	if (data != NULL && data->peer_version != 0 && data->peer_version < floor)
		cmi_fmt(v->message, sizeof(v->message),
		        "peer offered only %s; the minimum is %s: "
		        "upgrade the peer to TLS 1.2 or later",
		        verify_version_name(data->peer_version), min);
	else if (reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION)
		cmi_fmt(
		    v->message, sizeof(v->message),
		    "peer rejected %s and later (protocol_version "
		    "alert), so it supports only older versions; the minimum is %s: upgrade the "
		    "peer to TLS 1.2 or later",
		    min, min);
	else
		cmi_fmt(v->message, sizeof(v->message),
		        "no TLS version in common with the peer; "
		        "the minimum is %s: upgrade the peer to TLS 1.2 or later",
		        min);
}

static void failure_no_cert(const SSL *ssl, struct cmicro_tls_verdict *v)
{
	v->reason = CMICRO_TLS_REASON_NO_CERTIFICATE;
	if (SSL_is_server((SSL *)ssl))
		cmi_fmt(v->message, sizeof(v->message),
		        "the client sent no certificate but this "
		        "server requires one (client auth require); give the client a certificate "
		        "and key (MICRO_TLS_CERT_FILE and MICRO_TLS_KEY_FILE)");
	else
		cmi_fmt(v->message, sizeof(v->message),
		        "the server requires a client certificate "
		        "and none was sent; set MICRO_TLS_CERT_FILE and MICRO_TLS_KEY_FILE to this "
		        "node's certificate and key");
}

/* Words for the peer of ssl and for the extended key usage this node's own
 * certificate needs in its role. */
static const char *failure_peer_word(const SSL *ssl)
{
	return SSL_is_server((SSL *)ssl) ? "client" : "server";
}

/* The peer's alert names only a category. For the generic ones
 * (bad_certificate, certificate_unknown: Go sends bad_certificate for every
 * rejection) this node's own certificate is checked for the usual causes. */
static bool failure_own_cert_cause(const SSL *ssl, const char *alert,
                                   struct cmicro_tls_verdict *v)
{
	X509 *own = SSL_get_certificate(ssl);
	bool server = SSL_is_server((SSL *)ssl);
	uint32_t want = server ? XKU_SSL_SERVER : XKU_SSL_CLIENT;
	char when[32];

	if (own == NULL)
		return false;
	if (X509_cmp_current_time(X509_get0_notAfter(own)) < 0) {
		cmi_tls_time_text(X509_get0_notAfter(own), when, sizeof(when));
		v->reason = CMICRO_TLS_REASON_EXPIRED;
		cmi_fmt(v->message, sizeof(v->message),
		        "the %s rejected this node's certificate (%s alert): it expired at %s; "
		        "renew it",
		        failure_peer_word(ssl), alert, when);
		return true;
	}
	if ((X509_get_extension_flags(own) & EXFLAG_XKUSAGE) &&
	    !(X509_get_extended_key_usage(own) & want)) {
		v->reason = CMICRO_TLS_REASON_BAD_USAGE;
		cmi_fmt(v->message, sizeof(v->message),
		        "the %s rejected this node's certificate (%s alert): it needs extended "
		        "key usage %s; issue it with cmicro cert issue --usage %s",
		        failure_peer_word(ssl), alert, server ? "serverAuth" : "clientAuth",
		        server ? "server|both" : "client|both");
		return true;
	}
	return false;
}

static void failure_rejected_usage(const SSL *ssl, struct cmicro_tls_verdict *v)
{
	bool server = SSL_is_server((SSL *)ssl);

	v->reason = CMICRO_TLS_REASON_BAD_USAGE;
	cmi_fmt(v->message, sizeof(v->message),
	        "the %s rejected this node's certificate (unsupported_certificate alert): it "
	        "needs extended key usage %s; issue it with cmicro cert issue --usage %s",
	        failure_peer_word(ssl), server ? "serverAuth" : "clientAuth",
	        server ? "server|both" : "client|both");
}

/* Maps an alert the peer sent about this node's certificate; false when
 * reason is not such an alert. */
static bool failure_from_alert(const SSL *ssl, int reason, struct cmicro_tls_verdict *v)
{
	const char *peer = failure_peer_word(ssl);

	switch (reason) {
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		v->reason = CMICRO_TLS_REASON_UNKNOWN_AUTHORITY;
		cmi_fmt(v->message, sizeof(v->message),
		        "the %s rejected this node's certificate: unknown CA (unknown_ca alert); "
		        "add this node's CA to the %s's MICRO_TLS_CA_FILE",
		        peer, peer);
		return true;
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		if (!failure_own_cert_cause(ssl, "certificate_expired", v)) {
			v->reason = CMICRO_TLS_REASON_EXPIRED;
			cmi_fmt(v->message, sizeof(v->message),
			        "the %s rejected this node's certificate as expired "
			        "(certificate_expired alert); renew it, and check the clocks "
			        "(NTP) of both hosts",
			        peer);
		}
		return true;
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
		failure_rejected_usage(ssl, v);
		return true;
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
		v->reason = CMICRO_TLS_REASON_REVOKED;
		cmi_fmt(v->message, sizeof(v->message),
		        "the %s rejected this node's certificate as revoked "
		        "(certificate_revoked alert); install a newly issued certificate",
		        peer);
		return true;
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
		if (!failure_own_cert_cause(ssl, reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE
		                                     ? "bad_certificate"
		                                     : "certificate_unknown",
		                            v)) {
			v->reason = CMICRO_TLS_REASON_UNKNOWN_AUTHORITY;
			cmi_fmt(v->message, sizeof(v->message),
			        "the %s rejected this node's certificate without naming the cause "
			        "(%s alert); most often its MICRO_TLS_CA_FILE lacks this node's CA: "
			        "check the %s's log",
			        peer,
			        reason == SSL_R_SSLV3_ALERT_BAD_CERTIFICATE ? "bad_certificate"
			                                                    : "certificate_unknown",
			        peer);
		}
		return true;
	default:
		return false;
	}
}

static void failure_plaintext(const SSL *ssl, struct cmicro_tls_verdict *v)
{
	v->reason = CMICRO_TLS_REASON_PLAINTEXT;
	cmi_fmt(v->message, sizeof(v->message),
	        "the peer is not speaking TLS (%s); use https "
	        "on both sides or http on both",
	        SSL_is_server((SSL *)ssl) ? "it sent a plain HTTP request"
	                                  : "its reply is not a TLS record");
}

/* Maps one OpenSSL SSL-library reason to a verdict; false when unknown. */
static bool failure_from_reason(const SSL *ssl, const struct tls_ssl_data *data, int reason,
                                struct cmicro_tls_verdict *v)
{
	switch (reason) {
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
	case SSL_R_NO_PROTOCOLS_AVAILABLE:
	case SSL_R_VERSION_TOO_LOW:
		failure_protocol(ssl, data, reason, v);
		return true;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		failure_no_cert(ssl, v);
		return true;
	case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
		/* A TLS 1.2 server that requires a client certificate sends a
		 * plain handshake_failure when none comes. */
		if (SSL_is_server((SSL *)ssl) || SSL_get_certificate(ssl) != NULL)
			return false;
		failure_no_cert(ssl, v);
		return true;
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_WRONG_VERSION_NUMBER:
		failure_plaintext(ssl, v);
		return true;
	default:
		return failure_from_alert(ssl, reason, v);
	}
}

/* Appends one queued error: an errno text for system errors (OpenSSL
 * queues those with ERR_LIB_SYS), else OpenSSL's own string. */
static void failure_append_error(char *text, size_t size, unsigned long e)
{
	char one[256];

	if (ERR_SYSTEM_ERROR(e))
		cmi_fmt(one, sizeof(one), "system error: %s", CMI_ERRNO_TEXT(ERR_GET_REASON(e)));
	else
		ERR_error_string_n(e, one, sizeof(one));
	cmi_append(text, size, "%s%s", text[0] ? "; " : "", one);
}

CMICRO_API void cmicro_tls_ssl_failure(const SSL *ssl, struct cmicro_tls_verdict *verdict)
{
	struct tls_ssl_data *data = cmi_tls_ssl_data(ssl);
	char openssl_text[384] = "";
	bool known = false;
	unsigned long e;

	if (verdict == NULL)
		return;
	memset(verdict, 0, sizeof(*verdict));
	if (data != NULL && data->verified && data->verdict.reason != CMICRO_TLS_REASON_NONE) {
		*verdict = data->verdict;
		ERR_clear_error();
		return;
	}
	while ((e = ERR_get_error()) != 0) {
		/* Library 0 is no OpenSSL library: such a value is an
		 * SSL_get_error() code that some caller queued by mistake. */
		if (ERR_GET_LIB(e) == 0 && !ERR_SYSTEM_ERROR(e))
			continue;
		failure_append_error(openssl_text, sizeof(openssl_text), e);
		if (!known && ERR_GET_LIB(e) == ERR_LIB_SSL)
			known = failure_from_reason(ssl, data, ERR_GET_REASON(e), verdict);
	}
	if (known)
		return;
	verdict->reason = CMICRO_TLS_REASON_OTHER;
	cmi_fmt(verdict->message, sizeof(verdict->message), "%s",
	        openssl_text[0] ? openssl_text : "the connection closed during the handshake");
}
