
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_metrics: the host's counters (ngx_http_fanbase_metrics.c) in
 * Prometheus' text exposition format (0.0.4), with the gauges read when
 * scraped: transactions by status, the zone's fill, backlogs, tokens,
 * breakers, and the shared engine's connection as this worker sees it.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_metrics.h"


/* room for everything but the credential sets, and for each of them */
#define NGX_HTTP_FANBASE_METRICS_FIXED  32768
#define NGX_HTTP_FANBASE_METRICS_CRED   (1024 + 4 * 6 * 256)


static u_char *ngx_http_fanbase_metrics_head(u_char *p, const char *name,
    const char *type, const char *help);
static u_char *ngx_http_fanbase_metrics_series(u_char *p,
    ngx_http_fanbase_metrics_t *m, ngx_http_fanbase_main_conf_t *mcf);
static u_char *ngx_http_fanbase_metrics_calls(u_char *p,
    ngx_http_fanbase_metrics_t *m);
static u_char *ngx_http_fanbase_metrics_redis_series(u_char *p,
    ngx_http_fanbase_metrics_redis_t *m, ngx_http_fanbase_main_conf_t *mcf);
static u_char *ngx_http_fanbase_metrics_tokens(u_char *p,
    ngx_http_fanbase_main_conf_t *mcf, ngx_pool_t *pool);
static u_char *ngx_http_fanbase_metrics_label(u_char *p, u_char *s,
    size_t len);


ngx_int_t
ngx_http_fanbase_metrics_handler(ngx_http_request_t *r)
{
    size_t                         len;
    u_char                        *p;
    ngx_int_t                      rc;
    ngx_buf_t                     *b;
    ngx_chain_t                    out;
    ngx_http_fanbase_main_conf_t  *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_fanbase_response_not_allowed(r, "GET, HEAD",
                                                     "metrics are GET or "
                                                     "HEAD only");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    len = NGX_HTTP_FANBASE_METRICS_FIXED
          + mcf->creds.nelts * NGX_HTTP_FANBASE_METRICS_CRED;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_http_fanbase_metrics_series(b->pos, &mcf->sh->metrics, mcf);

    if (mcf->redis != NULL && mcf->sh->metrics.redis != NULL) {
        p = ngx_http_fanbase_metrics_redis_series(p, mcf->sh->metrics.redis,
                                                  mcf);
    }

    p = ngx_http_fanbase_metrics_tokens(p, mcf, r->pool);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_fanbase_metrics_head(u_char *p, const char *name, const char *type,
    const char *help)
{
    return ngx_sprintf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}


static u_char *
ngx_http_fanbase_metrics_series(u_char *p, ngx_http_fanbase_metrics_t *m,
    ngx_http_fanbase_main_conf_t *mcf)
{
    size_t                          used;
    uint64_t                        ok;
    ngx_uint_t                      i, mode, waiting, probing;
    ngx_atomic_uint_t               n;
    ngx_http_fanbase_shctx_t       *sh;
    ngx_http_fanbase_txn_health_t   th;

    sh = mcf->sh;

    p = ngx_http_fanbase_metrics_head(p, "fanbase_submissions_total",
                                      "counter", "Submissions answered, by "
                                      "mode and by the answer's code.");

    for (mode = 0; mode < 2; mode++) {
        for (i = 0; ngx_http_fanbase_metrics_codes[i]; i++) {
            n = m->submissions[mode][i];

            /* the answer of a success is always there, the others once seen */

            if (n == 0 && i != (mode ? NGX_HTTP_FANBASE_CODE_ACCEPTED
                                     : NGX_HTTP_FANBASE_CODE_CREATED))
            {
                continue;
            }

            p = ngx_sprintf(p, "fanbase_submissions_total{mode=\"%s\","
                            "code=\"%s\"} %uA\n", mode ? "async" : "sync",
                            ngx_http_fanbase_metrics_codes[i], n);
        }
    }

    p = ngx_http_fanbase_metrics_calls(p, m);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_deliveries_total",
                                      "counter", "Attempts to deliver an "
                                      "asynchronous transaction to Fanbase, "
                                      "by result.");

    for (i = 0; i < NGX_HTTP_FANBASE_DELIVERY_RESULTS; i++) {
        p = ngx_sprintf(p, "fanbase_deliveries_total{result=\"%s\"} %uA\n",
                        ngx_http_fanbase_metrics_deliveries[i],
                        m->deliveries[i]);
    }

    p = ngx_http_fanbase_metrics_head(p, "fanbase_webhooks_received_total",
                                      "counter", "Status webhooks received "
                                      "from Fanbase, by result.");

    for (i = 0; i < NGX_HTTP_FANBASE_WEBHOOK_RESULTS; i++) {
        p = ngx_sprintf(p, "fanbase_webhooks_received_total{result=\"%s\"} "
                        "%uA\n", ngx_http_fanbase_metrics_webhooks[i],
                        m->webhooks[i]);
    }

    p = ngx_http_fanbase_metrics_head(p, "fanbase_notifications_total",
                                      "counter", "Attempts to send a webhook "
                                      "to the site, by result.");

    for (i = 0; i < NGX_HTTP_FANBASE_NOTIFY_RESULTS; i++) {
        p = ngx_sprintf(p, "fanbase_notifications_total{result=\"%s\"} %uA\n",
                        ngx_http_fanbase_metrics_notifications[i],
                        m->notifications[i]);
    }

    /* the gauges: the transactions' under the lock, in one pass */

    ngx_http_fanbase_txn_health(mcf, &th);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_transactions", "gauge",
                                      "Asynchronous transactions in the "
                                      "zone, by status.");

    for (i = FANBASE_STATUS_PENDING; i <= FANBASE_STATUS_CANCELLED; i++) {
        p = ngx_sprintf(p, "fanbase_transactions{status=\"%s\"} %ui\n",
                        ngx_http_fanbase_metrics_statuses[i], th.by_status[i]);
    }

    p = ngx_http_fanbase_metrics_head(p, "fanbase_delivery_backlog", "gauge",
                                      "Transactions accepted and not yet "
                                      "delivered to Fanbase.");
    p = ngx_sprintf(p, "fanbase_delivery_backlog %ui\n",
                    th.by_status[FANBASE_STATUS_PENDING]);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_notification_backlog",
                                      "gauge", "Webhooks to the site waiting "
                                      "to be sent.");
    p = ngx_sprintf(p, "fanbase_notification_backlog %ui\n",
                    sh->notice_count);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_long_poll_waiters", "gauge",
                                      "Requests waiting in a long poll of "
                                      "a transaction.");
    p = ngx_sprintf(p, "fanbase_long_poll_waiters %uA\n", m->waiters);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_idempotency_keys", "gauge",
                                      "Idempotency-Keys remembered.");
    p = ngx_sprintf(p, "fanbase_idempotency_keys %ui\n", th.idempotency_keys);

    waiting = 0;
    probing = 0;

    for (i = 0; i < th.nbreakers; i++) {
        waiting += th.breakers[i].waiting;
        probing += th.breakers[i].probing;
    }

    p = ngx_http_fanbase_metrics_head(p, "fanbase_breakers_open", "gauge",
                                      "Routes to Fanbase whose circuit "
                                      "breaker is open.");
    p = ngx_sprintf(p, "fanbase_breakers_open %ui\n", th.nbreakers);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_breaker_waiting", "gauge",
                                      "Transactions parked behind an open "
                                      "breaker.");
    p = ngx_sprintf(p, "fanbase_breaker_waiting %ui\n", waiting);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_breaker_probing", "gauge",
                                      "Open breakers with a probe out.");
    p = ngx_sprintf(p, "fanbase_breaker_probing %ui\n", probing);

    /* words in the zone, read without the lock */

    p = ngx_http_fanbase_metrics_head(p, "fanbase_queue_items", "gauge",
                                      "Fanbase queue items kept for "
                                      "fanbase_status.");
    p = ngx_sprintf(p, "fanbase_queue_items %ui\n", sh->entries);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_queue_item_evictions_total",
                                      "counter", "Queue items evicted to make "
                                      "room (since the zone's start).");
    p = ngx_sprintf(p, "fanbase_queue_item_evictions_total %ui\n",
                    sh->evictions);

    used = mcf->shm_zone->shm.size - mcf->shpool->pfree * ngx_pagesize;

    p = ngx_http_fanbase_metrics_head(p, "fanbase_zone_size_bytes", "gauge",
                                      "Size of the shared memory zone.");
    p = ngx_sprintf(p, "fanbase_zone_size_bytes %uz\n",
                    mcf->shm_zone->shm.size);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_zone_used_bytes", "gauge",
                                      "Bytes of the zone in use (whole "
                                      "pages).");
    p = ngx_sprintf(p, "fanbase_zone_used_bytes %uz\n", used);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_zone_full", "gauge",
                                      "1 if the zone refused the last new "
                                      "transaction.");
    p = ngx_sprintf(p, "fanbase_zone_full %ui\n", th.full ? 1 : 0);

    ok = sh->fanbase_ok;

    p = ngx_http_fanbase_metrics_head(p, "fanbase_journal_written_bytes_total",
                                      "counter", "Bytes of transaction "
                                      "records written to the journal and "
                                      "synced (since the zone's start).");
    p = ngx_sprintf(p, "fanbase_journal_written_bytes_total %uA\n",
                    sh->journal_bytes);

    p = ngx_http_fanbase_metrics_head(p,
                                      "fanbase_last_answer_timestamp_seconds",
                                      "gauge", "When Fanbase last answered "
                                      "(0: never since the start).");
    p = ngx_sprintf(p, "fanbase_last_answer_timestamp_seconds %uL.%03uL\n",
                    ok / 1000, ok % 1000);

    return p;
}


/* the duration histogram, by kind of call */

static u_char *
ngx_http_fanbase_metrics_calls(u_char *p, ngx_http_fanbase_metrics_t *m)
{
    ngx_uint_t          k, i;
    ngx_atomic_uint_t   sum, usec;

    p = ngx_http_fanbase_metrics_head(p,
                                    "fanbase_upstream_request_duration_seconds",
                                    "histogram", "Calls to Fanbase and its "
                                    "token endpoint, as libcurl timed them, "
                                    "by kind.");

    for (k = 1; k < NGX_HTTP_FANBASE_CALL_KINDS; k++) {
        sum = 0;

        for (i = 0; i < NGX_HTTP_FANBASE_METRICS_BUCKETS; i++) {
            sum += m->calls[k - 1][i];

            p = ngx_sprintf(p, "fanbase_upstream_request_duration_seconds_"
                            "bucket{kind=\"%s\",le=\"%s\"} %uA\n",
                            ngx_http_fanbase_metrics_kinds[k],
                            ngx_http_fanbase_metrics_le[i], sum);
        }

        usec = m->calls_usec[k - 1];

        p = ngx_sprintf(p, "fanbase_upstream_request_duration_seconds_sum"
                        "{kind=\"%s\"} %uA.%06uA\n"
                        "fanbase_upstream_request_duration_seconds_count"
                        "{kind=\"%s\"} %uA\n",
                        ngx_http_fanbase_metrics_kinds[k], usec / 1000000,
                        usec % 1000000, ngx_http_fanbase_metrics_kinds[k],
                        sum);
    }

    return p;
}


/*
 * The shared engine (fanbase_redis): its commands, host-wide, and its
 * connection as the worker that answers the scrape sees it (every worker
 * has its own; they reach the same Redis the same way)
 */

static u_char *
ngx_http_fanbase_metrics_redis_series(u_char *p,
    ngx_http_fanbase_metrics_redis_t *m, ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_uint_t          i, up, alone;
    ngx_atomic_uint_t   sum, usec;

    p = ngx_http_fanbase_metrics_head(p, "fanbase_redis_commands_total",
                                      "counter", "Commands of the shared "
                                      "engine sent to Redis, by result: "
                                      "answered, answered with an error, or "
                                      "failed without an answer.");

    for (i = 0; i < NGX_HTTP_FANBASE_METRICS_REDIS_RESULTS; i++) {
        p = ngx_sprintf(p, "fanbase_redis_commands_total{result=\"%s\"} "
                        "%uA\n", ngx_http_fanbase_metrics_redis_results[i],
                        m->commands[i]);
    }

    p = ngx_http_fanbase_metrics_head(p,
                                      "fanbase_redis_command_duration_seconds",
                                      "histogram", "Commands of the shared "
                                      "engine answered by Redis, from their "
                                      "queueing to their answer.");

    sum = 0;

    for (i = 0; i < NGX_HTTP_FANBASE_METRICS_BUCKETS; i++) {
        sum += m->duration[i];

        p = ngx_sprintf(p, "fanbase_redis_command_duration_seconds_bucket"
                        "{le=\"%s\"} %uA\n", ngx_http_fanbase_metrics_le[i],
                        sum);
    }

    usec = m->duration_usec;

    p = ngx_sprintf(p, "fanbase_redis_command_duration_seconds_sum "
                    "%uA.%06uA\n"
                    "fanbase_redis_command_duration_seconds_count %uA\n",
                    usec / 1000000, usec % 1000000, sum);

    up = ngx_http_fanbase_redis_up();
    alone = !up
            && mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL;

    p = ngx_http_fanbase_metrics_head(p, "fanbase_redis_connected", "gauge",
                                      "1 while the command connection to "
                                      "Redis of the worker that answers is "
                                      "up.");
    p = ngx_sprintf(p, "fanbase_redis_connected %ui\n", up);

    p = ngx_http_fanbase_metrics_head(p, "fanbase_redis_fallback", "gauge",
                                      "1 while this host works alone from its "
                                      "zone because Redis does not answer "
                                      "(fallback=local).");
    p = ngx_sprintf(p, "fanbase_redis_fallback %ui\n", alone);

    return p;
}


/* each credential set's token fetches and expiry; never a secret */

static u_char *
ngx_http_fanbase_metrics_tokens(u_char *p, ngx_http_fanbase_main_conf_t *mcf,
    ngx_pool_t *pool)
{
    u_char                           *q;
    uint64_t                          now, at;
    ngx_str_t                        *labels;
    ngx_uint_t                        i;
    ngx_http_fanbase_cred_t         **credp, *cred;
    ngx_http_fanbase_token_health_t  *th;

    if (mcf->creds.nelts == 0) {
        return p;
    }

    credp = mcf->creds.elts;
    now = ngx_http_fanbase_time_now();

    labels = ngx_palloc(pool, mcf->creds.nelts * sizeof(ngx_str_t));
    th = ngx_palloc(pool, mcf->creds.nelts
                          * sizeof(ngx_http_fanbase_token_health_t));
    if (labels == NULL || th == NULL) {
        return p;
    }

    /* credentials="<client id>",host="<the token endpoint's host>" */

    for (i = 0; i < mcf->creds.nelts; i++) {
        cred = credp[i];

        (void) ngx_http_fanbase_token_health(cred, pool, &th[i]);

        labels[i].data = ngx_pnalloc(pool, sizeof("credentials=\"\",host=\"\"")
                                           + 2 * cred->client_id.len
                                           + 2 * cred->host.len);
        if (labels[i].data == NULL) {
            return p;
        }

        q = ngx_cpymem(labels[i].data, "credentials=\"",
                       sizeof("credentials=\"") - 1);
        q = ngx_http_fanbase_metrics_label(q, cred->client_id.data,
                                           cred->client_id.len);
        q = ngx_cpymem(q, "\",host=\"", sizeof("\",host=\"") - 1);
        q = ngx_http_fanbase_metrics_label(q, cred->host.data,
                                           cred->host.len);
        *q++ = '"';

        labels[i].len = q - labels[i].data;
    }

    p = ngx_http_fanbase_metrics_head(p, "fanbase_token_fetches_total",
                                      "counter", "Token requests to the "
                                      "Security endpoint, by credential set "
                                      "and result.");

    for (i = 0; i < mcf->creds.nelts; i++) {
        p = ngx_sprintf(p, "fanbase_token_fetches_total{%V,result=\"ok\"} "
                        "%uL\nfanbase_token_fetches_total{%V,"
                        "result=\"failed\"} %uL\n", &labels[i],
                        th[i].fetched_ok, &labels[i], th[i].fetched_failed);
    }

    p = ngx_http_fanbase_metrics_head(p, "fanbase_token_valid", "gauge",
                                      "1 while the credential set has a "
                                      "valid token (or a fixed one).");

    for (i = 0; i < mcf->creds.nelts; i++) {
        p = ngx_sprintf(p, "fanbase_token_valid{%V} %d\n", &labels[i],
                        (th[i].expires_in
                         || ngx_strcmp(th[i].state, "fixed") == 0) ? 1 : 0);
    }

    p = ngx_http_fanbase_metrics_head(p,
                                      "fanbase_token_expiry_timestamp_seconds",
                                      "gauge", "When the credential set's "
                                      "token stops being used (its lifetime "
                                      "less the edge's skew); absent while "
                                      "it has none.");

    for (i = 0; i < mcf->creds.nelts; i++) {
        if (th[i].expires_in == 0) {
            continue;
        }

        at = now + th[i].expires_in;

        p = ngx_sprintf(p, "fanbase_token_expiry_timestamp_seconds{%V} "
                        "%uL.%03uL\n", &labels[i], at / 1000, at % 1000);
    }

    return p;
}


/* a label's value: backslash, double quote and line feed escaped */

static u_char *
ngx_http_fanbase_metrics_label(u_char *p, u_char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        switch (s[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = s[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = s[i];
        }
    }

    return p;
}
