
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_CALL_H_INCLUDED_
#define _NGX_HTTP_FANBASE_CALL_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_wait.h"


/* an authenticated call to Fanbase Connect on behalf of a request */

typedef void (*ngx_http_fanbase_call_done_pt)(ngx_http_fanbase_call_t *call,
    ngx_int_t rc);

struct ngx_http_fanbase_call_s {
    ngx_http_request_t           *request;
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_str_t                     url;         /* "\0"-terminated */
    ngx_str_t                     body;
    ngx_http_fanbase_curl_t      *http;
    ngx_http_fanbase_headers_t *hdr;
    ngx_http_fanbase_waiter_t     waiter;
    ngx_http_fanbase_call_done_pt done;
    void                         *data;
    time_t                        retry_after;
    ngx_msec_t                    start;       /* of the transfer */
    ngx_uint_t                    kind;        /* for metrics */
    unsigned                      post:1;
    unsigned                      retried:1;
    unsigned                      rejected:1;
};


ngx_int_t ngx_http_fanbase_call_start(ngx_http_fanbase_call_t *call);


#endif /* _NGX_HTTP_FANBASE_CALL_H_INCLUDED_ */
