/* The HTTP layer: server and client over plain HTTP and TLS on 127.0.0.1,
 * run on one event loop in the test thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_int.h"
#include "testkit.h"

struct fixture {
	struct event_base *base;
	struct cmi_http_server *srv;
	struct cmi_http_client *cli;
	struct cmicro_tls_context *srv_tls, *cli_tls;
	/* what the handler saw */
	int requests;
	char method[16];
	char id[64];
	char body[256];
	char peer[64];
	int reply_status;  /* 0: keep the request unanswered */
	struct cmi_http_request *held;
	/* what the client got */
	bool done;
	struct cmi_http_result result;
};

static void handler(void *user, struct cmi_http_request *req)
{
	struct fixture *f = user;
	const char *id = cmi_http_request_query(req, "id");
	size_t len = 0;
	const char *body = cmi_http_request_body(req, &len);

	f->requests++;
	cmi_fmt(f->method, sizeof(f->method), "%s", cmi_http_request_method(req));
	cmi_fmt(f->id, sizeof(f->id), "%s", id ? id : "");
	cmi_fmt(f->body, sizeof(f->body), "%.*s", (int)len, body ? body : "");
	cmi_fmt(f->peer, sizeof(f->peer), "%s", cmi_http_request_peer(req));
	if (f->reply_status == 0) {
		f->held = req;
		return;
	}
	cmi_http_reply(req, f->reply_status, "handled");
}

static void on_done(void *arg, const struct cmi_http_result *res)
{
	struct fixture *f = arg;

	f->done = true;
	f->result = *res;
	event_base_loopbreak(f->base);
}

static struct fixture *fixture_new(bool tls, size_t max_body, int max_conns, int read_ms)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct cmi_http_server_opts so = {0};

	assert_non_null(f);
	TK_OK(cmi_http_threads_init());
	f->base = event_base_new();
	assert_non_null(f->base);
	if (tls) {
		struct cmicro_tls_config *cfg = NULL;
		struct cmicro_cert *cert = NULL;
		const char *hosts[] = {"127.0.0.1"};

		TK_OK(cmicro_tls_config_insecure(&cfg));
		TK_OK(cmicro_cert_selfsigned(hosts, 1, &cert));
		TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_SERVER, cert, &f->srv_tls));
		TK_OK(cmicro_tls_context_new(cfg, CMICRO_TLS_CLIENT, NULL, &f->cli_tls));
		cmicro_cert_free(cert);
		cmicro_tls_config_free(cfg);
	}
	so.host = "127.0.0.1";
	so.tls = f->srv_tls;
	so.max_body = max_body;
	so.max_connections = max_conns;
	so.read_timeout_ms = read_ms;
	so.handler = handler;
	so.user = f;
	TK_OK(cmi_http_server_new(f->base, &so, &f->srv));
	TK_OK(cmi_http_client_new(f->base, f->cli_tls, &f->cli));
	f->reply_status = 200;
	return f;
}

static void fixture_free(struct fixture *f)
{
	cmi_http_client_free(f->cli);
	if (f->held != NULL)
		cmi_http_reply(f->held, 503, "test over");
	cmi_http_server_free(f->srv);
	cmicro_tls_context_free(f->srv_tls);
	cmicro_tls_context_free(f->cli_tls);
	event_base_free(f->base);
	free(f);
}

/* Posts body to the fixture's server and runs the loop until the result. */
static void post(struct fixture *f, bool https, const char *body, int timeout_ms)
{
	char addr[64];
	struct cmi_http_post p = {0};
	struct timeval guard = {30, 0};

	cmi_fmt(addr, sizeof(addr), "127.0.0.1:%d", cmi_http_server_port(f->srv));
	p.https = https;
	p.address = addr;
	p.path = "/?id=node%201";
	p.peer_label = "test-node";
	p.body = body;
	p.body_len = strlen(body);
	p.timeout_ms = timeout_ms;
	f->done = false;
	TK_OK(cmi_http_client_post(f->cli, &p, on_done, f));
	event_base_loopexit(f->base, &guard);
	event_base_dispatch(f->base);
	assert_true(f->done);
}

static void test_http_plain_post_reaches_handler(void **state)
{
	struct fixture *f = fixture_new(false, 0, 0, 0);

	(void)state;
	post(f, false, "{\"a\":1}", 5000);
	assert_int_equal(f->result.err, 0);
	assert_int_equal(f->result.status, 200);
	assert_int_equal(f->requests, 1);
	assert_string_equal(f->method, "POST");
	assert_string_equal(f->id, "node 1");
	assert_string_equal(f->body, "{\"a\":1}");
	TK_CONTAINS(f->peer, "127.0.0.1:");
	fixture_free(f);
}

static void test_http_keepalive_reuses_connection(void **state)
{
	struct fixture *f = fixture_new(false, 0, 0, 0);

	(void)state;
	post(f, false, "one", 5000);
	post(f, false, "two", 5000);
	assert_int_equal(f->requests, 2);
	assert_string_equal(f->body, "two");
	assert_int_equal(cmi_http_server_connections(f->srv), 1);
	fixture_free(f);
}

static void test_http_error_status_reported(void **state)
{
	struct fixture *f = fixture_new(false, 0, 0, 0);

	(void)state;
	f->reply_status = 500;
	post(f, false, "x", 5000);
	assert_int_equal(f->result.err, 0);
	assert_int_equal(f->result.status, 500);
	TK_CONTAINS(f->result.message, "HTTP 500");
	fixture_free(f);
}

static void test_http_tls_post_round_trip(void **state)
{
	struct fixture *f = fixture_new(true, 0, 0, 0);

	(void)state;
	post(f, true, "secret", 5000);
	if (f->result.err != 0)
		fail_msg("TLS post failed: %s: %s", cmicro_err_name(f->result.err), f->result.message);
	assert_int_equal(f->result.status, 200);
	assert_string_equal(f->body, "secret");
	post(f, true, "again", 5000);
	if (f->result.status != 200)
		fail_msg("second TLS post (requests %d): %s %d: %s", f->requests, cmicro_err_name(f->result.err),
			 f->result.status, f->result.message);
	assert_int_equal(cmi_http_server_connections(f->srv), 1);
	fixture_free(f);
}

static void test_http_tls_verify_rejects_selfsigned(void **state)
{
	struct fixture *f = fixture_new(true, 0, 0, 0);
	struct cmicro_tls_config *secure = NULL;

	(void)state;
	cmi_http_client_free(f->cli);
	cmicro_tls_context_free(f->cli_tls);
	TK_OK(cmicro_tls_config_new(&secure));
	TK_OK(cmicro_tls_config_set_system_roots(secure, false));
	TK_OK(cmicro_tls_context_new(secure, CMICRO_TLS_CLIENT, NULL, &f->cli_tls));
	cmicro_tls_config_free(secure);
	TK_OK(cmi_http_client_new(f->base, f->cli_tls, &f->cli));

	post(f, true, "x", 5000);
	assert_int_equal(f->result.err, CMICRO_EVERIFY);
	assert_int_equal(f->result.status, 0);
	assert_true(f->result.tls_reason == CMICRO_TLS_REASON_SELF_SIGNED ||
		    f->result.tls_reason == CMICRO_TLS_REASON_UNKNOWN_AUTHORITY);
	TK_CONTAINS(f->result.message, "TLS handshake failed");
	assert_int_equal(f->requests, 0);
	fixture_free(f);
}

static void test_http_plain_client_to_tls_server_fails(void **state)
{
	struct fixture *f = fixture_new(true, 0, 0, 0);

	(void)state;
	post(f, false, "x", 5000);
	assert_int_not_equal(f->result.err, 0);
	assert_int_equal(f->result.status, 0);
	assert_int_equal(f->requests, 0);
	fixture_free(f);
}

static void test_http_connect_refused_reports_econnect(void **state)
{
	struct fixture *f = fixture_new(false, 0, 0, 0);
	struct cmi_http_post p = {0};
	struct timeval guard = {30, 0};
	char addr[64];

	(void)state;
	cmi_fmt(addr, sizeof(addr), "127.0.0.1:%d", tk_free_port());
	p.address = addr;
	p.path = "/";
	p.body = "x";
	p.body_len = 1;
	p.timeout_ms = 5000;
	TK_OK(cmi_http_client_post(f->cli, &p, on_done, f));
	event_base_loopexit(f->base, &guard);
	event_base_dispatch(f->base);
	assert_true(f->done);
	assert_int_equal(f->result.err, CMICRO_ECONNECT);
	TK_CONTAINS(f->result.message, "cannot connect");
	fixture_free(f);
}

static void test_http_unanswered_request_times_out(void **state)
{
	struct fixture *f = fixture_new(false, 0, 0, 0);

	(void)state;
	f->reply_status = 0;
	post(f, false, "x", 300);
	assert_int_equal(f->result.err, CMICRO_ETIMEDOUT);
	assert_int_equal(f->requests, 1);
	assert_non_null(f->held);
	fixture_free(f);
}

static void test_http_body_over_limit_413(void **state)
{
	struct fixture *f = fixture_new(false, 16, 0, 0);

	(void)state;
	post(f, false, "0123456789abcdef0123456789", 5000);
	assert_int_equal(f->result.status, 413);
	assert_int_equal(f->requests, 0);
	fixture_free(f);
}

static int raw_connect(int port)
{
	struct sockaddr_in sa = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct fixture *f, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

/* Returns true when the server closed fd (EOF or reset). */
static bool peer_closed(int fd)
{
	struct pollfd p = {fd, POLLIN, 0};
	char buf[512];

	if (poll(&p, 1, 0) != 1)
		return false;
	return recv(fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0;
}

static void test_http_stalled_client_closed(void **state)
{
	struct fixture *f = fixture_new(false, 0, 0, 300);
	const char *half = "POST /?id=x HTTP/1.1\r\nHost: a\r\nContent-Len";
	int fd;

	(void)state;
	tk_log_capture_start();
	fd = raw_connect(cmi_http_server_port(f->srv));
	assert_int_equal(send(fd, half, strlen(half), 0), (ssize_t)strlen(half));
	run_for(f, 100);
	assert_false(peer_closed(fd));
	assert_int_equal(cmi_http_server_connections(f->srv), 1);
	run_for(f, 600);
	assert_true(peer_closed(fd));
	assert_int_equal(cmi_http_server_connections(f->srv), 0);
	assert_int_equal(f->requests, 0);
	close(fd);
	tk_log_capture_stop();
	fixture_free(f);
}

static void test_http_connection_limit_closes_extra(void **state)
{
	struct fixture *f = fixture_new(false, 0, 2, 0);
	int fds[3];

	(void)state;
	tk_log_capture_start();
	for (int i = 0; i < 3; i++) {
		fds[i] = raw_connect(cmi_http_server_port(f->srv));
		run_for(f, 50);
	}
	assert_false(peer_closed(fds[0]));
	assert_false(peer_closed(fds[1]));
	assert_true(peer_closed(fds[2]));
	assert_int_equal(cmi_http_server_connections(f->srv), 2);
	assert_int_equal(tk_log_count("HTTP-CONN-LIMIT"), 1);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	tk_log_capture_stop();
	fixture_free(f);
}

static void test_http_split_address_forms(void **state)
{
	char host[64];
	int port = 0;

	(void)state;
	TK_OK(cmi_http_split_address("127.0.0.1:8080", host, sizeof(host), &port));
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8080);
	TK_OK(cmi_http_split_address("[::1]:0", host, sizeof(host), &port));
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	TK_OK(cmi_http_split_address(":9", host, sizeof(host), &port));
	assert_string_equal(host, "");
	TK_FAIL(cmi_http_split_address("::1:80", host, sizeof(host), &port), CMICRO_EINVAL);
	TK_FAIL(cmi_http_split_address("host", host, sizeof(host), &port), CMICRO_EINVAL);
	TK_FAIL(cmi_http_split_address("host:70000", host, sizeof(host), &port), CMICRO_EINVAL);
	TK_FAIL(cmi_http_split_address("host:", host, sizeof(host), &port), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "host:");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_plain_post_reaches_handler),
		cmocka_unit_test(test_http_keepalive_reuses_connection),
		cmocka_unit_test(test_http_error_status_reported),
		cmocka_unit_test(test_http_tls_post_round_trip),
		cmocka_unit_test(test_http_tls_verify_rejects_selfsigned),
		cmocka_unit_test(test_http_plain_client_to_tls_server_fails),
		cmocka_unit_test(test_http_connect_refused_reports_econnect),
		cmocka_unit_test(test_http_unanswered_request_times_out),
		cmocka_unit_test(test_http_body_over_limit_413),
		cmocka_unit_test(test_http_stalled_client_closed),
		cmocka_unit_test(test_http_connection_limit_closes_extra),
		cmocka_unit_test(test_http_split_address_forms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
