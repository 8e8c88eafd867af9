/*
 * load_hf.h: loading a Hugging Face LLaMA-family checkpoint directory.
 *
 * A directory holds config.json and either model.safetensors or the sharded
 * model.safetensors.index.json ({"weight_map": {tensor name: shard file}}).
 * Hugging Face q_proj/k_proj rows are already in the half-split RoPE layout
 * the engine uses, so weights are copied as they are (converted to fp32).
 * The loader is strict: every parameter the config implies must be present
 * with exactly its shape, and a tensor the model does not use is an error
 * (except rotary_emb.inv_freq, which old checkpoints carry).
 */
#ifndef OWLORE_LOAD_HF_H
#define OWLORE_LOAD_HF_H

#include <stddef.h>

#include "backend.h"
#include "config.h"
#include "model.h"

/* Fill c from a config.json (model_type "llama" or "mistral", no
 * rope_scaling, no biases, silu activation) and check it with
 * model_config_check. Absent or null bos/eos ids become -1; a list of ids
 * gives its first. A Mistral sliding_window shorter than the context caps
 * max_seq_len (attention within the window is then exact). */
int hf_config_parse(const char *config_json_path, struct model_config *c,
                    char *err, size_t errlen);

/* Parse dir/config.json, model_init(m, ..., be) and fill every parameter.
 * be must allocate host memory (the CPU backend). On failure *m is left
 * freed and zeroed, whether or not model_init was reached. */
int load_hf_dir(const char *dir, const struct backend *be, struct model *m,
                char *err, size_t errlen);

#endif
