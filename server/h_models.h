/*
 * h_models.h: GET /v1/models, OpenAI's model list. routes.c names it.
 */
#ifndef OWLORE_H_MODELS_H
#define OWLORE_H_MODELS_H

#include <microhttpd.h>

#include "routes.h"

enum MHD_Result models_list(struct http_request *req);

#endif
