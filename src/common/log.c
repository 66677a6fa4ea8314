#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "common/common_int.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static cmicro_log_fn log_fn = cmicro_log_stderr;
static void *log_user;
static atomic_int log_level = -1;
static atomic_bool bad_level_pending;

static const char *const level_names[] = {
	[CMICRO_LOG_ERR] = "error",	[CMICRO_LOG_WARNING] = "warning",
	[CMICRO_LOG_NOTICE] = "notice", [CMICRO_LOG_INFO] = "info",
	[CMICRO_LOG_DEBUG] = "debug",
};

CMICRO_API const char *cmicro_log_level_name(enum cmicro_log_level level)
{
	if (level < CMICRO_LOG_ERR || level > CMICRO_LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

/* libevent reports its own warnings through a separate hook; forwarding them
 * keeps one log stream. Its callback must not re-enter libevent. */
static void log_from_libevent(int severity, const char *msg)
{
	enum cmicro_log_level level = CMICRO_LOG_DEBUG;

	if (severity == EVENT_LOG_ERR)
		level = CMICRO_LOG_ERR;
	else if (severity == EVENT_LOG_WARN)
		level = CMICRO_LOG_WARNING;
	else if (severity == EVENT_LOG_MSG)
		level = CMICRO_LOG_INFO;
	cmi_log(level, "libevent", "LIBEVENT", "%s", msg);
}

static int level_from_env(void)
{
	const char *v = cmi_getenv("CMICRO_LOG_LEVEL");

	if (v == NULL || *v == '\0')
		return CMICRO_LOG_INFO;
	for (int l = CMICRO_LOG_ERR; l <= CMICRO_LOG_DEBUG; l++) {
		if (strcasecmp(v, level_names[l]) == 0)
			return l;
	}
	if (strcasecmp(v, "err") == 0)
		return CMICRO_LOG_ERR;
	if (strcasecmp(v, "warn") == 0)
		return CMICRO_LOG_WARNING;
	/* The warning cannot be logged from inside the one-time initialisation,
	 * which the log functions wait for, so it is reported right after. */
	atomic_store(&bad_level_pending, true);
	return CMICRO_LOG_INFO;
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void log_init(void)
{
	int expected = -1;

	atomic_compare_exchange_strong(&log_level, &expected, level_from_env());
	event_set_log_callback(log_from_libevent);
}

CMICRO_API void cmicro_log_set_handler(cmicro_log_fn fn, void *user)
{
	pthread_once(&log_once, log_init);
	pthread_mutex_lock(&log_lock);
	log_fn = fn ? fn : cmicro_log_stderr;
	log_user = fn ? user : NULL;
	pthread_mutex_unlock(&log_lock);
}

CMICRO_API void cmicro_log_set_level(enum cmicro_log_level level)
{
	pthread_once(&log_once, log_init);
	if (level < CMICRO_LOG_ERR)
		level = CMICRO_LOG_ERR;
	if (level > CMICRO_LOG_DEBUG)
		level = CMICRO_LOG_DEBUG;
	atomic_store(&log_level, (int)level);
}

CMICRO_API enum cmicro_log_level cmicro_log_get_level(void)
{
	pthread_once(&log_once, log_init);
	if (atomic_exchange(&bad_level_pending, false))
		cmi_log(CMICRO_LOG_WARNING, "log", "LOG-LEVEL-INVALID",
			"CMICRO_LOG_LEVEL=\"%s\" is not a level; use error, warning, notice, info "
			"or debug (using info)", cmi_getenv("CMICRO_LOG_LEVEL"));
	return (enum cmicro_log_level)atomic_load(&log_level);
}

bool cmi_log_enabled(enum cmicro_log_level level)
{
	return (int)level <= (int)cmicro_log_get_level();
}

CMICRO_API void cmicro_log_stderr(void *user, enum cmicro_log_level level, const char *component,
				  const char *msg_id, const char *text)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	(void)user;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf call per line keeps lines from several threads whole. */
	fprintf(stderr, "%s.%03ldZ cmicro %s %s [%s] %s\n", stamp, ts.tv_nsec / 1000000L,
		cmicro_log_level_name(level), component, msg_id, text);
}

CMICRO_API void cmicro_log_null(void *user, enum cmicro_log_level level, const char *component,
				const char *msg_id, const char *text)
{
	(void)user;
	(void)level;
	(void)component;
	(void)msg_id;
	(void)text;
}

void cmi_vlog(enum cmicro_log_level level, const char *component, const char *msg_id,
	      const char *fmt, va_list ap)
{
	char text[2048];
	cmicro_log_fn fn;
	void *user;

	if (!cmi_log_enabled(level))
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	/* A message is one line: newlines from peer data are flattened. */
	for (char *p = text; *p != '\0'; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	pthread_mutex_lock(&log_lock);
	fn = log_fn;
	user = log_user;
	pthread_mutex_unlock(&log_lock);
	fn(user, level, component, msg_id, text);
}

void cmi_log(enum cmicro_log_level level, const char *component, const char *msg_id,
	     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmi_vlog(level, component, msg_id, fmt, ap);
	va_end(ap);
}
