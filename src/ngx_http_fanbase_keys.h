
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_KEYS_H_INCLUDED_
#define _NGX_HTTP_FANBASE_KEYS_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_zone.h"


/* an Idempotency-Key claim, or a webhook message id */

struct ngx_http_fanbase_idem_s {
    ngx_http_fanbase_idem_t      *hash_next;   /* keys->hash chain */
    uint32_t                      hash;        /* of the scope and the key */
    ngx_queue_t                   queue;       /* keys->lru */
    uint64_t                      scope;       /* who claimed it */
    uint64_t                      expires;     /* ms since the epoch */
    u_char                        digest[16];
    u_char                        txn_id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    u_char                        len;
    u_char                        key[1];
};


void ngx_http_fanbase_keys_init(ngx_http_fanbase_keys_t *keys,
    ngx_http_fanbase_idem_t **hash, ngx_uint_t n);
ngx_http_fanbase_idem_t *ngx_http_fanbase_keys_insert_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_keys_t *keys,
    uint64_t scope, ngx_str_t *key, uint32_t hash, u_char *digest,
    u_char *txn_id, uint64_t expires);
ngx_http_fanbase_idem_t *ngx_http_fanbase_keys_find_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_keys_t *keys,
    uint64_t scope, ngx_str_t *key, uint32_t hash, uint64_t now);
void ngx_http_fanbase_keys_delete_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, ngx_http_fanbase_idem_t *k);
void ngx_http_fanbase_keys_expire(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, uint64_t now, ngx_uint_t max);
ngx_int_t ngx_http_fanbase_keys_restore_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_keys_t *keys,
    uint64_t scope, ngx_str_t *key, u_char *digest, u_char *txn_id,
    uint64_t expires, uint64_t now);


#endif /* _NGX_HTTP_FANBASE_KEYS_H_INCLUDED_ */
