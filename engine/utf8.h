/*
 * utf8.h: validating UTF-8 (RFC 3629: no overlong forms, no surrogates, no
 * code points past U+10FFFF), shared by the text and dataset readers.
 */
#ifndef OWLORE_UTF8_H
#define OWLORE_UTF8_H

#include <stddef.h>

/* Length (1-4) of the valid UTF-8 sequence at s (n >= 1 bytes left), or 0. */
int utf8_valid_len(const unsigned char *s, size_t n);

#endif
