#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cmicro/cmicro.h>

#include "cli.h"

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"sub", cmd_sub, "subscribe to a topic and print each message"},
	{"pub", cmd_pub, "publish a message to a topic"},
	{"cert", cmd_cert, "create a CA, issue, create self-signed and inspect certificates"},
	{"tls", cmd_tls, "show the TLS configuration; check whether a peer passes secure mode"},
	{"registry", cmd_registry, "list services and nodes in the registry"},
	{"demo", cmd_demo, "run services exchanging messages over verified TLS"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: cmicro [--version] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'cmicro COMMAND --help' for a command's options.\n"
		     "Exit codes: 0 success, 1 check failed or message not delivered,\n"
		     "2 usage or connection error, 3 internal error.\n");
}

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cmicro: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_error_rc(const char *what, int rc)
{
	const char *detail = cmicro_last_errmsg();

	fprintf(stderr, "cmicro: error: %s: %s\n", what,
		detail[0] != '\0' ? detail : cmicro_strerror(rc));
}

bool cli_is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0 || strcmp(arg, "help") == 0;
}

void cli_json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (cli_is_help(argv[1])) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("cmicro %s\n", cmicro_version());
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	}
	cli_error("unknown command \"%s\"; run 'cmicro --help' for the list", argv[1]);
	return CLI_EXIT_USAGE;
}
