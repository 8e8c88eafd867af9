/*
 * h_layers.h: GET /v1/fine_tuning/jobs/{id}/layers: outlier ratios, sampling
 * probabilities and times sampled per block (job_layers.h).
 */
#ifndef OWLORE_H_LAYERS_H
#define OWLORE_H_LAYERS_H

#include <microhttpd.h>

struct http_request;

enum MHD_Result jobs_layers(struct http_request *req);

#endif
