/*
 * digest.c: SHA-256 through OpenSSL's EVP interface (links -lcrypto).
 *
 * Large buffers are fed in 64 MiB pieces so a multi-gigabyte parameter
 * block never meets an int-sized length inside OpenSSL.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bf16.h"
#include "digest.h"

#define PIECE ((size_t)64 << 20)

int sha256_init(struct sha256 *h)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    h->ctx = NULL;
    if (!c)
        return -1;
    if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        return -1;
    }
    h->ctx = c;
    return 0;
}

int sha256_update(struct sha256 *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n > 0) {
        size_t k = n < PIECE ? n : PIECE;
        if (EVP_DigestUpdate(h->ctx, p, k) != 1)
            return -1;
        p += k;
        n -= k;
    }
    return 0;
}

int sha256_final(struct sha256 *h, unsigned char out[SHA256_BYTES])
{
    unsigned int len = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, out, &len) == 1 && len == SHA256_BYTES;
    sha256_abort(h);
    return ok ? 0 : -1;
}

void sha256_abort(struct sha256 *h)
{
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}

int sha256_buffer(const void *data, size_t n, unsigned char out[SHA256_BYTES])
{
    struct sha256 h;
    if (sha256_init(&h) != 0)
        return -1;
    if (sha256_update(&h, data, n) != 0) {
        sha256_abort(&h);
        return -1;
    }
    return sha256_final(&h, out);
}

int sha256_file(const char *path, unsigned char out[SHA256_BYTES], char *err,
                size_t errlen)
{
    const size_t cap = (size_t)1 << 20;
    unsigned char *buf;
    struct sha256 h;
    FILE *f = fopen(path, "rb");
    size_t n;
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(cap);
    if (!buf || sha256_init(&h) != 0) {
        free(buf);
        fclose(f);
        snprintf(err, errlen, "%s: out of memory for SHA-256", path);
        return -1;
    }
    while ((n = fread(buf, 1, cap, f)) > 0) {
        if (sha256_update(&h, buf, n) != 0)
            break;
    }
    int bad = ferror(f) || !feof(f);
    free(buf);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error while hashing", path);
        sha256_abort(&h);
        return -1;
    }
    if (sha256_final(&h, out) != 0) {
        snprintf(err, errlen, "%s: SHA-256 failed (OpenSSL)", path);
        return -1;
    }
    return 0;
}

/* Hash n device floats at p through buf (chunk floats). */
static int hash_device(struct sha256 *h, const struct backend *be, const float *p,
                       size_t n, float *buf, size_t chunk)
{
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        be->download(buf, p + off, k * sizeof(float));
        rc = sha256_update(h, buf, k * sizeof(float));
    }
    return rc;
}

/* Hash n bf16 device values at p as their fp32 widenings, through buf
 * (chunk floats). */
static int hash_bf16(struct sha256 *h, const struct backend *be, const unsigned short *p,
                     size_t n, float *buf, size_t chunk)
{
    uint16_t *half = malloc(chunk * sizeof *half);
    int rc = half ? 0 : -1;
    for (size_t off = 0; rc == 0 && off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        be->download(half, p + off, k * sizeof *half);
        for (size_t i = 0; i < k; i++)
            buf[i] = bf16_to_f32(half[i]);
        rc = sha256_update(h, buf, k * sizeof(float));
    }
    free(half);
    return rc;
}

int sha256_model(const struct model *m, unsigned char out[SHA256_BYTES])
{
    if (m->be->host_memory && !m->blocks16)
        return sha256_buffer(m->mem, m->n_params * sizeof(float), out);
    /* device memory or bf16 storage: the fp32 layout (embed | blocks |
     * final_norm | head) through a host buffer, 64 MiB at a time, bf16
     * widened */
    const struct model_config *c = &m->cfg;
    const size_t chunk = (size_t)1 << 24, embed = (size_t)c->vocab_size * c->dim;
    float *buf = malloc(chunk * sizeof(float));
    struct sha256 h;
    int rc = buf && sha256_init(&h) == 0 ? 0 : -1;
    /* embed | blocks, contiguous in either storage */
    const size_t front = embed + (size_t)c->n_layers * model_block_floats(c);
    if (rc == 0)
        rc = m->embed16 ? hash_bf16(&h, m->be, m->embed16, front, buf, chunk)
                        : hash_device(&h, m->be, m->w.embed, front, buf, chunk);
    if (rc == 0)
        rc = hash_device(&h, m->be, m->w.final_norm, (size_t)c->dim, buf, chunk);
    if (rc == 0 && !c->tied_embeddings)
        rc = m->head16 ? hash_bf16(&h, m->be, m->head16, embed, buf, chunk)
                       : hash_device(&h, m->be, m->w.lm_head, embed, buf, chunk);
    if (rc == 0)
        rc = sha256_final(&h, out);
    else if (buf)
        sha256_abort(&h);
    free(buf);
    return rc;
}

void digest_hex(const unsigned char *d, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[2 * n] = 0;
}
