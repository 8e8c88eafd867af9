/*
 * service.c: the process-wide service context (see service.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "service.h"
#include "load.h"
#include "store.h"
#include "tokenizer.h"

static struct service *current;

int service_init(struct service *svc, char *err, size_t errlen)
{
    char blobs[4200];
    snprintf(blobs, sizeof blobs, "%s/blobs", svc->data_dir);
    if (mkdir(blobs, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", blobs, strerror(errno));
        return -1;
    }
    current = svc;
    return 0;
}

/* 1 when `path` resolves to `allowed` or to a path under the directory
 * `allowed_dir` (either may be NULL). */
static int resolves_within(const char *path, const char *allowed, const char *allowed_dir)
{
    char real[PATH_MAX], a[PATH_MAX];
    if (!realpath(path, real))
        return 0;
    if (allowed && realpath(allowed, a) && strcmp(real, a) == 0)
        return 1;
    if (!allowed_dir || !realpath(allowed_dir, a))
        return 0;
    size_t n = strlen(a);
    return strncmp(real, a, n) == 0 && real[n] == '/';
}

const char *service_default_model_id(const struct service *svc)
{
    const char *m = svc->default_model, *slash = m ? strrchr(m, '/') : NULL;
    return slash ? slash + 1 : m ? m : "";
}

int service_model_path(const struct service *svc, const char *model, char *out, size_t n,
                       char *err, size_t errlen)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/models", svc->data_dir);
    if (!model || (svc->default_model && (strcmp(model, svc->default_model) == 0 ||
                                          strcmp(model, service_default_model_id(svc)) == 0))) {
        if (!svc->default_model) {
            snprintf(err, errlen, "No model given and the server has no default model.");
            return -1;
        }
        snprintf(out, n, "%s", svc->default_model);
        return 0;
    }
    if (!strchr(model, '/'))
        snprintf(out, n, "%s/%s", dir, model);
    else
        snprintf(out, n, "%s", model);
    if (model[0] && strcmp(model, ".") != 0 && strcmp(model, "..") != 0 &&
        resolves_within(out, svc->default_model, dir))
        return 0;
    snprintf(err, errlen, "Model '%.200s' is not available on this server: use the default "
             "model or one under its models directory.", model);
    return -1;
}

int service_sweep_blobs(const struct service *svc, int *removed, char *err, size_t errlen)
{
    char dir[4200], path[4500];
    snprintf(dir, sizeof dir, "%s/blobs", svc->data_dir);
    *removed = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int ref = strncmp(e->d_name, "tmp-", 4) == 0
                      ? 0
                      : store_blob_referenced(svc->store, path, err, errlen);
        if (ref < 0)
            rc = -1;
        else if (ref == 0 && unlink(path) == 0)
            (*removed)++;
    }
    closedir(d);
    return rc;
}

int service_load_tokenizer(struct service *svc, char *err, size_t errlen)
{
    struct model_config cfg;
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!svc->default_model ||
        model_read_config(svc->default_model, &cfg, err, errlen) != 0 ||
        tokenizer_load_for_model(t, svc->default_model, NULL, cfg.vocab_size, err, errlen) != 0) {
        if (!svc->default_model)
            snprintf(err, errlen, "no default model");
        free(t);
        return -1;
    }
    if (!t->chat_template || chat_template_detect(t->chat_template, &svc->tmpl) != 0)
        svc->tmpl = CHAT_RAW;
    svc->tok = t;
    return 0;
}

void service_free_tokenizer(struct service *svc)
{
    if (svc->tok) {
        tokenizer_free(svc->tok);
        free(svc->tok);
        svc->tok = NULL;
    }
}

struct service *service_get(void)
{
    return current;
}
