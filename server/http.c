/*
 * http.c: the libmicrohttpd daemon and the life of one request (see http.h).
 *
 * MHD calls us four ways per request:
 *   on_uri        when the request line is read: allocate the state and keep
 *                 the raw path (MHD decodes the URL it hands the access
 *                 handler, turning %2F into '/' and %00 into a terminator);
 *   on_request    first with the headers complete (admit: path, route,
 *                 framing and size checks, which may answer at once; MHD
 *                 itself has already answered a malformed Content-Length,
 *                 oversized headers (431) or URI (414)), then
 *                 once per body chunk (take_body), then with no data left
 *                 (run the handler, or send the deferred 413);
 *   on_completed  when the request ends, however it ended: free the state.
 * A reply queued in the first call makes MHD skip "100 Continue", drop the
 * body unread and close the connection after the reply.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conn_park.h"
#include "http.h"
#include "idempotency.h"
#include "reply.h"

struct http_server {
    struct MHD_Daemon *daemon;
    struct http_config cfg;
    unsigned seed;                      /* random per start, prefixes request ids */
    atomic_ullong next_id;
};

void http_config_defaults(struct http_config *cfg)
{
    *cfg = (struct http_config){
        .bind_addr = "127.0.0.1",
        .port = 8080,
        .threads = 4,
        .max_connections = 4096,
        .max_per_ip = 32,
        .timeout_s = 15,
        .max_header_bytes = 64 << 10,
        .max_body = 1 << 20,
        .max_upload = (size_t)512 << 20,
        .routes = routes_default,
    };
}

const char *http_query(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_param(const struct http_request *req, const char *name)
{
    return route_param(&req->match, name);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct http_server *srv = cls;
    struct http_request *req = calloc(1, sizeof *req);
    if (!req)
        return NULL;
    req->path = strndup(uri, strcspn(uri, "?"));
    if (!req->path) {
        free(req);
        return NULL;
    }
    req->conn = conn;
    snprintf(req->id, sizeof req->id, "req_%08x%016llx", srv->seed,
             (unsigned long long)atomic_fetch_add(&srv->next_id, 1));
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_request *req = *con_cls;
    (void)cls, (void)conn, (void)toe;
    if (!req)
        return;
    idem_abandon(req);
    if (req->ctx_free)
        req->ctx_free(req->ctx);
    free(req->body);
    free(req->path);
    free(req);
    *con_cls = NULL;
}

/* A path we route on: starts with '/', printable ASCII only (so it can be
 * echoed in a JSON message). */
static int path_ok(const char *p)
{
    if (p[0] != '/')
        return 0;
    for (; *p; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return 0;
    return 1;
}

struct framing {
    int content_length, transfer_encoding, host;
};

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct framing *f = cls;
    (void)kind, (void)value;
    f->content_length += strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0;
    f->transfer_encoding += strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0;
    f->host += strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0;
    return MHD_YES;
}

/* Strict decimal: digits only, no sign, no overflow. */
static int parse_length(const char *s, size_t *out)
{
    size_t n = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || n > (SIZE_MAX - 9) / 10)
            return -1;
        n = n * 10 + (size_t)(*s - '0');
    }
    *out = n;
    return 0;
}

static int method_has_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

/* The headers call: route the request and check its framing and size. A
 * failed check is answered here, before any body byte is read. */
static enum MHD_Result admit(const struct http_server *srv, struct http_request *req,
                             const char *version)
{
    struct framing f = {0, 0, 0};
    const char *cl, *te;
    size_t len;

    if (!path_ok(req->path))
        return reply_bad_request(req, NULL, "invalid_path", "The request path is malformed.");
    switch (route_match(srv->cfg.routes, req->method, req->path, &req->match)) {
    case ROUTE_NOT_FOUND:
        return reply_not_found(req, "Invalid URL (%s %.200s).", req->method, req->path);
    case ROUTE_METHOD_NOT_ALLOWED:
        return reply_method_not_allowed(req, req->match.allow);
    case ROUTE_BAD_PARAM:
        return reply_bad_request(req, req->match.bad_param, "invalid_id",
                                 "Invalid %s in the path: expected 1 to %d characters of "
                                 "A-Z, a-z, 0-9, '_' and '-'.",
                                 req->match.bad_param, ROUTE_PARAM_MAX);
    case ROUTE_FOUND:
        break;
    }
    if (req->match.route->is_public || !srv->cfg.authenticate) {
        snprintf(req->owner, sizeof req->owner, "%s", HTTP_OWNER_DEFAULT);
    } else {
        enum MHD_Result ret = srv->cfg.authenticate(req);
        if (!req->owner[0])
            return ret;
    }

    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_framing, &f);
    if (f.content_length > 1 || f.transfer_encoding > 1 || f.host > 1 ||
        (f.content_length && f.transfer_encoding))
        return reply_bad_request(req, NULL, "invalid_framing",
                                 "Repeated or conflicting Content-Length, Transfer-Encoding or "
                                 "Host headers.");
    if (!f.host && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
        return reply_bad_request(req, NULL, "invalid_framing", "HTTP/1.1 needs a Host header.");
    te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te && strcasecmp(te, "chunked") != 0)
        return reply_bad_request(req, NULL, "invalid_framing",
                                 "Only the chunked Transfer-Encoding is supported.");
    const struct route *route = req->match.route;
    size_t ceiling = route->stream ? srv->cfg.max_upload : srv->cfg.max_body;
    req->max_body = route->max_body < ceiling ? route->max_body : ceiling;
    cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl && !te && req->max_body > 0 && method_has_body(req->method))
        return reply_error(req, MHD_HTTP_LENGTH_REQUIRED, "invalid_request_error",
                           "length_required", NULL,
                           "A request body needs a Content-Length or chunked encoding.");
    if (cl && parse_length(cl, &len) != 0)
        return reply_bad_request(req, NULL, "invalid_framing", "Malformed Content-Length.");
    if (cl && len > req->max_body)
        return reply_too_large(req, req->max_body);
    if (route->stream)
        return route->stream->start ? route->stream->start(req) : MHD_YES;
    if (cl && len > 0) {
        req->body = malloc(len + 1);
        if (!req->body)
            return reply_internal(req);
        req->body_size = len + 1;
    }
    return MHD_YES;
}

/* One body chunk: append it (or hand it to a streaming route), or past the
 * cap drop it (and everything after it) until HTTP_DISCARD_MAX, where the
 * connection is closed. No reply can be queued from here; the 413 goes out
 * after the last chunk. */
static enum MHD_Result take_body(struct http_request *req, const char *data, size_t n)
{
    if (req->dropped || n > req->max_body - req->body_len) {
        req->dropped += n;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_size = 0;
        return req->dropped > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (req->match.route->stream) {
        req->body_len += n;
        return req->match.route->stream->chunk(req, data, n);
    }
    size_t need = req->body_len + n + 1;
    if (need > req->body_size) {
        size_t size = 2 * req->body_size > need ? 2 * req->body_size : need;
        if (size > req->max_body + 1)
            size = req->max_body + 1;
        char *body = realloc(req->body, size);
        if (!body)
            return MHD_NO;
        req->body = body;
        req->body_size = size;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_request *req = *con_cls;
    (void)conn, (void)url;
    if (!req)
        return MHD_NO; /* on_uri ran out of memory */
    if (!req->started) {
        req->started = 1;
        req->method = method;
        return admit(cls, req, version);
    }
    if (*upload_data_size) {
        enum MHD_Result ret = take_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ret;
    }
    if (req->dropped)
        return reply_too_large(req, req->max_body);
    if (req->dispatched) {
        fprintf(stderr, "owlore serve: the handler for %s %s queued no reply\n", req->method,
                req->match.route->pattern);
        return reply_internal(req);
    }
    req->dispatched = 1;
    if (strcmp(req->method, "POST") == 0 && !req->match.route->is_public &&
        http_header(req, "Idempotency-Key")) {
        enum MHD_Result ret = idem_begin(req);
        if (req->replied || ret != MHD_YES)
            return ret;
    }
    return req->match.route->handler(req);
}

struct http_server *http_server_start(const struct http_config *cfg, char *err, size_t errlen)
{
    struct http_server *srv = calloc(1, sizeof *srv);
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } addr;
    /* suspend/resume: server-sent event streams park while idle (conn_park.h) */
    unsigned flags =
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;

    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    if (!srv->cfg.bind_addr)
        srv->cfg.bind_addr = "127.0.0.1";
    if (!srv->cfg.routes)
        srv->cfg.routes = routes_default;
    memset(&addr, 0, sizeof addr);
    if (inet_pton(AF_INET, srv->cfg.bind_addr, &addr.v4.sin_addr) == 1) {
        addr.v4.sin_family = AF_INET;
        addr.v4.sin_port = htons(cfg->port);
    } else if (inet_pton(AF_INET6, srv->cfg.bind_addr, &addr.v6.sin6_addr) == 1) {
        addr.v6.sin6_family = AF_INET6;
        addr.v6.sin6_port = htons(cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "bind address '%s' is not an IPv4 or IPv6 address",
                 srv->cfg.bind_addr);
        free(srv);
        return NULL;
    }
    if (getrandom(&srv->seed, sizeof srv->seed, 0) != (ssize_t)sizeof srv->seed)
        srv->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    atomic_init(&srv->next_id, 0);
    if (conn_park_start(err, errlen) != 0) {
        free(srv);
        return NULL;
    }

    srv->daemon = MHD_start_daemon(
        flags, cfg->port, NULL, NULL, on_request, srv,
        MHD_OPTION_SOCK_ADDR, &addr.sa,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->max_header_bytes,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot listen on %s port %u", srv->cfg.bind_addr,
                 (unsigned)cfg->port);
        conn_park_drain();
        conn_park_stop();
        free(srv);
        return NULL;
    }
    return srv;
}

uint16_t http_server_port(const struct http_server *srv)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void http_server_stop(struct http_server *srv)
{
    if (!srv)
        return;
    conn_park_drain();
    MHD_stop_daemon(srv->daemon);
    conn_park_stop();
    free(srv);
}
