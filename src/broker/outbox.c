/*
 * Opening the outbox file: the path checks, the lock that keeps a second
 * process out, the check that the file is an outbox (or empty), the 0600
 * mode, the schema and its version.
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "broker/outbox_int.h"
#include "registry/sqlite_int.h"

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

/* Outboxes open in this process, by inode. A second open in the same
 * process is rejected from this list before it opens a descriptor of the
 * file. Closing any descriptor of a file releases every fcntl lock that the
 * process holds on it, SQLite's included (fcntl(2), "Advisory record
 * locking"). */
static pthread_mutex_t ob_open_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct cmi_outbox *ob_open_list;

/* A child made by fork inherits the list but not the fcntl locks, so it
 * skips the entries of its parent. */
static const struct cmi_outbox *ob_find_open(dev_t dev, ino_t ino)
{
	for (const struct cmi_outbox *o = ob_open_list; o != NULL; o = o->next_open)
		if (o->dev == dev && o->ino == ino && o->owner == getpid())
			return o;
	return NULL;
}

static void ob_unlist(struct cmi_outbox *ob)
{
	pthread_mutex_lock(&ob_open_mutex);
	for (struct cmi_outbox **p = &ob_open_list; *p != NULL; p = &(*p)->next_open) {
		if (*p == ob) {
			*p = ob->next_open;
			break;
		}
	}
	ob->listed = false;
	pthread_mutex_unlock(&ob_open_mutex);
}

static int ob_busy(const struct cmi_outbox *ob, long holder)
{
	char who[48] = "another process";

	if (holder > 0)
		cmi_fmt(who, sizeof(who), "process %ld", holder);
	return cmi_error(CMICRO_EBUSY,
	                 "outbox %s is in use by another broker (%s holds its lock); give each "
	                 "publisher its own outbox file, or stop the other one first",
	                 ob->path, who);
}

/* Finds the process holding the flock(2) lock on fd's file in /proc/locks
 * ("1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF"); returns
 * 0 when it is not listed.
 * NOTE: on overlay file systems /proc/locks may name another device than
 * fstat reports, and the holder is then reported as unknown. */
static long ob_lock_holder(int fd)
{
	char line[256], type[16], where[64], want[64];
	struct stat st;
	long pid = 0, p;
	FILE *f;

	if (fstat(fd, &st) != 0 || (f = fopen("/proc/locks", "re")) == NULL)
		return 0;
	cmi_fmt(want, sizeof(want), "%02x:%02x:%lu", major(st.st_dev), minor(st.st_dev),
	        (unsigned long)st.st_ino);
	while (pid == 0 && fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%*s %15s %*s %*s %ld %63s", type, &p, where) == 3 &&
		    strcmp(type, "FLOCK") == 0 && strcmp(where, want) == 0)
			pid = p;
	}
	fclose(f);
	return pid;
}

/* Opens the database file, creating it with mode 0600 when it does not
 * exist, and lists it; runs under ob_open_mutex. */
static int ob_open_fd(struct cmi_outbox *ob)
{
	char reason[128];
	struct stat st;
	int fd;

	if (stat(ob->path, &st) == 0 && ob_find_open(st.st_dev, st.st_ino) != NULL)
		return ob_busy(ob, (long)getpid());
	fd = open(ob->path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		fd = open(ob->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		ob->created = fd >= 0;
	}
	if (fd < 0)
		return cmi_error(CMICRO_ECONFIG,
		                 "cannot open outbox file %s for writing: %s; make it and its "
		                 "directory writable for this user, or " OB_PATH_HINT,
		                 ob->path, strerror_r(errno, reason, sizeof(reason)));
	ob->lock_fd = fd;
	if (fstat(fd, &st) != 0)
		return cmi_error(CMICRO_EIO, "cannot read the status of outbox file %s: %s",
		                 ob->path, strerror_r(errno, reason, sizeof(reason)));
	if (ob_find_open(st.st_dev, st.st_ino) != NULL)
		return ob_busy(ob, (long)getpid());
	ob->dev = st.st_dev;
	ob->ino = st.st_ino;
	ob->owner = getpid();
	ob->next_open = ob_open_list;
	ob_open_list = ob;
	ob->listed = true;
	return 0;
}

/* Locks the database file itself with flock(2), so a second process fails
 * through any name of the file. On Linux, flock and fcntl locks do not
 * interact, so SQLite's fcntl locks on the same file work as before
 * (flock(2), NOTES). The lock ends with the process, even on SIGKILL.
 * NOTE: NFS emulates flock with fcntl locks on the whole file, which would
 * conflict with SQLite's; SQLite's WAL mode does not work on network file
 * systems either, so an outbox belongs on a local disk. */
static int ob_lock(struct cmi_outbox *ob)
{
	int rc;

	pthread_mutex_lock(&ob_open_mutex);
	rc = ob_open_fd(ob);
	pthread_mutex_unlock(&ob_open_mutex);
	if (rc != 0)
		return rc;
	if (flock(ob->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return ob_busy(ob, ob_lock_holder(ob->lock_fd));
	return 0;
}

/* Sets the mode of the locked file to 0600, because the outbox contains
 * message bodies. Runs once the file is known to be an outbox. */
static int ob_make_private(struct cmi_outbox *ob)
{
	char reason[128];
	struct stat st;

	if (fstat(ob->lock_fd, &st) != 0 || (st.st_mode & 077) == 0)
		return 0;
	if (fchmod(ob->lock_fd, 0600) != 0)
		return cmi_error(CMICRO_ECONFIG,
		                 "outbox file %s is open to other users and its mode cannot be set "
		                 "to 0600: %s; run chmod 600 on it",
		                 ob->path, strerror_r(errno, reason, sizeof(reason)));
	cmi_log(CMICRO_LOG_NOTICE, "broker", "BROKER-OUTBOX-PRIVATE",
	        "outbox file %s was open to other users; its mode is now 0600", ob->path);
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

static int ob_not_outbox(const struct cmi_outbox *ob, long long app_id, long long tables)
{
	return cmi_error(CMICRO_ECONFIG,
	                 "%s is not a cmicro outbox: it is an SQLite database of another program "
	                 "(application id %lld, %lld tables), so it was left unchanged; " OB_PATH_HINT,
	                 ob->path, app_id, tables);
}

/* Creates the schema in an empty file, or checks that an existing file is
 * an outbox of the version this build reads. Runs inside a transaction. */
static int ob_check_schema(struct cmi_outbox *ob)
{
	long long app_id = 0, version = 0, tables = 0;
	int rc = cmi_sqlite_int(ob->db_put, "PRAGMA application_id", &app_id);

	if (rc == SQLITE_OK)
		rc = cmi_sqlite_int(ob->db_put, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK)
		rc = cmi_sqlite_int(ob->db_put, "SELECT count(*) FROM sqlite_master", &tables);
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
		return ob_not_outbox(ob, app_id, tables);
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
	int rc = cmi_sqlite_int(ob->db_put, "SELECT count(*) FROM messages", &messages);

	if (rc == SQLITE_OK)
		rc = cmi_sqlite_int(ob->db_put,
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

/* Checks, before anything is changed, that the locked file is empty, an
 * SQLite database without tables or application id, or an outbox. The
 * check uses a connection of its own that is closed before the file's mode
 * is set, so any -wal and -shm files are made afresh with the new mode. */
static int ob_check_kind(struct cmi_outbox *ob)
{
	static const char magic[16] = "SQLite format 3";
	long long app_id = 0, tables = 0;
	sqlite3 *db = NULL;
	char header[16];
	struct stat st;
	int rc;

	if (fstat(ob->lock_fd, &st) == 0 && st.st_size == 0)
		return 0;
	if (pread(ob->lock_fd, header, sizeof(header), 0) != (ssize_t)sizeof(header) ||
	    memcmp(header, magic, sizeof(magic)) != 0)
		return cmi_error(CMICRO_ECONFIG,
		                 "%s is not a cmicro outbox: it is neither empty nor an SQLite "
		                 "database, so it was left unchanged; " OB_PATH_HINT,
		                 ob->path);

	rc = sqlite3_open_v2(ob->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, CMI_OUTBOX_BUSY_MS);
		rc = cmi_sqlite_int(db, "PRAGMA application_id", &app_id);
	}
	if (rc == SQLITE_OK)
		rc = cmi_sqlite_int(db, "SELECT count(*) FROM sqlite_master", &tables);
	if (rc != SQLITE_OK)
		rc = cmi_outbox_sqlite_error(db, rc, ob->path, "reading the application id");
	else if (app_id != CMI_OUTBOX_APP_ID && (app_id != 0 || tables != 0))
		rc = ob_not_outbox(ob, app_id, tables);
	sqlite3_close_v2(db);
	return rc;
}

static int ob_open_file(struct cmi_outbox *ob)
{
	int rc = ob_check_path(ob->path);

	if (rc == 0)
		rc = ob_lock(ob);
	if (rc == 0)
		rc = ob_check_kind(ob);
	/* Before SQLite creates the -wal and -shm files, which copy the mode of
	 * the database file. */
	if (rc == 0)
		rc = ob_make_private(ob);
	if (rc == 0)
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
		ob->remove_on_close = ob->created;
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
	/* sqlite3_close_v2 with a NULL handle is a no-op. The descriptor that
	 * holds the lock is closed last, so no other broker can lock the file
	 * while SQLite still uses it or before a failed create is removed. */
	sqlite3_close_v2(ob->db_done);
	sqlite3_close_v2(ob->db_put);
	if (ob->remove_on_close)
		unlink(ob->path);
	if (ob->lock_fd >= 0)
		close(ob->lock_fd);
	if (ob->listed)
		ob_unlist(ob);
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
