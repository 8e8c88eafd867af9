/*
 * auth.h: who a request acts for. The HTTP core calls auth_request (its
 * authenticate hook) for every route that is not public.
 *
 * A request with `Authorization: Bearer <key>` acts for the tenant of that
 * live API key (store_key_lookup: hashed, constant-time compare); a key that
 * is unknown, revoked or malformed is 401 invalid_api_key. A request with no
 * key is 401 as soon as any key exists; while none does (the server then
 * listens on loopback only), it acts for the local tenant, HTTP_OWNER_DEFAULT.
 * Keys are counted per request, so `owlore keys create` beside a running
 * server takes effect at once. Without an Authorization header, a live
 * dashboard session cookie (session.h) stands for its key, with the
 * X-Owlore-CSRF rule for requests that change anything.
 */
#ifndef OWLORE_AUTH_H
#define OWLORE_AUTH_H

#include <microhttpd.h>

struct http_request;

enum MHD_Result auth_request(struct http_request *req);

#endif
