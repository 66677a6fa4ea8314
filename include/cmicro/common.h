/*
 * Shared definitions of the cmicro public API: export and attribute macros,
 * error codes, error text, memory release and the log callback.
 *
 * Conventions used by every public header:
 *  - fallible functions return 0 (CMICRO_OK) or a negative enum cmicro_err
 *    value; results come back through out-parameters;
 *  - after a failure, cmicro_last_errmsg() returns a sentence that names the
 *    value involved and the fix; it is kept per thread until the next failure;
 *  - every _new has a _free, and _free(NULL) does nothing;
 *  - strings returned to the caller are released with cmicro_free();
 *  - string and file arguments are copied unless a comment says otherwise.
 */
#ifndef CMICRO_COMMON_H
#define CMICRO_COMMON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CMICRO_BUILDING)
#define CMICRO_API __attribute__((visibility("default")))
#else
#define CMICRO_API
#endif

#define CMICRO_NODISCARD __attribute__((warn_unused_result))

/* Error codes. Each is negative so that a non-negative return can carry a count. */
enum cmicro_err {
#define CMICRO_ERR_ENTRY(sym, val, kind, text) sym = (val),
#include <cmicro/errors.def>
#undef CMICRO_ERR_ENTRY
};

/* Broad classes of error, so callers decide between retry and fix without
 * matching individual codes. */
enum cmicro_err_kind {
	CMICRO_KIND_NONE = 0,
	CMICRO_KIND_USAGE,    /* the caller passed a wrong argument */
	CMICRO_KIND_CONFIG,   /* a file, setting or environment value is wrong */
	CMICRO_KIND_IO,       /* the system refused: file, socket, memory */
	CMICRO_KIND_TIMEOUT,  /* retry later */
	CMICRO_KIND_CLOSED,   /* the object or peer is gone */
	CMICRO_KIND_PROTOCOL, /* the peer sent something invalid */
	CMICRO_KIND_VERIFY,   /* TLS peer verification failed */
	CMICRO_KIND_INTERNAL  /* a bug in cmicro or a dependency */
};

/* Returns the static English text of an error code ("unknown error" when the
 * code is not one of enum cmicro_err). */
CMICRO_API const char *cmicro_strerror(int err);

/* Returns the static symbolic name of an error code, such as "CMICRO_EPEM". */
CMICRO_API const char *cmicro_err_name(int err);

/* Returns the class of an error code. */
CMICRO_API enum cmicro_err_kind cmicro_err_kind(int err);

/* Returns the detailed message of the calling thread's last failure: the
 * value, the cause and the fix. Never NULL; "" when nothing failed yet. The
 * text stays valid until the next cmicro call on this thread. */
CMICRO_API const char *cmicro_last_errmsg(void);

/* Releases memory that cmicro returned to the caller (strings, arrays). */
CMICRO_API void cmicro_free(void *ptr);

/* Log levels, numbered as syslog(3) does. */
enum cmicro_log_level {
	CMICRO_LOG_ERR = 3,
	CMICRO_LOG_WARNING = 4,
	CMICRO_LOG_NOTICE = 5,
	CMICRO_LOG_INFO = 6,
	CMICRO_LOG_DEBUG = 7
};

/*
 * Receives one log line. component is a short layer name ("tls", "http",
 * "broker", "registry"), msg_id a stable identifier such as "TLS-VERIFY-OFF"
 * that scripts may match, text one line without a trailing newline. The
 * handler may be called from any cmicro thread and must not call back into
 * cmicro's logging functions.
 */
typedef void (*cmicro_log_fn)(void *user, enum cmicro_log_level level, const char *component,
			      const char *msg_id, const char *text);

/* Replaces the process-wide log handler; NULL restores the default, which is
 * cmicro_log_stderr. Thread-safe. */
CMICRO_API void cmicro_log_set_handler(cmicro_log_fn fn, void *user);

/* Sets the most verbose level that reaches the handler (default
 * CMICRO_LOG_INFO, or the level named by CMICRO_LOG_LEVEL: err, warning,
 * notice, info, debug). */
CMICRO_API void cmicro_log_set_level(enum cmicro_log_level level);

/* Returns the current level, so callers can skip formatting costly messages. */
CMICRO_API enum cmicro_log_level cmicro_log_get_level(void);

/* Ready handlers: one line per message on standard error, and nothing. */
CMICRO_API void cmicro_log_stderr(void *user, enum cmicro_log_level level, const char *component,
				  const char *msg_id, const char *text);
CMICRO_API void cmicro_log_null(void *user, enum cmicro_log_level level, const char *component,
				const char *msg_id, const char *text);

/* Returns the static name of a level ("error", "warning", ...). */
CMICRO_API const char *cmicro_log_level_name(enum cmicro_log_level level);

/* Returns the library version as "MAJOR.MINOR.PATCH". */
CMICRO_API const char *cmicro_version(void);

#ifdef __cplusplus
}
#endif

#endif
