/*
 * cmd_serve.c: `owlore serve`: run the HTTP service until SIGINT or SIGTERM.
 *
 *   owlore serve [--host ADDR] [--port N] [--data-dir DIR] [--threads N]
 *                [--model PATH]
 *
 * Each option can also come from the environment (OWLORE_HOST, OWLORE_PORT,
 * OWLORE_DATA_DIR, OWLORE_THREADS, OWLORE_MODEL); a flag wins over the
 * environment. --model is the default model of fine-tuning jobs (default
 * models/SmolLM2-135M-Instruct.Q4_1.gguf); jobs may also name models under
 * <data dir>/models/. The
 * data directory (default var/) holds the SQLite database owlore.db; it is
 * created when missing and its integrity is checked before the server
 * listens. Without any API key in the database the server refuses to listen
 * on anything but a loopback address.
 *
 * The signals are blocked before the HTTP threads start, so only this thread
 * receives them (sigwait); the server then stops and the store is closed.
 * The service context (service.h: store, data directory with its blobs/)
 * is published before the server starts. Jobs left running or pausing by a
 * crash are recovered first (store_recover_running: re-queued to resume
 * from their newest checkpoint, or failed), then the job worker (queue.h)
 * starts; on shutdown it pauses and re-queues the running job after the
 * HTTP server has stopped.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "http.h"
#include "queue.h"
#include "service.h"
#include "store.h"

/* The value of option `flag`, else of environment variable `env`, else def. */
static const char *setting(int argc, char **argv, const char *flag, const char *env,
                           const char *def)
{
    const char *v = cli_opt(argc, argv, flag);
    if (!v)
        v = getenv(env);
    return v ? v : def;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

int cmd_serve(int argc, char **argv)
{
    static const char *const known[] = {"--host", "--port", "--data-dir", "--threads",
                                         "--model", NULL};
    if (cli_check_opts(argc, argv, "serve", known) != 0)
        return 2;
    const char *host = setting(argc, argv, "--host", "OWLORE_HOST", "127.0.0.1");
    const char *port_s = setting(argc, argv, "--port", "OWLORE_PORT", "8080");
    const char *dir = setting(argc, argv, "--data-dir", "OWLORE_DATA_DIR", "var");
    const char *threads_s = setting(argc, argv, "--threads", "OWLORE_THREADS", "4");
    const char *model = setting(argc, argv, "--model", "OWLORE_MODEL",
                                "models/SmolLM2-135M-Instruct.Q4_1.gguf");
    unsigned long port, threads;
    if (parse_uint(port_s, 65535, &port) != 0) {
        fprintf(stderr, "owlore serve: --port expects 0..65535, got '%s'\n", port_s);
        return 2;
    }
    if (parse_uint(threads_s, 256, &threads) != 0 || threads == 0) {
        fprintf(stderr, "owlore serve: --threads expects 1..256, got '%s'\n", threads_s);
        return 2;
    }

    char db[4200], err[512];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "owlore serve: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(db, sizeof db, "%s/owlore.db", dir);
    struct store *st = store_open(db, err, sizeof err);
    int64_t keys = 0;
    if (!st || store_check(st, err, sizeof err) != 0 ||
        store_key_count(st, &keys, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        store_close(st);
        return 1;
    }
    if (keys == 0 && !is_loopback(host)) {
        fprintf(stderr, "owlore serve: no API key is configured, so the server only "
                "listens on a loopback address (not %s)\n", host);
        store_close(st);
        return 2;
    }

    struct service svc = {.store = st, .data_dir = dir, .default_model = model};
    int resumed = 0, failed = 0;
    if (store_recover_running(st, 3, NULL, NULL, &resumed, &failed, err, sizeof err) != 0 ||
        service_init(&svc, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        store_close(st);
        return 1;
    }

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.bind_addr = host;
    cfg.port = (uint16_t)port;
    cfg.threads = (unsigned)threads;
    if (resumed || failed)
        printf("owlore serve: recovered interrupted jobs: %d re-queued, %d failed\n", resumed,
               failed);
    if (queue_start(&svc, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        store_close(st);
        return 1;
    }
    struct http_server *srv = http_server_start(&cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "owlore serve: %s\n", err);
        queue_stop();
        store_close(st);
        return 1;
    }
    printf("owlore serve: listening on http://%s:%u (data in %s)\n", host,
           (unsigned)http_server_port(srv), dir);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    printf("owlore serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_stop(srv);
    queue_stop();
    store_close(st);
    return 0;
}
