
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Background delivery and tracking of asynchronous transactions.  Each
 * worker's delivery scheduler (ngx_http_fanbase_sched.c) claims due
 * transactions in the store (ngx_http_fanbase_store.h), at most
 * fanbase_deliver_concurrency at a time; this file works on them through
 * the libcurl bridge with the edge's token: a pending one is POSTed to
 * Fanbase's queue, a delivered one is read back from it until it ends.
 * Whatever happens, the claim is released with the transaction's new
 * state and the time its next step is due.
 *
 * A POST is sent again only when it provably did not reach Fanbase (the
 * request never left, or Fanbase refused it before taking it: 401, 403,
 * 429, 502, 503, 504); when it may have reached Fanbase and no usable
 * answer came back, the transaction fails with "delivery outcome unknown"
 * rather than risk a duplicate sale.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_logsum.h"
#include "ngx_http_fanbase_sched.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_deliver.h"


#define NGX_HTTP_FANBASE_TICK          1000
#define NGX_HTTP_FANBASE_BACKOFF_MAX   (300 * 1000)
#define NGX_HTTP_FANBASE_POLL_MAX      (60 * 1000)
#define NGX_HTTP_FANBASE_ERROR_BODY    1024


static ngx_queue_t *ngx_http_fanbase_deliver_claim(
    ngx_http_fanbase_sched_t *s, ngx_msec_t *next);
static void ngx_http_fanbase_deliver_claimed(ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_deliver_start(ngx_queue_t *q);
static void ngx_http_fanbase_deliver_job_start(ngx_http_fanbase_job_t *job);
static ngx_int_t ngx_http_fanbase_deliver_job_send(
    ngx_http_fanbase_job_t *job);
static ngx_int_t ngx_http_fanbase_deliver_job_wait(
    ngx_http_fanbase_waiter_t *w);
static void ngx_http_fanbase_deliver_job_sending(
    ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_deliver_job_post(ngx_http_fanbase_job_t *job,
    ngx_int_t rc);
static void ngx_http_fanbase_deliver_job_done(ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_deliver_job_delivered(ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_deliver_job_tracked(ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_deliver_job_retry(ngx_http_fanbase_job_t *job,
    const char *why, ngx_msec_t at_least, ngx_uint_t down);
static void ngx_http_fanbase_deliver_job_fail(ngx_http_fanbase_job_t *job,
    const char *code, ngx_str_t *message);
static void ngx_http_fanbase_deliver_job_finish(ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_txn_update_t *u);
static void ngx_http_fanbase_deliver_job_free(ngx_http_fanbase_job_t *job);
static ngx_int_t ngx_http_fanbase_deliver_job_message(
    ngx_http_fanbase_job_t *job, ngx_str_t *out, const char *fmt, ...);
static ngx_msec_t ngx_http_fanbase_deliver_retry_after(
    ngx_http_fanbase_curl_t *h);


static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_deliver_mcf;
static ngx_http_fanbase_sched_t       ngx_http_fanbase_deliver_sched;
static ngx_msec_t                     ngx_http_fanbase_deliver_lease;
static ngx_http_fanbase_logsum_t      ngx_http_fanbase_deliver_failures;


ngx_int_t
ngx_http_fanbase_deliver_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_uint_t                     i;
    ngx_http_fanbase_loc_conf_t  **lcfp;

    if (mcf->targets.nelts == 0) {
        return NGX_OK;
    }

    ngx_http_fanbase_deliver_mcf = mcf;

    /*
     * a claim lasts as long as a job may: a call, a token rejection and
     * the call again, and some slack
     */

    lcfp = mcf->targets.elts;
    ngx_http_fanbase_deliver_lease = 0;

    for (i = 0; i < mcf->targets.nelts; i++) {
        ngx_http_fanbase_deliver_lease = ngx_max(
                                          ngx_http_fanbase_deliver_lease,
                                          2 * lcfp[i]->upstream.timeout
                                          + 5000);
    }

    ngx_http_fanbase_deliver_sched.claim = ngx_http_fanbase_deliver_claim;
    ngx_http_fanbase_deliver_sched.op.done = ngx_http_fanbase_deliver_claimed;
    ngx_http_fanbase_deliver_sched.start = ngx_http_fanbase_deliver_start;
    ngx_http_fanbase_deliver_sched.concurrency = mcf->deliver_concurrency;
    ngx_http_fanbase_deliver_sched.tick = NGX_HTTP_FANBASE_TICK;

    ngx_http_fanbase_logsum_init(&ngx_http_fanbase_deliver_failures,
                                 "transaction not delivered",
                                 "transactions not delivered", NGX_LOG_WARN,
                                 NGX_HTTP_FANBASE_LOGSUM_EVERY, cycle->log);

    /* a leaving worker finishes its transfers, but claims nothing new */
    ngx_http_fanbase_sched_start(&ngx_http_fanbase_deliver_sched, cycle->log);

    return NGX_OK;
}


/*
 * At exit, claims on work that never reached Fanbase are given back at
 * once; a POST that may be on the wire keeps its claim, and whoever takes
 * it over finds it ambiguous.
 */

void
ngx_http_fanbase_deliver_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                    *q;
    ngx_http_fanbase_job_t         *job;
    ngx_http_fanbase_sched_t       *s;
    ngx_http_fanbase_txn_update_t   u;

    if (ngx_http_fanbase_deliver_mcf == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_fanbase_deliver_sched.jobs)) {
        q = ngx_queue_head(&ngx_http_fanbase_deliver_sched.jobs);
        job = ngx_queue_data(q, ngx_http_fanbase_job_t, queue);

        if (job->op.pending) {
            /* the store did not answer "sending" yet: nothing left */
            job->op.store->cancel(&job->op);
        }

        if (job->kind == NGX_HTTP_FANBASE_JOB_TRACK
            || job->http == NULL || job->http->attempts == 0)
        {
            ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));
            u.not_sent = 1;
            ngx_http_fanbase_deliver_mcf->store->txn_finish(
                                       ngx_http_fanbase_deliver_mcf, job, &u,
                                       cycle->log);

        } else {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "fanbase: transaction \"%V\" was on its way to "
                          "Fanbase at worker exit", &job->id_str);
        }

        ngx_http_fanbase_deliver_job_free(job);
    }

    s = &ngx_http_fanbase_deliver_sched;

    if (s->op.pending) {
        /* a claim granted now runs out with its lease */
        s->op.store->cancel(&s->op);
        ngx_free(s->op.data);
    }

    ngx_http_fanbase_sched_stop(s);

    ngx_http_fanbase_deliver_mcf = NULL;
}


/* work is due now: a new transaction */

void
ngx_http_fanbase_deliver_kick(void)
{
    ngx_http_fanbase_sched_kick(&ngx_http_fanbase_deliver_sched);
}


/* the next due transaction, claimed for a delivery or a status poll */

static ngx_queue_t *
ngx_http_fanbase_deliver_claim(ngx_http_fanbase_sched_t *s, ngx_msec_t *next)
{
    ngx_int_t                      rc;
    ngx_http_fanbase_job_t        *job;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_fanbase_deliver_mcf;

    job = ngx_calloc(sizeof(ngx_http_fanbase_job_t), s->event.log);
    if (job == NULL) {
        return NULL;
    }

    s->op.data = job;

    rc = mcf->store->txn_claim(mcf, job, ngx_http_fanbase_deliver_lease,
                               &s->op);

    if (rc == NGX_AGAIN) {
        return NULL;
    }

    if (rc != NGX_OK) {
        *next = s->op.next;
        ngx_free(job);
        return NULL;
    }

    return &job->queue;
}


static void
ngx_http_fanbase_deliver_claimed(ngx_http_fanbase_store_op_t *op)
{
    ngx_http_fanbase_job_t  *job = op->data;

    if (op->rc == NGX_OK) {
        ngx_http_fanbase_sched_claimed(&ngx_http_fanbase_deliver_sched,
                                       &job->queue, 0);
        return;
    }

    ngx_free(job);

    ngx_http_fanbase_sched_claimed(&ngx_http_fanbase_deliver_sched, NULL,
                                   op->next);
}


static void
ngx_http_fanbase_deliver_start(ngx_queue_t *q)
{
    ngx_http_fanbase_deliver_job_start(ngx_queue_data(q, ngx_http_fanbase_job_t,
                                                      queue));
}


static void
ngx_http_fanbase_deliver_job_start(ngx_http_fanbase_job_t *job)
{
    ngx_str_t                     msg;
    ngx_uint_t                    i;
    ngx_http_fanbase_loc_conf_t **lcfp;
    ngx_http_fanbase_txn_update_t u;

    lcfp = ngx_http_fanbase_deliver_mcf->targets.elts;

    /*
     * the location that accepted it, or one that sends to the same place
     * as the same client with other settings (a reload changed them)
     */

    for (i = 0; i < ngx_http_fanbase_deliver_mcf->targets.nelts; i++) {
        if (ngx_memcmp(lcfp[i]->target, job->target,
                       NGX_HTTP_FANBASE_TARGET_LEN)
            == 0)
        {
            job->lcf = lcfp[i];
            break;
        }

        if (job->lcf == NULL
            && ngx_memcmp(lcfp[i]->target, job->target,
                          NGX_HTTP_FANBASE_ROUTE_LEN)
               == 0)
        {
            job->lcf = lcfp[i];
        }
    }

    job->pool = ngx_create_pool(4096, ngx_cycle->log);

    if (job->lcf == NULL || job->pool == NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\" was accepted by a "
                      "\"fanbase_submit async\" location that the "
                      "configuration no longer has; kept for a minute",
                      &job->id_str);

        ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));
        u.retry = 60000;
        u.not_sent = job->sent ? 0 : 1;
        ngx_http_fanbase_deliver_job_finish(job, &u);
        return;
    }

    if (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER && job->sent) {

        /* the worker that was sending it stopped before an answer */

        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 "delivery outcome unknown: "
                                                 "the worker sending it "
                                                 "stopped before Fanbase "
                                                 "answered; not sent again")
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_fail(job, "delivery_outcome_unknown",
                                              &msg);
            return;
        }
    }

    if (ngx_http_fanbase_deliver_job_send(job) == NGX_AGAIN) {
        ngx_http_fanbase_wait_add(&job->waiter);
    }
}


/*
 * A token fetch under way: the job keeps its place and waits for it, as
 * a request does; giving the place back and coming back in a moment made
 * the worker cycle through the whole backlog while a slow token endpoint
 * took its time.
 */

static ngx_int_t
ngx_http_fanbase_deliver_job_wait(ngx_http_fanbase_waiter_t *w)
{
    return ngx_http_fanbase_deliver_job_send(w->data) == NGX_AGAIN
           ? NGX_AGAIN : NGX_OK;
}


/* NGX_AGAIN: waiting for a token; NGX_OK: sent, or finished */

static ngx_int_t
ngx_http_fanbase_deliver_job_send(ngx_http_fanbase_job_t *job)
{
    u_char                       *p;
    time_t                        retry_after;
    ngx_int_t                     rc;
    ngx_http_fanbase_curl_t      *h;
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_http_fanbase_headers_t   *hdr;

    lcf = job->lcf;
    retry_after = 1;

    rc = ngx_http_fanbase_token_get(lcf->cred, ngx_cycle->log, &hdr,
                                    &retry_after);

    if (rc == NGX_AGAIN) {
        job->waiter.handler = ngx_http_fanbase_deliver_job_wait;
        job->waiter.data = job;
        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        ngx_http_fanbase_deliver_job_retry(job, "no Fanbase token can be had",
                                           (ngx_msec_t) retry_after * 1000, 1);
        return NGX_OK;
    }

    if (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER) {
        job->url = (char *) lcf->queue_url.data;

    } else if (job->url == NULL) {
        p = ngx_pnalloc(job->pool, lcf->queue_url.len + job->queue_id_len + 2);
        if (p == NULL) {
            ngx_http_fanbase_curl_headers_release(hdr);
            ngx_http_fanbase_deliver_job_retry(job, "out of memory", 0, 0);
            return NGX_OK;
        }

        job->url = (char *) p;
        p = ngx_cpymem(p, lcf->queue_url.data, lcf->queue_url.len);
        *p++ = '/';
        p = ngx_cpymem(p, job->queue_id, job->queue_id_len);
        *p = '\0';
    }

    h = ngx_http_fanbase_curl_create(ngx_cycle->log, &lcf->upstream, job->url);
    if (h == NULL) {
        ngx_http_fanbase_curl_headers_release(hdr);
        ngx_http_fanbase_deliver_job_retry(job, "the transfer was not created",
                                           0, 0);
        return NGX_OK;
    }

    h->hdr = hdr;
    h->handler = ngx_http_fanbase_deliver_job_done;
    h->data = job;
    h->kind = (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER)
              ? NGX_HTTP_FANBASE_CALL_DELIVER : NGX_HTTP_FANBASE_CALL_TRACK;
    job->http = h;

    ngx_http_fanbase_curl_request_id(h, &job->request_id_str);

    if (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER) {
        ngx_http_fanbase_curl_post(h, job->payload, job->payload_len);

        /*
         * from here a worker that dies leaves the outcome unknown: the
         * store says so before the POST may leave, and only to the
         * current claim
         */

        job->op.done = ngx_http_fanbase_deliver_job_sending;
        job->op.data = job;
        job->op.log = ngx_cycle->log;

        rc = ngx_http_fanbase_deliver_mcf->store->txn_sending(
                                           ngx_http_fanbase_deliver_mcf, job,
                                           &job->op);
        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }

        ngx_http_fanbase_deliver_job_post(job, rc);
        return NGX_OK;
    }

    ngx_http_fanbase_deliver_job_post(job, NGX_OK);

    return NGX_OK;
}


static void
ngx_http_fanbase_deliver_job_sending(ngx_http_fanbase_store_op_t *op)
{
    /* a journal that cannot be written holds no delivery back */

    ngx_http_fanbase_deliver_job_post(op->data,
                                      op->rc == NGX_HTTP_FANBASE_NOT_DURABLE
                                      ? NGX_OK : op->rc);
}


/* the transfer, once the store allows it */

static void
ngx_http_fanbase_deliver_job_post(ngx_http_fanbase_job_t *job, ngx_int_t rc)
{
    ngx_http_fanbase_curl_t        *h;
    ngx_http_fanbase_txn_update_t   u;

    h = job->http;

    if (rc == NGX_HTTP_FANBASE_ENGINE_DOWN) {

        /*
         * Redis did not answer "sending": it may have marked the
         * transaction sent and gone away before it said so, and nothing
         * was sent.  Said so for this claim (an outcome is sent again
         * until Redis takes it), so that the next claim delivers it
         * rather than ending it delivery_outcome_unknown
         */

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\": Redis did not answer "
                      "before the POST, not sent; due again once Redis "
                      "takes that", &job->id_str);

        job->http = NULL;
        ngx_http_fanbase_curl_destroy(h);

        ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));
        u.retry = 1000;
        u.not_sent = 1;

        ngx_http_fanbase_deliver_job_finish(job, &u);
        return;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\": the claim was taken "
                      "over before the POST, not sent here", &job->id_str);

        /* the claim is someone else's now: the job ends without a word */
        job->http = NULL;
        ngx_http_fanbase_curl_destroy(h);
        ngx_http_fanbase_deliver_job_free(job);
        return;
    }

    if (ngx_http_fanbase_curl_start(h) != NGX_OK) {
        job->http = NULL;
        ngx_http_fanbase_curl_destroy(h);
        ngx_http_fanbase_deliver_job_retry(job, "the transfer was not started",
                                           0, 0);
    }
}


static void
ngx_http_fanbase_deliver_job_done(ngx_http_fanbase_curl_t *h)
{
    ngx_http_fanbase_job_t  *job = h->data;

    if (h->result == CURLE_OK && (h->status == 401 || h->status == 403)
        && !job->token_retried && job->lcf->cred->fixed.len == 0)
    {
        /* the token was refused, so was the call: a new token, once */

        ngx_http_fanbase_token_reject(job->lcf->cred, h->hdr, ngx_cycle->log);

        job->token_retried = 1;
        job->http = NULL;
        ngx_http_fanbase_curl_destroy(h);

        if (ngx_http_fanbase_deliver_job_send(job) == NGX_AGAIN) {
            ngx_http_fanbase_wait_add(&job->waiter);
        }

        return;
    }

    if (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER) {
        ngx_http_fanbase_deliver_job_delivered(job, h);

    } else {
        ngx_http_fanbase_deliver_job_tracked(job, h);
    }
}


static void
ngx_http_fanbase_deliver_job_delivered(ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_curl_t *h)
{
    ngx_str_t                      id, msg, data;
    fanbase_item_t                 item;
    ngx_http_fanbase_txn_update_t  u;

    if (h->result != CURLE_OK) {
        if (h->attempts == 0) {
            /* it failed before the request was written: never sent */
            ngx_http_fanbase_deliver_job_retry(job,
                                               h->error[0] ? h->error
                                               : curl_easy_strerror(h->result),
                                               0, 1);
            return;
        }

        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 "delivery outcome unknown: %s "
                                                 "after the request was sent; "
                                                 "not sent again",
                                                 h->result
                                                 == CURLE_OPERATION_TIMEDOUT
                                                 ? "Fanbase did not answer "
                                                   "in time"
                                                 : "the connection broke")
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_fail(job, "delivery_outcome_unknown",
                                              &msg);
        }

        return;
    }

    if (h->status >= 200 && h->status < 300) {

        if (fanbase_json_parse_item(h->body, h->len, &item) != FANBASE_JSON_OK
            || item.id.data == NULL)
        {
            ngx_str_set(&msg, "Fanbase accepted the submission with an "
                              "answer that cannot be read; not sent again");
            ngx_http_fanbase_deliver_job_fail(job, "delivery_unreadable", &msg);
            return;
        }

        id.data = (u_char *) item.id.data;
        id.len = item.id.len;

        if (ngx_http_fanbase_id_valid(&id) != NGX_OK) {
            fanbase_json_item_free(&item);
            ngx_str_set(&msg, "Fanbase accepted the submission with an id "
                              "that cannot be kept; not sent again");
            ngx_http_fanbase_deliver_job_fail(job, "delivery_unreadable", &msg);
            return;
        }

        ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));

        data.data = ngx_pnalloc(job->pool, sizeof("{\"queue_id\":\"\"}")
                                           + id.len);
        if (data.data == NULL) {
            fanbase_json_item_free(&item);
            return;
        }

        data.len = ngx_sprintf(data.data, "{\"queue_id\":\"%V\"}", &id)
                   - data.data;

        u.queue_id.data = ngx_pstrdup(job->pool, &id);
        u.queue_id.len = id.len;

        fanbase_json_item_free(&item);

        if (u.queue_id.data == NULL
            || ngx_http_fanbase_txn_event(job->pool, "transition",
                                          "delivered to Fanbase",
                                          FANBASE_STATUS_PROCESSING, &data,
                                          &u.event)
               != NGX_OK)
        {
            ngx_str_null(&u.event);
        }

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\" (request \"%V\") "
                      "delivered to Fanbase as \"%V\"", &job->id_str,
                      &job->request_id_str, &u.queue_id);

        u.status = FANBASE_STATUS_PROCESSING;
        u.delivered = 1;
        u.retry = 1000;

        ngx_http_fanbase_metrics_count(NGX_HTTP_FANBASE_METRICS_DELIVERY,
                                       NGX_HTTP_FANBASE_DELIVERY_DELIVERED);

        ngx_http_fanbase_deliver_job_finish(job, &u);
        return;
    }

    switch (h->status) {

    case 401:
    case 403:
        ngx_http_fanbase_deliver_job_retry(job,
                                           "Fanbase rejected the edge's token",
                                           0, 0);
        return;

    case 429:
    case 502:
    case 503:
    case 504:
        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 "Fanbase answered %l",
                                                 h->status)
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_retry(job, (char *) msg.data,
                                    ngx_http_fanbase_deliver_retry_after(h), 1);
        }

        return;
    }

    if (h->status >= 400 && h->status < 500) {
        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 "Fanbase refused the "
                                                 "submission with %l: %*s",
                                                 h->status,
                                                 ngx_min(h->len,
                                                   NGX_HTTP_FANBASE_ERROR_BODY),
                                                 h->body ? h->body
                                                 : (u_char *) "")
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_fail(job, "rejected", &msg);
        }

        return;
    }

    if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                             "delivery outcome unknown: "
                                             "Fanbase answered %l; "
                                             "not sent again",
                                             h->status)
        == NGX_OK)
    {
        ngx_http_fanbase_deliver_job_fail(job, "delivery_outcome_unknown",
                                          &msg);
    }
}


static void
ngx_http_fanbase_deliver_job_tracked(ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_curl_t *h)
{
    u_char                        *p;
    size_t                         len;
    ngx_str_t                      msg, data, text;
    fanbase_item_t                 item;
    ngx_http_fanbase_txn_update_t  u;

    if (h->result != CURLE_OK) {
        ngx_http_fanbase_deliver_job_retry(job, h->error[0] ? h->error
                                                : curl_easy_strerror(h->result),
                                           0, 1);
        return;
    }

    if (h->status == 404) {
        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 "Fanbase does not know the "
                                                 "queue item \"%*s\"",
                                                 job->queue_id_len,
                                                 job->queue_id)
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_fail(job, "queue_item_not_found",
                                              &msg);
        }

        return;
    }

    if (h->status != 200) {
        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 "Fanbase answered %l",
                                                 h->status)
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_retry(job, (char *) msg.data,
                                    ngx_http_fanbase_deliver_retry_after(h),
                                    h->status >= 500 || h->status == 429);
        }

        return;
    }

    if (fanbase_json_parse_item(h->body, h->len, &item) != FANBASE_JSON_OK) {
        ngx_http_fanbase_deliver_job_retry(job, "Fanbase answered a status "
                                           "that cannot be read", 0, 0);
        return;
    }

    if (!fanbase_status_terminal(item.status)) {
        fanbase_json_item_free(&item);
        ngx_http_fanbase_deliver_job_retry(job,
                                           "still being processed at Fanbase",
                                           0, 0);
        return;
    }

    /* the final event holds the result */

    if (item.status == FANBASE_STATUS_FAILED) {
        if (item.process_msg.data != NULL && item.process_msg.len) {
            text.data = (u_char *) item.process_msg.data;
            text.len = item.process_msg.len;

        } else if (item.imsg.data != NULL && item.imsg.len) {
            text.data = (u_char *) item.imsg.data;
            text.len = item.imsg.len;

        } else {
            ngx_str_set(&text, "failed at Fanbase");
        }

    } else {
        text.data = (u_char *) item.process_msg.data;
        text.len = item.process_msg.data ? item.process_msg.len : 0;
    }

    len = sizeof("{\"queue_id\":\"\",\"code\":\"fanbase_failed\","
                 "\"error_message\":\"\"}")
          + job->queue_id_len + 6 * ngx_min(text.len, 4096);

    data.data = ngx_pnalloc(job->pool, len);
    if (data.data == NULL) {
        fanbase_json_item_free(&item);
        ngx_http_fanbase_deliver_job_retry(job, "out of memory", 0, 0);
        return;
    }

    p = ngx_sprintf(data.data, "{\"queue_id\":\"%*s\"", job->queue_id_len,
                    job->queue_id);

    if (item.status == FANBASE_STATUS_FAILED) {
        p = ngx_cpymem(p, ",\"code\":\"fanbase_failed\",\"error_message\":\"",
                       sizeof(",\"code\":\"fanbase_failed\","
                              "\"error_message\":\"") - 1);
        p = fanbase_json_escape(p, text.data,
                                fanbase_utf8_cut(text.data, text.len, 4096));
        *p++ = '"';

    } else if (text.len) {
        p = ngx_cpymem(p, ",\"process_msg\":\"",
                       sizeof(",\"process_msg\":\"") - 1);
        p = fanbase_json_escape(p, text.data,
                                fanbase_utf8_cut(text.data, text.len, 4096));
        *p++ = '"';
    }

    *p++ = '}';
    data.len = p - data.data;

    ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));
    u.status = item.status;

    fanbase_json_item_free(&item);

    if (u.status == FANBASE_STATUS_FAILED) {
        (void) ngx_http_fanbase_txn_event(job->pool, "failure",
                                          "failed at Fanbase", u.status,
                                          &data, &u.event);

    } else {
        (void) ngx_http_fanbase_txn_event(job->pool, "transition",
                                          "completed at Fanbase", u.status,
                                          &data, &u.event);
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "fanbase: transaction \"%V\" %s at Fanbase", &job->id_str,
                  u.status == FANBASE_STATUS_FAILED ? "failed" : "completed");

    ngx_http_fanbase_deliver_job_finish(job, &u);
}


/*
 * Again later: exponential backoff with jitter (1 s doubling up to 5 min
 * for deliveries, up to a minute for status polls), at least "at_least"
 * (Retry-After), never past the horizon; past it, the transaction fails.
 */

static void
ngx_http_fanbase_deliver_job_retry(ngx_http_fanbase_job_t *job, const char *why,
    ngx_msec_t at_least, ngx_uint_t down)
{
    uint64_t                       now;
    ngx_str_t                      msg;
    ngx_msec_t                     delay;
    ngx_uint_t                     deliver, said;
    ngx_http_fanbase_txn_update_t  u;

    deliver = (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER);
    now = ngx_http_fanbase_time_now();

    if (now >= job->deadline) {
        if (ngx_http_fanbase_deliver_job_message(job, &msg,
                                                 deliver
                                                 ? "gave up delivering after "
                                                   "the delivery horizon; "
                                                   "last error: %s"
                                                 : "gave up following it at "
                                                   "Fanbase after the "
                                                   "tracking horizon; "
                                                   "last: %s", why)
            == NGX_OK)
        {
            ngx_http_fanbase_deliver_job_fail(job, deliver ? "delivery_gave_up"
                                                           : "tracking_gave_up",
                                              &msg);
        }

        return;
    }

    /* status polls back off without jitter: each follows its own */

    delay = ngx_http_fanbase_sched_backoff(job->attempts,
                                           deliver
                                           ? NGX_HTTP_FANBASE_BACKOFF_MAX
                                           : NGX_HTTP_FANBASE_POLL_MAX,
                                           deliver);
    delay = ngx_max(delay, at_least);

    if (now + delay > job->deadline) {
        delay = (ngx_msec_t) (job->deadline - now);
    }

    /* the first of an interval is said; the others, counted, at its end */

    said = deliver
           && ngx_http_fanbase_logsum_count(&ngx_http_fanbase_deliver_failures,
                                            &job->id_str, why)
              == NGX_OK;

    if (said && down) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\" not delivered: %s; it "
                      "waits for Fanbase with the others", &job->id_str, why);

    } else if (said) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\" not delivered: %s; "
                      "next attempt in %M ms", &job->id_str, why, delay);

    } else if (!deliver) {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "fanbase: transaction \"%V\": %s; next poll in %M ms",
                       &job->id_str, why, delay);
    }

    /*
     * the request never reached Fanbase, or Fanbase refused it before
     * taking it: sending it again is safe
     */

    if (deliver) {
        ngx_http_fanbase_metrics_count(NGX_HTTP_FANBASE_METRICS_DELIVERY,
                                       NGX_HTTP_FANBASE_DELIVERY_RETRIED);
    }

    ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));
    u.retry = delay;
    u.attempt = 1;
    u.not_sent = 1;

    /* Fanbase or its token endpoint did not answer: the breaker's case */
    u.down = down;
    u.wait = at_least;

    ngx_http_fanbase_deliver_job_finish(job, &u);
}


/* failed: a "failure" event with data.code and data.error_message */

static void
ngx_http_fanbase_deliver_job_fail(ngx_http_fanbase_job_t *job, const char *code,
    ngx_str_t *message)
{
    u_char                        *p;
    ngx_str_t                      data;
    ngx_http_fanbase_txn_update_t  u;

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "fanbase: transaction \"%V\" (request \"%V\") failed "
                  "(%s): %V", &job->id_str, &job->request_id_str, code,
                  message);

    if (job->kind == NGX_HTTP_FANBASE_JOB_DELIVER) {
        ngx_http_fanbase_metrics_count(NGX_HTTP_FANBASE_METRICS_DELIVERY,
            ngx_strcmp(code, "rejected") == 0
            ? NGX_HTTP_FANBASE_DELIVERY_REJECTED
            : ngx_strcmp(code, "delivery_unreadable") == 0
            ? NGX_HTTP_FANBASE_DELIVERY_UNREADABLE
            : ngx_strcmp(code, "delivery_gave_up") == 0
            ? NGX_HTTP_FANBASE_DELIVERY_GAVE_UP
            : NGX_HTTP_FANBASE_DELIVERY_OUTCOME_UNKNOWN);
    }

    ngx_memzero(&u, sizeof(ngx_http_fanbase_txn_update_t));
    u.status = FANBASE_STATUS_FAILED;

    data.data = ngx_pnalloc(job->pool,
                            sizeof("{\"code\":\"\",\"error_message\":\"\","
                                   "\"queue_id\":\"\"}")
                            + ngx_strlen(code) + 6 * message->len
                            + job->queue_id_len);
    if (data.data != NULL) {
        p = ngx_sprintf(data.data, "{\"code\":\"%s\",\"error_message\":\"",
                        code);
        p = fanbase_json_escape(p, message->data, message->len);
        *p++ = '"';

        if (job->queue_id_len) {
            p = ngx_sprintf(p, ",\"queue_id\":\"%*s\"", job->queue_id_len,
                            job->queue_id);
        }

        *p++ = '}';
        data.len = p - data.data;

        (void) ngx_http_fanbase_txn_event(job->pool, "failure",
                                          job->kind
                                          == NGX_HTTP_FANBASE_JOB_DELIVER
                                          ? "delivery to Fanbase failed"
                                          : "failed at Fanbase",
                                          FANBASE_STATUS_FAILED, &data,
                                          &u.event);
    }

    ngx_http_fanbase_deliver_job_finish(job, &u);
}


static void
ngx_http_fanbase_deliver_job_finish(ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_txn_update_t *u)
{
    ngx_http_fanbase_curl_t  *h;

    /* an HTTP answer from Fanbase that is not a "down" one: it is up */

    h = job->http;

    if (h != NULL && h->result == CURLE_OK && h->status && !u->down) {
        u->answered = 1;
    }

    ngx_http_fanbase_deliver_mcf->store->txn_finish(
                                       ngx_http_fanbase_deliver_mcf, job, u,
                                       ngx_cycle->log);

    ngx_http_fanbase_deliver_job_free(job);
}


static void
ngx_http_fanbase_deliver_job_free(ngx_http_fanbase_job_t *job)
{
    ngx_http_fanbase_wait_remove(&job->waiter);

    if (job->http != NULL) {
        ngx_http_fanbase_curl_destroy(job->http);
    }

    if (job->payload != NULL) {
        ngx_free(job->payload);
    }

    if (job->pool != NULL) {
        ngx_destroy_pool(job->pool);
    }

    /* the free place goes to the next due transaction */
    ngx_http_fanbase_sched_done(&ngx_http_fanbase_deliver_sched, &job->queue);

    ngx_free(job);
}


static ngx_int_t
ngx_http_fanbase_deliver_job_message(ngx_http_fanbase_job_t *job,
    ngx_str_t *out, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    buf[NGX_HTTP_FANBASE_ERROR_BODY + 256];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf) - 1, fmt, args);
    va_end(args);

    *p = '\0';

    out->len = p - buf;
    out->data = ngx_pnalloc(job->pool, out->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(out->data, buf, out->len + 1);

    return NGX_OK;
}


/* Retry-After in seconds, if Fanbase sent one */

static ngx_msec_t
ngx_http_fanbase_deliver_retry_after(ngx_http_fanbase_curl_t *h)
{
    ngx_int_t  n;

    if (h->retry_after[0] == '\0') {
        return 0;
    }

    n = ngx_atoi(h->retry_after, ngx_strlen(h->retry_after));

    if (n == NGX_ERROR || n > 3600) {
        return 0;
    }

    return (ngx_msec_t) n * 1000;
}
