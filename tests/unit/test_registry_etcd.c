/*
 * The etcd registry against real etcd servers that the tests start on free
 * loopback ports with scripts/etcd-server.sh, each in a temporary
 * directory, and stop by PID at the end, also after a failure.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/etcd_int.h"
#include "testkit.h"

struct etcd_server {
	char dir[512];
	int client_port;
	int peer_port;
	bool running;
};

static char *tmp_dir;
static struct etcd_server main_server;
/* Servers of single tests, also stopped by the group teardown after a
 * failed assertion. */
static struct etcd_server extra_servers[3];
/* Members of the three-member cluster of the fail-over test. */
static struct etcd_server cluster[3];

static const char *script(void)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%s/scripts/etcd-server.sh", getenv("CMICRO_SOURCE_DIR"));
	return path;
}

/* Starts a server in tmp_dir/name with extra etcd flags; 0 on success. */
static int server_start(struct etcd_server *s, const char *name, const char *flags)
{
	char *out = NULL;
	int rc;

	if (s->client_port == 0) {
		tk_path(s->dir, sizeof(s->dir), tmp_dir, name);
		s->client_port = tk_free_port();
		s->peer_port = tk_free_port();
	}
	rc = tk_run(&out, 60, "bash %s start %s %d %d %s", script(), s->dir, s->client_port,
		    s->peer_port, flags ? flags : "");
	if (rc != 0)
		print_message("etcd-server.sh start failed: %s\n", out ? out : "");
	free(out);
	s->running = rc == 0;
	return rc;
}

static void server_stop(struct etcd_server *s)
{
	if (s->dir[0] == '\0')
		return;
	if (tk_run(NULL, 30, "bash %s stop %s", script(), s->dir) != 0)
		print_message("etcd-server.sh stop %s failed\n", s->dir);
	s->running = false;
}

static char *endpoint_of(const struct etcd_server *s, char *buf, size_t size)
{
	snprintf(buf, size, "127.0.0.1:%d", s->client_port);
	return buf;
}

static int group_setup(void **state)
{
	(void)state;
	unsetenv("ETCD_USERNAME");
	unsetenv("ETCD_PASSWORD");
	unsetenv("MICRO_TLS_SECURE");
	tmp_dir = tk_tmpdir();
	return server_start(&main_server, "main", NULL);
}

static int group_teardown(void **state)
{
	(void)state;
	server_stop(&main_server);
	for (size_t i = 0; i < sizeof(extra_servers) / sizeof(extra_servers[0]); i++)
		server_stop(&extra_servers[i]);
	for (size_t i = 0; i < sizeof(cluster) / sizeof(cluster[0]); i++)
		server_stop(&cluster[i]);
	tk_tmpdir_remove(tmp_dir);
	return 0;
}

static struct cmicro_registry *open_main(void)
{
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL;
	char ep[64];

	opts.endpoints = endpoint_of(&main_server, ep, sizeof(ep));
	TK_OK(cmicro_registry_etcd_new(&opts, &reg));
	return reg;
}

/* A service of name with one node per id, all at 127.0.0.1:port. */
static struct cmicro_service *make_service(const char *name, const char *const *ids, size_t n,
					   int port)
{
	struct cmicro_service *svc = NULL;
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	TK_OK(cmicro_service_new(name, "1.0", &svc));
	for (size_t i = 0; i < n; i++) {
		struct cmicro_node *node = NULL;

		TK_OK(cmicro_service_add_node(svc, ids[i], addr, &node));
		TK_OK(cmicro_service_set_meta(svc, node, "topic", "orders"));
	}
	return svc;
}

/* Stores the number of nodes of name across its versions in *nodes;
 * returns the lookup's result. */
static int lookup_nodes(struct cmicro_registry *reg, const char *name, size_t *nodes)
{
	struct cmicro_service **list = NULL;
	size_t n = 0;
	int rc = cmicro_registry_get_service(reg, name, &list, &n);

	*nodes = 0;
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		*nodes += list[i]->n_nodes;
	cmicro_service_list_free(list, n);
	return 0;
}

/* Returns the number of nodes of name across its versions. */
static size_t count_nodes(struct cmicro_registry *reg, const char *name)
{
	size_t nodes = 0;

	TK_OK(lookup_nodes(reg, name, &nodes));
	return nodes;
}

/* Polls the node count of name until it equals want, for at most
 * limit_ms. A failed lookup counts as not yet: right after etcd restarts,
 * its first connections can still fail. The last failure is printed when
 * the time runs out. */
static bool wait_nodes(struct cmicro_registry *reg, const char *name, size_t want, int limit_ms)
{
	char last_error[512] = "";

	for (int waited = 0; waited <= limit_ms; waited += 100) {
		size_t nodes = 0;
		int rc = lookup_nodes(reg, name, &nodes);

		if (rc == 0 && nodes == want)
			return true;
		if (rc != 0)
			snprintf(last_error, sizeof(last_error), "%s", cmicro_last_errmsg());
		usleep(100 * 1000);
	}
	if (last_error[0] != '\0')
		print_message("last lookup of %s failed: %s\n", name, last_error);
	return false;
}

static void test_etcd_register_get_returns_nodes(void **state)
{
	const char *ids[] = {"n1", "n2"};
	struct cmicro_registry *reg = open_main();
	struct cmicro_service *svc = make_service("etcd.test.get", ids, 2, 8001);
	struct cmicro_service **list = NULL;
	size_t n = 0;

	(void)state;
	assert_string_equal(cmicro_registry_name(reg), "etcd");
	TK_CONTAINS(cmicro_registry_address(reg), "http://127.0.0.1:");
	TK_OK(cmicro_registry_register(reg, svc, 30));
	TK_OK(cmicro_registry_get_service(reg, "etcd.test.get", &list, &n));
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->version, "1.0");
	assert_int_equal(list[0]->n_nodes, 2);
	assert_string_equal(list[0]->nodes[0].id, "n1");
	assert_string_equal(list[0]->nodes[1].address, "127.0.0.1:8001");
	assert_string_equal(cmicro_kv_get(list[0]->nodes[0].metadata, list[0]->nodes[0].n_metadata,
					  "topic"),
			    "orders");
	cmicro_service_list_free(list, n);

	/* Renewing an unchanged registration keeps one copy of each node. */
	TK_OK(cmicro_registry_register(reg, svc, 30));
	assert_int_equal(count_nodes(reg, "etcd.test.get"), 2);
	TK_OK(cmicro_registry_deregister(reg, svc));
	assert_int_equal(count_nodes(reg, "etcd.test.get"), 0);
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

static void test_etcd_list_includes_service(void **state)
{
	const char *ids[] = {"l1"};
	struct cmicro_registry *reg = open_main();
	struct cmicro_service *svc = make_service("etcd.test.list", ids, 1, 8002);
	struct cmicro_service **list = NULL;
	size_t n = 0;
	bool found = false;

	(void)state;
	TK_OK(cmicro_registry_register(reg, svc, 30));
	TK_OK(cmicro_registry_list_services(reg, &list, &n));
	for (size_t i = 0; i < n; i++)
		found = found || strcmp(list[i]->name, "etcd.test.list") == 0;
	assert_true(found);
	cmicro_service_list_free(list, n);
	TK_OK(cmicro_registry_deregister(reg, svc));
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

/* A registration whose registry is closed (no more renewals) expires with
 * its lease, and another registry sees it go. */
static void test_etcd_ttl_expiry_removes_node(void **state)
{
	const char *ids[] = {"ttl1"};
	struct cmicro_registry *writer = open_main();
	struct cmicro_registry *reader = open_main();
	struct cmicro_service *svc = make_service("etcd.test.ttl", ids, 1, 8003);

	(void)state;
	TK_OK(cmicro_registry_register(writer, svc, 2));
	assert_int_equal(count_nodes(reader, "etcd.test.ttl"), 1);
	cmicro_registry_free(writer);
	assert_true(wait_nodes(reader, "etcd.test.ttl", 0, 10000));
	cmicro_service_free(svc);
	cmicro_registry_free(reader);
}

/* The keeper renews leases shorter than the time waited. */
static void test_etcd_keeper_renews_lease(void **state)
{
	const char *ids[] = {"keep1"};
	struct cmicro_registry *reg = open_main();
	struct cmicro_service *svc = make_service("etcd.test.keep", ids, 1, 8004);

	(void)state;
	TK_OK(cmicro_registry_register(reg, svc, 2));
	sleep(5);
	assert_int_equal(count_nodes(reg, "etcd.test.keep"), 1);
	TK_OK(cmicro_registry_deregister(reg, svc));
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

struct events {
	pthread_mutex_t lock;
	int create, update, delete;
	char last_node[64];
};

static void on_event(void *user, enum cmicro_registry_event event, const struct cmicro_service *svc)
{
	struct events *ev = user;

	pthread_mutex_lock(&ev->lock);
	if (event == CMICRO_REGISTRY_CREATE)
		ev->create++;
	else if (event == CMICRO_REGISTRY_UPDATE)
		ev->update++;
	else
		ev->delete++;
	snprintf(ev->last_node, sizeof(ev->last_node), "%s", svc->nodes[0].id);
	pthread_mutex_unlock(&ev->lock);
}

static bool wait_count(struct events *ev, const int *field, int want)
{
	for (int i = 0; i < 100; i++) {
		int got;

		pthread_mutex_lock(&ev->lock);
		got = *field;
		pthread_mutex_unlock(&ev->lock);
		if (got >= want)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

static void test_etcd_watch_reports_changes(void **state)
{
	const char *ids[] = {"w1"};
	struct events ev = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct cmicro_registry *reg = open_main();
	struct cmicro_registry *other = open_main();
	struct cmicro_service *svc = make_service("etcd.test.watch", ids, 1, 8005);
	struct cmicro_registry_watcher *w = NULL;

	(void)state;
	TK_OK(cmicro_registry_watch(reg, "etcd.test.watch", on_event, &ev, &w));
	TK_OK(cmicro_registry_register(other, svc, 30));
	assert_true(wait_count(&ev, &ev.create, 1));
	TK_OK(cmicro_service_set_meta(svc, &svc->nodes[0], "topic", "refunds"));
	TK_OK(cmicro_registry_register(other, svc, 30));
	assert_true(wait_count(&ev, &ev.update, 1));
	TK_OK(cmicro_registry_deregister(other, svc));
	assert_true(wait_count(&ev, &ev.delete, 1));
	assert_string_equal(ev.last_node, "w1");
	cmicro_registry_watcher_free(w);
	cmicro_service_free(svc);
	cmicro_registry_free(other);
	cmicro_registry_free(reg);
}

static void test_etcd_unreachable_names_endpoints(void **state)
{
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL;
	char endpoints[128], url1[64], url2[64];
	int p1 = tk_free_port(), p2 = tk_free_port();

	(void)state;
	snprintf(endpoints, sizeof(endpoints), "127.0.0.1:%d, http://127.0.0.1:%d", p1, p2);
	snprintf(url1, sizeof(url1), "http://127.0.0.1:%d", p1);
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%d", p2);
	opts.endpoints = endpoints;
	TK_FAIL(cmicro_registry_etcd_new(&opts, &reg), CMICRO_ECONNECT);
	assert_null(reg);
	TK_CONTAINS(cmicro_last_errmsg(), url1);
	TK_CONTAINS(cmicro_last_errmsg(), url2);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_REGISTRY_ADDRESS");
}

static void test_etcd_bad_address_rejected(void **state)
{
	static const char *const bad[] = {
	    "http://a:b:c", "ftp://127.0.0.1:2379", "127.0.0.1:0",  "127.0.0.1:99999",
	    "127.0.0.1:abc", "[::1",                "host/path",    "127.0.0.1:2379,",
	    "user@host:1",   "http://",             "127.0.0.1:-1",
	};
	struct cmicro_registry *reg = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cmicro_etcd_opts opts = {.endpoints = bad[i]};

		TK_FAIL(cmicro_registry_etcd_new(&opts, &reg), CMICRO_ECONFIG);
		assert_null(reg);
		TK_CONTAINS(cmicro_last_errmsg(), bad[i]);
		TK_CONTAINS(cmicro_last_errmsg(), "http(s)://HOST[:PORT]");
	}
}

static void test_etcd_endpoints_parse_forms(void **state)
{
	struct cmi_etcd_endpoint *eps = NULL;
	size_t n = 0;

	(void)state;
	TK_OK(cmi_etcd_parse_endpoints(" a , https://b:1234/,[::1],http://[::1]:5", &eps, &n));
	assert_int_equal(n, 4);
	assert_string_equal(eps[0].url, "http://a:2379");
	assert_string_equal(eps[1].url, "https://b:1234");
	assert_true(eps[1].https);
	assert_string_equal(eps[2].address, "[::1]:2379");
	assert_string_equal(eps[3].host, "::1");
	assert_int_equal(eps[3].port, 5);
	free(eps);
	TK_OK(cmi_etcd_parse_endpoints(NULL, &eps, &n));
	assert_int_equal(n, 1);
	assert_string_equal(eps[0].address, "127.0.0.1:2379");
	free(eps);
}

/* MICRO_REGISTRY=etcd selects this registry with the endpoint list of
 * MICRO_REGISTRY_ADDRESS, trying a dead endpoint first. */
static void test_etcd_env_dead_endpoint_first_fails_over(void **state)
{
	const char *ids[] = {"f1"};
	struct cmicro_registry *reg = NULL;
	struct cmicro_service *svc = make_service("etcd.test.failover", ids, 1, 8006);
	char endpoints[128];

	(void)state;
	snprintf(endpoints, sizeof(endpoints), "127.0.0.1:%d,127.0.0.1:%d", tk_free_port(),
		 main_server.client_port);
	setenv("MICRO_REGISTRY", "etcd", 1);
	setenv("MICRO_REGISTRY_ADDRESS", endpoints, 1);
	TK_OK(cmicro_registry_from_env(&reg));
	unsetenv("MICRO_REGISTRY");
	unsetenv("MICRO_REGISTRY_ADDRESS");
	assert_string_equal(cmicro_registry_name(reg), "etcd");
	TK_OK(cmicro_registry_register(reg, svc, 30));
	assert_int_equal(count_nodes(reg, "etcd.test.failover"), 1);
	TK_OK(cmicro_registry_deregister(reg, svc));
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

/* The first endpoint answers HTTP but is not the v3 gateway (the etcd peer
 * port answers 404): the registry goes on to the next endpoint. */
static void test_etcd_not_gateway_endpoint_skipped(void **state)
{
	const char *ids[] = {"g1"};
	struct cmicro_service *svc = make_service("etcd.test.gateway", ids, 1, 8012);
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL;
	char endpoints[128];

	(void)state;
	snprintf(endpoints, sizeof(endpoints), "127.0.0.1:%d,127.0.0.1:%d", main_server.peer_port,
		 main_server.client_port);
	opts.endpoints = endpoints;
	TK_OK(cmicro_registry_etcd_new(&opts, &reg));
	TK_OK(cmicro_registry_register(reg, svc, 30));
	assert_int_equal(count_nodes(reg, "etcd.test.gateway"), 1);
	TK_OK(cmicro_registry_deregister(reg, svc));
	cmicro_registry_free(reg);
	cmicro_service_free(svc);
}

/* Starts the three members of a real etcd cluster on loopback ports; every
 * member waits for quorum, so all start before any is awaited. */
static void cluster_start(void)
{
	char initial[512] = "";
	char flags[1024];

	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "member%d", i);
		tk_path(cluster[i].dir, sizeof(cluster[i].dir), tmp_dir, name);
		cluster[i].client_port = tk_free_port();
		cluster[i].peer_port = tk_free_port();
		snprintf(initial + strlen(initial), sizeof(initial) - strlen(initial),
			 "%smember%d=http://127.0.0.1:%d", i ? "," : "", i, cluster[i].peer_port);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(flags, sizeof(flags),
			 "--name member%d --initial-cluster %s --initial-cluster-state new", i,
			 initial);
		assert_int_equal(tk_run(NULL, 30, "ETCD_NO_WAIT=1 bash %s start %s %d %d %s",
					script(), cluster[i].dir, cluster[i].client_port,
					cluster[i].peer_port, flags),
				 0);
		cluster[i].running = true;
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(tk_run(NULL, 60, "bash %s wait %s", script(), cluster[i].dir), 0);
}

/* A member of a three-member cluster goes down: the registry fails over to
 * the next endpoint, and what it wrote before is still there because the
 * cluster replicated it. */
static void test_etcd_cluster_member_down_fails_over(void **state)
{
	const char *before_ids[] = {"c1"};
	const char *after_ids[] = {"c2"};
	struct cmicro_service *before = make_service("etcd.test.cluster.a", before_ids, 1, 8010);
	struct cmicro_service *after = make_service("etcd.test.cluster.b", after_ids, 1, 8011);
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL, *third = NULL;
	char endpoints[256], ep[64];

	(void)state;
	cluster_start();
	snprintf(endpoints, sizeof(endpoints), "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
		 cluster[0].client_port, cluster[1].client_port, cluster[2].client_port);
	opts.endpoints = endpoints;
	TK_OK(cmicro_registry_etcd_new(&opts, &reg));
	TK_OK(cmicro_registry_register(reg, before, 30));

	server_stop(&cluster[0]);
	TK_OK(cmicro_registry_register(reg, after, 30));
	assert_int_equal(count_nodes(reg, "etcd.test.cluster.a"), 1);
	assert_int_equal(count_nodes(reg, "etcd.test.cluster.b"), 1);

	opts.endpoints = endpoint_of(&cluster[2], ep, sizeof(ep));
	TK_OK(cmicro_registry_etcd_new(&opts, &third));
	assert_int_equal(count_nodes(third, "etcd.test.cluster.a"), 1);
	assert_int_equal(count_nodes(third, "etcd.test.cluster.b"), 1);

	cmicro_registry_free(third);
	cmicro_registry_free(reg);
	server_stop(&cluster[1]);
	server_stop(&cluster[2]);
	cmicro_service_free(before);
	cmicro_service_free(after);
}

/* etcd restarted with an empty data directory: the registry logs the outage
 * once and puts its node again when etcd answers. */
static void test_etcd_restart_reregisters_nodes(void **state)
{
	struct etcd_server *s = &extra_servers[0];
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL;
	const char *ids[] = {"r1"};
	struct cmicro_service *svc = make_service("etcd.test.restart", ids, 1, 8007);
	char ep[64], data[600];

	(void)state;
	assert_int_equal(server_start(s, "restart", NULL), 0);
	opts.endpoints = endpoint_of(s, ep, sizeof(ep));
	opts.timeout_ms = 1000;
	TK_OK(cmicro_registry_etcd_new(&opts, &reg));
	TK_OK(cmicro_registry_register(reg, svc, 3));
	tk_log_capture_start();
	server_stop(s);
	snprintf(data, sizeof(data), "%s/data", s->dir);
	assert_int_equal(tk_run(NULL, 10, "rm -rf %s", data), 0);
	for (int i = 0; i < 100 && tk_log_count("REGISTRY-ETCD-OUTAGE") == 0; i++)
		usleep(100 * 1000);
	assert_int_equal(tk_log_count("REGISTRY-ETCD-OUTAGE"), 1);

	assert_int_equal(server_start(s, "restart", NULL), 0);
	assert_true(wait_nodes(reg, "etcd.test.restart", 1, 15000));
	/* The keeper logs the restore after its put, which wait_nodes may see
	 * first. */
	for (int i = 0; i < 50 && tk_log_count("REGISTRY-ETCD-RESTORED") == 0; i++)
		usleep(100 * 1000);
	assert_int_equal(tk_log_count("REGISTRY-ETCD-OUTAGE"), 1);
	assert_int_equal(tk_log_count("REGISTRY-ETCD-RESTORED"), 1);
	tk_log_capture_stop();
	cmicro_registry_free(reg);
	server_stop(s);
	cmicro_service_free(svc);
}

static void etcdctl(const struct etcd_server *s, const char *args)
{
	char *out = NULL;
	int rc = tk_run(&out, 30, "ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:%d %s",
			s->client_port, args);

	if (rc != 0)
		fail_msg("etcdctl %s failed: %s", args, out ? out : "");
	free(out);
}

static void test_etcd_wrong_password_rejected(void **state)
{
	struct etcd_server *s = &extra_servers[1];
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL;
	const char *ids[] = {"a1"};
	struct cmicro_service *svc = make_service("etcd.test.auth", ids, 1, 8008);
	char ep[64];

	(void)state;
	assert_int_equal(server_start(s, "auth", NULL), 0);
	etcdctl(s, "user add root:right-pass");
	etcdctl(s, "auth enable");
	opts.endpoints = endpoint_of(s, ep, sizeof(ep));

	opts.username = "root";
	opts.password = "wrong-pass";
	TK_FAIL(cmicro_registry_etcd_new(&opts, &reg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "etcd rejected user \"root\"");
	TK_CONTAINS(cmicro_last_errmsg(), "ETCD_PASSWORD");
	assert_null(strstr(cmicro_last_errmsg(), "wrong-pass"));

	opts.username = NULL;
	opts.password = NULL;
	TK_FAIL(cmicro_registry_etcd_new(&opts, &reg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "set ETCD_USERNAME and ETCD_PASSWORD");

	setenv("ETCD_USERNAME", "root", 1);
	setenv("ETCD_PASSWORD", "right-pass", 1);
	TK_OK(cmicro_registry_etcd_new(&opts, &reg));
	unsetenv("ETCD_USERNAME");
	unsetenv("ETCD_PASSWORD");
	TK_OK(cmicro_registry_register(reg, svc, 30));
	assert_int_equal(count_nodes(reg, "etcd.test.auth"), 1);
	cmicro_registry_free(reg);
	server_stop(s);
	cmicro_service_free(svc);
}

/* TLS with client certificates: a CA and the server certificate from the
 * openssl tool, the client certificate issued by cmicro from that CA. */
static void make_tls_files(const char *dir)
{
	struct cmicro_cert_opts o;
	struct cmicro_cert *ca = NULL, *client = NULL;
	char ca_pem[600], ca_key[600], cert[600], key[600];
	const char *hosts[] = {"etcd-client"};

	char ext[600];

	tk_write(tk_path(ext, sizeof(ext), dir, "server.ext"),
		 "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
	assert_int_equal(tk_run(NULL, 60,
				"cd %s && openssl req -x509 -newkey ec -pkeyopt "
				"ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key -out ca.pem "
				"-subj /CN=etcd-test-CA 2>/dev/null && openssl req -newkey ec "
				"-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out "
				"server.csr -subj /CN=127.0.0.1 2>/dev/null && openssl x509 -req -in "
				"server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile "
				"server.ext -out server.pem 2>/dev/null",
				dir),
			 0);
	TK_OK(cmicro_cert_load(tk_path(ca_pem, sizeof(ca_pem), dir, "ca.pem"),
			       tk_path(ca_key, sizeof(ca_key), dir, "ca.key"), NULL, &ca));
	cmicro_cert_opts_init(&o);
	o.hosts = hosts;
	o.n_hosts = 1;
	o.usage = CMICRO_CERT_USAGE_CLIENT;
	TK_OK(cmicro_cert_issue(ca, &o, &client));
	TK_OK(cmicro_cert_save(client, tk_path(cert, sizeof(cert), dir, "client.pem"),
			       tk_path(key, sizeof(key), dir, "client.key"), 0));
	cmicro_cert_free(client);
	cmicro_cert_free(ca);
}

static struct cmicro_tls_config *client_tls(const char *dir, bool with_cert)
{
	struct cmicro_tls_config *cfg = NULL;
	char ca[600], cert[600], key[600];

	TK_OK(cmicro_tls_config_new(&cfg));
	TK_OK(cmicro_tls_config_add_ca_file(cfg, tk_path(ca, sizeof(ca), dir, "ca.pem")));
	if (with_cert)
		TK_OK(cmicro_tls_config_set_cert_files(
		    cfg, tk_path(cert, sizeof(cert), dir, "client.pem"),
		    tk_path(key, sizeof(key), dir, "client.key"), NULL));
	return cfg;
}

static void test_etcd_tls_client_cert_required(void **state)
{
	struct etcd_server *s = &extra_servers[2];
	struct cmicro_etcd_opts opts = {0};
	struct cmicro_registry *reg = NULL;
	const char *ids[] = {"t1"};
	struct cmicro_service *svc = make_service("etcd.test.tls", ids, 1, 8009);
	char dir[600], flags[2400], ep[64];

	(void)state;
	tk_path(dir, sizeof(dir), tmp_dir, "tls");
	assert_int_equal(tk_run(NULL, 10, "mkdir -p %s", dir), 0);
	make_tls_files(dir);
	snprintf(flags, sizeof(flags),
		 "--cert-file %s/server.pem --key-file %s/server.key --client-cert-auth "
		 "--trusted-ca-file %s/ca.pem",
		 dir, dir, dir);
	assert_int_equal(server_start(s, "tls", flags), 0);
	snprintf(ep, sizeof(ep), "https://127.0.0.1:%d", s->client_port);
	opts.endpoints = ep;

	opts.tls = client_tls(dir, false);
	TK_FAIL(cmicro_registry_etcd_new(&opts, &reg), CMICRO_ECONNECT);
	TK_CONTAINS(cmicro_last_errmsg(), ep);
	cmicro_tls_config_free(opts.tls);

	opts.tls = client_tls(dir, true);
	TK_OK(cmicro_registry_etcd_new(&opts, &reg));
	cmicro_tls_config_free(opts.tls);
	TK_OK(cmicro_registry_register(reg, svc, 30));
	assert_int_equal(count_nodes(reg, "etcd.test.tls"), 1);
	cmicro_registry_free(reg);
	server_stop(s);
	cmicro_service_free(svc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_etcd_register_get_returns_nodes),
	    cmocka_unit_test(test_etcd_list_includes_service),
	    cmocka_unit_test(test_etcd_ttl_expiry_removes_node),
	    cmocka_unit_test(test_etcd_keeper_renews_lease),
	    cmocka_unit_test(test_etcd_watch_reports_changes),
	    cmocka_unit_test(test_etcd_unreachable_names_endpoints),
	    cmocka_unit_test(test_etcd_bad_address_rejected),
	    cmocka_unit_test(test_etcd_endpoints_parse_forms),
	    cmocka_unit_test(test_etcd_env_dead_endpoint_first_fails_over),
	    cmocka_unit_test(test_etcd_cluster_member_down_fails_over),
	    cmocka_unit_test(test_etcd_not_gateway_endpoint_skipped),
	    cmocka_unit_test(test_etcd_restart_reregisters_nodes),
	    cmocka_unit_test(test_etcd_wrong_password_rejected),
	    cmocka_unit_test(test_etcd_tls_client_cert_required),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
