/* Choosing the registry from MICRO_REGISTRY and MICRO_REGISTRY_ADDRESS. */
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

static char *tmp_dir;
static char db_path[512];

static int group_setup(void **state)
{
	(void)state;
	tmp_dir = tk_tmpdir();
	tk_path(db_path, sizeof(db_path), tmp_dir, "env.db");
	setenv("MICRO_REGISTRY_ADDRESS", db_path, 1);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	unsetenv("MICRO_REGISTRY");
	unsetenv("MICRO_REGISTRY_ADDRESS");
	tk_tmpdir_remove(tmp_dir);
	return 0;
}

static void expect_registry(const char *value, const char *name, const char *address)
{
	struct cmicro_registry *reg = NULL;

	if (value != NULL)
		setenv("MICRO_REGISTRY", value, 1);
	else
		unsetenv("MICRO_REGISTRY");
	TK_OK(cmicro_registry_from_env(&reg));
	assert_string_equal(cmicro_registry_name(reg), name);
	assert_string_equal(cmicro_registry_address(reg), address);
	cmicro_registry_free(reg);
}

static void test_env_unset_selects_sqlite(void **state)
{
	(void)state;
	expect_registry(NULL, "sqlite", db_path);
	expect_registry("", "sqlite", db_path);
}

static void test_env_names_select_registry(void **state)
{
	(void)state;
	expect_registry("sqlite", "sqlite", db_path);
	expect_registry("SQLite", "sqlite", db_path);
	expect_registry("memory", "memory", "");
}

static void test_env_unknown_name_lists_known(void **state)
{
	struct cmicro_registry *reg = NULL;

	(void)state;
	setenv("MICRO_REGISTRY", "consul", 1);
	TK_FAIL(cmicro_registry_from_env(&reg), CMICRO_ECONFIG);
	assert_null(reg);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_REGISTRY=\"consul\" is not a known registry");
	TK_CONTAINS(cmicro_last_errmsg(), "sqlite");
	TK_CONTAINS(cmicro_last_errmsg(), "memory");
}

/* mdns is a go-micro registry that cmicro does not build yet. */
static void test_env_mdns_not_built_yet(void **state)
{
	struct cmicro_registry *reg = NULL;

	(void)state;
	setenv("MICRO_REGISTRY", "mdns", 1);
	TK_FAIL(cmicro_registry_from_env(&reg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "the mdns registry");
	assert_null(reg);
}

/* MICRO_REGISTRY=etcd selects the etcd registry, which names the endpoint it
 * could not reach (a port nothing listens on). */
static void test_env_etcd_unreachable_named(void **state)
{
	struct cmicro_registry *reg = NULL;
	char address[64];
	int rc;

	(void)state;
	snprintf(address, sizeof(address), "127.0.0.1:%d", tk_free_port());
	setenv("MICRO_REGISTRY", "etcd", 1);
	setenv("MICRO_REGISTRY_ADDRESS", address, 1);
	rc = cmicro_registry_from_env(&reg);
	setenv("MICRO_REGISTRY_ADDRESS", db_path, 1);
	unsetenv("MICRO_REGISTRY");
	assert_int_not_equal(rc, 0);
	assert_null(reg);
	TK_CONTAINS(cmicro_last_errmsg(), address);
}

static void test_env_bad_address_reported(void **state)
{
	struct cmicro_registry *reg = NULL;
	char bad[600];

	(void)state;
	unsetenv("MICRO_REGISTRY");
	snprintf(bad, sizeof(bad), "%s/missing/registry.db", tmp_dir);
	setenv("MICRO_REGISTRY_ADDRESS", bad, 1);
	TK_FAIL(cmicro_registry_from_env(&reg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), bad);
	setenv("MICRO_REGISTRY_ADDRESS", db_path, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_unset_selects_sqlite),
		cmocka_unit_test(test_env_names_select_registry),
		cmocka_unit_test(test_env_unknown_name_lists_known),
		cmocka_unit_test(test_env_mdns_not_built_yet),
		cmocka_unit_test(test_env_etcd_unreachable_named),
		cmocka_unit_test(test_env_bad_address_reported),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
