/* Targets: the fast envelope decoder against the jansson one. Every input
 * goes through both, and through cmi_message_decode, which combines them;
 * any difference in result code, error message, headers or body aborts.
 * The fast decoder may decline (CMI_DECODE_FALLBACK) but must never accept
 * what jansson rejects or decode it differently. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"
#include "broker/message_json_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_message(const struct cmicro_message *a, const struct cmicro_message *b)
{
	if (a->n_headers != b->n_headers || a->body_len != b->body_len)
		abort();
	for (size_t i = 0; i < a->n_headers; i++) {
		if (strcmp(a->headers[i].key, b->headers[i].key) != 0 ||
		    strcmp(a->headers[i].value, b->headers[i].value) != 0)
			abort();
	}
	if (memcmp(a->body, b->body, a->body_len) != 0 || b->body[b->body_len] != '\0')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmicro_message *fast = NULL, *slow = NULL, *both = NULL;
	const char *json = (const char *)data;
	char slow_err[512];
	int rc_fast, rc_slow, rc_both;

	rc_fast = cmi_message_decode_fast(json, size, &fast);
	rc_slow = cmi_message_decode_jansson(json, size, &slow);
	snprintf(slow_err, sizeof(slow_err), "%s", rc_slow != 0 ? cmicro_last_errmsg() : "");
	rc_both = cmi_message_decode(json, size, &both);

	if (rc_fast != 0 && (rc_fast != CMI_DECODE_FALLBACK || fast != NULL))
		abort();
	if (rc_fast == 0 && rc_slow != 0)
		abort();
	if (rc_both != rc_slow)
		abort();
	if (rc_fast == 0)
		same_message(fast, slow);
	if (rc_both == 0)
		same_message(both, slow);
	else if (both != NULL || strncmp(cmicro_last_errmsg(), slow_err, sizeof(slow_err) - 1) != 0)
		abort();

	cmicro_message_free(fast);
	cmicro_message_free(slow);
	cmicro_message_free(both);
	return 0;
}
