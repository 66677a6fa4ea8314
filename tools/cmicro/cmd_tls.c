#include "cli.h"

int cmd_tls(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("'tls' is not available in this build yet");
	return CLI_EXIT_USAGE;
}
