/* Target: cmi_brk_parse_busy_poll (MICRO_BROKER_BUSY_POLL_US). The input up
 * to its first NUL is the value. It must be accepted exactly when it is
 * decimal digits worth at most CMI_BRK_BUSY_POLL_MAX_US, with that value (0
 * turns polling off), and a rejection must name the value. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Returns the value of text when it is only digits, -2 when it is not, or
 * -3 when its value is above the maximum (counted in a wider type). */
static long long expected_value(const char *text)
{
	unsigned long long value = 0;
	size_t len = strlen(text);

	if (len == 0)
		return -2;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -2;
		if (value <= 1000000)
			value = value * 10 + (unsigned long long)(text[i] - '0');
	}
	return value > CMI_BRK_BUSY_POLL_MAX_US ? -3 : (long long)value;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	long long want;
	int us = 12345;
	int rc;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	want = expected_value(text);
	rc = cmi_brk_parse_busy_poll(text, &us);
	if (want < 0) {
		if (rc != CMICRO_ECONFIG || us != 12345)
			abort();
		if (strstr(cmicro_last_errmsg(), "MICRO_BROKER_BUSY_POLL_US=\"") == NULL)
			abort();
	} else if (rc != 0 || us != (want == 0 ? -1 : (int)want)) {
		abort();
	}
	free(text);
	return 0;
}
