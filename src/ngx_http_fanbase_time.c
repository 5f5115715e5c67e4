
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Time in the zone: wall-clock milliseconds since the epoch (records
 * outlive a process, and other hosts read them), and how the answers
 * print it.
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
