/*
 * tokenizer.c: finding the tokenizer that belongs to a model.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer.h"

int tokenizer_load_for_model(struct tokenizer *t, const char *model_path,
                             const char *explicit_path, int vocab_size,
                             char *err, size_t errlen)
{
    char dir[4096], cand[4200];
    struct stat st;
    if (explicit_path)
        return tokenizer_load_llama2c(t, explicit_path, vocab_size, err, errlen);
    snprintf(dir, sizeof dir, "%s", model_path);
    if (stat(model_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
    }
    snprintf(cand, sizeof cand, "%s/tokenizer.bin", dir);
    if (stat(cand, &st) == 0)
        return tokenizer_load_llama2c(t, cand, vocab_size, err, errlen);
    snprintf(cand, sizeof cand, "%s/tok%d.bin", dir, vocab_size);
    if (stat(cand, &st) == 0)
        return tokenizer_load_llama2c(t, cand, vocab_size, err, errlen);
    snprintf(err, errlen, "%s: no tokenizer found (looked for tokenizer.bin and "
             "tok%d.bin beside it); pass --tokenizer PATH", model_path, vocab_size);
    return -1;
}
