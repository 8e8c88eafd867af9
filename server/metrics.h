/*
 * metrics.h: GET /metrics, the Prometheus text exposition (version 0.0.4)
 * of the service: jobs by status, queue depth, the running job's step and
 * tokens/s, process memory (current and peak resident set), HTTP replies by
 * status code, uptime. Public (no API key), aggregated over tenants: it
 * names no file, job or tenant.
 */
#ifndef OWLORE_METRICS_H
#define OWLORE_METRICS_H

#include <microhttpd.h>

struct http_request;

/* Counts one reply with HTTP `status` (reply.c calls it for every reply). */
void metrics_count_reply(unsigned status);

enum MHD_Result metrics_get(struct http_request *req);

#endif
