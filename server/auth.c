/*
 * auth.c: bearer API keys to tenants (see auth.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "session.h"
#include "store.h"

enum MHD_Result auth_request(struct http_request *req)
{
    struct store *st = service_get()->store;
    const char *h = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    char err[512];
    enum MHD_Result sret;
    if (!h && session_authenticate(req, &sret)) /* the dashboard's cookie decided */
        return sret;
    if (!h) {
        int64_t n = 0;
        if (store_key_count(st, &n, err, sizeof err) != STORE_OK) {
            fprintf(stderr, "owlore serve: auth: %s\n", err);
            return reply_internal(req);
        }
        if (n > 0)
            return reply_unauthorized(req, "You didn't provide an API key. Send it in an "
                                           "Authorization header as 'Bearer YOUR_KEY'.");
        snprintf(req->owner, sizeof req->owner, "%s", HTTP_OWNER_DEFAULT);
        return MHD_YES;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return reply_unauthorized(req, "The Authorization header must be 'Bearer YOUR_KEY'.");
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    struct store_key k;
    int rc = strlen(key) < STORE_KEY_LEN ? store_key_lookup(st, key, &k, err, sizeof err)
                                         : STORE_NOTFOUND;
    if (rc == STORE_NOTFOUND)
        return reply_unauthorized(req, "Incorrect API key provided.");
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: auth: %s\n", err);
        return reply_internal(req);
    }
    snprintf(req->owner, sizeof req->owner, "%s", k.owner);
    store_key_clear(&k);
    return MHD_YES;
}
