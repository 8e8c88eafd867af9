/*
 * upload.c: a streamed multipart upload into a blob file (see upload.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "upload.h"
#include "validate.h"

#define PP_BUFFER (16 << 10)

static void fail(struct upload *u, enum upload_status s)
{
    if (u->status == UPLOAD_OK)
        u->status = s;
}

/* 16 random hex digits into out (17 bytes). */
static void random_hex(char out[17])
{
    unsigned char r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)rand();
    digest_hex(r, sizeof r, out);
}

/* The client's file name without directories, printable ASCII only. */
static void keep_filename(struct upload *u, const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    size_t n = strlen(base);
    if (n > UPLOAD_FILENAME_MAX)
        n = UPLOAD_FILENAME_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)base[i];
        u->filename[i] = c >= 0x20 && c < 0x7f ? (char)c : '_';
    }
    u->filename[n] = '\0';
}

static void take_file(struct upload *u, const char *filename, const char *data, uint64_t off,
                      size_t size)
{
    if (u->have_file && off != u->bytes) {
        fail(u, UPLOAD_TWO_FILES);
        return;
    }
    if (!u->have_file) {
        u->have_file = 1;
        keep_filename(u, filename ? filename : "file");
    }
    for (size_t done = 0; done < size;) {
        ssize_t w = write(u->fd, data + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            u->sys_errno = w < 0 ? errno : EIO;
            fail(u, UPLOAD_IO);
            return;
        }
        done += (size_t)w;
    }
    if (sha256_update(&u->hash, data, size) != 0 || validator_feed(u->val, data, size) != 0)
        fail(u, UPLOAD_NOMEM);
    u->bytes += size;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size)
{
    struct upload *u = cls;
    (void)kind, (void)content_type, (void)transfer_encoding;
    if (!key) /* MHD passes no name for a part whose name it cannot parse (a NUL in it) */
        return MHD_YES;
    if (strcmp(key, "file") == 0) {
        take_file(u, filename, data, off, size);
    } else if (strcmp(key, "purpose") == 0) {
        if (off + size > UPLOAD_FIELD_MAX) {
            fail(u, UPLOAD_FIELD_LONG);
        } else {
            memcpy(u->purpose + off, data, size);
            u->purpose[off + size] = '\0';
            u->have_purpose = 1;
        }
    }
    return u->status == UPLOAD_OK ? MHD_YES : MHD_NO;
}

struct upload *upload_new(struct MHD_Connection *conn, const char *blob_dir,
                          const struct tokenizer *tok, enum chat_template tmpl, unsigned *why,
                          char *err, size_t errlen)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
    static const char multipart[] = "multipart/form-data";
    if (!ct || strncasecmp(ct, multipart, sizeof multipart - 1) != 0) {
        *why = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
        snprintf(err, errlen, "multipart/form-data");
        return NULL;
    }
    struct upload *u = calloc(1, sizeof *u);
    struct validate_opts o;
    validate_opts_default(&o);
    o.tok = tok;
    o.tmpl = tmpl;
    *why = MHD_HTTP_INTERNAL_SERVER_ERROR;
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    u->fd = -1;
    u->pp = MHD_create_post_processor(conn, PP_BUFFER, on_part, u);
    if (!u->pp) {
        *why = MHD_HTTP_BAD_REQUEST;
        snprintf(err, errlen, "The multipart/form-data Content-Type has no boundary.");
        upload_free(u);
        return NULL;
    }
    char rnd[17];
    random_hex(rnd);
    snprintf(u->tmp, sizeof u->tmp, "%s/tmp-%s", blob_dir, rnd);
    u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        snprintf(err, errlen, "%s: %s", u->tmp, strerror(errno));
        u->tmp[0] = '\0';
        upload_free(u);
        return NULL;
    }
    u->val = validator_new(&o);
    u->hashing = sha256_init(&u->hash) == 0;
    if (!u->val || !u->hashing) {
        snprintf(err, errlen, "out of memory");
        upload_free(u);
        return NULL;
    }
    return u;
}

void upload_feed(struct upload *u, const char *data, size_t n)
{
    if (u->status == UPLOAD_OK && MHD_post_process(u->pp, data, n) != MHD_YES)
        fail(u, UPLOAD_BAD_MULTIPART);
}

enum upload_status upload_end(struct upload *u)
{
    unsigned char d[SHA256_BYTES];
    struct validate_report r;
    if (MHD_destroy_post_processor(u->pp) != MHD_YES)
        fail(u, UPLOAD_BAD_MULTIPART);
    u->pp = NULL;
    if (u->status != UPLOAD_OK)
        return u->status;
    u->hashing = 0;
    if (sha256_final(&u->hash, d) != 0)
        fail(u, UPLOAD_NOMEM);
    digest_hex(d, sizeof d, u->sha256);
    if (validator_finish(u->val, &r) != 0) {
        fail(u, UPLOAD_NOMEM);
    } else {
        u->report_valid = r.valid;
        u->report = validate_report_json(&r);
        validate_report_free(&r);
        if (!u->report)
            fail(u, UPLOAD_NOMEM);
    }
    return u->status;
}

int upload_commit(struct upload *u, const char *blob_dir, char *path, size_t pathlen)
{
    char rnd[17];
    if (fsync(u->fd) != 0)
        return -1;
    int rc = close(u->fd);
    u->fd = -1;
    if (rc != 0)
        return -1;
    random_hex(rnd);
    snprintf(path, pathlen, "%s/%s.%s", blob_dir, u->sha256, rnd);
    if (rename(u->tmp, path) != 0)
        return -1;
    u->tmp[0] = '\0';
    int dfd = open(blob_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        unlink(path);
        return -1;
    }
    rc = fsync(dfd);
    close(dfd);
    if (rc != 0)
        unlink(path);
    return rc;
}

void upload_free(struct upload *u)
{
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    if (u->fd >= 0)
        close(u->fd);
    if (u->tmp[0])
        unlink(u->tmp);
    if (u->hashing)
        sha256_abort(&u->hash);
    validator_free(u->val);
    json_decref(u->report);
    free(u);
}
