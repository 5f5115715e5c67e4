
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_outcome_read(): the records of a worker's outcomes file, which
 * the worker that replays it reads whatever a dying worker left.
 *
 * The input: the file's bytes.  Checks: every argument of a record lies
 * within the input and after the previous one; a record has 1 to
 * FANBASE_OUTCOME_ARGS_MAX arguments; what was read, written again with
 * fanbase_outcome_write() (within fanbase_outcome_size()), reads back the
 * same; reading never moves backwards, and stops for good.
 */


#include "ngx_http_fanbase_outcome.h"
#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   rc;
    size_t                argc, argc2, i, n, wsize;
    size_t                len[FANBASE_OUTCOME_ARGS_MAX];
    size_t                len2[FANBASE_OUTCOME_ARGS_MAX];
    uint8_t              *copy, *w, *end;
    unsigned char        *warg[FANBASE_OUTCOME_ARGS_MAX];
    const unsigned char  *p, *last, *prev, *q;
    const unsigned char  *arg[FANBASE_OUTCOME_ARGS_MAX];
    const unsigned char  *arg2[FANBASE_OUTCOME_ARGS_MAX];

    copy = fuzz_copy(data, size);
    p = copy;
    last = copy + size;

    for (n = 0; ; n++) {
        prev = p;

        rc = fanbase_outcome_read(&p, last, &argc, arg, len);

        if (rc == 0) {
            fuzz_check(p == prev);
            break;
        }

        fuzz_check(rc == 1);
        fuzz_check(p > prev && p <= last);
        fuzz_check(argc >= 1 && argc <= FANBASE_OUTCOME_ARGS_MAX);

        q = prev;

        for (i = 0; i < argc; i++) {
            fuzz_check(arg[i] > q && arg[i] + len[i] <= p);
            q = arg[i] + len[i];
            warg[i] = (unsigned char *) arg[i];
        }

        /* written again, read back the same */

        wsize = fanbase_outcome_size(argc, len);
        w = malloc(wsize ? wsize : 1);
        fuzz_check(w != NULL);

        end = fanbase_outcome_write(w, argc, warg, len);
        fuzz_check(end > w && (size_t) (end - w) <= wsize);

        q = w;
        fuzz_check(fanbase_outcome_read(&q, end, &argc2, arg2, len2) == 1);
        fuzz_check(q == end && argc2 == argc);

        for (i = 0; i < argc; i++) {
            fuzz_check(len2[i] == len[i]
                       && memcmp(arg2[i], arg[i], len[i]) == 0);
        }

        free(w);
    }

    (void) n;
    free(copy);

    return 0;
}
