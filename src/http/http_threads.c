#include <pthread.h>

#include <event2/thread.h>

#include "http/http_int.h"

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc;

static void threads_setup(void)
{
	threads_rc = evthread_use_pthreads();
}

int cmi_http_threads_init(void)
{
	pthread_once(&threads_once, threads_setup);
	if (threads_rc != 0)
		return cmi_error(CMICRO_EINTERNAL, "libevent could not enable thread support "
						   "(evthread_use_pthreads failed)");
	return 0;
}

struct event_base *cmi_http_base_new(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	/* The change list merges the changes made to one socket's events
	 * within a loop iteration into one epoll_ctl call. libevent leaves it
	 * off because it misbehaves with descriptors cloned by dup(). */
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

void cmi_http_event_set(struct event *ev, bool *added, bool on)
{
	if (on == *added)
		return;
	if (on)
		event_add(ev, NULL);
	else
		event_del(ev);
	*added = on;
}
