/*
 * lora_ckpt.c: writing LoRA adapters as PEFT files and merging PEFT adapter
 * directories into a model (see lora_ckpt.h for the layout).
 *
 * Merging reads adapter_config.json for r and lora_alpha (use_rslora gives
 * alpha / sqrt(r)), then for every block and linear layer looks the pair
 * lora_A/lora_B up under PEFT's name, with or without a ".default" adapter
 * name, and adds s B A through the backend's matmul. Missing pairs are
 * layers the adapter does not target. The optimizer state file is ours
 * (exact resume), beside PEFT's two. Files are read and written through
 * host buffers when the backend's memory is not the host's.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora_ckpt.h"
#include "safetensors.h"

/* n floats of backend memory p readable on the host: p itself, or a
 * downloaded copy (*owned, to free) when the backend's memory is not the
 * host's. NULL when out of memory. */
static const float *host_floats(const struct backend *be, const float *p, size_t n,
                                float **owned)
{
    *owned = NULL;
    if (be->host_memory)
        return p;
    if ((*owned = malloc(sizeof(float) * (n ? n : 1))))
        be->download(*owned, p, sizeof(float) * n);
    return *owned;
}

/* Tensor t of f (n floats) into backend memory dst. */
static int read_floats(const struct backend *be, const struct st_file *f,
                       const struct st_tensor *t, float *dst, size_t n, char *err,
                       size_t errlen)
{
    if (be->host_memory)
        return st_read_f32(f, t, dst, n, err, errlen);
    float *h = malloc(sizeof(float) * (n ? n : 1));
    int rc = h ? st_read_f32(f, t, h, n, err, errlen) : -1;
    if (!h)
        snprintf(err, errlen, "out of memory reading %s", t->name);
    else if (rc == 0)
        be->upload(dst, h, sizeof(float) * n);
    free(h);
    return rc;
}

int lora_ckpt_write(const char *dir, const struct lora *lo, const char *base_model_id,
                    char *err, size_t errlen)
{
    char path[4400];
    const int n = 2 * lo->n;
    struct st_write_tensor *t = calloc((size_t)n, sizeof *t);
    char (*names)[128] = calloc((size_t)n, sizeof *names);
    struct st_kv meta = {"format", "pt"};
    float *owned;
    const float *mem = host_floats(lo->be, lo->mem, lo->n_floats, &owned);
    int rc = -1;
    if (!t || !names || !mem) {
        snprintf(err, errlen, "out of memory for the adapter's tensor list");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int rows, cols;
        lora_tensor_name(lo, i / 2, i % 2, names[i], sizeof names[i], &rows, &cols);
        const float *dev = i % 2 ? lo->B[i / 2] : lo->A[i / 2];
        t[i] = (struct st_write_tensor){.name = names[i], .ndim = 2,
                                        .shape = {rows, cols}, .data = mem + (dev - lo->mem),
                                        .dtype = ST_F32};
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (st_write(path, t, n, &meta, 1, err, errlen) != 0)
        goto out;
    json_t *targets = json_array();
    for (int id = 0; id < LIN_COUNT; id++)
        json_array_append_new(targets, json_string(model_linear_name((enum linear_id)id)));
    json_t *cfg = json_pack(
        "{s:s, s:s, s:s?, s:i, s:f, s:f, s:o, s:s, s:b, s:b, s:b, s:n, s:b}",
        "peft_type", "LORA", "task_type", "CAUSAL_LM",
        "base_model_name_or_path", base_model_id, "r", lo->rank,
        "lora_alpha", (double)(lo->scale * (float)lo->rank), "lora_dropout",
        (double)lo->dropout, "target_modules", targets, "bias", "none",
        "fan_in_fan_out", 0, "inference_mode", 1, "use_rslora", 0,
        "modules_to_save", "init_lora_weights", 1);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = cfg ? fopen(path, "w") : NULL;
    rc = f && json_dumpf(cfg, f, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
         fputc('\n', f) != EOF ? 0 : -1;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        snprintf(err, errlen, "%s: cannot write", path);
    json_decref(cfg);
out:
    free(owned);
    free(t);
    free(names);
    return rc;
}

int lora_ckpt_write_state(const char *dir, const struct lora *lo, char *err, size_t errlen)
{
    char path[4400], step[32];
    const int n = 2 * lo->n;
    const long steps = lo->states[0].mem ? lo->states[0].step : 0;
    struct st_write_tensor *t = calloc((size_t)(2 * n), sizeof *t);
    char (*names)[144] = calloc((size_t)(2 * n), sizeof *names);
    float **owned = calloc((size_t)(2 * n), sizeof *owned);
    int rc = -1, k = 0;
    if (!t || !names || !owned) {
        snprintf(err, errlen, "out of memory for the adapter optimizer state");
        goto out;
    }
    for (int i = 0; i < n && steps > 0; i++) {
        const struct optim_state *s = &lo->states[i];
        char base[128];
        int rows, cols;
        lora_tensor_name(lo, i / 2, i % 2, base, sizeof base, &rows, &cols);
        if (!s->mem || s->step != steps) {
            snprintf(err, errlen, "%s: optimizer state at step %ld, not %ld", base,
                     s->mem ? s->step : 0, steps);
            goto out;
        }
        for (int which = 0; which < 2; which++, k++) {
            const float *data = host_floats(lo->be, which ? s->v : s->m,
                                            (size_t)rows * cols, &owned[k]);
            if (!data) {
                snprintf(err, errlen, "out of memory for the adapter optimizer state");
                goto out;
            }
            snprintf(names[k], sizeof names[k], "%s.%s", base, which ? "exp_avg_sq" : "exp_avg");
            t[k] = (struct st_write_tensor){.name = names[k], .ndim = 2, .shape = {rows, cols},
                                            .data = data, .dtype = ST_F32};
        }
    }
    snprintf(step, sizeof step, "%ld", steps);
    struct st_kv meta[2] = {{"format", "pt"}, {"step", step}};
    snprintf(path, sizeof path, "%s/adapter_optimizer.safetensors", dir);
    rc = st_write(path, t, k, meta, 2, err, errlen);
out:
    for (int i = 0; owned && i < 2 * n; i++)
        free(owned[i]);
    free(owned);
    free(t);
    free(names);
    return rc;
}

int lora_ckpt_read(const char *dir, struct lora *lo, char *err, size_t errlen)
{
    char path[4400], name[160];
    struct st_file *w, *o = NULL;
    int rc = -1;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (!(w = st_open(path, err, errlen)))
        return -1;
    snprintf(path, sizeof path, "%s/adapter_optimizer.safetensors", dir);
    if (!(o = st_open(path, err, errlen)))
        goto out;
    const char *step_s = st_metadata(o, "step");
    char *end;
    long steps = step_s ? strtol(step_s, &end, 10) : -1;
    if (!step_s || *end || steps < 0) {
        snprintf(err, errlen, "%s: no step count in its metadata", path);
        goto out;
    }
    for (int i = 0; i < 2 * lo->n; i++) {
        int rows, cols;
        lora_tensor_name(lo, i / 2, i % 2, name, sizeof name, &rows, &cols);
        const struct st_tensor *t = st_find(w, name);
        const size_t numel = (size_t)rows * cols;
        if (!t || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols) {
            snprintf(err, errlen, "%s/adapter_model.safetensors: %s missing or not (%d, %d) "
                     "(another rank or model?)", dir, name, rows, cols);
            goto out;
        }
        if (read_floats(lo->be, w, t, i % 2 ? lo->B[i / 2] : lo->A[i / 2], numel, err,
                        errlen) != 0)
            goto out;
        struct optim_state *s = &lo->states[i];
        optim_state_free(s);
        if (steps == 0)
            continue;
        if (optim_state_init(s, lo->be, rows, cols, 0) != 0) {
            snprintf(err, errlen, "out of memory for the adapter optimizer state");
            goto out;
        }
        s->step = steps;
        for (int which = 0; which < 2; which++) {
            char mn[176];
            snprintf(mn, sizeof mn, "%s.%s", name, which ? "exp_avg_sq" : "exp_avg");
            const struct st_tensor *mt = st_find(o, mn);
            if (!mt || mt->numel != numel) {
                snprintf(err, errlen, "%s: %s missing or of another size", path, mn);
                goto out;
            }
            if (read_floats(lo->be, o, mt, which ? s->v : s->m, numel, err, errlen) != 0)
                goto out;
        }
    }
    rc = 0;
out:
    st_close(w);
    st_close(o);
    return rc;
}

/* The scale alpha / r (or alpha / sqrt(r)) from dir/adapter_config.json. */
static int adapter_scale(const char *dir, float *scale, char *err, size_t errlen)
{
    char path[4400];
    json_error_t je;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *c = json_load_file(path, 0, &je);
    if (!c) {
        snprintf(err, errlen, "%s: %s", path, je.text);
        return -1;
    }
    json_t *r = json_object_get(c, "r"), *a = json_object_get(c, "lora_alpha");
    int rslora = json_is_true(json_object_get(c, "use_rslora"));
    const char *type = json_string_value(json_object_get(c, "peft_type"));
    int ok = type && strcmp(type, "LORA") == 0 && json_is_integer(r) &&
             json_integer_value(r) > 0 && json_is_number(a);
    if (ok) {
        double rank = (double)json_integer_value(r);
        *scale = (float)(json_number_value(a) / (rslora ? sqrt(rank) : rank));
    } else {
        snprintf(err, errlen, "%s: not a LoRA adapter config (peft_type LORA, r, "
                 "lora_alpha)", path);
    }
    json_decref(c);
    return ok ? 0 : -1;
}

/* Tensor `base` + ".lora_X.weight" or ".lora_X.default.weight". */
static const struct st_tensor *find_pair(const struct st_file *f, const char *base,
                                         char which)
{
    char name[256];
    snprintf(name, sizeof name, "%s.lora_%c.weight", base, which);
    const struct st_tensor *t = st_find(f, name);
    if (!t) {
        snprintf(name, sizeof name, "%s.lora_%c.default.weight", base, which);
        t = st_find(f, name);
    }
    return t;
}

int lora_ckpt_merge(const char *dir, struct model *m, char *err, size_t errlen)
{
    char path[4400];
    float scale;
    int merged = 0, rc = -1;
    float *a = NULL, *b = NULL;    /* lora_A, lora_B in the backend's memory */
    const struct backend *be = m->be;
    if (adapter_scale(dir, &scale, err, errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    struct st_file *f = st_open(path, err, errlen);
    if (!f)
        return -1;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int id = 0; id < LIN_COUNT; id++) {
            char base[160];
            int out, in;
            size_t off = model_linear_offset(&m->cfg, (enum linear_id)id, &out, &in);
            snprintf(base, sizeof base, "base_model.model.model.layers.%d.%s.%s", l,
                     id <= LIN_O ? "self_attn" : "mlp",
                     model_linear_name((enum linear_id)id));
            const struct st_tensor *ta = find_pair(f, base, 'A'), *tb = find_pair(f, base, 'B');
            if (!ta && !tb)
                continue;
            if (!ta || !tb || ta->ndim != 2 || tb->ndim != 2 || ta->shape[1] != in ||
                tb->shape[0] != out || tb->shape[1] != ta->shape[0]) {
                snprintf(err, errlen, "%s: %s: lora_A/lora_B missing or not shaped (r, %d) "
                         "and (%d, r)", path, base, in, out);
                goto out;
            }
            int r = (int)ta->shape[0];
            if (a)
                be->free(a);
            if (b)
                be->free(b);
            a = be->alloc(sizeof(float) * (size_t)r * in);
            b = be->alloc(sizeof(float) * (size_t)out * r);
            if (!a || !b) {
                snprintf(err, errlen, "out of memory reading %s", path);
                goto out;
            }
            if (read_floats(be, f, ta, a, (size_t)r * in, err, errlen) != 0 ||
                read_floats(be, f, tb, b, (size_t)out * r, err, errlen) != 0)
                goto out;
            /* W (out,in) += s * B (out,r) . A (r,in) */
            be->matmul(0, 0, out, in, r, scale, b, r, a, in, 1.0f, m->w.blocks[l] + off, in);
            merged++;
        }
    if (merged == 0) {
        snprintf(err, errlen, "%s: no LoRA pair for any linear layer of the model", path);
        goto out;
    }
    rc = 0;
out:
    if (a)
        be->free(a);
    if (b)
        be->free(b);
    st_close(f);
    return rc;
}
