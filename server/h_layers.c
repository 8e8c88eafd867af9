/*
 * h_layers.c: GET /v1/fine_tuning/jobs/{id}/layers. The job must belong to
 * the tenant (else 404). Once the job has started training, the reply is
 * the worker's layers.json (job_layers.h) with "object": "list"; before,
 * the same shape with the method's sampling settings, "periods": 0 and an
 * empty "data".
 */
#include <stdio.h>

#include <jansson.h>

#include "h_layers.h"
#include "http.h"
#include "job_layers.h"
#include "job_recipe.h"
#include "reply.h"
#include "service.h"
#include "store.h"

/* The shape before training: settings from the stored method. */
static json_t *not_started(const struct store_job *j)
{
    struct recipe r;
    char param[JOB_PARAM_LEN], err[256];
    json_t *method = json_loads(j->method, 0, NULL);
    int bad = job_recipe_parse(method, &r, param, err, sizeof err);
    json_decref(method);
    if (bad)
        return NULL;
    return json_pack("{s:s, s:i, s:i, s:f, s:I, s:I, s:[]}", "sampling",
                     sampling_name(r.sampling), "gamma", r.gamma, "sampling_interval",
                     r.sampling == SAMPLING_ALL ? 1 : r.interval, "tau", (double)r.tau,
                     "periods", (json_int_t)0, "last_period", (json_int_t)-1, "data");
}

enum MHD_Result jobs_layers(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *id = http_param(req, "id");
    struct store_job j;
    char err[512], dir[4300];
    int rc = store_job_get(svc->store, req->owner, id, &j, err, sizeof err);
    if (rc == STORE_NOTFOUND)
        return reply_not_found(req, "No such fine-tuning job: %s", id);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: jobs layers: %s\n", err);
        return reply_internal(req);
    }
    snprintf(dir, sizeof dir, "%s/jobs/%s", svc->data_dir, j.id);
    json_t *o = job_layers_load(dir);
    if (!o)
        o = not_started(&j);
    store_job_clear(&j);
    if (o)
        json_object_set_new(o, "object", json_string("list"));
    return reply_json(req, MHD_HTTP_OK, o);
}
