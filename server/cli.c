/*
 * cli.c: option parsing shared by the owlore subcommands.
 *
 * Options come as "--name value" pairs after the command name (argv[2] on);
 * the few flags in cli_flags take no value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Options that take no value. */
static const char *const cli_flags[] = {"--json", "--chat", "--webhook-allow-loopback", NULL};

static int is_flag(const char *arg)
{
    for (const char *const *f = cli_flags; *f; f++)
        if (strcmp(arg, *f) == 0)
            return 1;
    return 0;
}

const char *cli_opt(int argc, char **argv, const char *name)
{
    for (int i = 2; i < argc; i += is_flag(argv[i]) ? 1 : 2)
        if (strcmp(argv[i], name) == 0)
            return is_flag(argv[i]) ? "1" : i + 1 < argc ? argv[i + 1] : NULL;
    return NULL;
}

int cli_flag(int argc, char **argv, const char *name)
{
    return cli_opt(argc, argv, name) != NULL;
}

int cli_check_opts(int argc, char **argv, const char *cmd, const char *const *known)
{
    for (int i = 2; i < argc; i += is_flag(argv[i]) ? 1 : 2) {
        int ok = 0;
        for (const char *const *k = known; *k; k++)
            ok |= strcmp(argv[i], *k) == 0;
        if (!ok) {
            fprintf(stderr, "owlore %s: unknown option '%s'\n", cmd, argv[i]);
            return -1;
        }
        if (!is_flag(argv[i]) && i + 1 >= argc) {
            fprintf(stderr, "owlore %s: option '%s' needs a value\n", cmd, argv[i]);
            return -1;
        }
    }
    return 0;
}

int cli_opt_double(int argc, char **argv, const char *name, double def, double *out)
{
    const char *s = cli_opt(argc, argv, name);
    char *end;
    *out = def;
    if (!s)
        return 0;
    *out = strtod(s, &end);
    if (end == s || *end) {
        fprintf(stderr, "owlore: %s expects a number, got '%s'\n", name, s);
        return -1;
    }
    return 0;
}

