
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * One authenticated call to Fanbase Connect on behalf of a request: get
 * the edge's token (waiting for a fetch under way if need be), send the
 * call with it and the request's id, and on a token rejection (401 or
 * 403) drop that token, get a new one and send the call once more.  The
 * request's cleanup cancels whatever is under way.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_call.h"


static ngx_int_t ngx_http_fanbase_call_send(ngx_http_fanbase_call_t *call);
static ngx_int_t ngx_http_fanbase_call_wait(ngx_http_fanbase_waiter_t *w);
static void ngx_http_fanbase_call_handler(ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_call_cleanup(void *data);


/*
 * The call ends in call->done(call, rc), from this function or later from
 * the event loop: NGX_OK with call->http finished (call->rejected if the
 * token was refused even after a new one), NGX_DECLINED when no token can
 * be had (call->retry_after), NGX_ERROR.
 */

ngx_int_t
ngx_http_fanbase_call_start(ngx_http_fanbase_call_t *call)
{
    ngx_int_t            rc;
    ngx_http_cleanup_t  *cln;

    cln = ngx_http_cleanup_add(call->request, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_fanbase_call_cleanup;
    cln->data = call;

    call->waiter.handler = ngx_http_fanbase_call_wait;
    call->waiter.data = call;

    rc = ngx_http_fanbase_call_send(call);

    if (rc == NGX_AGAIN) {
        ngx_http_fanbase_wait_add(&call->waiter);
    }

    return NGX_OK;
}


/* NGX_AGAIN: a token is being fetched; NGX_OK: sent or finished */

static ngx_int_t
ngx_http_fanbase_call_send(ngx_http_fanbase_call_t *call)
{
    ngx_int_t                     rc;
    ngx_str_t                     rid;
    ngx_http_request_t           *r;
    ngx_http_fanbase_curl_t      *h;
    ngx_http_fanbase_loc_conf_t  *lcf;

    r = call->request;
    lcf = call->lcf;

    rc = ngx_http_fanbase_token_get(lcf->cred, r->connection->log,
                                    &call->hdr, &call->retry_after);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        call->done(call, rc);
        return NGX_OK;
    }

    h = ngx_http_fanbase_curl_create(r->connection->log, &lcf->upstream,
                                     (char *) call->url.data);
    if (h == NULL) {
        call->done(call, NGX_ERROR);
        return NGX_OK;
    }

    /* the transfer owns the token reference from now on */

    h->hdr = call->hdr;
    call->hdr = NULL;

    ngx_http_fanbase_rid_get(r, &rid);
    ngx_http_fanbase_curl_request_id(h, &rid);

    h->handler = ngx_http_fanbase_call_handler;
    h->data = call;
    h->kind = call->kind;

    if (call->post) {
        ngx_http_fanbase_curl_post(h, call->body.data, call->body.len);
    }

    call->http = h;
    call->start = ngx_current_msec;

    if (ngx_http_fanbase_curl_start(h) != NGX_OK) {
        call->done(call, NGX_ERROR);
        return NGX_OK;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_call_wait(ngx_http_fanbase_waiter_t *w)
{
    ngx_connection_t         *c;
    ngx_http_fanbase_call_t  *call = w->data;

    c = call->request->connection;

    if (ngx_http_fanbase_call_send(call) == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    /* the request may be gone now */

    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


static void
ngx_http_fanbase_call_handler(ngx_http_fanbase_curl_t *h)
{
    ngx_connection_t         *c;
    ngx_http_fanbase_call_t  *call = h->data;

    c = call->request->connection;

    ngx_http_fanbase_variables_call(call->request,
                                    h->result == CURLE_OK ? h->status : 0,
                                    call->start);

    if (h->result == CURLE_OK && h->status && h->status < 500) {
        ngx_http_fanbase_zone_answered(call->lcf->cred->mcf->sh);
    }

    if (h->result == CURLE_OK && (h->status == 401 || h->status == 403)) {

        if (!call->retried && call->lcf->cred->fixed.len == 0) {
            ngx_http_fanbase_token_reject(call->lcf->cred, h->hdr, c->log);

            call->retried = 1;
            call->http = NULL;
            ngx_http_fanbase_curl_destroy(h);

            if (ngx_http_fanbase_call_send(call) == NGX_AGAIN) {
                ngx_http_fanbase_wait_add(&call->waiter);
                return;
            }

            ngx_http_run_posted_requests(c);
            return;
        }

        if (call->lcf->cred->fixed.len) {
            ngx_http_fanbase_token_reject(call->lcf->cred, h->hdr, c->log);
        }

        call->rejected = 1;
    }

    call->done(call, NGX_OK);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_fanbase_call_cleanup(void *data)
{
    ngx_http_fanbase_call_t  *call = data;

    ngx_http_fanbase_wait_remove(&call->waiter);

    if (call->http != NULL) {
        ngx_http_fanbase_curl_destroy(call->http);
        call->http = NULL;
    }

    if (call->hdr != NULL) {
        ngx_http_fanbase_curl_headers_release(call->hdr);
        call->hdr = NULL;
    }
}
