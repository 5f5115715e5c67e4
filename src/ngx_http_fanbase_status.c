
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_status: the drop-in for GET {connect}/api/v1/integration/queue/
 * {id}, answered from the zone.  A terminal transaction is never asked of
 * Fanbase again; any other is read through at most once per refresh
 * interval across all workers, and requests for the same id meanwhile
 * share that one fetch.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_call.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_item.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_status.h"


typedef struct {
    ngx_http_fanbase_call_t        call;
    ngx_http_fanbase_waiter_t      waiter;
    ngx_http_fanbase_main_conf_t  *mcf;
    ngx_http_fanbase_lookup_t      lookup;
    ngx_str_t                      id;
    fanbase_item_t                 stale;
    unsigned                       leased:1;
    unsigned                       finished:1;
} ngx_http_fanbase_status_ctx_t;


static ngx_int_t ngx_http_fanbase_status_id(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_status_resolve(
    ngx_http_fanbase_status_ctx_t *ctx);
static void ngx_http_fanbase_status_read(ngx_http_fanbase_status_ctx_t *ctx,
    fanbase_item_t *stale);
static ngx_int_t ngx_http_fanbase_status_wait(ngx_http_fanbase_waiter_t *w);
static void ngx_http_fanbase_status_done(ngx_http_fanbase_call_t *call,
    ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_status_fetched(
    ngx_http_fanbase_status_ctx_t *ctx);
static ngx_int_t ngx_http_fanbase_status_fallback(
    ngx_http_fanbase_status_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_status_send(ngx_http_request_t *r,
    fanbase_item_t *item, ngx_uint_t show_msg, const char *cache);
static void ngx_http_fanbase_status_finish(ngx_http_fanbase_status_ctx_t *ctx,
    ngx_int_t rc);
static void ngx_http_fanbase_status_cleanup(void *data);


ngx_int_t
ngx_http_fanbase_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       id;
    fanbase_item_t                  item;
    ngx_http_cleanup_t             *cln;
    ngx_http_fanbase_lookup_t       lookup;
    ngx_http_fanbase_loc_conf_t    *lcf;
    ngx_http_fanbase_main_conf_t   *mcf;
    ngx_http_fanbase_status_ctx_t  *ctx;

    if (ngx_http_fanbase_rid_set(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_fanbase_response_not_allowed(r, "GET, HEAD",
                                                     "status is GET or HEAD "
                                                     "only");
    }

    rc = ngx_http_fanbase_status_id(r, &id);

    if (rc != NGX_OK) {
        goto error;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_fanbase_variables_id(r, 1, id.data, id.len);

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    /* a read-through may wait for a token, then for Fanbase */

    lookup.refresh = lcf->status_refresh;
    lookup.lease = 2 * lcf->upstream.timeout + 1000;
    lookup.seen = 0;
    lookup.waiting = 0;
    lookup.want_msg = lcf->store_payload;

    /*
     * the common case, an answer in the zone, is sent at once: no context,
     * no cleanup, the request finalized once by the content phase
     */

    rc = ngx_http_fanbase_item_lookup(mcf, lcf->scope, &id, &lookup, r->pool,
                                       &item);

    switch (rc) {

    case NGX_OK:
        return ngx_http_fanbase_status_send(r, &item, lcf->store_payload,
                                            "HIT");

    case NGX_DECLINED:
        return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND,
                                               "not_found",
                                               "no such transaction");

    case NGX_AGAIN:
    case NGX_BUSY:
        break;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* NGX_BUSY: this request holds the lease, NGX_AGAIN: another one */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_status_ctx_t));
    if (ctx == NULL) {
        goto failed;
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        goto failed;
    }

    cln->handler = ngx_http_fanbase_status_cleanup;
    cln->data = ctx;

    ctx->mcf = mcf;
    ctx->id = id;
    ctx->call.request = r;
    ctx->call.lcf = lcf;
    ctx->waiter.handler = ngx_http_fanbase_status_wait;
    ctx->waiter.data = ctx;
    ctx->lookup = lookup;

    /* the request lives until ngx_http_fanbase_status_finish() */

    r->main->count++;

    if (rc == NGX_BUSY) {
        ngx_http_fanbase_status_read(ctx, &item);

    } else {
        ngx_http_fanbase_wait_add(&ctx->waiter);
    }

    if (!ctx->finished) {
        r->read_event_handler = ngx_http_test_reading;
        r->write_event_handler = ngx_http_request_empty_handler;
    }

    return NGX_DONE;

failed:

    if (rc == NGX_BUSY) {
        ngx_http_fanbase_item_release(mcf, lcf->scope, &id, 0);
        ngx_http_fanbase_wait_kick();
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;

error:

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc == NGX_HTTP_BAD_REQUEST) {
        return ngx_http_fanbase_response_error(r, rc, "invalid_id",
                                               "the id must be "
                                               "1 to 64 letters, digits, "
                                               "\"-\" or \"_\"");
    }

    return rc;
}


static ngx_int_t
ngx_http_fanbase_status_id(ngx_http_request_t *r, ngx_str_t *id)
{
    if (ngx_http_fanbase_request_id(r, id) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_fanbase_id_valid(id) != NGX_OK) {
        return NGX_HTTP_BAD_REQUEST;
    }

    return NGX_OK;
}


/* NGX_AGAIN: another request reads the id through, wait for it */

static ngx_int_t
ngx_http_fanbase_status_resolve(ngx_http_fanbase_status_ctx_t *ctx)
{
    ngx_int_t                     rc;
    fanbase_item_t                item;
    ngx_http_request_t           *r;
    ngx_http_fanbase_loc_conf_t  *lcf;

    r = ctx->call.request;
    lcf = ctx->call.lcf;

    rc = ngx_http_fanbase_item_lookup(ctx->mcf, lcf->scope, &ctx->id,
                                       &ctx->lookup, r->pool, &item);

    switch (rc) {

    case NGX_OK:
        rc = ngx_http_fanbase_status_send(r, &item, lcf->store_payload,
                                          "HIT");
        ngx_http_fanbase_status_finish(ctx, rc);
        return NGX_OK;

    case NGX_DECLINED:
        rc = ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                             "no such transaction");
        ngx_http_fanbase_status_finish(ctx, rc);
        return NGX_OK;

    case NGX_AGAIN:
        return NGX_AGAIN;

    case NGX_BUSY:
        break;

    default:
        ngx_http_fanbase_status_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_OK;
    }

    ngx_http_fanbase_status_read(ctx, &item);

    return NGX_OK;
}


/* this request holds the lease: it reads the id through */

static void
ngx_http_fanbase_status_read(ngx_http_fanbase_status_ctx_t *ctx,
    fanbase_item_t *stale)
{
    u_char                       *p;
    ngx_http_request_t           *r;
    ngx_http_fanbase_loc_conf_t  *lcf;

    r = ctx->call.request;
    lcf = ctx->call.lcf;

    ctx->leased = 1;
    ctx->stale = *stale;

    ctx->call.url.len = lcf->queue_url.len + 1 + ctx->id.len;
    ctx->call.url.data = ngx_pnalloc(r->pool, ctx->call.url.len + 1);
    if (ctx->call.url.data == NULL) {
        ngx_http_fanbase_status_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    p = ngx_cpymem(ctx->call.url.data, lcf->queue_url.data,
                   lcf->queue_url.len);
    *p++ = '/';
    p = ngx_cpymem(p, ctx->id.data, ctx->id.len);
    *p = '\0';

    ctx->call.done = ngx_http_fanbase_status_done;
    ctx->call.kind = NGX_HTTP_FANBASE_CALL_STATUS;
    ctx->call.data = ctx;

    if (ngx_http_fanbase_call_start(&ctx->call) != NGX_OK) {
        ngx_http_fanbase_status_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


static ngx_int_t
ngx_http_fanbase_status_wait(ngx_http_fanbase_waiter_t *w)
{
    ngx_connection_t               *c;
    ngx_http_fanbase_status_ctx_t  *ctx = w->data;

    c = ctx->call.request->connection;

    if (ngx_http_fanbase_status_resolve(ctx) == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


static void
ngx_http_fanbase_status_done(ngx_http_fanbase_call_t *call, ngx_int_t rc)
{
    ngx_http_request_t             *r;
    ngx_http_fanbase_curl_t        *h;
    ngx_http_fanbase_status_ctx_t  *ctx;

    ctx = call->data;
    r = call->request;
    h = call->http;

    if (rc != NGX_OK || call->rejected || h->result != CURLE_OK) {
        rc = ngx_http_fanbase_status_fallback(ctx, rc);

    } else if (h->status == 200) {
        rc = ngx_http_fanbase_status_fetched(ctx);

    } else if (h->status == 404) {
        ngx_http_fanbase_item_release(ctx->mcf, ctx->call.lcf->scope,
                                       &ctx->id, 1);
        ctx->leased = 0;

        rc = ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                             "no such transaction");

    } else if (h->status >= 400 && h->status < 500) {
        ngx_http_fanbase_item_release(ctx->mcf, ctx->call.lcf->scope,
                                       &ctx->id, 0);
        ctx->leased = 0;

        rc = ngx_http_fanbase_response_relay(r, h);

    } else {
        rc = ngx_http_fanbase_status_fallback(ctx, NGX_OK);
    }

    ngx_http_fanbase_status_finish(ctx, rc);
}


static ngx_int_t
ngx_http_fanbase_status_fetched(ngx_http_fanbase_status_ctx_t *ctx)
{
    ngx_int_t                 rc;
    fanbase_item_t            item;
    ngx_http_request_t       *r;
    ngx_http_fanbase_curl_t  *h;

    r = ctx->call.request;
    h = ctx->call.http;

    if (fanbase_json_parse_item(h->body, h->len, &item) != FANBASE_JSON_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: Fanbase answered the status of \"%V\" with "
                      "a body that is not a queue item", &ctx->id);

        return ngx_http_fanbase_status_fallback(ctx, NGX_OK);
    }

    /* kept under the id asked for */

    item.id.data = ctx->id.data;
    item.id.len = ctx->id.len;

    (void) ngx_http_fanbase_item_update(ctx->mcf, ctx->call.lcf->scope,
                                         &item, ctx->call.lcf->store_payload,
                                         0, NULL, r->connection->log);
    ctx->leased = 0;

    ngx_http_fanbase_wait_kick();

    rc = ngx_http_fanbase_status_send(r, &item, ctx->call.lcf->store_payload,
                                      "MISS");

    fanbase_json_item_free(&item);

    return rc;
}


/* Fanbase could not answer: the last known answer, if any, still serves */

static ngx_int_t
ngx_http_fanbase_status_fallback(ngx_http_fanbase_status_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_http_request_t           *r;
    ngx_http_fanbase_call_t      *call;
    ngx_http_fanbase_loc_conf_t  *lcf;

    call = &ctx->call;
    r = call->request;
    lcf = call->lcf;

    ngx_http_fanbase_item_release(ctx->mcf, lcf->scope, &ctx->id, 0);
    ctx->leased = 0;

    ngx_http_fanbase_wait_kick();

    if (ctx->stale.id.data != NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fanbase: status of \"%V\" could not be refreshed, "
                      "answering the last known one", &ctx->id);

        return ngx_http_fanbase_status_send(r, &ctx->stale,
                                            lcf->store_payload, "STALE");
    }

    return ngx_http_fanbase_response_call_failure(r, call, rc, "status");
}


static ngx_int_t
ngx_http_fanbase_status_send(ngx_http_request_t *r, fanbase_item_t *item,
    ngx_uint_t show_msg, const char *cache)
{
    ngx_str_t                json, value;
    ngx_http_fanbase_ctx_t  *ctx;

    if (ngx_http_fanbase_response_render_item(r->pool, item, show_msg, &json)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* $fanbase_cache: "HIT", "MISS" or "STALE" */

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx != NULL) {
        ctx->cache = cache;
    }

    value.data = (u_char *) cache;
    value.len = ngx_strlen(cache);

    if (ngx_http_fanbase_response_add_header(r, "X-Fanbase-Cache", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fanbase_response_json(r, NGX_HTTP_OK, &json);
}


static void
ngx_http_fanbase_status_finish(ngx_http_fanbase_status_ctx_t *ctx,
    ngx_int_t rc)
{
    ctx->finished = 1;
    ngx_http_finalize_request(ctx->call.request, rc);
}


static void
ngx_http_fanbase_status_cleanup(void *data)
{
    ngx_http_fanbase_status_ctx_t  *ctx = data;

    ngx_http_fanbase_wait_remove(&ctx->waiter);

    if (ctx->leased) {
        /* the client went away while this request read the id through */
        ngx_http_fanbase_item_release(ctx->mcf, ctx->call.lcf->scope,
                                       &ctx->id, 0);
        ctx->leased = 0;
        ngx_http_fanbase_wait_kick();
    }
}
