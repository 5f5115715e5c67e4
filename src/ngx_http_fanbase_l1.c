
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The zone as a cache in front of a shared engine (fanbase_redis): the
 * transactions a host read from Redis, with the change stamp of their
 * bucket when they were read.  Every change on any host is published, and
 * every worker moves the stamp of the changed transaction's bucket
 * (ngx_http_fanbase_store_redis.c); an entry whose stamp moved since it
 * was read is not answered again.  The stamp is read before Redis is
 * asked, so a change that lands between the read and the entry makes the
 * entry stale at once.  Entries are the first thing the zone gives up.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_l1.h"


typedef struct {
    ngx_rbtree_node_t             node;        /* key: hash of scope, id */
    ngx_queue_t                   queue;       /* sh->l1_lru */
    uint64_t                      scope;
    uint64_t                      updated;
    ngx_atomic_uint_t             stamp;
    uint32_t                      version;
    uint32_t                      len;         /* of the JSON */
    u_char                        status;
    u_char                        id_len;
    u_char                        data[1];     /* id, JSON */
} ngx_http_fanbase_l1_t;


static ngx_http_fanbase_l1_t *ngx_http_fanbase_l1_find_locked(
    ngx_http_fanbase_shctx_t *sh, uint32_t hash);
static ngx_uint_t ngx_http_fanbase_l1_is(ngx_http_fanbase_l1_t *e,
    uint64_t scope, ngx_str_t *id);
static void ngx_http_fanbase_l1_delete_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_l1_t *e);


ngx_int_t
ngx_http_fanbase_l1_init_zone(ngx_http_fanbase_main_conf_t *mcf, size_t size,
    ngx_log_t *log)
{
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;

    ngx_rbtree_init(&sh->l1, &sh->l1_sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&sh->l1_lru);
    sh->l1_count = 0;

    return NGX_OK;
}


/* the least recently read entry goes */

ngx_uint_t
ngx_http_fanbase_l1_evict(ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_queue_t  *q;

    if (ngx_queue_empty(&mcf->sh->l1_lru)) {
        return 0;
    }

    q = ngx_queue_last(&mcf->sh->l1_lru);

    ngx_http_fanbase_l1_delete_locked(mcf,
                         ngx_queue_data(q, ngx_http_fanbase_l1_t, queue));

    return 1;
}


/* the stamp to read before asking the engine, for ngx_http_fanbase_l1_put */

ngx_atomic_uint_t
ngx_http_fanbase_l1_stamp(ngx_http_fanbase_main_conf_t *mcf, uint64_t scope,
    ngx_str_t *id)
{
    uint32_t  hash;

    hash = ngx_http_fanbase_id_hash(scope, id->data, id->len);

    return mcf->sh->txn_hash[hash & mcf->sh->txn_hash_mask].stamp;
}


/*
 * NGX_OK: the transaction as last read, its JSON copied into pool (none
 * without one); NGX_DECLINED: none, or its bucket changed since ("stale":
 * answered all the same, the engine cannot be asked)
 */

ngx_int_t
ngx_http_fanbase_l1_get(ngx_http_fanbase_main_conf_t *mcf, uint64_t scope,
    ngx_str_t *id, ngx_uint_t stale, ngx_pool_t *pool,
    ngx_http_fanbase_txn_view_t *v)
{
    u_char                    *p;
    uint32_t                   hash;
    ngx_atomic_uint_t          stamp;
    ngx_http_fanbase_l1_t     *e;
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;
    hash = ngx_http_fanbase_id_hash(scope, id->data, id->len);
    stamp = sh->txn_hash[hash & sh->txn_hash_mask].stamp;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    e = ngx_http_fanbase_l1_find_locked(sh, hash);

    if (e == NULL || !ngx_http_fanbase_l1_is(e, scope, id)
        || (e->stamp != stamp && !stale))
    {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return NGX_DECLINED;
    }

    ngx_str_null(&v->json);

    if (pool != NULL) {
        p = ngx_pnalloc(pool, e->len);
        if (p == NULL) {
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            return NGX_ERROR;
        }

        v->json.data = p;
        v->json.len = e->len;
        ngx_memcpy(p, e->data + e->id_len, e->len);
    }

    v->version = e->version;
    v->updated = e->updated;
    v->status = e->status;
    v->stale = stale;

    ngx_queue_remove(&e->queue);
    ngx_queue_insert_head(&sh->l1_lru, &e->queue);

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return NGX_OK;
}


/* what the engine answered, as of "stamp"; no room: not kept */

void
ngx_http_fanbase_l1_put(ngx_http_fanbase_main_conf_t *mcf, uint64_t scope,
    ngx_str_t *id, ngx_atomic_uint_t stamp, ngx_http_fanbase_txn_view_t *v)
{
    uint32_t                   hash;
    ngx_http_fanbase_l1_t     *e;
    ngx_http_fanbase_shctx_t  *sh;

    if (id->len > 255 || v->json.len == 0) {
        return;
    }

    sh = mcf->sh;
    hash = ngx_http_fanbase_id_hash(scope, id->data, id->len);

    /* it changed while Redis was asked: the next read asks again */

    if (sh->txn_hash[hash & sh->txn_hash_mask].stamp != stamp) {
        return;
    }

    ngx_shmtx_lock(&mcf->shpool->mutex);

    e = ngx_http_fanbase_l1_find_locked(sh, hash);

    if (e != NULL) {
        ngx_http_fanbase_l1_delete_locked(mcf, e);
    }

    e = ngx_http_fanbase_zone_alloc_locked(mcf,
                                   offsetof(ngx_http_fanbase_l1_t, data)
                                   + id->len + v->json.len);
    if (e == NULL) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return;
    }

    e->node.key = hash;
    e->scope = scope;
    e->updated = v->updated;
    e->stamp = stamp;
    e->version = v->version;
    e->len = (uint32_t) v->json.len;
    e->status = (u_char) v->status;
    e->id_len = (u_char) id->len;
    ngx_memcpy(ngx_cpymem(e->data, id->data, id->len), v->json.data,
               v->json.len);

    ngx_rbtree_insert(&sh->l1, &e->node);
    ngx_queue_insert_head(&sh->l1_lru, &e->queue);
    sh->l1_count++;

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


/*
 * One entry per hash: the entry of another transaction with the same hash
 * makes way for the new one (a cache may forget), so that a lookup is a
 * plain walk down the tree.
 */

static ngx_http_fanbase_l1_t *
ngx_http_fanbase_l1_find_locked(ngx_http_fanbase_shctx_t *sh, uint32_t hash)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = sh->l1.root;
    sentinel = sh->l1.sentinel;

    while (node != sentinel) {

        if (hash == node->key) {
            return (ngx_http_fanbase_l1_t *) node;
        }

        node = (hash < node->key) ? node->left : node->right;
    }

    return NULL;
}


static ngx_uint_t
ngx_http_fanbase_l1_is(ngx_http_fanbase_l1_t *e, uint64_t scope,
    ngx_str_t *id)
{
    return e->scope == scope && e->id_len == id->len
           && ngx_memcmp(e->data, id->data, id->len) == 0;
}


static void
ngx_http_fanbase_l1_delete_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_l1_t *e)
{
    ngx_rbtree_delete(&mcf->sh->l1, &e->node);
    ngx_queue_remove(&e->queue);
    mcf->sh->l1_count--;

    ngx_slab_free_locked(mcf->shpool, e);
}
