/*
 * load.c: choose a loader from the path (see load.h).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "load.h"
#include "load_hf.h"

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int model_load(const char *path, const struct backend *be, struct model *m,
               char *err, size_t errlen)
{
    struct stat st;
    memset(m, 0, sizeof *m);
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode))
        return load_hf_dir(path, be, m, err, errlen);
    if (has_suffix(path, ".bin"))
        return load_llama2c(path, be, m, err, errlen);
    if (has_suffix(path, ".gguf"))
        return load_gguf(path, be, m, err, errlen);
    snprintf(err, errlen, "%s: unknown model format (expected a Hugging Face "
             "model directory, a llama2.c .bin file or a .gguf file)", path);
    return -1;
}

int model_read_config(const char *path, struct model_config *c, char *err,
                      size_t errlen)
{
    struct stat st;
    char json[4200];
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(json, sizeof json, "%s/config.json", path);
        return hf_config_parse(json, c, err, errlen);
    }
    if (has_suffix(path, ".json"))
        return hf_config_parse(path, c, err, errlen);
    if (has_suffix(path, ".bin"))
        return llama2c_read_config(path, c, err, errlen);
    if (has_suffix(path, ".gguf"))
        return gguf_read_config(path, c, err, errlen);
    snprintf(err, errlen, "%s: unknown model format (expected a config.json, a Hugging "
             "Face model directory, a llama2.c .bin file or a .gguf file)", path);
    return -1;
}
