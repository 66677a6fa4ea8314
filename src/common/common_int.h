/*
 * Internal helpers shared by every layer. Public names start with cmicro_,
 * internal cross-file names with cmi_.
 */
#ifndef CMICRO_COMMON_INT_H
#define CMICRO_COMMON_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <cmicro/common.h>

#define CMI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define CMI_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Returns the value of the hex digit c (either case), or -1. */
static inline int cmi_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Maximum length of a detailed error message, including the NUL. */
#define CMI_ERRMSG_MAX 1024

/* Records err with a formatted detail message for cmicro_last_errmsg() and
 * returns err, so callers can write "return cmi_error(...)". */
int cmi_error(int err, const char *fmt, ...) CMI_PRINTF(2, 3);

/* As cmi_error, then appends the text of every queued OpenSSL error and
 * clears the queue, so stale entries never leak into a later call. */
int cmi_error_ossl(int err, const char *fmt, ...) CMI_PRINTF(2, 3);

/* Appends every queued OpenSSL error to buf (as "; lib: reason") and clears
 * the queue. Returns the number of errors appended. */
int cmi_ossl_drain(char *buf, size_t size);

/* Clears the calling thread's detail message. */
void cmi_error_clear(void);

/* Emits one log line through the process handler when level is enabled. */
void cmi_log(enum cmicro_log_level level, const char *component, const char *msg_id,
	     const char *fmt, ...) CMI_PRINTF(4, 5);
void cmi_vlog(enum cmicro_log_level level, const char *component, const char *msg_id,
	      const char *fmt, va_list ap) CMI_PRINTF(4, 0);

/* Returns true when level would reach the handler. */
bool cmi_log_enabled(enum cmicro_log_level level);

/* Allocation helpers that never return NULL silently: they record
 * CMICRO_ENOMEM for cmicro_last_errmsg() on failure. */
void *cmi_calloc(size_t n, size_t size);
char *cmi_strdup(const char *s);
char *cmi_strndup(const char *s, size_t n);

/* snprintf into a fixed buffer, truncating safely; returns buf. */
char *cmi_fmt(char *buf, size_t size, const char *fmt, ...) CMI_PRINTF(3, 4);

/* Appends formatted text at the end of the NUL-terminated buf. */
void cmi_append(char *buf, size_t size, const char *fmt, ...) CMI_PRINTF(3, 4);

/* Parses a boolean environment value: 1 for true/1/yes/on, 0 for
 * false/0/no/off/empty, -1 for anything else. Case-insensitive, surrounding
 * blanks ignored. */
int cmi_parse_bool(const char *value);

/* Returns the value of an environment variable, or NULL when unset. */
const char *cmi_getenv(const char *name);

/* Starts a thread with SIGPIPE blocked and returns pthread_create's result.
 * cmicro threads write to sockets whose peers may have gone. With the signal
 * blocked such a write fails with EPIPE instead of ending the process. */
int cmi_thread_create(pthread_t *thread, void *(*fn)(void *), void *arg);

/* Blocks SIGPIPE on the calling thread around socket work done on a
 * caller's thread, and on restore discards a SIGPIPE raised meanwhile, so a
 * vanished peer gives EPIPE rather than ending the process. */
struct cmi_sigpipe_guard {
	sigset_t saved;
	bool was_pending;
};
void cmi_sigpipe_block(struct cmi_sigpipe_guard *guard);
void cmi_sigpipe_restore(struct cmi_sigpipe_guard *guard);

/* Monotonic and wall-clock time. */
double cmi_now_mono(void);
long long cmi_now_ms(void);

#endif
