/*
 * h_webhooks.h: the /v1/webhooks endpoints: register, list, retrieve and
 * delete the tenant's webhook endpoints (deliveries: webhooks.h). routes.c
 * names them.
 */
#ifndef OWLORE_H_WEBHOOKS_H
#define OWLORE_H_WEBHOOKS_H

#include <microhttpd.h>

#include "routes.h"

/* The cap on a POST /v1/webhooks body. */
#define WEBHOOKS_MAX_BODY (16 << 10)

enum MHD_Result webhooks_post(struct http_request *req);
enum MHD_Result webhooks_list(struct http_request *req);
enum MHD_Result webhooks_get(struct http_request *req);
enum MHD_Result webhooks_delete(struct http_request *req);

#endif
