/*
 * linalg.cu: the GaLore projector on the GPU (lowrank_basis, backend.h):
 * an orthonormal basis of the dominant r-dimensional singular subspace of a
 * gradient G (m,n), row-major, as rows of P (r,n) for side 0 (right
 * singular vectors) or columns of P (m,r) for side 1 (left ones).
 *
 * cuBLAS and cuSOLVER are column-major: the row-major G is the column-major
 * Gc = G^T (n,m), ld n. The wanted vectors are the top left singular vectors
 * of X (d,e) = Gc (side 0: d = n) or Gc^T (side 1: d = m); they are built as
 * the r columns of vec (d,r), column-major, i.e. r contiguous vectors.
 *
 * method 0, exact (cusolverDnSgesvd, which needs rows >= cols): on Y = X when
 * d >= e, whose U holds the vectors; else on Y = X^T, whose V^T rows do.
 * method 1, randomized range finder (Halko, Martinsson, Tropp 2011, 4.4),
 * l = min(r + oversample, min(m,n)):
 *   Omega (e,l) Gaussian;  Q = orth(X Omega) (d,l)
 *   power_iters times: Z = orth(X^T Q) (e,l);  Q = orth(X Z)
 *   B^T = X^T Q (e,l) = W S Ut^T (gesvd);  vec = Q Ut[:, :r]
 * orth() is cusolverDnSgeqrf + cusolverDnSorgqr. Omega comes from the same
 * splitmix64 + Box-Muller stream as the CPU backend, in the same order (drawn
 * on the device: splitmix64 is counter-based), so
 * equal seeds give the same matrix and (up to rounding) the same basis.
 *
 * Then, as on the CPU: non-finite input or output returns -1; each vector is
 * flipped so its entry of largest magnitude (the first on ties) is positive;
 * P is written. Any failure (bad argument, no memory, no convergence, a
 * failed call) returns -1 and leaves P untouched.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "cuda_ops.h"

/* ---- finiteness and sign ---- */

static __global__ void finite_kernel(int *flag, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(x[i]))
            *flag = 0;
}

int cu_all_finite(const float *x, size_t n)
{
    int ok = 1;
    CK_CUDA(cudaMemcpyAsync(cuda_ctx.flag, &ok, sizeof ok, cudaMemcpyHostToDevice,
                            cuda_ctx.stream));
    finite_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(cuda_ctx.flag, x, n);
    CK_LAUNCH();
    CK_CUDA(cudaMemcpyAsync(&ok, cuda_ctx.flag, sizeof ok, cudaMemcpyDeviceToHost,
                            cuda_ctx.stream));
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
    return ok && !cuda_failed();
}

/* block j: vector vec[j*d .. j*d+d) flipped so that its largest-magnitude
 * entry (lowest index on ties) is positive */
static __global__ void sign_kernel(float *vec, int d)
{
    __shared__ float best[CUDA_THREADS];
    __shared__ int where[CUDA_THREADS];
    float *x = vec + (size_t)blockIdx.x * d;
    float b = -1.0f;
    int w = d;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        if (fabsf(x[i]) > b) { /* strict: the first index of a thread wins */
            b = fabsf(x[i]);
            w = i;
        }
    best[threadIdx.x] = b;
    where[threadIdx.x] = w;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) {
            float ob = best[threadIdx.x + s];
            int ow = where[threadIdx.x + s];
            if (ob > best[threadIdx.x] || (ob == best[threadIdx.x] && ow < where[threadIdx.x])) {
                best[threadIdx.x] = ob;
                where[threadIdx.x] = ow;
            }
        }
        __syncthreads();
    }
    const int imax = where[0];
    const int flip = imax < d && x[imax] < 0.0f;
    __syncthreads(); /* x[imax] is read by all before any write */
    if (flip)
        for (int i = threadIdx.x; i < d; i += blockDim.x)
            x[i] = -x[i];
}

/* ---- the random matrix, the CPU backend's stream, drawn on the device ---- */

/* splitmix64 is counter-based: its k-th output (k from 1) after state s is
 * mix(s + k * golden), so each pair of draws can be made independently. */
static __host__ __device__ uint64_t splitmix64_at(uint64_t s, uint64_t k)
{
    uint64_t z = s + k * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* om (e,l) column-major: Box-Muller pair p takes draws 2p+1 and 2p+2 and
 * fills elements 2p and 2p+1 of the CPU's row-major (e,l) order */
static __global__ void gaussian_kernel(float *om, int e, int l, uint64_t s, size_t pairs)
{
    const double two_pi = 6.283185307179586476925;
    const size_t n = (size_t)e * l;
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < pairs;
         p += (size_t)gridDim.x * blockDim.x) {
        double u1 = ((splitmix64_at(s, 2 * p + 1) >> 11) + 1) * 0x1.0p-53;
        double u2 = ((splitmix64_at(s, 2 * p + 2) >> 11) + 1) * 0x1.0p-53;
        double rad = sqrt(-2.0 * log(u1));
        size_t i = 2 * p;
        om[(i % l) * e + i / l] = (float)(rad * cos(two_pi * u2));
        if (i + 1 < n)
            om[((i + 1) % l) * e + (i + 1) / l] = (float)(rad * sin(two_pi * u2));
    }
}

/* om (e,l) on the device, standard normal; *state advances as on the CPU */
static void gaussian_fill(float *om, int e, int l, unsigned long long *state)
{
    const size_t pairs = ((size_t)e * l + 1) / 2;
    gaussian_kernel<<<cuda_blocks(pairs), CUDA_THREADS, 0, cuda_ctx.stream>>>(om, e, l,
                                                                            *state, pairs);
    CK_LAUNCH();
    *state += 2 * pairs * 0x9e3779b97f4a7c15ULL;
}

/* ---- factorisations ---- */

/* device scratch of n floats, NULL (not a backend failure) when out of memory */
static float *scratch(size_t n)
{
    float *p = NULL;
    if (cudaMalloc((void **)&p, (n ? n : 1) * sizeof(float)) != cudaSuccess) {
        cudaGetLastError();
        return NULL;
    }
    cuda_note_memory();
    return p;
}

/* 0 when the device info word is 0 and no call failed */
static int info_ok(const int *dinfo)
{
    int info = -1;
    CK_CUDA(cudaMemcpyAsync(&info, dinfo, sizeof info, cudaMemcpyDeviceToHost,
                            cuda_ctx.stream));
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
    return info == 0 && !cuda_failed() ? 0 : -1;
}

/* a (rows,cols) column-major := the Q factor of its QR */
static int orthonormalise(float *a, int rows, int cols, float *tau, int *dinfo)
{
    int l1 = 0, l2 = 0;
    CK_SOLVER(cusolverDnSgeqrf_bufferSize(cuda_ctx.solver, rows, cols, a, rows, &l1));
    CK_SOLVER(cusolverDnSorgqr_bufferSize(cuda_ctx.solver, rows, cols, cols, a, rows, tau, &l2));
    float *work = cuda_failed() ? NULL : scratch((size_t)(l1 > l2 ? l1 : l2));
    if (!work)
        return -1;
    CK_SOLVER(cusolverDnSgeqrf(cuda_ctx.solver, rows, cols, a, rows, tau, work, l1, dinfo));
    int rc = info_ok(dinfo);
    if (rc == 0) {
        CK_SOLVER(cusolverDnSorgqr(cuda_ctx.solver, rows, cols, cols, a, rows, tau, work,
                                   l2, dinfo));
        rc = info_ok(dinfo);
    }
    CK_CUDA(cudaFree(work));
    return rc;
}

/* Thin SVD of y (rows,cols) column-major, rows >= cols (y is destroyed):
 * the left vectors into u (rows,cols) when u, V^T into vt (cols,cols) when vt. */
static int svd(float *y, int rows, int cols, float *s, float *u, float *vt, int *dinfo)
{
    int lwork = 0;
    CK_SOLVER(cusolverDnSgesvd_bufferSize(cuda_ctx.solver, rows, cols, &lwork));
    float *work = cuda_failed() ? NULL : scratch((size_t)lwork + cols);
    if (!work)
        return -1;
    signed char jobu = u ? 'S' : 'N', jobvt = vt ? 'S' : 'N';
    CK_SOLVER(cusolverDnSgesvd(cuda_ctx.solver, jobu, jobvt, rows, cols, y, rows, s, u, rows,
                               vt, cols, work, lwork, work + lwork, dinfo));
    int rc = info_ok(dinfo);
    CK_CUDA(cudaFree(work));
    return rc;
}

/* c (rows,cols) column-major = a^T, a (cols,rows) with leading dimension lda */
static void transpose(float *c, const float *a, int lda, int rows, int cols)
{
    const float one = 1.0f, zero = 0.0f;
    CK_BLAS(cublasSgeam(cuda_ctx.blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, cols, &one, a, lda,
                        &zero, c, rows, c, rows));
}

/* c (M,N) = op(a) op(b), column-major */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int M, int N, int K,
                 const float *a, int lda, const float *b, int ldb, float *c, int ldc)
{
    const float one = 1.0f, zero = 0.0f;
    CK_BLAS(cublasSgemm(cuda_ctx.blas, ta, tb, M, N, K, &one, a, lda, b, ldb, &zero, c, ldc));
}

static int basis_exact(float *vec, const float *G, int m, int n, int r, int side,
                       int *dinfo)
{
    const int d = side == 0 ? n : m, e = side == 0 ? m : n;
    const int tall = d >= e, rows = tall ? d : e, k = tall ? e : d;
    float *buf = scratch((size_t)rows * k + (size_t)rows * k + (size_t)k * k + k);
    if (!buf)
        return -1;
    float *y = buf, *u = y + (size_t)rows * k, *vt = u + (size_t)rows * k, *s = vt + (size_t)k * k;
    /* Y = X (tall) or X^T; X = Gc (side 0) or Gc^T */
    if ((side == 0) != tall)
        transpose(y, G, n, rows, k);
    else
        CK_CUDA(cudaMemcpyAsync(y, G, (size_t)m * n * sizeof(float), cudaMemcpyDeviceToDevice,
                                cuda_ctx.stream));
    int rc = svd(y, rows, k, s, tall ? u : NULL, tall ? NULL : vt, dinfo);
    if (rc == 0 && tall) /* vec = U[:, :r] */
        CK_CUDA(cudaMemcpyAsync(vec, u, (size_t)d * r * sizeof(float),
                                cudaMemcpyDeviceToDevice, cuda_ctx.stream));
    else if (rc == 0) /* vec (d,r) = (V^T[:r, :])^T, V^T (k=d,k) */
        transpose(vec, vt, k, d, r);
    CK_CUDA(cudaFree(buf));
    return rc == 0 && !cuda_failed() ? 0 : -1;
}

static int basis_randomized(float *vec, const float *G, int m, int n, int r, int side,
                            int oversample, int power_iters, unsigned long long *rng,
                            int *dinfo)
{
    const int d = side == 0 ? n : m, e = side == 0 ? m : n, k = m < n ? m : n;
    const cublasOperation_t opx = side == 0 ? CUBLAS_OP_N : CUBLAS_OP_T;  /* X  */
    const cublasOperation_t opxt = side == 0 ? CUBLAS_OP_T : CUBLAS_OP_N; /* X^T */
    int l = r + (oversample > 0 ? oversample : 0);
    if (l > k)
        l = k;
    float *buf = scratch((size_t)e * l + (size_t)d * l + (size_t)l * l + 2 * (size_t)l);
    int rc = -1;
    if (!buf)
        goto out;
    {
        float *z = buf, *q = z + (size_t)e * l, *vt = q + (size_t)d * l, *tau = vt + (size_t)l * l;
        float *s = tau + l;
        gaussian_fill(z, e, l, rng);
        gemm(opx, CUBLAS_OP_N, d, l, e, G, n, z, e, q, d); /* Q = X Omega */
        if (orthonormalise(q, d, l, tau, dinfo))
            goto out;
        for (int it = 0; it < power_iters; it++) {
            gemm(opxt, CUBLAS_OP_N, e, l, d, G, n, q, d, z, e); /* Z = X^T Q */
            if (orthonormalise(z, e, l, tau, dinfo))
                goto out;
            gemm(opx, CUBLAS_OP_N, d, l, e, G, n, z, e, q, d); /* Q = X Z */
            if (orthonormalise(q, d, l, tau, dinfo))
                goto out;
        }
        gemm(opxt, CUBLAS_OP_N, e, l, d, G, n, q, d, z, e); /* B^T = X^T Q (e,l) */
        if (svd(z, e, l, s, NULL, vt, dinfo))
            goto out;
        /* vec (d,r) = Q (d,l) Ut[:, :r], Ut = (V^T)^T of B^T's SVD */
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, d, r, l, q, d, vt, l, vec, d);
        rc = cuda_failed() ? -1 : 0;
    }
out:
    if (buf)
        CK_CUDA(cudaFree(buf));
    return rc;
}

int cu_lowrank_basis(float *P, const float *G, int m, int n, int r, int side,
                     int method, int oversample, int power_iters,
                     unsigned long long *rng)
{
    unsigned long long fixed_seed = 0x6f776c6f7265ULL;
    const int d = side == 0 ? n : m;

    if (m < 1 || n < 1 || r < 1 || r > m || r > n || (side != 0 && side != 1) ||
        (method != 0 && method != 1))
        return -1;
    if (cuda_failed() || !cu_all_finite(G, (size_t)m * n))
        return -1;
    float *vec = scratch((size_t)r * d + 1);
    if (!vec)
        return -1;
    int *dinfo = (int *)(vec + (size_t)r * d); /* one int after the vectors */
    int rc = method == 0 ? basis_exact(vec, G, m, n, r, side, dinfo)
                         : basis_randomized(vec, G, m, n, r, side, oversample, power_iters,
                                            rng ? rng : &fixed_seed, dinfo);
    if (rc == 0 && !cu_all_finite(vec, (size_t)r * d))
        rc = -1;
    if (rc == 0) {
        sign_kernel<<<r, CUDA_THREADS, 0, cuda_ctx.stream>>>(vec, d);
        CK_LAUNCH();
        if (side == 0) /* P (r,n) row-major is vec as stored */
            CK_CUDA(cudaMemcpyAsync(P, vec, (size_t)r * n * sizeof(float),
                                    cudaMemcpyDeviceToDevice, cuda_ctx.stream));
        else /* P (m,r) row-major = column-major (r,m) = vec^T */
            transpose(P, vec, m, r, m);
        rc = cuda_failed() ? -1 : 0;
    }
    CK_CUDA(cudaFree(vec));
    return rc;
}
