/*
 * Option 1 of the migration guide: no code change, the environment decides.
 * Run with MICRO_TLS_SECURE=true (verify), audit (log what would fail) or
 * false (do not verify); MICRO_TLS_CA_FILE adds CAs to the system roots.
 *
 *   MICRO_TLS_SECURE=true ./env_secure
 */
#include <stdio.h>

#include <cmicro/cmicro.h>

static const char *mode_name(enum cmicro_tls_verify mode)
{
	switch (mode) {
	case CMICRO_TLS_VERIFY_ON:
		return "on";
	case CMICRO_TLS_VERIFY_AUDIT:
		return "audit";
	default:
		return "off";
	}
}

int main(void)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *client = NULL;
	int rc;

	rc = cmicro_tls_config_from_env(&cfg);
	if (rc != 0) {
		fprintf(stderr, "env_secure: %s\n", cmicro_last_errmsg());
		return 1;
	}

	/* Contexts built from the configuration are what connections use. */
	rc = cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &client);
	if (rc != 0) {
		fprintf(stderr, "env_secure: %s\n", cmicro_last_errmsg());
		cmicro_tls_config_free(cfg);
		return 1;
	}

	printf("verification: %s (%s)\n", mode_name(cmicro_tls_config_get_verify(cfg)),
	       cmicro_tls_config_get_source_text(cfg));
	printf("InsecureSkipVerify: %s\n",
	       cmicro_tls_config_insecure_skip_verify(cfg) ? "true" : "false");
	printf("trusted CA files: %zu\n", cmicro_tls_config_ca_count(cfg));

	cmicro_tls_context_free(client);
	cmicro_tls_config_free(cfg);
	return 0;
}
