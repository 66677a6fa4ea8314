/* Targets: cmicro_service_from_json, the decoder of every registry entry
 * (SQLite rows, etcd values), and cmicro_service_to_json on what it
 * accepts: a decoded service must always encode, and decode again to the
 * same text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmicro_service *svc = NULL;
	struct cmicro_service *again = NULL;
	char *json = NULL;
	char *json_again = NULL;

	if (cmicro_service_from_json((const char *)data, size, &svc) != 0)
		return 0;
	if (cmicro_service_to_json(svc, &json) != 0)
		abort();
	/* Encoding adds the members a document left out, so a document near
	 * the size limit may encode over it. */
	if (strlen(json) > CMI_SERVICE_JSON_MAX)
		goto out;
	if (cmicro_service_from_json(json, strlen(json), &again) != 0)
		abort();
	if (cmicro_service_to_json(again, &json_again) != 0 || strcmp(json, json_again) != 0)
		abort();
out:
	cmicro_free(json);
	cmicro_free(json_again);
	cmicro_service_free(svc);
	cmicro_service_free(again);
	return 0;
}
