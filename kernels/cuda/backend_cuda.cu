/*
 * backend_cuda.cu: the CUDA backend's operation table, memory and context.
 *
 * backend_cuda() opens device 0 (CUDA_VISIBLE_DEVICES picks which GPU that
 * is) once per process: one stream, a cuBLAS and a cuSOLVER handle bound to
 * it, small device buffers for staged host indices and reductions. On a
 * machine without a GPU or driver it returns NULL with the reason, and
 * nothing else in this directory is ever called.
 *
 * Memory: alloc is cudaMalloc plus a zero fill (the contract's calloc),
 * tried again after trimming the stream-ordered pool when the device is
 * full; a failed allocation returns NULL (the engine reports out of memory)
 * and is not recorded as a backend failure. upload/download/zero/copy run on the
 * stream; download waits for it, so the host sees finished results.
 *
 * Matrix products use plain fp32 (TF32 off) so that the backend matches the
 * CPU oracle; OWLORE_CUDA_MATH=tf32 in the environment lets cuBLAS use TF32
 * tensor cores instead (faster, about 1e-3 relative error per product), and
 * OWLORE_CUDA_MATH=bf16 the engine's matrix products bf16 tensor cores
 * (fastest, operands rounded to bf16: about 4e-3 relative per product).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ops.h"

extern "C" {
#include "backend.h"
}

struct cuda_ctx cuda_ctx;
static int sm_count = 1;

/* device memory in use (cudaMemGetInfo: ours, cuBLAS's and cuSOLVER's):
 * at the end of open_device, and the largest sample since */
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static size_t mem_base, mem_peak;

void cuda_note_memory(void)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    pthread_mutex_lock(&mem_lock);
    if (total_b - free_b > mem_peak)
        mem_peak = total_b - free_b;
    pthread_mutex_unlock(&mem_lock);
}

static char device_name[256];
static double device_bytes;

static void cu_describe(char *name, size_t len, double *memory_bytes)
{
    snprintf(name, len, "%s", device_name);
    *memory_bytes = device_bytes;
}

static size_t cu_peak_bytes(void)
{
    cuda_note_memory();
    pthread_mutex_lock(&mem_lock);
    size_t peak = mem_peak > mem_base ? mem_peak - mem_base : 0;
    pthread_mutex_unlock(&mem_lock);
    return peak;
}

float *cuda_scratch(size_t n)
{
    void *p = NULL;
    if (cudaMallocAsync(&p, (n ? n : 1) * sizeof(float), cuda_ctx.stream) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    cuda_note_memory();
    return (float *)p;
}

void cuda_scratch_free(void *p)
{
    CK_CUDA(cudaFreeAsync(p, cuda_ctx.stream));
}

/* cudaMalloc; when the device is full, once more after the stream-ordered
 * pool (linalg.cu's scratch, cached between refreshes) has handed what it
 * holds back to the device. Leaves no error recorded. */
static cudaError_t device_malloc(void **p, size_t bytes)
{
    cudaMemPool_t pool;
    if (cudaMalloc(p, bytes) == cudaSuccess)
        return cudaSuccess;
    cudaGetLastError();
    if (cudaStreamSynchronize(cuda_ctx.stream) != cudaSuccess ||
        cudaDeviceGetDefaultMemPool(&pool, cuda_ctx.device) != cudaSuccess ||
        cudaMemPoolTrimTo(pool, 0) != cudaSuccess || cudaMalloc(p, bytes) != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    return cudaSuccess;
}

float *cuda_grow(float **buf, size_t *cap, size_t n)
{
    if (n <= *cap)
        return *buf;
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream)); /* the old buffer may be in use */
    CK_CUDA(cudaFree(*buf));
    *buf = NULL;
    *cap = 0;
    if (device_malloc((void **)buf, n * sizeof(float)) != cudaSuccess) {
        cuda_fail(__FILE__, __LINE__, "cudaMalloc(scratch)", "out of GPU memory");
        return NULL;
    }
    *cap = n;
    cuda_note_memory();
    return *buf;
}

unsigned cuda_blocks(size_t n)
{
    size_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS, cap = (size_t)sm_count * 16;
    if (b < 1)
        b = 1;
    return (unsigned)(b < cap ? b : cap);
}

const int *cuda_stage_ints(const int *host, size_t n)
{
    if (n > cuda_ctx.ints_cap) {
        /* the stream may still read the old buffer */
        CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
        CK_CUDA(cudaFree(cuda_ctx.ints));
        cuda_ctx.ints = NULL;
        cuda_ctx.ints_cap = 0;
        if (device_malloc((void **)&cuda_ctx.ints, n * sizeof(int)) != cudaSuccess) {
            cuda_fail(__FILE__, __LINE__, "cudaMalloc(index staging)",
                      "out of GPU memory");
            cuda_ctx.ints = NULL;
            return NULL;
        }
        cuda_ctx.ints_cap = n;
        cuda_note_memory();
    }
    CK_CUDA(cudaMemcpyAsync(cuda_ctx.ints, host, n * sizeof(int),
                            cudaMemcpyHostToDevice, cuda_ctx.stream));
    return cuda_ctx.ints;
}

static void *cu_alloc(size_t bytes)
{
    void *p = NULL;
    if (device_malloc(&p, bytes ? bytes : 1) != cudaSuccess)
        return NULL; /* the caller reports */
    if (cudaMemsetAsync(p, 0, bytes, cuda_ctx.stream) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(p);
        return NULL;
    }
    cuda_note_memory();
    return p;
}

static void cu_free(void *p)
{
    if (!p)
        return;
    /* cudaFree waits for the device; a pending kernel may still use p */
    CK_CUDA(cudaFree(p));
}

static void cu_copy(float *dst, const float *src, size_t n)
{
    CK_CUDA(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice,
                            cuda_ctx.stream));
}

static void cu_upload(void *dst, const void *src, size_t bytes)
{
    CK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_ctx.stream));
    /* the host buffer may be reused or freed as soon as we return */
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
}

static void cu_download(void *dst, const void *src, size_t bytes)
{
    CK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_ctx.stream));
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
}

static void cu_zero(void *p, size_t bytes)
{
    CK_CUDA(cudaMemsetAsync(p, 0, bytes, cuda_ctx.stream));
}

static int cu_error(char *msg, size_t len)
{
    /* collect asynchronous kernel failures too */
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
    return cuda_take_error(msg, len);
}

static const struct backend cuda_backend = {
    .name = "cuda",
    .alloc = cu_alloc,
    .free = cu_free,
    .copy = cu_copy,
    .upload = cu_upload,
    .download = cu_download,
    .zero = cu_zero,
    .error = cu_error,
    .host_memory = 0,
    .peak_bytes = cu_peak_bytes,
    .describe = cu_describe,
    .matmul = cu_matmul,
    .embedding_fwd = cu_embedding_fwd,
    .embedding_bwd = cu_embedding_bwd,
    .rmsnorm_fwd = cu_rmsnorm_fwd,
    .rmsnorm_bwd = cu_rmsnorm_bwd,
    .rope_fwd = cu_rope_fwd,
    .rope_bwd = cu_rope_bwd,
    .attention_fwd = cu_attention_fwd,
    .attention_bwd = cu_attention_bwd,
    .swiglu_fwd = cu_swiglu_fwd,
    .swiglu_bwd = cu_swiglu_bwd,
    .crossentropy_fwd_bwd = cu_crossentropy_fwd_bwd,
    .add_inplace = cu_add_inplace,
    .dropout = cu_dropout,
    .sumsq_add = cu_sumsq_add,
    .dot_add = cu_dot_add,
    .col_sumsq_add = cu_col_sumsq_add,
    .scale = cu_scale,
    .adam_direction = cu_adam_direction,
    .apply_update = cu_apply_update,
    .lowrank_basis = cu_lowrank_basis,
    .bf16_expand = cu_bf16_expand,
    .bf16_round = cu_bf16_round,
    .bf16_narrow = cu_bf16_narrow_n,
    .matmul_bf16 = cu_matmul_bf16,
    .embedding_fwd_bf16 = cu_embedding_fwd_bf16,
    .adamw_bf16 = cu_adamw_bf16,
    .bf16_add_round = cu_bf16_add_round,
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_state; /* 0 not tried, 1 ready, -1 failed */
static char init_err[512];

/* Open the device; 0, or -1 with init_err set. */
static int open_device(void)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        snprintf(init_err, sizeof init_err, "no CUDA device (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        cudaGetLastError();
        return -1;
    }
    cudaDeviceProp prop;
    if (cudaSetDevice(0) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, 0) != cudaSuccess ||
        cudaStreamCreateWithFlags(&cuda_ctx.stream, cudaStreamNonBlocking) != cudaSuccess) {
        snprintf(init_err, sizeof init_err, "CUDA device 0 cannot be opened (%s)",
                 cudaGetErrorString(cudaGetLastError()));
        return -1;
    }
    sm_count = prop.multiProcessorCount;
    snprintf(device_name, sizeof device_name, "%s", prop.name);
    device_bytes = (double)prop.totalGlobalMem;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    const char *mode = getenv("OWLORE_CUDA_MATH");
    if (mode && strcmp(mode, "tf32") == 0)
        math = CUBLAS_TF32_TENSOR_OP_MATH;
    cuda_ctx.fast_bf16 = mode && strcmp(mode, "bf16") == 0;
    cuda_ctx.linalg_tf32 = math == CUBLAS_TF32_TENSOR_OP_MATH || cuda_ctx.fast_bf16;
    if (cublasCreate(&cuda_ctx.blas) != CUBLAS_STATUS_SUCCESS ||
        cublasSetStream(cuda_ctx.blas, cuda_ctx.stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(cuda_ctx.blas, math) != CUBLAS_STATUS_SUCCESS) {
        snprintf(init_err, sizeof init_err, "cuBLAS cannot be initialised on %s", prop.name);
        return -1;
    }
    if (cusolverDnCreate(&cuda_ctx.solver) != CUSOLVER_STATUS_SUCCESS ||
        cusolverDnSetStream(cuda_ctx.solver, cuda_ctx.stream) != CUSOLVER_STATUS_SUCCESS ||
        cusolverDnCreateSyevjInfo(&cuda_ctx.syevj) != CUSOLVER_STATUS_SUCCESS) {
        snprintf(init_err, sizeof init_err, "cuSOLVER cannot be initialised on %s", prop.name);
        return -1;
    }
    if (cudaMalloc((void **)&cuda_ctx.reduce, SUMSQ_BLOCKS * sizeof(double)) != cudaSuccess ||
        cudaMalloc((void **)&cuda_ctx.flag, sizeof(int)) != cudaSuccess) {
        snprintf(init_err, sizeof init_err, "out of GPU memory on %s at start", prop.name);
        return -1;
    }
    /* the pool behind cudaMallocAsync (linalg.cu's scratch) keeps what is
     * freed instead of handing it back at every synchronisation */
    cudaMemPool_t pool;
    uint64_t keep = UINT64_MAX;
    if (cudaDeviceGetDefaultMemPool(&pool, 0) != cudaSuccess ||
        cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep) != cudaSuccess) {
        snprintf(init_err, sizeof init_err, "the CUDA memory pool of %s cannot be set up",
                 prop.name);
        return -1;
    }
    cu_attention_init();
    if (cuda_take_error(init_err, sizeof init_err))
        return -1;
    cuda_ctx.device = 0;
    cuda_note_memory();
    mem_base = mem_peak;
    return 0;
}

extern "C" const struct backend *backend_cuda(char *err, size_t errlen)
{
    pthread_mutex_lock(&init_lock);
    if (init_state == 0)
        init_state = open_device() == 0 ? 1 : -1;
    int state = init_state;
    pthread_mutex_unlock(&init_lock);
    if (state < 0) {
        snprintf(err, errlen, "%s", init_err);
        return NULL;
    }
    return &cuda_backend;
}
