
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_DELIVER_H_INCLUDED_
#define _NGX_HTTP_FANBASE_DELIVER_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_deliver_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_deliver_exit_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_deliver_kick(void);


#endif /* _NGX_HTTP_FANBASE_DELIVER_H_INCLUDED_ */
