/*
 * fuzz_common.h: the small pieces the libFuzzer harnesses share: a NUL-
 * terminated copy of the input, the shared data folder (OWLORE_SHARED, or
 * ../shared as for the tests), and a per-process scratch file that the
 * file-format harnesses rewrite with each input before opening it by path,
 * exactly as the loaders are used.
 */
#ifndef OWLORE_FUZZ_COMMON_H
#define OWLORE_FUZZ_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A malloc'd NUL-terminated copy of data (the caller frees it). */
static inline char *fuzz_cstr(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

/* rel under the shared data folder, in a static buffer. */
static inline const char *fuzz_shared_path(const char *rel)
{
    static char path[4096];
    const char *root = getenv("OWLORE_SHARED");
    snprintf(path, sizeof path, "%s/%s", root ? root : "../shared", rel);
    return path;
}

/* The path of a scratch file named `name` in a private temporary folder
 * (made on the first call, removed with its file at exit). */
static char fuzz_scratch_dir[64];
static char fuzz_scratch_file[600];

static inline void fuzz_scratch_cleanup(void)
{
    unlink(fuzz_scratch_file);
    rmdir(fuzz_scratch_dir);
}

static inline const char *fuzz_scratch(const char *name)
{
    if (!fuzz_scratch_dir[0]) {
        snprintf(fuzz_scratch_dir, sizeof fuzz_scratch_dir, "/tmp/owlore-fuzz-XXXXXX");
        if (!mkdtemp(fuzz_scratch_dir))
            abort();
        snprintf(fuzz_scratch_file, sizeof fuzz_scratch_file, "%s/%s", fuzz_scratch_dir, name);
        atexit(fuzz_scratch_cleanup);
    }
    return fuzz_scratch_file;
}

/* Replaces the scratch file's content with data; returns its path. */
static inline const char *fuzz_write_scratch(const char *name, const uint8_t *data, size_t n)
{
    const char *path = fuzz_scratch(name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        abort();
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, data + done, n - done);
        if (w <= 0)
            abort();
        done += (size_t)w;
    }
    close(fd);
    return path;
}

#endif
