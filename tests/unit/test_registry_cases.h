/*
 * Helpers and test cases shared by the registry implementations' tests.
 * Each test file includes this header once, defines new_registry() for its
 * implementation and wraps the case_* functions in its own named tests.
 */
#ifndef CMICRO_TEST_REGISTRY_CASES_H
#define CMICRO_TEST_REGISTRY_CASES_H

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/registry_int.h"
#include "testkit.h"

/* Upper bound of every wait for an asynchronous effect (expiry, watch
 * event). Tests poll and stop as soon as the effect is seen. */
#define WAIT_MS 15000

/* Not every including file runs every case. */
#define REG_UNUSED __attribute__((unused))

/* Creates the registry under test; defined by each test file. */
static struct cmicro_registry *new_registry(void);

/* A service with one node per id, each at 127.0.0.1:<9000+i> with metadata
 * topic=<name>. */
static REG_UNUSED struct cmicro_service *make_service(const char *name, const char *version,
						      const char *const *ids, size_t n)
{
	struct cmicro_service *svc = NULL;
	char addr[64];

	TK_OK(cmicro_service_new(name, version, &svc));
	for (size_t i = 0; i < n; i++) {
		struct cmicro_node *node = NULL;

		TK_OK(cmicro_service_add_node(
		    svc, ids[i], cmi_fmt(addr, sizeof(addr), "127.0.0.1:%zu", 9000 + i), &node));
		TK_OK(cmicro_service_set_meta(svc, node, "topic", name));
	}
	return svc;
}

static REG_UNUSED void register_nodes(struct cmicro_registry *reg, const char *name,
				      const char *version, const char *const *ids, size_t n,
				      int ttl)
{
	struct cmicro_service *svc = make_service(name, version, ids, n);

	TK_OK(cmicro_registry_register(reg, svc, ttl));
	cmicro_service_free(svc);
}

/* Returns the number of live nodes of name across its versions. */
static REG_UNUSED size_t count_nodes(struct cmicro_registry *reg, const char *name)
{
	struct cmicro_service **list = NULL;
	size_t n = 0, nodes = 0;

	TK_OK(cmicro_registry_get_service(reg, name, &list, &n));
	for (size_t i = 0; i < n; i++)
		nodes += list[i]->n_nodes;
	cmicro_service_list_free(list, n);
	return nodes;
}

static REG_UNUSED bool wait_node_count(struct cmicro_registry *reg, const char *name, size_t want)
{
	for (int waited = 0; waited < WAIT_MS; waited += 50) {
		if (count_nodes(reg, name) == want)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

/* Records watch events as "CREATE svc/node" lines. */
struct recorder {
	pthread_mutex_t lock;
	char lines[256][160];
	size_t n;
	struct cmicro_registry_watcher *self_free; /* freed by its own callback */
};

static REG_UNUSED const char *event_name(enum cmicro_registry_event event)
{
	return event == CMICRO_REGISTRY_CREATE   ? "CREATE"
	       : event == CMICRO_REGISTRY_UPDATE ? "UPDATE"
						 : "DELETE";
}

static REG_UNUSED void record_event(void *user, enum cmicro_registry_event event,
				    const struct cmicro_service *svc)
{
	struct recorder *rec = user;
	struct cmicro_registry_watcher *self_free;

	pthread_mutex_lock(&rec->lock);
	for (size_t i = 0; i < svc->n_nodes && rec->n < 256; i++)
		cmi_fmt(rec->lines[rec->n++], sizeof(rec->lines[0]), "%s %s/%s", event_name(event),
			svc->name, svc->nodes[i].id);
	self_free = rec->self_free;
	rec->self_free = NULL;
	pthread_mutex_unlock(&rec->lock);
	cmicro_registry_watcher_free(self_free);
}

static REG_UNUSED size_t recorder_count(struct recorder *rec, const char *line)
{
	size_t count = 0;

	pthread_mutex_lock(&rec->lock);
	for (size_t i = 0; i < rec->n; i++)
		count += strcmp(rec->lines[i], line) == 0;
	pthread_mutex_unlock(&rec->lock);
	return count;
}

static REG_UNUSED bool wait_event(struct recorder *rec, const char *line)
{
	for (int waited = 0; waited < WAIT_MS; waited += 20) {
		if (recorder_count(rec, line) > 0)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

static REG_UNUSED void recorder_init(struct recorder *rec)
{
	memset(rec, 0, sizeof(*rec));
	pthread_mutex_init(&rec->lock, NULL);
}

static REG_UNUSED size_t recorder_total(struct recorder *rec)
{
	size_t n;

	pthread_mutex_lock(&rec->lock);
	n = rec->n;
	pthread_mutex_unlock(&rec->lock);
	return n;
}

static REG_UNUSED void case_register_get_returns_node(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_service *svc = NULL;
	struct cmicro_service **list = NULL;
	struct cmicro_node *node = NULL;
	size_t n = 0;

	TK_OK(cmicro_service_new("greeter", "1.0.0", &svc));
	TK_OK(cmicro_service_set_meta(svc, NULL, "owner", "team-a"));
	svc->endpoints_json = strdup("[{\"name\":\"Greeter.Hello\",\"metadata\":{}}]");
	TK_OK(cmicro_service_add_node(svc, "greeter-1", "10.0.0.1:8080", &node));
	TK_OK(cmicro_service_set_meta(svc, node, "broker", "http"));
	TK_OK(cmicro_registry_register(reg, svc, 0));

	TK_OK(cmicro_registry_get_service(reg, "greeter", &list, &n));
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->name, "greeter");
	assert_string_equal(list[0]->version, "1.0.0");
	assert_string_equal(cmicro_kv_get(list[0]->metadata, list[0]->n_metadata, "owner"),
			    "team-a");
	assert_string_equal(list[0]->endpoints_json, svc->endpoints_json);
	assert_int_equal(list[0]->n_nodes, 1);
	assert_string_equal(list[0]->nodes[0].id, "greeter-1");
	assert_string_equal(list[0]->nodes[0].address, "10.0.0.1:8080");
	assert_string_equal(
	    cmicro_kv_get(list[0]->nodes[0].metadata, list[0]->nodes[0].n_metadata, "broker"),
	    "http");
	cmicro_service_list_free(list, n);
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_merge_versions_and_nodes(void)
{
	struct cmicro_registry *reg = new_registry();
	const char *a[] = {"node-a"}, *b[] = {"node-b"}, *c[] = {"node-c"};
	struct cmicro_service **list = NULL;
	size_t n = 0;

	register_nodes(reg, "orders", "v1", a, 1, 0);
	register_nodes(reg, "orders", "v1", b, 1, 0);
	register_nodes(reg, "orders", "v2", c, 1, 0);
	register_nodes(reg, "other", "v1", c, 1, 0);

	TK_OK(cmicro_registry_get_service(reg, "orders", &list, &n));
	assert_int_equal(n, 2);
	assert_string_equal(list[0]->version, "v1");
	assert_int_equal(list[0]->n_nodes, 2);
	assert_string_equal(list[0]->nodes[0].id, "node-a");
	assert_string_equal(list[0]->nodes[1].id, "node-b");
	assert_string_equal(list[1]->version, "v2");
	assert_int_equal(list[1]->n_nodes, 1);
	assert_string_equal(list[1]->nodes[0].id, "node-c");
	cmicro_service_list_free(list, n);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_reregister_replaces_node(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_service *svc = NULL;
	struct cmicro_service **list = NULL;
	size_t n = 0;

	TK_OK(cmicro_service_new("orders", "v1", &svc));
	TK_OK(cmicro_service_add_node(svc, "node-a", "127.0.0.1:1000", NULL));
	TK_OK(cmicro_registry_register(reg, svc, 0));
	free(svc->nodes[0].address);
	svc->nodes[0].address = strdup("127.0.0.1:2000");
	TK_OK(cmicro_registry_register(reg, svc, 0));

	TK_OK(cmicro_registry_get_service(reg, "orders", &list, &n));
	assert_int_equal(n, 1);
	assert_int_equal(list[0]->n_nodes, 1);
	assert_string_equal(list[0]->nodes[0].address, "127.0.0.1:2000");
	cmicro_service_list_free(list, n);
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_deregister_removes_nodes(void)
{
	struct cmicro_registry *reg = new_registry();
	const char *ab[] = {"node-a", "node-b"}, *a[] = {"node-a"}, *b[] = {"node-b"};
	struct cmicro_service *svc_a = make_service("orders", "v1", a, 1);
	struct cmicro_service *svc_b = make_service("orders", "v1", b, 1);
	struct cmicro_service **list = NULL;
	size_t n = 99;

	register_nodes(reg, "orders", "v1", ab, 2, 0);
	TK_OK(cmicro_registry_deregister(reg, svc_a));
	TK_OK(cmicro_registry_get_service(reg, "orders", &list, &n));
	assert_int_equal(n, 1);
	assert_int_equal(list[0]->n_nodes, 1);
	assert_string_equal(list[0]->nodes[0].id, "node-b");
	cmicro_service_list_free(list, n);

	TK_OK(cmicro_registry_deregister(reg, svc_b));
	TK_OK(cmicro_registry_deregister(reg, svc_b));
	TK_OK(cmicro_registry_get_service(reg, "orders", &list, &n));
	assert_int_equal(n, 0);
	assert_null(list);
	cmicro_service_free(svc_a);
	cmicro_service_free(svc_b);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_ttl_expiry_removes_node(void)
{
	struct cmicro_registry *reg = new_registry();
	const char *short_lived[] = {"node-short"}, *kept[] = {"node-kept"};

	register_nodes(reg, "orders", "v1", short_lived, 1, 1);
	register_nodes(reg, "orders", "v1", kept, 1, 0);
	assert_int_equal(count_nodes(reg, "orders"), 2);

	assert_true(wait_node_count(reg, "orders", 1));
	assert_int_equal(count_nodes(reg, "orders"), 1);
	cmicro_registry_free(reg);
}

/* A renewal with TTL 0 replaces the earlier 1 s expiry. */
static REG_UNUSED void case_renewal_extends_expiry(void)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"node-a"};

	register_nodes(reg, "orders", "v1", ids, 1, 1);
	register_nodes(reg, "orders", "v1", ids, 1, 0);
	usleep(1500 * 1000);
	assert_int_equal(count_nodes(reg, "orders"), 1);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_list_services_sorted(void)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"n1"}, *ids2[] = {"n2"};
	struct cmicro_service **list = NULL;
	size_t n = 0;

	register_nodes(reg, "zeta", "1", ids, 1, 0);
	register_nodes(reg, "alpha", "2", ids, 1, 0);
	register_nodes(reg, "alpha", "1", ids2, 1, 0);

	TK_OK(cmicro_registry_list_services(reg, &list, &n));
	assert_int_equal(n, 3);
	assert_string_equal(list[0]->name, "alpha");
	assert_string_equal(list[0]->version, "1");
	assert_string_equal(list[0]->nodes[0].id, "n2");
	assert_string_equal(list[1]->name, "alpha");
	assert_string_equal(list[1]->version, "2");
	assert_string_equal(list[1]->nodes[0].id, "n1");
	assert_string_equal(list[2]->name, "zeta");
	assert_string_equal(list[2]->nodes[0].id, "n1");
	cmicro_service_list_free(list, n);
	cmicro_registry_free(reg);
}

/* Nodes are keyed by service name and node id, as etcd keys are, so the
 * same id registered under another version moves there. */
static REG_UNUSED void case_node_id_moves_version(void)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"n1"};
	struct cmicro_service **list = NULL;
	size_t n = 0;

	register_nodes(reg, "alpha", "1", ids, 1, 0);
	register_nodes(reg, "alpha", "2", ids, 1, 0);

	TK_OK(cmicro_registry_get_service(reg, "alpha", &list, &n));
	assert_int_equal(n, 1);
	assert_string_equal(list[0]->version, "2");
	assert_int_equal(list[0]->n_nodes, 1);
	cmicro_service_list_free(list, n);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_get_unknown_service_empty(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_service **list = (struct cmicro_service **)&reg;
	size_t n = 7;

	TK_OK(cmicro_registry_get_service(reg, "nobody", &list, &n));
	assert_int_equal(n, 0);
	assert_null(list);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_register_bad_service_rejected(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_service *svc = NULL;

	TK_OK(cmicro_service_new("orders", "v1", &svc));
	TK_FAIL(cmicro_registry_register(reg, svc, 10), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "has no nodes");

	TK_OK(cmicro_service_add_node(svc, "dup", "127.0.0.1:1", NULL));
	TK_FAIL(cmicro_registry_register(reg, svc, -1), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "ttl_seconds is -1");

	TK_OK(cmicro_service_add_node(svc, "dup", "127.0.0.1:2", NULL));
	TK_FAIL(cmicro_registry_register(reg, svc, 10), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "\"dup\" appears twice");

	free(svc->nodes[1].id);
	svc->nodes[1].id = strdup("bad-\xff-utf8");
	TK_FAIL(cmicro_registry_register(reg, svc, 10), CMICRO_EINVAL);
	TK_CONTAINS(cmicro_last_errmsg(), "not valid UTF-8");
	assert_int_equal(count_nodes(reg, "orders"), 0);

	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_watch_reports_changes(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_registry_watcher *w = NULL;
	const char *a[] = {"node-a"}, *b[] = {"node-b"};
	struct cmicro_service *svc = make_service("orders", "v1", a, 1);
	struct recorder rec;

	recorder_init(&rec);
	TK_OK(cmicro_registry_watch(reg, NULL, record_event, &rec, &w));

	TK_OK(cmicro_registry_register(reg, svc, 0));
	assert_true(wait_event(&rec, "CREATE orders/node-a"));

	/* A renewal that changes nothing sends no event: the CREATE of
	 * node-b arrives with no UPDATE of node-a before it. */
	TK_OK(cmicro_registry_register(reg, svc, 0));
	register_nodes(reg, "orders", "v1", b, 1, 0);
	assert_true(wait_event(&rec, "CREATE orders/node-b"));
	assert_int_equal(recorder_count(&rec, "UPDATE orders/node-a"), 0);

	TK_OK(cmicro_service_set_meta(svc, &svc->nodes[0], "secure", "true"));
	TK_OK(cmicro_registry_register(reg, svc, 0));
	assert_true(wait_event(&rec, "UPDATE orders/node-a"));

	TK_OK(cmicro_registry_deregister(reg, svc));
	assert_true(wait_event(&rec, "DELETE orders/node-a"));

	register_nodes(reg, "orders", "v1", b, 1, 1);
	assert_true(wait_event(&rec, "DELETE orders/node-b"));
	assert_int_equal(recorder_count(&rec, "CREATE orders/node-a"), 1);

	cmicro_registry_watcher_free(w);
	cmicro_service_free(svc);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_watch_filters_service(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_registry_watcher *w = NULL;
	const char *ids[] = {"n1"};
	struct recorder rec;

	recorder_init(&rec);
	TK_OK(cmicro_registry_watch(reg, "wanted", record_event, &rec, &w));
	register_nodes(reg, "unwanted", "v1", ids, 1, 0);
	register_nodes(reg, "wanted", "v1", ids, 1, 0);
	assert_true(wait_event(&rec, "CREATE wanted/n1"));
	assert_int_equal(recorder_count(&rec, "CREATE unwanted/n1"), 0);
	assert_int_equal(recorder_total(&rec), 1);
	cmicro_registry_watcher_free(w);
	cmicro_registry_free(reg);
}

static REG_UNUSED void case_watcher_freed_in_callback(void)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_registry_watcher *w = NULL;
	const char *a[] = {"n1"}, *b[] = {"n2"};
	struct recorder rec;

	recorder_init(&rec);
	TK_OK(cmicro_registry_watch(reg, NULL, record_event, &rec, &w));
	pthread_mutex_lock(&rec.lock);
	rec.self_free = w;
	pthread_mutex_unlock(&rec.lock);
	register_nodes(reg, "orders", "v1", a, 1, 0);
	assert_true(wait_event(&rec, "CREATE orders/n1"));

	/* The freed watcher reports nothing more. */
	register_nodes(reg, "orders", "v1", b, 1, 0);
	usleep(600 * 1000);
	assert_int_equal(recorder_count(&rec, "CREATE orders/n2"), 0);
	cmicro_registry_free(reg);
}

struct thread_job {
	struct cmicro_registry *reg;
	int index;
	int rc;
};

#define THREADS          4
#define NODES_PER_THREAD 25

static REG_UNUSED void *register_from_thread(void *arg)
{
	struct thread_job *job = arg;
	char id[64];

	for (int i = 0; i < NODES_PER_THREAD && job->rc == 0; i++) {
		struct cmicro_service *svc = NULL;

		job->rc = cmicro_service_new("parallel", "v1", &svc);
		if (job->rc == 0)
			job->rc = cmicro_service_add_node(
			    svc, cmi_fmt(id, sizeof(id), "t%d-n%d", job->index, i), "127.0.0.1:1",
			    NULL);
		if (job->rc == 0)
			job->rc = cmicro_registry_register(job->reg, svc, 0);
		cmicro_service_free(svc);
	}
	return NULL;
}

static REG_UNUSED void case_threads_register_concurrently(void)
{
	struct cmicro_registry *reg = new_registry();
	struct thread_job jobs[THREADS];
	pthread_t threads[THREADS];

	for (int t = 0; t < THREADS; t++) {
		jobs[t] = (struct thread_job){.reg = reg, .index = t};
		assert_int_equal(pthread_create(&threads[t], NULL, register_from_thread, &jobs[t]),
				 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(threads[t], NULL);
		assert_int_equal(jobs[t].rc, 0);
	}
	assert_int_equal(count_nodes(reg, "parallel"), THREADS * NODES_PER_THREAD);
	cmicro_registry_free(reg);
}

#endif
