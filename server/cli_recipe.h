/*
 * cli_recipe.h: reading a fine-tuning recipe from command-line options.
 *
 * Shared by every command that takes a recipe (plan, train, ...). Options
 * come as "--name value" pairs after the command name (argv[2] on), as
 * cli_check_opts in main.c expects; options not in cli_recipe_opts are left
 * to the caller.
 */
#ifndef OWLORE_CLI_RECIPE_H
#define OWLORE_CLI_RECIPE_H

#include <stddef.h>

#include "recipe.h"

/* The option names cli_recipe_parse reads, NULL-terminated. */
extern const char *const cli_recipe_opts[];

/* Fill r with the defaults of --method (default owlore), then apply every
 * recipe option given. Values are parsed strictly (numbers, integers, names);
 * on failure writes a message naming the option into err and returns -1.
 * Does not call recipe_check (that needs the model's block count). */
int cli_recipe_parse(int argc, char **argv, struct recipe *r, char *err, size_t errlen);

/* `owlore plan`: predicted memory and throughput (cmd_plan.c). */
int cmd_plan(int argc, char **argv);

#endif
