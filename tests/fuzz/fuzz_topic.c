/* Targets: cmicro_topic_check, which publish, subscribe and the CLI apply to
 * every topic. It must accept exactly the topics of the rule: 1 to 255
 * bytes of UTF-8 that jansson accepts, without bytes up to 0x20, 0x7f or C1
 * controls. A rejection's message must be one line of UTF-8 without
 * control characters, whatever the topic held. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/broker_int.h"
#include "cmicro/cmicro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool topic_allowed(const char *topic)
{
	size_t len = strlen(topic);
	json_t *utf8 = json_string(topic);

	json_decref(utf8);
	if (len == 0 || len > CMI_TOPIC_MAX || utf8 == NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)topic[i];

		if (c <= 0x20 || c == 0x7f)
			return false;
		if (c == 0xc2 && (unsigned char)topic[i + 1] >= 0x80 &&
		    (unsigned char)topic[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *topic;
	int rc;

	if (size > 1024)
		return 0;
	topic = malloc(size + 1);
	if (topic == NULL)
		return 0;
	memcpy(topic, data, size);
	topic[size] = '\0';
	rc = cmicro_topic_check(topic);
	if ((rc == 0) != topic_allowed(topic))
		abort();
	if (rc != 0) {
		const char *msg = cmicro_last_errmsg();

		if (rc != CMICRO_EINVAL || !cmi_topic_valid(msg))
			abort();
		for (const char *p = msg; *p != '\0'; p++) {
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		}
	}
	free(topic);
	return 0;
}
