/*
 * fuzz_tokenizer_json.c: libFuzzer harness for the Hugging Face
 * tokenizer.json loader (tokenizer_load on a file named tokenizer.json,
 * engine/tok_hf.c). A tokenizer that loads is exercised on a fixed sample
 * and on the first bytes of the input itself (fuzz_tok_exercise.h).
 */
#include <stdint.h>

#include "fuzz_common.h"
#include "fuzz_tok_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static const char sample[] = "Hello, world! 123 héllo 日本語 <|im_start|>user\n\t  x\xf0\x9f\x98\x80";
    struct tokenizer t;
    char err[1024];
    const char *path = fuzz_write_scratch("tokenizer.json", data, n);
    if (tokenizer_load(&t, path, 0, err, sizeof err) != 0)
        return 0;
    fuzz_tok_exercise(&t, sample, sizeof sample - 1);
    fuzz_tok_exercise(&t, (const char *)data, n < 200 ? n : 200);
    tokenizer_free(&t);
    return 0;
}
