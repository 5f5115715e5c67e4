
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_VARIABLES_H_INCLUDED_
#define _NGX_HTTP_FANBASE_VARIABLES_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


#define NGX_HTTP_FANBASE_CALLS_MAX   4


/*
 * What the module did with a request, for its log line (the $fanbase_*
 * variables), and nginx's own error page as a JSON error (response.c's
 * filter): the module's context of a request.
 */

typedef struct {
    ngx_str_t                     request_id;  /* ngx_http_fanbase_rid.c */
    ngx_str_t                     transaction_id;
    ngx_str_t                     queue_id;
    const char                   *error;       /* the code we answered */
    const char                   *cache;       /* HIT, MISS, STALE */
    ngx_uint_t                    outcome;     /* a webhook's, + 1 */

    /* the calls to Fanbase made for it, at most CALLS_MAX */
    ngx_uint_t                    calls;
    ngx_uint_t                    status[NGX_HTTP_FANBASE_CALLS_MAX];
    ngx_msec_t                    time[NGX_HTTP_FANBASE_CALLS_MAX];

    ngx_str_t                     error_page;
    const char                   *failure;     /* the code of an error */
    const char                   *failure_message; /* page nginx sends */
    void                         *proxy;       /* ngx_http_fanbase_proxy_t */
    unsigned                      error_page_sent:1;
    unsigned                      swallow:1;   /* an answer not sent */
    unsigned                      rid_due:1;   /* request_id made when read */
} ngx_http_fanbase_ctx_t;


ngx_int_t ngx_http_fanbase_variables_add(ngx_conf_t *cf);
ngx_http_fanbase_ctx_t *ngx_http_fanbase_variables_ctx(ngx_http_request_t *r);
void ngx_http_fanbase_variables_id(ngx_http_request_t *r, ngx_uint_t queue,
    u_char *id, size_t len);
void ngx_http_fanbase_variables_txn_id(ngx_http_request_t *r, u_char *id);
void ngx_http_fanbase_variables_call(ngx_http_request_t *r,
    ngx_uint_t status, ngx_msec_t start);


#endif /* _NGX_HTTP_FANBASE_VARIABLES_H_INCLUDED_ */
