/*
 * `cmicro demo`: the main job in one command. It plays a small fleet on this
 * machine. A CA, subscribers and a publisher run as separate processes that
 * find each other through the embedded SQLite registry and talk over verified
 * TLS. Then an untrusted subscriber is rejected with its reason, and audit
 * mode reports the same failure without enforcing it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmicro/cmicro.h>

#include "cli.h"

#define DEMO_MAX_CHILDREN 8
#define DEMO_WAIT_SECONDS 20

struct demo_child {
	char name[32];
	pid_t pid;
	int fds[2];	/* stdout, stderr */
	char line[2][4096];
	size_t len[2];
	int exit_status; /* -1 while running */
	int messages;	 /* lines printed on stdout: one per message received */
};

struct demo {
	char dir[512];
	char exe[PATH_MAX];
	struct demo_child children[DEMO_MAX_CHILDREN];
	int n_children;
	bool verbose;
};

static void demo_usage(FILE *out)
{
	fprintf(out,
		"usage: cmicro demo [--verbose] [--keep]\n\n"
		"Runs a small fleet on this machine over verified TLS on the embedded\n"
		"SQLite registry: a CA and node certificates, two broadcast subscribers,\n"
		"a queue group of two, a publisher (all separate processes with\n"
		"MICRO_TLS_SECURE=true); then a subscriber with an untrusted certificate\n"
		"rejected with the reason; then audit mode (MICRO_TLS_SECURE=audit)\n"
		"reporting the same failure without enforcing it. Files go to a temporary\n"
		"directory that is removed at the end unless --keep is given.\n\n"
		"  --verbose  also show the processes' log lines\n"
		"  --keep     keep the temporary directory (certificates, registry)\n\n"
		"Exit codes: 0 every step behaved as described, 1 a step did not,\n"
		"2 usage error or the demo could not start.\n");
}

static void demo_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void demo_say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* Returns the path of a file in the demo directory. The result lives in one
 * of a few rotating buffers, enough for the arguments of one call. */
static char *demo_path(const struct demo *d, const char *name)
{
	static char paths[8][1024];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%.256s", d->dir, name);
	return p;
}

/* Writes a CA, certificates for the trusted nodes, and a self-signed
 * certificate that no one trusts. */
static int demo_make_certs(const struct demo *d)
{
	static const char *const hosts[] = {"127.0.0.1", "localhost"};
	struct cmicro_cert_opts opts;
	struct cmicro_cert *ca = NULL, *node = NULL, *rogue = NULL;
	int rc;

	cmicro_cert_opts_init(&opts);
	opts.common_name = "cmicro demo CA";
	rc = cmicro_cert_ca_new(&opts, &ca);
	if (rc == 0)
		rc = cmicro_cert_save(ca, demo_path(d, "ca.pem"), demo_path(d, "ca.key"), 0);

	cmicro_cert_opts_init(&opts);
	opts.hosts = hosts;
	opts.n_hosts = 2;
	opts.usage = CMICRO_CERT_USAGE_BOTH;
	if (rc == 0)
		rc = cmicro_cert_issue(ca, &opts, &node);
	if (rc == 0)
		rc = cmicro_cert_save(node, demo_path(d, "node.pem"), demo_path(d, "node.key"),
				      CMICRO_CERT_SAVE_CHAIN);
	if (rc == 0)
		rc = cmicro_cert_selfsigned(hosts, 2, &rogue);
	if (rc == 0)
		rc = cmicro_cert_save(rogue, demo_path(d, "rogue.pem"), demo_path(d, "rogue.key"), 0);
	if (rc != 0)
		cli_error_rc("creating the demo certificates", rc);
	cmicro_cert_free(ca);
	cmicro_cert_free(node);
	cmicro_cert_free(rogue);
	return rc;
}

/* Environment of every demo process; cert selects the node's identity. */
static void demo_child_env(const struct demo *d, const char *secure, const char *cert,
			   const char *key)
{
	setenv("MICRO_REGISTRY", "sqlite", 1);
	setenv("MICRO_REGISTRY_ADDRESS", demo_path(d, "registry.db"), 1);
	setenv("MICRO_BROKER_ADDRESS", "127.0.0.1:0", 1);
	setenv("MICRO_TLS_SECURE", secure, 1);
	setenv("MICRO_TLS_CA_FILE", demo_path(d, "ca.pem"), 1);
	setenv("MICRO_TLS_CERT_FILE", demo_path(d, cert), 1);
	setenv("MICRO_TLS_KEY_FILE", demo_path(d, key), 1);
}

static struct demo_child *demo_spawn(struct demo *d, const char *name, const char *secure,
				     const char *cert, char *const argv[])
{
	struct demo_child *c;
	int out[2], err[2];
	char key[64];

	if (d->n_children == DEMO_MAX_CHILDREN || pipe(out) != 0)
		return NULL;
	if (pipe(err) != 0) {
		close(out[0]);
		close(out[1]);
		return NULL;
	}
	snprintf(key, sizeof(key), "%.*s.key", (int)(strlen(cert) - 4), cert);
	c = &d->children[d->n_children++];
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->exit_status = -1;
	fflush(NULL);
	c->pid = fork();
	if (c->pid == 0) {
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		close(out[0]);
		close(err[0]);
		demo_child_env(d, secure, cert, key);
		execv(d->exe, argv);
		fprintf(stderr, "cannot run %s: %s\n", d->exe, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	c->fds[0] = out[0];
	c->fds[1] = err[0];
	if (c->pid < 0) {
		close(out[0]);
		close(err[0]);
		d->n_children--;
		return NULL;
	}
	return c;
}

/* Prints one finished line of a child, prefixed with its name. Log lines
 * (stderr) are shown only with --verbose, except the TLS verdicts the demo
 * is about. */
static void demo_show_line(const struct demo *d, struct demo_child *c, int stream,
			   const char *line)
{
	bool tls_news = strstr(line, "TLS-AUDIT") != NULL || strstr(line, "verif") != NULL ||
			strstr(line, "reject") != NULL;

	if (stream == 0) {
		printf("  [%s] %s\n", c->name, line);
		c->messages++;
	} else if (d->verbose || tls_news)
		printf("  [%s log] %s\n", c->name, line);
	fflush(stdout);
}

/* Reads what is available from a child's stream; returns true when a
 * complete line containing want (if not NULL) was seen. */
static bool demo_drain(struct demo *d, struct demo_child *c, int stream, const char *want)
{
	char chunk[2048];
	ssize_t n = read(c->fds[stream], chunk, sizeof(chunk));
	bool seen = false;

	if (n <= 0) {
		close(c->fds[stream]);
		c->fds[stream] = -1;
		return false;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (chunk[i] != '\n' && c->len[stream] + 1 < sizeof(c->line[stream])) {
			c->line[stream][c->len[stream]++] = chunk[i];
			continue;
		}
		c->line[stream][c->len[stream]] = '\0';
		demo_show_line(d, c, stream, c->line[stream]);
		if (want != NULL && strstr(c->line[stream], want) != NULL)
			seen = true;
		c->len[stream] = 0;
	}
	return seen;
}

/*
 * Relays every child's output until target prints a line containing want
 * (want NULL: until target exits), or the deadline passes. With target
 * NULL it only relays until the deadline. Returns true on success.
 */
static bool demo_wait(struct demo *d, struct demo_child *target, const char *want, int seconds)
{
	time_t deadline = time(NULL) + seconds;

	while (time(NULL) < deadline) {
		struct pollfd pfd[DEMO_MAX_CHILDREN * 2];
		struct demo_child *owner[DEMO_MAX_CHILDREN * 2];
		int stream[DEMO_MAX_CHILDREN * 2];
		int n = 0;

		for (int i = 0; i < d->n_children; i++) {
			for (int s = 0; s < 2; s++) {
				if (d->children[i].fds[s] < 0)
					continue;
				pfd[n] = (struct pollfd){.fd = d->children[i].fds[s], .events = POLLIN};
				owner[n] = &d->children[i];
				stream[n++] = s;
			}
		}
		if (target != NULL && want == NULL && target->fds[0] < 0 && target->fds[1] < 0)
			break;
		if (n == 0 || poll(pfd, (nfds_t)n, 200) < 0)
			break;
		for (int i = 0; i < n; i++) {
			if ((pfd[i].revents & (POLLIN | POLLHUP)) == 0)
				continue;
			if (demo_drain(d, owner[i], stream[i], want) && owner[i] == target &&
			    want != NULL)
				return true;
		}
	}
	if (target == NULL)
		return true;
	if (want != NULL)
		return false;
	for (int i = 0; i < seconds * 10; i++) {
		int status;

		if (waitpid(target->pid, &status, WNOHANG) == target->pid) {
			target->exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
			return true;
		}
		usleep(100 * 1000);
	}
	return false;
}

static void demo_stop_all(struct demo *d)
{
	for (int i = 0; i < d->n_children; i++) {
		struct demo_child *c = &d->children[i];
		int status;

		if (c->exit_status < 0 && c->pid > 0) {
			kill(c->pid, SIGTERM);
			for (int t = 0; t < 50 && waitpid(c->pid, &status, WNOHANG) == 0; t++)
				usleep(100 * 1000);
			if (waitpid(c->pid, &status, WNOHANG) == 0) {
				kill(c->pid, SIGKILL);
				waitpid(c->pid, &status, 0);
			}
			c->exit_status = 0;
		}
		for (int s = 0; s < 2; s++) {
			if (c->fds[s] >= 0)
				close(c->fds[s]);
			c->fds[s] = -1;
		}
	}
}

static int demo_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Releases the slot of the most recently spawned child once it has exited,
 * so short-lived publishers do not use up the table. */
static void demo_forget_last(struct demo *d)
{
	struct demo_child *c = &d->children[d->n_children - 1];

	for (int s = 0; s < 2; s++) {
		if (c->fds[s] >= 0)
			close(c->fds[s]);
	}
	d->n_children--;
}

/* Runs a publisher to completion and returns its exit status (-1 when it
 * could not start or did not finish in time). */
static int demo_publish(struct demo *d, const char *name, const char *secure, const char *topic,
			const char *message)
{
	char *argv[] = {"cmicro", "pub", (char *)topic, (char *)message, "--wait", "--timeout",
			"5", NULL};
	struct demo_child *pub = demo_spawn(d, name, secure, "node.pem", argv);
	int status;

	if (pub == NULL) {
		cli_error("cannot start the publisher %s", name);
		return -1;
	}
	if (!demo_wait(d, pub, NULL, DEMO_WAIT_SECONDS)) {
		cli_error("publisher %s did not finish within %d seconds", name, DEMO_WAIT_SECONDS);
		return -1;
	}
	status = pub->exit_status;
	demo_forget_last(d);
	return status;
}

static struct demo_child *demo_subscribe(struct demo *d, const char *name, const char *cert,
					 const char *topic, const char *queue)
{
	char *argv[] = {"cmicro", "sub", (char *)topic, queue ? "--queue" : NULL, (char *)queue,
			NULL};
	struct demo_child *c = demo_spawn(d, name, "true", cert, argv);

	if (c != NULL && demo_wait(d, c, "subscribed", DEMO_WAIT_SECONDS))
		return c;
	cli_error("subscriber %s did not start within %d seconds", name, DEMO_WAIT_SECONDS);
	return NULL;
}

/* Returns 0 when the named child printed exactly want messages, else 1. */
static int demo_expect(const struct demo *d, const char *name, int want)
{
	for (int i = 0; i < d->n_children; i++) {
		if (strcmp(d->children[i].name, name) != 0)
			continue;
		if (d->children[i].messages == want)
			return 0;
		demo_say("   unexpected: %s received %d messages, expected %d", name,
			 d->children[i].messages, want);
		return 1;
	}
	return 1;
}

/* Checks as demo_expect, summed over the children whose name starts with
 * prefix, and prints how the messages split between them. The publisher
 * picks a member at random for each message, so one member may get all. */
static int demo_expect_total(const struct demo *d, const char *prefix, int want)
{
	char split[160] = "";
	size_t used = 0;
	int total = 0;

	for (int i = 0; i < d->n_children; i++) {
		if (strncmp(d->children[i].name, prefix, strlen(prefix)) != 0)
			continue;
		total += d->children[i].messages;
		if (used < sizeof(split))
			used += (size_t)snprintf(split + used, sizeof(split) - used, "%s%s %d",
						 used > 0 ? ", " : "", d->children[i].name,
						 d->children[i].messages);
	}
	if (total == want) {
		demo_say("   each of the %d messages reached exactly one member (%s); the "
			 "publisher picks a member at random",
			 total, split);
		return 0;
	}
	demo_say("   unexpected: the queue group received %d messages, expected %d", total, want);
	return 1;
}

static int demo_run(struct demo *d)
{
	int failures = 0;
	char text[64];

	demo_say("== 1. A CA and node certificates (ECDSA P-256) in %s", d->dir);
	if (demo_make_certs(d) != 0)
		return CLI_EXIT_USAGE;
	demo_say("   ca.pem signs node.pem (127.0.0.1, localhost); rogue.pem is self-signed");

	demo_say("\n== 2. Subscribers with MICRO_TLS_SECURE=true on the SQLite registry");
	if (!demo_subscribe(d, "sub-a", "node.pem", "demo.events", NULL) ||
	    !demo_subscribe(d, "sub-b", "node.pem", "demo.events", NULL) ||
	    !demo_subscribe(d, "worker-1", "node.pem", "demo.jobs", "workers") ||
	    !demo_subscribe(d, "worker-2", "node.pem", "demo.jobs", "workers"))
		return CLI_EXIT_REJECT;
	demo_say("   sub-a and sub-b subscribe to demo.events; worker-1 and worker-2 to "
		 "demo.jobs in queue group \"workers\"");

	demo_say("\n== 3. Broadcast: both subscribers of demo.events receive each message");
	for (int i = 1; i <= 2; i++) {
		snprintf(text, sizeof(text), "event %d over verified TLS", i);
		failures += demo_publish(d, "publisher", "true", "demo.events", text) != 0;
	}
	demo_say("\n== 4. Queue group: each demo.jobs message reaches one worker");
	for (int i = 1; i <= 4; i++) {
		snprintf(text, sizeof(text), "job %d", i);
		failures += demo_publish(d, "publisher", "true", "demo.jobs", text) != 0;
	}
	demo_wait(d, NULL, NULL, 2);
	failures += demo_expect(d, "sub-a", 2) + demo_expect(d, "sub-b", 2);
	failures += demo_expect_total(d, "worker-", 4);

	demo_say("\n== 5. A subscriber whose certificate no one trusts (self-signed)");
	if (!demo_subscribe(d, "untrusted", "rogue.pem", "demo.alerts", NULL))
		return CLI_EXIT_REJECT;
	demo_say("   secure publisher: the handshake is rejected and the reason reported");
	failures += demo_publish(d, "secure-pub", "true", "demo.alerts", "alert 1") == 0;
	demo_say("   \"alert 1\" stays undelivered: secure mode never sends to a node it "
		 "cannot verify, and this publisher exits without an outbox");

	demo_say("\n== 6. The same publisher in audit mode (MICRO_TLS_SECURE=audit)");
	demo_say("   the message is delivered and the failure secure mode would reject is logged");
	failures += demo_publish(d, "audit-pub", "audit", "demo.alerts", "alert 2") != 0;
	demo_wait(d, NULL, NULL, 2);
	failures += demo_expect(d, "untrusted", 1);

	demo_say("\n== %s", failures == 0 ? "Done: every step behaved as described"
					  : "Done, but some steps did not behave as described");
	return failures == 0 ? CLI_EXIT_OK : CLI_EXIT_REJECT;
}

int cmd_demo(int argc, char **argv)
{
	struct demo d = {.verbose = false};
	bool keep = false;
	ssize_t n;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			demo_usage(stdout);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--verbose") == 0) {
			d.verbose = true;
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = true;
		} else {
			cli_error("unknown option \"%s\" for demo", argv[i]);
			demo_usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	n = readlink("/proc/self/exe", d.exe, sizeof(d.exe) - 1);
	if (n <= 0) {
		cli_error("cannot find the cmicro executable: %s", strerror(errno));
		return CLI_EXIT_USAGE;
	}
	d.exe[n] = '\0';
	snprintf(d.dir, sizeof(d.dir), "%.400s/cmicro-demo-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(d.dir) == NULL) {
		cli_error("cannot create a temporary directory under %s: %s", d.dir, strerror(errno));
		return CLI_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = demo_run(&d);
	demo_stop_all(&d);
	if (keep)
		demo_say("kept %s", d.dir);
	else
		nftw(d.dir, demo_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
