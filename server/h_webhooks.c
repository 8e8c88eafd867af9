/*
 * h_webhooks.c: the /v1/webhooks handlers. Webhooks belong to the tenant of
 * the request (req->owner, auth.h); another tenant's webhook ids answer 404.
 *
 * Creation takes {"url", "events", "description"}: url is required and
 * must pass webhook_url_check (https, a public address; loopback only when
 * the server allows it); events is an optional non-empty array of event
 * types (store_webhook_events; default: all of them); description an
 * optional string. Unknown fields, wrong types and refused values are 400
 * with param naming the field. A webhook object is {"id", "object":
 * "webhook", "url", "events", "description", "created_at"}; the create
 * reply alone adds "secret" ("whsec_…", webhook_sign.h), which signs every
 * delivery and is never shown again. A tenant has at most MAX_PER_OWNER
 * webhooks (409 past it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "h_webhooks.h"
#include "http.h"
#include "list_query.h"
#include "reply.h"
#include "request_json.h"
#include "service.h"
#include "store.h"
#include "store_webhooks.h"
#include "webhook_sign.h"
#include "webhook_url.h"

#define DESCRIPTION_MAX 512
#define MAX_PER_OWNER 32

static json_t *webhook_json(const struct store_webhook *w)
{
    json_t *events = json_loads(w->events, 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:o, s:s?, s:I}", "id", w->id, "object", "webhook", "url",
                     w->url, "events", events ? events : json_array(), "description",
                     w->description, "created_at", (json_int_t)w->created_at);
}

/* 1 when `type` is one of store_webhook_events. */
static int event_known(const char *type)
{
    for (const char *const *e = store_webhook_events; *e; e++)
        if (strcmp(*e, type) == 0)
            return 1;
    return 0;
}

/* The events array to store, from the body's optional "events" (default:
 * every type; repeats dropped); NULL with the reply queued into *ret. */
static json_t *parse_events(struct http_request *req, json_t *v, enum MHD_Result *ret)
{
    json_t *out = json_array(), *e;
    size_t i, j;
    if (!out) {
        *ret = reply_internal(req);
        return NULL;
    }
    if (!v || json_is_null(v)) {
        for (const char *const *t = store_webhook_events; *t; t++)
            json_array_append_new(out, json_string(*t));
        return out;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        json_decref(out);
        *ret = reply_bad_request(req, "events", "invalid_type",
                                 "'events' must be a non-empty array of event types.");
        return NULL;
    }
    json_array_foreach(v, i, e) {
        const char *type = json_string_value(e);
        if (!type || !event_known(type)) {
            json_decref(out);
            *ret = reply_bad_request(req, "events", "invalid_value",
                                     "Unknown webhook event type: %.64s",
                                     type ? type : "(not a string)");
            return NULL;
        }
        json_t *seen;
        int dup = 0;
        json_array_foreach(out, j, seen) {
            if (json_equal(seen, e))
                dup = 1;
        }
        if (!dup)
            json_array_append(out, e);
    }
    return out;
}

/* Every check of a create request: 0 with the url, description and events
 * (decref it) to store, or -1 with the reply queued. */
static int check_create(struct http_request *req, json_t *body, const char **url,
                        const char **description, json_t **events, enum MHD_Result *ret)
{
    static const char *const known[] = {"url", "events", "description", NULL};
    char why[512];
    if (request_json_known(req, body, known, ret) != 0 ||
        request_json_string(req, body, "url", url, ret) != 0)
        return -1;
    if (!*url) {
        *ret = reply_bad_request(req, "url", "missing_required_parameter",
                                 "Missing required parameter: 'url'.");
        return -1;
    }
    if (request_json_string(req, body, "description", description, ret) != 0)
        return -1;
    if (*description && strlen(*description) > DESCRIPTION_MAX) {
        *ret = reply_bad_request(req, "description", "invalid_value",
                                 "'description' must be at most %d bytes.", DESCRIPTION_MAX);
        return -1;
    }
    struct webhook_target t;
    if (webhook_url_check(*url, service_get()->webhook_allow_loopback, &t, why, sizeof why) !=
        0) {
        *ret = reply_bad_request(req, "url", "invalid_url", "%s", why);
        return -1;
    }
    *events = parse_events(req, json_object_get(body, "events"), ret);
    return *events ? 0 : -1;
}

enum MHD_Result webhooks_post(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    enum MHD_Result ret;
    json_t *body = request_json_object(req, &ret);
    if (!body)
        return ret;
    const char *url, *description;
    json_t *events = NULL;
    char secret[WEBHOOK_SECRET_LEN], err[512], *events_text = NULL;
    if (check_create(req, body, &url, &description, &events, &ret) != 0)
        goto done;
    events_text = json_dumps(events, JSON_COMPACT);
    if (!events_text || webhook_secret_new(secret) != 0) {
        ret = reply_internal(req);
        goto done;
    }
    struct store_webhook_new nw = {.owner = req->owner, .url = url, .events = events_text,
                                   .description = description, .secret = secret};
    struct store_webhook w;
    int rc = store_webhook_create(svc->store, &nw, MAX_PER_OWNER, &w, err, sizeof err);
    if (rc == STORE_CONFLICT) {
        ret = reply_conflict(req, "too_many_webhooks",
                             "This account already has %d webhooks; delete one first.",
                             MAX_PER_OWNER);
    } else if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: webhooks create: %s\n", err);
        ret = reply_internal(req);
    } else {
        json_t *o = webhook_json(&w);
        if (o && json_object_set_new(o, "secret", json_string(w.secret)) != 0) {
            json_decref(o);
            o = NULL;
        }
        ret = reply_json(req, MHD_HTTP_OK, o);
        store_webhook_clear(&w);
    }
done:
    free(events_text);
    json_decref(events);
    json_decref(body);
    return ret;
}

enum MHD_Result webhooks_list(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *after = http_query(req, "after");
    int limit = 20;
    char err[512];
    struct store_webhook_list l;
    enum MHD_Result ret;
    if (list_limit(req, &limit, &ret) != 0)
        return ret;
    int rc = store_webhook_list(svc->store, req->owner, after, limit, &l, err, sizeof err);
    if (rc != STORE_OK)
        return list_failed(req, rc, "webhook", "webhooks list", err);
    json_t *data = json_array();
    for (size_t i = 0; i < l.n && data; i++)
        data = list_push(data, webhook_json(&l.v[i]));
    ret = list_reply_ids(req, data, l.n ? l.v[0].id : NULL, l.n ? l.v[l.n - 1].id : NULL,
                         l.has_more);
    store_webhook_list_free(&l);
    return ret;
}

enum MHD_Result webhooks_get(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *id = http_param(req, "id");
    char err[512];
    struct store_webhook w;
    int rc = store_webhook_get(svc->store, req->owner, id, &w, err, sizeof err);
    if (rc == STORE_NOTFOUND)
        return reply_not_found(req, "No such webhook: %s", id);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: webhooks get: %s\n", err);
        return reply_internal(req);
    }
    enum MHD_Result ret = reply_json(req, MHD_HTTP_OK, webhook_json(&w));
    store_webhook_clear(&w);
    return ret;
}

enum MHD_Result webhooks_delete(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *id = http_param(req, "id");
    char err[512];
    int rc = store_webhook_delete(svc->store, req->owner, id, err, sizeof err);
    if (rc == STORE_NOTFOUND)
        return reply_not_found(req, "No such webhook: %s", id);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: webhooks delete: %s\n", err);
        return reply_internal(req);
    }
    return reply_json(req, MHD_HTTP_OK,
                      json_pack("{s:s, s:s, s:b}", "id", id, "object", "webhook.deleted",
                                "deleted", 1));
}
