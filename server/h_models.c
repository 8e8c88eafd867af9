/*
 * h_models.c: GET /v1/models. The list holds the service's default model
 * (its file name as id, owned by "system", created at the file's mtime),
 * the base models under <data dir>/models/ (each entry's name: a model file
 * or a Hugging Face directory; the names a job's `model` may give), and the
 * fine-tuned model of every succeeded job of the owner (id the
 * job's fine_tuned_model, created at the job's finish, owned by the owner),
 * newest job first. There is no GET /v1/models/{id}: model ids contain
 * dots and colons, which the router's path-parameter rules refuse.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Appends the entries of <data dir>/models/, sorted by name; -1 when out of
 * memory. Hidden entries are skipped. */
static int add_models_dir(json_t *data, const struct service *svc)
{
    char dir[4200], path[4500];
    struct dirent **names;
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/models", svc->data_dir);
    int n = scandir(dir, &names, NULL, alphasort), rc = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (rc == 0 && names[i]->d_name[0] != '.' && stat(path, &sb) == 0 &&
            json_array_append_new(data, model_json(names[i]->d_name, (int64_t)sb.st_mtime,
                                                   "system")) != 0)
            rc = -1;
        free(names[i]);
    }
    if (n >= 0)
        free(names);
    return rc;
}

enum MHD_Result models_list(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    char err[512];
    struct stat sb;
    struct store_job_list l;
    int rc = store_job_list(svc->store, req->owner, JOB_MASK(JOB_SUCCEEDED), NULL, NULL,
                            MODELS_JOBS_MAX, &l, err, sizeof err);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: models list: %s\n", err);
        return reply_internal(req);
    }
    json_t *data = json_array();
    if (data && svc->default_model) {
        int64_t created = stat(svc->default_model, &sb) == 0 ? (int64_t)sb.st_mtime : 0;
        if (json_array_append_new(data, model_json(service_default_model_id(svc),
                                                   created, "system")) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    if (data && add_models_dir(data, svc) != 0) {
        json_decref(data);
        data = NULL;
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
