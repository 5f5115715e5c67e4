
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Outbound notices in the shared zone: one per change of a transaction's
 * status, with the transaction as it was at that moment, waiting to be
 * sent to the site (ngx_http_fanbase_notify.c sends them).  A tree by due
 * time and a list of all of them; a worker claims the earliest due notice
 * by moving it to the end of its claim, so that no two workers send one
 * notice at once, and the claim of a worker that dies runs out.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_sched.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_notice.h"


static ngx_http_fanbase_notice_t *ngx_http_fanbase_notice_find(
    ngx_http_fanbase_shctx_t *sh, ngx_http_fanbase_notice_job_t *job);


/* the notices' part of a new zone */

ngx_int_t
ngx_http_fanbase_notice_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    ngx_http_fanbase_shctx_t  *sh;

    sh = mcf->sh;

    ngx_rbtree_init(&sh->notices, &sh->notices_sentinel,
                    ngx_rbtree_insert_timer_value);
    ngx_queue_init(&sh->notices_all);
    sh->notice_count = 0;

    return NGX_OK;
}


/* "size": room for the body and the request id after the header */

ngx_http_fanbase_notice_t *
ngx_http_fanbase_notice_alloc_locked(ngx_http_fanbase_main_conf_t *mcf,
    size_t size)
{
    return ngx_http_fanbase_zone_alloc_locked(mcf,
                              offsetof(ngx_http_fanbase_notice_t, body)
                              + size);
}


/*
 * Due now; n->body and n->len are set, and the request id (empty: none)
 * goes after the body, in the room allocated for it
 */

void
ngx_http_fanbase_notice_queue_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_t *n, ngx_str_t *id, ngx_str_t *request_id,
    uint64_t created, uint32_t attempts)
{
    n->request_id_len = (u_char) request_id->len;

    if (request_id->len) {
        ngx_memcpy(n->body + n->len, request_id->data, request_id->len);
    }

    n->created = created;
    n->attempts = attempts;
    n->claim = 0;
    n->owner = 0;
    n->id_len = (u_char) ngx_min(id->len, NGX_HTTP_FANBASE_NOTICE_ID_MAX);
    ngx_memcpy(n->id, id->data, n->id_len);

    n->due.key = ngx_current_msec;
    ngx_rbtree_insert(&mcf->sh->notices, &n->due);
    ngx_queue_insert_tail(&mcf->sh->notices_all, &n->queue);
    mcf->sh->notice_count++;

    (void) ngx_atomic_fetch_add(&mcf->sh->changes, 1);

    if (mcf->notify_sched != NULL) {
        ngx_http_fanbase_sched_kick(mcf->notify_sched);
    }
}


/* a notice from the state file; NGX_ERROR: no room */

ngx_int_t
ngx_http_fanbase_notice_restore_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_str_t *id, ngx_str_t *body, ngx_str_t *request_id, uint64_t created,
    uint32_t attempts)
{
    ngx_http_fanbase_notice_t  *n;

    n = ngx_http_fanbase_notice_alloc_locked(mcf,
                                             body->len + request_id->len);
    if (n == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(n->body, body->data, body->len);
    n->len = (uint32_t) body->len;

    ngx_http_fanbase_notice_queue_locked(mcf, n, id, request_id, created,
                                         attempts);

    return NGX_OK;
}


/* the earliest due notice, copied out and claimed until the lease ends */

ngx_http_fanbase_notice_job_t *
ngx_http_fanbase_notice_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_msec_t lease, ngx_msec_t *next)
{
    u_char                         *p;
    ngx_msec_t                      now;
    ngx_rbtree_node_t              *node, *root, *sentinel;
    ngx_http_fanbase_notice_t      *n;
    ngx_http_fanbase_shctx_t       *sh;
    ngx_http_fanbase_notice_job_t  *job;

    sh = mcf->sh;
    now = ngx_current_msec;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    root = sh->notices.root;
    sentinel = sh->notices.sentinel;

    if (root == sentinel) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        *next = NGX_TIMER_INFINITE;
        return NULL;
    }

    node = ngx_rbtree_min(root, sentinel);

    if ((ngx_msec_int_t) (node->key - now) > 0) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        *next = node->key - now;
        return NULL;
    }

    n = (ngx_http_fanbase_notice_t *) node;

    job = ngx_alloc(offsetof(ngx_http_fanbase_notice_job_t, data)
                    + n->id_len + n->len + n->request_id_len, ngx_cycle->log);
    if (job == NULL) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        *next = 1000;
        return NULL;
    }

    ngx_rbtree_delete(&sh->notices, &n->due);
    n->due.key = now + lease;
    ngx_rbtree_insert(&sh->notices, &n->due);

    n->owner = ngx_pid;
    n->claim++;

    job->claim = n->claim;
    job->attempts = n->attempts;
    job->created = n->created;
    job->http = NULL;
    job->scope = 0;
    job->local = 0;

    p = job->data;
    job->id.data = p;
    job->id.len = n->id_len;
    p = ngx_cpymem(p, n->id, n->id_len);
    job->body.data = p;
    job->body.len = n->len;
    p = ngx_cpymem(p, n->body, n->len);
    job->request_id.data = p;
    job->request_id.len = n->request_id_len;
    ngx_memcpy(p, n->body + n->len, n->request_id_len);

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return job;
}


/*
 * The end of a claim: the notice is dropped (sent, or past its horizon),
 * or due again after the delay, one attempt more if one failed; nothing,
 * if the claim was taken over meanwhile.
 */

void
ngx_http_fanbase_notice_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_job_t *job, ngx_uint_t drop, ngx_msec_t delay,
    ngx_uint_t failed)
{
    ngx_http_fanbase_notice_t  *n;
    ngx_http_fanbase_shctx_t   *sh;

    sh = mcf->sh;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    n = ngx_http_fanbase_notice_find(sh, job);

    if (n != NULL) {
        n->owner = 0;

        if (drop) {
            ngx_rbtree_delete(&sh->notices, &n->due);
            ngx_queue_remove(&n->queue);
            ngx_slab_free_locked(mcf->shpool, n);
            sh->notice_count--;

        } else {
            if (failed) {
                n->attempts++;
            }

            ngx_rbtree_delete(&sh->notices, &n->due);
            n->due.key = ngx_current_msec + delay;
            ngx_rbtree_insert(&sh->notices, &n->due);
        }

        (void) ngx_atomic_fetch_add(&sh->changes, 1);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


/* the job's notice, if it still holds the claim */

static ngx_http_fanbase_notice_t *
ngx_http_fanbase_notice_find(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_notice_job_t *job)
{
    ngx_queue_t                *q;
    ngx_http_fanbase_notice_t  *n;

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_fanbase_notice_t, queue);

        if (n->claim == job->claim && n->owner == ngx_pid
            && n->id_len == job->id.len
            && ngx_memcmp(n->id, job->id.data, job->id.len) == 0)
        {
            return n;
        }
    }

    return NULL;
}
