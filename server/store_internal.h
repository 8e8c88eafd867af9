/*
 * store_internal.h: what store.c shares with the other store_*.c files that
 * keep their tables in the same database (store_webhooks.c). Callers of the
 * store never include it: they use store.h and store_webhooks.h.
 *
 * store.c's rules hold here too: store_enter before touching the connection
 * and store_leave(st, rc) after (it ends every cached read and unlocks);
 * writes of several rows inside store_tx_begin ... store_tx_end (which
 * rolls back on STORE_ERROR and STORE_CONFLICT). Statements prepared
 * outside store.c are finalized before the public call returns.
 */
#ifndef OWLORE_STORE_INTERNAL_H
#define OWLORE_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store.h"

/* ---- defined in store.c ---------------------------------------------------- */

sqlite3 *store_db(struct store *st);
void store_enter(struct store *st);
/* Resets store.c's cached statements, unlocks, and returns rc. */
int store_leave(struct store *st, int rc);
int store_tx_begin(struct store *st, char *err, size_t errlen);
int store_tx_end(struct store *st, int rc, char *err, size_t errlen);
/* Writes the message to err (may be NULL); returns STORE_ERROR. */
int store_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* store_fail with "<what>: <SQLite's message>". */
int store_db_fail(struct store *st, char *err, size_t errlen, const char *what);
/* sqlite3_step: SQLITE_ROW or SQLITE_DONE, else STORE_ERROR with a message. */
int store_step(struct store *st, sqlite3_stmt *s, char *err, size_t errlen);
/* Binds v (borrowed until the statement is reset), or NULL when v is NULL. */
void store_bind_text(sqlite3_stmt *s, int i, const char *v);
/* *out = a heap copy of column i (NULL for SQL NULL); -1 when out of memory. */
int store_col_dup(sqlite3_stmt *s, int i, char **out);
/* out = prefix + 26 base32 characters of 128 random bits. */
int store_new_id(const char *prefix, char out[STORE_ID_LEN], char *err, size_t errlen);
/* STORE_OK when 1 <= limit <= STORE_LIST_LIMIT_MAX, else STORE_ERROR with a
 * message. */
int store_check_limit(int limit, char *err, size_t errlen);

/* Reads the current row of a statement into *item (zeroed first). On
 * failure *item owns nothing and the answer is STORE_ERROR with a message;
 * else STORE_OK. Each table has one (read_file, read_webhook...). */
typedef int (*store_row_fn)(sqlite3_stmt *s, void *item, char *err, size_t errlen);

/* Steps bound statement s once: STORE_OK with its row read into *out by
 * `read`, STORE_NOTFOUND when it has no row, else STORE_ERROR. */
int store_read_one(struct store *st, sqlite3_stmt *s, store_row_fn read, void *out, char *err,
                   size_t errlen);
/* Steps bound statement s to its end, appending each row to the array *v of
 * *n items of `size` bytes (both empty at the start) with `read`, at most
 * `limit` of them; a row past them sets *has_more (may be NULL) to 1 and is
 * skipped (so a page binds LIMIT limit + 1). STORE_OK, or STORE_ERROR with
 * a message and the items read so far left in *v for the caller's
 * *_list_free. */
int store_read_rows(struct store *st, sqlite3_stmt *s, store_row_fn read, size_t size,
                    size_t limit, void **v, size_t *n, int *has_more, char *err, size_t errlen);
/* The list cursor: binds ?1 = id and ?2 = scope (its owner or job) to s, a
 * `SELECT seq ...` statement, and reads the seq into *seq: STORE_OK,
 * STORE_NOTFOUND when there is no such row, else STORE_ERROR. */
int store_cursor_seq(struct store *st, sqlite3_stmt *s, const char *id, const char *scope,
                     int64_t *seq, char *err, size_t errlen);
/* Runs write statement s: STORE_OK when it changed a row, STORE_NOTFOUND
 * when it changed none, else STORE_ERROR. */
int store_run_changed(struct store *st, sqlite3_stmt *s, char *err, size_t errlen);
/* Steps s for a count in column 0 into *n: STORE_OK, or STORE_ERROR (with
 * "count: no answer" when it gives no row). */
int store_read_count(struct store *st, sqlite3_stmt *s, int64_t *n, char *err, size_t errlen);

/* ---- defined in store_webhooks.c, called by store.c inside its write
 * transactions, so that an event's outbox rows commit with the change ---- */

/* Queues the event of job `job_id` having become `to` (running, paused,
 * succeeded, failed, cancelled; other statuses have no event) for every
 * webhook of the job's owner that subscribes to it. */
int store_outbox_job_locked(struct store *st, const char *job_id, enum store_job_status to,
                            char *err, size_t errlen);
/* Queues fine_tuning.job.checkpoint.created for the checkpoint just
 * inserted with id `checkpoint_id`. */
int store_outbox_checkpoint_locked(struct store *st, const char *checkpoint_id, char *err,
                                   size_t errlen);

#endif
