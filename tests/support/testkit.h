/* Helpers shared by the unit tests: assertions that print cmicro's error
 * text, temporary directories, child processes and free loopback ports. */
#ifndef CMICRO_TESTKIT_H
#define CMICRO_TESTKIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include <cmicro/cmicro.h>

/* Asserts that a cmicro call returned 0, printing the call, the error name
 * and the detailed message otherwise. */
#define TK_OK(call)                                                                   \
	do {                                                                          \
		int tk_rc_ = (call);                                                  \
		if (tk_rc_ != 0)                                                      \
			fail_msg("%s returned %s: %s", #call, cmicro_err_name(tk_rc_), \
				 cmicro_last_errmsg());                               \
	} while (0)

/* Asserts that a cmicro call failed with one specific code. */
#define TK_FAIL(call, code)                                                            \
	do {                                                                           \
		int tk_rc_ = (call);                                                   \
		if (tk_rc_ != (code))                                                  \
			fail_msg("%s returned %s, expected %s (%s)", #call,             \
				 cmicro_err_name(tk_rc_), cmicro_err_name(code),        \
				 cmicro_last_errmsg());                                \
	} while (0)

/* Asserts that haystack contains needle, printing both otherwise. */
#define TK_CONTAINS(haystack, needle)                                                    \
	do {                                                                             \
		const char *tk_h_ = (haystack);                                          \
		const char *tk_n_ = (needle);                                            \
		if (tk_h_ == NULL || strstr(tk_h_, tk_n_) == NULL)                        \
			fail_msg("expected \"%s\" in \"%s\"", tk_n_, tk_h_ ? tk_h_ : "(null)"); \
	} while (0)

/* Creates a fresh temporary directory (removed by tk_tmpdir_remove). */
char *tk_tmpdir(void);
void tk_tmpdir_remove(char *dir);

/* Joins dir and name into a static-size buffer owned by the caller. */
char *tk_path(char *buf, size_t size, const char *dir, const char *name);

/* Writes text to a file. */
void tk_write(const char *path, const char *text);

/* Runs a shell command, returns its exit status (or -1); stdout and stderr
 * go to *output (caller frees) when output is not NULL. Bounded by
 * timeout_s seconds. */
int tk_run(char **output, int timeout_s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Starts a shell command in the background in its own process group. */
pid_t tk_spawn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Ends a process started by tk_spawn (SIGTERM, then SIGKILL) and reaps it. */
void tk_kill(pid_t pid);

/* Returns a TCP port free on 127.0.0.1 at the time of the call. */
int tk_free_port(void);

/* Waits until a TCP connect to 127.0.0.1:port succeeds (bounded). */
int tk_wait_port(int port, int timeout_ms);

/* Captures log lines into memory instead of stderr. */
void tk_log_capture_start(void);
/* Returns the captured text (one line per message: "level id text"). */
const char *tk_log_captured(void);
/* Counts captured lines whose msg_id equals id. */
int tk_log_count(const char *id);
void tk_log_capture_stop(void);

/* Path of the cmicro CLI under test (CMICRO_BIN). */
const char *tk_cli(void);

#endif
