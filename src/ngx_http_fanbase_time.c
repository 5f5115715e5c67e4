
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


/* "00" to "99" */

static const u_char  ngx_http_fanbase_time_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233"
    "34353637383940414243444546474849505152535455565758596061626364656667"
    "6869707172737475767778798081828384858687888990919293949596979899";


/* ISO-8601 UTC with milliseconds: 24 characters */

u_char *
ngx_http_fanbase_time_iso(u_char *p, uint64_t ms)
{
    ngx_tm_t    tm;
    ngx_uint_t  n;

    ngx_gmtime((time_t) (ms / 1000), &tm);

    /*
     * two digits at a time from a table: ngx_sprintf() was most of an
     * event's cost, and a digit at a time 200 instructions a date, three
     * of them a GET of a transaction
     */

#define ngx_http_fanbase_time_2(v)                                           \
    ngx_memcpy(p, &ngx_http_fanbase_time_pairs[(v) * 2], 2); p += 2

    n = (ngx_uint_t) tm.ngx_tm_year % 10000;
    ngx_http_fanbase_time_2(n / 100);
    ngx_http_fanbase_time_2(n % 100);
    *p++ = '-';
    ngx_http_fanbase_time_2((ngx_uint_t) tm.ngx_tm_mon % 100);
    *p++ = '-';
    ngx_http_fanbase_time_2((ngx_uint_t) tm.ngx_tm_mday % 100);
    *p++ = 'T';
    ngx_http_fanbase_time_2((ngx_uint_t) tm.ngx_tm_hour % 100);
    *p++ = ':';
    ngx_http_fanbase_time_2((ngx_uint_t) tm.ngx_tm_min % 100);
    *p++ = ':';
    ngx_http_fanbase_time_2((ngx_uint_t) tm.ngx_tm_sec % 100);
    *p++ = '.';
    n = (ngx_uint_t) (ms % 1000);
    *p++ = (u_char) ('0' + n / 100);
    ngx_http_fanbase_time_2(n % 100);
    *p++ = 'Z';

#undef ngx_http_fanbase_time_2

    return p;
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


/* a monotonic clock in microseconds, never 0: what a timed step measures */

uint64_t
ngx_http_fanbase_time_usec(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000 + 1;
}
