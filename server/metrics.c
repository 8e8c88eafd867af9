/*
 * metrics.c: the service's Prometheus metrics (see metrics.h). Reply counts
 * are lock-free atomics indexed by status code; everything else is read
 * when scraped.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"
#include "queue.h"
#include "reply.h"
#include "service.h"
#include "store.h"
#include "train.h"

#define STATUS_MIN 100
#define STATUS_MAX 599

static atomic_ullong replies[STATUS_MAX - STATUS_MIN + 1];

void metrics_count_reply(unsigned status)
{
    if (status >= STATUS_MIN && status <= STATUS_MAX)
        atomic_fetch_add_explicit(&replies[status - STATUS_MIN], 1, memory_order_relaxed);
}

/* Seconds since this process started: the system's uptime less the
 * process's start time (field 22 of /proc/self/stat, in clock ticks). */
static double process_uptime(void)
{
    double up = 0;
    unsigned long long start = 0;
    char buf[1024];
    FILE *f = fopen("/proc/uptime", "r");
    if (f) {
        if (fscanf(f, "%lf", &up) != 1)
            up = 0;
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    for (int field = 2; p && *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (p)
        start = strtoull(p, NULL, 10);
    double s = up - (double)start / (double)sysconf(_SC_CLK_TCK);
    return s > 0 ? s : 0;
}

struct text {
    char *p;
    size_t n, cap;
    int oom;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    for (int tries = 0; tries < 2 && !t->oom; tries++) {
        va_start(ap, fmt);
        int n = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
        } else if (t->p && (size_t)n < t->cap - t->n) {
            t->n += (size_t)n;
            return;
        } else {
            size_t cap = (t->cap + (size_t)n + 1) * 2;
            char *p = realloc(t->p, cap);
            if (!p)
                t->oom = 1;
            else
                t->p = p, t->cap = cap;
        }
    }
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum MHD_Result metrics_get(struct http_request *req)
{
    struct service *svc = service_get();
    struct text t = {0};
    int64_t counts[JOB_STATUS_COUNT];
    char err[512];
    if (svc) {
        if (store_job_count_by_status(svc->store, counts, err, sizeof err) != STORE_OK) {
            fprintf(stderr, "owlore serve: metrics: %s\n", err);
            return reply_internal(req);
        }
        family(&t, "owlore_jobs", "gauge", "Fine-tuning jobs by status.");
        for (int s = 0; s < JOB_STATUS_COUNT; s++)
            add(&t, "owlore_jobs{status=\"%s\"} %lld\n", store_job_status_name(s),
                (long long)counts[s]);
        family(&t, "owlore_queue_depth", "gauge", "Jobs waiting for the worker.");
        add(&t, "owlore_queue_depth %lld\n", (long long)counts[JOB_QUEUED]);
    }
    struct queue_stats qs;
    queue_get_stats(&qs);
    family(&t, "owlore_worker_busy", "gauge", "1 while the worker trains a job.");
    add(&t, "owlore_worker_busy %d\n", qs.busy);
    family(&t, "owlore_train_step", "gauge", "Optimizer steps done by the running job.");
    add(&t, "owlore_train_step %ld\n", qs.step);
    family(&t, "owlore_train_tokens_per_second", "gauge",
           "Training throughput of the running job's last step.");
    add(&t, "owlore_train_tokens_per_second %.3f\n", qs.tokens_per_s);
    size_t rss = 0, peak = 0;
    train_memory(&rss, &peak);
    family(&t, "owlore_process_resident_memory_bytes", "gauge", "Resident set size.");
    add(&t, "owlore_process_resident_memory_bytes %zu\n", rss);
    family(&t, "owlore_process_peak_resident_memory_bytes", "gauge",
           "Peak resident set size since the process started.");
    add(&t, "owlore_process_peak_resident_memory_bytes %zu\n", peak);
    family(&t, "owlore_http_replies_total", "counter", "HTTP replies sent, by status code.");
    for (unsigned s = STATUS_MIN; s <= STATUS_MAX; s++) {
        unsigned long long n = atomic_load_explicit(&replies[s - STATUS_MIN],
                                                    memory_order_relaxed);
        if (n)
            add(&t, "owlore_http_replies_total{code=\"%u\"} %llu\n", s, n);
    }
    family(&t, "owlore_uptime_seconds", "gauge", "Seconds since the process started.");
    add(&t, "owlore_uptime_seconds %.0f\n", process_uptime());
    if (t.oom) {
        free(t.p);
        return reply_internal(req);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(t.n, t.p, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(t.p);
        return reply_internal(req);
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8") != MHD_YES) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, MHD_HTTP_OK, resp);
}
