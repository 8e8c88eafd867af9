/*
 * test_checkpoints_api.c: checkpoint downloads and the model list end to
 * end. The real server runs in-process on a free loopback port with a store
 * in a temporary data directory, the job worker started, and stories260K as
 * the default model; a small lisa job trains to succeeded. Checked: its
 * checkpoint's model.safetensors downloads whole with an ETag equal to the
 * store's sha256 and to the sha256 of the bytes; a byte range is a 206 with
 * Content-Range and exactly those bytes, a suffix range too; a range past
 * the end is 416; If-None-Match with the ETag is 304; another file of the
 * checkpoint (config.json) downloads; a file name outside the checkpoint's
 * is 400 naming "file"; unknown job and checkpoint ids are 404; /v1/models
 * lists the default model and the job's fine-tuned model.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <strings.h>
#include <unistd.h>

#include "digest.h"
#include "http.h"
#include "queue.h"
#include "service.h"
#include "store.h"
#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-ckpt-XXXXXX";
static uint16_t port;

/* A reply: status, raw body, and the ETag and Content-Range headers. */
struct reply {
    long status;
    struct buf body;
    char etag[128], content_range[128];
};

/* One request; `header` (may be NULL) is sent as an extra request header.
 * Free r->body.p afterwards. */
static void request(const char *method, const char *path, const char *header, const char *json,
                    const char *file, struct reply *r)
{
    struct buf head = {0};
    memset(r, 0, sizeof *r);
    r->status = test_fetch(port, method, path, NULL, header, NULL, json, file, &r->body, &head,
                           NULL);
    test_header(head.p, "ETag", r->etag, sizeof r->etag);
    test_header(head.p, "Content-Range", r->content_range, sizeof r->content_range);
    free(head.p);
}

/* A JSON request: the parsed reply lands in *out (decref it). */
static long call(const char *method, const char *path, const char *json, const char *file,
                 json_t **out)
{
    return test_call(port, method, path, NULL, json, file, out);
}

static char job_id[64], ckpt_id[64], ckpt_sha[SHA256_HEX_LEN], ft_model[256];

/* Trains the job and records its newest checkpoint. */
static void test_train(void)
{
    json_t *r;
    char body[1024], path[256];
    test_begin("checkpoints_train_job");
    long st = call("POST", "/v1/files", NULL,
                   test_shared_path("data/datasets/alpaca/alpaca_tiny.json"), &r);
    CHECK_MSG(st == 200, "upload %ld", st);
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"suffix\": \"ck\", \"method\": {\"type\": \"lisa\", "
             "\"lisa\": {\"hyperparameters\": {\"sequence_length\": 128, \"batch_size\": 4, "
             "\"n_epochs\": 1, \"max_steps\": 2, \"save_every\": 2, \"gamma\": 1}}}}",
             str(r, "id"));
    json_decref(r);
    st = call("POST", "/v1/fine_tuning/jobs", body, NULL, &r);
    CHECK_MSG(st == 200, "create %ld", st);
    snprintf(job_id, sizeof job_id, "%s", str(r, "id"));
    json_decref(r);
    json_t *j = test_wait_job(port, NULL, job_id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s",
              j ? str(j, "status") : "timeout");
    snprintf(ft_model, sizeof ft_model, "%s", str(j, "fine_tuned_model"));
    json_decref(j);
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/checkpoints", job_id);
    CHECK(call("GET", path, NULL, NULL, &r) == 200);
    json_t *c = json_array_get(json_object_get(r, "data"), 0);
    snprintf(ckpt_id, sizeof ckpt_id, "%s", str(c, "id"));
    snprintf(ckpt_sha, sizeof ckpt_sha, "%s", str(c, "sha256"));
    CHECK(ckpt_id[0] && strlen(ckpt_sha) == 64);
    json_decref(r);
    test_end();
}

static void content_path(char *out, size_t n, const char *job, const char *ckpt, const char *q)
{
    snprintf(out, n, "/v1/fine_tuning/jobs/%s/checkpoints/%s/content%s", job, ckpt, q);
}

static void test_download(void)
{
    char path[512], etag[80], hex[SHA256_HEX_LEN], want[128];
    unsigned char d[SHA256_BYTES];
    struct reply r, p;
    test_begin("checkpoints_download_range_etag");
    content_path(path, sizeof path, job_id, ckpt_id, "");
    request("GET", path, NULL, NULL, NULL, &r);
    CHECK_MSG(r.status == 200 && r.body.n > 1000, "status %ld, %zu bytes", r.status, r.body.n);
    snprintf(etag, sizeof etag, "\"%s\"", ckpt_sha);
    CHECK_MSG(!strcmp(r.etag, etag), "etag %s", r.etag);
    CHECK(sha256_buffer(r.body.p, r.body.n, d) == 0);
    digest_hex(d, sizeof d, hex);
    CHECK(!strcmp(hex, ckpt_sha));

    request("GET", path, "Range: bytes=100-199", NULL, NULL, &p);
    snprintf(want, sizeof want, "bytes 100-199/%zu", r.body.n);
    CHECK_MSG(p.status == 206 && !strcmp(p.content_range, want), "%ld %s", p.status,
              p.content_range);
    CHECK(p.body.n == 100 && memcmp(p.body.p, r.body.p + 100, 100) == 0);
    free(p.body.p);

    request("GET", path, "Range: bytes=-10", NULL, NULL, &p);
    snprintf(want, sizeof want, "bytes %zu-%zu/%zu", r.body.n - 10, r.body.n - 1, r.body.n);
    CHECK_MSG(p.status == 206 && !strcmp(p.content_range, want), "%ld %s", p.status,
              p.content_range);
    CHECK(p.body.n == 10 && memcmp(p.body.p, r.body.p + r.body.n - 10, 10) == 0);
    free(p.body.p);

    char range[64];
    snprintf(range, sizeof range, "Range: bytes=%zu-", r.body.n);
    request("GET", path, range, NULL, NULL, &p);
    snprintf(want, sizeof want, "bytes */%zu", r.body.n);
    CHECK_MSG(p.status == 416 && !strcmp(p.content_range, want), "%ld %s", p.status,
              p.content_range);
    free(p.body.p);

    char inm[128];
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    request("GET", path, inm, NULL, NULL, &p);
    CHECK_MSG(p.status == 304 && p.body.n == 0, "status %ld", p.status);
    free(p.body.p);
    free(r.body.p);

    json_t *j;
    content_path(path, sizeof path, job_id, ckpt_id, "?file=config.json");
    CHECK(call("GET", path, NULL, NULL, &j) == 200 && json_is_object(j));
    json_decref(j);
    test_end();
}

static void test_refusals(void)
{
    char path[512];
    json_t *j;
    test_begin("checkpoints_bad_file_unknown_ids");
    content_path(path, sizeof path, job_id, ckpt_id, "?file=../owlore.db");
    CHECK(call("GET", path, NULL, NULL, &j) == 400);
    CHECK(!strcmp(str(json_object_get(j, "error"), "param"), "file"));
    json_decref(j);
    content_path(path, sizeof path, "ftjob-nope", ckpt_id, "");
    CHECK(call("GET", path, NULL, NULL, &j) == 404);
    json_decref(j);
    content_path(path, sizeof path, job_id, "ftckpt-nope", "");
    CHECK(call("GET", path, NULL, NULL, &j) == 404);
    json_decref(j);
    test_end();
}

static void test_models(void)
{
    json_t *j, *m;
    size_t i;
    int base = 0, ft = 0;
    test_begin("models_list");
    CHECK(call("GET", "/v1/models", NULL, NULL, &j) == 200);
    CHECK(!strcmp(str(j, "object"), "list"));
    json_array_foreach(json_object_get(j, "data"), i, m) {
        CHECK(!strcmp(str(m, "object"), "model"));
        CHECK(json_is_integer(json_object_get(m, "created")));
        CHECK(str(m, "owned_by")[0]);
        base += !strcmp(str(m, "id"), "stories260K.bin");
        ft += !strcmp(str(m, "id"), ft_model);
    }
    CHECK_MSG(base == 1 && ft == 1, "base %d, fine-tuned %d (%s)", base, ft, ft_model);
    json_decref(j);
    test_end();
}

int main(void)
{
    static struct test_server server;
    port = test_server_start(&server, dir, 1, 0);
    if (!port)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_train();
    test_download();
    test_refusals();
    test_models();
    curl_global_cleanup();
    test_server_stop(&server, dir);
    return test_finish();
}
