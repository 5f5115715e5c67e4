
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Time in the zone: wall-clock milliseconds since the epoch (records
 * outlive a process, and other hosts read them), and how the answers
 * print it; and the set-up of a worker's timer that is no connection's.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_time.h"


uint64_t
ngx_http_fanbase_time_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}


/* ISO-8601 UTC with milliseconds: 24 characters */

u_char *
ngx_http_fanbase_time_iso(u_char *p, uint64_t ms)
{
    ngx_tm_t  tm;

    ngx_gmtime((time_t) (ms / 1000), &tm);

    return ngx_sprintf(p, "%4d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                       tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                       tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec,
                       (int) (ms % 1000));
}


/*
 * A worker's timer that belongs to no connection: "c" stands in for one
 * in the event's debug lines, and holds "data".  Cancelable: it never
 * holds up a worker that stops.
 */

void
ngx_http_fanbase_time_timer(ngx_event_t *ev, ngx_connection_t *c, void *data,
    ngx_event_handler_pt handler, ngx_log_t *log)
{
    c->fd = (ngx_socket_t) -1;
    c->data = data;
    ev->data = c;
    ev->handler = handler;
    ev->log = log;
    ev->cancelable = 1;
}
