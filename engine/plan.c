/*
 * plan.c: predicted memory and throughput of a fine-tuning run (plan.h).
 *
 * Element counts mirror what the trainer allocates; bytes per element are 4
 * (PLAN_FP32, this engine on either backend, bf16 storage counted when the
 * recipe asks for it) or 2 (PLAN_BF16, "pure bf16" as the released OwLore
 * code: weights, gradients, Adam moments and GaLore projectors all bf16, no
 * fp32 master copy; owlore-algorithm.md sections 4 and 9).
 *
 *   weights      every parameter (model_param_floats); fp32 with bf16_weights:
 *                embedding, blocks and head at 2 bytes, the final norm and
 *                an fp32 stage of two gains and the largest linear layer
 *                (model_bf16_bytes), and in the workspace one linear layer
 *                (or panel of the head) widened for its product
 *   gradients    grads_slots_floats: the trained blocks (all L for
 *                full/galore, gamma for sampled methods) + embedding, final
 *                norm and untied head (these three always train unless
 *                freeze_embeddings). The engine (fp32): the embedding's
 *                gradient as B*T*accum rows and as many summed per distinct
 *                token when that is fewer than V rows
 *                (recipe_sparse_embedding_rows); with streamed GaLore
 *                gradients (recipe_streams_gradients) one slot of the largest
 *                linear layer instead of the blocks' (grads_streamed_floats),
 *                plus the projected gradients of every trained block
 *                (grads_projected_block_floats), or, with update_in_backward,
 *                nothing else (each tensor steps in backward); the released code's pure
 *                bf16 keeps every trained block's full gradient
 *   optimizer    per trained tensor optim_state_floats(rows, cols, rank):
 *                AdamW for the embedding/head/final norm and the RMSNorm
 *                gains, the block rank for the 7 linears. Blocks holding
 *                state: L for full/galore; gamma for sampled methods with
 *                state_policy reset; L with keep (the worst case, reached
 *                once every block has been visited)
 *   activations  fp32: the CPU engine's real buffers (model_activation_bytes;
 *                with checkpoint_activations, block inputs for every layer and
 *                the internals of one, plus those of each block above
 *                recompute_blocks; with bf16_activations, those blocks'
 *                internals in bf16 beside one fp32 set), and with
 *                update_in_backward's two passes the saved gradient of the
 *                final norm's output (B*T*D).
 *                bf16 (GPU, per-block gradient checkpointing, flash
 *                attention, section 9), in bytes:
 *                  B*T * (L*D*2            stored bf16 block inputs
 *                         + 2*(10*D + 4*F)) one block recomputed at a time
 *                  + model_ce_rows*V*4*3    one fp32 chunk of logits, its
 *                                           softmax and its gradient (the
 *                                           classifier is chunked, so this
 *                                           stops growing with B*T)
 *   workspace    fp32/CPU: optimizer scratch for the largest need of any
 *                tensor (plan_scratch_floats, as the trainer sizes it)
 *                + 64 MiB for OpenBLAS/OpenMP thread buffers (OpenBLAS
 *                allocates a 32-64 MB GEMM buffer) + 16 MiB process baseline
 *                (code, libc, OpenBLAS, jansson).
 *                bf16/GPU: 1 GiB CUDA context and allocator slack, plus, when
 *                blocks take GaLore steps, the transient fp32 SVD workspace
 *                of the largest block linear (rows*cols*4 bytes, x2 for the
 *                copy factorised and its factors)
 *
 * FLOPs per token: PaLM's 6*N + 12*L*H*hd*T (N = every parameter, embedding
 * included) split into forward 2N, backward activation gradients 2N
 * (backprop runs through every block, because the embedding trains) and
 * weight gradients 2*N_trainable (frozen blocks skip their weight-gradient
 * products), plus the attention term. With frozen embeddings the backward
 * below the lowest trained block is skipped too, so the figure is then an
 * upper bound. On the steps between projector refreshes, the fp32 engine
 * takes a streamed GaLore linear layer's gradient from its factors when
 * that is cheaper (small batches), and its 2 rows cols a token become the
 * factored way's (optim_use_factors); the figure counts that steady state.
 * Work repeated only to save memory is not counted (model FLOPs, as PaLM's
 * MFU): checkpointing's second forward of each block, update_in_backward's
 * norm pass (a second backward through the blocks, with clipping).
 * Throughput = FLOPs per token / a sustained rate:
 *   fp32 CPU  150 GFLOP/s: bench_train_step on the 2-core AVX-512 Xeon
 *             this engine is developed on measured 155-164 GFLOP/s for the
 *             SmolLM2-135M-shaped model (B 1, T 256, 2 OpenMP threads,
 *             OpenBLAS SkylakeX kernels, BLAS-tiled attention)
 *   bf16 GPU  989 TFLOP/s (H100 SXM dense bf16) x 0.40 MFU
 * Method lora adds its adapters (lora_param_floats) to the weights, the same
 * again as gradients, twice as AdamW moments, and its saved A x products
 * and scratch (lora.h) to the activations.
 */
#include <stdio.h>
#include <string.h>

#include "lora.h"
#include "model.h"
#include "plan.h"

#define PLAN_CPU_FLOPS 150e9             /* FLOP/s, calibrated, see above */
#define PLAN_GPU_FLOPS (989e12 * 0.40)   /* FLOP/s, H100 SXM bf16 at 40% MFU */
#define MIB (1024.0 * 1024.0)
#define GIB (1024.0 * MIB)

/* Optimizer state (floats) of one trained block. */
static double block_state(const struct model_config *c, int rank)
{
    double state = 2.0 * (double)optim_state_floats(c->dim, 0, 0); /* 2 RMSNorm gains */
    for (int id = 0; id < LIN_COUNT; id++) {
        int rows, cols;
        model_linear_offset(c, (enum linear_id)id, &rows, &cols);
        state += (double)optim_state_floats(rows, cols, rank);
    }
    return state;
}

size_t plan_scratch_floats(const struct model_config *c, const struct recipe *r, int N)
{
    size_t s = optim_scratch_floats(c->vocab_size, c->dim, 0), t;
    if ((t = optim_scratch_floats(c->dim, 0, 0)) > s)
        s = t;
    for (int id = 0; id < LIN_COUNT; id++) {
        int rows, cols;
        model_linear_offset(c, (enum linear_id)id, &rows, &cols);
        if ((t = optim_scratch_floats(rows, cols, r->galore.rank)) > s)
            s = t;
        t = 2 * (size_t)N * N; /* the norm pass's Grams */
        if (recipe_backward_passes(r) == 2 && optim_norm_from_factors(rows, cols, N, t) &&
            t > s)
            s = t;
    }
    return s;
}

/* FLOPs per token that one trained block saves on the steps between
 * projector refreshes where streamed GaLore takes a linear layer's
 * projected gradient from its factors (optim_use_factors, as the trainer
 * decides with the scratch it sizes): its product, 2 rows cols a token, for
 * the factored way's. */
static double factored_savings(const struct model_config *c, const struct recipe *r, int N)
{
    double saved = 0;
    if (!recipe_streams_gradients(r))
        return 0;
    for (int id = 0; id < LIN_COUNT; id++) {
        int rows, cols;
        model_linear_offset(c, (enum linear_id)id, &rows, &cols);
        if (optim_use_factors(rows, cols, r->galore.rank, N, plan_scratch_floats(c, r, N)))
            saved += 2.0 * rows * cols - optim_flops_from_factors(rows, cols, r->galore.rank, N) / N;
    }
    return saved;
}

/* Appends "field: value" to the list in names (used of len bytes so far). */
static void add_name(char *names, size_t len, size_t *used, int *n, const char *field,
                     int value)
{
    if (*used < len)
        *used += (size_t)snprintf(names + *used, len - *used, "%s%s: %d", *n ? ", " : "",
                                  field, value);
    (*n)++;
}

/* names lists the settings lean changes from r, in the order plan_savings
 * turns them on, the last two joined by "and"; returns how many. */
static int changed_settings(const struct recipe *r, const struct recipe *lean, int L,
                            char *names, size_t len)
{
    size_t used = 0;
    int n = 0;
    const int k = recipe_recomputed_blocks(lean, L);
    names[0] = 0;
    if (lean->bf16_weights != r->bf16_weights)
        add_name(names, len, &used, &n, "bf16_weights", lean->bf16_weights);
    if (lean->update_in_backward != r->update_in_backward)
        add_name(names, len, &used, &n, "update_in_backward", lean->update_in_backward);
    if (lean->bf16_activations != r->bf16_activations)
        add_name(names, len, &used, &n, "bf16_activations", lean->bf16_activations);
    if (lean->checkpoint_activations != r->checkpoint_activations)
        add_name(names, len, &used, &n, "activation_checkpointing", 1);
    if (k != recipe_recomputed_blocks(r, L) && (k < L || r->checkpoint_activations))
        add_name(names, len, &used, &n, "recompute_blocks", k < L ? k : 0);
    char *last = n > 1 ? strrchr(names, ',') : NULL;
    if (last && (size_t)(used + 4) < len) { /* ", x" -> " and x" */
        memmove(last + 4, last + 1, strlen(last + 1) + 1);
        memcpy(last, " and", 4);
    }
    return n;
}

int plan_savings(const struct model_config *cfg, const struct recipe *r, int B, int T,
                 double limit, struct recipe *lean, struct plan *lean_plan, int *fits,
                 char *names, size_t len)
{
    const int L = cfg->n_layers;
    struct recipe t = *r, u;
    struct plan p;
    char err[256];
    plan_compute(cfg, r, B, T, PLAN_FP32, &p);
    if (p.total_peak <= limit) /* the limit is not what failed: every saving */
        limit = 0;
#define FITS() (plan_compute(cfg, &t, B, T, PLAN_FP32, &p), p.total_peak <= limit)
    int done = 0;
    if (!t.bf16_weights) {
        t.bf16_weights = 1;
        done = FITS();
    }
    u = t;
    u.update_in_backward = 1;
    if (!done && !t.update_in_backward && recipe_check(&u, L, err, sizeof err) == 0) {
        t = u;
        done = FITS();
    }
    if (!done && !t.bf16_activations && recipe_recomputed_blocks(&t, L) < L) {
        t.bf16_activations = 1;
        done = FITS();
    }
    for (int k = recipe_recomputed_blocks(&t, L) + 1; !done && k < L; k++) {
        t.checkpoint_activations = 1; /* the lowest k blocks, the others kept */
        t.recompute_blocks = k;
        done = FITS();
    }
    if (!done) { /* every block recomputed: none left to keep */
        t.checkpoint_activations = 1;
        t.recompute_blocks = 0;
        t.bf16_activations = 0;
        done = FITS();
    }
#undef FITS
    int n = changed_settings(r, &t, L, names, len);
    if (n == 0)
        return 0;
    *lean = t;
    *lean_plan = p;
    *fits = done;
    return n;
}

void plan_compute(const struct model_config *cfg, const struct recipe *r, int B,
                  int T, enum plan_dtype dtype, struct plan *p)
{
    const double bytes = dtype == PLAN_BF16 ? 2.0 : 4.0;
    const int L = cfg->n_layers, rank = r->galore.rank;
    const double D = cfg->dim, F = cfg->hidden_dim, V = cfg->vocab_size;
    const double tokens = (double)B * T;
    const int active = recipe_active_blocks(r, L);
    const int stateful = active < L && r->state_policy == STATE_KEEP ? L : active;

    /* elements */
    double n_params = (double)model_param_floats(cfg);
    double n_grads = (double)grads_slots_floats(cfg, active, r->freeze_embeddings, 0);
    double n_grad_mem = n_grads;
    if (dtype == PLAN_FP32) { /* the engine: sparse embedding gradient, streaming */
        const size_t erows = recipe_sparse_embedding_rows(r, cfg, B, T);
        n_grad_mem = (double)grads_slots_floats(cfg, active, r->freeze_embeddings, erows) +
                     (double)erows * D; /* and the rows summed per distinct token */
        if (recipe_streams_gradients(r)) /* one full-size tensor, the rest projected */
            n_grad_mem = (double)grads_streamed_floats(cfg, r->freeze_embeddings, erows) +
                         (double)erows * D +
                         (r->update_in_backward
                              ? 0 /* or stepped in backward */
                              : (double)active * (double)grads_projected_block_floats(cfg, rank));
    }
    double n_state = stateful * block_state(cfg, rank);
    if (!r->freeze_embeddings) { /* embedding (+ untied head) and final norm */
        n_state += (double)optim_state_floats(cfg->vocab_size, cfg->dim, 0) *
                   (cfg->tied_embeddings ? 1 : 2);
        n_state += (double)optim_state_floats(cfg->dim, 0, 0);
    }
    if (r->method == METHOD_LORA) { /* adapters, their gradients, AdamW moments */
        double n_lora = (double)lora_param_floats(cfg, r->lora.rank);
        n_params += n_lora;
        n_grads += n_lora;
        n_grad_mem += n_lora;
        n_state += 2 * n_lora;
    }

    memset(p, 0, sizeof *p);
    p->weights = n_params * bytes;
    if (dtype == PLAN_FP32 && r->bf16_weights) /* bf16 storage, the fp32 stage */
        p->weights += (double)model_bf16_bytes(cfg) - (double)model_param_floats(cfg) * bytes;
    p->gradients = n_grad_mem * bytes;
    p->optimizer_state = n_state * bytes;
    if (dtype == PLAN_BF16) {
        p->activations = tokens * (L * D * 2 + 2 * (10 * D + 4 * F)) +
                         (double)model_ce_rows(cfg, B * T) * V * 4 * 3;
        p->workspace = GIB;
        if (rank > 0)
            p->workspace += (double)model_largest_linear(cfg) * 4 * 2;
    } else {
        p->activations = (double)model_activation_bytes(cfg, B, T, recipe_recomputed_blocks(r, L),
                                                        r->bf16_activations);
        if (recipe_backward_passes(r) == 2) /* the final norm output's gradient, saved */
            p->activations += tokens * D * 4;
        p->workspace = (double)plan_scratch_floats(cfg, r, B * T) * 4 + 64 * MIB + 16 * MIB;
        if (r->bf16_weights) /* a weight matrix widened for its product */
            p->workspace += (double)model_largest_linear(cfg) * 4;
    }
    if (r->method == METHOD_LORA) /* saved A x per adapter, input and du scratch */
        p->activations += tokens * (LIN_COUNT * L * r->lora.rank + (F > D ? F : D) +
                                    r->lora.rank) * 4;
    p->total_static = p->weights + p->gradients + p->optimizer_state;
    p->total_peak = p->total_static + p->activations + p->workspace;

    double attn = 12.0 * L * cfg->n_heads * cfg->head_dim * (double)T;
    p->flops_per_token = 2 * n_params + 2 * n_params + 2 * n_grads + attn -
                         (dtype == PLAN_FP32 ? active * factored_savings(cfg, r, B * T) : 0);
    p->tokens_per_s = (dtype == PLAN_BF16 ? PLAN_GPU_FLOPS : PLAN_CPU_FLOPS) /
                      p->flops_per_token;
}
