/*
 * Incremental parser of HTTP/1.1 responses, for the client. It takes the
 * bytes of one connection in pieces of any size: a status line and header
 * fields, then a body framed by Content-Length, by chunked transfer coding,
 * or by the end of the connection. Interim 1xx responses are skipped. It
 * owns no socket and allocates only to keep a body the caller asked for.
 */
#ifndef CMICRO_HTTP_RESPONSE_H
#define CMICRO_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum length of a response head (status line and fields). */
#define CMI_HTTP_RESP_HEAD_MAX 16384
/* Maximum length of a chunk-size or trailer line. */
#define CMI_HTTP_RESP_LINE_MAX 1024

enum cmi_http_resp_phase {
	CMI_HTTP_RESP_HEAD,
	CMI_HTTP_RESP_BODY,        /* Content-Length bytes */
	CMI_HTTP_RESP_CHUNK_SIZE,  /* the chunk-size line */
	CMI_HTTP_RESP_CHUNK_DATA,
	CMI_HTTP_RESP_CHUNK_END,   /* the CRLF after chunk data */
	CMI_HTTP_RESP_TRAILER,     /* trailer fields after the last chunk */
	CMI_HTTP_RESP_UNTIL_CLOSE, /* no framing: the body ends with the connection */
	CMI_HTTP_RESP_DONE,
	CMI_HTTP_RESP_BAD
};

struct cmi_http_resp {
	enum cmi_http_resp_phase phase;
	int status;
	char reason[96];   /* reason phrase, cut to fit */
	bool close;         /* the connection cannot carry another request */
	uint64_t remaining; /* bytes left of the body or of the current chunk */
	/* The body, kept only when body_max is not 0. */
	size_t body_max;
	char *body;
	size_t body_len, body_cap;
	char error[160]; /* set with CMI_HTTP_RESP_BAD */
};

/* Starts a response; body_max 0 discards the body, otherwise it is kept up
 * to body_max bytes and a longer one is an error. */
void cmi_http_resp_init(struct cmi_http_resp *r, size_t body_max);
/* Frees the kept body. */
void cmi_http_resp_clear(struct cmi_http_resp *r);

/*
 * Parses the next bytes of the connection. Returns the bytes used, which
 * can be fewer than len: a head or a line is used only once it is
 * complete, so the caller keeps the rest and calls again with more. The
 * phase is then CMI_HTTP_RESP_DONE when the response ended (bytes after it
 * belong to the next one), or CMI_HTTP_RESP_BAD with the error set.
 */
size_t cmi_http_resp_feed(struct cmi_http_resp *r, const char *data, size_t len);

/* Tells the parser the connection ended. Returns true when that completed
 * the response (a body that runs to the end); otherwise the response is
 * cut and the phase becomes CMI_HTTP_RESP_BAD. */
bool cmi_http_resp_eof(struct cmi_http_resp *r);

#endif
