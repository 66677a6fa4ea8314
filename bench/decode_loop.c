/*
 * Decodes one go-micro envelope with a body of N bytes (default 4096)
 * 20,000 times, for instruction counts of the envelope decoder under
 * callgrind, which do not depend on machine load. Build and run it from
 * the repository root against a build's static library:
 *
 *   cc -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/decode_loop.c build/libcmicro.a \
 *      $(pkg-config --libs libevent_openssl libevent_pthreads jansson sqlite3 openssl) \
 *      -lpthread -o /tmp/decode_loop
 *   valgrind --tool=callgrind /tmp/decode_loop 4096
 *
 * The "Collected" total divided by 20,000 is the cost of one decode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker_int.h"

#define DECODES 20000

int main(int argc, char **argv)
{
	size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
	struct cmicro_message *msg = NULL, *out = NULL;
	char *body = malloc(size + 1);
	char *json = NULL;
	size_t len = 0;

	if (body == NULL || size == 0)
		return 2;
	memset(body, 'x', size);
	if (cmicro_message_new(&msg) != 0 || cmicro_message_set_body(msg, body, size) != 0 ||
	    cmi_message_encode(msg, "bench", &json, &len) != 0) {
		fprintf(stderr, "decode_loop: cannot build the envelope: %s\n", cmicro_last_errmsg());
		return 1;
	}
	for (int i = 0; i < DECODES; i++) {
		if (cmi_message_decode(json, len, &out) != 0) {
			fprintf(stderr, "decode_loop: decode failed: %s\n", cmicro_last_errmsg());
			return 1;
		}
		cmicro_message_free(out);
	}
	free(json);
	free(body);
	cmicro_message_free(msg);
	return 0;
}
