/*
 * `cmicro tls scan`: fleet readiness for secure mode. Reads every broker
 * node from the registry and checks each one as `cmicro tls check` does,
 * with a bounded number of checks at once, each bounded by a timeout.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "broker/broker_int.h"
#include "cli.h"
#include "tls_cli.h"

static const char scan_help[] =
    "usage: cmicro tls scan [--ca FILE]... [--no-system-roots] [--json]\n"
    "                       [--concurrency N] [--timeout SECONDS]\n"
    "\n"
    "Checks every broker node of the registry (MICRO_REGISTRY, service micro.http.broker,\n"
    "every version) as secure mode (MICRO_TLS_SECURE=true) would, and prints one row per\n"
    "node: address, node id, topic, verdict, reason and days until its certificate\n"
    "expires, then a summary. A node registered with secure=false is rejected with\n"
    "reason plaintext; a node that cannot be reached is rejected with reason unreachable.\n"
    "\n"
    "  --ca FILE          also trust the CA certificates in FILE (repeatable); the\n"
    "                     files of MICRO_TLS_CA_FILE are trusted too\n"
    "  --no-system-roots  trust only the --ca files\n"
    "  --json             print {\"nodes\": [...], \"summary\": {...}}\n"
    "  --concurrency N    nodes checked at once, 1 to 256 (default: 16)\n"
    "  --timeout SECONDS  limit to connect and for the handshake per node (default: 5)\n"
    "\n"
    "Exit codes: 0 every node would be accepted, 1 some node would be rejected,\n"
    "2 wrong usage or the registry cannot be read.\n";

struct scan_node {
	const struct cmicro_node *node;
	const char *topic;
	struct tls_check_args args;
	struct tls_check_result res;
	bool plaintext;
	bool unreachable;
};

struct scan_job {
	struct tls_check_args base;
	struct cmicro_tls_context *ctx;
	struct scan_node *nodes;
	size_t n;
	atomic_size_t next;
	atomic_size_t done;
	bool progress;
	int concurrency;
};

static const struct option scan_opts[] = {
    {"ca", required_argument, NULL, 'c'},     {"no-system-roots", no_argument, NULL, 'n'},
    {"json", no_argument, NULL, 'j'},         {"concurrency", required_argument, NULL, 'C'},
    {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int scan_number(const char *opt, const char *value, int max, int *out)
{
	char *end = NULL;
	long v = strtol(value, &end, 10);

	if (end != value && *end == '\0' && v >= 1 && v <= max) {
		*out = (int)v;
		return 0;
	}
	cli_error("invalid %s \"%s\": give a whole number from 1 to %d", opt, value, max);
	return -1;
}

static int scan_apply(struct scan_job *job, int opt, const char *value)
{
	struct tls_check_args *a = &job->base;

	switch (opt) {
	case 'c':
		if (a->n_cas == TLS_CHECK_MAX_CA) {
			cli_error("too many --ca options (at most %d); concatenate the CA files "
				  "into one bundle", TLS_CHECK_MAX_CA);
			return -1;
		}
		a->cas[a->n_cas++] = value;
		return 0;
	case 'n':
		a->no_system_roots = true;
		return 0;
	case 'j':
		a->json = true;
		return 0;
	case 'C':
		return scan_number("--concurrency", value, 256, &job->concurrency);
	case 't':
		return scan_number("--timeout", value, 600, &a->timeout_s);
	default:
		return -1;
	}
}

/* Returns 1 for --help, 0 when valid, -1 after printing an error. */
static int scan_parse(int argc, char **argv, struct scan_job *job)
{
	int opt;

	job->base.timeout_s = 5;
	job->concurrency = 16;
	opterr = 0;
	optind = 0;
	while ((opt = getopt_long(argc, argv, ":h", scan_opts, NULL)) != -1) {
		if (opt == 'h')
			return 1;
		if (opt == ':' || opt == '?') {
			cli_error("%s %s; see 'cmicro tls scan --help'",
				  opt == ':' ? "missing value for option" : "unknown option",
				  argv[optind - 1]);
			return -1;
		}
		if (scan_apply(job, opt, optarg) != 0)
			return -1;
	}
	if (optind != argc) {
		cli_error("'cmicro tls scan' takes no arguments (got \"%s\")", argv[optind]);
		return -1;
	}
	return 0;
}

static void scan_check(struct scan_job *job, struct scan_node *sn)
{
	const char *secure = cmicro_kv_get(sn->node->metadata, sn->node->n_metadata, "secure");

	sn->args = job->base;
	sn->args.target = sn->node->address ? sn->node->address : "";
	if (secure == NULL || strcmp(secure, "true") != 0) {
		sn->plaintext = true;
		sn->res.verdict.reason = CMICRO_TLS_REASON_PLAINTEXT;
		cmi_fmt(sn->res.verdict.message, sizeof(sn->res.verdict.message),
			"the node is registered with secure=%s, so messages to it travel as "
			"plain HTTP; serve it over TLS (MICRO_TLS_CERT_FILE, or the broker's secure "
			"option)", secure ? secure : "(missing)");
		return;
	}
	if (tls_parse_target(&sn->args) != 0 ||
	    tls_check_run(&sn->args, job->ctx, &sn->res, NULL) != 0 ||
	    (!sn->res.handshake_done && sn->res.verdict.reason == CMICRO_TLS_REASON_OTHER)) {
		sn->unreachable = true;
		if (sn->res.error[0] == '\0')
			cmi_fmt(sn->res.error, sizeof(sn->res.error), "%s",
				sn->res.verdict.message[0] ? sn->res.verdict.message
							   : "invalid node address");
	}
}

static void *scan_worker(void *arg)
{
	struct scan_job *job = arg;
	size_t i;

	while ((i = atomic_fetch_add(&job->next, 1)) < job->n) {
		size_t done;

		scan_check(job, &job->nodes[i]);
		done = atomic_fetch_add(&job->done, 1) + 1;
		if (job->progress)
			fprintf(stderr, "\rchecked %zu of %zu nodes", done, job->n);
	}
	return NULL;
}

static void scan_run(struct scan_job *job)
{
	pthread_t threads[256];
	int n = job->concurrency < (int)job->n ? job->concurrency : (int)job->n;
	int started = 0;

	job->progress = isatty(STDERR_FILENO) && job->n >= 20;
	for (; started < n; started++) {
		if (pthread_create(&threads[started], NULL, scan_worker, job) != 0)
			break;
	}
	/* Without any thread the checks run here, one at a time. */
	if (started == 0)
		scan_worker(job);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (job->progress)
		fputc('\n', stderr);
}

static const char *scan_reason(const struct scan_node *sn)
{
	if (sn->unreachable)
		return "unreachable";
	if (sn->res.handshake_done && sn->res.verdict.reason == CMICRO_TLS_REASON_NONE)
		return NULL;
	return cmicro_tls_reason_name(sn->res.verdict.reason);
}

/* Seconds of the certificate's end: from the handshake, else from the
 * node's tls_not_after metadata; 0 when neither is known. */
static long long scan_not_after(const struct scan_node *sn)
{
	const char *meta = cmicro_kv_get(sn->node->metadata, sn->node->n_metadata, "tls_not_after");
	struct tm tm;
	const char *end;

	if (sn->res.leaf_not_after != 0)
		return sn->res.leaf_not_after;
	memset(&tm, 0, sizeof(tm));
	if (meta == NULL || (end = strptime(meta, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL || *end)
		return 0;
	return (long long)timegm(&tm);
}

static void scan_days_text(const struct scan_node *sn, char *buf, size_t size)
{
	long long until = scan_not_after(sn);

	if (until == 0)
		cmi_fmt(buf, size, "-");
	else
		cmi_fmt(buf, size, "%lld", (until - (long long)time(NULL)) / 86400);
}

static const char *scan_message(const struct scan_node *sn)
{
	return sn->unreachable ? sn->res.error : sn->res.verdict.message;
}

static void scan_text(const struct scan_job *job, size_t rejected)
{
	printf("%-22s %-48s %-16s %-7s %-18s %s\n", "ADDRESS", "NODE", "TOPIC", "VERDICT",
	       "REASON", "DAYS");
	for (size_t i = 0; i < job->n; i++) {
		const struct scan_node *sn = &job->nodes[i];
		const char *reason = scan_reason(sn);
		const char *fp = cmicro_kv_get(sn->node->metadata, sn->node->n_metadata,
					       "tls_fingerprint");
		char days[32];

		scan_days_text(sn, days, sizeof(days));
		printf("%-22s %-48s %-16s %-7s %-18s %s\n", sn->node->address ? sn->node->address : "",
		       sn->node->id, sn->topic ? sn->topic : "", reason ? "REJECT" : "ACCEPT",
		       reason ? reason : "-", days);
		if (reason != NULL)
			printf("  %s\n", scan_message(sn));
		if (fp != NULL)
			printf("  fingerprint (registry): %s\n", fp);
	}
	printf("\n%zu node%s: %zu would be accepted, %zu would be rejected in secure mode\n",
	       job->n, job->n == 1 ? "" : "s", job->n - rejected, rejected);
}

static json_t *scan_node_json(const struct scan_node *sn)
{
	const char *reason = scan_reason(sn);
	long long until = scan_not_after(sn);
	json_t *obj = json_pack(
	    "{s:s?, s:s, s:s?, s:s, s:s?, s:s?, s:s?, s:s?}", "address", sn->node->address,
	    "node_id", sn->node->id, "topic", sn->topic, "verdict", reason ? "reject" : "accept",
	    "reason", reason, "message", reason ? scan_message(sn) : NULL, "tls_fingerprint",
	    cmicro_kv_get(sn->node->metadata, sn->node->n_metadata, "tls_fingerprint"),
	    "tls_not_after", cmicro_kv_get(sn->node->metadata, sn->node->n_metadata,
					   "tls_not_after"));

	if (obj != NULL)
		json_object_set_new(obj, "days_to_expiry",
				    until ? json_integer((until - (long long)time(NULL)) / 86400)
					  : json_null());
	return obj;
}

static void scan_json(const struct scan_job *job, size_t rejected)
{
	json_t *nodes = json_array();
	json_t *root;

	for (size_t i = 0; nodes != NULL && i < job->n; i++)
		json_array_append_new(nodes, scan_node_json(&job->nodes[i]));
	root = json_pack("{s:o, s:{s:I, s:I, s:I}}", "nodes", nodes, "summary", "nodes",
			 (json_int_t)job->n, "accepted", (json_int_t)(job->n - rejected), "rejected",
			 (json_int_t)rejected);
	json_dumpf(root, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(root);
}

/* Collects every broker node (each version of the service) into job. */
static int scan_collect(struct scan_job *job, struct cmicro_service **list, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += list[i]->n_nodes;
	job->nodes = cmi_calloc(total ? total : 1, sizeof(*job->nodes));
	if (job->nodes == NULL)
		return CMICRO_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < list[i]->n_nodes; j++) {
			const struct cmicro_node *node = &list[i]->nodes[j];

			job->nodes[job->n].node = node;
			job->nodes[job->n].topic =
			    cmicro_kv_get(node->metadata, node->n_metadata, "topic");
			job->n++;
		}
	}
	return 0;
}

static int scan_registry(struct scan_job *job)
{
	struct cmicro_registry *reg = NULL;
	struct cmicro_service **list = NULL;
	size_t n = 0, rejected = 0;
	int rc;

	if (cmicro_registry_from_env(&reg) != 0 ||
	    cmicro_registry_get_service(reg, CMICRO_BROKER_SERVICE, &list, &n) != 0) {
		cli_error("cannot read the registry: %s", cmicro_last_errmsg());
		cmicro_registry_free(reg);
		return CLI_EXIT_USAGE;
	}
	rc = scan_collect(job, list, n);
	if (rc == 0) {
		scan_run(job);
		for (size_t i = 0; i < job->n; i++)
			rejected += scan_reason(&job->nodes[i]) != NULL;
		if (job->base.json)
			scan_json(job, rejected);
		else
			scan_text(job, rejected);
	}
	free(job->nodes);
	cmicro_service_list_free(list, n);
	cmicro_registry_free(reg);
	if (rc != 0)
		return CLI_EXIT_INTERNAL;
	return rejected > 0 ? CLI_EXIT_REJECT : CLI_EXIT_OK;
}

int tls_run_scan(int argc, char **argv)
{
	struct scan_job job;
	int rc;

	memset(&job, 0, sizeof(job));
	rc = scan_parse(argc, argv, &job);
	if (rc != 0) {
		if (rc == 1)
			fputs(scan_help, stdout);
		return rc == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	}
	tls_cli_quiet_findings();
	if (tls_check_context(&job.base, &job.ctx) != 0)
		return CLI_EXIT_USAGE;
	rc = scan_registry(&job);
	cmicro_tls_context_free(job.ctx);
	return rc;
}
