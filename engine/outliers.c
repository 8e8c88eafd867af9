/*
 * outliers.c: OWL layer outlier ratios (outliers.h) and their cache.
 *
 * Statistics: one double per input channel of each distinct linear input,
 * (L, D) for q/k/v, (L, H*hd) for o, (L, D) for gate/up, (L, F) for down,
 * summed from the activations model_forward saves (per-layer slices with
 * capacity strides a->B * a->T tokens; the first B*T rows are this batch).
 *
 * Ratios: per block, pass 1 sums A_ij = ||X_j|| |W_ij| over the 7 linears
 * (row ranges in a fixed number of chunks, added in chunk order, so the
 * mean is bit-identical for any thread count); pass 2 counts A > tau * mean.
 * Neither pass stores A, so a 7B block (202M weights) costs two reads.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "digest.h"
#include "outliers.h"

#define SUM_CHUNKS 256                   /* fixed row split of pass 1 */
#define PAR_MIN ((long long)1 << 16)     /* elements worth a parallel loop */
#define AUTO_BATCH_MAX 4
#define AUTO_ACT_BYTES ((size_t)4 << 30) /* activation budget of batch = 0 */
#define CACHE_FORMAT "owlore-outliers-1"

/* ---- statistics ---- */

int channel_stats_init(struct channel_stats *st, const struct model_config *c,
                       const struct backend *be)
{
    size_t L = c->n_layers, D = c->dim, F = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim;
    memset(st, 0, sizeof *st);
    st->n_layers = c->n_layers;
    st->be = be;
    st->n = L * (D + QD + D + F);
    st->mem = be->alloc(st->n * sizeof(double)); /* zero-filled */
    if (!st->mem)
        return -1;
    double *attn = st->mem, *o = attn + L * D, *ffn = o + L * QD, *down = ffn + L * D;
    st->sumsq[LIN_Q] = st->sumsq[LIN_K] = st->sumsq[LIN_V] = attn;
    st->sumsq[LIN_O] = o;
    st->sumsq[LIN_GATE] = st->sumsq[LIN_UP] = ffn;
    st->sumsq[LIN_DOWN] = down;
    return 0;
}

void channel_stats_free(struct channel_stats *st)
{
    if (st->mem)
        st->be->free(st->mem);
    memset(st, 0, sizeof *st);
}

void channel_stats_add(struct channel_stats *st, const struct model *m,
                       const struct activations *a, int B, int T)
{
    const struct model_config *c = &m->cfg;
    const size_t cap = (size_t)a->B * a->T;
    const int N = B * T;
    const int QD = c->n_heads * c->head_dim;
    /* the four distinct linear inputs: activation, width, statistics */
    const float *src[4] = {a->attn_in, a->attn_out, a->ffn_in, a->ffn_h};
    const int width[4] = {c->dim, QD, c->dim, c->hidden_dim};
    double *dst[4] = {st->sumsq[LIN_Q], st->sumsq[LIN_O], st->sumsq[LIN_GATE],
                      st->sumsq[LIN_DOWN]};
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < 4; k++) /* (N, w) of layer l into (w) */
            st->be->col_sumsq_add(dst[k] + (size_t)l * width[k],
                                  src[k] + (size_t)l * cap * width[k], N, width[k]);
    st->tokens += N;
}

int channel_stats_to_host(struct channel_stats *st)
{
    if (st->be->host_memory)
        return 0;
    const struct backend *cpu = backend_cpu();
    double *host = cpu->alloc(st->n * sizeof(double));
    if (!host)
        return -1;
    st->be->download(host, st->mem, st->n * sizeof(double));
    for (int k = 0; k < LIN_COUNT; k++)
        st->sumsq[k] = host + (st->sumsq[k] - st->mem);
    st->be->free(st->mem);
    st->be = cpu;
    st->mem = host;
    return 0;
}

/* ---- ratios ---- */

/* sum over j < n of x_j |w_j| (x NULL: 1) */
static double row_sum(const float *w, const double *x, int n)
{
    double s = 0.0;
    if (x) {
        for (int j = 0; j < n; j++)
            s += x[j] * fabsf(w[j]);
    } else {
        for (int j = 0; j < n; j++)
            s += fabsf(w[j]);
    }
    return s;
}

/* #{j < n : x_j |w_j| > thr} (x NULL: 1) */
static long long row_count(const float *w, const double *x, int n, double thr)
{
    long long c = 0;
    if (x) {
        for (int j = 0; j < n; j++)
            c += x[j] * fabsf(w[j]) > thr;
    } else {
        for (int j = 0; j < n; j++)
            c += (double)fabsf(w[j]) > thr;
    }
    return c;
}

double outlier_ratio_pooled(const float *const *weights, const double *const *xnorm,
                            const int *rows, const int *cols, int n_linear, double tau)
{
    double sum = 0.0;
    long long numel = 0, count = 0;

    for (int k = 0; k < n_linear; k++) {
        const float *W = weights[k];
        const double *x = xnorm ? xnorm[k] : NULL;
        const long long R = rows[k], C = cols[k];
        double part[SUM_CHUNKS];
        numel += R * C;
#pragma omp parallel for schedule(dynamic) if (R * C >= PAR_MIN)
        for (int ch = 0; ch < SUM_CHUNKS; ch++) {
            double s = 0.0;
            for (long long r = ch * R / SUM_CHUNKS; r < (ch + 1) * R / SUM_CHUNKS; r++)
                s += row_sum(W + r * C, x, (int)C);
            part[ch] = s;
        }
        for (int ch = 0; ch < SUM_CHUNKS; ch++)
            sum += part[ch];
    }
    if (numel == 0)
        return 0.0;
    const double thr = tau * (sum / (double)numel);
    for (int k = 0; k < n_linear; k++) {
        const float *W = weights[k];
        const double *x = xnorm ? xnorm[k] : NULL;
        const long long R = rows[k], C = cols[k];
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : count) if (R * C >= PAR_MIN)
        for (long long r = 0; r < R; r++)
            count += row_count(W + r * C, x, (int)C, thr);
    }
    return 100.0 * (double)count / (double)numel;
}

int outlier_ratios(const struct model *m, const struct channel_stats *st,
                   double tau, double *ratios)
{
    const struct model_config *c = &m->cfg;
    const float *weights[LIN_COUNT];
    const double *xnorm[LIN_COUNT];
    int rows[LIN_COUNT], cols[LIN_COUNT];
    size_t off[LIN_COUNT], total = 0;
    double *norms = NULL;

    for (int k = 0; k < LIN_COUNT; k++) {
        off[k] = model_linear_offset(c, (enum linear_id)k, &rows[k], &cols[k]);
        total += (size_t)cols[k];
    }
    if (st) {
        norms = malloc(sizeof(double) * total);
        if (!norms)
            return -1;
    }
    for (int l = 0; l < c->n_layers; l++) {
        double *p = norms;
        const float *block = m->w.blocks[l];
        for (int k = 0; k < LIN_COUNT; k++) {
            weights[k] = block + off[k];
            xnorm[k] = p;
            if (st) {
                const double *s = st->sumsq[k] + (size_t)l * cols[k];
                for (int j = 0; j < cols[k]; j++)
                    p[j] = sqrt(s[j]);
                p += cols[k];
            }
        }
        ratios[l] = outlier_ratio_pooled(weights, st ? xnorm : NULL, rows, cols,
                                         LIN_COUNT, tau);
    }
    free(norms);
    return 0;
}

/* ---- cache ---- */

/* mkdir -p; 0 or -1 with errno set */
static int make_dirs(const char *dir)
{
    char buf[4096];
    struct stat sb;
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char keep = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = keep;
            if (!keep)
                break;
        }
    }
    if (stat(buf, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int outliers_cache_dir(char *dir, size_t len, char *err, size_t errlen)
{
    const char *own = getenv("OWLORE_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (own && *own)
        n = snprintf(dir, len, "%s", own);
    else if (xdg && *xdg)
        n = snprintf(dir, len, "%s/owlore", xdg);
    else if (home && *home)
        n = snprintf(dir, len, "%s/.cache/owlore", home);
    else {
        snprintf(err, errlen, "no cache folder: set OWLORE_CACHE_DIR, "
                 "XDG_CACHE_HOME or HOME");
        return -1;
    }
    if (n < 0 || (size_t)n >= len) {
        snprintf(err, errlen, "the cache folder path is too long");
        return -1;
    }
    return 0;
}

/* tau as the shortest decimal (%f, else %g) that reads back as the same
 * double: 13 -> "13", 0.5 -> "0.5" */
static void tau_text(double tau, char *buf, size_t len)
{
    for (int prec = 0; prec <= 17 && tau >= 1e-4 && tau < 1e15; prec++) {
        snprintf(buf, len, "%.*f", prec, tau);
        if (strtod(buf, NULL) == tau)
            return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, tau);
        if (strtod(buf, NULL) == tau)
            return;
    }
}

static int calib_digest(const int *tokens, int n_seqs, int seq_len,
                        unsigned char out[SHA256_BYTES])
{
    unsigned char buf[4096];
    struct sha256 h;
    size_t n = (size_t)n_seqs * seq_len, used = 0;
    const uint32_t head[2] = {(uint32_t)n_seqs, (uint32_t)seq_len};
    if (sha256_init(&h) != 0)
        return -1;
    for (size_t i = 0; i < n + 2; i++) {
        uint32_t v = i < 2 ? head[i] : (uint32_t)tokens[i - 2];
        for (int b = 0; b < 4; b++)
            buf[used++] = (unsigned char)(v >> (8 * b));
        if (used == sizeof buf || i + 1 == n + 2) {
            if (sha256_update(&h, buf, used) != 0) {
                sha256_abort(&h);
                return -1;
            }
            used = 0;
        }
    }
    return sha256_final(&h, out);
}

/* 1 and ratios filled when path holds a valid entry for this key, else 0 */
static int cache_read(const char *path, const struct outliers_info *info, double tau,
                      int L, double *ratios)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    int ok = 0;
    if (!root)
        return 0;
    const char *fmt = json_string_value(json_object_get(root, "format"));
    const char *md = json_string_value(json_object_get(root, "model_digest"));
    const char *cd = json_string_value(json_object_get(root, "calibration_digest"));
    json_t *t = json_object_get(root, "tau"), *arr = json_object_get(root, "outlier_ratio");
    if (fmt && strcmp(fmt, CACHE_FORMAT) == 0 && md && strcmp(md, info->model_digest) == 0 &&
        cd && strcmp(cd, info->calib_digest) == 0 && json_is_number(t) &&
        json_number_value(t) == tau && json_is_array(arr) && (int)json_array_size(arr) == L) {
        ok = 1;
        for (int l = 0; l < L && ok; l++) {
            json_t *v = json_array_get(arr, (size_t)l);
            double d = json_number_value(v);
            ok = json_is_number(v) && isfinite(d) && d >= 0.0;
        }
        for (int l = 0; l < L && ok; l++)
            ratios[l] = json_number_value(json_array_get(arr, (size_t)l));
    }
    json_decref(root);
    return ok;
}

/* the cache entry as JSON text (malloc), or NULL when out of memory */
static char *cache_text(const struct outliers_info *info, const struct outliers_options *o,
                        int L, const double *ratios)
{
    json_t *root = json_object(), *arr = json_array();
    char *text = NULL;
    if (root && arr) {
        for (int l = 0; l < L; l++)
            json_array_append_new(arr, json_real(ratios[l]));
        json_object_set_new(root, "format", json_string(CACHE_FORMAT));
        json_object_set_new(root, "model_digest", json_string(info->model_digest));
        json_object_set_new(root, "calibration_digest", json_string(info->calib_digest));
        json_object_set_new(root, "tau", json_real(o->tau));
        json_object_set_new(root, "n_layers", json_integer(L));
        json_object_set_new(root, "samples", json_integer(o->n_seqs));
        json_object_set_new(root, "seq_len", json_integer(o->seq_len));
        json_object_set(root, "outlier_ratio", arr);
        text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    }
    json_decref(arr);
    json_decref(root);
    return text;
}

/* write the entry atomically (temporary file + rename); 0, or -1 with a message */
static int cache_write(const char *path, const struct outliers_info *info,
                       const struct outliers_options *o, int L, const double *ratios,
                       char *err, size_t errlen)
{
    char tmp[4200];
    char *text = cache_text(info, o, L, ratios);
    if (!text) {
        snprintf(err, errlen, "%.400s: out of memory", path);
        return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(err, errlen, "%.400s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(text);
        return -1;
    }
    int bad = fputs(text, f) < 0 || fputc('\n', f) < 0 || fflush(f) != 0 ||
              fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    free(text);
    if (bad || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%.400s: cannot write: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- the pipeline ---- */

static int check_options(const struct model *m, const struct outliers_options *o,
                         char *err, size_t errlen)
{
    const struct model_config *c = &m->cfg;
    if (m->blocks16) {
        snprintf(err, errlen, "outlier calibration reads fp32 weights: it runs before the "
                 "blocks are stored in bf16");
        return -1;
    }
    if (!m->be->host_memory) {
        snprintf(err, errlen, "outlier calibration reads the weights in host memory: it "
                 "runs before the model moves to the %s backend (options.device)",
                 m->be->name);
        return -1;
    }
    if (!(o->tau > 0.0) || !isfinite(o->tau)) {
        snprintf(err, errlen, "outlier threshold tau = %g must be a positive number",
                 o->tau);
        return -1;
    }
    if (!o->tokens)
        return 0;
    if (o->n_seqs < 1 || o->seq_len < 1 || o->seq_len > c->max_seq_len) {
        snprintf(err, errlen, "calibration needs at least one sequence of 1 to %d "
                 "tokens (got %d sequences of %d)", c->max_seq_len, o->n_seqs,
                 o->seq_len);
        return -1;
    }
    if (o->batch < 0) {
        snprintf(err, errlen, "calibration batch %d must be >= 0", o->batch);
        return -1;
    }
    for (size_t i = 0; i < (size_t)o->n_seqs * o->seq_len; i++) {
        if (o->tokens[i] < 0 || o->tokens[i] >= c->vocab_size) {
            snprintf(err, errlen, "calibration token %zu (sequence %zu) is %d, outside "
                     "the vocabulary [0, %d)", i, i / (size_t)o->seq_len, o->tokens[i],
                     c->vocab_size);
            return -1;
        }
    }
    return 0;
}

/* statistics from forward passes over the calibration windows, then ratios;
 * the passes on a copy of the parameters on o->device when it has room */
static int calibrate(const struct model *m, const struct outliers_options *o,
                     double *ratios, struct outliers_info *info, char *err, size_t errlen)
{
    const struct model_config *c = &m->cfg;
    const int T = o->seq_len;
    int B = o->batch;
    struct channel_stats st;
    struct activations a;
    struct model copy;
    const struct model *fm = m; /* the forward passes' model */
    int rc = -1;

    if (o->device && o->device != m->be) {
        if (model_copy_to(&copy, m, o->device, info->device_note,
                          sizeof info->device_note) == 0)
            fm = &copy;
    }
    if (B == 0) {
        B = o->n_seqs < AUTO_BATCH_MAX ? o->n_seqs : AUTO_BATCH_MAX;
        while (B > 1 && model_activation_bytes(c, B, T, 0, 0) > AUTO_ACT_BYTES)
            B--;
    }
    B = B < o->n_seqs ? B : o->n_seqs;
    if (channel_stats_init(&st, c, fm->be) != 0) {
        snprintf(err, errlen, "out of %s memory for the outlier statistics", fm->be->name);
        goto out_model;
    }
    if (activations_init(&a, fm, B, T) != 0) {
        snprintf(err, errlen, "out of %s memory for calibration activations "
                 "(%d x %d tokens, %.1f GB)", fm->be->name, B, T,
                 model_activation_bytes(c, B, T, 0, 0) / 1e9);
        goto out_stats;
    }
    for (int s = 0; s < o->n_seqs; s += B) {
        int b = o->n_seqs - s < B ? o->n_seqs - s : B;
        model_forward(fm, &a, o->tokens + (size_t)s * T, b, T);
        channel_stats_add(&st, fm, &a, b, T);
    }
    info->calibrated_on = fm->be->name;
    if (fm->be->error(err, errlen))
        goto out;
    if (channel_stats_to_host(&st) != 0) {
        snprintf(err, errlen, "out of memory for the outlier statistics");
        goto out;
    }
    for (int k = 0; k < LIN_COUNT; k++) {
        int rows, cols;
        model_linear_offset(c, (enum linear_id)k, &rows, &cols);
        for (size_t i = 0; i < (size_t)c->n_layers * cols; i++) {
            if (!isfinite(st.sumsq[k][i])) {
                snprintf(err, errlen, "calibration: the input of %s in block %zu has "
                         "non-finite activations (channel %zu)",
                         model_linear_name((enum linear_id)k), i / (size_t)cols,
                         i % (size_t)cols);
                goto out;
            }
        }
    }
    if (outlier_ratios(m, &st, o->tau, ratios) != 0) {
        snprintf(err, errlen, "out of memory for the outlier ratios");
        goto out;
    }
    rc = 0;
out:
    activations_free(&a, fm);
out_stats:
    channel_stats_free(&st);
out_model:
    if (fm == &copy)
        model_free(&copy);
    return rc;
}

int outliers_compute(const struct model *m, const struct outliers_options *o,
                     double *ratios, struct outliers_info *info, char *err,
                     size_t errlen)
{
    const int L = m->cfg.n_layers;
    unsigned char d[SHA256_BYTES];
    char dir[3800], tau_buf[40], msg[512];
    int use_cache = o->tokens && !o->no_cache;

    memset(info, 0, sizeof *info);
    if (check_options(m, o, err, errlen) != 0)
        return -1;
    if (o->model_digest) {
        snprintf(info->model_digest, sizeof info->model_digest, "%s", o->model_digest);
    } else {
        if (sha256_model(m, d) != 0) {
            snprintf(err, errlen, "SHA-256 of the model parameters failed (OpenSSL)");
            return -1;
        }
        digest_hex(d, SHA256_BYTES, info->model_digest);
    }
    if (o->tokens) {
        if (calib_digest(o->tokens, o->n_seqs, o->seq_len, d) != 0) {
            snprintf(err, errlen, "SHA-256 of the calibration tokens failed (OpenSSL)");
            return -1;
        }
        digest_hex(d, SHA256_BYTES, info->calib_digest);
    }
    if (use_cache) {
        if (o->cache_dir)
            snprintf(dir, sizeof dir, "%s", o->cache_dir);
        else if (outliers_cache_dir(dir, sizeof dir, msg, sizeof msg) != 0)
            use_cache = 0;
        if (use_cache && make_dirs(dir) != 0) {
            snprintf(msg, sizeof msg, "%.400s: cannot create the cache folder: %s", dir,
                     strerror(errno));
            use_cache = 0;
        }
        if (!use_cache)
            snprintf(info->warning, sizeof info->warning, "outlier cache not used: %.460s", msg);
    }
    if (use_cache) {
        tau_text(o->tau, tau_buf, sizeof tau_buf);
        snprintf(info->cache_file, sizeof info->cache_file,
                 "%s/outliers-%.16s-%.16s-tau%s.json", dir, info->model_digest,
                 info->calib_digest, tau_buf);
        if (cache_read(info->cache_file, info, o->tau, L, ratios)) {
            info->cache_hit = 1;
            return 0;
        }
    }
    if (o->tokens) {
        if (calibrate(m, o, ratios, info, err, errlen) != 0)
            return -1;
    } else if (outlier_ratios(m, NULL, o->tau, ratios) != 0) {
        snprintf(err, errlen, "out of memory for the outlier ratios");
        return -1;
    }
    for (int l = 0; l < L; l++) {
        if (!isfinite(ratios[l])) {
            snprintf(err, errlen, "the outlier ratio of block %d is not finite "
                     "(non-finite weights?)", l);
            return -1;
        }
    }
    if (use_cache && cache_write(info->cache_file, info, o, L, ratios, msg, sizeof msg) != 0)
        snprintf(info->warning, sizeof info->warning, "outlier cache not written: %.460s", msg);
    return 0;
}
