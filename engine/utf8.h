/*
 * utf8.h: validating UTF-8 (RFC 3629: no overlong forms, no surrogates, no
 * code points past U+10FFFF), shared by the text and dataset readers, and
 * repairing text bound for JSON.
 */
#ifndef OWLORE_UTF8_H
#define OWLORE_UTF8_H

#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at s (n >= 1 bytes left), or 0. */
int utf8_valid_len(const unsigned char *s, size_t n);
/* s (NUL-terminated) made valid UTF-8 in place: each byte that does not
 * start a valid sequence becomes '?' (e.g. a character that a %.Ns cut). */
void utf8_repair(char *s);

#endif
