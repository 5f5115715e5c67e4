
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * TAP for the unit tests of t/unit/: ok() prints one test, tap_plan() the
 * plan once they have run and the exit status main() returns.  t/lib/UnitC.pm
 * turns the lines into tests.
 */


#ifndef _FANBASE_TAP_H_INCLUDED_
#define _FANBASE_TAP_H_INCLUDED_


#include <stdio.h>


static int  tap_n;
static int  tap_failed;


static void
ok(int cond, const char *name)
{
    tap_n++;

    if (!cond) {
        tap_failed++;
    }

    printf("%sok %d - %s\n", cond ? "" : "not ", tap_n, name);
}


static int
tap_plan(void)
{
    printf("1..%d\n", tap_n);

    return tap_failed ? 1 : 0;
}


#endif /* _FANBASE_TAP_H_INCLUDED_ */
