/*
 * test.h: the few macros every C test program uses.
 *
 * A test program runs named cases; each case prints one line
 *   PASS <case>            or            FAIL <case>: <why>
 * and main returns test_finish(), non-zero when any case failed.
 * tests/run.sh runs every program and ends with "N passed, N failed".
 * Tests read shared data from ../shared/data (OWLORE_SHARED overrides) and
 * remove their temporary folders with test_remove_tree.
 */
#ifndef OWLORE_TEST_H
#define OWLORE_TEST_H

#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_cases;
static int test_case_failed;
static const char *test_case_name;

static inline void test_begin(const char *name)
{
    test_case_name = name;
    test_case_failed = 0;
}

static inline void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (!test_case_failed)
        printf("FAIL %s: ", test_case_name);
    else
        printf("     %s: ", test_case_name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" (%s:%d)\n", file, line);
    test_case_failed = 1;
}

static inline void test_end(void)
{
    if (test_case_failed)
        test_failed_cases++;
    else
        printf("PASS %s\n", test_case_name);
    fflush(stdout);
}

static inline int test_finish(void)
{
    return test_failed_cases ? 1 : 0;
}

/* Path of a file under the shared data folder, in a static buffer. */
static inline const char *test_shared_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("OWLORE_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : "../shared", rel);
    return buf;
}

#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond))                                                  \
            test_fail(__FILE__, __LINE__, "check failed: %s", #cond); \
    } while (0)

#define CHECK_MSG(cond, ...)                                \
    do {                                                    \
        if (!(cond))                                        \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);     \
    } while (0)

/* |a - b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                 \
    do {                                                                      \
        double a_ = (a), b_ = (b);                                            \
        if (!(fabs(a_ - b_) <= (tol) * fmax(1.0, fabs(b_))))                  \
            test_fail(__FILE__, __LINE__, "%s = %.9g, expected %.9g (tol %g)", \
                      #a, a_, b_, (double)(tol));                             \
    } while (0)

static inline int test_remove_entry(const char *path, const struct stat *st, int flag,
                                    struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

/* Removes path and everything below it (links are removed, not followed). */
static inline void test_remove_tree(const char *path)
{
    nftw(path, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
