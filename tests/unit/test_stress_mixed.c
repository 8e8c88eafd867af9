/*
 * test_stress_mixed.c: concurrency stress of the in-process server, meant
 * for ThreadSanitizer (tools/reliability.sh) but run by `make test` too.
 * While a job trains on stories260K, several client threads hammer the
 * server with a mix of requests: lists and gets of files, jobs, events
 * (JSON and a short SSE read), checkpoints and layers, plans, metrics,
 * webhook registrations and deletions, and jobs created then cancelled.
 * No request may get a 5xx or no reply, and the training job must still
 * succeed.
 */
#include <pthread.h>
#include <unistd.h>

#include "test_server.h"

#define THREADS 4
#define ROUNDS 12

static uint16_t port;
static char dir[] = "/tmp/owlore-stress-XXXXXX";
static char file_id[64], job_id[64];
static int bad_replies;
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

/* One request; counts a 5xx or a missing reply. Returns the status. */
static long hit(const char *method, const char *path, const char *json, json_t **out)
{
    json_t *r = NULL;
    long st = test_call(port, method, path, NULL, json, NULL, &r);
    if (st == 0 || st >= 500) {
        pthread_mutex_lock(&bad_lock);
        if (bad_replies++ < 5)
            fprintf(stderr, "%s %s: %ld\n", method, path, st);
        pthread_mutex_unlock(&bad_lock);
    }
    if (out)
        *out = r;
    else
        json_decref(r);
    return st;
}

static const char *job_body(int steps, char *buf, size_t n)
{
    snprintf(buf, n,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 32, \"batch_size\": 1, "
             "\"max_steps\": %d, \"save_every\": 5, \"gamma\": 1}}}}",
             file_id, steps);
    return buf;
}

static void *client(void *arg)
{
    long t = (long)(intptr_t)arg;
    char path[256], body[1024];
    for (int i = 0; i < ROUNDS; i++) {
        json_t *r;
        switch ((t + i) % 8) {
        case 0:
            hit("GET", "/v1/files", NULL, NULL);
            snprintf(path, sizeof path, "/v1/files/%s", file_id);
            hit("GET", path, NULL, NULL);
            break;
        case 1:
            snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s", job_id);
            hit("GET", path, NULL, NULL);
            hit("GET", "/v1/fine_tuning/jobs?limit=5", NULL, NULL);
            break;
        case 2:
            snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?limit=3", job_id);
            hit("GET", path, NULL, NULL);
            snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/checkpoints", job_id);
            hit("GET", path, NULL, NULL);
            break;
        case 3:
            hit("POST", "/v1/fine_tuning/plan", job_body(5, body, sizeof body), NULL);
            hit("GET", "/metrics", NULL, NULL);
            break;
        case 4:
            if (hit("POST", "/v1/fine_tuning/jobs", job_body(2, body, sizeof body), &r) == 200) {
                snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/cancel", str(r, "id"));
                hit("POST", path, NULL, NULL);
            }
            json_decref(r);
            break;
        case 5:
            if (hit("POST", "/v1/webhooks", "{\"url\": \"http://127.0.0.1:9/hook\"}", &r) == 200) {
                snprintf(path, sizeof path, "/v1/webhooks/%s", str(r, "id"));
                hit("DELETE", path, NULL, NULL);
            }
            json_decref(r);
            break;
        case 6:
            snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/layers", job_id);
            hit("GET", path, NULL, NULL);
            hit("GET", "/v1/models", NULL, NULL);
            break;
        default: { /* a short SSE read: libcurl gives up after 300 ms */
            CURL *c = curl_easy_init();
            struct buf b = {0};
            snprintf(path, sizeof path,
                     "http://127.0.0.1:%u/v1/fine_tuning/jobs/%s/events?stream=true",
                     (unsigned)port, job_id);
            curl_easy_setopt(c, CURLOPT_URL, path);
            curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 300L);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
            curl_easy_perform(c);
            curl_easy_cleanup(c);
            free(b.p);
        }
        }
    }
    return NULL;
}

/* Polls the job until it ends (or makes no progress for 300 s); its final
 * status. */
static const char *wait_end(char *status, size_t n)
{
    json_t *j = test_wait_job(port, NULL, job_id, TEST_JOB_FINAL, 3000);
    snprintf(status, n, "%s", j ? str(j, "status") : "timeout");
    json_decref(j);
    return status;
}

static void test_mixed(void)
{
    char body[1024], status[32];
    pthread_t th[THREADS];
    json_t *r = NULL;
    test_begin("mixed requests from several threads while a job trains");
    CHECK(test_call(port, "POST", "/v1/fine_tuning/jobs", NULL, job_body(30, body, sizeof body),
                    NULL, &r) == 200);
    snprintf(job_id, sizeof job_id, "%s", str(r, "id"));
    json_decref(r);
    for (long t = 0; t < THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, client, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    CHECK_MSG(bad_replies == 0, "%d requests got a 5xx or no reply", bad_replies);
    CHECK_MSG(!strcmp(wait_end(status, sizeof status), "succeeded"), "job %s", status);
    test_end();
}

int main(void)
{
    static struct test_server server;
    test_server_max_per_ip = 64;
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
    test_mixed();
    curl_global_cleanup();
    test_server_stop(&server, dir);
    return test_finish();
}
