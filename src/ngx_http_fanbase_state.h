
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_STATE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_STATE_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_state_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_state_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_state_save(ngx_http_fanbase_main_conf_t *mcf,
    ngx_uint_t force, ngx_log_t *log);


#endif /* _NGX_HTTP_FANBASE_STATE_H_INCLUDED_ */
