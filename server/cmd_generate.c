/*
 * cmd_generate.c: `owlore generate`: continue a prompt with the model.
 *
 * The prompt is encoded as the tokenizer's own config says (BOS first for
 * llama2.c and LLaMA models, none for SmolLM2), with special-token text
 * such as "<|im_start|>" parsed, fed through the KV-cached decoder, then
 * tokens are sampled (greedy at temperature 0) until --steps positions are
 * filled or the model emits a special token (BOS, EOS, <|im_end|>, ...).
 * Text is printed as it is produced, whole UTF-8 characters at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "decode.h"
#include "load.h"
#include "tokenizer.h"

int cmd_generate(int argc, char **argv)
{
    static const char *const known[] = {"--model", "--prompt", "--steps", "--temperature",
                                        "--top-p", "--seed", "--tokenizer", NULL};
    const char *path = cli_opt(argc, argv, "--model");
    const char *prompt = cli_opt(argc, argv, "--prompt");
    double steps_d, temp, top_p, seed_d;
    struct model m;
    struct tokenizer tok;
    struct kv_cache kv;
    char err[512];
    int rc = 1;

    if (cli_check_opts(argc, argv, "generate", known) != 0 ||
        cli_opt_double(argc, argv, "--steps", 256, &steps_d) != 0 ||
        cli_opt_double(argc, argv, "--temperature", 0.0, &temp) != 0 ||
        cli_opt_double(argc, argv, "--top-p", 1.0, &top_p) != 0 ||
        cli_opt_double(argc, argv, "--seed", 42, &seed_d) != 0)
        return 2;
    if (!path) {
        fprintf(stderr, "owlore generate: --model PATH is required\n");
        return 2;
    }
    if (steps_d < 1 || steps_d > 1e6 || temp < 0 || !(top_p > 0 && top_p <= 1)) {
        fprintf(stderr, "owlore generate: need --steps >= 1, --temperature >= 0, "
                "0 < --top-p <= 1\n");
        return 2;
    }
    if (!prompt)
        prompt = "";
    if (model_load(path, backend_cpu(), &m, err, sizeof err) != 0) {
        fprintf(stderr, "owlore generate: %s\n", err);
        return 1;
    }
    int steps = (int)steps_d < m.cfg.max_seq_len ? (int)steps_d : m.cfg.max_seq_len;
    if (tokenizer_load_for_model(&tok, path, cli_opt(argc, argv, "--tokenizer"),
                                 m.cfg.vocab_size, err, sizeof err) != 0) {
        fprintf(stderr, "owlore generate: %s\n", err);
        model_free(&m);
        return 1;
    }
    int *ids = malloc(sizeof(int) * (size_t)(steps + 1));
    float *logits = malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    char *out = malloc((size_t)tok.max_token_bytes + 8);
    int n = ids ? tokenizer_encode(&tok, prompt, strlen(prompt),
                                   TOKENIZE_ADD_SPECIAL | TOKENIZE_PARSE_SPECIAL, ids, steps) : -1;
    if (n == 0 && tok.bos_id >= 0) /* an empty prompt starts from BOS */
        ids[n++] = tok.bos_id;
    if (!logits || !out || n <= 0) {
        fprintf(stderr, "owlore generate: %s\n",
                n < 0 ? "the prompt is longer than --steps tokens"
                : n == 0 ? "the prompt is empty and the tokenizer has no BOS token"
                : "out of memory");
        goto out;
    }
    if (kv_cache_init(&kv, &m, steps) != 0) {
        fprintf(stderr, "owlore generate: out of memory for the KV cache\n");
        goto out;
    }
    /* the prompt is echoed (without a leading BOS), then each new token */
    struct tokenizer_stream st;
    tokenizer_stream_init(&st, -1);
    for (int i = 0; i < n; i++) {
        int k = i == 0 && tok.add_bos && ids[0] == tok.bos_id
                    ? 0 : tokenizer_stream_next(&tok, &st, ids[i], out, tok.max_token_bytes + 8);
        st.prev = ids[i];
        fwrite(out, 1, (size_t)k, stdout);
    }
    fflush(stdout);
    uint64_t rng = (uint64_t)seed_d * 0x9E3779B97F4A7C15ULL + 1;
    for (int pos = 0; pos < steps; pos++) {
        model_decode_step(&m, &kv, ids[pos], pos, logits);
        if (pos + 1 < n)
            continue;
        int next = sample_token(logits, m.cfg.vocab_size, (float)temp, (float)top_p, &rng);
        if (tokenizer_is_special(&tok, next))
            break;
        int k = tokenizer_stream_next(&tok, &st, next, out, tok.max_token_bytes + 8);
        fwrite(out, 1, (size_t)(k > 0 ? k : 0), stdout);
        fflush(stdout);
        ids[pos + 1] = next;
    }
    fwrite(out, 1, (size_t)tokenizer_stream_flush(&st, out), stdout);
    printf("\n");
    kv_cache_free(&kv, &m);
    rc = 0;
out:
    free(ids);
    free(logits);
    free(out);
    tokenizer_free(&tok);
    model_free(&m);
    return rc;
}
