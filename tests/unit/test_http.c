/*
 * test_http.c: the HTTP core (server/http.c, routes.c, reply.c) driven over
 * loopback: libcurl for ordinary requests, a raw socket where the test must
 * control the bytes (unnormalised paths, missing or repeated length headers,
 * headers sent without their body). One server runs the default route table
 * (healthz, 404, 405); a second runs a test table with a small body cap.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http.h"
#include "reply.h"
#include "routes.h"
#include "test.h"

#define CAP 1024

struct resp {
    long status;
    CURLcode rc;
    char body[16384];
    size_t len;
    char headers[8192];
    size_t hlen;
    size_t sent; /* body bytes curl read from us */
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = sz * n, room = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = sz * n, room = sizeof r->headers - 1 - r->hlen;
    memcpy(r->headers + r->hlen, p, k < room ? k : room);
    r->hlen += k < room ? k : room;
    r->headers[r->hlen] = '\0';
    return k;
}

/* Value of response header `name` (of the last response) in a static buffer, or NULL. */
static const char *resp_header(const struct resp *r, const char *name)
{
    static char val[256];
    size_t nl = strlen(name);
    for (const char *line = r->headers; *line; line = strchr(line, '\n') + 1) {
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            size_t vl;
            v += strspn(v, " ");
            vl = strcspn(v, "\r\n");
            snprintf(val, sizeof val, "%.*s", (int)vl, v);
            return val;
        }
        if (!strchr(line, '\n'))
            break;
    }
    return NULL;
}

/* Body source for uploads: `total` bytes of 'x', counted in r->sent. */
struct upload {
    size_t total, done;
    struct resp *r;
};

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
    struct upload *u = ud;
    size_t k = sz * n < u->total - u->done ? sz * n : u->total - u->done;
    memset(p, 'x', k);
    u->done += k;
    u->r->sent += k;
    return k;
}

enum { PLAIN = 0, CHUNKED = 1, EXPECT = 2 };

/* One request to 127.0.0.1:port. A body of `upload` bytes is sent with a
 * Content-Length, or chunked, or with Expect: 100-continue. */
static void request(CURL *c, uint16_t port, const char *method, const char *path,
                    size_t upload, int mode, struct curl_slist *extra, struct resp *r)
{
    char url[1024];
    struct upload u = {upload, 0, r};
    struct curl_slist *h = NULL;
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (upload || strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &u);
        if (mode == CHUNKED)
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
        else
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)upload);
        h = curl_slist_append(h, mode == EXPECT ? "Expect: 100-continue" : "Expect:");
    }
    for (struct curl_slist *e = extra; e; e = e->next)
        h = curl_slist_append(h, e->data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
}

/* Sends `text` on a fresh connection (no shutdown of our side, so a body the
 * headers announce stays pending), reads until the server closes or 5 s
 * pass. Returns the status code of the reply, 0 when none came. */
static int raw(uint16_t port, const char *text, char *out, size_t outsz)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0;
    size_t got = 0;
    ssize_t k;
    out[0] = '\0';
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    send(fd, text, strlen(text), MSG_NOSIGNAL);
    while (got + 1 < outsz && (k = recv(fd, out + got, outsz - 1 - got, 0)) > 0)
        got += (size_t)k;
    out[got] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.%*d %d", &status);
    return status;
}

/* 1 when `body` is {"error":{"type":str,"message":str,"param":str|null,"code":str|null}}. */
static int error_shape(const char *body, const char *want_code, const char *want_param)
{
    json_error_t e;
    json_t *root = json_loads(body, 0, &e), *err = json_object_get(root, "error");
    json_t *param = json_object_get(err, "param"), *code = json_object_get(err, "code");
    int ok = json_is_object(err) && json_is_string(json_object_get(err, "type")) &&
             json_is_string(json_object_get(err, "message")) && param && code &&
             (json_is_null(param) || json_is_string(param)) &&
             (json_is_null(code) || json_is_string(code)) && json_object_size(err) == 4;
    if (ok && want_code)
        ok = json_is_string(code) && strcmp(json_string_value(code), want_code) == 0;
    if (ok && want_param)
        ok = json_is_string(param) && strcmp(json_string_value(param), want_param) == 0;
    json_decref(root);
    return ok;
}

/* The test routes. */
static enum MHD_Result echo_post(struct http_request *req)
{
    return reply_json(req, MHD_HTTP_OK, json_pack("{s:I, s:b}", "len", (json_int_t)req->body_len,
                                                  "all_x", req->body_len == 0 ||
                                                      strspn(req->body, "x") == req->body_len));
}

static enum MHD_Result events_get(struct http_request *req)
{
    return reply_json(req, MHD_HTTP_OK, json_pack("{s:s}", "id", http_param(req, "id")));
}

static enum MHD_Result checkpoint_get(struct http_request *req)
{
    return reply_json(req, MHD_HTTP_OK, json_pack("{s:s, s:s}", "id", http_param(req, "id"),
                                                  "checkpoint", http_param(req, "checkpoint_id")));
}

static enum MHD_Result silent_get(struct http_request *req)
{
    (void)req;
    return MHD_YES;
}

static enum MHD_Result teapot_get(struct http_request *req)
{
    return reply_rate_limited(req, 7);
}

static const struct route test_routes[] = {
    {"POST", "/echo", echo_post, CAP, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}/events", events_get, 0, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}/checkpoints/{checkpoint_id}/content", checkpoint_get, 0,
     NULL, 0},
    {"DELETE", "/v1/fine_tuning/jobs/{id}/events", events_get, 0, NULL, 0},
    {"GET", "/silent", silent_get, 0, NULL, 0},
    {"GET", "/limited", teapot_get, 0, NULL, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

static struct http_server *start(const struct route *routes, size_t header_bytes)
{
    struct http_config cfg;
    char err[256];
    struct http_server *s;
    http_config_defaults(&cfg);
    cfg.port = 0;
    cfg.routes = routes;
    cfg.max_header_bytes = header_bytes;
    s = http_server_start(&cfg, err, sizeof err);
    if (!s)
        printf("server start failed: %s\n", err);
    return s;
}

static void test_healthz(CURL *c, uint16_t port)
{
    struct resp r;
    test_begin("healthz_200_json");
    request(c, port, "GET", "/healthz", 0, PLAIN, NULL, &r);
    CHECK(r.rc == CURLE_OK);
    CHECK_MSG(r.status == 200, "status %ld", r.status);
    CHECK_MSG(strcmp(r.body, "{\"status\":\"ok\"}") == 0, "body %s", r.body);
    CHECK(resp_header(&r, "Content-Type") &&
          strcmp(resp_header(&r, "Content-Type"), "application/json") == 0);
    CHECK(resp_header(&r, "x-request-id") && strncmp(resp_header(&r, "x-request-id"), "req_", 4) == 0);
    request(c, port, "HEAD", "/healthz", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 200 && r.len == 0, "HEAD: status %ld len %zu", r.status, r.len);
    test_end();
}

static void test_not_found(CURL *c, uint16_t port)
{
    static const char *const paths[] = {"/index.html", "/nope", "/healthz/", "/v1/nope", "/HEALTHZ",
                                        "//healthz"};
    struct resp r;
    test_begin("unknown_path_404_error_shape");
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        request(c, port, "GET", paths[i], 0, PLAIN, NULL, &r);
        CHECK_MSG(r.status == 404, "%s: status %ld", paths[i], r.status);
        CHECK_MSG(error_shape(r.body, "not_found", NULL), "%s: body %s", paths[i], r.body);
        CHECK(resp_header(&r, "x-request-id") != NULL);
    }
    test_end();
}

static void test_method_not_allowed(CURL *c, uint16_t port, uint16_t tport)
{
    struct resp r;
    const char *allow;
    test_begin("wrong_method_405_allow");
    request(c, port, "POST", "/healthz", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 405, "status %ld", r.status);
    allow = resp_header(&r, "Allow");
    CHECK_MSG(allow && strcmp(allow, "GET, HEAD") == 0, "Allow: %s", allow ? allow : "(none)");
    CHECK_MSG(error_shape(r.body, "method_not_allowed", NULL), "body %s", r.body);
    request(c, tport, "PUT", "/v1/fine_tuning/jobs/abc/events", 0, PLAIN, NULL, &r);
    allow = resp_header(&r, "Allow");
    CHECK_MSG(r.status == 405 && allow && strcmp(allow, "GET, HEAD, DELETE") == 0,
              "status %ld Allow: %s", r.status, allow ? allow : "(none)");
    request(c, tport, "DELETE", "/v1/fine_tuning/jobs/abc/events", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 200, "DELETE status %ld", r.status);
    test_end();
}

static void test_body_limits(CURL *c, uint16_t port)
{
    struct resp r;
    char out[4096];
    test_begin("body_within_cap_reaches_handler");
    request(c, port, "POST", "/echo", CAP, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 200 && strcmp(r.body, "{\"len\":1024,\"all_x\":true}") == 0,
              "status %ld body %s", r.status, r.body);
    request(c, port, "POST", "/echo", 1000, CHUNKED, NULL, &r);
    CHECK_MSG(r.status == 200 && strcmp(r.body, "{\"len\":1000,\"all_x\":true}") == 0,
              "chunked: status %ld body %s", r.status, r.body);
    request(c, port, "POST", "/echo", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 200 && strcmp(r.body, "{\"len\":0,\"all_x\":true}") == 0,
              "empty: status %ld body %s", r.status, r.body);
    test_end();

    test_begin("declared_length_over_cap_413_before_body");
    request(c, port, "POST", "/echo", 64 << 10, EXPECT, NULL, &r);
    CHECK_MSG(r.status == 413, "status %ld", r.status);
    CHECK_MSG(r.sent == 0, "curl sent %zu body bytes", r.sent);
    CHECK_MSG(error_shape(r.body, "request_too_large", NULL), "body %s", r.body);
    request(c, port, "POST", "/echo", CAP + 1, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 413, "cap+1 without Expect: status %ld", r.status);
    /* headers alone, the 10 MB body never sent: the reply must still come */
    CHECK_MSG(raw(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n", out,
                  sizeof out) == 413,
              "raw reply: %.80s", out);
    test_end();

    test_begin("chunked_over_cap_413");
    request(c, port, "POST", "/echo", 64 << 10, CHUNKED, NULL, &r);
    CHECK_MSG(r.status == 413, "status %ld rc %d", r.status, (int)r.rc);
    CHECK_MSG(error_shape(r.body, "request_too_large", NULL), "body %s", r.body);
    request(c, port, "POST", "/echo", CAP + 1, CHUNKED, NULL, &r);
    CHECK_MSG(r.status == 413, "cap+1: status %ld", r.status);
    /* past the discard allowance the connection is closed without a reply */
    request(c, port, "POST", "/echo", HTTP_DISCARD_MAX + (256 << 10), CHUNKED, NULL, &r);
    CHECK_MSG(r.rc != CURLE_OK && r.status == 0, "huge chunked: rc %d status %ld", (int)r.rc,
              r.status);
    test_end();

    test_begin("bad_lengths_411_400");
    CHECK_MSG(raw(port, "POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", out, sizeof out) == 411,
              "no length: %.80s", out);
    CHECK_MSG(raw(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                        "Content-Length: 3\r\n\r\nabc", out, sizeof out) == 400,
              "two Content-Length: %.80s", out);
    CHECK_MSG(raw(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", out,
                  sizeof out) == 400,
              "Content-Length and chunked: %.80s", out);
    CHECK_MSG(raw(port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3x\r\n\r\nabc", out,
                  sizeof out) == 400,
              "bad Content-Length: %.80s", out);
    CHECK_MSG(raw(port, "POST /echo HTTP/1.1\r\nHost: t\r\nHost: u\r\nContent-Length: 3\r\n\r\nabc",
                  out, sizeof out) == 400,
              "two Host: %.80s", out);
    CHECK_MSG(raw(port, "GET /v1/fine_tuning/jobs/a/events HTTP/1.1\r\n\r\n", out, sizeof out) == 400,
              "HTTP/1.1 without Host: %.80s", out);
    CHECK_MSG(raw(port, "GET /v1/fine_tuning/jobs/a/events HTTP/1.0\r\n\r\n", out, sizeof out) == 200,
              "HTTP/1.0 without Host: %.80s", out);
    CHECK_MSG(raw(port, "GET /v1/fine_tuning/jobs/a/events HTTP/1.1\r\nHost: t\r\n"
                        "Content-Length: 1\r\n\r\nx", out, sizeof out) == 413,
              "body on a route without one: %.80s", out);
    test_end();
}

static void test_path_params(CURL *c, uint16_t port)
{
    static const char *const bad[] = {
        "/v1/fine_tuning/jobs/../events",
        "/v1/fine_tuning/jobs/a%2Fb/events",
        "/v1/fine_tuning/jobs/%2e%2e/events",
        "/v1/fine_tuning/jobs/..%2F..%2Fetc/events",
        "/v1/fine_tuning/jobs/a%00b/events",
        "/v1/fine_tuning/jobs/a.b/events",
        "/v1/fine_tuning/jobs//events",
        "/v1/fine_tuning/jobs/ok/checkpoints/..%5c/content",
    };
    char path[256], id[ROUTE_PARAM_MAX + 2];
    struct resp r;
    char out[4096];
    test_begin("path_params_valid");
    request(c, port, "GET", "/v1/fine_tuning/jobs/ftjob-AZ_09/events?limit=3", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 200 && strcmp(r.body, "{\"id\":\"ftjob-AZ_09\"}") == 0,
              "status %ld body %s", r.status, r.body);
    request(c, port, "GET", "/v1/fine_tuning/jobs/j1/checkpoints/c-2/content", 0, PLAIN, NULL, &r);
    CHECK_MSG(strcmp(r.body, "{\"id\":\"j1\",\"checkpoint\":\"c-2\"}") == 0, "body %s", r.body);
    memset(id, 'a', ROUTE_PARAM_MAX);
    id[ROUTE_PARAM_MAX] = '\0';
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events", id);
    request(c, port, "GET", path, 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 200, "64-char id: status %ld", r.status);
    test_end();

    test_begin("path_params_bad_rejected");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request(c, port, "GET", bad[i], 0, PLAIN, NULL, &r);
        CHECK_MSG(r.status == 400, "%s: status %ld", bad[i], r.status);
        CHECK_MSG(error_shape(r.body, "invalid_id", NULL), "%s: body %s", bad[i], r.body);
    }
    request(c, port, "GET", "/v1/fine_tuning/jobs/ok/checkpoints/..%5c/content", 0, PLAIN, NULL, &r);
    CHECK_MSG(error_shape(r.body, "invalid_id", "checkpoint_id"), "param name: %s", r.body);
    memset(id, 'a', ROUTE_PARAM_MAX + 1);
    id[ROUTE_PARAM_MAX + 1] = '\0';
    snprintf(path, sizeof path, "/v1/fine_tuning/jobs/%s/events", id);
    request(c, port, "GET", path, 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 400 && error_shape(r.body, "invalid_id", "id"), "65-char id: %ld %s",
              r.status, r.body);
    /* bytes curl would not send: a raw non-ASCII id, a %00 that MHD would decode to a NUL */
    CHECK_MSG(raw(port, "GET /v1/fine_tuning/jobs/\xc3\xa9/events HTTP/1.1\r\nHost: t\r\n\r\n", out,
                  sizeof out) == 400,
              "non-ASCII: %.80s", out);
    CHECK_MSG(raw(port, "GET /v1/fine_tuning/jobs/a%00/events HTTP/1.1\r\nHost: t\r\n\r\n", out,
                  sizeof out) == 400,
              "%%00: %.80s", out);
    test_end();
}

static void test_replies(CURL *c, uint16_t port)
{
    struct resp r;
    test_begin("handler_without_reply_500_and_429_retry_after");
    request(c, port, "GET", "/silent", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 500 && error_shape(r.body, "internal_error", NULL), "%ld %s", r.status,
              r.body);
    request(c, port, "GET", "/limited", 0, PLAIN, NULL, &r);
    CHECK_MSG(r.status == 429 && error_shape(r.body, "rate_limit_exceeded", NULL), "%ld %s",
              r.status, r.body);
    CHECK(resp_header(&r, "Retry-After") && strcmp(resp_header(&r, "Retry-After"), "7") == 0);
    test_end();
}

static void test_big_headers(CURL *c, uint16_t port)
{
    struct curl_slist *h = NULL;
    static char line[70000];
    struct resp r;
    test_begin("oversized_headers_431");
    strcpy(line, "X-Filler: ");
    memset(line + 10, 'h', (64 << 10));
    line[10 + (64 << 10)] = '\0';
    h = curl_slist_append(h, line);
    request(c, port, "GET", "/healthz", 0, PLAIN, h, &r);
    CHECK_MSG(r.status == 431, "status %ld rc %d", r.status, (int)r.rc);
    curl_slist_free_all(h);
    test_end();
}

struct worker {
    uint16_t port;
    int ok;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    CURL *c = curl_easy_init();
    struct resp *r = malloc(sizeof *r);
    for (int i = 0; c && r && i < 50; i++) {
        request(c, w->port, i % 2 ? "POST" : "GET", i % 2 ? "/echo" : "/v1/fine_tuning/jobs/x/events",
                i % 2 ? 100 : 0, PLAIN, NULL, r);
        w->ok += r->status == 200;
    }
    free(r);
    curl_easy_cleanup(c);
    return NULL;
}

static void test_concurrent(uint16_t port)
{
    pthread_t t[8];
    struct worker w[8];
    int total = 0;
    test_begin("concurrent_8_threads");
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){port, 0};
        pthread_create(&t[i], NULL, worker_run, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += w[i].ok;
    }
    CHECK_MSG(total == 8 * 50, "%d of 400 requests answered 200", total);
    test_end();
}

static void test_start_errors(uint16_t taken)
{
    struct http_config cfg;
    char err[256];
    test_begin("start_errors_reported");
    http_config_defaults(&cfg);
    cfg.bind_addr = "localhost";
    CHECK(http_server_start(&cfg, err, sizeof err) == NULL && strstr(err, "localhost"));
    cfg.bind_addr = NULL;
    cfg.port = taken;
    CHECK(http_server_start(&cfg, err, sizeof err) == NULL && strstr(err, "cannot listen"));
    http_server_stop(NULL);
    test_end();
}

int main(void)
{
    struct http_server *def, *tst;
    CURL *c;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c = curl_easy_init();
    def = start(NULL, 32 << 10);
    tst = start(test_routes, 64 << 10);
    test_begin("servers_start_on_loopback");
    CHECK(c && def && tst);
    CHECK(def && http_server_port(def) != 0 && tst && http_server_port(tst) != 0);
    test_end();
    if (c && def && tst) {
        uint16_t dp = http_server_port(def), tp = http_server_port(tst);
        test_healthz(c, dp);
        test_not_found(c, dp);
        test_method_not_allowed(c, dp, tp);
        test_body_limits(c, tp);
        test_path_params(c, tp);
        test_replies(c, tp);
        test_big_headers(c, dp);
        test_concurrent(tp);
        test_start_errors(dp);
    }
    http_server_stop(def);
    http_server_stop(tst);
    curl_easy_cleanup(c);
    curl_global_cleanup();
    return test_finish();
}
