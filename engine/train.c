/*
 * train.c: the fine-tuning loop (see train.h for the step anatomy).
 *
 * Tensors are addressed by their model_tensor_at index everywhere (optimizer
 * states, checkpoints): 0 embedding, 1 + 9*l + piece for block l (piece in
 * storage order: attn_norm, q, k, v, o, ffn_norm, gate, up, down), then the
 * final norm and, when untied, the head. Gradient storage exists for the
 * trainable tensors only: the embedding (dense, or, when a step has fewer
 * token positions than the vocabulary, sparse: the rows of its output's
 * gradient, summed per distinct token and scattered range by range in its
 * optimizer step), norm and head (unless frozen) and one
 * block-sized slot per active block, or, with streamed GaLore gradients
 * (recipe_streams_gradients), one slot the size of a block's largest tensor
 * that backward fills with one gradient tensor at a time and the trainer
 * empties into the block's projected gradients (stream_piece); between
 * projector refreshes a linear layer's projected gradient and sum of
 * squares come from its two factors instead when that is cheaper (small
 * batches: stream_factors), and its gradient is never formed.
 *
 * update_in_backward (full-rank methods): the same one slot, and each block
 * tensor takes its AdamW step as soon as backward completes its gradient
 * (update_piece), after the products that still read its weights. The
 * embedding, final norm and head keep stored gradients and step after
 * backward. With clipping, the step's first backward pass (norm_pass) only
 * adds up the block gradients' squares, from the Grams where cheaper
 * (norm_factors), the embedding's and the head's gradients being formed as
 * usual; a second pass over the blocks (blocks_only, from the saved
 * gradient of the final norm's output) steps each tensor scaled by the
 * clipping factor, as the stored run would. Without clipping one pass does
 * both, and a non-finite gradient fails the step after the tensors above it
 * stepped (the job fails; its checkpoints are untouched).
 *
 * bf16 storage (recipe bf16_weights, model_bf16.c): each tensor of an
 * active block, the embedding and the head step in place, updated in fp32
 * as they are read and rounded back stochastically with noise from (seed,
 * step, block or table) (optim.h *_bf16), never copied to fp32 whole.
 *
 * Data order: each epoch visits the windows in a permutation drawn from
 * (seed, epoch); the position inside it is part of the checkpoint.
 *
 * Method lora: no block has gradient storage; the adapters (lora.h) hang
 * on the model (m->lora) for the run, take part in clipping and get their
 * own AdamW steps; dropout masks are seeded per (seed, step, micro-batch).
 * Its checkpoints hold the adapter (PEFT files) and its moments, from which
 * a run resumes exactly; with merge, the final one holds the merged weights
 * instead, which the model then keeps.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "digest.h"
#include "load_hf.h"
#include "lora.h"
#include "lora_ckpt.h"
#include "plan.h"
#include "sampler.h"
#include "train.h"

#define PIECES 9

struct run {
    struct model *m;
    const struct recipe *r;
    const struct train_opts *o;
    const struct token_windows *train, *val;
    struct model_grads g;
    struct activations a;
    struct lora lora;          /* method lora: the adapters */
    struct sampler smp;
    int sampled;               /* 1: blocks come from the sampler */
    struct trainer_state ts;
    int n_tensors;
    float *scratch;
    size_t scratch_floats;
    double *grad_sumsq;        /* one double in backend memory: the sum of
                                * squares of this step's gradients, added up
                                * on the backend as they complete */
    /* the embedding's gradient kept sparse (g.embed_rows): per step the
     * sorted distinct tokens, each position's index among them (then, in the
     * optimizer step, the distinct tokens' rows within a range), and the
     * summed gradient rows of the distinct tokens (n_distinct, D) */
    int *embed_distinct, *embed_index;
    size_t n_distinct;
    float *embed_sums;
    /* streamed GaLore gradients (recipe_streams_gradients): every gradient
     * tensor of the trained blocks passes through one slot; as backward
     * completes one, a linear layer's is projected into `projected` (the
     * j-th active block at j * proj_block floats, piece p at proj_off[p]),
     * a gain's copied there, before the next tensor overwrites the slot;
     * with update_in_backward (fused) each is stepped instead */
    int stream, fused;
    int passes;                /* backward passes a step (recipe_backward_passes) */
    int norm_pass;             /* 1 during the first of two */
    float lr, clip_coef;       /* this step's rate and clipping factor (1: none) */
    float *d_top;              /* (B*T, D) with two passes: the final norm
                                * output's gradient, for the second */
    float *projected;
    size_t proj_block, proj_off[PIECES];
    int stream_failed;
    char stream_err[512];
    /* the input whose Gram X X^T stream_factors left in the scratch: block
     * gram_l's at step gram_step (q, k and v share theirs, gate and up) */
    const float *gram_x;
    int gram_l;
    long gram_step;
    int *tokens, *targets;     /* (B, T) */
    int *order;                /* (n_train) this epoch's window order */
    long steps_per_epoch, total_steps;
    char digest[SHA256_HEX_LEN];  /* of the base model's parameters */
    FILE *metrics;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void train_memory(size_t *rss, size_t *peak)
{
    struct rusage ru;
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    *rss = (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
    getrusage(RUSAGE_SELF, &ru);
    *peak = (size_t)ru.ru_maxrss * 1024;
    if (*peak < *rss) /* the two are sampled differently; peak is never below */
        *peak = *rss;
}

float train_lr_at(const struct recipe *r, long step, long total)
{
    if (r->warmup_steps > 0 && step < r->warmup_steps)
        return r->lr * (float)step / (float)r->warmup_steps;
    if (r->schedule == SCHEDULE_CONSTANT)
        return r->lr;
    double span = (double)(total - r->warmup_steps);
    double progress = span > 0 ? (double)(step - r->warmup_steps) / span : 1.0;
    progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;
    double decay = r->schedule == SCHEDULE_COSINE ? 0.5 * (1.0 + cos(M_PI * progress))
                                                   : 1.0 - progress;
    return (float)(r->lr * (r->min_lr_ratio + (1.0 - r->min_lr_ratio) * decay));
}

/* err = "out of <backend> memory for <what>", with the planner's prediction
 * for this run beside it, so the user sees what the run needs, and what it
 * predicts with the memory-saving switches the run leaves off: the fewest,
 * in order of cost, that fit the device's memory (plan_savings). */
static void report_oom(const struct run *run, const char *what, char *err, size_t errlen)
{
    struct plan p, lean_plan;
    struct recipe lean;
    char names[192], device[128];
    double memory = 0;
    int fits;
    const int B = run->r->batch_size, T = run->train->seq_len;
    plan_compute(&run->m->cfg, run->r, B, T, PLAN_FP32, &p);
    int n = snprintf(err, errlen, "out of %s memory for %s; the planner predicts %.2f GB at "
                     "peak for this run (weights %.2f, gradients %.2f, optimizer state %.2f, "
                     "activations and workspace %.2f GB)", run->m->be->name, what,
                     p.total_peak / 1e9, p.weights / 1e9, p.gradients / 1e9,
                     p.optimizer_state / 1e9, (p.activations + p.workspace) / 1e9);
    run->m->be->describe(device, sizeof device, &memory);
    if (n > 0 && (size_t)n < errlen &&
        plan_savings(&run->m->cfg, run->r, B, T, memory, &lean, &lean_plan, &fits, names,
                     sizeof names) > 0)
        snprintf(err + n, errlen - (size_t)n, "; with %s it predicts %.2f GB%s", names,
                 lean_plan.total_peak / 1e9,
                 fits ? ", within the device's memory" : "");
}

/* splitmix64: the shuffle's generator */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void shuffle_epoch(struct run *run, int epoch)
{
    uint64_t s = run->r->seed * 0x2545F4914F6CDD1DULL + (uint64_t)epoch + 1;
    int n = run->train->n;
    for (int i = 0; i < n; i++)
        run->order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(mix64(&s) % (uint64_t)(i + 1));
        int t = run->order[i];
        run->order[i] = run->order[j];
        run->order[j] = t;
    }
}

/* Block and piece of tensor i, or -1 for embedding/final norm/head. */
static int tensor_block(const struct model_config *c, int i, int *piece)
{
    if (i < 1 || i > PIECES * c->n_layers)
        return -1;
    *piece = (i - 1) % PIECES;
    return (i - 1) / PIECES;
}

static int tensor_rank(const struct run *run, int i)
{
    int piece, l = tensor_block(&run->m->cfg, i, &piece);
    if (l < 0 || piece == 0 || piece == 5)
        return 0; /* embedding, head and the RMSNorm gains: AdamW */
    return run->r->galore.rank > 0 ? run->r->galore.rank : 0;
}

static int block_active(const struct run *run, int l)
{
    for (int i = 0; i < run->ts.n_active; i++)
        if (run->ts.active[i] == l)
            return 1;
    return 0;
}

/* Point gradient storage at the active blocks. */
static void assign_slots(struct run *run)
{
    for (int l = 0; l < run->m->cfg.n_layers; l++)
        run->g.g.blocks[l] = NULL;
    for (int i = 0; i < run->ts.n_active && (run->stream || i < run->g.n_slots); i++)
        run->g.g.blocks[run->ts.active[i]] = run->g.slots[run->stream ? 0 : i];
}

/* Select this step's blocks; drop the state of leaving blocks (reset). */
static void select_blocks(struct run *run)
{
    if (!run->sampled || !sampler_update(&run->smp, run->ts.step))
        return;
    const struct model_config *c = &run->m->cfg;
    if (run->r->state_policy == STATE_RESET)
        for (int l = 0; l < c->n_layers; l++) {
            int stays = 0;
            for (int i = 0; i < run->smp.gamma; i++)
                stays |= run->smp.active[i] == l;
            if (block_active(run, l) && !stays)
                for (int p = 0; p < PIECES; p++)
                    optim_state_free(&run->ts.states[1 + PIECES * l + p]);
        }
    run->ts.n_active = run->smp.gamma;
    memcpy(run->ts.active, run->smp.active, sizeof(int) * (size_t)run->smp.gamma);
    assign_slots(run);
}

static void gather_batch(struct run *run, long first, int B)
{
    const int T = run->train->seq_len;
    for (int b = 0; b < B; b++) {
        const int i = run->order[first + b];
        memcpy(run->tokens + (size_t)b * T, run->train->ids + (size_t)i * (T + 1),
               sizeof(int) * (size_t)T);
        memcpy(run->targets + (size_t)b * T, token_windows_targets(run->train, i),
               sizeof(int) * (size_t)T);
    }
}

static long count_targets(const int *t, size_t n, int V)
{
    long c = 0;
    for (size_t i = 0; i < n; i++)
        c += t[i] >= 0 && t[i] < V;
    return c;
}

/* Mean loss over the validation windows (NaN when there are none). */
static float validation_loss(struct run *run)
{
    const struct token_windows *v = run->val;
    const int T = v ? v->seq_len : 0;
    double sum = 0;
    long count = 0;
    if (!v || v->n == 0)
        return NAN;
    if (run->m->lora)
        run->m->lora->training = 0;
    for (int s = 0; s < v->n; s += run->a.B) {
        int B = v->n - s < run->a.B ? v->n - s : run->a.B;
        long c;
        for (int b = 0; b < B; b++) {
            memcpy(run->tokens + (size_t)b * T, v->ids + (size_t)(s + b) * (T + 1),
                   sizeof(int) * (size_t)T);
            memcpy(run->targets + (size_t)b * T, token_windows_targets(v, s + b),
                   sizeof(int) * (size_t)T);
        }
        model_forward(run->m, &run->a, run->tokens, B, T);
        sum += model_head_loss(run->m, &run->a, NULL, run->targets, B, T, 0.0f, &c);
        count += c;
    }
    return count ? (float)(sum / (double)count) : NAN;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The sparse embedding gradient per distinct token: embed_distinct (sorted,
 * n_distinct), embed_index (each position's distinct token) and embed_sums,
 * each distinct token's rows summed in position order, as embedding_bwd sums
 * them into a dense gradient. */
static void sum_embedding_rows(struct run *run)
{
    const struct model_grads *g = &run->g;
    const size_t n = g->embed_n, D = (size_t)run->m->cfg.dim;
    int *distinct = run->embed_distinct;
    size_t u = 0;
    memcpy(distinct, g->embed_tokens, n * sizeof(int));
    qsort(distinct, n, sizeof(int), cmp_int);
    for (size_t i = 0; i < n; i++)
        if (u == 0 || distinct[i] != distinct[u - 1])
            distinct[u++] = distinct[i];
    run->n_distinct = u;
    for (size_t i = 0; i < n; i++) {
        const int *hit = bsearch(&g->embed_tokens[i], distinct, u, sizeof(int), cmp_int);
        run->embed_index[i] = (int)(hit - distinct);
    }
    run->m->be->zero(run->embed_sums, u * D * sizeof(float));
    run->m->be->embedding_bwd(run->embed_sums, run->embed_index, g->embed_rows, (int)n, (int)D);
}

/* Global L2 norm of every existing gradient; clip in place to max_norm
 * (run->clip_coef: the factor, 1 when none). */
static float clip_gradients(struct run *run)
{
    const struct backend *be = run->m->be;
    const struct model_config *c = &run->m->cfg;
    double ss; /* grad_sumsq holds the streamed blocks' already */
    int piece;
    if (run->g.embed_rows) { /* the embedding's, where a dense one comes first */
        sum_embedding_rows(run);
        be->sumsq_add(run->grad_sumsq, run->embed_sums, run->n_distinct * (size_t)c->dim);
    }
    for (int i = 0; i < run->n_tensors; i++) {
        struct named_tensor nt;
        model_tensor_at(c, &run->g.g, i, &nt);
        if (nt.data && !(run->stream && tensor_block(c, i, &piece) >= 0))
            be->sumsq_add(run->grad_sumsq, nt.data, (size_t)nt.rows * (nt.cols ? nt.cols : 1));
    }
    if (run->m->lora)
        lora_grad_sumsq_add(run->m->lora, run->grad_sumsq);
    be->download(&ss, run->grad_sumsq, sizeof ss); /* the step's one wait for it */
    float norm = (float)sqrt(ss);
    float max = run->r->max_grad_norm;
    run->clip_coef = 1.0f;
    if (max > 0 && norm > max) {
        float coef = max / (norm + 1e-6f);
        run->clip_coef = coef; /* for the blocks of a second backward pass */
        if (run->m->lora)
            lora_grad_scale(run->m->lora, coef);
        for (int i = 0; i < run->n_tensors; i++) {
            struct named_tensor nt;
            model_tensor_at(c, &run->g.g, i, &nt);
            if (nt.data && !(run->stream && tensor_block(c, i, &piece) >= 0))
                be->scale(nt.data, (size_t)nt.rows * (nt.cols ? nt.cols : 1), coef);
        }
        if (run->projected) /* projection is linear: clip R instead of G */
            be->scale(run->projected, (size_t)run->ts.n_active * run->proj_block, coef);
        if (run->g.embed_rows)
            be->scale(run->embed_sums, run->n_distinct * (size_t)c->dim, coef);
    }
    return norm;
}

/* Noise seed of the stochastic rounding after step `step` of block l, or of
 * the embedding (l = L + TABLE_EMBED) or head (L + TABLE_HEAD): a function of
 * (seed, step, l) only, so a resumed run rounds the same. */
static unsigned long long rounding_seed(const struct run *run, long step, int l)
{
    return run->r->seed * 0xD6E8FEB86659FD93ULL ^
           ((unsigned long long)step * (unsigned long long)(run->m->cfg.n_layers + 2) +
            (unsigned long long)l + 1) * 0x9E3779B97F4A7C15ULL;
}

/* Tensor i as a table: the embedding, the head (untied), or -1. */
static int tensor_table(const struct model_config *c, int i)
{
    return i == 0 ? TABLE_EMBED : i == 2 + PIECES * c->n_layers ? TABLE_HEAD : -1;
}

/* Tensor i's bf16 storage, from element off of block l's (l >= 0) or as
 * a table; NULL when it is stored in fp32 (the final norm always is). */
static unsigned short *tensor16(const struct run *run, int i, int l, size_t off)
{
    const int t = tensor_table(&run->m->cfg, i);
    if (l >= 0)
        return run->m->blocks16 ? model_block16(run->m, l) + off : NULL;
    return t >= 0 ? model_table16(run->m, (enum model_table)t) : NULL;
}

/* Phase of tensor i's projector refreshes (optim.h). With stagger_refreshes
 * and every block training by GaLore, the k-th of the 7 L block matrices
 * refreshes at the steps t with (t + k T / (7 L)) % T == 0: about 7 L / T
 * matrices a step instead of all of them every T-th step. Sampled blocks
 * start with fresh projectors whenever they are drawn, so they keep phase 0,
 * as does every matrix without stagger_refreshes (galore_torch's schedule). */
static long refresh_phase(const struct run *run, int i)
{
    const long L = run->m->cfg.n_layers, T = run->r->galore.update_proj_gap;
    int piece, l = tensor_block(&run->m->cfg, i, &piece);
    if (!run->r->stagger_refreshes || run->sampled || l < 0 || tensor_rank(run, i) == 0)
        return 0;
    long k = l * LIN_COUNT + (piece < 5 ? piece - 1 : piece - 2); /* skips the gains */
    return k * T / (L * LIN_COUNT);
}

/* Tensor i's optimizer state, created on first use (NULL: out of memory,
 * reported with the planner's prediction), with its refresh phase. */
static struct optim_state *tensor_state(struct run *run, int i, char *err, size_t errlen)
{
    struct optim_state *s = &run->ts.states[i];
    struct named_tensor w;
    model_tensor_at(&run->m->cfg, &run->m->w, i, &w);
    if (!s->mem && optim_state_init(s, run->m->be, w.rows, w.cols, tensor_rank(run, i)) != 0) {
        char what[160];
        snprintf(what, sizeof what, "the optimizer state of %s", w.name);
        report_oom(run, what, err, errlen);
        return NULL;
    }
    s->phase = refresh_phase(run, i);
    return s;
}

/* Position of block l among this step's active blocks. */
static int active_index(const struct run *run, int l)
{
    int j = 0;
    while (j < run->ts.n_active - 1 && run->ts.active[j] != l)
        j++;
    return j;
}

/* model_backward's piece_done when streaming: project tensor p of block l
 * (a linear layer, refreshing P when due) or keep it (a gain) before the
 * next tensor overwrites the shared slot. A failure is kept for the step
 * to report. */
static void stream_piece(void *ctx, int l, int p)
{
    struct run *run = ctx;
    const struct backend *be = run->m->be;
    const int i = 1 + PIECES * l + p;
    struct named_tensor gr;
    if (run->stream_failed)
        return;
    model_tensor_at(&run->m->cfg, &run->g.g, i, &gr);
    gr.data = run->g.slots[0]; /* every tensor of the block passes through it */
    const size_t n = (size_t)gr.rows * (gr.cols ? gr.cols : 1);
    float *dst = run->projected + (size_t)active_index(run, l) * run->proj_block +
                 run->proj_off[p];
    be->sumsq_add(run->grad_sumsq, gr.data, n);
    if (tensor_rank(run, i) == 0) {
        be->copy(dst, gr.data, n);
    } else {
        char why[256];
        struct optim_state *s = tensor_state(run, i, run->stream_err, sizeof run->stream_err);
        if (!s) {
            run->stream_failed = 1;
        } else if (optim_project(s, gr.data, dst, &run->r->galore, &run->ts.linalg_rng, why,
                                 sizeof why) != 0) {
            snprintf(run->stream_err, sizeof run->stream_err, "%s: %s", gr.name, why);
            run->stream_failed = 1;
        }
    }
}

/* Add |G|^2 = sum (dY dY^T) o (X X^T) of linear layer (l, rows, cols) to
 * the step's sum of squares from its factors dY (N, rows), X (N, cols),
 * the Grams in the scratch (2 N^2 floats). The linear layers that read the
 * same input (q, k, v; gate, up) come one after the other in backward and
 * share its Gram, computed once. */
static void add_factor_sumsq(struct run *run, int l, int rows, int cols, const float *dy,
                             const float *x, int N)
{
    const struct backend *be = run->m->be;
    float *gy = run->scratch, *gx = gy + (size_t)N * N; /* (N, N) each */
    be->matmul(0, 1, N, N, rows, 1.0f, dy, rows, dy, rows, 0.0f, gy, N);
    if (x != run->gram_x || l != run->gram_l || run->ts.step != run->gram_step) {
        be->matmul(0, 1, N, N, cols, 1.0f, x, cols, x, cols, 0.0f, gx, N);
        run->gram_x = x;
        run->gram_l = l;
        run->gram_step = run->ts.step;
    }
    be->dot_add(run->grad_sumsq, gy, gx, (size_t)N * N);
}

/* model_backward's piece_factors when streaming GaLore: between refreshes,
 * take linear layer p of block l from its factors dY (N, rows), X (N, cols)
 * when that is cheaper than forming G and fits the scratch (which backward
 * leaves unused): its sum of squares by add_factor_sumsq, R by
 * optim_project_factors. 0 leaves the piece to stream_piece. */
static int stream_factors(void *ctx, int l, int p, const float *dy, const float *x, int N)
{
    struct run *run = ctx;
    const int i = 1 + PIECES * l + p;
    struct named_tensor w;
    if (run->stream_failed)
        return 1; /* the step fails anyway */
    model_tensor_at(&run->m->cfg, &run->m->w, i, &w);
    if (!optim_use_factors(w.rows, w.cols, tensor_rank(run, i), N, run->scratch_floats))
        return 0;
    struct optim_state *s = tensor_state(run, i, run->stream_err, sizeof run->stream_err);
    if (!s) {
        run->stream_failed = 1;
        return 1;
    }
    if (optim_refresh_due(s, &run->r->galore))
        return 0;
    add_factor_sumsq(run, l, w.rows, w.cols, dy, x, N);
    optim_project_factors(s, dy, x, N,
                          run->projected + (size_t)active_index(run, l) * run->proj_block +
                              run->proj_off[p],
                          run->scratch + 2 * (size_t)N * N);
    return 1;
}

/* model_backward's piece_factors with update_in_backward: in the norm pass
 * a linear layer's sum of squares comes from its Grams when that is
 * cheaper (optim_norm_from_factors) and G is never formed; the pass that
 * steps forms every G. */
static int norm_factors(void *ctx, int l, int p, const float *dy, const float *x, int N)
{
    struct run *run = ctx;
    struct named_tensor w;
    if (!run->norm_pass)
        return 0;
    model_tensor_at(&run->m->cfg, &run->m->w, 1 + PIECES * l + p, &w);
    if (!optim_norm_from_factors(w.rows, w.cols, N, run->scratch_floats))
        return 0;
    add_factor_sumsq(run, l, w.rows, w.cols, dy, x, N);
    return 1;
}

/* The embedding's AdamW step from its sparse gradient: the dense gradient
 * rebuilt a scratch's worth of rows at a time (zeros, plus the summed rows
 * of the distinct tokens among them, scattered), each range stepping in
 * place. Rows no token touched step with a zero gradient, as with a dense
 * one, and every element gets the dense gradient's value, so the step is the
 * dense step. (The scratch holds at least min(V D, OPTIM_CHUNK) floats.)
 * A bf16 embedding is widened and rounded back range by range. */
static int sparse_embedding_step(struct run *run, float lr, char *err, size_t errlen)
{
    const struct backend *be = run->m->be;
    const int D = run->m->cfg.dim, V = run->m->cfg.vocab_size;
    const int rows = (int)(run->scratch_floats / (size_t)D);
    unsigned short *w16 = model_table16(run->m, TABLE_EMBED);
    const unsigned long long seed =
        rounding_seed(run, run->ts.step, run->m->cfg.n_layers + TABLE_EMBED);
    struct optim_state *s = tensor_state(run, 0, err, errlen);
    if (!s)
        return -1;
    size_t u = 0;
    for (int r0 = 0; r0 < V; r0 += rows) {
        const int n = V - r0 < rows ? V - r0 : rows;
        size_t u1 = u;
        for (; u1 < run->n_distinct && run->embed_distinct[u1] < r0 + n; u1++)
            run->embed_index[u1 - u] = run->embed_distinct[u1] - r0;
        be->zero(run->scratch, (size_t)n * D * sizeof(float));
        be->embedding_bwd(run->scratch, run->embed_index, run->embed_sums + u * D, (int)(u1 - u),
                          D);
        const size_t off = (size_t)r0 * D, len = (size_t)n * D;
        if (w16)
            optim_step_range_bf16(s, w16 + off, run->scratch, off, len, &run->r->adamw, lr,
                                  seed + off);
        else
            optim_step_range(s, run->m->w.embed + off, run->scratch, run->scratch, off, len,
                             &run->r->adamw, lr);
        u = u1;
    }
    s->step++;
    return 0;
}

/* Tensor i's step from its gradient grad, or, for a streamed GaLore block
 * tensor, from its place `streamed` among the projected gradients (R of a
 * linear layer, a gain's own gradient). Tensors stored in bf16 step
 * through optim.h's *_bf16 functions, in place, with the noise of (seed,
 * step, block or table) from the tensor's first element in its block or
 * table; GaLore builds their update in the stage (model_stage_piece). */
static int step_tensor(struct run *run, int i, float *grad, float *streamed, float lr,
                       char *err, size_t errlen)
{
    const struct model_config *c = &run->m->cfg;
    const struct adamw_hparams *h = &run->r->adamw;
    const struct galore_hparams *gh = &run->r->galore;
    struct named_tensor w;
    model_tensor_at(c, &run->m->w, i, &w);
    int piece = 0, l = tensor_block(c, i, &piece);
    struct optim_state *s = tensor_state(run, i, err, errlen);
    if (!s)
        return -1;
    const size_t off = l >= 0 ? model_piece_offset(c, piece) : 0;
    float *R = streamed && s->rank > 0 ? streamed : NULL;
    if (streamed && !R)
        grad = streamed;
    unsigned short *w16 = tensor16(run, i, l, off);
    const unsigned long long seed =
        w16 ? rounding_seed(run, run->ts.step, l >= 0 ? l : c->n_layers + tensor_table(c, i)) +
                  off
            : 0;
    float *delta = model_stage_piece(run->m);
    char why[256];
    int rc = 0;
    if (R && w16)
        optim_step_projected_bf16(s, w16, R, delta, h, gh, lr, seed);
    else if (R)
        optim_step_projected(s, w.data, R, h, gh, lr);
    else if (w16)
        rc = optim_step_bf16(s, w16, grad, run->scratch, delta, h, gh, lr, seed,
                             &run->ts.linalg_rng, why, sizeof why);
    else
        rc = optim_step(s, w.data, grad, run->scratch, h, gh, lr, &run->ts.linalg_rng, why,
                        sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", w.name, why);
        return -1;
    }
    return 0;
}

/* model_backward's piece_done with update_in_backward: tensor p of block l
 * is complete in the slot. The norm pass adds its sum of squares; the pass
 * that steps (adding it too when it is the only one) scales it by the
 * clipping factor and steps it. A failure is kept for the step to report. */
static void update_piece(void *ctx, int l, int p)
{
    struct run *run = ctx;
    const int i = 1 + PIECES * l + p;
    struct named_tensor gr;
    if (run->stream_failed)
        return;
    model_tensor_at(&run->m->cfg, &run->g.g, i, &gr);
    const size_t n = (size_t)gr.rows * (gr.cols ? gr.cols : 1);
    float *grad = run->g.slots[0];
    if (run->passes == 1 || run->norm_pass)
        run->m->be->sumsq_add(run->grad_sumsq, grad, n);
    if (run->norm_pass)
        return;
    if (run->clip_coef < 1.0f)
        run->m->be->scale(grad, n, run->clip_coef);
    if (step_tensor(run, i, grad, NULL, run->lr, run->stream_err, sizeof run->stream_err) != 0)
        run->stream_failed = 1;
}

/* Every trainable tensor's step, but for the block tensors that stepped in
 * backward (update_in_backward). Streamed GaLore blocks step from their
 * projected gradients. */
static int optimizer_step(struct run *run, float lr, char *err, size_t errlen)
{
    const struct model_config *c = &run->m->cfg;
    if (run->g.embed_rows && sparse_embedding_step(run, lr, err, errlen) != 0)
        return -1;
    for (int i = 0; i < run->n_tensors; i++) {
        struct named_tensor gr;
        model_tensor_at(c, &run->g.g, i, &gr);
        int piece = 0, l = tensor_block(c, i, &piece);
        if (!gr.data || (run->fused && l >= 0))
            continue;
        float *streamed = run->projected && l >= 0
                              ? run->projected + (size_t)active_index(run, l) * run->proj_block +
                                    run->proj_off[piece]
                              : NULL;
        if (step_tensor(run, i, gr.data, streamed, lr, err, errlen) != 0)
            return -1;
    }
    return run->m->lora ? lora_optim_step(run->m->lora, &run->r->adamw, lr, err, errlen)
                        : 0;
}

static int save_checkpoint(struct run *run, float loss, float val_loss, char *err,
                           size_t errlen)
{
    char dir[4096];
    struct ckpt_meta meta = {
        .base_model_id = run->o->base_model_id, .base_model_digest = run->digest,
        .tokenizer_path = run->o->tokenizer_path, .total_steps = run->total_steps,
        .loss = loss, .val_loss = val_loss, .outlier_ratios = run->o->outlier_ratios,
        .tau = run->o->outlier_tau, .lora = run->m->lora,
    };
    if (run->m->lora && run->r->lora.merge && run->ts.step == run->total_steps) {
        lora_merge(run->m->lora, run->m); /* the end: the model keeps them */
        meta.lora_merged = 1;
    }
    snprintf(dir, sizeof dir, "%s/checkpoint-%ld", run->o->out_dir, run->ts.step);
    if (run->sampled)
        run->ts.sampler_rng = run->smp.rng;
    return ckpt_write(dir, run->m, run->r, &run->ts, &meta, err, errlen);
}

static void write_metrics(struct run *run, const struct train_event *ev)
{
    if (!run->metrics)
        return;
    if (ev->step == 0) { /* the base model's validation loss, before step 1 */
        fprintf(run->metrics, "{\"step\": 0, \"loss\": null, \"lr\": null, "
                "\"tokens_per_s\": null, \"sampled_blocks\": [], \"val_loss\": %.7g, "
                "\"elapsed_s\": %.3f}\n", ev->val_loss, ev->elapsed_s);
        fflush(run->metrics);
        return;
    }
    fprintf(run->metrics, "{\"step\": %ld, \"epoch\": %d, \"loss\": %.7g, \"lr\": %.7g, "
            "\"grad_norm\": %.7g, \"tokens_per_s\": %.2f, \"elapsed_s\": %.3f, "
            "\"rss_bytes\": %zu, \"peak_rss_bytes\": %zu, \"sampled_blocks\": [",
            ev->step, ev->epoch, ev->loss, ev->lr, ev->grad_norm, ev->tokens_per_s,
            ev->elapsed_s, ev->rss_bytes, ev->peak_rss_bytes);
    for (int i = 0; i < ev->n_active; i++)
        fprintf(run->metrics, "%s%d", i ? ", " : "", ev->active[i]);
    fprintf(run->metrics, "]");
    if (!isnan(ev->val_loss))
        fprintf(run->metrics, ", \"val_loss\": %.7g", ev->val_loss);
    fprintf(run->metrics, "}\n");
    fflush(run->metrics);
}

/* Open out_dir/metrics.jsonl for appending; on resume keep only the lines of
 * steps up to the resumed one. */
static int open_metrics(struct run *run, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run->o->out_dir);
    if (run->ts.step > 0) {
        FILE *in = fopen(path, "r");
        char tmp[4300];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        FILE *out = in ? fopen(tmp, "w") : NULL;
        if (in && out) {
            char line[65536];
            long s;
            while (fgets(line, sizeof line, in))
                if (sscanf(line, "{\"step\": %ld", &s) == 1 && s <= run->ts.step)
                    fputs(line, out);
        }
        if (in)
            fclose(in);
        if (out && (fclose(out) != 0 || rename(tmp, path) != 0)) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    run->metrics = fopen(path, run->ts.step > 0 ? "a" : "w");
    if (!run->metrics) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Streamed gradients: with update_in_backward, the hooks that step each
 * block tensor (and, with two passes, the saved gradient of the final
 * norm's output); for GaLore, the projected-gradient buffer, per active
 * block its pieces in order, R of the linear layers and the two gains. */
static int setup_stream(struct run *run, int n_active, int N)
{
    const struct model_config *c = &run->m->cfg;
    run->g.piece_done_ctx = run;
    if (run->fused) {
        run->g.piece_done = update_piece;
        run->g.piece_factors = norm_factors;
        if (run->passes == 2)
            run->d_top = run->m->be->alloc(sizeof(float) * (size_t)N * c->dim);
        return run->passes == 2 && !run->d_top ? -1 : 0;
    }
    size_t off = 0;
    for (int p = 0; p < PIECES; p++) {
        struct named_tensor nt;
        model_tensor_at(c, &run->m->w, 1 + p, &nt);
        run->proj_off[p] = off;
        off += p == 0 || p == 5 ? (size_t)nt.rows
                                : optim_scratch_floats(nt.rows, nt.cols, tensor_rank(run, 1 + p));
    }
    run->proj_block = off;
    run->projected = run->m->be->alloc(sizeof(float) * off * (size_t)n_active);
    run->g.piece_done = stream_piece;
    run->g.piece_factors = stream_factors;
    return run->projected ? 0 : -1;
}

static int setup(struct run *run, char *err, size_t errlen)
{
    struct model *m = run->m;
    const struct recipe *r = run->r;
    const struct model_config *c = &m->cfg;
    const int L = c->n_layers, B = r->batch_size, T = run->train->seq_len;

    if (run->val && run->val->n > 0 && run->val->seq_len != T) {
        snprintf(err, errlen, "validation windows have %d tokens, training windows %d",
                 run->val->seq_len, T);
        return -1;
    }
    if (T > c->max_seq_len) {
        snprintf(err, errlen, "sequence length %d exceeds the model's context %d",
                 T, c->max_seq_len);
        return -1;
    }
    if (run->train->n < B * r->grad_accum) {
        snprintf(err, errlen, "the training data has %d windows of %d tokens, fewer than "
                 "one step needs (batch %d x accumulation %d)", run->train->n, T, B,
                 r->grad_accum);
        return -1;
    }
    run->steps_per_epoch = run->train->n / (B * r->grad_accum);
    run->total_steps = r->max_steps > 0 ? r->max_steps : (long)r->epochs * run->steps_per_epoch;
    run->n_tensors = model_tensor_count(c);
    run->sampled = r->sampling != SAMPLING_ALL;
    if (run->sampled && r->sampling == SAMPLING_OWL && !run->o->outlier_ratios) {
        snprintf(err, errlen, "method %s samples by outlier ratio but none were given",
                 method_name(r->method));
        return -1;
    }
    const int n_active = recipe_active_blocks(r, L);
    run->stream = recipe_streams_gradients(r);
    run->fused = run->stream && r->update_in_backward;
    run->passes = recipe_backward_passes(r);
    const size_t scratch = plan_scratch_floats(c, r, B * T);
    run->ts.active = calloc((size_t)L, sizeof(int));
    run->ts.block_counts = calloc((size_t)L, sizeof(long));
    run->ts.states = calloc((size_t)run->n_tensors, sizeof(struct optim_state));
    run->tokens = malloc(sizeof(int) * (size_t)B * T);
    run->targets = malloc(sizeof(int) * (size_t)B * T);
    run->order = malloc(sizeof(int) * (size_t)run->train->n);
    run->scratch_floats = scratch ? scratch : 1;
    run->scratch = m->be->alloc(sizeof(float) * run->scratch_floats);
    run->grad_sumsq = m->be->alloc(sizeof *run->grad_sumsq);
    const size_t embed_rows = recipe_sparse_embedding_rows(r, c, B, T);
    if (embed_rows) {
        run->embed_distinct = malloc(embed_rows * sizeof(int));
        run->embed_index = malloc(embed_rows * sizeof(int));
        run->embed_sums = m->be->alloc(embed_rows * (size_t)c->dim * sizeof(float));
    }
    if (!run->ts.active || !run->ts.block_counts || !run->ts.states || !run->tokens ||
        !run->targets || !run->order || !run->scratch || !run->grad_sumsq ||
        (embed_rows && (!run->embed_distinct || !run->embed_index || !run->embed_sums)) ||
        (run->stream ? grads_init_streamed(&run->g, m, r->freeze_embeddings, embed_rows)
                     : grads_init_slots(&run->g, m, n_active, r->freeze_embeddings,
                                        embed_rows)) != 0 ||
        activations_init_for(&run->a, m, B, T, recipe_recomputed_blocks(r, L),
                             r->bf16_activations) != 0 ||
        (r->method == METHOD_LORA &&
         lora_init(&run->lora, m, &r->lora, r->seed, B * T) != 0) ||
        (run->stream && setup_stream(run, n_active, B * T) != 0)) {
        char what[64];
        snprintf(what, sizeof what, "training buffers (batch %d x %d)", B, T);
        report_oom(run, what, err, errlen);
        return -1;
    }
    if (run->sampled) {
        if (sampler_init(&run->smp, r->sampling, L, r->gamma, r->interval,
                         run->o->outlier_ratios, r->fixed_blocks, r->n_fixed, r->seed,
                         err, errlen) != 0)
            return -1;
    } else {
        run->ts.n_active = L;
        for (int l = 0; l < L; l++)
            run->ts.active[l] = l;
        assign_slots(run);
    }
    run->ts.linalg_rng = r->seed ^ 0xD1B54A32D192ED03ULL;
    if (r->method == METHOD_LORA)
        m->lora = &run->lora;
    return 0;
}

/* The base model's digest (given, or computed) and, when resuming, the
 * checkpoint's pre-flight check: before anything is allocated or written. */
static int check_start(struct run *run, char *err, size_t errlen)
{
    unsigned char d[SHA256_BYTES];
    if (run->o->base_model_digest) {
        snprintf(run->digest, sizeof run->digest, "%s", run->o->base_model_digest);
    } else if (sha256_model(run->m, d) == 0) {
        digest_hex(d, SHA256_BYTES, run->digest);
    } else {
        snprintf(err, errlen, "cannot compute the model digest (OpenSSL)");
        return -1;
    }
    if (recipe_check(run->r, run->m->cfg.n_layers, err, errlen) != 0)
        return -1;
    if (!run->r->bf16_weights != !run->m->blocks16) {
        snprintf(err, errlen, "the recipe asks for %s weights but the model holds %s ones",
                 run->r->bf16_weights ? "bf16" : "fp32", run->m->blocks16 ? "bf16" : "fp32");
        return -1;
    }
    return run->o->resume_dir ? ckpt_check_resume(run->o->resume_dir, &run->m->cfg, run->r,
                                                   run->digest, err, errlen)
                              : 0;
}

/* Load weights and trainer state of a checkpoint into the run. */
static int resume(struct run *run, char *err, size_t errlen)
{
    struct model ck;
    const char *dir = run->o->resume_dir;
    if (run->m->lora) /* the base is the loaded model; the adapters and moments */
        return ckpt_read_state(dir, run->m, run->r, run->digest, &run->ts, err, errlen) != 0 ||
               lora_ckpt_read(dir, run->m->lora, err, errlen) != 0 ? -1 : 0;
    if (load_hf_dir(dir, backend_cpu(), &ck, err, errlen) != 0)
        return -1;
    const struct model_config *a = &ck.cfg, *b = &run->m->cfg;
    if (a->dim != b->dim || a->hidden_dim != b->hidden_dim || a->n_layers != b->n_layers ||
        a->n_heads != b->n_heads || a->n_kv_heads != b->n_kv_heads ||
        a->head_dim != b->head_dim || a->vocab_size != b->vocab_size ||
        a->tied_embeddings != b->tied_embeddings) {
        snprintf(err, errlen, "%s: checkpoint of a model with another shape than %s",
                 dir, run->o->base_model_id ? run->o->base_model_id : "the base model");
        model_free(&ck);
        return -1;
    }
    /* the digest check compares against the base model, before overwriting */
    if (ckpt_read_state(dir, run->m, run->r, run->digest, &run->ts, err, errlen) != 0) {
        model_free(&ck);
        return -1;
    }
    int written = model_write_params(run->m, ck.mem);
    model_free(&ck);
    if (written != 0) {
        snprintf(err, errlen, "%s: out of memory for the weights", dir);
        return -1;
    }
    if (run->sampled) {
        run->smp.rng = run->ts.sampler_rng;
        memcpy(run->smp.active, run->ts.active, sizeof(int) * (size_t)run->ts.n_active);
    }
    assign_slots(run);
    return 0;
}

static void teardown(struct run *run)
{
    if (run->ts.states)
        for (int i = 0; i < run->n_tensors; i++)
            optim_state_free(&run->ts.states[i]);
    free(run->ts.states);
    free(run->ts.active);
    free(run->ts.block_counts);
    free(run->tokens);
    free(run->targets);
    free(run->order);
    if (run->scratch)
        run->m->be->free(run->scratch);
    if (run->grad_sumsq)
        run->m->be->free(run->grad_sumsq);
    free(run->embed_distinct);
    free(run->embed_index);
    if (run->embed_sums)
        run->m->be->free(run->embed_sums);
    if (run->projected)
        run->m->be->free(run->projected);
    if (run->d_top)
        run->m->be->free(run->d_top);
    if (run->g.mem || run->g.g.blocks)
        grads_free(&run->g, run->m);
    if (run->a.mem)
        activations_free(&run->a, run->m);
    if (run->sampled)
        sampler_free(&run->smp);
    if (run->m->lora == &run->lora)
        run->m->lora = NULL;
    lora_free(&run->lora);
    if (run->metrics)
        fclose(run->metrics);
}

static void print_progress(const struct train_event *ev)
{
    printf("step %ld/%ld | loss %.4f | lr %.3e | grad %.3f | %.0f tok/s | blocks [",
           ev->step, ev->total_steps, ev->loss, ev->lr, ev->grad_norm, ev->tokens_per_s);
    for (int i = 0; i < ev->n_active && i < 8; i++)
        printf("%s%d", i ? "," : "", ev->active[i]);
    printf("%s]", ev->n_active > 8 ? ",..." : "");
    if (!isnan(ev->val_loss))
        printf(" | val %.4f", ev->val_loss);
    printf("\n");
    fflush(stdout);
}

enum train_result train_run(struct model *m, const struct recipe *r,
                            const struct token_windows *train,
                            const struct token_windows *val,
                            const struct train_opts *o, long *block_counts,
                            char *err, size_t errlen)
{
    struct run run = {.m = m, .r = r, .o = o, .train = train, .val = val};
    enum train_result result = TRAIN_FAILED;
    const int B = r->batch_size, T = train->seq_len, V = m->cfg.vocab_size;
    const double t_start = now_s();
    float loss = NAN, val_loss = NAN;

    if (check_start(&run, err, errlen) != 0 || setup(&run, err, errlen) != 0)
        goto out;
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", o->out_dir, strerror(errno));
        goto out;
    }
    if ((o->resume_dir && resume(&run, err, errlen) != 0) || open_metrics(&run, err, errlen) != 0)
        goto out;
    shuffle_epoch(&run, run.ts.epoch);
    const long start_step = run.ts.step;
    if (run.ts.step == 0 && val && val->n > 0) {
        /* the starting point: validation loss of the base model */
        struct train_event ev = {.total_steps = run.total_steps, .loss = NAN,
                                 .val_loss = validation_loss(&run), .lr = NAN,
                                 .grad_norm = NAN, .active = run.ts.active};
        train_memory(&ev.rss_bytes, &ev.peak_rss_bytes);
        ev.elapsed_s = now_s() - t_start;
        write_metrics(&run, &ev);
        if (!o->quiet)
            printf("step 0/%ld | val %.4f\n", run.total_steps, ev.val_loss);
        if (o->progress)
            o->progress(o->ctx, &ev);
    }
    while (run.ts.step < run.total_steps) {
        if (o->stop && atomic_load(o->stop) == TRAIN_STOP_CANCEL) {
            result = TRAIN_CANCELLED;
            goto out;
        }
        if (o->stop && atomic_load(o->stop) == TRAIN_STOP_PAUSE) {
            result = save_checkpoint(&run, loss, val_loss, err, errlen) == 0 ? TRAIN_PAUSED
                                                                             : TRAIN_FAILED;
            goto out;
        }
        const double t0 = now_s();
        if (run.ts.data_pos + (long)B * r->grad_accum > run.steps_per_epoch * B * r->grad_accum) {
            run.ts.epoch++;
            run.ts.data_pos = 0;
            shuffle_epoch(&run, run.ts.epoch);
        }
        select_blocks(&run);
        grads_zero_except_blocks(&run.g); /* the first micro-batch writes those */
        m->be->zero(run.grad_sumsq, sizeof *run.grad_sumsq);
        run.lr = train_lr_at(r, run.ts.step, run.total_steps);
        run.clip_coef = 1.0f; /* a single pass with update_in_backward never clips */
        run.norm_pass = run.passes == 2;
        if (m->lora) {
            lora_zero_grads(m->lora);
            m->lora->training = 1;
        }

        long counted = 0;
        for (int k = 0; k < r->grad_accum; k++) {
            for (int b = 0; b < B; b++) {
                const int i = run.order[run.ts.data_pos + (long)k * B + b];
                counted += count_targets(token_windows_targets(train, i), (size_t)T, V);
            }
        }
        double sum = 0;
        for (int k = 0; k < r->grad_accum; k++) {
            long c;
            gather_batch(&run, run.ts.data_pos + (long)k * B, B);
            if (m->lora)
                m->lora->mask_seed = r->seed * 0x2545F4914F6CDD1DULL ^
                                     ((unsigned long long)run.ts.step * r->grad_accum + k) *
                                     0x9E3779B97F4A7C15ULL;
            model_forward(m, &run.a, run.tokens, B, T);
            sum += model_head_loss(m, &run.a, &run.g, run.targets, B, T,
                                   counted ? 1.0f / (float)counted : 0.0f, &c);
            run.g.overwrite = k == 0;
            if (run.d_top) /* for the second pass, which starts from it again */
                m->be->copy(run.d_top, run.a.d_norm, (size_t)B * T * m->cfg.dim);
            model_backward(m, &run.a, &run.g, run.tokens, B, T);
        }
        run.ts.data_pos += (long)B * r->grad_accum;
        loss = counted ? (float)(sum / (double)counted) : 0.0f;
        if (!isfinite(loss)) {
            snprintf(err, errlen, "the training loss became %f at step %ld (learning rate "
                     "%g too high?)", loss, run.ts.step, (double)r->lr);
            goto out;
        }
        char why[512];
        if (m->be->error(why, sizeof why)) { /* a failed GPU call, say */
            snprintf(err, errlen, "step %ld: %s", run.ts.step, why);
            goto out;
        }
        float grad_norm = clip_gradients(&run);
        if (!isfinite(grad_norm)) {
            snprintf(err, errlen, "the gradient norm became %f at step %ld (learning rate "
                     "%g too high?)", grad_norm, run.ts.step, (double)r->lr);
            goto out;
        }
        if (run.d_top) { /* update_in_backward: the blocks step, clipped */
            m->be->copy(run.a.d_norm, run.d_top, (size_t)B * T * m->cfg.dim);
            run.norm_pass = 0;
            run.g.blocks_only = 1;
            model_backward(m, &run.a, &run.g, run.tokens, B, T);
            run.g.blocks_only = 0;
        }
        if (run.stream_failed) { /* a projection or step during backward */
            snprintf(err, errlen, "%s", run.stream_err);
            goto out;
        }
        const float lr = run.lr;
        if (optimizer_step(&run, lr, err, errlen) != 0)
            goto out;
        if (m->be->error(why, sizeof why)) {
            snprintf(err, errlen, "step %ld, optimizer: %s", run.ts.step, why);
            goto out;
        }
        for (int i = 0; i < run.ts.n_active; i++)
            run.ts.block_counts[run.ts.active[i]]++;
        run.ts.step++;

        val_loss = NAN;
        if ((r->eval_every > 0 && run.ts.step % r->eval_every == 0) ||
            run.ts.step == run.total_steps)
            val_loss = validation_loss(&run);
        const double t1 = now_s();
        struct train_event ev = {
            .step = run.ts.step, .total_steps = run.total_steps, .epoch = run.ts.epoch,
            .loss = loss, .val_loss = val_loss, .lr = lr, .grad_norm = grad_norm,
            .tokens_per_s = (double)B * T * r->grad_accum / (t1 - t0),
            .elapsed_s = t1 - t_start, .active = run.ts.active, .n_active = run.ts.n_active,
        };
        ev.eta_s = ev.elapsed_s / (double)(run.ts.step - start_step) *
                   (double)(run.total_steps - run.ts.step);
        train_memory(&ev.rss_bytes, &ev.peak_rss_bytes);
        write_metrics(&run, &ev);
        if (!o->quiet)
            print_progress(&ev);
        if (o->progress)
            o->progress(o->ctx, &ev);
        if ((r->save_every > 0 && run.ts.step % r->save_every == 0) ||
            run.ts.step == run.total_steps)
            if (save_checkpoint(&run, loss, val_loss, err, errlen) != 0)
                goto out;
    }
    result = TRAIN_DONE;
out:
    if (block_counts && run.ts.block_counts)
        memcpy(block_counts, run.ts.block_counts, sizeof(long) * (size_t)m->cfg.n_layers);
    teardown(&run);
    return result;
}
