/*
 * session.h: the dashboard's cookie sessions. A browser's EventSource
 * cannot send an Authorization header, so the dashboard trades its API key
 * once (POST /v1/dashboard/session, h_session.h) for a random session token
 * held in an HttpOnly, SameSite=Strict cookie, and auth.c accepts that
 * cookie in place of the key.
 *
 * Sessions live in memory (a restart signs everyone out): only the SHA-256
 * of a token is kept, with the tenant, the API key it was made from and an
 * expiry SESSION_TTL_S after creation. A session ends at its expiry, on
 * DELETE, or when its API key is revoked (checked at every use). Past
 * SESSION_MAX live sessions the one nearest its expiry is dropped.
 *
 * Cross-site request forgery: a request authenticated by the cookie with a
 * method other than GET or HEAD must carry SESSION_CSRF_HEADER: 1, which
 * a cross-site form cannot send (and a cross-site script only after a CORS
 * preflight this server never grants); without it the request is 403.
 */
#ifndef OWLORE_SESSION_H
#define OWLORE_SESSION_H

#include <stdint.h>

#include <microhttpd.h>

struct http_request;

#define SESSION_COOKIE "owlore_session"
#define SESSION_CSRF_HEADER "X-Owlore-CSRF"
#define SESSION_TTL_S (12 * 3600)
#define SESSION_MAX 1024
#define SESSION_TOKEN_LEN 65 /* 64 hex digits + NUL */

/* Starts a session for `owner` made from API key `key_id`: the token (to
 * be sent once, in the cookie) and the expiry (Unix seconds). 0, or -1
 * when no random bytes could be had. */
int session_create(const char *owner, const char *key_id, char token[SESSION_TOKEN_LEN],
                   int64_t *expires_at);
/* Ends the session of the request's cookie; 1 when there was one. */
int session_end(struct http_request *req);
/* The expiry of the request's live session cookie, or 0 when it has none. */
int64_t session_expiry(struct http_request *req);
/* The cookie half of auth.c: 0 when the request carries no live session
 * cookie (authentication goes on as without one); 1 when the cookie
 * decided, *ret then being MHD_YES with req->owner set, or a queued 403
 * (a state-changing request without SESSION_CSRF_HEADER) or 500. */
int session_authenticate(struct http_request *req, enum MHD_Result *ret);

#endif
