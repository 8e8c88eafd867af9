/*
 * backend_cpu.c: the CPU backend's operation table and memory functions.
 *
 * Device memory is host memory: alloc is calloc (pages are touched only when
 * written, so measured resident memory follows real use), copy, upload and
 * download are memcpy.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "ops.h"

static void *cpu_alloc(size_t bytes)
{
    return calloc(1, bytes ? bytes : 1);
}

static void cpu_free(void *p)
{
    free(p);
}

static void cpu_copy(float *dst, const float *src, size_t n)
{
    memmove(dst, src, n * sizeof(float));
}

/* upload and download: device memory is host memory */
static void cpu_transfer(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
}

static void cpu_zero(void *p, size_t bytes)
{
    memset(p, 0, bytes);
}

/* nothing the CPU backend does can fail without aborting */
static int cpu_error(char *msg, size_t len)
{
    (void)msg;
    (void)len;
    return 0;
}

/* the threads training uses, and the machine's RAM */
static void cpu_describe(char *name, size_t len, double *memory_bytes)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    snprintf(name, len, "CPU, %d threads", omp_get_max_threads());
    *memory_bytes = pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

void cpu_add_inplace(float *y, const float *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

static const struct backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .upload = cpu_transfer,
    .download = cpu_transfer,
    .zero = cpu_zero,
    .error = cpu_error,
    .host_memory = 1,
    .describe = cpu_describe,
    .matmul = cpu_matmul,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .crossentropy_fwd_bwd = cpu_crossentropy_fwd_bwd,
    .add_inplace = cpu_add_inplace,
    .dropout = cpu_dropout,
    .sumsq_add = cpu_sumsq_add,
    .dot_add = cpu_dot_add,
    .col_sumsq_add = cpu_col_sumsq_add,
    .scale = cpu_scale,
    .adam_direction = cpu_adam_direction,
    .apply_update = cpu_apply_update,
    .lowrank_basis = cpu_lowrank_basis,
    .bf16_expand = cpu_bf16_expand,
    .bf16_round = cpu_bf16_round,
    .bf16_narrow = cpu_bf16_narrow,
    .matmul_bf16 = cpu_matmul_bf16,
    .embedding_fwd_bf16 = cpu_embedding_fwd_bf16,
    .adamw_bf16 = cpu_adamw_bf16,
    .bf16_add_round = cpu_bf16_add_round,
};

const struct backend *backend_cpu(void)
{
    return &cpu_backend;
}
