/*
 * h_events_stream.c: server-sent events for one job. The reply is an
 * MHD callback response of unknown size (chunked). Each time MHD asks for
 * bytes, the reader hands out what is left of the text it formatted last;
 * when that is spent it polls the store for events after the last id sent,
 * sleeping in short steps for at most POLL_BLOCK_MS (the reader runs on an
 * epoll pool thread, so it must not hold it long; returning 0 makes MHD call
 * again at once). Each event is "id: <n>\nevent: <type>\ndata: <event
 * JSON>\n\n"; after HEARTBEAT_S idle seconds a ": ping" comment is sent.
 *
 * The end: the job's status is read before its events are listed, and a
 * terminal status is committed in the same transaction as its event, so an
 * empty list after a terminal status means the terminal event has been
 * sent; the reader then ends the stream. The connection's idle timeout is
 * switched off for the stream (pings keep dead peers detectable); MHD
 * destroys the response when the connection closes for any reason, and its
 * free callback frees the state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "h_events_stream.h"
#include "h_jobs.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "store.h"

#define POLL_BLOCK_MS 250
#define POLL_STEP_MS 25
#define HEARTBEAT_S 15
#define BATCH 100

struct sse {
    struct store *st;
    char job_id[STORE_ID_LEN];
    int64_t last;       /* the id of the last event formatted */
    char *text;         /* formatted, not yet handed out */
    size_t len, off;
    time_t last_write;  /* when bytes were last formatted */
    int done;           /* the terminal event is formatted */
};

static void sse_free(void *cls)
{
    struct sse *s = cls;
    free(s->text);
    free(s);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int append(struct sse *s, const char *p, size_t n)
{
    char *t = realloc(s->text, s->len + n);
    if (!t)
        return -1;
    memcpy(t + s->len, p, n);
    s->text = t;
    s->len += n;
    return 0;
}

/* Formats the events of l; -1 when out of memory. */
static int format(struct sse *s, const struct store_event_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        char head[160];
        json_t *e = jobs_event_json(&l->v[i]);
        char *data = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
        int n = snprintf(head, sizeof head, "id: %lld\nevent: %.64s\ndata: ",
                         (long long)l->v[i].id, l->v[i].type);
        int bad = !data || append(s, head, (size_t)n) || append(s, data, strlen(data)) ||
                  append(s, "\n\n", 2);
        free(data);
        if (bad)
            return -1;
        s->last = l->v[i].id;
    }
    return 0;
}

/* One poll: formats new events, or notes the end. 1 when there is text or
 * the stream is done, 0 when nothing happened, -1 on errors. */
static int poll_once(struct sse *s)
{
    struct store_job j;
    struct store_event_list l;
    char err[512];
    if (store_job_get(s->st, SERVICE_OWNER_LOCAL, s->job_id, &j, err, sizeof err) != STORE_OK)
        return -1;
    int terminal = (JOB_MASK(j.status) & JOB_MASK_TERMINAL) != 0;
    store_job_clear(&j);
    if (store_event_list_after(s->st, s->job_id, s->last, BATCH, &l, err, sizeof err) !=
        STORE_OK) {
        fprintf(stderr, "owlore serve: events stream: %s\n", err);
        return -1;
    }
    int rc = format(s, &l);
    int more = l.n > 0;
    if (rc == 0 && terminal && !l.has_more)
        s->done = 1;
    store_event_list_free(&l);
    if (rc != 0)
        return -1;
    return more || s->done;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sse *s = cls;
    (void)pos;
    if (s->off == s->len) {
        s->off = s->len = 0;
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        double until = now_s() + POLL_BLOCK_MS / 1e3;
        int rc;
        while ((rc = poll_once(s)) == 0 && now_s() < until) {
            struct timespec step = {0, POLL_STEP_MS * 1000000L};
            nanosleep(&step, NULL);
        }
        if (rc < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->len == 0 && time(NULL) - s->last_write >= HEARTBEAT_S &&
            append(s, ": ping\n\n", 8) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->len == 0)
            return s->done ? MHD_CONTENT_READER_END_OF_STREAM : 0;
        s->last_write = time(NULL);
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->text + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

enum MHD_Result jobs_events_stream(struct http_request *req, const char *job_id, int64_t after)
{
    struct sse *s = calloc(1, sizeof *s);
    if (!s)
        return reply_internal(req);
    s->st = service_get()->store;
    snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
    s->last = after;
    s->last_write = time(NULL);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, sse_free);
    if (!resp) {
        sse_free(s);
        return reply_internal(req);
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") !=
            MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0);
    return reply_response(req, MHD_HTTP_OK, resp);
}
