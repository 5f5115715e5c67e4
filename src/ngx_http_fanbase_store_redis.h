
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_STORE_REDIS_H_INCLUDED_
#define _NGX_HTTP_FANBASE_STORE_REDIS_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_store.h"


extern const ngx_http_fanbase_store_t  ngx_http_fanbase_store_redis;


ngx_int_t ngx_http_fanbase_store_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_store_redis_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanbase_store_redis_loc_conf(ngx_conf_t *cf,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_loc_conf_t *lcf);


#endif /* _NGX_HTTP_FANBASE_STORE_REDIS_H_INCLUDED_ */
