/* Targets: cmi_brk_metrics_escape, which writes topics and certificate
 * subjects as Prometheus label values. Checks that the output contains no raw
 * double quote or line feed and that unescaping it gives the input back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/metrics_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Undoes the three escapes in place; aborts on any other escape. */
static size_t unescape(char *s, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\n')
			abort();
		if (s[i] != '\\') {
			s[out++] = s[i];
			continue;
		}
		if (++i == len)
			abort();
		if (s[i] == 'n')
			s[out++] = '\n';
		else if (s[i] == '\\' || s[i] == '"')
			s[out++] = s[i];
		else
			abort();
	}
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *buf = NULL;
	size_t len = 0, n;
	FILE *out;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	out = open_memstream(&buf, &len);
	if (out == NULL) {
		free(in);
		return 0;
	}
	cmi_brk_metrics_escape(out, in);
	if (fclose(out) != 0)
		abort();
	n = unescape(buf, len);
	if (n != strlen(in) || memcmp(buf, in, n) != 0)
		abort();
	free(buf);
	free(in);
	return 0;
}
