/*
 * h_checkpoints.h: GET /v1/fine_tuning/jobs/{id}/checkpoints/{ckpt_id}/content,
 * the download of one file of a checkpoint directory (engine/ckpt.h).
 * routes.c names it.
 */
#ifndef OWLORE_H_CHECKPOINTS_H
#define OWLORE_H_CHECKPOINTS_H

#include <microhttpd.h>

#include "routes.h"

enum MHD_Result checkpoints_content(struct http_request *req);

#endif
