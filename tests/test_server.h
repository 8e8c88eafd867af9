/*
 * test_server.h: the real HTTP service, started in-process on a free
 * loopback port over a fresh data directory, for the API tests; and the
 * small pieces every API test needs (a growing reply buffer for libcurl,
 * one request with its JSON or raw reply, a string field of a JSON reply, a
 * reply header, polling a job until it reaches a status).
 *
 * With jobs, the service also runs the training worker, with stories260K
 * from the shared data as its default model (whose tokenizer gives uploads
 * their token statistics) and the outlier cache inside the data directory.
 */
#ifndef OWLORE_TEST_SERVER_H
#define OWLORE_TEST_SERVER_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "http.h"
#include "queue.h"
#include "service.h"
#include "store.h"
#include "test.h"

struct test_server {
    struct store *st;
    struct service svc;      /* published by service_init: lives as long as this */
    struct http_server *srv;
    int jobs;
    char model[4096];
};

/* The per-IP connection limit of the next test_server_start (many
 * concurrent clients); 0 keeps the default. */
static unsigned test_server_max_per_ip;

/* Start on dir, a mkdtemp template ("/tmp/owlore-x-XXXXXX", filled in).
 * max_upload 0 keeps the default. Returns the port, or 0 after printing why. */
static inline uint16_t test_server_start(struct test_server *t, char *dir, int jobs,
                                         size_t max_upload)
{
    char err[512], db[512], cache[600];
    memset(t, 0, sizeof *t);
    if (!mkdtemp(dir))
        return 0;
    snprintf(db, sizeof db, "%s/owlore.db", dir);
    t->st = store_open(db, err, sizeof err);
    t->svc = (struct service){.store = t->st, .data_dir = dir};
    t->jobs = jobs;
    if (jobs) {
        snprintf(cache, sizeof cache, "%s/cache", dir);
        setenv("OWLORE_CACHE_DIR", cache, 1);
        /* test_shared_path's buffer is reused by every call: keep a copy */
        snprintf(t->model, sizeof t->model, "%s",
                 test_shared_path("data/models/stories260K/stories260K.bin"));
        t->svc.default_model = t->model;
    }
    if (!t->st || service_init(&t->svc, err, sizeof err) != 0 ||
        (jobs && service_load_tokenizer(&t->svc, err, sizeof err) != 0) ||
        (jobs && queue_start(&t->svc, err, sizeof err) != 0)) {
        fprintf(stderr, "%s\n", err);
        return 0;
    }
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.port = 0;
    cfg.threads = 2;
    cfg.authenticate = auth_request;
    if (max_upload)
        cfg.max_upload = max_upload;
    if (test_server_max_per_ip)
        cfg.max_per_ip = test_server_max_per_ip;
    t->srv = http_server_start(&cfg, err, sizeof err);
    if (!t->srv) {
        fprintf(stderr, "%s\n", err);
        return 0;
    }
    return http_server_port(t->srv);
}

/* Stop everything and remove the data directory. */
static inline void test_server_stop(struct test_server *t, const char *dir)
{
    char cmd[600];
    http_server_stop(t->srv);
    if (t->jobs)
        queue_stop();
    service_free_tokenizer(&t->svc);
    store_close(t->st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* A reply body growing as libcurl delivers it (NUL-terminated). */
struct buf {
    char *p;
    size_t n;
};

static inline size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct buf *b = ud;
    char *q = realloc(b->p, b->n + sz * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->n, p, sz * n);
    b->p = q;
    b->n += sz * n;
    b->p[b->n] = '\0';
    return sz * n;
}

/* The libcurl timeout of every request below, in seconds; 0 keeps 30.
 * A test whose replies take longer (event streams) sets it in main. */
static long test_timeout_s;

/* One request to the test server on `port`, the general form: `key` (may
 * be NULL) goes as a bearer token, `h1` and `h2` (may be NULL) as extra
 * "Name: value" headers, `json` (may be NULL) as the body (as
 * application/json unless h1 or h2 sets the Content-Type), or `file` (may
 * be NULL) as a multipart fine-tune upload; a POST with neither sends an
 * empty body. The path goes as is (no "/../" folding). The raw body lands
 * in *body (free body->p), the raw reply headers in *head when head is not
 * NULL (free head->p), the transfer's result in *rc when rc is not NULL;
 * the status is returned. */
static inline long test_fetch(uint16_t port, const char *method, const char *path,
                              const char *key, const char *h1, const char *h2,
                              const char *json, const char *file, struct buf *body,
                              struct buf *head, CURLcode *rc)
{
    char url[512], auth[128];
    long status = 0;
    CURL *c = curl_easy_init();
    curl_mime *mime = NULL;
    struct curl_slist *h = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, test_timeout_s ? test_timeout_s : 30L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (head) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, head);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (h1)
        h = curl_slist_append(h, h1);
    if (h2)
        h = curl_slist_append(h, h2);
    if (json) {
        if (!(h1 && strncasecmp(h1, "Content-Type:", 13) == 0) &&
            !(h2 && strncasecmp(h2, "Content-Type:", 13) == 0))
            h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    } else if (file) {
        mime = curl_mime_init(c);
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, "purpose");
        curl_mime_data(p, "fine-tune", CURL_ZERO_TERMINATED);
        p = curl_mime_addpart(mime);
        curl_mime_name(p, "file");
        curl_mime_filedata(p, file);
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode res = curl_easy_perform(c);
    if (rc)
        *rc = res;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_mime_free(mime);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

/* One request (test_fetch without the second header): the parsed JSON
 * reply lands in *out (NULL when the body is not JSON; decref it); the
 * status is returned. */
static inline long test_call_h(uint16_t port, const char *method, const char *path,
                               const char *key, const char *header, const char *json,
                               const char *file, json_t **out)
{
    struct buf b = {0};
    long status = test_fetch(port, method, path, key, header, NULL, json, file, &b, NULL, NULL);
    *out = b.p ? json_loads(b.p, 0, NULL) : NULL;
    free(b.p);
    return status;
}

static inline long test_call(uint16_t port, const char *method, const char *path,
                             const char *key, const char *json, const char *file, json_t **out)
{
    return test_call_h(port, method, path, key, NULL, json, file, out);
}

/* o[key] as a string, "" when absent. */
static inline const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Uploads the shared data file `rel` (test_shared_path) as a fine-tune
 * file, as `key` (may be NULL); its id into id ("" when none); the status
 * is returned. */
static inline long test_upload(uint16_t port, const char *key, const char *rel, char *id,
                               size_t n)
{
    json_t *r;
    long st = test_call(port, "POST", "/v1/files", key, NULL, test_shared_path(rel), &r);
    snprintf(id, n, "%s", str(r, "id"));
    json_decref(r);
    return st;
}

/* The value of header `name` (case-insensitive) in raw reply headers
 * `head` (NULL: none) into out; 0, or -1 when absent. */
static inline int test_header(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = head ? head : ""; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            p += nl + 1;
            while (*p == ' ')
                p++;
            size_t l = strcspn(p, "\r\n");
            snprintf(out, n, "%.*s", (int)(l < n ? l : n - 1), p);
            return 0;
        }
    }
    return -1;
}

/* The statuses a job ends in, for test_wait_job. */
#define TEST_JOB_FINAL "succeeded|failed|cancelled"

/* Polls GET /v1/fine_tuning/jobs/<id> (as `key`, may be NULL) every 100 ms
 * until its status is one of `want` ("a|b|c"): the job object (decref it).
 * NULL after `tries` polls in a row that saw neither that status nor a new
 * event of the job, so a job that keeps making progress is waited for
 * however slow the machine is (a loaded one, or under the sanitizers). */
static inline json_t *test_wait_job(uint16_t port, const char *key, const char *id,
                                    const char *want, int tries)
{
    char path[128], events[160], wants[128], pat[64], newest[128] = "";
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s", id);
    snprintf(events, sizeof events, "%s/events?limit=1", path);
    snprintf(wants, sizeof wants, "|%s|", want);
    for (int idle = 0; idle < tries; idle++) {
        json_t *j, *e;
        test_call(port, "GET", path, key, NULL, NULL, &j);
        snprintf(pat, sizeof pat, "|%s|", str(j, "status"));
        if (strstr(wants, pat))
            return j;
        json_decref(j);
        test_call(port, "GET", events, key, NULL, NULL, &e);
        const char *eid = str(json_array_get(json_object_get(e, "data"), 0), "id");
        if (strcmp(eid, newest) != 0) { /* progress: the newest event changed */
            snprintf(newest, sizeof newest, "%s", eid);
            idle = 0;
        }
        json_decref(e);
        usleep(100000);
    }
    return NULL;
}

#endif
