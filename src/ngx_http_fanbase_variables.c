
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The $fanbase_* variables, for log_format: the transaction id and the
 * queue id a request was about, the JSON error code it was answered, where
 * a status answer came from, and the status and time of each call made to
 * Fanbase for it.  The handlers write them in the request's context as
 * they go; a request the module did not handle has them empty ("-" in the
 * access log).
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_variables.h"


#define NGX_HTTP_FANBASE_VAR_TRANSACTION   0
#define NGX_HTTP_FANBASE_VAR_QUEUE         1
#define NGX_HTTP_FANBASE_VAR_ERROR         2
#define NGX_HTTP_FANBASE_VAR_CACHE         3
#define NGX_HTTP_FANBASE_VAR_STATUS        4
#define NGX_HTTP_FANBASE_VAR_TIME          5


static ngx_int_t ngx_http_fanbase_variables_get(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_fanbase_variables_calls(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx, ngx_uint_t time, ngx_str_t *value);


static ngx_http_variable_t  ngx_http_fanbase_variables[] = {

    { ngx_string("fanbase_transaction_id"), NULL,
      ngx_http_fanbase_variables_get, NGX_HTTP_FANBASE_VAR_TRANSACTION,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanbase_queue_id"), NULL,
      ngx_http_fanbase_variables_get, NGX_HTTP_FANBASE_VAR_QUEUE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanbase_error"), NULL,
      ngx_http_fanbase_variables_get, NGX_HTTP_FANBASE_VAR_ERROR,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanbase_cache"), NULL,
      ngx_http_fanbase_variables_get, NGX_HTTP_FANBASE_VAR_CACHE,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanbase_upstream_status"), NULL,
      ngx_http_fanbase_variables_get, NGX_HTTP_FANBASE_VAR_STATUS,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("fanbase_upstream_time"), NULL,
      ngx_http_fanbase_variables_get, NGX_HTTP_FANBASE_VAR_TIME,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_fanbase_variables_add(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_fanbase_variables; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* the request's context, made on first use; NULL: out of memory */

ngx_http_fanbase_ctx_t *
ngx_http_fanbase_variables_ctx(ngx_http_request_t *r)
{
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_fanbase_module);
    }

    return ctx;
}


/* the transaction id, or with "queue" Fanbase's queue id, of a request */

void
ngx_http_fanbase_variables_id(ngx_http_request_t *r, ngx_uint_t queue,
    u_char *id, size_t len)
{
    ngx_str_t               *s;
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx == NULL) {
        return;
    }

    s = queue ? &ctx->queue_id : &ctx->transaction_id;

    s->data = ngx_pnalloc(r->pool, len);
    if (s->data == NULL) {
        s->len = 0;
        return;
    }

    ngx_memcpy(s->data, id, len);
    s->len = len;
}


/*
 * an edge transaction's id (NGX_HTTP_FANBASE_TXN_ID_LEN) that stays where
 * it is until the request is freed: not copied
 */

void
ngx_http_fanbase_variables_txn_id(ngx_http_request_t *r, u_char *id)
{
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx == NULL) {
        return;
    }

    ctx->transaction_id.data = id;
    ctx->transaction_id.len = NGX_HTTP_FANBASE_TXN_ID_LEN;
}


/* a call to Fanbase ended: its HTTP status (0: no answer), its start */

void
ngx_http_fanbase_variables_call(ngx_http_request_t *r, ngx_uint_t status,
    ngx_msec_t start)
{
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx == NULL || ctx->calls == NGX_HTTP_FANBASE_CALLS_MAX) {
        return;
    }

    ctx->status[ctx->calls] = status;
    ctx->time[ctx->calls] = ngx_current_msec - start;
    ctx->calls++;
}


static ngx_int_t
ngx_http_fanbase_variables_get(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                value;
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    ngx_str_null(&value);

    if (ctx != NULL) {

        switch (data) {

        case NGX_HTTP_FANBASE_VAR_TRANSACTION:
            value = ctx->transaction_id;
            break;

        case NGX_HTTP_FANBASE_VAR_QUEUE:
            value = ctx->queue_id;
            break;

        case NGX_HTTP_FANBASE_VAR_ERROR:
        case NGX_HTTP_FANBASE_VAR_CACHE:
            value.data = (u_char *) ((data == NGX_HTTP_FANBASE_VAR_ERROR)
                                     ? ctx->error : ctx->cache);
            value.len = value.data ? ngx_strlen(value.data) : 0;
            break;

        default:
            if (ngx_http_fanbase_variables_calls(r, ctx,
                                          data == NGX_HTTP_FANBASE_VAR_TIME,
                                          &value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    if (value.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = value.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = value.data;

    return NGX_OK;
}


/*
 * As nginx's $upstream_status and $upstream_response_time: one value per
 * call, ", " between them; "-" for a call that got no answer; seconds with
 * milliseconds
 */

static ngx_int_t
ngx_http_fanbase_variables_calls(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx, ngx_uint_t time, ngx_str_t *value)
{
    u_char      *p;
    ngx_uint_t   i;

    if (ctx->calls == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, ctx->calls * (NGX_TIME_T_LEN + 6));
    if (p == NULL) {
        return NGX_ERROR;
    }

    value->data = p;

    for (i = 0; i < ctx->calls; i++) {
        if (i) {
            *p++ = ',';
            *p++ = ' ';
        }

        if (time) {
            p = ngx_sprintf(p, "%T.%03M", (time_t) ctx->time[i] / 1000,
                            ctx->time[i] % 1000);

        } else if (ctx->status[i]) {
            p = ngx_sprintf(p, "%ui", ctx->status[i]);

        } else {
            *p++ = '-';
        }
    }

    value->len = p - value->data;

    return NGX_OK;
}
