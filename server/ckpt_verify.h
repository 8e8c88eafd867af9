/*
 * ckpt_verify.h: the start-up check of a checkpoint before a job interrupted
 * by a crash resumes from it (store_recover_running's verify callback).
 */
#ifndef OWLORE_CKPT_VERIFY_H
#define OWLORE_CKPT_VERIFY_H

struct store_checkpoint;

/* 1 when checkpoint c is complete and intact, else 0 with the reason on
 * stderr; arg is unused. Complete and intact: its owlore.json and
 * config.json parse, and every file owlore.json lists (model.safetensors and
 * optimizer.bin at least) has the size and sha256 recorded there, those of
 * model.safetensors also matching the store's record. Whether the checkpoint
 * fits the job's base model and method is checked again when the worker
 * resumes it (ckpt_check_resume). Does not call the store. */
int ckpt_verify(const struct store_checkpoint *c, void *arg);

#endif
