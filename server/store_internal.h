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
