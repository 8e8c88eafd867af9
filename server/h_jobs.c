/*
 * h_jobs.c: the /v1/fine_tuning/jobs handlers. Jobs belong to the tenant
 * of the request (req->owner, auth.h); another tenant's job ids answer 404.
 *
 * Creation validates everything before a row is written: unknown body
 * fields, the model (service_model_path, then its config), the files (they
 * must exist for the owner and be "processed"; an unknown id is 400 with
 * param training_file / validation_file, as OpenAI answers), and the method
 * (job_recipe.h) against the model's config; then admission: the planner's
 * predicted peak memory (plan.h) must fit the service's memory_limit, else
 * 422 insufficient_memory with the prediction in the message. The stored
 * method is the resolved one. A job object is OpenAI's fine_tuning.job; events are
 * fine_tuning.job.event objects with id "ftevent-<n>" (n: the job's event
 * number); checkpoints are fine_tuning.job.checkpoint objects plus our
 * sha256 and bytes of model.safetensors.
 *
 * Cancel: a queued (or paused) job becomes cancelled at once; a running job
 * is answered as it stands while the worker (queue.h) stops it between two
 * steps and ends it as cancelled; a finished job is 409.
 *
 * Pause: a queued job becomes paused at once; a running one becomes pausing
 * while the worker checkpoints it between two steps and marks it paused
 * (queue.h). Resume: a paused job is queued again and the worker continues
 * it from its resume_checkpoint. Other statuses are 409.
 *
 * List filters: ?status=a,b (any of those statuses) and metadata[key]=value
 * (every pair must be in the job's metadata), with after/limit pagination.
 *
 * Events: the JSON list, or server-sent events (h_events_stream.h) when
 * asked with Accept: text/event-stream or ?stream=true, starting after
 * Last-Event-ID or ?after=.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "h_events_stream.h"
#include "h_jobs.h"
#include "http.h"
#include "job_recipe.h"
#include "load.h"
#include "plan.h"
#include "queue.h"
#include "list_query.h"
#include "reply.h"
#include "request_json.h"
#include "service.h"
#include "store.h"

#define SUFFIX_MAX 64
#define GIB (1024.0 * 1024.0 * 1024.0)
/* OpenAI's limits on metadata */
#define METADATA_PAIRS_MAX 16
#define METADATA_KEY_MAX 64
#define METADATA_VALUE_MAX 512

static int metadata_check(const json_t *m)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(m) || json_object_size(m) > METADATA_PAIRS_MAX)
        return -1;
    json_object_foreach((json_t *)m, k, v)
        if (strlen(k) > METADATA_KEY_MAX || !json_is_string(v) ||
            json_string_length(v) > METADATA_VALUE_MAX)
            return -1;
    return 0;
}

static json_t *json_text(const char *s)
{
    json_t *v = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    return v ? v : json_null();
}

static json_t *job_json(const struct store_job *j)
{
    json_t *method = json_text(j->method);
    json_t *hp = json_object_get(json_object_get(method, json_string_value(json_object_get(
                                                             method, "type"))),
                                 "hyperparameters");
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:o, s:s?, s:s, s:[], s:s, s:s?, s:s, s:O, s:o, s:I, s:o, s:o, "
        "s:[], s:o, s:o, s:s?}",
        "object", "fine_tuning.job", "id", j->id, "model", j->model, "created_at",
        (json_int_t)j->created_at, "finished_at",
        j->finished_at ? json_integer(j->finished_at) : json_null(), "fine_tuned_model",
        j->fine_tuned_model, "organization_id", j->owner, "result_files", "status",
        store_job_status_name(j->status), "validation_file", j->validation_file,
        "training_file", j->training_file, "hyperparameters", hp ? hp : json_null(),
        "trained_tokens",
        j->trained_tokens >= 0 ? json_integer(j->trained_tokens) : json_null(), "seed",
        (json_int_t)j->seed, "error", json_text(j->error), "estimated_finish",
        j->estimated_finish ? json_integer(j->estimated_finish) : json_null(), "integrations",
        "metadata", json_text(j->metadata), "method", method, "user_provided_suffix",
        j->suffix);
}

/* Characters (code points) of UTF-8 text, as the suffix limit counts them. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* The file `id` of the owner, checked usable for training; on failure the
 * reply is queued into *ret and -1 returned. */
static int check_file(struct http_request *req, const char *param, const char *id,
                      enum MHD_Result *ret)
{
    struct store_file f;
    char err[512];
    int rc = store_file_get(service_get()->store, req->owner, id, &f, err, sizeof err);
    if (rc == STORE_NOTFOUND) {
        *ret = reply_bad_request(req, param, "invalid_file", "No such File object: %.64s", id);
        return -1;
    }
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: jobs: %s\n", err);
        *ret = reply_internal(req);
        return -1;
    }
    int ok = strcmp(f.status, "processed") == 0 && strcmp(f.purpose, "fine-tune") == 0;
    store_file_clear(&f);
    if (!ok)
        *ret = reply_bad_request(req, param, "invalid_file",
                                 "File %s is not a valid fine-tuning dataset (see its "
                                 "validation report).", id);
    return ok ? 0 : -1;
}

/* Every check of a create request; 0 or -1 with the reply queued. */
static int check_create(struct http_request *req, json_t *body, const char **model,
                        const char **training, const char **validation, const char **suffix,
                        char *model_path, size_t pathlen, enum MHD_Result *ret)
{
    static const char *const known[] = {"model", "training_file", "validation_file", "seed",
                                        "suffix", "metadata", "method", "integrations", NULL};
    json_t *v;
    char err[1024];
    if (request_json_known(req, body, known, ret) ||
        request_json_string(req, body, "model", model, ret) ||
        request_json_string(req, body, "suffix", suffix, ret) ||
        request_json_string(req, body, "training_file", training, ret) ||
        request_json_string(req, body, "validation_file", validation, ret))
        return -1;
    if (!*training) {
        *ret = reply_bad_request(req, "training_file", "missing_required_parameter",
                                 "Missing required parameter: 'training_file'.");
        return -1;
    }
    if (*suffix && (utf8_chars(*suffix) > SUFFIX_MAX || strchr(*suffix, ':'))) {
        *ret = reply_bad_request(req, "suffix", "invalid_value",
                                 "'suffix' must be at most %d characters without ':'.",
                                 SUFFIX_MAX);
        return -1;
    }
    v = json_object_get(body, "seed");
    if (v && !json_is_null(v) && (!json_is_integer(v) || json_integer_value(v) < 0)) {
        *ret = reply_bad_request(req, "seed", "invalid_value",
                                 "'seed' must be a non-negative integer.");
        return -1;
    }
    v = json_object_get(body, "metadata");
    if (v && !json_is_null(v) && metadata_check(v) != 0) {
        *ret = reply_bad_request(req, "metadata", "invalid_value",
                                 "'metadata' must be an object of at most %d string values, "
                                 "keys up to %d and values up to %d characters.",
                                 METADATA_PAIRS_MAX, METADATA_KEY_MAX, METADATA_VALUE_MAX);
        return -1;
    }
    v = json_object_get(body, "integrations");
    if (v && !json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0)) {
        *ret = reply_bad_request(req, "integrations", "invalid_value",
                                 "Integrations are not supported by this server.");
        return -1;
    }
    if (service_model_path(service_get(), *model, model_path, pathlen, err, sizeof err) != 0) {
        *ret = reply_bad_request(req, "model", "model_not_available", "%s", err);
        return -1;
    }
    if (check_file(req, "training_file", *training, ret) != 0 ||
        (*validation && check_file(req, "validation_file", *validation, ret) != 0))
        return -1;
    return 0;
}

int jobs_check_create(struct http_request *req, json_t *body, struct job_create *jc,
                      enum MHD_Result *ret)
{
    struct service *svc = service_get();
    char err[1024], param[JOB_PARAM_LEN];
    if (check_create(req, body, &jc->model, &jc->training, &jc->validation, &jc->suffix,
                     jc->model_path, sizeof jc->model_path, ret) != 0)
        return -1;
    if (job_recipe_parse(json_object_get(body, "method"), &jc->r, param, err, sizeof err) != 0) {
        *ret = reply_bad_request(req, param, "invalid_value", "%s", err);
        return -1;
    }
    if (model_read_config(jc->model_path, &jc->cfg, err, sizeof err) != 0) {
        *ret = reply_bad_request(req, "model", "model_not_available", "%s", err);
        return -1;
    }
    if (job_recipe_check(&jc->r, &jc->cfg, param, err, sizeof err) != 0) {
        *ret = reply_bad_request(req, param, "invalid_value", "%s", err);
        return -1;
    }
    const struct plan *plan = &jc->plan;
    plan_compute(&jc->cfg, &jc->r, jc->r.batch_size, jc->r.seq_len, PLAN_FP32, &jc->plan);
    if (svc->memory_limit > 0 && plan->total_peak > svc->memory_limit) {
        struct recipe lean;
        struct plan lean_plan;
        char names[192], hint[320] = "";
        int fits;
        if (plan_savings(&jc->cfg, &jc->r, jc->r.batch_size, jc->r.seq_len, svc->memory_limit,
                         &lean, &lean_plan, &fits, names, sizeof names) > 0)
            snprintf(hint, sizeof hint, "With %s it predicts %.3f GiB%s. ", names,
                     lean_plan.total_peak / GIB, fits ? ", within the limit" : "");
        *ret = reply_error(req, 422, "invalid_request_error", "insufficient_memory", NULL,
                           "The planner predicts a peak of %.3f GiB for this job (weights %.3f, "
                           "gradients %.3f, optimizer state %.3f, activations %.3f, workspace "
                           "%.3f GiB), more than this server's limit of %.3f GiB. %sLower "
                           "batch_size or sequence_length, or train fewer blocks (gamma).",
                           plan->total_peak / GIB, plan->weights / GIB, plan->gradients / GIB,
                           plan->optimizer_state / GIB, plan->activations / GIB,
                           plan->workspace / GIB, svc->memory_limit / GIB, hint);
        return -1;
    }
    return 0;
}

enum MHD_Result jobs_post(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    enum MHD_Result ret;
    json_t *body = request_json_object(req, &ret);
    if (!body)
        return ret;
    char err[1024];
    struct job_create jc;
    struct recipe *r = &jc.r;
    if (jobs_check_create(req, body, &jc, &ret) != 0)
        goto done;
    json_t *seed = json_object_get(body, "seed");
    if (json_is_integer(seed))
        r->seed = (unsigned long long)json_integer_value(seed);
    json_t *mj = job_recipe_method_json(r), *md = json_object_get(body, "metadata");
    char *method = mj ? json_dumps(mj, JSON_COMPACT) : NULL;
    char *hp = mj ? json_dumps(json_object_get(json_object_get(mj, method_name(r->method)),
                                               "hyperparameters"),
                               JSON_COMPACT)
                  : NULL;
    char *meta = json_is_object(md) ? json_dumps(md, JSON_COMPACT) : NULL;
    json_decref(mj);
    struct store_job_new nj = {
        .owner = req->owner, .model = jc.model ? jc.model : service_default_model_id(svc),
        .training_file = jc.training, .validation_file = jc.validation, .method = method,
        .hyperparameters = hp, .suffix = jc.suffix, .metadata = meta,
        .seed = (int64_t)r->seed, .status = JOB_QUEUED,
    };
    struct store_job j;
    int rc = method && hp ? store_job_insert(svc->store, &nj, &j, err, sizeof err) : STORE_ERROR;
    free(method);
    free(hp);
    free(meta);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: jobs create: %s\n", err);
        ret = reply_internal(req);
        goto done;
    }
    struct store_event_new ev = {"info", "Created fine-tuning job", "message", NULL};
    if (store_event_append(svc->store, j.id, &ev, NULL, err, sizeof err) != STORE_OK)
        fprintf(stderr, "owlore serve: jobs create: %s\n", err);
    queue_wake();
    ret = reply_json(req, MHD_HTTP_OK, job_json(&j));
    store_job_clear(&j);
done:
    json_decref(body);
    return ret;
}

/* Parses ?status=a,b into a JOB_MASK union; -1 on an unknown status. */
static int parse_status_filter(const char *s, unsigned *mask)
{
    char name[32];
    *mask = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof name)
            return -1;
        memcpy(name, s, n);
        name[n] = '\0';
        int st = store_job_status_parse(name);
        if (st < 0)
            return -1;
        *mask |= JOB_MASK(st);
        s += n + (s[n] == ',');
    }
    return *mask ? 0 : -1;
}

/* Gathers metadata[key]=value query arguments into an object. */
static enum MHD_Result collect_metadata(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    json_t *filter = cls;
    size_t n = strlen(key);
    (void)kind;
    if (n > 10 && strncmp(key, "metadata[", 9) == 0 && key[n - 1] == ']') {
        char k[METADATA_KEY_MAX + 1];
        size_t kl = n - 10 < METADATA_KEY_MAX ? n - 10 : METADATA_KEY_MAX;
        memcpy(k, key + 9, kl);
        k[kl] = '\0';
        json_object_set_new(filter, k, json_string(value ? value : ""));
    }
    return MHD_YES;
}

enum MHD_Result jobs_list(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *after = http_query(req, "after");
    int limit = 20;
    char err[512];
    struct store_job_list l;
    enum MHD_Result ret;
    if (list_limit(req, &limit, &ret) != 0)
        return ret;
    const char *status_s = http_query(req, "status");
    unsigned mask = 0;
    if (status_s && parse_status_filter(status_s, &mask) != 0)
        return reply_bad_request(req, "status", "invalid_value",
                                 "'status' must be job statuses separated by commas "
                                 "(validating_files, queued, running, pausing, paused, "
                                 "succeeded, failed, cancelled).");
    json_t *filter = json_object();
    if (!filter)
        return reply_internal(req);
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_metadata, filter);
    char *meta = json_object_size(filter) ? json_dumps(filter, JSON_COMPACT) : NULL;
    json_decref(filter);
    int rc = store_job_list(service_get()->store, req->owner, mask, meta, after, limit, &l,
                            err, sizeof err);
    free(meta);
    if (rc != STORE_OK)
        return list_failed(req, rc, "job", "jobs list", err);
    json_t *data = json_array();
    for (size_t i = 0; i < l.n && data; i++)
        data = list_push(data, job_json(&l.v[i]));
    ret = list_reply(req, data, l.has_more);
    store_job_list_free(&l);
    return ret;
}

/* Looks up the {id} of the path into *j; on failure the reply is queued
 * into *ret and -1 returned. */
static int lookup(struct http_request *req, struct store_job *j, enum MHD_Result *ret)
{
    char err[512];
    const char *id = http_param(req, "id");
    int rc = store_job_get(service_get()->store, req->owner, id, j, err, sizeof err);
    if (rc == STORE_OK)
        return 0;
    if (rc == STORE_NOTFOUND) {
        *ret = reply_not_found(req, "No such fine-tuning job: %s", id);
    } else {
        fprintf(stderr, "owlore serve: jobs get: %s\n", err);
        *ret = reply_internal(req);
    }
    return -1;
}

/* lookup() for the handlers that act on the job by id: its id into `id`. */
static int lookup_id(struct http_request *req, char id[STORE_ID_LEN], enum MHD_Result *ret)
{
    struct store_job j;
    if (lookup(req, &j, ret) != 0)
        return -1;
    snprintf(id, STORE_ID_LEN, "%s", j.id);
    store_job_clear(&j);
    return 0;
}

/* Replies with job `id` as it stands now. */
static enum MHD_Result reply_job(struct http_request *req, const char *id)
{
    struct store_job j;
    char err[512];
    if (store_job_get(service_get()->store, req->owner, id, &j, err, sizeof err) !=
        STORE_OK)
        return reply_internal(req);
    enum MHD_Result ret = reply_json(req, MHD_HTTP_OK, job_json(&j));
    store_job_clear(&j);
    return ret;
}

/* The reply to a transition of job `id` that answered rc: for
 * STORE_CONFLICT a 409 `code` "Job <id> is <cur status><why>", for another
 * failure a 500 with "owlore serve: <what>: <err>" on stderr, else the job
 * as it stands now. */
static enum MHD_Result reply_transition(struct http_request *req, int rc, const char *id,
                                        enum store_job_status cur, const char *code,
                                        const char *why, const char *what, const char *err)
{
    if (rc == STORE_CONFLICT)
        return reply_conflict(req, code, "Job %s is %s%s", id, store_job_status_name(cur), why);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: %s: %s\n", what, err);
        return reply_internal(req);
    }
    return reply_job(req, id);
}

enum MHD_Result jobs_get(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    struct store_job j;
    enum MHD_Result ret;
    if (lookup(req, &j, &ret) != 0)
        return ret;
    ret = reply_json(req, MHD_HTTP_OK, job_json(&j));
    store_job_clear(&j);
    return ret;
}

enum MHD_Result jobs_cancel(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    struct store_job_update u = STORE_JOB_UPDATE_NONE;
    struct store_event_new ev = {"info", "The job was cancelled", "message", NULL};
    enum store_job_status cur;
    enum MHD_Result ret;
    char err[512], id[STORE_ID_LEN];
    if (lookup_id(req, id, &ret) != 0)
        return ret;
    u.finished_at = (int64_t)time(NULL);
    unsigned waiting = JOB_MASK(JOB_VALIDATING_FILES) | JOB_MASK(JOB_QUEUED) |
                       JOB_MASK(JOB_PAUSED);
    int rc = store_job_transition(svc->store, id, waiting, JOB_CANCELLED, &u, &ev, NULL, &cur,
                                  err, sizeof err);
    if (rc == STORE_CONFLICT && (cur == JOB_RUNNING || cur == JOB_PAUSING)) {
        queue_cancel(id); /* the worker ends it as cancelled */
        return reply_job(req, id);
    }
    if (rc == STORE_CONFLICT)
        return reply_conflict(req, "job_not_cancellable", "Job %s has already %s.", id,
                              store_job_status_name(cur));
    /* no conflict is left: code and why go unused */
    return reply_transition(req, rc, id, cur, NULL, NULL, "jobs cancel", err);
}

json_t *jobs_event_json(const struct store_event *e)
{
    char id[48];
    snprintf(id, sizeof id, "ftevent-%lld", (long long)e->id);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o}", "object", "fine_tuning.job.event",
                     "id", id, "created_at", (json_int_t)e->created_at, "level", e->level,
                     "message", e->message, "type", e->type, "data", json_text(e->data));
}

enum MHD_Result jobs_pause(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    struct store_event_new paused = {"info", "The job was paused", "message", NULL};
    struct store_event_new pausing = {"info", "Pause requested", "message", NULL};
    enum store_job_status cur;
    enum MHD_Result ret;
    char err[512], id[STORE_ID_LEN];
    if (lookup_id(req, id, &ret) != 0)
        return ret;
    unsigned waiting = JOB_MASK(JOB_VALIDATING_FILES) | JOB_MASK(JOB_QUEUED);
    int rc = store_job_transition(svc->store, id, waiting, JOB_PAUSED, NULL, &paused, NULL, &cur,
                                  err, sizeof err);
    if (rc == STORE_CONFLICT && cur == JOB_RUNNING) {
        rc = store_job_transition(svc->store, id, JOB_MASK(JOB_RUNNING), JOB_PAUSING, NULL,
                                  &pausing, NULL, &cur, err, sizeof err);
        if (rc == STORE_OK)
            queue_pause(id);
    }
    return reply_transition(req, rc, id, cur, "job_not_pausable", " and cannot be paused.",
                            "jobs pause", err);
}

enum MHD_Result jobs_resume(struct http_request *req)
{
    struct service *svc = service_get();
    if (!svc) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    struct store_event_new ev = {"info", "The job was resumed and queued", "message", NULL};
    enum store_job_status cur;
    enum MHD_Result ret;
    char err[512], id[STORE_ID_LEN];
    if (lookup_id(req, id, &ret) != 0)
        return ret;
    int rc = store_job_transition(svc->store, id, JOB_MASK(JOB_PAUSED), JOB_QUEUED, NULL, &ev,
                                  NULL, &cur, err, sizeof err);
    if (rc == STORE_OK)
        queue_wake();
    return reply_transition(req, rc, id, cur, "job_not_resumable", ", not paused.",
                            "jobs resume", err);
}

/* "ftevent-<n>" or "<n>" with n >= 1, else -1. */
static long long parse_event_id(const char *s)
{
    char *end;
    if (strncmp(s, "ftevent-", 8) == 0)
        s += 8;
    if (*s < '1' || *s > '9')
        return -1;
    long long n = strtoll(s, &end, 10);
    return *end ? -1 : n;
}

/* SSE asked for: Accept naming text/event-stream, or ?stream=true. */
static int wants_stream(struct http_request *req)
{
    const char *accept = http_header(req, MHD_HTTP_HEADER_ACCEPT), *q = http_query(req, "stream");
    return (accept && strstr(accept, "text/event-stream")) || (q && strcmp(q, "true") == 0);
}

enum MHD_Result jobs_events(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *after = http_query(req, "after");
    int limit = 20;
    long long before = 0;
    char err[512];
    struct store_job j;
    struct store_event_list l;
    enum MHD_Result ret;
    if (list_limit(req, &limit, &ret) != 0)
        return ret;
    if (after && (before = parse_event_id(after)) < 0)
        return reply_bad_request(req, "after", "invalid_value",
                                 "'after' must be an event id (ftevent-N).");
    if (lookup(req, &j, &ret) != 0)
        return ret;
    if (wants_stream(req)) {
        const char *last = http_header(req, "Last-Event-ID");
        long long from = last ? parse_event_id(last) : before;
        if (from < 0) {
            store_job_clear(&j);
            return reply_bad_request(req, NULL, "invalid_value",
                                     "'Last-Event-ID' must be an event id.");
        }
        ret = jobs_events_stream(req, j.id, from);
        store_job_clear(&j);
        return ret;
    }
    int rc = store_event_list_before(service_get()->store, j.id, before, limit, &l, err,
                                     sizeof err);
    store_job_clear(&j);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: jobs events: %s\n", err);
        return reply_internal(req);
    }
    json_t *data = json_array();
    for (size_t i = 0; i < l.n && data; i++)
        data = list_push(data, jobs_event_json(&l.v[i]));
    ret = list_reply(req, data, l.has_more);
    store_event_list_free(&l);
    return ret;
}

static json_t *checkpoint_json(const struct store_checkpoint *c, const char *job_id)
{
    json_t *src = json_text(c->metrics);
    char name[128];
    snprintf(name, sizeof name, "ft:%s:ckpt-step-%lld", job_id, (long long)c->step);
    json_t *metrics = json_pack("{s:I, s:O, s:O}", "step", (json_int_t)c->step, "train_loss",
                                json_object_get(src, "train_loss") ? json_object_get(src, "train_loss") : json_null(),
                                "valid_loss",
                                json_object_get(src, "val_loss") ? json_object_get(src, "val_loss") : json_null());
    json_decref(src);
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:I, s:s, s:I}", "object",
                     "fine_tuning.job.checkpoint", "id", c->id, "created_at",
                     (json_int_t)c->created_at, "fine_tuned_model_checkpoint", name,
                     "fine_tuning_job_id", job_id, "metrics", metrics, "step_number",
                     (json_int_t)c->step, "sha256", c->sha256, "bytes", (json_int_t)c->bytes);
}

enum MHD_Result jobs_checkpoints(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *after = http_query(req, "after");
    int limit = 10;
    char err[512];
    struct store_job j;
    struct store_checkpoint_list l;
    enum MHD_Result ret;
    if (list_limit(req, &limit, &ret) != 0)
        return ret;
    if (lookup(req, &j, &ret) != 0)
        return ret;
    int rc = store_checkpoint_list(service_get()->store, j.id, after, limit, &l, err, sizeof err);
    if (rc != STORE_OK) {
        store_job_clear(&j);
        return list_failed(req, rc, "checkpoint", "jobs checkpoints", err);
    }
    json_t *data = json_array();
    for (size_t i = 0; i < l.n && data; i++)
        data = list_push(data, checkpoint_json(&l.v[i], j.id));
    ret = list_reply_ids(req, data, l.n ? l.v[0].id : NULL, l.n ? l.v[l.n - 1].id : NULL,
                         l.has_more);
    store_checkpoint_list_free(&l);
    store_job_clear(&j);
    return ret;
}
