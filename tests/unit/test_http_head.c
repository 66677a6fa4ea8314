/* The strict request head check, fed whole heads, split heads and one
 * byte at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_head.h"
#include "testkit.h"

#define GOOD_HEAD "POST /?id=n1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\n"

static enum cmi_http_head_result feed_all(struct cmi_http_head_scan *scan, const char *text,
					  size_t *used)
{
	cmi_http_head_init(scan, 0);
	return cmi_http_head_feed(scan, text, strlen(text), used);
}

static void test_http_head_valid_head_done(void **state)
{
	struct cmi_http_head_scan scan;
	const char *text = GOOD_HEAD "body";
	size_t used = 0;

	(void)state;
	assert_int_equal(feed_all(&scan, text, &used), CMI_HTTP_HEAD_DONE);
	assert_int_equal(used, strlen(GOOD_HEAD));
	assert_int_equal(scan.status, 0);
}

static void test_http_head_one_byte_at_a_time_done(void **state)
{
	struct cmi_http_head_scan scan;
	const char *text = GOOD_HEAD;
	enum cmi_http_head_result rc = CMI_HTTP_HEAD_MORE;
	size_t i, used = 0;

	(void)state;
	cmi_http_head_init(&scan, 0);
	assert_false(cmi_http_head_started(&scan));
	for (i = 0; i < strlen(text) && rc == CMI_HTTP_HEAD_MORE; i++) {
		rc = cmi_http_head_feed(&scan, text + i, 1, &used);
		assert_int_equal(used, 1);
		assert_true(cmi_http_head_started(&scan));
	}
	assert_int_equal(rc, CMI_HTTP_HEAD_DONE);
	assert_int_equal(i, strlen(text));
}

static void test_http_head_chunked_alone_done(void **state)
{
	struct cmi_http_head_scan scan;
	size_t used = 0;

	(void)state;
	assert_int_equal(feed_all(&scan, "POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n",
				  &used),
			 CMI_HTTP_HEAD_DONE);
}

struct bad_case {
	const char *head;
	int status;
	const char *reason;
};

static const struct bad_case bad_cases[] = {
	{"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", 400,
	 "more than one Content-Length"},
	{"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 9\r\n\r\n", 400,
	 "more than one Content-Length"},
	{"POST / HTTP/1.1\r\nContent-Length: -4\r\n\r\n", 400, "not a decimal number"},
	{"POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n", 400, "not a decimal number"},
	{"POST / HTTP/1.1\r\nContent-Length: four\r\n\r\n", 400, "not a decimal number"},
	{"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400, "not a decimal number"},
	{"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
	 "both Content-Length and Transfer-Encoding"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	 400, "more than one Transfer-Encoding"},
	{"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
	 "unsupported Transfer-Encoding"},
	{"POST / HTTP/1.1\nHost: a\n\n", 400, "bare LF"},
	{"POST / HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF"},
	{"POST / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400, "bare CR"},
	{"POST / HTTP/1.1\r\nX\rA: b\r\n\r\n", 400, "bare CR"},
	{"POST / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400, "obsolete line folding"},
	{"POST / HTTP/1.1\r\nContent-Length : 4\r\n\r\n", 400, "header field name"},
	{"POST / HTTP/1.1\r\n: value\r\n\r\n", 400, "empty header field name"},
	{"POST / HTTP/1.1\r\nno colon here\r\n\r\n", 400, "header field name"},
	{"POST / HTTP/1.1\r\nnocolon\r\n\r\n", 400, "without a colon"},
	{"POST / HTTP/1.1\r\nX-A: a\001b\r\n\r\n", 400, "control byte in a header field value"},
	{"POST /\001 HTTP/1.1\r\n\r\n", 400, "control byte in the request line"},
	{"\r\nPOST / HTTP/1.1\r\n\r\n", 400, "empty line before the request line"},
};

static void test_http_head_bad_heads_rejected(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct cmi_http_head_scan scan;
		size_t used = 0;

		print_message("case %zu: %s\n", i, bad_cases[i].reason);
		assert_int_equal(feed_all(&scan, bad_cases[i].head, &used), CMI_HTTP_HEAD_BAD);
		assert_int_equal(scan.status, bad_cases[i].status);
		TK_CONTAINS(scan.reason, bad_cases[i].reason);
		assert_true(used < strlen(bad_cases[i].head));
	}
}

/* The byte that breaks a rule is reported, not used. */
static void test_http_head_bad_byte_not_used(void **state)
{
	struct cmi_http_head_scan scan;
	const char *text = "POST / HTTP/1.1\nHost: a\r\n\r\n";
	size_t used = 99;

	(void)state;
	assert_int_equal(feed_all(&scan, text, &used), CMI_HTTP_HEAD_BAD);
	assert_int_equal(used, strlen("POST / HTTP/1.1"));
	assert_int_equal(cmi_http_head_feed(&scan, "x", 1, &used), CMI_HTTP_HEAD_BAD);
	assert_int_equal(used, 0);
}

static char *head_with_fields(unsigned fields)
{
	size_t size = 64 + (size_t)fields * 16;
	char *text = malloc(size);
	size_t n;

	assert_non_null(text);
	n = (size_t)snprintf(text, size, "POST / HTTP/1.1\r\n");
	for (unsigned i = 0; i < fields; i++)
		n += (size_t)snprintf(text + n, size - n, "X-F%u: v\r\n", i);
	snprintf(text + n, size - n, "\r\n");
	return text;
}

static void test_http_head_field_limit_431(void **state)
{
	struct cmi_http_head_scan scan;
	char *at_limit = head_with_fields(CMI_HTTP_HEAD_MAX_FIELDS);
	char *over = head_with_fields(CMI_HTTP_HEAD_MAX_FIELDS + 1);
	size_t used = 0;

	(void)state;
	assert_int_equal(feed_all(&scan, at_limit, &used), CMI_HTTP_HEAD_DONE);
	assert_int_equal(feed_all(&scan, over, &used), CMI_HTTP_HEAD_BAD);
	assert_int_equal(scan.status, 431);
	cmi_http_head_init(&scan, 3);
	assert_int_equal(cmi_http_head_feed(&scan, at_limit, strlen(at_limit), &used),
			 CMI_HTTP_HEAD_BAD);
	assert_int_equal(scan.status, 431);
	free(at_limit);
	free(over);
}

/* A long name or value is cut in the scanner's buffers: it must not match
 * Content-Length by its prefix, and a long Content-Length is invalid. */
static void test_http_head_long_names_values_checked(void **state)
{
	struct cmi_http_head_scan scan;
	size_t used = 0;

	(void)state;
	assert_int_equal(feed_all(&scan, "POST / HTTP/1.1\r\nContent-Length-And-More-Text: x\r\n"
					 "Content-Length: 2\r\n\r\n",
				  &used),
			 CMI_HTTP_HEAD_DONE);
	assert_int_equal(feed_all(&scan, "POST / HTTP/1.1\r\nContent-Length: "
					 "123456789012345678901234567890\r\n\r\n",
				  &used),
			 CMI_HTTP_HEAD_BAD);
	TK_CONTAINS(scan.reason, "not a decimal number");
}

/* After the head the scanner takes nothing more: the body is not a head. */
static void test_http_head_done_uses_nothing_more(void **state)
{
	struct cmi_http_head_scan scan;
	size_t used = 0;

	(void)state;
	assert_int_equal(feed_all(&scan, GOOD_HEAD, &used), CMI_HTTP_HEAD_DONE);
	assert_int_equal(cmi_http_head_feed(&scan, "\n\r\001", 3, &used), CMI_HTTP_HEAD_DONE);
	assert_int_equal(used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_head_valid_head_done),
		cmocka_unit_test(test_http_head_one_byte_at_a_time_done),
		cmocka_unit_test(test_http_head_chunked_alone_done),
		cmocka_unit_test(test_http_head_bad_heads_rejected),
		cmocka_unit_test(test_http_head_bad_byte_not_used),
		cmocka_unit_test(test_http_head_field_limit_431),
		cmocka_unit_test(test_http_head_long_names_values_checked),
		cmocka_unit_test(test_http_head_done_uses_nothing_more),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
