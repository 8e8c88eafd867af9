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

/* 0 when every key of the object `body` is in `known` (NULL-terminated),
 * else -1 after queueing into *ret a 400 unknown_parameter naming the first
 * other key. */
int request_json_known(struct http_request *req, json_t *body, const char *const *known,
                       enum MHD_Result *ret);
/* The body's optional string field `key`: 0 with *out (NULL when absent or
 * null, else borrowed from body), or -1 after queueing into *ret a 400
 * invalid_type ("'<key>' must be a string."). */
int request_json_string(struct http_request *req, json_t *body, const char *key,
                        const char **out, enum MHD_Result *ret);

#endif
