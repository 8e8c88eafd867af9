/*
 * reply.h: every reply the service sends goes through here, so each one
 * carries x-request-id and JSON bodies carry Content-Type application/json.
 *
 * Errors use the OpenAI shape {"error":{"type","message","param","code"}}
 * (param and code null when not given). Each function queues one response on
 * the request's connection and returns what MHD_queue_response returned;
 * the access handler passes that back to MHD.
 */
#ifndef OWLORE_REPLY_H
#define OWLORE_REPLY_H

#include <jansson.h>
#include <microhttpd.h>

struct http_request;

#define REPLY_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Queues `resp` with `status` after adding x-request-id, then releases the
 * caller's reference. For streamed and file bodies built by handlers. */
enum MHD_Result reply_response(struct http_request *req, unsigned status, struct MHD_Response *resp);
/* Sends `body` as JSON and takes ownership of it; NULL (a failed build)
 * becomes a 500. */
enum MHD_Result reply_json(struct http_request *req, unsigned status, json_t *body);
/* Sends a stored JSON reply again (idempotency.h), marked with the header
 * Idempotent-Replayed: true. */
enum MHD_Result reply_replay(struct http_request *req, unsigned status, const char *body);
/* An error reply; `param` and `code` may be NULL. */
enum MHD_Result reply_error(struct http_request *req, unsigned status, const char *type,
                            const char *code, const char *param, const char *fmt, ...)
    REPLY_PRINTF(6, 7);

/* 400 invalid_request_error; `param` names the offending field or NULL. */
enum MHD_Result reply_bad_request(struct http_request *req, const char *param, const char *code,
                                  const char *fmt, ...) REPLY_PRINTF(4, 5);
/* 401 with WWW-Authenticate: Bearer. */
enum MHD_Result reply_unauthorized(struct http_request *req, const char *msg);
enum MHD_Result reply_not_found(struct http_request *req, const char *fmt, ...) REPLY_PRINTF(2, 3);
/* 405 with Allow: `allow` (e.g. "GET, HEAD"). */
enum MHD_Result reply_method_not_allowed(struct http_request *req, const char *allow);
enum MHD_Result reply_conflict(struct http_request *req, const char *code, const char *fmt, ...)
    REPLY_PRINTF(3, 4);
/* 413 naming the limit in bytes. */
enum MHD_Result reply_too_large(struct http_request *req, size_t limit);
/* 415 naming the accepted media type. */
enum MHD_Result reply_unsupported_media_type(struct http_request *req, const char *accepted);
/* 429 with Retry-After: `retry_after_s`. */
enum MHD_Result reply_rate_limited(struct http_request *req, unsigned retry_after_s);
/* 500 server_error; the details belong in the log, not the reply. */
enum MHD_Result reply_internal(struct http_request *req);
/* 503 with Retry-After: `retry_after_s`. */
enum MHD_Result reply_unavailable(struct http_request *req, unsigned retry_after_s);

#endif
