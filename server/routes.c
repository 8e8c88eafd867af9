/*
 * routes.c: the route table and the segment-by-segment matcher over raw
 * request paths (see routes.h for the rules). Endpoint handlers live in their
 * own files; the table names them, Taler-style. GET /healthz is answered
 * here, since it has no state of its own.
 */
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "h_checkpoints.h"
#include "h_files.h"
#include "h_jobs.h"
#include "h_layers.h"
#include "h_models.h"
#include "h_plan.h"
#include "h_session.h"
#include "h_web.h"
#include "h_webhooks.h"
#include "http.h"
#include "metrics.h"
#include "reply.h"
#include "routes.h"

static enum MHD_Result healthz_get(struct http_request *req)
{
    return reply_json(req, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

const struct route routes_default[] = {
    {"GET", "/healthz", healthz_get, 0, NULL, 1},
    {"GET", "/", web_index, 0, NULL, 1},
    {"GET", "/web/{name.}", web_file, 0, NULL, 1},
    {"POST", "/v1/dashboard/session", session_post, 0, NULL, 0},
    {"GET", "/v1/dashboard/session", session_get, 0, NULL, 1},
    {"DELETE", "/v1/dashboard/session", session_delete, 0, NULL, 0},
    {"POST", "/v1/fine_tuning/plan", plan_post, 64 << 10, NULL, 0},
    {"POST", "/v1/files", files_post, SIZE_MAX, &files_upload_stream, 0},
    {"GET", "/v1/files", files_list, 0, NULL, 0},
    {"GET", "/v1/files/{id}", files_get, 0, NULL, 0},
    {"DELETE", "/v1/files/{id}", files_delete, 0, NULL, 0},
    {"GET", "/v1/files/{id}/content", files_content, 0, NULL, 0},
    {"POST", "/v1/fine_tuning/jobs", jobs_post, 64 << 10, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs", jobs_list, 0, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}", jobs_get, 0, NULL, 0},
    {"POST", "/v1/fine_tuning/jobs/{id}/cancel", jobs_cancel, 0, NULL, 0},
    {"POST", "/v1/fine_tuning/jobs/{id}/pause", jobs_pause, 0, NULL, 0},
    {"POST", "/v1/fine_tuning/jobs/{id}/resume", jobs_resume, 0, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}/events", jobs_events, 0, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}/checkpoints", jobs_checkpoints, 0, NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}/checkpoints/{ckpt_id}/content", checkpoints_content, 0,
     NULL, 0},
    {"GET", "/v1/fine_tuning/jobs/{id}/layers", jobs_layers, 0, NULL, 0},
    {"GET", "/v1/models", models_list, 0, NULL, 0},
    {"POST", "/v1/webhooks", webhooks_post, WEBHOOKS_MAX_BODY, NULL, 0},
    {"GET", "/v1/webhooks", webhooks_list, 0, NULL, 0},
    {"GET", "/v1/webhooks/{id}", webhooks_get, 0, NULL, 0},
    {"DELETE", "/v1/webhooks/{id}", webhooks_delete, 0, NULL, 0},
    {"GET", "/metrics", metrics_get, 0, NULL, 1},
    {NULL, NULL, NULL, 0, NULL, 0},
};

static int param_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

static int param_ok(const char *s, size_t n)
{
    if (n == 0 || n > ROUTE_PARAM_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!param_char_ok(s[i]))
            return 0;
    return 1;
}

/* A file-name parameter: an id, one '.', then 1..ROUTE_EXT_MAX of [a-z0-9];
 * ROUTE_PARAM_MAX characters at most in all. */
static int file_param_ok(const char *s, size_t n)
{
    const char *dot = n <= ROUTE_PARAM_MAX ? memchr(s, '.', n) : NULL;
    if (!dot || !param_ok(s, (size_t)(dot - s)))
        return 0;
    size_t ext = n - (size_t)(dot - s) - 1;
    if (ext == 0 || ext > ROUTE_EXT_MAX)
        return 0;
    for (const char *p = dot + 1; p < s + n; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

static int is_param(const char *seg, size_t n)
{
    return n >= 2 && seg[0] == '{' && seg[n - 1] == '}';
}

/* "{name.}" (a file name) rather than "{name}" (an id); seg is a parameter. */
static int is_file_param(const char *seg, size_t n)
{
    return seg[n - 2] == '.';
}

/* 1 when `path` has the shape of `pat` (same segment count, equal literals);
 * fills m's parameters, and bad_param with the first one that breaks the
 * id rules. */
static int match_shape(const char *pat, const char *path, struct route_match *m)
{
    m->nparams = 0;
    m->bad_param[0] = '\0';
    while (*pat == '/' && *path == '/') {
        pat++, path++;
        size_t pl = strcspn(pat, "/"), sl = strcspn(path, "/");
        if (is_param(pat, pl)) {
            int file = is_file_param(pat, pl);
            if (m->nparams == ROUTE_PARAMS_MAX)
                return 0;
            if (file ? file_param_ok(path, sl) : param_ok(path, sl)) {
                memcpy(m->params[m->nparams], path, sl);
                m->params[m->nparams][sl] = '\0';
            } else {
                m->params[m->nparams][0] = '\0';
                if (!m->bad_param[0]) {
                    size_t nl = pl - 2 - (size_t)file;
                    nl = nl < ROUTE_PARAM_MAX ? nl : ROUTE_PARAM_MAX;
                    memcpy(m->bad_param, pat + 1, nl);
                    m->bad_param[nl] = '\0';
                }
            }
            m->nparams++;
        } else if (pl != sl || memcmp(pat, path, pl) != 0) {
            return 0;
        }
        pat += pl, path += sl;
    }
    return *pat == '\0' && *path == '\0';
}

static void allow_add(char *allow, const char *method)
{
    size_t n = strlen(allow), ml = strlen(method);
    const char *p = allow;
    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
        p += ml;
    }
    if (n + ml + 3 > ROUTE_ALLOW_MAX)
        return;
    if (n)
        strcpy(allow + n, ", "), n += 2;
    strcpy(allow + n, method);
}

enum route_status route_match(const struct route *table, const char *method, const char *path,
                              struct route_match *m)
{
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    char allow[ROUTE_ALLOW_MAX] = "";
    m->route = NULL;
    for (const struct route *r = table; r->pattern; r++) {
        if (!match_shape(r->pattern, path, m))
            continue;
        if (strcmp(r->method, want) == 0) {
            m->route = r;
            return m->bad_param[0] ? ROUTE_BAD_PARAM : ROUTE_FOUND;
        }
        allow_add(allow, r->method);
        if (strcmp(r->method, "GET") == 0)
            allow_add(allow, "HEAD");
    }
    strcpy(m->allow, allow);
    return allow[0] ? ROUTE_METHOD_NOT_ALLOWED : ROUTE_NOT_FOUND;
}

const char *route_param(const struct route_match *m, const char *name)
{
    size_t nl = strlen(name);
    int i = 0;
    if (!m->route)
        return NULL;
    for (const char *p = m->route->pattern; *p == '/' && i < m->nparams;) {
        size_t pl = strcspn(++p, "/");
        if (is_param(p, pl)) {
            if (pl - 2 - (size_t)is_file_param(p, pl) == nl && memcmp(p + 1, name, nl) == 0)
                return m->params[i];
            i++;
        }
        p += pl;
    }
    return NULL;
}
