/*
 * webhooks.c: the webhook delivery worker (see webhooks.h): the thread's
 * loop over the outbox, and one libcurl POST per attempt.
 */
#include "webhooks.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <curl/curl.h>

#include "service.h"
#include "store.h"
#include "store_webhooks.h"
#include "webhook_sign.h"
#include "webhook_url.h"

#define BATCH 16 /* due deliveries read at once */

static struct {
    struct service *svc;
    struct webhooks_config cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;
    atomic_int stopping; /* read by libcurl's progress callback too */
} w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

void webhooks_config_defaults(struct webhooks_config *cfg)
{
    static const unsigned backoff_ms[] = {5000, 30000, 120000, 600000, 3600000, 10800000,
                                          21600000};
    memset(cfg, 0, sizeof *cfg);
    cfg->poll_ms = 1000;
    cfg->timeout_s = 10;
    cfg->max_attempts = 8;
    cfg->n_backoff = sizeof backoff_ms / sizeof backoff_ms[0];
    memcpy(cfg->backoff_ms, backoff_ms, sizeof backoff_ms);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* libcurl's socket opener: only the address the URL check approved. */
static curl_socket_t open_checked(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    const struct webhook_target *t = clientp;
    char text[INET6_ADDRSTRLEN] = "";
    const void *ip = NULL;
    (void)purpose;
    if (a->family == AF_INET)
        ip = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
    else if (a->family == AF_INET6)
        ip = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
    if (!ip || !inet_ntop(a->family, ip, text, sizeof text) || strcmp(text, t->addr) != 0)
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Answers are read and dropped. */
static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Aborts the transfer when the worker is stopping. */
static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)ud, (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(&w.stopping);
}

static struct curl_slist *add_header(struct curl_slist *h, const char *name, const char *value)
{
    char line[512];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *n = h ? curl_slist_append(h, line) : NULL;
    if (!n)
        curl_slist_free_all(h);
    return n;
}

/* One attempt at delivery d: 0 when the receiver answered 2xx, else -1
 * with the reason in why. */
static int send_once(const struct store_delivery *d, char *why, size_t whylen)
{
    struct webhook_target t;
    char sig[WEBHOOK_SIGNATURE_LEN], ts[24];
    if (webhook_url_check(d->url, w.svc->webhook_allow_loopback, &t, why, whylen) != 0)
        return -1;
    int64_t now = time(NULL);
    size_t len = strlen(d->payload);
    if (webhook_sign(d->secret, d->id, now, d->payload, len, sig) != 0) {
        snprintf(why, whylen, "the webhook's secret is malformed");
        return -1;
    }
    snprintf(ts, sizeof ts, "%" PRId64, now);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = add_header(h, "webhook-id", d->id);
    h = add_header(h, "webhook-timestamp", ts);
    h = add_header(h, "webhook-signature", sig);
    h = add_header(h, "Expect", ""); /* no 100-continue round trip */
    struct curl_slist *resolve = t.resolve[0] ? curl_slist_append(NULL, t.resolve) : NULL;
    CURL *c = curl_easy_init();
    if (!h || !c || (t.resolve[0] && !resolve)) {
        snprintf(why, whylen, "out of memory");
        curl_slist_free_all(h);
        curl_slist_free_all(resolve);
        curl_easy_cleanup(c);
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, t.https ? "https" : "http");
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_checked);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &t);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never through a proxy from the environment */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)w.cfg.timeout_s);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "owlore-webhooks/1");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->payload);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    CURLcode res = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    curl_slist_free_all(resolve);
    if (res != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(res));
        return -1;
    }
    if (status < 200 || status > 299) {
        snprintf(why, whylen, "the receiver answered HTTP %ld", status);
        return -1;
    }
    return 0;
}

/* Sends d once and records the outcome in the outbox. */
static void attempt(struct store *st, const struct store_delivery *d)
{
    char why[512], err[512];
    int rc;
    if (send_once(d, why, sizeof why) == 0) {
        rc = store_outbox_delivered(st, d->id, err, sizeof err);
    } else if (atomic_load(&w.stopping)) {
        return; /* cut short by the shutdown: not the receiver's failure */
    } else {
        unsigned made = (unsigned)d->attempts + 1;
        int64_t next = 0;
        if (made < w.cfg.max_attempts) {
            unsigned k = made < w.cfg.n_backoff ? made : w.cfg.n_backoff;
            next = now_ms() + w.cfg.backoff_ms[k - 1];
        } else {
            fprintf(stderr,
                    "owlore serve: webhook %s: giving up delivery %s after %u attempts: %s\n",
                    d->webhook_id, d->id, made, why);
        }
        rc = store_outbox_failed(st, d->id, next, why, err, sizeof err);
    }
    if (rc == STORE_ERROR)
        fprintf(stderr, "owlore serve: webhooks: %s\n", err);
}

static void *worker(void *arg)
{
    (void)arg;
    struct store *st = w.svc->store;
    char err[512];
    while (!atomic_load(&w.stopping)) {
        struct store_delivery_list l;
        int rc = store_outbox_due(st, now_ms(), BATCH, &l, err, sizeof err);
        if (rc != STORE_OK)
            fprintf(stderr, "owlore serve: webhooks: %s\n", err);
        for (size_t i = 0; i < l.n && !atomic_load(&w.stopping); i++)
            attempt(st, &l.v[i]);
        int more = rc == STORE_OK && l.n == BATCH;
        store_delivery_list_free(&l);
        if (more)
            continue;
        pthread_mutex_lock(&w.mu);
        if (!atomic_load(&w.stopping)) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += w.cfg.poll_ms / 1000;
            until.tv_nsec += (long)(w.cfg.poll_ms % 1000) * 1000000;
            if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&w.cv, &w.mu, &until);
        }
        pthread_mutex_unlock(&w.mu);
    }
    return NULL;
}

int webhooks_start(struct service *svc, const struct webhooks_config *cfg, char *err,
                   size_t errlen)
{
    if (cfg->n_backoff < 1 || cfg->n_backoff > WEBHOOKS_BACKOFF_MAX || cfg->max_attempts < 1) {
        snprintf(err, errlen, "webhook worker: bad retry settings");
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "webhook worker: libcurl did not initialize");
        return -1;
    }
    w.svc = svc;
    w.cfg = *cfg;
    atomic_store(&w.stopping, 0);
    int rc = pthread_create(&w.thread, NULL, worker, NULL);
    if (rc != 0) {
        curl_global_cleanup();
        snprintf(err, errlen, "webhook worker: %s", strerror(rc));
        return -1;
    }
    w.started = 1;
    return 0;
}

void webhooks_stop(void)
{
    if (!w.started)
        return;
    pthread_mutex_lock(&w.mu);
    atomic_store(&w.stopping, 1);
    pthread_cond_signal(&w.cv);
    pthread_mutex_unlock(&w.mu);
    pthread_join(w.thread, NULL);
    curl_global_cleanup();
    w.started = 0;
}
