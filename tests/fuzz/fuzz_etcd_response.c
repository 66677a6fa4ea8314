/*
 * Targets: the parsers of etcd's v3 gateway responses (range, lease grant,
 * keep-alive, authenticate, one watch message) and the decoding of stored
 * values and keys into services. The input is one response body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "registry/etcd_int.h"

static void fuzz_range(const char *data, size_t size)
{
	struct cmi_etcd_kv *kvs = NULL;
	size_t n = 0;
	int64_t revision = 0;

	if (cmi_etcd_parse_range(data, size, &revision, &kvs, &n) != 0)
		return;
	for (size_t i = 0; i < n; i++) {
		cmicro_service_free(cmi_etcd_kv_service(&kvs[i]));
		cmicro_service_free(cmi_etcd_key_service(kvs[i].key));
		cmi_etcd_kv_clear(&kvs[i]);
	}
	free(kvs);
}

static void fuzz_watch(const char *data, size_t size)
{
	struct cmi_etcd_watch_msg msg;

	if (cmi_etcd_parse_watch(data, size, &msg) != 0)
		return;
	for (size_t i = 0; i < msg.n_events; i++) {
		cmicro_service_free(cmi_etcd_kv_service(&msg.events[i].kv));
		cmicro_service_free(cmi_etcd_key_service(msg.events[i].kv.key));
	}
	cmi_etcd_watch_msg_clear(&msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	int64_t a = 0, b = 0;
	char *token = NULL;
	char error[256];

	cmicro_log_set_handler(cmicro_log_null, NULL);
	fuzz_range(text, size);
	fuzz_watch(text, size);
	(void)cmi_etcd_parse_grant(text, size, &a, &b);
	(void)cmi_etcd_parse_keepalive(text, size, &a);
	if (cmi_etcd_parse_token(text, size, &token) == 0)
		free(token);
	cmi_etcd_error_text(text, size, error, sizeof(error));
	return 0;
}
