/*
 * session.c: the in-memory table of dashboard sessions and the cookie check
 * auth.c calls (see session.h). One mutex guards the table; a lookup hashes
 * the presented token and compares digests with CRYPTO_memcmp.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <openssl/crypto.h>
#include <pthread.h>

#include "digest.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "session.h"
#include "store.h"

struct session {
    unsigned char hash[SHA256_BYTES];
    char owner[64];
    char key_id[STORE_ID_LEN];
    int64_t expires_at; /* 0: the slot is free */
};

static struct session table[SESSION_MAX];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* The digest of a well-formed token (64 lowercase hex digits); -1 else. */
static int token_hash(const char *token, unsigned char out[SHA256_BYTES])
{
    if (!token || strlen(token) != SESSION_TOKEN_LEN - 1)
        return -1;
    for (const char *p = token; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return -1;
    return sha256_buffer(token, SESSION_TOKEN_LEN - 1, out) == 0 ? 0 : -1;
}

/* The live session with digest h (mu held), or NULL. */
static struct session *find(const unsigned char h[SHA256_BYTES], int64_t now)
{
    for (int i = 0; i < SESSION_MAX; i++)
        if (table[i].expires_at > now && CRYPTO_memcmp(table[i].hash, h, SHA256_BYTES) == 0)
            return &table[i];
    return NULL;
}

int session_create(const char *owner, const char *key_id, char token[SESSION_TOKEN_LEN],
                   int64_t *expires_at)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char r[(SESSION_TOKEN_LEN - 1) / 2], h[SHA256_BYTES];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return -1;
    for (size_t i = 0; i < sizeof r; i++) {
        token[2 * i] = hex[r[i] >> 4];
        token[2 * i + 1] = hex[r[i] & 15];
    }
    token[SESSION_TOKEN_LEN - 1] = '\0';
    if (token_hash(token, h) != 0)
        return -1;
    int64_t now = (int64_t)time(NULL);
    pthread_mutex_lock(&mu);
    struct session *slot = &table[0];
    for (int i = 0; i < SESSION_MAX; i++) {
        if (table[i].expires_at <= now) {
            slot = &table[i];
            break;
        }
        if (table[i].expires_at < slot->expires_at)
            slot = &table[i];
    }
    memcpy(slot->hash, h, sizeof h);
    snprintf(slot->owner, sizeof slot->owner, "%s", owner);
    snprintf(slot->key_id, sizeof slot->key_id, "%s", key_id);
    slot->expires_at = *expires_at = now + SESSION_TTL_S;
    pthread_mutex_unlock(&mu);
    return 0;
}

static const char *cookie(struct http_request *req)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, SESSION_COOKIE);
}

int session_end(struct http_request *req)
{
    unsigned char h[SHA256_BYTES];
    if (token_hash(cookie(req), h) != 0)
        return 0;
    pthread_mutex_lock(&mu);
    struct session *s = find(h, (int64_t)time(NULL));
    if (s)
        memset(s, 0, sizeof *s);
    pthread_mutex_unlock(&mu);
    return s != NULL;
}

/* Copies the live session of the request's cookie into *out; 0, or -1. */
static int lookup(struct http_request *req, struct session *out)
{
    unsigned char h[SHA256_BYTES];
    if (token_hash(cookie(req), h) != 0)
        return -1;
    pthread_mutex_lock(&mu);
    struct session *s = find(h, (int64_t)time(NULL));
    if (s)
        *out = *s;
    pthread_mutex_unlock(&mu);
    return s ? 0 : -1;
}

int64_t session_expiry(struct http_request *req)
{
    struct session s;
    return lookup(req, &s) == 0 ? s.expires_at : 0;
}

/* 1 when API key `id` is live, 0 when revoked, -1 on a store error. */
static int key_live(const char *id)
{
    struct store_key *keys;
    size_t n;
    char err[512];
    if (store_key_list(service_get()->store, &keys, &n, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "owlore serve: session: %s\n", err);
        return -1;
    }
    int live = 0;
    for (size_t i = 0; i < n && !live; i++)
        live = strcmp(keys[i].id, id) == 0;
    store_key_list_free(keys, n);
    return live;
}

int session_authenticate(struct http_request *req, enum MHD_Result *ret)
{
    struct session s;
    if (lookup(req, &s) != 0)
        return 0;
    int live = key_live(s.key_id);
    if (live < 0) {
        *ret = reply_internal(req);
        return 1;
    }
    if (!live) {
        session_end(req);
        return 0;
    }
    const char *csrf = http_header(req, SESSION_CSRF_HEADER);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0 &&
        !(csrf && strcmp(csrf, "1") == 0)) {
        *ret = reply_error(req, MHD_HTTP_FORBIDDEN, "invalid_request_error", "csrf_header_missing",
                           NULL, "A request signed in by the dashboard session cookie that "
                           "changes anything must carry the header %s: 1.", SESSION_CSRF_HEADER);
        return 1;
    }
    snprintf(req->owner, sizeof req->owner, "%s", s.owner);
    *ret = MHD_YES;
    return 1;
}
