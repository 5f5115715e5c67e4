
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_WAIT_H_INCLUDED_
#define _NGX_HTTP_FANBASE_WAIT_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* waiting for another worker's (or this worker's) fetch */

typedef ngx_int_t (*ngx_http_fanbase_waiter_pt)(ngx_http_fanbase_waiter_t *w);

struct ngx_http_fanbase_waiter_s {
    ngx_queue_t                   queue;
    ngx_http_fanbase_waiter_pt    handler;     /* NGX_AGAIN: keep waiting */
    void                         *data;
    unsigned                      waiting:1;
};


ngx_int_t ngx_http_fanbase_wait_init_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_wait_add(ngx_http_fanbase_waiter_t *w);
void ngx_http_fanbase_wait_remove(ngx_http_fanbase_waiter_t *w);
void ngx_http_fanbase_wait_kick(void);


#endif /* _NGX_HTTP_FANBASE_WAIT_H_INCLUDED_ */
