/*
 * h_web.c: the browser dashboard's static files: GET / is web/index.html,
 * GET /web/{name.} any other file of the web directory (see h_web.h).
 *
 * The router has already limited the name to [A-Za-z0-9_-]+ '.' [a-z0-9]+
 * (no '/', no leading '.'); here the extension must be one of html, css,
 * js, svg or png, which also picks the Content-Type. The file is opened
 * without following a symbolic link, must be a regular file of at most
 * WEB_FILE_MAX bytes, and is read whole; its ETag is the first 128 bits of
 * its SHA-256, and If-None-Match naming it answers 304. Cache-Control is
 * no-cache (names carry no version, so browsers revalidate each time), and
 * every file goes out with nosniff and a Content-Security-Policy that allows
 * only this origin's scripts, styles and connections (no inline script).
 *
 * The web directory: the service's web_dir when set (`owlore serve
 * --web-dir`, serve_config.h), else web/ beside the directory of the binary
 * (build/owlore -> web/) when it holds index.html, else web/ under the
 * working directory. It is resolved once, at the first request.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "h_web.h"
#include "http.h"
#include "reply.h"
#include "service.h"

#define WEB_FILE_MAX ((size_t)4 << 20)

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data: blob:; connect-src 'self'; "
                          "object-src 'none'; base-uri 'none'; form-action 'self'; "
                          "frame-ancestors 'none'";

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
};

static char web_dir[4096];
static pthread_once_t web_once = PTHREAD_ONCE_INIT;

static int has_index(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/index.html", dir);
    return access(p, R_OK) == 0;
}

static void resolve_dir(void)
{
    const struct service *svc = service_get();
    char exe[4096], *real = NULL;
    if (svc && svc->web_dir && *svc->web_dir) {
        snprintf(web_dir, sizeof web_dir, "%s", svc->web_dir);
        return;
    }
    real = realpath("/proc/self/exe", NULL);
    if (real) {
        snprintf(exe, sizeof exe, "%s", real);
        free(real);
        snprintf(web_dir, sizeof web_dir, "%s/../web", dirname(exe));
        if (has_index(web_dir))
            return;
    }
    snprintf(web_dir, sizeof web_dir, "web");
}

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* Reads the regular file `name` of the web directory whole into *buf
 * (*len bytes); 0, or -1 when it is missing, not a plain file or too big. */
static int read_file(const char *name, char **buf, size_t *len)
{
    char path[4400];
    struct stat sb;
    pthread_once(&web_once, resolve_dir);
    snprintf(path, sizeof path, "%s/%s", web_dir, name);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > WEB_FILE_MAX) {
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    char *b = malloc(n ? n : 1);
    while (b && got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!b || got != n) {
        free(b);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static void etag_of(const char *buf, size_t len, char out[36])
{
    unsigned char d[SHA256_BYTES];
    static const char hex[] = "0123456789abcdef";
    if (sha256_buffer(buf, len, d) != 0)
        memset(d, 0, sizeof d);
    out[0] = '"';
    for (int i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[d[i] >> 4];
        out[2 + 2 * i] = hex[d[i] & 15];
    }
    out[33] = '"';
    out[34] = '\0';
}

static int add_headers(struct MHD_Response *resp, const char *etag)
{
    return MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) == MHD_YES &&
           MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_YES &&
           MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES &&
           MHD_add_response_header(resp, "Content-Security-Policy", csp) == MHD_YES &&
           MHD_add_response_header(resp, "Referrer-Policy", "same-origin") == MHD_YES;
}

static enum MHD_Result serve(struct http_request *req, const char *name)
{
    const char *type = content_type(name);
    char *buf;
    size_t len;
    char etag[36];
    if (!type || read_file(name, &buf, &len) != 0)
        return reply_not_found(req, "No such dashboard file: %s", name);
    etag_of(buf, len, etag);
    const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && (strstr(inm, etag) || strcmp(inm, "*") == 0)) {
        free(buf);
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        if (!resp || !add_headers(resp, etag)) {
            if (resp)
                MHD_destroy_response(resp);
            return reply_internal(req);
        }
        return reply_response(req, MHD_HTTP_NOT_MODIFIED, resp);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(buf);
        return reply_internal(req);
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
        !add_headers(resp, etag)) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, MHD_HTTP_OK, resp);
}

enum MHD_Result web_index(struct http_request *req)
{
    return serve(req, "index.html");
}

enum MHD_Result web_file(struct http_request *req)
{
    return serve(req, http_param(req, "name"));
}
