/*
 * linalg.c: the GaLore projector on the CPU (lowrank_basis, engine/backend.h).
 *
 * Finds an orthonormal basis of the dominant r-dimensional singular subspace
 * of a gradient G (m,n), row-major: the right singular vectors (rows of P,
 * (r,n)) for side 0, the left ones (columns of P, (m,r)) for side 1.
 *
 * Layout trick: a row-major (m,n) array is the column-major (n,m) matrix G^T,
 * so LAPACK runs on G^T = V S U^T without transposing anything: its "U" holds
 * V and its "V^T" holds U^T.
 *
 * method 0, exact: thin SVD by LAPACKE_sgesdd (divide and conquer) on a copy
 * of G, falling back to LAPACKE_sgesvd when it fails. jobz 'O' overwrites the
 * copy with the larger factor, so the extra memory is one copy of G plus a
 * min(m,n)^2 square.
 *
 * method 1, randomized range finder (Halko, Martinsson, Tropp 2011, alg. 4.4):
 * with A = G^T (side 0, (n,m)) or A = G (side 1, (m,n)), A is (d,e) and the
 * wanted basis lives in R^d. With l = r + oversample (at most min(m,n)):
 *   Omega (e,l) Gaussian from *rng;  Q = orth(A Omega)            (d,l)
 *   power_iters times:  Z = orth(A^T Q) (e,l);  Q = orth(A Z)
 *   B = Q^T A (l,e) = Ut S W^T (thin SVD);  basis = Q Ut[:, :r]   (d,r)
 * orth() is Householder QR (sgeqrf + sorgqr). The Gaussian comes from
 * splitmix64 and Box-Muller, so equal seeds give equal bases.
 *
 * Sign convention: a singular vector is defined up to sign, and after a
 * projector refresh GaLore's moments stay in the old basis, so the sign
 * changes the update. Every basis vector is normalised so that its entry of
 * largest magnitude (the first such entry on ties) is positive. The
 * fixture script tests/ref/make_optimizer_fixtures.py applies the same rule
 * to galore-torch's torch.linalg.svd output.
 *
 * Non-finite input or output, a bad argument, an allocation failure or a
 * non-converging factorisation returns -1 and leaves P untouched.
 */
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static int all_finite(const float *x, size_t n)
{
    int ok = 1;
#pragma omp parallel for schedule(static) reduction(&& : ok)
    for (size_t i = 0; i < n; i++)
        ok = ok && isfinite(x[i]);
    return ok;
}

/* Thin SVD of the column-major (M,N) matrix src (ld M), k = min(M,N). a (M*N
 * floats) receives a copy and is destroyed; small holds k*k floats, s and
 * superb k floats. On success the left singular vectors are the first k
 * columns of *u (ld M) and the right ones the first k rows of *vt (ld *ldvt):
 * the larger factor lies in a, the square one in small. */
static int svd_colmajor(float *a, const float *src, int M, int N, float *s,
                        float *small, float *superb, const float **u,
                        const float **vt, int *ldvt)
{
    int tall = M >= N;
    size_t mn = (size_t)M * N;

    memcpy(a, src, mn * sizeof(float));
    lapack_int info = LAPACKE_sgesdd(LAPACK_COL_MAJOR, 'O', M, N, a, M, s, small,
                                     M, small, N);
    if (info != 0) {
        memcpy(a, src, mn * sizeof(float));
        info = LAPACKE_sgesvd(LAPACK_COL_MAJOR, tall ? 'O' : 'S', tall ? 'S' : 'O',
                              M, N, a, M, s, small, M, small, N, superb);
        if (info != 0)
            return -1;
    }
    *u = tall ? a : small;
    *vt = tall ? small : a;
    *ldvt = tall ? N : M;
    return 0;
}

/* vec (r,d), one basis vector per row: the top r right singular vectors of
 * G (m,n) for side 0 (d = n), the left ones for side 1 (d = m). */
static int basis_exact(float *vec, const float *G, int m, int n, int r, int side)
{
    int k = m < n ? m : n;
    float *a = malloc((size_t)m * n * sizeof(float));
    float *small = malloc((size_t)k * k * sizeof(float));
    float *s = malloc((size_t)k * 2 * sizeof(float));
    const float *u, *vt;
    int ldvt, rc = -1;

    /* G^T (n,m) column-major = V S U^T: u holds V (n,k), vt holds U^T (k,m) */
    if (a && small && s && svd_colmajor(a, G, n, m, s, small, s + k, &u, &vt, &ldvt) == 0) {
        for (int j = 0; j < r; j++) {
            if (side == 0)
                memcpy(vec + (size_t)j * n, u + (size_t)j * n, (size_t)n * sizeof(float));
            else
                for (int i = 0; i < m; i++)
                    vec[(size_t)j * m + i] = vt[j + (size_t)i * ldvt];
        }
        rc = 0;
    }
    free(a);
    free(small);
    free(s);
    return rc;
}

static uint64_t splitmix64(unsigned long long *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* x (n) standard normal, Box-Muller on uniforms in (0, 1]. */
static void gaussian_fill(float *x, size_t n, unsigned long long *state)
{
    const double two_pi = 6.283185307179586476925;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((splitmix64(state) >> 11) + 1) * 0x1.0p-53;
        double u2 = ((splitmix64(state) >> 11) + 1) * 0x1.0p-53;
        double rad = sqrt(-2.0 * log(u1));
        x[i] = (float)(rad * cos(two_pi * u2));
        if (i + 1 < n)
            x[i + 1] = (float)(rad * sin(two_pi * u2));
    }
}

/* x (rows,l) row-major := the Q factor of its QR (orthonormal columns). */
static int orthonormalise(float *x, int rows, int l, float *tau)
{
    if (LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, rows, l, x, l, tau) != 0)
        return -1;
    return LAPACKE_sorgqr(LAPACK_ROW_MAJOR, rows, l, l, x, l, tau) != 0 ? -1 : 0;
}

/* As basis_exact, by the randomized range finder (header comment). With
 * A = G^T (side 0) or G (side 1), (d,e): A X is matmul(side == 0, 0, ...),
 * A^T X is matmul(side == 1, 0, ...), X^T A is matmul(1, side == 0, ...). */
static int basis_randomized(float *vec, const float *G, int m, int n, int r,
                            int side, int oversample, int power_iters,
                            unsigned long long *rng)
{
    int d = side == 0 ? n : m, e = side == 0 ? m : n;
    int k = m < n ? m : n;
    int l = r + (oversample > 0 ? oversample : 0);
    if (l > k)
        l = k;
    size_t el = (size_t)e * l;
    float *big = malloc(el * sizeof(float));   /* Omega, Z, then B (l,e) */
    float *a = malloc(el * sizeof(float));     /* SVD copy of B */
    float *q = malloc((size_t)d * l * sizeof(float));
    float *small = malloc(((size_t)l * l + 3 * (size_t)l) * sizeof(float));
    const float *u, *vt;
    int ldvt, rc = -1;

    if (!big || !a || !q || !small)
        goto out;
    float *s = small + (size_t)l * l, *superb = s + l, *tau = superb + l;

    gaussian_fill(big, el, rng);
    cpu_matmul(side == 0, 0, d, l, e, 1.0f, G, n, big, l, 0.0f, q, l);
    if (orthonormalise(q, d, l, tau))
        goto out;
    for (int it = 0; it < power_iters; it++) {
        cpu_matmul(side == 1, 0, e, l, d, 1.0f, G, n, q, l, 0.0f, big, l);
        if (orthonormalise(big, e, l, tau))
            goto out;
        cpu_matmul(side == 0, 0, d, l, e, 1.0f, G, n, big, l, 0.0f, q, l);
        if (orthonormalise(q, d, l, tau))
            goto out;
    }
    cpu_matmul(1, side == 0, l, e, d, 1.0f, q, l, G, n, 0.0f, big, e);
    /* B (l,e) row-major is B^T (e,l) column-major = W S Ut^T: vt holds Ut^T */
    if (svd_colmajor(a, big, e, l, s, small, superb, &u, &vt, &ldvt))
        goto out;
    /* vec (r,d) = Ut[:, :r]^T Q^T; Ut (l,l) is vt read row-major */
    cpu_matmul(1, 1, r, d, l, 1.0f, vt, ldvt, q, l, 0.0f, vec, d);
    rc = 0;
out:
    free(big);
    free(a);
    free(q);
    free(small);
    return rc;
}

int cpu_lowrank_basis(float *P, const float *G, int m, int n, int r, int side,
                      int method, int oversample, int power_iters,
                      unsigned long long *rng)
{
    unsigned long long fixed_seed = 0x6f776c6f7265ULL;
    int d = side == 0 ? n : m;

    if (m < 1 || n < 1 || r < 1 || r > m || r > n || (side != 0 && side != 1) ||
        (method != 0 && method != 1))
        return -1;
    if (!all_finite(G, (size_t)m * n))
        return -1;

    float *vec = malloc((size_t)r * d * sizeof(float));
    if (!vec)
        return -1;
    int rc = method == 0 ? basis_exact(vec, G, m, n, r, side)
                         : basis_randomized(vec, G, m, n, r, side, oversample,
                                            power_iters, rng ? rng : &fixed_seed);
    if (rc == 0 && !all_finite(vec, (size_t)r * d))
        rc = -1;
    if (rc == 0) {
        for (int j = 0; j < r; j++) {
            float *x = vec + (size_t)j * d;
            int imax = 0;
            for (int i = 1; i < d; i++)
                if (fabsf(x[i]) > fabsf(x[imax]))
                    imax = i;
            if (x[imax] < 0.0f)
                for (int i = 0; i < d; i++)
                    x[i] = -x[i];
        }
        if (side == 0)
            memcpy(P, vec, (size_t)r * n * sizeof(float));
        else
            for (int i = 0; i < m; i++)
                for (int j = 0; j < r; j++)
                    P[(size_t)i * r + j] = vec[(size_t)j * m + i];
    }
    free(vec);
    return rc;
}
