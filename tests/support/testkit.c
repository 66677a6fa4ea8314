#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testkit.h"

char *tk_tmpdir(void)
{
	char tmpl[] = "/tmp/cmicro-test-XXXXXX";
	char *dir = mkdtemp(tmpl);

	assert_non_null(dir);
	return strdup(dir);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tk_tmpdir_remove(char *dir)
{
	if (dir == NULL)
		return;
	if (strncmp(dir, "/tmp/cmicro-test-", 17) == 0)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

char *tk_path(char *buf, size_t size, const char *dir, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
	return buf;
}

void tk_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

int tk_run(char **output, int timeout_s, const char *fmt, ...)
{
	char cmd[8192];
	char full[8400];
	va_list ap;
	FILE *p;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char chunk[4096];
	size_t n;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "timeout -k 5 %d sh -c '%s' 2>&1 </dev/null", timeout_s, cmd);
	/* The command must not contain single quotes; tests keep to that. */
	assert_null(strchr(cmd, '\''));
	p = popen(full, "r");
	assert_non_null(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	if (buf == NULL)
		buf = calloc(1, 1);
	buf[len] = '\0';
	status = pclose(p);
	if (output != NULL)
		*output = buf;
	else
		free(buf);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

pid_t tk_spawn(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	return pid;
}

void tk_kill(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(-pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return;
		usleep(100 * 1000);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, &status, 0);
}

int tk_free_port(void)
{
	struct sockaddr_in sa = {0};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	assert_true(fd >= 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

int tk_wait_port(int port, int timeout_ms)
{
	struct sockaddr_in sa = {0};

	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	for (int waited = 0; waited < timeout_ms; waited += 50) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));

		close(fd);
		if (rc == 0)
			return 0;
		usleep(50 * 1000);
	}
	return -1;
}

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cap_buf;
static size_t cap_len;

static void cap_handler(void *user, enum cmicro_log_level level, const char *component,
			const char *msg_id, const char *text)
{
	char line[4096];
	int n;

	(void)user;
	(void)component;
	n = snprintf(line, sizeof(line), "%s %s %s\n", cmicro_log_level_name(level), msg_id, text);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	pthread_mutex_lock(&cap_lock);
	char *grown = realloc(cap_buf, cap_len + (size_t)n + 1);
	if (grown != NULL) {
		cap_buf = grown;
		memcpy(cap_buf + cap_len, line, (size_t)n + 1);
		cap_len += (size_t)n;
	}
	pthread_mutex_unlock(&cap_lock);
}

void tk_log_capture_start(void)
{
	pthread_mutex_lock(&cap_lock);
	free(cap_buf);
	cap_buf = calloc(1, 1);
	cap_len = 0;
	pthread_mutex_unlock(&cap_lock);
	cmicro_log_set_handler(cap_handler, NULL);
}

const char *tk_log_captured(void)
{
	return cap_buf ? cap_buf : "";
}

int tk_log_count(const char *id)
{
	int count = 0;
	const char *p;
	char needle[256];

	snprintf(needle, sizeof(needle), " %s ", id);
	pthread_mutex_lock(&cap_lock);
	for (p = cap_buf; p != NULL && (p = strstr(p, needle)) != NULL; p++)
		count++;
	pthread_mutex_unlock(&cap_lock);
	return count;
}

void tk_log_capture_stop(void)
{
	cmicro_log_set_handler(NULL, NULL);
	pthread_mutex_lock(&cap_lock);
	free(cap_buf);
	cap_buf = NULL;
	cap_len = 0;
	pthread_mutex_unlock(&cap_lock);
}

const char *tk_cli(void)
{
	const char *bin = getenv("CMICRO_BIN");

	return bin ? bin : "cmicro";
}
