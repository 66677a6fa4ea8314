/* Targets: cmi_parse_bool, the parser of every boolean environment value
 * (MICRO_TLS_SECURE, MICRO_TLS_INSECURE). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	int v;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	v = cmi_parse_bool(s);
	if (v < -1 || v > 1)
		abort();
	free(s);
	return 0;
}
