/*
 * Watchers: one thread per watcher runs the callbacks, so no callback ever
 * runs under a registry lock or on the caller's thread. Implementations
 * either push events into the queue (memory) or detect changes in poll
 * (SQLite) and emit them from the watcher thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/registry_int.h"

struct cmi_watch_event {
	struct cmi_watch_event *next;
	enum cmicro_registry_event type;
	struct cmicro_service *svc;
};

bool cmi_watcher_wants(const struct cmicro_registry_watcher *w, const char *name)
{
	return w->service == NULL || strcmp(w->service, name) == 0;
}

void cmi_watcher_emit(struct cmicro_registry_watcher *w, enum cmicro_registry_event event,
		      const struct cmicro_service *svc)
{
	if (cmi_watcher_wants(w, svc->name))
		w->fn(w->user, event, svc);
}

void cmi_watcher_push(struct cmicro_registry_watcher *w, enum cmicro_registry_event event,
		      const struct cmicro_service *svc)
{
	struct cmi_watch_event *ev;

	if (!cmi_watcher_wants(w, svc->name))
		return;
	pthread_mutex_lock(&w->lock);
	if (w->queued >= CMI_WATCH_QUEUE_MAX) {
		if (!w->overflow_logged)
			cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-WATCH-OVERFLOW",
				"a registry watcher callback is too slow: %d events are queued, "
				"so later events are dropped until it catches up",
				CMI_WATCH_QUEUE_MAX);
		w->overflow_logged = true;
		goto out;
	}

	ev = calloc(1, sizeof(*ev));
	if (ev == NULL || cmicro_service_dup(svc, &ev->svc) != 0) {
		free(ev);
		cmi_log(CMICRO_LOG_ERR, "registry", "REGISTRY-WATCH-ENOMEM",
			"out of memory queueing a registry event of service \"%s\"", svc->name);
		goto out;
	}
	ev->type = event;
	if (w->tail != NULL)
		w->tail->next = ev;
	else
		w->head = ev;
	w->tail = ev;
	w->queued++;
	pthread_cond_signal(&w->cond);
out:
	pthread_mutex_unlock(&w->lock);
}

/* Takes the first queued event; the caller holds the lock. */
static struct cmi_watch_event *queue_pop(struct cmicro_registry_watcher *w)
{
	struct cmi_watch_event *ev = w->head;

	if (ev == NULL)
		return NULL;
	w->head = ev->next;
	if (w->head == NULL)
		w->tail = NULL;
	w->queued--;
	if (w->queued == 0)
		w->overflow_logged = false;
	return ev;
}

static void event_free(struct cmi_watch_event *ev)
{
	cmicro_service_free(ev->svc);
	free(ev);
}

static void deadline_after_ms(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void watcher_destroy(struct cmicro_registry_watcher *w)
{
	struct cmi_watch_event *ev;

	while ((ev = queue_pop(w)) != NULL)
		event_free(ev);
	if (w->release != NULL)
		w->release(w);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	cmicro_registry_free(w->reg);
	free(w->service);
	free(w);
}

/* Runs events and polls until stopped; the lock is held between steps. */
static void watcher_loop(struct cmicro_registry_watcher *w)
{
	struct timespec next_poll;

	deadline_after_ms(&next_poll, w->poll_ms);
	while (!w->stopping) {
		struct cmi_watch_event *ev = queue_pop(w);
		struct timespec now;

		if (ev != NULL) {
			pthread_mutex_unlock(&w->lock);
			w->fn(w->user, ev->type, ev->svc);
			event_free(ev);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (w->poll == NULL) {
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}

		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > next_poll.tv_sec ||
		    (now.tv_sec == next_poll.tv_sec && now.tv_nsec >= next_poll.tv_nsec)) {
			pthread_mutex_unlock(&w->lock);
			w->poll(w);
			pthread_mutex_lock(&w->lock);
			deadline_after_ms(&next_poll, w->poll_ms);
			continue;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &next_poll);
	}
}

static void *watcher_main(void *arg)
{
	struct cmicro_registry_watcher *w = arg;
	bool self_free;

	pthread_mutex_lock(&w->lock);
	watcher_loop(w);
	self_free = w->free_on_exit;
	pthread_mutex_unlock(&w->lock);
	if (self_free)
		watcher_destroy(w);
	return NULL;
}

static int watcher_alloc(struct cmicro_registry *reg, const char *service,
			 cmicro_registry_watch_fn fn, void *user,
			 struct cmicro_registry_watcher **out)
{
	struct cmicro_registry_watcher *w = cmi_calloc(1, sizeof(*w));
	pthread_condattr_t attr;

	if (w == NULL)
		return CMICRO_ENOMEM;
	if (service != NULL) {
		w->service = cmi_strdup(service);
		if (w->service == NULL) {
			free(w);
			return CMICRO_ENOMEM;
		}
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &attr);
	pthread_condattr_destroy(&attr);
	w->reg = cmicro_registry_hold(reg);
	w->fn = fn;
	w->user = user;
	*out = w;
	return 0;
}

CMICRO_API int cmicro_registry_watch(struct cmicro_registry *reg, const char *service,
				     cmicro_registry_watch_fn fn, void *user,
				     struct cmicro_registry_watcher **out)
{
	struct cmicro_registry_watcher *w = NULL;
	int rc;

	if (out != NULL)
		*out = NULL;
	if (reg == NULL || fn == NULL || out == NULL || (service != NULL && service[0] == '\0'))
		return cmi_error(CMICRO_EINVAL, "cmicro_registry_watch: registry, callback and "
						"output are required; the service is NULL (all) "
						"or a name");
	rc = watcher_alloc(reg, service, fn, user, &w);
	if (rc != 0)
		return rc;
	rc = reg->ops->watch(reg, w);
	if (rc != 0)
		goto out;

	rc = cmi_thread_create(&w->thread, watcher_main, w);
	if (rc != 0) {
		char reason[128];

		if (w->detach != NULL)
			w->detach(w);
		rc = cmi_error(CMICRO_EIO,
			       "cannot start a registry watcher thread: %s; raise the "
			       "process thread limit",
			       strerror_r(rc, reason, sizeof(reason)));
		goto out;
	}
	w->started = true;
	*out = w;
	return 0;
out:
	watcher_destroy(w);
	return rc;
}

CMICRO_API void cmicro_registry_watcher_free(struct cmicro_registry_watcher *w)
{
	if (w == NULL)
		return;
	if (w->detach != NULL)
		w->detach(w);

	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_signal(&w->cond);
	if (pthread_equal(pthread_self(), w->thread)) {
		/* Called from its own callback: joining would wait for
		 * ourselves, so the thread frees the watcher when it returns. */
		w->free_on_exit = true;
		pthread_detach(w->thread);
		pthread_mutex_unlock(&w->lock);
		return;
	}
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	watcher_destroy(w);
}
