/*
 * h_plan.c: POST /v1/fine_tuning/plan, the planner's preview of a job.
 *
 * The body is that of POST /v1/fine_tuning/jobs and goes through the very
 * same checks (jobs_check_create: fields, model, files, method, memory
 * admission), so whatever creation would refuse is refused here with the
 * same status and message; nothing is written. The answer:
 *   {"object": "fine_tuning.plan", "model", "method" (resolved),
 *    "dtype": "fp32", "memory": {"weights", "gradients", "optimizer_state",
 *    "activations", "workspace", "total_static", "total_peak"} (bytes),
 *    "memory_limit" (bytes or null), "flops_per_token", "tokens_per_s",
 *    "examples", "steps", "tokens", "estimated_seconds", "warnings": [...]}
 * The time is an estimate: steps = max_steps, else n_epochs times the
 * training file's valid examples (its validation report) over the
 * batch_size x grad_accum sequences of a step; tokens = steps x those
 * sequences x sequence_length; seconds = tokens / the planner's tokens/s.
 */
#include <stdio.h>

#include <jansson.h>

#include "h_jobs.h"
#include "h_plan.h"
#include "http.h"
#include "job_recipe.h"
#include "reply.h"
#include "request_json.h"
#include "service.h"
#include "store.h"

/* The valid examples of the owner's file `id` (its validation report); 0
 * when the report has none. */
static json_int_t file_examples(struct http_request *req, const char *id)
{
    struct store_file f;
    char err[512];
    if (store_file_get(service_get()->store, req->owner, id, &f, err, sizeof err) != STORE_OK)
        return 0;
    json_t *report = f.validation ? json_loads(f.validation, 0, NULL) : NULL;
    json_int_t n = json_integer_value(json_object_get(report, "examples"));
    json_decref(report);
    store_file_clear(&f);
    return n;
}

static json_t *plan_json(const struct job_create *jc, json_int_t examples)
{
    const struct service *svc = service_get();
    const struct recipe *r = &jc->r;
    const struct plan *p = &jc->plan;
    json_int_t per_step = (json_int_t)r->batch_size * r->grad_accum;
    json_int_t steps = r->max_steps > 0 ? r->max_steps : (json_int_t)r->epochs * (examples / per_step);
    json_int_t tokens = steps * per_step * r->seq_len;
    json_t *warnings = json_array();
    if (steps == 0)
        json_array_append_new(
            warnings, json_sprintf("The training file has %lld valid examples, fewer than one "
                                   "step needs (batch_size %d x accumulation %d): the job "
                                   "would fail.", (long long)examples, r->batch_size,
                                   r->grad_accum));
    return json_pack(
        "{s:s, s:s, s:o, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:o, s:f, s:f, s:I, s:I, "
        "s:I, s:f, s:o}",
        "object", "fine_tuning.plan", "model", jc->model ? jc->model : service_default_model_id(svc),
        "method", job_recipe_method_json(r), "dtype", "fp32", "memory", "weights",
        (json_int_t)p->weights, "gradients", (json_int_t)p->gradients, "optimizer_state",
        (json_int_t)p->optimizer_state, "activations", (json_int_t)p->activations, "workspace",
        (json_int_t)p->workspace, "total_static", (json_int_t)p->total_static, "total_peak",
        (json_int_t)p->total_peak, "memory_limit",
        svc->memory_limit > 0 ? json_integer((json_int_t)svc->memory_limit) : json_null(),
        "flops_per_token", p->flops_per_token, "tokens_per_s", p->tokens_per_s, "examples",
        examples, "steps", steps, "tokens", tokens, "estimated_seconds",
        p->tokens_per_s > 0 ? (double)tokens / p->tokens_per_s : 0.0, "warnings", warnings);
}

enum MHD_Result plan_post(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    enum MHD_Result ret;
    json_t *body = request_json_object(req, &ret);
    if (!body)
        return ret;
    struct job_create jc;
    if (jobs_check_create(req, body, &jc, &ret) == 0)
        ret = reply_json(req, MHD_HTTP_OK, plan_json(&jc, file_examples(req, jc.training)));
    json_decref(body);
    return ret;
}
