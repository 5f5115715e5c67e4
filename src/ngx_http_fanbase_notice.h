
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_NOTICE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_NOTICE_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* an outbound webhook waiting to be sent */

typedef struct {
    ngx_rbtree_node_t             due;         /* sh->notices: msec */
    ngx_queue_t                   queue;       /* sh->notices_all */
    uint64_t                      created;     /* ms since the epoch */
    uint32_t                      attempts;
    uint32_t                      claim;
    uint32_t                      len;
    ngx_pid_t                     owner;
    u_char                        id_len;
    u_char                        request_id_len;
    u_char                        id[NGX_HTTP_FANBASE_NOTICE_ID_MAX];
    u_char                        body[1];     /* the transaction, JSON,
                                                  then its request's id */
} ngx_http_fanbase_notice_t;


/* a notice claimed by this worker, copied out of the zone */

typedef struct {
    ngx_queue_t                   queue;       /* its scheduler's jobs */
    uint32_t                      claim;
    uint32_t                      attempts;
    uint64_t                      created;
    uint64_t                      scope;       /* a shared engine's */
    ngx_uint_t                    local;       /* its fallback's */
    ngx_str_t                     id;
    ngx_str_t                     body;
    ngx_str_t                     request_id;  /* empty: none */
    ngx_http_fanbase_curl_t      *http;
    u_char                        data[1];     /* id, body, request id */
} ngx_http_fanbase_notice_job_t;


ngx_int_t ngx_http_fanbase_notice_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_http_fanbase_notice_t *ngx_http_fanbase_notice_alloc_locked(
    ngx_http_fanbase_main_conf_t *mcf, size_t size);
void ngx_http_fanbase_notice_queue_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_t *n, ngx_str_t *id, ngx_str_t *request_id,
    uint64_t created, uint32_t attempts);
ngx_int_t ngx_http_fanbase_notice_restore_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id, ngx_str_t *body,
    ngx_str_t *request_id, uint64_t created, uint32_t attempts);
ngx_http_fanbase_notice_job_t *ngx_http_fanbase_notice_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_msec_t lease, ngx_msec_t *next);
void ngx_http_fanbase_notice_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_job_t *job, ngx_uint_t drop, ngx_msec_t delay,
    ngx_uint_t failed);


#endif /* _NGX_HTTP_FANBASE_NOTICE_H_INCLUDED_ */
