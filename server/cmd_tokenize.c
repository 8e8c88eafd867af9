/*
 * cmd_tokenize.c: `owlore tokenize`: what the model's tokenizer makes of the
 * text (or one conversation) on standard input, for debugging data.
 *
 *   owlore tokenize --model PATH [--tokenizer PATH] [--template NAME] [--chat]
 *
 * Text mode prints the ids as a JSON array, encoded as the model's own
 * tokenizer encodes with add_special_tokens (its BOS/EOS) and special-token
 * text such as "<|im_start|>" parsed into those tokens. With --chat, stdin
 * holds one conversation as JSON ({"messages": [...]} or a bare array of
 * {"role", "content", "weight"?} messages) and the output is
 * {"ids": [...], "mask": [...]} rendered with --template NAME, else the
 * template the tokenizer's config names when this engine recognises it;
 * message text is never parsed for special tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat.h"
#include "cli.h"
#include "load.h"
#include "tokenizer.h"

static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0)
            break;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    if (buf)
        buf[n] = 0;
    *len = n;
    return buf;
}

static void print_array(const char *key, const int *ids, const unsigned char *mask, int n)
{
    if (key)
        printf("\"%s\": ", key);
    printf("[");
    for (int i = 0; i < n; i++)
        printf(i ? ", %d" : "%d", ids ? ids[i] : mask[i]);
    printf("]");
}

/* the messages of a conversation; -1 with a message on stderr */
static int parse_chat(json_t *root, struct chat_message **out, int *n_out)
{
    json_t *msgs = json_is_array(root) ? root : json_object_get(root, "messages"), *m;
    size_t i;
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        fprintf(stderr, "owlore tokenize: --chat reads {\"messages\": [...]} or an array of "
                "messages; found no messages\n");
        return -1;
    }
    struct chat_message *cm = calloc(json_array_size(msgs), sizeof *cm);
    if (!cm) {
        fprintf(stderr, "owlore tokenize: out of memory\n");
        return -1;
    }
    json_array_foreach(msgs, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        json_t *content = json_object_get(m, "content"), *w = json_object_get(m, "weight");
        if (!role || !json_is_string(content)) {
            fprintf(stderr, "owlore tokenize: message %zu needs a \"role\" and a \"content\" "
                    "string\n", i + 1);
            free(cm);
            return -1;
        }
        if (strcmp(role, "system") == 0) {
            cm[i].role = ROLE_SYSTEM;
        } else if (strcmp(role, "user") == 0) {
            cm[i].role = ROLE_USER;
        } else if (strcmp(role, "assistant") == 0) {
            cm[i].role = ROLE_ASSISTANT;
        } else {
            fprintf(stderr, "owlore tokenize: message %zu has role \"%s\" (system, user or "
                    "assistant)\n", i + 1, role);
            free(cm);
            return -1;
        }
        if (w && !(json_is_integer(w) && (json_integer_value(w) == 0 ||
                                          json_integer_value(w) == 1))) {
            fprintf(stderr, "owlore tokenize: message %zu: weight must be 0 or 1\n", i + 1);
            free(cm);
            return -1;
        }
        cm[i].content = json_string_value(content);
        cm[i].len = json_string_length(content);
        cm[i].weight = w ? (int)json_integer_value(w) : 1;
    }
    *out = cm;
    *n_out = (int)json_array_size(msgs);
    return 0;
}

static int tokenize_chat(const struct tokenizer *tok, const char *tmpl_name, const char *in,
                         size_t len)
{
    enum chat_template tmpl;
    json_error_t je;
    struct chat_message *msgs = NULL;
    int n_msgs, rc = 1;
    char err[512];
    if (tmpl_name) {
        if (chat_template_parse(tmpl_name, &tmpl) != 0) {
            fprintf(stderr, "owlore tokenize: unknown --template '%s' (chatml, llama2, llama3, "
                    "alpaca, raw)\n", tmpl_name);
            return 2;
        }
    } else if (chat_template_detect(tok->chat_template, &tmpl) != 0) {
        fprintf(stderr, "owlore tokenize: %s; pass --template chatml|llama2|llama3|alpaca|raw\n",
                tok->chat_template ? "the model's chat template is not one this engine knows"
                                   : "the model's tokenizer has no chat template");
        return 2;
    }
    json_t *root = json_loadb(in, len, 0, &je);
    if (!root) {
        fprintf(stderr, "owlore tokenize: stdin is not JSON (line %d, column %d: %s)\n", je.line,
                je.column, je.text);
        return 1;
    }
    if (parse_chat(root, &msgs, &n_msgs) == 0) {
        int max = (int)len * 3 + 64;
        int *ids = malloc(sizeof(int) * (size_t)max);
        unsigned char *mask = malloc((size_t)max);
        int n = ids && mask ? chat_render(tok, tmpl, msgs, n_msgs, 0, 0, ids, mask, max, err,
                                          sizeof err) : -1;
        if (n < 0) {
            fprintf(stderr, "owlore tokenize: %s\n", ids && mask ? err : "out of memory");
        } else {
            printf("{");
            print_array("ids", ids, NULL, n);
            printf(", ");
            print_array("mask", NULL, mask, n);
            printf("}\n");
            rc = 0;
        }
        free(ids);
        free(mask);
    }
    free(msgs);
    json_decref(root);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    static const char *const known[] = {"--model", "--tokenizer", "--template", "--chat", NULL};
    const char *model = cli_opt(argc, argv, "--model");
    struct model_config cfg;
    struct tokenizer tok;
    char err[512];
    size_t len;
    int rc = 1;
    if (cli_check_opts(argc, argv, "tokenize", known) != 0)
        return 2;
    if (!model) {
        fprintf(stderr, "owlore tokenize: --model PATH is required\n");
        return 2;
    }
    if (cli_opt(argc, argv, "--template") && !cli_flag(argc, argv, "--chat")) {
        fprintf(stderr, "owlore tokenize: --template applies to --chat\n");
        return 2;
    }
    if (model_read_config(model, &cfg, err, sizeof err) != 0 ||
        tokenizer_load_for_model(&tok, model, cli_opt(argc, argv, "--tokenizer"), cfg.vocab_size,
                                 err, sizeof err) != 0) {
        fprintf(stderr, "owlore tokenize: %s\n", err);
        return 1;
    }
    char *in = read_stdin(&len);
    if (!in) {
        fprintf(stderr, "owlore tokenize: out of memory reading stdin\n");
    } else if (cli_flag(argc, argv, "--chat")) {
        rc = tokenize_chat(&tok, cli_opt(argc, argv, "--template"), in, len);
    } else {
        int max = (int)len * 3 + 16; /* a token per byte, more after NFC */
        int *ids = malloc(sizeof(int) * (size_t)max);
        int n = ids ? tokenizer_encode(&tok, in, len, TOKENIZE_ADD_SPECIAL | TOKENIZE_PARSE_SPECIAL,
                                       ids, max) : -1;
        if (n < 0) {
            fprintf(stderr, "owlore tokenize: out of memory\n");
        } else {
            print_array(NULL, ids, NULL, n);
            printf("\n");
            rc = 0;
        }
        free(ids);
    }
    free(in);
    tokenizer_free(&tok);
    return rc;
}
