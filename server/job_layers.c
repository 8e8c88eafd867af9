/*
 * job_layers.c: per-block sampling statistics of a training job, kept in
 * <job dir>/layers.json (see job_layers.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job_layers.h"
#include "sampler.h"
#include "train.h"

static json_t *to_json(const struct job_layers *l)
{
    json_t *data = json_array();
    for (int i = 0; i < l->n; i++)
        json_array_append_new(
            data, json_pack("{s:i, s:o, s:f, s:I}", "block", i, "outlier_ratio",
                            l->ratio ? json_real(l->ratio[i]) : json_null(), "probability",
                            l->prob[i], "times_sampled", (json_int_t)l->times[i]));
    int all = l->r.sampling == SAMPLING_ALL;
    return json_pack("{s:s, s:i, s:i, s:f, s:I, s:I, s:o}", "sampling",
                     sampling_name(l->r.sampling), "gamma", all ? l->n : l->r.gamma,
                     "sampling_interval", all ? 1 : l->r.interval, "tau", (double)l->r.tau,
                     "periods", (json_int_t)l->periods, "last_period",
                     (json_int_t)l->last_period, "data", data);
}

/* Writes the file atomically; failures only cost the statistics. */
static void save(const struct job_layers *l)
{
    char tmp[4500];
    json_t *o = to_json(l);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    snprintf(tmp, sizeof tmp, "%s.tmp", l->path);
    int fd = text ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    size_t n = text ? strlen(text) : 0;
    int ok = fd >= 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    if (!ok || rename(tmp, l->path) != 0) {
        fprintf(stderr, "owlore serve: %s: could not write the layer statistics\n", l->path);
        unlink(tmp);
    }
    free(text);
}

/* Continues the counts of an earlier run of the same job. */
static void resume_counts(struct job_layers *l)
{
    json_t *o = json_load_file(l->path, 0, NULL);
    json_t *data = json_object_get(o, "data");
    if (json_array_size(data) == (size_t)l->n) {
        for (int i = 0; i < l->n; i++)
            l->times[i] = json_integer_value(json_object_get(json_array_get(data, (size_t)i),
                                                             "times_sampled"));
        l->periods = json_integer_value(json_object_get(o, "periods"));
        l->last_period = json_integer_value(json_object_get(o, "last_period"));
    }
    json_decref(o);
}

static int probabilities(struct job_layers *l, const double *ratios, char *err, size_t errlen)
{
    const struct recipe *r = &l->r;
    if (r->sampling == SAMPLING_ALL || r->sampling == SAMPLING_FIXED) {
        for (int i = 0; i < l->n; i++)
            l->prob[i] = r->sampling == SAMPLING_ALL;
        for (int i = 0; r->sampling == SAMPLING_FIXED && i < r->n_fixed; i++)
            if (r->fixed_blocks[i] >= 0 && r->fixed_blocks[i] < l->n)
                l->prob[r->fixed_blocks[i]] = 1;
        return 0;
    }
    struct sampler s;
    if (sampler_init(&s, r->sampling, l->n, r->gamma, r->interval, ratios, r->fixed_blocks,
                     r->n_fixed, r->seed, err, errlen) != 0)
        return -1;
    memcpy(l->prob, s.p, sizeof(double) * (size_t)l->n);
    sampler_free(&s);
    return 0;
}

int job_layers_init(struct job_layers *l, const char *job_dir, const struct recipe *r,
                    int n_layers, const double *ratios, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->n = n_layers;
    l->r = *r;
    l->last_period = -1;
    snprintf(l->path, sizeof l->path, "%s/layers.json", job_dir);
    l->prob = calloc((size_t)n_layers, sizeof *l->prob);
    l->times = calloc((size_t)n_layers, sizeof *l->times);
    l->ratio = ratios ? malloc(sizeof(double) * (size_t)n_layers) : NULL;
    if (!l->prob || !l->times || (ratios && !l->ratio)) {
        job_layers_free(l);
        snprintf(err, errlen, "out of memory for the layer statistics");
        return -1;
    }
    if (ratios)
        memcpy(l->ratio, ratios, sizeof(double) * (size_t)n_layers);
    if (probabilities(l, ratios, err, errlen) != 0) {
        job_layers_free(l);
        return -1;
    }
    resume_counts(l);
    save(l);
    return 0;
}

void job_layers_step(struct job_layers *l, const struct train_event *ev)
{
    long k = l->r.sampling == SAMPLING_ALL ? 1 : l->r.interval;
    long period = (ev->step - 1) / (k > 0 ? k : 1);
    if (ev->step < 1 || period <= l->last_period)
        return;
    l->last_period = period;
    l->periods++;
    for (int i = 0; i < ev->n_active; i++)
        if (ev->active[i] >= 0 && ev->active[i] < l->n)
            l->times[ev->active[i]]++;
    save(l);
}

void job_layers_free(struct job_layers *l)
{
    free(l->ratio);
    free(l->prob);
    free(l->times);
    l->ratio = l->prob = NULL;
    l->times = NULL;
}

json_t *job_layers_load(const char *job_dir)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/layers.json", job_dir);
    return json_load_file(path, 0, NULL);
}
