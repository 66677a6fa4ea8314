/*
 * Watching the SQLite registry. Every CMI_SQLITE_WATCH_POLL_MS the watcher
 * reads PRAGMA data_version, which changes when another connection commits.
 * It rereads the live rows only when that version changed or when a known
 * node's expiry time passed, because expiry writes nothing. The new row set
 * is compared with the previous one to emit create, update and delete
 * events. The watcher has its own connection because data_version ignores
 * commits made through the connection that reads it.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/sqlite_int.h"

struct watch_row {
	char *service;
	char *node_id;
	char *doc;
};

struct watch_rows {
	struct watch_row *items;
	size_t n;
	size_t cap;
};

struct sql_watch {
	sqlite3 *db;
	long long data_version;
	long long next_expiry_ms; /* earliest expiry among rows; 0 none */
	struct watch_rows rows;   /* sorted by service, then node id */
	bool error_logged;
	long long bad_row_logged_ms;
};

static void rows_clear(struct watch_rows *rows)
{
	for (size_t i = 0; i < rows->n; i++) {
		free(rows->items[i].service);
		free(rows->items[i].node_id);
		free(rows->items[i].doc);
	}
	free(rows->items);
	memset(rows, 0, sizeof(*rows));
}

static int rows_add(struct watch_rows *rows, sqlite3_stmt *st)
{
	struct watch_row *row;

	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 16;
		struct watch_row *grown = realloc(rows->items, cap * sizeof(*grown));

		if (grown == NULL)
			return cmi_error(CMICRO_ENOMEM, "out of memory reading %zu registry rows",
					 rows->n + 1);
		rows->items = grown;
		rows->cap = cap;
	}
	row = &rows->items[rows->n];
	row->service = cmi_strdup((const char *)sqlite3_column_text(st, 0));
	row->node_id = cmi_strdup((const char *)sqlite3_column_text(st, 1));
	row->doc = cmi_strdup((const char *)sqlite3_column_text(st, 2));
	rows->n++;
	if (row->service == NULL || row->node_id == NULL || row->doc == NULL)
		return CMICRO_ENOMEM;
	return 0;
}

/* Reads the live rows (of the watched service only, when one is set). */
static int watch_read(struct cmicro_registry_watcher *w, struct watch_rows *rows,
		      long long *next_expiry)
{
	struct sql_watch *sw = w->impl;
	sqlite3_stmt *st = NULL;
	long long now = cmi_now_ms();
	int step = SQLITE_DONE;
	int rc = sqlite3_prepare_v2(sw->db,
				    "SELECT service, node_id, doc, expires_at FROM nodes WHERE "
				    "(expires_at = 0 OR expires_at > ?1) AND "
				    "(?2 IS NULL OR service = ?2) ORDER BY service, node_id",
				    -1, &st, NULL);

	*next_expiry = 0;
	if (rc != SQLITE_OK) {
		rc = cmi_sqlite_error(sw->db, rc, w->reg->address, "preparing the watch query");
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	if (w->service != NULL)
		sqlite3_bind_text(st, 2, w->service, -1, SQLITE_STATIC);
	rc = 0;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		long long expires = sqlite3_column_int64(st, 3);

		if (expires > 0 && (*next_expiry == 0 || expires < *next_expiry))
			*next_expiry = expires;
		rc = rows_add(rows, st);
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = cmi_sqlite_error(sw->db, step, w->reg->address, "reading nodes to watch");
out:
	sqlite3_finalize(st);
	return rc;
}

static void emit_row(struct cmicro_registry_watcher *w, enum cmicro_registry_event event,
		     const struct watch_row *row)
{
	struct sql_watch *sw = w->impl;
	struct cmicro_service *svc = cmi_sqlite_decode_row(
	    w->reg->address, row->service, row->node_id, row->doc, &sw->bad_row_logged_ms);

	if (svc == NULL)
		return;
	cmi_watcher_emit(w, event, svc);
	cmicro_service_free(svc);
}

static int row_compare(const struct watch_row *a, const struct watch_row *b)
{
	int c = strcmp(a->service, b->service);

	return c != 0 ? c : strcmp(a->node_id, b->node_id);
}

/* Walks both sorted row sets together and emits the differences. */
static void watch_diff(struct cmicro_registry_watcher *w, const struct watch_rows *old,
		       const struct watch_rows *cur)
{
	size_t i = 0, j = 0;

	while (i < old->n || j < cur->n) {
		int c = i == old->n   ? 1
			: j == cur->n ? -1
				      : row_compare(&old->items[i], &cur->items[j]);

		if (c < 0) {
			emit_row(w, CMICRO_REGISTRY_DELETE, &old->items[i++]);
		} else if (c > 0) {
			emit_row(w, CMICRO_REGISTRY_CREATE, &cur->items[j++]);
		} else {
			if (strcmp(old->items[i].doc, cur->items[j].doc) != 0)
				emit_row(w, CMICRO_REGISTRY_UPDATE, &cur->items[j]);
			i++;
			j++;
		}
	}
}

static int read_data_version(struct cmicro_registry_watcher *w, long long *version)
{
	struct sql_watch *sw = w->impl;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(sw->db, "PRAGMA data_version", -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*version = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK
		   ? 0
		   : cmi_sqlite_error(sw->db, rc, w->reg->address, "reading the data version");
}

/* Rereads the rows when something may have changed; returns 0 or an error. */
static int watch_refresh(struct cmicro_registry_watcher *w, bool emit)
{
	struct sql_watch *sw = w->impl;
	struct watch_rows cur = {0};
	long long version = 0;
	long long next_expiry = 0;
	int rc = read_data_version(w, &version);

	if (rc != 0)
		return rc;
	if (emit && version == sw->data_version &&
	    (sw->next_expiry_ms == 0 || cmi_now_ms() < sw->next_expiry_ms))
		return 0;

	rc = watch_read(w, &cur, &next_expiry);
	if (rc != 0) {
		rows_clear(&cur);
		return rc;
	}
	if (emit)
		watch_diff(w, &sw->rows, &cur);
	rows_clear(&sw->rows);
	sw->rows = cur;
	sw->data_version = version;
	sw->next_expiry_ms = next_expiry;
	return 0;
}

static void watch_poll(struct cmicro_registry_watcher *w)
{
	struct sql_watch *sw = w->impl;
	int rc = watch_refresh(w, true);

	if (rc != 0 && !sw->error_logged) {
		cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-WATCH-ERROR",
			"watching registry file %s failed, retrying every %d ms: %s",
			w->reg->address, CMI_SQLITE_WATCH_POLL_MS, cmicro_last_errmsg());
		sw->error_logged = true;
	} else if (rc == 0 && sw->error_logged) {
		cmi_log(CMICRO_LOG_NOTICE, "registry", "REGISTRY-WATCH-RESTORED",
			"watching registry file %s works again", w->reg->address);
		sw->error_logged = false;
	}
}

static void watch_release(struct cmicro_registry_watcher *w)
{
	struct sql_watch *sw = w->impl;

	if (sw == NULL)
		return;
	rows_clear(&sw->rows);
	sqlite3_close(sw->db);
	free(sw);
	w->impl = NULL;
}

int cmi_sqlite_watch(struct cmicro_registry *reg, struct cmicro_registry_watcher *w)
{
	struct sql_watch *sw = cmi_calloc(1, sizeof(*sw));
	int rc;

	if (sw == NULL)
		return CMICRO_ENOMEM;
	w->impl = sw;
	w->release = watch_release;
	rc = cmi_sqlite_open(reg->address, false, &sw->db);
	if (rc != 0)
		return rc;

	/* The first snapshot is taken now, so a change made right after
	 * cmicro_registry_watch returns is reported. */
	rc = watch_refresh(w, false);
	if (rc != 0)
		return rc;
	w->poll = watch_poll;
	w->poll_ms = CMI_SQLITE_WATCH_POLL_MS;
	return 0;
}
