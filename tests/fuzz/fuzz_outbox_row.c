/* Targets: cmi_outbox_check_row and cmi_outbox_parse_list, which check the
 * rows of an outbox file before its messages are sent again (the file may
 * have been edited or damaged), and cmi_topic_check. The input is
 * "ID\nTOPIC\nENVELOPE"; the whole input is also parsed as a stored list. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/outbox_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_list(const char *text)
{
	char **list = NULL;
	size_t n = 0;

	if (cmi_outbox_parse_list(text, &list, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			if (list[i] == NULL || list[i][0] == '\0')
				abort();
		}
	} else if (list != NULL || n != 0) {
		abort();
	}
	cmi_brk_free_strings(list, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char *topic, *envelope;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	fuzz_list(text);

	topic = memchr(text, '\n', size);
	envelope = topic ? memchr(topic + 1, '\n', size - (size_t)(topic + 1 - text)) : NULL;
	if (envelope != NULL) {
		*topic++ = '\0';
		*envelope++ = '\0';
		(void)cmi_topic_check(topic);
		(void)cmi_outbox_check_row(text, topic, envelope, size - (size_t)(envelope - text));
	}
	free(text);
	return 0;
}
