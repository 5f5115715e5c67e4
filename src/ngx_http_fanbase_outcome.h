
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_OUTCOME_H_INCLUDED_
#define _NGX_HTTP_FANBASE_OUTCOME_H_INCLUDED_


#include <stddef.h>


/*
 * A record of a worker's outcomes file (ngx_http_fanbase_store_redis.c):
 * the arguments of an outcome Redis did not take, "ARGC\n" then "LEN\n"
 * and the bytes of each.  Plain C, no nginx types: a fuzzer reads it too
 * (t/fuzz/outcome_fuzz.c).
 */

#define FANBASE_OUTCOME_ARGS_MAX  16

size_t fanbase_outcome_size(size_t argc, const size_t *len);
unsigned char *fanbase_outcome_write(unsigned char *p, size_t argc,
    unsigned char *const *arg, const size_t *len);
int fanbase_outcome_read(const unsigned char **pos, const unsigned char *last,
    size_t *argc, const unsigned char **arg, size_t *len);


#endif /* _NGX_HTTP_FANBASE_OUTCOME_H_INCLUDED_ */
