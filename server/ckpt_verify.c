/*
 * ckpt_verify.c: is a checkpoint directory whole (see ckpt_verify.h)? A
 * crash cannot leave a half-renamed checkpoint (ckpt_write renames a
 * complete, fsynced directory into place), but files can still be lost or
 * damaged afterwards; this reads every byte and compares digests.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "ckpt_verify.h"
#include "digest.h"
#include "load_hf.h"
#include "store.h"

/* 0 when dir/name has `bytes` bytes and sha256 `hex`, else -1 with why. */
static int check_file(const char *dir, const char *name, const char *hex, json_int_t bytes,
                      char *why, size_t whylen)
{
    char path[4400], got[SHA256_HEX_LEN];
    unsigned char d[SHA256_BYTES];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st) != 0 || (json_int_t)st.st_size != bytes) {
        snprintf(why, whylen, "%s is missing or not %" JSON_INTEGER_FORMAT " bytes", name,
                 bytes);
        return -1;
    }
    if (sha256_file(path, d, why, whylen) != 0)
        return -1;
    digest_hex(d, SHA256_BYTES, got);
    if (!hex || strcmp(got, hex) != 0) {
        snprintf(why, whylen, "%s has sha256 %.12s..., not %.12s...", name, got,
                 hex ? hex : "(none recorded)");
        return -1;
    }
    return 0;
}

/* 0 when c->path is whole, else -1 with why. */
static int check_dir(const struct store_checkpoint *c, char *why, size_t whylen)
{
    char path[4400];
    struct model_config cfg;
    json_error_t je;
    snprintf(path, sizeof path, "%s/owlore.json", c->path);
    json_t *info = json_load_file(path, 0, &je);
    json_t *files = json_object_get(info, "files");
    json_t *model = json_object_get(files, "model.safetensors");
    if (!model) /* a lora checkpoint that holds the adapter alone */
        model = json_object_get(files, "adapter_model.safetensors");
    const char *model_sha = json_string_value(json_object_get(model, "sha256"));
    int rc = -1;
    snprintf(path, sizeof path, "%s/config.json", c->path);
    if (!info)
        snprintf(why, whylen, "owlore.json: %s", je.text);
    else if (!model_sha || !json_object_get(files, "optimizer.bin"))
        snprintf(why, whylen, "owlore.json lists no model.safetensors or optimizer.bin");
    else if (!c->sha256 || strcmp(model_sha, c->sha256) != 0 ||
             json_integer_value(json_object_get(model, "bytes")) != c->bytes)
        snprintf(why, whylen, "model.safetensors in owlore.json differs from the record");
    else if (hf_config_parse(path, &cfg, why, whylen) == 0)
        rc = 0;
    const char *name;
    json_t *f;
    json_object_foreach(files, name, f) {
        if (rc != 0)
            break;
        rc = check_file(c->path, name, json_string_value(json_object_get(f, "sha256")),
                        json_integer_value(json_object_get(f, "bytes")), why, whylen);
    }
    json_decref(info);
    return rc;
}

int ckpt_verify(const struct store_checkpoint *c, void *arg)
{
    char why[512];
    (void)arg;
    if (check_dir(c, why, sizeof why) == 0)
        return 1;
    fprintf(stderr, "owlore serve: job %s: checkpoint %s (step %" PRId64 ") is skipped: %s\n",
            c->job_id, c->id, c->step, why);
    return 0;
}
