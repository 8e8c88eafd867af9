/*
 * routes.h: the service's static route table and the matcher that maps a raw
 * request path to a route and its path parameters.
 *
 * A pattern is a literal path whose segments may be parameters written
 * "{name}", e.g. "/v1/fine_tuning/jobs/{id}/events". Matching works on the
 * path as received (before percent-decoding), segment by segment. A
 * parameter must be 1..ROUTE_PARAM_MAX characters of [A-Za-z0-9_-]; anything
 * else (a '.', '%2F', '..', an overlong id) is refused before a handler sees
 * it, so parameters are safe as lookup keys but are never to be joined into
 * file paths. A file-name parameter, written "{name.}", is such an id, one
 * '.' and an extension of 1..ROUTE_EXT_MAX characters of [a-z0-9] (e.g.
 * "app.js"), ROUTE_PARAM_MAX characters in all: no '/', no leading '.', so it names an entry of one directory
 * and nothing above it. The first route in table order whose shape and method match
 * wins; HEAD matches GET routes.
 */
#ifndef OWLORE_ROUTES_H
#define OWLORE_ROUTES_H

#include <stddef.h>

#include <microhttpd.h>

struct http_request;

/* Answers the request by queueing exactly one reply (reply.h); MHD_NO closes
 * the connection without one. */
typedef enum MHD_Result (*route_handler)(struct http_request *req);

/* A route that streams its body (uploads) instead of having it gathered in
 * memory. start runs in the headers call, after the size checks, and may
 * queue an early reply (415, ...) or set up state in req->ctx (released by
 * req->ctx_free when the request ends); chunk receives each body piece as
 * it arrives (MHD_NO closes the connection); the handler runs after the
 * last one, with req->body NULL. The cap is max_body bounded by
 * http_config.max_upload instead of http_config.max_body. */
struct route_stream {
    enum MHD_Result (*start)(struct http_request *req);
    enum MHD_Result (*chunk)(struct http_request *req, const char *data, size_t n);
};

struct route {
    const char *method;     /* "GET", "POST", ... */
    const char *pattern;    /* NULL ends a table */
    route_handler handler;
    size_t max_body;        /* bytes of body accepted; 0: none */
    const struct route_stream *stream; /* NULL: the body is gathered */
    int is_public;          /* 1: answered without authentication */
};

/* The service's routes. */
extern const struct route routes_default[];

#define ROUTE_PARAMS_MAX 4
#define ROUTE_PARAM_MAX 64 /* an id's characters; a file name's stem */
#define ROUTE_EXT_MAX 8
#define ROUTE_ALLOW_MAX 64

enum route_status {
    ROUTE_FOUND,
    ROUTE_NOT_FOUND,          /* no pattern has this shape: 404 */
    ROUTE_METHOD_NOT_ALLOWED, /* the shape exists for other methods: 405, allow */
    ROUTE_BAD_PARAM,          /* a parameter breaks the id rules: 400, bad_param */
};

struct route_match {
    const struct route *route;
    int nparams;
    char params[ROUTE_PARAMS_MAX][ROUTE_PARAM_MAX + 1];
    char allow[ROUTE_ALLOW_MAX];        /* "GET, HEAD, POST" for 405 */
    char bad_param[ROUTE_PARAM_MAX + 1]; /* the parameter's name for 400 */
};

/* Matches `method` and the raw `path` (no query) against `table`. */
enum route_status route_match(const struct route *table, const char *method, const char *path,
                              struct route_match *m);
/* Value of parameter `name` in a found match, or NULL. */
const char *route_param(const struct route_match *m, const char *name);

#endif
