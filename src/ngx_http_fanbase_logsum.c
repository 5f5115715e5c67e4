
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * A worker's summaries of failures that come in numbers: failed
 * deliveries, failed notifications, failed saves of the state.  The first
 * failure of a kind is said at once by its caller, with its id and
 * reason, and starts an interval; the failures of that kind that follow
 * within it are only counted, and when it ends (a timer) one line says
 * how many, with the first and the last of them:
 *
 *     fanbase: 1234 more transactions not delivered in the last 10 s
 *     (first "ID": REASON; last "ID": REASON)
 *
 * An interval that counted some is followed by another, which counts
 * from its start and says at its end; one that counted none ends the
 * summary, and the next failure is said at once again.  The timer does
 * not hold up a worker that stops: what it counted is said at its exit.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_logsum.h"


static void ngx_http_fanbase_logsum_timer(ngx_event_t *ev);
static void ngx_http_fanbase_logsum_say(ngx_http_fanbase_logsum_t *ls);
static void ngx_http_fanbase_logsum_keep(ngx_http_fanbase_logsum_one_t *one,
    ngx_str_t *id, const char *why);


/* the kinds of this worker, said at its exit */
static ngx_queue_t  ngx_http_fanbase_logsum_all;


void
ngx_http_fanbase_logsum_init(ngx_http_fanbase_logsum_t *ls, const char *one,
    const char *many, ngx_uint_t level, ngx_msec_t every, ngx_log_t *log)
{
    if (ngx_http_fanbase_logsum_all.prev == NULL) {
        ngx_queue_init(&ngx_http_fanbase_logsum_all);
    }

    ls->one = one;
    ls->many = many;
    ls->level = level;
    ls->every = every;

    ngx_http_fanbase_time_timer(&ls->event, &ls->conn, ls,
                                ngx_http_fanbase_logsum_timer, log);

    ngx_queue_insert_tail(&ngx_http_fanbase_logsum_all, &ls->queue);
}


/*
 * One failure: NGX_OK, the caller says it now (the first of an interval,
 * or a process with no summaries: the master); NGX_DECLINED, it is
 * counted and said at the end of the interval.
 */

ngx_int_t
ngx_http_fanbase_logsum_count(ngx_http_fanbase_logsum_t *ls, ngx_str_t *id,
    const char *why)
{
    if (ls->event.handler == NULL) {
        return NGX_OK;
    }

    ls->failing = 1;

    if (!ls->event.timer_set) {
        ls->since = ngx_current_msec;
        ngx_add_timer(&ls->event, ls->every);
        return NGX_OK;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fanbase: %s \"%V\": %s (counted)", ls->one, id, why);

    if (ls->more++ == 0) {
        ngx_http_fanbase_logsum_keep(&ls->first, id, why);
    }

    ngx_http_fanbase_logsum_keep(&ls->last, id, why);

    return NGX_DECLINED;
}


/*
 * The kind works again: what was counted is said now, and the next
 * failure at once.  1 when a failure was said since the last end.
 */

ngx_uint_t
ngx_http_fanbase_logsum_end(ngx_http_fanbase_logsum_t *ls)
{
    ngx_uint_t  failing;

    ngx_http_fanbase_logsum_say(ls);

    if (ls->event.timer_set) {
        ngx_del_timer(&ls->event);
    }

    failing = ls->failing;
    ls->failing = 0;

    return failing;
}


/* a worker that goes says what it counted */

void
ngx_http_fanbase_logsum_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                *q;
    ngx_http_fanbase_logsum_t  *ls;

    if (ngx_http_fanbase_logsum_all.prev == NULL) {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_fanbase_logsum_all);
         q != ngx_queue_sentinel(&ngx_http_fanbase_logsum_all);
         q = ngx_queue_next(q))
    {
        ls = ngx_queue_data(q, ngx_http_fanbase_logsum_t, queue);

        ngx_http_fanbase_logsum_say(ls);

        if (ls->event.timer_set) {
            ngx_del_timer(&ls->event);
        }
    }
}


static void
ngx_http_fanbase_logsum_timer(ngx_event_t *ev)
{
    ngx_connection_t           *c;
    ngx_http_fanbase_logsum_t  *ls;

    c = ev->data;
    ls = c->data;

    if (ls->more == 0) {
        /* a quiet interval: the next failure is said at once */
        return;
    }

    ngx_http_fanbase_logsum_say(ls);

    /* still failing: the next interval counts them all */

    ls->since = ngx_current_msec;
    ngx_add_timer(ev, ls->every);
}


static void
ngx_http_fanbase_logsum_say(ngx_http_fanbase_logsum_t *ls)
{
    ngx_msec_t  s;

    if (ls->more == 0) {
        return;
    }

    /* whole seconds, at least one */

    s = (ngx_current_msec - ls->since + 500) / 1000;
    s = ngx_max(s, 1);

    if (ls->more == 1) {
        ngx_log_error(ls->level, ngx_cycle->log, 0,
                      "fanbase: 1 more %s in the last %M s (%*s)",
                      ls->one, s, ls->first.len, ls->first.text);

    } else {
        ngx_log_error(ls->level, ngx_cycle->log, 0,
                      "fanbase: %ui more %s in the last %M s "
                      "(first %*s; last %*s)",
                      ls->more, ls->many, s, ls->first.len, ls->first.text,
                      ls->last.len, ls->last.text);
    }

    ls->more = 0;
}


static void
ngx_http_fanbase_logsum_keep(ngx_http_fanbase_logsum_one_t *one,
    ngx_str_t *id, const char *why)
{
    u_char  *p;
    size_t   len;

    /* the id in up to half of the text, the reason in the rest */

    len = fanbase_utf8_cut(id->data, id->len, NGX_HTTP_FANBASE_LOGSUM_TEXT / 2);
    p = ngx_sprintf(one->text, "\"%*s\": ", len, id->data);

    len = fanbase_utf8_cut((u_char *) why, ngx_strlen(why),
                           one->text + NGX_HTTP_FANBASE_LOGSUM_TEXT - p);
    p = ngx_cpymem(p, why, len);

    one->len = p - one->text;
}
