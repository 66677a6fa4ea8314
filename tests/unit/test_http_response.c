/* The client's HTTP response parser: framings, interim responses, the
 * connection's reuse, and every kind of invalid response, fed whole and one
 * byte at a time. */
#include <stdlib.h>
#include <string.h>

#include "http/http_response.h"
#include "testkit.h"

/* Feeds text as a connection would deliver it, in pieces of step bytes,
 * keeping unused bytes for the next call. Returns the bytes left after the
 * response ended (the start of the next response). */
static size_t feed(struct cmi_http_resp *r, const char *text, size_t len, size_t step)
{
	char *pending = malloc(len + 1);
	size_t have = 0, at = 0;

	assert_non_null(pending);
	while (r->phase != CMI_HTTP_RESP_DONE && r->phase != CMI_HTTP_RESP_BAD && at < len) {
		size_t n = len - at < step ? len - at : step, used;

		memcpy(pending + have, text + at, n);
		have += n;
		at += n;
		used = cmi_http_resp_feed(r, pending, have);
		memmove(pending, pending + used, have - used);
		have -= used;
	}
	free(pending);
	return have + (len - at);
}

struct good_case {
	const char *name;
	const char *text;
	int status;
	const char *body; /* kept body */
	bool close;
	size_t left;      /* bytes after the response */
	bool needs_eof;   /* the body runs to the end of the connection */
};

static const struct good_case good[] = {
	{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, "hello", false, 0,
	 false},
	{"empty", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "", false, 0, false},
	{"chunked",
	 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	 "3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n",
	 200, "abc0123456789", false, 0, false},
	{"chunked list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	 200, "", false, 0, false},
	{"bare lf", "HTTP/1.1 201 Created\nContent-Length: 2\n\nok", 201, "ok", false, 0, false},
	{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, "", false,
	 0, false},
	{"http10", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, "x", true, 0, false},
	{"http10 keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
	 200, "x", false, 0, false},
	{"http10 keep-alive close",
	 "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx",
	 200, "x", true, 0, false},
	{"http10 keep-alive to close",
	 "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nrest", 200, "rest", true, 0, true},
	{"keep-alive with both lengths",
	 "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
	 "Content-Length: 9\r\n\r\n0\r\n\r\n",
	 200, "", true, 0, false},
	{"conn close", "HTTP/1.1 500 Oops\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\nx",
	 500, "x", true, 0, false},
	{"same lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 200,
	 "x", false, 0, false},
	{"both framings", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
	 200, "x", true, 0, false},
	{"until close", "HTTP/1.1 200 OK\r\n\r\nrest of it", 200, "rest of it", true, 0, true},
	{"no reason", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 404, "", false, 0, false},
	{"next response", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1", 200, "x", false,
	 8, false},
};

static void check_good(const struct good_case *c, size_t step)
{
	struct cmi_http_resp r;
	size_t left;

	memset(&r, 0, sizeof(r));
	cmi_http_resp_init(&r, 1024);
	left = feed(&r, c->text, strlen(c->text), step);
	if (c->needs_eof)
		assert_true(cmi_http_resp_eof(&r));
	if (r.phase != CMI_HTTP_RESP_DONE)
		fail_msg("%s (step %zu): phase %d, error \"%s\"", c->name, step, (int)r.phase, r.error);
	assert_int_equal(r.status, c->status);
	assert_int_equal(r.close, c->close);
	assert_int_equal(left, c->left);
	assert_int_equal(r.body_len, strlen(c->body));
	if (r.body_len > 0)
		assert_memory_equal(r.body, c->body, r.body_len);
	cmi_http_resp_clear(&r);
}

static void test_response_valid_framings_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		check_good(&good[i], 1 << 20);
		check_good(&good[i], 1);
		check_good(&good[i], 7);
	}
}

struct bad_case {
	const char *text;
	const char *error; /* a part of the message */
};

static const struct bad_case bad[] = {
	{"hello\r\n\r\n", "status line"},
	{"\r\n\r\n", "empty line"},
	{"HTTP/2.0 200 OK\r\n\r\n", "status line"},
	{"HTTP/1.1 2x0 OK\r\n\r\n", "three digits"},
	{"HTTP/1.1 099 Low\r\n\r\n", "below 100"},
	{"HTTP/1.1 200OK\r\n\r\n", "no space"},
	{"HTTP/1.1 101 Switching\r\n\r\n", "switched protocols"},
	{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", "disagree"},
	{"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"},
	{"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n\r\n", "Content-Length"},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"},
	{"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n", "folded"},
	{"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "field name"},
	{"HTTP/1.1 200 OK\r\n: empty\r\n\r\n", "field name"},
	{"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n", "control character"},
	{"HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", "CR inside"},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "hex number"},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n", "15 hex"},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n", "longer than its size"},
	{"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", "longer than 1024"},
};

static void test_response_invalid_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (size_t step = 1; step <= 4096; step *= 4096) {
			struct cmi_http_resp r;
			char *text;
			size_t len = strlen(bad[i].text);

			memset(&r, 0, sizeof(r));
			cmi_http_resp_init(&r, 1024);
			/* The body over the kept maximum needs its bytes. */
			text = calloc(len + 2001, 1);
			assert_non_null(text);
			memcpy(text, bad[i].text, len);
			memset(text + len, 'b', 2000);
			feed(&r, text, len + 2000, step);
			if (r.phase != CMI_HTTP_RESP_BAD)
				fail_msg("\"%s\" (step %zu) was accepted", bad[i].text, step);
			TK_CONTAINS(r.error, "invalid HTTP response");
			TK_CONTAINS(r.error, bad[i].error);
			free(text);
			cmi_http_resp_clear(&r);
		}
	}
}

static void test_response_long_head_rejected(void **state)
{
	size_t len = CMI_HTTP_RESP_HEAD_MAX + 100;
	char *text = malloc(len);
	struct cmi_http_resp r;

	(void)state;
	assert_non_null(text);
	memcpy(text, "HTTP/1.1 200 OK\r\n", 17);
	for (size_t i = 17; i + 8 <= len; i += 8)
		memcpy(text + i, "X-A: b\r\n", 8);
	memset(&r, 0, sizeof(r));
	cmi_http_resp_init(&r, 0);
	/* The whole head is not complete within the limit. */
	assert_int_equal(cmi_http_resp_feed(&r, text, len), 0);
	assert_int_equal(r.phase, CMI_HTTP_RESP_BAD);
	TK_CONTAINS(r.error, "longer than 16384");
	free(text);
}

static void test_response_cut_body_is_error(void **state)
{
	static const char text[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
	struct cmi_http_resp r;

	(void)state;
	memset(&r, 0, sizeof(r));
	cmi_http_resp_init(&r, 0);
	assert_int_equal(cmi_http_resp_feed(&r, text, sizeof(text) - 1), sizeof(text) - 1);
	assert_int_equal(r.phase, CMI_HTTP_RESP_BODY);
	assert_false(cmi_http_resp_eof(&r));
	assert_int_equal(r.phase, CMI_HTTP_RESP_BAD);
	TK_CONTAINS(r.error, "in the middle of the response");
	/* A discarded body keeps nothing. */
	assert_null(r.body);
}

static void test_response_reason_control_bytes_masked(void **state)
{
	static const char text[] = "HTTP/1.1 503 Busy\tnow\x1b[31m\r\nContent-Length: 0\r\n\r\n";
	struct cmi_http_resp r;

	(void)state;
	memset(&r, 0, sizeof(r));
	cmi_http_resp_init(&r, 0);
	cmi_http_resp_feed(&r, text, sizeof(text) - 1);
	assert_int_equal(r.phase, CMI_HTTP_RESP_DONE);
	assert_int_equal(r.status, 503);
	assert_string_equal(r.reason, "Busy?now?[31m");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_response_valid_framings_parse),
		cmocka_unit_test(test_response_invalid_rejected),
		cmocka_unit_test(test_response_long_head_rejected),
		cmocka_unit_test(test_response_cut_body_is_error),
		cmocka_unit_test(test_response_reason_control_bytes_masked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
