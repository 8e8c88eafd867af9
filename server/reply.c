/*
 * reply.c: JSON and error replies (see reply.h). A reply that cannot be
 * built (out of memory) degrades to a fixed 500 body held in static memory,
 * so an error path never needs an allocation that could fail again. Error
 * messages and params are made valid UTF-8 first: a format's %.Ns may cut
 * a client's multi-byte character in two, and that must stay a 4xx.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "idempotency.h"
#include "metrics.h"
#include "reply.h"
#include "utf8.h"

static const char internal_body[] =
    "{\"error\":{\"type\":\"server_error\",\"message\":\"The server had an internal error.\","
    "\"param\":null,\"code\":\"internal_error\"}}";

enum MHD_Result reply_response(struct http_request *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret = MHD_NO;
    if (!resp)
        return MHD_NO;
    if (MHD_add_response_header(resp, "x-request-id", req->id) == MHD_YES)
        ret = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        req->replied = 1;
        metrics_count_reply(status);
    }
    return ret;
}

/* Queues a JSON response from `text` (static or malloc'd, per `mode`) with an
 * optional extra header. */
static enum MHD_Result send_text(struct http_request *req, unsigned status, char *text,
                                 size_t len, enum MHD_ResponseMemoryMode mode,
                                 const char *hname, const char *hvalue)
{
    idem_record(req, status, text, len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(text);
        return MHD_NO;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") != MHD_YES ||
        (hname && MHD_add_response_header(resp, hname, hvalue) != MHD_YES)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    return reply_response(req, status, resp);
}

enum MHD_Result reply_internal(struct http_request *req)
{
    return send_text(req, MHD_HTTP_INTERNAL_SERVER_ERROR, (char *)internal_body,
                     sizeof internal_body - 1, MHD_RESPMEM_PERSISTENT, NULL, NULL);
}

static enum MHD_Result send_json(struct http_request *req, unsigned status, json_t *body,
                                 const char *hname, const char *hvalue)
{
    char *text;
    if (!body)
        return reply_internal(req);
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return reply_internal(req);
    return send_text(req, status, text, strlen(text), MHD_RESPMEM_MUST_FREE, hname, hvalue);
}

enum MHD_Result reply_json(struct http_request *req, unsigned status, json_t *body)
{
    return send_json(req, status, body, NULL, NULL);
}

enum MHD_Result reply_replay(struct http_request *req, unsigned status, const char *body)
{
    char *text = strdup(body);
    if (!text)
        return reply_internal(req);
    return send_text(req, status, text, strlen(text), MHD_RESPMEM_MUST_FREE,
                     "Idempotent-Replayed", "true");
}

static enum MHD_Result verror(struct http_request *req, unsigned status, const char *type,
                              const char *code, const char *param, const char *hname,
                              const char *hvalue, const char *fmt, va_list ap)
{
    char *text = NULL, pbuf[128];
    if (vasprintf(&text, fmt, ap) < 0)
        return reply_internal(req);
    utf8_repair(text);
    if (param) {
        snprintf(pbuf, sizeof pbuf, "%s", param);
        utf8_repair(pbuf);
        param = pbuf;
    }
    json_t *body = json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error", "type", type, "message",
                             text, "param", param, "code", code);
    free(text);
    return send_json(req, status, body, hname, hvalue);
}

/* An error reply with one extra header (none when hname is NULL). */
static enum MHD_Result error_hdr(struct http_request *req, unsigned status, const char *type,
                                 const char *code, const char *param, const char *hname,
                                 const char *hvalue, const char *fmt, ...) REPLY_PRINTF(8, 9);

static enum MHD_Result error_hdr(struct http_request *req, unsigned status, const char *type,
                                 const char *code, const char *param, const char *hname,
                                 const char *hvalue, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(req, status, type, code, param, hname, hvalue, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result reply_error(struct http_request *req, unsigned status, const char *type,
                            const char *code, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(req, status, type, code, param, NULL, NULL, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result reply_bad_request(struct http_request *req, const char *param, const char *code,
                                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(req, MHD_HTTP_BAD_REQUEST, "invalid_request_error", code, param,
                                 NULL, NULL, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result reply_unauthorized(struct http_request *req, const char *msg)
{
    return error_hdr(req, MHD_HTTP_UNAUTHORIZED, "invalid_request_error", "invalid_api_key", NULL,
                     MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer", "%s", msg);
}

enum MHD_Result reply_not_found(struct http_request *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(req, MHD_HTTP_NOT_FOUND, "invalid_request_error", "not_found",
                                 NULL, NULL, NULL, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result reply_method_not_allowed(struct http_request *req, const char *allow)
{
    return error_hdr(req, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                     "method_not_allowed", NULL, MHD_HTTP_HEADER_ALLOW, allow,
                     "Method %s is not allowed here; allowed: %s.", req->method, allow);
}

enum MHD_Result reply_conflict(struct http_request *req, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(req, MHD_HTTP_CONFLICT, "invalid_request_error", code, NULL, NULL,
                                 NULL, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result reply_too_large(struct http_request *req, size_t limit)
{
    return error_hdr(req, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error",
                     "request_too_large", NULL, NULL, NULL,
                     "The request body is larger than the %zu bytes this endpoint accepts.", limit);
}

enum MHD_Result reply_unsupported_media_type(struct http_request *req, const char *accepted)
{
    return error_hdr(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "invalid_request_error",
                     "unsupported_media_type", NULL, NULL, NULL,
                     "Unsupported Content-Type; this endpoint accepts %s.", accepted);
}

enum MHD_Result reply_rate_limited(struct http_request *req, unsigned retry_after_s)
{
    char retry[16];
    snprintf(retry, sizeof retry, "%u", retry_after_s);
    return error_hdr(req, MHD_HTTP_TOO_MANY_REQUESTS, "requests", "rate_limit_exceeded", NULL,
                     MHD_HTTP_HEADER_RETRY_AFTER, retry,
                     "Rate limit reached; retry after %u s.", retry_after_s);
}

enum MHD_Result reply_unavailable(struct http_request *req, unsigned retry_after_s)
{
    char retry[16];
    snprintf(retry, sizeof retry, "%u", retry_after_s);
    return error_hdr(req, MHD_HTTP_SERVICE_UNAVAILABLE, "server_error", "service_unavailable",
                     NULL, MHD_HTTP_HEADER_RETRY_AFTER, retry,
                     "The server is busy; retry after %u s.", retry_after_s);
}
