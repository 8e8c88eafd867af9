/*
 * test_idempotency.c: the Idempotency-Key header on POSTs, on the real
 * server in-process. Checked: an upload and a job creation retried with
 * the same key give the first reply again (same ids, one file and one job
 * stored); a 4xx reply is replayed too; the same key on a different
 * request is 422 naming Idempotency-Key; a malformed key is 400; requests
 * without the header are not deduplicated.
 */
#include <jansson.h>
#include <stdio.h>

#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-idem-XXXXXX";
static uint16_t port;

static size_t list_len(const char *path)
{
    json_t *r;
    test_call(port, "GET", path, NULL, NULL, NULL, &r);
    size_t n = json_array_size(json_object_get(r, "data"));
    json_decref(r);
    return n;
}

static void test_upload_and_job(void)
{
    json_t *a, *b;
    char body[512], id[64];
    const char *data = test_shared_path("data/datasets/alpaca/alpaca_tiny.json");
    test_begin("idempotency_upload_and_job_replayed");
    long s1 = test_call_h(port, "POST", "/v1/files", NULL, "Idempotency-Key: up-1", NULL, data, &a);
    long s2 = test_call_h(port, "POST", "/v1/files", NULL, "Idempotency-Key: up-1", NULL, data, &b);
    CHECK_MSG(s1 == 200 && s2 == 200, "uploads %ld %ld", s1, s2);
    CHECK(str(a, "id")[0] && !strcmp(str(a, "id"), str(b, "id")));
    CHECK(list_len("/v1/files") == 1);
    snprintf(id, sizeof id, "%s", str(a, "id"));
    json_decref(a);
    json_decref(b);

    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 2, "
             "\"max_steps\": 2, \"gamma\": 1}}}}",
             id);
    s1 = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL, "Idempotency-Key: job-1", body,
                     NULL, &a);
    s2 = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL, "Idempotency-Key: job-1", body,
                     NULL, &b);
    CHECK_MSG(s1 == 200 && s2 == 200, "creates %ld %ld", s1, s2);
    CHECK(str(a, "id")[0] && !strcmp(str(a, "id"), str(b, "id")));
    CHECK(list_len("/v1/fine_tuning/jobs") == 1);
    json_decref(a);
    json_decref(b);

    /* the same key with another body */
    strstr(body, "\"max_steps\": 2")[13] = '3';
    s1 = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL, "Idempotency-Key: job-1", body,
                     NULL, &a);
    CHECK_MSG(s1 == 422 && !strcmp(str(json_object_get(a, "error"), "param"), "Idempotency-Key"),
              "reused %ld", s1);
    json_decref(a);
    CHECK(list_len("/v1/fine_tuning/jobs") == 1);

    /* without the header, a second identical request makes a second job */
    s1 = test_call(port, "POST", "/v1/fine_tuning/jobs", NULL, body, NULL, &a);
    CHECK(s1 == 200);
    json_decref(a);
    CHECK(list_len("/v1/fine_tuning/jobs") == 2);
    test_end();
}

static void test_errors(void)
{
    json_t *a, *b;
    const char *bad = "{\"training_file\": \"file-nope\"}";
    char hdr[400];
    test_begin("idempotency_errors_replayed_and_bad_keys");
    long s1 = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL, "Idempotency-Key: bad-1",
                          bad, NULL, &a);
    long s2 = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL, "Idempotency-Key: bad-1",
                          bad, NULL, &b);
    CHECK_MSG(s1 == 400 && s2 == 400, "bad %ld %ld", s1, s2);
    CHECK(json_equal(a, b));
    json_decref(a);
    json_decref(b);
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %0300d", 7);
    s1 = test_call_h(port, "POST", "/v1/fine_tuning/jobs", NULL, hdr, bad, NULL, &a);
    CHECK_MSG(s1 == 400 && !strcmp(str(json_object_get(a, "error"), "param"), "Idempotency-Key"),
              "long key %ld", s1);
    json_decref(a);
    test_end();
}

int main(void)
{
    struct test_server srv;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    port = test_server_start(&srv, dir, 1, 0);
    if (!port)
        return 1;
    test_upload_and_job();
    test_errors();
    test_server_stop(&srv, dir);
    curl_global_cleanup();
    return test_finish();
}
