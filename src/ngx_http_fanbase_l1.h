
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_L1_H_INCLUDED_
#define _NGX_HTTP_FANBASE_L1_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_txn.h"


ngx_int_t ngx_http_fanbase_l1_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_uint_t ngx_http_fanbase_l1_evict(ngx_http_fanbase_main_conf_t *mcf);
ngx_atomic_uint_t ngx_http_fanbase_l1_stamp(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id);
ngx_int_t ngx_http_fanbase_l1_get(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_uint_t stale, ngx_pool_t *pool,
    ngx_http_fanbase_txn_view_t *v);
void ngx_http_fanbase_l1_put(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_atomic_uint_t stamp,
    ngx_http_fanbase_txn_view_t *v);


#endif /* _NGX_HTTP_FANBASE_L1_H_INCLUDED_ */
