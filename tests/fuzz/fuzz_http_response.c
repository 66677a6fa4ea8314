/* Targets: the client's response parser. The first byte picks a piece size
 * and whether the body is kept. The rest is fed whole and then in pieces,
 * keeping unused bytes as the client does. Both feeds must end in the same
 * phase with the same status, framing and body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t feed_split(struct cmi_http_resp *r, const char *data, size_t size, size_t step,
			 char *pending)
{
	size_t have = 0, at = 0;

	while (r->phase != CMI_HTTP_RESP_DONE && r->phase != CMI_HTTP_RESP_BAD && at < size) {
		size_t n = size - at < step ? size - at : step, used;

		memcpy(pending + have, data + at, n);
		have += n;
		at += n;
		used = cmi_http_resp_feed(r, pending, have);
		if (used > have)
			abort();
		memmove(pending, pending + used, have - used);
		have -= used;
	}
	return have + (size - at);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmi_http_resp whole, split;
	size_t step, body_max, left_whole, left_split;
	char *pending;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 13) + 1;
	body_max = (data[0] & 0x80) ? 4096 : 0;
	data++;
	size--;

	memset(&whole, 0, sizeof(whole));
	memset(&split, 0, sizeof(split));
	cmi_http_resp_init(&whole, body_max);
	cmi_http_resp_init(&split, body_max);
	left_whole = size - cmi_http_resp_feed(&whole, (const char *)data, size);
	pending = malloc(size + 1);
	if (pending == NULL)
		return 0;
	left_split = feed_split(&split, (const char *)data, size, step, pending);
	free(pending);

	if (whole.phase == CMI_HTTP_RESP_DONE || whole.phase == CMI_HTTP_RESP_BAD ||
	    split.phase == CMI_HTTP_RESP_DONE || split.phase == CMI_HTTP_RESP_BAD) {
		if (whole.phase != split.phase || left_whole != left_split)
			abort();
	}
	(void)cmi_http_resp_eof(&whole);
	(void)cmi_http_resp_eof(&split);
	if (whole.phase != split.phase || whole.status != split.status ||
	    whole.close != split.close || whole.body_len != split.body_len ||
	    (whole.body_len > 0 && memcmp(whole.body, split.body, whole.body_len) != 0))
		abort();
	if (whole.body_len > body_max)
		abort();
	cmi_http_resp_clear(&whole);
	cmi_http_resp_clear(&split);
	return 0;
}
