
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_submit async: a checked submission becomes a pending
 * transaction in the zone and is answered 202 at once, with its id and
 * path; ngx_http_fanbase_deliver.c sends it to Fanbase afterwards.  An
 * Idempotency-Key is claimed in the zone together with the creation of
 * the transaction, in one operation of the store, so that repeats on any
 * worker (or host, with a shared engine) find it.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_deliver.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_accept.h"


#define NGX_HTTP_FANBASE_UNPROCESSABLE   422


typedef struct {
    ngx_http_fanbase_store_op_t    op;
    ngx_http_request_t            *request;
    ngx_http_fanbase_txn_new_t     nt;
} ngx_http_fanbase_accept_ctx_t;


static void ngx_http_fanbase_accept_created(ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_accept_not_durable(ngx_http_request_t *r,
    ngx_http_fanbase_txn_new_t *nt);
static ngx_int_t ngx_http_fanbase_accept_answer(ngx_http_request_t *r,
    ngx_http_fanbase_txn_new_t *nt, ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_accept_key(ngx_http_request_t *r,
    ngx_str_t *key);
static ngx_int_t ngx_http_fanbase_accept_id(u_char *id);
static ngx_int_t ngx_http_fanbase_accept_send(ngx_http_request_t *r,
    ngx_http_fanbase_loc_conf_t *lcf, u_char *id);


ngx_int_t
ngx_http_fanbase_accept(ngx_http_request_t *r, ngx_str_t *body)
{
    ngx_int_t                       rc;
    ngx_md5_t                       md5;
    ngx_http_fanbase_txn_new_t     *nt;
    ngx_http_fanbase_loc_conf_t    *lcf;
    ngx_http_fanbase_main_conf_t   *mcf;
    ngx_http_fanbase_accept_ctx_t  *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_accept_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    nt = &ctx->nt;

    if (ngx_http_fanbase_accept_key(r, &nt->idem_key) != NGX_OK) {
        return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_REQUEST,
                                               "invalid_idempotency_key",
                                               "Idempotency-Key must be 1 to "
                                               "255 visible ASCII characters");
    }

    if (ngx_http_fanbase_accept_id(nt->id) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, ngx_errno,
                      "fanbase: getrandom() failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    nt->payload = *body;
    nt->lcf = lcf;

    /* its deliveries and notifications carry this request's id */
    ngx_http_fanbase_rid_get(r, &nt->request_id);

    /* a repeat is recognised by its body's digest */

    if (nt->idem_key.len) {
        ngx_md5_init(&md5);
        ngx_md5_update(&md5, body->data, body->len);
        ngx_md5_final(nt->digest, &md5);
    }

    ctx->request = r;
    ctx->op.done = ngx_http_fanbase_accept_created;
    ctx->op.data = ctx;
    ctx->op.log = r->connection->log;

    rc = mcf->store->txn_create(mcf, nt, &ctx->op);

    if (rc == NGX_AGAIN) {
        return ngx_http_fanbase_store_suspend(r, &ctx->op);
    }

    return ngx_http_fanbase_accept_answer(r, nt, rc);
}


static void
ngx_http_fanbase_accept_created(ngx_http_fanbase_store_op_t *op)
{
    ngx_http_fanbase_accept_ctx_t  *ctx = op->data;

    ngx_http_fanbase_store_resume(ctx->request,
                                  ngx_http_fanbase_accept_answer(ctx->request,
                                                                 &ctx->nt,
                                                                 op->rc));
}


static ngx_int_t
ngx_http_fanbase_accept_answer(ngx_http_request_t *r,
    ngx_http_fanbase_txn_new_t *nt, ngx_int_t rc)
{
    ngx_http_fanbase_main_conf_t  *mcf;

    switch (rc) {

    case NGX_OK:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: submission accepted as transaction \"%*s\"",
                      (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, nt->id);

        ngx_http_fanbase_deliver_kick();
        break;

    case NGX_DONE:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: repeated submission with the same "
                      "Idempotency-Key: transaction \"%*s\"",
                      (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, nt->id);
        break;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: submission refused: Idempotency-Key reused "
                      "with another body");

        ngx_str_set(&r->headers_out.status_line,
                    "422 Unprocessable Entity");

        return ngx_http_fanbase_response_error(r,
                                               NGX_HTTP_FANBASE_UNPROCESSABLE,
                                               "idempotency_key_reused",
                                               "this Idempotency-Key was used "
                                               "with another body");

    case NGX_BUSY:
        mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: zone \"%V\" is full of transactions that "
                      "are not terminal", &mcf->shm_zone->shm.name);

        return ngx_http_fanbase_response_unavailable(r, "zone_full",
                                                     "the transaction store is "
                                                     "full", 5);

    case NGX_HTTP_FANBASE_NOT_DURABLE:
        return ngx_http_fanbase_accept_not_durable(r, nt);

    case NGX_HTTP_FANBASE_ENGINE_DOWN:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: submission refused: the shared store "
                      "(redis) does not answer");

        return ngx_http_fanbase_response_unavailable(r, "engine_unavailable",
                                                     "the shared transaction "
                                                     "store cannot be "
                                                     "reached", 1);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* nt is in the request's pool */
    ngx_http_fanbase_variables_txn_id(r, nt->id);

    return ngx_http_fanbase_accept_send(r, nt->lcf, nt->id);
}


/* NGX_DECLINED: a key that is not 1 to 255 visible ASCII characters */

static ngx_int_t
ngx_http_fanbase_accept_key(ngx_http_request_t *r, ngx_str_t *key)
{
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    h = ngx_http_fanbase_request_header_in(r, "Idempotency-Key",
                                           sizeof("Idempotency-Key") - 1);
    if (h == NULL) {
        return NGX_OK;
    }

    *key = h->value;

    if (key->len == 0 || key->len > NGX_HTTP_FANBASE_IDEM_KEY_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < key->len; i++) {
        if (key->data[i] <= 0x20 || key->data[i] >= 0x7f) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* a random (version 4) UUID, lower case */

static ngx_int_t
ngx_http_fanbase_accept_id(u_char *id)
{
    u_char  b[16];

    if (ngx_http_fanbase_id_random(b) != NGX_OK) {
        return NGX_ERROR;
    }

    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;

    /* ngx_sprintf() took a tenth of an acceptance's instructions */

    (void) ngx_http_fanbase_id_uuid(id, b);

    return NGX_OK;
}


/* 202 {"transaction_id": ID, "links": [{"path": PATH/ID}]}, Location */

static ngx_int_t
ngx_http_fanbase_accept_send(ngx_http_request_t *r,
    ngx_http_fanbase_loc_conf_t *lcf, u_char *id)
{
    u_char         *p;
    size_t          size;
    ngx_str_t       json, location;
    fanbase_str_t   tid, path;

    location.len = lcf->transaction_path.len + 1
                   + NGX_HTTP_FANBASE_TXN_ID_LEN;

    tid.data = id;
    tid.len = NGX_HTTP_FANBASE_TXN_ID_LEN;
    path.len = location.len;

    /*
     * the path and the body in one piece; mostly a path with nothing to
     * escape (decided when the configuration is read), copied as it is
     */

    size = lcf->transaction_path_plain
           ? fanbase_json_accepted_plain_size(&tid, &path)
           : fanbase_json_accepted_size(&tid, &path);

    location.data = ngx_pnalloc(r->pool, location.len + size);
    if (location.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(location.data, lcf->transaction_path.data,
                   lcf->transaction_path.len);
    *p++ = '/';
    ngx_memcpy(p, id, NGX_HTTP_FANBASE_TXN_ID_LEN);

    path.data = location.data;
    json.data = location.data + location.len;

    p = lcf->transaction_path_plain
        ? fanbase_json_render_accepted_plain(json.data, &tid, &path)
        : fanbase_json_render_accepted(json.data, &tid, &path);

    json.len = p - json.data;

    if (ngx_http_fanbase_response_add_header(r, "Location", &location)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fanbase_response_json(r, NGX_HTTP_ACCEPTED, &json);
}


/*
 * fanbase_state_sync on, and the journal could not be written: the
 * transaction is taken and will be delivered, but a 202 would promise a
 * disk that does not have it.  The answer says which transaction it is,
 * so that the site looks before it submits again.
 */

static ngx_int_t
ngx_http_fanbase_accept_not_durable(ngx_http_request_t *r,
    ngx_http_fanbase_txn_new_t *nt)
{
    u_char     *p;
    ngx_str_t   location;
    u_char      msg[256];

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "fanbase: transaction \"%*s\" accepted but its journal "
                  "record is not on disk: answered 503 not_durable",
                  (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, nt->id);

    /* nt is in the request's pool */
    ngx_http_fanbase_variables_txn_id(r, nt->id);

    location.len = nt->lcf->transaction_path.len + 1
                   + NGX_HTTP_FANBASE_TXN_ID_LEN;
    location.data = ngx_pnalloc(r->pool, location.len);
    if (location.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(location.data, nt->lcf->transaction_path.data,
                   nt->lcf->transaction_path.len);
    *p++ = '/';
    ngx_memcpy(p, nt->id, NGX_HTTP_FANBASE_TXN_ID_LEN);

    if (ngx_http_fanbase_response_add_header(r, "Location", &location)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_snprintf(msg, sizeof(msg) - 1, "taken as transaction %*s and "
                     "it will be delivered, but it is not on disk yet: "
                     "look at it before submitting again",
                     (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, nt->id);
    *p = '\0';

    return ngx_http_fanbase_response_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "not_durable", (char *) msg);
}
