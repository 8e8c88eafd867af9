/*
 * store_webhooks.c: the webhooks and webhook_outbox tables (see
 * store_webhooks.h), on store.c's connection and lock (store_internal.h).
 *
 * Statements here are prepared and finalized within each call: these
 * calls are rare next to the store's hot paths, and store.c's statement
 * cache stays its own. Payloads are built by SQLite's json_object from
 * the rows themselves, so no caller's text is spliced into JSON.
 */
#include "store_webhooks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_internal.h"


const char *const store_webhook_events[] = {
    "fine_tuning.job.running",   "fine_tuning.job.paused",
    "fine_tuning.job.succeeded", "fine_tuning.job.failed",
    "fine_tuning.job.cancelled", "fine_tuning.job.checkpoint.created",
    NULL,
};

#define WEBHOOK_COLS "id, owner, url, events, description, secret, created_at"

static const char SQL_WEBHOOK_INSERT[] =
    "INSERT INTO webhooks(id, owner, url, events, description, secret, created_at) "
    "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 "
    "WHERE (SELECT count(*) FROM webhooks WHERE owner = ?2) < ?8 "
    "RETURNING " WEBHOOK_COLS;
static const char SQL_WEBHOOK_GET[] =
    "SELECT " WEBHOOK_COLS " FROM webhooks WHERE id = ?1 AND owner = ?2";
static const char SQL_WEBHOOK_DELETE[] = "DELETE FROM webhooks WHERE id = ?1 AND owner = ?2";
static const char SQL_WEBHOOK_SEQ[] = "SELECT seq FROM webhooks WHERE id = ?1 AND owner = ?2";
static const char SQL_WEBHOOK_LIST[] = "SELECT " WEBHOOK_COLS " FROM webhooks "
                                       "WHERE owner = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3";
/* The data of a job event, and the job's owner. */
static const char SQL_JOB_DATA[] =
    "SELECT json_object('id', id, 'status', status, 'fine_tuned_model', fine_tuned_model, "
    "'error', CASE WHEN json_valid(error) THEN json(error) END), owner, id "
    "FROM jobs WHERE id = ?1";
/* The data of a checkpoint event, the job's owner and id. */
static const char SQL_CHECKPOINT_DATA[] =
    "SELECT json_object('id', j.id, 'status', j.status, 'checkpoint_id', c.id, "
    "'step', c.step, 'sha256', c.sha256), j.owner, j.id "
    "FROM checkpoints c JOIN jobs j ON j.id = c.job_id WHERE c.id = ?1";
static const char SQL_SUBSCRIBERS[] =
    "SELECT id FROM webhooks WHERE owner = ?1 AND EXISTS "
    "(SELECT 1 FROM json_each(webhooks.events) e WHERE e.value = ?2) ORDER BY seq";
static const char SQL_OUTBOX_INSERT[] =
    "INSERT INTO webhook_outbox(id, webhook_id, type, payload, created_at, next_attempt_ms) "
    "VALUES (?1, ?2, ?3, json_object('id', ?1, 'type', ?3, 'created_at', ?4, "
    "'data', json(?5)), ?4, ?6)";
static const char SQL_OUTBOX_DUE[] =
    "SELECT o.id, o.webhook_id, w.url, w.secret, o.payload, o.attempts "
    "FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id "
    "WHERE o.status = 'pending' AND o.next_attempt_ms <= ?1 "
    "ORDER BY o.next_attempt_ms, o.seq LIMIT ?2";
static const char SQL_OUTBOX_DELETE[] = "DELETE FROM webhook_outbox WHERE id = ?1";
static const char SQL_OUTBOX_FAILED[] =
    "UPDATE webhook_outbox SET attempts = attempts + 1, "
    "next_attempt_ms = COALESCE(?2, next_attempt_ms), "
    "status = CASE WHEN ?2 IS NULL THEN 'failed' ELSE status END, last_error = ?3 "
    "WHERE id = ?1 AND status = 'pending'";
static const char SQL_OUTBOX_COUNT[] = "SELECT count(*) FROM webhook_outbox WHERE status = ?1";

/* ---- helpers ---------------------------------------------------------------- */

/* `sql` prepared on the store's connection (finalize it); NULL with a message. */
static sqlite3_stmt *prepare(struct store *st, const char *sql, char *err, size_t errlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(store_db(st), sql, -1, &s, NULL) != SQLITE_OK) {
        store_db_fail(st, err, errlen, "prepare");
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- webhooks ------------------------------------------------------------------ */

void store_webhook_clear(struct store_webhook *w)
{
    free(w->id);
    free(w->owner);
    free(w->url);
    free(w->events);
    free(w->description);
    free(w->secret);
    memset(w, 0, sizeof *w);
}

void store_webhook_list_free(struct store_webhook_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        store_webhook_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads a WEBHOOK_COLS row (a store_row_fn). */
static int read_webhook(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_webhook *w = item;
    memset(w, 0, sizeof *w);
    if (store_col_dup(s, 0, &w->id) || store_col_dup(s, 1, &w->owner) || store_col_dup(s, 2, &w->url) ||
        store_col_dup(s, 3, &w->events) || store_col_dup(s, 4, &w->description) ||
        store_col_dup(s, 5, &w->secret)) {
        store_webhook_clear(w);
        return store_fail(err, errlen, "out of memory");
    }
    w->created_at = sqlite3_column_int64(s, 6);
    return STORE_OK;
}

int store_webhook_create(struct store *st, const struct store_webhook_new *w,
                         int max_per_owner, struct store_webhook *out, char *err,
                         size_t errlen)
{
    char id[STORE_ID_LEN];
    memset(out, 0, sizeof *out);
    if (!w->owner || !w->url || !w->events || !w->secret)
        return store_fail(err, errlen, "webhook insert: a required field is missing");
    if (store_new_id("wh_", id, err, errlen))
        return STORE_ERROR;
    store_enter(st);
    sqlite3_stmt *s = prepare(st, SQL_WEBHOOK_INSERT, err, errlen);
    int rc = STORE_ERROR;
    if (s) {
        store_bind_text(s, 1, id);
        store_bind_text(s, 2, w->owner);
        store_bind_text(s, 3, w->url);
        store_bind_text(s, 4, w->events);
        store_bind_text(s, 5, w->description);
        store_bind_text(s, 6, w->secret);
        sqlite3_bind_int64(s, 7, time(NULL));
        sqlite3_bind_int(s, 8, max_per_owner);
        rc = store_read_one(st, s, read_webhook, out, err, errlen);
        if (rc == STORE_NOTFOUND) /* the WHERE kept the row out */
            rc = STORE_CONFLICT;
        /* RETURNING writes its row when the statement completes */
        if (rc == STORE_OK && store_step(st, s, err, errlen) != SQLITE_DONE) {
            store_webhook_clear(out);
            rc = STORE_ERROR;
        }
    }
    sqlite3_finalize(s);
    if (rc == STORE_CONFLICT)
        store_fail(err, errlen, "owner %s already has %d webhooks", w->owner, max_per_owner);
    return store_leave(st, rc);
}

int store_webhook_get(struct store *st, const char *owner, const char *id,
                      struct store_webhook *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    store_enter(st);
    sqlite3_stmt *s = prepare(st, SQL_WEBHOOK_GET, err, errlen);
    int rc = STORE_ERROR;
    if (s) {
        store_bind_text(s, 1, id);
        store_bind_text(s, 2, owner);
        rc = store_read_one(st, s, read_webhook, out, err, errlen);
    }
    sqlite3_finalize(s);
    return store_leave(st, rc);
}

int store_webhook_delete(struct store *st, const char *owner, const char *id, char *err,
                         size_t errlen)
{
    store_enter(st);
    sqlite3_stmt *s = prepare(st, SQL_WEBHOOK_DELETE, err, errlen);
    int rc = STORE_ERROR;
    if (s) {
        store_bind_text(s, 1, id);
        store_bind_text(s, 2, owner);
        rc = store_run_changed(st, s, err, errlen);
    }
    sqlite3_finalize(s);
    return store_leave(st, rc);
}

/* The seq of webhook `after` of `owner` for the list cursor; INT64_MAX when
 * after is NULL. */
static int cursor_seq(struct store *st, const char *owner, const char *after, int64_t *seq,
                      char *err, size_t errlen)
{
    *seq = INT64_MAX;
    if (!after)
        return STORE_OK;
    sqlite3_stmt *s = prepare(st, SQL_WEBHOOK_SEQ, err, errlen);
    if (!s)
        return STORE_ERROR;
    int rc = store_cursor_seq(st, s, after, owner, seq, err, errlen);
    sqlite3_finalize(s);
    return rc;
}

static int webhook_list_locked(struct store *st, const char *owner, const char *after,
                               int limit, struct store_webhook_list *out, char *err,
                               size_t errlen)
{
    int64_t seq;
    int rc = cursor_seq(st, owner, after, &seq, err, errlen);
    if (rc != STORE_OK)
        return rc;
    sqlite3_stmt *s = prepare(st, SQL_WEBHOOK_LIST, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, owner);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_int(s, 3, limit + 1);
    rc = store_read_rows(st, s, read_webhook, sizeof *out->v, (size_t)limit, (void **)&out->v,
                         &out->n, &out->has_more, err, errlen);
    sqlite3_finalize(s);
    if (rc != STORE_OK)
        store_webhook_list_free(out);
    return rc;
}

int store_webhook_list(struct store *st, const char *owner, const char *after, int limit,
                       struct store_webhook_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (store_check_limit(limit, err, errlen))
        return STORE_ERROR;
    store_enter(st);
    return store_leave(st, webhook_list_locked(st, owner, after, limit, out, err, errlen));
}

/* ---- the outbox: filled inside store.c's transactions ---------------------- */

/* Adds one row of event `type` for every webhook of the owner that
 * subscribes to it. data_sql binds ?1 = key and answers (data JSON, owner). */
static int outbox_add(struct store *st, const char *type, const char *data_sql,
                      const char *key, char *err, size_t errlen)
{
    sqlite3_stmt *data = prepare(st, data_sql, err, errlen), *subs = NULL, *ins = NULL;
    if (!data)
        return STORE_ERROR;
    store_bind_text(data, 1, key);
    int rc = store_step(st, data, err, errlen);
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            rc = store_fail(err, errlen, "webhook event: no row for %s", key);
        goto out;
    }
    rc = STORE_ERROR;
    if (!(subs = prepare(st, SQL_SUBSCRIBERS, err, errlen)) ||
        !(ins = prepare(st, SQL_OUTBOX_INSERT, err, errlen)))
        goto out;
    sqlite3_bind_value(subs, 1, sqlite3_column_value(data, 1));
    store_bind_text(subs, 2, type);
    int64_t created = time(NULL), due = now_ms();
    while ((rc = store_step(st, subs, err, errlen)) == SQLITE_ROW) {
        char id[STORE_ID_LEN];
        if (store_new_id("evt_", id, err, errlen)) {
            rc = STORE_ERROR;
            break;
        }
        sqlite3_reset(ins);
        store_bind_text(ins, 1, id);
        sqlite3_bind_value(ins, 2, sqlite3_column_value(subs, 0));
        store_bind_text(ins, 3, type);
        sqlite3_bind_int64(ins, 4, created);
        sqlite3_bind_value(ins, 5, sqlite3_column_value(data, 0));
        sqlite3_bind_int64(ins, 6, due);
        if (store_step(st, ins, err, errlen) != SQLITE_DONE) {
            rc = STORE_ERROR;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
out:
    sqlite3_finalize(ins);
    sqlite3_finalize(subs);
    sqlite3_finalize(data);
    return rc;
}

int store_outbox_job_locked(struct store *st, const char *job_id, enum store_job_status to,
                            char *err, size_t errlen)
{
    const char *type;
    switch (to) {
    case JOB_RUNNING: type = "fine_tuning.job.running"; break;
    case JOB_PAUSED: type = "fine_tuning.job.paused"; break;
    case JOB_SUCCEEDED: type = "fine_tuning.job.succeeded"; break;
    case JOB_FAILED: type = "fine_tuning.job.failed"; break;
    case JOB_CANCELLED: type = "fine_tuning.job.cancelled"; break;
    default: return STORE_OK;
    }
    return outbox_add(st, type, SQL_JOB_DATA, job_id, err, errlen);
}

int store_outbox_checkpoint_locked(struct store *st, const char *checkpoint_id, char *err,
                                   size_t errlen)
{
    return outbox_add(st, "fine_tuning.job.checkpoint.created", SQL_CHECKPOINT_DATA,
                      checkpoint_id, err, errlen);
}

/* ---- the outbox: read and updated by the delivery worker ---------------------- */

static void delivery_clear(struct store_delivery *d)
{
    free(d->id);
    free(d->webhook_id);
    free(d->url);
    free(d->secret);
    free(d->payload);
    memset(d, 0, sizeof *d);
}

void store_delivery_list_free(struct store_delivery_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        delivery_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads an SQL_OUTBOX_DUE row (a store_row_fn). */
static int read_delivery(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_delivery *d = item;
    memset(d, 0, sizeof *d);
    if (store_col_dup(s, 0, &d->id) || store_col_dup(s, 1, &d->webhook_id) ||
        store_col_dup(s, 2, &d->url) || store_col_dup(s, 3, &d->secret) ||
        store_col_dup(s, 4, &d->payload)) {
        delivery_clear(d);
        return store_fail(err, errlen, "out of memory");
    }
    d->attempts = sqlite3_column_int(s, 5);
    return STORE_OK;
}

int store_outbox_due(struct store *st, int64_t now, int limit,
                     struct store_delivery_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (store_check_limit(limit, err, errlen))
        return STORE_ERROR;
    store_enter(st);
    sqlite3_stmt *s = prepare(st, SQL_OUTBOX_DUE, err, errlen);
    if (!s)
        return store_leave(st, STORE_ERROR);
    sqlite3_bind_int64(s, 1, now);
    sqlite3_bind_int(s, 2, limit); /* no more rows than that: no has_more */
    int rc = store_read_rows(st, s, read_delivery, sizeof *out->v, (size_t)limit,
                             (void **)&out->v, &out->n, NULL, err, errlen);
    sqlite3_finalize(s);
    if (rc != STORE_OK)
        store_delivery_list_free(out);
    return store_leave(st, rc);
}

/* Runs write statement `sql` on delivery ?1 = id, binding ?2 =
 * next_attempt_ms (NULL when 0) and ?3 = error when it has them;
 * STORE_NOTFOUND when it changed nothing. */
static int outbox_update(struct store *st, const char *sql, const char *id,
                         int64_t next_attempt_ms, const char *error, char *err, size_t errlen)
{
    store_enter(st);
    sqlite3_stmt *s = prepare(st, sql, err, errlen);
    int rc = STORE_ERROR;
    if (s) {
        store_bind_text(s, 1, id);
        if (sqlite3_bind_parameter_count(s) >= 3) {
            if (next_attempt_ms)
                sqlite3_bind_int64(s, 2, next_attempt_ms);
            store_bind_text(s, 3, error);
        }
        rc = store_run_changed(st, s, err, errlen);
    }
    sqlite3_finalize(s);
    return store_leave(st, rc);
}

int store_outbox_delivered(struct store *st, const char *id, char *err, size_t errlen)
{
    return outbox_update(st, SQL_OUTBOX_DELETE, id, 0, NULL, err, errlen);
}

int store_outbox_failed(struct store *st, const char *id, int64_t next_attempt_ms,
                        const char *error, char *err, size_t errlen)
{
    return outbox_update(st, SQL_OUTBOX_FAILED, id, next_attempt_ms, error, err, errlen);
}

int store_outbox_count(struct store *st, const char *status, int64_t *n, char *err,
                       size_t errlen)
{
    store_enter(st);
    sqlite3_stmt *s = prepare(st, SQL_OUTBOX_COUNT, err, errlen);
    int rc = STORE_ERROR;
    if (s) {
        store_bind_text(s, 1, status);
        rc = store_read_count(st, s, n, err, errlen);
    }
    sqlite3_finalize(s);
    return store_leave(st, rc);
}
