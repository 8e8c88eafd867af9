/*
 * list_query.c: the pieces every list endpoint shares (see list_query.h):
 * the `limit` query parameter, the failed store call and the list reply.
 */
#include <stdio.h>

#include "http.h"
#include "list_query.h"
#include "reply.h"

int list_limit(struct http_request *req, int *limit, enum MHD_Result *ret)
{
    const char *s = http_query(req, "limit");
    int n = 0;
    if (!s)
        return 0;
    for (const char *p = s; *p && n <= LIST_LIMIT_MAX; p++)
        n = *p >= '0' && *p <= '9' ? n * 10 + (*p - '0') : LIST_LIMIT_MAX + 1;
    if (!*s || n < 1 || n > LIST_LIMIT_MAX) {
        *ret = reply_bad_request(req, "limit", "invalid_value",
                                 "'limit' must be an integer from 1 to %d.", LIST_LIMIT_MAX);
        return -1;
    }
    *limit = n;
    return 0;
}

enum MHD_Result list_failed(struct http_request *req, int rc, const char *noun,
                            const char *what, const char *err)
{
    if (rc == STORE_NOTFOUND)
        return reply_bad_request(req, "after", "invalid_value", "No such %s for 'after'.", noun);
    fprintf(stderr, "owlore serve: %s: %s\n", what, err);
    return reply_internal(req);
}

json_t *list_push(json_t *data, json_t *item)
{
    if (!data) {
        json_decref(item);
        return NULL;
    }
    if (json_array_append_new(data, item) != 0) { /* it released item */
        json_decref(data);
        return NULL;
    }
    return data;
}

enum MHD_Result list_reply(struct http_request *req, json_t *data, int has_more)
{
    return reply_json(req, MHD_HTTP_OK,
                      data ? json_pack("{s:s, s:o, s:b}", "object", "list", "data", data,
                                       "has_more", has_more)
                           : NULL);
}

enum MHD_Result list_reply_ids(struct http_request *req, json_t *data, const char *first_id,
                               const char *last_id, int has_more)
{
    return reply_json(req, MHD_HTTP_OK,
                      data ? json_pack("{s:s, s:o, s:s?, s:s?, s:b}", "object", "list", "data",
                                       data, "first_id", first_id, "last_id", last_id,
                                       "has_more", has_more)
                           : NULL);
}
