/*
 * load_hf.c: Hugging Face config.json parsing and checkpoint directory loading
 * (single model.safetensors or shards listed by model.safetensors.index.json).
 *
 * Loading walks the model's own tensor list (model_tensor_at: HF names,
 * [rows, cols] shapes), finds each tensor in its file, checks the shape
 * exactly and converts it to fp32 straight into the parameter memory. Every
 * tensor found in a file or in the index must be one of those (or a
 * rotary_emb.inv_freq buffer, which is ignored).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "load_hf.h"
#include "safetensors.h"

/* ---- config.json ---- */

/* An integer field in [0, INT_MAX]; absent or null gives dflt, or an error
 * when dflt < 0 (the field is required). */
static int cfg_int(const char *path, json_t *root, const char *key, int dflt,
                   int *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (dflt < 0) {
            snprintf(err, errlen, "%s: %s is missing", path, key);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT_MAX) {
        snprintf(err, errlen, "%s: %s must be an integer in [0, %d]", path, key,
                 INT_MAX);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int cfg_num(const char *path, json_t *root, const char *key, double dflt,
                   float *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = (float)dflt;
        return 0;
    }
    if (!json_is_number(v)) {
        snprintf(err, errlen, "%s: %s must be a number", path, key);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

/* bos/eos: an int, a list of ints (the first counts), or null/absent (-1). */
static int cfg_token(const char *path, json_t *root, const char *key, int *out,
                     char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    if (json_is_array(v))
        v = json_array_get(v, 0);
    if (!v || json_is_null(v)) {
        *out = -1;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > INT_MAX) {
        snprintf(err, errlen, "%s: %s must be a token id, a list of them, or null",
                 path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

/* A rope_scaling / rope_parameters object must describe plain RoPE. */
static int cfg_rope_plain(const char *path, json_t *root, const char *key,
                          char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    json_t *type = json_object_get(v, "rope_type");
    if (!type)
        type = json_object_get(v, "type");
    if (!json_is_string(type)) {
        snprintf(err, errlen, "%s: %s must be null or an object with a string "
                 "rope_type", path, key);
        return -1;
    }
    if (strcmp(json_string_value(type), "default") != 0) {
        snprintf(err, errlen, "%s: %s of type \"%s\" is not supported (plain RoPE "
                 "only)", path, key, json_string_value(type));
        return -1;
    }
    return 0;
}

static int parse_config(const char *path, json_t *root, struct model_config *c,
                        char *err, size_t errlen)
{
    json_t *v;
    int window = 0;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a JSON object", path);
        return -1;
    }
    v = json_object_get(root, "model_type");
    if (!json_is_string(v)) {
        snprintf(err, errlen, "%s: model_type missing (llama or mistral expected)",
                 path);
        return -1;
    }
    if (strcmp(json_string_value(v), "llama") != 0 &&
        strcmp(json_string_value(v), "mistral") != 0) {
        snprintf(err, errlen, "%s: model_type \"%s\" is not supported (llama or "
                 "mistral)", path, json_string_value(v));
        return -1;
    }
    v = json_object_get(root, "hidden_act");
    if (v && !(json_is_string(v) && strcmp(json_string_value(v), "silu") == 0)) {
        snprintf(err, errlen, "%s: hidden_act must be \"silu\"", path);
        return -1;
    }
    static const char *const biases[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++)
        if (json_is_true(json_object_get(root, biases[i]))) {
            snprintf(err, errlen, "%s: %s is true, but this engine has no biases",
                     path, biases[i]);
            return -1;
        }
    if (cfg_rope_plain(path, root, "rope_scaling", err, errlen) < 0 ||
        cfg_rope_plain(path, root, "rope_parameters", err, errlen) < 0)
        return -1;

    memset(c, 0, sizeof *c);
    if (cfg_int(path, root, "hidden_size", -1, &c->dim, err, errlen) < 0 ||
        cfg_int(path, root, "intermediate_size", -1, &c->hidden_dim, err, errlen) < 0 ||
        cfg_int(path, root, "num_hidden_layers", -1, &c->n_layers, err, errlen) < 0 ||
        cfg_int(path, root, "num_attention_heads", -1, &c->n_heads, err, errlen) < 0 ||
        cfg_int(path, root, "num_key_value_heads", c->n_heads, &c->n_kv_heads, err,
                errlen) < 0 ||
        cfg_int(path, root, "vocab_size", -1, &c->vocab_size, err, errlen) < 0 ||
        cfg_int(path, root, "max_position_embeddings", 2048, &c->max_seq_len, err,
                errlen) < 0 ||
        cfg_int(path, root, "sliding_window", 0, &window, err, errlen) < 0 ||
        cfg_num(path, root, "rms_norm_eps", 1e-6, &c->norm_eps, err, errlen) < 0 ||
        cfg_num(path, root, "rope_theta", 10000.0, &c->rope_theta, err, errlen) < 0 ||
        cfg_token(path, root, "bos_token_id", &c->bos_id, err, errlen) < 0 ||
        cfg_token(path, root, "eos_token_id", &c->eos_id, err, errlen) < 0)
        return -1;
    /* transformers >= 5 keeps rope_theta inside rope_parameters */
    v = json_object_get(root, "rope_parameters");
    if (json_is_object(v) &&
        cfg_num(path, v, "rope_theta", c->rope_theta, &c->rope_theta, err, errlen) < 0)
        return -1;
    if (c->n_heads > 0 && c->dim % c->n_heads != 0 &&
        !json_is_integer(json_object_get(root, "head_dim"))) {
        snprintf(err, errlen, "%s: hidden_size %d is not a multiple of "
                 "num_attention_heads %d and head_dim is not given", path, c->dim,
                 c->n_heads);
        return -1;
    }
    if (cfg_int(path, root, "head_dim", c->n_heads > 0 ? c->dim / c->n_heads : 0,
                &c->head_dim, err, errlen) < 0)
        return -1;
    if (window > 0 && window < c->max_seq_len)
        c->max_seq_len = window;
    v = json_object_get(root, "tie_word_embeddings");
    if (v && !json_is_boolean(v)) {
        snprintf(err, errlen, "%s: tie_word_embeddings must be true or false", path);
        return -1;
    }
    c->tied_embeddings = json_is_true(v);

    char why[512];
    if (model_config_check(c, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    return 0;
}

int hf_config_parse(const char *config_json_path, struct model_config *c,
                    char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(config_json_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d, column %d)", config_json_path,
                 jerr.text, jerr.line, jerr.column);
        return -1;
    }
    int rc = parse_config(config_json_path, root, c, err, errlen);
    json_decref(root);
    return rc;
}

/* ---- the checkpoint directory ---- */

/* Where the tensors come from: one file, or shards named by an index. */
struct sources {
    char index_path[PATH_MAX]; /* empty for a single file */
    json_t *weight_map;        /* tensor name -> shard name; NULL: single file */
    int n;
    struct st_file **files;
    const char **names;        /* shard names (owned by weight_map) */
};

static int join(char *out, size_t len, const char *dir, const char *name,
                char *err, size_t errlen)
{
    if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len) {
        snprintf(err, errlen, "%s/%s: path too long", dir, name);
        return -1;
    }
    return 0;
}

/* 1 if path exists, 0 if not, -1 (and err) when it cannot be told. */
static int exists(const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
}

static int add_file(struct sources *s, const char *dir, const char *name,
                    char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct st_file **files = realloc(s->files, (size_t)(s->n + 1) * sizeof *files);
    const char **names = realloc(s->names, (size_t)(s->n + 1) * sizeof *names);
    if (files)
        s->files = files;
    if (names)
        s->names = names;
    if (!files || !names) {
        snprintf(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    if (join(path, sizeof path, dir, name, err, errlen) < 0 ||
        !(s->files[s->n] = st_open(path, err, errlen)))
        return -1;
    s->names[s->n++] = name;
    return 0;
}

static int shard_index(const struct sources *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return i;
    return -1;
}

/* Read the index and open every shard it names. */
static int open_index(struct sources *s, const char *dir, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_load_file(s->index_path, JSON_REJECT_DUPLICATES, &jerr);
    const char *key;
    json_t *v;
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d, column %d)", s->index_path, jerr.text,
                 jerr.line, jerr.column);
        return -1;
    }
    s->weight_map = json_incref(json_object_get(root, "weight_map"));
    json_decref(root);
    if (!json_is_object(s->weight_map)) {
        snprintf(err, errlen, "%s: weight_map missing or not an object",
                 s->index_path);
        return -1;
    }
    json_object_foreach(s->weight_map, key, v) {
        const char *shard = json_string_value(v);
        if (!shard) {
            snprintf(err, errlen, "%s: tensor '%s': shard name is not a string",
                     s->index_path, key);
            return -1;
        }
        if (!*shard || strchr(shard, '/') || strstr(shard, "..")) {
            snprintf(err, errlen, "%s: tensor '%s': shard \"%s\" is not a plain file "
                     "name in this directory", s->index_path, key, shard);
            return -1;
        }
        if (shard_index(s, shard) < 0 && add_file(s, dir, shard, err, errlen) < 0) {
            char why[1024];
            snprintf(why, sizeof why, "%s", err);
            snprintf(err, errlen, "%s: tensor '%s': shard \"%s\": %s", s->index_path,
                     key, shard, why);
            return -1;
        }
    }
    return 0;
}

static void close_sources(struct sources *s)
{
    for (int i = 0; i < s->n; i++)
        st_close(s->files[i]);
    free(s->files);
    free(s->names);
    json_decref(s->weight_map);
}

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const struct named_tensor *)a)->name,
                  ((const struct named_tensor *)b)->name);
}

static int is_inv_freq(const char *name)
{
    static const char suffix[] = "rotary_emb.inv_freq";
    size_t n = strlen(name), k = sizeof suffix - 1;
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* A tensor name found in a file or the index must be a model parameter. */
static int check_known(const char *where, const char *name,
                       const struct named_tensor *nt, int count,
                       const struct model_config *c, char *err, size_t errlen)
{
    struct named_tensor key;
    if (is_inv_freq(name))
        return 0;
    snprintf(key.name, sizeof key.name, "%s", name);
    if (strlen(name) < sizeof key.name &&
        bsearch(&key, nt, (size_t)count, sizeof *nt, cmp_named))
        return 0;
    if (c->tied_embeddings && strcmp(name, "lm_head.weight") == 0)
        snprintf(err, errlen, "%s: tensor 'lm_head.weight' is present, but "
                 "config.json ties the embeddings (tie_word_embeddings)", where);
    else
        snprintf(err, errlen, "%s: tensor '%s' is not a parameter of this model "
                 "(%d layers)", where, name, c->n_layers);
    return -1;
}

/* Every tensor of every file (and of the index) is known, and the index
 * places each one in the shard that holds it. */
static int check_names(const struct sources *s, const struct named_tensor *nt,
                       int count, const struct model_config *c, char *err,
                       size_t errlen)
{
    const char *key;
    json_t *v;
    if (s->weight_map)
        json_object_foreach(s->weight_map, key, v)
            if (check_known(s->index_path, key, nt, count, c, err, errlen) < 0)
                return -1;
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < st_count(s->files[i]); j++) {
            const char *name = st_tensor_at(s->files[i], j)->name;
            if (check_known(st_path(s->files[i]), name, nt, count, c, err, errlen) < 0)
                return -1;
            const char *mapped = s->weight_map
                ? json_string_value(json_object_get(s->weight_map, name)) : NULL;
            if (s->weight_map && (!mapped || strcmp(mapped, s->names[i]) != 0)) {
                snprintf(err, errlen, "%s: tensor '%s' is in shard \"%s\", but the "
                         "index maps it to %s%s%s", s->index_path, name, s->names[i],
                         mapped ? "\"" : "no shard", mapped ? mapped : "",
                         mapped ? "\"" : "");
                return -1;
            }
        }
    return 0;
}

/* Find one parameter, check its shape, convert it into place. */
static int load_one(const struct sources *s, const struct named_tensor *p,
                    char *err, size_t errlen)
{
    const struct st_file *f = s->weight_map ? NULL : s->files[0];
    if (s->weight_map) {
        const char *shard = json_string_value(json_object_get(s->weight_map, p->name));
        if (!shard) {
            snprintf(err, errlen, "%s: tensor '%s' is missing from weight_map",
                     s->index_path, p->name);
            return -1;
        }
        f = s->files[shard_index(s, shard)];
    }
    const struct st_tensor *t = st_find(f, p->name);
    if (!t) {
        snprintf(err, errlen, "%s: tensor '%s' is missing", st_path(f), p->name);
        return -1;
    }
    int ndim = p->cols ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != p->rows ||
        (ndim == 2 && t->shape[1] != p->cols)) {
        char found[256], expect[256];
        const int64_t want[2] = {p->rows, p->cols};
        snprintf(err, errlen, "%s: tensor '%s': shape %s in the file, but config.json "
                 "implies %s", st_path(f), p->name,
                 st_shape_str(found, sizeof found, t->shape, t->ndim),
                 st_shape_str(expect, sizeof expect, want, ndim));
        return -1;
    }
    return st_read_f32(f, t, p->data, (size_t)p->rows * (size_t)(p->cols ? p->cols : 1),
                       err, errlen);
}

static int load_all(struct sources *s, struct model *m, char *err, size_t errlen)
{
    int count = model_tensor_count(&m->cfg), rc = -1;
    struct named_tensor *nt = calloc((size_t)count, sizeof *nt);
    if (!nt) {
        snprintf(err, errlen, "out of memory listing %d tensors", count);
        return -1;
    }
    for (int i = 0; i < count; i++)
        model_tensor_at(&m->cfg, &m->w, i, &nt[i]);
    qsort(nt, (size_t)count, sizeof *nt, cmp_named);
    if (check_names(s, nt, count, &m->cfg, err, errlen) < 0)
        goto out;
    for (int i = 0; i < count; i++)
        if (load_one(s, &nt[i], err, errlen) < 0)
            goto out;
    rc = 0;
out:
    free(nt);
    return rc;
}

int load_hf_dir(const char *dir, const struct backend *be, struct model *m,
                char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct model_config cfg;
    struct sources s = {0};
    int single, rc = -1;
    memset(m, 0, sizeof *m);
    if (join(path, sizeof path, dir, "config.json", err, errlen) < 0 ||
        hf_config_parse(path, &cfg, err, errlen) < 0)
        return -1;
    if (model_init(m, &cfg, be) < 0) {
        snprintf(err, errlen, "%s: cannot allocate %zu parameters", dir,
                 model_param_floats(&cfg));
        return -1;
    }
    if (join(path, sizeof path, dir, "model.safetensors", err, errlen) < 0 ||
        join(s.index_path, sizeof s.index_path, dir, "model.safetensors.index.json",
             err, errlen) < 0 ||
        (single = exists(path, err, errlen)) < 0)
        goto out;
    if (single) {
        s.index_path[0] = '\0';
        if (add_file(&s, dir, "model.safetensors", err, errlen) < 0)
            goto out;
    } else {
        int idx = exists(s.index_path, err, errlen);
        if (idx < 0)
            goto out;
        if (!idx) {
            snprintf(err, errlen, "%s: neither model.safetensors nor "
                     "model.safetensors.index.json is there", dir);
            goto out;
        }
        if (open_index(&s, dir, err, errlen) < 0)
            goto out;
    }
    rc = load_all(&s, m, err, errlen);
out:
    close_sources(&s);
    if (rc < 0)
        model_free(m);
    return rc;
}
