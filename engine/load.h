/*
 * load.h: loading a model from disk, whatever its format.
 *
 * model_load looks at the path: a directory is a Hugging Face model
 * (config.json + model.safetensors or a sharded index), a file ending in
 * .bin is a llama2.c checkpoint. Every loader checks sizes, shapes and
 * offsets against the file before trusting them, and on failure returns -1
 * with a message naming the file (and the tensor, where there is one) and
 * leaves *m freed.
 */
#ifndef OWLORE_LOAD_H
#define OWLORE_LOAD_H

#include <stddef.h>

#include "model.h"

int model_load(const char *path, const struct backend *be, struct model *m,
               char *err, size_t errlen);

/* llama2.c version-0 checkpoints (load_llama2c.c); Hugging Face
 * directories are load_hf.h's load_hf_dir. */
int load_llama2c(const char *path, const struct backend *be, struct model *m,
                 char *err, size_t errlen);

#endif
