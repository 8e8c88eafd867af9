/*
 * h_checkpoints.h: GET /v1/fine_tuning/jobs/{id}/checkpoints/{ckpt_id}/content,
 * the download of one file of a checkpoint directory (engine/ckpt.h).
 * routes.c names it.
 */
#ifndef OWLORE_H_CHECKPOINTS_H
#define OWLORE_H_CHECKPOINTS_H

#include <stdint.h>

#include <microhttpd.h>

#include "routes.h"

enum MHD_Result checkpoints_content(struct http_request *req);

enum range_kind { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

/* Parses one Range header (NULL: none) against a file of `size` bytes into
 * [*first, *last]. RANGE_NONE when the whole file is to be sent. */
enum range_kind checkpoints_parse_range(const char *h, uint64_t size, uint64_t *first,
                                        uint64_t *last);

#endif
