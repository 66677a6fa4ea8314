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
