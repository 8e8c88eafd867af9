/*
 * test_jobs_api.c: the /v1/fine_tuning/jobs endpoints end to end. The real
 * server runs in-process on a free loopback port with a store in a
 * temporary data directory, the job worker started, and stories260K as the
 * default model. Checked: an alpaca dataset uploads and a lisa job trains
 * to succeeded; its events come newest first with metrics in decreasing
 * step order and a final message; its checkpoints are listed with the
 * sha256 of the model.safetensors on disk; bad requests are 400 naming the
 * field (unknown training_file, gamma too large, an unknown hyperparameter,
 * a model outside the allowed ones); a second job is cancelled. A lora job
 * (lora_rank/lora_alpha/lora_dropout, on bf16 base weights) trains to
 * succeeded, resolves its hyperparameters, and records checkpoints holding
 * the adapter alone (sha256 of adapter_model.safetensors, no
 * model.safetensors); lora_rank is refused for another method.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "digest.h"
#include "http.h"
#include "queue.h"
#include "service.h"
#include "store.h"
#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-jobs-XXXXXX";
static uint16_t port;

/* One request with an optional JSON body or file upload; the parsed reply
 * lands in *out (decref it), the status is returned. */
static long call(const char *method, const char *path, const char *json, const char *file,
                 json_t **out)
{
    return test_call(port, method, path, NULL, json, file, out);
}

static const char *error_param(json_t *o)
{
    return str(json_object_get(o, "error"), "param");
}

static char file_id[64];

static const char *job_body(char *out, size_t n, const char *file, const char *hp)
{
    snprintf(out, n,
             "{\"training_file\": \"%s\", \"suffix\": \"t\", \"method\": {\"type\": \"lisa\", "
             "\"lisa\": {\"hyperparameters\": {%s}}}}",
             file, hp);
    return out;
}

static void test_train_job(void)
{
    char body[1024], path[256];
    json_t *r;
    test_begin("jobs_create_train_events_checkpoints");
    long st = call("POST", "/v1/files", NULL,
                   test_shared_path("data/datasets/alpaca/alpaca_tiny.json"), &r);
    CHECK_MSG(st == 200 && !strcmp(str(r, "status"), "processed"), "upload %ld", st);
    /* token statistics with the default model's tokenizer */
    json_t *tokens = json_object_get(json_object_get(r, "validation"), "tokens");
    CHECK_MSG(json_is_object(tokens), "validation.tokens: %s",
              json_dumps(json_object_get(r, "validation"), JSON_COMPACT));
    snprintf(file_id, sizeof file_id, "%s", str(r, "id"));
    json_decref(r);

    job_body(body, sizeof body, file_id,
             "\"sequence_length\": 128, \"batch_size\": 4, \"n_epochs\": 1, \"max_steps\": 6, "
             "\"save_every\": 3, \"gamma\": 1, \"learning_rate\": 0.001, "
             "\"activation_checkpointing\": 1, \"bf16_weights\": 1, \"stagger_refreshes\": 0, "
             "\"update_in_backward\": 1, \"max_grad_norm\": 0.5, \"recompute_blocks\": 3, "
             "\"bf16_activations\": 1");
    st = call("POST", "/v1/fine_tuning/jobs", body, NULL, &r);
    CHECK_MSG(st == 200, "create %ld", st);
    CHECK(!strcmp(str(r, "object"), "fine_tuning.job"));
    CHECK(!strcmp(str(r, "status"), "queued"));
    json_t *hp = json_object_get(r, "hyperparameters"); /* as the job resolved them */
    CHECK(json_integer_value(json_object_get(hp, "sequence_length")) == 128);
    CHECK(json_integer_value(json_object_get(hp, "activation_checkpointing")) == 1);
    CHECK(json_integer_value(json_object_get(hp, "bf16_weights")) == 1);
    CHECK(json_integer_value(json_object_get(hp, "stagger_refreshes")) == 0);
    CHECK(json_integer_value(json_object_get(hp, "update_in_backward")) == 1);
    CHECK(json_real_value(json_object_get(hp, "max_grad_norm")) == 0.5);
    CHECK(json_integer_value(json_object_get(hp, "recompute_blocks")) == 3);
    CHECK(json_integer_value(json_object_get(hp, "bf16_activations")) == 1);
    char id[64];
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);

    json_t *j = test_wait_job(port, NULL, id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s error %s",
              j ? str(j, "status") : "timeout",
              j ? json_dumps(json_object_get(j, "error"), 0) : "");
    CHECK(json_integer_value(json_object_get(j, "trained_tokens")) == 6 * 4 * 128);
    CHECK(strstr(str(j, "fine_tuned_model"), id) != NULL);
    json_decref(j);

    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?limit=100", id);
    st = call("GET", path, NULL, NULL, &r);
    json_t *data = json_object_get(r, "data");
    CHECK(st == 200 && json_array_size(data) >= 8);
    json_t *first = json_array_get(data, 0);
    CHECK(!strcmp(str(first, "object"), "fine_tuning.job.event"));
    CHECK(strstr(str(first, "message"), "completed") != NULL);
    long last = 1000000, n_metrics = 0, n_backend = 0;
    size_t i;
    json_t *e;
    json_array_foreach(data, i, e) {
        /* the worker says where it trains (no GPU here) */
        n_backend += !strcmp(str(e, "message"), "Training on the cpu backend");
        if (strcmp(str(e, "type"), "metrics") != 0)
            continue;
        json_t *d = json_object_get(e, "data");
        long step = (long)json_integer_value(json_object_get(d, "step"));
        CHECK_MSG(step < last, "step %ld after %ld", step, last);
        CHECK(json_is_number(json_object_get(d, "train_loss")));
        CHECK(json_is_array(json_object_get(d, "sampled_blocks")));
        CHECK(json_object_get(d, "peak_rss_bytes") != NULL);
        last = step;
        n_metrics++;
    }
    CHECK_MSG(n_metrics == 6, "%ld metrics events", n_metrics);
    CHECK_MSG(n_backend == 1, "%ld backend events", n_backend);
    json_decref(r);

    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/checkpoints", id);
    st = call("GET", path, NULL, NULL, &r);
    data = json_object_get(r, "data");
    CHECK_MSG(st == 200 && json_array_size(data) == 2, "%zu checkpoints",
              json_array_size(data));
    json_array_foreach(data, i, e) {
        char file[512], hex[SHA256_HEX_LEN + 1] = "", err[256];
        unsigned char d[SHA256_BYTES];
        long step = (long)json_integer_value(json_object_get(e, "step_number"));
        snprintf(file, sizeof file, "%s/jobs/%s/checkpoint-%ld/model.safetensors", dir, id, step);
        CHECK(sha256_file(file, d, err, sizeof err) == 0);
        digest_hex(d, sizeof d, hex);
        CHECK_MSG(!strcmp(str(e, "sha256"), hex), "checkpoint %ld sha256", step);
        CHECK(step == (i == 0 ? 6 : 3));
    }
    json_decref(r);
    test_end();
}

static void test_lora_job(void)
{
    char body[1024], path[256];
    json_t *r;
    test_begin("jobs_lora_adapter_checkpoints");
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lora\", \"lora\": "
             "{\"hyperparameters\": {\"lora_rank\": 4, \"lora_alpha\": 8, "
             "\"lora_dropout\": 0.1, \"max_steps\": 3, \"batch_size\": 2, "
             "\"sequence_length\": 64, \"learning_rate\": 0.002, \"bf16_weights\": 1}}}}",
             file_id);
    long st = call("POST", "/v1/fine_tuning/jobs", body, NULL, &r);
    CHECK_MSG(st == 200, "create %ld", st);
    json_t *hp = json_object_get(r, "hyperparameters");
    CHECK(json_integer_value(json_object_get(hp, "lora_rank")) == 4);
    CHECK(json_integer_value(json_object_get(hp, "bf16_weights")) == 1);
    CHECK(json_number_value(json_object_get(hp, "lora_alpha")) == 8.0);
    char id[64];
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    json_t *j = test_wait_job(port, NULL, id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s error %s",
              j ? str(j, "status") : "timeout",
              j ? json_dumps(json_object_get(j, "error"), 0) : "");
    json_decref(j);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/checkpoints", id);
    st = call("GET", path, NULL, NULL, &r);
    json_t *data = json_object_get(r, "data");
    CHECK_MSG(st == 200 && json_array_size(data) == 1, "%zu checkpoints",
              json_array_size(data));
    json_t *e = json_array_get(data, 0);
    char file[512], hex[SHA256_HEX_LEN + 1] = "", err[256];
    unsigned char d[SHA256_BYTES];
    snprintf(file, sizeof file, "%s/jobs/%s/checkpoint-3/adapter_model.safetensors", dir, id);
    CHECK(sha256_file(file, d, err, sizeof err) == 0);
    digest_hex(d, sizeof d, hex);
    CHECK(e && !strcmp(str(e, "sha256"), hex));
    snprintf(file, sizeof file, "%s/jobs/%s/checkpoint-3/model.safetensors", dir, id);
    CHECK(access(file, F_OK) != 0);
    /* the default download is the adapter */
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/checkpoints/%s/content", id,
             str(e, "id"));
    json_t *body_json;
    CHECK(call("GET", path, NULL, NULL, &body_json) == 200);
    json_decref(body_json);
    json_decref(r);
    job_body(body, sizeof body, file_id, "\"lora_rank\": 4");
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK(!strcmp(error_param(r), "lora_rank"));
    json_decref(r);
    test_end();
}

/* POST body as a job: a 400 naming param, whose message holds message (NULL:
 * any) and whose type is invalid_request_error. */
static void expect_refused(const char *body, const char *param, const char *message)
{
    json_t *r;
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK_MSG(!strcmp(error_param(r), param), "param %s, want %s", error_param(r), param);
    CHECK(!strcmp(str(json_object_get(r, "error"), "type"), "invalid_request_error"));
    CHECK_MSG(!message || strstr(str(json_object_get(r, "error"), "message"), message),
              "message \"%s\", want \"%s\"", str(json_object_get(r, "error"), "message"),
              message);
    json_decref(r);
}

static void test_refusals(void)
{
    char body[1024];
    json_t *r;
    test_begin("jobs_bad_requests");
    expect_refused(job_body(body, sizeof body, "file-nope", ""), "training_file", NULL);
    job_body(body, sizeof body, file_id, "\"gamma\": 99, \"sequence_length\": 128");
    expect_refused(body, "gamma", NULL);
    expect_refused(job_body(body, sizeof body, file_id, "\"activation_checkpointing\": 2"),
                   "activation_checkpointing", NULL);
    expect_refused(job_body(body, sizeof body, file_id, "\"bf16_weights\": 2"), "bf16_weights",
                   NULL);
    expect_refused(job_body(body, sizeof body, file_id, "\"stagger_refreshes\": 2"),
                   "stagger_refreshes", "stagger_refreshes must be 0 or 1, got 2");
    expect_refused(job_body(body, sizeof body, file_id, "\"recompute_blocks\": 9"),
                   "recompute_blocks", "recompute_blocks must lie in [0, 5]");
    expect_refused(job_body(body, sizeof body, file_id,
                            "\"activation_checkpointing\": 1, \"bf16_activations\": 1"),
                   "bf16_activations", "recomputes all 5; set recompute_blocks below 5");
    expect_refused(job_body(body, sizeof body, file_id, "\"max_grad_norm\": -0.5"),
                   "max_grad_norm", "max_grad_norm (clip) must be a number >= 0");
    snprintf(body, sizeof body, "{\"training_file\": \"%s\", \"method\": {\"type\": \"owlore\", "
             "\"owlore\": {\"hyperparameters\": {\"update_in_backward\": 1}}}}", file_id);
    expect_refused(body, "update_in_backward", "already streams its GaLore gradients");
    /* ids and names of 4-byte characters that the messages' %.64s and the
     * param's %.63s cut mid-character: still a 400 with valid UTF-8 */
    char wide[400] = "", hp[600];
    for (int i = 0; i < 40; i++)
        strcat(wide, i % 5 == 4 ? " " : "\xF0\x9D\x95\xBF");
    snprintf(body, sizeof body, "{\"training_file\": \"%s\"}", wide);
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK(!strcmp(error_param(r), "training_file"));
    json_decref(r);
    snprintf(hp, sizeof hp, "\"%s\": 1", wide);
    job_body(body, sizeof body, file_id, hp);
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK(strncmp(error_param(r), "\xF0\x9D\x95\xBF", 4) == 0);
    json_decref(r);
    job_body(body, sizeof body, file_id, "\"bogus\": 1");
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK(!strcmp(error_param(r), "bogus"));
    json_decref(r);
    job_body(body, sizeof body, file_id, "\"learning_rate\": \"fast\"");
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK(!strcmp(error_param(r), "learning_rate"));
    json_decref(r);
    snprintf(body, sizeof body, "{\"training_file\": \"%s\", \"model\": \"/etc/passwd\"}",
             file_id);
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 400);
    CHECK(!strcmp(error_param(r), "model"));
    json_decref(r);
    CHECK(call("GET", "/v1/fine_tuning/jobs/ftjob-nope", NULL, NULL, &r) == 404);
    json_decref(r);
    test_end();
}

static void test_cancel(void)
{
    char body[1024], path[128], id[64];
    json_t *r;
    test_begin("jobs_cancel");
    job_body(body, sizeof body, file_id, "\"sequence_length\": 128, \"batch_size\": 4");
    CHECK(call("POST", "/v1/fine_tuning/jobs", body, NULL, &r) == 200);
    snprintf(id, sizeof id, "%s", str(r, "id"));
    json_decref(r);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/cancel", id);
    CHECK(call("POST", path, NULL, NULL, &r) == 200);
    json_decref(r);
    json_t *j = test_wait_job(port, NULL, id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "cancelled"), "status %s",
              j ? str(j, "status") : "timeout");
    json_decref(j);
    CHECK(call("POST", path, NULL, NULL, &r) == 409);
    json_decref(r);
    CHECK(call("GET", "/v1/fine_tuning/jobs?limit=1", NULL, NULL, &r) == 200);
    CHECK(json_array_size(json_object_get(r, "data")) == 1 &&
          json_is_true(json_object_get(r, "has_more")));
    json_decref(r);
    test_end();
}

int main(void)
{
    static struct test_server server;
    port = test_server_start(&server, dir, 1, 0);
    if (!port)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_train_job();
    test_lora_job();
    test_refusals();
    test_cancel();
    curl_global_cleanup();
    test_server_stop(&server, dir);
    return test_finish();
}
