/*
 * request_json.h: the JSON object body of a POST. The Content-Type must be
 * application/json (parameters such as charset allowed): a browser form or
 * a cross-site "simple request" (text/plain) cannot reach a JSON endpoint,
 * which matters while the server runs without API keys. The body must parse
 * as one JSON object with no duplicate keys, its arrays and objects nested
 * at most REQUEST_JSON_MAX_DEPTH deep (jansson alone allows 2048).
 */
#ifndef OWLORE_REQUEST_JSON_H
#define OWLORE_REQUEST_JSON_H

#include <jansson.h>
#include <microhttpd.h>

struct http_request;

#define REQUEST_JSON_MAX_DEPTH 64

/* The parsed body (new reference), or NULL after queueing the reply into
 * *ret: 415 for another media type, 400 invalid_json otherwise (too deep
 * included). */
json_t *request_json_object(struct http_request *req, enum MHD_Result *ret);

#endif
