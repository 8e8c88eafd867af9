/*
 * ckpt.h: checkpoints: write a directory atomically, read it back to resume.
 *
 * A checkpoint is a directory (Hugging Face compatible, loadable by
 * model_load and by transformers):
 *   model.safetensors  every parameter, HF names, F32
 *   config.json        HF LlamaConfig keys
 *   tokenizer.json     the base model's tokenizer: a copy of its tokenizer.json
 *   (or .bin)          (+ tokenizer_config.json) or llama2.c tokenizer; a
 *                      GGUF base model's embedded tokenizer is found through
 *                      owlore.json's base_model instead
 *   owlore.json        recipe, step, metrics, outlier ratios, base model id
 *                      and digest, sha256 and size of the other files
 *   optimizer.bin      what exact resume needs beyond the weights (below)
 * A lora run's checkpoint holds its adapter as PEFT files instead of
 * model.safetensors (adapter_model.safetensors, adapter_config.json, and
 * the adapters' moments in adapter_optimizer.safetensors: lora_ckpt.h), or, once the adapter has been merged into the weights
 * (meta.lora_merged), model.safetensors alone: with adapter files beside
 * it, transformers would apply the adapter a second time.
 * It is written into "<dir>.tmp", every file fsynced, then renamed to <dir>
 * and the parent directory fsynced: a crash leaves either the complete
 * checkpoint or none (a stale .tmp is removed by the next write).
 *
 * optimizer.bin, little-endian, version 1:
 *   "OWLOPT01" | u32 n_tensors | i64 step | i32 epoch | i64 data_pos |
 *   u64 sampler_rng | u64 linalg_rng | i32 n_active | i32 active[n_active] |
 *   i64 block_counts[L] | per tensor (model_tensor_at order): u8 present,
 *   and if present i32 rows, cols, rank, side | i64 step, refreshes |
 *   f32 m[], v[], P[] (sizes from the shape, rank and side)
 * HINT: a checkpoint from an older layout cannot be resumed; start a new run
 * from its model.safetensors instead.
 */
#ifndef OWLORE_CKPT_H
#define OWLORE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"
#include "recipe.h"

/* The resumable trainer state beyond the weights. */
struct trainer_state {
    long step;                 /* optimizer steps completed */
    int epoch;
    long data_pos;             /* next window index within the epoch order */
    uint64_t sampler_rng;
    unsigned long long linalg_rng;
    int n_active;
    int *active;               /* (n_active) */
    long *block_counts;        /* (L) steps each block trained */
    struct optim_state *states; /* (model_tensor_count); rows == 0: absent */
};

struct ckpt_meta {
    const char *base_model_id;
    const char *base_model_digest;   /* sha256 hex of the base parameters */
    const char *tokenizer_path;      /* tokenizer.json or llama2.c file to copy,
                                        or NULL */
    long total_steps;
    float loss, val_loss;            /* val_loss NaN when unknown */
    const double *outlier_ratios;    /* (L) or NULL */
    double tau;
    const struct lora *lora;         /* a lora run's adapters, or NULL */
    int lora_merged;                 /* 1: m's weights include the adapters */
};

/* 0, or -1 with a message in err and errno left at the failed call's
 * (ENOSPC or EDQUOT when the disk is full); <dir>.tmp is removed then. */
int ckpt_write(const char *dir, const struct model *m, const struct recipe *r,
               const struct trainer_state *ts, const struct ckpt_meta *meta,
               char *err, size_t errlen);

/* The cheap check before resuming from dir, to run before any work: dir is
 * an owlore checkpoint (owlore.json) of a model with config c, trained with
 * r's method from the base model whose parameters have this digest. */
int ckpt_check_resume(const char *dir, const struct model_config *c,
                      const struct recipe *r, const char *base_model_digest,
                      char *err, size_t errlen);

/* Read optimizer.bin of checkpoint dir into ts (states allocated on m's
 * backend; ts->active/block_counts/states must be allocated by the caller
 * for L blocks and model_tensor_count tensors) after ckpt_check_resume.
 * The weights are loaded separately (load_hf_dir). */
int ckpt_read_state(const char *dir, const struct model *m, const struct recipe *r,
                    const char *base_model_digest, struct trainer_state *ts,
                    char *err, size_t errlen);

#endif
