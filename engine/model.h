/*
 * model.h: a LLaMA-family decoder and its training-time memory.
 *
 * Memory is split into classes, each one allocation with named pointers
 * carved out of it (llm.c style), each sized from the config first:
 *   parameters   struct model        embedding, L blocks, final norm, head
 *   gradients    struct model_grads  same layout; a block may have none
 *   activations  struct activations  what backward needs, for B x T tokens
 *
 * Parameters are stored block-major: embed (V,D) | block 0 | ... | block L-1 |
 * final_norm (D) | lm_head (V,D) (absent when tied). One block holds, in order:
 *   attn_norm (D), wq (H*hd, D), wk (KV*hd, D), wv (KV*hd, D), wo (D, H*hd),
 *   ffn_norm (D), w_gate (F, D), w_up (F, D), w_down (D, F).
 * A frozen block simply has no gradient storage (grads.blocks[l] == NULL):
 * backward then skips its weight-gradient products, and skips it entirely
 * when nothing below it needs a gradient.
 *
 * Dimension letters: see backend.h. N = B*T.
 */
#ifndef OWLORE_MODEL_H
#define OWLORE_MODEL_H

#include <stddef.h>

#include "backend.h"
#include "config.h"

/* Views of one block's tensors inside a block-sized buffer. */
struct block_weights {
    float *attn_norm; /* (D) */
    float *wq;        /* (H*hd, D) */
    float *wk;        /* (KV*hd, D) */
    float *wv;        /* (KV*hd, D) */
    float *wo;        /* (D, H*hd) */
    float *ffn_norm;  /* (D) */
    float *w_gate;    /* (F, D) */
    float *w_up;      /* (F, D) */
    float *w_down;    /* (D, F) */
};

/* Named pointers for a whole model's worth of tensors (weights or grads). */
struct model_weights {
    float *embed;      /* (V, D) */
    float **blocks;    /* L pointers to block-sized buffers (NULL: none) */
    float *final_norm; /* (D) */
    float *lm_head;    /* (V, D); equals embed when tied */
};

/* The seven linear layers of a block, in storage order. */
enum linear_id { LIN_Q, LIN_K, LIN_V, LIN_O, LIN_GATE, LIN_UP, LIN_DOWN, LIN_COUNT };

struct lora;

struct model {
    struct model_config cfg;
    const struct backend *be;
    float *mem;            /* every parameter, one allocation (mem_bytes) */
    size_t mem_bytes;
    size_t n_params;
    struct model_weights w;
    /* bf16 storage (model_store_bf16): NULL while every parameter is fp32.
     * Else mem holds final_norm | stage in fp32, then embed16 (V,D) |
     * blocks16 (L, model_block_floats) | head16 (V,D, untied) in bf16, and
     * w.embed, w.blocks[l] and w.lm_head are NULL (head16 is embed16 when
     * tied). stage (2 D + model_largest_linear floats) holds the two norms of
     * the block being computed, then the piece of a tensor being updated. */
    unsigned short *embed16, *blocks16, *head16;
    float *stage;
    struct lora *lora;     /* adapters on the linear layers (lora.h), or NULL */
};

struct model_grads {
    const struct backend *be; /* the model's, which owns mem */
    float *mem;            /* one allocation for all gradient storage */
    size_t n_floats;
    struct model_weights g; /* g.embed NULL: embedding frozen (no grad) or
                               its gradient kept sparse (embed_rows) */
    float **slots;         /* grads_init_slots: n_slots block-sized buffers */
    int n_slots;
    /* The embedding's gradient kept sparse (embed_cap > 0): model_backward
     * appends each micro-batch's rows of the embedding output's gradient
     * (embed_n of embed_cap so far) and their tokens (host memory); the
     * dense gradient is their scatter by token (embedding_bwd). */
    float *embed_rows;     /* (embed_cap, D) */
    int *embed_tokens;     /* (embed_cap) */
    size_t embed_cap, embed_n;
    /* Streamed gradients (grads_init_streamed), or NULL: model_backward
     * writes each tensor `piece` (0..8, storage order) of a trainable block
     * l into g.blocks[l] (the one slot, all nine pieces at its start) and
     * calls this as soon as it is complete, to take it before the next one
     * overwrites it. */
    void (*piece_done)(void *ctx, int l, int piece);
    /* With streamed gradients, optionally: offered a linear layer's weight
     * gradient as its factors, G (rows, cols) = dY^T X with dY (N, rows)
     * and X (N, cols) row-major, before its product; returns 1 when it took
     * them (the product and piece_done are then skipped), 0 to have G
     * formed and passed to piece_done as usual. */
    int (*piece_factors)(void *ctx, int l, int piece, const float *dy, const float *x, int N);
    void *piece_done_ctx;
    /* 1 for a step's first micro-batch: model_backward writes the trainable
     * blocks' gradients instead of adding to them (the products with beta
     * 0, the gains from zero), so their slots need no zeroing before it
     * (grads_zero_except_blocks). Streamed gradients are always written. */
    int overwrite;
    /* 1 for a second backward pass over the same micro-batch (train.c's
     * update pass with update_in_backward): the blocks only, leaving the
     * final norm's and the embedding's gradients as the first pass made
     * them, and stopping at the lowest trainable block. */
    int blocks_only;
};

struct activations {
    int B, T;               /* capacity */
    float *mem;             /* one allocation: the fp32 buffers, then saved16 */
    /* Activation checkpointing of the lowest `recomputed` blocks (0: none,
     * L: all): resid keeps every block's input; those blocks share one slot
     * of the per-layer buffers, the others have one each (L reads as
     * model_activation_slots below; model_block_slot), and model_backward
     * recomputes a shared block's forward from its input. */
    int recomputed;
    /* bf16 storage of the saved internals (recipe bf16_activations): every
     * block computes in the one shared slot; each block above the
     * recomputed ones then keeps most of its internals in saved16, rounded
     * to the nearest bf16 (q, k and the attention lse in saved32, fp32),
     * and model_backward brings them back into the slot before its
     * backward, the elementwise rest computed again (saved_bf16.c). */
    int bf16_saved;
    unsigned short *saved16; /* (L - recomputed, N, saved_bf16_width16) */
    float *saved32;          /* (L - recomputed, N, saved_bf16_width32) */
    /* The block whose internals the shared slot holds, as backward reads
     * them (computed, recomputed or widened), or -1: model_backward then
     * brings them back first. */
    int shared_holds;
    /* saved by forward, per layer l (strides: N*D, N*H*hd, ...) */
    float *resid;      /* (L+1, N, D) block inputs; resid[L] = final norm input */
    float *resid_mid;  /* (L, N, D) after the attention residual add */
    float *attn_in;    /* (L, N, D) attention RMSNorm output */
    float *attn_rstd;  /* (L, N) */
    float *q;          /* (L, N, H*hd) after RoPE */
    float *k;          /* (L, N, KV*hd) after RoPE */
    float *v;          /* (L, N, KV*hd) */
    float *attn_out;   /* (L, N, H*hd) before the output projection */
    float *attn_lse;   /* (L, B, H, T) */
    float *ffn_in;     /* (L, N, D) FFN RMSNorm output */
    float *ffn_rstd;   /* (L, N) */
    float *gate;       /* (L, N, F) */
    float *up;         /* (L, N, F) */
    float *ffn_h;      /* (L, N, F) silu(gate) * up */
    float *final_out;  /* (N, D) final RMSNorm output */
    float *final_rstd; /* (N) */
    float *losses;     /* (N) per-token loss (0 where ignored) */
    /* backward scratch, reused by every layer */
    float *d_resid;    /* (N, D) gradient of the residual stream */
    float *d_norm;     /* (N, D) gradient into an RMSNorm output */
    float *d_attn;     /* (N, H*hd) */
    float *d_q;        /* (N, H*hd) */
    float *d_k;        /* (N, KV*hd) */
    float *d_v;        /* (N, KV*hd) */
    float *d_h;        /* (N, F) */
    float *d_gate;     /* (N, F) */
    float *d_up;       /* (N, F) */
    float *logits;     /* (model_ce_rows, V) classifier chunk */
};

/* Rows of the classifier computed at once for batches of up to N tokens:
 * as many as CE_LOGITS_BYTES of fp32 logits hold (at least CE_MIN_ROWS, at
 * most N), so a large batch's logits never exist at the same time while a
 * small one takes one product per classifier matrix. */
#define CE_LOGITS_BYTES ((size_t)64 << 20)
#define CE_MIN_ROWS 64
int model_ce_rows(const struct model_config *c, int N);

/* ---- sizes (elements), computable without allocating ---- */
size_t model_block_floats(const struct model_config *c);
size_t model_param_floats(const struct model_config *c);
/* Bytes of struct activations for B x T tokens, the lowest `recomputed`
 * blocks checkpointed, the others' internals in bf16 when bf16_saved. */
size_t model_activation_bytes(const struct model_config *c, int B, int T, int recomputed,
                              int bf16_saved);
/* Slots of the per-layer activation buffers with the lowest `recomputed`
 * of L blocks checkpointed: one shared by those, one for each other block;
 * one in all with bf16_saved. */
int model_activation_slots(int n_layers, int recomputed, int bf16_saved);
/* The slot of block l's internals in a. */
int model_block_slot(const struct activations *a, int l);
/* 1 when block l's internals live in the shared slot (checkpointed, or
 * kept in bf16), so that backward must bring them back unless
 * a->shared_holds says the slot has them. */
int model_block_shared(const struct activations *a, int l);
/* offset of a linear layer inside a block, and its shape [rows, cols] */
size_t model_linear_offset(const struct model_config *c, enum linear_id id,
                           int *rows, int *cols);
const char *model_linear_name(enum linear_id id); /* "q_proj", ... */
/* Elements of a block's largest linear layer (its largest tensor). */
size_t model_largest_linear(const struct model_config *c);
struct block_weights block_view(const struct model_config *c, float *block);
/* Offset of piece p (0..8, storage order: attn_norm, wq, ..., w_down) in a
 * block, in elements. */
size_t model_piece_offset(const struct model_config *c, int piece);

/* ---- lifetime ---- */
/* Allocate zeroed parameters for cfg (which must pass model_config_check). */
int model_init(struct model *m, const struct model_config *cfg,
               const struct backend *be);
void model_free(struct model *m);
/* Move the parameters to backend be (model_move.c); -1 with err on failure,
 * the model then unchanged. */
int model_move(struct model *m, const struct backend *be, char *err, size_t errlen);
/* dst := a copy of src's parameters on backend be (model_move.c), src a
 * model with fp32 parameters in host memory, left as it is; model_free
 * releases dst. -1 with err on failure (dst then holds nothing). */
int model_copy_to(struct model *dst, const struct model *src, const struct backend *be,
                  char *err, size_t errlen);

/* ---- bf16 storage (model_bf16.c) ---- */
/* Store a host model (CPU backend) in bf16, rounded to nearest: the
 * embedding, blocks and head (the final norm stays fp32); the fp32 copy is
 * freed. -1 with err (out of memory: model unchanged). */
int model_store_bf16(struct model *m, char *err, size_t errlen);
/* The same for a training run: first the digest of the fp32 base model into
 * digest (SHA256_HEX_LEN chars, digest.h), unless it holds one already, so
 * checkpoints name the base model and not its rounding. */
int model_store_bf16_digested(struct model *m, char *digest, char *err, size_t errlen);
/* Bytes of parameter memory stored in bf16 (the final norm and the stage in
 * fp32), for the planner. */
size_t model_bf16_bytes(const struct model_config *c);
/* out (N,D) = the embedding's rows of tokens (host memory), in fp32. */
void model_embed_rows(const struct model *m, float *out, const int *tokens, int N);
/* C (M,N) = A (M,K) @ op(head) + beta * C with contiguous rows, head (V,D):
 * op = transposed when trans_w (logits, N = V, K = D), else as stored (input
 * gradients, N = D, K = V); in bf16, panels of model_table_piece_rows rows. */
void model_head_product(const struct model *m, int trans_w, int M, int N, int K, const float *A,
                        float beta, float *C);
/* The two (V,D) tables: the embedding, and the head (the same when tied). */
enum model_table { TABLE_EMBED, TABLE_HEAD };
/* Rows of a table that fit the stage: a piece of a table is at most this
 * many rows (model_largest_linear / D, at least one). */
size_t model_table_piece_rows(const struct model_config *c);
/* The bf16 storage of table `which` (V,D) or of block l
 * (model_block_floats elements), what the optimizer steps in place
 * (optim.h *_bf16); NULL with fp32 storage. */
unsigned short *model_table16(const struct model *m, enum model_table which);
unsigned short *model_block16(const struct model *m, int l);
/* With bf16 storage, room for one linear layer's fp32 values
 * (model_largest_linear floats, the stage after the norms): GaLore's update
 * before it is added (optim_step_projected_bf16). model_block_piece widens
 * there too. NULL with fp32 storage. */
float *model_stage_piece(const struct model *m);
/* Block l as the forward and backward passes use it: block_view of
 * w.blocks[l], or, with bf16 storage, its two norms widened into the stage
 * (until the next call) and NULL matrices. Multiply by the matrices through
 * model_block_product. */
struct block_weights model_block_operands(const struct model *m, int l);
/* C (M,N) = A (M,K) @ op(W) + beta * C with contiguous rows (lda K, ldc N),
 * W the linear layer `id` of block l: op(W) = W^T with W (N,K) when trans_w
 * (forward products), W (K,N) itself otherwise (input gradients); fp32
 * weights through the backend's matmul, bf16 ones through matmul_bf16. */
void model_block_product(const struct model *m, int l, enum linear_id id, int trans_w, int M,
                         int N, int K, const float *A, float beta, float *C);
/* Elements off..off+n-1 of block l (one of its tensors) in fp32 for an
 * update in place: w.blocks[l] + off, or, with bf16 storage, widened into
 * the stage (n <= model_largest_linear) and valid until the next call. */
float *model_block_piece(const struct model *m, int l, size_t off, size_t n);
/* After an update of model_block_piece(m, l, off, n): with bf16 storage,
 * round it stochastically back into block l, element i of the block drawing
 * its noise from seed + i (backend.h bf16_round), so storing a block piece
 * by piece rounds as storing it whole; nothing with fp32 storage. */
void model_block_piece_store(const struct model *m, int l, size_t off, size_t n,
                             unsigned long long seed);
/* Parameters in the fp32 layout above (n_params floats, host memory) into
 * the model, blocks rounded to nearest when stored in bf16 (resuming from a
 * checkpoint). -1: out of host memory for the conversion buffer. */
int model_write_params(struct model *m, const float *host);
/* Gradient storage for every parameter (all blocks trainable). */
int grads_init_full(struct model_grads *g, const struct model *m);
/* Gradient storage for n_slots blocks (g.slots[i], block-sized) plus, unless
 * frozen, embedding, final norm and head; every g.g.blocks[l] starts NULL
 * and the trainer points the active blocks at slots. embed_rows > 0 keeps
 * the embedding's gradient sparse, as that many rows (embed_rows above;
 * recipe_sparse_embedding_rows), instead of dense (V, D). */
int grads_init_slots(struct model_grads *g, const struct model *m, int n_slots,
                     int freeze_embeddings, size_t embed_rows);
/* Floats grads_init_slots allocates (for the planner). */
size_t grads_slots_floats(const struct model_config *c, int n_slots, int freeze_embeddings,
                          size_t embed_rows);
/* The same with one slot the size of a block's largest tensor
 * (model_largest_linear), for gradients streamed tensor by tensor
 * (piece_done), and the floats that takes. */
int grads_init_streamed(struct model_grads *g, const struct model *m, int freeze_embeddings,
                        size_t embed_rows);
size_t grads_streamed_floats(const struct model_config *c, int freeze_embeddings,
                             size_t embed_rows);
/* Floats of one block's gradients once projected at GaLore rank `rank`: R of
 * each linear layer (optim_scratch_floats) and the two RMSNorm gains. */
size_t grads_projected_block_floats(const struct model_config *c, int rank);
/* Zero every gradient and empty the sparse embedding rows. */
void grads_zero(struct model_grads *g);
/* The same but for the block slots, which a backward with g->overwrite
 * writes whole: the embedding, final norm and head gradients only. */
void grads_zero_except_blocks(struct model_grads *g);
void grads_free(struct model_grads *g, const struct model *m);
/* Buffers for B x T tokens, every layer's internals saved (evaluation,
 * calibration, training without checkpointing). */
int activations_init(struct activations *a, const struct model *m, int B, int T);
/* The same, with the lowest `recomputed` blocks checkpointed (0: none) and,
 * when bf16_saved, the other blocks' internals kept in bf16. */
int activations_init_for(struct activations *a, const struct model *m, int B, int T,
                         int recomputed, int bf16_saved);

/* ---- bf16 storage of saved internals (saved_bf16.c) ---- */
/* bf16 values a token of one block keeps, and fp32 ones (q, k, lse). */
size_t saved_bf16_width16(const struct model_config *c);
size_t saved_bf16_width32(const struct model_config *c);
/* Block l (above the recomputed ones, a->bf16_saved) has just computed its
 * internals for N tokens in the shared slot: keep them in bf16. */
void saved_bf16_store(const struct model *m, struct activations *a, int l, int N);
/* Block l's internals back into the shared slot: the kept ones widened,
 * the RMSNorm outputs and SwiGLU's product computed from them again with
 * the block's gains in w (model_block_operands). */
void saved_bf16_load(const struct model *m, struct activations *a, int l, int N,
                     const struct block_weights *w);
void activations_free(struct activations *a, const struct model *m);

/* ---- named tensors (Hugging Face names), for loaders and checkpoints ---- */
struct named_tensor {
    char name[96];
    float *data;   /* NULL when the owner has no storage (frozen) */
    int rows, cols; /* 1-D tensors have cols == 0 */
};
int model_tensor_count(const struct model_config *c); /* without lm_head when tied */
void model_tensor_at(const struct model_config *c, const struct model_weights *w,
                     int i, struct named_tensor *out);

/* ---- compute ---- */
/* Block l's forward from a->resid[l] into its saved internals (the layer's
 * own, or the single checkpointed set) and a->resid[l + 1]. */
void model_block_forward(const struct model *m, struct activations *a, int l, int B, int T);
/* tokens (B,T) -> a->final_out. T <= a->T, B <= a->B. */
void model_forward(const struct model *m, struct activations *a,
                   const int *tokens, int B, int T);
/* Classifier + cross-entropy over a->final_out in chunks; targets (B,T),
 * outside [0, V) = ignored. Returns the summed loss and stores the number of
 * counted targets in *count. When g is non-NULL, seeds backward: writes
 * a->d_resid (the gradient of final_out, scaled by dscale per token) and
 * accumulates the head gradient. */
double model_head_loss(const struct model *m, struct activations *a,
                       struct model_grads *g, const int *targets, int B, int T,
                       float dscale, long *count);
/* Backward from a->d_resid (set by model_head_loss) through every block that
 * needs it; accumulates into g. */
void model_backward(const struct model *m, struct activations *a,
                    struct model_grads *g, const int *tokens, int B, int T);
/* Forward, loss (mean over counted targets) and, when g is non-NULL,
 * backward. Returns the mean loss (0 when nothing is counted). */
float model_loss_and_grad(const struct model *m, struct activations *a,
                          struct model_grads *g, const int *tokens,
                          const int *targets, int B, int T);
/* logits (B*T, V) for every position of the last forward. */
void model_logits(const struct model *m, const struct activations *a,
                  float *logits, int B, int T);

#endif
