#include "cli.h"

int cmd_cert(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("'cert' is not available in this build yet");
	return CLI_EXIT_USAGE;
}
