/*
 * The guide's check that secure mode is active: set MICRO_TLS_SECURE=true,
 * build the configuration from the environment and print whether
 * verification is skipped. Exits 1 when it is.
 */
#include <stdio.h>
#include <stdlib.h>

#include <cmicro/cmicro.h>

int main(void)
{
	struct cmicro_tls_config *cfg = NULL;
	bool skip;

	if (setenv("MICRO_TLS_SECURE", "true", 1) != 0) {
		perror("verify_secure: setenv");
		return 1;
	}
	if (cmicro_tls_config_from_env(&cfg) != 0) {
		fprintf(stderr, "verify_secure: %s\n", cmicro_last_errmsg());
		return 1;
	}

	skip = cmicro_tls_config_insecure_skip_verify(cfg);
	printf("InsecureSkipVerify: %s (should be false)\n", skip ? "true" : "false");
	cmicro_tls_config_free(cfg);
	return skip ? 1 : 0;
}
