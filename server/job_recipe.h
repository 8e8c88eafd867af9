/*
 * job_recipe.h: a fine-tuning job's `method` object <-> a recipe.
 *
 * The API's method is {"type": M, M: {"hyperparameters": {...}}} with M one
 * of full, lisa, galore, owlore_full_rank, owlore, lora. The recipe starts from
 * recipe_defaults(M); each hyperparameter given overrides one field:
 *   gamma, sampling_interval (K), rank, update_proj_gap (T), galore_scale,
 *   tau, learning_rate, n_epochs, batch_size, sequence_length, seed, and our
 *   extensions max_steps, eval_every, save_every.
 * Integers must be JSON integers, reals JSON numbers; "auto" keeps the
 * default. Unknown keys, wrong types and out-of-range values are refused
 * with the offending field's name in `param`. The stored method is the
 * resolved one (every hyperparameter with its value), so parsing it again
 * at run time yields the same recipe.
 */
#ifndef OWLORE_JOB_RECIPE_H
#define OWLORE_JOB_RECIPE_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "recipe.h"

#define JOB_PARAM_LEN 64

/* method (NULL: {"type": "owlore"}) -> *r. 0, or -1 with the field in param
 * (e.g. "method.type", "gamma") and a message in err. */
int job_recipe_parse(const json_t *method, struct recipe *r, char param[JOB_PARAM_LEN],
                     char *err, size_t errlen);
/* recipe_check against the model's config plus sequence_length <= the
 * model's context; -1 with param and message as above. */
int job_recipe_check(const struct recipe *r, const struct model_config *c,
                     char param[JOB_PARAM_LEN], char *err, size_t errlen);
/* The resolved method object of r (new reference; NULL out of memory). */
json_t *job_recipe_method_json(const struct recipe *r);

#endif
