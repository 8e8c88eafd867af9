/*
 * cmd_serve.c: `owlore serve`: run the HTTP service until SIGINT or SIGTERM.
 *
 *   owlore serve [--config FILE] [--host ADDR] [--port N] [--data-dir DIR]
 *                [--threads N] [--model PATH] [--memory-limit SIZE]
 *                [--max-upload SIZE] [--web-dir DIR] [--webhook-allow-loopback]
 *                [--max-per-ip N]
 *
 * Settings come from flags, the environment or a JSON file
 * (serve_config.h). --model is the default model of fine-tuning jobs; jobs
 * may also name models under <data dir>/models/. Jobs train on the GPU when
 * one opens, else on the CPU (backend_select "auto"); the start-up log names
 * the device. --memory-limit caps the planner's predicted peak of a job at
 * creation (default: that device's memory, the GPU's or the machine's RAM). The data directory (default var/) holds the SQLite database
 * owlore.db; it is created when missing and its integrity is checked before
 * the server listens. Without any API key in the database the server
 * refuses to listen on anything but a loopback address.
 * --webhook-allow-loopback lets webhooks go to loopback addresses, over
 * plain http too (webhook_url.h), for receivers on this machine.
 *
 * Start-up, in order: jobs left running or pausing by a crash are recovered
 * (store_recover_running: re-queued to resume from their newest checkpoint
 * that ckpt_verify finds whole, or failed); blobs/ is swept of upload
 * temporaries and unreferenced files (service_sweep_blobs); the service
 * context is published, with the default model's tokenizer for the token
 * statistics of uploads; the job worker (queue.h), the webhook delivery
 * worker (webhooks.h) and the HTTP server start. The signals are blocked
 * before any thread starts, so only this thread receives them (sigwait).
 * On shutdown the HTTP server stops, the job worker pauses and re-queues
 * the running job, the webhook worker stops, and the store is closed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "backend.h"
#include "ckpt_verify.h"
#include "cli.h"
#include "http.h"
#include "queue.h"
#include "serve_config.h"
#include "service.h"
#include "store.h"
#include "webhooks.h"

static int is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0;
}

int cmd_serve(int argc, char **argv)
{
    static struct serve_config c; /* the service borrows its strings */
    char db[4200], err[512];
    if (serve_config_load(argc, argv, &c, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        return 2;
    }
    const char *dir = c.data_dir;
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
    if (keys == 0 && !is_loopback(c.host)) {
        fprintf(stderr, "owlore serve: no API key is configured, so the server only "
                "listens on a loopback address (not %s); create one with `owlore keys "
                "create`\n", c.host);
        store_close(st);
        return 2;
    }

    /* the device jobs will train on, and the default admission limit */
    const struct backend *dev = backend_select("auto", err, sizeof err);
    if (!dev)
        dev = backend_cpu();
    char device[256];
    double device_bytes;
    dev->describe(device, sizeof device, &device_bytes);
    if (c.memory_limit <= 0)
        c.memory_limit = device_bytes;
    printf("owlore serve: jobs train on the %s backend (%s, %.1f GiB); jobs predicted to "
           "need more than %.1f GiB are refused\n", dev->name, device,
           device_bytes / (1024.0 * 1024 * 1024), c.memory_limit / (1024.0 * 1024 * 1024));

    struct service svc = {
        .store = st, .data_dir = dir, .default_model = c.model,
        .memory_limit = c.memory_limit, .webhook_allow_loopback = c.webhook_allow_loopback,
        .web_dir = c.web_dir[0] ? c.web_dir : NULL,
    };
    int resumed = 0, failed = 0, swept = 0;
    if (store_recover_running(st, 3, ckpt_verify, NULL, &resumed, &failed, err, sizeof err) != 0 ||
        service_init(&svc, err, sizeof err) != 0 ||
        service_sweep_blobs(&svc, &swept, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        store_close(st);
        return 1;
    }

    if (service_load_tokenizer(&svc, err, sizeof err) != 0)
        fprintf(stderr, "owlore serve: uploads get no token statistics: %s\n", err);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    struct http_config cfg;
    http_config_defaults(&cfg);
    cfg.bind_addr = c.host;
    cfg.port = c.port;
    cfg.threads = c.threads;
    cfg.max_upload = c.max_upload;
    cfg.max_per_ip = c.max_per_ip;
    cfg.authenticate = auth_request;
    if (resumed || failed)
        printf("owlore serve: recovered interrupted jobs: %d re-queued, %d failed\n", resumed,
               failed);
    if (swept)
        printf("owlore serve: removed %d unreferenced upload files\n", swept);
    struct webhooks_config wcfg;
    webhooks_config_defaults(&wcfg);
    if (queue_start(&svc, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        store_close(st);
        return 1;
    }
    if (webhooks_start(&svc, &wcfg, err, sizeof err) != 0) {
        fprintf(stderr, "owlore serve: %s\n", err);
        queue_stop();
        store_close(st);
        return 1;
    }
    struct http_server *srv = http_server_start(&cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "owlore serve: %s\n", err);
        queue_stop();
        webhooks_stop();
        store_close(st);
        return 1;
    }
    printf("owlore serve: listening on http://%s:%u (data in %s)\n", c.host,
           (unsigned)http_server_port(srv), dir);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    printf("owlore serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_server_stop(srv);
    queue_stop();
    webhooks_stop();
    service_free_tokenizer(&svc);
    store_close(st);
    return 0;
}
