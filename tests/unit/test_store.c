/*
 * test_store.c: the SQLite state store (server/store.h).
 *
 * Each case opens a fresh database in a temporary folder: schema creation
 * and reopen, round trips of keys, files, jobs, events, checkpoints and
 * idempotency records, cursor pagination, tenant isolation, status
 * compare-and-set, start-up recovery of running jobs, four threads
 * appending events to one job, and a child process killed (SIGKILL) in the
 * middle of a transaction (the database must stay whole, without its rows).
 */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "test.h"

static char dir[64];
static char err[512];
static int db_count;

/* A new database path in the temporary folder. */
static const char *db_path(void)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/s%d.db", dir, db_count++);
    return p;
}

static struct store *open_new(char *path, size_t n)
{
    snprintf(path, n, "%s", db_path());
    struct store *st = store_open(path, err, sizeof err);
    CHECK_MSG(st != NULL, "store_open: %s", err);
    return st;
}

/* Runs one SQL statement on the file directly; the first column of the
 * first row as an integer (or -1). */
static long long raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    long long v = -1;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
        if (sqlite3_step(s) == SQLITE_ROW)
            v = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    return v;
}

/* 1 when the bytes of `needle` occur in file `path`. */
static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = strlen(needle), cap = 1 << 20, len;
    char *buf = malloc(cap);
    int found = 0;
    while (buf && (len = fread(buf, 1, cap, f)) > 0 && !found)
        found = memmem(buf, len, needle, n) != NULL;
    free(buf);
    fclose(f);
    return found;
}

static void add_file(struct store *st, const char *owner, const char *sha, const char *path,
                     struct store_file *out, int *dup)
{
    struct store_file_new f = {owner, "train.jsonl", "fine-tune", sha, path, "processed",
                               "{\"valid\":true}", 1234};
    int rc = store_file_insert(st, &f, out, dup, err, sizeof err);
    CHECK_MSG(rc == STORE_OK, "store_file_insert: %d %s", rc, err);
}

static void add_job(struct store *st, const char *owner, const char *metadata,
                    struct store_job *out)
{
    struct store_job_new j = {owner, "stories260K", "file-x", NULL,
                              "{\"type\":\"owlore\"}", "{\"rank\":8}", "mine", metadata,
                              42, JOB_QUEUED};
    int rc = store_job_insert(st, &j, out, err, sizeof err);
    CHECK_MSG(rc == STORE_OK, "store_job_insert: %d %s", rc, err);
}

static void test_schema(void)
{
    char path[128];
    test_begin("store_schema_create_reopen");
    struct store *st = open_new(path, sizeof path);
    CHECK(store_check(st, err, sizeof err) == STORE_OK);
    store_close(st);
    CHECK(raw_int(path, "PRAGMA user_version") == store_schema_version());
    CHECK(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                        "name IN ('api_keys','blobs','files','jobs','events','checkpoints',"
                        "'idempotency')") == 7);
    st = store_open(path, err, sizeof err);
    CHECK_MSG(st != NULL, "reopen: %s", err);
    store_close(st);
    /* journal mode WAL is persistent in the file */
    sqlite3 *db;
    sqlite3_stmt *s;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(s) == SQLITE_ROW &&
          strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0);
    sqlite3_finalize(s);
    /* a file from a newer binary is refused */
    CHECK(sqlite3_exec(db, "PRAGMA user_version = 999", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK(store_open(path, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "newer") != NULL, "err = %s", err);
    test_end();
}

static void test_keys(void)
{
    char path[128], key[STORE_KEY_LEN], other[STORE_KEY_LEN];
    struct store_key k, got;
    int64_t n = -1;
    test_begin("store_api_keys");
    struct store *st = open_new(path, sizeof path);
    CHECK(store_key_count(st, &n, err, sizeof err) == STORE_OK && n == 0);
    CHECK(store_key_create(st, "acme", "ci", key, &k, err, sizeof err) == STORE_OK);
    CHECK(strncmp(key, "sk-owl-", 7) == 0 && strlen(key) == STORE_KEY_LEN - 1);
    CHECK(strncmp(k.id, "key-", 4) == 0 && strcmp(k.owner, "acme") == 0);
    CHECK(store_key_create(st, "globex", NULL, other, &got, err, sizeof err) == STORE_OK);
    CHECK(strcmp(key, other) != 0 && got.name == NULL);
    store_key_clear(&got);
    CHECK(store_key_count(st, &n, err, sizeof err) == STORE_OK && n == 2);

    CHECK(store_key_lookup(st, key, &got, err, sizeof err) == STORE_OK);
    CHECK(got.owner && strcmp(got.owner, "acme") == 0 && strcmp(got.id, k.id) == 0);
    CHECK(got.name && strcmp(got.name, "ci") == 0);
    store_key_clear(&got);
    CHECK(store_key_lookup(st, other, &got, err, sizeof err) == STORE_OK &&
          strcmp(got.owner, "globex") == 0);
    store_key_clear(&got);
    /* near misses: last character changed, truncated, empty */
    char bad[STORE_KEY_LEN];
    memcpy(bad, key, sizeof bad);
    bad[STORE_KEY_LEN - 2] = bad[STORE_KEY_LEN - 2] == 'a' ? 'b' : 'a';
    CHECK(store_key_lookup(st, bad, &got, err, sizeof err) == STORE_NOTFOUND);
    bad[20] = 0;
    CHECK(store_key_lookup(st, bad, &got, err, sizeof err) == STORE_NOTFOUND);
    CHECK(store_key_lookup(st, "", &got, err, sizeof err) == STORE_NOTFOUND);

    CHECK(store_key_revoke(st, k.id, err, sizeof err) == STORE_OK);
    CHECK(store_key_revoke(st, k.id, err, sizeof err) == STORE_NOTFOUND);
    CHECK(store_key_lookup(st, key, &got, err, sizeof err) == STORE_NOTFOUND);
    CHECK(store_key_count(st, &n, err, sizeof err) == STORE_OK && n == 1);
    store_key_clear(&k);
    store_close(st);
    /* the plaintext never reaches the disk */
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", path);
    CHECK(!file_contains(path, key + 7) && !file_contains(wal, key + 7));
    CHECK(!file_contains(path, other + 7) && !file_contains(wal, other + 7));
    test_end();
}

static void test_files(void)
{
    char path[128], unlink_path[256];
    const char *sha_a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const char *sha_b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    struct store_file f1, f2, f3, got;
    int dup = -1;
    test_begin("store_files_blobs_pagination");
    struct store *st = open_new(path, sizeof path);
    add_file(st, "acme", sha_a, "blobs/a.1", &f1, &dup);
    CHECK(dup == 0 && strncmp(f1.id, "file-", 5) == 0 && strlen(f1.id) == 31);
    CHECK(f1.bytes == 1234 && strcmp(f1.sha256, sha_a) == 0 && f1.created_at > 0);
    CHECK(strcmp(f1.validation, "{\"valid\":true}") == 0 && strcmp(f1.status, "processed") == 0);
    /* same bytes again (another tenant): stored once */
    add_file(st, "globex", sha_a, "blobs/a.2", &f2, &dup);
    CHECK(dup == 1 && strcmp(f2.blob_path, "blobs/a.1") == 0);
    add_file(st, "acme", sha_b, "blobs/b.1", &f3, &dup);
    CHECK(dup == 0);

    CHECK(store_file_get(st, "acme", f1.id, &got, err, sizeof err) == STORE_OK);
    CHECK(strcmp(got.id, f1.id) == 0 && strcmp(got.filename, "train.jsonl") == 0 &&
          strcmp(got.purpose, "fine-tune") == 0 && strcmp(got.blob_path, "blobs/a.1") == 0);
    store_file_clear(&got);
    /* tenant isolation */
    CHECK(store_file_get(st, "globex", f1.id, &got, err, sizeof err) == STORE_NOTFOUND);
    CHECK(store_file_delete(st, "globex", f1.id, unlink_path, sizeof unlink_path, err,
                            sizeof err) == STORE_NOTFOUND);

    /* pagination: acme has f3 (newest) then f1 */
    struct store_file_list l;
    CHECK(store_file_list(st, "acme", NULL, NULL, 1, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 1 && l.has_more && strcmp(l.v[0].id, f3.id) == 0);
    store_file_list_free(&l);
    CHECK(store_file_list(st, "acme", NULL, f3.id, 1, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 1 && !l.has_more && strcmp(l.v[0].id, f1.id) == 0);
    store_file_list_free(&l);
    CHECK(store_file_list(st, "acme", "fine-tune", NULL, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 2 && !l.has_more);
    store_file_list_free(&l);
    CHECK(store_file_list(st, "acme", "batch", NULL, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 0 && !l.has_more);
    CHECK(store_file_list(st, "globex", NULL, f1.id, 10, &l, err, sizeof err) ==
          STORE_NOTFOUND);
    CHECK(store_file_list(st, "acme", NULL, NULL, 0, &l, err, sizeof err) == STORE_ERROR);

    /* a job that has not finished holds its file */
    struct store_job_new jn = {"acme", "m", f3.id, NULL, "{}", NULL, NULL, NULL, 1, JOB_QUEUED};
    struct store_job j;
    CHECK(store_job_insert(st, &jn, &j, err, sizeof err) == STORE_OK);
    CHECK(store_file_delete(st, "acme", f3.id, unlink_path, sizeof unlink_path, err,
                            sizeof err) == STORE_CONFLICT);
    CHECK(store_job_transition(st, j.id, JOB_MASK(JOB_QUEUED), JOB_CANCELLED, NULL, NULL,
                               NULL, NULL, err, sizeof err) == STORE_OK);
    CHECK(store_file_delete(st, "acme", f3.id, unlink_path, sizeof unlink_path, err,
                            sizeof err) == STORE_OK);
    CHECK(strcmp(unlink_path, "blobs/b.1") == 0);
    store_job_clear(&j);

    /* the shared blob goes when its last file goes */
    CHECK(store_blob_referenced(st, "blobs/a.1", err, sizeof err) == 1);
    CHECK(store_file_delete(st, "acme", f1.id, unlink_path, sizeof unlink_path, err,
                            sizeof err) == STORE_OK);
    CHECK(unlink_path[0] == 0);
    CHECK(store_file_get(st, "acme", f1.id, &got, err, sizeof err) == STORE_NOTFOUND);
    CHECK(store_file_delete(st, "globex", f2.id, unlink_path, sizeof unlink_path, err,
                            sizeof err) == STORE_OK);
    CHECK(strcmp(unlink_path, "blobs/a.1") == 0);
    CHECK(store_blob_referenced(st, "blobs/a.1", err, sizeof err) == 0);
    CHECK(store_blob_referenced(st, "blobs/a.2", err, sizeof err) == 0);
    store_file_clear(&f1);
    store_file_clear(&f2);
    store_file_clear(&f3);
    CHECK(store_check(st, err, sizeof err) == STORE_OK);
    store_close(st);
    test_end();
}

static void test_jobs(void)
{
    char path[128];
    struct store_job j[5], got;
    test_begin("store_jobs_roundtrip_list_filters");
    struct store *st = open_new(path, sizeof path);
    add_job(st, "acme", "{\"team\":\"nlp\",\"run\":\"1\"}", &j[0]);
    add_job(st, "acme", "{\"team\":\"cv\"}", &j[1]);
    add_job(st, "acme", NULL, &j[2]);
    add_job(st, "acme", "{\"team\":\"nlp\",\"run\":\"2\"}", &j[3]);
    add_job(st, "globex", "{\"team\":\"nlp\"}", &j[4]);
    CHECK(strncmp(j[0].id, "ftjob-", 6) == 0 && strcmp(j[0].id, j[1].id) != 0);

    CHECK(store_job_get(st, "acme", j[0].id, &got, err, sizeof err) == STORE_OK);
    CHECK(strcmp(got.model, "stories260K") == 0 && strcmp(got.training_file, "file-x") == 0);
    CHECK(got.validation_file == NULL && strcmp(got.method, "{\"type\":\"owlore\"}") == 0);
    CHECK(strcmp(got.hyperparameters, "{\"rank\":8}") == 0 && got.seed == 42);
    CHECK(strcmp(got.suffix, "mine") == 0 && got.status == JOB_QUEUED);
    CHECK(got.created_at > 0 && got.started_at == 0 && got.finished_at == 0);
    CHECK(got.error == NULL && got.fine_tuned_model == NULL && got.trained_tokens == -1);
    CHECK(got.restart_count == 0 && got.resume_checkpoint == NULL);
    store_job_clear(&got);
    /* tenant isolation; NULL owner is the worker's view */
    CHECK(store_job_get(st, "globex", j[0].id, &got, err, sizeof err) == STORE_NOTFOUND);
    CHECK(store_job_get(st, NULL, j[0].id, &got, err, sizeof err) == STORE_OK);
    store_job_clear(&got);
    CHECK(store_job_get(st, "acme", "ftjob-nope", &got, err, sizeof err) == STORE_NOTFOUND);

    /* pagination, newest first */
    struct store_job_list l;
    CHECK(store_job_list(st, "acme", 0, NULL, NULL, 2, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 2 && l.has_more && strcmp(l.v[0].id, j[3].id) == 0 &&
          strcmp(l.v[1].id, j[2].id) == 0);
    store_job_list_free(&l);
    CHECK(store_job_list(st, "acme", 0, NULL, j[2].id, 2, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 2 && !l.has_more && strcmp(l.v[0].id, j[1].id) == 0 &&
          strcmp(l.v[1].id, j[0].id) == 0);
    store_job_list_free(&l);
    CHECK(store_job_list(st, "globex", 0, NULL, j[2].id, 2, &l, err, sizeof err) ==
          STORE_NOTFOUND);

    /* filters: metadata pairs (all must match), status set */
    CHECK(store_job_list(st, "acme", 0, "{\"team\":\"nlp\"}", NULL, 10, &l, err,
                         sizeof err) == STORE_OK);
    CHECK(l.n == 2 && strcmp(l.v[0].id, j[3].id) == 0 && strcmp(l.v[1].id, j[0].id) == 0);
    store_job_list_free(&l);
    CHECK(store_job_list(st, "acme", 0, "{\"team\":\"nlp\",\"run\":\"1\"}", NULL, 10, &l,
                         err, sizeof err) == STORE_OK);
    CHECK(l.n == 1 && strcmp(l.v[0].id, j[0].id) == 0);
    store_job_list_free(&l);
    CHECK(store_job_list(st, "acme", 0, "{\"team\":\"ops\"}", NULL, 10, &l, err,
                         sizeof err) == STORE_OK);
    CHECK(l.n == 0);
    store_job_list_free(&l);
    CHECK(store_job_transition(st, j[1].id, JOB_MASK(JOB_QUEUED), JOB_RUNNING, NULL, NULL,
                               NULL, NULL, err, sizeof err) == STORE_OK);
    CHECK(store_job_list(st, "acme", JOB_MASK(JOB_RUNNING), NULL, NULL, 10, &l, err,
                         sizeof err) == STORE_OK);
    CHECK(l.n == 1 && strcmp(l.v[0].id, j[1].id) == 0 && l.v[0].status == JOB_RUNNING);
    store_job_list_free(&l);
    CHECK(store_job_list(st, "acme", JOB_MASK(JOB_RUNNING) | JOB_MASK(JOB_QUEUED), NULL,
                         NULL, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 4);
    store_job_list_free(&l);

    /* the queue: the oldest queued job of any owner */
    CHECK(store_job_next_queued(st, &got, err, sizeof err) == STORE_OK);
    CHECK(strcmp(got.id, j[0].id) == 0);
    store_job_clear(&got);

    CHECK(store_job_status_parse("pausing") == JOB_PAUSING);
    CHECK(store_job_status_parse("bogus") == -1);
    CHECK(strcmp(store_job_status_name(JOB_VALIDATING_FILES), "validating_files") == 0);
    for (int i = 0; i < 5; i++)
        store_job_clear(&j[i]);
    store_close(st);
    test_end();
}

static void test_transitions(void)
{
    char path[128];
    struct store_job j, got;
    enum store_job_status cur;
    int64_t eid = 0;
    test_begin("store_job_status_compare_and_set");
    struct store *st = open_new(path, sizeof path);
    add_job(st, "acme", NULL, &j);
    struct store_job_update up = STORE_JOB_UPDATE_NONE;
    up.started_at = 1700000000;
    struct store_event_new ev = {"info", "Fine-tuning job started", "message", NULL};
    CHECK(store_job_transition(st, j.id, JOB_MASK(JOB_QUEUED), JOB_RUNNING, &up, &ev, &eid,
                               &cur, err, sizeof err) == STORE_OK);
    CHECK(eid == 1 && cur == JOB_QUEUED);
    /* a second "start" loses: the status is no longer queued; nothing written */
    eid = 0;
    CHECK(store_job_transition(st, j.id, JOB_MASK(JOB_QUEUED), JOB_RUNNING, NULL, &ev, &eid,
                               &cur, err, sizeof err) == STORE_CONFLICT);
    CHECK(cur == JOB_RUNNING && eid == 0);
    struct store_event_list el;
    CHECK(store_event_list_after(st, j.id, 0, 10, &el, err, sizeof err) == STORE_OK);
    CHECK(el.n == 1);
    store_event_list_free(&el);
    /* success sets the result fields with its event in one transaction */
    up = (struct store_job_update)STORE_JOB_UPDATE_NONE;
    up.finished_at = 1700000100;
    up.trained_tokens = 5000;
    up.fine_tuned_model = "ft:stories260K:acme:mine:xyz";
    struct store_event_new done = {"info", "The job has successfully completed", "message",
                                   NULL};
    CHECK(store_job_transition(st, j.id, JOB_MASK(JOB_RUNNING), JOB_SUCCEEDED, &up, &done,
                               &eid, NULL, err, sizeof err) == STORE_OK);
    CHECK(eid == 2);
    CHECK(store_job_get(st, "acme", j.id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.status == JOB_SUCCEEDED && got.started_at == 1700000000 &&
          got.finished_at == 1700000100 && got.trained_tokens == 5000);
    CHECK(got.fine_tuned_model && strcmp(got.fine_tuned_model, up.fine_tuned_model) == 0);
    store_job_clear(&got);
    /* terminal: cancel refused */
    CHECK(store_job_transition(st, j.id, (unsigned)~JOB_MASK_TERMINAL, JOB_CANCELLED, NULL,
                               NULL, NULL, &cur, err, sizeof err) == STORE_CONFLICT);
    CHECK(cur == JOB_SUCCEEDED);
    CHECK(store_job_transition(st, "ftjob-none", JOB_MASK(JOB_QUEUED), JOB_RUNNING, NULL,
                               NULL, NULL, NULL, err, sizeof err) == STORE_NOTFOUND);
    store_job_clear(&j);
    store_close(st);
    test_end();
}

static void test_events(void)
{
    char path[128];
    struct store_job j;
    int64_t id = 0;
    test_begin("store_events_monotonic_after_before");
    struct store *st = open_new(path, sizeof path);
    add_job(st, "acme", NULL, &j);
    for (int i = 1; i <= 25; i++) {
        char msg[32], data[64];
        snprintf(msg, sizeof msg, "Step %d", i);
        snprintf(data, sizeof data, "{\"step\":%d,\"train_loss\":%.2f}", i, 3.0 / i);
        struct store_event_new ev = {"info", msg, "metrics", data};
        CHECK(store_event_append(st, j.id, &ev, &id, err, sizeof err) == STORE_OK);
        CHECK(id == i);
    }
    struct store_event_new ev = {"info", "x", "message", NULL};
    CHECK(store_event_append(st, "ftjob-none", &ev, &id, err, sizeof err) == STORE_NOTFOUND);

    struct store_event_list l;
    CHECK(store_event_list_after(st, j.id, 0, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 10 && l.has_more && l.v[0].id == 1 && l.v[9].id == 10);
    CHECK(strcmp(l.v[0].message, "Step 1") == 0 && strcmp(l.v[0].type, "metrics") == 0);
    CHECK(strcmp(l.v[0].data, "{\"step\":1,\"train_loss\":3.00}") == 0);
    CHECK(strcmp(l.v[0].job_id, j.id) == 0 && l.v[0].created_at > 0);
    store_event_list_free(&l);
    /* resume after Last-Event-ID 20 */
    CHECK(store_event_list_after(st, j.id, 20, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 5 && !l.has_more && l.v[0].id == 21 && l.v[4].id == 25);
    store_event_list_free(&l);
    CHECK(store_event_list_after(st, j.id, 25, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 0 && !l.has_more);
    store_event_list_free(&l);
    /* newest first with the `after` cursor */
    CHECK(store_event_list_before(st, j.id, 0, 3, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 3 && l.has_more && l.v[0].id == 25 && l.v[2].id == 23);
    store_event_list_free(&l);
    CHECK(store_event_list_before(st, j.id, 3, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 2 && !l.has_more && l.v[0].id == 2 && l.v[1].id == 1);
    store_event_list_free(&l);
    /* ids continue after reopen */
    store_close(st);
    st = store_open(path, err, sizeof err);
    CHECK(st != NULL);
    CHECK(store_event_append(st, j.id, &ev, &id, err, sizeof err) == STORE_OK && id == 26);
    store_job_clear(&j);
    store_close(st);
    test_end();
}

static void test_checkpoints(void)
{
    char path[128];
    struct store_job j, other;
    struct store_checkpoint c[3], got;
    test_begin("store_checkpoints");
    struct store *st = open_new(path, sizeof path);
    add_job(st, "acme", NULL, &j);
    add_job(st, "acme", NULL, &other);
    for (int i = 0; i < 3; i++) {
        struct store_checkpoint_new n = {j.id, "{\"step\":10,\"train_loss\":1.5}",
                                         "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
                                         "ckpt/step", (i + 1) * 10, 4096 + i};
        CHECK(store_checkpoint_insert(st, &n, &c[i], err, sizeof err) == STORE_OK);
    }
    CHECK(strncmp(c[0].id, "ftckpt-", 7) == 0 && c[2].step == 30 && c[2].bytes == 4098);
    CHECK(store_checkpoint_get(st, j.id, c[1].id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.step == 20 && strcmp(got.path, "ckpt/step") == 0 &&
          strcmp(got.metrics, "{\"step\":10,\"train_loss\":1.5}") == 0 && got.created_at > 0);
    store_checkpoint_clear(&got);
    /* only through its own job */
    CHECK(store_checkpoint_get(st, other.id, c[1].id, &got, err, sizeof err) ==
          STORE_NOTFOUND);
    struct store_checkpoint_list l;
    CHECK(store_checkpoint_list(st, j.id, NULL, 2, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 2 && l.has_more && l.v[0].step == 30 && l.v[1].step == 20);
    store_checkpoint_list_free(&l);
    CHECK(store_checkpoint_list(st, j.id, c[1].id, 2, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 1 && !l.has_more && l.v[0].step == 10);
    store_checkpoint_list_free(&l);
    CHECK(store_checkpoint_list(st, other.id, NULL, 5, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 0);
    struct store_checkpoint_new bad = {"ftjob-none", NULL, "00", "p", 1, 1};
    CHECK(store_checkpoint_insert(st, &bad, &got, err, sizeof err) == STORE_ERROR);
    for (int i = 0; i < 3; i++)
        store_checkpoint_clear(&c[i]);
    store_job_clear(&j);
    store_job_clear(&other);
    store_close(st);
    test_end();
}

/* Verifies every checkpoint but those whose step is 30. */
static int verify_not_30(const struct store_checkpoint *c, void *arg)
{
    (*(int *)arg)++;
    return c->step != 30;
}

static void test_recovery(void)
{
    char path[128];
    struct store_job a, b, p, q, done, got;
    test_begin("store_recover_running_on_reopen");
    struct store *st = open_new(path, sizeof path);
    add_job(st, "acme", NULL, &a);    /* running with checkpoints */
    add_job(st, "acme", NULL, &b);    /* running without */
    add_job(st, "acme", NULL, &p);    /* pausing with a checkpoint */
    add_job(st, "acme", NULL, &q);    /* queued: untouched */
    add_job(st, "acme", NULL, &done); /* succeeded: untouched */
    const unsigned from_q = JOB_MASK(JOB_QUEUED);
    CHECK(store_job_transition(st, a.id, from_q, JOB_RUNNING, NULL, NULL, NULL, NULL, err,
                               sizeof err) == STORE_OK);
    CHECK(store_job_transition(st, b.id, from_q, JOB_RUNNING, NULL, NULL, NULL, NULL, err,
                               sizeof err) == STORE_OK);
    CHECK(store_job_transition(st, p.id, from_q, JOB_PAUSING, NULL, NULL, NULL, NULL, err,
                               sizeof err) == STORE_OK);
    CHECK(store_job_transition(st, done.id, from_q, JOB_SUCCEEDED, NULL, NULL, NULL, NULL,
                               err, sizeof err) == STORE_OK);
    struct store_checkpoint c20, c30, cp;
    struct store_checkpoint_new n = {a.id, NULL, "dd", "ckpt/a20", 20, 1};
    CHECK(store_checkpoint_insert(st, &n, &c20, err, sizeof err) == STORE_OK);
    n.step = 30; /* newest, but fails verification: recovery falls back to 20 */
    n.path = "ckpt/a30";
    CHECK(store_checkpoint_insert(st, &n, &c30, err, sizeof err) == STORE_OK);
    n.job_id = p.id;
    n.step = 5;
    CHECK(store_checkpoint_insert(st, &n, &cp, err, sizeof err) == STORE_OK);
    /* an unfinished idempotency reservation, as a crash leaves it */
    struct store_idem r;
    CHECK(store_idem_begin(st, "acme", "k1", "h1", &r, err, sizeof err) == STORE_OK);
    store_close(st); /* "crash" */

    st = store_open(path, err, sizeof err);
    CHECK_MSG(st != NULL, "reopen: %s", err);
    int resumed = -1, failed = -1, calls = 0;
    CHECK(store_recover_running(st, 3, verify_not_30, &calls, &resumed, &failed, err,
                                sizeof err) == STORE_OK);
    CHECK_MSG(resumed == 2 && failed == 1, "resumed %d failed %d", resumed, failed);
    CHECK(calls == 3); /* a: 30 then 20; p: 5 */
    CHECK(store_job_get(st, "acme", a.id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.status == JOB_QUEUED && got.resume_checkpoint &&
          strcmp(got.resume_checkpoint, c20.id) == 0 && got.restart_count == 1);
    store_job_clear(&got);
    CHECK(store_job_get(st, "acme", b.id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.status == JOB_FAILED && got.error &&
          strstr(got.error, "\"code\":\"server_restart\"") && got.finished_at > 0);
    store_job_clear(&got);
    CHECK(store_job_get(st, "acme", p.id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.status == JOB_PAUSED && strcmp(got.resume_checkpoint, cp.id) == 0);
    store_job_clear(&got);
    CHECK(store_job_get(st, "acme", q.id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.status == JOB_QUEUED && got.restart_count == 0);
    store_job_clear(&got);
    CHECK(store_job_get(st, "acme", done.id, &got, err, sizeof err) == STORE_OK);
    CHECK(got.status == JOB_SUCCEEDED);
    store_job_clear(&got);
    /* each change left an event */
    struct store_event_list l;
    CHECK(store_event_list_after(st, b.id, 0, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 1 && strcmp(l.v[0].level, "error") == 0);
    store_event_list_free(&l);
    CHECK(store_event_list_after(st, a.id, 0, 10, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 1 && l.v[0].data && strstr(l.v[0].data, c20.id));
    store_event_list_free(&l);
    /* the stale reservation is gone: the key can be used again */
    CHECK(store_idem_begin(st, "acme", "k1", "h1", &r, err, sizeof err) == STORE_OK);
    /* nothing left running; a second pass finds nothing; the restart cap holds */
    CHECK(store_recover_running(st, 3, NULL, NULL, &resumed, &failed, err, sizeof err) ==
          STORE_OK);
    CHECK(resumed == 0 && failed == 0);
    CHECK(store_job_transition(st, a.id, from_q, JOB_RUNNING, NULL, NULL, NULL, NULL, err,
                               sizeof err) == STORE_OK);
    CHECK(store_recover_running(st, 1, NULL, NULL, &resumed, &failed, err, sizeof err) ==
          STORE_OK);
    CHECK(resumed == 0 && failed == 1);
    struct store_job_list jl;
    CHECK(store_job_list(st, "acme", JOB_MASK(JOB_RUNNING) | JOB_MASK(JOB_PAUSING), NULL,
                         NULL, 10, &jl, err, sizeof err) == STORE_OK);
    CHECK(jl.n == 0);
    store_job_list_free(&jl);
    store_checkpoint_clear(&c20);
    store_checkpoint_clear(&c30);
    store_checkpoint_clear(&cp);
    store_job_clear(&a);
    store_job_clear(&b);
    store_job_clear(&p);
    store_job_clear(&q);
    store_job_clear(&done);
    store_close(st);
    test_end();
}

static void test_idempotency(void)
{
    char path[128];
    struct store_idem r;
    int64_t n = -1;
    test_begin("store_idempotency_replay");
    struct store *st = open_new(path, sizeof path);
    CHECK(store_idem_begin(st, "acme", "key-1", "hash-A", &r, err, sizeof err) == STORE_OK);
    /* a retry while the first request still runs */
    CHECK(store_idem_begin(st, "acme", "key-1", "hash-A", &r, err, sizeof err) ==
          STORE_CONFLICT);
    CHECK(r.status == 0);
    CHECK(store_idem_finish(st, "acme", "key-1", 200, "{\"id\":\"ftjob-1\"}", err,
                            sizeof err) == STORE_OK);
    CHECK(store_idem_finish(st, "acme", "key-1", 200, "{}", err, sizeof err) ==
          STORE_NOTFOUND);
    /* replay */
    CHECK(store_idem_begin(st, "acme", "key-1", "hash-A", &r, err, sizeof err) ==
          STORE_EXISTS);
    CHECK(r.status == 200 && r.body && strcmp(r.body, "{\"id\":\"ftjob-1\"}") == 0);
    store_idem_clear(&r);
    /* the same key with another body */
    CHECK(store_idem_begin(st, "acme", "key-1", "hash-B", &r, err, sizeof err) ==
          STORE_CONFLICT);
    CHECK(r.status == -1);
    /* keys are per owner */
    CHECK(store_idem_begin(st, "globex", "key-1", "hash-B", &r, err, sizeof err) == STORE_OK);
    CHECK(store_idem_release(st, "globex", "key-1", err, sizeof err) == STORE_OK);
    CHECK(store_idem_begin(st, "globex", "key-1", "hash-C", &r, err, sizeof err) == STORE_OK);
    /* pruning drops everything created before the cut-off */
    CHECK(store_idem_prune(st, INT64_MAX, &n, err, sizeof err) == STORE_OK && n == 2);
    CHECK(store_idem_begin(st, "acme", "key-1", "hash-B", &r, err, sizeof err) == STORE_OK);
    store_close(st);
    test_end();
}

struct worker {
    struct store *st;
    const char *job;
    int64_t ids[200];
    int rc;
};

static void *append_events(void *arg)
{
    struct worker *w = arg;
    char e[256];
    for (int i = 0; i < 200 && !w->rc; i++) {
        struct store_event_new ev = {"info", "tick", "metrics", "{\"x\":1}"};
        w->rc = store_event_append(w->st, w->job, &ev, &w->ids[i], e, sizeof e);
    }
    return NULL;
}

static void test_threads(void)
{
    char path[128];
    struct store_job j;
    struct worker w[4];
    pthread_t t[4];
    test_begin("store_four_threads_event_ids");
    struct store *st = open_new(path, sizeof path);
    add_job(st, "acme", NULL, &j);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){st, j.id, {0}, 0};
        CHECK(pthread_create(&t[i], NULL, append_events, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    static char seen[801];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 4; i++) {
        CHECK(w[i].rc == STORE_OK);
        for (int k = 0; k < 200; k++) {
            int64_t id = w[i].ids[k];
            CHECK_MSG(id >= 1 && id <= 800 && !seen[id], "thread %d id %lld", i, (long long)id);
            if (id >= 1 && id <= 800)
                seen[id] = 1;
            if (k)
                CHECK(id > w[i].ids[k - 1]);
        }
    }
    struct store_event_list l;
    CHECK(store_event_list_after(st, j.id, 0, 1000, &l, err, sizeof err) == STORE_OK);
    CHECK(l.n == 800 && l.v[0].id == 1 && l.v[799].id == 800);
    store_event_list_free(&l);
    store_job_clear(&j);
    store_close(st);
    test_end();
}

static void test_crash(void)
{
    char path[128];
    test_begin("store_crash_mid_transaction");
    struct store *st = open_new(path, sizeof path);
    store_close(st);
    pid_t pid = fork();
    if (pid == 0) {
        /* committed: one job; then a large transaction that dies unfinished
         * (a tiny page cache makes SQLite spill its pages into the WAL) */
        char e[256];
        struct store *cs = store_open(path, e, sizeof e);
        struct store_job cj;
        struct store_job_new n = {"acme", "m", "file-x", NULL, "{}", NULL, NULL, NULL, 7,
                                  JOB_QUEUED};
        if (!cs || store_job_insert(cs, &n, &cj, e, sizeof e) != STORE_OK)
            _exit(2);
        store_close(cs);
        sqlite3 *db;
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db, "PRAGMA cache_size = 2; BEGIN IMMEDIATE;", NULL, NULL, NULL))
            _exit(3);
        for (int i = 0; i < 2000; i++) {
            char sql[256];
            snprintf(sql, sizeof sql,
                     "INSERT INTO jobs(id, owner, model, training_file, method, seed, status, "
                     "created_at) VALUES ('ftjob-crash%d', 'acme', printf('%%.500c', 'x'), "
                     "'f', '{}', 1, 'running', 1)", i);
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
                _exit(4);
        }
        raise(SIGKILL); /* kill -9: no COMMIT, no close */
        _exit(5);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    /* the dead transaction's pages did reach the WAL */
    char wal[160];
    struct stat sb;
    snprintf(wal, sizeof wal, "%s-wal", path);
    CHECK_MSG(stat(wal, &sb) == 0 && sb.st_size > 256 * 1024, "WAL holds %lld bytes",
              (long long)sb.st_size);
    st = store_open(path, err, sizeof err);
    CHECK_MSG(st != NULL, "reopen: %s", err);
    CHECK_MSG(store_check(st, err, sizeof err) == STORE_OK, "integrity: %s", err);
    struct store_job_list l;
    CHECK(store_job_list(st, "acme", 0, NULL, NULL, 100, &l, err, sizeof err) == STORE_OK);
    CHECK_MSG(l.n == 1 && l.v[0].seed == 7, "jobs after the crash: %zu", l.n);
    store_job_list_free(&l);
    int resumed = -1, failed = -1;
    CHECK(store_recover_running(st, 3, NULL, NULL, &resumed, &failed, err, sizeof err) ==
          STORE_OK);
    CHECK(resumed == 0 && failed == 0);
    store_close(st);
    test_end();
}

/* Removes the temporary folder's files and the folder. */
static void cleanup(void)
{
    char p[160];
    for (int i = 0; i < db_count; i++) {
        static const char *const suffix[] = {"", "-wal", "-shm"};
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "%s/s%d.db%s", dir, i, suffix[k]);
            unlink(p);
        }
    }
    rmdir(dir);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/owlore-store-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_schema();
    test_keys();
    test_files();
    test_jobs();
    test_transitions();
    test_events();
    test_checkpoints();
    test_recovery();
    test_idempotency();
    test_threads();
    test_crash();
    cleanup();
    return test_finish();
}
