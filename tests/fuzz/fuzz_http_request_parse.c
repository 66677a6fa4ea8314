/* Targets: the server's request parser and chunked body decoder. The input
 * after its first byte goes through the strict head check. A head that passes
 * is copied into a heap buffer of its exact size, so that ASan catches a read
 * past it, then parsed and checked against the parser's contract. The bytes
 * after the head, or the whole input when no head passed, are then decoded as
 * a chunked body twice: whole, and in pieces whose size comes from the first
 * byte. Both decodings must give the same result, offset and body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_request_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known_methods[] = {"GET",     "POST",  "HEAD",    "PUT",  "DELETE",
					    "OPTIONS", "TRACE", "CONNECT", "PATCH"};

static void check(int ok)
{
	if (!ok)
		abort();
}

static int is_known_method(const char *method)
{
	for (size_t i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
		if (strcmp(method, known_methods[i]) == 0)
			return 1;
	}
	return 0;
}

/* A string that starts inside buf and ends with a NUL inside it. */
static int inside(const char *s, const char *buf, size_t len)
{
	return s != NULL && s >= buf && s < buf + len &&
	       memchr(s, '\0', (size_t)(buf + len - s)) != NULL;
}

static void check_parsed(const struct cmi_http_req_head *h, const char *buf, size_t len)
{
	check(h->method != NULL && is_known_method(h->method));
	check(h->path != NULL);
	check(inside(h->path, buf, len) || strcmp(h->path, "/") == 0 ||
	      strcmp(h->path, "*") == 0);
	check(h->query == NULL || inside(h->query, buf, len));
	check(h->minor == 0 || h->minor == 1);
	check(h->n_fields <= CMI_HTTP_HEAD_MAX_FIELDS);
	for (unsigned i = 0; i < h->n_fields; i++) {
		check(inside(h->fields[i].name, buf, len));
		check(inside(h->fields[i].value, buf, len));
		check(cmi_http_req_head_field(h, h->fields[i].name) != NULL);
	}
	check(!(h->chunked && h->has_length));
	check(!h->expect_continue || h->minor == 1);
	check(h->status == 0 && h->reason == NULL);
}

/* The framing the strict check saw must be the framing the parser read, or
 * the two would disagree on where the body ends. */
static void check_framing_agrees(const struct cmi_http_head_scan *scan,
				 const struct cmi_http_req_head *h)
{
	check(h->has_length == (scan->content_lengths == 1));
	check(h->chunked == (scan->transfer_encodings == 1));
}

static void parse_head(const struct cmi_http_head_scan *scan, const uint8_t *head, size_t len)
{
	struct cmi_http_req_head h;
	char *buf = malloc(len);
	int rc;

	if (buf == NULL)
		return;
	memcpy(buf, head, len);
	rc = cmi_http_req_head_parse(buf, len, &h);
	if (rc == 0) {
		check_parsed(&h, buf, len);
		check_framing_agrees(scan, &h);
	} else {
		check(rc == 400 || rc == 417 || rc == 431 || rc == 501 || rc == 505);
		check(h.status == rc);
		check(h.reason != NULL);
	}
	free(buf);
}

struct decoding {
	enum cmi_http_chunk_result rc;
	size_t at;       /* bytes taken */
	uint8_t *body;
	size_t body_len;
	const char *reason;
};

/* Feeds in[0..len) in pieces of at most step bytes, feeding the unused rest
 * of each piece again, until the body ends, breaks a rule or the input runs
 * out. */
static void decode(struct decoding *d, const uint8_t *in, size_t len, size_t step)
{
	struct cmi_http_chunked c;
	size_t piece_end = 0;

	d->rc = CMI_HTTP_CHUNK_MORE;
	d->at = 0;
	d->body_len = 0;
	cmi_http_chunked_init(&c);
	while (d->at < len && (d->rc == CMI_HTTP_CHUNK_MORE || d->rc == CMI_HTTP_CHUNK_DATA)) {
		size_t used, data_off, data_len;

		if (d->at == piece_end)
			piece_end = len - d->at < step ? len : d->at + step;
		d->rc = cmi_http_chunked_feed(&c, (const char *)in + d->at, piece_end - d->at,
					      &used, &data_off, &data_len);
		check(used <= piece_end - d->at);
		if (d->rc == CMI_HTTP_CHUNK_DATA) {
			check(data_len > 0 && data_off + data_len == used);
			memcpy(d->body + d->body_len, in + d->at + data_off, data_len);
			d->body_len += data_len;
		} else {
			check(data_len == 0);
		}
		check(d->rc != CMI_HTTP_CHUNK_MORE || d->at + used == piece_end);
		check(d->rc != CMI_HTTP_CHUNK_BAD || c.reason != NULL);
		d->at += used;
	}
	d->reason = c.reason;
}

static void decode_both(const uint8_t *in, size_t len, size_t step)
{
	struct decoding whole, split;

	whole.body = malloc(len + 1);
	split.body = malloc(len + 1);
	if (whole.body == NULL || split.body == NULL)
		goto out;

	decode(&whole, in, len, len + 1);
	decode(&split, in, len, step);
	check(whole.rc == split.rc);
	check(whole.at == split.at);
	check(whole.body_len == split.body_len);
	check(memcmp(whole.body, split.body, whole.body_len) == 0);
	check(whole.reason == split.reason);
out:
	free(whole.body);
	free(split.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmi_http_head_scan scan;
	size_t used = 0, step;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 16) + 1;
	data++;
	size--;

	cmi_http_head_init(&scan, 0);
	if (cmi_http_head_feed(&scan, (const char *)data, size, &used) == CMI_HTTP_HEAD_DONE) {
		parse_head(&scan, data, used);
		decode_both(data + used, size - used, step);
	} else {
		decode_both(data, size, step);
	}
	return 0;
}
