/* Building the etcd client from options and the environment: endpoints,
 * credentials and the TLS context of https endpoints. */
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "registry/etcd_int.h"

static const char *opt_or_env(const char *opt, const char *env)
{
	const char *value = opt ? opt : cmi_getenv(env);

	return value != NULL && value[0] != '\0' ? value : NULL;
}

static int client_urls(struct cmi_etcd_client *c)
{
	size_t size = c->n_endpoints * sizeof(c->endpoints[0].url) + 1;

	c->urls = cmi_calloc(1, size);
	if (c->urls == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < c->n_endpoints; i++)
		cmi_append(c->urls, size, "%s%s", i ? "," : "", c->endpoints[i].url);
	return 0;
}

/* Builds the client TLS context when an endpoint uses https. */
static int client_tls(struct cmi_etcd_client *c, struct cmicro_tls_config *given)
{
	struct cmicro_tls_config *cfg = NULL;
	bool https = false;
	int rc;

	for (size_t i = 0; i < c->n_endpoints; i++)
		https = https || c->endpoints[i].https;
	if (!https)
		return 0;
	if (given != NULL)
		cfg = cmicro_tls_config_hold(given);
	else if ((rc = cmicro_tls_config_from_env(&cfg)) != 0)
		return rc;
	rc = cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &c->tls);
	cmicro_tls_config_free(cfg);
	return rc;
}

static int client_credentials(struct cmi_etcd_client *c, const struct cmicro_etcd_opts *o)
{
	const char *user = opt_or_env(o->username, "ETCD_USERNAME");
	const char *password = opt_or_env(o->password, "ETCD_PASSWORD");

	if (user == NULL && password != NULL)
		return cmi_error(CMICRO_ECONFIG, "ETCD_PASSWORD is set but ETCD_USERNAME is not; set "
						 "both for etcd's authentication, or neither");
	if (user == NULL)
		return 0;
	c->username = cmi_strdup(user);
	c->password = cmi_strdup(password ? password : "");
	return c->username && c->password ? 0 : CMICRO_ENOMEM;
}

int cmi_etcd_client_new(const struct cmicro_etcd_opts *opts, struct cmi_etcd_client **out)
{
	const struct cmicro_etcd_opts none = {0};
	const struct cmicro_etcd_opts *o = opts ? opts : &none;
	struct cmi_etcd_client *c;
	int rc;

	*out = NULL;
	if (o->timeout_ms < 0)
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_etcd_new: timeout_ms is %d; use a "
						"positive number of milliseconds, or 0 for %d",
				 o->timeout_ms, CMI_ETCD_TIMEOUT_MS);
	/* Watch threads wake their event loops from other threads. */
	rc = cmi_http_threads_init();
	if (rc != 0)
		return rc;
	c = cmi_calloc(1, sizeof(*c));
	if (c == NULL)
		return CMICRO_ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : CMI_ETCD_TIMEOUT_MS;

	rc = cmi_etcd_parse_endpoints(opt_or_env(o->endpoints, "MICRO_REGISTRY_ADDRESS"),
				      &c->endpoints, &c->n_endpoints);
	if (rc == 0)
		rc = client_urls(c);
	if (rc == 0)
		rc = client_credentials(c, o);
	if (rc == 0)
		rc = client_tls(c, o->tls);
	if (rc != 0) {
		cmi_etcd_client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int cmi_etcd_probe(struct cmi_etcd_client *c)
{
	struct cmi_etcd_reply reply;
	char *body = cmi_etcd_body_range(CMI_REGISTRY_KEY_PREFIX, true);
	int rc;

	if (body == NULL)
		return CMICRO_ENOMEM;
	rc = cmi_etcd_call(c, "/v3/kv/range", body, &reply);
	free(body);
	cmi_etcd_reply_clear(&reply);
	return rc;
}
