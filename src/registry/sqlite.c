/*
 * The SQLite registry: the embedded default for processes of one machine.
 * Table nodes has one row per (service, node id), holding the JSON of the
 * service with that one node and its expiry, the layout go-micro's etcd
 * registry uses for its keys. Writes run in IMMEDIATE transactions, so
 * concurrent processes serialise on the file lock instead of failing.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/sqlite_int.h"

/* Rows with expires_at 0 never expire; others are live until that wall-clock
 * time in milliseconds.
 * NOTE: the wall clock is used because the file outlives a reboot, where
 * CLOCK_MONOTONIC restarts; a step of the system clock moves every expiry. */
#define LIVE_CLAUSE "(expires_at = 0 OR expires_at > ?1)"

struct cmicro_service *cmi_sqlite_decode_row(const char *path, const char *service,
					     const char *node_id, const char *doc,
					     long long *logged_ms)
{
	struct cmicro_service *svc = NULL;
	int rc;
	long long now;

	if (service == NULL || node_id == NULL || doc == NULL)
		return NULL;
	rc = cmicro_service_from_json(doc, strlen(doc), &svc);
	if (rc == 0 && svc->n_nodes == 1 && strcmp(svc->name, service) == 0 &&
	    strcmp(svc->nodes[0].id, node_id) == 0)
		return svc;
	if (rc == 0)
		cmi_error(CMICRO_EPROTO,
			  "the document does not hold exactly node \"%.64s\" of "
			  "service \"%.64s\"",
			  node_id, service);
	cmicro_service_free(svc);

	now = cmi_now_ms();
	if (now - *logged_ms >= 60000) {
		*logged_ms = now;
		cmi_log(CMICRO_LOG_WARNING, "registry", "REGISTRY-BAD-ENTRY",
			"registry file %s: skipping node \"%.64s\" of service \"%.64s\": %s "
			"(repeats are not logged for a minute)",
			path, node_id, service, cmicro_last_errmsg());
	}
	return NULL;
}

static int sql_prepare(struct cmicro_registry *reg, const char *sql, sqlite3_stmt **st)
{
	struct sql_registry *s = reg->impl;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : cmi_sqlite_error(s->db, rc, reg->address, "preparing a query");
}

static int sql_step_done(struct cmicro_registry *reg, sqlite3_stmt *st, const char *doing)
{
	struct sql_registry *s = reg->impl;
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : cmi_sqlite_error(s->db, rc, reg->address, doing);
}

static int sql_exec(struct cmicro_registry *reg, const char *sql, const char *doing)
{
	struct sql_registry *s = reg->impl;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : cmi_sqlite_error(s->db, rc, reg->address, doing);
}

/* Expired rows are ignored by reads; writers delete them on the way. */
static int sql_purge(struct cmicro_registry *reg)
{
	sqlite3_stmt *st = NULL;
	int rc =
	    sql_prepare(reg, "DELETE FROM nodes WHERE expires_at > 0 AND expires_at <= ?1", &st);

	if (rc == 0) {
		sqlite3_bind_int64(st, 1, cmi_now_ms());
		rc = sql_step_done(reg, st, "deleting expired nodes");
	}
	sqlite3_finalize(st);
	return rc;
}

static int sql_upsert_node(struct cmicro_registry *reg, sqlite3_stmt *st,
			   const struct cmicro_service *svc, size_t i, long long expires_ms)
{
	char *doc = NULL;
	int rc = cmi_service_node_json(svc, i, &doc);

	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, svc->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, svc->nodes[i].id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, svc->version ? svc->version : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, doc, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, expires_ms);
	rc = sql_step_done(reg, st, "storing a node");
	sqlite3_clear_bindings(st);
	free(doc);
	return rc;
}

/* Runs the writes of one call in a transaction; body returns 0 to commit. */
static int sql_write(struct cmicro_registry *reg, const struct cmicro_service *svc,
		     long long expires_ms,
		     int (*body)(struct cmicro_registry *reg, const struct cmicro_service *svc,
				 long long expires_ms))
{
	struct sql_registry *s = reg->impl;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sql_exec(reg, "BEGIN IMMEDIATE", "locking the file for writing");
	if (rc != 0)
		goto out;
	rc = sql_purge(reg);
	if (rc == 0)
		rc = body(reg, svc, expires_ms);
	if (rc == 0)
		rc = sql_exec(reg, "COMMIT", "committing");
	if (rc != 0)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sql_register_body(struct cmicro_registry *reg, const struct cmicro_service *svc,
			     long long expires_ms)
{
	sqlite3_stmt *st = NULL;
	int rc = sql_prepare(reg,
			     "INSERT INTO nodes (service, node_id, version, doc, expires_at) "
			     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (service, node_id) DO UPDATE "
			     "SET version = excluded.version, doc = excluded.doc, "
			     "expires_at = excluded.expires_at",
			     &st);

	for (size_t i = 0; rc == 0 && i < svc->n_nodes; i++)
		rc = sql_upsert_node(reg, st, svc, i, expires_ms);
	sqlite3_finalize(st);
	return rc;
}

static int sql_register(struct cmicro_registry *reg, const struct cmicro_service *svc,
			int ttl_seconds)
{
	long long expires_ms = ttl_seconds > 0 ? cmi_now_ms() + ttl_seconds * 1000LL : 0;

	return sql_write(reg, svc, expires_ms, sql_register_body);
}

static int sql_deregister_body(struct cmicro_registry *reg, const struct cmicro_service *svc,
			       long long expires_ms)
{
	sqlite3_stmt *st = NULL;
	int rc = sql_prepare(reg, "DELETE FROM nodes WHERE service = ?1 AND node_id = ?2", &st);

	(void)expires_ms;
	for (size_t i = 0; rc == 0 && i < svc->n_nodes; i++) {
		sqlite3_bind_text(st, 1, svc->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, svc->nodes[i].id, -1, SQLITE_STATIC);
		rc = sql_step_done(reg, st, "deleting a node");
	}
	sqlite3_finalize(st);
	return rc;
}

static int sql_deregister(struct cmicro_registry *reg, const struct cmicro_service *svc)
{
	return sql_write(reg, svc, 0, sql_deregister_body);
}

/* Merges the live rows of name (every row for name NULL) into list. */
static int sql_collect(struct cmicro_registry *reg, const char *name, struct cmi_service_list *list)
{
	struct sql_registry *s = reg->impl;
	sqlite3_stmt *st = NULL;
	int rc;
	int step = SQLITE_DONE;

	pthread_mutex_lock(&s->lock);
	rc = sql_prepare(
	    reg,
	    name ? "SELECT service, node_id, doc FROM nodes WHERE service = ?2 AND " LIVE_CLAUSE
		   " ORDER BY version, node_id"
		 : "SELECT service, node_id, doc FROM nodes WHERE " LIVE_CLAUSE
		   " ORDER BY service, version, node_id",
	    &st);
	if (rc != 0)
		goto out;
	sqlite3_bind_int64(st, 1, cmi_now_ms());
	if (name != NULL)
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);

	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct cmicro_service *doc = cmi_sqlite_decode_row(
		    reg->address, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2), &s->bad_row_logged_ms);

		if (doc != NULL)
			rc = cmi_service_list_merge(list, doc);
		cmicro_service_free(doc);
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = cmi_sqlite_error(s->db, step, reg->address, "reading nodes");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int sql_get_service(struct cmicro_registry *reg, const char *name,
			   struct cmi_service_list *list)
{
	return sql_collect(reg, name, list);
}

static int sql_list_services(struct cmicro_registry *reg, struct cmi_service_list *list)
{
	return sql_collect(reg, NULL, list);
}

static void sql_free_impl(struct sql_registry *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void sql_destroy(struct cmicro_registry *reg)
{
	sql_free_impl(reg->impl);
}

static const struct cmi_registry_ops sql_ops = {
	.name = "sqlite",
	.register_service = sql_register,
	.deregister = sql_deregister,
	.get_service = sql_get_service,
	.list_services = sql_list_services,
	.watch = cmi_sqlite_watch,
	.destroy = sql_destroy,
};

CMICRO_API int cmicro_registry_sqlite_new(const char *path, struct cmicro_registry **out)
{
	struct sql_registry *s = NULL;
	char *resolved = NULL;
	int rc;

	if (out == NULL || (path != NULL && path[0] == '\0'))
		return cmi_error(CMICRO_EINVAL,
				 "cmicro_registry_sqlite_new: the output is NULL or "
				 "the path is empty; pass NULL for the default path");
	*out = NULL;
	rc = path ? ((resolved = cmi_strdup(path)) ? 0 : CMICRO_ENOMEM)
		  : cmi_sqlite_default_path(&resolved);
	if (rc != 0)
		goto out;
	s = cmi_calloc(1, sizeof(*s));
	if (s == NULL) {
		rc = CMICRO_ENOMEM;
		goto out;
	}
	pthread_mutex_init(&s->lock, NULL);

	rc = cmi_sqlite_open(resolved, true, &s->db);
	if (rc != 0)
		goto out;
	rc = cmi_registry_new(&sql_ops, s, resolved, out);
	s = NULL; /* owned by the registry, even on failure */
	if (rc == 0)
		cmi_log(CMICRO_LOG_DEBUG, "registry", "REGISTRY-OPEN", "sqlite registry %s opened",
			resolved);
out:
	sql_free_impl(s);
	free(resolved);
	return rc;
}
