#include "cli.h"

int cmd_pub(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("'pub' is not available in this build yet");
	return CLI_EXIT_USAGE;
}
