/*
 * store.h: the service's persistent state in one SQLite database.
 *
 * Tables: api_keys, blobs, files, jobs, events, checkpoints, idempotency,
 * and webhooks with their webhook_outbox (store_webhooks.h).
 * The database runs in WAL mode with synchronous=FULL (a committed
 * transaction survives power loss), foreign keys on and a busy timeout, so
 * a second process (`owlore keys create` beside a running server) waits
 * instead of failing. The schema version lives in PRAGMA user_version; on
 * open, each missing migration step runs in its own transaction.
 *
 * Threads: one connection per handle, guarded by a mutex held for the
 * whole of each call, so any number of threads may share one handle.
 * Every write is atomic: one statement, or several inside BEGIN IMMEDIATE
 * ... COMMIT (rolled back on any failure). SQLite allows one writer at a
 * time anyway, and every call here is short.
 *
 * Conventions: every function returns an enum store_rc (STORE_ERROR = -1
 * with a message in err, which may be NULL) and never exits. Result structs
 * own heap strings (NULL for SQL NULL), released by their *_clear or
 * *_list_free function; input structs borrow the caller's strings. JSON
 * columns hold JSON text that the caller produced and the store does not
 * parse (except the metadata filter of store_job_list). Ids are a prefix
 * and 26 lower-case base32 characters (128 random bits from getrandom).
 * Timestamps are unix seconds, set by the store when a row is created.
 *
 * Lists use cursor pagination: newest first, `after` = the id of the last
 * item of the previous page (NULL or 0: start at the newest), at most
 * `limit` items, has_more = 1 when older items remain. An `after` id that
 * does not exist (or belongs to another owner) answers STORE_NOTFOUND.
 *
 * Tenant isolation: functions taking an owner only see that owner's rows;
 * another owner's id answers STORE_NOTFOUND, exactly as a missing id.
 * Events and checkpoints are reached through their job: check the job with
 * store_job_get(owner, id) first.
 */
#ifndef OWLORE_STORE_H
#define OWLORE_STORE_H

#include <stddef.h>
#include <stdint.h>

enum store_rc {
    STORE_ERROR = -1,
    STORE_OK = 0,
    STORE_NOTFOUND = 1,
    STORE_CONFLICT = 2, /* a status not in the allowed set, a key in use... */
    STORE_EXISTS = 3,   /* idempotency: a finished record to replay */
};

#define STORE_LIST_LIMIT_MAX 10000 /* the most items one list call returns */
#define STORE_ID_LEN 40  /* room for any id this store makes, with the NUL */
#define STORE_KEY_LEN 60 /* "sk-owl-" + 52 base32 characters + NUL */

struct store;

/* Opens (creating when missing) the database at `path` and migrates it to
 * the current schema; NULL with a message on failure, or when the file was
 * written by a newer schema than this binary knows. */
struct store *store_open(const char *path, char *err, size_t errlen);
/* Closes the handle (NULL is fine). No call may be running on it. */
void store_close(struct store *st);
/* The schema version this binary writes (PRAGMA user_version). */
int store_schema_version(void);
/* PRAGMA integrity_check: STORE_OK when it answers "ok", else STORE_ERROR
 * with its first complaint. */
int store_check(struct store *st, char *err, size_t errlen);

/* ---- API keys ---------------------------------------------------------- */

struct store_key {
    char *id;    /* "key-…" */
    char *owner; /* the tenant whose files and jobs the key reaches */
    char *name;  /* a label, or NULL */
    int64_t created_at;
};
void store_key_clear(struct store_key *k);

/* Creates a key for `owner` (name may be NULL): only the SHA-256 of the
 * key is stored; the plaintext is written to `key` once, here. */
int store_key_create(struct store *st, const char *owner, const char *name,
                     char key[STORE_KEY_LEN], struct store_key *out, char *err,
                     size_t errlen);
/* The live key whose plaintext is `presented`: STORE_OK and *out, or
 * STORE_NOTFOUND (also for a revoked key). The presented key is hashed
 * first, so the index lookup compares digests an attacker cannot steer
 * byte by byte; the final comparison is CRYPTO_memcmp. */
int store_key_lookup(struct store *st, const char *presented, struct store_key *out,
                     char *err, size_t errlen);
/* Revokes key `id`: STORE_OK, or STORE_NOTFOUND when no live key has it. */
int store_key_revoke(struct store *st, const char *id, char *err, size_t errlen);
/* The live keys, oldest first: *out (n of them), freed by store_key_list_free. */
int store_key_list(struct store *st, struct store_key **out, size_t *n, char *err,
                   size_t errlen);
void store_key_list_free(struct store_key *v, size_t n);
/* Number of live keys (0: the server should listen on loopback only). */
int store_key_count(struct store *st, int64_t *n, char *err, size_t errlen);

/* ---- files and blobs ----------------------------------------------------
 * Bytes are stored once per sha256 in a blob with a reference count. The
 * upload protocol, free of races with deletes:
 *   1. stream to a temporary file, fsync, rename it to a path unique to
 *      this upload (e.g. blobs/<sha256>.<file id>), fsync the directory;
 *   2. store_file_insert with that path: when a blob with that sha256
 *      already exists, the file row points at the existing blob and
 *      *dup is set: unlink the path you proposed;
 *   3. store_file_delete drops the row and, when it was the blob's last
 *      reference, the blob row, and hands back the blob's path to unlink.
 * A crash between 1 and 2 leaves an unreferenced file under blobs/:
 * store_blob_referenced tells a start-up sweep which ones to remove. */

struct store_file {
    char *id; /* "file-…" */
    char *owner;
    char *filename;
    char *purpose;
    int64_t bytes;
    char *sha256;    /* 64 lower-case hex digits */
    char *blob_path; /* where the bytes are */
    int64_t created_at;
    char *status;     /* "uploaded" | "processed" | "error" */
    char *validation; /* the validator's JSON report, or NULL */
};
void store_file_clear(struct store_file *f);

struct store_file_new {
    const char *owner, *filename, *purpose, *sha256, *blob_path, *status,
        *validation;
    int64_t bytes;
};

/* Inserts a file with a new id; *out is the stored row (blob_path is the
 * blob's, which differs from f->blob_path exactly when *dup = 1). */
int store_file_insert(struct store *st, const struct store_file_new *f,
                      struct store_file *out, int *dup, char *err, size_t errlen);
int store_file_get(struct store *st, const char *owner, const char *id,
                   struct store_file *out, char *err, size_t errlen);
/* Hard delete. unlink_path (size pathlen) receives the blob path to remove
 * once this returns, or "" when other files still reference the blob.
 * STORE_CONFLICT when a job that has not finished still names the file. */
int store_file_delete(struct store *st, const char *owner, const char *id,
                      char *unlink_path, size_t pathlen, char *err, size_t errlen);
/* 1 when some blob row has this path, else 0; -1 on error. */
int store_blob_referenced(struct store *st, const char *path, char *err, size_t errlen);

struct store_file_list {
    struct store_file *v;
    size_t n;
    int has_more;
};
void store_file_list_free(struct store_file_list *l);
/* Files of `owner`, newest first; purpose NULL = any. */
int store_file_list(struct store *st, const char *owner, const char *purpose,
                    const char *after, int limit, struct store_file_list *out,
                    char *err, size_t errlen);

/* ---- jobs ---------------------------------------------------------------- */

enum store_job_status {
    JOB_VALIDATING_FILES,
    JOB_QUEUED,
    JOB_RUNNING,
    JOB_PAUSING,
    JOB_PAUSED,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_CANCELLED,
    JOB_STATUS_COUNT
};
#define JOB_MASK(s) (1u << (s))
#define JOB_MASK_TERMINAL \
    (JOB_MASK(JOB_SUCCEEDED) | JOB_MASK(JOB_FAILED) | JOB_MASK(JOB_CANCELLED))

/* "validating_files", "queued", ... (the API's spelling). */
const char *store_job_status_name(enum store_job_status s);
/* The status named `name`, or -1. */
int store_job_status_parse(const char *name);

struct store_job {
    char *id; /* "ftjob-…" */
    char *owner;
    char *model;
    char *training_file;
    char *validation_file; /* or NULL */
    char *method;          /* JSON */
    char *hyperparameters; /* JSON, or NULL */
    int64_t seed;
    char *suffix;   /* or NULL */
    char *metadata; /* JSON object, or NULL */
    enum store_job_status status;
    int64_t created_at;
    int64_t started_at;       /* 0 = null */
    int64_t finished_at;      /* 0 = null */
    int64_t estimated_finish; /* 0 = null */
    char *error;              /* JSON {code, message, param}, or NULL */
    char *fine_tuned_model;   /* or NULL */
    int64_t trained_tokens;   /* -1 = null */
    char *resume_checkpoint;  /* checkpoint id to resume from, or NULL */
    int restart_count;        /* times store_recover_running re-queued it */
};
void store_job_clear(struct store_job *j);

struct store_job_new {
    const char *owner, *model, *training_file, *validation_file, *method,
        *hyperparameters, *suffix, *metadata;
    int64_t seed;
    enum store_job_status status; /* validating_files or queued */
};

/* The fields a transition may set; NULL / 0 / -1 leave a field as it is. */
struct store_job_update {
    int64_t started_at, finished_at, estimated_finish; /* 0: unchanged */
    int64_t trained_tokens;                            /* -1: unchanged */
    const char *error, *fine_tuned_model, *resume_checkpoint;
};
#define STORE_JOB_UPDATE_NONE {0, 0, 0, -1, NULL, NULL, NULL}

/* An event to append: level "info" | "warn" | "error", type "message" |
 * "metrics", data JSON or NULL. */
struct store_event_new {
    const char *level, *message, *type, *data;
};

/* Inserts a job with a new id. The caller checks that the files exist and
 * belong to the owner (store_file_get): jobs do not hold files by foreign
 * key, so a finished job's files can be deleted. */
int store_job_insert(struct store *st, const struct store_job_new *j,
                     struct store_job *out, char *err, size_t errlen);
/* owner NULL: any owner (for the worker; never for a request). */
int store_job_get(struct store *st, const char *owner, const char *id,
                  struct store_job *out, char *err, size_t errlen);
/* The oldest queued job (any owner): STORE_OK, or STORE_NOTFOUND. */
int store_job_next_queued(struct store *st, struct store_job *out, char *err,
                          size_t errlen);

/* Compare-and-set: when job `id` is in a status in `allowed` (a JOB_MASK
 * union), sets `to`, applies `upd` (may be NULL) and, when `ev` is not NULL,
 * appends that event, all in one transaction; *event_id (may be NULL)
 * receives its id. STORE_OK when it changed, STORE_CONFLICT (nothing
 * written; *current, may be NULL, receives the status) when the status was
 * not allowed, STORE_NOTFOUND when there is no such job. The same
 * transaction queues the webhook deliveries of the change
 * (store_webhooks.h). */
int store_job_transition(struct store *st, const char *id, unsigned allowed,
                         enum store_job_status to, const struct store_job_update *upd,
                         const struct store_event_new *ev, int64_t *event_id,
                         enum store_job_status *current, char *err, size_t errlen);

struct store_job_list {
    struct store_job *v;
    size_t n;
    int has_more;
};
void store_job_list_free(struct store_job_list *l);
/* Jobs of `owner`, newest first. status_mask 0 = any status; metadata NULL
 * = no filter, else a JSON object whose every key/value pair must be in the
 * job's metadata (the API's metadata[k]=v filters). */
int store_job_list(struct store *st, const char *owner, unsigned status_mask,
                   const char *metadata, const char *after, int limit,
                   struct store_job_list *out, char *err, size_t errlen);

/* Jobs of every owner by status: counts[s] for each enum store_job_status. */
int store_job_count_by_status(struct store *st, int64_t counts[JOB_STATUS_COUNT], char *err,
                              size_t errlen);

/* Sets estimated_finish (unix s) of a running or pausing job; no event, no
 * status change. STORE_CONFLICT when the job is in another status. */
int store_job_set_estimate(struct store *st, const char *id, int64_t estimated_finish,
                           char *err, size_t errlen);

/* Start-up recovery: no job stays running or pausing without a worker.
 * For each such job, its checkpoints are tried newest first with
 * verify(checkpoint, arg) (NULL: every checkpoint verifies; the callback
 * must not call the store). With a verified checkpoint and fewer than
 * max_restarts earlier restarts, a running job becomes queued and a pausing
 * one paused, with resume_checkpoint set and restart_count + 1; otherwise
 * the job becomes failed with error.code "server_restart". Each change
 * appends an event in the same transaction. Idempotency reservations left
 * unfinished (their request died with the process) are dropped too, so
 * this is the server's start-up step, not something a second process such
 * as `owlore keys` may call. *n_resumed and *n_failed (may be NULL)
 * receive the counts. */
struct store_checkpoint;
int store_recover_running(struct store *st, int max_restarts,
                          int (*verify)(const struct store_checkpoint *c, void *arg),
                          void *arg, int *n_resumed, int *n_failed, char *err,
                          size_t errlen);

/* ---- events ---------------------------------------------------------------
 * Each job's events are numbered 1, 2, 3... in commit order: the same ids
 * serve the JSON list, SSE (Last-Event-ID) and webhooks. Every commit that
 * appends one calls event_notify_committed(job id) (event_notify.h). */

struct store_event {
    int64_t id;
    char *job_id;
    int64_t created_at;
    char *level, *message, *type;
    char *data; /* JSON, or NULL */
};

/* Appends an event to job `job_id`; *id (may be NULL) receives its id.
 * STORE_NOTFOUND when there is no such job. */
int store_event_append(struct store *st, const char *job_id,
                       const struct store_event_new *ev, int64_t *id, char *err,
                       size_t errlen);

struct store_event_list {
    struct store_event *v;
    size_t n;
    int has_more;
};
void store_event_list_free(struct store_event_list *l);
/* Oldest first, events with id > after_id (for SSE resume). */
int store_event_list_after(struct store *st, const char *job_id, int64_t after_id,
                           int limit, struct store_event_list *out, char *err,
                           size_t errlen);
/* Newest first, events with id < before_id (0: from the newest), for the
 * JSON list with the `after` cursor. */
int store_event_list_before(struct store *st, const char *job_id, int64_t before_id,
                            int limit, struct store_event_list *out, char *err,
                            size_t errlen);

/* ---- checkpoints ------------------------------------------------------- */

struct store_checkpoint {
    char *id; /* "ftckpt-…" */
    char *job_id;
    int64_t step;
    char *metrics; /* JSON, or NULL */
    char *sha256;
    int64_t bytes;
    char *path; /* the checkpoint directory */
    int64_t created_at;
};
void store_checkpoint_clear(struct store_checkpoint *c);

struct store_checkpoint_new {
    const char *job_id, *metrics, *sha256, *path;
    int64_t step, bytes;
};
/* Inserts a checkpoint with a new id, and in the same transaction queues
 * its webhook deliveries (store_webhooks.h); STORE_ERROR when the job is
 * missing. */
int store_checkpoint_insert(struct store *st, const struct store_checkpoint_new *c,
                            struct store_checkpoint *out, char *err, size_t errlen);
int store_checkpoint_get(struct store *st, const char *job_id, const char *id,
                         struct store_checkpoint *out, char *err, size_t errlen);

struct store_checkpoint_list {
    struct store_checkpoint *v;
    size_t n;
    int has_more;
};
void store_checkpoint_list_free(struct store_checkpoint_list *l);
/* Checkpoints of a job, newest first. */
int store_checkpoint_list(struct store *st, const char *job_id, const char *after,
                          int limit, struct store_checkpoint_list *out, char *err,
                          size_t errlen);

/* ---- idempotency keys ----------------------------------------------------
 * For POSTs with an Idempotency-Key: store_idem_begin reserves (owner, key)
 * for a request whose hash (e.g. SHA-256 hex of method, path and body) is
 * request_hash, then the handler runs and store_idem_finish records the
 * response; store_idem_release drops a reservation whose request failed in
 * a way worth retrying. Reservations left by a crash are dropped by
 * store_recover_running. */

struct store_idem {
    int status; /* HTTP status; 0 while the first request is still running */
    char *body;
};
void store_idem_clear(struct store_idem *r);

/* STORE_OK: reserved, run the request. STORE_EXISTS: replay *out.
 * STORE_CONFLICT: the key was used for a different request (out->status
 * -1) or its first request is still running (out->status 0). */
int store_idem_begin(struct store *st, const char *owner, const char *key,
                     const char *request_hash, struct store_idem *out, char *err,
                     size_t errlen);
int store_idem_finish(struct store *st, const char *owner, const char *key, int status,
                      const char *body, char *err, size_t errlen);
int store_idem_release(struct store *st, const char *owner, const char *key, char *err,
                       size_t errlen);
/* Drops records created before `before` (unix s); *n (may be NULL) counts. */
int store_idem_prune(struct store *st, int64_t before, int64_t *n, char *err,
                     size_t errlen);

#endif
