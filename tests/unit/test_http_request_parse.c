/* The server's request parser: request lines, header fields, framing,
 * Connection and Expect of a complete head, and the chunked body decoder fed
 * whole, in pieces and one byte at a time. Every head is parsed from a heap
 * copy of its exact size, so a sanitizer build catches a read past its end. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http_request_parse.h"
#include "testkit.h"

/* A head parsed in place from a heap copy, so the strings of h point into buf. */
struct parsed {
	char *buf;
	size_t len;
	int rc;
	struct cmi_http_req_head h;
};

static void parse_bytes(struct parsed *p, const char *text, size_t len)
{
	p->len = len;
	p->buf = malloc(len);
	assert_true(p->buf != NULL || len == 0);
	if (len > 0)
		memcpy(p->buf, text, len);
	p->rc = cmi_http_req_head_parse(p->buf, len, &p->h);
}

static void parse_text(struct parsed *p, const char *text)
{
	parse_bytes(p, text, strlen(text));
}

static void parsed_free(struct parsed *p)
{
	free(p->buf);
	p->buf = NULL;
}

/* Asserts that s is a string that starts and ends inside the parsed head. */
static void assert_inside(const struct parsed *p, const char *s)
{
	assert_non_null(s);
	assert_true(s >= p->buf && s < p->buf + p->len);
	assert_non_null(memchr(s, '\0', (size_t)(p->buf + p->len - s)));
}

static void assert_query(const char *query, const char *expected)
{
	if (expected == NULL) {
		assert_null(query);
		return;
	}
	assert_non_null(query);
	assert_string_equal(query, expected);
}

/* Prints a case with its line ends shown as \r and \n, so the output of a
 * failing case stays on one line. */
static void print_case(size_t i, const char *label, const char *text)
{
	char shown[512];
	size_t n = 0;

	for (const char *c = text; *c != '\0' && n + 3 < sizeof(shown); c++) {
		if (*c == '\r' || *c == '\n') {
			shown[n++] = '\\';
			shown[n++] = *c == '\r' ? 'r' : 'n';
		} else {
			shown[n++] = *c;
		}
	}
	shown[n] = '\0';
	print_message("case %zu:%s %s\n", i, label, shown);
}

/* ---- request line ---- */

struct line_case {
	const char *line;
	const char *method;
	const char *path;
	const char *query; /* NULL when the target has no "?" */
	int minor;
};

static const struct line_case method_lines[] = {
	{"GET / HTTP/1.1", "GET", "/", NULL, 1},
	{"POST / HTTP/1.1", "POST", "/", NULL, 1},
	{"HEAD / HTTP/1.1", "HEAD", "/", NULL, 1},
	{"PUT / HTTP/1.1", "PUT", "/", NULL, 1},
	{"DELETE / HTTP/1.1", "DELETE", "/", NULL, 1},
	{"OPTIONS / HTTP/1.1", "OPTIONS", "/", NULL, 1},
	{"TRACE / HTTP/1.1", "TRACE", "/", NULL, 1},
	{"CONNECT / HTTP/1.1", "CONNECT", "/", NULL, 1},
	{"PATCH / HTTP/1.1", "PATCH", "/", NULL, 1},
	{"POST / HTTP/1.0", "POST", "/", NULL, 0},
};

static const struct line_case target_lines[] = {
	{"POST /a/b?x=1&y=2 HTTP/1.1", "POST", "/a/b", "x=1&y=2", 1},
	{"POST /a HTTP/1.1", "POST", "/a", NULL, 1},
	{"POST /a? HTTP/1.1", "POST", "/a", "", 1},
	{"POST /a?? HTTP/1.1", "POST", "/a", "?", 1},
	{"POST http://h:8080/p?q=1 HTTP/1.1", "POST", "/p", "q=1", 1},
	{"POST https://h/p/q HTTP/1.1", "POST", "/p/q", NULL, 1},
	{"POST HTTPS://H/p HTTP/1.1", "POST", "/p", NULL, 1},
	{"POST http://h?x=1 HTTP/1.1", "POST", "/", "x=1", 1},
	{"POST http://h HTTP/1.1", "POST", "/", NULL, 1},
	{"OPTIONS * HTTP/1.1", "OPTIONS", "*", NULL, 1},
	{"GET /p#frag HTTP/1.1", "GET", "/p", NULL, 1},
	{"GET /p?x=1#frag HTTP/1.1", "GET", "/p", "x=1", 1},
	{"GET /p#f?x=1 HTTP/1.1", "GET", "/p", NULL, 1},
	{"GET http://h/p?x#f HTTP/1.1", "GET", "/p", "x", 1},
};

static void check_good_lines(const struct line_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct line_case *c = &cases[i];
		struct parsed p;
		char head[256];

		print_message("case %zu: %s\n", i, c->line);
		snprintf(head, sizeof(head), "%s\r\nHost: h\r\n\r\n", c->line);
		parse_text(&p, head);
		assert_int_equal(p.rc, 0);
		assert_non_null(p.h.method);
		assert_string_equal(p.h.method, c->method);
		assert_non_null(p.h.path);
		assert_string_equal(p.h.path, c->path);
		assert_query(p.h.query, c->query);
		assert_int_equal(p.h.minor, c->minor);
		assert_int_equal(p.h.n_fields, 1);
		parsed_free(&p);
	}
}

static void test_http_request_parse_known_methods_accepted(void **state)
{
	(void)state;
	check_good_lines(method_lines, sizeof(method_lines) / sizeof(method_lines[0]));
}

static void test_http_request_parse_targets_split_path_query(void **state)
{
	(void)state;
	check_good_lines(target_lines, sizeof(target_lines) / sizeof(target_lines[0]));
}

struct bad_line_case {
	const char *line;
	int status;
	const char *reason;
};

static const struct bad_line_case bad_lines[] = {
	{"FOO / HTTP/1.1", 501, "unknown request method"},
	{"get / HTTP/1.1", 501, "unknown request method"},
	{"GETS / HTTP/1.1", 501, "unknown request method"},
	{"GET / http/1.1", 400, "malformed HTTP version"},
	{"GET / HTTP/1.1x", 400, "malformed HTTP version"},
	{"GET / HTTP/1", 400, "malformed HTTP version"},
	{"GET / HTTP/a.1", 400, "malformed HTTP version"},
	{"GET / HTTP/1.x", 400, "malformed HTTP version"},
	{"GET / HTTP/1,1", 400, "malformed HTTP version"},
	{"GET / HTTP/11.1", 400, "malformed HTTP version"},
	{"GET / HTTPS/1.1", 400, "malformed HTTP version"},
	{"GET / HTTP/2.0", 505, "HTTP version not supported"},
	{"GET / HTTP/1.2", 505, "HTTP version not supported"},
	{"GET / HTTP/0.9", 505, "HTTP version not supported"},
	{"GET  / HTTP/1.1", 400, "malformed request line"},
	{"GET /  HTTP/1.1", 400, "malformed request line"},
	{"GET / HTTP/1.1 ", 400, "malformed request line"},
	{" GET / HTTP/1.1", 400, "malformed request line"},
	{"GET  HTTP/1.1", 400, "malformed request line"},
	{"GET HTTP/1.1", 400, "malformed request line"},
	{"GET /", 400, "malformed request line"},
	{"GET", 400, "malformed request line"},
	{"GET\t/\tHTTP/1.1", 400, "malformed request line"},
	{"GET p HTTP/1.1", 400, "neither a path"},
	{"GET ftp://h/p HTTP/1.1", 400, "neither a path"},
	{"GET *x HTTP/1.1", 400, "neither a path"},
	{"GET ?x=1 HTTP/1.1", 400, "neither a path"},
	{"GET http:// HTTP/1.1", 400, "without a host"},
	{"GET http:///p HTTP/1.1", 400, "without a host"},
	{"GET https://?x=1 HTTP/1.1", 400, "without a host"},
};

static void test_http_request_parse_bad_request_lines_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		const struct bad_line_case *c = &bad_lines[i];
		struct parsed p;
		char head[256];

		print_message("case %zu: %s\n", i, c->line);
		snprintf(head, sizeof(head), "%s\r\nHost: h\r\n\r\n", c->line);
		parse_text(&p, head);
		assert_int_equal(p.rc, c->status);
		assert_int_equal(p.h.status, c->status);
		TK_CONTAINS(p.h.reason, c->reason);
		parsed_free(&p);
	}
}

/* ---- header fields ---- */

static void test_http_request_parse_field_values_trimmed(void **state)
{
	struct parsed p;

	(void)state;
	parse_text(&p, "POST / HTTP/1.1\r\nX-Trim: \t value with  spaces \t\r\nX-Empty:\r\n"
		       "X-Blank:  \t \r\nX-Tight:v\r\n\r\n");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.h.n_fields, 4);
	for (unsigned i = 0; i < p.h.n_fields; i++) {
		assert_inside(&p, p.h.fields[i].name);
		assert_inside(&p, p.h.fields[i].value);
	}
	assert_string_equal(p.h.fields[0].name, "X-Trim");
	assert_string_equal(p.h.fields[0].value, "value with  spaces");
	assert_string_equal(p.h.fields[1].name, "X-Empty");
	assert_string_equal(p.h.fields[1].value, "");
	assert_string_equal(p.h.fields[2].name, "X-Blank");
	assert_string_equal(p.h.fields[2].value, "");
	assert_string_equal(p.h.fields[3].name, "X-Tight");
	assert_string_equal(p.h.fields[3].value, "v");
	parsed_free(&p);
}

static void test_http_request_parse_field_lookup_ignores_case(void **state)
{
	struct parsed p;
	const char *value;

	(void)state;
	parse_text(&p, "POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n");
	assert_int_equal(p.rc, 0);
	value = cmi_http_req_head_field(&p.h, "Content-Type");
	assert_non_null(value);
	assert_string_equal(value, "application/json");
	assert_ptr_equal(cmi_http_req_head_field(&p.h, "content-type"), value);
	assert_ptr_equal(cmi_http_req_head_field(&p.h, "CONTENT-TYPE"), value);
	assert_null(cmi_http_req_head_field(&p.h, "Content-Typ"));
	assert_null(cmi_http_req_head_field(&p.h, "Content-Type-X"));
	assert_null(cmi_http_req_head_field(&p.h, "Host"));
	parsed_free(&p);
}

static void test_http_request_parse_repeated_field_first_wins(void **state)
{
	struct parsed p;
	const char *value;

	(void)state;
	parse_text(&p, "POST / HTTP/1.1\r\nX-Dup: one\r\nX-Other: o\r\nx-dup: two\r\n\r\n");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.h.n_fields, 3);
	value = cmi_http_req_head_field(&p.h, "X-DUP");
	assert_non_null(value);
	assert_string_equal(value, "one");
	assert_string_equal(p.h.fields[2].name, "x-dup");
	assert_string_equal(p.h.fields[2].value, "two");
	parsed_free(&p);
}

static char *head_with_fields(unsigned fields)
{
	size_t size = 64 + (size_t)fields * 24;
	char *text = malloc(size);
	size_t n;

	assert_non_null(text);
	n = (size_t)snprintf(text, size, "POST / HTTP/1.1\r\n");
	for (unsigned i = 0; i < fields; i++)
		n += (size_t)snprintf(text + n, size - n, "X-F%u: v%u\r\n", i, i);
	snprintf(text + n, size - n, "\r\n");
	return text;
}

static void test_http_request_parse_field_limit_431(void **state)
{
	char *at_limit = head_with_fields(CMI_HTTP_HEAD_MAX_FIELDS);
	char *over = head_with_fields(CMI_HTTP_HEAD_MAX_FIELDS + 1);
	struct parsed p;

	(void)state;
	parse_text(&p, at_limit);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.h.n_fields, CMI_HTTP_HEAD_MAX_FIELDS);
	assert_string_equal(p.h.fields[CMI_HTTP_HEAD_MAX_FIELDS - 1].value, "v99");
	parsed_free(&p);

	parse_text(&p, over);
	assert_int_equal(p.rc, 431);
	assert_int_equal(p.h.status, 431);
	TK_CONTAINS(p.h.reason, "too many header fields");
	parsed_free(&p);

	free(at_limit);
	free(over);
}

/* ---- framing, Connection and Expect ---- */

struct framing_case {
	const char *fields; /* header lines, each ending with CRLF */
	int rc;
	bool chunked;
	bool has_length;
	uint64_t length;
	const char *reason; /* part of the reason when rc is not 0 */
};

static const struct framing_case framing_cases[] = {
	{"", 0, false, false, 0, NULL},
	{"Content-Length: 0\r\n", 0, false, true, 0, NULL},
	{"Content-Length:  7 \r\n", 0, false, true, 7, NULL},
	{"content-length: 1048576\r\n", 0, false, true, 1048576, NULL},
	{"Content-Length: 000000000000000000000000042\r\n", 0, false, true, 42, NULL},
	{"Content-Length: 18446744073709551609\r\n", 0, false, true,
	 UINT64_C(18446744073709551609), NULL},
	{"Content-Length: 18446744073709551615\r\n", 0, false, true, UINT64_MAX, NULL},
	{"Content-Length: 18446744073709551616\r\n", 0, false, true, UINT64_MAX, NULL},
	{"Content-Length: 99999999999999999999999999\r\n", 0, false, true, UINT64_MAX, NULL},
	{"Transfer-Encoding: chunked\r\n", 0, true, false, 0, NULL},
	{"transfer-encoding: CHUNKED\r\n", 0, true, false, 0, NULL},
	{"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400, false, false, 0,
	 "both Content-Length and Transfer-Encoding"},
	{"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, false, false, 0,
	 "both Content-Length and Transfer-Encoding"},
	{"Transfer-Encoding: gzip\r\n", 501, false, false, 0, "unsupported Transfer-Encoding"},
	{"Transfer-Encoding: gzip, chunked\r\n", 501, false, false, 0,
	 "unsupported Transfer-Encoding"},
	{"Transfer-Encoding:\r\n", 501, false, false, 0, "unsupported Transfer-Encoding"},
	{"Content-Length: 5x\r\n", 400, false, false, 0, "not a decimal number"},
	{"Content-Length: -5\r\n", 400, false, false, 0, "not a decimal number"},
	{"Content-Length: +5\r\n", 400, false, false, 0, "not a decimal number"},
	{"Content-Length: 1 2\r\n", 400, false, false, 0, "not a decimal number"},
	{"Content-Length:\r\n", 400, false, false, 0, "not a decimal number"},
};

static void test_http_request_parse_framing_fields_read(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(framing_cases) / sizeof(framing_cases[0]); i++) {
		const struct framing_case *c = &framing_cases[i];
		struct parsed p;
		char head[256];

		print_case(i, "", c->fields);
		snprintf(head, sizeof(head), "POST / HTTP/1.1\r\n%s\r\n", c->fields);
		parse_text(&p, head);
		assert_int_equal(p.rc, c->rc);
		if (c->rc != 0) {
			assert_int_equal(p.h.status, c->rc);
			TK_CONTAINS(p.h.reason, c->reason);
		} else {
			assert_int_equal(p.h.chunked, c->chunked);
			assert_int_equal(p.h.has_length, c->has_length);
			assert_true(p.h.length == c->length);
		}
		parsed_free(&p);
	}
}

struct connection_case {
	int minor;
	const char *fields;
	bool keep_alive;
};

static const struct connection_case connection_cases[] = {
	{1, "", true},
	{1, "Connection: close\r\n", false},
	{1, "Connection: Close\r\n", false},
	{1, "Connection: keep-alive\r\n", true},
	{1, "Connection: foo, close\r\n", false},
	{1, "Connection: close, foo\r\n", false},
	{1, "Connection: foo,close\r\n", false},
	{1, "Connection: foo ,\tclose\t\r\n", false},
	{1, "Connection: , ,close,\r\n", false},
	{1, "Connection: foo\r\nConnection: close\r\n", false},
	{1, "Connection: keep-alive, close\r\n", false},
	{1, "Connection: closed\r\n", true},
	{1, "Connection: upgrade\r\n", true},
	{1, "Connection:\r\n", true},
	{0, "", false},
	{0, "Connection: keep-alive\r\n", true},
	{0, "Connection: Keep-Alive, foo\r\n", true},
	{0, "Connection: foo\r\nConnection: keep-alive\r\n", true},
	{0, "Connection: keep-alive, close\r\n", false},
	{0, "Connection: keep-alive-ish\r\n", false},
	/* RFC 9112, section 6.1: HTTP/1.0 has no chunked coding, so its framing
	 * is suspect and the connection closes after the request. */
	{0, "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n", false},
	{1, "Transfer-Encoding: chunked\r\n", true},
};

static void test_http_request_parse_connection_sets_keep_alive(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(connection_cases) / sizeof(connection_cases[0]); i++) {
		const struct connection_case *c = &connection_cases[i];
		struct parsed p;
		char head[256];

		print_case(i, c->minor == 0 ? " HTTP/1.0" : " HTTP/1.1", c->fields);
		snprintf(head, sizeof(head), "POST / HTTP/1.%d\r\n%s\r\n", c->minor, c->fields);
		parse_text(&p, head);
		assert_int_equal(p.rc, 0);
		assert_int_equal(p.h.minor, c->minor);
		assert_int_equal(p.h.keep_alive, c->keep_alive);
		parsed_free(&p);
	}
}

struct expect_case {
	int minor;
	const char *fields;
	int rc;
	bool expect_continue;
};

/* An HTTP/1.0 client does not wait for "100 Continue", so the parser ignores
 * 100-continue there. Any other expectation gets 417. */
static const struct expect_case expect_cases[] = {
	{1, "", 0, false},
	{1, "Expect: 100-continue\r\n", 0, true},
	{1, "Expect: 100-Continue \r\n", 0, true},
	{0, "Expect: 100-continue\r\n", 0, false},
	{1, "Expect: 200-ok\r\n", 417, false},
	{1, "Expect: 100-continue, foo\r\n", 417, false},
	{1, "Expect: 100-continued\r\n", 417, false},
};

static void test_http_request_parse_expect_continue_read(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(expect_cases) / sizeof(expect_cases[0]); i++) {
		const struct expect_case *c = &expect_cases[i];
		struct parsed p;
		char head[256];

		print_case(i, c->minor == 0 ? " HTTP/1.0" : " HTTP/1.1", c->fields);
		snprintf(head, sizeof(head), "POST / HTTP/1.%d\r\n%s\r\n", c->minor, c->fields);
		parse_text(&p, head);
		assert_int_equal(p.rc, c->rc);
		if (c->rc != 0) {
			assert_int_equal(p.h.status, 417);
			TK_CONTAINS(p.h.reason, "unsupported Expect value");
		} else {
			assert_int_equal(p.h.expect_continue, c->expect_continue);
		}
		parsed_free(&p);
	}
}

/* ---- bytes the strict head check would reject first ---- */

struct bad_bytes_case {
	const char *text;
	size_t len;
	const char *reason;
};

#define BYTES(s) s, sizeof(s) - 1

static const struct bad_bytes_case bad_bytes[] = {
	{BYTES("GET /a\0b HTTP/1.1\r\n\r\n"), "NUL byte in the request line"},
	{BYTES("G\0T / HTTP/1.1\r\n\r\n"), "NUL byte in the request line"},
	{BYTES("GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"), "NUL byte in a header field"},
	{BYTES("GET / HTTP/1.1\r\nX\0A: b\r\n\r\n"), "NUL byte in a header field"},
	{BYTES("GET / HTTP/1.1\r\nX-A: \0\r\n\r\n"), "NUL byte in a header field"},
	{BYTES("GET / HTTP/1.1\r\nno colon\r\n\r\n"), "without a field name and colon"},
	{BYTES("GET / HTTP/1.1\r\n: value\r\n\r\n"), "without a field name and colon"},
	{BYTES("GET / HTTP/1.1\r\nHost: h\r\n"), "without its closing empty line"},
	{BYTES("GET / HTTP/1.1\r\n"), "without its closing empty line"},
	{BYTES("GET / HTTP/1.1\r\nHost: h\r\n\r"), "without its closing empty line"},
	{BYTES("GET / HTTP/1.1\r\nHost: h"), "without its closing empty line"},
	{BYTES("GET / HTTP/1.1\r\nHost: h\n\n"), "without its closing empty line"},
	{BYTES("GET / HTTP/1.1"), "without a request line"},
	{BYTES("GET / HTTP/1.1\n\n"), "without a request line"},
	{BYTES("\r\n"), "without a request line"},
	{BYTES("\r\n\r\n"), "without a request line"},
	{BYTES(""), "without a request line"},
};

static void test_http_request_parse_bad_bytes_400(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_bytes) / sizeof(bad_bytes[0]); i++) {
		struct parsed p;

		print_message("case %zu: %s\n", i, bad_bytes[i].reason);
		parse_bytes(&p, bad_bytes[i].text, bad_bytes[i].len);
		assert_int_equal(p.rc, 400);
		assert_int_equal(p.h.status, 400);
		TK_CONTAINS(p.h.reason, bad_bytes[i].reason);
		parsed_free(&p);
	}
}

/* ---- chunked bodies ---- */

/* Outcome of decoding one input from its start. */
struct chunk_run {
	enum cmi_http_chunk_result rc;
	size_t used;     /* bytes taken until DONE or BAD, or all of them */
	char *body;      /* body_len bytes, freed by chunk_run_free */
	size_t body_len;
	const char *reason;
};

/* Feeds one piece until it is used up or the body ends, as a connection
 * would: after a run of data, the rest of the piece is fed again. */
static enum cmi_http_chunk_result chunk_feed_piece(struct cmi_http_chunked *c, struct chunk_run *r,
						   const char *piece, size_t n, size_t *taken)
{
	enum cmi_http_chunk_result rc;
	size_t off = 0;

	do {
		size_t used = 99, data_off = 99, data_len = 99;

		rc = cmi_http_chunked_feed(c, piece + off, n - off, &used, &data_off, &data_len);
		assert_true(used <= n - off);
		if (rc == CMI_HTTP_CHUNK_DATA) {
			assert_true(data_len > 0);
			assert_int_equal(data_off + data_len, used);
			memcpy(r->body + r->body_len, piece + off + data_off, data_len);
			r->body_len += data_len;
		} else {
			assert_int_equal(data_len, 0);
		}
		if (rc == CMI_HTTP_CHUNK_MORE)
			assert_int_equal(used, n - off);
		off += used;
	} while (off < n && rc == CMI_HTTP_CHUNK_DATA);
	*taken = off;
	return rc;
}

/* Decodes in[0..len) in pieces of step bytes. Once the body ended or broke
 * a rule, another feed must give the same result and take nothing. */
static void chunk_run(struct chunk_run *r, const char *in, size_t len, size_t step)
{
	struct cmi_http_chunked c;
	size_t at = 0;

	memset(r, 0, sizeof(*r));
	r->body = malloc(len + 1);
	assert_non_null(r->body);
	r->rc = CMI_HTTP_CHUNK_MORE;
	cmi_http_chunked_init(&c);
	while (at < len && (r->rc == CMI_HTTP_CHUNK_MORE || r->rc == CMI_HTTP_CHUNK_DATA)) {
		size_t n = len - at < step ? len - at : step, taken = 0;

		r->rc = chunk_feed_piece(&c, r, in + at, n, &taken);
		at += taken;
	}
	r->used = at;
	r->reason = c.reason;

	if (r->rc == CMI_HTTP_CHUNK_DONE || r->rc == CMI_HTTP_CHUNK_BAD) {
		size_t used = 99, data_off = 99, data_len = 99;

		assert_int_equal(cmi_http_chunked_feed(&c, "0\r\n\r\n", 5, &used, &data_off,
						       &data_len),
				 r->rc);
		assert_int_equal(used, 0);
		assert_int_equal(data_len, 0);
	}
}

static void chunk_run_free(struct chunk_run *r)
{
	free(r->body);
	r->body = NULL;
}

static void assert_body(const struct chunk_run *r, const char *body, size_t len)
{
	assert_int_equal(r->body_len, len);
	if (len > 0)
		assert_memory_equal(r->body, body, len);
}

struct chunk_case {
	const char *name;
	const char *text;
	const char *body;
};

static const struct chunk_case chunk_cases[] = {
	{"single chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"},
	{"many chunks", "1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n", "abcdef"},
	{"extensions", "5;name=value;flag\r\nhello\r\n0;last=\"yes\"\r\n\r\n", "hello"},
	{"trailers", "3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-Other:\ttwo words\r\n\r\n", "abc"},
	{"uppercase hex", "1F\r\nabcdefghijklmnopqrstuvwxyz01234\r\nA\r\n0123456789\r\n0\r\n\r\n",
	 "abcdefghijklmnopqrstuvwxyz012340123456789"},
	{"lowercase hex", "1f\r\nabcdefghijklmnopqrstuvwxyz01234\r\na\r\n0123456789\r\n0\r\n\r\n",
	 "abcdefghijklmnopqrstuvwxyz012340123456789"},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello"},
	{"many leading zeros", "00000000000000000005\r\nhello\r\n0\r\n\r\n", "hello"},
	{"space before an extension", "5 \t;a=b\r\nhello\r\n0\r\n\r\n", "hello"},
	{"fifteen digits", "000000000000001\r\nx\r\n0\r\n\r\n", "x"},
	{"zero size only", "0\r\n\r\n", ""},
	{"framing bytes in data", "7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", "0\r\n\r\n\r\n"},
};

#define CHUNK_CASES (sizeof(chunk_cases) / sizeof(chunk_cases[0]))

static void test_http_request_parse_chunked_bodies_decoded(void **state)
{
	(void)state;
	for (size_t i = 0; i < CHUNK_CASES; i++) {
		const struct chunk_case *c = &chunk_cases[i];
		struct chunk_run r;

		print_message("case %zu: %s\n", i, c->name);
		chunk_run(&r, c->text, strlen(c->text), SIZE_MAX);
		assert_int_equal(r.rc, CMI_HTTP_CHUNK_DONE);
		assert_int_equal(r.used, strlen(c->text));
		assert_body(&r, c->body, strlen(c->body));
		chunk_run_free(&r);
	}
}

static void test_http_request_parse_chunked_pieces_same_body(void **state)
{
	static const size_t steps[] = {1, 2, 3, 5, 8};

	(void)state;
	for (size_t i = 0; i < CHUNK_CASES; i++) {
		const struct chunk_case *c = &chunk_cases[i];
		struct chunk_run whole;

		chunk_run(&whole, c->text, strlen(c->text), SIZE_MAX);
		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			struct chunk_run split;

			print_message("case %zu: %s, step %zu\n", i, c->name, steps[s]);
			chunk_run(&split, c->text, strlen(c->text), steps[s]);
			assert_int_equal(split.rc, whole.rc);
			assert_int_equal(split.used, whole.used);
			assert_body(&split, whole.body, whole.body_len);
			chunk_run_free(&split);
		}
		chunk_run_free(&whole);
	}
}

/* Bytes after the body belong to the next request on the connection. */
static void test_http_request_parse_chunked_next_bytes_unused(void **state)
{
	static const char body[] = "5\r\nhello\r\n0\r\nX-T: t\r\n\r\n";
	static const char text[] = "5\r\nhello\r\n0\r\nX-T: t\r\n\r\nPOST / HTTP/1.1\r\n\r\n";
	struct chunk_run whole, split;

	(void)state;
	chunk_run(&whole, text, strlen(text), SIZE_MAX);
	assert_int_equal(whole.rc, CMI_HTTP_CHUNK_DONE);
	assert_int_equal(whole.used, strlen(body));
	assert_body(&whole, "hello", 5);

	chunk_run(&split, text, strlen(text), 1);
	assert_int_equal(split.rc, CMI_HTTP_CHUNK_DONE);
	assert_int_equal(split.used, strlen(body));
	assert_body(&split, "hello", 5);

	chunk_run_free(&whole);
	chunk_run_free(&split);
}

struct chunk_bad_case {
	const char *text;
	size_t at; /* offset of the byte that breaks the rule */
	const char *reason;
};

static const struct chunk_bad_case chunk_bad_cases[] = {
	{"\r\n", 0, "no hex digits"},
	{"x\r\n", 0, "invalid chunk size"},
	{";ext\r\n", 0, "invalid chunk size"},
	{" 5\r\n", 0, "invalid chunk size"},
	{"-5\r\n", 0, "invalid chunk size"},
	{"0x5\r\n", 1, "invalid chunk size"},
	{"5\nhello\r\n0\r\n\r\n", 1, "invalid chunk size"},
	{"5\r\rhello", 2, "bare CR after a chunk size"},
	{"5;a\001b\r\nhello", 3, "invalid chunk size"},
	{"5;a\nb\r\nhello", 3, "invalid chunk size"},
	{"5\r\nhello!\r\n0\r\n\r\n", 8, "chunk data longer than its size"},
	{"5\r\nhello\n0\r\n\r\n", 8, "chunk data longer than its size"},
	{"5\r\nhello\rx", 9, "bare CR after chunk data"},
	{"10000000000000000\r\n", 16, "chunk size too large"},
	{"FFFFFFFFFFFFFFFFF\r\n", 16, "chunk size too large"},
	{"5 x\r\n", 2, "invalid chunk size"},
	{"5 \r\nhello", 2, "invalid chunk size"},
	{"0\r\nX: a\001b\r\n\r\n", 7, "control byte"},
	{"0\r\nX: \x7f\r\n\r\n", 6, "control byte"},
	{"0\r\nX: a\nb\r\n\r\n", 7, "bare LF"},
	{"0\r\n\n", 3, "bare LF"},
	{"0\r\nX: a\rb\r\n\r\n", 8, "bare CR in the chunked trailer"},
	{"0\r\n\rx", 4, "bare CR in the chunked trailer"},
};

static void test_http_request_parse_chunked_bad_framing_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(chunk_bad_cases) / sizeof(chunk_bad_cases[0]); i++) {
		const struct chunk_bad_case *c = &chunk_bad_cases[i];
		struct chunk_run whole, split;

		print_message("case %zu: %s\n", i, c->reason);
		chunk_run(&whole, c->text, strlen(c->text), SIZE_MAX);
		assert_int_equal(whole.rc, CMI_HTTP_CHUNK_BAD);
		assert_int_equal(whole.used, c->at);
		TK_CONTAINS(whole.reason, c->reason);

		chunk_run(&split, c->text, strlen(c->text), 1);
		assert_int_equal(split.rc, CMI_HTTP_CHUNK_BAD);
		assert_int_equal(split.used, c->at);
		TK_CONTAINS(split.reason, c->reason);

		chunk_run_free(&whole);
		chunk_run_free(&split);
	}
}

/* Builds a size line of ext_len extension bytes after "1;", then a one-byte
 * chunk and the last chunk. */
static char *size_line_text(size_t ext_len, size_t *len)
{
	static const char rest[] = "\r\nx\r\n0\r\n\r\n";
	char *text = malloc(2 + ext_len + sizeof(rest));

	assert_non_null(text);
	memcpy(text, "1;", 2);
	memset(text + 2, 'e', ext_len);
	memcpy(text + 2 + ext_len, rest, sizeof(rest));
	*len = 2 + ext_len + sizeof(rest) - 1;
	return text;
}

static void test_http_request_parse_chunked_line_limit_enforced(void **state)
{
	size_t len;
	char *under = size_line_text(CMI_HTTP_CHUNK_LINE_MAX - 3, &len);
	char *over;
	struct chunk_run r;

	(void)state;
	chunk_run(&r, under, len, SIZE_MAX);
	assert_int_equal(r.rc, CMI_HTTP_CHUNK_DONE);
	assert_int_equal(r.used, len);
	assert_body(&r, "x", 1);
	chunk_run_free(&r);

	over = size_line_text(CMI_HTTP_CHUNK_LINE_MAX - 1, &len);
	chunk_run(&r, over, len, SIZE_MAX);
	assert_int_equal(r.rc, CMI_HTTP_CHUNK_BAD);
	assert_int_equal(r.used, CMI_HTTP_CHUNK_LINE_MAX);
	TK_CONTAINS(r.reason, "chunk size line too long");
	chunk_run_free(&r);

	free(under);
	free(over);
}

/* Builds the last chunk followed by a trailer of 100-byte lines. */
static char *trailer_text(size_t lines, size_t *len)
{
	size_t size = 3 + lines * 100 + 2, n = 3;
	char *text = malloc(size);

	assert_non_null(text);
	memcpy(text, "0\r\n", 3);
	for (size_t i = 0; i < lines; i++) {
		memcpy(text + n, "X-T: ", 5);
		memset(text + n + 5, 'a', 93);
		memcpy(text + n + 98, "\r\n", 2);
		n += 100;
	}
	memcpy(text + n, "\r\n", 2);
	*len = size;
	return text;
}

static void test_http_request_parse_chunked_trailer_limit_enforced(void **state)
{
	size_t lines_under = (CMI_HTTP_CHUNK_TRAILER_MAX - 2) / 100;
	size_t len;
	char *under = trailer_text(lines_under, &len);
	char *over;
	struct chunk_run r;

	(void)state;
	chunk_run(&r, under, len, SIZE_MAX);
	assert_int_equal(r.rc, CMI_HTTP_CHUNK_DONE);
	assert_int_equal(r.used, len);
	assert_int_equal(r.body_len, 0);
	chunk_run_free(&r);

	over = trailer_text(lines_under + 2, &len);
	chunk_run(&r, over, len, SIZE_MAX);
	assert_int_equal(r.rc, CMI_HTTP_CHUNK_BAD);
	assert_int_equal(r.used, 3 + CMI_HTTP_CHUNK_TRAILER_MAX);
	TK_CONTAINS(r.reason, "chunked trailer too long");
	chunk_run_free(&r);

	free(under);
	free(over);
}

/* ---- cross-check against an independent encoder ---- */

/* xorshift64*: a small generator whose sequence depends only on the seed, so
 * a failing seed replays the same bodies. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

static size_t rng_below(uint64_t *s, size_t n)
{
	return (size_t)(rng_next(s) % n);
}

/* Writes v in hex, padded with zeros to width digits. Written without printf
 * so the encoder shares no formatting code with what it checks. */
static size_t put_hex(char *out, uint64_t v, size_t width, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char reversed[16];
	size_t n = 0;

	do {
		reversed[n++] = digits[v & 0xf];
		v >>= 4;
	} while (v != 0);
	while (n < width && n < sizeof(reversed))
		reversed[n++] = '0';
	for (size_t i = 0; i < n; i++)
		out[i] = reversed[n - 1 - i];
	return n;
}

/* A size line with 1 to 15 digits in either case and sometimes an
 * extension: at most 15 + 8 + 2 bytes. */
static size_t put_size_line(char *out, size_t size, uint64_t *rng)
{
	size_t n = put_hex(out, size, 1 + rng_below(rng, 15), rng_below(rng, 2) == 1);

	if (rng_below(rng, 4) == 0) {
		memcpy(out + n, ";ext=\"v\"", 8);
		n += 8;
	}
	memcpy(out + n, "\r\n", 2);
	return n + 2;
}

/* Bytes encode_chunked may write for a payload of len bytes. */
#define ENCODED_MAX(len) ((len) * (25 + 2 + 1) + 25 + 3 * 14 + 2)

/* Splits payload into chunks of 1 to max_chunk bytes and ends the body with
 * the last chunk and zero to two trailer fields. */
static size_t encode_chunked(const unsigned char *payload, size_t len, size_t max_chunk,
			     uint64_t *rng, char *out)
{
	size_t at = 0, n = 0, trailers;

	while (at < len) {
		size_t size = 1 + rng_below(rng, max_chunk);

		if (size > len - at)
			size = len - at;
		n += put_size_line(out + n, size, rng);
		memcpy(out + n, payload + at, size);
		n += size;
		at += size;
		memcpy(out + n, "\r\n", 2);
		n += 2;
	}
	n += put_size_line(out + n, 0, rng);
	trailers = rng_below(rng, 3);
	for (size_t i = 0; i < trailers; i++) {
		memcpy(out + n, "X-Trailer: t\r\n", 14);
		n += 14;
	}
	memcpy(out + n, "\r\n", 2);
	return n + 2;
}

static uint64_t test_seed(void)
{
	const char *env = getenv("CMICRO_TEST_SEED");

	if (env != NULL && *env != '\0')
		return strtoull(env, NULL, 0);
	return (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

#define RANDOM_BODIES 300
#define PAYLOAD_MAX 4096

#define CHECK_SEEDED(cond, seed, iter)                                                       \
	do {                                                                                 \
		if (!(cond))                                                                 \
			fail_msg("%s is false for body %u; rerun with CMICRO_TEST_SEED=%" PRIu64, \
				 #cond, iter, seed);                                         \
	} while (0)

static void test_http_request_parse_chunked_random_bodies_match(void **state)
{
	uint64_t seed = test_seed();
	uint64_t rng = seed != 0 ? seed : 1;
	unsigned char *payload = malloc(PAYLOAD_MAX);
	char *encoded = malloc(ENCODED_MAX(PAYLOAD_MAX) + 4);

	(void)state;
	assert_non_null(payload);
	assert_non_null(encoded);
	print_message("seed %" PRIu64 " (set CMICRO_TEST_SEED to replay)\n", seed);
	for (unsigned iter = 0; iter < RANDOM_BODIES; iter++) {
		size_t len = rng_below(&rng, PAYLOAD_MAX + 1);
		size_t max_chunk = 1 + rng_below(&rng, 600);
		size_t step = rng_below(&rng, 4) == 0 ? 1 : 1 + rng_below(&rng, 64);
		size_t encoded_len;
		struct chunk_run r;

		for (size_t i = 0; i < len; i++)
			payload[i] = (unsigned char)rng_next(&rng);
		encoded_len = encode_chunked(payload, len, max_chunk, &rng, encoded);
		CHECK_SEEDED(encoded_len <= ENCODED_MAX(len), seed, iter);
		memcpy(encoded + encoded_len, "NEXT", 4);

		chunk_run(&r, encoded, encoded_len + 4, step);
		CHECK_SEEDED(r.rc == CMI_HTTP_CHUNK_DONE, seed, iter);
		CHECK_SEEDED(r.used == encoded_len, seed, iter);
		CHECK_SEEDED(r.body_len == len, seed, iter);
		CHECK_SEEDED(len == 0 || memcmp(r.body, payload, len) == 0, seed, iter);
		chunk_run_free(&r);
	}
	free(payload);
	free(encoded);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_request_parse_known_methods_accepted),
		cmocka_unit_test(test_http_request_parse_targets_split_path_query),
		cmocka_unit_test(test_http_request_parse_bad_request_lines_rejected),
		cmocka_unit_test(test_http_request_parse_field_values_trimmed),
		cmocka_unit_test(test_http_request_parse_field_lookup_ignores_case),
		cmocka_unit_test(test_http_request_parse_repeated_field_first_wins),
		cmocka_unit_test(test_http_request_parse_field_limit_431),
		cmocka_unit_test(test_http_request_parse_framing_fields_read),
		cmocka_unit_test(test_http_request_parse_connection_sets_keep_alive),
		cmocka_unit_test(test_http_request_parse_expect_continue_read),
		cmocka_unit_test(test_http_request_parse_bad_bytes_400),
		cmocka_unit_test(test_http_request_parse_chunked_bodies_decoded),
		cmocka_unit_test(test_http_request_parse_chunked_pieces_same_body),
		cmocka_unit_test(test_http_request_parse_chunked_next_bytes_unused),
		cmocka_unit_test(test_http_request_parse_chunked_bad_framing_rejected),
		cmocka_unit_test(test_http_request_parse_chunked_line_limit_enforced),
		cmocka_unit_test(test_http_request_parse_chunked_trailer_limit_enforced),
		cmocka_unit_test(test_http_request_parse_chunked_random_bodies_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
