
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_HEALTH_H_INCLUDED_
#define _NGX_HTTP_FANBASE_HEALTH_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_health_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_FANBASE_HEALTH_H_INCLUDED_ */
