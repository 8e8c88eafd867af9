/*
 * outliers.h: layer outlier ratios D_l for outlier-weighted sampling (OWS).
 *
 * As OWL computes them (owlore-algorithm.md section 2):
 *   - calibration: run the model forward over N sequences and collect, for
 *     each of the 7 linear layers of each block, the per-input-channel
 *     statistic s_j = sum over samples and tokens of x_j^2 (the inputs of
 *     q/k/v are the attention RMSNorm output, of o the attention output, of
 *     gate/up the FFN RMSNorm output, of down the SwiGLU output);
 *   - score A_ij = sqrt(s_j) * |W_ij| (W is [out, in]);
 *   - D_l = 100 * #{A > tau * mean(A)} / numel, with the count and the mean
 *     POOLED over all 7 linears of block l (strict >).
 * The 1/N normalisation of s does not change D, so it is left out.
 * Without calibration data, s_j = 1 (a weight-only ratio).
 * Sums are in double; every result is the same whatever the thread count.
 *
 * outliers_compute is the whole pipeline with a cache: calibration forward
 * passes, statistics, ratios, keyed by (model digest, tau, calibration
 * digest) in a small JSON file, so a later run skips calibration.
 */
#ifndef OWLORE_OUTLIERS_H
#define OWLORE_OUTLIERS_H

#include <stddef.h>

#include "model.h"

/* Per-channel input statistics of every linear layer. */
struct channel_stats {
    int n_layers;
    const struct backend *be;  /* whose memory holds mem */
    double *mem;               /* one allocation */
    size_t n;                  /* doubles in mem */
    double *sumsq[LIN_COUNT];  /* per linear id: (L, in_features) views into
                                  mem (q/k/v may share one view, as may
                                  gate/up: they read the same input) */
    long tokens;               /* tokens seen */
};

/* Zeroed statistics for config c in backend be's memory; -1 when out of
 * memory. */
int channel_stats_init(struct channel_stats *st, const struct model_config *c,
                       const struct backend *be);
void channel_stats_free(struct channel_stats *st);
/* Accumulate the statistics of the activations saved by the last
 * model_forward(m, a, tokens, B, T), m on st's backend (col_sumsq_add).
 * Each channel sums its tokens in order, so the result depends neither on
 * the thread count nor on the backend. */
void channel_stats_add(struct channel_stats *st, const struct model *m,
                       const struct activations *a, int B, int T);
/* The statistics in host memory (a download when they are elsewhere), as
 * outlier_ratios reads them; -1 when out of memory (st unchanged). */
int channel_stats_to_host(struct channel_stats *st);

/* D_l (L) from the statistics (NULL: all s_j = 1; else in host memory) at
 * threshold tau. Reads the fp32 weights in host memory (not bf16 storage):
 * two streaming passes, nothing materialised. 0, or -1 when a small
 * per-block buffer cannot be allocated. */
int outlier_ratios(const struct model *m, const struct channel_stats *st,
                   double tau, double *ratios);

/* D_l for one block from explicit norms, for tests and tools:
 * weights[k] (rows[k], cols[k]) and xnorm[k] = ||X_j|| (cols[k]) for
 * k < n_linear; xnorm or xnorm[k] NULL means all norms are 1. */
double outlier_ratio_pooled(const float *const *weights, const double *const *xnorm,
                            const int *rows, const int *cols, int n_linear, double tau);

/* ---- the cached pipeline ---- */
struct outliers_options {
    double tau;                /* > 0 */
    const int *tokens;         /* (n_seqs, seq_len) calibration windows;
                                  NULL: weight-only ratios (never cached) */
    int n_seqs, seq_len;       /* seq_len <= the model's max_seq_len */
    int batch;                 /* sequences per forward; 0: automatic (<= 4,
                                  activations within 4 GiB, at least 1) */
    const char *cache_dir;     /* NULL: outliers_cache_dir(); created if missing */
    int no_cache;              /* 1: neither read nor write the cache */
    const char *model_digest;  /* hex SHA-256 of the parameters when the caller
                                  has it already; NULL: computed here */
    const struct backend *device; /* the calibration's forward passes on a
                                  copy of the parameters there (a GPU), the
                                  host model left as it is; NULL, or no room
                                  for the copy (info says so): on the
                                  model's own backend */
};

struct outliers_info {
    char model_digest[65];     /* hex SHA-256 of the fp32 parameter bytes */
    char calib_digest[65];     /* hex SHA-256 of the calibration (below); ""
                                  when weight-only */
    int cache_hit;             /* 1: ratios read from cache_file */
    char cache_file[4096];     /* "" when the cache was not used */
    char warning[512];         /* "" or why the cache could not be used or
                                  written (the ratios are still valid) */
    const char *calibrated_on; /* the backend of the forward passes (its
                                  name), NULL when there were none */
    char device_note[512];     /* "" or why they did not run on o->device */
};

/* Calibration digest: SHA-256 of int32 n_seqs, int32 seq_len, then the
 * n_seqs * seq_len int32 token ids, all little-endian. The cache file is
 * <dir>/outliers-<model 16 hex>-<calib 16 hex>-tau<tau>.json (tau in its
 * shortest exact decimal form, e.g. tau13, tau0.5) holding
 * {format, model_digest, calibration_digest, tau, n_layers, samples, seq_len,
 * outlier_ratio}; a file whose digests, tau or length differ, or that does
 * not parse, is a miss and is rewritten (atomically: temporary + rename).
 * ratios (L) get D_l. -1 with a message (bad tau/tokens, out of memory,
 * non-finite statistics). */
int outliers_compute(const struct model *m, const struct outliers_options *o,
                     double *ratios, struct outliers_info *info, char *err,
                     size_t errlen);

/* Default cache folder: $OWLORE_CACHE_DIR, else $XDG_CACHE_HOME/owlore,
 * else $HOME/.cache/owlore. -1 with a message when none is set. */
int outliers_cache_dir(char *dir, size_t len, char *err, size_t errlen);

#endif
