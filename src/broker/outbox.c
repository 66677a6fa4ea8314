/*
 * Opening the outbox file: the path checks, the lock that keeps a second
 * process out, the 0600 mode, the schema and its version.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/outbox_int.h"

#define OB_PATH_HINT                                                                               \
	"set the outbox option or MICRO_BROKER_OUTBOX to a file in a writable directory"

int cmi_outbox_sqlite_error(sqlite3 *db, int rc, const char *path, const char *doing)
{
	const char *detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return cmi_error(CMICRO_EIO,
		                 "outbox file %s is not a valid SQLite database (%s while "
		                 "%s); it may still hold undelivered messages, so move it "
		                 "aside with its -wal file for inspection and start with a "
		                 "new file",
		                 path, detail, doing);
	case SQLITE_FULL:
		return cmi_error(CMICRO_EIO,
		                 "cannot write outbox file %s: the disk is full (%s while "
		                 "%s); free space on its file system",
		                 path, detail, doing);
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		return cmi_error(CMICRO_EIO,
		                 "cannot write outbox file %s (%s while %s); make the "
		                 "file and its directory writable for this user, or " OB_PATH_HINT,
		                 path, detail, doing);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return cmi_error(CMICRO_ETIMEDOUT,
		                 "outbox file %s stayed locked for more than %d ms "
		                 "while %s; retry",
		                 path, CMI_OUTBOX_BUSY_MS, doing);
	default:
		return cmi_error(CMICRO_EIO, "outbox file %s: %s while %s (%s)", path, detail,
		                 doing, sqlite3_errstr(rc));
	}
}

/* Checks that path names a regular file or a file still to be created in
 * an existing directory, before SQLite fails on it with a vaguer message. */
static int ob_check_path(const char *path)
{
	char *copy;
	struct stat st;
	int rc = 0;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return cmi_error(CMICRO_ECONFIG,
			                 "outbox path %s is a directory; use a file "
			                 "path such as %s/outbox.db",
			                 path, path);
		if (!S_ISREG(st.st_mode))
			return cmi_error(CMICRO_ECONFIG,
			                 "outbox path %s is not a regular file; " OB_PATH_HINT,
			                 path);
		return 0;
	}
	copy = cmi_strdup(path);
	if (copy == NULL)
		return CMICRO_ENOMEM;
	if (stat(dirname(copy), &st) != 0 || !S_ISDIR(st.st_mode))
		rc = cmi_error(CMICRO_ECONFIG,
		               "cannot create outbox file %s: directory %s does not "
		               "exist; create it, or " OB_PATH_HINT,
		               path, copy);
	free(copy);
	return rc;
}

/* Opens path with O_CREAT and mode 0600, and tightens the mode of an
 * existing file, because the outbox contains message bodies. */
static int ob_open_private(const char *path, const char *what)
{
	char reason[128];
	struct stat st;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		return cmi_error(CMICRO_ECONFIG,
		                 "cannot open %s %s for writing: %s; make it and its "
		                 "directory writable for this user, or " OB_PATH_HINT,
		                 what, path, strerror_r(errno, reason, sizeof(reason)));
	if (fstat(fd, &st) == 0 && (st.st_mode & 077) != 0) {
		if (fchmod(fd, 0600) != 0) {
			close(fd);
			return cmi_error(CMICRO_ECONFIG,
			                 "%s %s is open to other users and its mode "
			                 "cannot be set to 0600: %s; run chmod 600 on it",
			                 what, path, strerror_r(errno, reason, sizeof(reason)));
		}
		cmi_log(CMICRO_LOG_NOTICE, "broker", "BROKER-OUTBOX-PRIVATE",
		        "%s %s was open to other users; its mode is now 0600", what, path);
	}
	return fd;
}

/* Takes the lock file "<path>.lock", so a second process or broker opening
 * the same outbox fails instead of sending its messages twice. The lock
 * ends with the process, even on SIGKILL. */
static int ob_lock(struct cmi_outbox *ob)
{
	char lock_path[4200], holder[32] = "";
	ssize_t n;
	int fd;

	cmi_fmt(lock_path, sizeof(lock_path), "%s.lock", ob->path);
	fd = ob_open_private(lock_path, "outbox lock file");
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		n = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		close(fd);
		return cmi_error(CMICRO_EBUSY,
		                 "outbox %s is in use by another broker (process %s "
		                 "holds %s); give each publisher its own outbox file, or "
		                 "stop the other one first",
		                 ob->path, holder[0] ? holder : "unknown", lock_path);
	}
	if (ftruncate(fd, 0) == 0)
		dprintf(fd, "%ld\n", (long)getpid());
	ob->lock_fd = fd;
	return 0;
}

static const char ob_schema_sql[] = "CREATE TABLE messages ("
                                    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                                    " id TEXT NOT NULL,"
                                    " topic TEXT NOT NULL,"
                                    " envelope BLOB NOT NULL,"
                                    " got_nodes TEXT NOT NULL DEFAULT '[]',"
                                    " got_queues TEXT NOT NULL DEFAULT '[]',"
                                    " created_ms INTEGER NOT NULL"
                                    ");"
                                    "PRAGMA application_id = 1668116322;"
                                    "PRAGMA user_version = 1;";

_Static_assert(CMI_OUTBOX_APP_ID == 1668116322, "ob_schema_sql repeats CMI_OUTBOX_APP_ID");
_Static_assert(CMI_OUTBOX_SCHEMA_VERSION == 1, "ob_schema_sql repeats the schema version");

static int ob_sql_int(sqlite3 *db, const char *sql, long long *value)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*value = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/* Creates the schema in an empty file, or checks that an existing file is
 * an outbox of the version this build reads. Runs inside a transaction. */
static int ob_check_schema(struct cmi_outbox *ob)
{
	long long app_id = 0, version = 0, tables = 0;
	int rc = ob_sql_int(ob->db_put, "PRAGMA application_id", &app_id);

	if (rc == SQLITE_OK)
		rc = ob_sql_int(ob->db_put, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK)
		rc = ob_sql_int(ob->db_put, "SELECT count(*) FROM sqlite_master", &tables);
	if (rc != SQLITE_OK)
		return cmi_outbox_sqlite_error(ob->db_put, rc, ob->path,
		                               "reading the schema version");
	if (app_id == 0 && tables == 0) {
		rc = sqlite3_exec(ob->db_put, ob_schema_sql, NULL, NULL, NULL);
		return rc == SQLITE_OK ? 0
		                       : cmi_outbox_sqlite_error(ob->db_put, rc, ob->path,
		                                                 "creating the schema");
	}
	if (app_id != CMI_OUTBOX_APP_ID)
		return cmi_error(CMICRO_ECONFIG,
		                 "outbox file %s is an SQLite database of another "
		                 "program (application id %lld, %lld tables), not a "
		                 "cmicro outbox; " OB_PATH_HINT,
		                 ob->path, app_id, tables);
	if (version != CMI_OUTBOX_SCHEMA_VERSION)
		return cmi_error(CMICRO_ECONFIG,
		                 "outbox file %s has schema version %lld, but this "
		                 "cmicro reads version %d; send its messages with the "
		                 "cmicro that wrote it, or " OB_PATH_HINT,
		                 ob->path, version, CMI_OUTBOX_SCHEMA_VERSION);
	return 0;
}

static int ob_count(struct cmi_outbox *ob)
{
	long long messages = 0, bytes = 0;
	int rc = ob_sql_int(ob->db_put, "SELECT count(*) FROM messages", &messages);

	if (rc == SQLITE_OK)
		rc = ob_sql_int(ob->db_put,
		                "SELECT coalesce(sum(length(envelope)), 0) FROM messages", &bytes);
	if (rc != SQLITE_OK)
		return cmi_outbox_sqlite_error(ob->db_put, rc, ob->path, "counting the messages");
	ob->messages = (size_t)messages;
	ob->bytes = (size_t)bytes;
	return 0;
}

static int ob_init_schema(struct cmi_outbox *ob)
{
	int rc = sqlite3_exec(ob->db_put, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	int err;

	if (rc != SQLITE_OK)
		return cmi_outbox_sqlite_error(ob->db_put, rc, ob->path, "locking the file");
	err = ob_check_schema(ob);
	if (err == 0)
		err = ob_count(ob);
	if (err == 0) {
		rc = sqlite3_exec(ob->db_put, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			err = cmi_outbox_sqlite_error(ob->db_put, rc, ob->path,
			                              "committing the schema");
	}
	if (err != 0)
		sqlite3_exec(ob->db_put, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

/* Opens one connection in WAL mode with the given synchronous level. */
static int ob_connect(struct cmi_outbox *ob, const char *synchronous, sqlite3 **db)
{
	char sql[64];
	int rc = sqlite3_open_v2(ob->path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK)
		return cmi_outbox_sqlite_error(*db, rc, ob->path, "opening");
	sqlite3_extended_result_codes(*db, 1);
	sqlite3_busy_timeout(*db, CMI_OUTBOX_BUSY_MS);
	rc = sqlite3_exec(*db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return cmi_outbox_sqlite_error(*db, rc, ob->path, "switching to WAL mode");
	cmi_fmt(sql, sizeof(sql), "PRAGMA synchronous=%s", synchronous);
	rc = sqlite3_exec(*db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return cmi_outbox_sqlite_error(*db, rc, ob->path, "setting the synchronous mode");
	return 0;
}

static int ob_open_file(struct cmi_outbox *ob)
{
	int fd, rc = ob_check_path(ob->path);

	if (rc == 0)
		rc = ob_lock(ob);
	if (rc != 0)
		return rc;
	/* Created here rather than by SQLite, which would use mode 0644; its
	 * -wal and -shm files copy the mode of the database file. */
	fd = ob_open_private(ob->path, "outbox file");
	if (fd < 0)
		return fd;
	close(fd);
	rc = ob_connect(ob, "FULL", &ob->db_put);
	if (rc == 0)
		rc = ob_init_schema(ob);
	if (rc == 0)
		rc = ob_connect(ob, "NORMAL", &ob->db_done);
	return rc;
}

int cmi_outbox_open(const char *path, size_t max_messages, size_t max_bytes,
                    struct cmi_outbox **out)
{
	struct cmi_outbox *ob;
	int rc;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return cmi_error(CMICRO_EINVAL, "outbox path is empty; " OB_PATH_HINT);
	ob = cmi_calloc(1, sizeof(*ob));
	if (ob == NULL)
		return CMICRO_ENOMEM;
	ob->lock_fd = -1;
	pthread_mutex_init(&ob->put_lock, NULL);
	pthread_mutex_init(&ob->done_lock, NULL);
	ob->max_messages = max_messages ? max_messages : CMI_OUTBOX_DEFAULT_MESSAGES;
	ob->max_bytes = max_bytes ? max_bytes : CMI_OUTBOX_DEFAULT_BYTES;
	ob->path = cmi_strdup(path);
	rc = ob->path ? ob_open_file(ob) : CMICRO_ENOMEM;
	if (rc != 0) {
		cmi_outbox_close(ob);
		return rc;
	}
	*out = ob;
	return 0;
}

void cmi_outbox_close(struct cmi_outbox *ob)
{
	if (ob == NULL)
		return;
	/* sqlite3_close_v2 with a NULL handle is a no-op. */
	sqlite3_close_v2(ob->db_done);
	sqlite3_close_v2(ob->db_put);
	if (ob->lock_fd >= 0)
		close(ob->lock_fd);
	pthread_mutex_destroy(&ob->done_lock);
	pthread_mutex_destroy(&ob->put_lock);
	free(ob->path);
	free(ob);
}

void cmi_outbox_usage(struct cmi_outbox *ob, size_t *messages, size_t *bytes)
{
	pthread_mutex_lock(&ob->put_lock);
	if (messages != NULL)
		*messages = ob->messages;
	if (bytes != NULL)
		*bytes = ob->bytes;
	pthread_mutex_unlock(&ob->put_lock);
}
