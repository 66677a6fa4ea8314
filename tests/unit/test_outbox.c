/* The outbox module on real files: creation and mode, the lock, storing,
 * loading and removing messages, the limits, and damaged or unusable
 * paths. */
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker/outbox_int.h"
#include "testkit.h"

struct loaded {
	int count;
	long long seq[16];
	char id[16][64];
	char topic[16][64];
	size_t got_nodes[16];
	size_t got_queues[16];
};

static int collect_row(void *user, const struct cmi_outbox_row *row)
{
	struct loaded *l = user;

	if (l->count >= 16)
		return -1;
	l->seq[l->count] = row->seq;
	cmi_fmt(l->id[l->count], sizeof(l->id[0]), "%s", row->id);
	cmi_fmt(l->topic[l->count], sizeof(l->topic[0]), "%s", row->topic);
	l->got_nodes[l->count] = row->n_got_nodes;
	l->got_queues[l->count] = row->n_got_queues;
	l->count++;
	return 0;
}

/* The envelope publish would store: body text, Micro-Id id, topic. */
static char *envelope(const char *topic, const char *id, const char *body, size_t *len)
{
	struct cmicro_message *msg = NULL;
	char *json = NULL;

	TK_OK(cmicro_message_new(&msg));
	TK_OK(cmicro_message_set_header(msg, CMI_ID_HEADER, id));
	TK_OK(cmicro_message_set_body(msg, body, strlen(body)));
	TK_OK(cmi_message_encode(msg, topic, &json, len));
	cmicro_message_free(msg);
	return json;
}

static long long put(struct cmi_outbox *ob, const char *topic, const char *id)
{
	size_t len = 0;
	char *json = envelope(topic, id, "hello", &len);
	long long seq = 0;

	TK_OK(cmi_outbox_put(ob, id, topic, json, len, &seq));
	free(json);
	assert_true(seq > 0);
	return seq;
}

static struct cmi_outbox *open_ok(const char *path)
{
	struct cmi_outbox *ob = NULL;

	TK_OK(cmi_outbox_open(path, 0, 0, &ob));
	return ob;
}

static void test_outbox_open_creates_private_files(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], lock[520];
	struct cmi_outbox *ob;
	struct stat st;

	(void)state;
	umask(022);
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	put(ob, "t", "id-1");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The lock is on the database file itself: no lock file. */
	cmi_fmt(lock, sizeof(lock), "%s.lock", path);
	assert_int_not_equal(stat(lock, &st), 0);
	cmi_fmt(lock, sizeof(lock), "%s-wal", path);
	assert_int_equal(stat(lock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

static void test_outbox_open_tightens_existing_mode(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob;
	struct stat st;

	(void)state;
	tk_path(path, sizeof(path), dir, "outbox.db");
	tk_write(path, "");
	assert_int_equal(chmod(path, 0644), 0);
	ob = open_ok(path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

static void test_outbox_second_open_busy(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], pid[32];
	struct cmi_outbox *ob, *second = NULL;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	TK_FAIL(cmi_outbox_open(path, 0, 0, &second), CMICRO_EBUSY);
	assert_null(second);
	TK_CONTAINS(cmicro_last_errmsg(), "is in use by another broker");
	cmi_fmt(pid, sizeof(pid), "process %ld", (long)getpid());
	TK_CONTAINS(cmicro_last_errmsg(), pid);
	cmi_outbox_close(ob);

	/* Closing releases the lock. */
	second = open_ok(path);
	cmi_outbox_close(second);
	tk_tmpdir_remove(dir);
}

static void test_outbox_second_process_busy(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob;
	int status = 0;
	pid_t child;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct cmi_outbox *other = NULL;

		_exit(cmi_outbox_open(path, 0, 0, &other) == CMICRO_EBUSY ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

/* The lock follows the file, so a symbolic link to an open outbox is the
 * same outbox. */
static void test_outbox_symlink_second_open_busy(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], link_path[512];
	struct cmi_outbox *ob, *second = NULL;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	tk_path(link_path, sizeof(link_path), dir, "other-name.db");
	assert_int_equal(symlink(path, link_path), 0);
	TK_FAIL(cmi_outbox_open(link_path, 0, 0, &second), CMICRO_EBUSY);
	assert_null(second);
	TK_CONTAINS(cmicro_last_errmsg(), "is in use by another broker");
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

/* A hard link opened by another process: the lock is on the inode, not on
 * a name. */
static void test_outbox_hardlink_second_process_busy(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], link_path[512], holder[48];
	struct cmi_outbox *ob;
	int status = 0, pipe_fd[2];
	char text[CMI_ERRMSG_MAX] = "";
	ssize_t n;
	pid_t child;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	tk_path(link_path, sizeof(link_path), dir, "hard-link.db");
	assert_int_equal(link(path, link_path), 0);
	assert_int_equal(pipe(pipe_fd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct cmi_outbox *other = NULL;
		int rc = cmi_outbox_open(link_path, 0, 0, &other);
		const char *msg = cmicro_last_errmsg();

		if (write(pipe_fd[1], msg, strlen(msg)) < 0)
			_exit(2);
		_exit(rc == CMICRO_EBUSY ? 0 : 1);
	}
	close(pipe_fd[1]);
	n = read(pipe_fd[0], text, sizeof(text) - 1);
	close(pipe_fd[0]);
	text[n > 0 ? n : 0] = '\0';
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	TK_CONTAINS(text, "is in use by another broker");
	cmi_fmt(holder, sizeof(holder), "process %ld", (long)getpid());
	TK_CONTAINS(text, holder);
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

/* Whether path exists. */
static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static bool sibling_exists(const char *path, const char *suffix)
{
	char name[600];

	return exists(cmi_fmt(name, sizeof(name), "%s%s", path, suffix));
}

/* The first 4 KiB of a file as text. */
static void read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, size - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
}

/* sqlite3_exec callback that keeps a copy of the first column. */
static int keep_text(void *user, int n, char **values, char **names)
{
	char **out = user;

	(void)names;
	if (n > 0 && values[0] != NULL && *out == NULL)
		*out = cmi_strdup(values[0]);
	return 0;
}

static void test_outbox_text_file_left_unchanged(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], text[4096];
	struct cmi_outbox *ob = NULL;
	struct stat st;

	(void)state;
	tk_path(path, sizeof(path), dir, "notes.txt");
	tk_write(path, "shopping list\nmilk\n");
	assert_int_equal(chmod(path, 0644), 0);
	TK_FAIL(cmi_outbox_open(path, 0, 0, &ob), CMICRO_ECONFIG);
	assert_null(ob);
	TK_CONTAINS(cmicro_last_errmsg(), "is not a cmicro outbox");
	TK_CONTAINS(cmicro_last_errmsg(), path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	read_text(path, text, sizeof(text));
	assert_string_equal(text, "shopping list\nmilk\n");
	assert_false(sibling_exists(path, ".lock"));
	assert_false(sibling_exists(path, "-wal"));
	assert_false(sibling_exists(path, "-shm"));
	assert_false(sibling_exists(path, "-journal"));
	tk_tmpdir_remove(dir);
}

static void test_outbox_other_database_left_unchanged(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob = NULL;
	sqlite3 *db = NULL;
	char *mode = NULL;
	struct stat st;

	(void)state;
	tk_path(path, sizeof(path), dir, "other.db");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(chmod(path, 0644), 0);
	TK_FAIL(cmi_outbox_open(path, 0, 0, &ob), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "is not a cmicro outbox");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_false(sibling_exists(path, ".lock"));
	assert_false(sibling_exists(path, "-wal"));

	/* The other program's journal mode stays as it was. */
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode", keep_text, &mode, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	assert_non_null(mode);
	assert_string_equal(mode, "delete");
	free(mode);
	tk_tmpdir_remove(dir);
}

/* A file size limit of 0 makes SQLite's first write fail after the open
 * created the file; the failed open removes what it created. */
static void test_outbox_failed_create_leaves_nothing(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	int status = 0;
	pid_t child;

	(void)state;
	tk_path(path, sizeof(path), dir, "outbox.db");
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct rlimit none = {0, 0};
		struct cmi_outbox *ob = NULL;

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &none) != 0)
			_exit(10);
		if (cmi_outbox_open(path, 0, 0, &ob) == 0)
			_exit(11);
		_exit(exists(path) ? 12 : sibling_exists(path, "-wal") ? 13 : 0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tk_tmpdir_remove(dir);
}

/* A damaged outbox keeps the message that it may still hold messages. */
static void test_outbox_damaged_outbox_fails_clearly(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], junk[512];
	struct cmi_outbox *ob = NULL;
	int fd;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	put(ob, "t", "id-1");
	cmi_outbox_close(ob);
	ob = NULL;
	/* The b-tree page header of page 1 starts at byte 100, after the
	 * database header that names the file an outbox. */
	memset(junk, 0xee, sizeof(junk));
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 100), (ssize_t)sizeof(junk));
	close(fd);
	TK_FAIL(cmi_outbox_open(path, 0, 0, &ob), CMICRO_EIO);
	assert_null(ob);
	TK_CONTAINS(cmicro_last_errmsg(), "is not a valid SQLite database");
	TK_CONTAINS(cmicro_last_errmsg(), "may still hold undelivered messages");
	tk_tmpdir_remove(dir);
}

static void test_outbox_stored_messages_load_after_reopen(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob;
	struct loaded l = {0};
	size_t skipped = 99, n = 0, bytes = 0;
	long long s1, s2, s3;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	s1 = put(ob, "orders", "id-1");
	s2 = put(ob, "orders", "id-2");
	s3 = put(ob, "audit", "id-3");
	cmi_outbox_close(ob);

	ob = open_ok(path);
	cmi_outbox_usage(ob, &n, &bytes);
	assert_int_equal(n, 3);
	assert_true(bytes > 0);
	TK_OK(cmi_outbox_load(ob, collect_row, &l, &skipped));
	assert_int_equal(skipped, 0);
	assert_int_equal(l.count, 3);
	assert_true(l.seq[0] == s1 && l.seq[1] == s2 && l.seq[2] == s3);
	assert_string_equal(l.id[0], "id-1");
	assert_string_equal(l.id[2], "id-3");
	assert_string_equal(l.topic[2], "audit");
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

static void test_outbox_delete_removes_message(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob;
	struct loaded l = {0};
	size_t skipped = 0, n = 0, bytes = 0, len = 0;
	char *json = envelope("t", "id-1", "hello", &len);
	long long s1;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	s1 = put(ob, "t", "id-1");
	put(ob, "t", "id-2");
	TK_OK(cmi_outbox_delete(ob, s1, len));
	cmi_outbox_usage(ob, &n, &bytes);
	assert_int_equal(n, 1);
	assert_int_equal(bytes, len);
	cmi_outbox_close(ob);

	ob = open_ok(path);
	TK_OK(cmi_outbox_load(ob, collect_row, &l, &skipped));
	assert_int_equal(l.count, 1);
	assert_string_equal(l.id[0], "id-2");
	cmi_outbox_close(ob);
	free(json);
	tk_tmpdir_remove(dir);
}

static void test_outbox_partial_delivery_persists(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	char *nodes[] = {"t-node-a", "t-node-b"};
	char *queues[] = {"workers"};
	struct cmi_outbox *ob;
	struct loaded l = {0};
	size_t skipped = 0;
	long long seq;

	(void)state;
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	seq = put(ob, "t", "id-1");
	TK_OK(cmi_outbox_set_got(ob, seq, nodes, 2, queues, 1));
	cmi_outbox_close(ob);

	ob = open_ok(path);
	TK_OK(cmi_outbox_load(ob, collect_row, &l, &skipped));
	assert_int_equal(l.count, 1);
	assert_int_equal(l.got_nodes[0], 2);
	assert_int_equal(l.got_queues[0], 1);
	cmi_outbox_close(ob);
	tk_tmpdir_remove(dir);
}

static void test_outbox_message_limit_rejects_new(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob = NULL;
	struct loaded l = {0};
	size_t skipped = 0, len = 0;
	char *json = envelope("t", "id-4", "hello", &len);
	long long seq = 0;

	(void)state;
	TK_OK(cmi_outbox_open(tk_path(path, sizeof(path), dir, "outbox.db"), 3, 0, &ob));
	put(ob, "t", "id-1");
	put(ob, "t", "id-2");
	put(ob, "t", "id-3");
	TK_FAIL(cmi_outbox_put(ob, "id-4", "t", json, len, &seq), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "outbox_max_messages");
	assert_int_equal(seq, 0);

	/* The old messages are all still there. */
	TK_OK(cmi_outbox_load(ob, collect_row, &l, &skipped));
	assert_int_equal(l.count, 3);
	assert_string_equal(l.id[0], "id-1");
	cmi_outbox_close(ob);
	free(json);
	tk_tmpdir_remove(dir);
}

static void test_outbox_byte_limit_rejects_new(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob = NULL;
	size_t len = 0, n = 0;
	char *json = envelope("t", "id-1", "hello", &len);
	long long seq = 0;

	(void)state;
	TK_OK(cmi_outbox_open(tk_path(path, sizeof(path), dir, "outbox.db"), 0, len * 2 + 1, &ob));
	TK_OK(cmi_outbox_put(ob, "id-1", "t", json, len, &seq));
	TK_OK(cmi_outbox_put(ob, "id-2", "t", json, len, &seq));
	TK_FAIL(cmi_outbox_put(ob, "id-3", "t", json, len, &seq), CMICRO_ELIMIT);
	TK_CONTAINS(cmicro_last_errmsg(), "outbox_max_bytes");
	cmi_outbox_usage(ob, &n, NULL);
	assert_int_equal(n, 2);
	cmi_outbox_close(ob);
	free(json);
	tk_tmpdir_remove(dir);
}

/* SQLite reports a full disk as SQLITE_FULL; max_page_count produces the
 * same error without filling a file system. */
static void test_outbox_full_file_fails_clearly(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob;
	size_t big_len = 64 * 1024, len = 0, n = 0;
	char *big = malloc(big_len + 1);
	char *json;
	long long seq = 0;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', big_len);
	big[big_len] = '\0';
	json = envelope("t", "id-1", big, &len);
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	assert_int_equal(sqlite3_exec(ob->db_put, "PRAGMA max_page_count = 8", NULL, NULL, NULL),
	                 SQLITE_OK);
	TK_FAIL(cmi_outbox_put(ob, "id-1", "t", json, len, &seq), CMICRO_EIO);
	TK_CONTAINS(cmicro_last_errmsg(), "disk is full");
	TK_CONTAINS(cmicro_last_errmsg(), path);
	cmi_outbox_usage(ob, &n, NULL);
	assert_int_equal(n, 0);
	cmi_outbox_close(ob);
	free(json);
	free(big);
	tk_tmpdir_remove(dir);
}

/* A file that never was an SQLite database is not taken for a damaged
 * outbox. */
static void test_outbox_non_sqlite_file_rejected(void **state)
{
	char *dir = tk_tmpdir();
	char path[512], text[4200];
	struct cmi_outbox *ob = NULL;

	(void)state;
	tk_path(path, sizeof(path), dir, "outbox.db");
	memset(text, 'Z', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	tk_write(path, text);
	TK_FAIL(cmi_outbox_open(path, 0, 0, &ob), CMICRO_ECONFIG);
	assert_null(ob);
	TK_CONTAINS(cmicro_last_errmsg(), "is not a cmicro outbox");
	TK_CONTAINS(cmicro_last_errmsg(), path);
	tk_tmpdir_remove(dir);
}

static void test_outbox_other_database_rejected(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob = NULL;
	sqlite3 *db = NULL;

	(void)state;
	tk_path(path, sizeof(path), dir, "other.db");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	TK_FAIL(cmi_outbox_open(path, 0, 0, &ob), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "not a cmicro outbox");
	tk_tmpdir_remove(dir);
}

static void test_outbox_directory_path_rejected(void **state)
{
	char *dir = tk_tmpdir();
	struct cmi_outbox *ob = NULL;

	(void)state;
	TK_FAIL(cmi_outbox_open(dir, 0, 0, &ob), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "is a directory");
	TK_CONTAINS(cmicro_last_errmsg(), "/outbox.db");
	tk_tmpdir_remove(dir);
}

static void test_outbox_missing_directory_rejected(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob = NULL;

	(void)state;
	tk_path(path, sizeof(path), dir, "no/such/outbox.db");
	TK_FAIL(cmi_outbox_open(path, 0, 0, &ob), CMICRO_ECONFIG);
	TK_CONTAINS(cmicro_last_errmsg(), "does not exist");
	tk_tmpdir_remove(dir);
}

/* Root writes anywhere, so the check runs in a child that has dropped to
 * the unprivileged user "nobody" when the test runs as root. */
static void test_outbox_readonly_directory_rejected(void **state)
{
	char *dir = tk_tmpdir();
	char ro[512], path[600];
	int status = 0;
	pid_t child;

	(void)state;
	tk_path(ro, sizeof(ro), dir, "ro");
	assert_int_equal(mkdir(ro, 0555), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	cmi_fmt(path, sizeof(path), "%s/outbox.db", ro);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct passwd *nobody = getpwnam("nobody");
		struct cmi_outbox *ob = NULL;
		int rc;

		if (geteuid() == 0 &&
		    (nobody == NULL || setgid(nobody->pw_gid) != 0 || setuid(nobody->pw_uid) != 0))
			_exit(3);
		rc = cmi_outbox_open(path, 0, 0, &ob);
		if (rc != CMICRO_ECONFIG)
			_exit(1);
		_exit(strstr(cmicro_last_errmsg(), "writable") != NULL ? 0 : 2);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tk_tmpdir_remove(dir);
}

static void test_outbox_invalid_row_skipped_and_kept(void **state)
{
	char *dir = tk_tmpdir();
	char path[512];
	struct cmi_outbox *ob;
	struct loaded l = {0};
	size_t skipped = 0, n = 0;

	(void)state;
	tk_log_capture_start();
	ob = open_ok(tk_path(path, sizeof(path), dir, "outbox.db"));
	put(ob, "t", "id-1");
	assert_int_equal(
	    sqlite3_exec(ob->db_put,
	                 "INSERT INTO messages (id, topic, envelope, created_ms) "
	                 "VALUES ('id-x', 't', '{\"Header\":', 0);"
	                 "INSERT INTO messages (id, topic, envelope, got_nodes, created_ms) "
	                 "VALUES ('id-y', 'bad topic', '{}', '[1]', 0)",
	                 NULL, NULL, NULL),
	    SQLITE_OK);
	cmi_outbox_close(ob);

	ob = open_ok(path);
	TK_OK(cmi_outbox_load(ob, collect_row, &l, &skipped));
	assert_int_equal(l.count, 1);
	assert_string_equal(l.id[0], "id-1");
	assert_int_equal(skipped, 2);
	assert_int_equal(tk_log_count("BROKER-OUTBOX-BAD-ROW"), 2);
	TK_CONTAINS(tk_log_captured(), "DELETE FROM messages WHERE seq = 2");
	cmi_outbox_usage(ob, &n, NULL);
	assert_int_equal(n, 3);
	cmi_outbox_close(ob);
	tk_log_capture_stop();
	tk_tmpdir_remove(dir);
}

static void test_outbox_row_check_bad_input(void **state)
{
	size_t len = 0;
	char *json = envelope("t", "id-1", "hello", &len);

	(void)state;
	TK_OK(cmi_outbox_check_row("id-1", "t", json, len));
	TK_FAIL(cmi_outbox_check_row("id-2", "t", json, len), CMICRO_EPROTO);
	TK_CONTAINS(cmicro_last_errmsg(), "Micro-Id");
	TK_FAIL(cmi_outbox_check_row("id-1", "u", json, len), CMICRO_EPROTO);
	TK_CONTAINS(cmicro_last_errmsg(), "Micro-Topic");
	TK_FAIL(cmi_outbox_check_row("id-1", "t", json, len - 1), CMICRO_EPROTO);
	TK_FAIL(cmi_outbox_check_row("", "t", json, len), CMICRO_EPROTO);
	TK_FAIL(cmi_outbox_check_row("id-1", "", json, len), CMICRO_EPROTO);
	free(json);
}

static void test_outbox_parse_list_bad_input(void **state)
{
	char **list = NULL;
	size_t n = 7;

	(void)state;
	TK_OK(cmi_outbox_parse_list("[\"a\",\"b\"]", &list, &n));
	assert_int_equal(n, 2);
	assert_string_equal(list[1], "b");
	cmi_brk_free_strings(list, n);
	TK_OK(cmi_outbox_parse_list("[]", &list, &n));
	assert_int_equal(n, 0);
	TK_FAIL(cmi_outbox_parse_list("{}", &list, &n), CMICRO_EPROTO);
	TK_FAIL(cmi_outbox_parse_list("[\"a\",2]", &list, &n), CMICRO_EPROTO);
	assert_null(list);
	assert_int_equal(n, 0);
	TK_FAIL(cmi_outbox_parse_list("[\"\"]", &list, &n), CMICRO_EPROTO);
	TK_FAIL(cmi_outbox_parse_list("[", &list, &n), CMICRO_EPROTO);
	TK_FAIL(cmi_outbox_parse_list(NULL, &list, &n), CMICRO_EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_outbox_open_creates_private_files),
	    cmocka_unit_test(test_outbox_open_tightens_existing_mode),
	    cmocka_unit_test(test_outbox_second_open_busy),
	    cmocka_unit_test(test_outbox_second_process_busy),
	    cmocka_unit_test(test_outbox_symlink_second_open_busy),
	    cmocka_unit_test(test_outbox_hardlink_second_process_busy),
	    cmocka_unit_test(test_outbox_text_file_left_unchanged),
	    cmocka_unit_test(test_outbox_other_database_left_unchanged),
	    cmocka_unit_test(test_outbox_damaged_outbox_fails_clearly),
	    cmocka_unit_test(test_outbox_failed_create_leaves_nothing),
	    cmocka_unit_test(test_outbox_stored_messages_load_after_reopen),
	    cmocka_unit_test(test_outbox_delete_removes_message),
	    cmocka_unit_test(test_outbox_partial_delivery_persists),
	    cmocka_unit_test(test_outbox_message_limit_rejects_new),
	    cmocka_unit_test(test_outbox_byte_limit_rejects_new),
	    cmocka_unit_test(test_outbox_full_file_fails_clearly),
	    cmocka_unit_test(test_outbox_non_sqlite_file_rejected),
	    cmocka_unit_test(test_outbox_other_database_rejected),
	    cmocka_unit_test(test_outbox_directory_path_rejected),
	    cmocka_unit_test(test_outbox_missing_directory_rejected),
	    cmocka_unit_test(test_outbox_readonly_directory_rejected),
	    cmocka_unit_test(test_outbox_invalid_row_skipped_and_kept),
	    cmocka_unit_test(test_outbox_row_check_bad_input),
	    cmocka_unit_test(test_outbox_parse_list_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
