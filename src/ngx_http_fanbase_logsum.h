
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_LOGSUM_H_INCLUDED_
#define _NGX_HTTP_FANBASE_LOGSUM_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* the interval of failed deliveries and notifications (docs/decisions.md) */
#define NGX_HTTP_FANBASE_LOGSUM_EVERY  10000

#define NGX_HTTP_FANBASE_LOGSUM_TEXT   512


/* one failure a summary names: "ID": REASON, each cut on a character */

typedef struct {
    size_t                         len;
    u_char                         text[NGX_HTTP_FANBASE_LOGSUM_TEXT];
} ngx_http_fanbase_logsum_one_t;


/* one kind of failure of a worker: said once, then counted and summarised */

typedef struct {
    const char                    *one;       /* "transaction not delivered" */
    const char                    *many;      /* the same, plural */
    ngx_uint_t                     level;
    ngx_msec_t                     every;

    ngx_msec_t                     since;     /* the interval began */
    ngx_uint_t                     more;      /* counted, not said yet */
    ngx_http_fanbase_logsum_one_t  first;
    ngx_http_fanbase_logsum_one_t  last;

    ngx_event_t                    event;     /* the interval's end */
    ngx_connection_t               conn;      /* the event's, for logs */
    ngx_queue_t                    queue;     /* the kinds of this worker */
    unsigned                       failing:1; /* said, and not ended since */
} ngx_http_fanbase_logsum_t;


void ngx_http_fanbase_logsum_init(ngx_http_fanbase_logsum_t *ls,
    const char *one, const char *many, ngx_uint_t level, ngx_msec_t every,
    ngx_log_t *log);
ngx_int_t ngx_http_fanbase_logsum_count(ngx_http_fanbase_logsum_t *ls,
    ngx_str_t *id, const char *why);
ngx_uint_t ngx_http_fanbase_logsum_end(ngx_http_fanbase_logsum_t *ls);
void ngx_http_fanbase_logsum_exit_process(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_FANBASE_LOGSUM_H_INCLUDED_ */
