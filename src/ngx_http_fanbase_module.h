
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_MODULE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <curl/curl.h>

#include "ngx_http_fanbase_json.h"


#define NGX_HTTP_FANBASE_VERSION        "0.1.0"

#define NGX_HTTP_FANBASE_ID_MAX         64
#define NGX_HTTP_FANBASE_TOKEN_MAX      8192
#define NGX_HTTP_FANBASE_RESPONSE_MAX   (1024 * 1024)
#define NGX_HTTP_FANBASE_QUEUE_PATH     "/api/v1/integration/queue"

#define NGX_HTTP_FANBASE_SUBMIT         1
#define NGX_HTTP_FANBASE_STATUS         2


typedef struct ngx_http_fanbase_cred_s        ngx_http_fanbase_cred_t;
typedef struct ngx_http_fanbase_http_s        ngx_http_fanbase_http_t;
typedef struct ngx_http_fanbase_waiter_s      ngx_http_fanbase_waiter_t;
typedef struct ngx_http_fanbase_call_s        ngx_http_fanbase_call_t;


/* settings of outbound transfers */

typedef struct {
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    timeout;
    ngx_flag_t                    ssl_verify;
    ngx_str_t                     ssl_trusted_certificate;
} ngx_http_fanbase_upstream_conf_t;


/* the shared zone */

typedef struct {
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   evictable;   /* LRU: terminal and probes */
    ngx_queue_t                   active;      /* not terminal: kept */
    ngx_queue_t                   tokens;
    ngx_uint_t                    entries;
    ngx_uint_t                    evictions;
} ngx_http_fanbase_shctx_t;


typedef struct {
    ngx_shm_zone_t               *shm_zone;
    ngx_http_fanbase_shctx_t     *sh;
    ngx_slab_pool_t              *shpool;
    ngx_array_t                   creds;       /* ngx_http_fanbase_cred_t * */
} ngx_http_fanbase_main_conf_t;


typedef struct {
    ngx_str_t                     api;
    ngx_str_t                     queue_url;   /* api + queue path, "\0" */
    ngx_str_t                     token_url;
    ngx_str_t                     client_id;
    ngx_str_t                     client_secret;
    ngx_str_t                     access_token;
    ngx_http_fanbase_cred_t      *cred;
    ngx_http_fanbase_upstream_conf_t  upstream;
    ngx_msec_t                    status_refresh;
    ngx_flag_t                    store_payload;
    ngx_http_complex_value_t     *status_id;
    ngx_uint_t                    handler;
    ngx_str_t                    *handler_file;
    ngx_uint_t                    handler_line;
} ngx_http_fanbase_loc_conf_t;


/* a status lookup in the store */

typedef struct {
    ngx_msec_t                    refresh;
    ngx_msec_t                    lease;       /* a read-through may take */
    ngx_msec_t                    seen;        /* answer seen when waiting */
    unsigned                      waiting:1;
    unsigned                      want_msg:1;
} ngx_http_fanbase_lookup_t;


/* tokens */

typedef struct {
    ngx_uint_t                    refs;
    uint64_t                      generation;
    struct curl_slist            *headers;     /* AccessToken and friends */
} ngx_http_fanbase_token_hdr_t;


struct ngx_http_fanbase_cred_s {
    u_char                        key[16];     /* MD5 of the credential set */
    ngx_str_t                     url;         /* token request, "\0" */
    ngx_str_t                     fixed;       /* fanbase_access_token_file */
    ngx_str_t                     name;        /* for logs: no secret */
    ngx_http_fanbase_main_conf_t *mcf;
    ngx_http_fanbase_upstream_conf_t *upstream;

    /* this worker's view */
    void                         *slot;
    ngx_http_fanbase_token_hdr_t *hdr;
    ngx_http_fanbase_http_t      *fetch;
};


/* the libcurl bridge */

typedef void (*ngx_http_fanbase_http_handler_pt)(ngx_http_fanbase_http_t *h);

struct ngx_http_fanbase_http_s {
    CURL                         *easy;
    ngx_queue_t                   queue;
    ngx_http_fanbase_http_handler_pt  handler;
    void                         *data;
    ngx_log_t                    *log;
    ngx_http_fanbase_upstream_conf_t  *conf;
    ngx_http_fanbase_token_hdr_t *hdr;

    CURLcode                      result;
    long                          status;
    u_char                       *body;
    size_t                        len;
    size_t                        size;
    u_char                        content_type[128];
    u_char                        retry_after[32];
    char                          error[CURL_ERROR_SIZE];

    ngx_uint_t                    attempts;

    unsigned                      running:1;
};


/* waiting for another worker's (or this worker's) fetch */

typedef ngx_int_t (*ngx_http_fanbase_waiter_pt)(ngx_http_fanbase_waiter_t *w);

struct ngx_http_fanbase_waiter_s {
    ngx_queue_t                   queue;
    ngx_http_fanbase_waiter_pt    handler;     /* NGX_AGAIN: keep waiting */
    void                         *data;
    unsigned                      waiting:1;
};


/* an authenticated call to Fanbase Connect on behalf of a request */

typedef void (*ngx_http_fanbase_call_done_pt)(ngx_http_fanbase_call_t *call,
    ngx_int_t rc);

struct ngx_http_fanbase_call_s {
    ngx_http_request_t           *request;
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_str_t                     url;         /* "\0"-terminated */
    ngx_str_t                     body;
    ngx_http_fanbase_http_t      *http;
    ngx_http_fanbase_token_hdr_t *hdr;
    ngx_http_fanbase_waiter_t     waiter;
    ngx_http_fanbase_call_done_pt done;
    void                         *data;
    time_t                        retry_after;
    unsigned                      post:1;
    unsigned                      retried:1;
    unsigned                      rejected:1;
};


/* ngx_http_fanbase_curl.c */
ngx_int_t ngx_http_fanbase_curl_init_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_curl_exit_process(ngx_cycle_t *cycle);
ngx_http_fanbase_http_t *ngx_http_fanbase_http_create(ngx_log_t *log,
    ngx_http_fanbase_upstream_conf_t *conf, const char *url);
void ngx_http_fanbase_http_post(ngx_http_fanbase_http_t *h, u_char *body,
    size_t len);
ngx_int_t ngx_http_fanbase_http_start(ngx_http_fanbase_http_t *h);
void ngx_http_fanbase_http_destroy(ngx_http_fanbase_http_t *h);

/* ngx_http_fanbase_wait.c */
ngx_int_t ngx_http_fanbase_wait_init_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_wait_add(ngx_http_fanbase_waiter_t *w);
void ngx_http_fanbase_wait_remove(ngx_http_fanbase_waiter_t *w);
void ngx_http_fanbase_wait_kick(void);

/* ngx_http_fanbase_token.c */
ngx_http_fanbase_cred_t *ngx_http_fanbase_token_cred(ngx_conf_t *cf,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_loc_conf_t *lcf);
ngx_int_t ngx_http_fanbase_token_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_token_get(ngx_http_fanbase_cred_t *cred,
    ngx_log_t *log, ngx_http_fanbase_token_hdr_t **hdr, time_t *retry_after);
void ngx_http_fanbase_token_reject(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_token_hdr_t *hdr, ngx_log_t *log);
void ngx_http_fanbase_token_release(ngx_http_fanbase_token_hdr_t *hdr);

/* ngx_http_fanbase_connect.c */
ngx_int_t ngx_http_fanbase_call_start(ngx_http_fanbase_call_t *call);

/* ngx_http_fanbase_store.c */
ngx_int_t ngx_http_fanbase_store_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
ngx_int_t ngx_http_fanbase_store_lookup(ngx_http_fanbase_main_conf_t *mcf,
    ngx_str_t *id, ngx_http_fanbase_lookup_t *lk, ngx_pool_t *pool,
    fanbase_item_t *item);
ngx_int_t ngx_http_fanbase_store_update(ngx_http_fanbase_main_conf_t *mcf,
    fanbase_item_t *item, ngx_uint_t keep_msg, void *reserved,
    ngx_log_t *log);
void ngx_http_fanbase_store_release(ngx_http_fanbase_main_conf_t *mcf,
    ngx_str_t *id, ngx_uint_t not_found);
void *ngx_http_fanbase_store_reserve(ngx_http_fanbase_main_conf_t *mcf,
    size_t payload, ngx_log_t *log);
void ngx_http_fanbase_store_unreserve(ngx_http_fanbase_main_conf_t *mcf,
    void *reserved);
size_t ngx_http_fanbase_store_entry_size(fanbase_item_t *item,
    ngx_uint_t keep_msg);
void *ngx_http_fanbase_shm_alloc_locked(ngx_http_fanbase_main_conf_t *mcf,
    size_t size);

/* ngx_http_fanbase_submit.c */
ngx_int_t ngx_http_fanbase_submit_handler(ngx_http_request_t *r);

/* ngx_http_fanbase_status.c */
ngx_int_t ngx_http_fanbase_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_fanbase_valid_id(ngx_str_t *id);

/* ngx_http_fanbase_response.c */
ngx_int_t ngx_http_fanbase_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *json);
ngx_int_t ngx_http_fanbase_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
ngx_int_t ngx_http_fanbase_send_unavailable(ngx_http_request_t *r,
    const char *code, const char *message, time_t retry_after);
ngx_int_t ngx_http_fanbase_send_call_failure(ngx_http_request_t *r,
    ngx_http_fanbase_call_t *call, ngx_int_t rc, const char *what);
ngx_int_t ngx_http_fanbase_relay(ngx_http_request_t *r,
    ngx_http_fanbase_http_t *h);
ngx_int_t ngx_http_fanbase_add_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_fanbase_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_fanbase_render_item(ngx_pool_t *pool,
    fanbase_item_t *item, ngx_uint_t show_msg, ngx_str_t *out);


extern ngx_module_t  ngx_http_fanbase_module;


#endif /* _NGX_HTTP_FANBASE_MODULE_H_INCLUDED_ */
