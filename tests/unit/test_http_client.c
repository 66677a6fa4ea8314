/*
 * The HTTP client against mock servers that each test scripts. A mock is a
 * thread on 127.0.0.1 that accepts connections, runs one thread per
 * connection and responds with chosen bytes. It speaks plain TCP, or TLS
 * through OpenSSL alone with certificates made at test time by cmicro and
 * by the openssl CLI. The client runs on an event_base in the test thread.
 * Every wait is bounded: the loop by a guard timer, the mock's reads and
 * writes by poll and socket timeouts, and its threads by a timed join. The
 * later tests cover connections that end: a request that meets a
 * kept-alive connection the server had already ended and the resend that
 * follows, the per-node cap once connections time out, and large requests
 * written in parts over TLS.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http/http_client_int.h"
#include "http/http_int.h"
#include "testkit.h"

#define MOCK_MAX_CONNS 128   /* connections one mock serves, each on its own thread */
#define MOCK_IO_MS     10000 /* max wait of one read or write of the mock */
#define MOCK_POLL_MS   20    /* how often a waiting mock thread checks for stop */
#define MOCK_REQ_MAX   16384 /* request head the mock reads */
#define JOIN_MS        15000 /* max wait for the threads of a mock to end */
#define GUARD_S        30    /* max time of one run of the client's loop */
#define WAIT_MS        10000 /* max wait for a change in the mock or the client */
#define TIMEOUT_MS     5000  /* request timeout when no timeout is under test */

/* ---- mock server ---- */

struct mock;
struct mock_conn;

typedef void (*mock_script_fn)(struct mock *m, struct mock_conn *c);

struct mock_opts {
	SSL_CTX *tls; /* NULL: plain TCP */
	mock_script_fn script;
	const char *reply; /* what script_serve sends to each request */
	size_t reply_len;
	size_t write_size; /* bytes per write with a 1 ms pause between, or 0 for one write */
	int hold_ms;       /* pause before each reply */
	bool close_after;  /* close the connection after the first reply */
	int rcvbuf;        /* SO_RCVBUF of accepted sockets, or 0 for the default */
};

struct mock_conn {
	struct mock *m;
	int fd;
	SSL *ssl;
	int index; /* order of acceptance, from 0 */
	pthread_t thread;
	/* Bytes read past the last request: the next, pipelined ones. */
	char rbuf[MOCK_REQ_MAX + 1];
	size_t rlen;
	atomic_int reads; /* mock_read calls that returned bytes */
};

struct mock {
	struct mock_opts opts;
	int listen_fd;
	char address[32];
	pthread_t thread;
	struct mock_conn *conns[MOCK_MAX_CONNS];
	int n_conns;
	atomic_bool stop;
	atomic_bool release; /* set by the test: the first connection may end */
	atomic_int half_closed; /* first connections that ended their sending side */
	atomic_int accepted, open, max_open, closed;
	atomic_int requests, get_requests;
	atomic_int first_get_at; /* requests counted when the first GET arrived */
	atomic_int faults; /* failures of the mock itself, never of the client */
	atomic_int stuck;  /* connection threads that did not end */
};

/* Waits until c has bytes to read. Returns false at stop or after MOCK_IO_MS. */
static bool mock_wait_readable(struct mock_conn *c)
{
	for (int waited = 0; waited < MOCK_IO_MS; waited += MOCK_POLL_MS) {
		struct pollfd p = {c->fd, POLLIN, 0};

		if (c->ssl != NULL && SSL_pending(c->ssl) > 0)
			return true;
		if (atomic_load(&c->m->stop))
			return false;
		if (poll(&p, 1, MOCK_POLL_MS) == 1)
			return true;
	}
	return false;
}

/* Reads up to n bytes. Returns the count, or 0 or less at the end of the
 * connection, on an error, at stop or after MOCK_IO_MS. */
static ssize_t mock_read(struct mock_conn *c, char *buf, size_t n)
{
	ssize_t r;

	if (!mock_wait_readable(c))
		return -1;
	if (c->ssl != NULL)
		r = SSL_read(c->ssl, buf, (int)n);
	else
		r = recv(c->fd, buf, n, 0);
	if (r > 0)
		atomic_fetch_add(&c->reads, 1);
	return r;
}

static int mock_write(struct mock_conn *c, const char *buf, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (c->ssl != NULL)
			w = SSL_write(c->ssl, buf, (int)(n > 65536 ? 65536 : n));
		else
			w = send(c->fd, buf, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends the configured reply, in several writes when opts.write_size is set. */
static int mock_send_reply(struct mock *m, struct mock_conn *c)
{
	size_t step = m->opts.write_size ? m->opts.write_size : m->opts.reply_len;

	for (size_t off = 0; off < m->opts.reply_len; off += step) {
		size_t n = m->opts.reply_len - off < step ? m->opts.reply_len - off : step;

		if (off > 0)
			usleep(1000);
		if (mock_write(c, m->opts.reply + off, n) != 0)
			return -1;
	}
	return 0;
}

/* Reads and drops n bytes. */
static int mock_skip(struct mock_conn *c, unsigned long long n)
{
	char buf[16384];

	while (n > 0) {
		ssize_t r = mock_read(c, buf, n < sizeof(buf) ? (size_t)n : sizeof(buf));

		if (r <= 0)
			return -1;
		n -= (unsigned long long)r;
	}
	return 0;
}

/* Returns the Content-Length of a NUL-terminated request head, or 0. */
static unsigned long long mock_content_length(const char *head)
{
	const char *field = strcasestr(head, "\r\nContent-Length:");

	return field != NULL ? strtoull(field + 17, NULL, 10) : 0;
}

/* Reads one request head and, unless head_only, its body (dropped). Bytes
 * after that body are the next requests of a client that pipelines, kept
 * for the next call. Returns 0, or -1 at the end of the connection, on an
 * error or at stop. */
static int mock_read_request(struct mock_conn *c, bool head_only)
{
	char *buf = c->rbuf;
	size_t len = c->rlen, head_len, extra;
	unsigned long long length;
	char *end, saved;

	c->rlen = 0;
	while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
		ssize_t n = len < MOCK_REQ_MAX ? mock_read(c, buf + len, MOCK_REQ_MAX - len) : -1;

		if (n <= 0)
			return -1;
		len += (size_t)n;
	}
	head_len = (size_t)(end + 4 - buf);
	extra = len - head_len;
	saved = buf[head_len];
	buf[head_len] = '\0';
	length = mock_content_length(buf);
	atomic_fetch_add(&c->m->requests, 1);
	if (strncmp(buf, "GET ", 4) == 0 && atomic_fetch_add(&c->m->get_requests, 1) == 0)
		atomic_store(&c->m->first_get_at, atomic_load(&c->m->requests));
	buf[head_len] = saved;
	if (head_only)
		return 0;
	if (length <= extra) {
		c->rlen = extra - (size_t)length;
		memmove(buf, buf + head_len + length, c->rlen);
		return 0;
	}
	return mock_skip(c, length - extra);
}

/* Reads until the client closes, never responding. */
static void mock_drain(struct mock_conn *c)
{
	char buf[4096];

	while (mock_read(c, buf, sizeof(buf)) > 0)
		continue;
}

/* Responds to every request with the reply until the client closes, or
 * only to the first with close_after. */
static void script_serve(struct mock *m, struct mock_conn *c)
{
	while (mock_read_request(c, false) == 0) {
		if (m->opts.hold_ms > 0)
			usleep((useconds_t)m->opts.hold_ms * 1000);
		if (mock_send_reply(m, c) != 0 || m->opts.close_after)
			return;
	}
}

/* Reads one request and closes without a response. */
static void script_close_after_request(struct mock *m, struct mock_conn *c)
{
	(void)m;
	(void)mock_read_request(c, false);
}

/* Reads one request and never responds to it. */
static void script_silent(struct mock *m, struct mock_conn *c)
{
	(void)m;
	if (mock_read_request(c, false) == 0)
		mock_drain(c);
}

/* Reads whatever arrives (a TLS ClientHello) and sends nothing. */
static void script_ignore(struct mock *m, struct mock_conn *c)
{
	(void)m;
	mock_drain(c);
}

/* Responds after the request head, before its body, then shuts down its
 * own sending side and reads the rest. A server rejecting a large body does
 * this so that the client reads the response instead of a reset. */
static void script_early_reply(struct mock *m, struct mock_conn *c)
{
	if (mock_read_request(c, true) != 0 || mock_send_reply(m, c) != 0)
		return;
	(void)shutdown(c->fd, SHUT_WR);
	mock_drain(c);
}

/* On the first connection, responds to one request, then closes once the
 * test sets release. Later connections are served normally. */
static void script_idle_close(struct mock *m, struct mock_conn *c)
{
	if (c->index > 0) {
		script_serve(m, c);
		return;
	}
	if (mock_read_request(c, false) != 0 || mock_send_reply(m, c) != 0)
		return;
	for (int waited = 0; waited < MOCK_IO_MS; waited++) {
		if (atomic_load(&m->release) || atomic_load(&m->stop))
			return;
		usleep(1000);
	}
}

static void *mock_conn_main(void *arg)
{
	struct mock_conn *c = arg;
	struct mock *m = c->m;
	bool ready = true;

	if (m->opts.tls != NULL) {
		c->ssl = SSL_new(m->opts.tls);
		ready = c->ssl != NULL && SSL_set_fd(c->ssl, c->fd) == 1;
		if (!ready)
			atomic_fetch_add(&m->faults, 1);
		/* A client that rejects the certificate ends the handshake here. */
		ready = ready && SSL_accept(c->ssl) == 1;
	}
	if (ready)
		m->opts.script(m, c);
	SSL_free(c->ssl);
	close(c->fd);
	atomic_fetch_sub(&m->open, 1);
	atomic_fetch_add(&m->closed, 1);
	ERR_clear_error();
	return NULL;
}

/* Counts a new open connection and raises max_open to match. */
static void mock_count_open(struct mock *m)
{
	int now = atomic_fetch_add(&m->open, 1) + 1;
	int max = atomic_load(&m->max_open);

	while (now > max && !atomic_compare_exchange_weak(&m->max_open, &max, now))
		continue;
}

static void mock_start_conn(struct mock *m, int fd)
{
	struct timeval io = {MOCK_IO_MS / 1000, 0};
	struct mock_conn *c = m->n_conns < MOCK_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
	int one = 1;

	if (c == NULL) {
		atomic_fetch_add(&m->faults, 1);
		close(fd);
		return;
	}
	c->m = m;
	c->fd = fd;
	c->index = m->n_conns;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &io, sizeof(io));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &io, sizeof(io));
	atomic_fetch_add(&m->accepted, 1);
	mock_count_open(m);
	if (pthread_create(&c->thread, NULL, mock_conn_main, c) != 0) {
		atomic_fetch_add(&m->faults, 1);
		atomic_fetch_sub(&m->open, 1);
		close(fd);
		free(c);
		return;
	}
	m->conns[m->n_conns++] = c;
}

/* Joins the connection threads. One still running after JOIN_MS is a
 * fault, and its memory is left to it. */
static void mock_join_conns(struct mock *m)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += JOIN_MS / 1000;
	for (int i = 0; i < m->n_conns; i++) {
		if (pthread_timedjoin_np(m->conns[i]->thread, NULL, &until) != 0) {
			atomic_fetch_add(&m->faults, 1);
			atomic_fetch_add(&m->stuck, 1);
			continue;
		}
		free(m->conns[i]);
	}
}

static void *mock_accept_main(void *arg)
{
	struct mock *m = arg;

	while (!atomic_load(&m->stop)) {
		struct pollfd p = {m->listen_fd, POLLIN, 0};
		int fd;

		if (poll(&p, 1, MOCK_POLL_MS) != 1)
			continue;
		fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			mock_start_conn(m, fd);
	}
	mock_join_conns(m);
	return NULL;
}

/* Starts a mock server on a free port of 127.0.0.1. opts is copied; the
 * reply it points to must outlive the mock. */
static struct mock *mock_start(const struct mock_opts *opts)
{
	struct mock *m = calloc(1, sizeof(*m));
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof(sa);
	int one = 1;

	assert_non_null(m);
	m->opts = *opts;
	m->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(m->listen_fd >= 0);
	assert_int_equal(setsockopt(m->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	/* Accepted sockets inherit the receive buffer of the listening one. */
	if (opts->rcvbuf > 0)
		assert_int_equal(setsockopt(m->listen_fd, SOL_SOCKET, SO_RCVBUF, &opts->rcvbuf,
					    sizeof(opts->rcvbuf)),
				 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(m->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(m->listen_fd, 256), 0);
	assert_int_equal(getsockname(m->listen_fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(m->address, sizeof(m->address), "127.0.0.1:%d", ntohs(sa.sin_port));
	assert_int_equal(pthread_create(&m->thread, NULL, mock_accept_main, m), 0);
	return m;
}

/* Stops m and its threads, which see the stop within MOCK_POLL_MS of their
 * next wait. Returns -1 when a thread was still running after JOIN_MS (the
 * mock is then not freed, because that thread still uses it) or when the
 * mock had a fault of its own. */
static int mock_stop(struct mock *m)
{
	struct timespec until;
	int faults;

	atomic_store(&m->stop, true);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += JOIN_MS / 1000;
	if (pthread_timedjoin_np(m->thread, NULL, &until) != 0) {
		print_error("the mock server %s did not stop within %d ms\n", m->address, JOIN_MS);
		return -1;
	}
	faults = atomic_load(&m->faults);
	if (faults != 0)
		print_error("the mock server %s had %d faults of its own: a thread that did not "
			    "start or stop, or no memory\n",
			    m->address, faults);
	close(m->listen_fd);
	if (atomic_load(&m->stuck) == 0)
		free(m);
	return faults == 0 ? 0 : -1;
}

static struct mock *mock_serving(const char *reply, size_t reply_len)
{
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = reply;
	o.reply_len = reply_len;
	return mock_start(&o);
}

/* Waits until *v reaches want. Returns false after WAIT_MS. */
static bool wait_count(atomic_int *v, int want)
{
	for (int waited = 0; waited < WAIT_MS && atomic_load(v) < want; waited++)
		usleep(1000);
	return atomic_load(v) >= want;
}

/* ---- certificates ---- */

static char *tmp;
static struct cmicro_cert *test_ca;
static char server_pem[512], server_key[512];   /* issued by test_ca */
static char foreign_ca[512];                    /* a CA made by the openssl CLI */
static char foreign_pem[512], foreign_key[512]; /* issued by foreign_ca */

static void make_cmicro_server_cert(void)
{
	const char *hosts[] = {"127.0.0.1"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *leaf = NULL;

	cmicro_cert_opts_init(&opts);
	opts.common_name = "http client test CA";
	TK_OK(cmicro_cert_ca_new(&opts, &test_ca));
	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 1;
	TK_OK(cmicro_cert_issue(test_ca, &opts, &leaf));
	TK_OK(cmicro_cert_save(leaf, tk_path(server_pem, sizeof(server_pem), tmp, "server.pem"),
			       tk_path(server_key, sizeof(server_key), tmp, "server.key"),
			       CMICRO_CERT_SAVE_CHAIN));
	cmicro_cert_free(leaf);
}

static void make_openssl_server_cert(void)
{
	char ext[512], *out = NULL;
	int rc;

	tk_write(tk_path(ext, sizeof(ext), tmp, "leaf.ext"),
		 "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
		 "extendedKeyUsage=serverAuth\n");
	rc = tk_run(&out, 60,
		    "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		    "-keyout foreign-ca.key -out foreign-ca.pem -days 365 -subj /CN=foreign-ca "
		    "-addext basicConstraints=critical,CA:TRUE "
		    "-addext keyUsage=critical,keyCertSign,cRLSign && "
		    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
		    "-keyout foreign.key -out foreign.csr -subj /CN=foreign && "
		    "openssl x509 -req -in foreign.csr -CA foreign-ca.pem -CAkey foreign-ca.key "
		    "-CAcreateserial -days 365 -extfile leaf.ext -out foreign.pem",
		    tmp);
	if (rc != 0)
		fail_msg("openssl could not make the foreign certificates: %s", out ? out : "");
	free(out);
	tk_path(foreign_ca, sizeof(foreign_ca), tmp, "foreign-ca.pem");
	tk_path(foreign_pem, sizeof(foreign_pem), tmp, "foreign.pem");
	tk_path(foreign_key, sizeof(foreign_key), tmp, "foreign.key");
}

static int group_setup(void **state)
{
	(void)state;
	tmp = tk_tmpdir();
	make_cmicro_server_cert();
	make_openssl_server_cert();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cmicro_cert_free(test_ca);
	tk_tmpdir_remove(tmp);
	return 0;
}

/* Creates an OpenSSL server context from a certificate chain file and a key file. */
static SSL_CTX *server_tls(const char *cert_file, const char *key_file)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert_file), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM), 1);
	return ctx;
}

/* Creates a verifying client configuration that trusts only ca, or only ca_file. */
static struct cmicro_tls_config *client_tls(const struct cmicro_cert *ca, const char *ca_file)
{
	struct cmicro_tls_config *cfg = NULL;

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_set_system_roots(cfg, false));
	if (ca != NULL)
		TK_OK(cmicro_tls_config_add_ca_cert(cfg, ca));
	else
		TK_OK(cmicro_tls_config_add_ca_file(cfg, ca_file));
	return cfg;
}

/* ---- client ---- */

struct fixture {
	struct event_base *base;
	struct cmi_http_client *cli;
	struct cmicro_tls_context *tls;
	int done, want;
	int ok;                        /* results with no error and status 200 */
	struct cmi_http_result result; /* the last one, without its body */
	char first_failure[512];       /* the first result that is not 200 */
	char *body;                    /* a copy of the last body of a GET */
	size_t body_len;
	bool no_spread;                /* requests set cmi_http_post.no_spread */
};

static void on_done(void *arg, const struct cmi_http_result *res)
{
	struct fixture *f = arg;

	f->done++;
	f->result = *res;
	f->result.body = NULL;
	if (res->err == 0 && res->status == 200)
		f->ok++;
	else if (f->first_failure[0] == '\0')
		cmi_fmt(f->first_failure, sizeof(f->first_failure), "%s, status %d: %s",
			cmicro_err_name(res->err), res->status, res->message);
	if (res->body != NULL) {
		free(f->body);
		f->body = malloc(res->body_len + 1);
		assert_non_null(f->body);
		memcpy(f->body, res->body, res->body_len);
		f->body_len = res->body_len;
	}
	if (f->done >= f->want)
		event_base_loopbreak(f->base);
}

/* Creates a client on a new event_base. It takes tls, which is NULL for
 * plain HTTP. */
static struct fixture *fixture_new(struct cmicro_tls_config *tls)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->base = cmi_http_base_new();
	assert_non_null(f->base);
	if (tls != NULL) {
		TK_OK(cmicro_tls_context_new(tls, CMICRO_TLS_CLIENT, NULL, &f->tls));
		cmicro_tls_config_free(tls);
	}
	TK_OK(cmi_http_client_new(f->base, f->tls, &f->cli));
	return f;
}

static void fixture_free(struct fixture *f)
{
	cmi_http_client_free(f->cli);
	cmicro_tls_context_free(f->tls);
	event_base_free(f->base);
	free(f->body);
	free(f);
}

/* Options of a mock that runs script and sends reply to each request. */
static struct mock_opts serve_opts(mock_script_fn script, const char *reply, size_t reply_len)
{
	struct mock_opts o = {0};

	o.script = script;
	o.reply = reply;
	o.reply_len = reply_len;
	return o;
}

/* A POST of "{}" to the mock at address, or a GET. */
static struct cmi_http_post mock_post(const char *address, bool get, int timeout_ms)
{
	struct cmi_http_post p = {0};

	p.address = address;
	p.path = "/?id=mock";
	p.peer_label = "mock";
	p.get = get;
	if (!get) {
		p.body = "{}";
		p.body_len = 2;
	}
	p.timeout_ms = timeout_ms;
	return p;
}

/* Starts a POST of body, or a GET, to address, over HTTPS when the client
 * has TLS. */
static void request_start(struct fixture *f, const char *address, bool get, const char *body,
			  size_t body_len, int timeout_ms)
{
	struct cmi_http_post p = {0};

	p.https = f->tls != NULL;
	p.address = address;
	p.path = "/?id=mock";
	p.peer_label = "mock";
	p.body = body;
	p.body_len = body_len;
	p.timeout_ms = timeout_ms;
	p.get = get;
	p.no_spread = f->no_spread;
	TK_OK(cmi_http_client_post(f->cli, &p, on_done, f));
}

/* Runs the loop until want results in all have arrived, for GUARD_S at most. */
static void run_until(struct fixture *f, int want)
{
	struct timeval guard = {GUARD_S, 0};

	f->want = want;
	if (f->done < want) {
		event_base_loopexit(f->base, &guard);
		event_base_dispatch(f->base);
	}
	if (f->done < want)
		fail_msg("%d of %d requests completed within %d s", f->done, want, GUARD_S);
}

/* Sends one request to address and waits for its result. */
static void request(struct fixture *f, const char *address, bool get, int timeout_ms)
{
	request_start(f, address, get, get ? NULL : "{\"n\":1}", get ? 0 : 7, timeout_ms);
	run_until(f, f->done + 1);
}

/* Asserts the last result's error code and status, printing its message. */
static void expect_result(const struct fixture *f, int err, int status)
{
	if (f->result.err != err)
		fail_msg("error %s, expected %s: %s", cmicro_err_name(f->result.err),
			 cmicro_err_name(err), f->result.message);
	if (f->result.status != status)
		fail_msg("status %d, expected %d: %s", f->result.status, status, f->result.message);
}

/* Counts the client's connections that are not closed (white-box). */
static int client_live_conns(const struct cmi_http_client *cli)
{
	int n = 0;

	for (const struct cli_conn *c = cli->conns; c != NULL; c = c->next)
		n += c->state != CLI_DEAD;
	return n;
}

/* Runs the loop without blocking until the client has no open connection,
 * for WAIT_MS at most. Returns whether that happened. */
static bool run_until_no_conns(struct fixture *f)
{
	for (int waited = 0; waited < WAIT_MS && client_live_conns(f->cli) > 0; waited++) {
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	return client_live_conns(f->cli) == 0;
}

/* Builds "<head>\r\n\r\n" followed by body_len letters into a new buffer. */
static char *make_reply(const char *head, size_t body_len, size_t *len)
{
	size_t head_len = strlen(head);
	char *reply = malloc(head_len + 4 + body_len);

	assert_non_null(reply);
	memcpy(reply, head, head_len);
	memcpy(reply + head_len, "\r\n\r\n", 4);
	for (size_t i = 0; i < body_len; i++)
		reply[head_len + 4 + i] = (char)('a' + i % 26);
	*len = head_len + 4 + body_len;
	return reply;
}

/* ---- per-test state ---- */

/* The objects one test started. The teardown frees them also after a
 * failed assert has left the test early. It frees the client first, so
 * that the mock's threads see their connections end, then the mock. */
struct env {
	struct fixture *f;
	struct mock *m;
	SSL_CTX *server_tls;
	char *buf; /* a reply or a request body built by the test */
};

/* Starts the mock of o and a client over plain HTTP. */
static void start_plain(struct env *e, const struct mock_opts *o)
{
	e->m = mock_start(o);
	e->f = fixture_new(NULL);
}

static int env_setup(void **state)
{
	*state = calloc(1, sizeof(struct env));
	return *state != NULL ? 0 : -1;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	int rc = 0;

	if (e->f != NULL)
		fixture_free(e->f);
	if (e->m != NULL)
		rc = mock_stop(e->m);
	SSL_CTX_free(e->server_tls);
	free(e->buf);
	free(e);
	return rc;
}

/* ---- framing that works ---- */

static void test_http_client_byte_split_response_reuses_connection(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	o.write_size = 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_string_equal(e->f->result.message, "");
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->requests), 2);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

static void test_http_client_chunked_trailer_reuses_connection(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				    "5;note=\"first\"\r\nhello\r\n"
				    "6\r\n world\r\n"
				    "0\r\nX-Checksum: 42\r\n\r\n";
	struct env *e = *state;

	e->m = mock_serving(reply, sizeof(reply) - 1);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->requests), 2);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

/* The mock keeps the connection open after reply, so only the client's
 * reading of the reply can make it open a second one. */
static void check_reply_ends_connection(struct env *e, const char *reply)
{
	e->m = mock_serving(reply, strlen(reply));
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->requests), 2);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_connection_close_opens_new(void **state)
{
	check_reply_ends_connection(*state, "HTTP/1.1 200 OK\r\nConnection: close\r\n"
					    "Content-Length: 2\r\n\r\nok");
}

static void test_http_client_http10_response_opens_new(void **state)
{
	check_reply_ends_connection(*state, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
}

static void test_http_client_trailing_garbage_opens_new(void **state)
{
	/* The extra bytes look like the start of a next response, which no
	 * request asked for. */
	check_reply_ends_connection(*state, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
					    "HTTP/1.1 200 OK\r\n");
}

static void test_http_client_body_until_close_ok(void **state)
{
	static const char text[] = "the body ends with the connection";
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
				    "the body ends with the connection";
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	o.close_after = true;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	request(e->f, e->m->address, true, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_non_null(e->f->body);
	assert_int_equal(e->f->body_len, sizeof(text) - 1);
	assert_memory_equal(e->f->body, text, sizeof(text) - 1);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_interim_100_skipped(void **state)
{
	static const char reply[] = "HTTP/1.1 100 Continue\r\n\r\n"
				    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct env *e = *state;

	e->m = mock_serving(reply, sizeof(reply) - 1);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

/* ---- invalid responses ---- */

/* Sends two requests to a mock that responds with reply. Each fails as an
 * invalid response naming cause, and the second goes out on a new
 * connection, because a connection whose response was misread is not
 * reused. */
static void check_invalid_reply(struct env *e, const char *reply, size_t reply_len,
				const char *cause)
{
	e->m = mock_serving(reply, reply_len);
	e->f = fixture_new(NULL);

	for (int i = 0; i < 2; i++) {
		request(e->f, e->m->address, false, TIMEOUT_MS);
		expect_result(e->f, CMICRO_EPROTO, 0);
		TK_CONTAINS(e->f->result.message, "invalid HTTP response");
		TK_CONTAINS(e->f->result.message, cause);
		TK_CONTAINS(e->f->result.message, e->m->address);
	}
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_garbage_status_line_eproto(void **state)
{
	static const char reply[] = "hello\r\n\r\n";

	check_invalid_reply(*state, reply, sizeof(reply) - 1, "status line");
}

static void test_http_client_conflicting_lengths_eproto(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
				    "Content-Length: 3\r\n\r\nok";

	check_invalid_reply(*state, reply, sizeof(reply) - 1, "two Content-Length fields disagree");
}

static void test_http_client_gzip_coding_eproto(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok";

	check_invalid_reply(*state, reply, sizeof(reply) - 1, "Transfer-Encoding");
}

static void test_http_client_folded_header_eproto(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nX-Note: one\r\n two\r\n"
				    "Content-Length: 0\r\n\r\n";

	check_invalid_reply(*state, reply, sizeof(reply) - 1, "folded");
}

static void test_http_client_endless_head_eproto(void **state)
{
	static const char line[] = "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	const size_t line_len = sizeof(line) - 1;
	struct env *e = *state;
	size_t len;

	e->buf = malloc(32 + 400 * line_len);
	assert_non_null(e->buf);
	len = (size_t)snprintf(e->buf, 32, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 400; i++, len += line_len)
		memcpy(e->buf + len, line, line_len);
	assert_true(len > CMI_HTTP_RESP_HEAD_MAX);
	check_invalid_reply(e, e->buf, len, "longer than 16384 bytes");
}

static void test_http_client_bad_chunk_size_eproto(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				    "zz\r\nok\r\n0\r\n\r\n";

	check_invalid_reply(*state, reply, sizeof(reply) - 1, "chunk size is not a hex number");
}

/* ---- connections that end or stall ---- */

static void test_http_client_close_without_response_econnect(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_close_after_request;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, CMICRO_ECONNECT, 0);
	TK_CONTAINS(e->f->result.message, "closed before a response");
	assert_int_equal(atomic_load(&e->m->requests), 1);
}

static void test_http_client_close_mid_body_eproto(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	o.close_after = true;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, CMICRO_EPROTO, 0);
	TK_CONTAINS(e->f->result.message, "in the middle of the response");
	TK_CONTAINS(e->f->result.message, e->m->address);
}

static void test_http_client_silent_server_times_out(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_silent;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, 300);
	expect_result(e->f, CMICRO_ETIMEDOUT, 0);
	TK_CONTAINS(e->f->result.message, "no response within the delivery timeout");
	assert_int_equal(atomic_load(&e->m->requests), 1);
}

static void test_http_client_stalled_handshake_times_out(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_ignore;
	e->m = mock_start(&o);
	e->f = fixture_new(client_tls(test_ca, NULL));

	request(e->f, e->m->address, false, 300);
	expect_result(e->f, CMICRO_ETIMEDOUT, 0);
	TK_CONTAINS(e->f->result.message, "did not complete the connection");
	TK_CONTAINS(e->f->result.message, e->m->address);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

static struct mock *mock_idle_closing(void)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct mock_opts o = {0};

	o.script = script_idle_close;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	return mock_start(&o);
}

static void test_http_client_idle_close_seen_opens_new(void **state)
{
	struct env *e = *state;

	e->m = mock_idle_closing();
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	atomic_store(&e->m->release, true);
	assert_true(wait_count(&e->m->closed, 1));
	/* The client's loop runs while the server closes, as it does in a
	 * broker, so the client sees the end of the idle connection. */
	assert_true(run_until_no_conns(e->f));

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_stale_idle_connection_retried(void **state)
{
	struct env *e = *state;

	e->m = mock_idle_closing();
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	atomic_store(&e->m->release, true);
	assert_true(wait_count(&e->m->closed, 1));

	/* The request goes out before the loop has read the end of the idle
	 * connection. The server closed it before any byte of this request,
	 * so the request can be sent again on a new connection. */
	request(e->f, e->m->address, false, TIMEOUT_MS);
	if (e->f->result.err != 0)
		fail_msg("a request on a kept-alive connection that the server had already closed "
			 "failed instead of going out on a new connection: %s: %s",
			 cmicro_err_name(e->f->result.err), e->f->result.message);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_early_413_reported(void **state)
{
	static const char reply[] = "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n"
				    "Content-Length: 0\r\n\r\n";
	const size_t body_len = 1024 * 1024;
	struct env *e = *state;
	struct mock_opts o = {0};

	e->buf = malloc(body_len);
	assert_non_null(e->buf);
	memset(e->buf, 'x', body_len);
	o.script = script_early_reply;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	/* A small receive buffer at the mock slows the client's writing, so the
	 * response can arrive before the whole body is sent. */
	o.rcvbuf = 4096;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request_start(e->f, e->m->address, false, e->buf, body_len, TIMEOUT_MS);
	run_until(e->f, 1);
	expect_result(e->f, 0, 413);
	TK_CONTAINS(e->f->result.message, "HTTP 413");
	assert_int_equal(atomic_load(&e->m->requests), 1);
}

/* ---- GET bodies ---- */

static void test_http_client_get_body_kept(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
	struct env *e = *state;

	e->m = mock_serving(reply, sizeof(reply) - 1);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, true, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_non_null(e->f->body);
	assert_int_equal(e->f->body_len, 11);
	assert_memory_equal(e->f->body, "hello world", 11);
	assert_int_equal(atomic_load(&e->m->get_requests), 1);
}

static void test_http_client_get_body_at_limit_kept(void **state)
{
	struct env *e = *state;
	size_t len = 0;

	e->buf = make_reply("HTTP/1.1 200 OK\r\nContent-Length: 4194304", 4194304, &len);
	e->m = mock_serving(e->buf, len);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, true, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_non_null(e->f->body);
	assert_int_equal(e->f->body_len, CMI_HTTP_GET_BODY_MAX);
	assert_memory_equal(e->f->body, e->buf + len - 4194304, 4194304);
}

static void test_http_client_get_body_over_limit_eproto(void **state)
{
	struct env *e = *state;
	size_t len = 0;

	e->buf = make_reply("HTTP/1.1 200 OK\r\nContent-Length: 4194305", 4194305, &len);
	e->m = mock_serving(e->buf, len);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, true, TIMEOUT_MS);
	expect_result(e->f, CMICRO_EPROTO, 0);
	TK_CONTAINS(e->f->result.message, "invalid HTTP response");
	TK_CONTAINS(e->f->result.message, "body longer than 4194304 bytes");
	assert_null(e->f->body);
}

/* ---- connection cap ---- */

/* A burst larger than the node's connections can carry waits for room
 * instead of opening more. */
static void test_http_client_burst_capped_at_64(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	enum { N = CLI_CONNS_PER_NODE * CLI_PIPELINE_DEPTH + 6 };
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	o.hold_ms = 100;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	for (int i = 0; i < N; i++)
		request_start(e->f, e->m->address, false, "{}", 2, 20000);
	run_until(e->f, N);
	if (e->f->ok != N)
		fail_msg("%d of %d requests got 200; first failure: %s", e->f->ok, N,
			 e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->requests), N);
	assert_true(atomic_load(&e->m->max_open) <= CLI_CONNS_PER_NODE);
	assert_int_equal(atomic_load(&e->m->accepted), CLI_CONNS_PER_NODE);
}

/* ---- connect and TLS ---- */

static void test_http_client_refused_port_econnect(void **state)
{
	struct env *e = *state;
	char address[32];

	e->f = fixture_new(NULL);
	snprintf(address, sizeof(address), "127.0.0.1:%d", tk_free_port());

	request(e->f, address, false, TIMEOUT_MS);
	expect_result(e->f, CMICRO_ECONNECT, 0);
	TK_CONTAINS(e->f->result.message, "connection refused");
	TK_CONTAINS(e->f->result.message, address);
}

/* Serves a chunked reply over TLS with the given server certificate to a
 * client that trusts ca or ca_file, and checks two requests on one
 * connection. */
static void check_tls_keepalive(struct env *e, const char *cert_file, const char *key_file,
				const struct cmicro_cert *ca, const char *ca_file)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
				    "5\r\nhello\r\n0\r\n\r\n";
	struct mock_opts o = {0};

	e->server_tls = server_tls(cert_file, key_file);
	o.tls = e->server_tls;
	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	/* Writes of 7 bytes become TLS records that split the framing. */
	o.write_size = 7;
	e->m = mock_start(&o);
	e->f = fixture_new(client_tls(ca, ca_file));

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->requests), 2);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

static void test_http_client_tls_cmicro_cert_reuses_connection(void **state)
{
	check_tls_keepalive(*state, server_pem, server_key, test_ca, NULL);
}

static void test_http_client_tls_openssl_cert_reuses_connection(void **state)
{
	check_tls_keepalive(*state, foreign_pem, foreign_key, NULL, foreign_ca);
}

static void test_http_client_tls_foreign_ca_everify(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	struct env *e = *state;
	struct mock_opts o = {0};

	e->server_tls = server_tls(foreign_pem, foreign_key);
	o.tls = e->server_tls;
	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(client_tls(test_ca, NULL));

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, CMICRO_EVERIFY, 0);
	assert_int_equal(e->f->result.tls_reason, CMICRO_TLS_REASON_UNKNOWN_AUTHORITY);
	TK_CONTAINS(e->f->result.message, "TLS handshake failed");
	TK_CONTAINS(e->f->result.message, e->m->address);
	assert_int_equal(atomic_load(&e->m->requests), 0);
}

/* ---- scripts of the connection-end tests ---- */

static const char ok_reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* Waits until the test sets release. Returns false at stop or after MOCK_IO_MS. */
static bool mock_wait_release(struct mock *m)
{
	for (int waited = 0; waited < MOCK_IO_MS; waited++) {
		if (atomic_load(&m->release))
			return true;
		if (atomic_load(&m->stop))
			return false;
		usleep(1000);
	}
	return false;
}

/* On the first connection, responds to one request and, once released,
 * ends its sending side with a bare TCP FIN (no TLS close_notify), as the
 * kernel does for a server process that was killed. It keeps reading, so
 * the next request is taken without a reset. Later connections are served. */
static void script_fin_after_first(struct mock *m, struct mock_conn *c)
{
	if (c->index > 0) {
		script_serve(m, c);
		return;
	}
	if (mock_read_request(c, false) != 0 || mock_send_reply(m, c) != 0 ||
	    !mock_wait_release(m))
		return;
	(void)shutdown(c->fd, SHUT_WR);
	atomic_fetch_add(&m->half_closed, 1);
	mock_drain(c);
}

/* As script_fin_after_first, but the TLS connection ends with a
 * close_notify alert before the FIN, as an orderly TLS server does. */
static void script_notify_after_first(struct mock *m, struct mock_conn *c)
{
	if (c->index > 0) {
		script_serve(m, c);
		return;
	}
	if (mock_read_request(c, false) != 0 || mock_send_reply(m, c) != 0 ||
	    !mock_wait_release(m))
		return;
	(void)SSL_shutdown(c->ssl);
	(void)shutdown(c->fd, SHUT_WR);
	atomic_fetch_add(&m->half_closed, 1);
	mock_drain(c);
}

/* The first connection responds to one request, then reads the next and
 * closes without a response. Every later connection reads one request and
 * closes without a response. */
static void script_drop_second(struct mock *m, struct mock_conn *c)
{
	if (c->index == 0 && (mock_read_request(c, false) != 0 || mock_send_reply(m, c) != 0))
		return;
	(void)mock_read_request(c, false);
}

/* The first CLI_CONNS_PER_NODE connections never respond; later ones are served. */
static void script_silent_then_serve(struct mock *m, struct mock_conn *c)
{
	if (c->index < CLI_CONNS_PER_NODE)
		script_silent(m, c);
	else
		script_serve(m, c);
}

/* Reads one request, then ends the connection with a bare TCP FIN (no TLS
 * close_notify) and no response. */
static void script_fin_after_request(struct mock *m, struct mock_conn *c)
{
	(void)m;
	if (mock_read_request(c, false) != 0)
		return;
	(void)shutdown(c->fd, SHUT_WR);
	mock_drain(c);
}

/* The first connection never responds; later ones are served. */
static void script_first_silent(struct mock *m, struct mock_conn *c)
{
	if (c->index == 0)
		script_silent(m, c);
	else
		script_serve(m, c);
}

/* Counts every connection the client still holds, dead ones included. */
static int client_all_conns(const struct cmi_http_client *cli)
{
	int n = 0;

	for (const struct cli_conn *c = cli->conns; c != NULL; c = c->next)
		n++;
	return n;
}

/* ---- a kept-alive connection the server had ended ---- */

/* Serves one request on a kept-alive connection, lets the mock end its
 * sending side, and sends a second request before the client's loop has
 * read that end. The second request must go out again on a new connection. */
static void check_stale_half_closed(struct env *e, mock_script_fn script, bool tls)
{
	struct mock_opts o = {0};

	if (tls) {
		e->server_tls = server_tls(server_pem, server_key);
		o.tls = e->server_tls;
	}
	o.script = script;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(tls ? client_tls(test_ca, NULL) : NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	atomic_store(&e->m->release, true);
	assert_true(wait_count(&e->m->half_closed, 1));
	/* The FIN reaches the client's socket before its loop runs again. */
	usleep(50 * 1000);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	if (e->f->result.err != 0)
		fail_msg("a request on a kept-alive connection that the server had ended was not "
			 "sent again: %s: %s",
			 cmicro_err_name(e->f->result.err), e->f->result.message);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_plain_stale_fin_resent(void **state)
{
	check_stale_half_closed(*state, script_fin_after_first, false);
}

static void test_http_client_tls_stale_close_notify_resent(void **state)
{
	check_stale_half_closed(*state, script_notify_after_first, true);
}

/* OpenSSL 3 reports a TCP FIN without close_notify as an error on the
 * queue (unexpected eof while reading), not as SSL_ERROR_SYSCALL. */
static void test_http_client_tls_stale_fin_without_notify_resent(void **state)
{
	check_stale_half_closed(*state, script_fin_after_first, true);
}

/* A TLS node that ends a new connection without a response, as a killed
 * process does, fails the request as a closed connection, not as a failed
 * handshake: the handshake had completed. */
static void test_http_client_tls_fin_without_response_econnect(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	e->server_tls = server_tls(server_pem, server_key);
	o.tls = e->server_tls;
	o.script = script_fin_after_request;
	e->m = mock_start(&o);
	e->f = fixture_new(client_tls(test_ca, NULL));

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, CMICRO_ECONNECT, 0);
	TK_CONTAINS(e->f->result.message, "closed before a response");
	assert_int_equal(atomic_load(&e->m->requests), 1);
}

/* A second close without a response is not followed by a third send, and
 * the failure names the node. */
static void test_http_client_stale_resent_once_only(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_drop_second;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, CMICRO_ECONNECT, 0);
	assert_int_equal(atomic_load(&e->m->requests), 3);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
	TK_CONTAINS(e->f->result.message, "closed");
	TK_CONTAINS(e->f->result.message, e->m->address);
}

/* ---- deadlines and the per-node cap ---- */

/* A connection whose request timed out is closed and freed, and the next
 * request opens a new one instead of reading the late response. */
static void test_http_client_timeout_frees_connection(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_first_silent;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	request(e->f, e->m->address, false, 300);
	expect_result(e->f, CMICRO_ETIMEDOUT, 0);
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
	assert_int_equal(client_live_conns(e->f->cli), 1);
	assert_int_equal(client_all_conns(e->f->cli), 1);
}

/* A request queued behind a node's full cap of silent connections starts
 * once their deadlines free the slots. */
static void test_http_client_cap_freed_by_timeouts(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_silent_then_serve;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);

	for (int i = 0; i < CLI_CONNS_PER_NODE * CLI_PIPELINE_DEPTH; i++)
		request_start(e->f, e->m->address, false, "{}", 2, 300);
	request_start(e->f, e->m->address, false, "{}", 2, TIMEOUT_MS);
	run_until(e->f, CLI_CONNS_PER_NODE * CLI_PIPELINE_DEPTH + 1);
	/* The queued request may finish before the last timeouts are
	 * reported, so it is found by its count, not as the last result. */
	assert_int_equal(e->f->done, CLI_CONNS_PER_NODE * CLI_PIPELINE_DEPTH + 1);
	if (e->f->ok != 1)
		fail_msg("%d requests got 200, expected the queued one; first failure: %s",
			 e->f->ok, e->f->first_failure);
	TK_CONTAINS(e->f->first_failure, "CMICRO_ETIMEDOUT");
	assert_int_equal(atomic_load(&e->m->accepted), CLI_CONNS_PER_NODE + 1);
}

/* A publisher that starts a new request from each result, as the broker's
 * publish loop does, and one request that waited for a free slot. */
struct sustained {
	struct fixture *f;
	const char *address;
	int posted, post_max;
	int completed;
	int waiting_index; /* completions before the waiting one's, or -1 */
	int waiting_status;
};

static void post_sustained(struct sustained *s);

static void on_sustained_done(void *arg, const struct cmi_http_result *res)
{
	struct sustained *s = arg;

	s->completed++;
	if (res->err != 0 || res->status != 200)
		fail_msg("a sustained request failed: %s, status %d: %s", cmicro_err_name(res->err),
			 res->status, res->message);
	if (s->posted < s->post_max)
		post_sustained(s);
	on_done(s->f, res);
}

static void on_waiting_done(void *arg, const struct cmi_http_result *res)
{
	struct sustained *s = arg;

	s->waiting_index = s->completed++;
	s->waiting_status = res->err == 0 ? res->status : -res->err;
	on_done(s->f, res);
}

static void post_sustained(struct sustained *s)
{
	struct cmi_http_post p = mock_post(s->address, false, TIMEOUT_MS * 4);

	s->posted++;
	TK_OK(cmi_http_client_post(s->f->cli, &p, on_sustained_done, s));
}

/* A request waiting for a slot gets the first one a response frees, before
 * the requests that the result callbacks start meanwhile. One connection
 * and a mock that pauses before each response make the responses free
 * their slots one at a time. The waiting request is the only GET, so the
 * mock records when it arrives. */
static void test_http_client_waiting_call_not_overtaken(void **state)
{
	struct env *e = *state;
	struct mock_opts o = serve_opts(script_serve, ok_reply, sizeof(ok_reply) - 1);
	struct sustained s = {0};
	struct cmi_http_post p;
	int arrived;

	o.hold_ms = 1;
	start_plain(e, &o);
	cmi_http_client_set_conns(e->f->cli, 1, 1);
	s.f = e->f;
	s.address = e->m->address;
	s.post_max = 8 * CLI_PIPELINE_DEPTH;
	s.waiting_index = -1;

	for (int i = 0; i < CLI_PIPELINE_DEPTH; i++)
		post_sustained(&s);
	p = mock_post(e->m->address, true, TIMEOUT_MS * 4);
	TK_OK(cmi_http_client_post(e->f->cli, &p, on_waiting_done, &s));
	run_until(e->f, s.post_max + 1);

	assert_int_equal(s.waiting_status, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
	arrived = atomic_load(&e->m->first_get_at);
	/* Overtaken, it would arrive only once the callbacks stop starting
	 * requests, as the last one. */
	if (arrived > 2 * CLI_PIPELINE_DEPTH)
		fail_msg("the waiting request arrived as request %d of %d; the requests started "
			 "by callbacks took the slots it waited for",
			 arrived, s.post_max + 1);
}

/* ---- pipelining ---- */

/* Most tests here put a whole burst on one connection (spread 1), so that
 * they reach the pipelining of that connection. */

/* The first connection responds to one request and closes; later ones serve. */
static void script_first_serves_one(struct mock *m, struct mock_conn *c)
{
	if (c->index > 0) {
		script_serve(m, c);
		return;
	}
	if (mock_read_request(c, false) == 0)
		(void)mock_send_reply(m, c);
}

/* Starts n requests in one pass of the loop. */
static void burst(struct env *e, int n, int timeout_ms)
{
	int want = e->f->done + n;

	for (int i = 0; i < n; i++)
		request_start(e->f, e->m->address, false, "{\"n\":1}", 7, timeout_ms);
	run_until(e->f, want);
}

static void check_pipelined_one_write(struct env *e, bool tls)
{
	struct mock_opts o = {0};

	if (tls)
		e->server_tls = server_tls(server_pem, server_key);
	o.tls = e->server_tls;
	o.script = script_serve;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(tls ? client_tls(test_ca, NULL) : NULL);
	cmi_http_client_set_conns(e->f->cli, 1, CLI_CONNS_PER_NODE);

	burst(e, CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	if (e->f->ok != CLI_PIPELINE_DEPTH)
		fail_msg("%d of %d pipelined requests got 200; first failure: %s", e->f->ok,
			 CLI_PIPELINE_DEPTH, e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
	assert_int_equal(atomic_load(&e->m->requests), CLI_PIPELINE_DEPTH);
	/* They left in one write, so the mock read them all at once. */
	assert_int_equal(atomic_load(&e->m->conns[0]->reads), 1);
	/* The connection is kept for the next batch. */
	burst(e, 2 * CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	assert_int_equal(e->f->ok, 3 * CLI_PIPELINE_DEPTH);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
}

static void test_http_client_pipelined_plain_one_write(void **state)
{
	check_pipelined_one_write(*state, false);
}

static void test_http_client_pipelined_tls_one_write(void **state)
{
	check_pipelined_one_write(*state, true);
}

/* A burst of 8 goes out over 4 connections of 2, each pair in one write. */
static void test_http_client_burst_spread_over_conns(void **state)
{
	struct env *e = *state;
	struct mock_opts o = serve_opts(script_serve, ok_reply, sizeof(ok_reply) - 1);

	start_plain(e, &o);

	burst(e, 2 * CLI_SPREAD_CONNS, TIMEOUT_MS);
	if (e->f->ok != 2 * CLI_SPREAD_CONNS)
		fail_msg("%d of %d requests got 200; first failure: %s", e->f->ok,
			 2 * CLI_SPREAD_CONNS, e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->accepted), CLI_SPREAD_CONNS);
	for (int i = 0; i < CLI_SPREAD_CONNS; i++)
		assert_int_equal(atomic_load(&e->m->conns[i]->reads), 1);
	/* The next burst takes the same connections. */
	burst(e, 2 * CLI_SPREAD_CONNS, TIMEOUT_MS);
	assert_int_equal(e->f->ok, 4 * CLI_SPREAD_CONNS);
	assert_int_equal(atomic_load(&e->m->accepted), CLI_SPREAD_CONNS);
}

/* Requests to a node with handler threads (no_spread) are not spread: a burst
 * fills one connection to the pipeline depth, in one write, before the
 * next opens. */
static void test_http_client_no_spread_fills_one_conn(void **state)
{
	struct env *e = *state;
	struct mock_opts o = serve_opts(script_serve, ok_reply, sizeof(ok_reply) - 1);

	start_plain(e, &o);
	e->f->no_spread = true;

	burst(e, CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	if (e->f->ok != CLI_PIPELINE_DEPTH)
		fail_msg("%d of %d requests got 200; first failure: %s", e->f->ok,
			 CLI_PIPELINE_DEPTH, e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
	assert_int_equal(atomic_load(&e->m->conns[0]->reads), 1);
	/* Twice the depth takes a second connection, not the spread's four. */
	burst(e, 2 * CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	assert_int_equal(e->f->ok, 3 * CLI_PIPELINE_DEPTH);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
	/* Without the flag the same client spreads again. */
	e->f->no_spread = false;
	burst(e, 2 * CLI_SPREAD_CONNS, TIMEOUT_MS);
	assert_int_equal(e->f->ok, 3 * CLI_PIPELINE_DEPTH + 2 * CLI_SPREAD_CONNS);
	assert_int_equal(atomic_load(&e->m->accepted), CLI_SPREAD_CONNS);
}

/* Beyond the spread, connections fill up to the pipeline depth before
 * more open: 64 requests take 8 connections. */
static void test_http_client_burst_beyond_spread_deepens(void **state)
{
	struct env *e = *state;
	struct mock_opts o = serve_opts(script_serve, ok_reply, sizeof(ok_reply) - 1);
	int n = 8 * CLI_PIPELINE_DEPTH;

	start_plain(e, &o);

	burst(e, n, TIMEOUT_MS);
	if (e->f->ok != n)
		fail_msg("%d of %d requests got 200; first failure: %s", e->f->ok, n,
			 e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->accepted), n / CLI_PIPELINE_DEPTH);
	assert_int_equal(atomic_load(&e->m->requests), n);
}

/* One more request than a connection carries opens a second connection. */
static void test_http_client_pipeline_depth_opens_second(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);
	cmi_http_client_set_conns(e->f->cli, 1, CLI_CONNS_PER_NODE);

	burst(e, CLI_PIPELINE_DEPTH + 1, TIMEOUT_MS);
	assert_int_equal(e->f->ok, CLI_PIPELINE_DEPTH + 1);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
	assert_true(atomic_load(&e->m->max_open) <= 2);
}

/* A server that closes after the first response of a batch: the requests
 * behind it go once more on a new connection and succeed. */
static void test_http_client_pipelined_rest_resent_after_close(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_first_serves_one;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);
	cmi_http_client_set_conns(e->f->cli, 1, CLI_CONNS_PER_NODE);

	burst(e, CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	if (e->f->ok != CLI_PIPELINE_DEPTH)
		fail_msg("%d of %d requests got 200; first failure: %s", e->f->ok,
			 CLI_PIPELINE_DEPTH, e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
	assert_int_equal(atomic_load(&e->m->requests), CLI_PIPELINE_DEPTH);
}

/* A server that closes after every response, saying so, processed none of
 * the requests behind it: each goes out again as a new request, and all
 * succeed, one connection each. */
static void test_http_client_pipelined_close_each_restarts_rest(void **state)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
				    "Content-Length: 0\r\n\r\n";
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_serve;
	o.reply = reply;
	o.reply_len = sizeof(reply) - 1;
	o.close_after = true;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);
	cmi_http_client_set_conns(e->f->cli, 1, CLI_CONNS_PER_NODE);

	burst(e, CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	if (e->f->ok != CLI_PIPELINE_DEPTH)
		fail_msg("%d of %d requests got 200; first failure: %s", e->f->ok,
			 CLI_PIPELINE_DEPTH, e->f->first_failure);
	assert_int_equal(atomic_load(&e->m->accepted), CLI_PIPELINE_DEPTH);
}

/* A new connection closed without any response fails every request of its
 * batch, none sent again: the node is not a broker, or refuses the client. */
static void test_http_client_pipelined_fresh_close_fails_all(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_close_after_request;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);
	cmi_http_client_set_conns(e->f->cli, 1, CLI_CONNS_PER_NODE);

	burst(e, CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	assert_int_equal(e->f->ok, 0);
	assert_int_equal(e->f->done, CLI_PIPELINE_DEPTH);
	expect_result(e->f, CMICRO_ECONNECT, 0);
	TK_CONTAINS(e->f->first_failure, "closed before a response");
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

/* When the first request of a batch times out, those behind it fail too,
 * naming the cause, and the connection is not used again. */
static void test_http_client_pipelined_timeout_fails_behind(void **state)
{
	struct env *e = *state;
	struct mock_opts o = {0};

	o.script = script_first_silent;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	e->m = mock_start(&o);
	e->f = fixture_new(NULL);
	cmi_http_client_set_conns(e->f->cli, 1, CLI_CONNS_PER_NODE);

	burst(e, CLI_PIPELINE_DEPTH, 300);
	assert_int_equal(e->f->ok, 0);
	TK_CONTAINS(e->f->first_failure, "no response within the delivery timeout");
	expect_result(e->f, CMICRO_ETIMEDOUT, 0);
	TK_CONTAINS(e->f->result.message, "a request ahead of this one");
	request(e->f, e->m->address, false, TIMEOUT_MS);
	expect_result(e->f, 0, 200);
	assert_int_equal(atomic_load(&e->m->accepted), 2);
	assert_int_equal(client_all_conns(e->f->cli), 1);
}

/* The result of one call, for tests that tell their calls apart. */
struct one_result {
	struct fixture *f;
	struct cmi_http_result res;
};

static void on_one_done(void *arg, const struct cmi_http_result *res)
{
	struct one_result *o = arg;

	o->res = *res;
	o->res.body = NULL;
	on_done(o->f, res);
}

/* Starts a POST to address whose result goes to o. */
static void request_start_one(struct fixture *f, const char *address, int timeout_ms,
			      struct one_result *o)
{
	struct cmi_http_post p = mock_post(address, false, timeout_ms);

	o->f = f;
	TK_OK(cmi_http_client_post(f->cli, &p, on_one_done, o));
}

/* The request behind another on one connection times out first (its
 * timeout is shorter). The one ahead of it was not behind a request that
 * timed out: it keeps its own deadline and gets its response. */
static void test_http_client_pipelined_timeout_spares_ahead(void **state)
{
	struct env *e = *state;
	struct mock_opts o = serve_opts(script_serve, ok_reply, sizeof(ok_reply) - 1);
	struct one_result ahead = {0}, behind = {0};

	o.hold_ms = 700;
	start_plain(e, &o);

	/* Started in one pass of the loop: both go on one connection. */
	request_start_one(e->f, e->m->address, TIMEOUT_MS, &ahead);
	request_start_one(e->f, e->m->address, 200, &behind);
	run_until(e->f, 2);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
	assert_int_equal(behind.res.err, CMICRO_ETIMEDOUT);
	if (ahead.res.err != 0 || ahead.res.status != 200)
		fail_msg("the request ahead of the one that timed out failed before its own "
			 "deadline of %d ms: %s: %s",
			 TIMEOUT_MS, cmicro_err_name(ahead.res.err), ahead.res.message);
}

/* An HTTP/1.0 server that keeps the connection alive ("Connection:
 * keep-alive") serves the pipelined requests behind each response. The
 * client must not start those again as new requests: each message reaches
 * the server once. */
static void test_http_client_pipelined_http10_keepalive_not_repeated(void **state)
{
	static const char reply[] = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
				    "Content-Length: 2\r\n\r\nok";
	struct env *e = *state;
	struct mock_opts o = serve_opts(script_serve, reply, sizeof(reply) - 1);

	start_plain(e, &o);

	burst(e, CLI_PIPELINE_DEPTH, TIMEOUT_MS);
	assert_int_equal(e->f->ok, CLI_PIPELINE_DEPTH);
	if (atomic_load(&e->m->requests) != CLI_PIPELINE_DEPTH)
		fail_msg("%d messages reached the server %d times over %d connections",
			 CLI_PIPELINE_DEPTH, atomic_load(&e->m->requests),
			 atomic_load(&e->m->accepted));
}

/* ---- large requests over TLS ---- */

/* A 1 MiB body to a server with a small receive buffer leaves in many
 * partial SSL_write calls, and the connection carries a second request. */
static void test_http_client_tls_large_body_partial_writes(void **state)
{
	enum { BODY = 1024 * 1024 };
	struct env *e = *state;
	struct mock_opts o = {0};

	e->server_tls = server_tls(server_pem, server_key);
	o.tls = e->server_tls;
	o.script = script_serve;
	o.reply = ok_reply;
	o.reply_len = sizeof(ok_reply) - 1;
	o.rcvbuf = 4096;
	e->m = mock_start(&o);
	e->f = fixture_new(client_tls(test_ca, NULL));
	e->buf = malloc(BODY);
	assert_non_null(e->buf);
	memset(e->buf, 'x', BODY);

	for (int i = 0; i < 2; i++) {
		request_start(e->f, e->m->address, false, e->buf, BODY, 20000);
		run_until(e->f, i + 1);
		expect_result(e->f, 0, 200);
	}
	assert_int_equal(atomic_load(&e->m->requests), 2);
	assert_int_equal(atomic_load(&e->m->accepted), 1);
}

#define HC_TEST(name) cmocka_unit_test_setup_teardown(name, env_setup, env_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		HC_TEST(test_http_client_byte_split_response_reuses_connection),
		HC_TEST(test_http_client_chunked_trailer_reuses_connection),
		HC_TEST(test_http_client_connection_close_opens_new),
		HC_TEST(test_http_client_http10_response_opens_new),
		HC_TEST(test_http_client_trailing_garbage_opens_new),
		HC_TEST(test_http_client_body_until_close_ok),
		HC_TEST(test_http_client_interim_100_skipped),
		HC_TEST(test_http_client_garbage_status_line_eproto),
		HC_TEST(test_http_client_conflicting_lengths_eproto),
		HC_TEST(test_http_client_gzip_coding_eproto),
		HC_TEST(test_http_client_folded_header_eproto),
		HC_TEST(test_http_client_endless_head_eproto),
		HC_TEST(test_http_client_bad_chunk_size_eproto),
		HC_TEST(test_http_client_close_without_response_econnect),
		HC_TEST(test_http_client_close_mid_body_eproto),
		HC_TEST(test_http_client_silent_server_times_out),
		HC_TEST(test_http_client_stalled_handshake_times_out),
		HC_TEST(test_http_client_idle_close_seen_opens_new),
		HC_TEST(test_http_client_stale_idle_connection_retried),
		HC_TEST(test_http_client_early_413_reported),
		HC_TEST(test_http_client_get_body_kept),
		HC_TEST(test_http_client_get_body_at_limit_kept),
		HC_TEST(test_http_client_get_body_over_limit_eproto),
		HC_TEST(test_http_client_burst_capped_at_64),
		HC_TEST(test_http_client_refused_port_econnect),
		HC_TEST(test_http_client_tls_cmicro_cert_reuses_connection),
		HC_TEST(test_http_client_tls_openssl_cert_reuses_connection),
		HC_TEST(test_http_client_tls_foreign_ca_everify),
		HC_TEST(test_http_client_plain_stale_fin_resent),
		HC_TEST(test_http_client_tls_stale_close_notify_resent),
		HC_TEST(test_http_client_tls_stale_fin_without_notify_resent),
		HC_TEST(test_http_client_tls_fin_without_response_econnect),
		HC_TEST(test_http_client_stale_resent_once_only),
		HC_TEST(test_http_client_timeout_frees_connection),
		HC_TEST(test_http_client_cap_freed_by_timeouts),
		HC_TEST(test_http_client_waiting_call_not_overtaken),
		HC_TEST(test_http_client_tls_large_body_partial_writes),
	HC_TEST(test_http_client_pipelined_plain_one_write),
	HC_TEST(test_http_client_pipelined_tls_one_write),
	HC_TEST(test_http_client_burst_spread_over_conns),
	HC_TEST(test_http_client_burst_beyond_spread_deepens),
	HC_TEST(test_http_client_no_spread_fills_one_conn),
	HC_TEST(test_http_client_pipeline_depth_opens_second),
	HC_TEST(test_http_client_pipelined_rest_resent_after_close),
	HC_TEST(test_http_client_pipelined_close_each_restarts_rest),
	HC_TEST(test_http_client_pipelined_fresh_close_fails_all),
	HC_TEST(test_http_client_pipelined_timeout_fails_behind),
	HC_TEST(test_http_client_pipelined_timeout_spares_ahead),
	HC_TEST(test_http_client_pipelined_http10_keepalive_not_repeated),
	};

	/* The broker runs the client on threads with SIGPIPE blocked, so a
	 * write to a closed peer fails with EPIPE. The test thread and the mock
	 * threads get the same behaviour. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
