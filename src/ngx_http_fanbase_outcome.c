
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The records of the outcomes files: written by a worker whose delivery
 * outcome Redis did not take, read back by the worker that replays the
 * file of one that is gone.  A file may end in the middle of a record (the
 * worker died while writing it): the reader stops at the last whole one.
 */


#include <string.h>

#include "ngx_http_fanbase_outcome.h"


#define FANBASE_OUTCOME_DIGITS  20      /* of a size_t */


static unsigned char *fanbase_outcome_number(unsigned char *p, size_t n);
static int fanbase_outcome_parse_number(const unsigned char **pos,
    const unsigned char *last, size_t *n);


size_t
fanbase_outcome_size(size_t argc, const size_t *len)
{
    size_t  i, size;

    size = FANBASE_OUTCOME_DIGITS + 1;

    for (i = 0; i < argc; i++) {
        size += FANBASE_OUTCOME_DIGITS + 1 + len[i];
    }

    return size;
}


/* at most fanbase_outcome_size() bytes */

unsigned char *
fanbase_outcome_write(unsigned char *p, size_t argc,
    unsigned char *const *arg, const size_t *len)
{
    size_t  i;

    p = fanbase_outcome_number(p, argc);

    for (i = 0; i < argc; i++) {
        p = fanbase_outcome_number(p, len[i]);
        memcpy(p, arg[i], len[i]);
        p += len[i];
    }

    return p;
}


/*
 * 1: a whole record from *pos, its arguments pointing into the buffer,
 * *pos after it; 0: none (the end, a record cut short, or bytes that are
 * no record: the rest is not read)
 */

int
fanbase_outcome_read(const unsigned char **pos, const unsigned char *last,
    size_t *argc, const unsigned char **arg, size_t *len)
{
    size_t                i, n;
    const unsigned char  *p;

    p = *pos;

    if (!fanbase_outcome_parse_number(&p, last, &n)
        || n == 0 || n > FANBASE_OUTCOME_ARGS_MAX)
    {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!fanbase_outcome_parse_number(&p, last, &len[i])
            || (size_t) (last - p) < len[i])
        {
            return 0;
        }

        arg[i] = p;
        p += len[i];
    }

    *argc = n;
    *pos = p;

    return 1;
}


static unsigned char *
fanbase_outcome_number(unsigned char *p, size_t n)
{
    unsigned char  *q, digits[FANBASE_OUTCOME_DIGITS];

    q = digits + FANBASE_OUTCOME_DIGITS;

    do {
        *--q = (unsigned char) ('0' + n % 10);
        n /= 10;
    } while (n);

    n = digits + FANBASE_OUTCOME_DIGITS - q;
    memcpy(p, q, n);
    p += n;
    *p++ = '\n';

    return p;
}


/* 1 to 19 digits and "\n" (no size a file of ours holds is longer) */

static int
fanbase_outcome_parse_number(const unsigned char **pos,
    const unsigned char *last, size_t *n)
{
    size_t                digits;
    const unsigned char  *p;

    p = *pos;
    *n = 0;

    for (digits = 0; p < last && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 19) {
            return 0;
        }

        *n = *n * 10 + (size_t) (*p - '0');
    }

    if (digits == 0 || p == last || *p != '\n') {
        return 0;
    }

    *pos = p + 1;

    return 1;
}
