
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_notify: outbound webhooks.  Every change of a transaction's
 * status queues a notice in the store (ngx_http_fanbase_store.h), with the
 * transaction as it is at that moment; each worker's notification
 * scheduler (ngx_http_fanbase_sched.c) claims due notices, and this file
 * POSTs them to the site, signed the
 * Standard Webhooks way with a webhook-id that is the same for every
 * attempt.  A 2xx ends a notice; anything else is retried with
 * exponential backoff and jitter until fanbase_notify_horizon.  At least
 * once: a notice is dropped only after a 2xx or past the horizon.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_logsum.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_sched.h"
#include "ngx_http_fanbase_signature.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_notify.h"


#define NGX_HTTP_FANBASE_NOTIFY_TICK     1000
#define NGX_HTTP_FANBASE_NOTIFY_BACKOFF  (300 * 1000)


static ngx_queue_t *ngx_http_fanbase_notify_claim(
    ngx_http_fanbase_sched_t *s, ngx_msec_t *next);
static void ngx_http_fanbase_notify_claimed(ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_notify_start(ngx_queue_t *q);
static void ngx_http_fanbase_notify_send(ngx_http_fanbase_notice_job_t *job);
static void ngx_http_fanbase_notify_done(ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_notify_finish(ngx_http_fanbase_notice_job_t *job,
    ngx_uint_t sent, const char *why);
static void ngx_http_fanbase_notify_free(ngx_http_fanbase_notice_job_t *job);


static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_notify_mcf;
static ngx_http_fanbase_sched_t       ngx_http_fanbase_notify_sched;
static ngx_msec_t                     ngx_http_fanbase_notify_lease;
static ngx_http_fanbase_notice_job_t *ngx_http_fanbase_notify_claim_job;
static ngx_http_fanbase_logsum_t      ngx_http_fanbase_notify_failures;


ngx_int_t
ngx_http_fanbase_notify_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    if (mcf->notify_url.len == 0) {
        return NGX_OK;
    }

    ngx_http_fanbase_notify_mcf = mcf;
    ngx_http_fanbase_notify_lease = 2 * mcf->notify_lcf->upstream.timeout
                                    + 5000;

    ngx_http_fanbase_notify_sched.claim = ngx_http_fanbase_notify_claim;
    ngx_http_fanbase_notify_sched.op.done = ngx_http_fanbase_notify_claimed;
    ngx_http_fanbase_notify_sched.start = ngx_http_fanbase_notify_start;
    ngx_http_fanbase_notify_sched.concurrency = mcf->notify_concurrency;
    ngx_http_fanbase_notify_sched.tick = NGX_HTTP_FANBASE_NOTIFY_TICK;

    ngx_http_fanbase_logsum_init(&ngx_http_fanbase_notify_failures,
                                 "notification not delivered",
                                 "notifications not delivered", NGX_LOG_WARN,
                                 NGX_HTTP_FANBASE_LOGSUM_EVERY, cycle->log);

    ngx_http_fanbase_sched_start(&ngx_http_fanbase_notify_sched, cycle->log);

    /* a notice queued in this worker is sent at once */
    mcf->notify_sched = &ngx_http_fanbase_notify_sched;

    return NGX_OK;
}


/* at exit, notices in flight are given back: they will be sent again */

void
ngx_http_fanbase_notify_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                    *q;
    ngx_http_fanbase_sched_t       *s;
    ngx_http_fanbase_notice_job_t  *job;

    if (ngx_http_fanbase_notify_mcf == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_fanbase_notify_sched.jobs)) {
        q = ngx_queue_head(&ngx_http_fanbase_notify_sched.jobs);
        job = ngx_queue_data(q, ngx_http_fanbase_notice_job_t, queue);

        ngx_http_fanbase_notify_finish(job, 0, NULL);
    }

    s = &ngx_http_fanbase_notify_sched;

    if (s->op.pending) {
        /* a claim granted now runs out with its lease */
        s->op.store->cancel(&s->op);
    }

    ngx_http_fanbase_sched_stop(s);

    ngx_http_fanbase_notify_mcf->notify_sched = NULL;
    ngx_http_fanbase_notify_mcf = NULL;
}


/* the earliest due notice, claimed until the lease runs out */

static ngx_queue_t *
ngx_http_fanbase_notify_claim(ngx_http_fanbase_sched_t *s, ngx_msec_t *next)
{
    ngx_int_t                      rc;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_fanbase_notify_mcf;

    /* one claim at a time: the job it fills is this worker's alone */

    rc = mcf->store->notice_claim(mcf, ngx_http_fanbase_notify_lease,
                                  &ngx_http_fanbase_notify_claim_job, &s->op);

    if (rc == NGX_AGAIN) {
        return NULL;
    }

    if (rc != NGX_OK) {
        *next = s->op.next;
        return NULL;
    }

    return &ngx_http_fanbase_notify_claim_job->queue;
}


static void
ngx_http_fanbase_notify_claimed(ngx_http_fanbase_store_op_t *op)
{
    ngx_http_fanbase_sched_claimed(&ngx_http_fanbase_notify_sched,
                                   op->rc == NGX_OK
                                   ? &ngx_http_fanbase_notify_claim_job->queue
                                   : NULL,
                                   op->next);
}


static void
ngx_http_fanbase_notify_start(ngx_queue_t *q)
{
    ngx_http_fanbase_notify_send(ngx_queue_data(q,
                                                ngx_http_fanbase_notice_job_t,
                                                queue));
}


static void
ngx_http_fanbase_notify_send(ngx_http_fanbase_notice_job_t *job)
{
    u_char                        *p;
    size_t                         len;
    ngx_http_fanbase_curl_t       *h;
    ngx_http_fanbase_main_conf_t  *mcf;
    struct curl_slist             *list, *l;
    u_char                         ts[NGX_TIME_T_LEN];
    u_char                         line[128];
    u_char                         sig[FANBASE_SIG_LEN];

    mcf = ngx_http_fanbase_notify_mcf;

    h = ngx_http_fanbase_curl_create(ngx_cycle->log,
                                     &mcf->notify_lcf->upstream,
                                     (char *) mcf->notify_url.data);
    if (h == NULL) {
        ngx_http_fanbase_notify_finish(job, 0, "the transfer was not created");
        return;
    }

    job->http = h;
    h->handler = ngx_http_fanbase_notify_done;
    h->data = job;

    /* signed now: the timestamp is this attempt's */

    len = ngx_sprintf(ts, "%T", ngx_time()) - ts;

    if (fanbase_sig_standard_sign(mcf->notify_key.data, mcf->notify_key.len,
                                  job->id.data, job->id.len, ts, len,
                                  job->body.data, job->body.len, sig)
        == 0)
    {
        ngx_http_fanbase_notify_finish(job, 0, "the signature failed");
        return;
    }

    list = curl_slist_append(NULL, "Content-Type: application/json");

    p = ngx_snprintf(line, sizeof(line) - 1, "webhook-id: %V", &job->id);
    *p = '\0';
    l = list ? curl_slist_append(list, (char *) line) : NULL;

    p = ngx_snprintf(line, sizeof(line) - 1, "webhook-timestamp: %*s",
                     len, ts);
    *p = '\0';
    l = l ? curl_slist_append(list, (char *) line) : NULL;

    p = ngx_snprintf(line, sizeof(line) - 1, "webhook-signature: %*s",
                     (size_t) FANBASE_SIG_LEN, sig);
    *p = '\0';
    l = l ? curl_slist_append(list, (char *) line) : NULL;

    /* libcurl must not add "Expect: 100-continue" to a large body */
    l = l ? curl_slist_append(list, "Expect:") : NULL;

    if (l == NULL) {
        if (list != NULL) {
            curl_slist_free_all(list);
        }

        ngx_http_fanbase_notify_finish(job, 0, "out of memory");
        return;
    }

    h->headers = list;

    /* the id of the request that accepted the transaction; not signed */
    ngx_http_fanbase_curl_request_id(h, &job->request_id);

    ngx_http_fanbase_curl_post(h, job->body.data, job->body.len);

    if (ngx_http_fanbase_curl_start(h) != NGX_OK) {
        ngx_http_fanbase_notify_finish(job, 0, "the transfer was not started");
    }
}


static void
ngx_http_fanbase_notify_done(ngx_http_fanbase_curl_t *h)
{
    u_char                         *p;
    ngx_http_fanbase_notice_job_t  *job = h->data;
    u_char                          why[CURL_ERROR_SIZE + 64];

    if (h->result == CURLE_OK && h->status >= 200 && h->status < 300) {
        ngx_http_fanbase_notify_finish(job, 1, NULL);
        return;
    }

    if (h->result != CURLE_OK) {
        p = ngx_snprintf(why, sizeof(why) - 1, "%s",
                         h->error[0] ? h->error
                                     : curl_easy_strerror(h->result));

    } else {
        p = ngx_snprintf(why, sizeof(why) - 1, "the site answered %l",
                         h->status);
    }

    *p = '\0';

    ngx_http_fanbase_notify_finish(job, 0, (char *) why);
}


/*
 * Sent: the notice is gone.  Not sent: again after the backoff, or dropped
 * past the horizon; "why" NULL gives the claim back at once (exit).
 */

static void
ngx_http_fanbase_notify_finish(ngx_http_fanbase_notice_job_t *job,
    ngx_uint_t sent, const char *why)
{
    uint64_t                       now;
    ngx_msec_t                     delay;
    ngx_uint_t                     drop;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_fanbase_notify_mcf;
    now = ngx_http_fanbase_time_now();

    drop = sent
           || (why != NULL
               && now >= job->created + (uint64_t) mcf->notify_horizon * 1000);

    delay = 0;

    if (why != NULL && !drop) {
        delay = ngx_http_fanbase_sched_backoff(job->attempts,
                                           NGX_HTTP_FANBASE_NOTIFY_BACKOFF, 1);
    }

    mcf->store->notice_finish(mcf, job, drop, delay, why != NULL);

    ngx_http_fanbase_metrics_count(NGX_HTTP_FANBASE_METRICS_NOTIFY,
                                   sent ? NGX_HTTP_FANBASE_NOTIFY_DELIVERED
                                   : drop ? NGX_HTTP_FANBASE_NOTIFY_DROPPED
                                   : NGX_HTTP_FANBASE_NOTIFY_RETRIED);

    if (sent) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fanbase: notification \"%V\" delivered to the site",
                      &job->id);

    } else if (drop) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: notification \"%V\" (request \"%V\") "
                      "dropped after %uD attempts over "
                      "fanbase_notify_horizon; last: %s",
                      &job->id, &job->request_id, job->attempts + 1, why);

    } else if (why != NULL
               && ngx_http_fanbase_logsum_count(
                                      &ngx_http_fanbase_notify_failures,
                                      &job->id, why)
                  == NGX_OK)
    {
        /* the first of an interval; the others, counted, at its end */
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: notification \"%V\" not delivered: %s; "
                      "next attempt in %M ms", &job->id, why, delay);
    }

    ngx_http_fanbase_notify_free(job);
}


static void
ngx_http_fanbase_notify_free(ngx_http_fanbase_notice_job_t *job)
{
    if (job->http != NULL) {
        ngx_http_fanbase_curl_destroy(job->http);
    }

    /* the free place goes to the next due notice */
    ngx_http_fanbase_sched_done(&ngx_http_fanbase_notify_sched, &job->queue);

    ngx_free(job);
}
