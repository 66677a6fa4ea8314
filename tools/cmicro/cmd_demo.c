#include "cli.h"

int cmd_demo(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("'demo' is not available in this build yet");
	return CLI_EXIT_USAGE;
}
