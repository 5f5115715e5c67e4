
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_PEER_H_INCLUDED_
#define _NGX_HTTP_FANBASE_PEER_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


typedef struct ngx_http_fanbase_peer_wait_s  ngx_http_fanbase_peer_wait_t;

typedef void (*ngx_http_fanbase_peer_wait_pt)(ngx_http_fanbase_peer_wait_t *w,
    ngx_int_t rc);


/*
 * One Fanbase API as the synchronous locations reach it: its addresses,
 * and this worker's connections to it.  The upstream configuration of
 * nginx comes first, so that nginx's upstream hands it back to
 * ngx_http_fanbase_peer_init().
 */

typedef struct {
    ngx_http_upstream_srv_conf_t  uscf;        /* first */
    ngx_str_t                     key;         /* scheme://host:port, TLS */
    ngx_addr_t                   *addrs;
    ngx_uint_t                    naddrs;
    ngx_uint_t                    max;         /* fanbase_max_connections */
    ngx_uint_t                    keepalive;   /* fanbase_keepalive */
    ngx_msec_t                    idle_timeout;

    /* this worker's */
    ngx_uint_t                    next;        /* the address to try */
    ngx_uint_t                    busy;        /* slots granted */
    ngx_uint_t                    nidle;
    ngx_queue_t                   idle;        /* connections kept */
    ngx_queue_t                   cache;       /* free items for them */
    ngx_queue_t                   waiting;     /* for a slot, in order */
    unsigned                      ready:1;     /* queues initialized */
} ngx_http_fanbase_peer_pool_t;


/* a request waiting for a slot: handler(w, NGX_OK) or (w, NGX_DECLINED) */

struct ngx_http_fanbase_peer_wait_s {
    ngx_http_fanbase_peer_pool_t *pool;
    ngx_queue_t                   queue;
    ngx_event_t                   event;
    ngx_http_fanbase_peer_wait_pt handler;
    void                         *data;
    ngx_msec_t                    timeout;
    unsigned                      waiting:1;   /* in pool->waiting */
    unsigned                      granted:1;   /* holds a slot */
};


ngx_http_fanbase_peer_pool_t *ngx_http_fanbase_peer_pool(ngx_conf_t *cf,
    ngx_array_t *pools, ngx_url_t *url, ngx_str_t *key, ngx_uint_t max,
    ngx_uint_t keepalive);
ngx_int_t ngx_http_fanbase_peer_acquire(ngx_http_fanbase_peer_wait_t *w);
void ngx_http_fanbase_peer_release(ngx_http_fanbase_peer_wait_t *w);


#endif /* _NGX_HTTP_FANBASE_PEER_H_INCLUDED_ */
