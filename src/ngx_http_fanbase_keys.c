
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Claimed keys that expire, in the shared zone: Idempotency-Keys (with
 * the digest of the body and the transaction they made) and webhook
 * message ids.  Each table is a hash of chained buckets (laid out by the
 * zone) and an LRU of its claims, oldest first.  A key belongs to the
 * scope of the credential set that claimed it and is found by (scope,
 * key): the hash covers both.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_keys.h"


#define NGX_HTTP_FANBASE_KEY_CHUNK   (128 + 1)   /* the 256-byte class */


void
ngx_http_fanbase_keys_init(ngx_http_fanbase_keys_t *keys,
    ngx_http_fanbase_idem_t **hash, ngx_uint_t n)
{
    keys->hash = hash;
    keys->mask = n - 1;
    ngx_memzero(hash, n * sizeof(ngx_http_fanbase_idem_t *));
    ngx_queue_init(&keys->lru);
}


ngx_http_fanbase_idem_t *
ngx_http_fanbase_keys_insert_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, uint64_t scope, ngx_str_t *key,
    uint32_t hash, u_char *digest, u_char *txn_id, uint64_t expires)
{
    ngx_http_fanbase_idem_t  *k;

    /*
     * a 256-byte chunk, as transactions and most events take: in a full
     * zone, evicting those makes room for a claim
     */

    k = ngx_http_fanbase_zone_alloc_locked(mcf,
                              ngx_max(offsetof(ngx_http_fanbase_idem_t, key)
                                      + key->len,
                                      NGX_HTTP_FANBASE_KEY_CHUNK));
    if (k == NULL) {
        return NULL;
    }

    k->expires = expires;
    k->scope = scope;
    ngx_memcpy(k->digest, digest, 16);
    ngx_memcpy(k->txn_id, txn_id, NGX_HTTP_FANBASE_TXN_ID_LEN);
    k->len = (u_char) key->len;
    ngx_memcpy(k->key, key->data, key->len);

    k->hash = hash;
    k->hash_next = keys->hash[k->hash & keys->mask];
    keys->hash[k->hash & keys->mask] = k;
    ngx_queue_insert_tail(&keys->lru, &k->queue);
    keys->count++;

    return k;
}


/*
 * A claim of "scope" that has not expired; an expired one found is
 * dropped.  "hash" is that of the scope and the key.
 */

ngx_http_fanbase_idem_t *
ngx_http_fanbase_keys_find_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, uint64_t scope, ngx_str_t *key,
    uint32_t hash, uint64_t now)
{
    ngx_http_fanbase_idem_t  *k;

    for (k = keys->hash[hash & keys->mask]; k != NULL; k = k->hash_next) {

        if (k->hash != hash
            || k->scope != scope
            || ngx_memn2cmp(key->data, k->key, key->len, k->len) != 0)
        {
            continue;
        }

        /* windows differ per location: the LRU is not by expiry */

        if (k->expires <= now) {
            ngx_http_fanbase_keys_delete_locked(mcf, keys, k);
            return NULL;
        }

        return k;
    }

    return NULL;
}


void
ngx_http_fanbase_keys_delete_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, ngx_http_fanbase_idem_t *k)
{
    ngx_http_fanbase_idem_t  **p;

    for (p = &keys->hash[k->hash & keys->mask]; *p != k; p = &(*p)->hash_next)
    { /* void */ }

    *p = k->hash_next;

    ngx_queue_remove(&k->queue);
    ngx_slab_free_locked(mcf->shpool, k);
    keys->count--;
}


/* up to "max" of the oldest claims, if they expired */

void
ngx_http_fanbase_keys_expire(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, uint64_t now, ngx_uint_t max)
{
    ngx_queue_t              *q;
    ngx_http_fanbase_idem_t  *k;

    while (max-- && !ngx_queue_empty(&keys->lru)) {
        q = ngx_queue_head(&keys->lru);
        k = ngx_queue_data(q, ngx_http_fanbase_idem_t, queue);

        if (k->expires > now) {
            break;
        }

        ngx_http_fanbase_keys_delete_locked(mcf, keys, k);
    }
}


/*
 * A claimed key from the state file: NGX_DECLINED, it is taken already;
 * NGX_ERROR: no room
 */

ngx_int_t
ngx_http_fanbase_keys_restore_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, uint64_t scope, ngx_str_t *key,
    u_char *digest, u_char *txn_id, uint64_t expires, uint64_t now)
{
    uint32_t  hash;

    hash = ngx_http_fanbase_id_hash(scope, key->data, key->len);

    if (ngx_http_fanbase_keys_find_locked(mcf, keys, scope, key, hash, now)
        != NULL)
    {
        return NGX_DECLINED;
    }

    return ngx_http_fanbase_keys_insert_locked(mcf, keys, scope, key, hash,
                                               digest, txn_id, expires)
           ? NGX_OK : NGX_ERROR;
}
