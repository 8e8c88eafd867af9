/*
 * h_jobs.h: the /v1/fine_tuning/jobs endpoints (OpenAI's fine-tuning API):
 * create, list, retrieve, cancel, pause, resume, events and checkpoints. routes.c names
 * them; queue.h trains the jobs.
 */
#ifndef OWLORE_H_JOBS_H
#define OWLORE_H_JOBS_H

#include <microhttpd.h>

#include <jansson.h>

#include "routes.h"
#include "store.h"

/* A fine_tuning.job.event object (id "ftevent-<n>"), or NULL. */
json_t *jobs_event_json(const struct store_event *e);

enum MHD_Result jobs_post(struct http_request *req);
enum MHD_Result jobs_list(struct http_request *req);
enum MHD_Result jobs_get(struct http_request *req);
enum MHD_Result jobs_cancel(struct http_request *req);
enum MHD_Result jobs_pause(struct http_request *req);
enum MHD_Result jobs_resume(struct http_request *req);
enum MHD_Result jobs_events(struct http_request *req);
enum MHD_Result jobs_checkpoints(struct http_request *req);

#endif
