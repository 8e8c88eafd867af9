/*
 * list_query.h: the `limit` query parameter that every list endpoint takes
 * (with the `after` cursor): a strict decimal from 1 to LIST_LIMIT_MAX.
 */
#ifndef OWLORE_LIST_QUERY_H
#define OWLORE_LIST_QUERY_H

#include <microhttpd.h>

#include "store.h"

#define LIST_LIMIT_MAX STORE_LIST_LIMIT_MAX

struct http_request;

/* ?limit into *limit (left as it is when absent): 0, or -1 after queueing a
 * 400 naming `limit` into *ret. */
int list_limit(struct http_request *req, int *limit, enum MHD_Result *ret);

#endif
