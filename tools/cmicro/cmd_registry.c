#include "cli.h"

int cmd_registry(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	cli_error("'registry' is not available in this build yet");
	return CLI_EXIT_USAGE;
}
