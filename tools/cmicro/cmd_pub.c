/* cmicro pub: publish one message, or one per line of standard input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmicro/cmicro.h>

#include "cli.h"

#define PUB_MAX_HEADERS 64

struct pub_args {
	const char *topic;
	const char *message; /* "-" reads lines from standard input */
	const char *headers[PUB_MAX_HEADERS];
	int n_headers;
	bool wait;
	bool drain; /* send what the outbox holds, publish nothing new */
	const char *outbox;
	int timeout_s;
};

static void pub_usage(FILE *out)
{
	fprintf(out,
		"usage: cmicro pub TOPIC MESSAGE|- [--header K=V]... [--wait] [--timeout S]\n"
		"                  [--outbox FILE]\n"
		"       cmicro pub --drain [--outbox FILE] [--timeout S]\n"
		"\n"
		"Publishes MESSAGE to every subscriber of TOPIC, or one message per line of\n"
		"standard input with \"-\". Undelivered messages are retried until delivered or\n"
		"until the timeout, before the command exits. Each message gets a random\n"
		"Micro-Id header unless --header Micro-Id=ID sets one (not with \"-\", where\n"
		"each line needs its own id).\n"
		"  --header K=V   add a message header (repeatable; no line breaks)\n"
		"  --wait         print the delivery to each node (ok, or failed with the reason);\n"
		"                 with \"-\", each line is published once the previous one's first\n"
		"                 attempt ended\n"
		"  --timeout S    seconds to wait for results and retries (default 10)\n"
		"  --outbox FILE  store each message in the SQLite outbox FILE before sending it\n"
		"                 and keep it there until every subscriber has it, so messages\n"
		"                 not delivered by the timeout (or by a killed process) are sent\n"
		"                 by the next run with this outbox (default MICRO_BROKER_OUTBOX)\n"
		"  --drain        publish nothing new: send what the existing outbox FILE holds,\n"
		"                 print how many messages were sent, and exit\n"
		"\n"
		"Exit status: 0 every message delivered to every node of its topic, 1 some\n"
		"message was not delivered to every node (with an outbox it stays there), 2\n"
		"usage or setup error (an outbox to drain that does not exist included).\n"
		"Messages that were not delivered are listed in a closing line: published,\n"
		"delivered, dropped, and with an outbox, kept in the outbox.\n"
		"MICRO_BROKER_BUSY_POLL_US tunes the broker (README, \"Environment variables\").\n");
}

static int pub_option(struct pub_args *a, const char *arg, const char *value)
{
	char *end = NULL;

	if (value == NULL) {
		cli_error("%s needs a value; see 'cmicro pub --help'", arg);
		return -1;
	}
	if (strcmp(arg, "--timeout") == 0) {
		long t = strtol(value, &end, 10);

		if (*end != '\0' || t <= 0 || t > 86400) {
			cli_error("--timeout \"%s\" is not a number of seconds from 1 to 86400", value);
			return -1;
		}
		a->timeout_s = (int)t;
		return 0;
	}
	if (strcmp(arg, "--outbox") == 0) {
		a->outbox = value;
		return 0;
	}
	if (strchr(value, '=') == NULL || value[0] == '=' || a->n_headers == PUB_MAX_HEADERS) {
		cli_error("--header \"%s\" is not KEY=VALUE (at most %d headers)", value,
			  PUB_MAX_HEADERS);
		return -1;
	}
	a->headers[a->n_headers++] = value;
	return 0;
}

/* A fixed Micro-Id on every line of "-" would make a --dedup subscriber
 * drop all lines but the first as repeats. */
static bool pub_fixed_id(const struct pub_args *a)
{
	for (int i = 0; i < a->n_headers; i++)
		if (strncmp(a->headers[i], "Micro-Id=", strlen("Micro-Id=")) == 0)
			return true;
	return false;
}

static int pub_build(const struct pub_args *a, const char *body, size_t len,
		     struct cmicro_message **out)
{
	int rc = cmicro_message_new(out);

	if (rc == 0)
		rc = cmicro_message_set_body(*out, body, len);
	for (int i = 0; rc == 0 && i < a->n_headers; i++) {
		const char *eq = strchr(a->headers[i], '=');
		char *key = strndup(a->headers[i], (size_t)(eq - a->headers[i]));

		rc = key != NULL ? cmicro_message_set_header(*out, key, eq + 1) : CMICRO_ENOMEM;
		free(key);
	}
	return rc;
}

/* --drain reads an existing outbox: creating one would only hide a wrong
 * path. */
static int pub_check_drain(const struct pub_args *a)
{
	struct stat st;

	if (a->outbox == NULL) {
		cli_error("--drain needs an outbox; give --outbox FILE or set MICRO_BROKER_OUTBOX");
		return -1;
	}
	if (a->topic != NULL) {
		cli_error("--drain publishes nothing new; leave out TOPIC and MESSAGE");
		return -1;
	}
	if (stat(a->outbox, &st) != 0) {
		cli_error("outbox %s does not exist, so there is nothing to drain; give the path "
			  "that the publisher used with --outbox or MICRO_BROKER_OUTBOX",
			  a->outbox);
		return -1;
	}
	return 0;
}

static int pub_check(struct pub_args *a)
{
	const char *env = getenv("MICRO_BROKER_OUTBOX");
	struct cmicro_message *probe = NULL;
	const char *id;
	bool empty_id;
	int rc;

	if (a->outbox == NULL && env != NULL && env[0] != '\0')
		a->outbox = env;
	if (a->drain)
		return pub_check_drain(a);
	if (a->topic == NULL || a->message == NULL) {
		cli_error("missing %s; see 'cmicro pub --help'", a->topic ? "MESSAGE" : "TOPIC");
		return -1;
	}
	if (cmicro_topic_check(a->topic) != 0) {
		cli_error("%s", cmicro_last_errmsg());
		return -1;
	}
	/* Headers are checked before the broker starts its listener and opens
	 * the outbox, because one that breaks a rule would fail every message. */
	rc = pub_build(a, "", 0, &probe);
	if (rc != 0) {
		cmicro_message_free(probe);
		cli_error("%s", cmicro_last_errmsg());
		return -1;
	}
	/* The rule that cmicro_broker_publish applies to the id. */
	id = cmicro_message_get_header(probe, "Micro-Id");
	empty_id = id != NULL && id[0] == '\0';
	cmicro_message_free(probe);
	if (empty_id) {
		cli_error("--header Micro-Id= is empty; leave it out to give each message a random "
			  "id, or set a unique one");
		return -1;
	}
	if (strcmp(a->message, "-") == 0 && pub_fixed_id(a)) {
		cli_error("--header Micro-Id gives every line of standard input the same id, so a "
			  "--dedup subscriber would drop all but the first; leave it out to give "
			  "each line its own random id");
		return -1;
	}
	return 0;
}

static int pub_parse(int argc, char **argv, struct pub_args *a)
{
	a->timeout_s = 10;
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (cli_is_help(arg)) {
			pub_usage(stdout);
			exit(CLI_EXIT_OK);
		} else if (strcmp(arg, "--wait") == 0) {
			a->wait = true;
		} else if (strcmp(arg, "--drain") == 0) {
			a->drain = true;
		} else if (strcmp(arg, "--header") == 0 || strcmp(arg, "--timeout") == 0 ||
			   strcmp(arg, "--outbox") == 0) {
			if (pub_option(a, arg, i + 1 < argc ? argv[i + 1] : NULL) != 0)
				return -1;
			i++;
		} else if (arg[0] == '-' && arg[1] != '\0') {
			cli_error("unknown option \"%s\"; see 'cmicro pub --help'", arg);
			return -1;
		} else if (a->topic == NULL) {
			a->topic = arg;
		} else if (a->message == NULL) {
			a->message = arg;
		} else {
			cli_error("unexpected argument \"%s\"; quote a MESSAGE with spaces", arg);
			return -1;
		}
	}
	return pub_check(a);
}

static void pub_report(const struct cmicro_publish_result *r)
{
	for (size_t i = 0; i < r->n_deliveries; i++) {
		const struct cmicro_delivery *d = &r->deliveries[i];

		if (d->ok) {
			printf("node %s %s ok (HTTP %d)\n", d->node_id, d->address, d->http_status);
			continue;
		}
		printf("node %s %s failed: %s", d->node_id, d->address, cmicro_err_name(d->err));
		if (d->tls_reason != CMICRO_TLS_REASON_NONE)
			printf(" (tls %s)", cmicro_tls_reason_name(d->tls_reason));
		printf(": %s\n", d->message);
	}
	if (r->targets == 0)
		printf("no subscriber of this topic is registered%s\n",
		       r->backlogged ? "; the message waits in the backlog" : "");
	else
		printf("received by %zu of %zu nodes%s\n", r->received, r->targets,
		       r->backlogged ? "; kept in the backlog for retry" : "");
	fflush(stdout);
}

/* Publishes one message; with --wait prints the first attempt's outcome. */
static int pub_one(struct cmicro_broker *b, const struct pub_args *a, const char *body,
		   size_t len)
{
	struct cmicro_message *msg = NULL;
	struct cmicro_publication *pub = NULL;
	const struct cmicro_publish_result *r = NULL;
	int rc = pub_build(a, body, len, &msg);

	if (rc == 0)
		rc = cmicro_broker_publish(b, a->topic, msg, a->wait ? &pub : NULL);
	cmicro_message_free(msg);
	if (rc != 0) {
		cli_error_rc("publish", rc);
		return rc;
	}
	if (pub != NULL) {
		rc = cmicro_publication_wait(pub, a->timeout_s * 1000, &r);
		if (rc == 0)
			pub_report(r);
		else
			cli_error_rc("wait", rc);
		cmicro_publication_free(pub);
	}
	return 0;
}

static int pub_stdin(struct cmicro_broker *b, const struct pub_args *a)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		rc = pub_one(b, a, line, (size_t)n);
	}
	free(line);
	return rc;
}

/* Prints the closing summary after the disconnect, so nothing is in
 * flight or in the backlog any more. Every message published in this run
 * or loaded from the outbox at connect was then delivered, dropped or kept
 * in the outbox, so the delivered count is what the other two leave. The
 * outbox count includes invalid rows, which were loaded but never sent. */
static void pub_summary(const struct pub_args *a, const struct cmicro_broker_stats *st,
			uint64_t loaded, const char *reason)
{
	uint64_t total = st->published + loaded;
	uint64_t undelivered = st->dropped + st->outbox;
	uint64_t delivered = total > undelivered ? total - undelivered : 0;
	char kept[512] = "";

	if (a->outbox != NULL)
		snprintf(kept, sizeof(kept), ", %llu kept in outbox %s",
			 (unsigned long long)st->outbox, a->outbox);
	cli_error("%s; %llu published, %llu delivered, %llu in the backlog, %llu dropped%s", reason,
		  (unsigned long long)st->published, (unsigned long long)delivered,
		  (unsigned long long)st->backlog, (unsigned long long)st->dropped, kept);
	if (loaded > 0)
		cli_error("the delivered and kept counts include %llu messages loaded from the "
			  "outbox at the start",
			  (unsigned long long)loaded);
	if (st->outbox > 0)
		cli_error("the next 'cmicro pub' with this outbox sends the kept messages "
			  "('cmicro pub --drain --outbox %s' sends only those); rows reported as "
			  "BROKER-OUTBOX-BAD-ROW are never sent and need the fix that their log "
			  "line gives",
			  a->outbox);
}

/* Waits for retries, disconnects so that the drop counters are final,
 * then decides the exit status from them. loaded is the outbox's message
 * count right after connect. */
static int pub_finish(struct cmicro_broker *b, const struct pub_args *a, uint64_t loaded)
{
	struct cmicro_broker_stats st;
	int flushed = cmicro_broker_flush(b, a->timeout_s * 1000);
	int rc = cmicro_broker_disconnect(b);
	bool ok;

	if (rc != 0)
		cli_error_rc("disconnect", rc);
	cmicro_broker_get_stats(b, &st);
	ok = flushed == 0 && rc == 0 && st.dropped == 0 && st.outbox == 0;
	if (a->wait && st.retried > 0)
		printf("retried %llu deliveries from the backlog; %s\n",
		       (unsigned long long)st.retried,
		       ok ? "every message delivered" : "some undelivered");
	if (ok) {
		if (a->drain)
			printf("sent %llu messages from outbox %s\n", (unsigned long long)loaded,
			       a->outbox);
		return CLI_EXIT_OK;
	}
	pub_summary(a, &st, loaded,
		    flushed != 0 ? "some messages were not delivered in time"
		    : st.dropped > 0 ? "messages dropped"
				     : "some messages were not delivered");
	return CLI_EXIT_REJECT;
}

int cmd_pub(int argc, char **argv)
{
	struct pub_args a;
	struct cmicro_broker_opts opts;
	struct cmicro_tls_config *tls = NULL;
	struct cmicro_broker *b = NULL;
	struct cmicro_broker_stats st;
	int rc;

	memset(&a, 0, sizeof(a));
	if (pub_parse(argc, argv, &a) != 0)
		return CLI_EXIT_USAGE;
	cmicro_broker_opts_init(&opts);
	opts.outbox_path = a.outbox;
	rc = cmicro_tls_config_from_env(&tls);
	opts.tls = tls;
	if (rc == 0)
		rc = cmicro_broker_new(&opts, &b);
	cmicro_tls_config_free(tls);
	if (rc == 0)
		rc = cmicro_broker_connect(b);
	if (rc != 0) {
		cli_error_rc("broker", rc);
		cmicro_broker_free(b);
		return CLI_EXIT_USAGE;
	}
	cmicro_broker_get_stats(b, &st);
	if (a.drain)
		rc = 0;
	else if (strcmp(a.message, "-") == 0)
		rc = pub_stdin(b, &a);
	else
		rc = pub_one(b, &a, a.message, strlen(a.message));
	rc = rc == 0 ? pub_finish(b, &a, st.outbox) : CLI_EXIT_USAGE;
	cmicro_broker_free(b);
	return rc;
}
