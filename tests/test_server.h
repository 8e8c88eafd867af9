/*
 * test_server.h: the real HTTP service, started in-process on a free
 * loopback port over a fresh data directory, for the API tests; and the
 * small pieces every API test needs (a growing reply buffer for libcurl, a
 * string field of a JSON reply).
 *
 * With jobs, the service also runs the training worker, with stories260K
 * from the shared data as its default model and the outlier cache inside
 * the data directory.
 */
#ifndef OWLORE_TEST_SERVER_H
#define OWLORE_TEST_SERVER_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        (jobs && queue_start(&t->svc, err, sizeof err) != 0)) {
        fprintf(stderr, "%s\n", err);
        return 0;
    }
    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.port = 0;
    cfg.threads = 2;
    if (max_upload)
        cfg.max_upload = max_upload;
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

/* o[key] as a string, "" when absent. */
static inline const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

#endif
