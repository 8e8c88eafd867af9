/*
 * job_recipe.c: the method object of a job <-> struct recipe (see
 * job_recipe.h). One table names every hyperparameter, its field and its
 * lower bound; parsing, checking and the resolved JSON all walk it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "job_recipe.h"

enum hp_kind { HP_INT, HP_REAL, HP_SEED };

struct hp {
    const char *name;
    enum hp_kind kind;
    size_t off;      /* offset of the field in struct recipe */
    double min;      /* smallest accepted value */
    const char *msg; /* how recipe_check's messages start for this field */
};

#define F(field) offsetof(struct recipe, field)
static const struct hp hps[] = {
    {"gamma", HP_INT, F(gamma), 1, "gamma"},
    {"sampling_interval", HP_INT, F(interval), 1, "interval"},
    {"rank", HP_INT, F(galore.rank), 0, "rank"},
    {"update_proj_gap", HP_INT, F(galore.update_proj_gap), 1, "proj_gap"},
    {"galore_scale", HP_REAL, F(galore.scale), 0, "scale"},
    {"tau", HP_REAL, F(tau), 0, "tau"},
    {"learning_rate", HP_REAL, F(lr), 0, "lr"},
    {"n_epochs", HP_INT, F(epochs), 1, "epochs"},
    {"batch_size", HP_INT, F(batch_size), 1, "batch size"},
    {"sequence_length", HP_INT, F(seq_len), 1, "sequence length"},
    {"seed", HP_SEED, F(seed), 0, NULL},
    {"max_steps", HP_INT, F(max_steps), 0, "max_steps"},
    {"eval_every", HP_INT, F(eval_every), 0, "eval_every"},
    {"save_every", HP_INT, F(save_every), 0, NULL},
    {"activation_checkpointing", HP_INT, F(checkpoint_activations), 0,
     "activation_checkpointing"},
    {"recompute_blocks", HP_INT, F(recompute_blocks), 0, "recompute_blocks"},
    {"bf16_activations", HP_INT, F(bf16_activations), 0, "bf16_activations"},
    {"bf16_weights", HP_INT, F(bf16_weights), 0, "bf16_weights"},
    {"stagger_refreshes", HP_INT, F(stagger_refreshes), 0, "stagger_refreshes"},
    {"update_in_backward", HP_INT, F(update_in_backward), 0, "update_in_backward"},
    /* 0 turns clipping off (recipe_check refuses a negative one) */
    {"max_grad_norm", HP_REAL, F(max_grad_norm), -1, "max_grad_norm"},
    /* method lora only (recipe_check bounds the dropout to [0, 1)) */
    {"lora_rank", HP_INT, F(lora.rank), 1, "lora_rank"},
    {"lora_alpha", HP_REAL, F(lora.alpha), 0, "lora_alpha"},
    {"lora_dropout", HP_REAL, F(lora.dropout), -1, "lora_dropout"},
    {"lora_merge", HP_INT, F(lora.merge), 0, "lora merge"},
};
#undef F
#define N_HPS (sizeof hps / sizeof hps[0])

static int fail(char param[JOB_PARAM_LEN], const char *p, char *err, size_t errlen,
                const char *msg)
{
    snprintf(param, JOB_PARAM_LEN, "%s", p);
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* 1 for the hyperparameters only method lora takes. */
static int lora_only(const struct hp *h)
{
    return strncmp(h->name, "lora_", 5) == 0;
}

/* Sets hyperparameter h of r from v. 0, or -1 with a message. */
static int set_hp(struct recipe *r, const struct hp *h, const json_t *v, char *err, size_t errlen)
{
    char *field = (char *)r + h->off;
    if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0)
        return 0;
    if (h->kind == HP_REAL) {
        /* bounds apply to the stored float, so the resolved method (which
         * prints that float) parses again to the same value */
        float x = (float)json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || x <= h->min || x > 1e30f) {
            snprintf(err, errlen, "'%s' must be a %s number or \"auto\".", h->name,
                     h->min < 0 ? "non-negative" : "positive");
            return -1;
        }
        *(float *)field = x;
        return 0;
    }
    json_int_t n = json_integer_value(v);
    if (!json_is_integer(v) || n < (json_int_t)h->min ||
        (h->kind == HP_INT && n > 1000000000)) {
        snprintf(err, errlen, "'%s' must be an integer >= %d or \"auto\".", h->name,
                 (int)h->min);
        return -1;
    }
    if (h->kind == HP_SEED)
        *(unsigned long long *)field = (unsigned long long)n;
    else
        *(int *)field = (int)n;
    return 0;
}

int job_recipe_parse(const json_t *method, struct recipe *r, char param[JOB_PARAM_LEN],
                     char *err, size_t errlen)
{
    const char *type = method ? json_string_value(json_object_get(method, "type")) : "owlore";
    enum method m;
    if (method && !json_is_object(method))
        return fail(param, "method", err, errlen, "'method' must be an object.");
    if (!type || method_parse(type, &m) != 0)
        return fail(param, "method.type", err, errlen,
                    "'method.type' must be one of full, lisa, galore, owlore_full_rank, "
                    "owlore, lora.");
    recipe_defaults(r, m);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)method, key, v) {
        if (strcmp(key, "type") != 0 && strcmp(key, type) != 0) {
            snprintf(param, JOB_PARAM_LEN, "method.%s", key);
            snprintf(err, errlen, "Unknown field 'method.%.40s' for method type '%s'.", key,
                     type);
            return -1;
        }
    }
    const json_t *sub = method ? json_object_get(method, type) : NULL;
    if (!sub || json_is_null(sub))
        return 0;
    if (!json_is_object(sub)) {
        snprintf(param, JOB_PARAM_LEN, "method.%s", type);
        snprintf(err, errlen, "'method.%s' must be an object.", type);
        return -1;
    }
    json_object_foreach((json_t *)sub, key, v) {
        if (strcmp(key, "hyperparameters") != 0) {
            snprintf(param, JOB_PARAM_LEN, "method.%s.%s", type, key);
            snprintf(err, errlen, "Unknown field 'method.%s.%.40s'.", type, key);
            return -1;
        }
    }
    const json_t *hp = json_object_get(sub, "hyperparameters");
    if (hp && !json_is_object(hp))
        return fail(param, "hyperparameters", err, errlen,
                    "'hyperparameters' must be an object.");
    json_object_foreach((json_t *)hp, key, v) {
        size_t i = 0;
        while (i < N_HPS && strcmp(hps[i].name, key) != 0)
            i++;
        if (i == N_HPS || (lora_only(&hps[i]) && m != METHOD_LORA)) {
            snprintf(param, JOB_PARAM_LEN, "%.63s", key);
            snprintf(err, errlen, "Unknown hyperparameter '%.40s' for method '%s'.", key, type);
            return -1;
        }
        if (set_hp(r, &hps[i], v, err, errlen) != 0) {
            snprintf(param, JOB_PARAM_LEN, "%s", key);
            return -1;
        }
    }
    return 0;
}

int job_recipe_check(const struct recipe *r, const struct model_config *c,
                     char param[JOB_PARAM_LEN], char *err, size_t errlen)
{
    if (r->seq_len > c->max_seq_len) {
        snprintf(param, JOB_PARAM_LEN, "sequence_length");
        snprintf(err, errlen, "sequence_length %d is longer than the model's context of %d.",
                 r->seq_len, c->max_seq_len);
        return -1;
    }
    if (recipe_check(r, c->n_layers, err, errlen) == 0)
        return 0;
    snprintf(param, JOB_PARAM_LEN, "method");
    for (size_t i = 0; i < N_HPS; i++)
        if (hps[i].msg && strncmp(err, hps[i].msg, strlen(hps[i].msg)) == 0) {
            snprintf(param, JOB_PARAM_LEN, "%s", hps[i].name);
            break;
        }
    return -1;
}

json_t *job_recipe_method_json(const struct recipe *r)
{
    json_t *hp = json_object();
    for (size_t i = 0; hp && i < N_HPS; i++) {
        if (lora_only(&hps[i]) && r->method != METHOD_LORA)
            continue;
        const char *field = (const char *)r + hps[i].off;
        /* an integer below its minimum is one this method leaves unset (the
           gamma of full): stored, it would be refused when parsed back */
        if (hps[i].kind == HP_INT && *(const int *)field < hps[i].min)
            continue;
        json_t *v = hps[i].kind == HP_REAL ? json_real(*(const float *)field)
                    : hps[i].kind == HP_SEED
                        ? json_integer((json_int_t) * (const unsigned long long *)field)
                        : json_integer(*(const int *)field);
        json_object_set_new(hp, hps[i].name, v);
    }
    const char *type = method_name(r->method);
    return hp ? json_pack("{s:s, s:{s:o}}", "type", type, type, "hyperparameters", hp) : NULL;
}
