
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The host's counters, for fanbase_metrics (ngx_http_fanbase_prometheus.c
 * says them).  They live in the zone (metrics.h); every worker adds to
 * them with one atomic add where a thing happens, and never takes the
 * zone's lock for it.  Submissions and inbound webhooks are counted once
 * each, at the log phase, by the answer they got; the calls to Fanbase by
 * the bridge (curl.c), from libcurl's own timing; deliveries and
 * notifications where their attempts end; the shared engine's commands by
 * its client (redis.c), when they are answered or fail.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_metrics.h"




static ngx_int_t ngx_http_fanbase_metrics_log(ngx_http_request_t *r);
static ngx_uint_t ngx_http_fanbase_metrics_bucket(ngx_msec_t usec);
static ngx_uint_t ngx_http_fanbase_metrics_code(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx);
static ngx_uint_t ngx_http_fanbase_metrics_webhook(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx);


/* the answers of a submission: the first ones have no error code */

const char  *ngx_http_fanbase_metrics_codes[] = {
    "created",
    "accepted",
    "rejected",
    "client_closed",
    "other",
    "invalid_json",
    "invalid_submission",
    "invalid_idempotency_key",
    "bad_request",
    "method_not_allowed",
    "request_timeout",
    "body_too_large",
    "unsupported_media_type",
    "idempotency_key_reused",
    "internal_error",
    "upstream_unreachable",
    "upstream_error",
    "upstream_invalid_response",
    "upstream_timeout",
    "token_unavailable",
    "token_rejected",
    "zone_full",
    "unavailable",
    "not_durable",
    "error",
    NULL
};

/* the table and the counters agree, or this does not compile */
typedef char ngx_http_fanbase_metrics_codes_check[
    (sizeof(ngx_http_fanbase_metrics_codes)
     == (NGX_HTTP_FANBASE_METRICS_CODES + 1) * sizeof(char *)) ? 1 : -1];

const char  *ngx_http_fanbase_metrics_kinds[] = {
    NULL, "submit", "status", "deliver", "track", "token"
};

/* seconds, as the label says them, and in microseconds */

const char  *ngx_http_fanbase_metrics_le[] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30", "+Inf"
};

static const ngx_msec_t  ngx_http_fanbase_metrics_le_usec[] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000, 30000000
};

const char  *ngx_http_fanbase_metrics_deliveries[] = {
    "delivered", "retried", "rejected", "outcome_unknown", "unreadable",
    "gave_up"
};

const char  *ngx_http_fanbase_metrics_webhooks[] = {
    "applied", "duplicate", "stale", "unknown", "forged", "invalid",
    "zone_full", "error"
};

const char  *ngx_http_fanbase_metrics_notifications[] = {
    "delivered", "retried", "dropped"
};

const char  *ngx_http_fanbase_metrics_statuses[] = {
    "unknown", "pending", "processing", "completed", "failed", "cancelled"
};

const char  *ngx_http_fanbase_metrics_redis_results[] = {
    "ok", "error", "no_answer"
};


/* this process's view of the zone's counters; NULL: no zone */

static ngx_http_fanbase_metrics_t        *ngx_http_fanbase_metrics;

/* ... and of the shared engine's; NULL: no fanbase_redis */

static ngx_http_fanbase_metrics_redis_t  *ngx_http_fanbase_metrics_engine;


/* the log phase handler that counts submissions and inbound webhooks */

ngx_int_t
ngx_http_fanbase_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_fanbase_metrics_log;

    return NGX_OK;
}


void
ngx_http_fanbase_metrics_init_process(ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_http_fanbase_metrics = (mcf->sh != NULL) ? &mcf->sh->metrics : NULL;

    ngx_http_fanbase_metrics_engine = (mcf->sh != NULL && mcf->redis != NULL)
                                       ? mcf->sh->metrics.redis : NULL;
}


/*
 * The shared engine's counters, allocated when a zone is made or kept
 * over a reload (a reload may add fanbase_redis; one that takes it away
 * leaves them, unused, for the next that adds it)
 */

ngx_int_t
ngx_http_fanbase_metrics_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    return ngx_http_fanbase_metrics_attach_zone(mcf, size, log);
}


ngx_int_t
ngx_http_fanbase_metrics_attach_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    ngx_http_fanbase_metrics_redis_t  *m;

    if (mcf->redis == NULL || mcf->sh->metrics.redis != NULL) {
        return NGX_OK;
    }

    m = ngx_slab_calloc(mcf->shpool, sizeof(ngx_http_fanbase_metrics_redis_t));

    if (m == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "fanbase: zone \"%V\" has no room for the counters "
                      "of \"fanbase_redis\"", &mcf->shm_zone->shm.name);
        return NGX_ERROR;
    }

    mcf->sh->metrics.redis = m;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_fanbase_metrics_bucket(ngx_msec_t usec)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_FANBASE_METRICS_BUCKETS - 1; i++) {
        if (usec <= ngx_http_fanbase_metrics_le_usec[i]) {
            break;
        }
    }

    return i;
}


void
ngx_http_fanbase_metrics_call(ngx_uint_t kind, ngx_msec_t usec)
{
    ngx_uint_t                   i;
    ngx_http_fanbase_metrics_t  *m;

    m = ngx_http_fanbase_metrics;

    if (m == NULL || kind == NGX_HTTP_FANBASE_CALL_NONE
        || kind >= NGX_HTTP_FANBASE_CALL_KINDS)
    {
        return;
    }

    i = ngx_http_fanbase_metrics_bucket(usec);

    /* one bucket each, summed up when scraped */

    (void) ngx_atomic_fetch_add(&m->calls[kind - 1][i], 1);
    (void) ngx_atomic_fetch_add(&m->calls_usec[kind - 1], usec);
}


void
ngx_http_fanbase_metrics_count(ngx_uint_t what, ngx_uint_t result)
{
    ngx_http_fanbase_metrics_t  *m;

    m = ngx_http_fanbase_metrics;

    if (m == NULL) {
        return;
    }

    switch (what) {

    case NGX_HTTP_FANBASE_METRICS_DELIVERY:
        (void) ngx_atomic_fetch_add(&m->deliveries[result], 1);
        break;

    case NGX_HTTP_FANBASE_METRICS_WEBHOOK:
        (void) ngx_atomic_fetch_add(&m->webhooks[result], 1);
        break;

    default: /* NGX_HTTP_FANBASE_METRICS_NOTIFY */
        (void) ngx_atomic_fetch_add(&m->notifications[result], 1);
        break;
    }
}


void
ngx_http_fanbase_metrics_waiters(ngx_int_t n)
{
    if (ngx_http_fanbase_metrics != NULL) {
        (void) ngx_atomic_fetch_add(&ngx_http_fanbase_metrics->waiters,
                                    (ngx_atomic_int_t) n);
    }
}


/*
 * A command of the shared engine is done: answered (reply), or failed
 * without an answer (reply NULL: its connection broke or timed out; cmd
 * NULL too: there was no connection to queue it on).  An answer is timed
 * from the command's queueing, an error reply included.
 */

void
ngx_http_fanbase_metrics_redis(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    uint64_t                           usec;
    ngx_uint_t                         i;
    ngx_http_fanbase_metrics_redis_t  *m;

    m = ngx_http_fanbase_metrics_engine;

    if (m == NULL || (cmd != NULL && cmd->queued == 0)) {
        return;
    }

    if (reply == NULL) {
        (void) ngx_atomic_fetch_add(
                   &m->commands[NGX_HTTP_FANBASE_METRICS_REDIS_NO_ANSWER], 1);
        return;
    }

    i = (reply->type == REDIS_REPLY_ERROR)
        ? NGX_HTTP_FANBASE_METRICS_REDIS_ERROR
        : NGX_HTTP_FANBASE_METRICS_REDIS_OK;

    (void) ngx_atomic_fetch_add(&m->commands[i], 1);

    usec = ngx_http_fanbase_time_usec() - cmd->queued;

    (void) ngx_atomic_fetch_add(
               &m->duration[ngx_http_fanbase_metrics_bucket(usec)], 1);
    (void) ngx_atomic_fetch_add(&m->duration_usec, usec);
}


static ngx_int_t
ngx_http_fanbase_metrics_log(ngx_http_request_t *r)
{
    ngx_uint_t                    i;
    ngx_http_fanbase_ctx_t       *ctx;
    ngx_http_fanbase_metrics_t   *m;
    ngx_http_fanbase_loc_conf_t  *lcf;

    m = ngx_http_fanbase_metrics;

    if (m == NULL) {
        return NGX_OK;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    switch (lcf->handler) {

    case NGX_HTTP_FANBASE_SUBMIT:
        i = ngx_http_fanbase_metrics_code(r, ctx);
        (void) ngx_atomic_fetch_add(&m->submissions[lcf->async ? 1 : 0][i],
                                    1);
        break;

    case NGX_HTTP_FANBASE_WEBHOOK:
        i = ngx_http_fanbase_metrics_webhook(r, ctx);
        (void) ngx_atomic_fetch_add(&m->webhooks[i], 1);
        break;
    }

    return NGX_OK;
}


/* a submission's answer: the error code we gave, or what the status says */

static ngx_uint_t
ngx_http_fanbase_metrics_code(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx)
{
    ngx_uint_t   i, status;

    if (ctx != NULL && ctx->error != NULL) {
        for (i = NGX_HTTP_FANBASE_CODE_OTHER + 1;
             ngx_http_fanbase_metrics_codes[i];
             i++)
        {
            if (ngx_strcmp(ngx_http_fanbase_metrics_codes[i], ctx->error)
                == 0)
            {
                return i;
            }
        }

        return NGX_HTTP_FANBASE_CODE_OTHER;
    }

    status = r->headers_out.status;

    if (status == NGX_HTTP_CREATED) {
        return NGX_HTTP_FANBASE_CODE_CREATED;
    }

    if (status == NGX_HTTP_OK || status == NGX_HTTP_ACCEPTED) {
        /* an Idempotency-Key's repeat is answered as the first time */
        return NGX_HTTP_FANBASE_CODE_ACCEPTED;
    }

    if (status == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        return NGX_HTTP_FANBASE_CODE_CLIENT_CLOSED;
    }

    if (status >= NGX_HTTP_BAD_REQUEST && status < 500) {
        /* Fanbase's own refusal, relayed */
        return NGX_HTTP_FANBASE_CODE_REJECTED;
    }

    return NGX_HTTP_FANBASE_CODE_OTHER;
}


static ngx_uint_t
ngx_http_fanbase_metrics_webhook(ngx_http_request_t *r,
    ngx_http_fanbase_ctx_t *ctx)
{
    if (ctx != NULL && ctx->error != NULL) {

        if (ngx_strcmp(ctx->error, "unauthorized") == 0) {
            return NGX_HTTP_FANBASE_WEBHOOK_FORGED;
        }

        if (ngx_strcmp(ctx->error, "zone_full") == 0) {
            return NGX_HTTP_FANBASE_WEBHOOK_ZONE_FULL;
        }

        return (r->headers_out.status >= NGX_HTTP_INTERNAL_SERVER_ERROR)
               ? NGX_HTTP_FANBASE_WEBHOOK_ERROR
               : NGX_HTTP_FANBASE_WEBHOOK_INVALID;
    }

    if (ctx != NULL && ctx->outcome) {
        return ctx->outcome - 1;
    }

    return NGX_HTTP_FANBASE_WEBHOOK_ERROR;
}
