
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_RID_H_INCLUDED_
#define _NGX_HTTP_FANBASE_RID_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_rid_init(ngx_conf_t *cf);
ngx_int_t ngx_http_fanbase_rid_set(ngx_http_request_t *r);
void ngx_http_fanbase_rid_get(ngx_http_request_t *r, ngx_str_t *id);


#endif /* _NGX_HTTP_FANBASE_RID_H_INCLUDED_ */
