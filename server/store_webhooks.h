/*
 * store_webhooks.h: webhook endpoints and the outbox of their deliveries, in
 * the service's database (the conventions of store.h hold: enum store_rc,
 * owner scoping, heap strings released by *_clear / *_list_free, cursor
 * pagination newest first).
 *
 * A webhook belongs to a tenant and subscribes to some of the event types
 * in store_webhook_events. When a job changes status, or a checkpoint is
 * recorded, the same transaction adds one outbox row per subscribed
 * webhook of the job's owner (store_job_transition and
 * store_checkpoint_insert do it), so an event is never lost to a crash
 * and never sent for a change that rolled back. A row holds the whole
 * payload, {"id", "type", "created_at", "data"}, whose id (also the row's)
 * is the Standard Webhooks message id: the same across retries.
 *
 * The delivery worker (webhooks.h) takes due rows with store_outbox_due
 * and reports each attempt: store_outbox_delivered removes the row;
 * store_outbox_failed counts the attempt and either schedules the next one
 * or gives up, keeping the row with status "failed" and its last error.
 * Deleting a webhook drops its rows.
 */
#ifndef OWLORE_STORE_WEBHOOKS_H
#define OWLORE_STORE_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* The event types, NULL-terminated: fine_tuning.job.running, .paused,
 * .succeeded, .failed, .cancelled and fine_tuning.job.checkpoint.created. */
extern const char *const store_webhook_events[];

struct store_webhook {
    char *id; /* "wh_…" */
    char *owner;
    char *url;
    char *events;      /* JSON array of event types */
    char *description; /* or NULL */
    char *secret;      /* "whsec_…": shown once, when created */
    int64_t created_at;
};
void store_webhook_clear(struct store_webhook *w);

struct store_webhook_new {
    const char *owner, *url, *events, *description, *secret;
};

/* Inserts a webhook with a new id; STORE_CONFLICT (nothing written) when
 * the owner already has max_per_owner webhooks. */
int store_webhook_create(struct store *st, const struct store_webhook_new *w,
                         int max_per_owner, struct store_webhook *out, char *err,
                         size_t errlen);
int store_webhook_get(struct store *st, const char *owner, const char *id,
                      struct store_webhook *out, char *err, size_t errlen);
/* Deletes the webhook and its undelivered outbox rows. */
int store_webhook_delete(struct store *st, const char *owner, const char *id, char *err,
                         size_t errlen);

struct store_webhook_list {
    struct store_webhook *v;
    size_t n;
    int has_more;
};
void store_webhook_list_free(struct store_webhook_list *l);
/* Webhooks of `owner`, newest first. */
int store_webhook_list(struct store *st, const char *owner, const char *after, int limit,
                       struct store_webhook_list *out, char *err, size_t errlen);

/* One pending delivery, with what sending it needs. */
struct store_delivery {
    char *id; /* "evt_…": the payload's id and the webhook-id header */
    char *webhook_id;
    char *url;
    char *secret;
    char *payload; /* JSON */
    int attempts;  /* made so far */
};
struct store_delivery_list {
    struct store_delivery *v;
    size_t n;
};
void store_delivery_list_free(struct store_delivery_list *l);

/* At most `limit` pending rows whose next attempt is due at now_ms (unix
 * milliseconds), the longest due first. */
int store_outbox_due(struct store *st, int64_t now_ms, int limit,
                     struct store_delivery_list *out, char *err, size_t errlen);
/* The delivery `id` succeeded: the row is removed. STORE_NOTFOUND when it
 * is gone (its webhook was deleted meanwhile). */
int store_outbox_delivered(struct store *st, const char *id, char *err, size_t errlen);
/* An attempt at delivery `id` failed with `error`: attempts + 1 and the
 * next attempt at next_attempt_ms, or, when next_attempt_ms is 0, status
 * "failed" for good. STORE_NOTFOUND when the row is gone. */
int store_outbox_failed(struct store *st, const char *id, int64_t next_attempt_ms,
                        const char *error, char *err, size_t errlen);
/* Number of outbox rows with `status` ("pending" or "failed"). */
int store_outbox_count(struct store *st, const char *status, int64_t *n, char *err,
                       size_t errlen);

#endif
