/*
 * h_events_stream.c: server-sent events for one job. The reply is an
 * MHD callback response of unknown size (chunked). Each time MHD asks for
 * bytes, the reader hands out what is left of the text it formatted last;
 * when that is spent it reads the store for events after the last id sent.
 * Each event is "id: <n>\nevent: <type>\ndata: <event JSON>\n\n"; after
 * HEARTBEAT_S idle seconds a ": ping" comment is sent.
 *
 * Idle streams hold no thread: with nothing to send, the reader parks its
 * connection under the job id (conn_park.h: suspended until woken) and
 * returns 0. The store notifies every committed event (event_notify.h),
 * which wakes the job's streams; the park deadline is the next heartbeat.
 * The epoch read before the store is what makes a wake-up between the read
 * and the parking impossible to miss. When the server stops, parked streams
 * are resumed and end.
 *
 * The end: the job's status is read before its events are listed, and a
 * terminal status is committed in the same transaction as its event, so an
 * empty list after a terminal status means the terminal event has been
 * sent; the reader then ends the stream. The connection's idle timeout is
 * switched off for the stream (pings keep dead peers detectable; a peer
 * that goes away while its stream is parked is noticed at the next event or
 * ping); MHD destroys the response when the connection closes for any
 * reason, and its free callback frees the state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <jansson.h>

#include "conn_park.h"
#include "event_notify.h"
#include "h_events_stream.h"
#include "h_jobs.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "store.h"

#define HEARTBEAT_S 15
#define BATCH 100

struct sse {
    struct store *st;
    char job_id[STORE_ID_LEN];
    char owner[64];     /* the tenant of the request */
    int64_t last;       /* the id of the last event formatted */
    char *text;         /* formatted, not yet handed out */
    size_t len, off;
    double last_write;  /* when bytes were last formatted (conn_park_now) */
    int done;           /* the terminal event is formatted */
    struct conn_park park; /* the connection, keyed by job_id */
};

static void sse_free(void *cls)
{
    struct sse *s = cls;
    free(s->text);
    free(s);
}

static int append(char **text, size_t *len, const char *p, size_t n)
{
    char *t = realloc(*text, *len + n);
    if (!t)
        return -1;
    memcpy(t + *len, p, n);
    *text = t;
    *len += n;
    return 0;
}

int jobs_events_sse_format(const struct store_event_list *l, char **text, size_t *len,
                           int64_t *last)
{
    for (size_t i = 0; i < l->n; i++) {
        char head[160];
        json_t *e = jobs_event_json(&l->v[i]);
        char *data = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
        int n = snprintf(head, sizeof head, "id: %lld\nevent: %.64s\ndata: ",
                         (long long)l->v[i].id, l->v[i].type);
        int bad = !data || append(text, len, head, (size_t)n) ||
                  append(text, len, data, strlen(data)) || append(text, len, "\n\n", 2);
        free(data);
        if (bad)
            return -1;
        *last = l->v[i].id;
    }
    return 0;
}

/* One read of the store: formats the new events and notes the end
 * (s->done); 0, or -1 on errors. */
static int poll_once(struct sse *s)
{
    struct store_job j;
    struct store_event_list l;
    char err[512];
    if (store_job_get(s->st, s->owner, s->job_id, &j, err, sizeof err) != STORE_OK)
        return -1;
    int terminal = (JOB_MASK(j.status) & JOB_MASK_TERMINAL) != 0;
    store_job_clear(&j);
    if (store_event_list_after(s->st, s->job_id, s->last, BATCH, &l, err, sizeof err) !=
        STORE_OK) {
        fprintf(stderr, "owlore serve: events stream: %s\n", err);
        return -1;
    }
    int rc = jobs_events_sse_format(&l, &s->text, &s->len, &s->last);
    if (rc == 0 && terminal && !l.has_more)
        s->done = 1;
    store_event_list_free(&l);
    return rc;
}

/* Formats what there is to send: new events, else a due ping, else parks
 * the connection. 1: text to hand out, 0: parked, -1: the end (s->done or
 * the server stops), -2: an error. */
static int refill(struct sse *s)
{
    for (;;) {
        uint64_t epoch = conn_park_epoch();
        if (poll_once(s) != 0)
            return -2;
        if (s->len)
            return 1;
        if (s->done)
            return -1;
        if (conn_park_now() - s->last_write >= HEARTBEAT_S)
            return append(&s->text, &s->len, ": ping\n\n", 8) == 0 ? 1 : -2;
        s->park.deadline = s->last_write + HEARTBEAT_S;
        switch (conn_park_wait(&s->park, epoch)) {
        case PARK_PARKED:
            return 0;
        case PARK_CLOSED:
            return -1;
        case PARK_RETRY:
            break;
        }
    }
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sse *s = cls;
    (void)pos;
    if (s->off == s->len) {
        s->off = s->len = 0;
        if (s->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int rc = refill(s);
        if (rc <= 0)
            return rc == 0 ? 0 : rc == -1 ? MHD_CONTENT_READER_END_OF_STREAM
                                          : MHD_CONTENT_READER_END_WITH_ERROR;
        s->last_write = conn_park_now();
    }
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->text + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* The store's notifications wake the streams of the job (first stream). */
static void listen_once(void)
{
    event_notify_listen(conn_park_wake);
}

enum MHD_Result jobs_events_stream(struct http_request *req, const char *job_id, int64_t after)
{
    struct sse *s = calloc(1, sizeof *s);
    if (!s)
        return reply_internal(req);
    s->st = service_get()->store;
    snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
    snprintf(s->owner, sizeof s->owner, "%s", req->owner);
    s->last = after;
    s->last_write = conn_park_now();
    s->park.conn = req->conn;
    snprintf(s->park.key, sizeof s->park.key, "%s", job_id);
    pthread_once(&once, listen_once);
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
