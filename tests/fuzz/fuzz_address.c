/* Targets: the address parsers fed from the environment and options:
 * cmi_etcd_parse_endpoints (MICRO_REGISTRY_ADDRESS for etcd) and
 * cmi_http_split_address (MICRO_BROKER_ADDRESS, MICRO_METRICS_ADDRESS). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_int.h"
#include "registry/etcd_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmi_etcd_endpoint *endpoints = NULL;
	char *text = malloc(size + 1);
	char host[256];
	size_t n = 0;
	int port = -1;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (cmi_etcd_parse_endpoints(text, &endpoints, &n) == 0) {
		/* A parsed list is never empty and every port is a TCP port. */
		if (n == 0)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (endpoints[i].port < 1 || endpoints[i].port > 65535)
				abort();
		}
	}
	free(endpoints);

	if (cmi_http_split_address(text, host, sizeof(host), &port) == 0 &&
	    (port < 0 || port > 65535 || strlen(host) >= sizeof(host)))
		abort();
	free(text);
	return 0;
}
