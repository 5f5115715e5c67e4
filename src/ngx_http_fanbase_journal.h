
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_JOURNAL_H_INCLUDED_
#define _NGX_HTTP_FANBASE_JOURNAL_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_journal_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_journal_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_fanbase_journal_wait(ngx_http_fanbase_store_op_t *op,
    uint64_t seq, ngx_int_t rc);
void ngx_http_fanbase_journal_cancel(ngx_http_fanbase_store_op_t *op);


#endif /* _NGX_HTTP_FANBASE_JOURNAL_H_INCLUDED_ */
