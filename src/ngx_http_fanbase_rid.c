
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Request ids.  Every request that a fanbase location handles has one: the
 * client's X-Request-ID when it is a valid one (ngx_http_fanbase_id.c),
 * else nginx's $request_id, the same value a log_format prints.  Calls to
 * Fanbase made for the request send it (call.c), an asynchronous
 * transaction keeps it for its deliveries and notifications (txn.c), and
 * every error log line written while the request is handled ends with
 * ', request_id: "..."'.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_rid.h"


static ngx_int_t ngx_http_fanbase_rid_make(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx);
static u_char *ngx_http_fanbase_rid_log(ngx_http_request_t *r,
    ngx_http_request_t *sr, u_char *buf, size_t len);


static ngx_int_t                ngx_http_fanbase_rid_index = NGX_ERROR;
static ngx_http_log_handler_pt  ngx_http_fanbase_rid_next;


/* $request_id is indexed, so that it is made once a request */

ngx_int_t
ngx_http_fanbase_rid_init(ngx_conf_t *cf)
{
    ngx_str_t  name = ngx_string("request_id");

    ngx_http_fanbase_rid_index = ngx_http_get_variable_index(cf, &name);

    return (ngx_http_fanbase_rid_index == NGX_ERROR) ? NGX_ERROR : NGX_OK;
}


/*
 * the request's id, decided when a handler starts; NGX_ERROR: no memory.
 * The client's valid X-Request-ID is taken at once; else $request_id is
 * made when it is first read (a call to Fanbase, an accepted transaction,
 * an error log line): a status or transaction answered from the zone
 * reads it never, and making it was 170 of its instructions.
 */

ngx_int_t
ngx_http_fanbase_rid_set(ngx_http_request_t *r)
{
    ngx_table_elt_t         *h;
    ngx_http_request_t      *m;
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (ctx->request_id.len || ctx->rid_due) {
        return NGX_OK;
    }

    /*
     * error log lines end with it from now on: nginx's own handler, then
     * this one; a request whose handler another module replaced keeps it
     */

    m = r->main;

    if (m->log_handler != ngx_http_fanbase_rid_log) {
        if (ngx_http_fanbase_rid_next == NULL) {
            ngx_http_fanbase_rid_next = m->log_handler;
        }

        if (m->log_handler == ngx_http_fanbase_rid_next) {
            m->log_handler = ngx_http_fanbase_rid_log;
        }
    }

    h = ngx_http_fanbase_request_header_in(r, "X-Request-ID",
                                           sizeof("X-Request-ID") - 1);

    if (h != NULL && ngx_http_fanbase_id_valid_request(&h->value) == NGX_OK) {
        ctx->request_id = h->value;
        return NGX_OK;
    }

    ctx->rid_due = 1;

    if (h != NULL) {
        /* never its bytes: they may be anything but CR and LF */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: X-Request-ID of %uz bytes is not 1 to %d "
                      "visible ASCII characters without '\"' and '\\', "
                      "replaced", h->value.len,
                      NGX_HTTP_FANBASE_REQUEST_ID_MAX);
    }

    return NGX_OK;
}


/*
 * nginx's $request_id, made here (OpenSSL's RAND_bytes() for each
 * request cost a tenth of the accept rate) and kept as the variable's
 * value: the access log prints the same id.  NGX_ERROR: no memory, the
 * request has no id.
 */

static ngx_int_t
ngx_http_fanbase_rid_make(ngx_http_request_t *r, ngx_http_fanbase_ctx_t *ctx)
{
    ngx_http_variable_value_t  *v;
    u_char                      random[16];

    /* once: an allocation that fails logs, and the log line reads it */

    ctx->rid_due = 0;

    v = &r->variables[ngx_http_fanbase_rid_index];

    if (!v->valid) {
        if (ngx_http_fanbase_id_random(random) != NGX_OK) {
            v = ngx_http_get_indexed_variable(r, ngx_http_fanbase_rid_index);
            if (v == NULL || v->not_found) {
                return NGX_ERROR;
            }

        } else {
            v->data = ngx_pnalloc(r->pool, 32);
            if (v->data == NULL) {
                return NGX_ERROR;
            }

            (void) ngx_http_fanbase_id_hex16(v->data, random);

            v->len = 32;
            v->valid = 1;
            v->no_cacheable = 0;
            v->not_found = 0;
        }
    }

    ctx->request_id.data = v->data;
    ctx->request_id.len = v->len;

    return NGX_OK;
}


/* the request's id, or an empty string */

void
ngx_http_fanbase_rid_get(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    if (ctx == NULL) {
        ngx_str_null(id);
        return;
    }

    if (ctx->rid_due) {
        (void) ngx_http_fanbase_rid_make(r, ctx);
    }

    *id = ctx->request_id;
}


/* "sr" is the (sub)request being handled, "r" the main one */

static u_char *
ngx_http_fanbase_rid_log(ngx_http_request_t *r, ngx_http_request_t *sr,
    u_char *buf, size_t len)
{
    u_char     *p;
    ngx_str_t   id;

    p = ngx_http_fanbase_rid_next(r, sr, buf, len);
    len -= p - buf;

    ngx_http_fanbase_rid_get(sr, &id);

    if (id.len == 0) {
        ngx_http_fanbase_rid_get(r, &id);
    }

    if (id.len) {
        p = ngx_snprintf(p, len, ", request_id: \"%V\"", &id);
    }

    return p;
}
