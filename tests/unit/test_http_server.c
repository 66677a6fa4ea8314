/*
 * Behaviour of the HTTP/1.1 server as a raw client sees it on the wire:
 * pipelining, persistence, body framing, limits, timeouts, replies from
 * other threads and TLS. The server's loop runs on its own thread and the
 * tests talk to it through blocking sockets on 127.0.0.1, so they depend
 * only on the internal API of http_int.h, not on how the server is built.
 */
#include <signal.h>

#include "test_http_server_util.h"

static void test_http_server_pipelined_posts_answered_in_order(void **state)
{
	const char *bodies[] = {"first", "second", "third"};
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char batch[1024] = "", expected[64];

	for (size_t i = 0; i < CMI_ARRAY_LEN(bodies); i++)
		st_add_post(batch, sizeof(batch), "/?id=pipe", bodies[i]);
	st_send(c, batch);

	for (size_t i = 0; i < CMI_ARRAY_LEN(bodies); i++) {
		st_expect_response(c, &r);
		assert_int_equal(r.status, 200);
		cmi_fmt(expected, sizeof(expected), "%s\n", bodies[i]);
		assert_string_equal(r.body, expected);
	}
	assert_int_equal(st_wait_requests(f, 3), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(st_seen_at(f, i).body, bodies[i]);
}

static void test_http_server_http11_default_stays_open(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char value[64];

	st_send(c, "POST /?id=a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\none");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	if (st_field(&r, "Connection", value, sizeof(value)) != NULL)
		assert_int_not_equal(strcasecmp(value, "close"), 0);

	/* The connection stays usable for a second request. */
	st_post_echoed(c, "two");
	assert_int_equal(st_requests(f), 2);
}

static void test_http_server_connection_close_closes(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char value[64] = "";
	size_t extra = 0;

	st_send(c, "POST /?id=a HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		   "Content-Length: 4\r\n\r\nlast");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "last\n");
	assert_non_null(st_field(&r, "Connection", value, sizeof(value)));
	assert_int_equal(strcasecmp(value, "close"), 0);
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

static void test_http_server_http10_default_closes(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	size_t extra = 0;

	st_send(c, "POST /?id=a HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nold");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "old\n");
	/* A body without Content-Length ended with the connection already. */
	if (!r.close_delimited)
		assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

static void test_http_server_http10_keepalive_stays_open(void **state)
{
	const char *request = "POST /?id=a HTTP/1.0\r\nHost: 127.0.0.1\r\n"
			      "Connection: keep-alive\r\nContent-Length: 4\r\n\r\nkeep";
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char value[64] = "";

	st_send(c, request);
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	/* An HTTP/1.0 client closes unless the response carries keep-alive. */
	assert_non_null(st_field(&r, "Connection", value, sizeof(value)));
	assert_int_equal(strcasecmp(value, "keep-alive"), 0);

	st_send(c, request);
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "keep\n");
	assert_int_equal(st_requests(f), 2);
}

static void test_http_server_chunked_body_joined(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;

	/* A chunk extension must be ignored and a trailer field skipped
	 * (RFC 9112, sections 7.1.1 and 7.1.2). */
	st_send(c, "POST /?id=c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello world\n");
	assert_int_equal(st_wait_requests(f, 1), 1);
	assert_string_equal(st_seen_at(f, 0).body, "hello world");

	/* The next request parses cleanly only when the trailer was consumed. */
	st_post_echoed(c, "next");
}

static void test_http_server_chunked_over_limit_413(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.max_body = 1024});
	struct st_conn *c = st_open(f);
	struct st_response r;
	char chunk[1000 + 1];

	memset(chunk, 'a', sizeof(chunk) - 1);
	chunk[sizeof(chunk) - 1] = '\0';
	st_send(c, "POST /?id=c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		st_send(c, "3e8\r\n");
		st_send(c, chunk);
		st_send(c, "\r\n");
	}
	st_send(c, "0\r\n\r\n");

	st_expect_response(c, &r);
	assert_int_equal(r.status, 413);
	assert_int_equal(st_requests(f), 0);
}

static void test_http_server_chunked_bad_size_rejected(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	size_t extra = 0;

	st_send(c, "POST /?id=c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		   "zz\r\nhello\r\n0\r\n\r\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 400);
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(st_requests(f), 0);
}

static void test_http_server_expect_continue_sends_100(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;

	st_send(c, "POST /?id=e HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n"
		   "Expect: 100-continue\r\n\r\n");
	st_expect_response(c, &r);
	assert_string_equal(r.status_line, "HTTP/1.1 100 Continue");
	assert_int_equal(st_requests(f), 0);

	st_send(c, "hello");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello\n");
	assert_string_equal(st_seen_at(f, 0).body, "hello");
}

static void test_http_server_body_over_limit_413_then_close(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.max_body = 1024});
	struct st_conn *c = st_open(f);
	struct st_response r;
	char request[4096] = "", body[3000 + 1];
	size_t extra = 0;

	memset(body, 'b', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	st_add_post(request, sizeof(request), "/?id=big", body);
	/* The whole body goes out before any read, as from a client that does
	 * not send Expect: 100-continue. */
	st_send(c, request);

	st_expect_response(c, &r);
	assert_int_equal(r.status, 413);
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
	assert_int_equal(st_requests(f), 0);
}

static void test_http_server_head_over_limit_rejected(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.max_headers = 4096});
	struct st_conn *c = st_open(f);
	struct st_response r;
	char request[12 * 1024] = "", big[10 * 1024 + 1];
	size_t extra = 0;

	memset(big, 'h', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cmi_fmt(request, sizeof(request),
		"POST /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: %s\r\n"
		"Content-Length: 1\r\n\r\nx",
		big);
	st_send(c, request);

	st_expect_response(c, &r);
	/* 431 is the status for a head over the limit (RFC 6585, section 5). */
	assert_int_equal(r.status, 431);
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(st_requests(f), 0);
}

static void test_http_server_unknown_method_501(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;

	st_send(c, "BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 501);
	assert_int_equal(st_requests(f), 0);
}

static void test_http_server_other_methods_get_405_allow(void **state)
{
	const char *requests[] = {
		"GET /?id=m HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"PUT /?id=m HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx",
		"DELETE /?id=m HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
	};
	const char *methods[] = {"GET", "PUT", "DELETE"};
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char allow[64];

	st_set_mode(f, ST_MODE_POST_ONLY);
	for (size_t i = 0; i < CMI_ARRAY_LEN(requests); i++) {
		st_send(c, requests[i]);
		st_expect_response(c, &r);
		assert_int_equal(r.status, 405);
		assert_non_null(st_field(&r, "Allow", allow, sizeof(allow)));
		assert_string_equal(allow, "POST");
		assert_string_equal(st_seen_at(f, (int)i).method, methods[i]);
	}
}

static void test_http_server_head_reply_has_no_body(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response head, r;
	const char *failure;
	char length[32];

	st_set_mode(f, ST_MODE_POST_ONLY);
	st_send(c, "HEAD /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
	st_expect_response_to(c, &head, true);
	assert_int_equal(head.status, 200);
	assert_string_equal(st_seen_at(f, 0).method, "HEAD");

	/* Body bytes after the head would corrupt the next response. */
	st_send(c, "POST /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx");
	failure = st_read_response(c, &r, false);
	if (failure != NULL)
		fail_msg("the response after the HEAD response is unreadable (%s): \"%s\"", failure,
			 r.status_line);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "handled\n");

	/* The length of the body a GET would get: "handled" and a line end. */
	assert_non_null(st_field(&head, "Content-Length", length, sizeof(length)));
	assert_string_equal(length, "8");
}

static void test_http_server_absolute_target_split(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char request[256];

	cmi_fmt(request, sizeof(request),
		"POST http://127.0.0.1:%d/p?id=x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		"Content-Length: 1\r\n\r\nz",
		f->port, f->port);
	st_send(c, request);
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(st_seen_at(f, 0).path, "/p");
	assert_string_equal(st_seen_at(f, 0).id, "x");
}

static void test_http_server_query_escapes_decoded(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;

	st_send(c, "POST /q?id=a%20b+c HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nz");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(st_seen_at(f, 0).path, "/q");
	assert_string_equal(st_seen_at(f, 0).id, "a b c");
}

static void test_http_server_half_close_still_answered(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	size_t extra = 0;

	st_send(c, "POST /?id=s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nhalf");
	assert_int_equal(shutdown(c->fd, SHUT_WR), 0);

	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "half\n");
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

static void test_http_server_stalled_head_closed(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.read_timeout_ms = 300});
	struct st_conn *c = st_open(f);
	size_t extra = 0;

	st_send(c, "POST /?id=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len");
	/* A server may send 408 before it closes, so the bytes are not checked. */
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(st_requests(f), 0);
}

static void test_http_server_idle_keepalive_closed(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.read_timeout_ms = 300});
	struct st_conn *c = st_open(f);
	size_t extra = 0;

	st_post_echoed(c, "idle");
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

static void *st_reply_json_main(void *arg)
{
	cmi_http_reply_typed(arg, 200, "application/json", "{}");
	return NULL;
}

static void test_http_server_reply_from_thread_arrives(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *req;
	struct st_response r;
	char type[64];
	pthread_t replier;

	st_set_mode(f, ST_MODE_HOLD);
	st_send(c, "POST /?id=t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}");
	req = st_take_held(f);
	assert_int_equal(pthread_create(&replier, NULL, st_reply_json_main, req), 0);
	assert_int_equal(pthread_join(replier, NULL), 0);

	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(st_field(&r, "Content-Type", type, sizeof(type)));
	assert_string_equal(type, "application/json");
	assert_string_equal(r.body, "{}\n");
}

static void test_http_server_free_with_held_request_safe(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *req;
	size_t extra = 0;

	st_set_mode(f, ST_MODE_HOLD);
	st_send(c, "POST /?id=f HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nheld");
	req = st_take_held(f);

	st_stop_loop(f);
	cmi_http_server_free(f->srv);
	f->srv = NULL;
	/* This only releases the request. AddressSanitizer reports a use of
	 * the freed server or a leak of the request. */
	cmi_http_reply(req, 200, "too late");

	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

static void test_http_server_response_format_complete(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char value[128];
	struct tm tm = {0};
	const char *end;

	st_send(c, "POST /?id=r HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nfmt");
	st_expect_response(c, &r);
	assert_string_equal(r.status_line, "HTTP/1.1 200 OK");

	assert_non_null(st_field(&r, "Date", value, sizeof(value)));
	end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		fail_msg("Date \"%s\" is not in the IMF-fixdate format of RFC 9110", value);

	assert_non_null(st_field(&r, "Content-Length", value, sizeof(value)));
	assert_string_equal(value, "4");
	assert_string_equal(r.body, "fmt\n");
	assert_non_null(st_field(&r, "Content-Type", value, sizeof(value)));
	assert_string_equal(value, "text/plain; charset=utf-8");
}

static void test_http_server_header_lookup_ignores_case(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;

	st_send(c, "POST /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\nx-probe:   padded value \t\r\n"
		   "Content-Length: 1\r\n\r\nz");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(st_seen_at(f, 0).probe, "padded value");
	assert_string_equal(st_seen_at(f, 0).probe_upper, "padded value");
}

static void test_http_server_duplicate_header_first_wins(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;

	st_send(c, "POST /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Probe: first\r\n"
		   "X-PROBE: second\r\nContent-Length: 1\r\n\r\nz");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(st_seen_at(f, 0).probe, "first");
	assert_string_equal(st_seen_at(f, 0).probe_upper, "first");
}

/* Saves a certificate that cmicro generates for 127.0.0.1 into dir. */
static struct cmicro_cert *st_cmicro_cert(const char *dir, char *cert_file, size_t size)
{
	const char *hosts[] = {"127.0.0.1"};
	struct cmicro_cert *cert = NULL;

	TK_OK(cmicro_cert_selfsigned(hosts, 1, &cert));
	tk_path(cert_file, size, dir, "cmicro-cert.pem");
	TK_OK(cmicro_cert_save(cert, cert_file, NULL, 0));
	return cert;
}

/* Loads a certificate for 127.0.0.1 that the openssl command generates in
 * dir, so the server's TLS does not only meet certificates of its own
 * generator. */
static struct cmicro_cert *st_openssl_cert(const char *dir, char *cert_file, size_t size)
{
	struct cmicro_cert *cert = NULL;
	char key_file[512], *output = NULL;
	int rc;

	tk_path(cert_file, size, dir, "openssl-cert.pem");
	tk_path(key_file, sizeof(key_file), dir, "openssl-key.pem");
	rc = tk_run(&output, 30,
		    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		    "-days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
		    "-keyout \"%s\" -out \"%s\"",
		    key_file, cert_file);
	if (rc != 0)
		fail_msg("openssl req failed (%d): %s", rc, output ? output : "");
	free(output);
	TK_OK(cmicro_cert_load(cert_file, key_file, NULL, &cert));
	return cert;
}

static void test_http_server_tls_pipelined_both_answered(void **state)
{
	struct st_fixture *f = st_fixture_new(state);
	struct st_conn *c;
	struct st_response r;
	char cert_file[512], batch[512] = "";

	f->dir = tk_tmpdir();
	f->cert = st_cmicro_cert(f->dir, cert_file, sizeof(cert_file));
	st_serve(f, NULL);
	c = st_open_tls(f, cert_file);
	assert_int_equal(SSL_get_verify_result(c->ssl), X509_V_OK);

	st_add_post(batch, sizeof(batch), "/?id=t", "one");
	st_add_post(batch, sizeof(batch), "/?id=t", "two");
	st_send(c, batch);
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "one\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "two\n");
}

static void test_http_server_tls_close_sends_close_notify(void **state)
{
	struct st_fixture *f = st_fixture_new(state);
	struct st_conn *c;
	struct st_response r;
	char cert_file[512];
	enum st_read rc;

	f->dir = tk_tmpdir();
	f->cert = st_openssl_cert(f->dir, cert_file, sizeof(cert_file));
	st_serve(f, NULL);
	c = st_open_tls(f, cert_file);

	st_send(c, "POST /?id=t HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		   "Content-Length: 3\r\n\r\nbye");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "bye\n");

	/* The closing side sends close_notify (RFC 8446, section 6.1), which
	 * SSL_read reports as SSL_ERROR_ZERO_RETURN. */
	rc = st_fill(c);
	assert_string_equal(st_read_text(rc), st_read_text(ST_READ_EOF));
	assert_int_equal(c->ssl_error, SSL_ERROR_ZERO_RETURN);
}

static void test_http_server_tls_cut_after_request_no_warning(void **state)
{
	struct st_fixture *f = st_fixture_new(state);
	const char *hosts[] = {"127.0.0.1"};
	struct st_conn *c;

	TK_OK(cmicro_cert_selfsigned(hosts, 1, &f->cert));
	st_serve(f, NULL);
	st_capture_logs(f);
	c = st_open_tls(f, NULL);
	st_post_echoed(c, "served");

	/* The client ends without close_notify, as many do once they have
	 * their response. Its handshake succeeded, so the server logs no
	 * handshake failure. */
	assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
	assert_int_equal(st_wait_connections(f, 0), 0);
	if (tk_log_count("HTTP-TLS-HANDSHAKE") != 0)
		fail_msg("a served TLS client was logged as a failed handshake: %s",
			 tk_log_captured());
}

#define ST_PIPELINE_REQUESTS 2000

/* Waits until the handler count stops growing or reaches max, for at most
 * two seconds, which is less than the writer's send timeout. A count that
 * stops short of max shows that the server stopped reading from the client
 * that does not read its responses. */
static void st_wait_requests_settled(struct st_fixture *f, int max)
{
	const struct timespec step = {0, 20 * 1000 * 1000};
	double deadline = cmi_now_mono() + 2.0;
	int before = -1, now = st_requests(f);

	while (now != before && now < max && cmi_now_mono() < deadline) {
		nanosleep(&step, NULL);
		before = now;
		now = st_requests(f);
	}
}

/* Reads the echo of every request the writer sent, in order. */
static void st_expect_pipeline(struct st_conn *c, int count)
{
	struct st_response r;
	char expected[ST_WRITER_BODY_LEN + 2];

	for (int i = 0; i < count; i++) {
		st_expect_response(c, &r);
		st_writer_body(i, expected, sizeof(expected));
		expected[ST_WRITER_BODY_LEN] = '\n';
		expected[ST_WRITER_BODY_LEN + 1] = '\0';
		if (r.status != 200 || strcmp(r.body, expected) != 0)
			fail_msg("response %d: status %d, body \"%.20s...\", "
				 "expected 200 \"%.20s...\"",
				 i, r.status, r.body, expected);
	}
}

static void test_http_server_unread_pipeline_others_served(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *greedy = st_open(f);
	struct st_conn *other = st_open(f);

	st_writer_start(f, greedy, ST_PIPELINE_REQUESTS);
	st_wait_requests_settled(f, ST_PIPELINE_REQUESTS);

	/* Served while the first client neither reads nor stops sending. */
	st_post_echoed(other, "other");

	st_expect_pipeline(greedy, ST_PIPELINE_REQUESTS);
	assert_int_equal(st_writer_join(f), ST_PIPELINE_REQUESTS);
	assert_int_equal(st_requests(f), ST_PIPELINE_REQUESTS + 1);
}

static void test_http_server_connection_limit_closes_fifth(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.max_connections = 4});
	struct st_conn *c[5];
	size_t extra = 0;

	for (int i = 0; i < 4; i++) {
		c[i] = st_open(f);
		st_post_echoed(c[i], "in");
	}
	/* A server may send 503 before it closes, so the bytes are not checked. */
	c[4] = st_open(f);
	assert_true(st_wait_closed(c[4], &extra));
	assert_int_equal(st_wait_connections(f, 4), 4);

	for (int i = 0; i < 4; i++)
		st_post_echoed(c[i], "still");
}

static void test_http_server_bare_lf_400_after_valid(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct st_response r;
	char batch[512] = "";
	size_t extra = 0;

	st_add_post(batch, sizeof(batch), "/?id=v", "valid");
	cmi_append(batch, sizeof(batch),
		   "POST /?id=b HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 0\n\n");
	st_send(c, batch);

	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "valid\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 400);
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
	assert_int_equal(st_requests(f), 1);
}

static void test_http_server_huge_content_length_413(void **state)
{
	/* Lengths over the largest body limit the server takes, a quarter of a
	 * 64-bit SIZE_MAX. Added to the head, the first wraps around size_t,
	 * the second makes the doubling input buffer wrap, and the third is
	 * just over the limit. */
	const char *lengths[] = {"18446744073709551615", "9223372036854775808",
				 "4611686018427387905"};
	struct st_fixture *f = st_start(state, &(struct st_limits){.max_body = SIZE_MAX});
	struct st_response r;
	char request[256];
	size_t extra = 0;

	for (size_t i = 0; i < CMI_ARRAY_LEN(lengths); i++) {
		struct st_conn *c = st_open(f);

		print_message("Content-Length: %s\n", lengths[i]);
		cmi_fmt(request, sizeof(request),
			"POST /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %s\r\n\r\nxyz",
			lengths[i]);
		st_send(c, request);
		st_expect_response(c, &r);
		assert_int_equal(r.status, 413);
		assert_true(st_wait_closed(c, &extra));
	}
	assert_int_equal(st_requests(f), 0);
}

/* A Content-Type longer than the room a reply head is given at first. */
static char st_long_type[3000];

static void test_http_server_long_content_type_intact(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *req;
	struct st_response r;
	char type[sizeof(st_long_type)];

	memcpy(st_long_type, "application/x-", 14);
	memset(st_long_type + 14, 't', sizeof(st_long_type) - 15);
	st_long_type[sizeof(st_long_type) - 1] = '\0';
	st_set_mode(f, ST_MODE_HOLD);
	st_send(c, "POST /?id=t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n{}");
	req = st_take_held(f);
	cmi_http_reply_typed(req, 200, st_long_type, "typed");

	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(st_field(&r, "Content-Type", type, sizeof(type)));
	assert_string_equal(type, st_long_type);
	assert_string_equal(r.body, "typed\n");
}

static void test_http_server_port_in_use_error_names_cause(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct cmi_http_server_opts so = {0};
	struct cmi_http_server *second = NULL;
	char address[64];

	so.host = "127.0.0.1";
	so.port = f->port;
	so.handler = st_handler;
	so.user = f;
	TK_FAIL(cmi_http_server_new(f->base, &so, &second), CMICRO_EIO);
	assert_null(second);
	cmi_fmt(address, sizeof(address), "127.0.0.1:%d", f->port);
	TK_CONTAINS(cmicro_last_errmsg(), address);
	TK_CONTAINS(cmicro_last_errmsg(), strerror(EADDRINUSE));
}

/* Every test gets its fixture released by st_teardown, even when it fails. */
#define ST_TEST(name) cmocka_unit_test_teardown(name, st_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		ST_TEST(test_http_server_pipelined_posts_answered_in_order),
		ST_TEST(test_http_server_http11_default_stays_open),
		ST_TEST(test_http_server_connection_close_closes),
		ST_TEST(test_http_server_http10_default_closes),
		ST_TEST(test_http_server_http10_keepalive_stays_open),
		ST_TEST(test_http_server_chunked_body_joined),
		ST_TEST(test_http_server_chunked_over_limit_413),
		ST_TEST(test_http_server_chunked_bad_size_rejected),
		ST_TEST(test_http_server_expect_continue_sends_100),
		ST_TEST(test_http_server_body_over_limit_413_then_close),
		ST_TEST(test_http_server_head_over_limit_rejected),
		ST_TEST(test_http_server_unknown_method_501),
		ST_TEST(test_http_server_other_methods_get_405_allow),
		ST_TEST(test_http_server_head_reply_has_no_body),
		ST_TEST(test_http_server_absolute_target_split),
		ST_TEST(test_http_server_query_escapes_decoded),
		ST_TEST(test_http_server_half_close_still_answered),
		ST_TEST(test_http_server_stalled_head_closed),
		ST_TEST(test_http_server_idle_keepalive_closed),
		ST_TEST(test_http_server_reply_from_thread_arrives),
		ST_TEST(test_http_server_free_with_held_request_safe),
		ST_TEST(test_http_server_response_format_complete),
		ST_TEST(test_http_server_header_lookup_ignores_case),
		ST_TEST(test_http_server_duplicate_header_first_wins),
		ST_TEST(test_http_server_tls_pipelined_both_answered),
		ST_TEST(test_http_server_tls_close_sends_close_notify),
		ST_TEST(test_http_server_tls_cut_after_request_no_warning),
		ST_TEST(test_http_server_unread_pipeline_others_served),
		ST_TEST(test_http_server_connection_limit_closes_fifth),
		ST_TEST(test_http_server_bare_lf_400_after_valid),
		ST_TEST(test_http_server_huge_content_length_413),
		ST_TEST(test_http_server_long_content_type_intact),
		ST_TEST(test_http_server_port_in_use_error_names_cause),
	};

	/* A write to a connection the server closed fails with EPIPE instead
	 * of ending the test process (SSL_write has no MSG_NOSIGNAL). */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
