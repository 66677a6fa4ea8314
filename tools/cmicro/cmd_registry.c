/* cmicro registry ls: the services and nodes in the configured registry. */
#include <stdio.h>
#include <string.h>

#include <cmicro/cmicro.h>

#include "cli.h"

static const char registry_usage[] =
	"usage: cmicro registry ls [--json] [SERVICE]\n"
	"\n"
	"Lists the services in the registry that MICRO_REGISTRY selects (sqlite, the\n"
	"default, memory or etcd), with every version, node, address and metadata entry.\n"
	"SERVICE limits the list to one service name; broker subscriptions of every\n"
	"topic are nodes of the service micro.http.broker.\n"
	"\n"
	"options:\n"
	"  --json      print go-micro's registry JSON: an array of services, one per\n"
	"              version, each with its nodes\n"
	"  -h, --help  show this help\n"
	"\n"
	"environment:\n"
	"  MICRO_REGISTRY          sqlite (default), memory or etcd\n"
	"  MICRO_REGISTRY_ADDRESS  sqlite: the file; default $XDG_RUNTIME_DIR/cmicro/registry.db,\n"
	"                          else /tmp/cmicro-<uid>/registry.db\n"
	"                          etcd: comma-separated HOST[:PORT], [IPV6][:PORT] or\n"
	"                          http(s)://HOST[:PORT]; port 2379 when missing;\n"
	"                          default 127.0.0.1:2379\n"
	"  ETCD_USERNAME, ETCD_PASSWORD  etcd authentication\n"
	"\n"
	"Exit codes: 0 listed (also when empty), 2 wrong usage or registry error.\n";

struct ls_opts {
	bool json;
	const char *service;
};

/* True when value prints unambiguously without quotes. */
static bool is_plain(const char *value)
{
	if (value[0] == '\0')
		return false;
	return strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			     "._:/@+-[]") == strlen(value);
}

static void print_metadata(const struct cmicro_kv *kvs, size_t n)
{
	/* Two spaces set the metadata apart from the address or node count. */
	for (size_t i = 0; i < n; i++) {
		printf("%s%s=", i == 0 ? "  " : " ", kvs[i].key);
		if (is_plain(kvs[i].value))
			fputs(kvs[i].value, stdout);
		else
			cli_json_string(stdout, kvs[i].value);
	}
}

static void print_text(struct cmicro_registry *reg, const char *service,
		       struct cmicro_service **list, size_t n)
{
	const char *address = cmicro_registry_address(reg);

	if (n == 0 && service != NULL) {
		printf("no service named %s in the %s registry%s%s (broker subscriptions are "
		       "nodes of %s)\n",
		       service, cmicro_registry_name(reg), address[0] ? " " : "", address,
		       CMICRO_BROKER_SERVICE);
		return;
	}
	if (n == 0) {
		printf("no services in the %s registry%s%s\n", cmicro_registry_name(reg),
		       address[0] ? " " : "", address);
		if (strcmp(cmicro_registry_name(reg), "memory") == 0)
			printf(
			    "(a memory registry belongs to one process, so this command "
			    "never sees another process's services; use MICRO_REGISTRY=sqlite)\n");
		return;
	}
	printf("registry %s%s%s\n", cmicro_registry_name(reg), address[0] ? " " : "", address);
	for (size_t i = 0; i < n; i++) {
		const struct cmicro_service *svc = list[i];

		printf("\n%s  version %s  %zu node%s", svc->name,
		       svc->version[0] ? svc->version : "\"\"", svc->n_nodes,
		       svc->n_nodes == 1 ? "" : "s");
		print_metadata(svc->metadata, svc->n_metadata);
		putchar('\n');
		for (size_t j = 0; j < svc->n_nodes; j++) {
			const struct cmicro_node *node = &svc->nodes[j];

			printf("  %s  %s", node->id, node->address[0] ? node->address : "-");
			print_metadata(node->metadata, node->n_metadata);
			putchar('\n');
		}
	}
}

static int print_json(struct cmicro_service **list, size_t n)
{
	fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		char *json = NULL;
		int rc = cmicro_service_to_json(list[i], &json);

		if (rc != 0) {
			fputs("]\n", stdout);
			cli_error_rc("encoding the service list", rc);
			return CLI_EXIT_INTERNAL;
		}
		printf("%s\n%s", i ? "," : "", json);
		cmicro_free(json);
	}
	fputs(n ? "\n]\n" : "]\n", stdout);
	return CLI_EXIT_OK;
}

static int run_ls(const struct ls_opts *opts)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_service **list = NULL;
	size_t n = 0;
	int status = CLI_EXIT_OK;
	int rc = cmicro_registry_from_env(&reg);

	if (rc != 0) {
		cli_error_rc("registry", rc);
		return CLI_EXIT_USAGE;
	}
	rc = opts->service ? cmicro_registry_get_service(reg, opts->service, &list, &n)
			   : cmicro_registry_list_services(reg, &list, &n);
	if (rc != 0) {
		cli_error_rc("registry", rc);
		status = CLI_EXIT_USAGE;
	} else if (opts->json) {
		status = print_json(list, n);
	} else {
		print_text(reg, opts->service, list, n);
	}
	cmicro_service_list_free(list, n);
	cmicro_registry_free(reg);
	return status;
}

static int parse_ls(int argc, char **argv, struct ls_opts *opts)
{
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(registry_usage, stdout);
			return CLI_EXIT_OK;
		}
		if (strcmp(argv[i], "--json") == 0) {
			opts->json = true;
		} else if (argv[i][0] == '-') {
			cli_error("unknown option \"%s\" for 'registry ls'; run 'cmicro registry "
				  "--help' for the options",
				  argv[i]);
			return CLI_EXIT_USAGE;
		} else if (opts->service == NULL) {
			opts->service = argv[i];
		} else {
			cli_error("'registry ls' takes one service name, got \"%s\" and \"%s\"",
				  opts->service, argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	return -1;
}

int cmd_registry(int argc, char **argv)
{
	struct ls_opts opts = {0};
	int status;

	if (argc < 2) {
		fputs(registry_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (cli_is_help(argv[1])) {
		fputs(registry_usage, stdout);
		return CLI_EXIT_OK;
	}
	if (strcmp(argv[1], "ls") != 0) {
		cli_error("unknown registry command \"%s\"; the command is 'cmicro registry ls'",
			  argv[1]);
		return CLI_EXIT_USAGE;
	}
	status = parse_ls(argc - 1, argv + 1, &opts);
	if (status >= 0)
		return status;
	return run_ls(&opts);
}
