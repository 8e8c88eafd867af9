/*
 * test_layers_metrics.c: GET /v1/fine_tuning/jobs/{id}/layers, GET /metrics
 * and the base models of GET /v1/models, on the real server in-process
 * training stories260K. Checked: before training the layers reply has the
 * method's settings and no data; after an owlore job (gamma 1, K 2, 6 steps)
 * it has one entry per block with a non-null outlier ratio, probabilities
 * that sum to 1, 3 periods, and times sampled that add up to periods x
 * gamma; a lisa job has null ratios and uniform probabilities; /metrics is
 * Prometheus text without a key, counting jobs by status and replies by
 * code; a model file under <data dir>/models/ is listed.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-layers-XXXXXX";
static uint16_t port;
static char file_id[64];

/* Creates a job of `method` with hyperparameters hp, returns its layers
 * reply before (*before) and after training. */
static json_t *run_job(const char *method, const char *hp, json_t **before)
{
    char body[1024], id[64], path[160];
    json_t *r;
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"%s\", \"%s\": "
             "{\"hyperparameters\": {%s}}}}",
             file_id, method, method, hp);
    long st = test_call(port, "POST", "/v1/fine_tuning/jobs", NULL, body, NULL, &r);
    CHECK_MSG(st == 200, "create %ld", st);
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/layers", id);
    st = test_call(port, "GET", path, NULL, NULL, NULL, before);
    CHECK_MSG(st == 200, "layers before %ld", st);
    json_t *j = test_wait_job(port, NULL, id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s",
              j ? str(j, "status") : "timeout");
    json_decref(j);
    st = test_call(port, "GET", path, NULL, NULL, NULL, &r);
    CHECK_MSG(st == 200, "layers %ld", st);
    return r;
}

static void test_layers(void)
{
    json_t *r, *before, *after;
    test_begin("layers_owlore_and_lisa");
    long st = test_upload(port, NULL, "data/datasets/alpaca/alpaca_tiny.json", file_id,
                          sizeof file_id);
    CHECK(st == 200);

    after = run_job("owlore", "\"sequence_length\": 64, \"batch_size\": 2, \"max_steps\": 6, "
                              "\"gamma\": 1, \"sampling_interval\": 2, \"rank\": 4",
                    &before);
    CHECK(!strcmp(str(before, "object"), "list"));
    CHECK(json_integer_value(json_object_get(before, "gamma")) == 1);
    CHECK(json_integer_value(json_object_get(before, "sampling_interval")) == 2);
    json_t *data = json_object_get(after, "data");
    size_t n = json_array_size(data);
    CHECK_MSG(n == 5, "blocks %zu", n); /* stories260K has 5 blocks */
    double psum = 0;
    long times = 0;
    int ratios = 1;
    for (size_t i = 0; i < n; i++) {
        json_t *b = json_array_get(data, i);
        psum += json_number_value(json_object_get(b, "probability"));
        times += (long)json_integer_value(json_object_get(b, "times_sampled"));
        ratios &= json_is_number(json_object_get(b, "outlier_ratio"));
        CHECK(json_integer_value(json_object_get(b, "block")) == (json_int_t)i);
    }
    CHECK_NEAR(psum, 1.0, 1e-9);
    CHECK(ratios);
    CHECK_MSG(json_integer_value(json_object_get(after, "periods")) == 3, "periods %lld",
              (long long)json_integer_value(json_object_get(after, "periods")));
    CHECK(times == 3);
    json_decref(before);
    json_decref(after);

    after = run_job("lisa", "\"sequence_length\": 64, \"batch_size\": 2, \"max_steps\": 4, "
                            "\"gamma\": 2, \"sampling_interval\": 1",
                    &before);
    data = json_object_get(after, "data");
    CHECK(json_array_size(data) == 5);
    times = 0;
    for (size_t i = 0; i < json_array_size(data); i++) {
        json_t *b = json_array_get(data, i);
        CHECK(json_is_null(json_object_get(b, "outlier_ratio")));
        CHECK_NEAR(json_number_value(json_object_get(b, "probability")), 0.2, 1e-9);
        times += (long)json_integer_value(json_object_get(b, "times_sampled"));
    }
    CHECK(json_integer_value(json_object_get(after, "periods")) == 4 && times == 8);
    json_decref(before);
    json_decref(after);
    CHECK(test_call(port, "GET", "/v1/fine_tuning/jobs/ftjob-nope/layers", NULL, NULL, NULL,
                    &r) == 404);
    json_decref(r);
    test_end();
}

static void test_metrics(void)
{
    char url[128];
    struct buf b = {0};
    long status = 0;
    char *ctype = NULL;
    test_begin("metrics_prometheus_text");
    CURL *c = curl_easy_init();
    snprintf(url, sizeof url, "http://127.0.0.1:%u/metrics", (unsigned)port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CHECK(curl_easy_perform(c) == CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    CHECK(status == 200);
    CHECK(ctype && !strncmp(ctype, "text/plain", 10));
    CHECK(b.p && strstr(b.p, "owlore_jobs{status=\"succeeded\"} 2\n"));
    CHECK(b.p && strstr(b.p, "owlore_queue_depth 0\n"));
    CHECK(b.p && strstr(b.p, "owlore_http_replies_total{code=\"200\"} "));
    CHECK(b.p && strstr(b.p, "owlore_http_replies_total{code=\"404\"} 1\n"));
    CHECK(b.p && strstr(b.p, "# TYPE owlore_process_peak_resident_memory_bytes gauge\n"));
    curl_easy_cleanup(c);
    free(b.p);
    test_end();
}

static void test_models_dir(void)
{
    char path[256];
    json_t *r;
    test_begin("models_lists_models_dir");
    snprintf(path, sizeof path, "%s/models", dir);
    CHECK(mkdir(path, 0700) == 0);
    snprintf(path, sizeof path, "%s/models/base-a.gguf", dir);
    FILE *f = fopen(path, "w");
    CHECK(f && fclose(f) == 0);
    CHECK(test_call(port, "GET", "/v1/models", NULL, NULL, NULL, &r) == 200);
    int found = 0;
    json_t *data = json_object_get(r, "data");
    for (size_t i = 0; i < json_array_size(data); i++)
        found |= !strcmp(str(json_array_get(data, i), "id"), "base-a.gguf");
    CHECK(found);
    /* two succeeded jobs: two fine-tuned models, plus the default and base-a */
    CHECK(json_array_size(data) == 4);
    json_decref(r);
    test_end();
}

int main(void)
{
    struct test_server srv;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    port = test_server_start(&srv, dir, 1, 0);
    if (!port)
        return 1;
    test_layers();
    test_metrics();
    test_models_dir();
    test_server_stop(&srv, dir);
    curl_global_cleanup();
    return test_finish();
}
