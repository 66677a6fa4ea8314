/*
 * States of one server connection that a client cannot see on the wire:
 * reading paused and resumed, input kept by OpenSSL, the end of the
 * client's input while a handler runs, and the size of the input buffer.
 * A client drives the server over 127.0.0.1 as in test_http_server.c, and
 * a probe on the loop thread reads the connection's fields from
 * http_server_int.h to wait for a state or to check it.
 */
#include <signal.h>

#include "http/http_server_int.h"
#include "test_http_server_util.h"

/* What the probe read of the server's only connection. */
struct sc_state {
	bool found;
	bool reading;     /* the read event is registered */
	bool peer_eof;
	bool ssl_pending; /* OpenSSL has input not yet returned by SSL_read */
	size_t in_cap;
};

static void sc_probe_cb(struct st_fixture *f, void *arg)
{
	struct sc_state *state = arg;
	const struct srv_conn *conn = f->srv->conns;

	memset(state, 0, sizeof(*state));
	if (conn == NULL)
		return;
	state->found = true;
	state->reading = conn->rev_added;
	state->peer_eof = conn->peer_eof;
	state->ssl_pending = conn->ssl != NULL && SSL_has_pending(conn->ssl);
	state->in_cap = conn->in_cap;
}

static struct sc_state sc_probe(struct st_fixture *f)
{
	struct sc_state state;

	st_on_loop(f, sc_probe_cb, &state);
	assert_true(state.found);
	return state;
}

enum sc_condition { SC_PAUSED, SC_PEER_EOF };

/* Waits (bounded) until the connection reaches cond; fails otherwise. */
static struct sc_state sc_wait(struct st_fixture *f, enum sc_condition cond)
{
	const struct timespec step = {0, 5 * 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;

	for (;;) {
		struct sc_state state = sc_probe(f);
		bool reached = cond == SC_PAUSED ? !state.reading : state.peer_eof;

		if (reached)
			return state;
		if (cmi_now_mono() >= deadline)
			fail_msg("the connection did not reach state %s within %d s",
				 cond == SC_PAUSED ? "reading paused" : "end of client input",
				 ST_IO_TIMEOUT_S);
		nanosleep(&step, NULL);
	}
}

/* Bodies of the write-blocking test. The echo of the first is larger than
 * the socket buffers of a client that does not read, because Linux's
 * default tcp_wmem allows at most 4 MiB of send buffer. The second is
 * larger than the input the server reads ahead while its write waits. */
#define SC_ECHO_BODY (8u << 20)
#define SC_NEXT_BODY (1u << 20)

static void test_http_server_conn_body_after_blocked_write_read(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.max_body = 16u << 20});
	struct st_conn *c = st_open(f);
	size_t len = 0;
	char *request = st_big_post(SC_ECHO_BODY, 'a', &len);
	const char *failure;
	int status = 0;
	long length = 0;

	/* The echo fills the socket buffers and the server's write waits. */
	assert_true(st_write(c, request, len));
	free(request);
	/* Once the first request is handled, the server frees its large input
	 * buffer and reads the second request a small piece at a time, so it
	 * pauses after 64 KiB instead of taking the whole body in one read. */
	assert_int_equal(st_wait_requests(f, 1), 1);
	request = st_big_post(SC_NEXT_BODY, 'b', &len);
	st_sender_start(f, c, request, len);
	/* The server stops reading the second body while its write waits. */
	sc_wait(f, SC_PAUSED);

	failure = st_skip_response(c, &status, &length);
	if (failure != NULL)
		fail_msg("no response to the first request: %s", failure);
	assert_int_equal(status, 200);
	assert_int_equal(length, SC_ECHO_BODY + 1);
	failure = st_skip_response(c, &status, &length);
	if (failure != NULL)
		fail_msg("no response to the request read after the blocked write: %s", failure);
	assert_int_equal(status, 200);
	assert_int_equal(length, SC_NEXT_BODY + 1);
	assert_true(st_sender_join(f));
	assert_int_equal(st_requests(f), 2);
}

/* Blocks the loop thread until the test opens it, so that what the test
 * sends meanwhile is all in the socket when the server reads. */
struct sc_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered;
	bool open;
	bool left;
};

static void sc_gate_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sc_gate *gate = arg;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&gate->lock);
	gate->entered = true;
	pthread_cond_broadcast(&gate->cond);
	while (!gate->open)
		pthread_cond_wait(&gate->cond, &gate->lock);
	gate->left = true;
	pthread_cond_broadcast(&gate->cond);
	pthread_mutex_unlock(&gate->lock);
}

/* Waits (bounded) until flag is set under gate->lock. */
static bool sc_gate_wait(struct sc_gate *gate, const bool *flag)
{
	struct timespec until;
	bool set;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ST_IO_TIMEOUT_S;
	pthread_mutex_lock(&gate->lock);
	while (!*flag && pthread_cond_timedwait(&gate->cond, &gate->lock, &until) == 0)
		;
	set = *flag;
	pthread_mutex_unlock(&gate->lock);
	return set;
}

/* Encrypts text into records of its own. */
static void sc_tls_record(struct st_conn *c, const char *text, size_t len)
{
	if (SSL_write(c->ssl, text, (int)len) != (int)len)
		st_fail_ossl("SSL_write to a memory BIO");
}

/* A request of exactly four full TLS records (4 x 16 KiB), the 64 KiB that
 * the server reads behind a held request before it pauses reading. */
#define SC_TLS_BIG (4 * 16384)
/* OpenSSL 3.0 reads ahead when it reads a record header from an empty
 * buffer, and then only what a record needs. A held request of about 1 KB
 * puts such a read at the last big record, which then takes the small
 * records behind it along.
 * NOTE: this layout depends on how OpenSSL 3.0 reads ahead. Another version
 * may need another size, which the check of ssl_pending reports. */
#define SC_TLS_HELD_BODY 1000

static const char *const sc_tls_small[] = {
	"POST /?id=s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nb",
	"POST /?id=s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nc",
};

/* Encrypts the held request, the big one and the small ones into mem. The
 * small records follow the last full one closely enough that OpenSSL's
 * read-ahead buffer takes them with it. */
static void sc_tls_batch(struct st_conn *c, BIO *mem, size_t big_body)
{
	BIO *sock = SSL_get_wbio(c->ssl);
	size_t len = 0, held_len = 0;
	char *big = st_big_post(big_body, 'a', &len);
	char *held = st_big_post(SC_TLS_HELD_BODY, 'h', &held_len);

	assert_int_equal(len, SC_TLS_BIG);
	assert_int_equal(BIO_up_ref(sock), 1);
	SSL_set0_wbio(c->ssl, mem);
	sc_tls_record(c, held, held_len);
	sc_tls_record(c, big, len);
	free(held);
	free(big);
	for (size_t i = 0; i < CMI_ARRAY_LEN(sc_tls_small); i++)
		sc_tls_record(c, sc_tls_small[i], strlen(sc_tls_small[i]));
	/* The socket becomes the write BIO again; mem stays with the caller. */
	assert_int_equal(BIO_up_ref(mem), 1);
	SSL_set0_wbio(c->ssl, sock);
}

/* Returns the body length that makes a request of st_big_post SC_TLS_BIG
 * bytes long: the head does not change size while the length keeps its
 * five digits. */
static size_t sc_tls_big_body(void)
{
	size_t guess = SC_TLS_BIG - 100, len = 0;

	free(st_big_post(guess, 'a', &len));
	return guess + SC_TLS_BIG - len;
}

/* Sends the records of sc_tls_batch while the loop thread waits, so the
 * server reads them ahead from a full socket. */
static void sc_send_tls_batch(struct st_fixture *f, struct st_conn *c, size_t big_body)
{
	struct sc_gate gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false,
			       false};
	BIO *mem = BIO_new(BIO_s_mem());
	char *data = NULL;
	ssize_t sent = -1;
	bool entered = false;
	long n;

	assert_non_null(mem);
	sc_tls_batch(c, mem, big_body);
	n = BIO_get_mem_data(mem, &data);
	if (event_base_once(f->base, -1, EV_TIMEOUT, sc_gate_cb, &gate, NULL) == 0) {
		entered = sc_gate_wait(&gate, &gate.entered);
		if (entered)
			sent = send(c->fd, data, (size_t)n, MSG_NOSIGNAL);
		pthread_mutex_lock(&gate.lock);
		gate.open = true;
		pthread_cond_broadcast(&gate.cond);
		pthread_mutex_unlock(&gate.lock);
		/* The gate is on this stack: the loop thread must be out of it. */
		if (entered && !sc_gate_wait(&gate, &gate.left))
			abort();
	}
	BIO_free(mem);
	assert_true(entered);
	assert_int_equal(sent, n);
}

static void test_http_server_conn_tls_read_ahead_served(void **state)
{
	struct st_fixture *f = st_fixture_new(state);
	const char *hosts[] = {"127.0.0.1"};
	struct cmi_http_request *held;
	struct sc_state paused;
	struct st_response r;
	struct st_conn *c;
	const char *failure;
	int status = 0;
	long length = 0;

	TK_OK(cmicro_cert_selfsigned(hosts, 1, &f->cert));
	/* One request with the handler at a time, so reading pauses behind the
	 * held one with records read ahead. */
	st_serve(f, &(struct st_limits){.pipeline_max = 1});
	st_set_mode(f, ST_MODE_HOLD);
	c = st_open_tls(f, NULL);
	sc_send_tls_batch(f, c, sc_tls_big_body());
	held = st_take_held(f);
	paused = sc_wait(f, SC_PAUSED);
	if (!paused.ssl_pending)
		fail_msg("test setup: the small requests are not in OpenSSL's read-ahead buffer; "
			 "adjust SC_TLS_HELD_BODY for this OpenSSL version");

	st_set_mode(f, ST_MODE_ECHO);
	cmi_http_reply(held, 200, "held");
	failure = st_skip_response(c, &status, &length);
	if (failure != NULL)
		fail_msg("no response to the held request: %s", failure);
	assert_int_equal(status, 200);
	failure = st_skip_response(c, &status, &length);
	if (failure != NULL)
		fail_msg("no response to the big request: %s", failure);
	assert_int_equal(status, 200);
	for (size_t i = 0; i < CMI_ARRAY_LEN(sc_tls_small); i++) {
		failure = st_read_response(c, &r, false);
		if (failure != NULL)
			fail_msg("no response to small request %zu, read ahead by OpenSSL: %s",
				 i + 1, failure);
		assert_int_equal(r.status, 200);
	}
	assert_string_equal(r.body, "c\n");
}

static void test_http_server_conn_half_close_pipeline_answered(void **state)
{
	struct st_fixture *f = st_start(state, &(struct st_limits){.pipeline_max = 1});
	struct st_conn *c = st_open(f);
	struct cmi_http_request *held;
	struct st_response r;
	char batch[512] = "";
	size_t extra = 0;

	st_set_mode(f, ST_MODE_HOLD);
	st_add_post(batch, sizeof(batch), "/?id=p", "one");
	st_add_post(batch, sizeof(batch), "/?id=p", "two");
	st_send(c, batch);
	assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
	held = st_take_held(f);
	/* The server has read the end of the input before the reply. */
	sc_wait(f, SC_PEER_EOF);

	st_set_mode(f, ST_MODE_ECHO);
	cmi_http_reply(held, 200, "one");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "one\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "two\n");
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
	assert_int_equal(st_requests(f), 2);
}

/* Chunks of one data byte, each with an extension as long as a chunk size
 * line may be, so the framing is about 4000 times the body. */
#define SC_CHUNKS 200
#define SC_EXTENSION 4000

static void test_http_server_conn_chunk_extensions_input_bounded(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *held;
	struct st_response r;
	struct sc_state probe;
	char chunk[SC_EXTENSION + 16], expected[SC_CHUNKS + 1];

	st_set_mode(f, ST_MODE_HOLD);
	st_send(c, "POST /?id=c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n");
	memcpy(chunk, "1;e=", 4);
	memset(chunk + 4, 'x', SC_EXTENSION);
	memcpy(chunk + 4 + SC_EXTENSION, "\r\nz\r\n", 6);
	for (int i = 0; i < SC_CHUNKS; i++)
		st_send(c, chunk);
	st_send(c, "0\r\n\r\n");
	held = st_take_held(f);

	/* The input keeps the head, the decoded body and one read, far less
	 * than the 800 KB of framing sent. */
	probe = sc_probe(f);
	if (probe.in_cap > 256 * 1024)
		fail_msg("the input buffer grew to %zu bytes for a body of %d bytes", probe.in_cap,
			 SC_CHUNKS);
	memset(expected, 'z', SC_CHUNKS);
	expected[SC_CHUNKS] = '\0';
	assert_string_equal(st_seen_at(f, 0).body, expected);

	cmi_http_reply(held, 200, "done");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "done\n");
}

static void sc_phases_cb(struct st_fixture *f, void *arg)
{
	unsigned *phases = arg;

	*phases = 0;
	for (const struct srv_conn *conn = f->srv->conns; conn != NULL; conn = conn->next)
		*phases |= 1u << conn->phase;
}

/* Waits (bounded) until the server's connections are in every phase of
 * want, a mask of 1 << enum srv_phase; returns the last mask seen. */
static unsigned sc_wait_phases(struct st_fixture *f, unsigned want)
{
	const struct timespec step = {0, 5 * 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	unsigned phases = 0;

	for (;;) {
		st_on_loop(f, sc_phases_cb, &phases);
		if ((phases & want) == want || cmi_now_mono() >= deadline)
			return phases;
		nanosleep(&step, NULL);
	}
}

/* Counts the connections whose first queued request waits for its reply
 * while the one behind it has its reply. */
static void sc_replied_behind_cb(struct st_fixture *f, void *arg)
{
	int *n = arg;

	*n = 0;
	for (const struct srv_conn *conn = f->srv->conns; conn != NULL; conn = conn->next)
		*n += conn->q_head != NULL && !conn->q_head->replied && conn->q_head->q_next &&
		      conn->q_head->q_next->replied;
}

static void sc_wait_replied_behind(struct st_fixture *f)
{
	const struct timespec step = {0, 5 * 1000 * 1000};
	double deadline = cmi_now_mono() + ST_IO_TIMEOUT_S;
	int n = 0;

	for (;;) {
		st_on_loop(f, sc_replied_behind_cb, &n);
		if (n > 0 || cmi_now_mono() >= deadline)
			break;
		nanosleep(&step, NULL);
	}
	assert_int_equal(n, 1);
}

static void test_http_server_conn_free_in_every_phase_clean(void **state)
{
	const unsigned want = 1u << SRV_HEAD | 1u << SRV_BODY | 1u << SRV_CHUNKED |
			      1u << SRV_BUSY | 1u << SRV_DRAIN;
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *head = st_open(f), *body = st_open(f), *chunked = st_open(f);
	struct st_conn *busy = st_open(f), *drain = st_open(f), *queued = st_open(f);
	struct st_conn *all[] = {head, body, chunked, busy, drain, queued};
	struct cmi_http_request *held, *first, *second;
	struct st_response r;
	char batch[512] = "";
	size_t extra = 0;

	st_set_mode(f, ST_MODE_HOLD);
	st_send(head, "POST /?id=h HTTP/1.1\r\nHost: 127");
	st_send(body, "POST /?id=b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123");
	st_send(chunked, "POST /?id=c HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
			 "\r\n5\r\nab");
	/* The last request of its connection: framing stops behind it. */
	st_send(busy, "POST /?id=w HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		      "Content-Length: 4\r\n\r\nheld");
	held = st_take_held(f);
	/* Two pipelined requests with the handler; the second one's reply waits
	 * in the connection for the first one's. */
	st_add_post(batch, sizeof(batch), "/?id=q", "first");
	st_add_post(batch, sizeof(batch), "/?id=q", "second");
	st_send(queued, batch);
	first = st_take_held(f);
	second = st_take_held(f);
	cmi_http_reply(second, 200, "second");
	sc_wait_replied_behind(f);
	/* A rejected client that keeps its side open is drained. */
	st_send(drain, "BAD\r\n\r\n");
	st_expect_response(drain, &r);
	assert_int_equal(r.status, 400);
	assert_int_equal(sc_wait_phases(f, want) & want, want);

	st_stop_loop(f);
	cmi_http_server_free(f->srv);
	f->srv = NULL;
	/* Only releases the detached requests; a sanitizer build reports a use
	 * of the freed connection or server, and leaks. */
	cmi_http_reply(held, 200, "too late");
	cmi_http_reply(first, 200, "too late");
	for (size_t i = 0; i < CMI_ARRAY_LEN(all); i++) {
		print_message("connection %zu\n", i);
		assert_true(st_wait_closed(all[i], &extra));
		assert_int_equal(extra, 0);
	}
}

/* Pipelined requests reach the handler before the first is replied to, and
 * their replies leave in the order of the requests whatever order the
 * handler replies in. */
static void test_http_server_conn_pipelined_replies_in_order(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *req[3];
	struct st_response r;
	char batch[512] = "";

	st_set_mode(f, ST_MODE_HOLD);
	st_add_post(batch, sizeof(batch), "/?id=o", "a");
	st_add_post(batch, sizeof(batch), "/?id=o", "b");
	st_add_post(batch, sizeof(batch), "/?id=o", "c");
	st_send(c, batch);
	for (int i = 0; i < 3; i++)
		req[i] = st_take_held(f);
	assert_int_equal(st_requests(f), 3);
	cmi_http_reply(req[2], 200, "third");
	cmi_http_reply(req[1], 201, "second");
	/* Nothing leaves before the first reply. */
	sc_wait_replied_behind(f);
	cmi_http_reply(req[0], 202, "first");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 202);
	assert_string_equal(r.body, "first\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body, "second\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "third\n");
	/* The connection goes on. */
	st_set_mode(f, ST_MODE_ECHO);
	st_post_echoed(c, "after");
}

/* A request that breaks the framing behind ones with the handler gets its
 * reply after theirs, and then the connection ends. */
static void test_http_server_conn_rejection_waits_for_earlier_replies(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *held;
	struct st_response r;
	char batch[512] = "";
	size_t extra = 0;

	st_set_mode(f, ST_MODE_HOLD);
	st_add_post(batch, sizeof(batch), "/?id=r", "kept");
	strcat(batch, "BAD\r\n\r\n");
	st_send(c, batch);
	held = st_take_held(f);
	cmi_http_reply(held, 200, "kept");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "kept\n");
	st_expect_response(c, &r);
	assert_int_equal(r.status, 400);
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

/* A client that pipelines requests and closes its sending side gets every
 * reply, the last one with "Connection: close". */
static void test_http_server_conn_half_close_held_pipeline(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *req[2];
	struct st_response r;
	char batch[512] = "", value[32];
	size_t extra = 0;

	st_set_mode(f, ST_MODE_HOLD);
	st_add_post(batch, sizeof(batch), "/?id=p", "one");
	st_add_post(batch, sizeof(batch), "/?id=p", "two");
	st_send(c, batch);
	assert_int_equal(shutdown(c->fd, SHUT_WR), 0);
	req[0] = st_take_held(f);
	req[1] = st_take_held(f);
	sc_wait(f, SC_PEER_EOF);
	cmi_http_reply(req[1], 200, "two");
	cmi_http_reply(req[0], 200, "one");
	st_expect_response(c, &r);
	assert_string_equal(r.body, "one\n");
	assert_null(st_field(&r, "Connection", value, sizeof(value)));
	st_expect_response(c, &r);
	assert_string_equal(r.body, "two\n");
	assert_non_null(st_field(&r, "Connection", value, sizeof(value)));
	assert_string_equal(value, "close");
	assert_true(st_wait_closed(c, &extra));
	assert_int_equal(extra, 0);
}

/* A reply that a thread holds (cmi_http_reply_hold) still goes out on the
 * loop thread's poll, before the thread releases it. */
static void test_http_server_conn_held_reply_polled(void **state)
{
	struct st_fixture *f = st_start(state, NULL);
	struct st_conn *c = st_open(f);
	struct cmi_http_request *req;
	struct st_response r;

	st_set_mode(f, ST_MODE_HOLD);
	st_send(c, "POST /?id=h HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nheld");
	req = st_take_held(f);
	cmi_http_reply_hold(f->srv);
	cmi_http_reply(req, 200, "held");
	st_expect_response(c, &r);
	cmi_http_reply_release();
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "held\n");
}

#define SC_TEST(name) cmocka_unit_test_teardown(name, st_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		SC_TEST(test_http_server_conn_body_after_blocked_write_read),
		SC_TEST(test_http_server_conn_tls_read_ahead_served),
		SC_TEST(test_http_server_conn_half_close_pipeline_answered),
		SC_TEST(test_http_server_conn_chunk_extensions_input_bounded),
		SC_TEST(test_http_server_conn_free_in_every_phase_clean),
		SC_TEST(test_http_server_conn_pipelined_replies_in_order),
		SC_TEST(test_http_server_conn_rejection_waits_for_earlier_replies),
		SC_TEST(test_http_server_conn_half_close_held_pipeline),
		SC_TEST(test_http_server_conn_held_reply_polled),
	};

	/* A write to a connection the server closed fails with EPIPE instead
	 * of ending the test process. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
