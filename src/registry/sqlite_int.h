/* Internal interface of the SQLite registry, shared by its three files. */
#ifndef CMICRO_REGISTRY_SQLITE_INT_H
#define CMICRO_REGISTRY_SQLITE_INT_H

#include <sqlite3.h>

#include "registry/registry_int.h"

/* How long a statement waits for another process's write lock. */
#define CMI_SQLITE_BUSY_MS 5000

/* PRAGMA application_id of a cmicro registry file ("cmic"), and the schema
 * version this build writes and reads (PRAGMA user_version). */
#define CMI_SQLITE_APP_ID         0x636d6963
#define CMI_SQLITE_SCHEMA_VERSION 1

struct sql_registry {
	pthread_mutex_t lock; /* guards db: one statement sequence at a time */
	sqlite3 *db;
	long long bad_row_logged_ms; /* rate limit of the invalid-row warning */
};

/*
 * Opens path with the busy timeout and WAL mode. With init, also creates the
 * schema in a new file, checks the schema version of an existing one and
 * deletes expired rows. Errors name the path and the fix.
 */
int cmi_sqlite_open(const char *path, bool init, sqlite3 **out);

/* Reads the integer of a one-row statement such as a PRAGMA into *value;
 * returns the SQLite result code (SQLITE_OK on success). The outbox uses it
 * too. */
int cmi_sqlite_int(sqlite3 *db, const char *sql, long long *value);

/* Turns a failed SQLite call into a detail message naming path and the fix;
 * returns the cmicro error code. */
int cmi_sqlite_error(sqlite3 *db, int rc, const char *path, const char *doing);

/* Decodes one stored row; NULL (after logging at most once a minute per
 * registry, through *logged_ms) when the row does not hold a valid
 * single-node document of that service and node id. */
struct cmicro_service *cmi_sqlite_decode_row(const char *path, const char *service,
					     const char *node_id, const char *doc,
					     long long *logged_ms);

/* The watch operation: a poller with its own connection. */
int cmi_sqlite_watch(struct cmicro_registry *reg, struct cmicro_registry_watcher *w);

#endif
