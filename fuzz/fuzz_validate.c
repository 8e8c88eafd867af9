/*
 * fuzz_validate.c: libFuzzer harness for the streaming dataset validator
 * (engine/validate.h). The first input byte picks the options (tokenizer
 * statistics with one of the chat templates, a small max_record, a forced
 * format), the second a chunk-split pattern (fixed sizes 1..64 or a
 * pseudo-random sequence); the rest is the file. The file is validated once
 * in one piece and once split; the two reports must be identical, as
 * validate.h promises whatever the chunk sizes.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "tokenizer.h"
#include "validate.h"

static struct tokenizer tok;
static int have_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    (void)argc, (void)argv;
    have_tok = tokenizer_load(&tok, fuzz_shared_path("data/models/stories260K/tok512.bin"), 512, err,
                              sizeof err) == 0;
    if (!have_tok)
        fprintf(stderr, "fuzz_validate: no tokenizer (%s): structure only\n", err);
    return 0;
}

/* The report of data fed in the pieces pattern `split` gives (0: one piece). */
static json_t *report(const struct validate_opts *o, const uint8_t *data, size_t n, unsigned split)
{
    struct validate_report r;
    struct validator *v = validator_new(o);
    uint32_t rng = split * 2654435761u + 1;
    if (!v)
        abort();
    for (size_t off = 0; off < n;) {
        size_t k = n - off;
        if (split && split <= 64)
            k = split;
        else if (split) {
            rng = rng * 1103515245u + 12345u;
            k = 1 + (rng >> 16) % 97;
        }
        if (k > n - off)
            k = n - off;
        if (validator_feed(v, data + off, k) != 0)
            abort();
        off += k;
    }
    if (validator_finish(v, &r) != 0)
        abort();
    validator_free(v);
    json_t *j = validate_report_json(&r);
    validate_report_free(&r);
    if (!j)
        abort();
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct validate_opts o;
    if (size < 2)
        return 0;
    unsigned opt = data[0], split = data[1];
    validate_opts_default(&o);
    if ((opt & 3) && have_tok) {
        o.tok = &tok;
        o.tmpl = (enum chat_template)((opt & 3) == 1 ? CHAT_CHATML
                                      : (opt & 3) == 2 ? CHAT_ALPACA : CHAT_RAW);
        o.seq_len = 32;
        o.train_on_inputs = (opt >> 6) & 1;
    }
    if (opt & 4)
        o.max_record = 48;
    o.format = (enum ds_format)((opt >> 3) & 7) % DS_FORMAT_COUNT;
    o.max_errors = 3;
    json_t *whole = report(&o, data + 2, size - 2, 0);
    json_t *pieces = report(&o, data + 2, size - 2, split ? split : 1);
    if (!json_equal(whole, pieces)) {
        char *a = json_dumps(whole, JSON_COMPACT), *b = json_dumps(pieces, JSON_COMPACT);
        fprintf(stderr, "reports differ with split %u:\n%s\n%s\n", split, a, b);
        abort();
    }
    json_decref(whole);
    json_decref(pieces);
    return 0;
}
