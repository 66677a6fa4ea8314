/*
 * Strict check of an HTTP/1.1 request head (request line and header
 * fields), run on the raw bytes before the server parses them. It refuses
 * what lenient parsers accept: bare LF line ends, obsolete line folding,
 * control bytes in field values, duplicate Content-Length fields and any
 * number of fields. A proxy that reads such a request differently than the
 * server can smuggle a second request past it (RFC 9112, section 11.2).
 * The scanner takes bytes in pieces of any size and keeps its state between
 * them, so a head that arrives one byte at a time is checked in one pass.
 */
#ifndef CMICRO_HTTP_HEAD_H
#define CMICRO_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/* Header fields accepted in one request; more get 431. */
#define CMI_HTTP_HEAD_MAX_FIELDS 100

enum cmi_http_head_result {
	CMI_HTTP_HEAD_MORE = 0, /* the head is not complete yet */
	CMI_HTTP_HEAD_DONE,     /* the head ended and every check passed */
	CMI_HTTP_HEAD_BAD       /* rejected: see status and reason */
};

struct cmi_http_head_scan {
	unsigned max_fields;
	unsigned lines;       /* complete lines, the request line included */
	size_t line_len;      /* bytes of the current line before its CR */
	bool after_cr;        /* the previous byte was a CR */
	bool in_name;         /* the current field line has not reached its colon */
	int field;            /* which framing field the current line is, if any */
	char name[20];        /* lowercase field name, cut to fit */
	size_t name_len;
	char value[24];       /* Content-Length or Transfer-Encoding value, cut to fit */
	size_t value_len;
	bool value_long;
	unsigned content_lengths;
	unsigned transfer_encodings;
	bool content_length_invalid;
	bool transfer_encoding_other; /* a transfer coding other than "chunked" */
	enum cmi_http_head_result result;
	/* Set with CMI_HTTP_HEAD_BAD. */
	int status;
	const char *reason;   /* static text, names the rule and the fix */
};

/* Starts the check of a new request head; max_fields 0 means
 * CMI_HTTP_HEAD_MAX_FIELDS. */
void cmi_http_head_init(struct cmi_http_head_scan *scan, unsigned max_fields);

/*
 * Checks the next len bytes of the head. Returns CMI_HTTP_HEAD_DONE with
 * *used set to the bytes up to and including the empty line that ends the
 * head (the rest is the body), CMI_HTTP_HEAD_BAD with *used at the byte that
 * broke a rule, or CMI_HTTP_HEAD_MORE with *used = len. Once DONE or BAD,
 * further calls return the same result and use nothing.
 */
enum cmi_http_head_result cmi_http_head_feed(struct cmi_http_head_scan *scan, const char *data,
					     size_t len, size_t *used);

/* True once any byte of a request line has been seen. */
bool cmi_http_head_started(const struct cmi_http_head_scan *scan);

#endif
