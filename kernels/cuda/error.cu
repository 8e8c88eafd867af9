/*
 * error.cu: the CUDA backend's first-failure record.
 *
 * The operations of struct backend return nothing, so a failed CUDA, cuBLAS
 * or cuSOLVER call is written down here (file, line, the call's text, the
 * library's reason) and the engine collects it through backend->error()
 * between steps, failing the job with that message. Only the first failure
 * is kept until collected: what follows it is usually a consequence. A
 * mutex guards the record since the server's HTTP threads may ask while a
 * job's thread runs.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cuda_ops.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char first[512];
static int pending;

int cuda_fail(const char *file, int line, const char *call, const char *why)
{
    const char *base = strrchr(file, '/');
    pthread_mutex_lock(&lock);
    if (!pending) {
        snprintf(first, sizeof first, "CUDA backend: %s:%d: %s: %s",
                 base ? base + 1 : file, line, call, why);
        pending = 1;
    }
    pthread_mutex_unlock(&lock);
    return 1;
}

int cuda_failed(void)
{
    pthread_mutex_lock(&lock);
    int p = pending;
    pthread_mutex_unlock(&lock);
    return p;
}

int cuda_take_error(char *msg, size_t len)
{
    pthread_mutex_lock(&lock);
    int p = pending;
    if (p && msg && len)
        snprintf(msg, len, "%s", first);
    pending = 0;
    pthread_mutex_unlock(&lock);
    return p;
}

const char *cublas_reason(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS allocation failed (out of GPU memory)";
    case CUBLAS_STATUS_INVALID_VALUE: return "cuBLAS invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "cuBLAS architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "cuBLAS mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "cuBLAS execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "cuBLAS internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "cuBLAS not supported";
    default: return "cuBLAS error";
    }
}

const char *cusolver_reason(cusolverStatus_t s)
{
    switch (s) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "cuSOLVER not initialized";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "cuSOLVER allocation failed (out of GPU memory)";
    case CUSOLVER_STATUS_INVALID_VALUE: return "cuSOLVER invalid value";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "cuSOLVER architecture mismatch";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "cuSOLVER execution failed";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "cuSOLVER internal error";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "cuSOLVER matrix type not supported";
    default: return "cuSOLVER error";
    }
}
