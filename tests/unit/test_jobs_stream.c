/*
 * test_jobs_stream.c: live job events and pause/resume end to end. The real
 * server runs in-process on a free loopback port with a store in a
 * temporary data directory, the job worker started, and stories260K as the
 * default model. Checked: a training job's server-sent events arrive with
 * ids 1, 2, 3... without gaps and the stream closes by itself after the
 * terminal event; a reconnect with Last-Event-ID gets the next id first; a
 * running job pauses (pausing, then paused), resumes and succeeds, its
 * metrics steps continuing from the pause checkpoint instead of restarting;
 * pause and resume in a wrong status are 409.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "http.h"
#include "queue.h"
#include "service.h"
#include "store.h"
#include "test.h"
#include "test_server.h"

#define STEPS 200

static char dir[] = "/tmp/owlore-stream-XXXXXX";
static uint16_t port;
static char file_id[64];

/* A JSON request; the parsed reply lands in *out (decref it). */
static long call(const char *method, const char *path, const char *json, const char *file,
                 json_t **out)
{
    return test_call(port, method, path, NULL, json, file, out);
}

/* Polls job `id` until its status is in `want` ("a|b|c"), or 120 s without
 * progress. */
static json_t *wait_status(const char *id, const char *want)
{
    return test_wait_job(port, NULL, id, want, 1200);
}

static void create_job(char *id, size_t n)
{
    char body[1024];
    json_t *r;
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 1, "
             "\"n_epochs\": 100, \"max_steps\": %d, \"save_every\": 1000, \"gamma\": 1, "
             "\"learning_rate\": 0.001}}}}",
             file_id, STEPS);
    long st = call("POST", "/v1/fine_tuning/jobs", body, NULL, &r);
    CHECK_MSG(st == 200, "create %ld", st);
    snprintf(id, n, "%s", str(r, "id"));
    json_decref(r);
}

/* The ids of the "id: <n>" lines of an SSE body, in order; returns count.
 * *last_data receives the start of the last "data: " payload. */
static int sse_ids(const char *text, long *ids, int max, const char **last_data)
{
    int n = 0;
    *last_data = NULL;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, "id: ", 4) == 0 && n < max)
            ids[n++] = strtol(p + 4, NULL, 10);
        else if (strncmp(p, "data: ", 6) == 0)
            *last_data = p + 6;
    }
    return n;
}

static void test_stream(void)
{
    char id[64], path[256], hdr[64];
    long ids[4096];
    const char *last;
    CURLcode crc;
    test_begin("jobs_events_sse");
    create_job(id, sizeof id);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?stream=true", id);
    struct buf b = {0};
    long st = test_fetch(port, "GET", path, NULL, NULL, NULL, NULL, NULL, &b, NULL, &crc);
    CHECK_MSG(st == 200 && crc == CURLE_OK, "status %ld curl %d", st, (int)crc);
    int n = sse_ids(b.p ? b.p : "", ids, 4096, &last);
    CHECK_MSG(n >= STEPS + 2, "%d events", n);
    for (int i = 0; i < n; i++)
        CHECK_MSG(ids[i] == i + 1, "event %d has id %ld", i, ids[i]);
    CHECK(last && strstr(last, "successfully completed"));
    json_t *j = wait_status(id, "succeeded");
    CHECK(j != NULL);
    json_decref(j);
    free(b.p);

    /* resume mid-way with Last-Event-ID (and Accept), then with ?after= */
    long mid = n / 2;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events", id);
    snprintf(hdr, sizeof hdr, "Last-Event-ID: %ld", mid);
    b = (struct buf){0};
    st = test_fetch(port, "GET", path, NULL, hdr, "Accept: text/event-stream", NULL, NULL, &b, NULL,
                    &crc);
    int m = sse_ids(b.p ? b.p : "", ids, 4096, &last);
    CHECK_MSG(st == 200 && crc == CURLE_OK && m == n - mid && m > 0 && ids[0] == mid + 1,
              "resume: %d events, first %ld", m, m ? ids[0] : -1);
    free(b.p);
    b = (struct buf){0};
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?stream=true&after=ftevent-%ld",
             id, (long)n - 1);
    test_fetch(port, "GET", path, NULL, NULL, NULL, NULL, NULL, &b, NULL, &crc);
    m = sse_ids(b.p ? b.p : "", ids, 4096, &last);
    CHECK_MSG(m == 1 && ids[0] == n, "after: %d events", m);
    free(b.p);
    test_end();
}

static void test_pause_resume(void)
{
    char id[64], path[256];
    json_t *r;
    test_begin("jobs_pause_resume");
    create_job(id, sizeof id);
    json_t *j = wait_status(id, "running");
    CHECK(j != NULL);
    json_decref(j);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/resume", id);
    CHECK(call("POST", path, NULL, NULL, &r) == 409);
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/pause", id);
    long st = call("POST", path, NULL, NULL, &r);
    CHECK_MSG(st == 200 && !strcmp(str(r, "status"), "pausing"), "pause %ld %s", st,
              str(r, "status"));
    json_decref(r);
    j = wait_status(id, "paused|succeeded|failed");
    CHECK_MSG(j && !strcmp(str(j, "status"), "paused"), "status %s", j ? str(j, "status") : "-");
    json_decref(j);
    CHECK(call("POST", path, NULL, NULL, &r) == 409);
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/resume", id);
    st = call("POST", path, NULL, NULL, &r);
    CHECK_MSG(st == 200 && !strcmp(str(r, "status"), "queued"), "resume %ld", st);
    json_decref(r);
    j = wait_status(id, "succeeded|failed|cancelled");
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s",
              j ? str(j, "status") : "-");
    json_decref(j);

    /* metrics steps, oldest first, never go back: resumed, not restarted */
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?limit=1000", id);
    CHECK(call("GET", path, NULL, NULL, &r) == 200);
    json_t *data = json_object_get(r, "data");
    long prev = 0, n_metrics = 0, paused_msgs = 0;
    for (size_t i = json_array_size(data); i-- > 0;) {
        json_t *e = json_array_get(data, i);
        if (strstr(str(e, "message"), "paused at step"))
            paused_msgs++;
        if (strcmp(str(e, "type"), "metrics") != 0)
            continue;
        long step = (long)json_integer_value(json_object_get(json_object_get(e, "data"), "step"));
        CHECK_MSG(step == prev + 1, "step %ld after %ld", step, prev);
        prev = step;
        n_metrics++;
    }
    CHECK_MSG(n_metrics == STEPS && prev == STEPS && paused_msgs == 1,
              "%ld metrics, last step %ld, %ld pauses", n_metrics, prev, paused_msgs);
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/pause", id);
    CHECK(call("POST", path, NULL, NULL, &r) == 409);
    json_decref(r);
    test_end();
}

static void test_pause_queued(void)
{
    char a[64], b[64], path[256];
    json_t *r;
    test_begin("jobs_pause_queued");
    create_job(a, sizeof a);
    create_job(b, sizeof b);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/pause", b);
    long st = call("POST", path, NULL, NULL, &r);
    CHECK_MSG(st == 200 && !strcmp(str(r, "status"), "paused"), "pause queued %ld %s", st,
              str(r, "status"));
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/cancel", b);
    CHECK(call("POST", path, NULL, NULL, &r) == 200);
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/cancel", a);
    CHECK(call("POST", path, NULL, NULL, &r) == 200);
    json_decref(r);
    json_t *j = wait_status(a, "cancelled");
    CHECK(j != NULL);
    json_decref(j);
    test_end();
}

int main(void)
{
    static struct test_server server;
    test_timeout_s = 180; /* the event streams last the whole training */
    port = test_server_start(&server, dir, 1, 0);
    if (!port)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    long code = test_upload(port, NULL, "data/datasets/alpaca/alpaca_tiny.json", file_id,
                            sizeof file_id);
    if (code != 200) {
        fprintf(stderr, "upload: %ld\n", code);
        return 1;
    }
    test_stream();
    test_pause_resume();
    test_pause_queued();
    curl_global_cleanup();
    test_server_stop(&server, dir);
    return test_finish();
}
