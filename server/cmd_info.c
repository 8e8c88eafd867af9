/*
 * cmd_info.c: `owlore info --model PATH`: load a model and print its config
 * and parameter count (loading checks every tensor, so this also validates
 * the file).
 */
#include <stdio.h>

#include "cli.h"
#include "load.h"

int cmd_info(int argc, char **argv)
{
    static const char *const known[] = {"--model", NULL};
    const char *path = cli_opt(argc, argv, "--model");
    struct model m;
    char err[512];
    if (cli_check_opts(argc, argv, "info", known) != 0)
        return 2;
    if (!path) {
        fprintf(stderr, "owlore info: --model PATH is required\n");
        return 2;
    }
    if (model_load(path, backend_cpu(), &m, err, sizeof err) != 0) {
        fprintf(stderr, "owlore info: %s\n", err);
        return 1;
    }
    printf("model          %s\n", path);
    model_config_print(&m.cfg, stdout);
    model_free(&m);
    return 0;
}
