/*
 * serve_config.c: `owlore serve` settings from flags, the environment, a
 * JSON config file and defaults (see serve_config.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "serve_config.h"

enum kind { TEXT, UINT, SIZE, FLAG };

static const struct setting {
    const char *flag, *env, *key;
    enum kind kind;
    const char *def; /* NULL: computed */
} settings[] = {
    {"--host", "OWLORE_HOST", "host", TEXT, "127.0.0.1"},
    {"--port", "OWLORE_PORT", "port", UINT, "8080"},
    {"--data-dir", "OWLORE_DATA_DIR", "data_dir", TEXT, "var"},
    {"--threads", "OWLORE_THREADS", "threads", UINT, "4"},
    {"--model", "OWLORE_MODEL", "model", TEXT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"},
    {"--memory-limit", "OWLORE_MEMORY_LIMIT", "memory_limit", SIZE, NULL},
    {"--max-upload", "OWLORE_MAX_UPLOAD", "max_upload", SIZE, "512M"},
    {"--web-dir", "OWLORE_WEB_DIR", "web_dir", TEXT, ""},
    {"--webhook-allow-loopback", "OWLORE_WEBHOOK_ALLOW_LOOPBACK", "webhook_allow_loopback",
     FLAG, "0"},
    {"--max-per-ip", "OWLORE_MAX_PER_IP", "max_per_ip", UINT, "32"},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

int serve_config_size(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mul = 1;
    switch (*end) {
    case 'K': mul = 1024.0; end++; break;
    case 'M': mul = 1024.0 * 1024; end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024; end++; break;
    case 'T': mul = 1024.0 * 1024 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end)
        return -1;
    *out = v * mul;
    return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The file's value of `key` as text in buf, or NULL when absent; *bad set
 * when its JSON type does not fit. */
static const char *from_file(json_t *file, const struct setting *s, char *buf, size_t n,
                             int *bad)
{
    json_t *v = json_object_get(file, s->key);
    if (!v)
        return NULL;
    if (s->kind == FLAG && json_is_boolean(v))
        snprintf(buf, n, "%d", json_is_true(v));
    else if ((s->kind == UINT || s->kind == SIZE) && json_is_integer(v))
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (s->kind != FLAG && s->kind != UINT && json_is_string(v))
        snprintf(buf, n, "%s", json_string_value(v));
    else
        *bad = 1;
    return buf;
}

/* Stores the text value of setting i into c; -1 when malformed. */
static int apply(struct serve_config *c, size_t i, const char *v)
{
    unsigned long u;
    double d;
    switch (i) {
    case 0: return snprintf(c->host, sizeof c->host, "%s", v) < (int)sizeof c->host ? 0 : -1;
    case 1:
        if (parse_uint(v, 65535, &u) != 0)
            return -1;
        c->port = (uint16_t)u;
        return 0;
    case 2: snprintf(c->data_dir, sizeof c->data_dir, "%s", v); return 0;
    case 3:
        if (parse_uint(v, 256, &u) != 0 || u == 0)
            return -1;
        c->threads = (unsigned)u;
        return 0;
    case 4: snprintf(c->model, sizeof c->model, "%s", v); return 0;
    case 5:
        if (serve_config_size(v, &d) != 0)
            return -1;
        c->memory_limit = d;
        return 0;
    case 6:
        if (serve_config_size(v, &d) != 0 || d < 1 || d > (double)SIZE_MAX / 2)
            return -1;
        c->max_upload = (size_t)d;
        return 0;
    case 7: snprintf(c->web_dir, sizeof c->web_dir, "%s", v); return 0;
    case 8:
        if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
            return -1;
        c->webhook_allow_loopback = v[0] == '1';
        return 0;
    default:
        if (parse_uint(v, 65535, &u) != 0 || u == 0)
            return -1;
        c->max_per_ip = (unsigned)u;
        return 0;
    }
}

int serve_config_load(int argc, char **argv, struct serve_config *c, char *err, size_t errlen)
{
    const char *known[N_SETTINGS + 2];
    for (size_t i = 0; i < N_SETTINGS; i++)
        known[i] = settings[i].flag;
    known[N_SETTINGS] = "--config";
    known[N_SETTINGS + 1] = NULL;
    memset(c, 0, sizeof *c);
    if (cli_check_opts(argc, argv, "serve", known) != 0) {
        snprintf(err, errlen, "see `owlore --help`");
        return -1;
    }
    const char *path = cli_opt(argc, argv, "--config");
    if (!path)
        path = getenv("OWLORE_CONFIG");
    json_t *file = NULL;
    if (path) {
        json_error_t je;
        file = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(file)) {
            snprintf(err, errlen, "config %s: %s (line %d)", path,
                     file ? "not a JSON object" : je.text, je.line);
            json_decref(file);
            return -1;
        }
        const char *k;
        json_t *v;
        json_object_foreach(file, k, v) {
            size_t i = 0;
            while (i < N_SETTINGS && strcmp(settings[i].key, k) != 0)
                i++;
            if (i == N_SETTINGS) {
                snprintf(err, errlen, "config %s: unknown setting '%.64s'", path, k);
                json_decref(file);
                return -1;
            }
        }
    }
    int rc = 0;
    for (size_t i = 0; i < N_SETTINGS && rc == 0; i++) {
        const struct setting *s = &settings[i];
        char buf[4096];
        int bad = 0;
        const char *where = s->flag, *v = NULL;
        if (s->kind == FLAG && cli_flag(argc, argv, s->flag))
            v = "1";
        else if (s->kind != FLAG)
            v = cli_opt(argc, argv, s->flag);
        if (!v && (v = getenv(s->env)) != NULL)
            where = s->env;
        if (!v && (v = from_file(file, s, buf, sizeof buf, &bad)) != NULL)
            where = s->key;
        if (!v && !s->def) /* memory_limit: 0, the training device's (cmd_serve.c) */
            continue;
        if (!v)
            v = s->def, where = "default";
        if (bad || apply(c, i, v) != 0) {
            snprintf(err, errlen, "%s: invalid value for %s%s%s", where, s->flag,
                     bad ? "" : ": ", bad ? "" : v);
            rc = -1;
        }
    }
    json_decref(file);
    return rc;
}
