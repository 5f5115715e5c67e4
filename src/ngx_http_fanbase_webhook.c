
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_webhook: status callbacks for transactions.  The exact bytes of
 * the body are authenticated first (Standard Webhooks, an HMAC of the body
 * in a header, or a shared token: ngx_http_fanbase_signature.c), then the
 * update is parsed, its message id claimed in the zone and the update
 * applied under the same lock (ngx_http_fanbase_txn.c): a transaction
 * moves forward only, a repeat or a stale update is answered 204 and not
 * applied.  An update for a queue item that is no transaction goes to the
 * queue item store.  A webhook location sees the records of the credential
 * set in effect there only (its scope): those of another are unknown.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_item.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_signature.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_webhook.h"


#define NGX_HTTP_FANBASE_MSG_ID_MAX   255

/* an event's message and error text, escaped */
#define NGX_HTTP_FANBASE_WEBHOOK_MSG_MAX    512
#define NGX_HTTP_FANBASE_WEBHOOK_TEXT_MAX   4096


/* a webhook, parsed, on its way through the store */

typedef struct {
    ngx_http_fanbase_store_op_t   op;
    ngx_http_request_t           *request;
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_http_fanbase_hook_t       hk;
    fanbase_update_t              u;
} ngx_http_fanbase_webhook_ctx_t;


static void ngx_http_fanbase_webhook_body(ngx_http_request_t *r);
static const char *ngx_http_fanbase_webhook_verify(ngx_http_request_t *r,
    ngx_http_fanbase_loc_conf_t *lcf, ngx_str_t *body, ngx_str_t *msg_id);
static ngx_int_t ngx_http_fanbase_webhook_apply(
    ngx_http_fanbase_webhook_ctx_t *ctx, ngx_str_t *msg_id);
static void ngx_http_fanbase_webhook_hooked(ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_webhook_applied(
    ngx_http_fanbase_webhook_ctx_t *ctx, ngx_int_t rc);
static void ngx_http_fanbase_webhook_cleanup(void *data);
static ngx_int_t ngx_http_fanbase_webhook_item(ngx_http_request_t *r,
    ngx_http_fanbase_loc_conf_t *lcf, fanbase_update_t *u);
static ngx_int_t ngx_http_fanbase_webhook_event(ngx_http_request_t *r,
    fanbase_update_t *u, ngx_uint_t queue_id, ngx_str_t *event);
static void ngx_http_fanbase_webhook_outcome(ngx_http_request_t *r,
    ngx_uint_t outcome);


ngx_int_t
ngx_http_fanbase_webhook_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    const char                   *reason;
    ngx_http_fanbase_loc_conf_t  *lcf;

    if (ngx_http_fanbase_rid_set(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_POST) {
        return ngx_http_fanbase_response_not_allowed(r, "POST",
                                                     "webhooks are POST only");
    }

    /* what the headers alone refuse costs no body and no HMAC */

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    reason = ngx_http_fanbase_webhook_verify(r, lcf, NULL, NULL);

    if (reason != NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fanbase: webhook refused: %s", reason);

        rc = ngx_http_discard_request_body(r);

        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_fanbase_response_error(r, NGX_HTTP_UNAUTHORIZED,
                                               "unauthorized", reason);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_fanbase_webhook_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_fanbase_webhook_body(ngx_http_request_t *r)
{
    int                              json;
    ngx_int_t                        rc;
    ngx_str_t                        body, msg_id;
    const char                      *reason;
    fanbase_update_t                *u;
    ngx_pool_cleanup_t              *cln;
    ngx_http_fanbase_loc_conf_t     *lcf;
    ngx_http_fanbase_webhook_ctx_t  *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    if (ngx_http_fanbase_request_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    /* the exact bytes are checked before anything is parsed */

    reason = ngx_http_fanbase_webhook_verify(r, lcf, &body, &msg_id);

    if (reason != NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fanbase: webhook refused: %s", reason);

        rc = ngx_http_fanbase_response_error(r, NGX_HTTP_UNAUTHORIZED,
                                             "unauthorized", reason);
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* the parsed update lives as long as the request */

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_webhook_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (ctx == NULL || cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_fanbase_webhook_cleanup;
    cln->data = ctx;

    ctx->request = r;
    ctx->lcf = lcf;
    u = &ctx->u;

    json = fanbase_json_parse_update(body.data, body.len, u);

    if (json != FANBASE_JSON_OK) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fanbase: webhook refused: %s",
                      json == FANBASE_JSON_INVALID
                      ? "the body is not JSON"
                      : "no \"id\" or no known status");

        rc = ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_REQUEST,
                                             json == FANBASE_JSON_INVALID
                                             ? "invalid_json"
                                             : "invalid_update",
                                             json == FANBASE_JSON_INVALID
                                             ? "the body is not valid JSON"
                                             : "an update needs an \"id\" "
                                               "and a known status");
        ngx_http_finalize_request(r, rc);
        return;
    }

    rc = ngx_http_fanbase_webhook_apply(ctx, &msg_id);

    ngx_http_finalize_request(r, rc);
}


static void
ngx_http_fanbase_webhook_cleanup(void *data)
{
    ngx_http_fanbase_webhook_ctx_t  *ctx = data;

    fanbase_json_update_free(&ctx->u);
}


/*
 * NULL: genuine; else why not, for the log and the answer.  Without a body,
 * only what the headers can tell: present, in time, well-formed.
 */

static const char *
ngx_http_fanbase_webhook_verify(ngx_http_request_t *r,
    ngx_http_fanbase_loc_conf_t *lcf, ngx_str_t *body, ngx_str_t *msg_id)
{
    time_t            ts, now;
    ngx_uint_t        i;
    ngx_table_elt_t  *id, *stamp, *sig, *h;

    if (lcf->webhook_auth == NGX_HTTP_FANBASE_AUTH_STANDARD) {

        id = ngx_http_fanbase_request_header_in(r, "webhook-id",
                                                sizeof("webhook-id") - 1);
        stamp = ngx_http_fanbase_request_header_in(r, "webhook-timestamp",
                                               sizeof("webhook-timestamp") - 1);
        sig = ngx_http_fanbase_request_header_in(r, "webhook-signature",
                                               sizeof("webhook-signature") - 1);

        if (id == NULL || stamp == NULL || sig == NULL) {
            return "webhook-id, webhook-timestamp or webhook-signature "
                   "is missing";
        }

        if (id->value.len == 0 || id->value.len > NGX_HTTP_FANBASE_MSG_ID_MAX)
        {
            return "webhook-id is empty or too long";
        }

        /* it is kept, saved and logged: visible ASCII, as Svix's ids are */

        for (i = 0; i < id->value.len; i++) {
            if (id->value.data[i] <= 0x20 || id->value.data[i] >= 0x7f) {
                return "webhook-id is not visible ASCII";
            }
        }

        ts = ngx_atotm(stamp->value.data, stamp->value.len);

        if (ts == NGX_ERROR) {
            return "webhook-timestamp is not a number of seconds";
        }

        now = ngx_time();

        if (ts < now - lcf->webhook_tolerance
            || ts > now + lcf->webhook_tolerance)
        {
            return "webhook-timestamp is outside the tolerance";
        }

        if (body == NULL) {
            return fanbase_sig_standard_wellformed(sig->value.data,
                                                   sig->value.len)
                   ? NULL : "no valid signature in webhook-signature";
        }

        if (!fanbase_sig_standard_verify(lcf->webhook_keys,
                                         lcf->webhook_nkeys,
                                         id->value.data, id->value.len,
                                         stamp->value.data, stamp->value.len,
                                         body->data, body->len,
                                         sig->value.data, sig->value.len))
        {
            return "no valid signature in webhook-signature";
        }

        *msg_id = id->value;
        return NULL;
    }

    h = ngx_http_fanbase_request_header_in(r, (char *) lcf->webhook_header.data,
                                           lcf->webhook_header.len);
    if (h == NULL) {
        return "the signature header is missing";
    }

    if (body == NULL) {
        return (lcf->webhook_auth == NGX_HTTP_FANBASE_AUTH_HMAC
                && !fanbase_sig_body_wellformed(h->value.data, h->value.len,
                                                (int) lcf->webhook_encoding))
               ? "the signature header does not match the body" : NULL;
    }

    if (lcf->webhook_auth == NGX_HTTP_FANBASE_AUTH_HMAC) {
        if (!fanbase_sig_body_verify(lcf->webhook_keys, lcf->webhook_nkeys,
                                     body->data, body->len, h->value.data,
                                     h->value.len, (int) lcf->webhook_encoding))
        {
            return "the signature header does not match the body";
        }

    } else if (!fanbase_sig_token_verify(lcf->webhook_keys,
                                         lcf->webhook_nkeys, h->value.data,
                                         h->value.len))
    {
        return "the token header does not match";
    }

    /* no message id in these schemes: the body's digest is one */

    msg_id->data = ngx_pnalloc(r->pool, 2 * 32);
    if (msg_id->data == NULL) {
        return "out of memory";
    }

    if (fanbase_sig_sha256_hex(body->data, body->len, msg_id->data) != 0) {
        return "the body's digest failed";
    }

    msg_id->len = 2 * 32;

    return NULL;
}


static ngx_int_t
ngx_http_fanbase_webhook_apply(ngx_http_fanbase_webhook_ctx_t *ctx,
    ngx_str_t *msg_id)
{
    ngx_int_t                      rc;
    ngx_uint_t                     uuid;
    fanbase_update_t              *u;
    ngx_http_request_t            *r;
    ngx_http_fanbase_hook_t       *hk;
    ngx_http_fanbase_loc_conf_t   *lcf;
    ngx_http_fanbase_main_conf_t  *mcf;

    r = ctx->request;
    lcf = ctx->lcf;
    u = &ctx->u;
    hk = &ctx->hk;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    hk->msg_id = *msg_id;
    hk->scope = lcf->scope;
    hk->expires = ngx_http_fanbase_time_now()
                  + (uint64_t) lcf->webhook_dedup * 1000;
    hk->id.data = (u_char *) u->id.data;
    hk->id.len = u->id.len;
    hk->status = u->status;
    hk->max_events = lcf->transaction_events;

    if (ngx_http_fanbase_id_valid(&hk->id) != NGX_OK) {
        return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_REQUEST,
                                               "invalid_update",
                                               "the id must be "
                                               "1 to 64 letters, digits, "
                                               "\"-\" or \"_\"");
    }

    uuid = (ngx_http_fanbase_id_valid_txn(&hk->id) == NGX_OK);

    ngx_http_fanbase_variables_id(r, !uuid || u->queue_item, hk->id.data,
                                  hk->id.len);

    /* a transaction the edge never saw is created from the second shape */

    hk->create = lcf->webhook_create && uuid && !u->queue_item;

    if (ngx_http_fanbase_webhook_event(r, u, !uuid || u->queue_item,
                                       &hk->event)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->op.done = ngx_http_fanbase_webhook_hooked;
    ctx->op.data = ctx;
    ctx->op.log = r->connection->log;

    rc = mcf->store->txn_hook(mcf, hk, &ctx->op);

    if (rc == NGX_AGAIN) {
        return ngx_http_fanbase_store_suspend(r, &ctx->op);
    }

    return ngx_http_fanbase_webhook_applied(ctx, rc);
}


static void
ngx_http_fanbase_webhook_hooked(ngx_http_fanbase_store_op_t *op)
{
    ngx_http_fanbase_webhook_ctx_t  *ctx = op->data;

    ngx_http_fanbase_store_resume(ctx->request,
                                  ngx_http_fanbase_webhook_applied(ctx,
                                                                   op->rc));
}


static ngx_int_t
ngx_http_fanbase_webhook_applied(ngx_http_fanbase_webhook_ctx_t *ctx,
    ngx_int_t rc)
{
    ngx_str_t                     *msg_id;
    fanbase_update_t              *u;
    ngx_http_request_t            *r;
    ngx_http_fanbase_hook_t       *hk;
    ngx_http_fanbase_main_conf_t  *mcf;

    r = ctx->request;
    u = &ctx->u;
    hk = &ctx->hk;
    msg_id = &hk->msg_id;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    ngx_http_fanbase_webhook_outcome(r, rc == NGX_OK
                                        ? NGX_HTTP_FANBASE_WEBHOOK_APPLIED
                                        : rc == NGX_DONE
                                        ? NGX_HTTP_FANBASE_WEBHOOK_DUPLICATE
                                        : NGX_HTTP_FANBASE_WEBHOOK_STALE);

    switch (rc) {

    case NGX_OK:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: webhook \"%V\": \"%V\" is %s", msg_id,
                      &hk->id, fanbase_json_status_name(u->status));
        break;

    case NGX_DONE:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: webhook \"%V\" is a duplicate, not applied "
                      "again", msg_id);
        break;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: webhook \"%V\" is stale: \"%V\" is not moved "
                      "to %s", msg_id, &hk->id,
                      fanbase_json_status_name(u->status));
        break;

    case NGX_ABORT:
        rc = ngx_http_fanbase_webhook_item(r, ctx->lcf, u);

        if (rc == NGX_BUSY) {
            mcf->store->txn_hook_release(mcf, hk->scope, msg_id);
            goto full;
        }

        break;

    case NGX_BUSY:
        goto full;

    case NGX_HTTP_FANBASE_ENGINE_DOWN:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: webhook \"%V\" refused: the shared store "
                      "(redis) does not answer", msg_id);

        return ngx_http_fanbase_response_unavailable(r, "engine_unavailable",
                                                     "the shared transaction "
                                                     "store cannot be "
                                                     "reached", 1);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    return ngx_http_send_header(r);

full:

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "fanbase: webhook refused: zone \"%V\" is full",
                  &mcf->shm_zone->shm.name);

    return ngx_http_fanbase_response_unavailable(r, "zone_full",
                                                 "the transaction store is "
                                                 "full", 5);
}


/*
 * An update for no transaction: a queue item of fanbase_status, which the
 * store keeps moving forward only.  NGX_BUSY: no room.
 */

static ngx_int_t
ngx_http_fanbase_webhook_item(ngx_http_request_t *r,
    ngx_http_fanbase_loc_conf_t *lcf, fanbase_update_t *u)
{
    ngx_int_t                      rc;
    ngx_str_t                      id;
    fanbase_item_t                 item;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    id.data = (u_char *) u->id.data;
    id.len = u->id.len;

    if (!u->queue_item || u->status > FANBASE_STATUS_FAILED
        || (!lcf->webhook_create
            && !ngx_http_fanbase_item_known(mcf, lcf->scope, &id)))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "fanbase: webhook for unknown \"%V\" ignored", &id);
        ngx_http_fanbase_webhook_outcome(r, NGX_HTTP_FANBASE_WEBHOOK_UNKNOWN);
        return NGX_OK;
    }

    ngx_memzero(&item, sizeof(fanbase_item_t));

    item.id = u->id;
    item.status = u->status;
    item.process_date = u->process_date;
    item.process_msg = u->process_msg;
    item.imsg = u->imsg;
    item.icode = u->icode;
    item.icode_set = u->icode_set;

    rc = ngx_http_fanbase_item_update(mcf, lcf->scope, &item, 0, 0, NULL,
                                       r->connection->log);

    if (rc == NGX_DECLINED) {
        return NGX_BUSY;
    }

    ngx_http_fanbase_webhook_outcome(r, rc == NGX_DONE
                                        ? NGX_HTTP_FANBASE_WEBHOOK_STALE
                                        : NGX_HTTP_FANBASE_WEBHOOK_APPLIED);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fanbase: webhook: queue item \"%V\" %s %s", &id,
                  rc == NGX_DONE ? "is stale, not moved to" : "is",
                  fanbase_json_status_name(u->status));

    return NGX_OK;
}


/* the event an applied update appends */

static ngx_int_t
ngx_http_fanbase_webhook_event(ngx_http_request_t *r, fanbase_update_t *u,
    ngx_uint_t queue_id, ngx_str_t *event)
{
    u_char         *p;
    size_t          len, elen;
    ngx_str_t       data;
    fanbase_str_t  *err, *msg;

    err = u->error_message.data ? &u->error_message
          : u->process_msg.data ? &u->process_msg : &u->imsg;
    msg = u->message.data ? &u->message : NULL;

    /* the sender's texts are cut by what they take once escaped */

    elen = fanbase_json_escape_cut(err->data, err->len,
                                   NGX_HTTP_FANBASE_WEBHOOK_TEXT_MAX);

    len = sizeof("{\"source\":\"webhook\",\"queue_id\":\"\","
                 "\"error_message\":\"\"}")
          + u->id.len + NGX_HTTP_FANBASE_WEBHOOK_TEXT_MAX;

    data.data = ngx_pnalloc(r->pool, len);
    if (data.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(data.data, "{\"source\":\"webhook\"",
                   sizeof("{\"source\":\"webhook\"") - 1);

    if (queue_id) {
        p = ngx_sprintf(p, ",\"queue_id\":\"%*s\"", u->id.len, u->id.data);
    }

    if (u->status == FANBASE_STATUS_FAILED && err->data != NULL) {
        p = ngx_cpymem(p, ",\"error_message\":\"",
                       sizeof(",\"error_message\":\"") - 1);
        p = fanbase_json_escape(p, err->data, elen);
        *p++ = '"';
    }

    *p++ = '}';
    data.len = p - data.data;

    /* the sender's message is text of its own: kept short and printable */

    if (msg != NULL) {
        len = fanbase_json_escape_cut(msg->data, msg->len,
                                      NGX_HTTP_FANBASE_WEBHOOK_MSG_MAX);
        p = ngx_pnalloc(r->pool, len + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p, msg->data, len);
        p[len] = '\0';

        if (ngx_strlen(p) == len) {
            return ngx_http_fanbase_txn_event(r->pool,
                              u->status == FANBASE_STATUS_FAILED
                              ? "failure" : "transition",
                              (char *) p, u->status, &data, event);
        }
    }

    return ngx_http_fanbase_txn_event(r->pool,
                      u->status == FANBASE_STATUS_FAILED
                      ? "failure" : "transition",
                      "updated by webhook", u->status, &data, event);
}


/* what became of the webhook, for fanbase_metrics (counted at the log phase) */

static void
ngx_http_fanbase_webhook_outcome(ngx_http_request_t *r, ngx_uint_t outcome)
{
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_fanbase_variables_ctx(r);

    if (ctx != NULL) {
        ctx->outcome = outcome + 1;
    }
}
