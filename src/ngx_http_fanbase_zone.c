
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The shared zone: its layout, its start-up, its pages, and the allocator
 * every record kind uses.  The zone knows its parts (queue items,
 * transactions, notices, tokens, the state file) only through the table
 * the module hands it (ngx_http_fanbase_zone_part_t): each part sets up
 * its own records in a new zone, checks in with a zone kept over a
 * reload, and gives up its least needed record when memory runs short.
 *
 * The eviction policy: when an allocation fails, the parts are asked in
 * the table's order, cheapest loss first, one record at a time, until it
 * succeeds or no part has anything left to give; only records that are a
 * cache of what Fanbase holds, or that are finished, are ever given.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_zone.h"


/* records evicted for one allocation, at most */
#define NGX_HTTP_FANBASE_EVICT_MAX   64

/* pages of the zone a worker reads in one turn of its event loop */
#define NGX_HTTP_FANBASE_TOUCH_PAGES  256


static void ngx_http_fanbase_zone_touch_handler(ngx_event_t *ev);
static ngx_uint_t ngx_http_fanbase_zone_buckets(size_t size);
static uint32_t ngx_http_fanbase_zone_layout(
    ngx_http_fanbase_main_conf_t *mcf);


ngx_int_t
ngx_http_fanbase_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_fanbase_main_conf_t  *omcf = data;

    size_t                          len;
    ngx_uint_t                      n;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_zone_part_t   *part;
    ngx_http_fanbase_main_conf_t   *mcf;

    mcf = shm_zone->data;

    if (omcf != NULL) {
        mcf->sh = omcf->sh;
        mcf->shpool = omcf->shpool;

        /*
         * a reload keeps a zone of the same name and size, also when the
         * module's file was replaced by one that lays it out otherwise
         */

        if (mcf->sh->layout != ngx_http_fanbase_zone_layout(mcf)) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "fanbase: zone \"%V\" was made by another "
                          "version of the module; restart nginx (its state "
                          "file carries the transactions over) or change "
                          "the zone's size", &shm_zone->shm.name);
            return NGX_ERROR;
        }

        for (part = mcf->parts; part->name; part++) {
            if (part->attach != NULL
                && part->attach(mcf, shm_zone->shm.size, shm_zone->shm.log)
                   != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    mcf->shpool = shpool;

    if (shm_zone->shm.exists) {
        mcf->sh = shpool->data;
        return NGX_OK;
    }

    /* "nginx -t" creates the zone too, and throws it away */

    if (mcf->prefault && !ngx_test_config
        && ngx_http_fanbase_zone_prefault(shm_zone, shm_zone->shm.log)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the context, and the buckets of the hash tables after it */

    n = ngx_http_fanbase_zone_buckets(shm_zone->shm.size);

    mcf->sh = ngx_slab_alloc(shpool, sizeof(ngx_http_fanbase_shctx_t)
                                     + NGX_CPU_CACHE_LINE
                                     + n * NGX_HTTP_FANBASE_BUCKET_SIZE);
    if (mcf->sh == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(mcf->sh, sizeof(ngx_http_fanbase_shctx_t));

    shpool->data = mcf->sh;
    mcf->sh->layout = ngx_http_fanbase_zone_layout(mcf);
    mcf->sh->buckets = n;

    len = sizeof(" in fanbase zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in fanbase zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is answered with 503 and logged once per failure here */
    shpool->log_nomem = 0;

    /* each part sets up its records; the state file's comes last */

    for (part = mcf->parts; part->name; part++) {
        if (part->init(mcf, shm_zone->shm.size, shm_zone->shm.log) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The zone's pages are allocated and mapped when it starts rather than
 * when a request first touches them: a page fault costs microseconds (far
 * more in a virtual machine), is taken again by every worker that maps the
 * page, and would be taken under the zone's lock, stalling the other
 * workers (bench/prefault.pl: 13 to 31% of the accept rate while a rush
 * fills a zone that was not prefaulted).  The master populates a new
 * zone, so a host short of memory meets the OOM killer at start rather
 * than in a worker in the middle of a rush (a shared page that cannot be
 * had is the OOM killer's business, not a SIGBUS; the ENOMEM below is
 * what is left when it cannot help); each worker then maps the pages,
 * which costs about 0.13 s per gigabyte and blocks nothing but its own
 * start.  See "prefault=on stays the default" in docs/decisions.md.
 */

ngx_int_t
ngx_http_fanbase_zone_prefault(ngx_shm_zone_t *shm_zone, ngx_log_t *log)
{
#if (NGX_LINUX && defined MADV_POPULATE_WRITE)

    ngx_err_t   err;
    ngx_uint_t  level;

    if (madvise(shm_zone->shm.addr, shm_zone->shm.size, MADV_POPULATE_WRITE)
        == 0)
    {
        return NGX_OK;
    }

    err = ngx_errno;

    if (err == NGX_ENOMEM) {
        ngx_log_error(NGX_LOG_EMERG, log, err,
                      "fanbase: no memory for the %uz bytes of zone \"%V\"; "
                      "make it smaller, or set \"prefault=off\" to have "
                      "its pages allocated as they are first used",
                      shm_zone->shm.size, &shm_zone->shm.name);
        return NGX_ERROR;
    }

    /* EINVAL: a kernel older than 5.14 */

    level = (err == NGX_EINVAL) ? NGX_LOG_NOTICE : NGX_LOG_WARN;

    ngx_log_error(level, log, err,
                  "fanbase: zone \"%V\" is not prefaulted, its pages are "
                  "mapped as they are first used", &shm_zone->shm.name);

#endif

    return NGX_OK;
}


/*
 * prefault=on, in a worker: every page of the zone read once from user
 * space, a slice of pages a turn of the event loop, from the start (the
 * hash tables, then pages in the order the slab hands out fresh ones).
 *
 * Mapped by madvise(), a page still costs a worker that first touches it
 * 5 to 7 us in a virtual machine whose hypervisor keeps shadow page
 * tables, as the benchmark's does: the hypervisor fills its entry for
 * that process then, and only a touch from user space makes it do so
 * (docs/decisions.md, "Each worker reads the zone").  Taken by a new
 * transaction, that is under the zone's lock, while the other workers
 * wait.  Read ahead of use, in the background, the worker serves from
 * its start and pays it once; on a physical machine the whole read is a
 * few milliseconds per gigabyte.
 */

static ngx_event_t   ngx_http_fanbase_zone_touch_event;
static u_char       *ngx_http_fanbase_zone_touch_pos;
static u_char       *ngx_http_fanbase_zone_touch_end;
static ngx_msec_t    ngx_http_fanbase_zone_touch_start;


void
ngx_http_fanbase_zone_touch(ngx_shm_zone_t *shm_zone, ngx_log_t *log)
{
    ngx_event_t  *ev;

    ngx_http_fanbase_zone_touch_pos = shm_zone->shm.addr;
    ngx_http_fanbase_zone_touch_end = shm_zone->shm.addr + shm_zone->shm.size;
    ngx_http_fanbase_zone_touch_start = ngx_current_msec;

    ev = &ngx_http_fanbase_zone_touch_event;
    ev->handler = ngx_http_fanbase_zone_touch_handler;
    ev->data = shm_zone;
    ev->log = log;

    ngx_post_event(ev, &ngx_posted_next_events);
}


static void
ngx_http_fanbase_zone_touch_handler(ngx_event_t *ev)
{
    u_char          *p, *last;
    ngx_shm_zone_t  *shm_zone;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    p = ngx_http_fanbase_zone_touch_pos;
    last = ngx_min(ngx_http_fanbase_zone_touch_end,
                   p + NGX_HTTP_FANBASE_TOUCH_PAGES * ngx_pagesize);

    for ( /* void */ ; p < last; p += ngx_pagesize) {
        (void) *(volatile u_char *) p;
    }

    ngx_http_fanbase_zone_touch_pos = p;

    if (p < ngx_http_fanbase_zone_touch_end) {
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    shm_zone = ev->data;

    ngx_time_update();

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "fanbase: zone \"%V\": its %uz pages read by this worker "
                  "in %M ms", &shm_zone->shm.name,
                  shm_zone->shm.size / ngx_pagesize,
                  ngx_current_msec - ngx_http_fanbase_zone_touch_start);
}


/* memory for a record, evicting what the policy allows when it is short */

void *
ngx_http_fanbase_zone_alloc_locked(ngx_http_fanbase_main_conf_t *mcf,
    size_t size)
{
    void                          *p;
    ngx_uint_t                     i;
    ngx_http_fanbase_zone_part_t  *part;

    p = ngx_slab_alloc_locked(mcf->shpool, size);

    for (i = 0; p == NULL && i < NGX_HTTP_FANBASE_EVICT_MAX; i++) {

        for (part = mcf->parts; part->name; part++) {
            if (part->evict != NULL && part->evict(mcf)) {
                break;
            }
        }

        if (part->name == NULL) {
            break;
        }

        p = ngx_slab_alloc_locked(mcf->shpool, size);
    }

    return p;
}


/*
 * Records are found by id in hash tables of chained buckets, about one
 * bucket per kilobyte of zone: one or two cache misses where a tree of a
 * hundred thousand entries costs twenty.
 */

static ngx_uint_t
ngx_http_fanbase_zone_buckets(size_t size)
{
    ngx_uint_t  n;

    for (n = 32; n < size / 1024; n <<= 1) { /* void */ }

    return n;
}


/* what a zone made by another build of the module would differ in */

static uint32_t
ngx_http_fanbase_zone_layout(ngx_http_fanbase_main_conf_t *mcf)
{
    uint32_t                       layout;
    ngx_http_fanbase_zone_part_t  *part;

    layout = (NGX_HTTP_FANBASE_ZONE_VERSION << 24)
             ^ (uint32_t) (sizeof(ngx_http_fanbase_shctx_t) << 12);

    for (part = mcf->parts; part->name; part++) {
        layout = layout * 31 + (uint32_t) part->record;
    }

    return layout;
}
