/*
 * main.c: the owlore binary: dispatches `owlore <command>` to its handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "cli_recipe.h"

int cmd_logits(int argc, char **argv); /* cmd_logits.c */
int cmd_eval(int argc, char **argv);   /* cmd_eval.c */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"info", cmd_info, "--model PATH                 print the model config and parameter count"},
    {"generate", cmd_generate, "--model PATH --prompt TEXT [--steps N] [--temperature T] [--top-p P]\n"
     "                              [--seed S] [--tokenizer PATH]   generate text"},
    {"plan", cmd_plan, "--model PATH [--method M] [recipe options] [--batch B] [--seq S]\n"
     "                              [--dtype fp32|bf16] [--fit GB] [--json]   predict memory and\n"
     "                              throughput; --fit: the settings that bring it within GB"},
    {"train", cmd_train, "--model PATH --data FILE [--method M] [recipe options] [--out DIR]\n"
     "                              [--resume DIR] [--val-data FILE | --val-fraction F]\n"
     "                              [--template NAME] [--train-on-inputs 0|1] [--pack 0|1]\n"
     "                              (--method lora: [--lora-rank R] [--lora-alpha A]\n"
     "                              [--lora-dropout P] [--lora-merge 0|1])   fine-tune"},
    {"eval", cmd_eval, "--model PATH [--adapter DIR] --data FILE [--tokenizer PATH] [--seq N]\n"
     "                              [--limit N] [--max-new N] [--template NAME] [--json]\n"
     "                              held-out loss, multiple-choice / exact-match accuracy"},
    {"outliers", cmd_outliers, "--model PATH [--data FILE] [--tau T] [--samples N] [--seq S]\n"
     "                              [--backend cpu|cuda|auto] [--json]\n"
     "                              layer outlier ratios and sampling probabilities"},
    {"tokenize", cmd_tokenize, "--model PATH [--tokenizer PATH] [--chat [--template NAME]]\n"
     "                              token ids of stdin (text, or one conversation as JSON)"},
    {"serve", cmd_serve, "[--host ADDR] [--port N] [--data-dir DIR] [--threads N]\n"
     "                              run the HTTP service (also OWLORE_HOST, OWLORE_PORT, ...)"},
    {"keys", cmd_keys, "create [--owner NAME] [--name LABEL] | list | revoke KEY_ID\n"
     "                              [--data-dir DIR] [--json]   manage API keys"},
    {"logits", cmd_logits, "--model PATH --tokens 1,2,3 [--positions last|all] [--json]\n"
     "                              logits of a forward pass over token ids, as JSON"},
    {"validate", cmd_validate, "--data FILE [--model PATH] [--template NAME] [--seq N] [--format F]\n"
     "                              [--json]   check a dataset: errors by line, token statistics"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: owlore <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    backend_cpu_select_kernels(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc, argv);
    fprintf(stderr, "owlore: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
