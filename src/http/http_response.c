/*
 * HTTP/1.1 response parser (RFC 9112). It is stricter than needed for the
 * servers it talks to (cmicro and Go's net/http), because a response it
 * misreads would make the next request on the connection read the wrong
 * bytes: conflicting Content-Length fields, unknown transfer codings and
 * folded fields are errors, and the connection is not reused.
 */
#include <string.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/common_int.h"
#include "http/http_response.h"

static void resp_fail(struct cmi_http_resp *r, const char *detail)
{
	r->phase = CMI_HTTP_RESP_BAD;
	snprintf(r->error, sizeof(r->error), "invalid HTTP response: %s", detail);
}

void cmi_http_resp_init(struct cmi_http_resp *r, size_t body_max)
{
	char *body = r->body;
	size_t cap = r->body_cap;

	/* A kept buffer is reused by the next response of the connection. */
	memset(r, 0, sizeof(*r));
	r->body = body;
	r->body_cap = cap;
	r->body_max = body_max;
}

void cmi_http_resp_clear(struct cmi_http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->body_cap = 0;
	r->body_len = 0;
}

static bool resp_keep(struct cmi_http_resp *r, const char *data, size_t n)
{
	if (r->body_max == 0 || n == 0)
		return true;
	if (n > r->body_max - r->body_len) {
		char detail[96];

		snprintf(detail, sizeof(detail), "body longer than %zu bytes", r->body_max);
		resp_fail(r, detail);
		return false;
	}
	if (r->body_len + n + 1 > r->body_cap) {
		size_t cap = r->body_cap ? r->body_cap : 1024;
		char *grown;

		while (cap < r->body_len + n + 1)
			cap *= 2;
		grown = realloc(r->body, cap);
		if (grown == NULL) {
			resp_fail(r, "out of memory keeping the body");
			return false;
		}
		r->body = grown;
		r->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return true;
}

/* Returns the length of the line at data, its LF included, or 0 when no LF
 * is within len bytes. */
static size_t resp_line(const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);

	return lf ? (size_t)(lf - data) + 1 : 0;
}

/* Returns the length of the head at data up to the empty line that ends it,
 * or 0 when it is not complete within len bytes. */
static size_t resp_head_end(const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p++;
		if (p < end && *p == '\n')
			return (size_t)(p - data) + 1;
		if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
			return (size_t)(p - data) + 2;
	}
	return 0;
}

static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
		return true;
	return c != '\0' && strchr("!#$%&'*+.^_`|~", c) != NULL;
}

static bool resp_name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

/* True when the comma-separated list value contains token (any case). */
static bool resp_list_has(const char *value, size_t len, const char *token)
{
	size_t tlen = strlen(token);
	size_t i = 0;

	while (i < len) {
		size_t start, stop;

		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		start = i;
		while (i < len && value[i] != ',')
			i++;
		stop = i;
		while (stop > start && (value[stop - 1] == ' ' || value[stop - 1] == '\t'))
			stop--;
		if (stop - start == tlen && strncasecmp(value + start, token, tlen) == 0)
			return true;
	}
	return false;
}

/* True when the last coding of a Transfer-Encoding list is chunked. */
static bool resp_last_is_chunked(const char *value, size_t len)
{
	const char *comma = NULL;

	for (size_t i = 0; i < len; i++) {
		if (value[i] == ',')
			comma = value + i;
	}
	if (comma != NULL) {
		len -= (size_t)(comma + 1 - value);
		value = comma + 1;
	}
	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	return len == 7 && strncasecmp(value, "chunked", 7) == 0;
}

static bool resp_parse_length(const char *value, size_t len, uint64_t *out)
{
	uint64_t n = 0;

	if (len == 0 || len > 15)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '9')
			return false;
		n = n * 10 + (uint64_t)(value[i] - '0');
	}
	*out = n;
	return true;
}

/* Parses "HTTP/1.x NNN reason" of len bytes without its line end. */
static bool resp_status_line(struct cmi_http_resp *r, const char *line, size_t len)
{
	size_t reason_len;

	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ') {
		resp_fail(r, "the status line does not start with HTTP/1.0 or HTTP/1.1 and a space; "
			     "check that the address is a broker node");
		return false;
	}
	for (int i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9') {
			resp_fail(r, "the status code is not three digits");
			return false;
		}
	}
	r->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	if (r->status < 100) {
		resp_fail(r, "the status code is below 100");
		return false;
	}
	if (len > 12 && line[12] != ' ') {
		resp_fail(r, "no space after the status code");
		return false;
	}
	/* HTTP/1.0 closes after each response unless both sides asked
	 * otherwise, and this client does not ask. */
	r->close = line[7] == '0';
	reason_len = len > 13 ? len - 13 : 0;
	if (reason_len >= sizeof(r->reason))
		reason_len = sizeof(r->reason) - 1;
	for (size_t i = 0; i < reason_len; i++) {
		unsigned char c = (unsigned char)line[13 + i];

		r->reason[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	r->reason[reason_len] = '\0';
	return true;
}

struct resp_framing {
	bool has_length, chunked;
	bool close, keep_alive; /* tokens of the Connection field */
	uint64_t length;
};

static bool resp_field(struct cmi_http_resp *r, const char *line, size_t len,
		       struct resp_framing *f)
{
	const char *colon = memchr(line, ':', len);
	const char *value;
	size_t name_len, value_len;

	if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		resp_fail(r, "a header field is folded over lines (obsolete line folding)");
		return false;
	}
	if (colon == NULL || colon == line) {
		resp_fail(r, "a header line has no field name and colon");
		return false;
	}
	name_len = (size_t)(colon - line);
	for (size_t i = 0; i < name_len; i++) {
		if (!is_tchar((unsigned char)line[i])) {
			resp_fail(r, "a header field name has a character that is not allowed");
			return false;
		}
	}
	value = colon + 1;
	value_len = len - name_len - 1;
	while (value_len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		value_len--;
	}
	while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
		value_len--;
	for (size_t i = 0; i < value_len; i++) {
		unsigned char c = (unsigned char)value[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			resp_fail(r, "a header field value has a control character");
			return false;
		}
	}

	if (resp_name_is(line, name_len, "content-length")) {
		uint64_t n;

		if (!resp_parse_length(value, value_len, &n)) {
			resp_fail(r, "Content-Length is not a decimal number below 10^15");
			return false;
		}
		if (f->has_length && n != f->length) {
			resp_fail(r, "two Content-Length fields disagree");
			return false;
		}
		f->has_length = true;
		f->length = n;
	} else if (resp_name_is(line, name_len, "transfer-encoding")) {
		if (!resp_last_is_chunked(value, value_len)) {
			resp_fail(r, "Transfer-Encoding does not end with chunked");
			return false;
		}
		f->chunked = true;
	} else if (resp_name_is(line, name_len, "connection")) {
		if (resp_list_has(value, value_len, "close"))
			f->close = true;
		if (resp_list_has(value, value_len, "keep-alive"))
			f->keep_alive = true;
	}
	return true;
}

/* Parses a complete head of len bytes, its empty line included, and sets
 * the phase of what follows. */
static void resp_head(struct cmi_http_resp *r, const char *head, size_t len)
{
	struct resp_framing f = {0};
	const char *p = head, *end = head + len;
	bool first = true;

	while (p < end) {
		size_t n = resp_line(p, (size_t)(end - p));
		size_t text = n - 1;

		if (text > 0 && p[text - 1] == '\r')
			text--;
		if (text == 0)
			break;
		if (memchr(p, '\r', text) != NULL) {
			resp_fail(r, "a CR inside a header line");
			return;
		}
		if (first ? !resp_status_line(r, p, text) : !resp_field(r, p, text, &f))
			return;
		first = false;
		p += n;
	}
	if (first) {
		resp_fail(r, "an empty line where the status line belongs");
		return;
	}
	/* An HTTP/1.0 server that sends keep-alive keeps the connection and
	 * serves the requests pipelined behind (RFC 9112, section 9.3). */
	if (f.close)
		r->close = true;
	else if (r->close && f.keep_alive)
		r->close = false;

	if (r->status >= 100 && r->status <= 199) {
		if (r->status == 101) {
			resp_fail(r, "the server switched protocols (101)");
			return;
		}
		/* An interim response: the final one follows. */
		r->phase = CMI_HTTP_RESP_HEAD;
		r->close = false;
		return;
	}
	if (r->status == 204 || r->status == 304) {
		r->phase = CMI_HTTP_RESP_DONE;
		return;
	}
	if (f.chunked) {
		/* A sender of both fields may be smuggling; the body is read as
		 * chunked, and the connection not reused (RFC 9112, 6.3). */
		r->close = r->close || f.has_length;
		r->phase = CMI_HTTP_RESP_CHUNK_SIZE;
	} else if (f.has_length) {
		r->remaining = f.length;
		r->phase = f.length > 0 ? CMI_HTTP_RESP_BODY : CMI_HTTP_RESP_DONE;
	} else {
		r->close = true;
		r->phase = CMI_HTTP_RESP_UNTIL_CLOSE;
	}
}

/* Parses a chunk-size line of len bytes without its line end. */
static void resp_chunk_size(struct cmi_http_resp *r, const char *line, size_t len)
{
	uint64_t n = 0;
	size_t i = 0;

	for (; i < len; i++) {
		int d = cmi_hex_digit((unsigned char)line[i]);

		if (d < 0)
			break;
		if (i >= 15) {
			resp_fail(r, "a chunk size has more than 15 hex digits");
			return;
		}
		n = n * 16 + (uint64_t)d;
	}
	if (i == 0 || (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t')) {
		resp_fail(r, "a chunk size is not a hex number");
		return;
	}
	r->remaining = n;
	r->phase = n > 0 ? CMI_HTTP_RESP_CHUNK_DATA : CMI_HTTP_RESP_TRAILER;
}

/* Runs one step on data; returns the bytes used (0: more are needed). */
static size_t resp_step(struct cmi_http_resp *r, const char *data, size_t len)
{
	size_t n, text;

	switch (r->phase) {
	case CMI_HTTP_RESP_HEAD:
		n = resp_head_end(data, len < CMI_HTTP_RESP_HEAD_MAX ? len : CMI_HTTP_RESP_HEAD_MAX);
		if (n == 0) {
			if (len >= CMI_HTTP_RESP_HEAD_MAX)
				resp_fail(r, "the head is longer than 16384 bytes");
			return 0;
		}
		resp_head(r, data, n);
		return n;
	case CMI_HTTP_RESP_BODY:
	case CMI_HTTP_RESP_CHUNK_DATA:
		n = len < r->remaining ? len : (size_t)r->remaining;
		if (!resp_keep(r, data, n))
			return 0;
		r->remaining -= n;
		if (r->remaining == 0)
			r->phase = r->phase == CMI_HTTP_RESP_BODY ? CMI_HTTP_RESP_DONE
								  : CMI_HTTP_RESP_CHUNK_END;
		return n;
	case CMI_HTTP_RESP_UNTIL_CLOSE:
		return resp_keep(r, data, len) ? len : 0;
	case CMI_HTTP_RESP_CHUNK_SIZE:
	case CMI_HTTP_RESP_TRAILER:
		n = resp_line(data, len < CMI_HTTP_RESP_LINE_MAX ? len : CMI_HTTP_RESP_LINE_MAX);
		if (n == 0) {
			if (len >= CMI_HTTP_RESP_LINE_MAX)
				resp_fail(r, "a chunk-size or trailer line is longer than 1024 bytes");
			return 0;
		}
		text = n - 1;
		if (text > 0 && data[text - 1] == '\r')
			text--;
		if (r->phase == CMI_HTTP_RESP_CHUNK_SIZE)
			resp_chunk_size(r, data, text);
		else if (text == 0)
			r->phase = CMI_HTTP_RESP_DONE;
		return n;
	case CMI_HTTP_RESP_CHUNK_END:
		if (data[0] == '\n') {
			r->phase = CMI_HTTP_RESP_CHUNK_SIZE;
			return 1;
		}
		if (data[0] != '\r') {
			resp_fail(r, "chunk data is longer than its size");
			return 0;
		}
		if (len < 2)
			return 0;
		if (data[1] != '\n') {
			resp_fail(r, "chunk data is longer than its size");
			return 0;
		}
		r->phase = CMI_HTTP_RESP_CHUNK_SIZE;
		return 2;
	case CMI_HTTP_RESP_DONE:
	case CMI_HTTP_RESP_BAD:
		break;
	}
	return 0;
}

size_t cmi_http_resp_feed(struct cmi_http_resp *r, const char *data, size_t len)
{
	size_t used = 0;

	while (used < len && r->phase != CMI_HTTP_RESP_DONE && r->phase != CMI_HTTP_RESP_BAD) {
		size_t n = resp_step(r, data + used, len - used);

		if (n == 0)
			break;
		used += n;
	}
	return used;
}

bool cmi_http_resp_eof(struct cmi_http_resp *r)
{
	if (r->phase == CMI_HTTP_RESP_UNTIL_CLOSE) {
		r->phase = CMI_HTTP_RESP_DONE;
		return true;
	}
	if (r->phase == CMI_HTTP_RESP_DONE)
		return true;
	if (r->phase != CMI_HTTP_RESP_BAD)
		resp_fail(r, "the connection closed in the middle of the response");
	return false;
}
