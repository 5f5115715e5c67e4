
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Requests of this worker that wait for a fetch under way elsewhere: a
 * token fetched by another worker, a status read through by another
 * request.  Workers share no wakeup channel, so the waiters look at the
 * zone again on a short timer, and at once when this worker finished a
 * fetch itself.  Every fetch holds a lease with a deadline, so a wait
 * always ends.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_wait.h"


#define NGX_HTTP_FANBASE_WAIT_INTERVAL   10


static void ngx_http_fanbase_wait_handler(ngx_event_t *ev);


static ngx_queue_t        ngx_http_fanbase_waiters;
static ngx_event_t        ngx_http_fanbase_wait_event;
static ngx_connection_t   ngx_http_fanbase_wait_conn;


ngx_int_t
ngx_http_fanbase_wait_init_process(ngx_cycle_t *cycle)
{
    ngx_queue_init(&ngx_http_fanbase_waiters);

    ngx_http_fanbase_wait_conn.fd = (ngx_socket_t) -1;
    ngx_http_fanbase_wait_event.data = &ngx_http_fanbase_wait_conn;
    ngx_http_fanbase_wait_event.handler = ngx_http_fanbase_wait_handler;
    ngx_http_fanbase_wait_event.log = cycle->log;

    /* a waiting request keeps a leaving worker until it is answered */
    ngx_http_fanbase_wait_event.cancelable = 0;

    return NGX_OK;
}


void
ngx_http_fanbase_wait_add(ngx_http_fanbase_waiter_t *w)
{
    if (w->waiting) {
        return;
    }

    ngx_queue_insert_tail(&ngx_http_fanbase_waiters, &w->queue);
    w->waiting = 1;

    if (!ngx_http_fanbase_wait_event.timer_set
        && !ngx_http_fanbase_wait_event.posted)
    {
        ngx_add_timer(&ngx_http_fanbase_wait_event,
                      NGX_HTTP_FANBASE_WAIT_INTERVAL);
    }
}


void
ngx_http_fanbase_wait_remove(ngx_http_fanbase_waiter_t *w)
{
    if (!w->waiting) {
        return;
    }

    ngx_queue_remove(&w->queue);
    w->waiting = 0;

    if (ngx_queue_empty(&ngx_http_fanbase_waiters)) {
        if (ngx_http_fanbase_wait_event.timer_set) {
            ngx_del_timer(&ngx_http_fanbase_wait_event);
        }

        if (ngx_http_fanbase_wait_event.posted) {
            ngx_delete_posted_event(&ngx_http_fanbase_wait_event);
        }
    }
}


void
ngx_http_fanbase_wait_kick(void)
{
    if (ngx_queue_empty(&ngx_http_fanbase_waiters)
        || ngx_http_fanbase_wait_event.posted)
    {
        return;
    }

    if (ngx_http_fanbase_wait_event.timer_set) {
        ngx_del_timer(&ngx_http_fanbase_wait_event);
    }

    ngx_post_event(&ngx_http_fanbase_wait_event, &ngx_posted_events);
}


static void
ngx_http_fanbase_wait_handler(ngx_event_t *ev)
{
    ngx_queue_t                 again, *q;
    ngx_http_fanbase_waiter_t  *w;

    ngx_queue_init(&again);

    /*
     * each waiter is taken off the list before its handler runs: the
     * handler may finish requests, and so remove or add other waiters
     */

    while (!ngx_queue_empty(&ngx_http_fanbase_waiters)) {
        q = ngx_queue_head(&ngx_http_fanbase_waiters);
        ngx_queue_remove(q);

        w = ngx_queue_data(q, ngx_http_fanbase_waiter_t, queue);
        w->waiting = 0;

        if (w->handler(w) == NGX_AGAIN && !w->waiting) {
            ngx_queue_insert_tail(&again, &w->queue);
            w->waiting = 1;
        }
    }

    if (!ngx_queue_empty(&again)) {
        ngx_queue_add(&ngx_http_fanbase_waiters, &again);
    }

    if (!ngx_queue_empty(&ngx_http_fanbase_waiters)
        && !ngx_http_fanbase_wait_event.timer_set)
    {
        ngx_add_timer(&ngx_http_fanbase_wait_event,
                      NGX_HTTP_FANBASE_WAIT_INTERVAL);
    }
}
