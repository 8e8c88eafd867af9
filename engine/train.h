/*
 * train.h: the fine-tuning loop (all five methods in one engine).
 *
 * train_run trains a loaded model on token windows with a recipe:
 *   every optimizer step s:
 *     - every K steps (s % K == 0) the sampler picks the blocks that train
 *       (methods full/galore: all blocks, always); leaving blocks lose their
 *       optimizer state under state_policy reset;
 *     - grad_accum micro-batches of batch_size windows: forward, classifier
 *       loss (mean over every counted target of the step), backward into
 *       gradient storage that exists only for trainable tensors;
 *     - global-norm clipping over the full-rank gradients (before any
 *       projection);
 *     - AdamW / GaLore-AdamW per tensor at the scheduled learning rate
 *       (with update_in_backward, a block tensor's already in backward: one
 *       pass without clipping, else a norm pass and a second that steps);
 *   validation loss every eval_every steps and at the end; checkpoints every
 *   save_every steps and at the end (ckpt.h); a progress callback per step.
 * A stop request is honoured between steps: TRAIN_STOP_CANCEL returns at
 * once, TRAIN_STOP_PAUSE writes a checkpoint first (resume continues exactly).
 *
 * Exact resume: a checkpoint holds weights, moments, projectors, per-tensor
 * step counts, the sampler's RNG and active set, the range finder's RNG and
 * the data position; with the CPU backend the losses of an interrupted and
 * resumed run equal an uninterrupted run's bit for bit.
 */
#ifndef OWLORE_TRAIN_H
#define OWLORE_TRAIN_H

#include <stdatomic.h>
#include <stddef.h>

#include "model.h"
#include "recipe.h"

/* Token windows: n sequences of seq_len + 1 ids; the inputs are the first
 * seq_len ids and the targets the last seq_len, unless `targets` gives them
 * explicitly (a loss mask: targets < 0 are ignored). */
struct token_windows {
    const int *ids;     /* (n, seq_len + 1) */
    int n;
    int seq_len;
    const int *targets; /* (n, seq_len) or NULL */
};

/* Window i's targets (seq_len ids) */
static inline const int *token_windows_targets(const struct token_windows *w, int i)
{
    return w->targets ? w->targets + (size_t)i * w->seq_len
                      : w->ids + (size_t)i * (w->seq_len + 1) + 1;
}

/* One per optimizer step; a fresh run with validation data also reports
 * step 0 first: the base model's val_loss, with loss/lr/grad_norm NaN. */
struct train_event {
    long step;               /* optimizer steps completed */
    long total_steps;
    int epoch;               /* 0-based */
    float loss;              /* mean training loss of this step */
    float val_loss;          /* NaN when not computed this step */
    float lr;
    float grad_norm;         /* before clipping */
    double tokens_per_s;     /* this step */
    double elapsed_s, eta_s;
    size_t rss_bytes, peak_rss_bytes;
    const int *active;       /* blocks trained this step */
    int n_active;
};

enum train_stop { TRAIN_RUN = 0, TRAIN_STOP_CANCEL = 1, TRAIN_STOP_PAUSE = 2 };
enum train_result { TRAIN_DONE = 0, TRAIN_FAILED = -1, TRAIN_CANCELLED = 1,
                    TRAIN_PAUSED = 2 };

struct train_opts {
    const char *out_dir;          /* checkpoints and metrics.jsonl */
    const char *resume_dir;       /* a checkpoint directory, or NULL */
    const char *tokenizer_path;   /* copied into checkpoints, or NULL */
    const double *outlier_ratios; /* (L) D_l for owl sampling, or NULL */
    double outlier_tau;
    const char *base_model_id;    /* recorded in owlore.json */
    const char *base_model_digest; /* hex SHA-256 of the parameters, or NULL:
                                     computed (a 7B model takes seconds) */
    void (*progress)(void *ctx, const struct train_event *ev);
    void *ctx;
    const atomic_int *stop;       /* enum train_stop, polled between steps;
                                     set from another thread or a signal handler */
    int quiet;                    /* 1: no per-step line on stdout */
};

/* Per-block count of steps each block was trained (filled by train_run
 * when non-NULL; (L) longs). TRAIN_FAILED after a failed checkpoint write
 * leaves errno as ckpt_write left it (ENOSPC: the disk is full). */
enum train_result train_run(struct model *m, const struct recipe *r,
                            const struct token_windows *train,
                            const struct token_windows *val,
                            const struct train_opts *o, long *block_counts,
                            char *err, size_t errlen);

/* The learning rate at optimizer step `step` of `total` (warmup, then
 * linear/cosine decay to min_lr_ratio * lr, or constant). */
float train_lr_at(const struct recipe *r, long step, long total);

/* Current and peak resident set size of this process, bytes. */
void train_memory(size_t *rss, size_t *peak);

#endif
