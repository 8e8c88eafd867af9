/*
 * h_jobs.h: the /v1/fine_tuning/jobs endpoints (OpenAI's fine-tuning API):
 * create, list, retrieve, cancel, pause, resume, events and checkpoints. routes.c names
 * them; queue.h trains the jobs.
 */
#ifndef OWLORE_H_JOBS_H
#define OWLORE_H_JOBS_H

#include <microhttpd.h>

#include <jansson.h>

#include "config.h"
#include "plan.h"
#include "recipe.h"
#include "routes.h"
#include "store.h"

/* A fine_tuning.job.event object (id "ftevent-<n>"), or NULL. */
json_t *jobs_event_json(const struct store_event *e);

/* A create request's body once checked: the strings point into the body
 * (NULL when absent), the recipe is resolved and planned. */
struct job_create {
    const char *model, *training, *validation, *suffix;
    char model_path[4200];
    struct recipe r;
    struct model_config cfg;
    struct plan plan; /* fp32, at the recipe's batch_size x sequence_length */
};
/* Every check POST /v1/fine_tuning/jobs makes before it writes anything
 * (fields, model, files, method, memory admission), for body (a JSON
 * object); also used by the planner preview (h_plan.h). 0, or -1 with the
 * error reply queued into *ret. */
int jobs_check_create(struct http_request *req, json_t *body, struct job_create *jc,
                      enum MHD_Result *ret);

enum MHD_Result jobs_post(struct http_request *req);
enum MHD_Result jobs_list(struct http_request *req);
enum MHD_Result jobs_get(struct http_request *req);
enum MHD_Result jobs_cancel(struct http_request *req);
enum MHD_Result jobs_pause(struct http_request *req);
enum MHD_Result jobs_resume(struct http_request *req);
enum MHD_Result jobs_events(struct http_request *req);
enum MHD_Result jobs_checkpoints(struct http_request *req);

#endif
