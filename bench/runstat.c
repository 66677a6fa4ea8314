/*
 * runstat OUTFILE COMMAND [ARGS...]: runs COMMAND and, when it ends, writes
 * its CPU time (user + system, including every descendant it waited for,
 * such as nginx's workers) and peak resident set size to OUTFILE as
 * "cpu_s=S maxrss_kb=K status=X". SIGTERM and SIGINT are passed on to
 * COMMAND, so the benchmark stops a server through runstat's PID.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int write_stats(const char *path, int status)
{
	struct rusage ru;
	FILE *f = fopen(path, "w");
	double cpu;

	if (f == NULL || getrusage(RUSAGE_CHILDREN, &ru) != 0) {
		perror(path);
		if (f != NULL)
			fclose(f);
		return 1;
	}
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	fprintf(f, "cpu_s=%.3f maxrss_kb=%ld status=%d\n", cpu, ru.ru_maxrss,
		WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = forward_signal};
	int status = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: runstat OUTFILE COMMAND [ARGS...]\n");
		return 2;
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	child_pid = fork();
	if (child_pid < 0) {
		perror("fork");
		return 2;
	}
	if (child_pid == 0) {
		execvp(argv[2], argv + 2);
		perror(argv[2]);
		_exit(127);
	}
	while (waitpid(child_pid, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("waitpid");
			return 2;
		}
	}
	if (write_stats(argv[1], status) != 0)
		return 2;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
