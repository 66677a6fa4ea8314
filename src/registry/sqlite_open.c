/*
 * Finding, opening and checking the SQLite registry file: the default path
 * rules, the schema and its version, and error messages that name the file
 * and the fix.
 */
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/sqlite_int.h"

#define ADDRESS_HINT "or set MICRO_REGISTRY_ADDRESS to a file path in a writable directory"

int cmi_sqlite_error(sqlite3 *db, int rc, const char *path, const char *doing)
{
	const char *detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	char reason[128];

	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return cmi_error(CMICRO_EDB,
				 "registry file %s is not a valid SQLite database "
				 "(%s while %s). Delete it with its -wal and -shm files "
				 "(services register again when they renew), " ADDRESS_HINT,
				 path, detail, doing);
	case SQLITE_CANTOPEN:
		return cmi_error(
		    CMICRO_EDB,
		    "cannot open registry file %s (%s while %s): %s; "
		    "check that its directory exists and is writable, " ADDRESS_HINT,
		    path, detail, doing,
		    strerror_r(db ? sqlite3_system_errno(db) : 0, reason, sizeof(reason)));
	case SQLITE_READONLY:
	case SQLITE_PERM:
		return cmi_error(CMICRO_EDB,
				 "registry file %s is read-only (%s while %s); make "
				 "the file and its directory writable for this user, " ADDRESS_HINT,
				 path, detail, doing);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return cmi_error(CMICRO_ETIMEDOUT,
				 "registry file %s stayed locked by another "
				 "process for more than %d ms while %s; retry, "
				 "or stop the process that holds it",
				 path, CMI_SQLITE_BUSY_MS, doing);
	case SQLITE_FULL:
	case SQLITE_IOERR:
		return cmi_error(CMICRO_EDB,
				 "cannot write registry file %s (%s while %s); free "
				 "space on its file system, " ADDRESS_HINT,
				 path, detail, doing);
	default:
		return cmi_error(CMICRO_EDB, "registry file %s: %s while %s (%s)", path, detail,
				 doing, sqlite3_errstr(rc));
	}
}

/* Checks that the directory of a file still to be created can hold it. */
static int check_parent_dir(const char *path)
{
	char *copy = cmi_strdup(path);
	char reason[128];
	struct stat st;
	const char *dir;
	int err;
	int rc = 0;

	if (copy == NULL)
		return CMICRO_ENOMEM;
	dir = dirname(copy);
	err = stat(dir, &st) == 0 ? 0 : errno;
	if (err == ENOENT)
		rc =
		    cmi_error(CMICRO_ECONFIG,
			      "cannot create registry file %s: directory %s does not exist; create "
			      "it, " ADDRESS_HINT,
			      path, dir);
	else if (err == ENOTDIR || (err == 0 && !S_ISDIR(st.st_mode)))
		rc = cmi_error(CMICRO_ECONFIG,
			       "cannot create registry file %s: a part of %s is a file, not a "
			       "directory; choose a path inside a directory, " ADDRESS_HINT,
			       path, dir);
	else if (err != 0)
		rc = cmi_error(CMICRO_ECONFIG,
			       "cannot create registry file %s: cannot read directory %s (%s); fix "
			       "its permissions, " ADDRESS_HINT,
			       path, dir, strerror_r(err, reason, sizeof(reason)));
	else if (access(dir, W_OK | X_OK) != 0)
		rc = cmi_error(
		    CMICRO_ECONFIG,
		    "cannot create registry file %s: directory %s is not writable by this "
		    "user; change its permissions, " ADDRESS_HINT,
		    path, dir);
	free(copy);
	return rc;
}

/* Rejects paths SQLite would fail on with a vaguer message. */
static int check_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return check_parent_dir(path);
	if (S_ISDIR(st.st_mode))
		return cmi_error(CMICRO_ECONFIG,
				 "registry path %s is a directory; use a file path such as "
				 "%s/registry.db",
				 path, path);
	if (!S_ISREG(st.st_mode))
		return cmi_error(
		    CMICRO_ECONFIG,
		    "registry path %s is not a regular file; use a file path, " ADDRESS_HINT, path);
	return 0;
}

int cmi_sqlite_int(sqlite3 *db, const char *sql, long long *value)
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

/* Switches the file to WAL, so readers do not wait for the writer. Another
 * process switching a new file at the same time may hold the lock for a
 * moment, so SQLITE_BUSY is retried up to 10 times. */
static int set_wal(sqlite3 *db, const char *path)
{
	int rc = SQLITE_BUSY;

	for (int attempt = 0; attempt < 10 && ((rc & 0xff) == SQLITE_BUSY); attempt++) {
		rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
		if ((rc & 0xff) == SQLITE_BUSY)
			usleep(100 * 1000);
	}
	if (rc != SQLITE_OK)
		return cmi_sqlite_error(db, rc, path, "switching to WAL mode");
	rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return cmi_sqlite_error(db, rc, path, "setting synchronous mode");
	return 0;
}

static const char schema_sql[] = "CREATE TABLE nodes ("
				 " service TEXT NOT NULL,"
				 " node_id TEXT NOT NULL,"
				 " version TEXT NOT NULL,"
				 " doc TEXT NOT NULL,"
				 " expires_at INTEGER NOT NULL,"
				 " PRIMARY KEY (service, node_id)"
				 ") WITHOUT ROWID;"
				 "PRAGMA application_id = 1668114787;"
				 "PRAGMA user_version = 1;";

_Static_assert(CMI_SQLITE_APP_ID == 1668114787, "schema_sql repeats CMI_SQLITE_APP_ID");
_Static_assert(CMI_SQLITE_SCHEMA_VERSION == 1, "schema_sql repeats the schema version");

/* Creates the schema in an empty file, or checks that an existing file is a
 * registry of a version this build reads. Runs inside the transaction. */
static int check_schema(sqlite3 *db, const char *path)
{
	long long app_id = 0, version = 0, tables = 0;
	int rc = cmi_sqlite_int(db, "PRAGMA application_id", &app_id);

	if (rc == SQLITE_OK)
		rc = cmi_sqlite_int(db, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK)
		rc = cmi_sqlite_int(db, "SELECT count(*) FROM sqlite_master", &tables);
	if (rc != SQLITE_OK)
		return cmi_sqlite_error(db, rc, path, "reading the schema version");

	if (app_id == 0 && tables == 0) {
		rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
		return rc == SQLITE_OK ? 0 : cmi_sqlite_error(db, rc, path, "creating the schema");
	}
	if (app_id != CMI_SQLITE_APP_ID)
		return cmi_error(CMICRO_EDB,
				 "registry file %s is an SQLite database of another "
				 "program (application id %lld, %lld tables); " ADDRESS_HINT
				 " that cmicro may own",
				 path, app_id, tables);
	if (version > CMI_SQLITE_SCHEMA_VERSION)
		return cmi_error(CMICRO_EDB,
				 "registry file %s has schema version %lld, newer than "
				 "version %d that this cmicro reads; upgrade cmicro on "
				 "this machine, " ADDRESS_HINT,
				 path, version, CMI_SQLITE_SCHEMA_VERSION);
	if (version < CMI_SQLITE_SCHEMA_VERSION)
		return cmi_error(CMICRO_EDB,
				 "registry file %s has schema version %lld, which no "
				 "cmicro writes; delete it, " ADDRESS_HINT,
				 path, version);
	return 0;
}

static int init_file(sqlite3 *db, const char *path)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	int err;

	if (rc != SQLITE_OK)
		return cmi_sqlite_error(db, rc, path, "locking the file to check its schema");
	err = check_schema(db, path);
	if (err == 0) {
		rc = sqlite3_prepare_v2(db,
					"DELETE FROM nodes WHERE expires_at > 0 AND "
					"expires_at <= ?1",
					-1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, cmi_now_ms());
			rc = sqlite3_step(st);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE && rc != SQLITE_OK)
			err = cmi_sqlite_error(db, rc, path, "deleting expired nodes");
	}
	if (err == 0) {
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			err = cmi_sqlite_error(db, rc, path, "committing the schema");
	}
	if (err != 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return err;
}

int cmi_sqlite_open(const char *path, bool init, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int rc = check_path(path);

	*out = NULL;
	if (rc != 0)
		return rc;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		rc = cmi_sqlite_error(db, rc, path, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, CMI_SQLITE_BUSY_MS);

	rc = set_wal(db, path);
	if (rc == 0 && init)
		rc = init_file(db, path);
out:
	if (rc != 0) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* Values of MICRO_REGISTRY_ADDRESS meant for a network registry (go-micro's
 * etcd takes "host:port" lists) rather than a file. */
static bool looks_like_network(const char *addr)
{
	const char *colon = strrchr(addr, ':');

	if (strstr(addr, "://") != NULL)
		return true;
	if (strchr(addr, '/') != NULL || colon == NULL || colon[1] == '\0')
		return false;
	return strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

/* Creates dir with mode 0700 unless it exists, checks that it is a
 * directory this user owns (so no other user can swap the file), and makes
 * an existing one private again. */
static int make_private_dir(const char *dir, const char *origin)
{
	struct stat st;
	char reason[128];

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return cmi_error(CMICRO_ECONFIG,
				 "cannot create registry directory %s (%s): %s; "
				 "create it with mode 0700, " ADDRESS_HINT,
				 dir, origin, strerror_r(errno, reason, sizeof(reason)));
	if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return cmi_error(CMICRO_ECONFIG,
				 "registry directory %s (%s) exists but is not a directory; "
				 "remove it, " ADDRESS_HINT,
				 dir, origin);
	if (st.st_uid != geteuid())
		return cmi_error(CMICRO_ECONFIG,
				 "registry directory %s (%s) belongs to user %u, "
				 "not to this user %u; remove it, " ADDRESS_HINT,
				 dir, origin, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & 077) != 0) {
		if (chmod(dir, 0700) != 0)
			return cmi_error(
			    CMICRO_ECONFIG,
			    "registry directory %s (%s) is open to other users and "
			    "cannot be made private: %s; run chmod 700 on it, " ADDRESS_HINT,
			    dir, origin, strerror_r(errno, reason, sizeof(reason)));
		cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-DIR-PRIVATE",
			"registry directory %s was open to other users; its mode is now 0700", dir);
	}
	return 0;
}

static int join_path(char **out, const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;

	*out = cmi_calloc(1, len);
	if (*out == NULL)
		return CMICRO_ENOMEM;
	cmi_fmt(*out, len, "%s/%s", dir, name);
	return 0;
}

int cmi_sqlite_default_path(char **out)
{
	const char *addr = cmi_getenv("MICRO_REGISTRY_ADDRESS");
	const char *xdg = cmi_getenv("XDG_RUNTIME_DIR");
	char dir[4096];
	int rc;

	*out = NULL;
	if (addr != NULL && addr[0] != '\0') {
		if (looks_like_network(addr))
			return cmi_error(CMICRO_ECONFIG,
					 "MICRO_REGISTRY_ADDRESS=\"%.256s\" looks "
					 "like a network address, but the sqlite "
					 "registry needs a file path; set a path "
					 "such as /tmp/cmicro-registry.db, or unset it",
					 addr);
		*out = cmi_strdup(addr);
		return *out ? 0 : CMICRO_ENOMEM;
	}

	/* The XDG base directory specification requires ignoring a relative
	 * XDG_RUNTIME_DIR. */
	if (xdg != NULL && xdg[0] == '/') {
		cmi_fmt(dir, sizeof(dir), "%s/cmicro", xdg);
		rc = make_private_dir(dir, "under XDG_RUNTIME_DIR");
	} else {
		cmi_fmt(dir, sizeof(dir), "/tmp/cmicro-%u", (unsigned)geteuid());
		rc = make_private_dir(dir, "the default without XDG_RUNTIME_DIR");
	}
	if (rc != 0)
		return rc;
	return join_path(out, dir, "registry.db");
}
