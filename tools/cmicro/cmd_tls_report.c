/*
 * `cmicro tls report`: reads the TLS findings of running brokers from GET
 * /debug/tls on their listeners, so an operator in audit mode sees which
 * peers secure mode would reject now, without reading logs.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "broker/broker_int.h"
#include "cli.h"
#include "tls_cli.h"

static const char report_help[] =
    "usage: cmicro tls report [--address HOST:PORT | --all] [--json] [--timeout SECONDS]\n"
    "\n"
    "Prints the verification failures a running broker found: each peer (address and\n"
    "node id) that secure mode would reject, the reason, the message and how often.\n"
    "In audit mode (MICRO_TLS_SECURE=audit) these are the failures let through.\n"
    "The report is read over HTTPS without verifying the broker's certificate (or\n"
    "plain HTTP), so --ca and MICRO_TLS_CA_FILE play no part here. To brokers that\n"
    "require client certificates it presents MICRO_TLS_CERT_FILE and MICRO_TLS_KEY_FILE.\n"
    "\n"
    "  --address A        the listener of one broker, as printed by 'cmicro sub'\n"
    "                     (default: MICRO_BROKER_ADDRESS)\n"
    "  --all              every broker node in the registry (MICRO_REGISTRY)\n"
    "  --json             print {\"reports\": [...]} with each broker's JSON report\n"
    "  --timeout SECONDS  limit per broker (default: 10)\n"
    "\n"
    "Exit codes: 0 no findings, 1 some peer would be rejected, 2 wrong usage or a\n"
    "broker or the registry could not be read.\n";

struct report_args {
	const char *address;
	bool all;
	bool json;
	int timeout_s;
};

static const struct option report_opts[] = {
    {"address", required_argument, NULL, 'a'}, {"all", no_argument, NULL, 'A'},
    {"json", no_argument, NULL, 'j'},          {"timeout", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
};

/* Returns 1 for --help, 0 when valid, -1 after printing an error. */
static int report_parse(int argc, char **argv, struct report_args *args)
{
	char *end = NULL;
	int opt;

	args->timeout_s = 10;
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", report_opts, NULL)) != -1) {
		if (opt == 'h')
			return 1;
		if (opt == 'a')
			args->address = optarg;
		else if (opt == 'A')
			args->all = true;
		else if (opt == 'j')
			args->json = true;
		else if (opt == 't' && (args->timeout_s = (int)strtol(optarg, &end, 10)) >= 1 &&
			 args->timeout_s <= 600 && *end == '\0')
			continue;
		else if (opt == 't') {
			cli_error("invalid --timeout \"%s\": give whole seconds from 1 to 600", optarg);
			return -1;
		} else {
			cli_error("%s %s; see 'cmicro tls report --help'",
				  opt == ':' ? "missing value for option" : "unknown option",
				  argv[optind - 1]);
			return -1;
		}
	}
	if (optind != argc || (args->all && args->address != NULL)) {
		cli_error("'cmicro tls report' takes --address HOST:PORT or --all, not both, and no "
			  "other arguments");
		return -1;
	}
	if (!args->all && args->address == NULL)
		args->address = getenv("MICRO_BROKER_ADDRESS");
	if (!args->all && (args->address == NULL || args->address[0] == '\0')) {
		cli_error("no broker to read: give --address HOST:PORT (the address 'cmicro sub' "
			  "prints), --all, or set MICRO_BROKER_ADDRESS");
		return -1;
	}
	return 0;
}

static void report_text(const struct cmi_tls_report *rep)
{
	printf("broker %s at %s (mode %s): %zu finding%s\n", rep->broker_id, rep->address,
	       rep->mode, rep->n, rep->n == 1 ? "" : "s");
	for (size_t i = 0; i < rep->n; i++) {
		const struct cmicro_tls_finding *f = &rep->findings[i];
		char last[32] = "";
		struct tm tm;
		time_t t = (time_t)f->last_seen;

		if (gmtime_r(&t, &tm) != NULL)
			strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("  REJECT %s %s node %s: %s: %s (seen %llu time%s, last %s)\n",
		       f->peer_is_client ? "client" : "server",
		       f->address[0] ? f->address : f->peer, f->node_id[0] ? f->node_id : "-",
		       cmicro_tls_reason_name(f->reason), f->message, (unsigned long long)f->count,
		       f->count == 1 ? "" : "s", last);
	}
}

/* Reads one broker's report; prints it in text mode or appends it to
 * reports. Returns 0 without findings, 1 with some, 2 when unreadable. */
static int report_one(const struct report_args *args, const char *address, json_t *reports)
{
	struct cmi_tls_report *rep = NULL;
	char *body = NULL, err[512];
	int status = 0, rc;

	if (tls_cli_http_get(address, "/debug/tls", args->timeout_s * 1000, &body, &status, err,
			     sizeof(err)) != 0) {
		cli_error("cannot read the TLS report of %s: %s", address, err);
		return CLI_EXIT_USAGE;
	}
	if (status != 200 || body == NULL ||
	    cmi_brk_tls_report_parse(body, strlen(body), &rep) != 0) {
		cli_error("the TLS report of %s is unusable (HTTP %d): %s", address, status,
			  status == 200 ? cmicro_last_errmsg() : "check that it is a cmicro broker");
		free(body);
		return CLI_EXIT_USAGE;
	}
	if (reports != NULL)
		json_array_append_new(reports, json_loads(body, 0, NULL));
	else
		report_text(rep);
	rc = rep->n > 0 ? CLI_EXIT_REJECT : CLI_EXIT_OK;
	cmi_brk_tls_report_free(rep);
	free(body);
	return rc;
}

static bool report_seen(char **seen, size_t n, const char *address)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(seen[i], address) == 0)
			return true;
	}
	return false;
}

/* Reads each distinct listener address of the registry's broker nodes. */
static int report_all(const struct report_args *args, json_t *reports)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_service **list = NULL;
	char *seen[1024];
	size_t n = 0, n_seen = 0;
	int worst = CLI_EXIT_OK;

	if (cmicro_registry_from_env(&reg) != 0 ||
	    cmicro_registry_get_service(reg, CMICRO_BROKER_SERVICE, &list, &n) != 0) {
		cli_error("cannot read the registry: %s", cmicro_last_errmsg());
		cmicro_registry_free(reg);
		return CLI_EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < list[i]->n_nodes && n_seen < CMI_ARRAY_LEN(seen); j++) {
			const char *a = list[i]->nodes[j].address;
			int rc;

			if (a == NULL || report_seen(seen, n_seen, a))
				continue;
			seen[n_seen++] = list[i]->nodes[j].address;
			rc = report_one(args, a, reports);
			worst = rc > worst ? rc : worst;
		}
	}
	if (n_seen == 0 && reports == NULL)
		printf("no broker nodes in the registry\n");
	cmicro_service_list_free(list, n);
	cmicro_registry_free(reg);
	return worst;
}

int tls_run_report(int argc, char **argv)
{
	struct report_args args = {0};
	json_t *reports = NULL;
	int rc = report_parse(argc, argv, &args);

	if (rc != 0) {
		if (rc == 1)
			fputs(report_help, stdout);
		return rc == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	if (args.json)
		reports = json_array();
	rc = args.all ? report_all(&args, reports) : report_one(&args, args.address, reports);
	if (reports != NULL) {
		json_t *root = json_pack("{s:o}", "reports", reports);

		json_dumpf(root, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(root);
	}
	return rc;
}
