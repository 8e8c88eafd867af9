/*
 * cli.h: the owlore command-line subcommands and their shared helpers.
 *
 * main.c dispatches `owlore <command> [options]` to one cmd_* function per
 * command; each returns the process exit status (0 ok, 1 runtime error,
 * 2 usage error).
 */
#ifndef OWLORE_CLI_H
#define OWLORE_CLI_H

int cmd_info(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_outliers(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_keys(int argc, char **argv);

/* Value of option `name` (e.g. "--model") in argv, or NULL; "1" for a flag
 * (an option that takes no value, such as --json) that is present. */
const char *cli_opt(int argc, char **argv, const char *name);
/* 1 when flag `name` is present. */
int cli_flag(int argc, char **argv, const char *name);
/* Refuse options not in the NULL-terminated list `known` (every option but a
 * flag takes a value). */
int cli_check_opts(int argc, char **argv, const char *cmd, const char *const *known);
/* Parse a number option; returns -1 with a message when it is not one. */
int cli_opt_double(int argc, char **argv, const char *name, double def, double *out);

#endif
