/*
 * h_files.c: the /v1/files handlers. Files belong to the tenant of the
 * request (req->owner, auth.h); another tenant's file ids answer 404.
 *
 * A file object is OpenAI's {"id", "object": "file", "bytes", "created_at",
 * "expires_at", "filename", "purpose", "status", "status_details"} plus our
 * "sha256" of the bytes and "validation", the dataset validator's report
 * (validate.h). status is "processed" when the dataset is valid and "error"
 * otherwise, with status_details naming the first problem. Uploads follow
 * store.h's blob protocol: bytes are kept once per sha256, and a blob file is
 * unlinked when the last file naming it is deleted. An upload whose declared
 * Content-Length would leave less than DISK_RESERVE free in the data
 * directory is refused with 507 before its body is read; running out of
 * room mid-upload (a chunked body, another writer) is 507 too, and the
 * partial file is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "h_files.h"
#include "http.h"
#include "list_query.h"
#include "reply.h"
#include "service.h"
#include "store.h"
#include "upload.h"

#define DISK_RESERVE ((unsigned long long)64 << 20)

static void blob_dir(char *out, size_t n)
{
    snprintf(out, n, "%s/blobs", service_get()->data_dir);
}

/* "line N: message" of the report's first error, or NULL when it has none. */
static json_t *status_details(json_t *report)
{
    json_t *e = json_array_get(json_object_get(report, "errors"), 0);
    json_int_t line = json_integer_value(json_object_get(e, "line"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    if (!msg)
        return json_null();
    return line > 0 ? json_sprintf("line %lld: %s", (long long)line, msg) : json_string(msg);
}

static json_t *file_json(const struct store_file *f)
{
    json_t *report = f->validation ? json_loads(f->validation, 0, NULL) : NULL;
    if (!report)
        report = json_null();
    json_t *details = strcmp(f->status, "error") == 0 ? status_details(report) : json_null();
    return json_pack("{s:s, s:s, s:I, s:I, s:n, s:s, s:s, s:s, s:o, s:s, s:o}", "id", f->id,
                     "object", "file", "bytes", (json_int_t)f->bytes, "created_at",
                     (json_int_t)f->created_at, "expires_at", "filename", f->filename, "purpose",
                     f->purpose, "status", f->status, "status_details", details, "sha256",
                     f->sha256, "validation", report);
}

/* 1 when a body of `declared` bytes would leave less than DISK_RESERVE
 * free in dir (the database, checkpoints and temporary files need room). */
static int no_room(const char *dir, const char *declared)
{
    struct statvfs v;
    char *end;
    unsigned long long len = declared ? strtoull(declared, &end, 10) : 0;
    if (!declared || statvfs(dir, &v) != 0)
        return 0;
    unsigned long long avail = (unsigned long long)v.f_bavail * v.f_frsize;
    return avail < DISK_RESERVE || len > avail - DISK_RESERVE;
}

static enum MHD_Result upload_start(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    char dir[4200], err[512];
    unsigned why;
    blob_dir(dir, sizeof dir);
    if (no_room(dir, http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH)))
        return reply_error(req, MHD_HTTP_INSUFFICIENT_STORAGE, "server_error",
                           "insufficient_storage", NULL,
                           "The server has no room for a body of this size.");
    const struct service *svc = service_get();
    struct upload *u = upload_new(req->conn, dir, svc->tok, svc->tmpl, &why, err, sizeof err);
    if (!u && why == MHD_HTTP_UNSUPPORTED_MEDIA_TYPE)
        return reply_unsupported_media_type(req, err);
    if (!u && why == MHD_HTTP_BAD_REQUEST)
        return reply_bad_request(req, NULL, "invalid_multipart", "%s", err);
    if (!u) {
        fprintf(stderr, "owlore serve: upload: %s\n", err);
        return reply_internal(req);
    }
    req->ctx = u;
    req->ctx_free = (void (*)(void *))upload_free;
    return MHD_YES;
}

static enum MHD_Result upload_chunk(struct http_request *req, const char *data, size_t n)
{
    upload_feed(req->ctx, data, n);
    return MHD_YES;
}

const struct route_stream files_upload_stream = {upload_start, upload_chunk};

/* The answer to an upload that upload_end refused. */
static enum MHD_Result upload_refused(struct http_request *req, const struct upload *u)
{
    switch (u->status) {
    case UPLOAD_BAD_MULTIPART:
        return reply_bad_request(req, NULL, "invalid_multipart",
                                 "The request body is not valid multipart/form-data.");
    case UPLOAD_TWO_FILES:
        return reply_bad_request(req, "file", "invalid_value", "Send exactly one 'file' part.");
    case UPLOAD_FIELD_LONG:
        return reply_bad_request(req, "purpose", "invalid_value",
                                 "'purpose' is longer than %d bytes.", UPLOAD_FIELD_MAX);
    case UPLOAD_IO:
        if (u->sys_errno == ENOSPC || u->sys_errno == EDQUOT)
            return reply_error(req, MHD_HTTP_INSUFFICIENT_STORAGE, "server_error",
                               "insufficient_storage", NULL,
                               "The server has no room left for this file.");
        fprintf(stderr, "owlore serve: upload: %s\n", strerror(u->sys_errno));
        return reply_internal(req);
    case UPLOAD_NOMEM:
    case UPLOAD_OK:
        break;
    }
    return reply_internal(req);
}

enum MHD_Result files_post(struct http_request *req)
{
    struct upload *u = req->ctx;
    struct service *svc = service_get();
    char dir[4200], path[4400], err[512], *report;
    if (upload_end(u) != UPLOAD_OK)
        return upload_refused(req, u);
    if (!u->have_purpose)
        return reply_bad_request(req, "purpose", "missing_required_parameter",
                                 "Missing required parameter: 'purpose'.");
    if (strcmp(u->purpose, "fine-tune") != 0)
        return reply_bad_request(req, "purpose", "invalid_value",
                                 "'purpose' must be 'fine-tune' on this server.");
    if (!u->have_file)
        return reply_bad_request(req, "file", "missing_required_parameter",
                                 "Missing required parameter: 'file'.");
    blob_dir(dir, sizeof dir);
    if (upload_commit(u, dir, path, sizeof path) != 0) {
        fprintf(stderr, "owlore serve: upload: %s: %s\n", path, strerror(errno));
        return reply_internal(req);
    }
    report = json_dumps(u->report, JSON_COMPACT);
    struct store_file_new nf = {
        .owner = req->owner, .filename = u->filename, .purpose = u->purpose,
        .sha256 = u->sha256, .blob_path = path, .status = u->report_valid ? "processed" : "error",
        .validation = report, .bytes = (int64_t)u->bytes,
    };
    struct store_file f;
    int dup = 0;
    int rc = report ? store_file_insert(svc->store, &nf, &f, &dup, err, sizeof err) : STORE_ERROR;
    free(report);
    if (rc != STORE_OK || dup)
        unlink(path);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: upload: %s\n", report ? err : "out of memory");
        return reply_internal(req);
    }
    enum MHD_Result ret = reply_json(req, MHD_HTTP_OK, file_json(&f));
    store_file_clear(&f);
    return ret;
}

enum MHD_Result files_list(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    const char *after = http_query(req, "after");
    const char *purpose = http_query(req, "purpose");
    int limit = LIST_LIMIT_MAX;
    char err[512];
    struct store_file_list l;
    enum MHD_Result ret;
    if (list_limit(req, &limit, &ret) != 0)
        return ret;
    int rc = store_file_list(service_get()->store, req->owner, purpose, after, limit,
                             &l, err, sizeof err);
    if (rc != STORE_OK)
        return list_failed(req, rc, "file", "files list", err);
    json_t *data = json_array();
    for (size_t i = 0; i < l.n && data; i++)
        data = list_push(data, file_json(&l.v[i]));
    ret = list_reply_ids(req, data, l.n ? l.v[0].id : NULL, l.n ? l.v[l.n - 1].id : NULL,
                         l.has_more);
    store_file_list_free(&l);
    return ret;
}

/* Looks up the {id} of the path into *f; on failure the reply is queued
 * into *ret and -1 returned. */
static int lookup(struct http_request *req, struct store_file *f, enum MHD_Result *ret)
{
    char err[512];
    const char *id = http_param(req, "id");
    int rc = store_file_get(service_get()->store, req->owner, id, f, err, sizeof err);
    if (rc == STORE_OK)
        return 0;
    if (rc == STORE_NOTFOUND) {
        *ret = reply_not_found(req, "No such File object: %s", id);
    } else {
        fprintf(stderr, "owlore serve: files get: %s\n", err);
        *ret = reply_internal(req);
    }
    return -1;
}

enum MHD_Result files_get(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    struct store_file f;
    enum MHD_Result ret;
    if (lookup(req, &f, &ret) != 0)
        return ret;
    ret = reply_json(req, MHD_HTTP_OK, file_json(&f));
    store_file_clear(&f);
    return ret;
}

enum MHD_Result files_content(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    struct store_file f;
    struct stat sb;
    enum MHD_Result ret;
    char etag[SHA256_HEX_LEN + 2];
    if (lookup(req, &f, &ret) != 0)
        return ret;
    int fd = open(f.blob_path, O_RDONLY | O_CLOEXEC);
    snprintf(etag, sizeof etag, "\"%s\"", f.sha256);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        /* deleted between the lookup and the open */
        if (fd >= 0)
            close(fd);
        ret = errno == ENOENT ? reply_not_found(req, "No such File object: %s", f.id)
                              : reply_internal(req);
        store_file_clear(&f);
        return ret;
    }
    store_file_clear(&f);
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)sb.st_size, fd);
    if (!resp) {
        close(fd);
        return reply_internal(req);
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream") !=
            MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) != MHD_YES) {
        MHD_destroy_response(resp);
        return reply_internal(req);
    }
    return reply_response(req, MHD_HTTP_OK, resp);
}

enum MHD_Result files_delete(struct http_request *req)
{
    if (!service_get()) /* routes served without `owlore serve`'s service */
        return reply_unavailable(req, 1);
    char unlink_path[4400], err[512];
    const char *id = http_param(req, "id");
    int rc = store_file_delete(service_get()->store, req->owner, id, unlink_path,
                               sizeof unlink_path, err, sizeof err);
    if (rc == STORE_NOTFOUND)
        return reply_not_found(req, "No such File object: %s", id);
    if (rc == STORE_CONFLICT)
        return reply_conflict(req, "file_in_use",
                              "File %s is used by a fine-tuning job that has not finished.", id);
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore serve: files delete: %s\n", err);
        return reply_internal(req);
    }
    if (unlink_path[0] && unlink(unlink_path) != 0)
        fprintf(stderr, "owlore serve: files delete: %s: %s\n", unlink_path, strerror(errno));
    return reply_json(req, MHD_HTTP_OK,
                      json_pack("{s:s, s:s, s:b}", "id", id, "object", "file", "deleted", 1));
}
