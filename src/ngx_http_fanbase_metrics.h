
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_METRICS_H_INCLUDED_
#define _NGX_HTTP_FANBASE_METRICS_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* the calls to Fanbase, timed by kind (ngx_http_fanbase_curl_t's "kind") */
#define NGX_HTTP_FANBASE_CALL_NONE       0
#define NGX_HTTP_FANBASE_CALL_SUBMIT     1
#define NGX_HTTP_FANBASE_CALL_STATUS     2
#define NGX_HTTP_FANBASE_CALL_DELIVER    3
#define NGX_HTTP_FANBASE_CALL_TRACK      4
#define NGX_HTTP_FANBASE_CALL_TOKEN      5
#define NGX_HTTP_FANBASE_CALL_KINDS      6

/* upper bounds of the duration histogram's buckets, and +Inf */
#define NGX_HTTP_FANBASE_METRICS_BUCKETS 13

/*
 * the answers a submission is counted by: metrics.c's table, whose first
 * ones are these
 */
#define NGX_HTTP_FANBASE_METRICS_CODES   25
#define NGX_HTTP_FANBASE_CODE_CREATED        0
#define NGX_HTTP_FANBASE_CODE_ACCEPTED       1
#define NGX_HTTP_FANBASE_CODE_REJECTED       2
#define NGX_HTTP_FANBASE_CODE_CLIENT_CLOSED  3
#define NGX_HTTP_FANBASE_CODE_OTHER          4

/* what became of a delivery attempt */
#define NGX_HTTP_FANBASE_DELIVERY_DELIVERED        0
#define NGX_HTTP_FANBASE_DELIVERY_RETRIED          1
#define NGX_HTTP_FANBASE_DELIVERY_REJECTED         2
#define NGX_HTTP_FANBASE_DELIVERY_OUTCOME_UNKNOWN  3
#define NGX_HTTP_FANBASE_DELIVERY_UNREADABLE       4
#define NGX_HTTP_FANBASE_DELIVERY_GAVE_UP          5
#define NGX_HTTP_FANBASE_DELIVERY_RESULTS          6

/* what became of an inbound webhook */
#define NGX_HTTP_FANBASE_WEBHOOK_APPLIED           0
#define NGX_HTTP_FANBASE_WEBHOOK_DUPLICATE         1
#define NGX_HTTP_FANBASE_WEBHOOK_STALE             2
#define NGX_HTTP_FANBASE_WEBHOOK_UNKNOWN           3
#define NGX_HTTP_FANBASE_WEBHOOK_FORGED            4
#define NGX_HTTP_FANBASE_WEBHOOK_INVALID           5
#define NGX_HTTP_FANBASE_WEBHOOK_ZONE_FULL         6
#define NGX_HTTP_FANBASE_WEBHOOK_ERROR             7
#define NGX_HTTP_FANBASE_WEBHOOK_RESULTS           8

/* what became of an outbound webhook's attempt */
#define NGX_HTTP_FANBASE_NOTIFY_DELIVERED          0
#define NGX_HTTP_FANBASE_NOTIFY_RETRIED            1
#define NGX_HTTP_FANBASE_NOTIFY_DROPPED            2
#define NGX_HTTP_FANBASE_NOTIFY_RESULTS            3

/* what became of a command of the shared engine's client (redis.c) */
#define NGX_HTTP_FANBASE_METRICS_REDIS_OK          0
#define NGX_HTTP_FANBASE_METRICS_REDIS_ERROR       1
#define NGX_HTTP_FANBASE_METRICS_REDIS_NO_ANSWER   2
#define NGX_HTTP_FANBASE_METRICS_REDIS_RESULTS     3


/*
 * The shared engine's commands (fanbase_redis), counted by its client: an
 * allocation of the zone of its own, made only with fanbase_redis, so that
 * the counters below grow by one pointer.
 */

typedef struct {
    ngx_atomic_t                  commands
                                      [NGX_HTTP_FANBASE_METRICS_REDIS_RESULTS];
    ngx_atomic_t                  duration[NGX_HTTP_FANBASE_METRICS_BUCKETS];
    ngx_atomic_t                  duration_usec;
} ngx_http_fanbase_metrics_redis_t;


/*
 * Host-wide counters, in the zone (kept small: the zone's context and its
 * hash buckets share one page in the smallest zone, 32k: 64 bytes were
 * left when the shared engine's came, which got an allocation of their
 * own): every worker adds to them with an atomic add, never under the
 * zone's lock; fanbase_metrics reads them.
 * They live as long as the zone: a reload keeps them, a restart starts
 * them again from zero (Prometheus takes that as a counter reset).
 */

typedef struct {
    ngx_atomic_t                  submissions[2]
                                             [NGX_HTTP_FANBASE_METRICS_CODES];
    ngx_atomic_t                  calls[NGX_HTTP_FANBASE_CALL_KINDS - 1]
                                       [NGX_HTTP_FANBASE_METRICS_BUCKETS];
    ngx_atomic_t                  calls_usec[NGX_HTTP_FANBASE_CALL_KINDS - 1];
    ngx_atomic_t                  deliveries[NGX_HTTP_FANBASE_DELIVERY_RESULTS];
    ngx_atomic_t                  webhooks[NGX_HTTP_FANBASE_WEBHOOK_RESULTS];
    ngx_atomic_t                  notifications
                                      [NGX_HTTP_FANBASE_NOTIFY_RESULTS];
    ngx_atomic_t                  waiters;     /* long polls, now */
    ngx_http_fanbase_metrics_redis_t *redis;   /* NULL: no fanbase_redis */
} ngx_http_fanbase_metrics_t;


struct ngx_http_fanbase_redis_cmd_s;
struct redisReply;


ngx_int_t ngx_http_fanbase_metrics_init(ngx_conf_t *cf);
void ngx_http_fanbase_metrics_init_process(ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_metrics_handler(ngx_http_request_t *r);
void ngx_http_fanbase_metrics_call(ngx_uint_t kind, ngx_msec_t usec);
void ngx_http_fanbase_metrics_count(ngx_uint_t what, ngx_uint_t result);
void ngx_http_fanbase_metrics_waiters(ngx_int_t n);
ngx_int_t ngx_http_fanbase_metrics_init_zone(
    ngx_http_fanbase_main_conf_t *mcf, size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_metrics_attach_zone(
    ngx_http_fanbase_main_conf_t *mcf, size_t size, ngx_log_t *log);
void ngx_http_fanbase_metrics_redis(struct ngx_http_fanbase_redis_cmd_s *cmd,
    struct redisReply *reply);


/* the labels, in the counters' order (ngx_http_fanbase_metrics.c) */
extern const char  *ngx_http_fanbase_metrics_codes[];
extern const char  *ngx_http_fanbase_metrics_kinds[];
extern const char  *ngx_http_fanbase_metrics_le[];
extern const char  *ngx_http_fanbase_metrics_deliveries[];
extern const char  *ngx_http_fanbase_metrics_webhooks[];
extern const char  *ngx_http_fanbase_metrics_notifications[];
extern const char  *ngx_http_fanbase_metrics_statuses[];
extern const char  *ngx_http_fanbase_metrics_redis_results[];


/* ngx_http_fanbase_metrics_count()'s "what" */
#define NGX_HTTP_FANBASE_METRICS_DELIVERY  0
#define NGX_HTTP_FANBASE_METRICS_WEBHOOK   1
#define NGX_HTTP_FANBASE_METRICS_NOTIFY    2


#endif /* _NGX_HTTP_FANBASE_METRICS_H_INCLUDED_ */
