
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_REQUEST_H_INCLUDED_
#define _NGX_HTTP_FANBASE_REQUEST_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_request_read_body(ngx_http_request_t *r,
    ngx_str_t *body);
ngx_table_elt_t *ngx_http_fanbase_request_header_in(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_int_t ngx_http_fanbase_request_id(ngx_http_request_t *r, ngx_str_t *id);


#endif /* _NGX_HTTP_FANBASE_REQUEST_H_INCLUDED_ */
