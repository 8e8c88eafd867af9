/*
 * queue.h: the job worker: one thread that trains queued fine-tuning jobs
 * one at a time, oldest first, on the CPU backend.
 *
 * For each job it claims (queued -> running, compare-and-set, so a job
 * cancelled meanwhile is skipped) it loads the model, its tokenizer and the
 * training (and validation) file through ds_load with the model's chat
 * template (raw when it has none), builds the recipe from the stored method
 * (job_recipe.h), calibrates outlier ratios for owl methods, and runs
 * train_run into <data_dir>/jobs/<id>/. Every step appends a "metrics"
 * event; each checkpoint written is recorded in the store (step, metrics,
 * sha256 and size of model.safetensors from its owlore.json) with a
 * message event. The job ends succeeded (fine_tuned_model
 * "ft:<base>[:<suffix>]:<job id>", trained_tokens), failed (error {code,
 * message, param}; code "disk_full" when a checkpoint write ran out of
 * room, whose partial copy is removed while the earlier checkpoints stay)
 * or cancelled; when the store cannot record the end (a full disk), the
 * worker retries each second until it can, or the server stops. A job with resume_checkpoint continues from that
 * checkpoint.
 *
 * A pause request (queue_pause, after the job was set pausing) makes
 * train_run write a checkpoint and stop; the job becomes paused with
 * resume_checkpoint set to it. A job that ends otherwise while pausing
 * (finished, failed, cancelled) ends as it would have while running.
 *
 * Shutdown (queue_stop) asks the running job to pause: train_run writes a
 * checkpoint, and the job goes back to queued with resume_checkpoint set,
 * so the next server start continues it exactly.
 */
#ifndef OWLORE_QUEUE_H
#define OWLORE_QUEUE_H

#include <stddef.h>

struct service;

/* Starts the worker on svc (which must outlive it). 0, or -1 with a message. */
int queue_start(struct service *svc, char *err, size_t errlen);
/* Wakes the worker after a job was queued (it also polls every second). */
void queue_wake(void);
/* Asks the worker to cancel job `id` if it is the one it runs: 1 when the
 * request was passed on (the worker ends the job as cancelled), else 0. */
int queue_cancel(const char *id);
/* Asks the worker to pause job `id` if it is the one it runs: 1 when the
 * request was passed on, else 0. */
int queue_pause(const char *id);
/* What the worker is doing, for /metrics. */
struct queue_stats {
    int busy;            /* 1 while a job trains */
    long step;           /* its optimizer steps done (0 when idle) */
    double tokens_per_s; /* its last step's throughput (0 when idle) */
};
void queue_get_stats(struct queue_stats *s);
/* Pauses and re-queues the running job (see above) and joins the worker.
 * A no-op when the worker was not started. */
void queue_stop(void);

#endif
