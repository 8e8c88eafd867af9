/*
 * model_move.c: re-home a loaded model's parameters on another backend.
 *
 * Loaders, the outlier ratios and the base-model digest work on host
 * memory, so a model is loaded with the CPU backend and moved afterwards:
 * one allocation on the target backend, one upload, the named pointers
 * shifted to the same offsets in the new allocation, the old memory freed.
 * A model stored in bf16 (model_bf16.c) moves the same way: its one
 * allocation holds the final norm, the stage and the bf16 tensors.
 *
 * model_copy_to leaves the host model where it is and makes a second one
 * on the target backend (outlier calibration's forward passes on a GPU,
 * while the ratios read the host weights).
 */
#include <stdio.h>

#include "model.h"

#define MOVED(p) ((p) ? mem + ((p) - m->mem) : NULL)
/* a bf16 pointer, which need not sit at a whole float of the allocation */
#define MOVED16(p) ((unsigned short *)((char *)mem + ((char *)(p) - (char *)m->mem)))

int model_move(struct model *m, const struct backend *be, char *err, size_t errlen)
{
    if (be == m->be)
        return 0;
    size_t bytes = m->mem_bytes;
    float *mem = be->alloc(bytes);
    if (!mem) {
        snprintf(err, errlen, "out of %s memory for the model's parameters (%.2f GiB)",
                 be->name, (double)bytes / (1 << 30));
        return -1;
    }
    be->upload(mem, m->mem, bytes);
    if (be->error(err, errlen)) {
        be->free(mem);
        return -1;
    }
    m->w.embed = MOVED(m->w.embed);
    for (int l = 0; l < m->cfg.n_layers; l++)
        m->w.blocks[l] = MOVED(m->w.blocks[l]);
    m->w.final_norm = MOVED(m->w.final_norm);
    m->w.lm_head = MOVED(m->w.lm_head);
    if (m->blocks16) { /* bf16 storage (model_bf16.c) */
        m->stage = MOVED(m->stage);
        m->embed16 = MOVED16(m->embed16);
        m->blocks16 = MOVED16(m->blocks16);
        m->head16 = MOVED16(m->head16);
    }
    m->be->free(m->mem);
    m->mem = mem;
    m->be = be;
    return 0;
}

int model_copy_to(struct model *dst, const struct model *src, const struct backend *be,
                  char *err, size_t errlen)
{
    if (src->blocks16 || !src->be->host_memory) {
        snprintf(err, errlen, "only a model with fp32 parameters in host memory is copied");
        return -1;
    }
    if (model_init(dst, &src->cfg, be) != 0) {
        snprintf(err, errlen, "out of %s memory for a copy of the model's parameters "
                 "(%.2f GiB)", be->name, (double)src->mem_bytes / (1 << 30));
        return -1;
    }
    be->upload(dst->mem, src->mem, src->mem_bytes);
    if (be->error(err, errlen)) {
        model_free(dst);
        return -1;
    }
    return 0;
}
