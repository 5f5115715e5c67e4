
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_RESPONSE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_RESPONSE_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_json.h"


ngx_int_t ngx_http_fanbase_response_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *json);
ngx_int_t ngx_http_fanbase_response_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
ngx_int_t ngx_http_fanbase_response_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message);
ngx_int_t ngx_http_fanbase_response_unavailable(ngx_http_request_t *r,
    const char *code, const char *message, time_t retry_after);
ngx_int_t ngx_http_fanbase_response_call_failure(ngx_http_request_t *r,
    ngx_http_fanbase_call_t *call, ngx_int_t rc, const char *what);
ngx_int_t ngx_http_fanbase_response_relay(ngx_http_request_t *r,
    ngx_http_fanbase_curl_t *h);
ngx_int_t ngx_http_fanbase_response_error_json(ngx_pool_t *pool,
    ngx_uint_t status, const char *code, const char *message,
    ngx_str_t *json);
ngx_int_t ngx_http_fanbase_response_add_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_fanbase_response_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_fanbase_response_render_item(ngx_pool_t *pool,
    fanbase_item_t *item, ngx_uint_t show_msg, ngx_str_t *out);


#endif /* _NGX_HTTP_FANBASE_RESPONSE_H_INCLUDED_ */
