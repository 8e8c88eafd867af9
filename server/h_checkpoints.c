/*
 * h_checkpoints.c: the download of a checkpoint's files. `?file=` names one
 * of the files ckpt.h writes (model.safetensors by default, or for a lora
 * checkpoint that holds the adapter alone adapter_model.safetensors, the
 * file the store's sha256 describes); anything else is a 400, so the name
 * can never leave the checkpoint directory.
 *
 * The body is streamed from the file descriptor. model.safetensors carries
 * ETag "<sha256>" from the store, and If-None-Match naming it (or "*")
 * answers 304. One range per request is served (bytes=a-b, bytes=a-,
 * bytes=-n) as 206 with Content-Range; a range past the end is 416 with a
 * Content-Range that gives the file's size. A Range header this handler does
 * not understand (several ranges, another unit, bad syntax) is ignored and
 * the whole file sent, as RFC 9110 allows.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "h_checkpoints.h"
#include "http.h"
#include "reply.h"
#include "service.h"
#include "store.h"

static const char *const ckpt_files[] = {
    "model.safetensors", "config.json",   "owlore.json", "tokenizer.json",
    "tokenizer_config.json", "tokenizer.bin", "optimizer.bin",
    "adapter_model.safetensors", "adapter_config.json", "adapter_optimizer.safetensors",
};

static int known_file(const char *name)
{
    for (size_t i = 0; i < sizeof ckpt_files / sizeof ckpt_files[0]; i++)
        if (strcmp(name, ckpt_files[i]) == 0)
            return 1;
    return 0;
}

static const char *content_type(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".json") == 0 ? "application/json"
                                                       : "application/octet-stream";
}

/* Strict decimal into *out; the end of the digits in *end. -1 when there
 * are none or the value overflows. */
static int parse_u64(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *end = s;
    *out = v;
    return 0;
}

enum range_kind checkpoints_parse_range(const char *h, uint64_t size, uint64_t *first,
                                        uint64_t *last)
{
    const char *p;
    uint64_t a, b;
    if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return RANGE_NONE;
    h += 6;
    if (*h == '-') { /* suffix: the last n bytes */
        if (parse_u64(h + 1, &p, &b) != 0 || *p)
            return RANGE_NONE;
        if (b == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_OK;
    }
    if (parse_u64(h, &p, &a) != 0 || *p != '-')
        return RANGE_NONE;
    b = UINT64_MAX;
    if (p[1] && (parse_u64(p + 1, &p, &b) != 0 || *p || b < a))
        return RANGE_NONE;
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = b >= size ? size - 1 : b;
    return RANGE_OK;
}

/* 1 when If-None-Match lists `etag` (weak comparison) or is "*". */
static int etag_matches(const char *inm, const char *etag)
{
    return inm && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

/* The checkpoint of the path's {id} and {ckpt_id}; on failure the reply is
 * queued into *ret and -1 returned. */
static int lookup(struct http_request *req, struct store_checkpoint *c, enum MHD_Result *ret)
{
    char err[512];
    struct store_job j;
    const char *id = http_param(req, "id"), *cid = http_param(req, "ckpt_id");
    struct store *st = service_get()->store;
    int rc = store_job_get(st, req->owner, id, &j, err, sizeof err);
    if (rc == STORE_OK) {
        store_job_clear(&j);
        rc = store_checkpoint_get(st, id, cid, c, err, sizeof err);
        if (rc == STORE_OK)
            return 0;
        if (rc == STORE_NOTFOUND) {
            *ret = reply_not_found(req, "No such checkpoint: %s", cid);
            return -1;
        }
    } else if (rc == STORE_NOTFOUND) {
        *ret = reply_not_found(req, "No such fine-tuning job: %s", id);
        return -1;
    }
    fprintf(stderr, "owlore serve: checkpoint content: %s\n", err);
    *ret = reply_internal(req);
    return -1;
}

/* A header-only reply (304) carrying the ETag. */
static enum MHD_Result not_modified(struct http_request *req, const char *etag)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return reply_internal(req);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, MHD_HTTP_NOT_MODIFIED, resp);
}

/* 416 with the OpenAI error body and the Content-Range naming the size. */
static enum MHD_Result unsatisfiable(struct http_request *req, uint64_t size)
{
    char cr[64];
    json_t *body = json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "type",
                             "invalid_request_error", "message",
                             "The requested range is outside the file.", "param", "Range",
                             "code", "range_not_satisfiable");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        return reply_internal(req);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return reply_internal(req);
    }
    snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") !=
            MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr) != MHD_YES) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

enum MHD_Result checkpoints_content(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *name = http_query(req, "file");
    struct store_checkpoint c;
    struct stat sb;
    enum MHD_Result ret;
    char path[4400], etag[SHA256_HEX_LEN + 2] = "", cr[96];
    uint64_t first = 0, last = 0;
    const int default_file = !name;
    if (!name)
        name = "model.safetensors";
    if (!known_file(name))
        return reply_bad_request(req, "file", "invalid_value",
                                 "'file' must name a file of the checkpoint, such as "
                                 "model.safetensors or config.json.");
    if (lookup(req, &c, &ret) != 0)
        return ret;
    snprintf(path, sizeof path, "%s/%s", c.path, name);
    if (default_file && access(path, F_OK) != 0) { /* a lora checkpoint: the adapter */
        name = "adapter_model.safetensors";
        snprintf(path, sizeof path, "%s/%s", c.path, name);
    }
    if (default_file || strcmp(name, "model.safetensors") == 0)
        snprintf(etag, sizeof etag, "\"%s\"", c.sha256);
    store_checkpoint_clear(&c);
    if (etag[0] && etag_matches(http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH), etag))
        return not_modified(req, etag);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (e == ENOENT)
            return reply_not_found(req, "This checkpoint has no %s.", name);
        fprintf(stderr, "owlore serve: checkpoint content: %s: %s\n", path, strerror(e));
        return reply_internal(req);
    }
    uint64_t size = (uint64_t)sb.st_size;
    enum range_kind rk =
        checkpoints_parse_range(http_header(req, MHD_HTTP_HEADER_RANGE), size, &first, &last);
    if (rk == RANGE_UNSATISFIABLE) {
        close(fd);
        return unsatisfiable(req, size);
    }
    uint64_t len = rk == RANGE_OK ? last - first + 1 : size;
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64(len, fd, first);
    if (!resp) {
        close(fd);
        return reply_internal(req);
    }
    snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, size);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(name)) !=
            MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") != MHD_YES ||
        (etag[0] && MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES) ||
        (rk == RANGE_OK &&
         MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr) != MHD_YES)) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, rk == RANGE_OK ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, resp);
}
