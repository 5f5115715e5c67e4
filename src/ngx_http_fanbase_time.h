
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_TIME_H_INCLUDED_
#define _NGX_HTTP_FANBASE_TIME_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


uint64_t ngx_http_fanbase_time_now(void);
u_char *ngx_http_fanbase_time_iso(u_char *p, uint64_t ms);


#endif /* _NGX_HTTP_FANBASE_TIME_H_INCLUDED_ */
