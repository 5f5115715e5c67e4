
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_ZONE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_ZONE_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_time.h"


/* the shared zone */

/*
 * a table of claimed keys that expire (Idempotency-Keys, webhook message
 * ids), rooted in the zone's context; ngx_http_fanbase_keys.c works on it
 */

typedef struct {
    ngx_http_fanbase_idem_t     **hash;        /* chained buckets */
    ngx_uint_t                    mask;
    ngx_queue_t                   lru;         /* oldest claim first */
    ngx_uint_t                    count;
} ngx_http_fanbase_keys_t;


/* a hint that memory is about to be read: a cache miss started early */
#if (defined __GNUC__ || defined __clang__)
#define ngx_http_fanbase_prefetch(p)  __builtin_prefetch(p)
#else
#define ngx_http_fanbase_prefetch(p)
#endif


/* bumped whenever the zone's layout changes */
#define NGX_HTTP_FANBASE_ZONE_VERSION   12

/* routes to Fanbase (queue URL and credential set) with a breaker */
#define NGX_HTTP_FANBASE_BREAKERS       8


/*
 * A circuit breaker in front of one route to Fanbase (its token endpoint
 * included), host-wide (ngx_http_fanbase_txn.c): while it is open, the
 * route's due transactions wait parked, oldest first, and one of them at
 * a time probes, on a backoff; an answer from Fanbase closes it and the
 * parked ones are due again, in their order.
 */

typedef struct {
    u_char                        route[NGX_HTTP_FANBASE_ROUTE_LEN];
    ngx_rbtree_t                  parked;      /* by time of acceptance */
    ngx_rbtree_node_t             parked_sentinel;
    ngx_uint_t                    parked_n;
    ngx_http_fanbase_txn_t       *probe;
    ngx_msec_t                    until;       /* no probe before */
    ngx_msec_t                    probe_until; /* the probe's claim ends */
    uint32_t                      failures;    /* in a row; 0: closed */
    unsigned                      used:1;
    unsigned                      probing:1;
} ngx_http_fanbase_breaker_t;

/*
 * a bucket of transactions: the head of its chain, and its change stamp
 * (bumped by every change of its transactions; a long poll looks at it
 * without the lock).  Side by side, they are one cache miss (and one TLB
 * miss) where two arrays made every change pay for two.
 */

typedef struct {
    ngx_http_fanbase_txn_t       *head;
    ngx_atomic_t                  stamp;
} ngx_http_fanbase_txn_bucket_t;

/*
 * per bucket of the hash tables, after the context: the transactions'
 * (with their stamps), and the heads of the chains of Idempotency-Keys,
 * webhook message ids and queue ids
 */
#define NGX_HTTP_FANBASE_BUCKET_SIZE                                         \
    (sizeof(ngx_http_fanbase_txn_bucket_t) + 3 * sizeof(void *))

struct ngx_http_fanbase_shctx_s {
    uint32_t                      layout;      /* what made the zone */
    ngx_uint_t                    buckets;     /* of each hash table */
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   evictable;   /* LRU: terminal and probes */
    ngx_queue_t                   active;      /* not terminal: kept */
    ngx_queue_t                   tokens;
    ngx_uint_t                    entries;
    ngx_uint_t                    evictions;

    /* asynchronous transactions (ngx_http_fanbase_txn.c) */
    ngx_http_fanbase_txn_bucket_t *txn_hash;   /* by id: chained buckets */
    ngx_uint_t                    txn_hash_mask;
    ngx_queue_t                   ready;       /* due now, oldest first */
    ngx_rbtree_t                  schedule;    /* due later, or claimed */
    ngx_rbtree_node_t             schedule_sentinel;
    ngx_queue_t                   txn_live;    /* not terminal: kept */
    ngx_queue_t                   txn_done;    /* terminal: LRU, evictable */
    ngx_http_fanbase_keys_t       idem;        /* Idempotency-Keys */
    ngx_uint_t                    txn_count;
    ngx_uint_t                    txn_status[6]; /* by FANBASE_STATUS_* */
    ngx_http_fanbase_breaker_t    breakers[NGX_HTTP_FANBASE_BREAKERS];

    ngx_http_fanbase_qid_t      **qid_hash;    /* Fanbase's id -> txn */
    ngx_http_fanbase_keys_t       hooks;       /* webhook message ids */
    ngx_rbtree_t                  notices;     /* outbound: by due time */
    ngx_rbtree_node_t             notices_sentinel;
    ngx_queue_t                   notices_all;
    ngx_uint_t                    notice_count;

    /* a shared engine's transactions, as read (ngx_http_fanbase_l1.c) */
    ngx_rbtree_t                  l1;
    ngx_rbtree_node_t             l1_sentinel;
    ngx_queue_t                   l1_lru;
    ngx_uint_t                    l1_count;

    /* for fanbase_health */
    uint64_t                      fanbase_ok;  /* Fanbase's last answer, ms
                                                  since the epoch, or 0 */
    ngx_uint_t                    txn_full;    /* the last new transaction
                                                  found no room */

    /* for fanbase_metrics: counted without the lock */
    ngx_http_fanbase_metrics_t    metrics;

    ngx_atomic_t                  changes;     /* bumped by every change */
    ngx_atomic_uint_t             saved;       /* "changes" last saved */
    ngx_msec_t                    save_lease;
    ngx_uint_t                    saving;
    ngx_msec_t                    save_next;   /* no snapshot before */
    size_t                        snap_bytes;  /* the last one's size */
    ngx_atomic_uint_t             snap_journal; /* journal_bytes then */

    /* the journal (ngx_http_fanbase_journal.c) */
    uint64_t                      journal_gen; /* of records made now */
    ngx_atomic_t                  journal_bytes; /* written, ever */
};


/*
 * a part of the zone (ngx_http_fanbase_zone.c): init sets up its records
 * in a new zone, attach checks in with a zone kept over a reload (NULL:
 * nothing to do), evict frees its least needed record and returns 1, or
 * returns 0 when it has none it may give (NULL: never)
 */

typedef ngx_int_t (*ngx_http_fanbase_zone_init_pt)(
    ngx_http_fanbase_main_conf_t *mcf, size_t size, ngx_log_t *log);
typedef ngx_uint_t (*ngx_http_fanbase_zone_evict_pt)(
    ngx_http_fanbase_main_conf_t *mcf);

struct ngx_http_fanbase_zone_part_s {
    const char                   *name;        /* NULL ends the table */
    size_t                        record;      /* its record's size, or 0:
                                                  part of the zone's layout */
    ngx_http_fanbase_zone_init_pt init;
    ngx_http_fanbase_zone_init_pt attach;
    ngx_http_fanbase_zone_evict_pt evict;
};


/*
 * Fanbase answered, for fanbase_health: an aligned word, written without
 * the lock, and only when it changes (once a millisecond at most), since
 * a line of the zone that every worker writes on every answer moves
 * between their caches each time
 */

static ngx_inline void
ngx_http_fanbase_zone_answered(ngx_http_fanbase_shctx_t *sh)
{
    uint64_t  now;

    now = ngx_http_fanbase_time_now();

    if (sh->fanbase_ok != now) {
        sh->fanbase_ok = now;
    }
}


ngx_int_t ngx_http_fanbase_zone_init(ngx_shm_zone_t *shm_zone, void *data);
ngx_int_t ngx_http_fanbase_zone_prefault(ngx_shm_zone_t *shm_zone,
    ngx_log_t *log);
void *ngx_http_fanbase_zone_alloc_locked(ngx_http_fanbase_main_conf_t *mcf,
    size_t size);
void ngx_http_fanbase_zone_touch(ngx_shm_zone_t *shm_zone, ngx_log_t *log);


extern ngx_http_fanbase_zone_part_t  ngx_http_fanbase_zone_parts[];


#endif /* _NGX_HTTP_FANBASE_ZONE_H_INCLUDED_ */
