/*
 * upload.h: one multipart/form-data upload received as it streams in.
 *
 * The body goes through MHD's post processor, which splits it into parts
 * whatever the chunking (boundaries may straddle chunks). The bytes of the
 * `file` part are written to a temporary file in the blob directory
 * (tmp-<random>), hashed with SHA-256 and fed to the dataset validator
 * (structure only) as they arrive, so the upload is never held in memory;
 * the `purpose` field is kept (at most UPLOAD_FIELD_MAX bytes); other
 * fields are ignored. upload_end finishes the three streams; upload_commit
 * then fsyncs and renames the temporary file to <blob_dir>/<sha256>.<random>
 * and fsyncs the directory, as store.h's upload protocol asks. upload_free
 * removes a temporary file that was never committed.
 */
#ifndef OWLORE_UPLOAD_H
#define OWLORE_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <microhttpd.h>

#include "chat.h"
#include "digest.h"

#define UPLOAD_FIELD_MAX 64
#define UPLOAD_FILENAME_MAX 255

enum upload_status {
    UPLOAD_OK,
    UPLOAD_BAD_MULTIPART, /* the body is not well-formed multipart */
    UPLOAD_TWO_FILES,     /* more than one `file` part */
    UPLOAD_FIELD_LONG,    /* `purpose` longer than UPLOAD_FIELD_MAX */
    UPLOAD_IO,            /* writing the temporary file failed (see sys_errno) */
    UPLOAD_NOMEM,
};

struct tokenizer;

struct upload {
    enum upload_status status; /* the first problem met; UPLOAD_OK so far */
    int sys_errno;             /* with UPLOAD_IO */
    int have_file, have_purpose;
    char filename[UPLOAD_FILENAME_MAX + 1]; /* printable ASCII, no directory */
    char purpose[UPLOAD_FIELD_MAX + 1];
    uint64_t bytes;                  /* of the file part */
    char sha256[SHA256_HEX_LEN];     /* after upload_end */
    json_t *report;                  /* the validator's report, after upload_end */
    int report_valid;
    /* private */
    struct MHD_PostProcessor *pp;
    int fd;
    struct sha256 hash;
    int hashing;
    struct validator *val;
    char tmp[4200];
};

/* Starts an upload on `conn` (whose Content-Type must be multipart/form-data
 * with a boundary) with its temporary file in blob_dir. With a tokenizer
 * (may be NULL) the report also has token statistics of the examples
 * rendered with template tmpl. NULL with *why set: 415 (not multipart), 400
 * (no boundary) or 500 (no file or memory), and a message in err. */
struct upload *upload_new(struct MHD_Connection *conn, const char *blob_dir,
                          const struct tokenizer *tok, enum chat_template tmpl, unsigned *why,
                          char *err, size_t errlen);
/* Feeds one body chunk. Problems are recorded in u->status and the rest of
 * the body is then ignored; the request is answered once it has all come. */
void upload_feed(struct upload *u, const char *data, size_t n);
/* The body has ended: finishes parsing, the digest and the report. Returns
 * u->status. */
enum upload_status upload_end(struct upload *u);
/* After a successful upload_end with a file: makes the bytes durable under
 * their blob path (written to path, size pathlen). 0, or -1 with errno
 * (nothing is then left at path). */
int upload_commit(struct upload *u, const char *blob_dir, char *path, size_t pathlen);
/* Releases everything, removing an uncommitted temporary file. NULL is fine. */
void upload_free(struct upload *u);

#endif
