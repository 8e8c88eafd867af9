/*
 * list_query.c: the `limit` query parameter of list endpoints (see
 * list_query.h).
 */
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
