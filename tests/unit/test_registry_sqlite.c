/*
 * The SQLite registry: the cases every implementation passes, then what only
 * a shared file has: several processes, a killed process's nodes expiring,
 * damaged or misplaced files, and the default path rules.
 */
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_registry_cases.h"

static char *tmp_dir;
static char db_path[512];
static int db_counter;

/* Each registry gets a fresh file in the group's temporary directory. */
static struct cmicro_registry *new_registry(void)
{
	struct cmicro_registry *reg = NULL;
	char name[64];

	tk_path(db_path, sizeof(db_path), tmp_dir,
		cmi_fmt(name, sizeof(name), "registry-%d.db", ++db_counter));
	TK_OK(cmicro_registry_sqlite_new(db_path, &reg));
	assert_string_equal(cmicro_registry_name(reg), "sqlite");
	assert_string_equal(cmicro_registry_address(reg), db_path);
	return reg;
}

static struct cmicro_registry *open_path(const char *path)
{
	struct cmicro_registry *reg = NULL;

	TK_OK(cmicro_registry_sqlite_new(path, &reg));
	return reg;
}

/* Runs SQL on the file through a separate connection, as another program. */
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

static long long sql_count(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long value = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		value = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return value;
}

static int group_setup(void **state)
{
	(void)state;
	tmp_dir = tk_tmpdir();
	unsetenv("MICRO_REGISTRY_ADDRESS");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	tk_tmpdir_remove(tmp_dir);
	return 0;
}

static void test_sqlite_register_get_returns_node(void **state)
{
	(void)state;
	case_register_get_returns_node();
}

static void test_sqlite_versions_nodes_merged(void **state)
{
	(void)state;
	case_merge_versions_and_nodes();
}

static void test_sqlite_reregister_replaces_node(void **state)
{
	(void)state;
	case_reregister_replaces_node();
}

static void test_sqlite_node_id_moves_version(void **state)
{
	(void)state;
	case_node_id_moves_version();
}

static void test_sqlite_deregister_removes_nodes(void **state)
{
	(void)state;
	case_deregister_removes_nodes();
}

static void test_sqlite_ttl_expiry_removes_node(void **state)
{
	(void)state;
	case_ttl_expiry_removes_node();
}

static void test_sqlite_renewal_extends_expiry(void **state)
{
	(void)state;
	case_renewal_extends_expiry();
}

static void test_sqlite_list_services_sorted(void **state)
{
	(void)state;
	case_list_services_sorted();
}

static void test_sqlite_unknown_service_empty(void **state)
{
	(void)state;
	case_get_unknown_service_empty();
}

static void test_sqlite_bad_service_rejected(void **state)
{
	(void)state;
	case_register_bad_service_rejected();
}

static void test_sqlite_watch_reports_changes(void **state)
{
	(void)state;
	case_watch_reports_changes();
}

static void test_sqlite_watch_filters_service(void **state)
{
	(void)state;
	case_watch_filters_service();
}

static void test_sqlite_watcher_freed_in_callback(void **state)
{
	(void)state;
	case_watcher_freed_in_callback();
}

static void test_sqlite_threads_register_concurrently(void **state)
{
	(void)state;
	case_threads_register_concurrently();
}

/* The stored row is go-micro's etcd value: the service with one node. */
static void test_sqlite_row_holds_one_node_json(void **state)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"n1", "n2"};
	struct cmicro_service *doc = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	(void)state;
	register_nodes(reg, "orders", "v1", ids, 2, 0);
	assert_int_equal(sql_count(db_path, "SELECT count(*) FROM nodes"), 2);
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT doc FROM nodes WHERE node_id = 'n2'", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	TK_OK(cmicro_service_from_json((const char *)sqlite3_column_text(st, 0),
				       (size_t)sqlite3_column_bytes(st, 0), &doc));
	assert_string_equal(doc->name, "orders");
	assert_int_equal(doc->n_nodes, 1);
	assert_string_equal(doc->nodes[0].id, "n2");
	sqlite3_finalize(st);
	sqlite3_close(db);
	cmicro_service_free(doc);
	cmicro_registry_free(reg);
}

static void test_sqlite_schema_version_recorded(void **state)
{
	struct cmicro_registry *reg = new_registry();

	(void)state;
	assert_int_equal(sql_count(db_path, "PRAGMA user_version"), 1);
	assert_int_equal(sql_count(db_path, "PRAGMA application_id"), 0x636d6963);
	assert_int_equal(sql_count(db_path, "SELECT count(*) FROM pragma_journal_mode "
					    "WHERE journal_mode = 'wal'"),
			 1);
	cmicro_registry_free(reg);
}

/* Two registry objects on one file see each other's nodes, as two
 * processes do. */
static void test_sqlite_two_handles_share_file(void **state)
{
	struct cmicro_registry *one = new_registry();
	struct cmicro_registry *two = open_path(db_path);
	const char *a[] = {"from-one"}, *b[] = {"from-two"};

	(void)state;
	register_nodes(one, "shared", "v1", a, 1, 0);
	register_nodes(two, "shared", "v1", b, 1, 0);
	assert_int_equal(count_nodes(one, "shared"), 2);
	assert_int_equal(count_nodes(two, "shared"), 2);
	cmicro_registry_free(one);
	cmicro_registry_free(two);
}

/* Writers delete expired rows, so a file does not grow with dead nodes. */
static void test_sqlite_expired_rows_deleted_on_write(void **state)
{
	struct cmicro_registry *reg = new_registry();
	const char *old[] = {"old"}, *fresh[] = {"fresh"};

	(void)state;
	register_nodes(reg, "orders", "v1", old, 1, 1);
	assert_true(wait_node_count(reg, "orders", 0));
	assert_int_equal(sql_count(db_path, "SELECT count(*) FROM nodes"), 1);
	register_nodes(reg, "orders", "v1", fresh, 1, 0);
	assert_int_equal(sql_count(db_path, "SELECT count(*) FROM nodes"), 1);
	assert_int_equal(sql_count(db_path, "SELECT count(*) FROM nodes WHERE node_id = 'old'"), 0);
	cmicro_registry_free(reg);
}

/* A row another writer damaged is skipped with a warning; the others are
 * still served. */
static void test_sqlite_bad_row_skipped_logged(void **state)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"good"};

	(void)state;
	register_nodes(reg, "orders", "v1", ids, 1, 0);
	sql_exec_file(db_path, "INSERT INTO nodes VALUES ('orders', 'broken', 'v1', "
			       "'{\"name\": 42}', 0)");
	tk_log_capture_start();
	assert_int_equal(count_nodes(reg, "orders"), 1);
	assert_int_equal(count_nodes(reg, "orders"), 1);
	assert_int_equal(tk_log_count("REGISTRY-BAD-ENTRY"), 1);
	TK_CONTAINS(tk_log_captured(), "\"broken\"");
	TK_CONTAINS(tk_log_captured(), "field \"name\" must be a string");
	tk_log_capture_stop();
	cmicro_registry_free(reg);
}

#define CHILDREN        6
#define NODES_PER_CHILD 20

/* Registers NODES_PER_CHILD nodes after the parent opens the gate. */
static void child_register(const char *path, int index, int gate)
{
	struct cmicro_registry *reg = NULL;
	char id[64];
	char byte;

	if (read(gate, &byte, 1) < 0)
		_exit(10);
	if (cmicro_registry_sqlite_new(path, &reg) != 0)
		_exit(11);
	for (int i = 0; i < NODES_PER_CHILD; i++) {
		struct cmicro_service *svc = NULL;
		int rc = cmicro_service_new("fleet", "v1", &svc);

		if (rc == 0)
			rc = cmicro_service_add_node(
			    svc, cmi_fmt(id, sizeof(id), "child%d-node%d", index, i), "127.0.0.1:1",
			    NULL);
		if (rc == 0)
			rc = cmicro_registry_register(reg, svc, 0);
		cmicro_service_free(svc);
		if (rc != 0) {
			fprintf(stderr, "child %d: %s\n", index, cmicro_last_errmsg());
			_exit(12);
		}
	}
	cmicro_registry_free(reg);
	_exit(0);
}

static void test_sqlite_processes_register_concurrently(void **state)
{
	struct cmicro_registry *reg = new_registry();
	pid_t pids[CHILDREN];
	int gate[2];

	(void)state;
	/* No registry thread runs in this process while it forks. */
	cmicro_registry_free(reg);
	assert_int_equal(pipe(gate), 0);
	for (int c = 0; c < CHILDREN; c++) {
		pids[c] = fork();
		assert_true(pids[c] >= 0);
		if (pids[c] == 0) {
			close(gate[1]);
			child_register(db_path, c, gate[0]);
		}
	}
	close(gate[0]);
	close(gate[1]); /* every child starts now */

	for (int c = 0; c < CHILDREN; c++) {
		int status = 0;

		assert_int_equal(waitpid(pids[c], &status, 0), pids[c]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	reg = open_path(db_path);
	assert_int_equal(count_nodes(reg, "fleet"), CHILDREN * NODES_PER_CHILD);
	cmicro_registry_free(reg);
}

/* A process killed without deregistering leaves nodes that expire after
 * their TTL, and watchers in other processes see them go. */
static void test_sqlite_killed_process_nodes_expire(void **state)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_registry_watcher *w = NULL;
	struct recorder rec;
	int ready[2];
	pid_t pid;
	char byte;
	int status = 0;

	(void)state;
	cmicro_registry_free(reg);
	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		const char *ids[] = {"doomed-1", "doomed-2"};
		struct cmicro_service *svc = NULL;

		close(ready[0]);
		if (cmicro_registry_sqlite_new(db_path, &reg) != 0 ||
		    cmicro_service_new("victim", "v1", &svc) != 0 ||
		    cmicro_service_add_node(svc, ids[0], "127.0.0.1:1", NULL) != 0 ||
		    cmicro_service_add_node(svc, ids[1], "127.0.0.1:2", NULL) != 0 ||
		    cmicro_registry_register(reg, svc, 1) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &byte, 1), 1);
	close(ready[0]);

	reg = open_path(db_path);
	recorder_init(&rec);
	TK_OK(cmicro_registry_watch(reg, "victim", record_event, &rec, &w));
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));

	assert_true(wait_event(&rec, "DELETE victim/doomed-1"));
	assert_true(wait_event(&rec, "DELETE victim/doomed-2"));
	assert_int_equal(count_nodes(reg, "victim"), 0);
	cmicro_registry_watcher_free(w);
	cmicro_registry_free(reg);
}

/* Changes made by another process reach a watcher of this one. */
static void test_sqlite_watch_sees_other_process(void **state)
{
	struct cmicro_registry *reg = new_registry();
	struct cmicro_registry_watcher *w = NULL;
	struct recorder rec;
	int gate[2];
	pid_t pid;
	int status = 0;
	char byte;

	(void)state;
	/* The child is forked before the watcher thread exists and waits for
	 * the gate, so it never inherits a lock held by that thread. */
	cmicro_registry_free(reg);
	assert_int_equal(pipe(gate), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cmicro_registry *child = NULL;
		struct cmicro_service *svc = NULL;

		close(gate[1]);
		if (read(gate[0], &byte, 1) < 0 ||
		    cmicro_registry_sqlite_new(db_path, &child) != 0 ||
		    cmicro_service_new("remote", "v1", &svc) != 0 ||
		    cmicro_service_add_node(svc, "far-node", "127.0.0.1:1", NULL) != 0 ||
		    cmicro_registry_register(child, svc, 0) != 0)
			_exit(1);
		_exit(0);
	}
	close(gate[0]);

	reg = open_path(db_path);
	recorder_init(&rec);
	TK_OK(cmicro_registry_watch(reg, NULL, record_event, &rec, &w));
	close(gate[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(wait_event(&rec, "CREATE remote/far-node"));
	cmicro_registry_watcher_free(w);
	cmicro_registry_free(reg);
}

static void expect_open_error(const char *path, int code, const char *needle)
{
	struct cmicro_registry *reg = NULL;

	TK_FAIL(cmicro_registry_sqlite_new(path, &reg), code);
	assert_null(reg);
	TK_CONTAINS(cmicro_last_errmsg(), path);
	TK_CONTAINS(cmicro_last_errmsg(), needle);
}

static void test_sqlite_garbage_file_rejected(void **state)
{
	char path[512];
	char garbage[8192];

	(void)state;
	for (size_t i = 0; i < sizeof(garbage) - 1; i++)
		garbage[i] = (char)('a' + i % 23);
	garbage[sizeof(garbage) - 1] = '\0';
	tk_write(tk_path(path, sizeof(path), tmp_dir, "garbage.db"), garbage);
	expect_open_error(path, CMICRO_EDB, "is not a valid SQLite database");
	TK_CONTAINS(cmicro_last_errmsg(), "Delete it with its -wal and -shm files");
}

/* A real database whose pages were overwritten in the middle. */
static void test_sqlite_damaged_pages_rejected(void **state)
{
	struct cmicro_registry *reg = new_registry();
	const char *ids[] = {"n1"};
	char path[512];
	FILE *f;

	(void)state;
	register_nodes(reg, "orders", "v1", ids, 1, 0);
	cmicro_registry_free(reg);
	/* Fold the WAL into the file, then overwrite 8000 bytes after the
	 * 100-byte file header: the schema page and the table's first page. */
	sql_exec_file(db_path, "PRAGMA wal_checkpoint(TRUNCATE)");
	snprintf(path, sizeof(path), "%s", db_path);
	f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fseek(f, 100, SEEK_SET), 0);
	for (int i = 0; i < 8000; i++)
		fputc(0xA5, f);
	assert_int_equal(fclose(f), 0);
	expect_open_error(path, CMICRO_EDB, "is not a valid SQLite database");
}

static void test_sqlite_other_program_database_rejected(void **state)
{
	char path[512];

	(void)state;
	tk_path(path, sizeof(path), tmp_dir, "foreign.db");
	sql_exec_file(path, "CREATE TABLE invoices (id INTEGER)");
	expect_open_error(path, CMICRO_EDB, "another program");
}

static void test_sqlite_newer_schema_rejected(void **state)
{
	struct cmicro_registry *reg = new_registry();

	(void)state;
	cmicro_registry_free(reg);
	sql_exec_file(db_path, "PRAGMA user_version = 7");
	expect_open_error(db_path, CMICRO_EDB, "schema version 7, newer than version 1");
}

static void test_sqlite_path_is_directory_rejected(void **state)
{
	(void)state;
	expect_open_error(tmp_dir, CMICRO_ECONFIG, "is a directory");
}

/* Root may write anywhere, so an unwritable location is a path whose parent
 * is a regular file. */
static void test_sqlite_parent_is_file_rejected(void **state)
{
	char file[512];
	char path[600];

	(void)state;
	tk_write(tk_path(file, sizeof(file), tmp_dir, "plain-file"), "x");
	snprintf(path, sizeof(path), "%s/registry.db", file);
	expect_open_error(path, CMICRO_ECONFIG, "is a file, not a directory");

	snprintf(path, sizeof(path), "%s/sub/registry.db", file);
	expect_open_error(path, CMICRO_ECONFIG, "is a file, not a directory");
}

static void test_sqlite_missing_directory_rejected(void **state)
{
	char path[512];

	(void)state;
	tk_path(path, sizeof(path), tmp_dir, "absent/registry.db");
	expect_open_error(path, CMICRO_ECONFIG, "does not exist");
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_REGISTRY_ADDRESS");
}

static void test_sqlite_address_env_sets_path(void **state)
{
	struct cmicro_registry *reg = NULL;
	char path[512];

	(void)state;
	tk_path(path, sizeof(path), tmp_dir, "from-env.db");
	setenv("MICRO_REGISTRY_ADDRESS", path, 1);
	setenv("XDG_RUNTIME_DIR", tmp_dir, 1);
	TK_OK(cmicro_registry_sqlite_new(NULL, &reg));
	assert_string_equal(cmicro_registry_address(reg), path);
	cmicro_registry_free(reg);
	unsetenv("MICRO_REGISTRY_ADDRESS");
	unsetenv("XDG_RUNTIME_DIR");
}

/* A default directory that other users can open is made private. */
static void test_sqlite_open_default_dir_made_private(void **state)
{
	struct cmicro_registry *reg = NULL;
	char dir[512];
	struct stat st;

	(void)state;
	tk_path(dir, sizeof(dir), tmp_dir, "cmicro");
	mkdir(dir, 0700);
	assert_int_equal(chmod(dir, 0755), 0);
	setenv("XDG_RUNTIME_DIR", tmp_dir, 1);
	tk_log_capture_start();
	TK_OK(cmicro_registry_sqlite_new(NULL, &reg));
	assert_int_equal(tk_log_count("REGISTRY-DIR-PRIVATE"), 1);
	tk_log_capture_stop();
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	cmicro_registry_free(reg);
	unsetenv("XDG_RUNTIME_DIR");
}

static void test_sqlite_xdg_runtime_dir_default(void **state)
{
	struct cmicro_registry *reg = NULL;
	char want[512];
	char dir[512];
	struct stat st;

	(void)state;
	tk_path(dir, sizeof(dir), tmp_dir, "cmicro");
	tk_path(want, sizeof(want), dir, "registry.db");
	setenv("XDG_RUNTIME_DIR", tmp_dir, 1);
	TK_OK(cmicro_registry_sqlite_new(NULL, &reg));
	assert_string_equal(cmicro_registry_address(reg), want);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	cmicro_registry_free(reg);
	unsetenv("XDG_RUNTIME_DIR");
}

static void test_sqlite_tmp_default_without_xdg(void **state)
{
	struct cmicro_registry *reg = NULL;
	char want[128];
	struct stat st;

	(void)state;
	unsetenv("XDG_RUNTIME_DIR");
	snprintf(want, sizeof(want), "/tmp/cmicro-%u/registry.db", (unsigned)geteuid());
	TK_OK(cmicro_registry_sqlite_new(NULL, &reg));
	assert_string_equal(cmicro_registry_address(reg), want);
	want[strlen(want) - strlen("/registry.db")] = '\0';
	assert_int_equal(stat(want, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0077, 0);
	cmicro_registry_free(reg);
}

static void test_sqlite_network_address_rejected(void **state)
{
	struct cmicro_registry *reg = NULL;

	(void)state;
	setenv("MICRO_REGISTRY_ADDRESS", "127.0.0.1:2379", 1);
	TK_FAIL(cmicro_registry_sqlite_new(NULL, &reg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "MICRO_REGISTRY_ADDRESS=\"127.0.0.1:2379\"");
	TK_CONTAINS(cmicro_last_errmsg(), "looks like a network address");
	setenv("MICRO_REGISTRY_ADDRESS", "http://etcd.local:2379", 1);
	TK_FAIL(cmicro_registry_sqlite_new(NULL, &reg), CMICRO_ECONFIG);
	unsetenv("MICRO_REGISTRY_ADDRESS");
	assert_null(reg);
}

/* The XDG directory belongs to another user, who could swap the file, so
 * it is rejected. */
static void test_sqlite_foreign_owned_dir_rejected(void **state)
{
	struct cmicro_registry *reg = NULL;
	char dir[512];

	(void)state;
	tk_path(dir, sizeof(dir), tmp_dir, "cmicro");
	mkdir(dir, 0700);
	assert_int_equal(chown(dir, 12345, 12345), 0);
	setenv("XDG_RUNTIME_DIR", tmp_dir, 1);
	TK_FAIL(cmicro_registry_sqlite_new(NULL, &reg), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "belongs to user 12345");
	unsetenv("XDG_RUNTIME_DIR");
	assert_int_equal(chown(dir, geteuid(), getegid()), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sqlite_register_get_returns_node),
		cmocka_unit_test(test_sqlite_versions_nodes_merged),
		cmocka_unit_test(test_sqlite_reregister_replaces_node),
		cmocka_unit_test(test_sqlite_node_id_moves_version),
		cmocka_unit_test(test_sqlite_deregister_removes_nodes),
		cmocka_unit_test(test_sqlite_ttl_expiry_removes_node),
		cmocka_unit_test(test_sqlite_renewal_extends_expiry),
		cmocka_unit_test(test_sqlite_list_services_sorted),
		cmocka_unit_test(test_sqlite_unknown_service_empty),
		cmocka_unit_test(test_sqlite_bad_service_rejected),
		cmocka_unit_test(test_sqlite_watch_reports_changes),
		cmocka_unit_test(test_sqlite_watch_filters_service),
		cmocka_unit_test(test_sqlite_watcher_freed_in_callback),
		cmocka_unit_test(test_sqlite_threads_register_concurrently),
		cmocka_unit_test(test_sqlite_row_holds_one_node_json),
		cmocka_unit_test(test_sqlite_schema_version_recorded),
		cmocka_unit_test(test_sqlite_two_handles_share_file),
		cmocka_unit_test(test_sqlite_expired_rows_deleted_on_write),
		cmocka_unit_test(test_sqlite_bad_row_skipped_logged),
		cmocka_unit_test(test_sqlite_processes_register_concurrently),
		cmocka_unit_test(test_sqlite_killed_process_nodes_expire),
		cmocka_unit_test(test_sqlite_watch_sees_other_process),
		cmocka_unit_test(test_sqlite_garbage_file_rejected),
		cmocka_unit_test(test_sqlite_damaged_pages_rejected),
		cmocka_unit_test(test_sqlite_other_program_database_rejected),
		cmocka_unit_test(test_sqlite_newer_schema_rejected),
		cmocka_unit_test(test_sqlite_path_is_directory_rejected),
		cmocka_unit_test(test_sqlite_parent_is_file_rejected),
		cmocka_unit_test(test_sqlite_missing_directory_rejected),
		cmocka_unit_test(test_sqlite_address_env_sets_path),
		cmocka_unit_test(test_sqlite_xdg_runtime_dir_default),
		cmocka_unit_test(test_sqlite_open_default_dir_made_private),
		cmocka_unit_test(test_sqlite_tmp_default_without_xdg),
		cmocka_unit_test(test_sqlite_network_address_rejected),
		cmocka_unit_test(test_sqlite_foreign_owned_dir_rejected),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
