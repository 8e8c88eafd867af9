/*
 * cmd_keys.c: `owlore keys`: manage the API keys of a data directory.
 *
 *   owlore keys create [--owner NAME] [--name LABEL] [--data-dir DIR] [--json]
 *   owlore keys list [--data-dir DIR] [--json]
 *   owlore keys revoke KEY_ID [--data-dir DIR]
 *
 * create prints the new key once (only its SHA-256 is stored). Each key acts
 * for one tenant, its owner: files, jobs and webhooks of one owner are
 * invisible to every other. Without --owner the key gets a tenant of its
 * own ("org-" + random hex); --owner local adopts what was created while
 * the server ran without keys. The data directory defaults to
 * $OWLORE_DATA_DIR, else var/, as for `owlore serve`; these commands may
 * run beside a running server (SQLite WAL, busy timeout), which checks keys
 * on every request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "store.h"

#define OWNER_MAX 63

static int owner_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OWNER_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static struct store *open_store(const char *dir)
{
    char db[4200], err[512];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "owlore keys: %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    snprintf(db, sizeof db, "%s/owlore.db", dir);
    struct store *st = store_open(db, err, sizeof err);
    if (!st)
        fprintf(stderr, "owlore keys: %s\n", err);
    return st;
}

static int keys_create(struct store *st, const char *owner, const char *name, int json)
{
    char key[STORE_KEY_LEN], err[512], fresh[40];
    struct store_key k;
    if (!owner) {
        unsigned char r[12];
        if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
            fprintf(stderr, "owlore keys: getrandom: %s\n", strerror(errno));
            return 1;
        }
        strcpy(fresh, "org-");
        for (size_t i = 0; i < sizeof r; i++)
            snprintf(fresh + 4 + 2 * i, 3, "%02x", r[i]);
        owner = fresh;
    }
    if (store_key_create(st, owner, name, key, &k, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "owlore keys: %s\n", err);
        return 1;
    }
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:I}", "key", key, "id", k.id, "owner",
                              k.owner, "name", k.name, "created_at", (json_int_t)k.created_at);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
    } else {
        printf("%s\n", key);
        fprintf(stderr, "owlore keys: created %s for owner %s; the key above is shown only "
                "once\n", k.id, k.owner);
    }
    store_key_clear(&k);
    return 0;
}

static int keys_list(struct store *st, int json)
{
    struct store_key *v;
    size_t n;
    char err[512];
    if (store_key_list(st, &v, &n, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "owlore keys: %s\n", err);
        return 1;
    }
    json_t *arr = json ? json_array() : NULL;
    if (!json)
        printf("%-32s %-32s %-20s %s\n", "ID", "OWNER", "NAME", "CREATED");
    for (size_t i = 0; i < n; i++) {
        if (json)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s?, s:I}", "id", v[i].id,
                                                 "owner", v[i].owner, "name", v[i].name,
                                                 "created_at", (json_int_t)v[i].created_at));
        else
            printf("%-32s %-32s %-20s %lld\n", v[i].id, v[i].owner, v[i].name ? v[i].name : "-",
                   (long long)v[i].created_at);
    }
    if (json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(arr);
    }
    store_key_list_free(v, n);
    return 0;
}

static int keys_revoke(struct store *st, const char *id)
{
    char err[512];
    int rc = store_key_revoke(st, id, err, sizeof err);
    if (rc == STORE_NOTFOUND) {
        fprintf(stderr, "owlore keys: no live key %s\n", id);
        return 1;
    }
    if (rc != STORE_OK) {
        fprintf(stderr, "owlore keys: %s\n", err);
        return 1;
    }
    fprintf(stderr, "owlore keys: revoked %s\n", id);
    return 0;
}

int cmd_keys(int argc, char **argv)
{
    static const char *const known[] = {"--owner", "--name", "--data-dir", "--json", NULL};
    const char *sub = argc > 2 ? argv[2] : "";
    int create = strcmp(sub, "create") == 0, list = strcmp(sub, "list") == 0,
        revoke = strcmp(sub, "revoke") == 0;
    /* options follow the subcommand (and revoke's KEY_ID): shift them to argv[2] */
    int skip = 1 + revoke;
    if ((!create && !list && !revoke) || (revoke && (argc < 4 || argv[3][0] == '-'))) {
        fprintf(stderr, "usage: owlore keys create [--owner NAME] [--name LABEL] [--json]\n"
                        "       owlore keys list [--json]\n"
                        "       owlore keys revoke KEY_ID\n"
                        "       (each with [--data-dir DIR])\n");
        return 2;
    }
    int ac = argc - skip;
    char **av = argv + skip;
    if (cli_check_opts(ac, av, "keys", known) != 0)
        return 2;
    const char *owner = cli_opt(ac, av, "--owner"), *name = cli_opt(ac, av, "--name");
    const char *dir = cli_opt(ac, av, "--data-dir");
    if (!dir)
        dir = getenv("OWLORE_DATA_DIR");
    if (owner && !owner_ok(owner)) {
        fprintf(stderr, "owlore keys: --owner must be 1 to %d characters of A-Z, a-z, 0-9, "
                "'_' and '-'\n", OWNER_MAX);
        return 2;
    }
    if ((owner || name) && !create) {
        fprintf(stderr, "owlore keys: --owner and --name go with create\n");
        return 2;
    }
    struct store *st = open_store(dir ? dir : "var");
    if (!st)
        return 1;
    int json = cli_flag(ac, av, "--json");
    int rc = create ? keys_create(st, owner, name, json)
             : list ? keys_list(st, json)
                    : keys_revoke(st, argv[3]);
    store_close(st);
    return rc;
}
