/*
 * fuzz_sse.c: libFuzzer harness for the server-sent events encoder of job
 * events (jobs_events_sse_format, server/h_events_stream.h). The input is
 * a list of events: an 8-byte id then four NUL-terminated fields (level,
 * message, type, data; an empty data is none). The stream is then read
 * back event by event: each must be "id: <id>\nevent: <type, at most 64
 * bytes>\ndata: <JSON>\n\n" with no line break inside the JSON, which must
 * equal the event's JSON (jobs_event_json), and *last the last id.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz_common.h"
#include "h_events_stream.h"
#include "h_jobs.h"
#include "store.h"

#define MAX_EVENTS 8

/* The next NUL-terminated field of *p (n bytes left), as a malloc'd string. */
static char *field(const uint8_t **p, size_t *n)
{
    const uint8_t *z = memchr(*p, 0, *n);
    size_t len = z ? (size_t)(z - *p) : *n;
    char *s = fuzz_cstr(*p, len);
    *p += len + (z != NULL);
    *n -= len + (z != NULL);
    return s;
}

/* Checks the event e at *text and moves past it. */
static void check(const struct store_event *e, const char **text, const char *end)
{
    char head[160];
    int hn = snprintf(head, sizeof head, "id: %" PRId64 "\nevent: %.64s\ndata: ", e->id, e->type);
    if (end - *text < hn || memcmp(*text, head, (size_t)hn) != 0)
        abort();
    const char *json = *text + hn;
    const char *stop = memchr(json, '\n', (size_t)(end - json));
    if (!stop || end - stop < 2 || stop[1] != '\n')
        abort();
    json_t *got = json_loadb(json, (size_t)(stop - json), 0, NULL);
    json_t *want = jobs_event_json(e);
    if (!got || !want || !json_equal(got, want))
        abort();
    json_decref(got);
    json_decref(want);
    *text = stop + 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    struct store_event ev[MAX_EVENTS];
    struct store_event_list l = {.v = ev};
    while (l.n < MAX_EVENTS && n >= 8) {
        struct store_event *e = &ev[l.n++];
        memset(e, 0, sizeof *e);
        memcpy(&e->id, data, 8);
        data += 8, n -= 8;
        e->level = field(&data, &n);
        e->message = field(&data, &n);
        e->type = field(&data, &n);
        e->data = field(&data, &n);
        if (!e->data[0]) {
            free(e->data);
            e->data = NULL;
        }
    }
    char *text = NULL;
    size_t len = 0;
    int64_t last = -1;
    int rc = jobs_events_sse_format(&l, &text, &len, &last);
    int encodable = 1; /* jansson refuses strings that are not UTF-8 */
    for (size_t i = 0; i < l.n; i++) {
        json_t *j = jobs_event_json(&ev[i]);
        encodable &= j != NULL;
        json_decref(j);
    }
    if (rc != 0 && encodable)
        abort();
    if (rc == 0 && l.n > 0) {
        const char *p = text;
        for (size_t i = 0; i < l.n; i++)
            check(&ev[i], &p, text + len);
        if (p != text + len || last != ev[l.n - 1].id)
            abort();
    }
    free(text);
    for (size_t i = 0; i < l.n; i++) {
        free(ev[i].level);
        free(ev[i].message);
        free(ev[i].type);
        free(ev[i].data);
    }
    return 0;
}
