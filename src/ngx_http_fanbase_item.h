
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_ITEM_H_INCLUDED_
#define _NGX_HTTP_FANBASE_ITEM_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_json.h"


/* a status lookup in the store */

typedef struct {
    ngx_msec_t                    refresh;
    ngx_msec_t                    lease;       /* a read-through may take */
    ngx_msec_t                    seen;        /* answer seen when waiting */
    unsigned                      waiting:1;
    unsigned                      want_msg:1;
} ngx_http_fanbase_lookup_t;


ngx_int_t ngx_http_fanbase_item_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_uint_t ngx_http_fanbase_item_evict(ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_item_lookup(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_http_fanbase_lookup_t *lk,
    ngx_pool_t *pool, fanbase_item_t *item);
ngx_int_t ngx_http_fanbase_item_update(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, fanbase_item_t *item, ngx_uint_t keep_msg,
    ngx_uint_t owned, void *reserved, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_item_store(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, fanbase_item_t *item, ngx_uint_t keep_msg,
    ngx_uint_t owned, void *reserved, ngx_log_t *log);
ngx_uint_t ngx_http_fanbase_item_known(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id);
void ngx_http_fanbase_item_release(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_uint_t not_found);
void *ngx_http_fanbase_item_reserve(ngx_http_fanbase_main_conf_t *mcf,
    size_t payload, ngx_log_t *log);
void ngx_http_fanbase_item_unreserve(ngx_http_fanbase_main_conf_t *mcf,
    void *reserved);
void ngx_http_fanbase_item_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_FANBASE_ITEM_H_INCLUDED_ */
