/* cmicro sub: subscribe to a topic and print each message as one line. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <cmicro/cmicro.h>

#include "cli.h"

struct sub_args {
	const char *topic;
	const char *queue;
	const char *address;
	long count; /* 0: no limit */
	bool json;
	bool plain; /* serve plain HTTP (registered as secure=false) */
	bool dedup;
};

struct sub_state {
	struct sub_args args;
	pthread_mutex_t lock;
	atomic_long received;
};

static void sub_usage(FILE *out)
{
	fprintf(out,
		"usage: cmicro sub TOPIC [--queue NAME] [--count N] [--json] [--address HOST:PORT]\n"
		"                  [--plain] [--dedup]\n"
		"\n"
		"Subscribes to TOPIC and prints each message on one line of standard output.\n"
		"  --queue NAME    join queue group NAME: one member receives each message\n"
		"  --count N       exit after N messages\n"
		"  --json          print each message as a JSON object\n"
		"  --address A     listen on A (default MICRO_BROKER_ADDRESS, else 127.0.0.1:0)\n"
		"  --plain         serve plain HTTP, registered as secure=false (publishers in\n"
		"                  secure mode refuse it unless MICRO_TLS_ALLOW_PLAINTEXT=true)\n"
		"  --dedup         print a message only once even when its publisher sends it\n"
		"                  again: drops repeats of the last 4096 Micro-Id values\n"
		"                  (also MICRO_BROKER_DEDUP=true)\n"
		"\n"
		"A line shows the topic, the headers without Micro-Id, and the body; --json\n"
		"shows every header. On exit, a summary of handled and duplicate messages goes\n"
		"to standard error.\n"
		"The registry comes from MICRO_REGISTRY and MICRO_REGISTRY_ADDRESS, TLS from\n"
		"MICRO_TLS_SECURE, MICRO_TLS_CERT_FILE, MICRO_TLS_KEY_FILE and MICRO_TLS_CA_FILE.\n"
		"MICRO_BROKER_INLINE_HANDLERS and MICRO_BROKER_BUSY_POLL_US tune the broker\n"
		"(README, \"Environment variables\").\n"
		"Prints \"subscribed ...\" on standard error once registered. SIGINT or SIGTERM\n"
		"deregisters and exits.\n");
}

static int sub_parse(int argc, char **argv, struct sub_args *a)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;

		if (cli_is_help(arg)) {
			sub_usage(stdout);
			exit(CLI_EXIT_OK);
		} else if (strcmp(arg, "--json") == 0) {
			a->json = true;
		} else if (strcmp(arg, "--plain") == 0) {
			a->plain = true;
		} else if (strcmp(arg, "--dedup") == 0) {
			a->dedup = true;
		} else if ((strcmp(arg, "--queue") == 0 || strcmp(arg, "--address") == 0 ||
			    strcmp(arg, "--count") == 0) && next == NULL) {
			cli_error("%s needs a value; see 'cmicro sub --help'", arg);
			return -1;
		} else if (strcmp(arg, "--queue") == 0) {
			a->queue = argv[++i];
			if (a->queue[0] == '\0') {
				cli_error("--queue needs a group name, got an empty one; omit --queue "
					  "to receive every message (broadcast)");
				return -1;
			}
		} else if (strcmp(arg, "--address") == 0) {
			a->address = argv[++i];
		} else if (strcmp(arg, "--count") == 0) {
			a->count = strtol(argv[++i], &end, 10);
			if (*end != '\0' || a->count <= 0) {
				cli_error("--count \"%s\" is not a positive number", argv[i]);
				return -1;
			}
		} else if (arg[0] == '-' && arg[1] != '\0') {
			cli_error("unknown option \"%s\"; see 'cmicro sub --help'", arg);
			return -1;
		} else if (a->topic == NULL) {
			a->topic = arg;
		} else {
			cli_error("unexpected argument \"%s\"; give one TOPIC", arg);
			return -1;
		}
	}
	if (a->topic == NULL) {
		cli_error("missing TOPIC; see 'cmicro sub --help'");
		return -1;
	}
	if (cmicro_topic_check(a->topic) != 0) {
		cli_error("%s", cmicro_last_errmsg());
		return -1;
	}
	return 0;
}

/* Writes s with newlines, tabs and other control bytes escaped. */
static void sub_print_text(FILE *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			fputs("\\n", out);
		else if (c == '\\')
			fputs("\\\\", out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
}

static void sub_print_plain(const char *topic, const struct cmicro_message *msg)
{
	size_t len = 0;
	const char *body = cmicro_message_body(msg, &len);

	const char *sep = "";

	printf("%s {", topic);
	for (size_t i = 0; i < cmicro_message_header_count(msg); i++) {
		const char *k = cmicro_message_header_key(msg, i);
		const char *v = cmicro_message_header_value(msg, i);

		/* A random id per message makes lines hard to compare by eye;
		 * --json keeps it. */
		if (strcmp(k, "Micro-Id") == 0)
			continue;
		printf("%s%s=", sep, k);
		sub_print_text(stdout, v, strlen(v));
		sep = ", ";
	}
	printf("} ");
	sub_print_text(stdout, body, len);
	putchar('\n');
}

static void sub_print_json(const char *topic, const struct cmicro_message *msg)
{
	json_t *obj = json_object(), *headers = json_object();
	size_t len = 0;
	const char *body = cmicro_message_body(msg, &len);
	json_t *jbody = json_stringn(body, len);
	char *text;

	for (size_t i = 0; i < cmicro_message_header_count(msg); i++)
		json_object_set_new(headers, cmicro_message_header_key(msg, i),
				    json_string(cmicro_message_header_value(msg, i)));
	json_object_set_new(obj, "topic", json_string(topic));
	json_object_set_new(obj, "headers", headers);
	/* A body that is not UTF-8 cannot be a JSON string; it is printed as
	 * null with its length. */
	json_object_set_new(obj, "body", jbody ? jbody : json_null());
	json_object_set_new(obj, "body_bytes", json_integer((json_int_t)len));
	text = json_dumps(obj, JSON_COMPACT);
	if (text != NULL)
		puts(text);
	free(text);
	json_decref(obj);
}

static int sub_handle(void *user, const char *topic, const struct cmicro_message *msg)
{
	struct sub_state *st = user;
	long n;

	pthread_mutex_lock(&st->lock);
	n = atomic_load(&st->received);
	if (st->args.count == 0 || n < st->args.count) {
		if (st->args.json)
			sub_print_json(topic, msg);
		else
			sub_print_plain(topic, msg);
		fflush(stdout);
		atomic_fetch_add(&st->received, 1);
	}
	pthread_mutex_unlock(&st->lock);
	return 0;
}

/* Waits for SIGINT/SIGTERM, or for the message count to be reached. */
static void sub_wait(struct sub_state *st, const sigset_t *set)
{
	struct timespec tick = {0, 100 * 1000 * 1000};

	for (;;) {
		int sig = sigtimedwait(set, NULL, &tick);

		if (sig == SIGINT || sig == SIGTERM)
			return;
		if (st->args.count > 0 && atomic_load(&st->received) >= st->args.count)
			return;
	}
}

static void sub_summary(const struct cmicro_broker *b)
{
	struct cmicro_broker_stats st;

	cmicro_broker_get_stats(b, &st);
	fprintf(stderr, "handled %llu message%s, dropped %llu duplicate%s\n",
		(unsigned long long)st.received, st.received == 1 ? "" : "s",
		(unsigned long long)st.duplicates, st.duplicates == 1 ? "" : "s");
}

static int sub_run(struct sub_state *st, const sigset_t *set)
{
	struct cmicro_broker_opts opts;
	struct cmicro_tls_config *tls = NULL;
	struct cmicro_broker *b = NULL;
	struct cmicro_subscription *sub = NULL;
	int rc;

	cmicro_broker_opts_init(&opts);
	opts.address = st->args.address;
	opts.dedup = st->args.dedup;
	rc = cmicro_tls_config_from_env(&tls);
	if (rc != 0) {
		cli_error_rc("TLS configuration", rc);
		return CLI_EXIT_USAGE;
	}
	opts.tls = st->args.plain ? NULL : tls;
	rc = cmicro_broker_new(&opts, &b);
	cmicro_tls_config_free(tls);
	if (rc == 0)
		rc = cmicro_broker_connect(b);
	if (rc == 0)
		rc = cmicro_broker_subscribe(b, st->args.topic, st->args.queue, sub_handle, st, &sub);
	if (rc != 0) {
		cli_error_rc("subscribe", rc);
		cmicro_broker_free(b);
		return CLI_EXIT_USAGE;
	}
	fprintf(stderr, "subscribed to %s as node %s at %s (%s, %s)\n", st->args.topic,
		cmicro_subscription_node_id(sub), cmicro_subscription_address(sub),
		st->args.queue ? st->args.queue : "broadcast",
		cmicro_broker_is_secure(b) ? "https" : "http");
	sub_wait(st, set);
	cmicro_subscription_free(sub);
	sub_summary(b);
	cmicro_broker_free(b);
	return CLI_EXIT_OK;
}

int cmd_sub(int argc, char **argv)
{
	struct sub_state st;
	sigset_t set;
	int rc;

	memset(&st, 0, sizeof(st));
	if (sub_parse(argc, argv, &st.args) != 0)
		return CLI_EXIT_USAGE;
	pthread_mutex_init(&st.lock, NULL);
	/* A client that closes right after its handshake (cmicro tls check and
	 * scan do) makes the TLS session ticket write fail with EPIPE, which
	 * must not end the process. */
	signal(SIGPIPE, SIG_IGN);
	/* Blocked before the broker starts its threads, so only sigtimedwait
	 * receives them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rc = sub_run(&st, &set);
	pthread_mutex_destroy(&st.lock);
	return rc;
}
