#include "cli.h"

int cmd_sub(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("'sub' is not available in this build yet");
	return CLI_EXIT_USAGE;
}
