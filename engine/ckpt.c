/*
 * ckpt.c: checkpoint directories (layout and crash safety in ckpt.h).
 *
 * Every file is written inside "<dir>.tmp" and fsynced; the directory is
 * fsynced, renamed into place and the parent fsynced. owlore.json is written
 * last inside the temporary directory and carries the sha256 of the other
 * files, so a reader can verify what it loads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "digest.h"
#include "load_hf.h"
#include "lora_ckpt.h"
#include "safetensors.h"

#define OPT_MAGIC "OWLOPT01"

/* Remove a directory and the plain files in it (a stale .tmp or old copy). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[4400];
    if (!d)
        return;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static int fsync_path(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Close f after flushing and fsyncing it; -1 on any failure. */
static int close_synced(FILE *f)
{
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

static int write_json(const char *path, json_t *j, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    int rc = f && json_dumpf(j, f, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 &&
             fputc('\n', f) != EOF ? 0 : -1;
    if (f && close_synced(f) != 0)
        rc = -1;
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    return rc;
}

static int copy_file(const char *src, const char *dst, char *err, size_t errlen)
{
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    char buf[65536];
    size_t n;
    int rc = in && out ? 0 : -1;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in && ferror(in))
        rc = -1;
    if (in)
        fclose(in);
    if (out && close_synced(out) != 0)
        rc = -1;
    if (rc != 0)
        snprintf(err, errlen, "copying %s to %s: %s", src, dst, strerror(errno ? errno : EIO));
    return rc;
}

/* Copy the base model's tokenizer file into checkpoint directory dir: a
 * Hugging Face tokenizer.json (with the tokenizer_config.json beside it,
 * which holds the chat template) or a llama2.c tokenizer as tokenizer.bin. */
static int copy_tokenizer(const char *src, const char *dir, char *err, size_t errlen)
{
    char dst[4400], cfg[4200];
    size_t n = strlen(src);
    if (n >= 5 && strcmp(src + n - 5, ".json") == 0) {
        snprintf(dst, sizeof dst, "%s/tokenizer.json", dir);
        if (copy_file(src, dst, err, errlen) != 0)
            return -1;
        snprintf(cfg, sizeof cfg, "%s", src);
        char *slash = strrchr(cfg, '/');
        snprintf(slash ? slash + 1 : cfg, sizeof cfg - (size_t)(slash ? slash + 1 - cfg : 0),
                 "tokenizer_config.json");
        snprintf(dst, sizeof dst, "%s/tokenizer_config.json", dir);
        return access(cfg, R_OK) == 0 ? copy_file(cfg, dst, err, errlen) : 0;
    }
    snprintf(dst, sizeof dst, "%s/tokenizer.bin", dir);
    return copy_file(src, dst, err, errlen);
}

static json_t *config_json(const struct model_config *c)
{
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(j, "model_type", json_string("llama"));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->max_seq_len));
    json_object_set_new(j, "rms_norm_eps", json_real(c->norm_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tied_embeddings));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "attention_bias", json_false());
    json_object_set_new(j, "mlp_bias", json_false());
    json_object_set_new(j, "torch_dtype", json_string("float32"));
    json_object_set_new(j, "bos_token_id", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    json_object_set_new(j, "eos_token_id", c->eos_id >= 0 ? json_integer(c->eos_id) : json_null());
    return j;
}

static json_t *recipe_json(const struct recipe *r)
{
    static const char *policies[] = {"reset", "keep"};
    static const char *schedules[] = {"linear", "cosine", "constant"};
    json_t *j = json_object(), *fixed = json_array();
    for (int i = 0; i < r->n_fixed; i++)
        json_array_append_new(fixed, json_integer(r->fixed_blocks[i]));
    json_object_set_new(j, "method", json_string(method_name(r->method)));
    json_object_set_new(j, "sampling", json_string(sampling_name(r->sampling)));
    json_object_set_new(j, "gamma", json_integer(r->gamma));
    json_object_set_new(j, "sampling_interval", json_integer(r->interval));
    json_object_set_new(j, "tau", json_real(r->tau));
    json_object_set_new(j, "fixed_blocks", fixed);
    json_object_set_new(j, "state_policy", json_string(policies[r->state_policy]));
    json_object_set_new(j, "freeze_embeddings", json_boolean(r->freeze_embeddings));
    json_object_set_new(j, "rank", json_integer(r->galore.rank));
    json_object_set_new(j, "update_proj_gap", json_integer(r->galore.update_proj_gap));
    json_object_set_new(j, "galore_scale", json_real(r->galore.scale));
    json_object_set_new(j, "svd", json_string(r->galore.svd_method ? "randomized" : "exact"));
    json_object_set_new(j, "beta1", json_real(r->adamw.beta1));
    json_object_set_new(j, "beta2", json_real(r->adamw.beta2));
    json_object_set_new(j, "eps", json_real(r->adamw.eps));
    json_object_set_new(j, "weight_decay", json_real(r->adamw.weight_decay));
    json_object_set_new(j, "learning_rate", json_real(r->lr));
    json_object_set_new(j, "lr_schedule", json_string(schedules[r->schedule]));
    json_object_set_new(j, "warmup_steps", json_integer(r->warmup_steps));
    json_object_set_new(j, "max_grad_norm", json_real(r->max_grad_norm));
    json_object_set_new(j, "batch_size", json_integer(r->batch_size));
    json_object_set_new(j, "grad_accum", json_integer(r->grad_accum));
    json_object_set_new(j, "sequence_length", json_integer(r->seq_len));
    json_object_set_new(j, "max_steps", json_integer(r->max_steps));
    json_object_set_new(j, "n_epochs", json_integer(r->epochs));
    json_object_set_new(j, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(j, "stagger_refreshes", json_boolean(r->stagger_refreshes));
    json_object_set_new(j, "bf16_weights", json_boolean(r->bf16_weights));
    json_object_set_new(j, "bf16_activations", json_boolean(r->bf16_activations));
    if (r->method == METHOD_LORA) {
        json_object_set_new(j, "lora_rank", json_integer(r->lora.rank));
        json_object_set_new(j, "lora_alpha", json_real(r->lora.alpha));
        json_object_set_new(j, "lora_dropout", json_real(r->lora.dropout));
        json_object_set_new(j, "lora_merge", json_boolean(r->lora.merge));
    }
    return j;
}

/* n floats of backend memory to f / from f, through a host buffer when the
 * backend's memory is not the host's; 0 or -1 */
static int write_floats(FILE *f, const struct backend *be, const float *p, size_t n)
{
    if (be->host_memory || n == 0)
        return fwrite(p, 4, n, f) == n ? 0 : -1;
    float *h = malloc(n * sizeof(float));
    int rc = h ? 0 : -1;
    if (h) {
        be->download(h, p, n * sizeof(float));
        rc = fwrite(h, 4, n, f) == n ? 0 : -1;
    }
    free(h);
    return rc;
}

static int read_floats(FILE *f, const struct backend *be, float *p, size_t n)
{
    if (be->host_memory || n == 0)
        return n == 0 || fread(p, 4, n, f) == n ? 0 : -1;
    float *h = malloc(n * sizeof(float));
    int rc = h && fread(h, 4, n, f) == n ? 0 : -1;
    if (rc == 0)
        be->upload(p, h, n * sizeof(float));
    free(h);
    return rc;
}

static int write_state(const char *path, const struct model *m,
                       const struct trainer_state *ts, char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    const int L = m->cfg.n_layers, n = model_tensor_count(&m->cfg);
    int ok = f != NULL;
    int64_t step = ts->step, pos = ts->data_pos;
    int32_t epoch = ts->epoch, n_active = ts->n_active;
    uint32_t nt = (uint32_t)n;
    uint64_t srng = ts->sampler_rng, lrng = ts->linalg_rng;
    ok = ok && fwrite(OPT_MAGIC, 8, 1, f) == 1 && fwrite(&nt, 4, 1, f) == 1 &&
         fwrite(&step, 8, 1, f) == 1 && fwrite(&epoch, 4, 1, f) == 1 &&
         fwrite(&pos, 8, 1, f) == 1 && fwrite(&srng, 8, 1, f) == 1 &&
         fwrite(&lrng, 8, 1, f) == 1 && fwrite(&n_active, 4, 1, f) == 1;
    for (int i = 0; ok && i < ts->n_active; i++) {
        int32_t a = ts->active[i];
        ok = fwrite(&a, 4, 1, f) == 1;
    }
    for (int l = 0; ok && l < L; l++) {
        int64_t c = ts->block_counts[l];
        ok = fwrite(&c, 8, 1, f) == 1;
    }
    for (int i = 0; ok && i < n; i++) {
        const struct optim_state *s = &ts->states[i];
        uint8_t present = s->mem != NULL;
        ok = fwrite(&present, 1, 1, f) == 1;
        if (!ok || !present)
            continue;
        int32_t hdr[4] = {s->rows, s->cols, s->rank, s->side};
        int64_t counters[2] = {s->step, s->refreshes};
        size_t nm, np;
        optim_state_sizes(s, &nm, &np);
        ok = fwrite(hdr, 4, 4, f) == 4 && fwrite(counters, 8, 2, f) == 2 &&
             write_floats(f, m->be, s->m, nm) == 0 &&
             write_floats(f, m->be, s->v, nm) == 0 &&
             (np == 0 || write_floats(f, m->be, s->proj, np) == 0);
    }
    if (f && close_synced(f) != 0)
        ok = 0;
    if (!ok)
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    return ok ? 0 : -1;
}

static json_t *file_entry(const char *path, char *err, size_t errlen)
{
    unsigned char d[SHA256_BYTES];
    char hex[SHA256_HEX_LEN];
    struct stat st;
    if (sha256_file(path, d, err, errlen) != 0 || stat(path, &st) != 0)
        return NULL;
    digest_hex(d, SHA256_BYTES, hex);
    return json_pack("{s:s, s:I}", "sha256", hex, "bytes", (json_int_t)st.st_size);
}

static int write_weights(const char *path, const struct model *m, char *err, size_t errlen)
{
    const struct model_config *c = &m->cfg;
    int n = model_tensor_count(c);
    struct st_write_tensor *t = calloc((size_t)n, sizeof *t);
    struct named_tensor *nt = calloc((size_t)n, sizeof *nt);
    struct st_kv meta = {"format", "pt"};
    int rc = -1;
    /* parameters in device memory are written from a host copy of their
     * allocation; bf16 ones (model_bf16.c) as BF16 tensors, unchanged */
    char *host = m->be->host_memory ? NULL : malloc(m->mem_bytes);
    if (host)
        m->be->download(host, m->mem, m->mem_bytes);
    const char *base = host ? host : (const char *)m->mem;
#define HOSTED(p) ((const void *)(base + ((const char *)(p) - (const char *)m->mem)))
    if (t && nt && (m->be->host_memory || host)) {
        for (int i = 0; i < n; i++) {
            model_tensor_at(c, &m->w, i, &nt[i]);
            t[i].name = nt[i].name;
            t[i].ndim = nt[i].cols ? 2 : 1;
            t[i].shape[0] = nt[i].rows;
            t[i].shape[1] = nt[i].cols;
            if (m->blocks16 && i >= 1 && i <= 9 * c->n_layers) {
                size_t l = (size_t)(i - 1) / 9;
                t[i].dtype = ST_BF16;
                t[i].bf16 = HOSTED(m->blocks16 + l * model_block_floats(c) +
                                   model_piece_offset(c, (i - 1) % 9));
            } else if (m->embed16 && i != 1 + 9 * c->n_layers) { /* embed, head */
                t[i].dtype = ST_BF16;
                t[i].bf16 = HOSTED(i == 0 ? m->embed16 : m->head16);
            } else {
                t[i].data = HOSTED(nt[i].data);
                t[i].dtype = ST_F32;
            }
        }
        rc = st_write(path, t, n, &meta, 1, err, errlen);
    } else {
        snprintf(err, errlen, "%s: out of memory", path);
    }
#undef HOSTED
    free(host);
    free(t);
    free(nt);
    return rc;
}

int ckpt_write(const char *dir, const struct model *m, const struct recipe *r,
               const struct trainer_state *ts, const struct ckpt_meta *meta,
               char *err, size_t errlen)
{
    char tmp[4200], p[4400], old[4200], parent[4200];
    json_t *info = NULL, *files = NULL;
    int rc = -1;

    snprintf(tmp, sizeof tmp, "%s.tmp", dir);
    remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    files = json_object();
    json_t *e;
    if (!meta->lora || meta->lora_merged) {
        snprintf(p, sizeof p, "%s/model.safetensors", tmp);
        if (write_weights(p, m, err, errlen) != 0 || !(e = file_entry(p, err, errlen)))
            goto out;
        json_object_set_new(files, "model.safetensors", e);
    }
    if (meta->lora && !meta->lora_merged) {
        static const char *const adapter_files[] = {"adapter_model.safetensors",
                                                    "adapter_config.json",
                                                    "adapter_optimizer.safetensors"};
        if (lora_ckpt_write(tmp, meta->lora, meta->base_model_id, err, errlen) != 0 ||
            lora_ckpt_write_state(tmp, meta->lora, err, errlen) != 0)
            goto out;
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s/%s", tmp, adapter_files[i]);
            if (fsync_path(p, 0) != 0 || !(e = file_entry(p, err, errlen)))
                goto out;
            json_object_set_new(files, adapter_files[i], e);
        }
    }
    snprintf(p, sizeof p, "%s/optimizer.bin", tmp);
    if (write_state(p, m, ts, err, errlen) != 0 || !(e = file_entry(p, err, errlen)))
        goto out;
    json_object_set_new(files, "optimizer.bin", e);
    snprintf(p, sizeof p, "%s/config.json", tmp);
    json_t *cfg = config_json(&m->cfg);
    rc = write_json(p, cfg, err, errlen);
    json_decref(cfg);
    if (rc != 0)
        goto out;
    rc = -1;
    if (meta->tokenizer_path && copy_tokenizer(meta->tokenizer_path, tmp, err, errlen) != 0)
        goto out;
    json_t *ratios = json_array(), *blocks = json_array();
    for (int l = 0; meta->outlier_ratios && l < m->cfg.n_layers; l++)
        json_array_append_new(ratios, json_real(meta->outlier_ratios[l]));
    for (int l = 0; l < m->cfg.n_layers; l++)
        json_array_append_new(blocks, json_integer(ts->block_counts[l]));
    info = json_object();
    json_object_set_new(info, "format", json_integer(1));
    json_object_set_new(info, "step", json_integer(ts->step));
    json_object_set_new(info, "total_steps", json_integer(meta->total_steps));
    json_object_set_new(info, "epoch", json_integer(ts->epoch));
    json_object_set_new(info, "recipe", recipe_json(r));
    json_object_set_new(info, "base_model", json_string(meta->base_model_id ? meta->base_model_id : ""));
    json_object_set_new(info, "base_model_digest", json_string(meta->base_model_digest));
    json_object_set_new(info, "metrics", json_pack("{s:o, s:o}",
        "train_loss", isfinite(meta->loss) ? json_real(meta->loss) : json_null(),
        "val_loss", isfinite(meta->val_loss) ? json_real(meta->val_loss) : json_null()));
    json_object_set_new(info, "outlier_ratios", meta->outlier_ratios ? ratios : json_null());
    if (!meta->outlier_ratios)
        json_decref(ratios);
    json_object_set_new(info, "tau", json_real(meta->tau));
    json_object_set_new(info, "block_train_steps", blocks);
    json_object_set_new(info, "files", files);
    files = NULL;
    snprintf(p, sizeof p, "%s/owlore.json", tmp);
    if (write_json(p, info, err, errlen) != 0 || fsync_path(tmp, 1) != 0)
        goto out;
    /* replace an existing checkpoint of the same step (after a resume) */
    snprintf(old, sizeof old, "%s.old", dir);
    remove_tree(old);
    if (rename(dir, old) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (rename(tmp, dir) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    remove_tree(old);
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = 0;
    fsync_path(slash ? parent : ".", 1);
    rc = 0;
out:
    json_decref(info);
    json_decref(files);
    if (rc != 0) {
        int cause = errno; /* the caller tells a full disk (ENOSPC) apart */
        remove_tree(tmp);
        errno = cause;
    }
    return rc;
}

static int read_exact(FILE *f, void *p, size_t size, size_t n)
{
    return n == 0 || fread(p, size, n, f) == n ? 0 : -1;
}

int ckpt_check_resume(const char *dir, const struct model_config *c,
                      const struct recipe *r, const char *base_model_digest,
                      char *err, size_t errlen)
{
    char p[4400], why[512];
    json_error_t je;
    struct stat st;
    struct model_config ck;

    snprintf(p, sizeof p, "%s/owlore.json", dir);
    if (stat(p, &st) != 0) {
        snprintf(err, errlen, "%s: not an owlore checkpoint (no owlore.json)", dir);
        return -1;
    }
    json_t *info = json_load_file(p, 0, &je);
    if (!info) {
        snprintf(err, errlen, "%s: damaged checkpoint: %s (line %d)", p, je.text, je.line);
        return -1;
    }
    const char *digest = json_string_value(json_object_get(info, "base_model_digest"));
    const char *base = json_string_value(json_object_get(info, "base_model"));
    const char *method = json_string_value(
        json_object_get(json_object_get(info, "recipe"), "method"));
    int rc = -1;
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (hf_config_parse(p, &ck, why, sizeof why) != 0)
        snprintf(err, errlen, "%s: damaged checkpoint: %s", dir, why);
    else if (ck.dim != c->dim || ck.hidden_dim != c->hidden_dim ||
             ck.n_layers != c->n_layers || ck.n_heads != c->n_heads ||
             ck.n_kv_heads != c->n_kv_heads || ck.head_dim != c->head_dim ||
             ck.vocab_size != c->vocab_size || ck.tied_embeddings != c->tied_embeddings)
        snprintf(err, errlen, "%s: the checkpoint is of a model with another shape "
                 "(%d layers of width %d, vocabulary %d; this model: %d, %d, %d)", dir,
                 ck.n_layers, ck.dim, ck.vocab_size, c->n_layers, c->dim, c->vocab_size);
    else if (!digest || strcmp(digest, base_model_digest) != 0)
        snprintf(err, errlen, "%s: the checkpoint was trained from another base model "
                 "(%s, digest %.12s...), not this one (digest %.12s...)", dir,
                 base ? base : "?", digest ? digest : "none", base_model_digest);
    else if (!method || strcmp(method, method_name(r->method)) != 0)
        snprintf(err, errlen, "%s: the checkpoint was trained with method %s, not %s",
                 dir, method ? method : "?", method_name(r->method));
    else
        rc = 0;
    json_decref(info);
    return rc;
}

int ckpt_read_state(const char *dir, const struct model *m, const struct recipe *r,
                    const char *base_model_digest, struct trainer_state *ts,
                    char *err, size_t errlen)
{
    char p[4400];
    const int L = m->cfg.n_layers, n = model_tensor_count(&m->cfg);

    if (ckpt_check_resume(dir, &m->cfg, r, base_model_digest, err, errlen) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/optimizer.bin", dir);
    FILE *f = fopen(p, "rb");
    char magic[8];
    uint32_t nt;
    int64_t step, pos;
    int32_t epoch, n_active;
    uint64_t srng, lrng;
    if (!f) {
        snprintf(err, errlen, "%s: %s", p, strerror(errno));
        return -1;
    }
    int ok = read_exact(f, magic, 8, 1) == 0 && memcmp(magic, OPT_MAGIC, 8) == 0 &&
             read_exact(f, &nt, 4, 1) == 0 && nt == (uint32_t)n &&
             read_exact(f, &step, 8, 1) == 0 && read_exact(f, &epoch, 4, 1) == 0 &&
             read_exact(f, &pos, 8, 1) == 0 && read_exact(f, &srng, 8, 1) == 0 &&
             read_exact(f, &lrng, 8, 1) == 0 && read_exact(f, &n_active, 4, 1) == 0 &&
             n_active >= 0 && n_active <= L;
    for (int i = 0; ok && i < n_active; i++) {
        int32_t a;
        ok = read_exact(f, &a, 4, 1) == 0 && a >= 0 && a < L;
        if (ok)
            ts->active[i] = a;
    }
    for (int l = 0; ok && l < L; l++) {
        int64_t c;
        ok = read_exact(f, &c, 8, 1) == 0;
        ts->block_counts[l] = (long)c;
    }
    for (int i = 0; ok && i < n; i++) {
        uint8_t present;
        struct named_tensor w;
        ok = read_exact(f, &present, 1, 1) == 0;
        if (!ok || !present)
            continue;
        int32_t hdr[4];
        int64_t counters[2];
        model_tensor_at(&m->cfg, &m->w, i, &w);
        ok = read_exact(f, hdr, 4, 4) == 0 && read_exact(f, counters, 8, 2) == 0 &&
             hdr[0] == w.rows && hdr[1] == w.cols &&
             optim_state_init(&ts->states[i], m->be, w.rows, w.cols, hdr[2]) == 0 &&
             ts->states[i].rank == hdr[2] && ts->states[i].side == hdr[3];
        if (!ok)
            break;
        struct optim_state *s = &ts->states[i];
        size_t nm, np;
        optim_state_sizes(s, &nm, &np);
        s->step = (long)counters[0];
        s->refreshes = (long)counters[1];
        ok = read_floats(f, m->be, s->m, nm) == 0 && read_floats(f, m->be, s->v, nm) == 0 &&
             read_floats(f, m->be, s->proj, np) == 0;
    }
    ok = ok && fgetc(f) == EOF;
    fclose(f);
    if (!ok) {
        snprintf(err, errlen, "%s: damaged or from another model or version (HINT: "
                 "start a new run from the checkpoint's model.safetensors)", p);
        return -1;
    }
    ts->step = (long)step;
    ts->epoch = epoch;
    ts->data_pos = (long)pos;
    ts->sampler_rng = srng;
    ts->linalg_rng = lrng;
    ts->n_active = n_active;
    return 0;
}
