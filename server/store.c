/*
 * store.c: the service's SQLite state (store.h says what and why).
 *
 * One connection per handle and one mutex around every public call. SQL
 * text lives in one table of constant strings, prepared on first use and
 * kept (SQLITE_PREPARE_PERSISTENT); user data only ever reaches SQLite
 * through bound parameters. Leaving a call resets every cached statement,
 * so no read snapshot outlives the call. Writes that touch more than one
 * row run inside BEGIN IMMEDIATE ... COMMIT and roll back on any failure.
 *
 * Migrations: MIGRATIONS[i] takes the schema from version i to i + 1; each
 * step re-reads user_version inside its write transaction, so two
 * processes opening an old file at once migrate it once.
 *
 * Every table reads its rows with one store_row_fn (read_file, read_job...)
 * through store_read_one and store_read_rows, which also page the lists.
 * Other store_*.c files (store_webhooks.c) add tables to the same database
 * through those and the few helpers at the end of this file
 * (store_internal.h).
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "digest.h"
#include "event_notify.h"
#include "store_internal.h"

#define BUSY_TIMEOUT_MS 10000

static const char *const MIGRATIONS[] = {
    /* 0 -> 1: the first schema */
    "CREATE TABLE api_keys("
    "  id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT,"
    "  hash BLOB NOT NULL UNIQUE, created_at INTEGER NOT NULL, revoked_at INTEGER);"
    "CREATE TABLE blobs("
    "  sha256 TEXT PRIMARY KEY, bytes INTEGER NOT NULL, path TEXT NOT NULL UNIQUE,"
    "  refs INTEGER NOT NULL CHECK (refs >= 0));"
    "CREATE TABLE files("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  owner TEXT NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL, sha256 TEXT NOT NULL REFERENCES blobs(sha256),"
    "  created_at INTEGER NOT NULL, status TEXT NOT NULL, validation TEXT);"
    "CREATE INDEX files_owner ON files(owner, seq);"
    "CREATE TABLE jobs("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  owner TEXT NOT NULL, model TEXT NOT NULL, training_file TEXT NOT NULL,"
    "  validation_file TEXT, method TEXT NOT NULL, hyperparameters TEXT,"
    "  seed INTEGER NOT NULL, suffix TEXT, metadata TEXT, status TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,"
    "  estimated_finish INTEGER, error TEXT, fine_tuned_model TEXT,"
    "  trained_tokens INTEGER, resume_checkpoint TEXT,"
    "  restart_count INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_owner ON jobs(owner, seq);"
    "CREATE INDEX jobs_status ON jobs(status, seq);"
    "CREATE TABLE events("
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  id INTEGER NOT NULL, created_at INTEGER NOT NULL, level TEXT NOT NULL,"
    "  message TEXT NOT NULL, type TEXT NOT NULL, data TEXT,"
    "  PRIMARY KEY (job_id, id)) WITHOUT ROWID;"
    "CREATE TABLE checkpoints("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    "  step INTEGER NOT NULL, metrics TEXT, sha256 TEXT NOT NULL,"
    "  bytes INTEGER NOT NULL, path TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE INDEX checkpoints_job ON checkpoints(job_id, seq);"
    "CREATE TABLE idempotency("
    "  owner TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL,"
    "  status INTEGER NOT NULL DEFAULT 0, body TEXT, created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (owner, key)) WITHOUT ROWID;",
    /* 1 -> 2: webhooks and their delivery outbox (store_webhooks.c) */
    "CREATE TABLE webhooks("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  owner TEXT NOT NULL, url TEXT NOT NULL, events TEXT NOT NULL,"
    "  description TEXT, secret TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE INDEX webhooks_owner ON webhooks(owner, seq);"
    "CREATE TABLE webhook_outbox("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,"
    "  webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'pending', last_error TEXT);"
    "CREATE INDEX webhook_outbox_due ON webhook_outbox(status, next_attempt_ms);"
    "CREATE INDEX webhook_outbox_webhook ON webhook_outbox(webhook_id);",
};
#define SCHEMA_VERSION ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

#define FILE_COLS                                                              \
    "f.id, f.owner, f.filename, f.purpose, f.bytes, f.sha256, b.path, "       \
    "f.created_at, f.status, f.validation FROM files f JOIN blobs b ON b.sha256 = f.sha256 "
#define JOB_COLS                                                                  \
    "id, owner, model, training_file, validation_file, method, hyperparameters, " \
    "seed, suffix, metadata, status, created_at, started_at, finished_at, "       \
    "estimated_finish, error, fine_tuned_model, trained_tokens, "                 \
    "resume_checkpoint, restart_count FROM jobs "
#define EVENT_COLS "id, job_id, created_at, level, message, type, data FROM events "
#define CKPT_COLS \
    "id, job_id, step, metrics, sha256, bytes, path, created_at FROM checkpoints "

enum sql_id {
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_CHECK,
    Q_KEY_INSERT, Q_KEY_LOOKUP, Q_KEY_REVOKE, Q_KEY_COUNT, Q_KEY_LIST,
    Q_BLOB_ADD, Q_BLOB_DEREF, Q_BLOB_DELETE, Q_BLOB_REFERENCED,
    Q_FILE_INSERT, Q_FILE_GET, Q_FILE_SEQ, Q_FILE_LIST, Q_FILE_IN_USE, Q_FILE_DELETE,
    Q_JOB_INSERT, Q_JOB_GET, Q_JOB_NEXT, Q_JOB_STATUS, Q_JOB_UPDATE, Q_JOB_SEQ,
    Q_JOB_LIST, Q_JOB_STRANDED, Q_JOB_COUNT_STATUS, Q_JOB_ESTIMATE,
    Q_EVENT_NEXT, Q_EVENT_INSERT, Q_EVENT_AFTER, Q_EVENT_BEFORE,
    Q_CKPT_INSERT, Q_CKPT_GET, Q_CKPT_SEQ, Q_CKPT_LIST,
    Q_IDEM_INSERT, Q_IDEM_GET, Q_IDEM_FINISH, Q_IDEM_RELEASE, Q_IDEM_PRUNE,
    Q_IDEM_DROP_PENDING,
    Q_COUNT
};

static const char *const SQL[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_CHECK] = "PRAGMA integrity_check",
    [Q_KEY_INSERT] = "INSERT INTO api_keys(id, owner, name, hash, created_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_KEY_LOOKUP] = "SELECT id, owner, name, created_at, hash FROM api_keys "
                     "WHERE hash = ?1 AND revoked_at IS NULL",
    [Q_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    [Q_KEY_COUNT] = "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL",
    [Q_KEY_LIST] = "SELECT id, owner, name, created_at FROM api_keys WHERE revoked_at IS NULL "
                   "ORDER BY created_at, id",
    [Q_BLOB_ADD] = "INSERT INTO blobs(sha256, bytes, path, refs) VALUES (?1, ?2, ?3, 1) "
                   "ON CONFLICT (sha256) DO UPDATE SET refs = refs + 1 RETURNING path",
    [Q_BLOB_DEREF] = "UPDATE blobs SET refs = refs - 1 WHERE sha256 = ?1 RETURNING refs, path",
    [Q_BLOB_DELETE] = "DELETE FROM blobs WHERE sha256 = ?1 AND refs = 0",
    [Q_BLOB_REFERENCED] = "SELECT 1 FROM blobs WHERE path = ?1",
    [Q_FILE_INSERT] = "INSERT INTO files(id, owner, filename, purpose, bytes, sha256, "
                      "created_at, status, validation) "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_FILE_GET] = "SELECT " FILE_COLS "WHERE f.id = ?1 AND f.owner = ?2",
    [Q_FILE_SEQ] = "SELECT seq FROM files WHERE id = ?1 AND owner = ?2",
    [Q_FILE_LIST] = "SELECT " FILE_COLS "WHERE f.owner = ?1 AND (?2 IS NULL OR f.purpose = ?2) "
                    "AND f.seq < ?3 ORDER BY f.seq DESC LIMIT ?4",
    [Q_FILE_IN_USE] = "SELECT 1 FROM jobs WHERE (training_file = ?1 OR validation_file = ?1) "
                      "AND status NOT IN ('succeeded', 'failed', 'cancelled') "
                      "AND EXISTS (SELECT 1 FROM files WHERE id = ?1 AND owner = ?2) LIMIT 1",
    [Q_FILE_DELETE] = "DELETE FROM files WHERE id = ?1 AND owner = ?2 RETURNING sha256",
    [Q_JOB_INSERT] = "INSERT INTO jobs(id, owner, model, training_file, validation_file, "
                     "method, hyperparameters, seed, suffix, metadata, status, created_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [Q_JOB_GET] = "SELECT " JOB_COLS "WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
    [Q_JOB_NEXT] = "SELECT " JOB_COLS "WHERE status = 'queued' ORDER BY seq LIMIT 1",
    [Q_JOB_STATUS] = "SELECT status FROM jobs WHERE id = ?1",
    [Q_JOB_UPDATE] = "UPDATE jobs SET status = ?2, started_at = COALESCE(?3, started_at), "
                     "finished_at = COALESCE(?4, finished_at), "
                     "estimated_finish = COALESCE(?5, estimated_finish), "
                     "trained_tokens = COALESCE(?6, trained_tokens), "
                     "error = COALESCE(?7, error), "
                     "fine_tuned_model = COALESCE(?8, fine_tuned_model), "
                     "resume_checkpoint = COALESCE(?9, resume_checkpoint), "
                     "restart_count = restart_count + ?10 WHERE id = ?1",
    [Q_JOB_SEQ] = "SELECT seq FROM jobs WHERE id = ?1 AND owner = ?2",
    /* ?3 = 0 or a status set in ?6..?13; ?4 = NULL or a JSON object whose
     * every pair must be in the job's metadata */
    [Q_JOB_LIST] = "SELECT " JOB_COLS "WHERE owner = ?1 AND seq < ?2 "
                   "AND (?3 = 0 OR status IN (?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)) "
                   "AND (?4 IS NULL OR NOT EXISTS (SELECT 1 FROM json_each(?4) f "
                   "  WHERE NOT EXISTS (SELECT 1 FROM json_each(jobs.metadata) m "
                   "    WHERE m.key = f.key AND m.type = f.type AND m.atom = f.atom))) "
                   "ORDER BY seq DESC LIMIT ?5",
    [Q_JOB_COUNT_STATUS] = "SELECT status, count(*) FROM jobs GROUP BY status",
    [Q_JOB_ESTIMATE] = "UPDATE jobs SET estimated_finish = ?2 "
                       "WHERE id = ?1 AND status IN ('running', 'pausing')",
    [Q_JOB_STRANDED] = "SELECT id, status, restart_count FROM jobs "
                       "WHERE status IN ('running', 'pausing') ORDER BY seq",
    [Q_EVENT_NEXT] = "SELECT COALESCE(MAX(id), 0) + 1 FROM events WHERE job_id = ?1",
    [Q_EVENT_INSERT] = "INSERT INTO events(job_id, id, created_at, level, message, type, data) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_EVENT_AFTER] = "SELECT " EVENT_COLS "WHERE job_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    [Q_EVENT_BEFORE] = "SELECT " EVENT_COLS
                       "WHERE job_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
    [Q_CKPT_INSERT] = "INSERT INTO checkpoints(id, job_id, step, metrics, sha256, bytes, "
                      "path, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [Q_CKPT_GET] = "SELECT " CKPT_COLS "WHERE job_id = ?1 AND id = ?2",
    [Q_CKPT_SEQ] = "SELECT seq FROM checkpoints WHERE id = ?1 AND job_id = ?2",
    [Q_CKPT_LIST] = "SELECT " CKPT_COLS
                    "WHERE job_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [Q_IDEM_INSERT] = "INSERT INTO idempotency(owner, key, request_hash, created_at) "
                      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    [Q_IDEM_GET] = "SELECT request_hash, status, body FROM idempotency "
                   "WHERE owner = ?1 AND key = ?2",
    [Q_IDEM_FINISH] = "UPDATE idempotency SET status = ?3, body = ?4 "
                      "WHERE owner = ?1 AND key = ?2 AND status = 0",
    [Q_IDEM_RELEASE] = "DELETE FROM idempotency WHERE owner = ?1 AND key = ?2 AND status = 0",
    [Q_IDEM_PRUNE] = "DELETE FROM idempotency WHERE created_at < ?1",
    [Q_IDEM_DROP_PENDING] = "DELETE FROM idempotency WHERE status = 0",
};

static const char *const STATUS_NAMES[JOB_STATUS_COUNT] = {
    "validating_files", "queued", "running", "pausing",
    "paused", "succeeded", "failed", "cancelled",
};

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
    sqlite3_stmt *stmt[Q_COUNT];
};

/* ---- errors, locking, statements ---------------------------------------- */

int store_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return STORE_ERROR;
}

int store_db_fail(struct store *st, char *err, size_t errlen, const char *what)
{
    return store_fail(err, errlen, "%s: %s", what, sqlite3_errmsg(st->db));
}

static void enter(struct store *st)
{
    pthread_mutex_lock(&st->mu);
}

/* Resets every cached statement (ending any read) and unlocks; returns rc. */
static int leave(struct store *st, int rc)
{
    for (int i = 0; i < Q_COUNT; i++)
        if (st->stmt[i])
            sqlite3_reset(st->stmt[i]);
    pthread_mutex_unlock(&st->mu);
    return rc;
}

/* The cached statement `id`, reset with no bindings; NULL with a message. */
static sqlite3_stmt *prep(struct store *st, enum sql_id id, char *err, size_t errlen)
{
    sqlite3_stmt *s = st->stmt[id];
    if (!s) {
        if (sqlite3_prepare_v3(st->db, SQL[id], -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
            SQLITE_OK) {
            store_db_fail(st, err, errlen, "prepare");
            return NULL;
        }
        st->stmt[id] = s;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* SQLITE_ROW or SQLITE_DONE; STORE_ERROR with a message otherwise. */
int store_step(struct store *st, sqlite3_stmt *s, char *err, size_t errlen)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc;
    return store_db_fail(st, err, errlen, "query");
}

/* Runs a statement expected to return no row; STORE_OK or STORE_ERROR. */
static int run(struct store *st, sqlite3_stmt *s, char *err, size_t errlen)
{
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_ROW)
        rc = store_step(st, s, err, errlen);
    return rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
}

static int exec_q(struct store *st, enum sql_id id, char *err, size_t errlen)
{
    sqlite3_stmt *s = prep(st, id, err, errlen);
    return s ? run(st, s, err, errlen) : STORE_ERROR;
}

static int tx_begin(struct store *st, char *err, size_t errlen)
{
    return exec_q(st, Q_BEGIN, err, errlen);
}

static int tx_commit(struct store *st, char *err, size_t errlen)
{
    return exec_q(st, Q_COMMIT, err, errlen);
}

/* Ends a transaction: rolls back when rc is STORE_ERROR or STORE_CONFLICT,
 * else commits (a failed commit rolls back and turns rc into STORE_ERROR);
 * returns the final rc. A NOTFOUND wrote nothing, so its commit is empty. */
static int tx_end(struct store *st, int rc, char *err, size_t errlen)
{
    if (rc != STORE_ERROR && rc != STORE_CONFLICT && tx_commit(st, err, errlen) == STORE_OK)
        return rc;
    if (sqlite3_get_autocommit(st->db) == 0) {
        for (int i = 0; i < Q_COUNT; i++)
            if (st->stmt[i] && i != Q_ROLLBACK)
                sqlite3_reset(st->stmt[i]);
        exec_q(st, Q_ROLLBACK, NULL, 0);
    }
    return rc == STORE_CONFLICT ? rc : STORE_ERROR;
}

void store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

/* Binds v, or NULL when v equals `unset`. */
static void bind_opt_int(sqlite3_stmt *s, int i, int64_t v, int64_t unset)
{
    if (v != unset)
        sqlite3_bind_int64(s, i, v);
    else
        sqlite3_bind_null(s, i);
}

/* *out = a heap copy of column i (NULL for SQL NULL); -1 when out of memory. */
int store_col_dup(sqlite3_stmt *s, int i, char **out)
{
    *out = NULL;
    if (sqlite3_column_type(s, i) == SQLITE_NULL)
        return 0;
    const unsigned char *t = sqlite3_column_text(s, i);
    if (!t)
        return -1;
    *out = strdup((const char *)t);
    return *out ? 0 : -1;
}

static int64_t col_opt_int(sqlite3_stmt *s, int i, int64_t null_value)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? null_value : sqlite3_column_int64(s, i);
}

int store_check_limit(int limit, char *err, size_t errlen)
{
    if (limit < 1 || limit > STORE_LIST_LIMIT_MAX)
        return store_fail(err, errlen, "limit %d is not in [1, %d]", limit, STORE_LIST_LIMIT_MAX);
    return STORE_OK;
}

/* Grows a list array to hold n + 1 items of `size` bytes. */
static int list_grow(void **v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = realloc(*v, c * size);
    if (!p)
        return -1;
    *v = p;
    *cap = c;
    return 0;
}

/* ---- reading rows (store_internal.h) ------------------------------------- */

int store_read_one(struct store *st, sqlite3_stmt *s, store_row_fn read, void *out, char *err,
                   size_t errlen)
{
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_ROW)
        return read(s, out, err, errlen);
    return rc == SQLITE_DONE ? STORE_NOTFOUND : STORE_ERROR;
}

int store_read_rows(struct store *st, sqlite3_stmt *s, store_row_fn read, size_t size,
                    size_t limit, void **v, size_t *n, int *has_more, char *err, size_t errlen)
{
    size_t cap = 0;
    int rc;
    while ((rc = store_step(st, s, err, errlen)) == SQLITE_ROW) {
        if (*n == limit) {
            if (has_more)
                *has_more = 1;
            continue;
        }
        if (list_grow(v, *n, &cap, size)) {
            rc = store_fail(err, errlen, "out of memory");
            break;
        }
        if ((rc = read(s, (char *)*v + *n * size, err, errlen)))
            break;
        (*n)++;
    }
    return rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
}

int store_cursor_seq(struct store *st, sqlite3_stmt *s, const char *id, const char *scope,
                     int64_t *seq, char *err, size_t errlen)
{
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, scope);
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_ROW)
        *seq = sqlite3_column_int64(s, 0);
    return rc == SQLITE_ROW ? STORE_OK : rc == SQLITE_DONE ? STORE_NOTFOUND : STORE_ERROR;
}

int store_run_changed(struct store *st, sqlite3_stmt *s, char *err, size_t errlen)
{
    int rc = run(st, s, err, errlen);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = STORE_NOTFOUND;
    return rc;
}

int store_read_count(struct store *st, sqlite3_stmt *s, int64_t *n, char *err, size_t errlen)
{
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_ROW) {
        *n = sqlite3_column_int64(s, 0);
        return STORE_OK;
    }
    return rc == SQLITE_DONE ? store_fail(err, errlen, "count: no answer") : STORE_ERROR;
}

/* ---- ids ------------------------------------------------------------------ */

static int random_bytes(unsigned char *p, size_t n, char *err, size_t errlen)
{
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return store_fail(err, errlen, "getrandom: %s", strerror(errno));
        }
        p += r;
        n -= (size_t)r;
    }
    return STORE_OK;
}

/* out = lower-case RFC 4648 base32 of n bytes, no padding, NUL-terminated. */
static void base32(const unsigned char *in, size_t n, char *out)
{
    static const char A[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned buf = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        buf = (buf << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            *out++ = A[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits)
        *out++ = A[(buf << (5 - bits)) & 31];
    *out = 0;
}

/* out = prefix + 26 base32 characters of 128 random bits. */
static int new_id(const char *prefix, char out[STORE_ID_LEN], char *err, size_t errlen)
{
    unsigned char r[16];
    size_t n = strlen(prefix);
    if (random_bytes(r, sizeof r, err, errlen))
        return STORE_ERROR;
    memcpy(out, prefix, n);
    base32(r, sizeof r, out + n);
    return STORE_OK;
}

/* ---- open, migrate, check ------------------------------------------------ */

static int user_version(struct store *st, int *v, char *err, size_t errlen)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
        return store_db_fail(st, err, errlen, "user_version");
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? STORE_OK : store_fail(err, errlen, "user_version: no answer");
}

static int exec_sql(struct store *st, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
        return STORE_OK;
    store_fail(err, errlen, "%s", msg ? msg : sqlite3_errmsg(st->db));
    sqlite3_free(msg);
    return STORE_ERROR;
}

/* Brings the schema from version to - 1 to version `to`, once. */
static int migrate_step(struct store *st, int to, char *err, size_t errlen)
{
    char sql[64];
    int v = 0;
    if (exec_sql(st, "BEGIN IMMEDIATE", err, errlen))
        return STORE_ERROR;
    int rc = user_version(st, &v, err, errlen);
    if (rc == STORE_OK && v < to) {
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", to);
        rc = exec_sql(st, MIGRATIONS[to - 1], err, errlen);
        if (rc == STORE_OK)
            rc = exec_sql(st, sql, err, errlen);
    }
    if (rc == STORE_OK && exec_sql(st, "COMMIT", err, errlen) == STORE_OK)
        return STORE_OK;
    exec_sql(st, "ROLLBACK", NULL, 0);
    return STORE_ERROR;
}

static int migrate(struct store *st, char *err, size_t errlen)
{
    int v = 0;
    if (user_version(st, &v, err, errlen))
        return STORE_ERROR;
    if (v > SCHEMA_VERSION)
        return store_fail(err, errlen, "database schema version %d is newer than this binary's %d",
                    v, SCHEMA_VERSION);
    for (int to = v + 1; to <= SCHEMA_VERSION; to++)
        if (migrate_step(st, to, err, errlen))
            return store_fail(err, errlen, "migration to schema %d failed", to);
    return STORE_OK;
}

int store_schema_version(void)
{
    return SCHEMA_VERSION;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st) {
        store_fail(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        store_fail(err, errlen, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
        goto bad;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) != SQLITE_OK) {
        store_db_fail(st, err, errlen, path);
        goto bad;
    }
    int wal = sqlite3_step(s) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!wal) {
        store_fail(err, errlen, "%s: cannot switch to WAL mode: %s", path, sqlite3_errmsg(st->db));
        goto bad;
    }
    if (exec_sql(st, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err, errlen) ||
        migrate(st, err, errlen))
        goto bad;
    return st;
bad:
    store_close(st);
    return NULL;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

int store_check(struct store *st, char *err, size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_CHECK, err, errlen);
    int rc = s ? store_step(st, s, err, errlen) : STORE_ERROR;
    if (rc == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        rc = t && strcmp(t, "ok") == 0
                 ? STORE_OK
                 : store_fail(err, errlen, "integrity_check: %s", t ? t : "(null)");
    } else if (rc == SQLITE_DONE) {
        rc = store_fail(err, errlen, "integrity_check: no answer");
    }
    return leave(st, rc);
}

/* ---- API keys -------------------------------------------------------------- */

void store_key_clear(struct store_key *k)
{
    free(k->id);
    free(k->owner);
    free(k->name);
    memset(k, 0, sizeof *k);
}

/* Reads a key row: id, owner, name, created_at. */
static int read_key(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_key *k = item;
    memset(k, 0, sizeof *k);
    if (store_col_dup(s, 0, &k->id) || store_col_dup(s, 1, &k->owner) ||
        store_col_dup(s, 2, &k->name)) {
        store_key_clear(k);
        return store_fail(err, errlen, "out of memory");
    }
    k->created_at = sqlite3_column_int64(s, 3);
    return STORE_OK;
}

static int key_hash(const char *key, unsigned char h[SHA256_BYTES], char *err, size_t errlen)
{
    if (sha256_buffer(key, strlen(key), h))
        return store_fail(err, errlen, "sha256 failed");
    return STORE_OK;
}

int store_key_create(struct store *st, const char *owner, const char *name,
                     char key[STORE_KEY_LEN], struct store_key *out, char *err,
                     size_t errlen)
{
    unsigned char r[32], h[SHA256_BYTES];
    char id[STORE_ID_LEN];
    memset(out, 0, sizeof *out);
    memcpy(key, "sk-owl-", 7);
    if (random_bytes(r, sizeof r, err, errlen) || new_id("key-", id, err, errlen))
        return STORE_ERROR;
    base32(r, sizeof r, key + 7);
    OPENSSL_cleanse(r, sizeof r);
    if (key_hash(key, h, err, errlen))
        return STORE_ERROR;
    int64_t now = time(NULL);
    enter(st);
    sqlite3_stmt *s = prep(st, Q_KEY_INSERT, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, owner);
    store_bind_text(s, 3, name);
    sqlite3_bind_blob(s, 4, h, sizeof h, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, now);
    int rc = run(st, s, err, errlen);
    if (rc == STORE_OK) {
        out->id = strdup(id);
        out->owner = strdup(owner);
        out->name = name ? strdup(name) : NULL;
        out->created_at = now;
        if (!out->id || !out->owner || (name && !out->name)) {
            store_key_clear(out);
            rc = store_fail(err, errlen, "out of memory");
        }
    }
    return leave(st, rc);
}

int store_key_lookup(struct store *st, const char *presented, struct store_key *out,
                     char *err, size_t errlen)
{
    unsigned char h[SHA256_BYTES];
    memset(out, 0, sizeof *out);
    if (key_hash(presented, h, err, errlen))
        return STORE_ERROR;
    enter(st);
    sqlite3_stmt *s = prep(st, Q_KEY_LOOKUP, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    sqlite3_bind_blob(s, 1, h, sizeof h, SQLITE_STATIC);
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_DONE)
        return leave(st, STORE_NOTFOUND);
    if (rc != SQLITE_ROW)
        return leave(st, STORE_ERROR);
    const void *stored = sqlite3_column_blob(s, 4);
    if (sqlite3_column_bytes(s, 4) != SHA256_BYTES || !stored ||
        CRYPTO_memcmp(stored, h, SHA256_BYTES) != 0)
        return leave(st, STORE_NOTFOUND);
    return leave(st, read_key(s, out, err, errlen));
}

int store_key_revoke(struct store *st, const char *id, char *err, size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_KEY_REVOKE, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    store_bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, time(NULL));
    return leave(st, store_run_changed(st, s, err, errlen));
}

int store_key_count(struct store *st, int64_t *n, char *err, size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_KEY_COUNT, err, errlen);
    return leave(st, s ? store_read_count(st, s, n, err, errlen) : STORE_ERROR);
}

/* ---- job counts -------------------------------------------------------------- */

int store_job_count_by_status(struct store *st, int64_t counts[JOB_STATUS_COUNT], char *err,
                              size_t errlen)
{
    memset(counts, 0, JOB_STATUS_COUNT * sizeof counts[0]);
    enter(st);
    sqlite3_stmt *s = prep(st, Q_JOB_COUNT_STATUS, err, errlen);
    int r = s ? SQLITE_ROW : STORE_ERROR;
    while (s && (r = store_step(st, s, err, errlen)) == SQLITE_ROW) {
        int k = store_job_status_parse((const char *)sqlite3_column_text(s, 0));
        if (k >= 0)
            counts[k] = sqlite3_column_int64(s, 1);
    }
    return leave(st, r == SQLITE_DONE ? STORE_OK : STORE_ERROR);
}

int store_job_set_estimate(struct store *st, const char *id, int64_t estimated_finish,
                           char *err, size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_JOB_ESTIMATE, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    store_bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, estimated_finish);
    int rc = store_run_changed(st, s, err, errlen);
    return leave(st, rc == STORE_NOTFOUND ? STORE_CONFLICT : rc);
}

int store_key_list(struct store *st, struct store_key **out, size_t *n, char *err,
                   size_t errlen)
{
    *out = NULL;
    *n = 0;
    enter(st);
    sqlite3_stmt *s = prep(st, Q_KEY_LIST, err, errlen);
    int rc = s ? store_read_rows(st, s, read_key, sizeof **out, SIZE_MAX, (void **)out, n, NULL,
                                 err, errlen)
               : STORE_ERROR;
    if (rc != STORE_OK) {
        store_key_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return leave(st, rc);
}

void store_key_list_free(struct store_key *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store_key_clear(&v[i]);
    free(v);
}

/* ---- files ------------------------------------------------------------------ */

void store_file_clear(struct store_file *f)
{
    free(f->id);
    free(f->owner);
    free(f->filename);
    free(f->purpose);
    free(f->sha256);
    free(f->blob_path);
    free(f->status);
    free(f->validation);
    memset(f, 0, sizeof *f);
}

void store_file_list_free(struct store_file_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        store_file_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads a FILE_COLS row (a store_row_fn). */
static int read_file(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_file *f = item;
    memset(f, 0, sizeof *f);
    if (store_col_dup(s, 0, &f->id) || store_col_dup(s, 1, &f->owner) || store_col_dup(s, 2, &f->filename) ||
        store_col_dup(s, 3, &f->purpose) || store_col_dup(s, 5, &f->sha256) ||
        store_col_dup(s, 6, &f->blob_path) || store_col_dup(s, 8, &f->status) ||
        store_col_dup(s, 9, &f->validation)) {
        store_file_clear(f);
        return store_fail(err, errlen, "out of memory");
    }
    f->bytes = sqlite3_column_int64(s, 4);
    f->created_at = sqlite3_column_int64(s, 7);
    return STORE_OK;
}

static int file_get_locked(struct store *st, const char *owner, const char *id,
                           struct store_file *out, char *err, size_t errlen)
{
    sqlite3_stmt *s = prep(st, Q_FILE_GET, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, owner);
    return store_read_one(st, s, read_file, out, err, errlen);
}

int store_file_insert(struct store *st, const struct store_file_new *f,
                      struct store_file *out, int *dup, char *err, size_t errlen)
{
    char id[STORE_ID_LEN];
    sqlite3_stmt *s;
    memset(out, 0, sizeof *out);
    *dup = 0;
    if (!f->owner || !f->filename || !f->purpose || !f->sha256 || !f->blob_path || !f->status)
        return store_fail(err, errlen, "file insert: a required field is missing");
    if (new_id("file-", id, err, errlen))
        return STORE_ERROR;
    enter(st);
    int rc = STORE_ERROR;
    if (tx_begin(st, err, errlen) || !(s = prep(st, Q_BLOB_ADD, err, errlen)))
        goto out;
    store_bind_text(s, 1, f->sha256);
    sqlite3_bind_int64(s, 2, f->bytes);
    store_bind_text(s, 3, f->blob_path);
    if (store_step(st, s, err, errlen) != SQLITE_ROW) {
        store_fail(err, errlen, "blob upsert: %s", sqlite3_errmsg(st->db));
        goto out;
    }
    const char *path = (const char *)sqlite3_column_text(s, 0);
    *dup = path && strcmp(path, f->blob_path) != 0;
    if (run(st, s, err, errlen) || !(s = prep(st, Q_FILE_INSERT, err, errlen)))
        goto out;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, f->owner);
    store_bind_text(s, 3, f->filename);
    store_bind_text(s, 4, f->purpose);
    sqlite3_bind_int64(s, 5, f->bytes);
    store_bind_text(s, 6, f->sha256);
    sqlite3_bind_int64(s, 7, time(NULL));
    store_bind_text(s, 8, f->status);
    store_bind_text(s, 9, f->validation);
    if (run(st, s, err, errlen))
        goto out;
    rc = file_get_locked(st, f->owner, id, out, err, errlen);
    if (rc == STORE_NOTFOUND)
        rc = store_fail(err, errlen, "inserted file %s vanished", id);
out:
    rc = tx_end(st, rc, err, errlen);
    if (rc != STORE_OK) {
        store_file_clear(out);
        *dup = 0;
    }
    return leave(st, rc);
}

int store_file_get(struct store *st, const char *owner, const char *id,
                   struct store_file *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    enter(st);
    return leave(st, file_get_locked(st, owner, id, out, err, errlen));
}

int store_file_delete(struct store *st, const char *owner, const char *id,
                      char *unlink_path, size_t pathlen, char *err, size_t errlen)
{
    char sha[SHA256_HEX_LEN], path[4096] = "";
    sqlite3_stmt *s;
    enter(st);
    int rc = STORE_ERROR;
    if (tx_begin(st, err, errlen) || !(s = prep(st, Q_FILE_IN_USE, err, errlen)))
        goto out;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, owner);
    if ((rc = store_step(st, s, err, errlen)) != SQLITE_DONE) {
        if (rc == SQLITE_ROW) {
            store_fail(err, errlen, "file %s is used by a job that has not finished", id);
            rc = STORE_CONFLICT;
        }
        goto out;
    }
    rc = STORE_ERROR;
    if (!(s = prep(st, Q_FILE_DELETE, err, errlen)))
        goto out;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, owner);
    if ((rc = store_step(st, s, err, errlen)) != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? STORE_NOTFOUND : STORE_ERROR;
        goto out;
    }
    snprintf(sha, sizeof sha, "%s", (const char *)sqlite3_column_text(s, 0));
    rc = STORE_ERROR;
    if (run(st, s, err, errlen) || !(s = prep(st, Q_BLOB_DEREF, err, errlen)))
        goto out;
    store_bind_text(s, 1, sha);
    if (store_step(st, s, err, errlen) != SQLITE_ROW) {
        store_fail(err, errlen, "file %s has no blob", id);
        goto out;
    }
    if (sqlite3_column_int64(s, 0) == 0)
        snprintf(path, sizeof path, "%s", (const char *)sqlite3_column_text(s, 1));
    if (run(st, s, err, errlen) || !(s = prep(st, Q_BLOB_DELETE, err, errlen)))
        goto out;
    store_bind_text(s, 1, sha);
    rc = run(st, s, err, errlen);
out:
    rc = tx_end(st, rc, err, errlen);
    if (pathlen)
        snprintf(unlink_path, pathlen, "%s", rc == STORE_OK ? path : "");
    return leave(st, rc);
}

int store_blob_referenced(struct store *st, const char *path, char *err, size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_BLOB_REFERENCED, err, errlen);
    if (!s)
        return leave(st, -1);
    store_bind_text(s, 1, path);
    int rc = store_step(st, s, err, errlen);
    return leave(st, rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1);
}

/* The seq of row `id` for the cursor (statement q binds ?1 = id and
 * ?2 = its owner or job); INT64_MAX when id is NULL. */
static int cursor_seq(struct store *st, enum sql_id q, const char *id, const char *scope,
                      int64_t *seq, char *err, size_t errlen)
{
    *seq = INT64_MAX;
    if (!id)
        return STORE_OK;
    sqlite3_stmt *s = prep(st, q, err, errlen);
    return s ? store_cursor_seq(st, s, id, scope, seq, err, errlen) : STORE_ERROR;
}

int store_file_list(struct store *st, const char *owner, const char *purpose,
                    const char *after, int limit, struct store_file_list *out,
                    char *err, size_t errlen)
{
    int64_t seq;
    memset(out, 0, sizeof *out);
    if (store_check_limit(limit, err, errlen))
        return STORE_ERROR;
    enter(st);
    int rc = cursor_seq(st, Q_FILE_SEQ, after, owner, &seq, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_FILE_LIST, err, errlen);
    if (!s)
        return leave(st, rc ? rc : STORE_ERROR);
    store_bind_text(s, 1, owner);
    store_bind_text(s, 2, purpose);
    sqlite3_bind_int64(s, 3, seq);
    sqlite3_bind_int(s, 4, limit + 1);
    rc = store_read_rows(st, s, read_file, sizeof *out->v, (size_t)limit, (void **)&out->v,
                         &out->n, &out->has_more, err, errlen);
    if (rc != STORE_OK)
        store_file_list_free(out);
    return leave(st, rc);
}

/* ---- jobs ------------------------------------------------------------------ */

const char *store_job_status_name(enum store_job_status s)
{
    return (unsigned)s < JOB_STATUS_COUNT ? STATUS_NAMES[s] : "unknown";
}

int store_job_status_parse(const char *name)
{
    for (int i = 0; i < JOB_STATUS_COUNT; i++)
        if (name && strcmp(name, STATUS_NAMES[i]) == 0)
            return i;
    return -1;
}

void store_job_clear(struct store_job *j)
{
    free(j->id);
    free(j->owner);
    free(j->model);
    free(j->training_file);
    free(j->validation_file);
    free(j->method);
    free(j->hyperparameters);
    free(j->suffix);
    free(j->metadata);
    free(j->error);
    free(j->fine_tuned_model);
    free(j->resume_checkpoint);
    memset(j, 0, sizeof *j);
}

void store_job_list_free(struct store_job_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        store_job_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads a JOB_COLS row (a store_row_fn). */
static int read_job(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_job *j = item;
    memset(j, 0, sizeof *j);
    if (store_col_dup(s, 0, &j->id) || store_col_dup(s, 1, &j->owner) || store_col_dup(s, 2, &j->model) ||
        store_col_dup(s, 3, &j->training_file) || store_col_dup(s, 4, &j->validation_file) ||
        store_col_dup(s, 5, &j->method) || store_col_dup(s, 6, &j->hyperparameters) ||
        store_col_dup(s, 8, &j->suffix) || store_col_dup(s, 9, &j->metadata) ||
        store_col_dup(s, 15, &j->error) || store_col_dup(s, 16, &j->fine_tuned_model) ||
        store_col_dup(s, 18, &j->resume_checkpoint)) {
        store_job_clear(j);
        return store_fail(err, errlen, "out of memory");
    }
    int status = store_job_status_parse((const char *)sqlite3_column_text(s, 10));
    if (status < 0) {
        store_job_clear(j);
        return store_fail(err, errlen, "job has an unknown status");
    }
    j->status = (enum store_job_status)status;
    j->seed = sqlite3_column_int64(s, 7);
    j->created_at = sqlite3_column_int64(s, 11);
    j->started_at = col_opt_int(s, 12, 0);
    j->finished_at = col_opt_int(s, 13, 0);
    j->estimated_finish = col_opt_int(s, 14, 0);
    j->trained_tokens = col_opt_int(s, 17, -1);
    j->restart_count = sqlite3_column_int(s, 19);
    return STORE_OK;
}

static int job_get_locked(struct store *st, const char *owner, const char *id,
                          struct store_job *out, char *err, size_t errlen)
{
    sqlite3_stmt *s = prep(st, Q_JOB_GET, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, owner);
    return store_read_one(st, s, read_job, out, err, errlen);
}

int store_job_insert(struct store *st, const struct store_job_new *j,
                     struct store_job *out, char *err, size_t errlen)
{
    char id[STORE_ID_LEN];
    memset(out, 0, sizeof *out);
    if ((unsigned)j->status >= JOB_STATUS_COUNT)
        return store_fail(err, errlen, "bad job status %d", (int)j->status);
    if (new_id("ftjob-", id, err, errlen))
        return STORE_ERROR;
    enter(st);
    int rc = tx_begin(st, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_JOB_INSERT, err, errlen);
    if (!s)
        return leave(st, tx_end(st, STORE_ERROR, err, errlen));
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, j->owner);
    store_bind_text(s, 3, j->model);
    store_bind_text(s, 4, j->training_file);
    store_bind_text(s, 5, j->validation_file);
    store_bind_text(s, 6, j->method);
    store_bind_text(s, 7, j->hyperparameters);
    sqlite3_bind_int64(s, 8, j->seed);
    store_bind_text(s, 9, j->suffix);
    store_bind_text(s, 10, j->metadata);
    store_bind_text(s, 11, STATUS_NAMES[j->status]);
    sqlite3_bind_int64(s, 12, time(NULL));
    rc = run(st, s, err, errlen);
    if (rc == STORE_OK)
        rc = job_get_locked(st, j->owner, id, out, err, errlen);
    if (rc == STORE_NOTFOUND)
        rc = store_fail(err, errlen, "inserted job %s vanished", id);
    rc = tx_end(st, rc, err, errlen);
    if (rc != STORE_OK)
        store_job_clear(out);
    return leave(st, rc);
}

int store_job_get(struct store *st, const char *owner, const char *id,
                  struct store_job *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    enter(st);
    return leave(st, job_get_locked(st, owner, id, out, err, errlen));
}

int store_job_next_queued(struct store *st, struct store_job *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    enter(st);
    sqlite3_stmt *s = prep(st, Q_JOB_NEXT, err, errlen);
    return leave(st, s ? store_read_one(st, s, read_job, out, err, errlen) : STORE_ERROR);
}

/* Appends an event inside the caller's transaction. */
static int event_append_locked(struct store *st, const char *job_id,
                               const struct store_event_new *ev, int64_t *id, char *err,
                               size_t errlen)
{
    sqlite3_stmt *s = prep(st, Q_EVENT_NEXT, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, job_id);
    int rc = store_step(st, s, err, errlen);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? store_fail(err, errlen, "event id: no answer") : STORE_ERROR;
    int64_t next = sqlite3_column_int64(s, 0);
    if (!(s = prep(st, Q_EVENT_INSERT, err, errlen)))
        return STORE_ERROR;
    store_bind_text(s, 1, job_id);
    sqlite3_bind_int64(s, 2, next);
    sqlite3_bind_int64(s, 3, time(NULL));
    store_bind_text(s, 4, ev->level ? ev->level : "info");
    store_bind_text(s, 5, ev->message ? ev->message : "");
    store_bind_text(s, 6, ev->type ? ev->type : "message");
    store_bind_text(s, 7, ev->data);
    if (sqlite3_step(s) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY) {
            store_fail(err, errlen, "no job %s", job_id);
            return STORE_NOTFOUND;
        }
        return store_db_fail(st, err, errlen, "event insert");
    }
    if (id)
        *id = next;
    return STORE_OK;
}

/* The compare-and-set of store_job_transition inside the caller's
 * transaction, also adding restart_inc to restart_count. */
static int transition_locked(struct store *st, const char *id, unsigned allowed,
                             enum store_job_status to, const struct store_job_update *upd,
                             int restart_inc, const struct store_event_new *ev,
                             int64_t *event_id, enum store_job_status *current, char *err,
                             size_t errlen)
{
    static const struct store_job_update none = STORE_JOB_UPDATE_NONE;
    if (!upd)
        upd = &none;
    sqlite3_stmt *s = prep(st, Q_JOB_STATUS, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, id);
    int rc = store_step(st, s, err, errlen);
    if (rc == SQLITE_DONE) {
        store_fail(err, errlen, "no job %s", id);
        return STORE_NOTFOUND;
    }
    if (rc != SQLITE_ROW)
        return STORE_ERROR;
    int cur = store_job_status_parse((const char *)sqlite3_column_text(s, 0));
    if (cur < 0)
        return store_fail(err, errlen, "job %s has an unknown status", id);
    if (current)
        *current = (enum store_job_status)cur;
    if (!(allowed & JOB_MASK(cur))) {
        store_fail(err, errlen, "job %s is %s", id, STATUS_NAMES[cur]);
        return STORE_CONFLICT;
    }
    if (!(s = prep(st, Q_JOB_UPDATE, err, errlen)))
        return STORE_ERROR;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, STATUS_NAMES[to]);
    bind_opt_int(s, 3, upd->started_at, 0);
    bind_opt_int(s, 4, upd->finished_at, 0);
    bind_opt_int(s, 5, upd->estimated_finish, 0);
    bind_opt_int(s, 6, upd->trained_tokens, -1);
    store_bind_text(s, 7, upd->error);
    store_bind_text(s, 8, upd->fine_tuned_model);
    store_bind_text(s, 9, upd->resume_checkpoint);
    sqlite3_bind_int(s, 10, restart_inc);
    if ((rc = run(st, s, err, errlen)))
        return rc;
    if (ev && (rc = event_append_locked(st, id, ev, event_id, err, errlen)))
        return rc;
    return store_outbox_job_locked(st, id, to, err, errlen);
}

int store_job_transition(struct store *st, const char *id, unsigned allowed,
                         enum store_job_status to, const struct store_job_update *upd,
                         const struct store_event_new *ev, int64_t *event_id,
                         enum store_job_status *current, char *err, size_t errlen)
{
    if ((unsigned)to >= JOB_STATUS_COUNT)
        return store_fail(err, errlen, "bad job status %d", (int)to);
    enter(st);
    int rc = tx_begin(st, err, errlen);
    if (rc == STORE_OK)
        rc = transition_locked(st, id, allowed, to, upd, 0, ev, event_id, current, err,
                               errlen);
    rc = leave(st, tx_end(st, rc, err, errlen));
    if (rc == STORE_OK && ev)
        event_notify_committed(id);
    return rc;
}

int store_job_list(struct store *st, const char *owner, unsigned status_mask,
                   const char *metadata, const char *after, int limit,
                   struct store_job_list *out, char *err, size_t errlen)
{
    int64_t seq;
    memset(out, 0, sizeof *out);
    if (store_check_limit(limit, err, errlen))
        return STORE_ERROR;
    enter(st);
    int rc = cursor_seq(st, Q_JOB_SEQ, after, owner, &seq, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_JOB_LIST, err, errlen);
    if (!s)
        return leave(st, rc ? rc : STORE_ERROR);
    store_bind_text(s, 1, owner);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_int(s, 3, status_mask != 0);
    store_bind_text(s, 4, metadata);
    sqlite3_bind_int(s, 5, limit + 1);
    for (int i = 0, p = 6; i < JOB_STATUS_COUNT; i++)
        if (status_mask & JOB_MASK(i))
            store_bind_text(s, p++, STATUS_NAMES[i]);
    rc = store_read_rows(st, s, read_job, sizeof *out->v, (size_t)limit, (void **)&out->v,
                         &out->n, &out->has_more, err, errlen);
    if (rc != STORE_OK)
        store_job_list_free(out);
    return leave(st, rc);
}

/* ---- checkpoints ------------------------------------------------------------ */

void store_checkpoint_clear(struct store_checkpoint *c)
{
    free(c->id);
    free(c->job_id);
    free(c->metrics);
    free(c->sha256);
    free(c->path);
    memset(c, 0, sizeof *c);
}

void store_checkpoint_list_free(struct store_checkpoint_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        store_checkpoint_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads a CKPT_COLS row (a store_row_fn). */
static int read_checkpoint(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_checkpoint *c = item;
    memset(c, 0, sizeof *c);
    if (store_col_dup(s, 0, &c->id) || store_col_dup(s, 1, &c->job_id) || store_col_dup(s, 3, &c->metrics) ||
        store_col_dup(s, 4, &c->sha256) || store_col_dup(s, 6, &c->path)) {
        store_checkpoint_clear(c);
        return store_fail(err, errlen, "out of memory");
    }
    c->step = sqlite3_column_int64(s, 2);
    c->bytes = sqlite3_column_int64(s, 5);
    c->created_at = sqlite3_column_int64(s, 7);
    return STORE_OK;
}

static int checkpoint_get_locked(struct store *st, const char *job_id, const char *id,
                                 struct store_checkpoint *out, char *err, size_t errlen)
{
    sqlite3_stmt *s = prep(st, Q_CKPT_GET, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, job_id);
    store_bind_text(s, 2, id);
    return store_read_one(st, s, read_checkpoint, out, err, errlen);
}

int store_checkpoint_insert(struct store *st, const struct store_checkpoint_new *c,
                            struct store_checkpoint *out, char *err, size_t errlen)
{
    char id[STORE_ID_LEN];
    memset(out, 0, sizeof *out);
    if (new_id("ftckpt-", id, err, errlen))
        return STORE_ERROR;
    enter(st);
    int rc = tx_begin(st, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_CKPT_INSERT, err, errlen);
    if (!s)
        return leave(st, tx_end(st, STORE_ERROR, err, errlen));
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, c->job_id);
    sqlite3_bind_int64(s, 3, c->step);
    store_bind_text(s, 4, c->metrics);
    store_bind_text(s, 5, c->sha256);
    sqlite3_bind_int64(s, 6, c->bytes);
    store_bind_text(s, 7, c->path);
    sqlite3_bind_int64(s, 8, time(NULL));
    if (sqlite3_step(s) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
            store_fail(err, errlen, "no job %s", c->job_id);
        else
            store_db_fail(st, err, errlen, "checkpoint insert");
        return leave(st, tx_end(st, STORE_ERROR, err, errlen));
    }
    rc = checkpoint_get_locked(st, c->job_id, id, out, err, errlen);
    if (rc == STORE_NOTFOUND)
        rc = store_fail(err, errlen, "inserted checkpoint %s vanished", id);
    if (rc == STORE_OK)
        rc = store_outbox_checkpoint_locked(st, id, err, errlen);
    rc = tx_end(st, rc, err, errlen);
    if (rc != STORE_OK)
        store_checkpoint_clear(out);
    return leave(st, rc);
}

int store_checkpoint_get(struct store *st, const char *job_id, const char *id,
                         struct store_checkpoint *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    enter(st);
    return leave(st, checkpoint_get_locked(st, job_id, id, out, err, errlen));
}

static int checkpoint_list_locked(struct store *st, const char *job_id, const char *after,
                                  int limit, struct store_checkpoint_list *out, char *err,
                                  size_t errlen)
{
    int64_t seq;
    int rc = cursor_seq(st, Q_CKPT_SEQ, after, job_id, &seq, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_CKPT_LIST, err, errlen);
    if (!s)
        return rc ? rc : STORE_ERROR;
    store_bind_text(s, 1, job_id);
    sqlite3_bind_int64(s, 2, seq);
    sqlite3_bind_int(s, 3, limit + 1);
    rc = store_read_rows(st, s, read_checkpoint, sizeof *out->v, (size_t)limit,
                         (void **)&out->v, &out->n, &out->has_more, err, errlen);
    if (rc != STORE_OK)
        store_checkpoint_list_free(out);
    return rc;
}

int store_checkpoint_list(struct store *st, const char *job_id, const char *after,
                          int limit, struct store_checkpoint_list *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (store_check_limit(limit, err, errlen))
        return STORE_ERROR;
    enter(st);
    return leave(st, checkpoint_list_locked(st, job_id, after, limit, out, err, errlen));
}

/* ---- events ------------------------------------------------------------------ */

static void event_clear(struct store_event *e)
{
    free(e->job_id);
    free(e->level);
    free(e->message);
    free(e->type);
    free(e->data);
    memset(e, 0, sizeof *e);
}

void store_event_list_free(struct store_event_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        event_clear(&l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* Reads an EVENT_COLS row (a store_row_fn). */
static int read_event(sqlite3_stmt *s, void *item, char *err, size_t errlen)
{
    struct store_event *e = item;
    memset(e, 0, sizeof *e);
    if (store_col_dup(s, 1, &e->job_id) || store_col_dup(s, 3, &e->level) ||
        store_col_dup(s, 4, &e->message) || store_col_dup(s, 5, &e->type) ||
        store_col_dup(s, 6, &e->data)) {
        event_clear(e);
        return store_fail(err, errlen, "out of memory");
    }
    e->id = sqlite3_column_int64(s, 0);
    e->created_at = sqlite3_column_int64(s, 2);
    return STORE_OK;
}

int store_event_append(struct store *st, const char *job_id,
                       const struct store_event_new *ev, int64_t *id, char *err,
                       size_t errlen)
{
    enter(st);
    int rc = tx_begin(st, err, errlen);
    if (rc == STORE_OK)
        rc = event_append_locked(st, job_id, ev, id, err, errlen);
    rc = leave(st, tx_end(st, rc, err, errlen));
    if (rc == STORE_OK)
        event_notify_committed(job_id);
    return rc;
}

static int event_list(struct store *st, enum sql_id q, const char *job_id, int64_t bound,
                      int limit, struct store_event_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (store_check_limit(limit, err, errlen))
        return STORE_ERROR;
    enter(st);
    sqlite3_stmt *s = prep(st, q, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    store_bind_text(s, 1, job_id);
    sqlite3_bind_int64(s, 2, bound);
    sqlite3_bind_int(s, 3, limit + 1);
    int rc = store_read_rows(st, s, read_event, sizeof *out->v, (size_t)limit, (void **)&out->v,
                             &out->n, &out->has_more, err, errlen);
    if (rc != STORE_OK)
        store_event_list_free(out);
    return leave(st, rc);
}

int store_event_list_after(struct store *st, const char *job_id, int64_t after_id,
                           int limit, struct store_event_list *out, char *err,
                           size_t errlen)
{
    return event_list(st, Q_EVENT_AFTER, job_id, after_id, limit, out, err, errlen);
}

int store_event_list_before(struct store *st, const char *job_id, int64_t before_id,
                            int limit, struct store_event_list *out, char *err,
                            size_t errlen)
{
    return event_list(st, Q_EVENT_BEFORE, job_id, before_id > 0 ? before_id : INT64_MAX,
                      limit, out, err, errlen);
}

/* ---- recovery ------------------------------------------------------------------ */

struct stranded {
    char *id;
    enum store_job_status status;
    int restart_count;
};

/* The newest checkpoint of job `id` that verifies, into *c; STORE_NOTFOUND
 * when none does. Pages through the list so memory stays bounded. */
static int newest_verified(struct store *st, const char *id,
                           int (*verify)(const struct store_checkpoint *, void *), void *arg,
                           struct store_checkpoint *c, char *err, size_t errlen)
{
    struct store_checkpoint_list l;
    char after[STORE_ID_LEN] = "";
    for (;;) {
        memset(&l, 0, sizeof l);
        if (checkpoint_list_locked(st, id, after[0] ? after : NULL, 64, &l, err, errlen))
            return STORE_ERROR;
        for (size_t i = 0; i < l.n; i++) {
            if (!verify || verify(&l.v[i], arg)) {
                *c = l.v[i];
                memset(&l.v[i], 0, sizeof l.v[i]);
                store_checkpoint_list_free(&l);
                return STORE_OK;
            }
        }
        int more = l.has_more && l.n;
        if (more)
            snprintf(after, sizeof after, "%s", l.v[l.n - 1].id);
        store_checkpoint_list_free(&l);
        if (!more)
            return STORE_NOTFOUND;
    }
}

/* Re-queues (or pauses) job j from a verified checkpoint, or fails it;
 * *outcome = 1 resumed, 0 failed, -1 left alone (it moved on meanwhile,
 * in another process). */
static int recover_job(struct store *st, const struct stranded *j, int max_restarts,
                       int (*verify)(const struct store_checkpoint *, void *), void *arg,
                       int *outcome, char *err, size_t errlen)
{
    struct store_checkpoint c = {0};
    struct store_job_update upd = STORE_JOB_UPDATE_NONE;
    struct store_event_new ev = {"warn", NULL, "message", NULL};
    char msg[256], data[256], error[320];
    int rc = STORE_NOTFOUND;
    if (j->restart_count < max_restarts)
        rc = newest_verified(st, j->id, verify, arg, &c, err, errlen);
    if (rc == STORE_ERROR)
        return rc;
    enum store_job_status to;
    int resumed = rc == STORE_OK;
    if (resumed) {
        to = j->status == JOB_PAUSING ? JOB_PAUSED : JOB_QUEUED;
        snprintf(msg, sizeof msg, "Server restarted; the job resumes from checkpoint %s (step %" PRId64 ")",
                 c.id, c.step);
        snprintf(data, sizeof data,
                 "{\"code\":\"server_restart\",\"checkpoint\":\"%s\",\"step\":%" PRId64 "}",
                 c.id, c.step);
        upd.resume_checkpoint = c.id;
        ev.data = data;
    } else {
        to = JOB_FAILED;
        snprintf(msg, sizeof msg, "%s",
                 j->restart_count >= max_restarts
                     ? "The server restarted while the job was running, too many times"
                     : "The server restarted while the job was running and no checkpoint "
                       "could be resumed");
        snprintf(error, sizeof error,
                 "{\"code\":\"server_restart\",\"message\":\"%s\",\"param\":null}", msg);
        upd.error = error;
        upd.finished_at = time(NULL);
        ev.level = "error";
    }
    ev.message = msg;
    rc = tx_begin(st, err, errlen);
    if (rc == STORE_OK)
        rc = transition_locked(st, j->id, JOB_MASK(JOB_RUNNING) | JOB_MASK(JOB_PAUSING), to,
                               &upd, resumed, &ev, NULL, NULL, err, errlen);
    rc = tx_end(st, rc, err, errlen);
    if (rc == STORE_OK)
        event_notify_committed(j->id);
    store_checkpoint_clear(&c);
    *outcome = rc == STORE_CONFLICT ? -1 : resumed;
    return rc == STORE_CONFLICT ? STORE_OK : rc;
}

int store_recover_running(struct store *st, int max_restarts,
                          int (*verify)(const struct store_checkpoint *c, void *arg),
                          void *arg, int *n_resumed, int *n_failed, char *err,
                          size_t errlen)
{
    struct stranded *v = NULL;
    size_t n = 0, cap = 0;
    int resumed = 0, failed = 0;
    enter(st);
    int rc = exec_q(st, Q_IDEM_DROP_PENDING, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_JOB_STRANDED, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    while ((rc = store_step(st, s, err, errlen)) == SQLITE_ROW) {
        if (list_grow((void **)&v, n, &cap, sizeof *v) || store_col_dup(s, 0, &v[n].id)) {
            rc = store_fail(err, errlen, "out of memory");
            break;
        }
        v[n].status = (enum store_job_status)store_job_status_parse(
            (const char *)sqlite3_column_text(s, 1));
        v[n].restart_count = sqlite3_column_int(s, 2);
        n++;
    }
    rc = rc == SQLITE_DONE ? STORE_OK : STORE_ERROR;
    sqlite3_reset(s); /* end the read before writing */
    for (size_t i = 0; i < n && rc == STORE_OK; i++) {
        int r = -1;
        rc = recover_job(st, &v[i], max_restarts, verify, arg, &r, err, errlen);
        resumed += rc == STORE_OK && r == 1;
        failed += rc == STORE_OK && r == 0;
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].id);
    free(v);
    if (n_resumed)
        *n_resumed = resumed;
    if (n_failed)
        *n_failed = failed;
    return leave(st, rc);
}

/* ---- idempotency ------------------------------------------------------------- */

void store_idem_clear(struct store_idem *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* The record of (owner, key), which exists: STORE_EXISTS with the response
 * to replay, or STORE_CONFLICT. */
static int idem_existing(struct store *st, const char *owner, const char *key,
                         const char *request_hash, struct store_idem *out, char *err,
                         size_t errlen)
{
    sqlite3_stmt *s = prep(st, Q_IDEM_GET, err, errlen);
    if (!s)
        return STORE_ERROR;
    store_bind_text(s, 1, owner);
    store_bind_text(s, 2, key);
    int rc = store_step(st, s, err, errlen);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? store_fail(err, errlen, "idempotency record vanished") : rc;
    const char *h = (const char *)sqlite3_column_text(s, 0);
    if (!h || strcmp(h, request_hash) != 0) {
        out->status = -1;
        store_fail(err, errlen, "idempotency key %s was used for a different request", key);
        return STORE_CONFLICT;
    }
    out->status = sqlite3_column_int(s, 1);
    if (out->status == 0) {
        store_fail(err, errlen, "a request with idempotency key %s is still running", key);
        return STORE_CONFLICT;
    }
    return store_col_dup(s, 2, &out->body) ? store_fail(err, errlen, "out of memory") : STORE_EXISTS;
}

int store_idem_begin(struct store *st, const char *owner, const char *key,
                     const char *request_hash, struct store_idem *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    enter(st);
    int rc = tx_begin(st, err, errlen);
    sqlite3_stmt *s = rc ? NULL : prep(st, Q_IDEM_INSERT, err, errlen);
    if (!s)
        return leave(st, tx_end(st, STORE_ERROR, err, errlen));
    store_bind_text(s, 1, owner);
    store_bind_text(s, 2, key);
    store_bind_text(s, 3, request_hash);
    sqlite3_bind_int64(s, 4, time(NULL));
    rc = run(st, s, err, errlen);
    if (rc == STORE_OK && sqlite3_changes(st->db) == 0)
        rc = idem_existing(st, owner, key, request_hash, out, err, errlen);
    rc = tx_end(st, rc, err, errlen);
    if (rc == STORE_ERROR)
        store_idem_clear(out);
    return leave(st, rc);
}

int store_idem_finish(struct store *st, const char *owner, const char *key, int status,
                      const char *body, char *err, size_t errlen)
{
    if (status <= 0)
        return store_fail(err, errlen, "bad HTTP status %d", status);
    enter(st);
    sqlite3_stmt *s = prep(st, Q_IDEM_FINISH, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    store_bind_text(s, 1, owner);
    store_bind_text(s, 2, key);
    sqlite3_bind_int(s, 3, status);
    store_bind_text(s, 4, body);
    int rc = store_run_changed(st, s, err, errlen);
    if (rc == STORE_NOTFOUND)
        store_fail(err, errlen, "no reservation for idempotency key %s", key);
    return leave(st, rc);
}

int store_idem_release(struct store *st, const char *owner, const char *key, char *err,
                       size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_IDEM_RELEASE, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    store_bind_text(s, 1, owner);
    store_bind_text(s, 2, key);
    return leave(st, store_run_changed(st, s, err, errlen));
}

int store_idem_prune(struct store *st, int64_t before, int64_t *n, char *err, size_t errlen)
{
    enter(st);
    sqlite3_stmt *s = prep(st, Q_IDEM_PRUNE, err, errlen);
    if (!s)
        return leave(st, STORE_ERROR);
    sqlite3_bind_int64(s, 1, before);
    int rc = run(st, s, err, errlen);
    if (rc == STORE_OK && n)
        *n = sqlite3_changes(st->db);
    return leave(st, rc);
}

/* ---- shared with the other store_*.c files (store_internal.h) ------------- */

sqlite3 *store_db(struct store *st)
{
    return st->db;
}

void store_enter(struct store *st)
{
    enter(st);
}

int store_leave(struct store *st, int rc)
{
    return leave(st, rc);
}

int store_tx_begin(struct store *st, char *err, size_t errlen)
{
    return tx_begin(st, err, errlen);
}

int store_tx_end(struct store *st, int rc, char *err, size_t errlen)
{
    return tx_end(st, rc, err, errlen);
}

int store_new_id(const char *prefix, char out[STORE_ID_LEN], char *err, size_t errlen)
{
    return new_id(prefix, out, err, errlen);
}
