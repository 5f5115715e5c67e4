
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * What the fuzz harnesses of t/fuzz/ share: a check that aborts (so that
 * libFuzzer and the replay of t/007_fuzz_corpus.t both see it), the
 * splitting of an input into fields, the checks of strings that a parser
 * returns, and of documents the module renders.
 */


#ifndef _FANBASE_FUZZ_H_INCLUDED_
#define _FANBASE_FUZZ_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/*
 * Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)
 * of every string a JSON parser returns: yajl checks only the shape of
 * each sequence and encodes a lone "\udc00" as a surrogate, and json.c
 * repairs what it lets through (issue 11, item 1).  0: check only what yajl
 * promises, lead bytes followed by the right number of continuation bytes.
 */
#ifndef FUZZ_STRICT_UTF8
#define FUZZ_STRICT_UTF8  1
#endif


#define fuzz_check(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n",            \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/*
 * The next field of an input made of fields separated by NUL bytes (seeds
 * are then easy to write with printf); the last field takes the rest.
 */

static inline void
fuzz_field(const uint8_t **p, const uint8_t *last, int is_last,
    const uint8_t **field, size_t *len)
{
    const uint8_t  *end;

    end = is_last ? NULL : memchr(*p, '\0', last - *p);

    if (end == NULL) {
        end = last;
    }

    *field = *p;
    *len = end - *p;
    *p = (end < last) ? end + 1 : last;
}


/* a string lies within [start, start + size): NULL strings are empty */

static inline int
fuzz_within(const unsigned char *s, size_t len, const void *start,
    size_t size)
{
    const unsigned char  *b = start;

    if (s == NULL) {
        return len == 0;
    }

    return b != NULL && s >= b && len <= size && s - b <= (ptrdiff_t) (size - len);
}


static inline int
fuzz_utf8(const unsigned char *s, size_t len)
{
    size_t    i, n, k;
    uint32_t  c, min;

    for (i = 0; i < len; i += n) {
        c = s[i];

        if (c < 0x80) {
            n = 1;
            continue;
        }

        if ((c & 0xe0) == 0xc0) {
            n = 2; c &= 0x1f; min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            n = 3; c &= 0x0f; min = 0x800;

        } else if ((c & 0xf8) == 0xf0) {
            n = 4; c &= 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (len - i < n) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            c = (c << 6) | (s[i + k] & 0x3f);
        }

        if (FUZZ_STRICT_UTF8
            && (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)))
        {
            return 0;
        }
    }

    return 1;
}


static inline int
fuzz_str_eq(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
    if ((a == NULL) != (b == NULL) || alen != blen) {
        return 0;
    }

    return alen == 0 || memcmp(a, b, alen) == 0;
}


static inline const uint8_t *
fuzz_memmem(const uint8_t *p, size_t len, const char *s)
{
    size_t  i, n;

    n = strlen(s);

    for (i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(p + i, s, n) == 0) {
            return p + i;
        }
    }

    return NULL;
}


/*
 * Every JSON parser refuses the same texts as invalid JSON when the text
 * is in strict UTF-8 and nests no deeper than FANBASE_JSON_DEPTH_MAX:
 * beyond, the submission check refuses what others read (a submission is
 * checked strictly; Fanbase's answers are repaired, and one level deeper).
 */

#ifdef FANBASE_JSON_DEPTH_MAX

static inline int
fuzz_plain_json(const uint8_t *p, size_t len)
{
    size_t  i, depth;

    depth = 0;

    for (i = 0; i < len; i++) {
        if (p[i] == '"') {
            for (i++; i < len && p[i] != '"'; i++) {
                i += (p[i] == '\\');
            }

        } else if (p[i] == '[' || p[i] == '{') {
            if (++depth > FANBASE_JSON_DEPTH_MAX) {
                return 0;
            }

        } else if ((p[i] == ']' || p[i] == '}') && depth) {
            depth--;
        }
    }

    return fuzz_utf8(p, len);
}

#endif


/* a copy of the input in its own allocation: ASan sees any read beyond */

static inline uint8_t *
fuzz_copy(const uint8_t *data, size_t size)
{
    uint8_t  *p;

    p = malloc(size ? size : 1);
    fuzz_check(p != NULL);

    if (size) {
        memcpy(p, data, size);
    }

    return p;
}


/*
 * A document the module rendered into doc[0, len), with "size" bytes of
 * room and one more for a NUL (for harnesses that include yajl_tree.h):
 * it fits, has no NUL, and yajl reads it as an object; the string at
 * "path" is there and, when it was valid UTF-8 without a NUL, is "text".
 */

#ifdef YAJL_TREE_H

static inline void
fuzz_rendered(uint8_t *doc, size_t len, size_t size, const char **path,
    const uint8_t *text, size_t text_len)
{
    const char  *s;
    yajl_val     v, x;

    fuzz_check(len <= size);
    fuzz_check(memchr(doc, '\0', len) == NULL);
    doc[len] = '\0';

    v = yajl_tree_parse((const char *) doc, NULL, 0);
    fuzz_check(v != NULL && YAJL_IS_OBJECT(v));

    x = yajl_tree_get(v, path, yajl_t_string);
    fuzz_check(x != NULL);
    s = YAJL_GET_STRING(x);

    if (fuzz_utf8(text, text_len) && memchr(text, '\0', text_len) == NULL) {
        fuzz_check(strlen(s) == text_len && memcmp(s, text, text_len) == 0);
    }

    yajl_tree_free(v);
}

#endif


#endif /* _FANBASE_FUZZ_H_INCLUDED_ */
