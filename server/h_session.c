/*
 * h_session.c: /v1/dashboard/session, the dashboard's sign-in (session.h).
 *
 * POST with `Authorization: Bearer <key>` starts a session for the key's
 * tenant and sets it as an HttpOnly, SameSite=Strict cookie (Path=/,
 * Max-Age SESSION_TTL_S). Without a key header: while the store has no key
 * (loopback-only mode) the answer says no sign-in is needed and sets no
 * cookie; otherwise (the request came with a cookie) it is 401, since only
 * an API key starts a session. GET is public, so that a page can ask
 * without an error whether it must sign in: it reads only the cookie, and
 * answers its tenant ("auth": "cookie"), the local tenant when the store
 * has no key ("auth": "none"), or "login_required": true with owner null.
 * DELETE ends the cookie's session and clears the cookie. Each answers a
 * dashboard.session object: {"object", "owner", "auth", "expires_at",
 * "login_required"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "h_session.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "session.h"
#include "store.h"

/* 1 when the store holds API keys, 0 when none, -1 on an error. */
static int keys_exist(void)
{
    int64_t n = 0;
    char err[512];
    if (store_key_count(service_get()->store, &n, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "owlore serve: session: %s\n", err);
        return -1;
    }
    return n > 0;
}

static json_t *session_json(const char *owner, const char *auth, int64_t expires_at,
                            int login_required)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:b}", "object", "dashboard.session", "owner", owner,
                     "auth", auth, "expires_at",
                     expires_at ? json_integer(expires_at) : json_null(), "login_required",
                     login_required);
}

/* Sends body as JSON with a Set-Cookie header. */
static enum MHD_Result reply_with_cookie(struct http_request *req, json_t *body,
                                         const char *set_cookie)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return reply_internal(req);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return reply_internal(req);
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") !=
            MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, set_cookie) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, MHD_HTTP_OK, resp);
}

enum MHD_Result session_post(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *h = http_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    char err[512], token[SESSION_TOKEN_LEN], cookie[256];
    int keys = keys_exist();
    if (keys < 0)
        return reply_internal(req);
    if (!h && !keys)
        return reply_json(req, MHD_HTTP_OK, session_json(req->owner, "none", 0, 0));
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return reply_unauthorized(req, "Sign in with an API key, sent as 'Authorization: "
                                       "Bearer YOUR_KEY'.");
    const char *key = h + 7;
    while (*key == ' ')
        key++;
    struct store_key k;
    int rc = strlen(key) < STORE_KEY_LEN
                 ? store_key_lookup(service_get()->store, key, &k, err, sizeof err)
                 : STORE_NOTFOUND;
    if (rc == STORE_NOTFOUND)
        return reply_unauthorized(req, "Incorrect API key provided.");
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: session: %s\n", err);
        return reply_internal(req);
    }
    int64_t expires_at = 0;
    int made = session_create(k.owner, k.id, token, &expires_at);
    json_t *body = made == 0 ? session_json(k.owner, "cookie", expires_at, 1) : NULL;
    store_key_clear(&k);
    if (made != 0)
        return reply_internal(req);
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict",
             SESSION_COOKIE, token, SESSION_TTL_S);
    return reply_with_cookie(req, body, cookie);
}

enum MHD_Result session_get(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    int keys = keys_exist();
    if (keys < 0)
        return reply_internal(req);
    enum MHD_Result ret;
    req->owner[0] = '\0'; /* a public route: set to the default tenant */
    if (session_authenticate(req, &ret) && !req->owner[0])
        return ret; /* an error reply was queued */
    if (req->owner[0])
        return reply_json(req, MHD_HTTP_OK,
                          session_json(req->owner, "cookie", session_expiry(req), keys));
    if (!keys)
        return reply_json(req, MHD_HTTP_OK, session_json(HTTP_OWNER_DEFAULT, "none", 0, 0));
    return reply_json(req, MHD_HTTP_OK,
                      json_pack("{s:s, s:n, s:s, s:n, s:b}", "object", "dashboard.session",
                                "owner", "auth", "none", "expires_at", "login_required", 1));
}

enum MHD_Result session_delete(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    int keys = keys_exist();
    if (keys < 0)
        return reply_internal(req);
    session_end(req);
    char cookie[128];
    snprintf(cookie, sizeof cookie, "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
             SESSION_COOKIE);
    return reply_with_cookie(req, session_json(req->owner, "none", 0, keys), cookie);
}
