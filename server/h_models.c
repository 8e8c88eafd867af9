/*
 * h_models.c: GET /v1/models. The list holds the service's default model
 * (its file name as id, owned by "system", created at the file's mtime)
 * and the fine-tuned model of every succeeded job of the owner (id the
 * job's fine_tuned_model, created at the job's finish, owned by the owner),
 * newest job first. There is no GET /v1/models/{id}: model ids contain
 * dots and colons, which the router's path-parameter rules refuse.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "h_models.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "store.h"

#define MODELS_JOBS_MAX 10000

static json_t *model_json(const char *id, int64_t created, const char *owner)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)created, "owned_by", owner);
}

enum MHD_Result models_list(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    char err[512];
    struct stat sb;
    struct store_job_list l;
    int rc = store_job_list(svc->store, SERVICE_OWNER_LOCAL, JOB_MASK(JOB_SUCCEEDED), NULL, NULL,
                            MODELS_JOBS_MAX, &l, err, sizeof err);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: models list: %s\n", err);
        return reply_internal(req);
    }
    json_t *data = json_array();
    if (data && svc->default_model) {
        const char *slash = strrchr(svc->default_model, '/');
        int64_t created = stat(svc->default_model, &sb) == 0 ? (int64_t)sb.st_mtime : 0;
        if (json_array_append_new(data, model_json(slash ? slash + 1 : svc->default_model,
                                                   created, "system")) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    for (size_t i = 0; i < l.n && data; i++) {
        if (!l.v[i].fine_tuned_model)
            continue;
        if (json_array_append_new(data, model_json(l.v[i].fine_tuned_model, l.v[i].finished_at,
                                                   l.v[i].owner)) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    store_job_list_free(&l);
    return reply_json(req, MHD_HTTP_OK,
                      data ? json_pack("{s:s, s:o}", "object", "list", "data", data) : NULL);
}
