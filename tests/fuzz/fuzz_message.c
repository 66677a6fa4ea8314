/* Targets: cmi_message_decode, the parser of go-micro's broker envelope that
 * every request to a subscriber goes through, and the encoder on what it
 * accepts (a decoded message must encode and decode to the same body). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmicro_message *msg = NULL, *back = NULL;
	const void *body, *body2;
	size_t len = 0, len2 = 0, jlen = 0;
	char *json = NULL;

	if (cmi_message_decode((const char *)data, size, &msg) != 0)
		return 0;
	body = cmicro_message_body(msg, &len);
	if (cmi_message_encode(msg, "fuzz", &json, &jlen) == 0) {
		if (cmi_message_decode(json, jlen, &back) != 0)
			abort();
		body2 = cmicro_message_body(back, &len2);
		if (len != len2 || memcmp(body, body2, len) != 0)
			abort();
	}
	free(json);
	cmicro_message_free(back);
	cmicro_message_free(msg);
	return 0;
}
