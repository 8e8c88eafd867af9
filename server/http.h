/*
 * http.h: the HTTP core of `owlore serve`: a libmicrohttpd daemon, the
 * per-request state, and the rules every request passes before a handler
 * runs.
 *
 * The daemon runs an internal epoll thread pool with explicit connection,
 * per-IP, timeout, header (connection memory) and body limits. Each request
 * gets a struct http_request when its request line arrives (MHD's URI log
 * callback, which sees the path before MHD percent-decodes it). When the
 * headers are in, the raw path is checked and routed (routes.h), the body
 * framing is checked, and a declared Content-Length over the route's cap is
 * answered 413 at once, before any body is read. The body is then gathered
 * up to the cap, or handed piece by piece to a streaming route (routes.h,
 * struct route_stream); the handler runs once, after the last byte, and
 * must queue exactly one reply (reply.h). MHD's completion callback frees
 * the state.
 */
#ifndef OWLORE_HTTP_H
#define OWLORE_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "routes.h"

struct http_config {
    const char *bind_addr;    /* IPv4 or IPv6 literal; default "127.0.0.1" */
    uint16_t port;            /* 0: any free port (see http_server_port) */
    unsigned threads;         /* epoll thread pool size */
    unsigned max_connections; /* all connections together */
    unsigned max_per_ip;      /* connections from one address; more are closed */
    unsigned timeout_s;       /* idle seconds before a connection is closed */
    size_t max_header_bytes;  /* MHD's per-connection memory pool: bounds the
                                 request line and headers (MHD answers 431 or
                                 414 past it) and the body chunk size */
    size_t max_body;          /* ceiling over every gathered route's max_body */
    size_t max_upload;        /* ceiling over every streamed route's max_body */
    const struct route *routes; /* table ended by a NULL pattern; default routes_default */
    /* Runs after routing, before the body is read, for every route not
     * marked public: sets req->owner, or queues a reply (401) and returns
     * it. NULL: every request belongs to HTTP_OWNER_DEFAULT. */
    enum MHD_Result (*authenticate)(struct http_request *req);
};

/* The tenant of requests when no authenticate hook is set. */
#define HTTP_OWNER_DEFAULT "local"

/* Fills the defaults: 127.0.0.1:8080, 4 threads, 4096 connections, 32 per IP,
 * 15 s timeout, 64 KiB headers, 1 MiB bodies, 512 MiB uploads, routes_default. */
void http_config_defaults(struct http_config *cfg);

/* Bodies past their cap with no declared length (chunked) cannot be answered
 * mid-upload (MHD refuses a reply while body data is being delivered), so
 * the rest is read and dropped and 413 sent at the end; past this many
 * dropped bytes the connection is closed without a reply instead. */
#define HTTP_DISCARD_MAX ((size_t)1 << 20)

struct http_request {
    struct MHD_Connection *conn;
    const char *method;         /* as sent; HEAD is routed as GET */
    char *path;                 /* raw path as received, without the query */
    char id[32];                /* "req_" + 24 hex digits, sent as x-request-id */
    struct route_match match;   /* the route and its path parameters */
    char owner[64];             /* the tenant this request acts for (auth) */
    char idem_key[256];         /* its Idempotency-Key, once reserved */
    int idem_reserved;          /* idempotency.h: a reply is to be recorded */
    size_t max_body;            /* the cap for this request */
    char *body;                 /* NUL-terminated; NULL when there is none
                                   or the route streams it */
    size_t body_len;            /* bytes received (gathered or streamed) */
    size_t body_size;           /* bytes allocated for body */
    size_t dropped;             /* bytes read past the cap and dropped */
    int started;                /* the headers call has run */
    int dispatched;             /* the handler has run */
    int replied;                /* a reply has been queued */
    void *ctx;                  /* a streaming route's state */
    void (*ctx_free)(void *ctx); /* called when the request ends, if set */
};

/* Value of query argument `name` (percent-decoded), or NULL. */
const char *http_query(const struct http_request *req, const char *name);
/* Value of request header `name` (case-insensitive), or NULL. */
const char *http_header(const struct http_request *req, const char *name);
/* Path parameter `name` of the matched route (e.g. "id"), or NULL. */
const char *http_param(const struct http_request *req, const char *name);

struct http_server;

/* Starts the daemon; NULL with a message in err on failure. */
struct http_server *http_server_start(const struct http_config *cfg, char *err, size_t errlen);
/* The port the daemon is bound to (the chosen one when cfg.port was 0). */
uint16_t http_server_port(const struct http_server *srv);
/* Stops the daemon, closing every connection, and frees it. NULL is a no-op. */
void http_server_stop(struct http_server *srv);

#endif
