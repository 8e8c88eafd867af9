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
 *   B^T = X^T Q (e,l) = W S Ut^T;  vec = Q Ut[:, :r]
 * orth() is shifted CholeskyQR in double (cuBLAS syrk/trsm + cuSOLVER
 * potrf): three passes (CholeskyQR3) for the last Q, which must be
 * orthonormal, one shifted pass for the bases between the power
 * iterations, which only need to be well conditioned (each product's span
 * does not depend on the basis it is given: 7 passes instead of 15 at
 * q = 2). When one of the factorisations fails (a gradient of rank below
 * l), the whole finder runs again from the same Omega with Householder QR
 * (cusolverDnSgeqrf + cusolverDnSorgqr). Ut[:, :r] are the top eigenvectors
 * of B B^T (l,l), in double, by cuSOLVER's syevd, its syevj or LAPACK on the
 * host (OWLORE_CUDA_EIG). The products with X run on TF32 tensor cores when
 * the backend's math mode is tf32 or bf16. Omega comes from the same
 * splitmix64 + Box-Muller stream as the CPU backend, in the same order (drawn
 * on the device: splitmix64 is counter-based), so
 * equal seeds give the same matrix and (up to rounding) the same basis.
 *
 * The host waits for the device three times a refresh: the input's
 * finiteness, the finder's factorisations (one status word), and the end
 * (the eigenproblem's and the output's finiteness).
 *
 * Then, as on the CPU: non-finite input or output returns -1; each vector is
 * flipped so its entry of largest magnitude (the first on ties) is positive;
 * P is written. Any failure (bad argument, no memory, no convergence, a
 * failed call) returns -1 and leaves P untouched.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lapacke.h>

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

/* ---- deferred checks ----
 * A refresh queues its work without waiting for the device: each
 * factorisation's info word and the output's finiteness are folded into one
 * status word on the device, read back after the orthonormalisations (a
 * failed CholeskyQR is redone by Householder QR before the eigenproblem
 * sees it) and once at the end. */

/* *status = 1 when *info is not 0 */
static __global__ void note_info_kernel(int *status, const int *info)
{
    if (*info != 0)
        *status = 1;
}

static void note_info(int *status, const int *dinfo)
{
    note_info_kernel<<<1, 1, 0, cuda_ctx.stream>>>(status, dinfo);
    CK_LAUNCH();
}

/* *status = 1 when any of the n floats of x is not finite */
static __global__ void note_nonfinite_kernel(int *status, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(x[i]))
            *status = 1;
}

/* 0 when the device word is 0 and no call failed (waits for the device) */
static int read_ok(const int *word)
{
    int v = -1;
    CK_CUDA(cudaMemcpyAsync(&v, word, sizeof v, cudaMemcpyDeviceToHost, cuda_ctx.stream));
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
    return v == 0 && !cuda_failed() ? 0 : -1;
}

static void clear_word(int *word)
{
    CK_CUDA(cudaMemsetAsync(word, 0, sizeof *word, cuda_ctx.stream));
}

/* ---- factorisations ---- */

static __global__ void to_double(double *y, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = x[i];
}

static __global__ void to_float(float *y, const double *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = (float)x[i];
}

/* g (n,n) += shift * I, shift = 11 (rows n + n (n + 1)) u trace(g), u = 2^-53
 * (the shift of shifted CholeskyQR, Fukaya et al. 2020); one block */
static __global__ void shift_diagonal(double *g, int n, int rows)
{
    __shared__ double sh[32];
    double t = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        t += g[(size_t)i * n + i];
    t = block_sum_d(t, sh);
    const double shift = 11.0 * ((double)rows * n + (double)n * (n + 1)) * 0x1.0p-53 * t;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        g[(size_t)i * n + i] += shift;
}

/* ad (rows,cols) column-major double := its Q factor by shifted CholeskyQR:
 * passes of G = A^T A (the first shifted so the factorisation exists for
 * any numerically full-rank A), G = R^T R, A = A R^-1. One pass leaves A
 * well conditioned, three (CholeskyQR3) orthonormal to double rounding. A
 * factorisation that fails is noted in *status; the passes after it
 * compute garbage that the caller throws away. */
static void cholesky_qr(double *ad, int rows, int cols, int passes, double *g, double *work,
                        int lwork, int *dinfo, int *status)
{
    const double one = 1.0, zero = 0.0;
    for (int pass = 0; pass < passes; pass++) {
        CK_BLAS(cublasDsyrk(cuda_ctx.blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, cols, rows,
                            &one, ad, rows, &zero, g, cols));
        if (pass == 0) {
            shift_diagonal<<<1, CUDA_THREADS, 0, cuda_ctx.stream>>>(g, cols, rows);
            CK_LAUNCH();
        }
        CK_SOLVER(cusolverDnDpotrf(cuda_ctx.solver, CUBLAS_FILL_MODE_UPPER, cols, g, cols,
                                   work, lwork, dinfo));
        note_info(status, dinfo);
        CK_BLAS(cublasDtrsm(cuda_ctx.blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER,
                            CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, rows, cols, &one, g, cols, ad,
                            rows));
    }
}

/* a (rows,cols) column-major float := a basis of its columns by shifted
 * CholeskyQR in double, passes as in cholesky_qr (a few BLAS-3 calls: much
 * faster on the GPU than Householder QR of a tall, thin matrix); a failed
 * factorisation is noted in *status; -1 only when the work could not be
 * queued */
static int orthonormalise_cholesky(float *a, int rows, int cols, int passes, int *dinfo,
                                   int *status)
{
    int lwork = 0; /* the size query takes a matrix but only its shape counts */
    CK_SOLVER(cusolverDnDpotrf_bufferSize(cuda_ctx.solver, CUBLAS_FILL_MODE_UPPER, cols,
                                          cuda_ctx.reduce, cols, &lwork));
    const size_t n = (size_t)rows * cols;
    double *ad = cuda_failed() ? NULL
                               : (double *)cuda_scratch(2 * (n + (size_t)cols * cols + lwork));
    if (!ad)
        return -1;
    double *g = ad + n, *work = g + (size_t)cols * cols;
    to_double<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(ad, a, n);
    CK_LAUNCH();
    cholesky_qr(ad, rows, cols, passes, g, work, lwork, dinfo, status);
    to_float<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(a, ad, n);
    CK_LAUNCH();
    cuda_scratch_free(ad);
    return cuda_failed() ? -1 : 0;
}

/* a (rows,cols) column-major := an orthonormal basis of its columns by
 * Householder QR (cuSOLVER geqrf + orgqr): the fallback when CholeskyQR
 * fails; failures noted in *status, -1 when the work could not be queued */
static int orthonormalise_householder(float *a, int rows, int cols, float *tau, int *dinfo,
                                      int *status)
{
    int l1 = 0, l2 = 0;
    CK_SOLVER(cusolverDnSgeqrf_bufferSize(cuda_ctx.solver, rows, cols, a, rows, &l1));
    CK_SOLVER(cusolverDnSorgqr_bufferSize(cuda_ctx.solver, rows, cols, cols, a, rows, tau, &l2));
    float *work = cuda_failed() ? NULL : cuda_scratch((size_t)(l1 > l2 ? l1 : l2));
    if (!work)
        return -1;
    CK_SOLVER(cusolverDnSgeqrf(cuda_ctx.solver, rows, cols, a, rows, tau, work, l1, dinfo));
    note_info(status, dinfo);
    CK_SOLVER(cusolverDnSorgqr(cuda_ctx.solver, rows, cols, cols, a, rows, tau, work, l2,
                               dinfo));
    note_info(status, dinfo);
    cuda_scratch_free(work);
    return cuda_failed() ? -1 : 0;
}

/* a basis of a's columns: orthonormal when last, else well conditioned */
static int orthonormalise(float *a, int rows, int cols, int last, int householder, float *tau,
                          int *dinfo, int *status)
{
    return householder ? orthonormalise_householder(a, rows, cols, tau, dinfo, status)
                       : orthonormalise_cholesky(a, rows, cols, last ? 3 : 1, dinfo, status);
}

/* Thin SVD of y (rows,cols) column-major, rows >= cols (y is destroyed):
 * the left vectors into u (rows,cols) when u, V^T into vt (cols,cols) when
 * vt; a failure noted in *status. */
static int svd(float *y, int rows, int cols, float *s, float *u, float *vt, int *dinfo,
               int *status)
{
    int lwork = 0;
    CK_SOLVER(cusolverDnSgesvd_bufferSize(cuda_ctx.solver, rows, cols, &lwork));
    float *work = cuda_failed() ? NULL : cuda_scratch((size_t)lwork + cols);
    if (!work)
        return -1;
    signed char jobu = u ? 'S' : 'N', jobvt = vt ? 'S' : 'N';
    CK_SOLVER(cusolverDnSgesvd(cuda_ctx.solver, jobu, jobvt, rows, cols, y, rows, s, u, rows,
                               vt, cols, work, lwork, work + lwork, dinfo));
    note_info(status, dinfo);
    cuda_scratch_free(work);
    return cuda_failed() ? -1 : 0;
}

/* c (rows,cols) column-major = a^T, a (cols,rows) with leading dimension lda */
static void transpose(float *c, const float *a, int lda, int rows, int cols)
{
    const float one = 1.0f, zero = 0.0f;
    CK_BLAS(cublasSgeam(cuda_ctx.blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, cols, &one, a, lda,
                        &zero, c, rows, c, rows));
}

/* c (M,N) = op(a) op(b), column-major, fp32 in and out. The products with
 * the gradient pass sketch = 1: on TF32 tensor cores when the backend's
 * math mode is tf32 or bf16 (cuda_ctx.linalg_tf32). Their rounding (about
 * 1e-3 relative) tilts the sketch's subspace and, through B, the choice of
 * the top r directions within it, by about that much over the relative
 * singular-value gap at r: the finder approximates the subspace anyway, and
 * gpu_refresh measures the captured share in both modes. The others follow
 * the handle's math mode. */
static void gemm(int sketch, cublasOperation_t ta, cublasOperation_t tb, int M, int N, int K,
                 const float *a, int lda, const float *b, int ldb, float *c, int ldc)
{
    const float one = 1.0f, zero = 0.0f;
    const cublasComputeType_t ct = sketch && cuda_ctx.linalg_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                  : CUBLAS_COMPUTE_32F;
    CK_BLAS(cublasGemmEx(cuda_ctx.blas, ta, tb, M, N, K, &one, a, CUDA_R_32F, lda, b,
                         CUDA_R_32F, ldb, &zero, c, CUDA_R_32F, ldc, ct, CUBLAS_GEMM_DEFAULT));
}

/* w (l,r) column-major = columns l-1, l-2, ..., l-r of v (l,l) column-major */
static __global__ void top_columns(float *w, const double *v, int l, int r)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)l * r;
         i += (size_t)gridDim.x * blockDim.x)
        w[i] = (float)v[(size_t)(l - 1 - i / l) * l + i % l];
}

/* ---- the small eigenproblem ---- */

/* Its solver, from OWLORE_CUDA_EIG, read at every refresh so that one
 * benchmark process can compare them (gpu_refresh): cuSOLVER's syevd (the
 * default), cuSOLVER's Jacobi method syevj, or LAPACK's dsyevd on the host
 * (the matrix copied over and the vectors back). -1, recorded as a backend
 * failure, for any other value. */
enum eig_solver { EIG_SYEVD, EIG_SYEVJ, EIG_HOST };

static int eig_solver(void)
{
    const char *s = getenv("OWLORE_CUDA_EIG");
    if (!s || !*s || strcmp(s, "syevd") == 0)
        return EIG_SYEVD;
    if (strcmp(s, "syevj") == 0)
        return EIG_SYEVJ;
    if (strcmp(s, "host") == 0)
        return EIG_HOST;
    cuda_fail(__FILE__, __LINE__, "getenv(OWLORE_CUDA_EIG)",
              "not syevd, syevj or host");
    return -1;
}

/* g (l,l) column-major symmetric (upper triangle) := its eigenvectors, ev
 * (l) its eigenvalues, ascending, by cuSOLVER (syevd or syevj); a failure
 * noted in *status, -1 when the work could not be queued */
static int eig_device(double *g, double *ev, int l, int jacobi, int *dinfo, int *status)
{
    const cusolverEigMode_t job = CUSOLVER_EIG_MODE_VECTOR;
    const cublasFillMode_t up = CUBLAS_FILL_MODE_UPPER;
    int lwork = 0;
    if (jacobi)
        CK_SOLVER(cusolverDnDsyevj_bufferSize(cuda_ctx.solver, job, up, l, g, l, ev, &lwork,
                                              cuda_ctx.syevj));
    else
        CK_SOLVER(cusolverDnDsyevd_bufferSize(cuda_ctx.solver, job, up, l, g, l, ev, &lwork));
    double *work = cuda_failed() ? NULL : (double *)cuda_scratch(2 * (size_t)lwork);
    if (work) {
        if (jacobi)
            CK_SOLVER(cusolverDnDsyevj(cuda_ctx.solver, job, up, l, g, l, ev, work, lwork, dinfo,
                                       cuda_ctx.syevj));
        else
            CK_SOLVER(cusolverDnDsyevd(cuda_ctx.solver, job, up, l, g, l, ev, work, lwork,
                                       dinfo));
        note_info(status, dinfo);
        cuda_scratch_free(work);
    }
    return work && !cuda_failed() ? 0 : -1;
}

/* the same by LAPACK on the host: waits for the device; -1 on failure */
static int eig_host(double *g, int l)
{
    const size_t ll = (size_t)l * l;
    double *h = (double *)malloc((ll + (size_t)l) * sizeof(double));
    int rc = -1;
    if (!h)
        return -1;
    CK_CUDA(cudaMemcpyAsync(h, g, ll * sizeof(double), cudaMemcpyDeviceToHost,
                            cuda_ctx.stream));
    CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
    if (!cuda_failed() && LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', l, h, l, h + ll) == 0) {
        CK_CUDA(cudaMemcpyAsync(g, h, ll * sizeof(double), cudaMemcpyHostToDevice,
                                cuda_ctx.stream));
        CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream)); /* before h is freed */
        rc = cuda_failed() ? -1 : 0;
    }
    free(h);
    return rc;
}

/* w (l,r) column-major := the top r right singular vectors of bt (e,l)
 * column-major, by singular value, as the top eigenvectors of bt^T bt taken
 * in double (cuBLAS syrk and an l x l eigenproblem: much faster than an SVD
 * of the tall bt); a device solver's failure noted in *status, -1 for any
 * other */
static int top_right_vectors(float *w, const float *bt, int e, int l, int r, int *dinfo,
                             int *status)
{
    const size_t n = (size_t)e * l;
    const double one = 1.0, zero = 0.0;
    const int solver = eig_solver();
    double *bd = solver < 0 ? NULL : (double *)cuda_scratch(2 * (n + (size_t)l * l + l));
    if (!bd)
        return -1;
    double *g = bd + n, *ev = g + (size_t)l * l;
    to_double<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(bd, bt, n);
    CK_LAUNCH();
    CK_BLAS(cublasDsyrk(cuda_ctx.blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, l, e, &one, bd, e,
                        &zero, g, l));
    int rc = solver == EIG_HOST ? eig_host(g, l)
                                : eig_device(g, ev, l, solver == EIG_SYEVJ, dinfo, status);
    if (rc == 0) { /* eigenvalues ascending: the last r columns, reversed */
        top_columns<<<cuda_blocks((size_t)l * r), CUDA_THREADS, 0, cuda_ctx.stream>>>(w, g, l,
                                                                                    r);
        CK_LAUNCH();
    }
    cuda_scratch_free(bd);
    return rc == 0 && !cuda_failed() ? 0 : -1;
}

/* ---- the two methods ---- */

static int basis_exact(float *vec, const float *G, int m, int n, int r, int side,
                       int *dinfo, int *status)
{
    const int d = side == 0 ? n : m, e = side == 0 ? m : n;
    const int tall = d >= e, rows = tall ? d : e, k = tall ? e : d;
    /* Y, then U (rows,k) when tall, else V^T (k,k); then the k values */
    const size_t factor = tall ? (size_t)rows * k : (size_t)k * k;
    float *buf = cuda_scratch((size_t)rows * k + factor + k);
    if (!buf)
        return -1;
    float *y = buf, *u = y + (size_t)rows * k, *vt = u, *s = u + factor;
    /* Y = X (tall) or X^T; X = Gc (side 0) or Gc^T */
    if ((side == 0) != tall)
        transpose(y, G, n, rows, k);
    else
        CK_CUDA(cudaMemcpyAsync(y, G, (size_t)m * n * sizeof(float), cudaMemcpyDeviceToDevice,
                                cuda_ctx.stream));
    int rc = svd(y, rows, k, s, tall ? u : NULL, tall ? NULL : vt, dinfo, status);
    if (rc == 0 && tall) /* vec = U[:, :r] */
        CK_CUDA(cudaMemcpyAsync(vec, u, (size_t)d * r * sizeof(float),
                                cudaMemcpyDeviceToDevice, cuda_ctx.stream));
    else if (rc == 0) /* vec (d,r) = (V^T[:r, :])^T, V^T (k=d,k) */
        transpose(vec, vt, k, d, r);
    cuda_scratch_free(buf);
    return rc == 0 && !cuda_failed() ? 0 : -1;
}

/* q (d,l) := an orthonormal basis of the range finder's subspace, z (e,l)
 * scratch, by shifted CholeskyQR or, with householder, Householder QR;
 * failed factorisations noted in *status, -1 when the work could not be
 * queued */
static int range_basis(float *q, float *z, float *tau, const float *G, int n, int d, int e,
                       int l, int side, int power_iters, int householder,
                       unsigned long long *rng, int *dinfo, int *status)
{
    const cublasOperation_t opx = side == 0 ? CUBLAS_OP_N : CUBLAS_OP_T;  /* X  */
    const cublasOperation_t opxt = side == 0 ? CUBLAS_OP_T : CUBLAS_OP_N; /* X^T */
    gaussian_fill(z, e, l, rng);
    gemm(1, opx, CUBLAS_OP_N, d, l, e, G, n, z, e, q, d); /* Q = X Omega */
    if (orthonormalise(q, d, l, power_iters == 0, householder, tau, dinfo, status))
        return -1;
    for (int it = 0; it < power_iters; it++) {
        gemm(1, opxt, CUBLAS_OP_N, e, l, d, G, n, q, d, z, e); /* Z = X^T Q */
        if (orthonormalise(z, e, l, 0, householder, tau, dinfo, status))
            return -1;
        gemm(1, opx, CUBLAS_OP_N, d, l, e, G, n, z, e, q, d); /* Q = X Z */
        if (orthonormalise(q, d, l, it == power_iters - 1, householder, tau, dinfo, status))
            return -1;
    }
    return 0;
}

static int basis_randomized(float *vec, const float *G, int m, int n, int r, int side,
                            int oversample, int power_iters, unsigned long long *rng,
                            int *dinfo, int *status)
{
    const int d = side == 0 ? n : m, e = side == 0 ? m : n, k = m < n ? m : n;
    const cublasOperation_t opxt = side == 0 ? CUBLAS_OP_T : CUBLAS_OP_N; /* X^T */
    const unsigned long long seed = *rng;
    int l = r + (oversample > 0 ? oversample : 0);
    if (l > k)
        l = k;
    float *buf = cuda_scratch((size_t)e * l + (size_t)d * l + (size_t)l * l + (size_t)l);
    int rc = -1;
    if (!buf)
        return -1;
    float *z = buf, *q = z + (size_t)e * l, *vt = q + (size_t)d * l, *tau = vt + (size_t)l * l;
    /* CholeskyQR first; if any of its factorisations failed (a gradient
     * of rank below l), the whole finder again by Householder QR, from the
     * same Gaussian matrix */
    for (int householder = 0; householder < 2 && rc != 0; householder++) {
        *rng = seed;
        clear_word(status);
        if (range_basis(q, z, tau, G, n, d, e, l, side, power_iters, householder, rng, dinfo,
                        status))
            break;
        rc = read_ok(status);
    }
    if (rc == 0) {
        gemm(1, opxt, CUBLAS_OP_N, e, l, d, G, n, q, d, z, e); /* B^T = X^T Q (e,l) */
        rc = top_right_vectors(vt, z, e, l, r, dinfo, status);
    }
    if (rc == 0) /* vec (d,r) = Q (d,l) Ut[:, :r], Ut the right singular vectors of B^T */
        gemm(0, CUBLAS_OP_N, CUBLAS_OP_N, d, r, l, q, d, vt, l, vec, d);
    cuda_scratch_free(buf);
    return rc == 0 && !cuda_failed() ? 0 : -1;
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
    float *vec = cuda_scratch((size_t)r * d + 2);
    if (!vec)
        return -1;
    /* two ints after the vectors: the solvers' info word, the status word */
    int *dinfo = (int *)(vec + (size_t)r * d), *status = dinfo + 1;
    clear_word(status);
    int rc = method == 0 ? basis_exact(vec, G, m, n, r, side, dinfo, status)
                         : basis_randomized(vec, G, m, n, r, side, oversample, power_iters,
                                            rng ? rng : &fixed_seed, dinfo, status);
    if (rc == 0) {
        note_nonfinite_kernel<<<cuda_blocks((size_t)r * d), CUDA_THREADS, 0,
                                cuda_ctx.stream>>>(status, vec, (size_t)r * d);
        CK_LAUNCH();
        rc = read_ok(status);
    }
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
    cuda_scratch_free(vec);
    return rc;
}
