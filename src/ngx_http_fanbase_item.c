
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Queue items in the shared zone: Fanbase's answers about the queue items
 * of synchronous submissions and of status reads (fanbase_submit,
 * fanbase_status), kept so that status is answered from memory.  A
 * red-black tree keyed by a hash of the scope of the credential set and
 * the id (collisions resolved by the id and the scope themselves) and two
 * LRU queues.  An entry is
 * found only in the scope that fetched it.  Terminal entries, probes
 * (ids being looked up at Fanbase, or known not to exist there) and
 * entries that only a webhook or a read-through made may be evicted, least
 * recently used first: they are a cache of what Fanbase holds.  Entries of
 * submissions made through the edge that are not terminal never are: a
 * zone full of them refuses new work.  Everything is copied out
 * under the lock; JSON is rendered by the callers after unlocking.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_item.h"


#define NGX_HTTP_FANBASE_LEASED      0x01
#define NGX_HTTP_FANBASE_NOT_FOUND   0x02
#define NGX_HTTP_FANBASE_HAS_ICODE   0x04
#define NGX_HTTP_FANBASE_HAS_CREATED 0x08
#define NGX_HTTP_FANBASE_HAS_IMSG    0x10
#define NGX_HTTP_FANBASE_HAS_PDATE   0x20
#define NGX_HTTP_FANBASE_HAS_PMSG    0x40
#define NGX_HTTP_FANBASE_OWNED       0x80     /* a submission's, through us */

/* whether the strings need escaping: looked at by the first read */
#define NGX_HTTP_FANBASE_PLAIN_UNKNOWN  0
#define NGX_HTTP_FANBASE_PLAIN_YES      1
#define NGX_HTTP_FANBASE_PLAIN_NO       2

#define NGX_HTTP_FANBASE_DATE_MAX    64
#define NGX_HTTP_FANBASE_TEXT_MAX    4096
#define NGX_HTTP_FANBASE_EVICT_SCAN  16

/*
 * a reservation covers a pending entry with typical Fanbase strings (a
 * UUID, a date, a short iMsg) in one 256-byte slab chunk
 */
#define NGX_HTTP_FANBASE_RESERVE     256

/*
 * reservations a worker keeps for its next submissions instead of giving
 * them back: one for every NGX_HTTP_FANBASE_SPARE_ZONE bytes of the zone
 * (1/128 of it: 32 in a 1m zone), at most NGX_HTTP_FANBASE_SPARES (16 KB)
 */
#define NGX_HTTP_FANBASE_SPARES      64
#define NGX_HTTP_FANBASE_SPARE_ZONE  (128 * NGX_HTTP_FANBASE_RESERVE)

#define ngx_http_fanbase_before(a, b)  ((ngx_msec_int_t) ((a) - (b)) < 0)


typedef struct {
    ngx_rbtree_node_t             node;
    ngx_queue_t                   queue;
    ngx_msec_t                    fetched;
    ngx_msec_t                    lease;
    uint64_t                      scope;
    int64_t                       icode;
    uint32_t                      size;
    uint32_t                      msg_len;
    uint16_t                      imsg_len;
    uint16_t                      pmsg_len;
    u_char                        id_len;
    u_char                        created_len;
    u_char                        pdate_len;
    u_char                        status;
    u_char                        flags;
    u_char                        plain;     /* NGX_HTTP_FANBASE_PLAIN_* */
    u_char                        data[1];
} ngx_http_fanbase_item_t;


static void ngx_http_fanbase_item_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_fanbase_item_cmp(ngx_str_t *id, uint64_t scope,
    ngx_http_fanbase_item_t *e);
static ngx_http_fanbase_item_t *ngx_http_fanbase_item_find(
    ngx_http_fanbase_shctx_t *sh, uint64_t scope, ngx_str_t *id,
    uint32_t hash);
static ngx_http_fanbase_item_t *ngx_http_fanbase_item_probe(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *id,
    uint32_t hash);
static void ngx_http_fanbase_item_fill(ngx_http_fanbase_item_t *e,
    fanbase_item_t *item, ngx_uint_t keep_msg);
static size_t ngx_http_fanbase_item_cut(fanbase_str_t *s, size_t max);
static u_char *ngx_http_fanbase_item_put(u_char *p, const u_char *s,
    size_t len);
static ngx_queue_t *ngx_http_fanbase_item_queue(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_item_t *e);
static void ngx_http_fanbase_item_enqueue(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_item_t *e);
static ngx_uint_t ngx_http_fanbase_item_same(ngx_http_fanbase_item_t *e,
    fanbase_item_t *item, ngx_uint_t keep_msg);
static ngx_int_t ngx_http_fanbase_item_copy(ngx_http_fanbase_item_t *e,
    ngx_uint_t want_msg, ngx_pool_t *pool, fanbase_item_t *item);
static void ngx_http_fanbase_item_delete(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_item_t *e);
static size_t ngx_http_fanbase_item_entry_size(fanbase_item_t *item,
    ngx_uint_t keep_msg);
static ngx_uint_t ngx_http_fanbase_item_spare_keep(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_item_t *r);
static void ngx_http_fanbase_item_give_back_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_item_t *r);


/*
 * This worker's spare reservations: a submission takes one without the
 * zone's lock, and the 201 that did not need it puts it back under the
 * lock it holds anyway, so that a submission takes the lock once, not
 * twice, and the slab allocator not at all (docs/performance.md, "What
 * the submission's time is spent on").  As many as a worker has
 * submissions in flight at a turn of its event loop, up to the limits
 * above.  Given back at the worker's exit; a worker that crashes leaves
 * them in the zone.
 */

static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_item_spare_mcf;
static void                          *ngx_http_fanbase_item_spare
                                          [NGX_HTTP_FANBASE_SPARES];
static ngx_uint_t                     ngx_http_fanbase_item_spares;


/* the queue items' part of a new zone */

ngx_int_t
ngx_http_fanbase_item_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel,
                    ngx_http_fanbase_item_rbtree_insert_value);
    ngx_queue_init(&sh->evictable);
    ngx_queue_init(&sh->active);
    sh->entries = 0;
    sh->evictions = 0;

    return NGX_OK;
}


/*
 * NGX_OK: *item holds a terminal or fresh answer;
 * NGX_DECLINED: Fanbase said recently that the id does not exist;
 * NGX_AGAIN: another request is reading it through, wait;
 * NGX_BUSY: the caller holds the lease and must read it through; *item
 *     holds the stale answer, if there is one (item->id.data != NULL).
 *
 * An answer that arrived while the caller waited is fresh for it, whatever
 * the refresh interval: concurrent requests share one read-through.
 */

ngx_int_t
ngx_http_fanbase_item_lookup(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_http_fanbase_lookup_t *lk,
    ngx_pool_t *pool, fanbase_item_t *item)
{
    uint32_t                   hash;
    ngx_int_t                  rc;
    ngx_msec_t                 now;
    ngx_uint_t                 fresh;
    ngx_http_fanbase_item_t  *e;

    ngx_memzero(item, sizeof(fanbase_item_t));

    hash = ngx_http_fanbase_id_hash(scope, id->data, id->len);
    now = ngx_current_msec;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    e = ngx_http_fanbase_item_find(mcf->sh, scope, id, hash);

    if (e == NULL) {
        e = ngx_http_fanbase_item_probe(mcf, scope, id, hash);

        if (e != NULL) {
            e->flags |= NGX_HTTP_FANBASE_LEASED;
            e->lease = now + lk->lease;
        }

        ngx_shmtx_unlock(&mcf->shpool->mutex);

        return NGX_BUSY;
    }

    ngx_queue_remove(&e->queue);
    ngx_http_fanbase_item_enqueue(mcf->sh, e);

    fresh = ngx_http_fanbase_before(now, e->fetched + lk->refresh)
            || (lk->waiting && e->fetched != lk->seen);

    if (e->status != FANBASE_STATUS_UNKNOWN
        && (fanbase_status_terminal(e->status) || fresh))
    {
        rc = ngx_http_fanbase_item_copy(e, lk->want_msg, pool, item);
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return rc;
    }

    if ((e->flags & NGX_HTTP_FANBASE_NOT_FOUND) && fresh) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_DECLINED;
    }

    if ((e->flags & NGX_HTTP_FANBASE_LEASED)
        && ngx_http_fanbase_before(now, e->lease))
    {
        if (!lk->waiting) {
            lk->waiting = 1;
            lk->seen = e->fetched;
        }

        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_AGAIN;
    }

    e->flags |= NGX_HTTP_FANBASE_LEASED;
    e->lease = now + lk->lease;

    rc = NGX_BUSY;

    if (e->status != FANBASE_STATUS_UNKNOWN
        && ngx_http_fanbase_item_copy(e, lk->want_msg, pool, item) != NGX_OK)
    {
        rc = NGX_ERROR;
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return rc;
}


/*
 * "owned": the answer to a submission made through the edge, whose status
 * is kept until it ends; other entries (webhooks, read-throughs) are a
 * cache that gives way when the zone is full
 */

ngx_int_t
ngx_http_fanbase_item_update(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, fanbase_item_t *item, ngx_uint_t keep_msg,
    ngx_uint_t owned, void *reserved, ngx_log_t *log)
{
    ngx_str_t  id;

    id.data = (u_char *) item->id.data;
    id.len = item->id.len;

    if (ngx_http_fanbase_id_valid(&id) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "fanbase: Fanbase answered an id that is not kept: "
                      "\"%*s\"", ngx_min(id.len, 64), id.data);

        if (reserved != NULL) {
            ngx_http_fanbase_item_unreserve(mcf, reserved);
        }

        return NGX_DECLINED;
    }

    return ngx_http_fanbase_item_store(mcf, scope, item, keep_msg, owned,
                                       reserved, log);
}


/* the same, for an id ngx_http_fanbase_id_valid() accepted */

ngx_int_t
ngx_http_fanbase_item_store(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, fanbase_item_t *item, ngx_uint_t keep_msg,
    ngx_uint_t owned, void *reserved, ngx_log_t *log)
{
    size_t                     size;
    uint32_t                   hash;
    ngx_str_t                  id;
    ngx_uint_t                 stale;
    ngx_http_fanbase_item_t  *e, *n, *r;

    id.data = (u_char *) item->id.data;
    id.len = item->id.len;

    size = ngx_http_fanbase_item_entry_size(item, keep_msg);
    hash = ngx_http_fanbase_id_hash(scope, id.data, id.len);
    r = reserved;
    stale = 0;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    e = ngx_http_fanbase_item_find(mcf->sh, scope, &id, hash);

    if (e != NULL) {

        /*
         * Words written only when they change: an entry that two workers
         * write in turn moves between their caches each time (the same
         * answer recorded again is the common case of a status poll)
         */

        if (e->flags & NGX_HTTP_FANBASE_LEASED) {
            e->flags &= ~NGX_HTTP_FANBASE_LEASED;
        }

        if (e->fetched != ngx_current_msec) {
            e->fetched = ngx_current_msec;
        }

        if (owned && !(e->flags & NGX_HTTP_FANBASE_OWNED)) {
            e->flags |= NGX_HTTP_FANBASE_OWNED;
        }

        /* a terminal transaction never changes; statuses never go back */

        if (e->status != FANBASE_STATUS_UNKNOWN
            && (fanbase_status_terminal(e->status)
                || item->status < e->status))
        {
            stale = 1;
            goto done;
        }

        /* the same answer again, and the first in its queue: as it is */

        if (e->size >= size
            && ngx_queue_head(ngx_http_fanbase_item_queue(mcf->sh, e))
               == &e->queue
            && ngx_http_fanbase_item_same(e, item, keep_msg))
        {
            goto done;
        }

        /* out of the LRU while it may be replaced: it cannot be evicted */
        ngx_queue_remove(&e->queue);

        if (e->size >= size) {
            ngx_http_fanbase_item_fill(e, item, keep_msg);
            ngx_http_fanbase_item_enqueue(mcf->sh, e);
            goto done;
        }
    }

    /*
     * a right-sized entry if there is room for it (evicting if need be),
     * else the reservation: it is only the guarantee
     */

    n = ngx_http_fanbase_zone_alloc_locked(mcf, size);

    if (n != NULL) {
        n->size = size;

    } else if (r != NULL && r->size >= size) {
        n = r;
        r = NULL;

    } else {
        if (e != NULL) {
            ngx_http_fanbase_item_enqueue(mcf->sh, e);
        }

        if (r != NULL) {
            ngx_http_fanbase_item_give_back_locked(mcf, r);
        }

        ngx_shmtx_unlock(&mcf->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: zone \"%V\" is full, transaction \"%V\" "
                      "is not kept", &mcf->shm_zone->shm.name, &id);

        return NGX_DECLINED;
    }

    n->node.key = hash;
    n->scope = scope;
    n->fetched = ngx_current_msec;
    n->flags = (owned || (e != NULL && (e->flags & NGX_HTTP_FANBASE_OWNED)))
               ? NGX_HTTP_FANBASE_OWNED : 0;
    ngx_http_fanbase_item_fill(n, item, keep_msg);

    if (e != NULL) {
        ngx_rbtree_delete(&mcf->sh->rbtree, &e->node);
        ngx_slab_free_locked(mcf->shpool, e);
        mcf->sh->entries--;
    }

    ngx_rbtree_insert(&mcf->sh->rbtree, &n->node);
    ngx_http_fanbase_item_enqueue(mcf->sh, n);
    mcf->sh->entries++;

done:

    if (r != NULL) {
        ngx_http_fanbase_item_give_back_locked(mcf, r);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    /* NGX_DONE: kept as it was, the update is stale */

    return stale ? NGX_DONE : NGX_OK;
}


/* the zone holds an answer for this id in "scope" (not a mere probe) */

ngx_uint_t
ngx_http_fanbase_item_known(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id)
{
    ngx_uint_t                 known;
    ngx_http_fanbase_item_t  *e;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    e = ngx_http_fanbase_item_find(mcf->sh, scope, id,
                                    ngx_http_fanbase_id_hash(scope,
                                                      id->data, id->len));
    known = (e != NULL && e->status != FANBASE_STATUS_UNKNOWN);

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return known;
}


void
ngx_http_fanbase_item_release(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_uint_t not_found)
{
    ngx_http_fanbase_item_t  *e;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    e = ngx_http_fanbase_item_find(mcf->sh, scope, id,
                                    ngx_http_fanbase_id_hash(scope,
                                                      id->data, id->len));

    if (e != NULL) {
        e->flags &= ~NGX_HTTP_FANBASE_LEASED;

        if (not_found && e->status == FANBASE_STATUS_UNKNOWN) {
            e->flags |= NGX_HTTP_FANBASE_NOT_FOUND;
            e->fetched = ngx_current_msec;
        }
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


void *
ngx_http_fanbase_item_reserve(ngx_http_fanbase_main_conf_t *mcf,
    size_t payload, ngx_log_t *log)
{
    size_t                     size;
    ngx_http_fanbase_item_t  *r;

    if (payload == 0
        && ngx_http_fanbase_item_spares
        && ngx_http_fanbase_item_spare_mcf == mcf)
    {
        return ngx_http_fanbase_item_spare[--ngx_http_fanbase_item_spares];
    }

    size = NGX_HTTP_FANBASE_RESERVE + payload;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    r = ngx_http_fanbase_zone_alloc_locked(mcf, size);
    if (r != NULL) {
        r->size = size;
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    if (r == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: zone \"%V\" is full of transactions that "
                      "are not terminal", &mcf->shm_zone->shm.name);
    }

    return r;
}


void
ngx_http_fanbase_item_unreserve(ngx_http_fanbase_main_conf_t *mcf,
    void *reserved)
{
    if (ngx_http_fanbase_item_spare_keep(mcf, reserved)) {
        return;
    }

    ngx_shmtx_lock(&mcf->shpool->mutex);
    ngx_slab_free_locked(mcf->shpool, reserved);
    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


/*
 * a reservation not used: kept as a spare if there is room (no lock is
 * needed for that), else freed (under the lock)
 */

static ngx_uint_t
ngx_http_fanbase_item_spare_keep(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_item_t *r)
{
    if (r->size != NGX_HTTP_FANBASE_RESERVE
        || ngx_http_fanbase_item_spares == NGX_HTTP_FANBASE_SPARES
        || ngx_http_fanbase_item_spares
           >= mcf->shm_zone->shm.size / NGX_HTTP_FANBASE_SPARE_ZONE)
    {
        return 0;
    }

    ngx_http_fanbase_item_spare_mcf = mcf;
    ngx_http_fanbase_item_spare[ngx_http_fanbase_item_spares++] = r;

    return 1;
}


static void
ngx_http_fanbase_item_give_back_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_item_t *r)
{
    if (!ngx_http_fanbase_item_spare_keep(mcf, r)) {
        ngx_slab_free_locked(mcf->shpool, r);
    }
}


/* the worker exits: its spare reservations go back to the zone */

void
ngx_http_fanbase_item_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_fanbase_item_spare_mcf;

    if (mcf == NULL || ngx_http_fanbase_item_spares == 0) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                   "fanbase: %ui spare reservations given back to the zone",
                   ngx_http_fanbase_item_spares);

    ngx_shmtx_lock(&mcf->shpool->mutex);

    while (ngx_http_fanbase_item_spares) {
        ngx_slab_free_locked(mcf->shpool,
                    ngx_http_fanbase_item_spare[--ngx_http_fanbase_item_spares]);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


static size_t
ngx_http_fanbase_item_entry_size(fanbase_item_t *item, ngx_uint_t keep_msg)
{
    return offsetof(ngx_http_fanbase_item_t, data)
           + item->id.len
           + ngx_http_fanbase_item_cut(&item->created,
                                        NGX_HTTP_FANBASE_DATE_MAX)
           + ngx_http_fanbase_item_cut(&item->process_date,
                                        NGX_HTTP_FANBASE_DATE_MAX)
           + ngx_http_fanbase_item_cut(&item->imsg, NGX_HTTP_FANBASE_TEXT_MAX)
           + ngx_http_fanbase_item_cut(&item->process_msg,
                                        NGX_HTTP_FANBASE_TEXT_MAX)
           + (keep_msg ? item->msg.len : 0);
}


/* the least recently used evictable item, freed: 1; none: 0 */

ngx_uint_t
ngx_http_fanbase_item_evict(ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_uint_t                 n;
    ngx_queue_t               *q;
    ngx_http_fanbase_item_t  *e;

    n = 0;

    for (q = ngx_queue_last(&mcf->sh->evictable);
         q != ngx_queue_sentinel(&mcf->sh->evictable)
         && n++ < NGX_HTTP_FANBASE_EVICT_SCAN;
         q = ngx_queue_prev(q))
    {
        e = ngx_queue_data(q, ngx_http_fanbase_item_t, queue);

        /* a probe being read through is in use */

        if ((e->flags & NGX_HTTP_FANBASE_LEASED)
            && ngx_http_fanbase_before(ngx_current_msec, e->lease))
        {
            continue;
        }

        ngx_http_fanbase_item_delete(mcf, e);
        mcf->sh->evictions++;

        return 1;
    }

    return 0;
}


static void
ngx_http_fanbase_item_delete(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_item_t *e)
{
    ngx_queue_remove(&e->queue);
    ngx_rbtree_delete(&mcf->sh->rbtree, &e->node);
    ngx_slab_free_locked(mcf->shpool, e);
    mcf->sh->entries--;
}


static void
ngx_http_fanbase_item_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_int_t                  rc;
    ngx_str_t                  id;
    ngx_rbtree_node_t        **p;
    ngx_http_fanbase_item_t  *e, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            e = (ngx_http_fanbase_item_t *) node;
            t = (ngx_http_fanbase_item_t *) temp;

            id.data = e->data;
            id.len = e->id_len;

            rc = ngx_http_fanbase_item_cmp(&id, e->scope, t);

            p = (rc < 0) ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/* the order of entries with the same hash: by id, then by scope */

static ngx_int_t
ngx_http_fanbase_item_cmp(ngx_str_t *id, uint64_t scope,
    ngx_http_fanbase_item_t *e)
{
    ngx_int_t  rc;

    rc = ngx_memn2cmp(id->data, e->data, id->len, e->id_len);

    if (rc != 0) {
        return rc;
    }

    return (scope < e->scope) ? -1 : (scope > e->scope) ? 1 : 0;
}


static ngx_http_fanbase_item_t *
ngx_http_fanbase_item_find(ngx_http_fanbase_shctx_t *sh, uint64_t scope,
    ngx_str_t *id, uint32_t hash)
{
    ngx_int_t                  rc;
    ngx_rbtree_node_t         *node, *sentinel;
    ngx_http_fanbase_item_t  *e;

    node = sh->rbtree.root;
    sentinel = sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        e = (ngx_http_fanbase_item_t *) node;

        rc = ngx_http_fanbase_item_cmp(id, scope, e);

        if (rc == 0) {
            return e;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_fanbase_item_t *
ngx_http_fanbase_item_probe(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, uint32_t hash)
{
    size_t                     size;
    ngx_http_fanbase_item_t  *e;

    size = offsetof(ngx_http_fanbase_item_t, data) + id->len;

    e = ngx_http_fanbase_zone_alloc_locked(mcf, size);
    if (e == NULL) {
        return NULL;
    }

    ngx_memzero(e, offsetof(ngx_http_fanbase_item_t, data));

    e->node.key = hash;
    e->scope = scope;
    e->size = size;
    e->id_len = (u_char) id->len;
    e->status = FANBASE_STATUS_UNKNOWN;
    ngx_memcpy(e->data, id->data, id->len);

    ngx_rbtree_insert(&mcf->sh->rbtree, &e->node);
    ngx_http_fanbase_item_enqueue(mcf->sh, e);
    mcf->sh->entries++;

    return e;
}


static void
ngx_http_fanbase_item_fill(ngx_http_fanbase_item_t *e, fanbase_item_t *item,
    ngx_uint_t keep_msg)
{
    u_char  *p;

    e->status = item->status;
    e->icode = item->icode;
    e->flags &= NGX_HTTP_FANBASE_LEASED|NGX_HTTP_FANBASE_OWNED;

    e->id_len = (u_char) item->id.len;
    e->created_len = (u_char) ngx_http_fanbase_item_cut(&item->created,
                                               NGX_HTTP_FANBASE_DATE_MAX);
    e->pdate_len = (u_char) ngx_http_fanbase_item_cut(&item->process_date,
                                               NGX_HTTP_FANBASE_DATE_MAX);
    e->imsg_len = (uint16_t) ngx_http_fanbase_item_cut(&item->imsg,
                                               NGX_HTTP_FANBASE_TEXT_MAX);
    e->pmsg_len = (uint16_t) ngx_http_fanbase_item_cut(&item->process_msg,
                                               NGX_HTTP_FANBASE_TEXT_MAX);
    e->msg_len = keep_msg ? (uint32_t) item->msg.len : 0;

    if (item->icode_set) {
        e->flags |= NGX_HTTP_FANBASE_HAS_ICODE;
    }

    if (item->created.data != NULL) {
        e->flags |= NGX_HTTP_FANBASE_HAS_CREATED;
    }

    if (item->imsg.data != NULL) {
        e->flags |= NGX_HTTP_FANBASE_HAS_IMSG;
    }

    if (item->process_date.data != NULL) {
        e->flags |= NGX_HTTP_FANBASE_HAS_PDATE;
    }

    if (item->process_msg.data != NULL) {
        e->flags |= NGX_HTTP_FANBASE_HAS_PMSG;
    }

    p = ngx_http_fanbase_item_put(e->data, item->id.data, e->id_len);
    p = ngx_http_fanbase_item_put(p, item->created.data, e->created_len);
    p = ngx_http_fanbase_item_put(p, item->process_date.data, e->pdate_len);
    p = ngx_http_fanbase_item_put(p, item->imsg.data, e->imsg_len);
    p = ngx_http_fanbase_item_put(p, item->process_msg.data, e->pmsg_len);
    (void) ngx_http_fanbase_item_put(p, item->msg.data, e->msg_len);

    e->plain = NGX_HTTP_FANBASE_PLAIN_UNKNOWN;
}


/* a text field's length in the zone: cut on a character boundary */

static size_t
ngx_http_fanbase_item_cut(fanbase_str_t *s, size_t max)
{
    return fanbase_utf8_cut(s->data, s->len, max);
}


/* absent fields are NULL with no length: memcpy() must not see them */

static u_char *
ngx_http_fanbase_item_put(u_char *p, const u_char *s, size_t len)
{
    return len ? ngx_cpymem(p, s, len) : p;
}


/* pending and owned: kept; else evictable */

static ngx_queue_t *
ngx_http_fanbase_item_queue(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_item_t *e)
{
    if ((e->status == FANBASE_STATUS_PENDING
         || e->status == FANBASE_STATUS_PROCESSING)
        && (e->flags & NGX_HTTP_FANBASE_OWNED))
    {
        return &sh->active;
    }

    return &sh->evictable;
}


static void
ngx_http_fanbase_item_enqueue(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_item_t *e)
{
    ngx_queue_insert_head(ngx_http_fanbase_item_queue(sh, e), &e->queue);
}


/* the entry holds what ngx_http_fanbase_item_fill() would write */

static ngx_uint_t
ngx_http_fanbase_item_same(ngx_http_fanbase_item_t *e, fanbase_item_t *item,
    ngx_uint_t keep_msg)
{
    u_char      *p;
    ngx_uint_t   flags;

    flags = (item->icode_set ? NGX_HTTP_FANBASE_HAS_ICODE : 0)
            | (item->created.data ? NGX_HTTP_FANBASE_HAS_CREATED : 0)
            | (item->imsg.data ? NGX_HTTP_FANBASE_HAS_IMSG : 0)
            | (item->process_date.data ? NGX_HTTP_FANBASE_HAS_PDATE : 0)
            | (item->process_msg.data ? NGX_HTTP_FANBASE_HAS_PMSG : 0);

    if (e->status != item->status
        || e->icode != item->icode
        || (ngx_uint_t) (e->flags & ~(NGX_HTTP_FANBASE_LEASED
                                      |NGX_HTTP_FANBASE_OWNED)) != flags
        || e->id_len != item->id.len
        || e->created_len != ngx_http_fanbase_item_cut(&item->created,
                                                NGX_HTTP_FANBASE_DATE_MAX)
        || e->pdate_len != ngx_http_fanbase_item_cut(&item->process_date,
                                                NGX_HTTP_FANBASE_DATE_MAX)
        || e->imsg_len != ngx_http_fanbase_item_cut(&item->imsg,
                                                NGX_HTTP_FANBASE_TEXT_MAX)
        || e->pmsg_len != ngx_http_fanbase_item_cut(&item->process_msg,
                                                NGX_HTTP_FANBASE_TEXT_MAX)
        || e->msg_len != (keep_msg ? item->msg.len : 0))
    {
        return 0;
    }

    p = e->data;

    if (ngx_memcmp(p, item->id.data, e->id_len) != 0) {
        return 0;
    }

    p += e->id_len;

    if (e->created_len && ngx_memcmp(p, item->created.data, e->created_len)) {
        return 0;
    }

    p += e->created_len;

    if (e->pdate_len
        && ngx_memcmp(p, item->process_date.data, e->pdate_len))
    {
        return 0;
    }

    p += e->pdate_len;

    if (e->imsg_len && ngx_memcmp(p, item->imsg.data, e->imsg_len)) {
        return 0;
    }

    p += e->imsg_len;

    if (e->pmsg_len && ngx_memcmp(p, item->process_msg.data, e->pmsg_len)) {
        return 0;
    }

    p += e->pmsg_len;

    return e->msg_len == 0 || ngx_memcmp(p, item->msg.data, e->msg_len) == 0;
}


static ngx_int_t
ngx_http_fanbase_item_copy(ngx_http_fanbase_item_t *e, ngx_uint_t want_msg,
    ngx_pool_t *pool, fanbase_item_t *item)
{
    u_char  *p;
    size_t   len;

    len = e->id_len + e->created_len + e->pdate_len + e->imsg_len
          + e->pmsg_len + (want_msg ? e->msg_len : 0);

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, e->data, len);

    item->status = e->status;
    item->icode = e->icode;
    item->icode_set = (e->flags & NGX_HTTP_FANBASE_HAS_ICODE) ? 1 : 0;

    /*
     * whether the strings need escaping, looked at once, by the first
     * read (under the lock), not at every answer's rendering nor by a
     * submission that no one reads back
     */

    if (e->plain == NGX_HTTP_FANBASE_PLAIN_UNKNOWN) {
        e->plain = fanbase_json_is_plain(e->data,
                                         e->id_len + e->created_len
                                         + e->pdate_len + e->imsg_len
                                         + e->pmsg_len)
                   ? NGX_HTTP_FANBASE_PLAIN_YES : NGX_HTTP_FANBASE_PLAIN_NO;
    }

    item->plain = (e->plain == NGX_HTTP_FANBASE_PLAIN_YES);

    item->id.data = p;
    item->id.len = e->id_len;
    p += e->id_len;

#define ngx_http_fanbase_copy_field(field, length, flag)                     \
    if (e->flags & flag) {                                                   \
        item->field.data = p;                                                \
        item->field.len = length;                                            \
    }                                                                        \
    p += length

    ngx_http_fanbase_copy_field(created, e->created_len,
                                NGX_HTTP_FANBASE_HAS_CREATED);
    ngx_http_fanbase_copy_field(process_date, e->pdate_len,
                                NGX_HTTP_FANBASE_HAS_PDATE);
    ngx_http_fanbase_copy_field(imsg, e->imsg_len, NGX_HTTP_FANBASE_HAS_IMSG);
    ngx_http_fanbase_copy_field(process_msg, e->pmsg_len,
                                NGX_HTTP_FANBASE_HAS_PMSG);

#undef ngx_http_fanbase_copy_field

    if (want_msg && e->msg_len) {
        item->msg.data = p;
        item->msg.len = e->msg_len;
    }

    return NGX_OK;
}
