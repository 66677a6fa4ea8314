/*
 * The messages of the outbox: storing one (committed before publish
 * returns), removing a delivered one, recording partial deliveries, and
 * loading the undelivered ones when a broker connects.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "broker/outbox_int.h"

/* Maximum number of entries accepted from a stored got_nodes or got_queues
 * column. */
#define OB_LIST_MAX 65536

static int ob_check_limits(const struct cmi_outbox *ob, const char *topic, size_t len)
{
	if (ob->messages >= ob->max_messages)
		return cmi_error(CMICRO_ELIMIT,
		                 "outbox %s already holds %zu undelivered messages, its "
		                 "limit (outbox_max_messages); the message to \"%.64s\" was "
		                 "not stored or sent. Messages leave the outbox when their "
		                 "subscribers receive them: check the subscribers, or raise "
		                 "the limit",
		                 ob->path, ob->messages, topic);
	if (len > ob->max_bytes - ob->bytes || ob->bytes > ob->max_bytes)
		return cmi_error(CMICRO_ELIMIT,
		                 "outbox %s holds %zu bytes of undelivered messages, "
		                 "and %zu more would pass its limit of %zu bytes "
		                 "(outbox_max_bytes); the message to \"%.64s\" was not "
		                 "stored or sent. Check the subscribers, or raise the limit",
		                 ob->path, ob->bytes, len, ob->max_bytes, topic);
	return 0;
}

static int ob_insert(struct cmi_outbox *ob, const char *id, const char *topic, const char *envelope,
                     size_t len, long long *seq)
{
	static const char sql[] = "INSERT INTO messages (id, topic, envelope, created_ms) "
	                          "VALUES (?1, ?2, ?3, ?4)";
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(ob->db_put, sql, -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob64(st, 3, envelope, len, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 4, cmi_now_ms());
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		*seq = sqlite3_last_insert_rowid(ob->db_put);
	else
		rc = cmi_outbox_sqlite_error(ob->db_put, rc, ob->path, "storing a message");
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : rc;
}

int cmi_outbox_put(struct cmi_outbox *ob, const char *id, const char *topic, const char *envelope,
                   size_t len, long long *seq)
{
	int rc;

	*seq = 0;
	pthread_mutex_lock(&ob->put_lock);
	rc = ob_check_limits(ob, topic, len);
	if (rc == 0)
		rc = ob_insert(ob, id, topic, envelope, len, seq);
	if (rc == 0) {
		ob->messages++;
		ob->bytes += len;
	}
	pthread_mutex_unlock(&ob->put_lock);
	return rc;
}

/* Runs one UPDATE or DELETE on db_done; returns the rows it changed, or a
 * negative error. */
static int ob_change(struct cmi_outbox *ob, sqlite3_stmt *st, int rc, const char *doing)
{
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		rc = cmi_outbox_sqlite_error(ob->db_done, rc, ob->path, doing);
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_finalize(st);
	return sqlite3_changes(ob->db_done);
}

int cmi_outbox_delete(struct cmi_outbox *ob, long long seq, size_t len)
{
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&ob->done_lock);
	rc = sqlite3_prepare_v2(ob->db_done, "DELETE FROM messages WHERE seq = ?1", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 1, seq);
	rc = ob_change(ob, st, rc, "removing a delivered message");
	pthread_mutex_unlock(&ob->done_lock);
	if (rc <= 0)
		return rc;

	pthread_mutex_lock(&ob->put_lock);
	ob->messages -= ob->messages > 0 ? 1 : 0;
	ob->bytes -= ob->bytes >= len ? len : ob->bytes;
	pthread_mutex_unlock(&ob->put_lock);
	return 0;
}

static char *ob_list_json(char *const *list, size_t n)
{
	json_t *arr = json_array();
	char *text;

	for (size_t i = 0; arr != NULL && i < n; i++) {
		if (json_array_append_new(arr, json_string(list[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	return text;
}

int cmi_outbox_set_got(struct cmi_outbox *ob, long long seq, char *const *nodes, size_t n_nodes,
                       char *const *queues, size_t n_queues)
{
	static const char sql[] = "UPDATE messages SET got_nodes = ?1, got_queues = ?2 "
	                          "WHERE seq = ?3";
	char *jn = ob_list_json(nodes, n_nodes), *jq = ob_list_json(queues, n_queues);
	sqlite3_stmt *st = NULL;
	int rc;

	if (jn == NULL || jq == NULL) {
		free(jn);
		free(jq);
		return cmi_error(CMICRO_ENOMEM, "out of memory recording the nodes of message %lld",
		                 seq);
	}
	pthread_mutex_lock(&ob->done_lock);
	rc = sqlite3_prepare_v2(ob->db_done, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, jn, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 2, jq, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, seq);
	rc = ob_change(ob, st, rc, "recording a partial delivery");
	pthread_mutex_unlock(&ob->done_lock);
	free(jn);
	free(jq);
	return rc < 0 ? rc : 0;
}

int cmi_outbox_parse_list(const char *json, char ***list, size_t *n)
{
	json_t *arr = json ? json_loads(json, 0, NULL) : NULL;
	size_t count = json_is_array(arr) ? json_array_size(arr) : 0;
	int rc = 0;

	*list = NULL;
	*n = 0;
	if (!json_is_array(arr) || count > OB_LIST_MAX) {
		json_decref(arr);
		return cmi_error(CMICRO_EPROTO,
		                 "stored node list is not a JSON array of at most %d "
		                 "strings",
		                 OB_LIST_MAX);
	}
	*list = count ? cmi_calloc(count, sizeof(**list)) : NULL;
	if (count > 0 && *list == NULL)
		rc = CMICRO_ENOMEM;
	for (size_t i = 0; rc == 0 && i < count; i++) {
		const char *s = json_string_value(json_array_get(arr, i));

		if (s == NULL || s[0] == '\0')
			rc = cmi_error(CMICRO_EPROTO,
			               "stored node list entry %zu is not a non-empty "
			               "string",
			               i);
		else if (((*list)[i] = cmi_strdup(s)) == NULL)
			rc = CMICRO_ENOMEM;
		else
			(*n)++;
	}
	json_decref(arr);
	if (rc != 0) {
		cmi_brk_free_strings(*list, *n);
		*list = NULL;
		*n = 0;
	}
	return rc;
}

int cmi_outbox_check_row(const char *id, const char *topic, const char *envelope, size_t len)
{
	struct cmicro_message *msg = NULL;
	const char *got_topic, *got_id;
	char cause[CMI_ERRMSG_MAX];
	int rc;

	if (id == NULL || id[0] == '\0' || topic == NULL || envelope == NULL)
		return cmi_error(CMICRO_EPROTO, "stored message lacks its id, topic or envelope");
	/* The cause is copied out first: cmi_error overwrites the message it
	 * would otherwise read from. */
	if (cmi_topic_check(topic) != 0) {
		cmi_fmt(cause, sizeof(cause), "%s", cmicro_last_errmsg());
		return cmi_error(CMICRO_EPROTO, "stored topic is invalid: %s", cause);
	}
	rc = cmi_message_decode(envelope, len, &msg);
	if (rc != 0 && rc != CMICRO_ENOMEM) {
		cmi_fmt(cause, sizeof(cause), "%s", cmicro_last_errmsg());
		return cmi_error(CMICRO_EPROTO, "stored envelope is invalid: %s", cause);
	}
	if (rc != 0)
		return rc;
	got_topic = cmicro_message_get_header(msg, CMI_TOPIC_HEADER);
	got_id = cmicro_message_get_header(msg, CMI_ID_HEADER);
	if (got_topic == NULL || strcmp(got_topic, topic) != 0)
		rc = cmi_error(CMICRO_EPROTO,
		               "stored envelope's Micro-Topic differs from the stored "
		               "topic \"%.64s\"",
		               topic);
	else if (got_id == NULL || strcmp(got_id, id) != 0)
		rc = cmi_error(CMICRO_EPROTO,
		               "stored envelope's Micro-Id differs from the stored "
		               "id \"%.64s\"",
		               id);
	cmicro_message_free(msg);
	return rc;
}

/* Checks one selected row and fills r; the strings stay owned by st. */
static int ob_read_row(sqlite3_stmt *st, struct cmi_outbox_row *r)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->seq = sqlite3_column_int64(st, 0);
	r->id = (const char *)sqlite3_column_text(st, 1);
	r->topic = (const char *)sqlite3_column_text(st, 2);
	r->envelope = sqlite3_column_blob(st, 3);
	r->len = (size_t)sqlite3_column_bytes(st, 3);
	rc = cmi_outbox_check_row(r->id, r->topic, r->envelope ? r->envelope : "", r->len);
	if (rc == 0)
		rc = cmi_outbox_parse_list((const char *)sqlite3_column_text(st, 4), &r->got_nodes,
		                           &r->n_got_nodes);
	if (rc == 0)
		rc = cmi_outbox_parse_list((const char *)sqlite3_column_text(st, 5), &r->got_queues,
		                           &r->n_got_queues);
	return rc;
}

static void ob_row_clear(struct cmi_outbox_row *r)
{
	cmi_brk_free_strings(r->got_nodes, r->n_got_nodes);
	cmi_brk_free_strings(r->got_queues, r->n_got_queues);
}

static int ob_load_rows(struct cmi_outbox *ob, sqlite3_stmt *st, cmi_outbox_row_fn fn, void *user,
                        size_t *skipped)
{
	struct cmi_outbox_row r;
	int rc, step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		rc = ob_read_row(st, &r);
		if (rc == CMICRO_ENOMEM) {
			ob_row_clear(&r);
			return rc;
		}
		if (rc != 0) {
			cmi_log(CMICRO_LOG_ERR, "broker", "BROKER-OUTBOX-BAD-ROW",
			        "outbox %s: message %lld is not sent, because %s; it stays in the "
			        "file and counts against the limits. Remove it with: sqlite3 %s "
			        "'DELETE FROM messages WHERE seq = %lld'",
			        ob->path, r.seq, cmicro_last_errmsg(), ob->path, r.seq);
			(*skipped)++;
			ob_row_clear(&r);
			continue;
		}
		rc = fn(user, &r);
		ob_row_clear(&r);
		if (rc != 0)
			return rc;
	}
	return step == SQLITE_DONE ? 0
	                           : cmi_outbox_sqlite_error(ob->db_put, step, ob->path,
	                                                     "reading the stored messages");
}

int cmi_outbox_load(struct cmi_outbox *ob, cmi_outbox_row_fn fn, void *user, size_t *skipped)
{
	static const char sql[] = "SELECT seq, id, topic, envelope, got_nodes, got_queues "
	                          "FROM messages ORDER BY seq";
	sqlite3_stmt *st = NULL;
	int rc;

	*skipped = 0;
	pthread_mutex_lock(&ob->put_lock);
	rc = sqlite3_prepare_v2(ob->db_put, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = ob_load_rows(ob, st, fn, user, skipped);
	else
		rc = cmi_outbox_sqlite_error(ob->db_put, rc, ob->path,
		                             "reading the stored messages");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&ob->put_lock);
	return rc;
}
