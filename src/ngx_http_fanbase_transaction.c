
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


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_transaction.h"


typedef struct {
    ngx_http_fanbase_waiter_t      waiter;
    ngx_http_request_t            *request;
    ngx_http_fanbase_main_conf_t  *mcf;
    ngx_str_t                      id;
    ngx_msec_t                     deadline;
    ngx_atomic_t                  *stamp;      /* its bucket's, in the zone */
    ngx_atomic_uint_t              seen;
    uint32_t                       version;
    unsigned                       finished:1;
} ngx_http_fanbase_transaction_ctx_t;


static ngx_int_t ngx_http_fanbase_transaction_id(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_transaction_delete(ngx_http_request_t *r,
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_transaction_get(ngx_http_request_t *r,
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_transaction_send(ngx_http_request_t *r,
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id, ngx_uint_t cond);
static ngx_int_t ngx_http_fanbase_transaction_wait(
    ngx_http_fanbase_waiter_t *w);
static void ngx_http_fanbase_transaction_cleanup(void *data);
static ngx_uint_t ngx_http_fanbase_transaction_etag_match(ngx_table_elt_t *h,
    ngx_str_t *etag);
static void ngx_http_fanbase_transaction_etag(ngx_http_fanbase_txn_view_t *v,
    ngx_str_t *etag);


ngx_int_t
ngx_http_fanbase_transaction_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      id;
    ngx_http_fanbase_main_conf_t  *mcf;

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

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    /* the answer is ours: nginx's own If-None-Match handling stays out */

    r->disable_not_modified = 1;

    if (r->method == NGX_HTTP_DELETE) {
        return ngx_http_fanbase_transaction_delete(r, mcf, &id);
    }

    return ngx_http_fanbase_transaction_get(r, mcf, &id);
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
ngx_http_fanbase_transaction_delete(ngx_http_request_t *r,
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id)
{
    ngx_int_t                     rc;
    ngx_http_fanbase_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    /* another credential set's transaction is as unknown as no one's */

    rc = ngx_http_fanbase_txn_cancel(mcf, lcf->scope, id, r->connection->log);

    switch (rc) {

    case NGX_OK:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: transaction \"%V\" cancelled", id);

        return ngx_http_fanbase_transaction_send(r, mcf, id, 0);

    case NGX_DECLINED:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND,
                                               "not_found",
                                               "no such transaction");

    case NGX_BUSY:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_CONFLICT,
                                               "delivery_started",
                                               "the transaction is being or "
                                               "has been delivered to Fanbase");

    case NGX_ABORT:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_CONFLICT, "terminal",
                                               "the transaction has ended");

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


static ngx_int_t
ngx_http_fanbase_transaction_get(ngx_http_request_t *r,
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id)
{
    ngx_int_t                            wait;
    ngx_str_t                            value, etag;
    ngx_atomic_t                        *stamp;
    ngx_http_cleanup_t                  *cln;
    ngx_atomic_uint_t                    seen;
    ngx_http_fanbase_txn_view_t          v;
    ngx_http_fanbase_loc_conf_t         *lcf;
    ngx_http_fanbase_transaction_ctx_t  *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    wait = 0;

    if (lcf->long_poll && ngx_http_arg(r, (u_char *) "wait", 4, &value)
                          == NGX_OK)
    {
        wait = ngx_atoi(value.data, value.len);

        if (wait == NGX_ERROR) {
            return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_REQUEST,
                                                   "invalid_wait",
                                                   "wait must be a number of "
                                                   "seconds");
        }

        wait = ngx_min((ngx_msec_t) wait * 1000, lcf->long_poll);
    }

    if (wait == 0 || ngx_exiting) {
        return ngx_http_fanbase_transaction_send(r, mcf, id, 1);
    }

    /*
     * the version to wait against: the client's, or the current one; the
     * stamp of the transaction's bucket is read first, so that a change
     * made after the look moves it
     */

    stamp = &mcf->sh->stamps[ngx_http_fanbase_id_hash(lcf->scope, id->data,
                                                         id->len)
                             & mcf->sh->txn_hash_mask];
    seen = *stamp;

    switch (ngx_http_fanbase_txn_get(mcf, lcf->scope, id, NULL, &v)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND,
                                               "not_found",
                                               "no such transaction");

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fanbase_transaction_etag(&v, &etag);

    if (fanbase_status_terminal(v.status)
        || (r->headers_in.if_none_match
            && !ngx_http_fanbase_transaction_etag_match(
                                           r->headers_in.if_none_match, &etag)))
    {
        return ngx_http_fanbase_transaction_send(r, mcf, id, 1);
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_transaction_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_fanbase_transaction_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->mcf = mcf;
    ctx->id = *id;
    ctx->deadline = ngx_current_msec + (ngx_msec_t) wait;
    ctx->version = v.version;
    ctx->stamp = stamp;
    ctx->seen = seen;
    ctx->waiter.handler = ngx_http_fanbase_transaction_wait;
    ctx->waiter.data = ctx;

    r->main->count++;

    ngx_http_fanbase_wait_add(&ctx->waiter);

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_fanbase_transaction_wait(ngx_http_fanbase_waiter_t *w)
{
    ngx_int_t                            rc;
    ngx_connection_t                    *c;
    ngx_atomic_uint_t                    seen;
    ngx_http_request_t                  *r;
    ngx_http_fanbase_txn_view_t          v;
    ngx_http_fanbase_loc_conf_t         *lcf;
    ngx_http_fanbase_transaction_ctx_t  *ctx = w->data;

    r = ctx->request;
    c = r->connection;

    if (!ngx_exiting
        && (ngx_msec_int_t) (ctx->deadline - ngx_current_msec) > 0)
    {
        seen = *ctx->stamp;

        if (seen == ctx->seen) {
            return NGX_AGAIN;
        }

        ctx->seen = seen;

        lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

        if (ngx_http_fanbase_txn_get(ctx->mcf, lcf->scope, &ctx->id, NULL, &v)
            == NGX_OK
            && v.version == ctx->version)
        {
            return NGX_AGAIN;
        }
    }

    ctx->finished = 1;

    rc = ngx_http_fanbase_transaction_send(r, ctx->mcf, &ctx->id, 1);
    ngx_http_finalize_request(r, rc);

    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


/* the transaction as it is now; cond: If-None-Match applies */

static ngx_int_t
ngx_http_fanbase_transaction_send(ngx_http_request_t *r,
    ngx_http_fanbase_main_conf_t *mcf, ngx_str_t *id, ngx_uint_t cond)
{
    ngx_int_t                     rc;
    ngx_str_t                     etag;
    ngx_http_fanbase_txn_view_t   v;
    ngx_http_fanbase_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    rc = ngx_http_fanbase_txn_get(mcf, lcf->scope, id, r->pool, &v);

    if (rc == NGX_DECLINED) {
        return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND,
                                               "not_found",
                                               "no such transaction");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_fanbase_transaction_etag(&v, &etag);

    etag.data = ngx_pstrdup(r->pool, &etag);
    if (etag.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_fanbase_response_add_header(r, "ETag", &etag) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cond && r->headers_in.if_none_match
        && ngx_http_fanbase_transaction_etag_match(r->headers_in.if_none_match,
                                                   &etag))
    {
        r->headers_out.status = NGX_HTTP_NOT_MODIFIED;
        r->headers_out.content_length_n = -1;
        r->header_only = 1;

        return ngx_http_send_header(r);
    }

    return ngx_http_fanbase_response_json(r, NGX_HTTP_OK, &v.json);
}


static void
ngx_http_fanbase_transaction_cleanup(void *data)
{
    ngx_http_fanbase_transaction_ctx_t  *ctx = data;

    ngx_http_fanbase_wait_remove(&ctx->waiter);
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


/* "VERSION-UPDATED": it changes with every change of the transaction */

static void
ngx_http_fanbase_transaction_etag(ngx_http_fanbase_txn_view_t *v,
    ngx_str_t *etag)
{
    static u_char  buf[NGX_INT64_LEN * 2 + 4];

    etag->data = buf;
    etag->len = ngx_sprintf(buf, "\"%uD-%uL\"", v->version, v->updated)
                - buf;
}
