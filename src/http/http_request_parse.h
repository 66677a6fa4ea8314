/*
 * Parsing of an HTTP/1.1 request for the server: the request line and
 * header fields of a complete head, and the chunked transfer coding of a
 * body. The head has passed the strict check of http_head.h first, but the
 * parser does not rely on it: any bytes give a result, never a read out of
 * bounds.
 */
#ifndef CMICRO_HTTP_REQUEST_PARSE_H
#define CMICRO_HTTP_REQUEST_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http_head.h"

struct cmi_http_field {
	const char *name;  /* NUL-terminated in the head */
	const char *value; /* NUL-terminated, surrounding spaces and tabs removed */
};

struct cmi_http_req_head {
	const char *method; /* one of the nine methods of RFC 9110 and RFC 5789 */
	const char *path;   /* the target without its query, "/" when empty */
	const char *query;  /* after the "?", or NULL */
	int minor;          /* HTTP/1.minor: 0 or 1 */
	struct cmi_http_field fields[CMI_HTTP_HEAD_MAX_FIELDS];
	unsigned n_fields;
	bool chunked;
	bool has_length;
	uint64_t length;    /* Content-Length, UINT64_MAX when it does not fit */
	bool keep_alive;    /* the connection stays open after the response */
	bool expect_continue;
	/* Set when parsing fails. */
	int status;
	const char *reason; /* static text naming the rule and the fix */
};

/*
 * Parses the head in head[0..len), which ends with its empty line, and
 * writes NUL bytes into it to terminate the strings that h points to. So h
 * is valid while head is. Returns 0, or the error status (400, 417, 501,
 * 505) with h->reason set.
 */
int cmi_http_req_head_parse(char *head, size_t len, struct cmi_http_req_head *h);

/* The value of the first field called name (without regard to case), or
 * NULL. */
const char *cmi_http_req_head_field(const struct cmi_http_req_head *h, const char *name);

enum cmi_http_chunk_result {
	CMI_HTTP_CHUNK_MORE = 0, /* every byte given was used; more are needed */
	CMI_HTTP_CHUNK_DATA,     /* a run of body bytes was found */
	CMI_HTTP_CHUNK_DONE,     /* the last chunk and the trailer ended */
	CMI_HTTP_CHUNK_BAD       /* the framing broke a rule: see reason */
};

/* Bytes of one chunk-size line (extensions and its CR included) and of the
 * whole trailer that a body may carry. */
#define CMI_HTTP_CHUNK_LINE_MAX 4096
#define CMI_HTTP_CHUNK_TRAILER_MAX 8192

struct cmi_http_chunked {
	int state;
	uint64_t left;   /* bytes of the current chunk still to come */
	unsigned digits; /* hex digits of the current size */
	size_t line;     /* bytes of the current size or trailer line */
	size_t trailer;  /* bytes of the trailer so far */
	enum cmi_http_chunk_result result;
	const char *reason;
};

void cmi_http_chunked_init(struct cmi_http_chunked *c);

/*
 * Decodes the next len bytes of a chunked body. Returns CMI_HTTP_CHUNK_DATA
 * with *data_off and *data_len giving a run of body bytes inside in, or
 * another result with *data_len 0. *used counts the bytes taken, data
 * included; the caller feeds the rest again. After DONE, *used ends at the
 * end of the body: what follows is the next request. DONE and BAD repeat
 * and use nothing.
 */
enum cmi_http_chunk_result cmi_http_chunked_feed(struct cmi_http_chunked *c, const char *in,
						 size_t len, size_t *used, size_t *data_off,
						 size_t *data_len);

#endif
