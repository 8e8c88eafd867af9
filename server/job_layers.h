/*
 * job_layers.h: the per-block picture of a job's layer sampling, served by
 * GET /v1/fine_tuning/jobs/{id}/layers: for each transformer block its
 * outlier ratio D_l (owl sampling; null otherwise), its sampling
 * probability, and in how many sampling periods it has been trained so far.
 *
 * The worker keeps it while a job trains and rewrites
 * <job dir>/layers.json (temporary file, fsync, rename: never torn) at the
 * start of every sampling period (every K optimizer steps); a resumed job
 * continues the counts it finds there. Probabilities: owl, D_l / sum D;
 * uniform and decrease, the sampler's; full and galore (every block trains
 * every step) and fixed lists, 1 for a trained block and 0 otherwise.
 *
 * The file holds {"sampling", "gamma", "sampling_interval", "tau",
 * "periods", "data": [{"block", "outlier_ratio", "probability",
 * "times_sampled"}]}.
 */
#ifndef OWLORE_JOB_LAYERS_H
#define OWLORE_JOB_LAYERS_H

#include <stddef.h>

#include <jansson.h>

#include "recipe.h"

struct train_event;

struct job_layers {
    int n;               /* blocks */
    double *ratio;       /* (n) D_l, or NULL */
    double *prob;        /* (n) */
    long *times;         /* (n) periods each block was trained in */
    long periods;        /* periods started so far */
    long last_period;    /* index of the last period counted; -1 before */
    struct recipe r;
    char path[4400];     /* <job dir>/layers.json */
};

/* Sets up l for a job training n_layers blocks with recipe r in job_dir
 * (ratios: D_l for owl sampling, else NULL), continuing the counts of an
 * existing layers.json, and writes the file. 0, or -1 with a message. */
int job_layers_init(struct job_layers *l, const char *job_dir, const struct recipe *r,
                    int n_layers, const double *ratios, char *err, size_t errlen);
/* Counts the step of ev; at the start of a period, rewrites the file. */
void job_layers_step(struct job_layers *l, const struct train_event *ev);
void job_layers_free(struct job_layers *l);

/* The file of job_dir parsed (new reference), or NULL when the job has not
 * started training. */
json_t *job_layers_load(const char *job_dir);

#endif
