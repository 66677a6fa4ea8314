/*
 * Prints the resident set size of a process that only loads OpenSSL 3,
 * initialises libssl and creates one server SSL_CTX: the floor under the
 * idle RSS of any TLS subscriber linked against the system's OpenSSL
 * (docs/benchmarks.md, "Profile"). Build and run from the repository root:
 *
 *   cc -O2 -o /tmp/openssl_rss bench/openssl_rss.c -lssl -lcrypto && /tmp/openssl_rss
 */
#include <stdio.h>
#include <string.h>

#include <openssl/ssl.h>

/* Prints VmRSS and RssFile of this process after step. */
static void print_rss(const char *step)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0 || strncmp(line, "RssFile:", 8) == 0)
			printf("%-8s %s", step, line);
	}
	fclose(f);
}

int main(void)
{
	SSL_CTX *ctx;

	print_rss("start");
	if (OPENSSL_init_ssl(0, NULL) != 1)
		return 1;
	print_rss("init");
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		return 1;
	print_rss("ctx");
	SSL_CTX_free(ctx);
	return 0;
}
