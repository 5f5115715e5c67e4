
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_CURL_H_INCLUDED_
#define _NGX_HTTP_FANBASE_CURL_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include <curl/curl.h>


/* the libcurl bridge */

/*
 * request headers shared by many transfers (a token's AccessToken and
 * friends), counted: the last transfer to let go frees them; the tag is
 * its owner's (the token's generation)
 */

struct ngx_http_fanbase_headers_s {
    ngx_uint_t                    refs;
    uint64_t                      tag;
    struct curl_slist            *headers;
    ngx_str_t                     lines;       /* the same headers but the
                                                  empty ones ("Expect:"),
                                                  each with its CRLF, as
                                                  nginx's upstream sends
                                                  them; after the struct */
};

typedef void (*ngx_http_fanbase_curl_handler_pt)(ngx_http_fanbase_curl_t *h);

struct ngx_http_fanbase_curl_s {
    CURL                         *easy;
    ngx_queue_t                   queue;
    ngx_http_fanbase_curl_handler_pt  handler;
    void                         *data;
    ngx_log_t                    *log;
    ngx_http_fanbase_upstream_conf_t  *conf;
    ngx_http_fanbase_headers_t *hdr;
    struct curl_slist            *headers;     /* its own, freed with it */
    struct curl_slist             request_id;  /* X-Request-ID, or none */
    u_char                        request_id_line[sizeof("X-Request-ID: ")
                                      + NGX_HTTP_FANBASE_REQUEST_ID_MAX];

    CURLcode                      result;
    long                          status;
    u_char                       *body;
    size_t                        len;
    size_t                        size;
    u_char                        content_type[128];
    u_char                        retry_after[32];
    char                          error[CURL_ERROR_SIZE];

    ngx_uint_t                    attempts;
    ngx_uint_t                    kind;        /* for metrics: what it is */

    unsigned                      running:1;
};


ngx_int_t ngx_http_fanbase_curl_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_curl_exit_process(ngx_cycle_t *cycle);
ngx_http_fanbase_curl_t *ngx_http_fanbase_curl_create(ngx_log_t *log,
    ngx_http_fanbase_upstream_conf_t *conf, const char *url);
void ngx_http_fanbase_curl_post(ngx_http_fanbase_curl_t *h, u_char *body,
    size_t len);
void ngx_http_fanbase_curl_request_id(ngx_http_fanbase_curl_t *h,
    ngx_str_t *id);
ngx_int_t ngx_http_fanbase_curl_start(ngx_http_fanbase_curl_t *h);
void ngx_http_fanbase_curl_destroy(ngx_http_fanbase_curl_t *h);
void ngx_http_fanbase_curl_headers_release(ngx_http_fanbase_headers_t *hdr);


#endif /* _NGX_HTTP_FANBASE_CURL_H_INCLUDED_ */
