
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Asynchronous transactions in the shared zone.  A transaction is found by
 * its id (a hash table of chained buckets), and, while it is not terminal,
 * by the time its next delivery or status poll is due: a FIFO of what is
 * due now, and a red-black tree keyed by that time for the rest.  A worker
 * claims a due transaction by moving it into the tree at the end of its
 * claim, so that no two workers work on one transaction, and one that dies
 * lets its claims run out.  Terminal transactions, and records that only
 * webhooks made, are kept in an LRU queue and are the only ones that may
 * be evicted.  Idempotency-Keys and webhook message ids are claimed, in
 * the same lock as the change they guard, through ngx_http_fanbase_keys.c
 * (the oldest message ids are given up before their expiry when nothing
 * else can be); Fanbase's queue ids index delivered transactions.  Each
 * of them belongs to the scope of a credential set and is found by
 * (scope, id): the hash covers both.
 * Every change bumps sh->changes: long polls and the state file watch it.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_keys.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_txn.h"


#define NGX_HTTP_FANBASE_EVENT_MAX   8192
#define NGX_HTTP_FANBASE_CHUNK       (128 + 1)   /* the 256-byte class */


static ngx_int_t ngx_http_fanbase_txn_index_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t,
    u_char *queue_id, size_t len);
static void ngx_http_fanbase_txn_unschedule_locked(
    ngx_http_fanbase_shctx_t *sh, ngx_http_fanbase_txn_t *t);
static ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_insert_locked(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, u_char *id,
    uint32_t hash, ngx_str_t *payload, ngx_str_t *request_id,
    ngx_msec_t due);
static void ngx_http_fanbase_txn_request_id_free_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t);
static ngx_int_t ngx_http_fanbase_txn_add_event_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t,
    ngx_str_t *event);
static void ngx_http_fanbase_txn_terminal_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t);
static void ngx_http_fanbase_txn_unowned_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t);
static ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_lookup(
    ngx_http_fanbase_shctx_t *sh, uint64_t scope, u_char *id, uint32_t hash);
static ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_qid_find(
    ngx_http_fanbase_shctx_t *sh, uint64_t scope, ngx_str_t *id,
    uint32_t hash);
static void ngx_http_fanbase_txn_free_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t);
static void ngx_http_fanbase_txn_changed(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t);
static void ngx_http_fanbase_txn_notice_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t,
    ngx_log_t *log);
static void ngx_http_fanbase_txn_prefetch_heads(void **b1, void **b2,
    void **b3);
static ngx_http_fanbase_event_t *ngx_http_fanbase_txn_event_reuse(
    ngx_http_fanbase_txn_t *t, size_t size);
static u_char *ngx_http_fanbase_txn_json(u_char *p,
    ngx_http_fanbase_txn_t *t);
static size_t ngx_http_fanbase_txn_json_size(ngx_http_fanbase_txn_t *t);
static void ngx_http_fanbase_txn_schedule_locked(
    ngx_http_fanbase_shctx_t *sh, ngx_http_fanbase_txn_t *t,
    ngx_msec_t delay);
static ngx_http_fanbase_breaker_t *ngx_http_fanbase_txn_breaker_locked(
    ngx_http_fanbase_shctx_t *sh, u_char *target, ngx_uint_t add);
static void ngx_http_fanbase_txn_park_locked(ngx_http_fanbase_breaker_t *b,
    ngx_http_fanbase_txn_t *t);
static ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_probe_locked(
    ngx_http_fanbase_shctx_t *sh, ngx_msec_t lease, ngx_msec_t *next);
static void ngx_http_fanbase_txn_breaker_end_locked(
    ngx_http_fanbase_shctx_t *sh, ngx_http_fanbase_txn_t *t,
    ngx_http_fanbase_txn_update_t *u, ngx_http_fanbase_job_t *job,
    ngx_log_t *log);


ngx_http_fanbase_txn_journal_pt  ngx_http_fanbase_txn_journal;


ngx_int_t
ngx_http_fanbase_txn_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    ngx_uint_t                 n;
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;

    /*
     * the buckets the zone laid out after its context: those of
     * transactions (a line holds four, none across two), then those of
     * Idempotency-Keys, webhook message ids and queue ids
     */

    n = sh->buckets;

    sh->txn_hash = (ngx_http_fanbase_txn_bucket_t *)
                       ngx_align_ptr(sh + 1, NGX_CPU_CACHE_LINE);
    ngx_memzero(sh->txn_hash, n * sizeof(ngx_http_fanbase_txn_bucket_t));

    sh->txn_hash_mask = n - 1;
    ngx_queue_init(&sh->ready);

    ngx_rbtree_init(&sh->schedule, &sh->schedule_sentinel,
                    ngx_rbtree_insert_timer_value);
    ngx_http_fanbase_keys_init(&sh->idem,
                               (ngx_http_fanbase_idem_t **) (sh->txn_hash + n),
                               n);
    ngx_http_fanbase_keys_init(&sh->hooks, sh->idem.hash + n, n);

    sh->qid_hash = (ngx_http_fanbase_qid_t **) (sh->hooks.hash + n);
    ngx_memzero(sh->qid_hash, n * sizeof(ngx_http_fanbase_qid_t *));
    ngx_queue_init(&sh->txn_live);
    ngx_queue_init(&sh->txn_done);
    sh->txn_count = 0;
    sh->changes = 0;
    sh->saved = 0;
    sh->saving = 0;

    return NGX_OK;
}


/*
 * One event of the downstream shape: {"event": kind, "message": ...,
 * "data": {...}, "status": ..., "created_at": ...}; data is a JSON object
 * or empty for {}.
 */

ngx_int_t
ngx_http_fanbase_txn_event(ngx_pool_t *pool, const char *kind,
    const char *message, ngx_uint_t status, ngx_str_t *data, ngx_str_t *out)
{
    size_t           len;
    u_char           created[FANBASE_JSON_TIME_LEN];
    fanbase_event_t  ev;

    ev.kind = kind;
    ev.message.data = (u_char *) message;
    ev.message.len = ngx_strlen(message);
    ev.data.data = data->data;
    ev.data.len = data->len;
    ev.status = status;
    ev.created_at.data = created;
    ev.created_at.len = ngx_http_fanbase_time_iso(created,
                                                  ngx_http_fanbase_time_now())
                        - created;

    len = fanbase_json_event_size(&ev);

    if (len >= NGX_HTTP_FANBASE_EVENT_MAX + 256) {
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = fanbase_json_render_event(out->data, &ev) - out->data;

    return NGX_OK;
}


/* the event of a cancellation, whichever engine keeps it */

ngx_int_t
ngx_http_fanbase_txn_cancel_event(ngx_pool_t *pool, ngx_str_t *event)
{
    ngx_str_t  empty;

    ngx_str_null(&empty);

    return ngx_http_fanbase_txn_event(pool, "transition",
                                      "cancelled at the edge",
                                      FANBASE_STATUS_CANCELLED, &empty, event);
}


/*
 * The first event of every transaction, kept implied in the zone while it
 * is among the newest events: it takes no memory of its own.
 */

u_char *
ngx_http_fanbase_txn_accepted(u_char *p, uint64_t created)
{
    p = ngx_cpymem(p, "{\"event\":\"transition\",\"message\":\"accepted by "
                   "the edge\",\"data\":{},\"status\":\"pending\","
                   "\"created_at\":\"",
                   sizeof("{\"event\":\"transition\",\"message\":\"accepted by "
                          "the edge\",\"data\":{},\"status\":\"pending\","
                          "\"created_at\":\"") - 1);
    p = ngx_http_fanbase_time_iso(p, created);

    return ngx_cpymem(p, "\"}", 2);
}


/* the id of the request that accepted "t", in the zone; empty: none */

void
ngx_http_fanbase_txn_request_id(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, ngx_str_t *id)
{
    id->len = t->request_id_len;
    id->data = t->request_id ? (u_char *) mcf->shpool + t->request_id : NULL;
}


static void
ngx_http_fanbase_txn_request_id_free_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    if (t->request_id) {
        ngx_slab_free_locked(mcf->shpool,
                             (u_char *) mcf->shpool + t->request_id);
        t->request_id = 0;
        t->request_id_len = 0;
    }
}


/*
 * NGX_OK: created; NGX_DONE: an earlier transaction with the same
 * Idempotency-Key and body, its id in nt->id; NGX_DECLINED: the key was
 * used with another body; NGX_BUSY: the zone is full.
 */

ngx_int_t
ngx_http_fanbase_txn_create(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_new_t *nt, ngx_log_t *log)
{
    uint32_t                      hash, hkey;
    uint64_t                      now;
    ngx_http_fanbase_txn_t       *t;
    ngx_http_fanbase_idem_t      *k;
    ngx_http_fanbase_shctx_t     *sh;
    ngx_http_fanbase_loc_conf_t  *lcf;

    lcf = nt->lcf;
    sh = mcf->sh;
    now = ngx_http_fanbase_time_now();

    /* hashed once; the bucket, a cache miss, is fetched while locking */

    hash = ngx_http_fanbase_id_hash(lcf->scope, nt->id,
                                       NGX_HTTP_FANBASE_TXN_ID_LEN);

    /* most submissions have no Idempotency-Key */
    hkey = nt->idem_key.len ? ngx_http_fanbase_id_hash(lcf->scope,
                                                       nt->idem_key.data,
                                                       nt->idem_key.len)
                            : 0;

    ngx_http_fanbase_prefetch(&sh->txn_hash[hash & sh->txn_hash_mask]);

    ngx_shmtx_lock(&mcf->shpool->mutex);

    ngx_http_fanbase_keys_expire(mcf, &sh->idem, now, 8);

    if (nt->idem_key.len) {
        k = ngx_http_fanbase_keys_find_locked(mcf, &sh->idem, lcf->scope,
                                              &nt->idem_key, hkey, now);
        if (k != NULL) {
            if (ngx_memcmp(k->digest, nt->digest, 16) != 0) {
                ngx_shmtx_unlock(&mcf->shpool->mutex);
                return NGX_DECLINED;
            }

            ngx_memcpy(nt->id, k->txn_id, NGX_HTTP_FANBASE_TXN_ID_LEN);
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            return NGX_DONE;
        }
    }

    t = ngx_http_fanbase_txn_insert_locked(mcf, lcf->scope, nt->id, hash,
                                           &nt->payload, &nt->request_id, 0);
    if (t == NULL) {
        sh->txn_full = 1;
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_BUSY;
    }

    sh->txn_full = 0;

    /* the first event is implied: it is rendered from "created" */

    t->accepted = 1;
    t->nevents = 1;

    ngx_memcpy(t->target, lcf->target, NGX_HTTP_FANBASE_TARGET_LEN);
    t->created = now;
    t->updated = now;
    t->deliver_by = now + (uint64_t) lcf->deliver_horizon * 1000;
    t->track_by = now + (uint64_t) lcf->track_horizon * 1000;
    t->max_events = (u_char) lcf->transaction_events;

    if (nt->idem_key.len) {
        k = ngx_http_fanbase_keys_insert_locked(mcf, &sh->idem, lcf->scope,
                                  &nt->idem_key, hkey, nt->digest, nt->id,
                                  now + (uint64_t) lcf->idempotency_window
                                        * 1000);
        if (k == NULL) {
            ngx_http_fanbase_txn_free_locked(mcf, t);
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            return NGX_BUSY;
        }
    }

    ngx_http_fanbase_txn_changed(sh, t);

    if (ngx_http_fanbase_txn_journal != NULL) {
        nt->seq = ngx_http_fanbase_txn_journal(NULL,
                                               nt->idem_key.len ? k : NULL);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return NGX_OK;
}


/*
 * A new pending transaction of "scope", due after "delay" ms (0: now):
 * the record and copies of the payload and of the accepting request's id,
 * or NULL and nothing when the zone has no room for them.  "hash" is that
 * of the scope and the id.
 */

static ngx_http_fanbase_txn_t *
ngx_http_fanbase_txn_insert_locked(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, u_char *id, uint32_t hash, ngx_str_t *payload,
    ngx_str_t *request_id, ngx_msec_t delay)
{
    u_char                    *p;
    ngx_http_fanbase_txn_t    *t;
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;

    t = ngx_http_fanbase_zone_alloc_locked(mcf, sizeof(ngx_http_fanbase_txn_t));
    if (t == NULL) {
        return NULL;
    }

    ngx_memzero(t, sizeof(ngx_http_fanbase_txn_t));
    ngx_queue_init(&t->events);
    ngx_memcpy(t->id, id, NGX_HTTP_FANBASE_TXN_ID_LEN);
    t->scope = scope;
    t->status = FANBASE_STATUS_PENDING;
    t->max_events = 16;

    /*
     * the payload's place holds Fanbase's queue id once delivered: the
     * record stays in one 256-byte chunk, and delivery needs no memory
     */

    if (payload->len) {
        t->data = ngx_http_fanbase_zone_alloc_locked(mcf,
                                  ngx_max(payload->len,
                                          NGX_HTTP_FANBASE_ID_MAX));
        if (t->data == NULL) {
            ngx_slab_free_locked(mcf->shpool, t);
            return NULL;
        }

        ngx_memcpy(t->data, payload->data, payload->len);
        t->payload_len = (uint32_t) payload->len;
    }

    /*
     * the request id has a chunk of its own (32 bytes for nginx's), found
     * by its offset in the zone: the record has no room for a pointer
     */

    if (request_id->len) {
        p = ngx_http_fanbase_zone_alloc_locked(mcf, request_id->len);
        if (p == NULL) {
            if (t->data != NULL) {
                ngx_slab_free_locked(mcf->shpool, t->data);
            }

            ngx_slab_free_locked(mcf->shpool, t);
            return NULL;
        }

        ngx_memcpy(p, request_id->data, request_id->len);
        t->request_id = (uint32_t) (p - (u_char *) mcf->shpool);
        t->request_id_len = (unsigned) request_id->len;
    }

    t->hash = hash;
    t->hash_next = sh->txn_hash[t->hash & sh->txn_hash_mask].head;
    sh->txn_hash[t->hash & sh->txn_hash_mask].head = t;

    ngx_http_fanbase_txn_schedule_locked(sh, t, delay);

    ngx_queue_insert_head(&sh->txn_live, &t->queue);
    sh->txn_count++;
    sh->txn_status[FANBASE_STATUS_PENDING]++;

    return t;
}


/* the slab allocator's size class of a chunk of "size" bytes */

static size_t
ngx_http_fanbase_txn_slab_class(size_t size)
{
    size_t  n;

    for (n = 8; n < size; n <<= 1) { /* void */ }

    return n;
}


/* the oldest kept event of "t" whose chunk can hold "size" bytes, unlinked */

static ngx_http_fanbase_event_t *
ngx_http_fanbase_txn_event_reuse(ngx_http_fanbase_txn_t *t, size_t size)
{
    size_t                     n, old;
    ngx_queue_t               *q;
    ngx_http_fanbase_event_t  *ev;

    /* larger ones take whole pages: not worth the bookkeeping */

    if (size > ngx_pagesize / 2) {
        return NULL;
    }

    n = ngx_http_fanbase_txn_slab_class(size);

    for (q = ngx_queue_head(&t->events);
         q != ngx_queue_sentinel(&t->events);
         q = ngx_queue_next(q))
    {
        ev = ngx_queue_data(q, ngx_http_fanbase_event_t, queue);

        old = ngx_http_fanbase_txn_slab_class(
                      offsetof(ngx_http_fanbase_event_t, json) + ev->len);

        if (old == n) {
            ngx_queue_remove(q);
            return ev;
        }
    }

    return NULL;
}


static ngx_int_t
ngx_http_fanbase_txn_add_event_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, ngx_str_t *event)
{
    size_t                     size;
    ngx_queue_t               *q;
    ngx_http_fanbase_event_t  *ev;

    size = offsetof(ngx_http_fanbase_event_t, json) + event->len;

    ev = ngx_http_fanbase_zone_alloc_locked(mcf, size);

    if (ev == NULL) {
        /*
         * a zone full of transactions that are not terminal: the newest
         * event matters most (the last one carries Fanbase's queue id), so
         * it takes the place of this transaction's oldest kept event in
         * the same slab size class, which the newest are kept over anyway
         */

        ev = ngx_http_fanbase_txn_event_reuse(t, size);
        if (ev == NULL) {
            return NGX_ERROR;
        }

        t->nevents--;
    }

    ev->len = (uint32_t) event->len;
    ngx_memcpy(ev->json, event->data, event->len);

    /*
     * the newest are kept: room is made before the new one counts, so
     * that the count (a byte) never passes max_events, which may be 255
     */

    while (t->nevents >= ngx_max(t->max_events, 1)) {
        t->nevents--;

        if (t->accepted) {
            t->accepted = 0;
            continue;
        }

        q = ngx_queue_head(&t->events);
        ngx_queue_remove(q);
        ngx_slab_free_locked(mcf->shpool,
                             ngx_queue_data(q, ngx_http_fanbase_event_t,
                                            queue));
    }

    ngx_queue_insert_tail(&t->events, &ev->queue);
    t->nevents++;

    return NGX_OK;
}


ngx_int_t
ngx_http_fanbase_txn_get(ngx_http_fanbase_main_conf_t *mcf, uint64_t scope,
    ngx_str_t *id, ngx_pool_t *pool, ngx_http_fanbase_txn_view_t *v)
{
    u_char                  *p;
    ngx_http_fanbase_txn_t  *t;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    t = ngx_http_fanbase_txn_find_locked(mcf->sh, scope, id->data, id->len);

    if (t == NULL) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_DECLINED;
    }

    if (fanbase_status_terminal(t->status)) {
        ngx_queue_remove(&t->queue);
        ngx_queue_insert_head(&mcf->sh->txn_done, &t->queue);
    }

    /* without a pool, a cheap look: no JSON (long polls) */

    ngx_str_null(&v->json);

    if (pool != NULL) {
        p = ngx_pnalloc(pool, ngx_http_fanbase_txn_json_size(t));
        if (p == NULL) {
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            return NGX_ERROR;
        }

        v->json.data = p;
        v->json.len = ngx_http_fanbase_txn_json(p, t) - p;
    }

    v->updated = t->updated;
    v->version = t->version;
    v->status = t->status;
    v->stale = 0;

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return NGX_OK;
}


/* the downstream shape of a transaction, rendered from the zone */

static size_t
ngx_http_fanbase_txn_json_size(ngx_http_fanbase_txn_t *t)
{
    size_t                     len;
    ngx_queue_t               *q;
    fanbase_txn_head_t         head;
    ngx_http_fanbase_event_t  *ev;

    head.id.len = NGX_HTTP_FANBASE_TXN_ID_LEN;
    head.created_at.len = FANBASE_JSON_TIME_LEN;
    head.updated_at.len = FANBASE_JSON_TIME_LEN;

    len = fanbase_json_txn_head_size(&head) + sizeof("]}")
          + (t->accepted ? NGX_HTTP_FANBASE_ACCEPTED_LEN + 1 : 0);

    for (q = ngx_queue_head(&t->events);
         q != ngx_queue_sentinel(&t->events);
         q = ngx_queue_next(q))
    {
        ev = ngx_queue_data(q, ngx_http_fanbase_event_t, queue);
        len += ev->len + 1;
    }

    return len;
}


static u_char *
ngx_http_fanbase_txn_json(u_char *p, ngx_http_fanbase_txn_t *t)
{
    u_char                    *start;
    ngx_queue_t               *q;
    fanbase_txn_head_t         head;
    ngx_http_fanbase_event_t  *ev;
    u_char                     created[FANBASE_JSON_TIME_LEN];
    u_char                     updated[FANBASE_JSON_TIME_LEN];

    head.id.data = t->id;
    head.id.len = NGX_HTTP_FANBASE_TXN_ID_LEN;
    head.created_at.data = created;
    head.created_at.len = ngx_http_fanbase_time_iso(created, t->created)
                          - created;
    head.updated_at.data = updated;
    head.updated_at.len = ngx_http_fanbase_time_iso(updated, t->updated)
                          - updated;
    head.status = t->status;

    p = fanbase_json_render_txn_head(p, &head);

    start = p;

    if (t->accepted) {
        p = ngx_http_fanbase_txn_accepted(p, t->created);
    }

    for (q = ngx_queue_head(&t->events);
         q != ngx_queue_sentinel(&t->events);
         q = ngx_queue_next(q))
    {
        ev = ngx_queue_data(q, ngx_http_fanbase_event_t, queue);

        if (p != start) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, ev->json, ev->len);
    }

    return ngx_cpymem(p, "]}", 2);
}


/*
 * NGX_OK: cancelled (now or before); NGX_DECLINED: unknown in "scope";
 * NGX_BUSY: delivery has started; NGX_ABORT: terminal otherwise.
 */

ngx_int_t
ngx_http_fanbase_txn_cancel(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_log_t *log)
{
    ngx_int_t                rc;
    ngx_str_t                event;
    ngx_pool_t              *pool;
    ngx_http_fanbase_txn_t  *t;

    pool = ngx_create_pool(1024, log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_fanbase_txn_cancel_event(pool, &event) != NGX_OK) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&mcf->shpool->mutex);

    t = ngx_http_fanbase_txn_find_locked(mcf->sh, scope, id->data, id->len);

    if (t == NULL) {
        rc = NGX_DECLINED;

    } else if (t->status == FANBASE_STATUS_CANCELLED) {
        rc = NGX_OK;

    } else if (fanbase_status_terminal(t->status)) {
        rc = NGX_ABORT;

    } else if (t->owner != 0 || t->queue_id_len || t->sent
               || t->status != FANBASE_STATUS_PENDING)
    {
        rc = NGX_BUSY;

    } else {
        ngx_http_fanbase_txn_set_status(mcf->sh, t, FANBASE_STATUS_CANCELLED);

        if (ngx_http_fanbase_txn_add_event_locked(mcf, t, &event) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: zone \"%V\" is full, the cancellation "
                          "of \"%V\" has no event", &mcf->shm_zone->shm.name,
                          id);
        }

        /*
         * the notice first: its room may be made by evicting terminal
         * transactions, which this one is not yet
         */

        ngx_http_fanbase_txn_changed(mcf->sh, t);
        ngx_http_fanbase_txn_notice_locked(mcf, t, log);
        ngx_http_fanbase_txn_terminal_locked(mcf, t);

        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    ngx_destroy_pool(pool);

    return rc;
}


/*
 * The earliest due transaction, claimed for this worker until "lease" ms
 * from now.  NGX_DECLINED: none is due, *next is the time until one is
 * (NGX_TIMER_INFINITE: none at all).
 */

ngx_int_t
ngx_http_fanbase_txn_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_msec_t lease, ngx_msec_t *next)
{
    ngx_msec_t                   now;
    ngx_str_t                    rid;
    ngx_pid_t                    owner;
    ngx_uint_t                   parked;
    ngx_rbtree_node_t           *node, *root, *sentinel;
    ngx_http_fanbase_txn_t      *t;
    ngx_http_fanbase_shctx_t    *sh;
    ngx_http_fanbase_breaker_t  *b;

    sh = mcf->sh;
    now = ngx_current_msec;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    /* a breaker whose pause is over lets one of its own through first */

    *next = NGX_TIMER_INFINITE;
    t = ngx_http_fanbase_txn_probe_locked(sh, lease, next);
    parked = 0;

    while (t == NULL) {

        /* what became due now first, then the earliest of the rest */

        if (!ngx_queue_empty(&sh->ready)) {
            t = ngx_queue_data(ngx_queue_head(&sh->ready),
                               ngx_http_fanbase_txn_t, ready);

        } else {
            root = sh->schedule.root;
            sentinel = sh->schedule.sentinel;

            if (root == sentinel) {
                ngx_shmtx_unlock(&mcf->shpool->mutex);
                return NGX_DECLINED;
            }

            node = ngx_rbtree_min(root, sentinel);

            if ((ngx_msec_int_t) (node->key - now) > 0) {
                ngx_shmtx_unlock(&mcf->shpool->mutex);
                *next = ngx_min(*next, node->key - now);
                return NGX_DECLINED;
            }

            t = (ngx_http_fanbase_txn_t *)
                    ((u_char *) node - offsetof(ngx_http_fanbase_txn_t, due));
        }

        if (t->data == NULL) {
            /* nothing to deliver and nothing to track: a webhook's record */
            ngx_http_fanbase_txn_unschedule_locked(sh, t);
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            *next = 0;
            return NGX_DECLINED;
        }

        b = ngx_http_fanbase_txn_breaker_locked(sh, t->target, 0);

        if (b == NULL || b->failures == 0 || (b->probing && b->probe == t)) {
            break;
        }

        /* its route's breaker is open: it waits with the others, in order */

        ngx_http_fanbase_txn_unschedule_locked(sh, t);
        ngx_http_fanbase_txn_park_locked(b, t);
        t = NULL;

        if (++parked == 64) {
            /* the lock is not held for long: the rest at the next look */
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            *next = 0;
            return NGX_DECLINED;
        }
    }

    if (t->queue_id_len == 0) {
        job->payload = ngx_alloc(t->payload_len, ngx_cycle->log);
        if (job->payload == NULL) {
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            *next = 1000;
            return NGX_DECLINED;
        }

        ngx_memcpy(job->payload, t->data, t->payload_len);
        job->payload_len = t->payload_len;
        job->kind = NGX_HTTP_FANBASE_JOB_DELIVER;
        job->deadline = t->deliver_by;

    } else {
        job->kind = NGX_HTTP_FANBASE_JOB_TRACK;
        job->deadline = t->track_by;
    }

    owner = t->owner;

    ngx_http_fanbase_txn_unschedule_locked(sh, t);
    ngx_http_fanbase_txn_schedule_locked(sh, t, lease);

    t->owner = ngx_pid;
    t->claim++;

    ngx_memcpy(job->id, t->id, NGX_HTTP_FANBASE_TXN_ID_LEN);
    job->id_str.data = job->id;
    job->id_str.len = NGX_HTTP_FANBASE_TXN_ID_LEN;
    ngx_http_fanbase_txn_request_id(mcf, t, &rid);
    if (rid.len) {
        ngx_memcpy(job->request_id, rid.data, rid.len);
    }
    job->request_id_str.data = job->request_id;
    job->request_id_str.len = rid.len;
    if (job->kind == NGX_HTTP_FANBASE_JOB_TRACK) {
        ngx_memcpy(job->queue_id, t->data, t->queue_id_len);
        job->queue_id_len = t->queue_id_len;
    }
    ngx_memcpy(job->target, t->target, NGX_HTTP_FANBASE_TARGET_LEN);
    job->scope = t->scope;
    job->claim = t->claim;
    job->attempts = t->attempts;
    job->sent = t->sent;

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    if (owner != 0) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\": the claim of worker %P "
                      "ran out, taken over", &job->id_str, owner);
    }

    return NGX_OK;
}


/*
 * The POST may leave now: a worker that dies from here on leaves doubt.
 * NGX_DECLINED: the claim ran out and was taken over, nothing may leave.
 */

ngx_int_t
ngx_http_fanbase_txn_sending(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job)
{
    ngx_int_t                rc;
    ngx_http_fanbase_txn_t  *t;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    t = ngx_http_fanbase_txn_find_locked(mcf->sh, job->scope, job->id,
                                         NGX_HTTP_FANBASE_TXN_ID_LEN);

    if (t != NULL && t->claim == job->claim && t->owner == ngx_pid) {
        t->sent = 1;
        (void) ngx_atomic_fetch_add(&mcf->sh->changes, 1);
        job->seq = (ngx_http_fanbase_txn_journal != NULL)
                   ? ngx_http_fanbase_txn_journal(t, NULL) : 0;
        rc = NGX_OK;
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return rc;
}


/* the end of a job: the transaction's new state, and its claim released */

void
ngx_http_fanbase_txn_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_http_fanbase_txn_update_t *u,
    ngx_log_t *log)
{
    ngx_uint_t                 changed, moved;
    ngx_http_fanbase_txn_t    *t;
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;
    changed = 0;
    moved = 0;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    t = ngx_http_fanbase_txn_find_locked(sh, job->scope, job->id,
                                         NGX_HTTP_FANBASE_TXN_ID_LEN);

    if (t == NULL || t->claim != job->claim || t->owner != ngx_pid) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "fanbase: transaction \"%V\" was taken over while "
                      "this worker worked on it", &job->id_str);
        return;
    }

    t->owner = 0;

    if (u->not_sent) {
        t->sent = 0;
    }

    if (u->attempt) {
        t->attempts++;
    }

    if (u->delivered && t->data != NULL) {
        t->queue_id_len = (u_char) ngx_min(u->queue_id.len,
                                           NGX_HTTP_FANBASE_ID_MAX);
        ngx_memcpy(t->data, u->queue_id.data, t->queue_id_len);
        t->payload_len = 0;
        t->attempts = 0;
        t->sent = 0;

        if (ngx_http_fanbase_txn_index_locked(mcf, t, t->data,
                                              t->queue_id_len)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: zone \"%V\" is full, webhooks cannot "
                          "name transaction \"%V\" by its queue id",
                          &mcf->shm_zone->shm.name, &job->id_str);
        }
    }

    if (u->status && fanbase_status_advances(t->status, u->status)) {
        ngx_http_fanbase_txn_set_status(mcf->sh, t, u->status);
        changed = 1;
        moved = 1;
    }

    if (u->event.len) {
        if (ngx_http_fanbase_txn_add_event_locked(mcf, t, &u->event)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: zone \"%V\" is full, an event of "
                          "transaction \"%V\" is not kept",
                          &mcf->shm_zone->shm.name, &job->id_str);
        }

        changed = 1;
    }

    if (changed) {
        ngx_http_fanbase_txn_changed(sh, t);

    } else {
        (void) ngx_atomic_fetch_add(&sh->changes, 1);
    }

    /*
     * the notice before the move to the evictable LRU: its room may be
     * made by evicting terminal transactions, which this one is not yet
     */

    if (moved) {
        ngx_http_fanbase_txn_notice_locked(mcf, t, log);
    }

    if (fanbase_status_terminal(t->status)) {
        ngx_http_fanbase_txn_terminal_locked(mcf, t);

    } else {
        ngx_http_fanbase_txn_unschedule_locked(sh, t);
        ngx_http_fanbase_txn_schedule_locked(sh, t, u->retry);
    }

    ngx_http_fanbase_txn_breaker_end_locked(sh, t, u, job, log);

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


/* for fanbase_health: counts, and the open breakers */

void
ngx_http_fanbase_txn_health(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_health_t *th)
{
    ngx_uint_t                              i;
    ngx_msec_t                              now;
    ngx_msec_int_t                          left;
    ngx_http_fanbase_shctx_t               *sh;
    ngx_http_fanbase_breaker_t             *b;
    ngx_http_fanbase_txn_breaker_health_t  *bh;

    sh = mcf->sh;
    now = ngx_current_msec;

    ngx_memzero(th, sizeof(ngx_http_fanbase_txn_health_t));

    ngx_shmtx_lock(&mcf->shpool->mutex);

    th->transactions = sh->txn_count;
    th->full = sh->txn_full;
    th->idempotency_keys = sh->idem.count;
    ngx_memcpy(th->by_status, sh->txn_status, sizeof(th->by_status));

    for (i = 0; i < NGX_HTTP_FANBASE_BREAKERS; i++) {
        b = &sh->breakers[i];

        if (!b->used || b->failures == 0) {
            continue;
        }

        bh = &th->breakers[th->nbreakers++];

        bh->failures = b->failures;
        bh->waiting = b->parked_n;
        bh->probing = b->probing;

        left = (ngx_msec_int_t) (b->until - now);
        bh->probe_in = (left > 0) ? (ngx_msec_t) left : 0;
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


/*
 * The breaker of a route, found by the route's bytes of a target; "add":
 * a free slot is taken for it.  NULL: none (with more routes than slots,
 * a route without one backs off transaction by transaction).
 */

static ngx_http_fanbase_breaker_t *
ngx_http_fanbase_txn_breaker_locked(ngx_http_fanbase_shctx_t *sh,
    u_char *target, ngx_uint_t add)
{
    ngx_uint_t                   i;
    ngx_http_fanbase_breaker_t  *b, *free;

    free = NULL;

    for (i = 0; i < NGX_HTTP_FANBASE_BREAKERS; i++) {
        b = &sh->breakers[i];

        if (!b->used) {
            if (free == NULL) {
                free = b;
            }

            continue;
        }

        if (ngx_memcmp(b->route, target, NGX_HTTP_FANBASE_ROUTE_LEN) == 0) {
            return b;
        }
    }

    if (!add || free == NULL) {
        return NULL;
    }

    ngx_memzero(free, sizeof(ngx_http_fanbase_breaker_t));
    ngx_memcpy(free->route, target, NGX_HTTP_FANBASE_ROUTE_LEN);
    ngx_rbtree_init(&free->parked, &free->parked_sentinel,
                    ngx_rbtree_insert_value);
    free->used = 1;

    return free;
}


/*
 * Parked in the order of acceptance, whatever the order of arrival (those
 * that waited for a token come back in the order of their retries): a
 * tree by the time of acceptance, in the node the schedule uses.
 */

static void
ngx_http_fanbase_txn_park_locked(ngx_http_fanbase_breaker_t *b,
    ngx_http_fanbase_txn_t *t)
{
    t->due.key = (ngx_rbtree_key_t) t->created;
    ngx_rbtree_insert(&b->parked, &t->due);

    t->scheduled = NGX_HTTP_FANBASE_PARKED;
    b->parked_n++;
}


/*
 * The probe of an open breaker whose pause is over: the oldest of its
 * parked transactions, one at a time.  *next: the ms until the next pause
 * ends, if sooner.
 */

static ngx_http_fanbase_txn_t *
ngx_http_fanbase_txn_probe_locked(ngx_http_fanbase_shctx_t *sh,
    ngx_msec_t lease, ngx_msec_t *next)
{
    ngx_uint_t                   i;
    ngx_msec_t                   now;
    ngx_msec_int_t               left;
    ngx_rbtree_node_t           *node;
    ngx_http_fanbase_txn_t      *t;
    ngx_http_fanbase_breaker_t  *b;

    now = ngx_current_msec;

    for (i = 0; i < NGX_HTTP_FANBASE_BREAKERS; i++) {
        b = &sh->breakers[i];

        if (!b->used || b->failures == 0) {
            continue;
        }

        if (b->probing) {
            if ((ngx_msec_int_t) (b->probe_until - now) > 0) {
                continue;
            }

            /* the probe's worker went away: its claim ran out */
            b->probing = 0;
        }

        if (b->parked.root == b->parked.sentinel) {
            continue;
        }

        left = (ngx_msec_int_t) (b->until - now);

        if (left > 0) {
            *next = ngx_min(*next, (ngx_msec_t) left);
            continue;
        }

        node = ngx_rbtree_min(b->parked.root, b->parked.sentinel);
        ngx_rbtree_delete(&b->parked, node);
        b->parked_n--;

        t = (ngx_http_fanbase_txn_t *)
                ((u_char *) node - offsetof(ngx_http_fanbase_txn_t, due));
        t->scheduled = NGX_HTTP_FANBASE_UNSCHEDULED;

        b->probing = 1;
        b->probe = t;
        b->probe_until = now + lease;

        return t;
    }

    return NULL;
}


/*
 * What the end of a job says of its route: Fanbase did not answer (the
 * breaker opens, or stays open with a longer pause after a probe, and the
 * transaction waits parked in its place), or it did (the breaker closes
 * and the parked transactions are due now, before what became due since).
 */

static void
ngx_http_fanbase_txn_breaker_end_locked(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t, ngx_http_fanbase_txn_update_t *u,
    ngx_http_fanbase_job_t *job, ngx_log_t *log)
{
    ngx_uint_t                   probe;
    ngx_msec_t                   pause;
    ngx_queue_t                  first;
    ngx_rbtree_node_t           *node;
    ngx_http_fanbase_txn_t      *p;
    ngx_http_fanbase_breaker_t  *b;

    if (u->answered) {
        ngx_http_fanbase_zone_answered(sh);
    }

    b = ngx_http_fanbase_txn_breaker_locked(sh, t->target, u->down);
    if (b == NULL) {
        return;
    }

    probe = (b->probing && b->probe == t);

    if (probe) {
        b->probing = 0;
        b->probe = NULL;
    }

    if (u->down && !fanbase_status_terminal(t->status)) {

        /* a job that was out when the breaker opened does not count */

        if (b->failures == 0 || probe) {
            b->failures++;

            pause = (b->failures < 6) ? 1000 << (b->failures - 1) : 30000;
            pause = ngx_max(pause, u->wait);
            b->until = ngx_current_msec + pause;

            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "fanbase: Fanbase did not answer the delivery of "
                          "transaction \"%V\": deliveries on its route wait, "
                          "in order; next probe in %M ms", &job->id_str,
                          pause);
        }

        ngx_http_fanbase_txn_unschedule_locked(sh, t);
        ngx_http_fanbase_txn_park_locked(b, t);

        return;
    }

    if (!u->answered || b->failures == 0) {

        /*
         * a job that ended on its own (its horizon) proves nothing; a
         * probe that learned nothing (a token fetch was under way) stays
         * the next probe, after its pause: the next one in line would
         * learn no more
         */

        if (probe && b->failures && !fanbase_status_terminal(t->status)) {
            b->until = ngx_current_msec + ngx_max(u->retry, 100);

            ngx_http_fanbase_txn_unschedule_locked(sh, t);
            ngx_http_fanbase_txn_park_locked(b, t);
        }

        return;
    }

    /* Fanbase answered: the parked ones go first, in their order */

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanbase: Fanbase answers again after %uD failed probes: "
                  "%ui waiting transactions are due, in order",
                  b->failures - 1, b->parked_n);

    if (b->parked.root != b->parked.sentinel) {

        /* in order, then what was ready after them */

        ngx_queue_init(&first);

        for (node = ngx_rbtree_min(b->parked.root, b->parked.sentinel);
             node != NULL;
             node = ngx_rbtree_next(&b->parked, node))
        {
            p = (ngx_http_fanbase_txn_t *)
                    ((u_char *) node - offsetof(ngx_http_fanbase_txn_t, due));
            ngx_queue_insert_tail(&first, &p->ready);
            p->scheduled = NGX_HTTP_FANBASE_READY;
        }

        if (!ngx_queue_empty(&sh->ready)) {
            ngx_queue_add(&first, &sh->ready);
        }

        ngx_queue_init(&sh->ready);
        ngx_queue_add(&sh->ready, &first);
    }

    b->used = 0;
}


/*
 * A status update from a webhook (ngx_http_fanbase_webhook.c), with its
 * message id claimed under the same lock: NGX_OK applied (or a new
 * transaction created), NGX_DONE a duplicate, NGX_DECLINED stale or out of
 * order, NGX_ABORT no such transaction (the id is claimed: the caller
 * applies it elsewhere, or gives the claim back), NGX_BUSY the zone is
 * full.
 */

ngx_int_t
ngx_http_fanbase_txn_hook(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_hook_t *hk, ngx_log_t *log)
{
    uint64_t                   now;
    uint32_t                   hid, hmsg, bid, bmsg;
    ngx_str_t                  empty;
    ngx_http_fanbase_txn_t    *t;
    ngx_http_fanbase_idem_t   *k;
    ngx_http_fanbase_shctx_t  *sh;
    u_char                     none[NGX_HTTP_FANBASE_TXN_ID_LEN];

    sh = mcf->sh;
    now = ngx_http_fanbase_time_now();

    ngx_memzero(none, sizeof(none));
    ngx_str_null(&empty);

    /*
     * three lookups in tables that may span gigabytes: every bucket and
     * every first entry of a chain is a cache miss, and with 4k pages a
     * TLB miss too.  Asked for together, the misses overlap: the buckets
     * while the lock is taken, the first entries before any is walked.
     */

    hid = ngx_http_fanbase_id_hash(hk->scope, hk->id.data, hk->id.len);
    hmsg = ngx_http_fanbase_id_hash(hk->scope, hk->msg_id.data,
                                       hk->msg_id.len);
    bid = hid & sh->txn_hash_mask;
    bmsg = hmsg & sh->hooks.mask;

    ngx_http_fanbase_prefetch(&sh->hooks.hash[bmsg]);
    ngx_http_fanbase_prefetch(&sh->txn_hash[bid]);
    ngx_http_fanbase_prefetch(&sh->qid_hash[bid]);

    ngx_shmtx_lock(&mcf->shpool->mutex);

    ngx_http_fanbase_txn_prefetch_heads((void **) &sh->hooks.hash[bmsg],
                                        (void **) &sh->txn_hash[bid].head,
                                        (void **) &sh->qid_hash[bid]);

    ngx_http_fanbase_keys_expire(mcf, &sh->hooks, now, 8);

    if (ngx_http_fanbase_keys_find_locked(mcf, &sh->hooks, hk->scope,
                                          &hk->msg_id, hmsg, now)
        != NULL)
    {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_DONE;
    }

    t = (hk->id.len == NGX_HTTP_FANBASE_TXN_ID_LEN)
        ? ngx_http_fanbase_txn_lookup(sh, hk->scope, hk->id.data, hid) : NULL;

    if (t == NULL) {
        t = ngx_http_fanbase_txn_qid_find(sh, hk->scope, &hk->id, hid);
    }

    k = ngx_http_fanbase_keys_insert_locked(mcf, &sh->hooks, hk->scope,
                                            &hk->msg_id, hmsg, none, none,
                                            hk->expires);
    if (k == NULL) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_BUSY;
    }

    if (t == NULL) {

        if (!hk->create) {
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            return NGX_ABORT;
        }

        /* a transaction the edge did not accept: nothing to deliver */

        t = ngx_http_fanbase_txn_insert_locked(mcf, hk->scope, hk->id.data,
                                               hid, &empty, &empty, 0);
        if (t == NULL) {
            ngx_http_fanbase_keys_delete_locked(mcf, &sh->hooks, k);
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            return NGX_BUSY;
        }

        ngx_http_fanbase_txn_unschedule_locked(sh, t);
        t->created = now;
        t->max_events = (u_char) hk->max_events;

    } else if (!fanbase_status_advances(t->status, hk->status)) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_DECLINED;

    } else if (t->data == NULL) {
        /* a record only webhooks made: not evictable while it changes */
        ngx_queue_remove(&t->queue);
        ngx_queue_insert_head(&sh->txn_live, &t->queue);
    }

    ngx_http_fanbase_txn_set_status(sh, t, hk->status);

    if (hk->event.len
        && ngx_http_fanbase_txn_add_event_locked(mcf, t, &hk->event)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: zone \"%V\" is full, an event of "
                      "transaction \"%V\" is not kept",
                      &mcf->shm_zone->shm.name, &hk->id);
    }

    ngx_http_fanbase_txn_changed(sh, t);
    ngx_http_fanbase_txn_notice_locked(mcf, t, log);

    /*
     * last: the event's and the notice's room may be made by evicting
     * what is evictable, which this one becomes only now
     */

    if (fanbase_status_terminal(t->status)) {
        /* no more polls: it ended */
        ngx_http_fanbase_txn_terminal_locked(mcf, t);

    } else if (t->data == NULL) {
        ngx_http_fanbase_txn_unowned_locked(mcf, t);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return NGX_OK;
}


/* a webhook's message id given back: its update could not be kept */

void
ngx_http_fanbase_txn_hook_release(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *msg_id)
{
    ngx_http_fanbase_idem_t  *k;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    k = ngx_http_fanbase_keys_find_locked(mcf, &mcf->sh->hooks, scope, msg_id,
                                    ngx_http_fanbase_id_hash(scope,
                                                  msg_id->data, msg_id->len),
                                    ngx_http_fanbase_time_now());
    if (k != NULL) {
        ngx_http_fanbase_keys_delete_locked(mcf, &mcf->sh->hooks, k);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


/* Fanbase's queue id of a transaction, for webhooks that name it so */

static ngx_int_t
ngx_http_fanbase_txn_index_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, u_char *queue_id, size_t len)
{
    ngx_http_fanbase_qid_t  *q, **p;

    if (t->qid != NULL || len == 0) {
        return NGX_OK;
    }

    q = ngx_http_fanbase_zone_alloc_locked(mcf,
                              offsetof(ngx_http_fanbase_qid_t, queue_id)
                              + len);
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->txn = t;
    q->len = (u_char) len;
    ngx_memcpy(q->queue_id, queue_id, len);

    /*
     * a doubly linked chain: deleting costs nothing even if many
     * transactions share a queue id (a mock's, in tests)
     */

    q->hash = ngx_http_fanbase_id_hash(t->scope, queue_id, len);
    p = &mcf->sh->qid_hash[q->hash & mcf->sh->txn_hash_mask];

    q->hash_next = *p;
    q->hash_prev = p;

    if (*p != NULL) {
        (*p)->hash_prev = &q->hash_next;
    }

    *p = q;

    t->qid = q;

    return NGX_OK;
}


static ngx_http_fanbase_txn_t *
ngx_http_fanbase_txn_qid_find(ngx_http_fanbase_shctx_t *sh, uint64_t scope,
    ngx_str_t *id, uint32_t hash)
{
    ngx_http_fanbase_qid_t  *q;

    for (q = sh->qid_hash[hash & sh->txn_hash_mask];
         q != NULL;
         q = q->hash_next)
    {
        if (q->hash == hash
            && q->len == id->len
            && ngx_memcmp(q->queue_id, id->data, id->len) == 0
            && q->txn->scope == scope)
        {
            return q->txn;
        }
    }

    return NULL;
}


/* due after "delay" ms: now means the ready queue, later the tree */

static void
ngx_http_fanbase_txn_schedule_locked(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t, ngx_msec_t delay)
{
    if (delay == 0) {
        ngx_queue_insert_tail(&sh->ready, &t->ready);
        t->scheduled = NGX_HTTP_FANBASE_READY;
        return;
    }

    t->due.key = ngx_current_msec + delay;
    ngx_rbtree_insert(&sh->schedule, &t->due);
    t->scheduled = NGX_HTTP_FANBASE_SCHEDULED;
}


static void
ngx_http_fanbase_txn_unschedule_locked(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t)
{
    ngx_http_fanbase_breaker_t  *b;

    if (t->scheduled == NGX_HTTP_FANBASE_READY) {
        ngx_queue_remove(&t->ready);

    } else if (t->scheduled == NGX_HTTP_FANBASE_SCHEDULED) {
        ngx_rbtree_delete(&sh->schedule, &t->due);

    } else if (t->scheduled == NGX_HTTP_FANBASE_PARKED) {
        b = ngx_http_fanbase_txn_breaker_locked(sh, t->target, 0);

        /* a parked transaction's breaker stays until it is empty */

        if (b != NULL) {
            ngx_rbtree_delete(&b->parked, &t->due);
            b->parked_n--;
        }
    }

    t->scheduled = NGX_HTTP_FANBASE_UNSCHEDULED;
}


/*
 * A record that only webhooks made (fanbase_webhook_create): the edge has
 * nothing to deliver and no queue id to follow, so nothing would ever end
 * it.  It is not scheduled and, terminal or not, it may be evicted, as
 * terminal transactions are: a sender that creates many cannot keep the
 * site's own submissions out of the zone.
 */

static void
ngx_http_fanbase_txn_unowned_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    ngx_http_fanbase_txn_unschedule_locked(mcf->sh, t);

    ngx_queue_remove(&t->queue);
    ngx_queue_insert_head(&mcf->sh->txn_done, &t->queue);
}


/*
 * out of the schedule, into the evictable LRU; its payload and request id
 * are not needed
 */

static void
ngx_http_fanbase_txn_terminal_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    ngx_http_fanbase_txn_unschedule_locked(mcf->sh, t);

    ngx_queue_remove(&t->queue);
    ngx_queue_insert_head(&mcf->sh->txn_done, &t->queue);

    if (t->data != NULL) {
        ngx_slab_free_locked(mcf->shpool, t->data);
        t->data = NULL;
        t->payload_len = 0;
    }

    /* it ended: no call nor notification will carry its request's id */
    ngx_http_fanbase_txn_request_id_free_locked(mcf, t);

    t->owner = 0;
}


/*
 * A notice for the site (fanbase_notify) of a change of a transaction's
 * status, with the transaction as it is now; called with the zone locked
 */

static void
ngx_http_fanbase_txn_notice_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, ngx_log_t *log)
{
    u_char                     *p;
    ngx_str_t                   id, rid;
    ngx_http_fanbase_notice_t  *n;
    u_char                      buf[NGX_HTTP_FANBASE_NOTICE_ID_MAX];

    if (mcf->notify_url.len == 0) {
        return;
    }

    ngx_http_fanbase_txn_request_id(mcf, t, &rid);

    /* the same id for every attempt, another for every status */

    id.data = buf;
    id.len = ngx_snprintf(buf, sizeof(buf), "msg_%*s_%s",
                          (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, t->id,
                          fanbase_json_status_name(t->status))
             - buf;

    n = ngx_http_fanbase_notice_alloc_locked(mcf,
                                       ngx_http_fanbase_txn_json_size(t)
                                       + rid.len);
    if (n == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: zone \"%V\" is full, the notification "
                      "\"%V\" is not kept", &mcf->shm_zone->shm.name, &id);
        return;
    }

    p = ngx_http_fanbase_txn_json(n->body, t);
    n->len = (uint32_t) (p - n->body);

    ngx_http_fanbase_notice_queue_locked(mcf, n, &id, &rid,
                                         ngx_http_fanbase_time_now(), 0);
}


static void
ngx_http_fanbase_txn_changed(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t)
{
    t->version++;
    t->updated = ngx_http_fanbase_time_now();

    sh->txn_hash[t->hash & sh->txn_hash_mask].stamp++;
    (void) ngx_atomic_fetch_add(&sh->changes, 1);

    if (ngx_http_fanbase_txn_journal != NULL) {
        (void) ngx_http_fanbase_txn_journal(t, NULL);
    }
}


/* a record the journal's replay replaces with a newer version */

void
ngx_http_fanbase_txn_forget_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    ngx_http_fanbase_txn_free_locked(mcf, t);
}


/*
 * Room in a full zone: expired Idempotency-Key claims and webhook message
 * ids first, then the least recently used terminal transaction.
 */

ngx_uint_t
ngx_http_fanbase_txn_evict(ngx_http_fanbase_main_conf_t *mcf)
{
    uint64_t                  now;
    ngx_uint_t                i;
    ngx_queue_t              *q;
    ngx_http_fanbase_txn_t   *t;
    ngx_http_fanbase_idem_t  *k;
    ngx_http_fanbase_keys_t  *keys[2];

    now = ngx_http_fanbase_time_now();
    keys[0] = &mcf->sh->idem;
    keys[1] = &mcf->sh->hooks;

    for (i = 0; i < 2; i++) {
        if (ngx_queue_empty(&keys[i]->lru)) {
            continue;
        }

        q = ngx_queue_head(&keys[i]->lru);
        k = ngx_queue_data(q, ngx_http_fanbase_idem_t, queue);

        if (k->expires <= now) {
            ngx_http_fanbase_keys_delete_locked(mcf, keys[i], k);
            return 1;
        }
    }

    if (!ngx_queue_empty(&mcf->sh->txn_done)) {
        q = ngx_queue_last(&mcf->sh->txn_done);
        t = ngx_queue_data(q, ngx_http_fanbase_txn_t, queue);

        ngx_http_fanbase_txn_free_locked(mcf, t);
        mcf->sh->evictions++;

        return 1;
    }

    /*
     * Last, the oldest webhook message id before its expiry: a repeat of
     * that message may then be applied again, which the state machine
     * makes a stale 204.  Never the newest: the update being applied may
     * have just claimed it.  Idempotency-Keys are never given up early: a
     * client's retry would be a second sale.
     */

    q = ngx_queue_head(&mcf->sh->hooks.lru);

    if (q == ngx_queue_sentinel(&mcf->sh->hooks.lru)
        || q == ngx_queue_last(&mcf->sh->hooks.lru))
    {
        return 0;
    }

    k = ngx_queue_data(q, ngx_http_fanbase_idem_t, queue);
    ngx_http_fanbase_keys_delete_locked(mcf, &mcf->sh->hooks, k);
    mcf->sh->evictions++;

    return 1;
}


static void
ngx_http_fanbase_txn_free_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    ngx_queue_t              *q;
    ngx_http_fanbase_txn_t  **p;

    while (!ngx_queue_empty(&t->events)) {
        q = ngx_queue_head(&t->events);
        ngx_queue_remove(q);
        ngx_slab_free_locked(mcf->shpool,
                             ngx_queue_data(q, ngx_http_fanbase_event_t,
                                            queue));
    }

    ngx_http_fanbase_txn_unschedule_locked(mcf->sh, t);

    if (t->data != NULL) {
        ngx_slab_free_locked(mcf->shpool, t->data);
    }

    ngx_http_fanbase_txn_request_id_free_locked(mcf, t);

    if (t->qid != NULL) {
        *t->qid->hash_prev = t->qid->hash_next;

        if (t->qid->hash_next != NULL) {
            t->qid->hash_next->hash_prev = t->qid->hash_prev;
        }

        ngx_slab_free_locked(mcf->shpool, t->qid);
    }

    ngx_queue_remove(&t->queue);

    /* a long poll on it answers 404 now */
    mcf->sh->txn_hash[t->hash & mcf->sh->txn_hash_mask].stamp++;

    for (p = &mcf->sh->txn_hash[t->hash & mcf->sh->txn_hash_mask].head;
         *p != t;
         p = &(*p)->hash_next)
    { /* void */ }

    *p = t->hash_next;

    mcf->sh->txn_status[t->status]--;
    ngx_slab_free_locked(mcf->shpool, t);

    mcf->sh->txn_count--;
}


/*
 * Restoring from the state file (ngx_http_fanbase_state.c checks every
 * field first): the transaction in *s, into *tp; then each of its events,
 * oldest first; then its end.  NGX_DECLINED: the id is taken; NGX_ERROR:
 * no room.
 */

ngx_int_t
ngx_http_fanbase_txn_restore_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_saved_t *s, ngx_http_fanbase_txn_t **tp)
{
    uint32_t                 hash;
    ngx_str_t                payload, queue_id, request_id;
    ngx_http_fanbase_txn_t  *t;

    payload = s->payload;
    queue_id = s->queue_id;
    request_id = s->request_id;

    if (fanbase_status_terminal(s->status)) {
        /* an ended transaction keeps none: its events tell the rest */
        ngx_str_null(&payload);
        ngx_str_null(&queue_id);
        ngx_str_null(&request_id);

    } else if (queue_id.len) {
        /* delivered: the queue id takes the payload's place */
        payload = queue_id;
    }

    if (ngx_http_fanbase_txn_find_locked(mcf->sh, s->scope, s->id.data,
                                         s->id.len)
        != NULL)
    {
        return NGX_DECLINED;
    }

    hash = ngx_http_fanbase_id_hash(s->scope, s->id.data, s->id.len);

    t = ngx_http_fanbase_txn_insert_locked(mcf, s->scope, s->id.data, hash,
                                           &payload, &request_id, 0);
    if (t == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(t->target, s->target, NGX_HTTP_FANBASE_TARGET_LEN);
    ngx_http_fanbase_txn_set_status(mcf->sh, t, s->status);
    t->created = s->created;
    t->updated = s->updated;
    t->deliver_by = s->deliver_by;
    t->track_by = s->track_by;
    t->version = s->version;
    t->attempts = s->attempts;
    t->max_events = (u_char) ngx_min(s->max_events, 255);
    t->sent = s->sent ? 1 : 0;

    if (queue_id.len) {
        t->queue_id_len = (u_char) queue_id.len;
        t->payload_len = 0;

        /* without its index a webhook naming it by queue id would miss it */

        if (ngx_http_fanbase_txn_index_locked(mcf, t, t->data, queue_id.len)
            != NGX_OK)
        {
            ngx_http_fanbase_txn_free_locked(mcf, t);
            return NGX_ERROR;
        }
    }

    *tp = t;

    if (t->data == NULL) {
        /* a webhook's record: nothing to deliver, nothing to track */
        ngx_http_fanbase_txn_unschedule_locked(mcf->sh, t);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_fanbase_txn_restore_event_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, ngx_str_t *event)
{
    return ngx_http_fanbase_txn_add_event_locked(mcf, t, event);
}


void
ngx_http_fanbase_txn_restore_end_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    if (fanbase_status_terminal(t->status)) {
        ngx_http_fanbase_txn_terminal_locked(mcf, t);

    } else if (t->data == NULL) {
        ngx_http_fanbase_txn_unowned_locked(mcf, t);
    }
}


ngx_http_fanbase_txn_t *
ngx_http_fanbase_txn_find_locked(ngx_http_fanbase_shctx_t *sh, uint64_t scope,
    u_char *id, size_t len)
{
    if (len != NGX_HTTP_FANBASE_TXN_ID_LEN) {
        return NULL;
    }

    return ngx_http_fanbase_txn_lookup(sh, scope, id,
                                  ngx_http_fanbase_id_hash(scope, id, len));
}


/*
 * "id" is NGX_HTTP_FANBASE_TXN_ID_LEN long, "hash" that of the scope and
 * the id
 */

static ngx_http_fanbase_txn_t *
ngx_http_fanbase_txn_lookup(ngx_http_fanbase_shctx_t *sh, uint64_t scope,
    u_char *id, uint32_t hash)
{
    ngx_http_fanbase_txn_t  *t;

    for (t = sh->txn_hash[hash & sh->txn_hash_mask].head;
         t != NULL;
         t = t->hash_next)
    {
        if (t->hash == hash
            && t->scope == scope
            && ngx_memcmp(id, t->id, NGX_HTTP_FANBASE_TXN_ID_LEN) == 0)
        {
            return t;
        }
    }

    return NULL;
}


static void
ngx_http_fanbase_txn_prefetch_heads(void **b1, void **b2, void **b3)
{
    if (*b1 != NULL) {
        ngx_http_fanbase_prefetch(*b1);
    }

    if (*b2 != NULL) {
        ngx_http_fanbase_prefetch(*b2);
    }

    if (*b3 != NULL) {
        ngx_http_fanbase_prefetch(*b3);
    }
}
