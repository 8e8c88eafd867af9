/*
 * idempotency.c: Idempotency-Key reservations, replays and records over
 * the store (see idempotency.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "digest.h"
#include "http.h"
#include "idempotency.h"
#include "reply.h"
#include "service.h"
#include "store.h"

#define PRUNE_EVERY_S 3600

static atomic_llong last_prune;

static int key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEM_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x21 || k[i] > 0x7e)
            return 0;
    return 1;
}

/* Hex SHA-256 of method, path and the gathered body, NUL-separated. */
static int request_hash(const struct http_request *req, char hex[2 * SHA256_BYTES + 1])
{
    struct sha256 h;
    unsigned char d[SHA256_BYTES];
    if (sha256_init(&h) != 0)
        return -1;
    if (sha256_update(&h, req->method, strlen(req->method) + 1) != 0 ||
        sha256_update(&h, req->path, strlen(req->path) + 1) != 0 ||
        (req->body && sha256_update(&h, req->body, req->body_len) != 0)) {
        sha256_abort(&h);
        return -1;
    }
    if (sha256_final(&h, d) != 0)
        return -1;
    digest_hex(d, sizeof d, hex);
    return 0;
}

static void prune(struct store *st)
{
    long long now = time(NULL), last = atomic_load(&last_prune);
    char err[256];
    if (now - last < PRUNE_EVERY_S || !atomic_compare_exchange_strong(&last_prune, &last, now))
        return;
    if (store_idem_prune(st, now - IDEM_TTL_S, NULL, err, sizeof err) != STORE_OK)
        fprintf(stderr, "owlore serve: idempotency prune: %s\n", err);
}

enum MHD_Result idem_begin(struct http_request *req)
{
    struct service *svc = service_get();
    const char *key = http_header(req, "Idempotency-Key");
    char hash[2 * SHA256_BYTES + 1], err[512];
    if (!svc || !key)
        return MHD_YES;
    if (!key_ok(key))
        return reply_bad_request(req, "Idempotency-Key", "invalid_idempotency_key",
                                 "Idempotency-Key must be 1 to %d printable ASCII characters.",
                                 IDEM_KEY_MAX);
    if (request_hash(req, hash) != 0)
        return reply_internal(req);
    prune(svc->store);
    struct store_idem r;
    int rc = store_idem_begin(svc->store, req->owner, key, hash, &r, err, sizeof err);
    enum MHD_Result ret = MHD_YES;
    if (rc == STORE_OK) {
        snprintf(req->idem_key, sizeof req->idem_key, "%s", key);
        req->idem_reserved = 1;
    } else if (rc == STORE_EXISTS) {
        ret = reply_replay(req, (unsigned)r.status, r.body ? r.body : "{}");
    } else if (rc == STORE_CONFLICT && r.status == 0) {
        ret = reply_conflict(req, "idempotency_key_in_use",
                             "A request with this Idempotency-Key is still being processed; "
                             "retry later.");
    } else if (rc == STORE_CONFLICT) {
        ret = reply_error(req, 422, "invalid_request_error", "idempotency_key_reused",
                          "Idempotency-Key",
                          "This Idempotency-Key was already used for a different request.");
    } else {
        fprintf(stderr, "owlore serve: idempotency: %s\n", err);
        ret = reply_internal(req);
    }
    store_idem_clear(&r);
    return ret;
}

void idem_record(struct http_request *req, unsigned status, const char *body, size_t len)
{
    struct service *svc = service_get();
    char err[512];
    if (!req->idem_reserved || !svc)
        return;
    req->idem_reserved = 0;
    char *text = strndup(body, len);
    int rc = status >= 500 || !text
                 ? store_idem_release(svc->store, req->owner, req->idem_key, err, sizeof err)
                 : store_idem_finish(svc->store, req->owner, req->idem_key, (int)status, text, err,
                                     sizeof err);
    if (rc != STORE_OK)
        fprintf(stderr, "owlore serve: idempotency record: %s\n", err);
    free(text);
}

void idem_abandon(struct http_request *req)
{
    struct service *svc = service_get();
    char err[512];
    if (!req->idem_reserved || !svc)
        return;
    req->idem_reserved = 0;
    if (store_idem_release(svc->store, req->owner, req->idem_key, err, sizeof err) != STORE_OK)
        fprintf(stderr, "owlore serve: idempotency release: %s\n", err);
}
