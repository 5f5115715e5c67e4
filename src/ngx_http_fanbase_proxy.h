
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_PROXY_H_INCLUDED_
#define _NGX_HTTP_FANBASE_PROXY_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_peer.h"
#include "ngx_http_fanbase_wait.h"


typedef struct ngx_http_fanbase_proxy_s  ngx_http_fanbase_proxy_t;

/*
 * Fanbase answered in full (p->status, p->content_type, p->retry_after,
 * p->response): the caller says what the client gets, with
 * ngx_http_fanbase_proxy_reply(), _relay() or _error().
 */
typedef ngx_int_t (*ngx_http_fanbase_proxy_answer_pt)(
    ngx_http_fanbase_proxy_t *p);


/* how a location reaches Fanbase through nginx's upstream */

typedef struct ngx_http_fanbase_proxy_conf_s {
    ngx_http_upstream_conf_t      upstream;
    ngx_http_fanbase_peer_pool_t *pool;
    ngx_str_t                     host;        /* the Host header */
    ngx_str_t                     prefix;      /* the API's own path */
    ngx_str_t                     schema;      /* "http://", "https://" */
} ngx_http_fanbase_proxy_conf_t;


struct ngx_http_fanbase_proxy_s {
    ngx_http_request_t           *request;
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_str_t                     method;
    ngx_str_t                     path;        /* under the API */
    ngx_str_t                     body;
    ngx_uint_t                    kind;        /* for metrics */
    ngx_http_fanbase_proxy_answer_pt  answer;
    void                         *data;

    /* Fanbase's answer */
    ngx_uint_t                    status;
    ngx_str_t                     content_type;
    ngx_str_t                     retry_after;
    ngx_str_t                     response;

    /* what the client gets */
    ngx_uint_t                    out_status;
    ngx_str_t                     out_type;
    ngx_str_t                     out;

    /* under way */
    ngx_http_fanbase_peer_wait_t  slot;
    ngx_http_fanbase_waiter_t     waiter;      /* for a token */
    ngx_http_fanbase_headers_t   *hdr;
    ngx_event_t                   restart;     /* after a 401 */
    ngx_msec_t                    start;
    ngx_uint_t                    phase;
    ngx_http_status_t             st;
    ngx_http_chunked_t            chunked;
    off_t                         length;      /* of the body, or -1 */
    ngx_buf_t                    *in;          /* the body, as it comes */
    const char                   *what;        /* for logs */
    unsigned                      chunked_body:1;
    unsigned                      close:1;
    unsigned                      retried:1;
    unsigned                      invalid:1;
};


char *ngx_http_fanbase_proxy_conf(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *lcf);
void ngx_http_fanbase_proxy_start(ngx_http_fanbase_proxy_t *p);
ngx_int_t ngx_http_fanbase_proxy_reply(ngx_http_fanbase_proxy_t *p,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *body);
ngx_int_t ngx_http_fanbase_proxy_relay(ngx_http_fanbase_proxy_t *p);
ngx_int_t ngx_http_fanbase_proxy_error(ngx_http_fanbase_proxy_t *p,
    ngx_uint_t status, const char *code, const char *message);


#endif /* _NGX_HTTP_FANBASE_PROXY_H_INCLUDED_ */
