
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_SCHED_H_INCLUDED_
#define _NGX_HTTP_FANBASE_SCHED_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* a worker's scheduler of due work (ngx_http_fanbase_sched.c) */

/*
 * claim: the next due piece of work, claimed, or NULL and *next: the ms
 * until one may be due (0: one was passed over, look again); or NULL and
 * s->op pending: the store answers later, and the kind hands the answer
 * to ngx_http_fanbase_sched_claimed().  start: sets a piece going, and it
 * calls ngx_http_fanbase_sched_done() when it ends
 */
typedef ngx_queue_t *(*ngx_http_fanbase_sched_claim_pt)(
    ngx_http_fanbase_sched_t *s, ngx_msec_t *next);
typedef void (*ngx_http_fanbase_sched_start_pt)(ngx_queue_t *job);

struct ngx_http_fanbase_sched_s {
    ngx_http_fanbase_sched_claim_pt  claim;
    ngx_http_fanbase_sched_start_pt  start;
    ngx_uint_t                    concurrency; /* places of this worker */
    ngx_msec_t                    tick;        /* looks at least this often */

    ngx_queue_t                   jobs;        /* running here */
    ngx_uint_t                    running;
    ngx_event_t                   event;
    ngx_connection_t              conn;        /* the event's, for logs */
    ngx_http_fanbase_store_op_t   op;          /* the claim, one at a time */
    unsigned                      active:1;
};


void ngx_http_fanbase_sched_start(ngx_http_fanbase_sched_t *s,
    ngx_log_t *log);
void ngx_http_fanbase_sched_stop(ngx_http_fanbase_sched_t *s);
void ngx_http_fanbase_sched_kick(ngx_http_fanbase_sched_t *s);
void ngx_http_fanbase_sched_claimed(ngx_http_fanbase_sched_t *s,
    ngx_queue_t *job, ngx_msec_t next);
void ngx_http_fanbase_sched_done(ngx_http_fanbase_sched_t *s,
    ngx_queue_t *job);
ngx_msec_t ngx_http_fanbase_sched_backoff(ngx_uint_t attempts,
    ngx_msec_t max, ngx_uint_t jitter);


#endif /* _NGX_HTTP_FANBASE_SCHED_H_INCLUDED_ */
