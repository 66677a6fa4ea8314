/* Shared declarations of the cmicro command-line tool. */
#ifndef CMICRO_CLI_H
#define CMICRO_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* Exit codes shared by every command (documented in the README). */
enum cli_exit {
	CLI_EXIT_OK = 0,       /* success; for checks: secure mode would accept */
	CLI_EXIT_REJECT = 1,   /* the check failed or nothing received the message */
	CLI_EXIT_USAGE = 2,    /* wrong usage, or could not connect / load */
	CLI_EXIT_INTERNAL = 3  /* an unexpected failure inside cmicro */
};

/* Each command receives argv with argv[0] set to its own name. */
int cmd_tls(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Prints "cmicro: error: ..." to stderr, formatted. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the last cmicro failure ("what: ERRNAME: detail") to stderr. */
void cli_error_rc(const char *what, int rc);

/* Returns true when arg equals one of the given option spellings. */
bool cli_is_help(const char *arg);

/* Writes s as a JSON string literal (with quotes) to out. */
void cli_json_string(FILE *out, const char *s);

#endif
