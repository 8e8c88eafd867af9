/*
 * webhook_sign.h: Standard Webhooks secrets and signatures.
 *
 * A secret is "whsec_" and the base64 of 32 random bytes. A message is
 * signed as "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." +
 * body)), where key is the base64-decoded part of the secret after
 * "whsec_", id the webhook-id header and timestamp the webhook-timestamp
 * header (unix seconds, in decimal).
 */
#ifndef OWLORE_WEBHOOK_SIGN_H
#define OWLORE_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_SECRET_PREFIX "whsec_"
#define WEBHOOK_SECRET_BYTES 32
#define WEBHOOK_SECRET_LEN (6 + 44 + 1)    /* prefix, base64 of 32 bytes, NUL */
#define WEBHOOK_SIGNATURE_LEN (3 + 44 + 1) /* "v1,", base64 of 32 bytes, NUL */

/* A new secret from the OpenSSL random generator: 0, or -1. */
int webhook_secret_new(char out[WEBHOOK_SECRET_LEN]);
/* The signature of (id, timestamp, body) under `secret`: 0, or -1 when
 * the secret is not "whsec_" + base64. */
int webhook_sign(const char *secret, const char *id, int64_t timestamp, const char *body,
                 size_t body_len, char out[WEBHOOK_SIGNATURE_LEN]);

#endif
