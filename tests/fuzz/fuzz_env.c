/* Targets: cmi_tls_env_decide (MICRO_TLS_SECURE and MICRO_TLS_INSECURE to a
 * verification mode and warning), cmi_tls_parse_client_auth
 * (MICRO_TLS_CLIENT_AUTH) and cmi_tls_parse_version. The first NUL byte
 * splits the input into the two variable values, and a second NUL makes the
 * insecure value unset. The last bit of the first byte picks the build's
 * default. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common_int.h"
#include "tls/tls_config_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decision(const char *secure, const char *insecure, bool by_default)
{
	struct cmi_tls_env_decision d;

	cmi_tls_env_decide(secure, insecure, by_default, &d);
	if (d.mode != CMICRO_TLS_VERIFY_OFF && d.mode != CMICRO_TLS_VERIFY_ON &&
	    d.mode != CMICRO_TLS_VERIFY_AUDIT)
		abort();
	if (strnlen(d.warning, sizeof(d.warning)) == sizeof(d.warning) ||
	    strnlen(d.source_text, sizeof(d.source_text)) == sizeof(d.source_text))
		abort();
	/* Verification off always warns; an explicit true never does. */
	if (d.mode == CMICRO_TLS_VERIFY_OFF && d.warning_id == NULL)
		abort();
	if (secure != NULL && cmi_parse_bool(secure) == 1 &&
	    (d.mode != CMICRO_TLS_VERIFY_ON || d.warning_id != NULL))
		abort();
	/* Text that is not a known word never turns verification off. */
	if (secure != NULL && cmi_parse_bool(secure) == -1 && d.mode == CMICRO_TLS_VERIFY_OFF)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 2);
	const char *insecure = NULL;
	enum cmicro_tls_client_auth auth;
	bool by_default = size > 0 && (data[0] & 1);
	size_t first;
	int version;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	text[size + 1] = '\0';
	first = strlen(text);
	if (first < size && memchr(text + first + 1, '\0', size - first - 1) == NULL)
		insecure = text + first + 1;

	check_decision(text, insecure, by_default);
	check_decision(NULL, text, by_default);
	if (cmi_tls_parse_client_auth(text, &auth) == 0 && auth != CMICRO_TLS_CLIENT_AUTH_NONE &&
	    auth != CMICRO_TLS_CLIENT_AUTH_REQUEST && auth != CMICRO_TLS_CLIENT_AUTH_REQUIRE)
		abort();
	if (cmi_tls_parse_version(text, &version) == 0 && version != CMICRO_TLS_1_2 &&
	    version != CMICRO_TLS_1_3)
		abort();
	free(text);
	return 0;
}
