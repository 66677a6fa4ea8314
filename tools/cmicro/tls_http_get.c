/* A blocking GET to a broker listener for the `cmicro tls` subcommands,
 * on the library's own HTTP client and a private event loop. */
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "tls_cli.h"

struct get_state {
	bool done;
	int status;
	int err;
	enum cmicro_tls_reason reason;
	char message[512];
	char *body;
};

static void get_done(void *arg, const struct cmi_http_result *res)
{
	struct get_state *st = arg;

	st->done = true;
	st->status = res->status;
	st->err = res->err;
	st->reason = res->tls_reason;
	cmi_fmt(st->message, sizeof(st->message), "%s", res->message);
	if (res->body != NULL)
		st->body = strdup(res->body);
}

/* Report reads are diagnostics of a node the operator names, so the
 * connection does not verify; the report itself lists what failed. The
 * node's own certificate, when the environment names one, is presented to
 * brokers that require client certificates. */
static int get_client_ctx(struct cmicro_tls_context **ctx)
{
	const char *cert = getenv("MICRO_TLS_CERT_FILE");
	const char *key = getenv("MICRO_TLS_KEY_FILE");
	struct cmicro_tls_config *cfg = NULL;
	int rc = cmicro_tls_config_insecure(&cfg);

	if (rc == 0 && cert != NULL && cert[0] != '\0' && key != NULL && key[0] != '\0')
		rc = cmicro_tls_config_set_cert_files(cfg, cert, key, NULL);
	if (rc == 0)
		rc = cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, ctx);
	cmicro_tls_config_free(cfg);
	return rc;
}

static int get_once(struct event_base *base, struct cmicro_tls_context *ctx, bool https,
		    const char *address, const char *path, int timeout_ms, struct get_state *st)
{
	struct cmi_http_client *client = NULL;
	struct cmi_http_post post = {0};
	int rc = cmi_http_client_new(base, ctx, &client);

	if (rc != 0)
		return rc;
	post.https = https;
	post.address = address;
	post.path = path;
	post.peer_label = address;
	post.timeout_ms = timeout_ms;
	post.get = true;
	rc = cmi_http_client_post(client, &post, get_done, st);
	while (rc == 0 && !st->done)
		event_base_loop(base, EVLOOP_ONCE);
	cmi_http_client_free(client);
	return rc;
}

int tls_cli_http_get(const char *address, const char *path, int timeout_ms, char **body,
		     int *status, char *err, size_t err_size)
{
	struct event_base *base = event_base_new();
	struct cmicro_tls_context *ctx = NULL;
	struct get_state st = {0};
	int rc = base ? get_client_ctx(&ctx) : CMICRO_ENOMEM;

	*body = NULL;
	if (rc == 0)
		rc = get_once(base, ctx, true, address, path, timeout_ms, &st);
	if (rc == 0 && st.status == 0 && st.reason == CMICRO_TLS_REASON_PLAINTEXT) {
		free(st.body);
		memset(&st, 0, sizeof(st));
		rc = get_once(base, ctx, false, address, path, timeout_ms, &st);
	}
	cmicro_tls_context_free(ctx);
	if (base != NULL)
		event_base_free(base);
	if (rc != 0) {
		cmi_fmt(err, err_size, "%s", cmicro_last_errmsg());
		return -1;
	}
	if (st.status == 0) {
		cmi_fmt(err, err_size, "%s", st.message);
		free(st.body);
		return -1;
	}
	*status = st.status;
	*body = st.body;
	return 0;
}
