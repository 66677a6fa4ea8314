/* Request line, header fields and chunked bodies; see http_request_parse.h. */
#include <string.h>
#include <strings.h>

#include "common/common_int.h"
#include "http/http_request_parse.h"

static int head_fail(struct cmi_http_req_head *h, int status, const char *reason)
{
	h->status = status;
	h->reason = reason;
	return status;
}

/* The methods the server recognizes. Any other token gets 501, as unknown
 * methods do from most servers. */
static const char *const known_methods[] = {"GET",     "POST",    "HEAD",  "PUT",  "DELETE",
					    "OPTIONS", "TRACE",   "CONNECT", "PATCH"};

static const char *head_method(const char *token)
{
	for (size_t i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
		if (strcmp(token, known_methods[i]) == 0)
			return known_methods[i];
	}
	return NULL;
}

/* Returns a pointer past the end of the line at p (before its CRLF), or
 * NULL when the head ends without one. */
static char *line_end(char *p, const char *end)
{
	char *cr = memchr(p, '\r', (size_t)(end - p));

	return (cr != NULL && cr + 1 < end && cr[1] == '\n') ? cr : NULL;
}

/* Splits the target into path and query. Origin form ("/p?q"), absolute
 * form ("http://host/p?q", which proxies send) and "*" are accepted. */
static int head_target(struct cmi_http_req_head *h, char *target)
{
	char *p = target;
	char *q;

	/* A fragment is never sent, and one in an absolute target's host would
	 * otherwise hide the path. */
	p[strcspn(p, "#")] = '\0';
	if (strncasecmp(p, "http://", 7) == 0 || strncasecmp(p, "https://", 8) == 0) {
		p = strstr(p, "://") + 3;
		if (*p == '\0' || *p == '/' || *p == '?')
			return head_fail(h, 400, "absolute request target without a host");
		p += strcspn(p, "/?");
	} else if (strcmp(p, "*") == 0) {
		h->path = "*";
		return 0;
	} else if (*p != '/') {
		return head_fail(h, 400, "request target is neither a path (\"/...\") nor an "
					 "absolute http URL");
	}
	q = strchr(p, '?');
	if (q != NULL) {
		*q = '\0';
		h->query = q + 1;
	}
	/* An absolute target without a path ("http://host?q") leaves p empty;
	 * its query was cut off it already. */
	h->path = *p != '\0' ? p : "/";
	return 0;
}

/* "HTTP/1.0" or "HTTP/1.1"; another valid version gets 505. */
static int head_version(struct cmi_http_req_head *h, const char *v, size_t n)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return head_fail(h, 400, "malformed HTTP version in the request line; send "
					 "\"HTTP/1.1\"");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return head_fail(h, 505, "HTTP version not supported; send HTTP/1.1");
	h->minor = v[7] - '0';
	return 0;
}

/* "METHOD SP target SP HTTP/1.x", each part separated by one space. */
static int head_request_line(struct cmi_http_req_head *h, char *line, char *eol)
{
	char *sp1 = memchr(line, ' ', (size_t)(eol - line));
	char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
	int rc;

	if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1 ||
	    memchr(sp2 + 1, ' ', (size_t)(eol - sp2 - 1)) != NULL)
		return head_fail(h, 400, "malformed request line; send \"METHOD /path HTTP/1.1\" "
					 "with single spaces");
	if (memchr(line, '\0', (size_t)(eol - line)) != NULL)
		return head_fail(h, 400, "NUL byte in the request line");
	rc = head_version(h, sp2 + 1, (size_t)(eol - sp2 - 1));
	if (rc != 0)
		return rc;
	*sp1 = '\0';
	*sp2 = '\0';
	h->method = head_method(line);
	if (h->method == NULL)
		return head_fail(h, 501, "unknown request method; the broker accepts POST");
	return head_target(h, sp1 + 1);
}

/* Returns true when the comma-separated list value contains token (without
 * regard to case), as Connection values do. */
static bool list_has(const char *value, const char *token)
{
	size_t n = strlen(token);

	for (const char *p = value; *p != '\0';) {
		size_t len;

		p += strspn(p, " \t,");
		len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == n && strncasecmp(p, token, n) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

static uint64_t parse_length(const char *v)
{
	uint64_t n = 0;

	for (; *v >= '0' && *v <= '9'; v++) {
		uint64_t d = (uint64_t)(*v - '0');

		if (n > (UINT64_MAX - d) / 10)
			return UINT64_MAX;
		n = n * 10 + d;
	}
	return n;
}

/* Reads the fields that decide framing and the connection's fate. The
 * strict head check has already rejected repeated or mixed framing fields. */
static int head_semantics(struct cmi_http_req_head *h)
{
	const char *v;
	bool close = false, keep = false;

	v = cmi_http_req_head_field(h, "Content-Length");
	if (v != NULL) {
		if (*v == '\0' || strspn(v, "0123456789") != strlen(v))
			return head_fail(h, 400, "Content-Length is not a decimal number of bytes");
		h->has_length = true;
		h->length = parse_length(v);
	}
	v = cmi_http_req_head_field(h, "Transfer-Encoding");
	if (v != NULL) {
		if (strcasecmp(v, "chunked") != 0)
			return head_fail(h, 501, "unsupported Transfer-Encoding; the server accepts "
						 "only \"chunked\"");
		if (h->has_length)
			return head_fail(h, 400, "both Content-Length and Transfer-Encoding are "
						 "set; send only one of them");
		h->chunked = true;
	}
	for (unsigned i = 0; i < h->n_fields; i++) {
		if (strcasecmp(h->fields[i].name, "Connection") == 0) {
			close = close || list_has(h->fields[i].value, "close");
			keep = keep || list_has(h->fields[i].value, "keep-alive");
		}
	}
	/* RFC 9112, section 6.1: chunked framing from an HTTP/1.0 client is
	 * suspect, so the connection ends after the request. */
	h->keep_alive = !close && (h->minor >= 1 || keep) && !(h->chunked && h->minor == 0);
	v = cmi_http_req_head_field(h, "Expect");
	if (v != NULL) {
		if (strcasecmp(v, "100-continue") != 0)
			return head_fail(h, 417, "unsupported Expect value; only \"100-continue\" "
						 "is understood");
		h->expect_continue = h->minor >= 1;
	}
	return 0;
}

/* One "name: value" line, NUL-terminated in place. */
static int head_field(struct cmi_http_req_head *h, char *line, char *eol)
{
	char *colon = memchr(line, ':', (size_t)(eol - line));
	char *v, *e = eol;

	if (colon == NULL || colon == line)
		return head_fail(h, 400, "header line without a field name and colon");
	if (memchr(line, '\0', (size_t)(eol - line)) != NULL)
		return head_fail(h, 400, "NUL byte in a header field");
	if (h->n_fields >= CMI_HTTP_HEAD_MAX_FIELDS)
		return head_fail(h, 431, "too many header fields; send fewer");
	*colon = '\0';
	for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*e = '\0';
	h->fields[h->n_fields].name = line;
	h->fields[h->n_fields].value = v;
	h->n_fields++;
	return 0;
}

int cmi_http_req_head_parse(char *head, size_t len, struct cmi_http_req_head *h)
{
	const char *end = head + len;
	char *p = head, *eol;
	int rc;

	memset(h, 0, sizeof(*h));
	eol = line_end(p, end);
	if (eol == NULL || eol == p)
		return head_fail(h, 400, "request head without a request line");
	rc = head_request_line(h, p, eol);
	if (rc != 0)
		return rc;
	for (p = eol + 2; p < end; p = eol + 2) {
		eol = line_end(p, end);
		if (eol == NULL && memchr(p, '\r', (size_t)(end - p - 1)) != NULL)
			return head_fail(h, 400, "bare CR in the request head; end every line with "
						 "CRLF");
		if (eol == NULL)
			return head_fail(h, 400, "request head without its closing empty line");
		if (eol == p)
			return head_semantics(h);
		rc = head_field(h, p, eol);
		if (rc != 0)
			return rc;
	}
	return head_fail(h, 400, "request head without its closing empty line");
}

const char *cmi_http_req_head_field(const struct cmi_http_req_head *h, const char *name)
{
	for (unsigned i = 0; i < h->n_fields; i++) {
		if (strcasecmp(h->fields[i].name, name) == 0)
			return h->fields[i].value;
	}
	return NULL;
}

/* ---- chunked bodies ---- */

enum chunk_state {
	CH_SIZE = 0,  /* hex digits of a chunk size */
	CH_SIZE_WS,   /* spaces or tabs after the size, before a ";" */
	CH_EXT,       /* after ";": an extension, ignored */
	CH_SIZE_LF,   /* the LF after the size line's CR */
	CH_DATA,      /* left bytes of data */
	CH_DATA_CR,   /* the CR after the data */
	CH_DATA_LF,
	CH_TRAILER,   /* a trailer line, or the empty line that ends the body */
	CH_TRAILER_LF,
	CH_DONE
};

void cmi_http_chunked_init(struct cmi_http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

static enum cmi_http_chunk_result chunk_bad(struct cmi_http_chunked *c, const char *reason)
{
	c->result = CMI_HTTP_CHUNK_BAD;
	c->reason = reason;
	return CMI_HTTP_CHUNK_BAD;
}

/* The bytes of a size line: hex digits, then an optional extension. */
static enum cmi_http_chunk_result chunk_size_byte(struct cmi_http_chunked *c, unsigned char b)
{
	int d = cmi_hex_digit((char)b);

	if (++c->line > CMI_HTTP_CHUNK_LINE_MAX)
		return chunk_bad(c, "chunk size line too long");
	if (c->state == CH_SIZE && d >= 0) {
		if (c->left > (UINT64_MAX >> 4))
			return chunk_bad(c, "chunk size too large");
		c->left = c->left * 16 + (uint64_t)d;
		c->digits++;
		return CMI_HTTP_CHUNK_MORE;
	}
	/* RFC 9112, 7.1.1: optional whitespace may come before an extension. */
	if ((c->state == CH_SIZE || c->state == CH_SIZE_WS) && c->digits > 0 &&
	    (b == ' ' || b == '\t')) {
		c->state = CH_SIZE_WS;
		return CMI_HTTP_CHUNK_MORE;
	}
	if (b == '\r' && c->state != CH_SIZE_WS) {
		if (c->digits == 0)
			return chunk_bad(c, "invalid chunk size: no hex digits");
		c->state = CH_SIZE_LF;
		return CMI_HTTP_CHUNK_MORE;
	}
	if ((c->state == CH_SIZE || c->state == CH_SIZE_WS) && b == ';' && c->digits > 0) {
		c->state = CH_EXT;
		return CMI_HTTP_CHUNK_MORE;
	}
	if (c->state == CH_EXT && (b >= 0x20 || b == '\t') && b != 0x7f)
		return CMI_HTTP_CHUNK_MORE;
	return chunk_bad(c, "invalid chunk size: send hex digits and CRLF");
}

/* The bytes of the trailer: field lines, counted and skipped, then the
 * empty line. */
static enum cmi_http_chunk_result chunk_trailer_byte(struct cmi_http_chunked *c, unsigned char b)
{
	if (++c->trailer > CMI_HTTP_CHUNK_TRAILER_MAX)
		return chunk_bad(c, "chunked trailer too long");
	if (c->state == CH_TRAILER_LF) {
		if (b != '\n')
			return chunk_bad(c, "bare CR in the chunked trailer");
		if (c->line == 0) {
			c->state = CH_DONE;
			c->result = CMI_HTTP_CHUNK_DONE;
			return CMI_HTTP_CHUNK_DONE;
		}
		c->state = CH_TRAILER;
		c->line = 0;
		return CMI_HTTP_CHUNK_MORE;
	}
	if (b == '\r') {
		c->state = CH_TRAILER_LF;
		return CMI_HTTP_CHUNK_MORE;
	}
	if ((b < 0x20 && b != '\t') || b == 0x7f)
		return chunk_bad(c, "control byte or bare LF in the chunked trailer");
	c->line++;
	return CMI_HTTP_CHUNK_MORE;
}

/* One framing byte (anything but data). */
static enum cmi_http_chunk_result chunk_byte(struct cmi_http_chunked *c, unsigned char b)
{
	switch (c->state) {
	case CH_SIZE:
	case CH_SIZE_WS:
	case CH_EXT:
		return chunk_size_byte(c, b);
	case CH_SIZE_LF:
		if (b != '\n')
			return chunk_bad(c, "bare CR after a chunk size");
		c->line = 0;
		c->digits = 0;
		c->state = c->left > 0 ? CH_DATA : CH_TRAILER;
		return CMI_HTTP_CHUNK_MORE;
	case CH_DATA_CR:
		if (b != '\r')
			return chunk_bad(c, "chunk data longer than its size");
		c->state = CH_DATA_LF;
		return CMI_HTTP_CHUNK_MORE;
	case CH_DATA_LF:
		if (b != '\n')
			return chunk_bad(c, "bare CR after chunk data");
		c->state = CH_SIZE;
		return CMI_HTTP_CHUNK_MORE;
	default:
		return chunk_trailer_byte(c, b);
	}
}

enum cmi_http_chunk_result cmi_http_chunked_feed(struct cmi_http_chunked *c, const char *in,
						 size_t len, size_t *used, size_t *data_off,
						 size_t *data_len)
{
	size_t i = 0;

	*used = 0;
	*data_off = 0;
	*data_len = 0;
	if (c->result == CMI_HTTP_CHUNK_DONE || c->result == CMI_HTTP_CHUNK_BAD)
		return c->result;
	while (i < len) {
		enum cmi_http_chunk_result rc;

		if (c->state == CH_DATA) {
			size_t n = (uint64_t)(len - i) < c->left ? len - i : (size_t)c->left;

			c->left -= n;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			*data_off = i;
			*data_len = n;
			*used = i + n;
			return CMI_HTTP_CHUNK_DATA;
		}
		rc = chunk_byte(c, (unsigned char)in[i++]);
		if (rc == CMI_HTTP_CHUNK_DONE) {
			*used = i;
			return rc;
		}
		if (rc == CMI_HTTP_CHUNK_BAD) {
			*used = i - 1;
			return rc;
		}
	}
	*used = len;
	return CMI_HTTP_CHUNK_MORE;
}
