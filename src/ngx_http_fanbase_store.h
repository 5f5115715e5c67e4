
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_STORE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_STORE_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_txn.h"


/*
 * The storage interface: what the handlers and the background work do to
 * the records that several hosts must agree on (asynchronous transactions
 * with their Idempotency-Keys, webhook message ids and queue ids, and the
 * notices of outbound webhooks).  mcf->store is the engine; the embedded
 * one (ngx_http_fanbase_store.c) keeps them in the shared memory zone.
 * docs/architecture.md says what a second engine must provide.
 *
 * An operation with an op answers at once, or returns NGX_AGAIN and later
 * sets op->rc and calls op->done(op) from the event loop, never from
 * inside the call.  The caller sets op->done, op->data and op->log before
 * the call, and keeps the op and what it passed (the record, the job, the
 * pool) alive until done, or until it called cancel(op).  An operation
 * without an op (the ends of claims, a message id given back) answers
 * nothing: the engine copies what it needs before it returns.
 */

struct ngx_http_fanbase_store_s {
    const char                   *name;

    /*
     * a new transaction, and its Idempotency-Key claimed with it:
     * NGX_OK; NGX_DONE: a repeat, nt->id is the first one's; NGX_DECLINED:
     * the key was used with another body; NGX_BUSY: no room
     */
    ngx_int_t  (*txn_create)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_http_fanbase_txn_new_t *nt,
                   ngx_http_fanbase_store_op_t *op);

    /* a transaction, its JSON in pool (none without): NGX_DECLINED: none */
    ngx_int_t  (*txn_get)(ngx_http_fanbase_main_conf_t *mcf, uint64_t scope,
                   ngx_str_t *id, ngx_pool_t *pool,
                   ngx_http_fanbase_txn_view_t *v,
                   ngx_http_fanbase_store_op_t *op);

    /*
     * NGX_OK: cancelled; NGX_DECLINED: none; NGX_BUSY: its delivery has
     * begun; NGX_ABORT: it has ended
     */
    ngx_int_t  (*txn_cancel)(ngx_http_fanbase_main_conf_t *mcf,
                   uint64_t scope, ngx_str_t *id,
                   ngx_http_fanbase_store_op_t *op);

    /*
     * a webhook's status update, its message id claimed with it: NGX_OK;
     * NGX_DONE: a duplicate; NGX_DECLINED: stale; NGX_ABORT: no such
     * transaction (the id is kept: give it back if nothing applies);
     * NGX_BUSY: no room
     */
    ngx_int_t  (*txn_hook)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_http_fanbase_hook_t *hk,
                   ngx_http_fanbase_store_op_t *op);
    void       (*txn_hook_release)(ngx_http_fanbase_main_conf_t *mcf,
                   uint64_t scope, ngx_str_t *msg_id);

    /*
     * the next due transaction, claimed into job for lease ms: NGX_OK;
     * NGX_DECLINED: none is due, op->next: the ms until one may be (0:
     * look again at once)
     */
    ngx_int_t  (*txn_claim)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_http_fanbase_job_t *job, ngx_msec_t lease,
                   ngx_http_fanbase_store_op_t *op);

    /*
     * a POST of the claimed job may leave from now on: NGX_OK; NGX_DECLINED:
     * the claim was taken over, nothing may be sent
     */
    ngx_int_t  (*txn_sending)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_http_fanbase_job_t *job,
                   ngx_http_fanbase_store_op_t *op);

    /* the end of a claim: the transaction's new state */
    void       (*txn_finish)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_http_fanbase_job_t *job,
                   ngx_http_fanbase_txn_update_t *u, ngx_log_t *log);

    /* the next due notice, claimed: as txn_claim, *job allocated */
    ngx_int_t  (*notice_claim)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_msec_t lease, ngx_http_fanbase_notice_job_t **job,
                   ngx_http_fanbase_store_op_t *op);
    void       (*notice_finish)(ngx_http_fanbase_main_conf_t *mcf,
                   ngx_http_fanbase_notice_job_t *job, ngx_uint_t drop,
                   ngx_msec_t delay, ngx_uint_t failed);

    /* done will not be called */
    void       (*cancel)(ngx_http_fanbase_store_op_t *op);
};


extern const ngx_http_fanbase_store_t  ngx_http_fanbase_store_zone;


ngx_int_t ngx_http_fanbase_store_suspend(ngx_http_request_t *r,
    ngx_http_fanbase_store_op_t *op);
void ngx_http_fanbase_store_resume(ngx_http_request_t *r, ngx_int_t rc);


#endif /* _NGX_HTTP_FANBASE_STORE_H_INCLUDED_ */
