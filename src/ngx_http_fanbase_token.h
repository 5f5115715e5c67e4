
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_TOKEN_H_INCLUDED_
#define _NGX_HTTP_FANBASE_TOKEN_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* a credential set's token, as fanbase_health shows it */

typedef struct {
    const char                   *state;       /* valid, fetching, failing,
                                                  none, fixed */
    ngx_msec_t                    expires_in;
    ngx_msec_t                    retry_in;    /* the backoff left */
    ngx_uint_t                    failures;    /* in a row */
    ngx_str_t                     error;       /* the last one */
    uint64_t                      fetched_ok;  /* since the zone's start */
    uint64_t                      fetched_failed;
} ngx_http_fanbase_token_health_t;


ngx_int_t ngx_http_fanbase_token_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_token_attach_zone(
    ngx_http_fanbase_main_conf_t *mcf, size_t size, ngx_log_t *log);
ngx_http_fanbase_cred_t *ngx_http_fanbase_token_cred(ngx_conf_t *cf,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_loc_conf_t *lcf);
ngx_int_t ngx_http_fanbase_token_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_token_get(ngx_http_fanbase_cred_t *cred,
    ngx_log_t *log, ngx_http_fanbase_headers_t **hdr, time_t *retry_after);
ngx_int_t ngx_http_fanbase_token_health(ngx_http_fanbase_cred_t *cred,
    ngx_pool_t *pool, ngx_http_fanbase_token_health_t *th);
void ngx_http_fanbase_token_reject(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_headers_t *hdr, ngx_log_t *log);


#endif /* _NGX_HTTP_FANBASE_TOKEN_H_INCLUDED_ */
