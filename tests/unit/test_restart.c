/*
 * test_restart.c: `owlore serve` killed with SIGKILL and started again on
 * the same data directory. The real binary (<build>/owlore, found from this
 * program's own path <build>/tests/unit/test_restart) runs as a child on a
 * free loopback port with stories260K as its default model; its port is
 * read from the "listening on" line it prints. Checked:
 *   - killed while a job trains with checkpoints: after the restart the job
 *     resumes (an event says so), is never failed and succeeds; no job is
 *     left running; every checkpoint the API lists is on disk with the
 *     sha256 the API gives, and downloads with it; the uploaded file's
 *     bytes still have their sha256;
 *   - killed, then every checkpoint but the first damaged: the restart
 *     skips them and resumes from the first;
 *   - killed before any checkpoint: after the restart the job is failed
 *     with error.code "server_restart".
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "test.h"
#include "test_server.h"

static char dir[] = "/tmp/owlore-restart-XXXXXX";
static char owlore[4096], model[4096];
static uint16_t port;
static pid_t server;
static int starts;
static char file_id[64], file_sha[SHA256_HEX_LEN];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* <build>/owlore from /proc/self/exe = <build>/tests/unit/test_restart. */
static int find_binary(void)
{
    ssize_t n = readlink("/proc/self/exe", owlore, sizeof owlore - 1);
    if (n <= 0)
        return -1;
    owlore[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr(owlore, '/');
        if (!slash)
            return -1;
        *slash = '\0';
    }
    strncat(owlore, "/owlore", sizeof owlore - strlen(owlore) - 1);
    return access(owlore, X_OK);
}

/* Starts the server on dir (its output in dir/serve-<n>.log) and waits for
 * its port; 0 on success. */
static int server_start(void)
{
    char log[600], cache[600], line[512];
    snprintf(log, sizeof log, "%s/serve-%d.log", dir, ++starts);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    fflush(stdout);
    server = fork();
    if (server == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
        setenv("OWLORE_CACHE_DIR", cache, 1);
        execl(owlore, owlore, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", dir,
              "--model", model, (char *)NULL);
        _exit(127);
    }
    if (server < 0)
        return -1;
    for (double until = now_s() + 60; now_s() < until; sleep_ms(50)) {
        FILE *f = fopen(log, "r");
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "listening on http://127.0.0.1:");
            if (p) {
                port = (uint16_t)atoi(p + strlen("listening on http://127.0.0.1:"));
                fclose(f);
                return port ? 0 : -1;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(server, NULL, WNOHANG) == server) {
            fprintf(stderr, "the server exited; see %s\n", log);
            server = 0;
            return -1;
        }
    }
    return -1;
}

static void server_kill(int sig)
{
    int status;
    if (server <= 0)
        return;
    kill(server, sig);
    waitpid(server, &status, 0);
    server = 0;
}

/* A JSON request; the parsed reply into *out (decref it). */
static long call(const char *method, const char *path, const char *json, const char *file,
                 json_t **out)
{
    return test_call(port, method, path, NULL, json, file, out);
}

static void hex_of(const void *p, size_t n, char hex[SHA256_HEX_LEN])
{
    unsigned char d[SHA256_BYTES];
    sha256_buffer(p, n, d);
    digest_hex(d, SHA256_BYTES, hex);
}

/* Creates a job; its id into id. 0 on success. */
static int create_job(char *id, size_t n, int steps, int save_every)
{
    char body[1024];
    json_t *r;
    snprintf(body, sizeof body,
             "{\"training_file\": \"%s\", \"method\": {\"type\": \"lisa\", \"lisa\": "
             "{\"hyperparameters\": {\"sequence_length\": 64, \"batch_size\": 1, "
             "\"n_epochs\": 1000, \"max_steps\": %d, \"save_every\": %d, \"gamma\": 1, "
             "\"learning_rate\": 0.001}}}}",
             file_id, steps, save_every);
    long st = call("POST", "/v1/fine_tuning/jobs", body, NULL, &r);
    snprintf(id, n, "%s", str(r, "id"));
    json_decref(r);
    return st == 200 ? 0 : -1;
}

static json_t *get_job(const char *id)
{
    char path[256];
    json_t *j;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s", id);
    call("GET", path, NULL, NULL, &j);
    return j;
}

/* The job's checkpoints, newest first (the API's list object). */
static json_t *checkpoints(const char *id)
{
    char path[256];
    json_t *r;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/checkpoints?limit=100", id);
    call("GET", path, NULL, NULL, &r);
    return r;
}

/* Waits (up to 120 s) until job id is running with at least `want`
 * checkpoints (want 0: running with a metrics event); 0 when it is. */
static int wait_running(const char *id, size_t want)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?limit=1", id);
    for (double until = now_s() + 120; now_s() < until; sleep_ms(20)) {
        json_t *j = get_job(id), *c = want ? checkpoints(id) : NULL, *e = NULL;
        int running = !strcmp(str(j, "status"), "running");
        size_t n = json_array_size(json_object_get(c, "data"));
        if (!want)
            call("GET", path, NULL, NULL, &e);
        json_t *newest = json_array_get(json_object_get(e, "data"), 0);
        int ok = running && (want ? n >= want : !strcmp(str(newest, "type"), "metrics"));
        json_decref(j);
        json_decref(c);
        json_decref(e);
        if (ok)
            return 0;
    }
    return -1;
}

/* The events of job id, oldest last (the API's list object). */
static json_t *events(const char *id)
{
    char path[256];
    json_t *r;
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events?limit=10000", id);
    call("GET", path, NULL, NULL, &r);
    return r;
}

/* The step of the "resumes from checkpoint" event (-1: none); counts the
 * events whose message says the job failed into *failed. */
static long resumed_step(const char *id, int *failed)
{
    json_t *r = events(id), *data = json_object_get(r, "data"), *e;
    size_t i;
    long step = -1;
    *failed = 0;
    json_array_foreach(data, i, e) {
        json_t *d = json_object_get(e, "data");
        if (strstr(str(e, "message"), "resumes from checkpoint") &&
            !strcmp(str(d, "code"), "server_restart"))
            step = (long)json_integer_value(json_object_get(d, "step"));
        *failed += strstr(str(e, "message"), "failed") != NULL;
    }
    json_decref(r);
    return step;
}

/* The number of jobs in status `status`. */
static int count_status(const char *status)
{
    json_t *r, *j;
    size_t i;
    int n = 0;
    call("GET", "/v1/fine_tuning/jobs?limit=100", NULL, NULL, &r);
    json_array_foreach(json_object_get(r, "data"), i, j)
        n += !strcmp(str(j, "status"), status);
    json_decref(r);
    return n;
}

static void check_checkpoints(const char *id)
{
    json_t *r = checkpoints(id), *c;
    size_t i;
    CHECK_MSG(json_array_size(json_object_get(r, "data")) > 0, "no checkpoints listed");
    json_array_foreach(json_object_get(r, "data"), i, c) {
        char path[4400], got[SHA256_HEX_LEN], url[256], why[256];
        unsigned char d[SHA256_BYTES];
        long step = (long)json_integer_value(json_object_get(c, "step_number"));
        snprintf(path, sizeof path, "%s/jobs/%s/checkpoint-%ld/model.safetensors", dir, id,
                 step);
        int ok = sha256_file(path, d, why, sizeof why) == 0;
        digest_hex(d, SHA256_BYTES, got);
        CHECK_MSG(ok && !strcmp(got, str(c, "sha256")), "step %ld on disk: %s %.12s vs %.12s",
                  step, ok ? "sha256" : why, got, str(c, "sha256"));
        struct buf b = {0};
        snprintf(url, sizeof url, "/v1/fine_tuning/jobs/%s/checkpoints/%s/content", id,
                 str(c, "id"));
        long st = test_fetch(port, "GET", url, NULL, NULL, NULL, NULL, NULL, &b, NULL, NULL);
        hex_of(b.p ? b.p : "", b.n, got);
        CHECK_MSG(st == 200 && !strcmp(got, str(c, "sha256")), "step %ld download: %ld", step,
                  st);
        free(b.p);
    }
    json_decref(r);
}

static void check_file(void)
{
    char path[256], got[SHA256_HEX_LEN];
    json_t *f;
    struct buf b = {0};
    snprintf(path, sizeof path, "/v1/files/%s", file_id);
    call("GET", path, NULL, NULL, &f);
    CHECK_MSG(!strcmp(str(f, "sha256"), file_sha), "file sha256 %s", str(f, "sha256"));
    json_decref(f);
    snprintf(path, sizeof path, "/v1/files/%s/content", file_id);
    long st = test_fetch(port, "GET", path, NULL, NULL, NULL, NULL, NULL, &b, NULL, NULL);
    hex_of(b.p ? b.p : "", b.n, got);
    CHECK_MSG(st == 200 && !strcmp(got, file_sha), "file content: %ld, sha256 %.12s", st, got);
    free(b.p);
}

static void test_resume_after_kill(void)
{
    char id[64];
    int failed;
    test_begin("restart_resumes_from_checkpoint");
    CHECK(create_job(id, sizeof id, 1000, 20) == 0);
    CHECK_MSG(wait_running(id, 1) == 0, "no checkpoint while running");
    server_kill(SIGKILL);
    CHECK_MSG(server_start() == 0, "restart");
    json_t *j = test_wait_job(port, NULL, id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s",
              j ? str(j, "status") : "-");
    json_decref(j);
    long step = resumed_step(id, &failed);
    CHECK_MSG(step > 0 && failed == 0, "resumed from step %ld, %d failure events", step,
              failed);
    CHECK(count_status("running") == 0);
    check_checkpoints(id);
    check_file();
    test_end();
}

static void test_damaged_checkpoint(void)
{
    char id[64], path[4400];
    int failed, damaged = 0;
    test_begin("restart_skips_damaged_checkpoints");
    CHECK(create_job(id, sizeof id, 1000, 20) == 0);
    CHECK_MSG(wait_running(id, 2) == 0, "no two checkpoints while running");
    server_kill(SIGKILL);
    /* every checkpoint after the first (step 20) loses half its weights */
    for (long s = 40; s <= 1000; s += 20) {
        struct stat st;
        snprintf(path, sizeof path, "%s/jobs/%s/checkpoint-%ld/model.safetensors", dir, id, s);
        if (stat(path, &st) == 0 && truncate(path, st.st_size / 2) == 0)
            damaged++;
    }
    CHECK_MSG(server_start() == 0, "restart");
    json_t *j = test_wait_job(port, NULL, id, TEST_JOB_FINAL, 1200);
    CHECK_MSG(j && !strcmp(str(j, "status"), "succeeded"), "status %s",
              j ? str(j, "status") : "-");
    json_decref(j);
    long step = resumed_step(id, &failed);
    CHECK_MSG(damaged > 0 && step == 20 && failed == 0,
              "%d damaged, resumed from step %ld, %d failure events", damaged, step, failed);
    test_end();
}

static void test_kill_before_checkpoint(void)
{
    char id[64];
    test_begin("restart_without_checkpoint_fails");
    CHECK(create_job(id, sizeof id, 100000, 100000) == 0);
    CHECK_MSG(wait_running(id, 0) == 0, "not running");
    server_kill(SIGKILL);
    CHECK_MSG(server_start() == 0, "restart");
    json_t *j = get_job(id);
    json_t *error = json_object_get(j, "error");
    CHECK_MSG(!strcmp(str(j, "status"), "failed") && !strcmp(str(error, "code"), "server_restart"),
              "status %s, error %s", str(j, "status"), str(error, "code"));
    json_decref(j);
    CHECK(count_status("running") == 0);
    test_end();
}

int main(void)
{
    char local[600];
    test_timeout_s = 60;
    if (find_binary() != 0 || !mkdtemp(dir)) {
        fprintf(stderr, "no owlore binary next to the tests (%s)\n", owlore);
        return 1;
    }
    snprintf(model, sizeof model, "%s",
             test_shared_path("data/models/stories260K/stories260K.bin"));
    curl_global_init(CURL_GLOBAL_DEFAULT);

    /* a small JSONL of text records */
    snprintf(local, sizeof local, "%s/train.jsonl", dir);
    FILE *f = fopen(local, "w");
    for (int i = 0; f && i < 40; i++)
        fprintf(f, "{\"text\": \"Once upon a time, a little cat number %d found a red ball in "
                   "the garden. She played with it all day and was very happy.\"}\n", i);
    if (!f || fclose(f) != 0 || server_start() != 0) {
        fprintf(stderr, "cannot start the server\n");
        return 1;
    }
    json_t *r;
    long code = call("POST", "/v1/files", NULL, local, &r);
    snprintf(file_id, sizeof file_id, "%s", str(r, "id"));
    snprintf(file_sha, sizeof file_sha, "%s", str(r, "sha256"));
    json_decref(r);
    struct buf b = {0};
    FILE *in = fopen(local, "rb");
    char chunk[4096];
    for (size_t n; in && (n = fread(chunk, 1, sizeof chunk, in)) > 0;)
        on_body(chunk, 1, n, &b);
    if (in)
        fclose(in);
    char want[SHA256_HEX_LEN];
    hex_of(b.p ? b.p : "", b.n, want);
    free(b.p);
    if (code != 200 || strcmp(want, file_sha) != 0) {
        fprintf(stderr, "upload: %ld, sha256 %s vs %s\n", code, file_sha, want);
        server_kill(SIGKILL);
        return 1;
    }

    test_resume_after_kill();
    test_damaged_checkpoint();
    test_kill_before_checkpoint();

    server_kill(SIGTERM);
    curl_global_cleanup();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return test_finish();
}
