
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_TIME_H_INCLUDED_
#define _NGX_HTTP_FANBASE_TIME_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


uint64_t ngx_http_fanbase_time_now(void);
u_char *ngx_http_fanbase_time_iso(u_char *p, uint64_t ms);
uint64_t ngx_http_fanbase_time_usec(void);
void ngx_http_fanbase_time_timer(ngx_event_t *ev, ngx_connection_t *c,
    void *data, ngx_event_handler_pt handler, ngx_log_t *log);


#endif /* _NGX_HTTP_FANBASE_TIME_H_INCLUDED_ */
