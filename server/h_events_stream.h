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

#endif
