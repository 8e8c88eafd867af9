/*
 * tokenizer.c: finding the tokenizer that belongs to a model.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer.h"

int tokenizer_find_for_model(const char *model_path, const char *explicit_path,
                             int vocab_size, char *path, size_t len, char *err,
                             size_t errlen)
{
    char dir[4096];
    struct stat st;
    if (explicit_path) {
        snprintf(path, len, "%s", explicit_path);
        return 0;
    }
    snprintf(dir, sizeof dir, "%s", model_path);
    if (stat(model_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
    }
    snprintf(path, len, "%s/tokenizer.bin", dir);
    if (stat(path, &st) == 0)
        return 0;
    snprintf(path, len, "%s/tok%d.bin", dir, vocab_size);
    if (stat(path, &st) == 0)
        return 0;
    snprintf(err, errlen, "%s: no tokenizer found (looked for tokenizer.bin and "
             "tok%d.bin beside it); pass --tokenizer PATH", model_path, vocab_size);
    return -1;
}

int tokenizer_load_for_model(struct tokenizer *t, const char *model_path,
                             const char *explicit_path, int vocab_size,
                             char *err, size_t errlen)
{
    char path[4200];
    if (tokenizer_find_for_model(model_path, explicit_path, vocab_size, path,
                                 sizeof path, err, errlen) != 0)
        return -1;
    return tokenizer_load_llama2c(t, path, vocab_size, err, errlen);
}
