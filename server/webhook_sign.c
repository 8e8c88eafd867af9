/*
 * webhook_sign.c: Standard Webhooks secrets and HMAC-SHA256 signatures
 * (see webhook_sign.h), with OpenSSL's random generator, base64 and
 * EVP_MAC HMAC.
 */
#include "webhook_sign.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define PREFIX_LEN (sizeof WEBHOOK_SECRET_PREFIX - 1)

int webhook_secret_new(char out[WEBHOOK_SECRET_LEN])
{
    unsigned char key[WEBHOOK_SECRET_BYTES];
    if (RAND_bytes(key, sizeof key) != 1)
        return -1;
    memcpy(out, WEBHOOK_SECRET_PREFIX, PREFIX_LEN);
    EVP_EncodeBlock((unsigned char *)out + PREFIX_LEN, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    return 0;
}

/* The key bytes of a secret into key (room for 3/4 of its base64 length);
 * their count, or -1. */
static int secret_key(const char *secret, unsigned char *key, size_t keylen)
{
    if (strncmp(secret, WEBHOOK_SECRET_PREFIX, PREFIX_LEN) != 0)
        return -1;
    const char *b64 = secret + PREFIX_LEN;
    size_t n = strlen(b64);
    if (n == 0 || n % 4 || n / 4 * 3 > keylen)
        return -1;
    int len = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return -1;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    len -= (b64[n - 1] == '=') + (b64[n - 2] == '=');
    return len > 0 ? len : -1;
}

int webhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
                 size_t body_len, char out[WEBHOOK_SIGNATURE_LEN])
{
    unsigned char key[256], mac[EVP_MAX_MD_SIZE];
    char ts[24];
    int key_len = secret_key(secret, key, sizeof key);
    if (key_len < 0)
        return -1;
    snprintf(ts, sizeof ts, "%" PRId64, timestamp);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *h = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t mac_len = 0;
    int ok = h && EVP_MAC_init(h, key, (size_t)key_len, params) &&
             EVP_MAC_update(h, (const unsigned char *)id, strlen(id)) &&
             EVP_MAC_update(h, (const unsigned char *)".", 1) &&
             EVP_MAC_update(h, (const unsigned char *)ts, strlen(ts)) &&
             EVP_MAC_update(h, (const unsigned char *)".", 1) &&
             EVP_MAC_update(h, (const unsigned char *)body, body_len) &&
             EVP_MAC_final(h, mac, &mac_len, sizeof mac) && mac_len == 32;
    EVP_MAC_CTX_free(h);
    EVP_MAC_free(hmac);
    OPENSSL_cleanse(key, sizeof key);
    if (!ok)
        return -1;
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
    return 0;
}
