/* Targets: the strict request head check. The input is fed whole and then
 * in pieces whose size comes from its first byte, and both feeds must reach
 * the same result at the same offset. */
#include <stdint.h>
#include <stdlib.h>

#include "http/http_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmi_http_head_scan whole, split;
	enum cmi_http_head_result rc_whole, rc_split = CMI_HTTP_HEAD_MORE;
	size_t used_whole = 0, at = 0, step;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 7) + 1;
	data++;
	size--;

	cmi_http_head_init(&whole, 0);
	rc_whole = cmi_http_head_feed(&whole, (const char *)data, size, &used_whole);

	cmi_http_head_init(&split, 0);
	while (at < size && rc_split == CMI_HTTP_HEAD_MORE) {
		size_t n = size - at < step ? size - at : step, used = 0;

		rc_split = cmi_http_head_feed(&split, (const char *)data + at, n, &used);
		at += used;
	}
	if (rc_whole != rc_split || used_whole != at || whole.status != split.status)
		abort();
	return 0;
}
