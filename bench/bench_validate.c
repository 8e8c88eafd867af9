/*
 * bench_validate.c: throughput and memory of the streaming dataset
 * validator (engine/validate.h) on a large generated JSONL file.
 *
 * Writes a chat-format JSONL file (default 1 GiB) in /tmp: conversations
 * of an optional system message, one to three user/assistant turns of
 * pseudo-random words with escapes (\n, \", \\) and multi-byte UTF-8, a
 * few hundred bytes to a few KB per line. Validates it (structure only,
 * 1 MiB reads) and prints MB/s (10^6 bytes) and the peak resident set size
 * (getrusage) before and after, which shows the validator's memory does
 * not grow with the file. With --tokens it also validates a smaller file
 * of the same kind (--tokens-mib, default 16) with token statistics, using
 * the stories260K tokenizer and the raw template. The files are deleted.
 * Prints a table and writes build/bench/validate.json.
 *
 * Usage: bench_validate [--size-mib N] [--tokens] [--tokens-mib N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "validate.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

static unsigned long long rng = 0x853C49E6748FEA9Bull;
static unsigned rnd(unsigned n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)((rng >> 33) % n);
}

static const char *const words[] = {
    "the", "model", "learns", "from", "data", "and", "each", "layer", "gradient",
    "rank", "projection", "sampling", "outlier", "weights", "quickly", "caf\xc3\xa9",
    "na\xc3\xafve", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x99\x82", "\\n", "\\\"quoted\\\"",
    "a\\\\b", "42", "3.14", "tokens", "per", "second", "is", "not", "enough",
};

/* One message content of about `len` bytes, appended to buf at *n. */
static void content(char *buf, size_t *n, size_t len)
{
    size_t start = *n;
    while (*n - start < len) {
        const char *w = words[rnd(sizeof words / sizeof words[0])];
        size_t k = strlen(w);
        memcpy(buf + *n, w, k);
        *n += k;
        buf[(*n)++] = ' ';
    }
    buf[*n - 1] = '.';
}

static void message(char *buf, size_t *n, const char *role, size_t len, int first)
{
    *n += (size_t)sprintf(buf + *n, "%s{\"role\": \"%s\", \"content\": \"", first ? "" : ", ",
                          role);
    content(buf, n, len);
    *n += (size_t)sprintf(buf + *n, "\"}");
}

/* Write about `bytes` of chat JSONL to path; returns the lines written, or -1. */
static long generate(const char *path, unsigned long long bytes)
{
    FILE *f = fopen(path, "wb");
    static char line[1 << 16];
    unsigned long long written = 0;
    long lines = 0;
    if (!f)
        return -1;
    while (written < bytes) {
        size_t n = (size_t)sprintf(line, "{\"messages\": [");
        int first = 1;
        if (rnd(2)) {
            message(line, &n, "system", 40 + rnd(120), 1);
            first = 0;
        }
        for (int t = 1 + (int)rnd(3); t > 0; t--) {
            message(line, &n, "user", 30 + rnd(400), first);
            message(line, &n, "assistant", 60 + rnd(1500), 0);
            first = 0;
        }
        n += (size_t)sprintf(line + n, "]}\n");
        if (fwrite(line, 1, n, f) != n) {
            fclose(f);
            return -1;
        }
        written += n;
        lines++;
    }
    return fclose(f) == 0 ? lines : -1;
}

struct run {
    const char *name;
    unsigned long long bytes;
    long examples;
    double seconds, mb_s, rss_before, rss_after;
    long long tokens;
};

static int run(struct run *out, const char *name, const char *path,
               const struct validate_opts *o, long lines)
{
    struct validate_report r;
    char err[512];
    out->name = name;
    out->rss_before = peak_rss_mib();
    double t0 = now();
    if (validate_file(path, o, 0, &r, err, sizeof err) != 0) {
        fprintf(stderr, "bench_validate: %s\n", err);
        return -1;
    }
    out->seconds = now() - t0;
    out->rss_after = peak_rss_mib();
    out->bytes = r.bytes;
    out->examples = r.examples;
    out->tokens = r.tokens;
    out->mb_s = r.bytes / 1e6 / out->seconds;
    int ok = r.valid && r.examples == lines;
    if (!ok)
        fprintf(stderr, "bench_validate: %s: valid %d, %ld examples of %ld lines%s%s\n", name,
                r.valid, r.examples, lines, r.n_errors ? ": " : "",
                r.n_errors ? r.errors[0].message : "");
    validate_report_free(&r);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    long size_mib = 1024, tokens_mib = 16;
    int tokens = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokens") == 0)
            tokens = 1;
        else if (strcmp(argv[i], "--size-mib") == 0 && i + 1 < argc)
            size_mib = atol(argv[++i]);
        else if (strcmp(argv[i], "--tokens-mib") == 0 && i + 1 < argc)
            tokens_mib = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_validate [--size-mib N] [--tokens] [--tokens-mib N]\n");
            return 2;
        }
    }
    if (size_mib < 1 || tokens_mib < 1) {
        fprintf(stderr, "bench_validate: sizes must be at least 1 MiB\n");
        return 2;
    }
    char path[256];
    snprintf(path, sizeof path, "/tmp/owlore-bench-validate-%d.jsonl", (int)getpid());
    struct run res[2];
    int n_res = 0, rc = 1;
    struct validate_opts o;
    struct tokenizer tok;
    int have_tok = 0;
    validate_opts_default(&o);

    double t0 = now();
    long lines = generate(path, (unsigned long long)size_mib << 20);
    if (lines < 0) {
        fprintf(stderr, "bench_validate: cannot write %s\n", path);
        unlink(path);
        return 1;
    }
    printf("generated %s: %ld MiB, %ld lines in %.1f s\n", path, size_mib, lines, now() - t0);
    if (run(&res[n_res++], "structure", path, &o, lines) != 0)
        goto out;
    unlink(path);

    if (tokens) {
        char err[512], tok_path[4096];
        const char *shared = getenv("OWLORE_SHARED") ? getenv("OWLORE_SHARED") : "../shared";
        snprintf(tok_path, sizeof tok_path, "%s/data/models/stories260K/tok512.bin", shared);
        if (tokenizer_load_llama2c(&tok, tok_path, 512, err, sizeof err) != 0) {
            fprintf(stderr, "bench_validate: %s\n", err);
            goto out;
        }
        have_tok = 1;
        lines = generate(path, (unsigned long long)tokens_mib << 20);
        if (lines < 0) {
            fprintf(stderr, "bench_validate: cannot write %s\n", path);
            goto out;
        }
        o.tok = &tok;
        o.tmpl = CHAT_RAW;
        if (run(&res[n_res++], "tokens (stories260K, raw)", path, &o, lines) != 0)
            goto out;
    }

    printf("\nstreaming validator, 1 MiB reads, one thread\n");
    printf("%-28s %10s %10s %9s %10s %12s %12s\n", "run", "MiB", "examples", "s", "MB/s",
           "peak RSS MiB", "before MiB");
    for (int i = 0; i < n_res; i++)
        printf("%-28s %10.1f %10ld %9.2f %10.1f %12.1f %12.1f\n", res[i].name,
               res[i].bytes / 1048576.0, res[i].examples, res[i].seconds, res[i].mb_s,
               res[i].rss_after, res[i].rss_before);
    if (n_res == 2)
        printf("tokens counted: %lld (%.0f tokens/s)\n", res[1].tokens,
               res[1].tokens / res[1].seconds);
    FILE *f = fopen("build/bench/validate.json", "w");
    if (f) {
        fprintf(f, "{\"results\": [");
        for (int i = 0; i < n_res; i++)
            fprintf(f, "%s{\"run\": \"%s\", \"bytes\": %llu, \"examples\": %ld, "
                    "\"seconds\": %.3f, \"mb_per_s\": %.2f, \"peak_rss_mib\": %.1f, "
                    "\"peak_rss_before_mib\": %.1f, \"tokens\": %lld}",
                    i ? ", " : "", res[i].name, res[i].bytes, res[i].examples, res[i].seconds,
                    res[i].mb_s, res[i].rss_after, res[i].rss_before, res[i].tokens);
        fprintf(f, "]}\n");
        fclose(f);
    }
    rc = 0;
out:
    unlink(path);
    if (have_tok)
        tokenizer_free(&tok);
    return rc;
}
