/*
 * Option 2 of the migration guide: ask for the secure preset in code
 * (go-micro's SecureConfig): verification on, the system roots (honouring
 * SSL_CERT_FILE and SSL_CERT_DIR), TLS 1.2 at least.
 */
#include <stdio.h>

#include <cmicro/cmicro.h>

int main(void)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *client = NULL;
	int min;

	if (cmicro_tls_config_secure(&cfg) != 0 ||
	    cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &client) != 0) {
		fprintf(stderr, "secure_preset: %s\n", cmicro_last_errmsg());
		cmicro_tls_config_free(cfg);
		return 1;
	}

	min = cmicro_tls_config_get_min_version(cfg);
	printf("InsecureSkipVerify: %s\n",
	       cmicro_tls_config_insecure_skip_verify(cfg) ? "true" : "false");
	printf("MinVersion: %s\n", min == CMICRO_TLS_1_3 ? "TLS 1.3" : "TLS 1.2");
	printf("system roots: %s\n", cmicro_tls_config_get_system_roots(cfg) ? "yes" : "no");

	cmicro_tls_context_free(client);
	cmicro_tls_config_free(cfg);
	return 0;
}
