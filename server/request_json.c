/*
 * request_json.c: the JSON object body of a POST and the checks its fields
 * share across endpoints (see request_json.h).
 */
#include <string.h>
#include <strings.h>

#include "http.h"
#include "reply.h"
#include "request_json.h"

static int is_json(const char *type)
{
    static const char json[] = "application/json";
    size_t n = sizeof json - 1;
    if (!type || strncasecmp(type, json, n) != 0)
        return 0;
    return type[n] == '\0' || type[n] == ';' || type[n] == ' ';
}

/* 1 when the arrays and objects of JSON text s nest deeper than
 * REQUEST_JSON_MAX_DEPTH (brackets inside strings do not count). */
static int too_deep(const char *s)
{
    int depth = 0, in_string = 0;
    for (; *s; s++) {
        if (in_string) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                in_string = 0;
        } else if (*s == '"') {
            in_string = 1;
        } else if (*s == '[' || *s == '{') {
            if (++depth > REQUEST_JSON_MAX_DEPTH)
                return 1;
        } else if (*s == ']' || *s == '}') {
            depth--;
        }
    }
    return 0;
}

json_t *request_json_object(struct http_request *req, enum MHD_Result *ret)
{
    if (!is_json(http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        *ret = reply_unsupported_media_type(req, "application/json");
        return NULL;
    }
    if (req->body && too_deep(req->body)) {
        *ret = reply_bad_request(req, NULL, "invalid_json",
                                 "The request body nests deeper than %d levels.",
                                 REQUEST_JSON_MAX_DEPTH);
        return NULL;
    }
    json_t *body = req->body ? json_loads(req->body, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(body)) {
        json_decref(body);
        *ret = reply_bad_request(req, NULL, "invalid_json",
                                 "The request body must be a JSON object.");
        return NULL;
    }
    return body;
}

int request_json_known(struct http_request *req, json_t *body, const char *const *known,
                       enum MHD_Result *ret)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        int i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i]) {
            *ret = reply_bad_request(req, key, "unknown_parameter",
                                     "Unrecognized request argument supplied: %.64s", key);
            return -1;
        }
    }
    return 0;
}

int request_json_string(struct http_request *req, json_t *body, const char *key,
                        const char **out, enum MHD_Result *ret)
{
    json_t *v = json_object_get(body, key);
    *out = json_string_value(v);
    if (v && !json_is_null(v) && !json_is_string(v)) {
        *ret = reply_bad_request(req, key, "invalid_type", "'%s' must be a string.", key);
        return -1;
    }
    return 0;
}
