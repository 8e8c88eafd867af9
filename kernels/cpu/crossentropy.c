/*
 * crossentropy.c: softmax cross-entropy over rows of logits, fused with its
 * gradient.
 *
 * For a counted row (target >= 0): loss = logsumexp(logits) - logits[target]
 * and, when a scale is given, logits := scale * (softmax - onehot(target)).
 * Ignored rows (target < 0) get loss 0 and a zero gradient row. The
 * exponentials are the vectorised exp_v; the log-sum-exp is accumulated in
 * double and the softmax exponent x - lse is formed in double before it is
 * rounded to float.
 */
#include <math.h>
#include <string.h>

#include "ops.h"
#include "vexp.h"

void cpu_crossentropy_fwd_bwd(float *logits, float *losses, const int *targets,
                              int N, int V, float dlogits_scale)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *row = logits + (size_t)n * V;
        int t = targets[n];
        if (t < 0 || t >= V) {
            losses[n] = 0.0f;
            if (dlogits_scale != 0.0f)
                memset(row, 0, (size_t)V * sizeof(float));
            continue;
        }
        float mx = row[0];
        for (int i = 1; i < V; i++)
            mx = row[i] > mx ? row[i] : mx;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++)
            sum += (double)exp_v(row[i] - mx);
        double lse = mx + log(sum);
        losses[n] = (float)(lse - row[t]);
        if (dlogits_scale != 0.0f) {
#pragma omp simd
            for (int i = 0; i < V; i++)
                row[i] = dlogits_scale * exp_v((float)((double)row[i] - lse));
            row[t] -= dlogits_scale;
        }
    }
}
