/* Targets: the subscriber's request path (the HTTP server's framing, then
 * cmi_brk_on_request: method, query, envelope decoding, topic and node id
 * checks) of a connected broker, fed raw bytes over a loopback connection.
 * The broker keeps running across inputs; a crash or hang in it fails. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker/broker_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cmicro_broker *broker;
static int port;
static char node_id[128];

static int fuzz_handler(void *user, const char *topic, const struct cmicro_message *msg)
{
	(void)user;
	(void)topic;
	return cmicro_message_header_count(msg) > 3 ? 1 : 0;
}

static void fuzz_setup(void)
{
	struct cmicro_broker_opts opts;
	struct cmicro_registry *reg = NULL;
	struct cmicro_subscription *sub = NULL;
	const char *addr;

	cmicro_log_set_handler(cmicro_log_null, NULL);
	cmicro_broker_opts_init(&opts);
	opts.read_timeout_ms = 200;
	opts.max_body_bytes = 64 * 1024;
	if (cmicro_registry_memory_new(&reg) != 0)
		abort();
	opts.registry = reg;
	if (cmicro_broker_new(&opts, &broker) != 0 || cmicro_broker_connect(broker) != 0 ||
	    cmicro_broker_subscribe(broker, "fuzz", NULL, fuzz_handler, NULL, &sub) != 0)
		abort();
	cmicro_registry_free(reg);
	snprintf(node_id, sizeof(node_id), "%s", cmicro_subscription_node_id(sub));
	addr = cmicro_broker_address(broker);
	port = atoi(strrchr(addr, ':') + 1);
}

/* Connects to the broker. Each input is one connection, tens of thousands
 * in a run, so the socket closes with a reset (zero linger): a normal close
 * would leave one TIME_WAIT entry per input and run out of local ports. */
/* Waits for a connect that a signal interrupted. libFuzzer's timer signal
 * (SIGALRM, every second with -timeout) can interrupt a blocking connect,
 * and the connection then completes on its own. */
static int fuzz_finish_connect(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLOUT};
	socklen_t len = sizeof(int);
	int err = 0, n;

	do
		n = poll(&pfd, 1, 5000);
	while (n < 0 && errno == EINTR);
	if (n != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
		return -1;
	return 0;
}

static int fuzz_connect(void)
{
	struct sockaddr_in sa = {0};
	struct linger reset = {.l_onoff = 1, .l_linger = 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int rc;

	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = fd < 0 || setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) != 0 ? -1 : 0;
	if (rc == 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		rc = errno == EINTR ? fuzz_finish_connect(fd) : -1;
	if (rc != 0) {
		perror("fuzz_http_request: connecting to the broker");
		abort();
	}
	return fd;
}

/* Replaces each "@ID@" of the input with the subscription's node id, which
 * is random per run, so inputs can reach the handler. */
static char *fuzz_expand(const uint8_t *data, size_t size, size_t *out_len)
{
	size_t id_len = strlen(node_id), n = 0;
	char *out = malloc(size * (id_len + 1) + 1);

	for (size_t i = 0; out != NULL && i < size; i++) {
		if (i + 4 <= size && memcmp(data + i, "@ID@", 4) == 0) {
			memcpy(out + n, node_id, id_len);
			n += id_len;
			i += 3;
		} else {
			out[n++] = (char)data[i];
		}
	}
	*out_len = n;
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pollfd p;
	size_t len = 0;
	char *req;
	char buf[4096];
	int fd;

	if (broker == NULL)
		fuzz_setup();
	req = fuzz_expand(data, size, &len);
	if (req == NULL)
		return 0;
	fd = fuzz_connect();
	if (len > 0 && send(fd, req, len, MSG_NOSIGNAL) < 0)
		len = 0;
	free(req);
	shutdown(fd, SHUT_WR);
	p.fd = fd;
	p.events = POLLIN;
	/* Read the response until the server closes, for two seconds at most. */
	for (int i = 0; i < 20 && poll(&p, 1, 100) >= 0; i++) {
		if ((p.revents & POLLIN) && recv(fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(fd);
	return 0;
}
