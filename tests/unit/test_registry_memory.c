/* The memory registry, through the cases every implementation passes. */
#include "test_registry_cases.h"

static struct cmicro_registry *new_registry(void)
{
	struct cmicro_registry *reg = NULL;

	TK_OK(cmicro_registry_memory_new(&reg));
	assert_string_equal(cmicro_registry_name(reg), "memory");
	return reg;
}

static void test_memory_register_get_returns_node(void **state)
{
	(void)state;
	case_register_get_returns_node();
}

static void test_memory_versions_nodes_merged(void **state)
{
	(void)state;
	case_merge_versions_and_nodes();
}

static void test_memory_reregister_replaces_node(void **state)
{
	(void)state;
	case_reregister_replaces_node();
}

static void test_memory_node_id_moves_version(void **state)
{
	(void)state;
	case_node_id_moves_version();
}

static void test_memory_deregister_removes_nodes(void **state)
{
	(void)state;
	case_deregister_removes_nodes();
}

static void test_memory_ttl_expiry_removes_node(void **state)
{
	(void)state;
	case_ttl_expiry_removes_node();
}

static void test_memory_renewal_extends_expiry(void **state)
{
	(void)state;
	case_renewal_extends_expiry();
}

static void test_memory_list_services_sorted(void **state)
{
	(void)state;
	case_list_services_sorted();
}

static void test_memory_unknown_service_empty(void **state)
{
	(void)state;
	case_get_unknown_service_empty();
}

static void test_memory_bad_service_rejected(void **state)
{
	(void)state;
	case_register_bad_service_rejected();
}

static void test_memory_watch_reports_changes(void **state)
{
	(void)state;
	case_watch_reports_changes();
}

static void test_memory_watch_filters_service(void **state)
{
	(void)state;
	case_watch_filters_service();
}

static void test_memory_watcher_freed_in_callback(void **state)
{
	(void)state;
	case_watcher_freed_in_callback();
}

static void test_memory_threads_register_concurrently(void **state)
{
	(void)state;
	case_threads_register_concurrently();
}

/* Two memory registries are separate: nothing registered in one shows in
 * the other. */
static void test_memory_instances_isolated(void **state)
{
	struct cmicro_registry *one = new_registry();
	struct cmicro_registry *two = new_registry();
	const char *ids[] = {"n1"};

	(void)state;
	register_nodes(one, "orders", "v1", ids, 1, 0);
	assert_int_equal(count_nodes(one, "orders"), 1);
	assert_int_equal(count_nodes(two, "orders"), 0);
	assert_string_equal(cmicro_registry_address(one), "");
	cmicro_registry_free(one);
	cmicro_registry_free(two);
}

static void test_memory_hold_keeps_registry(void **state)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"n1"};

	(void)state;
	assert_ptr_equal(cmicro_registry_hold(reg), reg);
	cmicro_registry_free(reg);
	register_nodes(reg, "orders", "v1", ids, 1, 0);
	assert_int_equal(count_nodes(reg, "orders"), 1);
	cmicro_registry_free(reg);
	cmicro_registry_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_register_get_returns_node),
		cmocka_unit_test(test_memory_versions_nodes_merged),
		cmocka_unit_test(test_memory_reregister_replaces_node),
		cmocka_unit_test(test_memory_node_id_moves_version),
		cmocka_unit_test(test_memory_deregister_removes_nodes),
		cmocka_unit_test(test_memory_ttl_expiry_removes_node),
		cmocka_unit_test(test_memory_renewal_extends_expiry),
		cmocka_unit_test(test_memory_list_services_sorted),
		cmocka_unit_test(test_memory_unknown_service_empty),
		cmocka_unit_test(test_memory_bad_service_rejected),
		cmocka_unit_test(test_memory_watch_reports_changes),
		cmocka_unit_test(test_memory_watch_filters_service),
		cmocka_unit_test(test_memory_watcher_freed_in_callback),
		cmocka_unit_test(test_memory_threads_register_concurrently),
		cmocka_unit_test(test_memory_instances_isolated),
		cmocka_unit_test(test_memory_hold_keeps_registry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
