/* The registry cache's shared snapshots, over a real memory registry:
 * readers share one copy, a refresh leaves held snapshots intact, and peek
 * never calls the registry. */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_int.h"
#include "testkit.h"

/* A TTL long enough that only invalidation makes the cache fetch again. */
#define LONG_TTL_MS 600000

static void add_node(struct cmicro_registry *reg, const char *id)
{
	struct cmicro_node node = {.id = (char *)id, .address = (char *)"127.0.0.1:1"};
	struct cmicro_service svc = {.name = (char *)"orders",
				     .version = (char *)"v1",
				     .nodes = &node,
				     .n_nodes = 1};

	TK_OK(cmicro_registry_register(reg, &svc, 60));
}

static size_t snapshot_nodes(const struct cmi_service_snapshot *snap)
{
	size_t nodes = 0;

	for (size_t i = 0; i < snap->n; i++)
		nodes += snap->services[i]->n_nodes;
	return nodes;
}

static void test_snapshot_readers_share_one_copy(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmi_registry_cache *cache = NULL;
	struct cmi_service_snapshot *a = NULL, *b = NULL, *peeked;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	add_node(reg, "n1");
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	TK_OK(cmi_registry_cache_snapshot(cache, "orders", &a));
	TK_OK(cmi_registry_cache_snapshot(cache, "orders", &b));
	peeked = cmi_registry_cache_peek(cache, "orders");
	assert_ptr_equal(a, b);
	assert_ptr_equal(a, peeked);
	assert_int_equal(snapshot_nodes(a), 1);
	cmi_service_snapshot_release(peeked);
	cmi_service_snapshot_release(b);
	cmi_service_snapshot_release(a);
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

static void test_snapshot_held_across_refresh_unchanged(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmi_registry_cache *cache = NULL;
	struct cmi_service_snapshot *old = NULL, *fresh = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	add_node(reg, "n1");
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	TK_OK(cmi_registry_cache_snapshot(cache, "orders", &old));
	add_node(reg, "n2");
	cmi_registry_cache_invalidate(cache, "orders");
	TK_OK(cmi_registry_cache_snapshot(cache, "orders", &fresh));
	assert_ptr_not_equal(old, fresh);
	assert_int_equal(snapshot_nodes(old), 1);
	assert_int_equal(snapshot_nodes(fresh), 2);
	assert_string_equal(old->services[0]->nodes[0].id, "n1");
	/* The cache keeps a reference to fresh only, so old is freed here. */
	cmi_service_snapshot_release(old);
	cmi_registry_cache_free(cache);
	assert_int_equal(snapshot_nodes(fresh), 2);
	cmi_service_snapshot_release(fresh);
	cmicro_registry_free(reg);
}

static void test_snapshot_peek_without_fresh_entry_null(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmi_registry_cache *cache = NULL;
	struct cmi_service_snapshot *snap = NULL, *peeked;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	add_node(reg, "n1");
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	assert_null(cmi_registry_cache_peek(cache, "orders"));
	TK_OK(cmi_registry_cache_snapshot(cache, "orders", &snap));
	peeked = cmi_registry_cache_peek(cache, "orders");
	assert_ptr_equal(peeked, snap);
	cmi_service_snapshot_release(peeked);
	cmi_registry_cache_invalidate(cache, "orders");
	assert_null(cmi_registry_cache_peek(cache, "orders"));
	cmi_service_snapshot_release(snap);
	cmi_service_snapshot_release(NULL);
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

static void test_snapshot_unknown_service_empty(void **state)
{
	struct cmicro_registry *reg = NULL;
	struct cmi_registry_cache *cache = NULL;
	struct cmi_service_snapshot *snap = NULL;

	(void)state;
	TK_OK(cmicro_registry_memory_new(&reg));
	TK_OK(cmi_registry_cache_new(reg, LONG_TTL_MS, &cache));
	TK_OK(cmi_registry_cache_snapshot(cache, "nobody", &snap));
	assert_non_null(snap);
	assert_int_equal(snap->n, 0);
	assert_null(snap->services);
	cmi_service_snapshot_release(snap);
	cmi_registry_cache_free(cache);
	cmicro_registry_free(reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_snapshot_readers_share_one_copy),
		cmocka_unit_test(test_snapshot_held_across_refresh_unchanged),
		cmocka_unit_test(test_snapshot_peek_without_fresh_entry_null),
		cmocka_unit_test(test_snapshot_unknown_service_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
