/*
 * Option 3 of the migration guide: trust a private CA in code, with TLS 1.2
 * as the minimum version. The CA file is added to the system roots; call
 * cmicro_tls_config_set_system_roots(cfg, false) to trust it alone.
 *
 *   ./custom_ca ca.pem
 */
#include <stdio.h>

#include <cmicro/cmicro.h>

static int build(const char *ca_file, struct cmicro_tls_config **out)
{
	struct cmicro_tls_config *cfg = NULL;
	int rc;

	rc = cmicro_tls_config_new(&cfg);
	if (rc == 0)
		rc = cmicro_tls_config_add_ca_file(cfg, ca_file);
	if (rc == 0)
		rc = cmicro_tls_config_set_min_version(cfg, CMICRO_TLS_1_2);
	if (rc != 0) {
		cmicro_tls_config_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int main(int argc, char **argv)
{
	struct cmicro_tls_config *cfg = NULL;
	struct cmicro_tls_context *client = NULL;

	if (argc != 2) {
		fprintf(stderr, "usage: custom_ca CA_FILE\n");
		return 2;
	}
	if (build(argv[1], &cfg) != 0 ||
	    cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &client) != 0) {
		fprintf(stderr, "custom_ca: %s\n", cmicro_last_errmsg());
		cmicro_tls_config_free(cfg);
		return 1;
	}

	printf("InsecureSkipVerify: %s\n",
	       cmicro_tls_config_insecure_skip_verify(cfg) ? "true" : "false");
	printf("MinVersion: TLS 1.2\n");
	for (size_t i = 0; i < cmicro_tls_config_ca_count(cfg); i++)
		printf("trusted CA file: %s\n", cmicro_tls_config_ca_path(cfg, i));

	cmicro_tls_context_free(client);
	cmicro_tls_config_free(cfg);
	return 0;
}
