/* Targets: the query parameter look-up of the server, against libevent's
 * evhttp_parse_query_str and evhttp_find_header, whose results it must
 * reproduce. The first byte picks the parameter name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/http_server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"id", "ID", "a", "x y"};
	struct evkeyvalq list = {NULL, &list.tqh_first};
	const char *name, *expected = NULL;
	char *query, *got;

	if (size < 1)
		return 0;
	name = names[data[0] % 4];
	query = malloc(size);
	if (query == NULL)
		return 0;
	memcpy(query, data + 1, size - 1);
	query[size - 1] = '\0';

	if (evhttp_parse_query_str(query, &list) == 0)
		expected = evhttp_find_header(&list, name);
	got = cmi_http_query_value(query, name);
	if ((expected == NULL) != (got == NULL) || (got != NULL && strcmp(expected, got) != 0))
		abort();
	free(got);
	evhttp_clear_headers(&list);
	free(query);
	return 0;
}
