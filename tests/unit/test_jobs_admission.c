/*
 * test_jobs_admission.c: job creation refused by the planner, list filters
 * and metadata limits, on the real server in-process (stories260K). Checked:
 * with a memory limit below the planner's predicted peak a job is 422
 * insufficient_memory naming the prediction and the prediction with the
 * memory-saving switches it leaves off (all of them when none fits, only
 * bf16 weights under a limit a byte short), and accepted once the limit
 * allows it; GET /v1/fine_tuning/jobs?status=... and metadata[k]=v filter
 * the list (an unknown status is 400 naming `status`); metadata that breaks
 * OpenAI's limits is 400 naming `metadata`; a body that is not
 * application/json is 415.
 */
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "load.h"
#include "plan.h"
#include "recipe.h"
#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-admit-XXXXXX";
static uint16_t port;
static struct test_server srv;
static char file_id[64];

static long create(const char *extra, json_t **out)
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", %s \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 2, "
             "\"max_steps\": 1, \"gamma\": 1}}}}",
             file_id, extra);
    return test_call(port, "POST", "/v1/fine_tuning/jobs", NULL, body, NULL, out);
}

static size_t count(const char *query)
{
    char path[256];
    json_t *r;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs?%s", query);
    long st = test_call(port, "GET", path, NULL, NULL, NULL, &r);
    size_t n = st == 200 ? json_array_size(json_object_get(r, "data")) : (size_t)-1;
    json_decref(r);
    return n;
}

static void test_admission(void)
{
    json_t *r;
    test_begin("jobs_admission_by_planner");
    long st = test_upload(port, NULL, "data/datasets/alpaca/alpaca_tiny.json", file_id,
                          sizeof file_id);
    CHECK(st == 200);
    srv.svc.memory_limit = 1e5; /* 100 kB: less than stories260K's weights */
    st = create("", &r);
    json_t *e = json_object_get(r, "error");
    CHECK_MSG(st == 422 && !strcmp(str(e, "code"), "insufficient_memory"), "status %ld", st);
    CHECK(strstr(str(e, "message"), "planner predicts a peak of") != NULL);
    CHECK_MSG(strstr(str(e, "message"), "With bf16_weights: 1, update_in_backward: 1 and "
                     "activation_checkpointing: 1 it predicts ") != NULL, "%s",
              str(e, "message"));
    json_decref(r);
    /* a limit the job misses by a byte: bf16 weights alone bring it under */
    struct model_config c;
    struct recipe rc;
    struct plan p;
    char err[256];
    CHECK(model_read_config(srv.model, &c, err, sizeof err) == 0);
    recipe_defaults(&rc, METHOD_LISA);
    rc.seq_len = 64, rc.batch_size = 2, rc.gamma = 1;
    plan_compute(&c, &rc, 2, 64, PLAN_FP32, &p);
    srv.svc.memory_limit = p.total_peak - 1;
    st = create("", &r);
    e = json_object_get(r, "error");
    CHECK_MSG(st == 422 && strstr(str(e, "message"), "With bf16_weights: 1 it predicts ") &&
                  strstr(str(e, "message"), "GiB, within the limit. "),
              "status %ld: %s", st, str(e, "message"));
    json_decref(r);
    CHECK(count("limit=100") == 0);
    srv.svc.memory_limit = 1e12;
    st = create("", &r);
    CHECK(st == 200);
    json_decref(r);
    test_end();
}

static void test_filters(void)
{
    json_t *r;
    char id[64];
    test_begin("jobs_list_filters_and_metadata_limits");
    CHECK(create("\"metadata\": {\"team\": \"nlp\", \"run\": \"a\"},", &r) == 200);
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    CHECK(create("\"metadata\": {\"team\": \"vision\"},", &r) == 200);
    json_decref(r);
    json_decref(test_wait_job(port, NULL, id, "succeeded", 600));
    CHECK(count("metadata[team]=nlp") == 1);
    CHECK(count("metadata[team]=nlp&metadata[run]=a") == 1);
    CHECK(count("metadata[team]=nlp&metadata[run]=b") == 0);
    CHECK(count("metadata[team]=vision") == 1);
    CHECK(count("status=cancelled") == 0);
    size_t all = count("limit=100");
    CHECK(all == 3);
    CHECK(count("status=succeeded,queued,running,failed,validating_files,pausing,paused,"
                "cancelled") == all);
    CHECK(count("status=bogus") == (size_t)-1);
    long st = test_call(port, "GET", "/v1/fine_tuning/jobs?status=bogus", NULL, NULL, NULL, &r);
    CHECK(st == 400 && !strcmp(str(json_object_get(r, "error"), "param"), "status"));
    json_decref(r);
    CHECK(create("\"metadata\": {\"n\": 1},", &r) == 400);
    CHECK(!strcmp(str(json_object_get(r, "error"), "param"), "metadata"));
    json_decref(r);
    char big[1200];
    int n = snprintf(big, sizeof big, "\"metadata\": {\"k\": \"");
    memset(big + n, 'v', 600);
    snprintf(big + n + 600, sizeof big - (size_t)n - 600, "\"},");
    CHECK(create(big, &r) == 400);
    json_decref(r);
    test_end();
}

/* A JSON endpoint refuses other media types: a cross-site form or
 * text/plain "simple request" cannot create a job. */
static void test_media_type(void)
{
    json_t *r;
    char body[256];
    test_begin("jobs_json_media_type_required");
    snprintf(body, sizeof body, "{\"training_file\": \"%s\"}", file_id);
    long st = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL,
                          "Content-Type: text/plain", body, NULL, &r);
    CHECK_MSG(st == 415, "text/plain %ld", st);
    json_decref(r);
    st = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL,
                     "Content-Type: application/x-www-form-urlencoded", body, NULL, &r);
    CHECK_MSG(st == 415, "form %ld", st);
    json_decref(r);
    size_t before = count("limit=100");
    st = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL,
                     "Content-Type: application/json; charset=utf-8", "{\"training_file\": 1}",
                     NULL, &r);
    CHECK_MSG(st == 400, "json with charset %ld", st);
    json_decref(r);
    CHECK(count("limit=100") == before);
    test_end();
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    port = test_server_start(&srv, dir, 1, 0);
    if (!port)
        return 1;
    test_admission();
    test_filters();
    test_media_type();
    test_server_stop(&srv, dir);
    curl_global_cleanup();
    return test_finish();
}
