/*
 * queue.c: the job worker thread (see queue.h). One job at a time: the
 * running job's id and its stop flag live under one mutex, so a cancel
 * request can never reach the wrong job.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "dataset.h"
#include "digest.h"
#include "job_layers.h"
#include "job_recipe.h"
#include "load.h"
#include "outliers.h"
#include "queue.h"
#include "service.h"
#include "store.h"
#include "tokenizer.h"
#include "utf8.h"
#include "train.h"

static struct {
    struct service *svc;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, stopping, woken;
    char running[STORE_ID_LEN]; /* "" when idle */
    long step;                  /* the running job's last step */
    double tokens_per_s;        /* and its throughput */
    atomic_int stop;            /* enum train_stop for the running job */
} q = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The state of one job's run. */
struct job_run {
    struct store *st;
    const struct store_job *job;
    char out_dir[4300];
    long last_ckpt;         /* the newest checkpoint step recorded */
    long step;
    int64_t tokens_per_step;
    struct job_layers layers; /* per-block sampling statistics */
    int have_layers;
};

static void log_err(const char *id, const char *what, const char *err)
{
    fprintf(stderr, "owlore serve: job %s: %s: %s\n", id, what, err);
}

static void event(struct job_run *jr, const char *level, const char *type, const char *msg,
                  json_t *data)
{
    char err[512], *d = data ? json_dumps(data, JSON_COMPACT) : NULL;
    struct store_event_new ev = {level, msg, type, d};
    if (store_event_append(jr->st, jr->job->id, &ev, NULL, err, sizeof err) != STORE_OK)
        log_err(jr->job->id, "event", err);
    free(d);
    json_decref(data);
}

static json_t *real_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Records checkpoint-<step> of out_dir from its owlore.json (its weights
 * file: model.safetensors, or a lora run's adapter_model.safetensors). */
static void record_checkpoint(struct job_run *jr, long step)
{
    char path[4500], dir[4400], err[512], msg[128];
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", jr->out_dir, step);
    snprintf(path, sizeof path, "%s/owlore.json", dir);
    json_t *info = json_load_file(path, 0, NULL);
    json_t *model = json_object_get(json_object_get(info, "files"), "model.safetensors");
    if (!model)
        model = json_object_get(json_object_get(info, "files"), "adapter_model.safetensors");
    const char *sha = json_string_value(json_object_get(model, "sha256"));
    json_t *metrics = json_object_get(info, "metrics");
    char *m = metrics ? json_dumps(metrics, JSON_COMPACT) : NULL;
    struct store_checkpoint_new c = {
        .job_id = jr->job->id, .metrics = m, .sha256 = sha, .path = dir, .step = step,
        .bytes = json_integer_value(json_object_get(model, "bytes")),
    };
    struct store_checkpoint out;
    if (!sha) {
        log_err(jr->job->id, "checkpoint", "owlore.json without model.safetensors' sha256");
    } else if (store_checkpoint_insert(jr->st, &c, &out, err, sizeof err) != STORE_OK) {
        log_err(jr->job->id, "checkpoint", err);
    } else {
        snprintf(msg, sizeof msg, "Checkpoint created at step %ld", step);
        event(jr, "info", "message", msg,
              json_pack("{s:s, s:I}", "checkpoint_id", out.id, "step", (json_int_t)step));
        store_checkpoint_clear(&out);
    }
    free(m);
    json_decref(info);
}

/* Records every complete checkpoint directory newer than the last one
 * recorded, oldest first (train_run writes them after the step's event). */
static void scan_checkpoints(struct job_run *jr)
{
    for (;;) {
        long next = -1;
        DIR *d = opendir(jr->out_dir);
        for (struct dirent *e; d && (e = readdir(d));) {
            char *end;
            if (strncmp(e->d_name, "checkpoint-", 11) != 0)
                continue;
            long s = strtol(e->d_name + 11, &end, 10);
            if (*end == '\0' && s > jr->last_ckpt && (next < 0 || s < next))
                next = s;
        }
        if (d)
            closedir(d);
        if (next < 0)
            return;
        record_checkpoint(jr, next);
        jr->last_ckpt = next;
    }
}

static void on_progress(void *ctx, const struct train_event *ev)
{
    struct job_run *jr = ctx;
    char msg[160];
    scan_checkpoints(jr);
    jr->step = ev->step;
    pthread_mutex_lock(&q.mu);
    q.step = ev->step;
    q.tokens_per_s = ev->tokens_per_s;
    pthread_mutex_unlock(&q.mu);
    if (jr->have_layers)
        job_layers_step(&jr->layers, ev);
    char err[256];
    if (isfinite(ev->eta_s) && ev->eta_s >= 0 &&
        store_job_set_estimate(jr->st, jr->job->id, (int64_t)time(NULL) + (int64_t)ev->eta_s,
                               err, sizeof err) == STORE_ERROR)
        log_err(jr->job->id, "estimate", err);
    json_t *blocks = json_array();
    for (int i = 0; i < ev->n_active; i++)
        json_array_append_new(blocks, json_integer(ev->active[i]));
    json_t *data = json_pack(
        "{s:I, s:I, s:i, s:o, s:o, s:o, s:f, s:f, s:f, s:I, s:I, s:o}", "step",
        (json_int_t)ev->step, "total_steps", (json_int_t)ev->total_steps, "epoch", ev->epoch,
        "train_loss", real_or_null(ev->loss), "valid_loss", real_or_null(ev->val_loss),
        "learning_rate", real_or_null(ev->lr), "tokens_per_s", ev->tokens_per_s, "elapsed_s",
        ev->elapsed_s, "eta_s", isfinite(ev->eta_s) ? ev->eta_s : 0.0, "rss_bytes",
        (json_int_t)ev->rss_bytes, "peak_rss_bytes", (json_int_t)ev->peak_rss_bytes,
        "sampled_blocks", blocks);
    if (isfinite(ev->loss))
        snprintf(msg, sizeof msg, "Step %ld/%ld: training loss=%.4f", ev->step, ev->total_steps,
                 (double)ev->loss);
    else
        snprintf(msg, sizeof msg, "Step %ld/%ld: validation loss=%.4f", ev->step,
                 ev->total_steps, (double)ev->val_loss);
    event(jr, "info", "metrics", msg, data);
}

/* Outlier ratios over the first calibration windows (owl methods), the
 * forward passes on dev (NULL: the host); info says where they ran. */
static int calibrate(const struct model *m, const struct recipe *r, const struct token_windows *w,
                     const char *cache_dir, const struct backend *dev, double *ratios,
                     struct outliers_info *info, char *err, size_t errlen)
{
    int n = w->n < r->calib_samples ? w->n : r->calib_samples;
    int *tokens = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1) * (size_t)w->seq_len);
    struct outliers_options oo = {.tau = r->tau, .tokens = tokens, .n_seqs = n,
                                  .seq_len = w->seq_len, .cache_dir = cache_dir,
                                  .device = dev};
    if (!tokens) {
        snprintf(err, errlen, "out of memory for calibration");
        return -1;
    }
    for (int i = 0; i < n; i++)
        memcpy(tokens + (size_t)i * w->seq_len, w->ids + (size_t)i * (w->seq_len + 1),
               sizeof(int) * (size_t)w->seq_len);
    int rc = outliers_compute(m, &oo, ratios, info, err, errlen);
    free(tokens);
    return rc;
}

/* The error of a failed job. */
struct job_error {
    const char *code, *param;
    char message[1024];
};

/* Loads everything and trains. TRAIN_FAILED fills *je. */
static enum train_result train_job(struct job_run *jr, struct job_error *je)
{
    const struct store_job *j = jr->job;
    struct service *svc = q.svc;
    char model_path[4200], tok_path[4200], err[1024], param[JOB_PARAM_LEN], cache[4300];
    char resume_dir[4400] = "";
    struct recipe r;
    struct model m;
    struct tokenizer tok;
    struct ds_windows train = {0}, val = {0};
    double *ratios = NULL;
    enum train_result res = TRAIN_FAILED;
    json_t *method = json_loads(j->method, 0, NULL);
    je->code = "invalid_request";
    je->param = NULL;
    int bad = job_recipe_parse(method, &r, param, err, sizeof err);
    json_decref(method);
    if (bad) {
        snprintf(je->message, sizeof je->message, "%s", err);
        je->param = "method";
        return TRAIN_FAILED;
    }
    r.seed = (unsigned long long)j->seed;
    jr->tokens_per_step = (int64_t)r.batch_size * r.grad_accum * r.seq_len;
    if (service_model_path(svc, j->model, model_path, sizeof model_path, err, sizeof err) != 0) {
        je->code = "invalid_model";
        je->param = "model";
        snprintf(je->message, sizeof je->message, "%s", err);
        return TRAIN_FAILED;
    }
    if (model_load(model_path, backend_cpu(), &m, err, sizeof err) != 0) {
        je->code = "model_load_failed";
        snprintf(je->message, sizeof je->message, "%s", err);
        return TRAIN_FAILED;
    }
    if (tokenizer_find_for_model(model_path, NULL, m.cfg.vocab_size, tok_path, sizeof tok_path,
                                 err, sizeof err) != 0 ||
        tokenizer_load(&tok, tok_path, m.cfg.vocab_size, err, sizeof err) != 0) {
        je->code = "model_load_failed";
        snprintf(je->message, sizeof je->message, "%s", err);
        model_free(&m);
        return TRAIN_FAILED;
    }
    struct ds_opts dso = {.format = DS_FORMAT_AUTO, .seq_len = r.seq_len, .pack = 1,
                          .pad_id = -1};
    if (!tok.chat_template || chat_template_detect(tok.chat_template, &dso.tmpl) != 0)
        dso.tmpl = CHAT_RAW;
    const char *files[2] = {j->training_file, j->validation_file};
    struct ds_windows *wins[2] = {&train, &val};
    for (int i = 0; i < 2 && files[i]; i++) {
        struct store_file f;
        if (store_file_get(jr->st, j->owner, files[i], &f, err, sizeof err) != STORE_OK) {
            je->code = "invalid_file";
            je->param = i ? "validation_file" : "training_file";
            snprintf(je->message, sizeof je->message, "File %s is no longer available.",
                     files[i]);
            goto out;
        }
        int rc = ds_load(wins[i], f.blob_path, &tok, &dso, err, sizeof err);
        store_file_clear(&f);
        if (rc != 0) {
            je->code = "invalid_file";
            je->param = i ? "validation_file" : "training_file";
            snprintf(je->message, sizeof je->message, "%s", err);
            goto out;
        }
    }
    struct token_windows tw = ds_windows_view(&train), vw = ds_windows_view(&val);
    if (!j->validation_file)
        vw = (struct token_windows){NULL, 0, r.seq_len, NULL};
    /* the GPU when one opens, else the CPU: the calibration's forward passes
     * (on a copy of the weights) and the training run there */
    const struct backend *dev = backend_select("auto", err, sizeof err);
    if (!dev) {
        je->code = "training_failed";
        snprintf(je->message, sizeof je->message, "%s", err);
        goto out;
    }
    if (r.sampling == SAMPLING_OWL) {
        struct outliers_info info;
        char note[700];
        snprintf(cache, sizeof cache, "%s/cache", svc->data_dir);
        ratios = calloc((size_t)m.cfg.n_layers, sizeof(double));
        if (!ratios || calibrate(&m, &r, &tw, cache, dev, ratios, &info, err, sizeof err) != 0) {
            je->code = "calibration_failed";
            snprintf(je->message, sizeof je->message, "%s",
                     ratios ? err : "out of memory for the outlier ratios");
            goto out;
        }
        if (info.cache_hit)
            snprintf(note, sizeof note, "Outlier ratios read from the cache");
        else
            snprintf(note, sizeof note, "Outlier ratios computed on the %s backend%s%.500s",
                     info.calibrated_on ? info.calibrated_on : "cpu",
                     info.device_note[0] ? ": " : "", info.device_note);
        event(jr, "info", "message", note, NULL);
    }
    if (j->resume_checkpoint) {
        struct store_checkpoint c;
        if (store_checkpoint_get(jr->st, j->id, j->resume_checkpoint, &c, err, sizeof err) ==
            STORE_OK) {
            snprintf(resume_dir, sizeof resume_dir, "%s", c.path);
            store_checkpoint_clear(&c);
        }
    }
    mkdir(jr->out_dir, 0700);
    if (job_layers_init(&jr->layers, jr->out_dir, &r, m.cfg.n_layers, ratios, err,
                        sizeof err) == 0)
        jr->have_layers = 1;
    else
        log_err(j->id, "layer statistics", err);
    struct train_opts o = {
        .out_dir = jr->out_dir, .resume_dir = resume_dir[0] ? resume_dir : NULL,
        .tokenizer_path = tok.kind == TOKENIZER_GGUF ? NULL : tok_path,
        .outlier_ratios = ratios, .outlier_tau = r.tau, .base_model_id = model_path,
        .progress = on_progress, .ctx = jr, .stop = &q.stop, .quiet = 1,
    };
    char digest[SHA256_HEX_LEN] = "";
    int stored = 1;
    if (r.bf16_weights) {
        stored = model_store_bf16_digested(&m, digest, err, sizeof err) == 0;
        o.base_model_digest = digest;
    }
    if (!stored || model_move(&m, dev, err, sizeof err) != 0) {
        je->code = "training_failed";
        snprintf(je->message, sizeof je->message, "%s", err);
        goto out;
    }
    char where[64];
    snprintf(where, sizeof where, "Training on the %s backend", dev->name);
    event(jr, "info", "message", where, NULL);
    errno = 0;
    res = train_run(&m, &r, &tw, &vw, &o, NULL, err, sizeof err);
    int cause = errno; /* a failed checkpoint write leaves its errno (ckpt.h) */
    scan_checkpoints(jr);
    if (res == TRAIN_FAILED) {
        je->code = cause == ENOSPC || cause == EDQUOT ? "disk_full" : "training_failed";
        snprintf(je->message, sizeof je->message, "%s", err);
    }
out:
    if (jr->have_layers)
        job_layers_free(&jr->layers);
    jr->have_layers = 0;
    free(ratios);
    ds_windows_free(&train);
    ds_windows_free(&val);
    tokenizer_free(&tok);
    model_free(&m);
    return res;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Ends job j after train_job returned res. */
static void finish(struct job_run *jr, enum train_result res, const struct job_error *je)
{
    const struct store_job *j = jr->job;
    struct store_job_update u = STORE_JOB_UPDATE_NONE;
    struct store_event_new ev = {"info", "", "message", NULL};
    enum store_job_status to;
    char err[512], msg[256], ft[512], text[1024], ckpt_id[STORE_ID_LEN] = "";
    char *error = NULL;
    u.finished_at = (int64_t)time(NULL);
    switch (res) {
    case TRAIN_DONE:
        to = JOB_SUCCEEDED;
        snprintf(ft, sizeof ft, "ft:%s%s%s:%s", base_name(j->model), j->suffix ? ":" : "",
                 j->suffix ? j->suffix : "", j->id);
        u.fine_tuned_model = ft;
        u.trained_tokens = jr->step * jr->tokens_per_step;
        ev.message = "The job has successfully completed";
        break;
    case TRAIN_CANCELLED:
        to = JOB_CANCELLED;
        ev.message = "The job was cancelled";
        break;
    case TRAIN_PAUSED: {
        /* asked by the user (pausing: paused) or by shutdown (running:
         * re-queued), to resume from the newest checkpoint either way */
        struct store_checkpoint_list l;
        to = JOB_QUEUED;
        u.finished_at = 0;
        if (store_checkpoint_list(jr->st, j->id, NULL, 1, &l, err, sizeof err) == STORE_OK) {
            if (l.n)
                snprintf(ckpt_id, sizeof ckpt_id, "%s", l.v[0].id);
            store_checkpoint_list_free(&l);
        }
        u.resume_checkpoint = ckpt_id[0] ? ckpt_id : NULL;
        snprintf(msg, sizeof msg, "The job was paused at step %ld", jr->step);
        ev.message = msg;
        if (store_job_transition(jr->st, j->id, JOB_MASK(JOB_PAUSING), JOB_PAUSED, &u, &ev,
                                 NULL, NULL, err, sizeof err) == STORE_OK)
            return;
        snprintf(msg, sizeof msg, "Server shutting down: paused at step %ld and re-queued",
                 jr->step);
        break;
    }
    default:
        to = JOB_FAILED;
        snprintf(text, sizeof text, "%s", je->message);
        utf8_repair(text); /* it may quote a cut multi-byte character */
        error = json_dumps(json_pack("{s:s, s:s, s:s?}", "code", je->code, "message",
                                     text, "param", je->param),
                           JSON_COMPACT);
        u.error = error;
        snprintf(msg, sizeof msg, "The job failed: %.200s", text);
        utf8_repair(msg);
        ev.level = "error";
        ev.message = msg;
        break;
    }
    /* A full disk refuses the write: retry each second until it is recorded,
     * so the job is not left running; on shutdown start-up recovery settles
     * it instead. */
    for (int tries = 0;; tries++) {
        int rc = store_job_transition(jr->st, j->id, JOB_MASK(JOB_RUNNING) |
                                      JOB_MASK(JOB_PAUSING), to, &u, &ev, NULL, NULL, err,
                                      sizeof err);
        if (rc != STORE_OK && (rc != STORE_ERROR || tries == 0))
            log_err(j->id, rc == STORE_ERROR ? "finish (retrying)" : "finish", err);
        pthread_mutex_lock(&q.mu);
        if (rc == STORE_ERROR && !q.stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&q.cv, &q.mu, &until);
        }
        int again = rc == STORE_ERROR && !q.stopping;
        pthread_mutex_unlock(&q.mu);
        if (!again)
            break;
    }
    free(error);
}

void queue_get_stats(struct queue_stats *s)
{
    pthread_mutex_lock(&q.mu);
    s->busy = q.running[0] != '\0';
    s->step = s->busy ? q.step : 0;
    s->tokens_per_s = s->busy ? q.tokens_per_s : 0;
    pthread_mutex_unlock(&q.mu);
}

/* Claims and runs job j. */
static void run_job(struct store *st, const struct store_job *j)
{
    char err[512];
    struct store_job_update u = STORE_JOB_UPDATE_NONE;
    struct store_event_new ev = {"info", "Fine-tuning job started", "message", NULL};
    pthread_mutex_lock(&q.mu);
    snprintf(q.running, sizeof q.running, "%s", j->id);
    q.step = 0;
    q.tokens_per_s = 0;
    atomic_store(&q.stop, TRAIN_RUN);
    pthread_mutex_unlock(&q.mu);
    u.started_at = (int64_t)time(NULL);
    int rc = store_job_transition(st, j->id, JOB_MASK(JOB_QUEUED), JOB_RUNNING, &u, &ev, NULL,
                                  NULL, err, sizeof err);
    if (rc == STORE_OK) {
        struct job_run jr = {.st = st, .job = j};
        struct store_checkpoint_list l;
        struct job_error je = {0};
        snprintf(jr.out_dir, sizeof jr.out_dir, "%s/jobs", q.svc->data_dir);
        mkdir(jr.out_dir, 0700);
        snprintf(jr.out_dir, sizeof jr.out_dir, "%s/jobs/%s", q.svc->data_dir, j->id);
        if (store_checkpoint_list(st, j->id, NULL, 1, &l, err, sizeof err) == STORE_OK) {
            jr.last_ckpt = l.n ? (long)l.v[0].step : 0;
            jr.step = jr.last_ckpt;
            store_checkpoint_list_free(&l);
        }
        enum train_result res = atomic_load(&q.stop) == TRAIN_STOP_CANCEL ? TRAIN_CANCELLED
                                                            : train_job(&jr, &je);
        finish(&jr, res, &je);
    } else if (rc != STORE_CONFLICT) {
        log_err(j->id, "start", err);
    }
    pthread_mutex_lock(&q.mu);
    q.running[0] = '\0';
    pthread_mutex_unlock(&q.mu);
}

static void *worker(void *arg)
{
    (void)arg;
    struct store *st = q.svc->store;
    char err[512];
    pthread_mutex_lock(&q.mu);
    while (!q.stopping) {
        struct store_job j;
        pthread_mutex_unlock(&q.mu);
        int rc = store_job_next_queued(st, &j, err, sizeof err);
        if (rc == STORE_OK) {
            run_job(st, &j);
            store_job_clear(&j);
        } else if (rc != STORE_NOTFOUND) {
            fprintf(stderr, "owlore serve: queue: %s\n", err);
        }
        pthread_mutex_lock(&q.mu);
        if (rc != STORE_OK && !q.stopping && !q.woken) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            pthread_cond_timedwait(&q.cv, &q.mu, &until);
        }
        q.woken = 0;
    }
    pthread_mutex_unlock(&q.mu);
    return NULL;
}

int queue_start(struct service *svc, char *err, size_t errlen)
{
    q.svc = svc;
    q.stopping = 0;
    int rc = pthread_create(&q.thread, NULL, worker, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "job worker: %s", strerror(rc));
        return -1;
    }
    q.started = 1;
    return 0;
}

void queue_wake(void)
{
    pthread_mutex_lock(&q.mu);
    q.woken = 1;
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
}

/* Sets the stop request of the running job if it is `id`; a cancel is
 * never downgraded to a pause. */
static int request_stop(const char *id, enum train_stop stop)
{
    int hit;
    pthread_mutex_lock(&q.mu);
    hit = q.running[0] && strcmp(q.running, id) == 0;
    if (hit && atomic_load(&q.stop) != TRAIN_STOP_CANCEL)
        atomic_store(&q.stop, stop);
    pthread_mutex_unlock(&q.mu);
    return hit;
}

int queue_cancel(const char *id)
{
    return request_stop(id, TRAIN_STOP_CANCEL);
}

int queue_pause(const char *id)
{
    return request_stop(id, TRAIN_STOP_PAUSE);
}

void queue_stop(void)
{
    if (!q.started)
        return;
    pthread_mutex_lock(&q.mu);
    q.stopping = 1;
    if (q.running[0] && atomic_load(&q.stop) == TRAIN_RUN)
        atomic_store(&q.stop, TRAIN_STOP_PAUSE);
    pthread_cond_signal(&q.cv);
    pthread_mutex_unlock(&q.mu);
    pthread_join(q.thread, NULL);
    q.started = 0;
}
