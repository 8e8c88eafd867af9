/*
 * h_events_stream.h: a job's events as server-sent events (the
 * /v1/fine_tuning/jobs/{id}/events route when asked for text/event-stream
 * or ?stream=true; h_jobs.c decides and hands over).
 */
#ifndef OWLORE_H_EVENTS_STREAM_H
#define OWLORE_H_EVENTS_STREAM_H

#include <stdint.h>

#include <microhttpd.h>

#include "routes.h"

/* Queues a text/event-stream reply of job `job_id`'s events with id >
 * `after`, ending after the job's terminal event. */
enum MHD_Result jobs_events_stream(struct http_request *req, const char *job_id, int64_t after);

struct store_event_list;

/* Appends each event of l as "id: <n>\nevent: <type>\ndata: <event
 * JSON>\n\n" to the *len bytes at *text (realloc'd); *last receives the id
 * of the last one. 0, or -1 when out of memory. */
int jobs_events_sse_format(const struct store_event_list *l, char **text, size_t *len,
                           int64_t *last);

#endif
