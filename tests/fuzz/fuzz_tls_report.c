/* Targets: cmi_brk_tls_report_parse, the reader of the JSON a broker
 * serves on GET /debug/tls, which `cmicro tls report` runs on whatever a
 * listener answers. Every accepted finding must carry a known reason. */
#include <stdint.h>
#include <stdlib.h>

#include "broker/broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmi_tls_report *rep = NULL;

	if (cmi_brk_tls_report_parse((const char *)data, size, &rep) != 0)
		return 0;
	for (size_t i = 0; i < rep->n; i++) {
		if (rep->findings[i].reason <= CMICRO_TLS_REASON_NONE ||
		    rep->findings[i].reason >= CMICRO_TLS_REASON_COUNT)
			abort();
	}
	cmi_brk_tls_report_free(rep);
	return 0;
}
