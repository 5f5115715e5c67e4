
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_TOKEN_REDIS_H_INCLUDED_
#define _NGX_HTTP_FANBASE_TOKEN_REDIS_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* what Redis said about a credential set's token */

typedef struct {
    ngx_int_t                     rc;          /* NGX_OK: a token to use;
                                                  NGX_DECLINED: the lease is
                                                  this host's, fetch;
                                                  NGX_BUSY: another host
                                                  fetches; NGX_ERROR: no
                                                  answer, fetch alone */
    u_char                       *token;       /* NGX_OK: wiped after */
    size_t                        len;
    ngx_msec_t                    left;        /* ms until its end */
    ngx_msec_t                    life;        /* its whole lifetime */
} ngx_http_fanbase_token_redis_answer_t;

typedef void (*ngx_http_fanbase_token_redis_pt)(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_token_redis_answer_t *answer);


ngx_int_t ngx_http_fanbase_token_redis_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanbase_token_redis_ask(ngx_http_fanbase_cred_t *cred,
    u_char *have, size_t len, ngx_msec_t have_left, ngx_msec_t lease,
    ngx_http_fanbase_token_redis_pt handler);
void ngx_http_fanbase_token_redis_put(ngx_http_fanbase_cred_t *cred,
    const u_char *token, size_t len, ngx_msec_t life);
void ngx_http_fanbase_token_redis_release(ngx_http_fanbase_cred_t *cred);
void ngx_http_fanbase_token_redis_drop(ngx_http_fanbase_cred_t *cred,
    const u_char *token, size_t len);


#endif /* _NGX_HTTP_FANBASE_TOKEN_REDIS_H_INCLUDED_ */
