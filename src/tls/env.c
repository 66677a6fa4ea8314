/*
 * The configuration from the environment, as go-micro's Config() decides it,
 * plus the variables cmicro adds for migrations without code changes.
 *
 *   MICRO_TLS_SECURE      true|1|yes|on: verify; false|0|no|off|"": do not;
 *                         audit: verify, log and count, never reject;
 *                         anything else: verify (fail closed) with a warning
 *   MICRO_TLS_INSECURE    true: do not verify (go-micro v6's opt-out), unless
 *                         MICRO_TLS_SECURE requests true or audit
 *   MICRO_TLS_CA_FILE     extra trusted CA files, separated by ',' or ':' (blanks around
 *                         each file name are dropped)
 *   MICRO_TLS_CERT_FILE, MICRO_TLS_KEY_FILE   the node's own identity
 *   MICRO_TLS_CLIENT_AUTH none|request|require (serving side)
 *   SSLKEYLOGFILE         append TLS secrets there (debugging only)
 *
 * With nothing set, a default build does not verify (go-micro v5) and a
 * build with CMICRO_SECURE_BY_DEFAULT=1 does (go-micro v6).
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tls/tls_config_int.h"

#ifndef CMICRO_SECURE_BY_DEFAULT
#define CMICRO_SECURE_BY_DEFAULT 0
#endif

#define ENV_ACCEPTED "true, false, audit (also 1, yes, on, 0, no, off; any case)"

/* One flag per warning kind, so each is emitted once per process. */
enum env_warning_kind {
	ENV_WARN_VERIFY_OFF,
	ENV_WARN_AUDIT,
	ENV_WARN_UNRECOGNISED,
	ENV_WARN_INSECURE_UNRECOGNISED,
	ENV_WARN_INSECURE_IGNORED,
	ENV_WARN_COUNT
};

static atomic_bool env_warned[ENV_WARN_COUNT];

bool cmi_tls_secure_by_default(void)
{
	return CMICRO_SECURE_BY_DEFAULT != 0;
}

void cmi_tls_env_reset_warnings(void)
{
	for (int i = 0; i < ENV_WARN_COUNT; i++)
		atomic_store(&env_warned[i], false);
}

const char *cmi_tls_printable(const char *value, char *buf, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return "";
	for (const unsigned char *p = (const unsigned char *)value; p && *p != '\0'; p++) {
		if (n + 5 >= size) {
			cmi_fmt(buf + n, size - n, "...");
			return buf;
		}
		if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
			n += (size_t)snprintf(buf + n, size - n, "\\x%02x", *p);
		else
			buf[n++] = (char)*p;
	}
	buf[n] = '\0';
	return buf;
}

static bool env_is_audit(const char *value)
{
	char word[8];
	size_t len;

	while (isspace((unsigned char)*value))
		value++;
	len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1]))
		len--;
	if (len != 5)
		return false;
	memcpy(word, value, len);
	word[len] = '\0';
	return strcasecmp(word, "audit") == 0;
}

static void env_warn_off(struct cmi_tls_env_decision *d, const char *cause)
{
	d->warning_id = "TLS-VERIFY-OFF";
	cmi_fmt(d->warning, sizeof(d->warning),
	        "TLS certificate verification is disabled (%s): "
	        "any certificate and any host name are accepted, so connections can be "
	        "intercepted; set MICRO_TLS_SECURE=true to verify peers, or MICRO_TLS_SECURE=audit "
	        "to log what verification would reject first",
	        cause);
}

static void env_decide_secure(const char *secure, struct cmi_tls_env_decision *d)
{
	char shown[96];
	int b = cmi_parse_bool(secure);

	d->source = CMICRO_TLS_SOURCE_SECURE_ENV;
	cmi_tls_printable(secure, shown, sizeof(shown));
	cmi_fmt(d->source_text, sizeof(d->source_text), "MICRO_TLS_SECURE=%s", shown);
	if (env_is_audit(secure)) {
		d->mode = CMICRO_TLS_VERIFY_AUDIT;
		d->warning_id = "TLS-AUDIT-MODE";
		cmi_fmt(
		    d->warning, sizeof(d->warning),
		    "TLS verification runs in audit mode "
		    "(MICRO_TLS_SECURE=audit): peers that fail verification are logged (TLS-AUDIT) "
		    "and counted but still accepted; set MICRO_TLS_SECURE=true to enforce "
		    "verification once the audit log is clean");
	} else if (b == 1) {
		d->mode = CMICRO_TLS_VERIFY_ON;
	} else if (b == 0) {
		d->mode = CMICRO_TLS_VERIFY_OFF;
		env_warn_off(d, d->source_text);
	} else {
		d->mode = CMICRO_TLS_VERIFY_ON;
		d->warning_id = "TLS-SECURE-UNRECOGNISED";
		cmi_fmt(d->warning, sizeof(d->warning),
		        "MICRO_TLS_SECURE=\"%s\" is not recognised; "
		        "accepted values are " ENV_ACCEPTED
		        "; verifying peers (secure mode) because "
		        "an unknown value fails closed",
		        shown);
	}
}

static void env_decide_default(const char *insecure, bool secure_by_default,
                               struct cmi_tls_env_decision *d)
{
	char shown[96];
	int ins = insecure != NULL ? cmi_parse_bool(insecure) : 0;

	if (ins == 1) {
		d->mode = CMICRO_TLS_VERIFY_OFF;
		d->source = CMICRO_TLS_SOURCE_INSECURE_ENV;
		cmi_fmt(d->source_text, sizeof(d->source_text), "MICRO_TLS_INSECURE=%s",
		        cmi_tls_printable(insecure, shown, sizeof(shown)));
		env_warn_off(d, d->source_text);
		return;
	}
	d->source = CMICRO_TLS_SOURCE_DEFAULT;
	d->mode = secure_by_default ? CMICRO_TLS_VERIFY_ON : CMICRO_TLS_VERIFY_OFF;
	cmi_fmt(d->source_text, sizeof(d->source_text),
	        "default: MICRO_TLS_SECURE is not set "
	        "and this build %s by default",
	        secure_by_default ? "verifies" : "does not verify");
	if (!secure_by_default)
		env_warn_off(d, "MICRO_TLS_SECURE is not set");
}

/* MICRO_TLS_SECURE, when set, wins over MICRO_TLS_INSECURE, so an explicit
 * request for verification (true or audit) overrides the opt-out, and an
 * explicit false means off either way. */
void cmi_tls_env_decide(const char *secure_value, const char *insecure_value,
                        bool secure_by_default, struct cmi_tls_env_decision *out)
{
	memset(out, 0, sizeof(*out));
	if (secure_value != NULL)
		env_decide_secure(secure_value, out);
	else
		env_decide_default(insecure_value, secure_by_default, out);
}

int cmi_tls_parse_client_auth(const char *text, enum cmicro_tls_client_auth *mode)
{
	static const struct {
		const char *word;
		enum cmicro_tls_client_auth mode;
	} words[] = {
	    {"none", CMICRO_TLS_CLIENT_AUTH_NONE},
	    {"", CMICRO_TLS_CLIENT_AUTH_NONE},
	    {"request", CMICRO_TLS_CLIENT_AUTH_REQUEST},
	    {"require", CMICRO_TLS_CLIENT_AUTH_REQUIRE},
	};
	char word[16];
	size_t len;

	if (text == NULL)
		return -1;
	while (isspace((unsigned char)*text))
		text++;
	len = strlen(text);
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		len--;
	if (len >= sizeof(word))
		return -1;
	memcpy(word, text, len);
	word[len] = '\0';
	for (size_t i = 0; i < CMI_ARRAY_LEN(words); i++) {
		if (strcasecmp(word, words[i].word) == 0) {
			*mode = words[i].mode;
			return 0;
		}
	}
	return -1;
}

int cmi_tls_parse_version(const char *text, int *version)
{
	static const struct {
		const char *word;
		int version;
	} words[] = {
	    {"1.2", CMICRO_TLS_1_2},     {"tls1.2", CMICRO_TLS_1_2}, {"tlsv1.2", CMICRO_TLS_1_2},
	    {"0x0303", CMICRO_TLS_1_2},  {"1.3", CMICRO_TLS_1_3},    {"tls1.3", CMICRO_TLS_1_3},
	    {"tlsv1.3", CMICRO_TLS_1_3}, {"0x0304", CMICRO_TLS_1_3},
	};

	if (text == NULL)
		return -1;
	for (size_t i = 0; i < CMI_ARRAY_LEN(words); i++) {
		if (strcasecmp(text, words[i].word) == 0) {
			*version = words[i].version;
			return 0;
		}
	}
	return -1;
}

/* Prefixes the current detail message with the variable that caused it. */
static int env_blame(int rc, const char *name)
{
	char detail[CMI_ERRMSG_MAX];

	cmi_fmt(detail, sizeof(detail), "%s", cmicro_last_errmsg());
	return cmi_error(rc, "%s: %s", name, detail);
}

/* As env_blame, for one item of a list variable, quoted so that blanks and
 * separators in it show. */
static int env_blame_item(int rc, const char *name, const char *item)
{
	char detail[CMI_ERRMSG_MAX];
	char shown[256];

	cmi_fmt(detail, sizeof(detail), "%s", cmicro_last_errmsg());
	return cmi_error(rc, "%s entry \"%s\": %s", name,
	                 cmi_tls_printable(item, shown, sizeof(shown)), detail);
}

static const char *env_get(const char *name)
{
	const char *v = cmi_getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static int env_add_ca_files(struct cmicro_tls_config *cfg, const char *list)
{
	const char *p = list;

	while (*p != '\0') {
		size_t n = strcspn(p, ",:");
		char path[4096];
		int rc;

		const char *item = p;

		p += n + (p[n] != '\0');
		/* "a.pem, b.pem" is a natural way to write a list, so blanks around
		 * an item are dropped (a path cannot usefully start or end with one). */
		while (n > 0 && isspace((unsigned char)*item)) {
			item++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)item[n - 1]))
			n--;
		if (n == 0)
			continue;
		cmi_fmt(path, sizeof(path), "%.*s", (int)n, item);
		rc = cmicro_tls_config_add_ca_file(cfg, path);
		if (rc != 0)
			return env_blame_item(rc, "MICRO_TLS_CA_FILE", path);
	}
	return 0;
}

static int env_identity(struct cmicro_tls_config *cfg)
{
	const char *cert = env_get("MICRO_TLS_CERT_FILE");
	const char *key = env_get("MICRO_TLS_KEY_FILE");
	int rc;

	if (cert == NULL && key == NULL)
		return 0;
	if (cert == NULL || key == NULL)
		return cmi_error(CMICRO_ECONFIG,
		                 "%s is set but %s is not; set both "
		                 "MICRO_TLS_CERT_FILE and MICRO_TLS_KEY_FILE (the certificate and "
		                 "its private key) or neither",
		                 cert ? "MICRO_TLS_CERT_FILE" : "MICRO_TLS_KEY_FILE",
		                 cert ? "MICRO_TLS_KEY_FILE" : "MICRO_TLS_CERT_FILE");
	rc = cmicro_tls_config_set_cert_files(cfg, cert, key, NULL);
	return rc != 0 ? env_blame(rc, "MICRO_TLS_CERT_FILE/MICRO_TLS_KEY_FILE") : 0;
}

static int env_client_auth(struct cmicro_tls_config *cfg)
{
	const char *value = cmi_getenv("MICRO_TLS_CLIENT_AUTH");
	enum cmicro_tls_client_auth mode;
	char shown[96];

	if (value == NULL)
		return 0;
	if (cmi_tls_parse_client_auth(value, &mode) != 0)
		return cmi_error(CMICRO_ECONFIG,
		                 "MICRO_TLS_CLIENT_AUTH=\"%s\" is not recognised; "
		                 "accepted values are none, request and require",
		                 cmi_tls_printable(value, shown, sizeof(shown)));
	cfg->client_auth = mode;
	return 0;
}

static int env_min_version(struct cmicro_tls_config *cfg)
{
	const char *value = env_get("MICRO_TLS_MIN_VERSION");
	char shown[96];
	int version;

	if (value == NULL)
		return 0;
	if (cmi_tls_parse_version(value, &version) != 0)
		return cmi_error(CMICRO_ECONFIG,
		                 "MICRO_TLS_MIN_VERSION=\"%s\" is not recognised; accepted values "
		                 "are 1.2 and 1.3 (TLS 1.0 and 1.1 are never allowed)",
		                 cmi_tls_printable(value, shown, sizeof(shown)));
	cfg->min_version = version;
	return 0;
}

/* Logs, once per process, a MICRO_TLS_INSECURE value that has no effect:
 * one that is not recognised, or true while MICRO_TLS_SECURE asks for
 * verification (true, audit or an unknown value, which fails closed). */
static void env_note_insecure(const char *secure, const char *insecure,
                              const struct cmi_tls_env_decision *d)
{
	char shown[96];
	int ins;

	if (insecure == NULL)
		return;
	ins = cmi_parse_bool(insecure);
	cmi_tls_printable(insecure, shown, sizeof(shown));
	if (ins == -1 && !atomic_exchange(&env_warned[ENV_WARN_INSECURE_UNRECOGNISED], true))
		cmi_log(CMICRO_LOG_WARNING, "tls", "TLS-INSECURE-UNRECOGNISED",
		        "MICRO_TLS_INSECURE=\"%s\" is not recognised and is ignored; accepted "
		        "values are true and false (also 1, yes, on, 0, no, off; any case)",
		        shown);
	if (ins == 1 && secure != NULL && d->mode != CMICRO_TLS_VERIFY_OFF &&
	    !atomic_exchange(&env_warned[ENV_WARN_INSECURE_IGNORED], true))
		cmi_log(CMICRO_LOG_NOTICE, "tls", "TLS-INSECURE-IGNORED",
		        "MICRO_TLS_INSECURE=\"%s\" is ignored because MICRO_TLS_SECURE requests "
		        "verification; unset MICRO_TLS_INSECURE to silence this notice",
		        shown);
}

static void env_warn_once(const struct cmi_tls_env_decision *d)
{
	enum env_warning_kind kind = ENV_WARN_VERIFY_OFF;

	if (d->warning_id == NULL)
		return;
	if (strcmp(d->warning_id, "TLS-AUDIT-MODE") == 0)
		kind = ENV_WARN_AUDIT;
	else if (strcmp(d->warning_id, "TLS-SECURE-UNRECOGNISED") == 0)
		kind = ENV_WARN_UNRECOGNISED;
	if (!atomic_exchange(&env_warned[kind], true))
		cmi_log(CMICRO_LOG_WARNING, "tls", d->warning_id, "%s", d->warning);
}

static int env_apply(struct cmicro_tls_config *cfg)
{
	const char *ca = env_get("MICRO_TLS_CA_FILE");
	const char *keylog = env_get("SSLKEYLOGFILE");
	int rc;

	rc = env_client_auth(cfg);
	if (rc == 0)
		rc = env_min_version(cfg);
	if (rc == 0)
		rc = env_identity(cfg);
	if (rc == 0 && ca != NULL)
		rc = env_add_ca_files(cfg, ca);
	if (rc == 0 && keylog != NULL) {
		rc = cmicro_tls_config_set_keylog_file(cfg, keylog);
		if (rc != 0)
			rc = env_blame(rc, "SSLKEYLOGFILE");
	}
	return rc;
}

CMICRO_API int cmicro_tls_config_from_env(struct cmicro_tls_config **out)
{
	struct cmi_tls_env_decision d;
	struct cmicro_tls_config *cfg = NULL;
	int rc;

	if (out == NULL)
		return cmi_error(CMICRO_EINVAL, "cmicro_tls_config_from_env: out must not be NULL");
	*out = NULL;
	cmi_tls_env_decide(cmi_getenv("MICRO_TLS_SECURE"), cmi_getenv("MICRO_TLS_INSECURE"),
	                   CMICRO_SECURE_BY_DEFAULT != 0, &d);
	rc = cmicro_tls_config_new(&cfg);
	if (rc != 0)
		return rc;
	cfg->verify = d.mode;
	cfg->source = d.source;
	cmi_fmt(cfg->source_text, sizeof(cfg->source_text), "%s", d.source_text);

	rc = env_apply(cfg);
	if (rc != 0) {
		cmicro_tls_config_free(cfg);
		return rc;
	}
	env_warn_once(&d);
	env_note_insecure(cmi_getenv("MICRO_TLS_SECURE"), cmi_getenv("MICRO_TLS_INSECURE"), &d);
	*out = cfg;
	return 0;
}
