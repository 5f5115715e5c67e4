
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_transaction: a transaction in the downstream shape, from the
 * zone.  GET and HEAD answer it with an ETag (If-None-Match: 304), and
 * with ?wait=SECONDS hold the request until it changes; DELETE cancels a
 * transaction that is still waiting at the edge.  A long poll looks at one
 * counter in the zone on the wait timer (ngx_http_fanbase_wait.c), without
 * a lock: the change stamp of its transaction's hash bucket, and at its
 * transaction only when that stamp moved.  A change made by any worker
 * ends the wait within one tick; changes of other transactions cost the
 * waiters nothing but that look.
 */


#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_transaction.h"


#define NGX_HTTP_FANBASE_TRANSACTION_GET      0   /* with its JSON */
#define NGX_HTTP_FANBASE_TRANSACTION_LOOK     1   /* its version alone */
#define NGX_HTTP_FANBASE_TRANSACTION_CANCEL   2

/* an ETag: "VERSION-UPDATED" */
#define NGX_HTTP_FANBASE_ETAG_LEN  (NGX_INT64_LEN * 2 + 4)


/*
 * A request's way through the store: each step that asks the store sets
 * ctx->step, which takes the answer; NGX_AGAIN from a step: the request
 * waits (for the store, or for a change), and it holds one reference.
 */

typedef struct ngx_http_fanbase_transaction_ctx_s
    ngx_http_fanbase_transaction_ctx_t;

typedef ngx_int_t (*ngx_http_fanbase_transaction_step_pt)(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc);

struct ngx_http_fanbase_transaction_ctx_s {
    ngx_http_fanbase_store_op_t    op;
    ngx_http_fanbase_transaction_step_pt  step;
    ngx_http_fanbase_waiter_t      waiter;
    ngx_http_request_t            *request;
    ngx_http_fanbase_main_conf_t  *mcf;
    uint64_t                       scope;
    ngx_str_t                      id;
    ngx_http_fanbase_txn_view_t    view;
    ngx_msec_t                     deadline;
    ngx_atomic_t                  *stamp;      /* its bucket's, in the zone */
    ngx_atomic_uint_t              seen;
    uint32_t                       version;
    unsigned                       cond:1;     /* If-None-Match applies */
    unsigned                       cleanup:1;
    unsigned                       polling:1;   /* counted a waiter */
};


static ngx_int_t ngx_http_fanbase_transaction_id(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_transaction_ask(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_uint_t what,
    ngx_http_fanbase_transaction_step_pt step);
static void ngx_http_fanbase_transaction_answered(
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_transaction_cancelled(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_transaction_get(
    ngx_http_fanbase_transaction_ctx_t *ctx);
static ngx_int_t ngx_http_fanbase_transaction_looked(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_transaction_wait(
    ngx_http_fanbase_waiter_t *w);
static ngx_int_t ngx_http_fanbase_transaction_checked(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_transaction_send(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_transaction_down(ngx_http_request_t *r);
static void ngx_http_fanbase_transaction_cleanup(void *data);
static ngx_uint_t ngx_http_fanbase_transaction_etag_match(ngx_table_elt_t *h,
    ngx_str_t *etag);
static u_char *ngx_http_fanbase_transaction_uint(u_char *p, uint64_t n);
static void ngx_http_fanbase_transaction_etag(ngx_http_fanbase_txn_view_t *v,
    u_char *buf, ngx_str_t *etag);


ngx_int_t
ngx_http_fanbase_transaction_handler(ngx_http_request_t *r)
{
    ngx_int_t                            rc;
    ngx_str_t                            id;
    ngx_http_fanbase_loc_conf_t         *lcf;
    ngx_http_fanbase_transaction_ctx_t  *ctx;

    if (ngx_http_fanbase_rid_set(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE))) {
        return ngx_http_fanbase_response_not_allowed(r, "GET, HEAD, DELETE",
                                                     "transactions are GET, "
                                                     "HEAD or DELETE only");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    rc = ngx_http_fanbase_transaction_id(r, &id);

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_fanbase_response_error(r, rc, "invalid_id",
                                               "a transaction id is a UUID");
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_fanbase_variables_id(r, 0, id.data, id.len);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_transaction_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    ctx->request = r;
    ctx->mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    /* another credential set's transaction is as unknown as no one's */
    ctx->scope = lcf->scope;
    ctx->id = id;

    ctx->op.done = ngx_http_fanbase_transaction_answered;
    ctx->op.data = ctx;
    ctx->op.log = r->connection->log;

    /* the answer is ours: nginx's own If-None-Match handling stays out */

    r->disable_not_modified = 1;

    if (r->method == NGX_HTTP_DELETE) {
        rc = ngx_http_fanbase_transaction_ask(ctx,
                                     NGX_HTTP_FANBASE_TRANSACTION_CANCEL,
                                     ngx_http_fanbase_transaction_cancelled);
    } else {
        rc = ngx_http_fanbase_transaction_get(ctx);
    }

    if (rc == NGX_AGAIN) {
        return ngx_http_fanbase_store_suspend(r, &ctx->op);
    }

    return rc;
}


static ngx_int_t
ngx_http_fanbase_transaction_id(ngx_http_request_t *r, ngx_str_t *id)
{
    if (ngx_http_fanbase_request_id(r, id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return (ngx_http_fanbase_id_valid_txn(id) == NGX_OK)
           ? NGX_OK : NGX_HTTP_BAD_REQUEST;
}


static ngx_int_t
ngx_http_fanbase_transaction_ask(ngx_http_fanbase_transaction_ctx_t *ctx,
    ngx_uint_t what, ngx_http_fanbase_transaction_step_pt step)
{
    ngx_int_t                      rc;
    ngx_pool_t                    *pool;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ctx->mcf;
    ctx->step = step;

    if (what == NGX_HTTP_FANBASE_TRANSACTION_CANCEL) {
        rc = mcf->store->txn_cancel(mcf, ctx->scope, &ctx->id, &ctx->op);

    } else {
        pool = (what == NGX_HTTP_FANBASE_TRANSACTION_GET)
               ? ctx->request->pool : NULL;

        rc = mcf->store->txn_get(mcf, ctx->scope, &ctx->id, pool,
                                 &ctx->view, &ctx->op);
    }

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    return step(ctx, rc);
}


static void
ngx_http_fanbase_transaction_answered(ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t                            rc;
    ngx_http_fanbase_transaction_ctx_t  *ctx = op->data;

    rc = ctx->step(ctx, op->rc);

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_fanbase_wait_remove(&ctx->waiter);
    ngx_http_fanbase_store_resume(ctx->request, rc);
}


static ngx_int_t
ngx_http_fanbase_transaction_cancelled(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc)
{
    ngx_http_request_t  *r;

    r = ctx->request;

    switch (rc) {

    case NGX_OK:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: transaction \"%V\" cancelled", &ctx->id);

        return ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_GET,
                                        ngx_http_fanbase_transaction_send);

    case NGX_DECLINED:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND,
                                               "not_found",
                                               "no such transaction");

    case NGX_BUSY:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_CONFLICT,
                                               "delivery_started",
                                               "the transaction is being or "
                                               "has been delivered to "
                                               "Fanbase");

    case NGX_ABORT:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_CONFLICT,
                                               "terminal",
                                               "the transaction has ended");

    case NGX_HTTP_FANBASE_ENGINE_DOWN:
        return ngx_http_fanbase_transaction_down(r);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static ngx_int_t
ngx_http_fanbase_transaction_get(ngx_http_fanbase_transaction_ctx_t *ctx)
{
    ngx_int_t                     wait;
    ngx_str_t                     value;
    ngx_http_request_t           *r;
    ngx_http_fanbase_loc_conf_t  *lcf;

    r = ctx->request;
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    ctx->cond = 1;
    wait = 0;

    if (lcf->long_poll && ngx_http_arg(r, (u_char *) "wait", 4, &value)
                          == NGX_OK)
    {
        wait = ngx_atoi(value.data, value.len);

        if (wait == NGX_ERROR) {
            return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_REQUEST,
                                                   "invalid_wait",
                                                   "wait must be a number "
                                                   "of seconds");
        }

        wait = ngx_min((ngx_msec_t) wait * 1000, lcf->long_poll);
    }

    if (wait == 0 || ngx_exiting) {
        return ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_GET,
                                        ngx_http_fanbase_transaction_send);
    }

    /*
     * the version to wait against: the client's, or the current one; the
     * stamp of the transaction's bucket is read first, so that a change
     * made after the look moves it
     */

    ctx->deadline = ngx_current_msec + (ngx_msec_t) wait;
    ctx->stamp = &ctx->mcf->sh->txn_hash[ngx_http_fanbase_id_hash(ctx->scope,
                                                                 ctx->id.data,
                                                                 ctx->id.len)
                                         & ctx->mcf->sh->txn_hash_mask].stamp;
    ctx->seen = *ctx->stamp;

    return ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_LOOK,
                                        ngx_http_fanbase_transaction_looked);
}


/* the first look of a long poll: answer now, or wait for a change */

static ngx_int_t
ngx_http_fanbase_transaction_looked(ngx_http_fanbase_transaction_ctx_t *ctx,
    ngx_int_t rc)
{
    u_char                buf[NGX_HTTP_FANBASE_ETAG_LEN];
    ngx_str_t             etag;
    ngx_http_request_t   *r;
    ngx_http_cleanup_t   *cln;

    r = ctx->request;

    if (rc != NGX_OK) {
        return ngx_http_fanbase_transaction_send(ctx, rc);
    }

    ngx_http_fanbase_transaction_etag(&ctx->view, buf, &etag);

    if (fanbase_status_terminal(ctx->view.status)
        || (r->headers_in.if_none_match
            && !ngx_http_fanbase_transaction_etag_match(
                                           r->headers_in.if_none_match, &etag)))
    {
        return ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_GET,
                                        ngx_http_fanbase_transaction_send);
    }

    if (!ctx->cleanup) {
        cln = ngx_http_cleanup_add(r, 0);
        if (cln == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        cln->handler = ngx_http_fanbase_transaction_cleanup;
        cln->data = ctx;
        ctx->cleanup = 1;
    }

    if (!ctx->polling) {
        ctx->polling = 1;
        ngx_http_fanbase_metrics_waiters(1);
    }

    ctx->version = ctx->view.version;
    ctx->waiter.handler = ngx_http_fanbase_transaction_wait;
    ctx->waiter.data = ctx;

    ngx_http_fanbase_wait_add(&ctx->waiter);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_fanbase_transaction_wait(ngx_http_fanbase_waiter_t *w)
{
    ngx_int_t                            rc;
    ngx_atomic_uint_t                    seen;
    ngx_http_fanbase_transaction_ctx_t  *ctx = w->data;

    if (ctx->op.pending) {
        /* the store has not answered the last look yet */
        return NGX_AGAIN;
    }

    if (ngx_exiting
        || (ngx_msec_int_t) (ctx->deadline - ngx_current_msec) <= 0)
    {
        rc = ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_GET,
                                        ngx_http_fanbase_transaction_send);

    } else {
        seen = *ctx->stamp;

        if (seen == ctx->seen) {
            return NGX_AGAIN;
        }

        ctx->seen = seen;

        rc = ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_LOOK,
                                        ngx_http_fanbase_transaction_checked);
    }

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ngx_http_fanbase_store_resume(ctx->request, rc);

    return NGX_OK;
}


/* a look after a change of the bucket: the transaction's, or another's */

static ngx_int_t
ngx_http_fanbase_transaction_checked(
    ngx_http_fanbase_transaction_ctx_t *ctx, ngx_int_t rc)
{
    /* still waiting: the waiter is on the list, or goes back on it */

    if (rc == NGX_OK && ctx->view.version == ctx->version
        && !ngx_exiting
        && (ngx_msec_int_t) (ctx->deadline - ngx_current_msec) > 0)
    {
        return NGX_AGAIN;
    }

    return ngx_http_fanbase_transaction_ask(ctx,
                                        NGX_HTTP_FANBASE_TRANSACTION_GET,
                                        ngx_http_fanbase_transaction_send);
}


/* the shared store (Redis) does not answer: nothing to say of it */

static ngx_int_t
ngx_http_fanbase_transaction_down(ngx_http_request_t *r)
{
    return ngx_http_fanbase_response_unavailable(r, "engine_unavailable",
                                                 "the shared transaction "
                                                 "store cannot be reached",
                                                 1);
}


/* the transaction as the store answered it: ctx->view */

static ngx_int_t
ngx_http_fanbase_transaction_send(ngx_http_fanbase_transaction_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_str_t            etag, stale;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (rc == NGX_DECLINED) {
        return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND,
                                               "not_found",
                                               "no such transaction");
    }

    if (rc == NGX_HTTP_FANBASE_ENGINE_DOWN) {
        return ngx_http_fanbase_transaction_down(r);
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    etag.data = ngx_pnalloc(r->pool, NGX_HTTP_FANBASE_ETAG_LEN);
    if (etag.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fanbase_transaction_etag(&ctx->view, etag.data, &etag);

    if (ngx_http_fanbase_response_add_header(r, "ETag", &etag) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the shared engine is away: this is the transaction as last read */

    if (ctx->view.stale) {
        ngx_str_set(&stale, "STALE");

        if (ngx_http_fanbase_response_add_header(r, "X-Fanbase-Cache",
                                                 &stale)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->cond && r->headers_in.if_none_match
        && ngx_http_fanbase_transaction_etag_match(
                                           r->headers_in.if_none_match, &etag))
    {
        r->headers_out.status = NGX_HTTP_NOT_MODIFIED;
        r->headers_out.content_length_n = -1;
        r->header_only = 1;

        return ngx_http_send_header(r);
    }

    return ngx_http_fanbase_response_json(r, NGX_HTTP_OK, &ctx->view.json);
}


static void
ngx_http_fanbase_transaction_cleanup(void *data)
{
    ngx_http_fanbase_transaction_ctx_t  *ctx = data;

    ngx_http_fanbase_wait_remove(&ctx->waiter);

    if (ctx->polling) {
        ngx_http_fanbase_metrics_waiters(-1);
    }
}


/* If-None-Match: "*", or a list of tags, weak ones compared weakly */

static ngx_uint_t
ngx_http_fanbase_transaction_etag_match(ngx_table_elt_t *h, ngx_str_t *etag)
{
    u_char  *p, *last, *start;

    p = h->value.data;
    last = p + h->value.len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }

        if (p < last && *p == '*') {
            return 1;
        }

        if (last - p >= 2 && p[0] == 'W' && p[1] == '/') {
            p += 2;
        }

        start = p;

        while (p < last && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }

        if ((size_t) (p - start) == etag->len
            && ngx_strncmp(start, etag->data, etag->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * "VERSION-UPDATED": it changes with every change of the transaction;
 * into "buf" of NGX_HTTP_FANBASE_ETAG_LEN bytes, digit by digit
 * (ngx_sprintf() was 500 instructions of a GET)
 */

static void
ngx_http_fanbase_transaction_etag(ngx_http_fanbase_txn_view_t *v, u_char *buf,
    ngx_str_t *etag)
{
    u_char  *p;

    p = buf;
    *p++ = '"';
    p = ngx_http_fanbase_transaction_uint(p, v->version);
    *p++ = '-';
    p = ngx_http_fanbase_transaction_uint(p, v->updated);
    *p++ = '"';

    etag->data = buf;
    etag->len = p - buf;
}


static u_char *
ngx_http_fanbase_transaction_uint(u_char *p, uint64_t n)
{
    u_char  *d, digits[NGX_INT64_LEN];

    d = digits + NGX_INT64_LEN;

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, d, digits + NGX_INT64_LEN - d);
}
