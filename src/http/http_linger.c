/*
 * Lingering close of connections whose TLS handshake the server rejected.
 *
 * In TLS 1.3 a client learns that its certificate was rejected only after
 * it has finished its side of the handshake, and it may already be sending
 * its request when the server's alert arrives. If the server closed the
 * socket at once, the kernel would respond to that request with a reset,
 * and the client would lose the unread alert with it. The publisher would
 * then report "connection closed" instead of the reason.
 * Keeping the socket open for reading a little longer, after a shutdown of
 * the sending side, lets the client read the alert and then the end of the
 * stream.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "http/http_int.h"

/* The most sockets lingering at once in the whole process, and the longest
 * time each lingers. */
#define LINGER_MAX 64
#define LINGER_MS 2000

struct lingering {
	struct lingering *next;
	struct event_base *base;
	struct event *ev;
	int fd;
	double until; /* monotonic deadline in seconds, kept even while data flows */
};

static pthread_mutex_t linger_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lingering *linger_head;
static int linger_count;

/* Unlinks and frees l (linger_lock held). */
static void linger_free_locked(struct lingering *l)
{
	struct lingering **link = &linger_head;

	while (*link != NULL && *link != l)
		link = &(*link)->next;
	if (*link == l)
		*link = l->next;
	event_free(l->ev);
	close(l->fd);
	free(l);
	linger_count--;
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lingering *l = arg;
	char buf[4096];

	if ((what & EV_READ) && cmi_now_mono() < l->until) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
			return;
	}
	pthread_mutex_lock(&linger_lock);
	linger_free_locked(l);
	pthread_mutex_unlock(&linger_lock);
}

bool cmi_http_linger(struct event_base *base, int fd)
{
	struct timeval tv = {.tv_sec = LINGER_MS / 1000, .tv_usec = (LINGER_MS % 1000) * 1000};
	struct lingering *l;

	if (base == NULL || fd < 0)
		return false;
	pthread_mutex_lock(&linger_lock);
	if (linger_count >= LINGER_MAX) {
		pthread_mutex_unlock(&linger_lock);
		return false;
	}
	l = calloc(1, sizeof(*l));
	if (l != NULL)
		l->ev = event_new(base, fd, EV_READ | EV_PERSIST, linger_cb, l);
	if (l == NULL || l->ev == NULL || event_add(l->ev, &tv) != 0) {
		if (l != NULL && l->ev != NULL)
			event_free(l->ev);
		free(l);
		pthread_mutex_unlock(&linger_lock);
		return false;
	}
	/* The alert is already in the socket's send queue, so the end of stream
	 * follows it. */
	shutdown(fd, SHUT_WR);
	l->base = base;
	l->fd = fd;
	l->until = cmi_now_mono() + LINGER_MS / 1000.0;
	l->next = linger_head;
	linger_head = l;
	linger_count++;
	pthread_mutex_unlock(&linger_lock);
	return true;
}

void cmi_http_linger_drop(struct event_base *base)
{
	pthread_mutex_lock(&linger_lock);
	for (struct lingering *l = linger_head, *next; l != NULL; l = next) {
		next = l->next;
		if (l->base == base)
			linger_free_locked(l);
	}
	pthread_mutex_unlock(&linger_lock);
}
