/*
 * fuzz_route.c: libFuzzer harness for ids and paths: the route matcher
 * (route_match over the service's table, server/routes.h) and the model
 * path policy of job creation (service_model_path, server/service.h).
 * The first input byte picks the mode and the method; the rest is the raw
 * request path or the requested model name.
 *   route: a found route's parameters must obey the id rules (1 to 64 of
 *          [A-Za-z0-9_-], or a file name: such a stem, one '.', 1 to 8 of
 *          [a-z0-9]) and the route's method must be the one asked (HEAD
 *          routed as GET).
 *   model: over a data folder holding models/ with a model file and a
 *          symlink that leaves it, an accepted name must resolve to the
 *          default model or to something under models/.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "routes.h"
#include "service.h"

static char root[PATH_MAX], models[PATH_MAX + 16], model_file[PATH_MAX + 32];
static char link_file[PATH_MAX + 32];
static struct service svc;

static void cleanup(void)
{
    unlink(link_file);
    unlink(model_file);
    rmdir(models);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *f = fuzz_write_scratch("default.bin", (const uint8_t *)"x", 1);
    snprintf(root, sizeof root, "%s", f);
    *strrchr(root, '/') = '\0';
    snprintf(models, sizeof models, "%s/models", root);
    snprintf(model_file, sizeof model_file, "%s/tiny.bin", models);
    snprintf(link_file, sizeof link_file, "%s/escape", models);
    atexit(cleanup);
    if (mkdir(models, 0700) != 0 || symlink("/etc/passwd", link_file) != 0)
        abort();
    FILE *m = fopen(model_file, "w");
    if (!m)
        abort();
    fclose(m);
    svc.data_dir = root;
    svc.default_model = f;
    return 0;
}

static int id_ok(const char *p, int allow_ext)
{
    size_t n = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
    if (n == 0 || strlen(p) > ROUTE_PARAM_MAX)
        return 0;
    if (!p[n])
        return 1;
    if (!allow_ext || p[n] != '.')
        return 0;
    size_t e = strspn(p + n + 1, "abcdefghijklmnopqrstuvwxyz0123456789");
    return e >= 1 && e <= ROUTE_EXT_MAX && !p[n + 1 + e];
}

static void check_route(const char *method, const char *path)
{
    struct route_match m;
    if (route_match(routes_default, method, path, &m) != ROUTE_FOUND)
        return;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    if (strcmp(m.route->method, want) != 0 || m.nparams > ROUTE_PARAMS_MAX)
        abort();
    for (int i = 0; i < m.nparams; i++)
        if (!id_ok(m.params[i], strstr(m.route->pattern, ".}") != NULL))
            abort();
}

static void check_model(const char *name)
{
    char out[8192], err[512], real[PATH_MAX], want[PATH_MAX];
    if (service_model_path(&svc, name, out, sizeof out, err, sizeof err) != 0)
        return;
    if (!realpath(out, real))
        return; /* a name under models/ that does not exist yet: loading refuses it */
    if (!realpath(svc.default_model, want))
        abort();
    size_t n = strlen(root);
    if (strcmp(real, want) != 0 &&
        (strncmp(real, root, n) != 0 || strncmp(real + n, "/models/", 8) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static const char *const methods[] = {"GET", "POST", "DELETE", "HEAD", "PUT", "OPTIONS"};
    if (n < 1)
        return 0;
    char *s = fuzz_cstr(data + 1, n - 1);
    if (data[0] & 0x80)
        check_model(s);
    else
        check_route(methods[data[0] % 6], s);
    free(s);
    return 0;
}
