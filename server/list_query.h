/*
 * list_query.h: what every list endpoint shares. The `limit` query
 * parameter (with the `after` cursor): a strict decimal from 1 to
 * LIST_LIMIT_MAX. The reply: a page in OpenAI's list shape,
 * {"object": "list", "data": [...], "has_more": bool}, with "first_id" and
 * "last_id" before has_more on the endpoints that give them.
 */
#ifndef OWLORE_LIST_QUERY_H
#define OWLORE_LIST_QUERY_H

#include <jansson.h>
#include <microhttpd.h>

#include "store.h"

#define LIST_LIMIT_MAX STORE_LIST_LIMIT_MAX

struct http_request;

/* ?limit into *limit (left as it is when absent): 0, or -1 after queueing a
 * 400 naming `limit` into *ret. */
int list_limit(struct http_request *req, int *limit, enum MHD_Result *ret);

/* The reply to a store list call that answered rc (not STORE_OK):
 * STORE_NOTFOUND, an unknown `after`, is a 400 naming it ("No such <noun>
 * for 'after'."); anything else is a 500, with "owlore serve: <what>:
 * <err>" on stderr. */
enum MHD_Result list_failed(struct http_request *req, int rc, const char *noun,
                            const char *what, const char *err);

/* Appends `item` (a new reference, NULL after a failed build) to the array
 * `data`: data, or NULL once anything failed, both then released. Build a
 * page as data = list_push(data, item) from json_array(). */
json_t *list_push(json_t *data, json_t *item);

/* Sends the page {"object": "list", "data": data, "has_more": has_more};
 * takes ownership of data, and NULL (a failed build) is a 500. */
enum MHD_Result list_reply(struct http_request *req, json_t *data, int has_more);
/* list_reply with "first_id" and "last_id", the ids of the page's first and
 * last items (NULL, null in JSON, for an empty page). */
enum MHD_Result list_reply_ids(struct http_request *req, json_t *data, const char *first_id,
                               const char *last_id, int has_more);

#endif
