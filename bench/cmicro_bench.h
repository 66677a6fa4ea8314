/*
 * Broker set-up shared by cmicro_bench_pub and cmicro_bench_sub: TLS 1.3
 * with verification on, trusting only the benchmark's CA, with the node
 * certificate and key issued from it, and an SQLite registry file shared by
 * the two processes.
 */
#ifndef CMICRO_BENCH_H
#define CMICRO_BENCH_H

#include <signal.h>
#include <stdio.h>

#include <cmicro/cmicro.h>

struct bench_tls_files {
	const char *ca;
	const char *cert;
	const char *key;
};

static inline int bench_fail(const char *operation, int rc)
{
	fprintf(stderr, "bench: %s failed: %s: %s\n", operation, cmicro_err_name(rc),
		cmicro_last_errmsg());
	return rc;
}

static inline int bench_tls_config(const struct bench_tls_files *f,
				   struct cmicro_tls_config **out)
{
	struct cmicro_tls_config *cfg = NULL;
	int rc = cmicro_tls_config_new(&cfg);

	if (rc == 0)
		rc = cmicro_tls_config_set_verify(cfg, CMICRO_TLS_VERIFY_ON);
	if (rc == 0)
		rc = cmicro_tls_config_set_system_roots(cfg, false);
	if (rc == 0)
		rc = cmicro_tls_config_add_ca_file(cfg, f->ca);
	if (rc == 0)
		rc = cmicro_tls_config_set_cert_files(cfg, f->cert, f->key, NULL);
	if (rc == 0)
		rc = cmicro_tls_config_set_min_version(cfg, CMICRO_TLS_1_3);
	if (rc != 0) {
		cmicro_tls_config_free(cfg);
		return bench_fail("TLS configuration", rc);
	}
	*out = cfg;
	return 0;
}

/* Creates and connects a broker listening on 127.0.0.1 (any free port). */
static inline int bench_broker_start(const struct bench_tls_files *f, const char *registry_path,
				     struct cmicro_broker **out)
{
	struct cmicro_broker_opts opts;
	struct cmicro_tls_config *tls = NULL;
	struct cmicro_registry *reg = NULL;
	int rc;

	/* NOTE: the library writes to sockets without MSG_NOSIGNAL, so a client
	 * that closes during a TLS handshake (openssl s_time does) kills the
	 * process with SIGPIPE unless the application ignores it. */
	signal(SIGPIPE, SIG_IGN);
	cmicro_log_set_level(CMICRO_LOG_WARNING);
	rc = bench_tls_config(f, &tls);
	if (rc != 0)
		return rc;
	rc = cmicro_registry_sqlite_new(registry_path, &reg);
	if (rc != 0) {
		cmicro_tls_config_free(tls);
		return bench_fail("registry", rc);
	}
	cmicro_broker_opts_init(&opts);
	opts.address = "127.0.0.1:0";
	opts.tls = tls;
	opts.registry = reg;
	rc = cmicro_broker_new(&opts, out);
	cmicro_tls_config_free(tls);
	cmicro_registry_free(reg);
	if (rc != 0)
		return bench_fail("broker", rc);
	rc = cmicro_broker_connect(*out);
	if (rc != 0) {
		cmicro_broker_free(*out);
		*out = NULL;
		return bench_fail("broker connect", rc);
	}
	return 0;
}

#endif
