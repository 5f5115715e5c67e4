
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_ID_H_INCLUDED_
#define _NGX_HTTP_FANBASE_ID_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


ngx_int_t ngx_http_fanbase_id_valid(ngx_str_t *id);
ngx_int_t ngx_http_fanbase_id_valid_txn(ngx_str_t *id);
ngx_int_t ngx_http_fanbase_id_valid_request(ngx_str_t *id);
uint32_t ngx_http_fanbase_id_hash(uint64_t scope, u_char *id, size_t len);
ngx_int_t ngx_http_fanbase_id_random(u_char *b);
u_char *ngx_http_fanbase_id_hex16(u_char *dst, u_char *src);
u_char *ngx_http_fanbase_id_uuid(u_char *dst, u_char *src);


#endif /* _NGX_HTTP_FANBASE_ID_H_INCLUDED_ */
