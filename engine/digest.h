/*
 * digest.h: SHA-256 digests (OpenSSL EVP) for cache keys and file checks.
 *
 * A streaming context (init, update..., final), one-shot helpers for a
 * buffer, a file and a model's parameters, and lower-case hex output.
 * The model digest is the SHA-256 of the fp32 parameter bytes in storage
 * order (model.h: embed | blocks | final_norm | lm_head when untied), as
 * they lie in host memory (little-endian on every supported machine).
 */
#ifndef OWLORE_DIGEST_H
#define OWLORE_DIGEST_H

#include <stddef.h>

#include "model.h"

#define SHA256_BYTES 32
#define SHA256_HEX_LEN 65 /* 64 hex digits and the NUL */

struct sha256 {
    void *ctx; /* EVP_MD_CTX */
};

/* 0, or -1 when OpenSSL cannot set up a context. */
int sha256_init(struct sha256 *h);
int sha256_update(struct sha256 *h, const void *data, size_t n);
/* Writes the digest and releases the context (also on failure). */
int sha256_final(struct sha256 *h, unsigned char out[SHA256_BYTES]);
/* Releases a context abandoned before sha256_final (NULL ctx is fine). */
void sha256_abort(struct sha256 *h);

int sha256_buffer(const void *data, size_t n, unsigned char out[SHA256_BYTES]);
/* Digest of a file's bytes; -1 with a message naming the file. */
int sha256_file(const char *path, unsigned char out[SHA256_BYTES], char *err,
                size_t errlen);
/* Digest of the model's parameters as fp32 in the layout of model.h (any
 * backend; bf16-stored blocks hash as their fp32 widening, so callers take a
 * base model's digest before model_store_bf16). */
int sha256_model(const struct model *m, unsigned char out[SHA256_BYTES]);

/* hex (2n + 1 chars) = lower-case hex of d (n bytes). */
void digest_hex(const unsigned char *d, size_t n, char *hex);

#endif
