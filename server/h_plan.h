/*
 * h_plan.h: POST /v1/fine_tuning/plan: a job creation's checks and the
 * planner's memory and time prediction, without creating a job. The
 * answer's shape: h_plan.c.
 */
#ifndef OWLORE_H_PLAN_H
#define OWLORE_H_PLAN_H

#include <microhttpd.h>

struct http_request;

enum MHD_Result plan_post(struct http_request *req);

#endif
