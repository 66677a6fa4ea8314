/*
 * The durable outbox: an SQLite file that stores every published message
 * until all its targets have it, so a publisher restart loses nothing.
 * outbox.c opens, locks and checks the file; outbox_rows.c stores, removes
 * and loads the messages.
 */
#ifndef CMICRO_BROKER_OUTBOX_INT_H
#define CMICRO_BROKER_OUTBOX_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "broker/broker_int.h"

/* PRAGMA application_id of an outbox file ("cmob") and the schema version
 * this build writes and reads (PRAGMA user_version). */
#define CMI_OUTBOX_APP_ID         0x636d6f62
#define CMI_OUTBOX_SCHEMA_VERSION 1

/* Default limits: messages and envelope bytes stored at once. */
#define CMI_OUTBOX_DEFAULT_MESSAGES 10000
#define CMI_OUTBOX_DEFAULT_BYTES    ((size_t)64 << 20)

/* How long a statement waits for the other connection's write lock. */
#define CMI_OUTBOX_BUSY_MS 5000

struct cmi_outbox {
	char *path;
	/* The database file itself, locked with flock(LOCK_EX) while open, so
	 * the lock follows the inode through symbolic and hard links. */
	int lock_fd;
	dev_t dev;
	ino_t ino;
	pid_t owner; /* the process that opened it */
	struct cmi_outbox *next_open; /* in the list of this process's outboxes */
	bool listed;
	bool created;       /* this open created the file */
	bool remove_on_close; /* the open failed after creating the file */
	size_t max_messages, max_bytes;

	/* Guards db_put and the usage counters. db_put commits with
	 * synchronous=FULL, which syncs each stored message to disk before
	 * publish returns. */
	pthread_mutex_t put_lock;
	sqlite3 *db_put;
	size_t messages, bytes;

	/* Guards db_done, which removes and updates rows with
	 * synchronous=NORMAL: a removal lost in a machine crash only sends a
	 * message again. */
	pthread_mutex_t done_lock;
	sqlite3 *db_done;
};

/* One stored message, borrowed for the duration of a load callback. */
struct cmi_outbox_row {
	long long seq;
	const char *id;
	const char *topic;
	const char *envelope;
	size_t len;
	char **got_nodes; /* broadcast nodes that have it */
	size_t n_got_nodes;
	char **got_queues; /* queue groups that have it */
	size_t n_got_queues;
};

typedef int (*cmi_outbox_row_fn)(void *user, const struct cmi_outbox_row *row);

/*
 * Opens (creating with mode 0600) and locks the outbox at path. Zero limits
 * take the defaults. An existing empty file, or an SQLite database without
 * tables or application id, becomes a new outbox. Any other file is left
 * unchanged: its content, its mode and its journal mode are only changed
 * once it has been recognised as an outbox. Fails with CMICRO_ECONFIG for
 * a path that cannot hold the file or a file that is not a cmicro outbox,
 * CMICRO_EBUSY when another process or broker holds it (through any name),
 * CMICRO_EIO when SQLite cannot read or write it. A file this call created
 * is removed again when it fails.
 */
int cmi_outbox_open(const char *path, size_t max_messages, size_t max_bytes,
                    struct cmi_outbox **out);
void cmi_outbox_close(struct cmi_outbox *ob);

/* Stores one message and commits it; *seq identifies the row. Fails with
 * CMICRO_ELIMIT past a limit (nothing stored) or CMICRO_EIO. */
int cmi_outbox_put(struct cmi_outbox *ob, const char *id, const char *topic, const char *envelope,
                   size_t len, long long *seq);

/* Removes a message that every target has, or that no retry can deliver;
 * len is its envelope's size, subtracted from the usage. */
int cmi_outbox_delete(struct cmi_outbox *ob, long long seq, size_t len);

/* Records which broadcast nodes and queue groups have the message, so a
 * restart does not send it to them again. */
int cmi_outbox_set_got(struct cmi_outbox *ob, long long seq, char *const *nodes, size_t n_nodes,
                       char *const *queues, size_t n_queues);

/* Calls fn for every valid stored message, oldest first; a row that fails
 * cmi_outbox_check_row is logged, kept and counted in *skipped. Stops at
 * the first non-zero return of fn and returns it. */
int cmi_outbox_load(struct cmi_outbox *ob, cmi_outbox_row_fn fn, void *user, size_t *skipped);

/* Messages and envelope bytes stored now. */
void cmi_outbox_usage(struct cmi_outbox *ob, size_t *messages, size_t *bytes);

/*
 * Checks a stored row before it is sent again, because the file may have
 * been edited or damaged: the topic follows the topic rule, the envelope
 * decodes as go-micro's message with that Micro-Topic and that Micro-Id.
 * Returns CMICRO_EPROTO naming the problem.
 */
int cmi_outbox_check_row(const char *id, const char *topic, const char *envelope, size_t len);

/* Parses a stored JSON array of strings (the got_nodes and got_queues
 * columns). Returns CMICRO_EPROTO for anything else. */
int cmi_outbox_parse_list(const char *json, char ***list, size_t *n);

/* Turns a failed SQLite call into a detail message naming the file, what
 * was being done and the fix; returns the cmicro error code. */
int cmi_outbox_sqlite_error(sqlite3 *db, int rc, const char *path, const char *doing);

#endif
