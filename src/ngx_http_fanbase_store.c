
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The storage interface's embedded engine: the shared memory zone of one
 * host (ngx_http_fanbase_txn.c, ngx_http_fanbase_notice.c), which answers
 * every operation at once.  Built with NGX_HTTP_FANBASE_STORE_DEFER (the
 * sanitizer build of "make test" is), it answers each operation with an
 * op one turn of the event loop later, as a remote engine would, so that
 * the whole suite runs the callers' NGX_AGAIN paths.  And the two helpers
 * with which a request waits for an operation.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_journal.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_store.h"


static ngx_int_t ngx_http_fanbase_store_txn_create(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_new_t *nt,
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_txn_get(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *id,
    ngx_pool_t *pool, ngx_http_fanbase_txn_view_t *v,
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_txn_cancel(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *id,
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_txn_hook(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_hook_t *hk,
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_txn_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_job_t *job,
    ngx_msec_t lease, ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_txn_sending(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_notice_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_msec_t lease,
    ngx_http_fanbase_notice_job_t **job, ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_answer(
    ngx_http_fanbase_store_op_t *op, ngx_int_t rc);
static void ngx_http_fanbase_store_cancel(ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_cleanup(void *data);
#if (NGX_HTTP_FANBASE_STORE_DEFER)
static void ngx_http_fanbase_store_deferred(ngx_event_t *ev);
#endif


const ngx_http_fanbase_store_t  ngx_http_fanbase_store_zone = {
    "zone",
    ngx_http_fanbase_store_txn_create,
    ngx_http_fanbase_store_txn_get,
    ngx_http_fanbase_store_txn_cancel,
    ngx_http_fanbase_store_txn_hook,
    ngx_http_fanbase_txn_hook_release,
    ngx_http_fanbase_store_txn_claim,
    ngx_http_fanbase_store_txn_sending,
    ngx_http_fanbase_txn_finish,
    ngx_http_fanbase_store_notice_claim,
    ngx_http_fanbase_notice_finish,
    ngx_http_fanbase_store_cancel
};


static ngx_int_t
ngx_http_fanbase_store_txn_create(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_new_t *nt, ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t  rc;

    rc = ngx_http_fanbase_txn_create(mcf, nt, op->log);

    /* fanbase_state_sync: a new transaction is answered once on disk */

    if (rc == NGX_OK && mcf->state_sync) {
        op->store = &ngx_http_fanbase_store_zone;
        return ngx_http_fanbase_journal_wait(op, nt->seq, rc);
    }

    return ngx_http_fanbase_store_answer(op, rc);
}


static ngx_int_t
ngx_http_fanbase_store_txn_get(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_pool_t *pool,
    ngx_http_fanbase_txn_view_t *v, ngx_http_fanbase_store_op_t *op)
{
    return ngx_http_fanbase_store_answer(op,
               ngx_http_fanbase_txn_get(mcf, scope, id, pool, v));
}


static ngx_int_t
ngx_http_fanbase_store_txn_cancel(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_http_fanbase_store_op_t *op)
{
    return ngx_http_fanbase_store_answer(op,
               ngx_http_fanbase_txn_cancel(mcf, scope, id, op->log));
}


static ngx_int_t
ngx_http_fanbase_store_txn_hook(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_hook_t *hk, ngx_http_fanbase_store_op_t *op)
{
    return ngx_http_fanbase_store_answer(op,
               ngx_http_fanbase_txn_hook(mcf, hk, op->log));
}


static ngx_int_t
ngx_http_fanbase_store_txn_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_msec_t lease,
    ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t  rc;

    op->next = 0;

    rc = ngx_http_fanbase_txn_claim(mcf, job, lease, &op->next);

    return ngx_http_fanbase_store_answer(op,
                                         rc == NGX_OK ? NGX_OK : NGX_DECLINED);
}


static ngx_int_t
ngx_http_fanbase_store_txn_sending(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t  rc;

    rc = ngx_http_fanbase_txn_sending(mcf, job);

    /*
     * fanbase_state_sync: "sent" is on disk before the POST, so that a
     * crash cannot make a restart send it again
     */

    if (rc == NGX_OK && mcf->state_sync) {
        op->store = &ngx_http_fanbase_store_zone;
        rc = ngx_http_fanbase_journal_wait(op, job->seq, rc);

        /* a journal that cannot be written holds no delivery back */
        return (rc == NGX_HTTP_FANBASE_NOT_DURABLE) ? NGX_OK : rc;
    }

    return ngx_http_fanbase_store_answer(op, rc);
}


static ngx_int_t
ngx_http_fanbase_store_notice_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_msec_t lease, ngx_http_fanbase_notice_job_t **job,
    ngx_http_fanbase_store_op_t *op)
{
    op->next = 0;

    *job = ngx_http_fanbase_notice_claim(mcf, lease, &op->next);

    return ngx_http_fanbase_store_answer(op,
                                         *job ? NGX_OK : NGX_DECLINED);
}


/* the zone's answer: now, or (for the tests) one turn later */

static ngx_int_t
ngx_http_fanbase_store_answer(ngx_http_fanbase_store_op_t *op, ngx_int_t rc)
{
#if (NGX_HTTP_FANBASE_STORE_DEFER)

    op->rc = rc;
    op->pending = 1;
    op->store = &ngx_http_fanbase_store_zone;

    op->event.handler = ngx_http_fanbase_store_deferred;
    op->event.data = op;
    op->event.log = op->log;

    ngx_post_event(&op->event, &ngx_posted_events);

    return NGX_AGAIN;

#else

    return rc;

#endif
}


#if (NGX_HTTP_FANBASE_STORE_DEFER)

static void
ngx_http_fanbase_store_deferred(ngx_event_t *ev)
{
    ngx_http_fanbase_store_op_t  *op = ev->data;

    op->pending = 0;
    op->done(op);
}

#endif


static void
ngx_http_fanbase_store_cancel(ngx_http_fanbase_store_op_t *op)
{
    if (op->event.posted) {
        ngx_delete_posted_event(&op->event);
    }

    ngx_http_fanbase_journal_cancel(op);

    op->pending = 0;
}


/*
 * A request waits for its operation (which returned NGX_AGAIN): the
 * handler returns what this returns, and op->done ends the request with
 * ngx_http_fanbase_store_resume().  A request that ends first (its worker
 * leaves, say) takes its operation's answer with it.
 */

ngx_int_t
ngx_http_fanbase_store_suspend(ngx_http_request_t *r,
    ngx_http_fanbase_store_op_t *op)
{
    ngx_pool_cleanup_t  *cln;

    if (!op->cleanup) {
        cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_fanbase_store_cleanup;
        cln->data = op;
        op->cleanup = 1;
    }

    r->main->count++;

    return NGX_DONE;
}


void
ngx_http_fanbase_store_resume(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c;

    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


static void
ngx_http_fanbase_store_cleanup(void *data)
{
    ngx_http_fanbase_store_op_t  *op = data;

    if (op->pending) {
        op->store->cancel(op);
    }
}
