/*
 * webhooks.h: the webhook delivery worker: one thread that sends the
 * outbox's due deliveries (store_webhooks.h) one at a time, oldest due
 * first.
 *
 * Each attempt re-checks the URL (webhook_url.h: the host is resolved
 * again and every address must still be allowed), pins the connection to
 * the checked address (CURLOPT_RESOLVE, and a socket callback that refuses
 * any other address), and POSTs the stored payload with the Standard
 * Webhooks headers webhook-id, webhook-timestamp and webhook-signature
 * (webhook_sign.h), Content-Type application/json, a timeout, no proxy and
 * no redirects followed. A 2xx answer delivers it (the row is removed);
 * anything else is a failed attempt, retried after backoff_ms[k - 1] for
 * the k-th failure (the last entry repeats) until max_attempts, when the
 * row is kept as "failed". Delivery is at least once: a crash between the
 * answer and the store's update sends it again, with the same webhook-id,
 * and pending rows left by a stopped server are sent by the next one.
 */
#ifndef OWLORE_WEBHOOKS_H
#define OWLORE_WEBHOOKS_H

#include <stddef.h>

struct service;

#define WEBHOOKS_BACKOFF_MAX 16

struct webhooks_config {
    unsigned poll_ms;      /* how often an idle worker reads the outbox */
    unsigned timeout_s;    /* per attempt, connection included */
    unsigned max_attempts; /* attempts before a delivery is given up */
    unsigned backoff_ms[WEBHOOKS_BACKOFF_MAX];
    unsigned n_backoff; /* entries used in backoff_ms, at least 1 */
};

/* 1 s polls, 10 s timeouts, 8 attempts, retried after 5 s, 30 s, 2 min,
 * 10 min, 1 h, 3 h and 6 h. */
void webhooks_config_defaults(struct webhooks_config *cfg);

/* Starts the worker on svc (which must outlive it) with cfg (copied).
 * 0, or -1 with a message. */
int webhooks_start(struct service *svc, const struct webhooks_config *cfg, char *err,
                   size_t errlen);
/* Stops the worker, aborting an attempt in flight (which is not counted:
 * it is sent again later), and joins it. A no-op when it was not started. */
void webhooks_stop(void);

#endif
