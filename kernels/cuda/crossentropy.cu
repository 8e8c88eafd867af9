/*
 * crossentropy.cu: softmax cross-entropy over rows of logits (N,V), fused
 * with its gradient.
 *
 * One block per row. For a counted row (0 <= target < V):
 *   loss = logsumexp(row) - row[target], the exponential sum in double;
 * when a scale is given the row is overwritten by scale * (softmax - onehot).
 * Ignored rows get loss 0 and, with a scale, a zero row. targets (N) are
 * host memory (backend contract) and are staged to the device first.
 */
#include <math.h>

#include "cuda_ops.h"

#define CE_THREADS 512

static __global__ void ce_kernel(float *logits, float *losses, const int *targets, int V,
                                 float scale)
{
    __shared__ double sh[32];
    __shared__ float shm[32];
    const size_t n = blockIdx.x;
    float *row = logits + n * V;
    const int t = targets[n];
    if (t < 0 || t >= V) {
        if (threadIdx.x == 0)
            losses[n] = 0.0f;
        if (scale != 0.0f)
            for (int i = threadIdx.x; i < V; i += blockDim.x)
                row[i] = 0.0f;
        return;
    }
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        mx = fmaxf(mx, row[i]);
    mx = block_max(mx, shm);
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x)
        sum += exp((double)(row[i] - mx));
    sum = block_sum_d(sum, sh);
    const double lse = mx + log(sum);
    const float target_logit = row[t];
    __syncthreads(); /* row[t] is read by all before being overwritten */
    if (threadIdx.x == 0)
        losses[n] = (float)(lse - target_logit);
    if (scale == 0.0f)
        return;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float p = scale * (float)exp((double)row[i] - lse);
        row[i] = i == t ? p - scale : p;
    }
}

void cu_crossentropy_fwd_bwd(float *logits, float *losses, const int *targets, int N,
                             int V, float dlogits_scale)
{
    if (N <= 0)
        return;
    const int *t = cuda_stage_ints(targets, (size_t)N);
    if (!t)
        return;
    ce_kernel<<<N, CE_THREADS, 0, cuda_ctx.stream>>>(logits, losses, t, V, dlogits_scale);
    CK_LAUNCH();
}
