/*
 * lora_ckpt.h: LoRA adapters as PEFT files.
 *
 * A PEFT adapter directory holds
 *   adapter_model.safetensors  base_model.model.model.layers.<l>.<module>.
 *                              lora_A.weight (r, in) and lora_B.weight (out, r),
 *                              F32, for the 7 linear layers of every block
 *   adapter_config.json        peft_type LORA, r, lora_alpha, lora_dropout,
 *                              target_modules, task_type CAUSAL_LM, ...
 * which peft.PeftModel.from_pretrained loads onto the base model, and, for
 * exact resume,
 *   adapter_optimizer.safetensors  <lora tensor name>.exp_avg and .exp_avg_sq
 *                              (AdamW moments, the adapter's shapes, F32);
 *                              metadata "step": the steps every adapter
 *                              tensor has taken (0: no moments yet)
 */
#ifndef OWLORE_LORA_CKPT_H
#define OWLORE_LORA_CKPT_H

#include <stddef.h>

#include "lora.h"

/* Write the two files of lo into dir (which exists). base_model_id goes into
 * base_model_name_or_path. 0, or -1 with err. */
int lora_ckpt_write(const char *dir, const struct lora *lo, const char *base_model_id,
                    char *err, size_t errlen);

/* Write lo's AdamW state into dir/adapter_optimizer.safetensors. */
int lora_ckpt_write_state(const char *dir, const struct lora *lo, char *err, size_t errlen);

/* Load the adapters of dir (adapter_model.safetensors, shapes and rank
 * checked against lo) and their AdamW state into lo, replacing its own. */
int lora_ckpt_read(const char *dir, struct lora *lo, char *err, size_t errlen);

/* Read the adapter in dir (PEFT files, ours or peft's, targeting any subset
 * of the 7 linear layers) and merge W += (alpha / r) B A into m. */
int lora_ckpt_merge(const char *dir, struct model *m, char *err, size_t errlen);

#endif
