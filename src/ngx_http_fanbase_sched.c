
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The due-work scheduler of a worker: background delivery and tracking of
 * transactions, and outbound notifications, are each one of these.  A
 * timer (or a kick, when work became due) claims due work from the zone,
 * one piece at a time, while the worker has a free place for it, and
 * starts it; the work gives its place back when it ends, which claims the
 * next.  What is due, and the claim that keeps two workers off one piece,
 * live with the records (ngx_http_fanbase_txn.c, ngx_http_fanbase_notice.c);
 * what a piece does lives with its kind (ngx_http_fanbase_deliver.c,
 * ngx_http_fanbase_notify.c).  Failed work comes back after an
 * exponential backoff, the same rule for every kind.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_sched.h"


static void ngx_http_fanbase_sched_tick(ngx_event_t *ev);
static void ngx_http_fanbase_sched_go(ngx_http_fanbase_sched_t *s,
    ngx_queue_t *job);


/* the first tick at once; a leaving worker claims nothing new */

void
ngx_http_fanbase_sched_start(ngx_http_fanbase_sched_t *s, ngx_log_t *log)
{
    ngx_queue_init(&s->jobs);
    s->running = 0;

    ngx_http_fanbase_time_timer(&s->event, &s->conn, s,
                                ngx_http_fanbase_sched_tick, log);
    s->op.log = log;
    s->active = 1;

    ngx_add_timer(&s->event, 1);
}


/*
 * at exit, after the kind gave back or let go of each of s->jobs, and
 * cancelled a claim the store has not answered (s->op)
 */

void
ngx_http_fanbase_sched_stop(ngx_http_fanbase_sched_t *s)
{

    if (s->event.timer_set) {
        ngx_del_timer(&s->event);
    }

    if (s->event.posted) {
        ngx_delete_posted_event(&s->event);
    }

    s->active = 0;
}


/* work is due now: a new piece, or a place freed */

void
ngx_http_fanbase_sched_kick(ngx_http_fanbase_sched_t *s)
{
    ngx_event_t  *ev;

    ev = &s->event;

    /* a worker with all its places taken is kicked when one frees */

    if (!s->active || ev->posted || ngx_exiting || s->op.pending
        || s->running >= s->concurrency)
    {
        return;
    }

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    ngx_post_event(ev, &ngx_posted_events);
}


/* the store's later answer to a claim: a piece of work, or none yet */

void
ngx_http_fanbase_sched_claimed(ngx_http_fanbase_sched_t *s, ngx_queue_t *job,
    ngx_msec_t next)
{
    ngx_event_t  *ev;

    ev = &s->event;

    if (job != NULL) {
        ngx_http_fanbase_sched_go(s, job);
        next = 0;
    }

    if (!s->active || ngx_exiting) {
        return;
    }

    if (next == 0) {
        ngx_http_fanbase_sched_kick(s);
        return;
    }

    if (!ev->timer_set && !ev->posted) {
        ngx_add_timer(ev, ngx_min(next, s->tick));
    }
}


/* a piece of work ended: its place goes to the next due one */

void
ngx_http_fanbase_sched_done(ngx_http_fanbase_sched_t *s, ngx_queue_t *job)
{
    ngx_queue_remove(job);
    s->running--;

    ngx_http_fanbase_sched_kick(s);
}


/*
 * Exponential backoff after the attempts that failed so far: 1 s, 2 s,
 * 4 s ... up to max; with jitter, anywhere in the upper half, so that
 * work that failed together does not come back together.
 */

ngx_msec_t
ngx_http_fanbase_sched_backoff(ngx_uint_t attempts, ngx_msec_t max,
    ngx_uint_t jitter)
{
    ngx_msec_t  delay;

    delay = (attempts < 20) ? (ngx_msec_t) 1000 << attempts : max;
    delay = ngx_min(delay, max);

    if (jitter) {
        delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);
    }

    return delay;
}


static void
ngx_http_fanbase_sched_tick(ngx_event_t *ev)
{
    ngx_msec_t                 next;
    ngx_queue_t               *job;
    ngx_connection_t          *c;
    ngx_http_fanbase_sched_t  *s;

    c = ev->data;
    s = c->data;

    if (!s->active || ngx_exiting) {
        return;
    }

    next = s->tick;

    while (s->running < s->concurrency && !s->op.pending) {

        job = s->claim(s, &next);

        if (job == NULL) {

            if (s->op.pending) {
                /* ngx_http_fanbase_sched_claimed() goes on */
                return;
            }

            /* 0: one was passed over, the next may be due */

            if (next == 0) {
                continue;
            }

            break;
        }

        ngx_http_fanbase_sched_go(s, job);

        next = s->tick;
    }

    if (s->running >= s->concurrency || next > s->tick) {
        next = s->tick;
    }

    if (!ev->timer_set && !ev->posted) {
        ngx_add_timer(ev, ngx_max(next, 1));
    }
}


static void
ngx_http_fanbase_sched_go(ngx_http_fanbase_sched_t *s, ngx_queue_t *job)
{
    ngx_queue_insert_tail(&s->jobs, job);
    s->running++;

    s->start(job);
}
