/*
 * The broker's registry cache. A thin registry in front of a real memory
 * registry counts get_service calls and can be switched to fail, so the
 * tests know when the cache requested services from the registry. The
 * SQLite cases use a real file and a real outage: another connection renames
 * the table away.
 */
#include <sqlite3.h>
#include <stdatomic.h>

#include "test_registry_cases.h"

/* A long TTL, so only watch events or invalidation cause a fetch. */
#define LONG_TTL_MS 600000

struct counting {
	struct cmicro_registry *inner;
	atomic_int gets;
	atomic_bool fail;
	bool no_watch;
};

static int cnt_register(struct cmicro_registry *reg, const struct cmicro_service *svc, int ttl)
{
	struct counting *c = reg->impl;

	return cmicro_registry_register(c->inner, svc, ttl);
}

static int cnt_deregister(struct cmicro_registry *reg, const struct cmicro_service *svc)
{
	struct counting *c = reg->impl;

	return cmicro_registry_deregister(c->inner, svc);
}

static int cnt_get_service(struct cmicro_registry *reg, const char *name,
			   struct cmi_service_list *list)
{
	struct counting *c = reg->impl;

	atomic_fetch_add(&c->gets, 1);
	if (atomic_load(&c->fail))
		return cmi_error(CMICRO_ECONNECT, "test registry switched off");
	return c->inner->ops->get_service(c->inner, name, list);
}

static int cnt_list_services(struct cmicro_registry *reg, struct cmi_service_list *list)
{
	struct counting *c = reg->impl;

	return c->inner->ops->list_services(c->inner, list);
}

static void forward_event(void *user, enum cmicro_registry_event event,
			  const struct cmicro_service *svc)
{
	cmi_watcher_push(user, event, svc);
}

static void cnt_watch_detach(struct cmicro_registry_watcher *w)
{
	cmicro_registry_watcher_free(w->impl);
	w->impl = NULL;
}

static int cnt_watch(struct cmicro_registry *reg, struct cmicro_registry_watcher *w)
{
	struct counting *c = reg->impl;
	struct cmicro_registry_watcher *inner_w = NULL;
	int rc;

	if (c->no_watch)
		return cmi_error(CMICRO_ESTATE, "test registry has no watch");
	rc = cmicro_registry_watch(c->inner, w->service, forward_event, w, &inner_w);
	w->impl = inner_w;
	w->detach = cnt_watch_detach;
	return rc;
}

static void cnt_destroy(struct cmicro_registry *reg)
{
	struct counting *c = reg->impl;

	cmicro_registry_free(c->inner);
	free(c);
}

static const struct cmi_registry_ops counting_ops = {
	.name = "counting",
	.register_service = cnt_register,
	.deregister = cnt_deregister,
	.get_service = cnt_get_service,
	.list_services = cnt_list_services,
	.watch = cnt_watch,
	.destroy = cnt_destroy,
};

static struct cmicro_registry *new_counting(struct counting **out, bool no_watch)
{
	struct counting *c = calloc(1, sizeof(*c));
	struct cmicro_registry *reg = NULL;

	assert_non_null(c);
	c->no_watch = no_watch;
	TK_OK(cmicro_registry_memory_new(&c->inner));
	TK_OK(cmi_registry_new(&counting_ops, c, "test", &reg));
	*out = c;
	return reg;
}

static struct cmicro_registry *new_registry(void)
{
	struct counting *c = NULL;

	return new_counting(&c, false);
}

/* Returns the node count of name from the cache. */
static size_t cache_nodes(struct cmi_registry_cache *cache, const char *name)
{
	struct cmicro_service **list = NULL;
	size_t n = 0, nodes = 0;

	TK_OK(cmi_registry_cache_get_service(cache, name, &list, &n));
	for (size_t i = 0; i < n; i++)
		nodes += list[i]->n_nodes;
	cmicro_service_list_free(list, n);
	return nodes;
}

static bool wait_cache_nodes(struct cmi_registry_cache *cache, const char *name, size_t want)
{
	for (int waited = 0; waited < WAIT_MS; waited += 20) {
		if (cache_nodes(cache, name) == want)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

static void test_cache_repeat_get_served_from_memory(void **state)
{
	struct counting *c = NULL;
	struct cmicro_registry *reg = new_counting(&c, false);
	struct cmi_registry_cache *cache = NULL;
	const char *ids[] = {"n1"};

	(void)state;
	register_nodes(reg, "orders", "v1", ids, 1, 0);
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	assert_int_equal(cache_nodes(cache, "orders"), 1);
	assert_int_equal(atomic_load(&c->gets), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(cache_nodes(cache, "orders"), 1);
	assert_int_equal(atomic_load(&c->gets), 1);
	assert_false(cmi_registry_cache_in_outage(cache));
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

static void test_cache_watch_event_refreshes(void **state)
{
	struct counting *c = NULL;
	struct cmicro_registry *reg = new_counting(&c, false);
	struct cmi_registry_cache *cache = NULL;
	const char *a[] = {"n1"}, *b[] = {"n2"};

	(void)state;
	register_nodes(reg, "orders", "v1", a, 1, 0);
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	assert_int_equal(cache_nodes(cache, "orders"), 1);
	register_nodes(reg, "orders", "v1", b, 1, 0);
	assert_true(wait_cache_nodes(cache, "orders", 2));
	assert_true(atomic_load(&c->gets) >= 2);
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

/* Without a watch, the TTL alone brings new nodes in; the missing watch is
 * logged once. */
static void test_cache_ttl_refreshes_without_watch(void **state)
{
	struct counting *c = NULL;
	struct cmicro_registry *reg = new_counting(&c, true);
	struct cmi_registry_cache *cache = NULL;
	const char *a[] = {"n1"}, *b[] = {"n2"};

	(void)state;
	tk_log_capture_start();
	register_nodes(reg, "orders", "v1", a, 1, 0);
	TK_OK(cmi_registry_cache_new(reg, 200, &cache));
	assert_int_equal(cache_nodes(cache, "orders"), 1);
	register_nodes(reg, "orders", "v1", b, 1, 0);
	assert_true(wait_cache_nodes(cache, "orders", 2));
	assert_int_equal(tk_log_count("REGISTRY-CACHE-NOWATCH"), 1);
	tk_log_capture_stop();
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

static void test_cache_outage_serves_last_nodes(void **state)
{
	struct counting *c = NULL;
	struct cmicro_registry *reg = new_counting(&c, false);
	struct cmi_registry_cache *cache = NULL;
	const char *ids[] = {"n1", "n2"};

	(void)state;
	tk_log_capture_start();
	register_nodes(reg, "orders", "v1", ids, 2, 0);
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	assert_int_equal(cache_nodes(cache, "orders"), 2);

	atomic_store(&c->fail, true);
	for (int i = 0; i < 3; i++) {
		cmi_registry_cache_invalidate(cache, "orders");
		assert_int_equal(cache_nodes(cache, "orders"), 2);
	}
	assert_int_equal(atomic_load(&c->gets), 4);
	assert_true(cmi_registry_cache_in_outage(cache));
	assert_int_equal(tk_log_count("REGISTRY-OUTAGE"), 1);
	TK_CONTAINS(tk_log_captured(), "test registry switched off");

	atomic_store(&c->fail, false);
	cmi_registry_cache_invalidate(cache, "orders");
	assert_int_equal(cache_nodes(cache, "orders"), 2);
	assert_false(cmi_registry_cache_in_outage(cache));
	assert_int_equal(tk_log_count("REGISTRY-RESTORED"), 1);
	tk_log_capture_stop();
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

/* With nothing cached, a failing registry's error reaches the caller. */
static void test_cache_outage_without_copy_fails(void **state)
{
	struct counting *c = NULL;
	struct cmicro_registry *reg = new_counting(&c, false);
	struct cmi_registry_cache *cache = NULL;
	struct cmicro_service **list = NULL;
	size_t n = 5;

	(void)state;
	tk_log_capture_start();
	atomic_store(&c->fail, true);
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	TK_FAIL(cmi_registry_cache_get_service(cache, "orders", &list, &n), CMICRO_ECONNECT);
	TK_CONTAINS(cmicro_last_errmsg(), "test registry switched off");
	assert_null(list);
	assert_int_equal(n, 0);
	tk_log_capture_stop();
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

/* An unknown service is cached as empty, not as an error. */
static void test_cache_unknown_service_empty(void **state)
{
	struct counting *c = NULL;
	struct cmicro_registry *reg = new_counting(&c, false);
	struct cmi_registry_cache *cache = NULL;

	(void)state;
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	assert_int_equal(cache_nodes(cache, "nobody"), 0);
	assert_int_equal(cache_nodes(cache, "nobody"), 0);
	assert_int_equal(atomic_load(&c->gets), 1);
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

static void sql_exec_file(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("sqlite3_exec(%s) failed: %s", sql, err);
	sqlite3_close(db);
}

/* A registration through a second connection to the file, as another
 * process makes it, reaches the cache through the SQLite watch long before
 * the TTL. */
static void test_cache_sqlite_watch_refreshes(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmicro_registry *reg = NULL, *other = NULL;
	struct cmi_registry_cache *cache = NULL;
	const char *a[] = {"n1"}, *b[] = {"n2"};

	(void)state;
	tk_path(path, sizeof(path), dir, "registry.db");
	TK_OK(cmicro_registry_sqlite_new(path, &reg));
	TK_OK(cmicro_registry_sqlite_new(path, &other));
	register_nodes(reg, "orders", "v1", a, 1, 0);
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	assert_int_equal(cache_nodes(cache, "orders"), 1);

	register_nodes(other, "orders", "v1", b, 1, 0);
	assert_true(wait_cache_nodes(cache, "orders", 2));
	cmi_registry_cache_free(cache);
	cmicro_registry_free(other);
	cmicro_registry_free(reg);
	tk_tmpdir_remove(dir);
}

/* The table disappears under a running cache: the cached nodes are still
 * served, the outage is logged once, and the end of it too. */
static void test_cache_sqlite_outage_serves_nodes(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmicro_registry *reg = NULL;
	struct cmi_registry_cache *cache = NULL;
	const char *ids[] = {"n1"};

	(void)state;
	tk_log_capture_start();
	tk_path(path, sizeof(path), dir, "registry.db");
	TK_OK(cmicro_registry_sqlite_new(path, &reg));
	register_nodes(reg, "orders", "v1", ids, 1, 0);
	TK_OK(cmi_registry_cache_new(reg, 200, &cache));
	assert_int_equal(cache_nodes(cache, "orders"), 1);

	sql_exec_file(path, "ALTER TABLE nodes RENAME TO nodes_away");
	for (int waited = 0; waited < WAIT_MS && !cmi_registry_cache_in_outage(cache);
	     waited += 20) {
		assert_int_equal(cache_nodes(cache, "orders"), 1);
		usleep(20 * 1000);
	}
	assert_true(cmi_registry_cache_in_outage(cache));
	assert_int_equal(cache_nodes(cache, "orders"), 1);
	assert_int_equal(tk_log_count("REGISTRY-OUTAGE"), 1);
	TK_CONTAINS(tk_log_captured(), "no such table");

	sql_exec_file(path, "ALTER TABLE nodes_away RENAME TO nodes");
	for (int waited = 0; waited < WAIT_MS && cmi_registry_cache_in_outage(cache);
	     waited += 20) {
		assert_int_equal(cache_nodes(cache, "orders"), 1);
		usleep(20 * 1000);
	}
	assert_false(cmi_registry_cache_in_outage(cache));
	assert_int_equal(tk_log_count("REGISTRY-RESTORED"), 1);
	tk_log_capture_stop();
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
	tk_tmpdir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cache_repeat_get_served_from_memory),
		cmocka_unit_test(test_cache_watch_event_refreshes),
		cmocka_unit_test(test_cache_ttl_refreshes_without_watch),
		cmocka_unit_test(test_cache_outage_serves_last_nodes),
		cmocka_unit_test(test_cache_outage_without_copy_fails),
		cmocka_unit_test(test_cache_unknown_service_empty),
		cmocka_unit_test(test_cache_sqlite_watch_refreshes),
		cmocka_unit_test(test_cache_sqlite_outage_serves_nodes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
