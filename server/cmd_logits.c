/*
 * cmd_logits.c: `owlore logits`: the model's logits for a list of token ids,
 * as JSON, for comparing our forward pass with another implementation.
 *
 *   owlore logits --model PATH --tokens 1,2,3 [--positions last|all] [--json]
 *
 * The tokens run through one full forward pass (model_forward, batch 1, no
 * KV cache), the same code training uses. The output is one JSON object:
 *   {"model": PATH, "vocab_size": V, "tokens": [...], "positions": "last",
 *    "logits": [V floats]}                       (the last position), or
 *   {..., "positions": "all", "logits": [[V floats] per position]}.
 * Floats are printed with 9 significant digits (exact for float32). --json
 * is accepted for symmetry with the other commands; the output is always
 * JSON.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "load.h"
#include "model.h"

int cmd_logits(int argc, char **argv);

/* Parses "1,2,3" into a malloc'd array; -1 with a message on errors. */
static int parse_tokens(const char *s, int **out, int *n)
{
    int cap = 16, k = 0;
    int *v = malloc(sizeof(int) * (size_t)cap);
    if (!v)
        return -1;
    while (*s) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 0 || x > 0x7fffffff || (*end && *end != ',')) {
            fprintf(stderr, "owlore logits: --tokens expects comma-separated token ids\n");
            free(v);
            return -1;
        }
        if (k == cap) {
            int *nv = realloc(v, sizeof(int) * (size_t)(cap *= 2));
            if (!nv) {
                free(v);
                return -1;
            }
            v = nv;
        }
        v[k++] = (int)x;
        s = *end ? end + 1 : end;
    }
    if (k == 0) {
        fprintf(stderr, "owlore logits: --tokens is empty\n");
        free(v);
        return -1;
    }
    *out = v;
    *n = k;
    return 0;
}

static void print_row(const float *row, int V)
{
    putchar('[');
    for (int i = 0; i < V; i++)
        printf(i ? ",%.9g" : "%.9g", (double)row[i]);
    putchar(']');
}

int cmd_logits(int argc, char **argv)
{
    static const char *const known[] = {"--model", "--tokens", "--positions", "--json", NULL};
    const char *path = cli_opt(argc, argv, "--model");
    const char *tokens_s = cli_opt(argc, argv, "--tokens");
    const char *positions = cli_opt(argc, argv, "--positions");
    struct model m;
    struct activations a;
    char err[512];
    int *ids = NULL, n = 0, rc = 1;
    float *logits = NULL;

    if (cli_check_opts(argc, argv, "logits", known) != 0)
        return 2;
    if (!path || !tokens_s) {
        fprintf(stderr, "owlore logits: --model PATH and --tokens IDS are required\n");
        return 2;
    }
    if (!positions)
        positions = "last";
    if (strcmp(positions, "last") != 0 && strcmp(positions, "all") != 0) {
        fprintf(stderr, "owlore logits: --positions expects last or all\n");
        return 2;
    }
    if (parse_tokens(tokens_s, &ids, &n) != 0)
        return 2;
    if (model_load(path, backend_cpu(), &m, err, sizeof err) != 0) {
        fprintf(stderr, "owlore logits: %s\n", err);
        free(ids);
        return 1;
    }
    const int V = m.cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (ids[i] >= V) {
            fprintf(stderr, "owlore logits: token %d is outside the vocabulary (%d)\n", ids[i],
                    V);
            rc = 2;
            goto out_model;
        }
    if (n > m.cfg.max_seq_len) {
        fprintf(stderr, "owlore logits: %d tokens are more than the model's context of %d\n", n,
                m.cfg.max_seq_len);
        rc = 2;
        goto out_model;
    }
    if (activations_init(&a, &m, 1, n) != 0) {
        fprintf(stderr, "owlore logits: out of memory for the activations\n");
        goto out_model;
    }
    logits = malloc(sizeof(float) * (size_t)n * (size_t)V);
    if (!logits) {
        fprintf(stderr, "owlore logits: out of memory\n");
        goto out_act;
    }
    model_forward(&m, &a, ids, 1, n);
    model_logits(&m, &a, logits, 1, n);

    printf("{\"model\":\"");
    for (const char *p = path; *p; p++) {
        if (*p == '"' || *p == '\\')
            putchar('\\');
        if ((unsigned char)*p >= 0x20)
            putchar(*p);
    }
    printf("\",\"vocab_size\":%d,\"tokens\":[", V);
    for (int i = 0; i < n; i++)
        printf(i ? ",%d" : "%d", ids[i]);
    printf("],\"positions\":\"%s\",\"logits\":", positions);
    if (strcmp(positions, "all") == 0) {
        putchar('[');
        for (int t = 0; t < n; t++) {
            if (t)
                putchar(',');
            print_row(logits + (size_t)t * V, V);
        }
        putchar(']');
    } else {
        print_row(logits + (size_t)(n - 1) * V, V);
    }
    printf("}\n");
    rc = fflush(stdout) == 0 ? 0 : 1;
    free(logits);
out_act:
    activations_free(&a, &m);
out_model:
    model_free(&m);
    free(ids);
    return rc;
}
