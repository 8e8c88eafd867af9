/*
 * load.h: loading a model from disk, whatever its format.
 *
 * model_load looks at the path: a directory is a Hugging Face model
 * (config.json + model.safetensors or a sharded index), a file ending in
 * .bin is a llama2.c checkpoint, one ending in .gguf a GGUF file. Every
 * loader checks sizes, shapes and offsets against the file before trusting
 * them, and on failure returns -1 with a message naming the file (and the
 * tensor, where there is one) and leaves *m freed.
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
/* Just the config of a llama2.c file (header and size checked). */
int llama2c_read_config(const char *path, struct model_config *c, char *err,
                        size_t errlen);

/* GGUF files with a llama architecture (load_gguf.c), dequantized to fp32
 * (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q6_K tensors), and just their config
 * (metadata and tensor list read, no weights). */
int load_gguf(const char *path, const struct backend *be, struct model *m,
              char *err, size_t errlen);
int gguf_read_config(const char *path, struct model_config *c, char *err,
                     size_t errlen);

/* The config of any model path model_load accepts, or of a Hugging Face
 * config.json file alone, without reading weights (for planning). */
int model_read_config(const char *path, struct model_config *c, char *err,
                      size_t errlen);

#endif
