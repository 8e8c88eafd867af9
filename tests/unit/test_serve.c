/*
 * test_serve.c: `owlore serve` as a user starts it: in a child process on a
 * free loopback port with its own data directory; the test reads the line
 * naming the device jobs train on and the "listening on" line, asks /healthz
 * over HTTP, then stops the server with
 * SIGTERM and expects a clean exit (status 0) and the database on disk.
 * Refusals: a non-loopback address without API keys, a bad port. Settings:
 * a flag wins over the environment, which wins over the config file, which
 * wins over the default; an unknown key, a wrong type or a malformed size
 * is refused naming it.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "serve_config.h"
#include "test.h"

static char dir[] = "/tmp/owlore-serve-XXXXXX";

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
    strncat(ctx, p, 4000 - strlen(ctx) < size * n ? 4000 - strlen(ctx) : size * n);
    return size * n;
}

static int serve(char **args, int n)
{
    char *argv[16] = {"owlore", "serve"};
    for (int i = 0; i < n; i++)
        argv[2 + i] = args[i];
    return cmd_serve(2 + n, argv);
}

static void test_serve_healthz_and_sigterm(void)
{
    int out[2];
    test_begin("serve_answers_healthz_and_stops_on_sigterm");
    CHECK(pipe(out) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        char *args[] = {"--port", "0", "--data-dir", dir, "--threads", "2"};
        exit(serve(args, 6));
    }
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    char line[512] = "";
    unsigned port = 0;
    int device = 0; /* the line naming the device jobs train on (no GPU here) */
    for (int i = 0; i < 4 && !port && f && fgets(line, sizeof line, f); i++) {
        device |= strstr(line, "owlore serve: jobs train on the cpu backend (CPU, ") != NULL;
        sscanf(line, "owlore serve: listening on http://127.0.0.1:%u", &port);
    }
    CHECK_MSG(port > 0, "no listening line: '%s'", line);
    CHECK(device);
    if (port) {
        char url[128], body[4096] = "";
        long status = 0;
        snprintf(url, sizeof url, "http://127.0.0.1:%u/healthz", port);
        CURL *c = curl_easy_init();
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        CHECK(curl_easy_perform(c) == CURLE_OK);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        CHECK_MSG(status == 200 && strstr(body, "\"ok\""), "healthz %ld '%s'", status, body);
    }
    kill(pid, SIGTERM);
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK_MSG(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "exit status %d", ws);
    if (f)
        fclose(f);
    char db[512];
    struct stat st;
    snprintf(db, sizeof db, "%s/owlore.db", dir);
    CHECK(stat(db, &st) == 0);
    test_end();
}

static void test_refusals(void)
{
    test_begin("serve_refuses_public_address_without_keys_and_bad_port");
    char *public[] = {"--host", "0.0.0.0", "--port", "0", "--data-dir", dir};
    char *port[] = {"--port", "70000", "--data-dir", dir};
    char *threads[] = {"--threads", "0", "--data-dir", dir};
    CHECK(serve(public, 6) == 2);
    CHECK(serve(port, 4) == 2);
    CHECK(serve(threads, 4) == 2);
    test_end();
}

/* Writes `json` to a config file in dir and returns its path. */
static const char *config_file(const char *json)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(json, f);
        fclose(f);
    }
    return path;
}

static int load(char **args, int n, struct serve_config *c, char *err, size_t errlen)
{
    char *argv[16] = {"owlore", "serve"};
    for (int i = 0; i < n; i++)
        argv[2 + i] = args[i];
    return serve_config_load(2 + n, argv, c, err, errlen);
}

static void test_config(void)
{
    static struct serve_config c;
    char err[512];
    test_begin("serve_config_flag_env_file_default");
    const char *path = config_file("{\"port\": 9999, \"threads\": 3, \"memory_limit\": \"2G\", "
                                   "\"host\": \"127.0.0.2\", \"webhook_allow_loopback\": true, "
                                   "\"max_upload\": 1048576}");
    char *args[] = {"--config", (char *)path, "--port", "1234"};
    setenv("OWLORE_THREADS", "5", 1);
    CHECK(load(args, 4, &c, err, sizeof err) == 0);
    unsetenv("OWLORE_THREADS");
    CHECK(c.port == 1234);                          /* flag over file */
    CHECK(c.threads == 5);                          /* environment over file */
    CHECK_NEAR(c.memory_limit, 2.0 * (1 << 30), 1); /* file */
    CHECK(!strcmp(c.host, "127.0.0.2") && c.webhook_allow_loopback && c.max_upload == 1048576);
    CHECK(!strcmp(c.data_dir, "var") && !c.web_dir[0]); /* defaults */
    char *port_only[] = {"--port", "1234"};
    CHECK(load(port_only, 2, &c, err, sizeof err) == 0);
    CHECK(c.memory_limit == 0); /* unset: cmd_serve takes the training device's */

    config_file("{\"prot\": 1}");
    CHECK(load(args, 2, &c, err, sizeof err) == -1 && strstr(err, "'prot'"));
    config_file("{\"port\": \"eighty\"}");
    CHECK(load(args, 2, &c, err, sizeof err) == -1 && strstr(err, "port"));
    config_file("{\"threads\": 2,}");
    CHECK(load(args, 2, &c, err, sizeof err) == -1 && strstr(err, "config"));
    char *size[] = {"--memory-limit", "2X"};
    CHECK(load(size, 2, &c, err, sizeof err) == -1 && strstr(err, "--memory-limit"));
    char *bad[] = {"--config", (char *)path, "--data-dir", dir};
    CHECK(serve(bad, 4) == 2);
    unlink(path);
    test_end();
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_serve_healthz_and_sigterm();
    test_refusals();
    test_config();
    curl_global_cleanup();
    char p[512];
    const char *files[] = {"owlore.db", "owlore.db-wal", "owlore.db-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    return test_finish();
}
