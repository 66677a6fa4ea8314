#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/common_int.h"

#define CMICRO_VERSION_STRING "0.1.0"

CMICRO_API const char *cmicro_version(void)
{
	return CMICRO_VERSION_STRING;
}

const char *cmi_getenv(const char *name)
{
	return getenv(name);
}

int cmi_parse_bool(const char *value)
{
	static const char *const truthy[] = {"true", "1", "yes", "on"};
	static const char *const falsy[] = {"false", "0", "no", "off", ""};
	char word[16];
	size_t len;

	if (value == NULL)
		return 0;
	while (isspace((unsigned char)*value))
		value++;
	len = strlen(value);
	while (len > 0 && isspace((unsigned char)value[len - 1]))
		len--;
	if (len >= sizeof(word))
		return -1;
	memcpy(word, value, len);
	word[len] = '\0';
	for (size_t i = 0; i < CMI_ARRAY_LEN(truthy); i++) {
		if (strcasecmp(word, truthy[i]) == 0)
			return 1;
	}
	for (size_t i = 0; i < CMI_ARRAY_LEN(falsy); i++) {
		if (strcasecmp(word, falsy[i]) == 0)
			return 0;
	}
	return -1;
}

double cmi_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long cmi_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cmi_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg)
{
	sigset_t block, saved;
	int rc;

	/* The new thread inherits the creator's mask; the creator's own mask is
	 * restored at once. */
	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	rc = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return rc;
}

void cmi_sigpipe_block(struct cmi_sigpipe_guard *guard)
{
	sigset_t block, pending;

	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	sigpending(&pending);
	guard->was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &block, &guard->saved);
}

void cmi_sigpipe_restore(struct cmi_sigpipe_guard *guard)
{
	static const struct timespec no_wait = {0, 0};
	sigset_t pipe_only, pending;

	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	sigpending(&pending);
	/* A SIGPIPE that was pending before belongs to the caller; only one
	 * raised by our own writes is consumed. */
	if (!guard->was_pending && sigismember(&pending, SIGPIPE) == 1)
		sigtimedwait(&pipe_only, NULL, &no_wait);
	pthread_sigmask(SIG_SETMASK, &guard->saved, NULL);
}
