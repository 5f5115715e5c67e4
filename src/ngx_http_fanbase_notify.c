
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_notify: outbound webhooks.  Every change of a transaction's
 * status queues a notice in the zone, with the transaction as it is at
 * that moment; workers claim due notices (a tree by due time, claims that
 * run out, as for deliveries) and POST them to the site, signed the
 * Standard Webhooks way with a webhook-id that is the same for every
 * attempt.  A 2xx ends a notice; anything else is retried with
 * exponential backoff and jitter until fanbase_notify_horizon.  At least
 * once: a notice is dropped only after a 2xx or past the horizon.
 */


#include "ngx_http_fanbase_module.h"


#define NGX_HTTP_FANBASE_NOTIFY_TICK     1000
#define NGX_HTTP_FANBASE_NOTIFY_BACKOFF  (300 * 1000)


typedef struct {
    ngx_queue_t                   queue;
    uint32_t                      claim;
    uint32_t                      attempts;
    uint64_t                      created;
    ngx_str_t                     id;
    ngx_str_t                     body;
    ngx_http_fanbase_curl_t      *http;
    u_char                        data[1];     /* id, then body */
} ngx_http_fanbase_notify_job_t;


static void ngx_http_fanbase_notify_tick(ngx_event_t *ev);
static ngx_http_fanbase_notify_job_t *ngx_http_fanbase_notify_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_msec_t *next);
static void ngx_http_fanbase_notify_send(ngx_http_fanbase_notify_job_t *job);
static void ngx_http_fanbase_notify_done(ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_notify_finish(ngx_http_fanbase_notify_job_t *job,
    ngx_uint_t sent, const char *why);
static ngx_http_fanbase_notice_t *ngx_http_fanbase_notice_find(
    ngx_http_fanbase_shctx_t *sh, ngx_http_fanbase_notify_job_t *job);
static void ngx_http_fanbase_notify_free(ngx_http_fanbase_notify_job_t *job);
static void ngx_http_fanbase_notify_kick(void);


static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_notify_mcf;
static ngx_event_t                    ngx_http_fanbase_notify_event;
static ngx_connection_t               ngx_http_fanbase_notify_conn;
static ngx_queue_t                    ngx_http_fanbase_notify_jobs;
static ngx_uint_t                     ngx_http_fanbase_notify_n;
static ngx_msec_t                     ngx_http_fanbase_notify_lease;


/* called with the zone locked, when a transaction's status changed */

void
ngx_http_fanbase_notice_add_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, ngx_log_t *log)
{
    u_char                     *p;
    ngx_str_t                   id;
    ngx_http_fanbase_notice_t  *n;
    u_char                      buf[NGX_HTTP_FANBASE_NOTICE_ID_MAX];

    if (mcf->notify_url.len == 0) {
        return;
    }

    /* the same id for every attempt, another for every status */

    id.data = buf;
    id.len = ngx_snprintf(buf, sizeof(buf), "msg_%*s_%s",
                          (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, t->id,
                          fanbase_json_status_name(t->status))
             - buf;

    n = ngx_http_fanbase_notice_alloc_locked(mcf,
                                       ngx_http_fanbase_txn_json_size(t));
    if (n == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: zone \"%V\" is full, the notification "
                      "\"%V\" is not kept", &mcf->shm_zone->shm.name, &id);
        return;
    }

    p = ngx_http_fanbase_txn_json(n->body, t);
    n->len = (uint32_t) (p - n->body);

    ngx_http_fanbase_notice_queue_locked(mcf, n, &id,
                                         ngx_http_fanbase_time_now(), 0);

    ngx_http_fanbase_notify_kick();
}


ngx_http_fanbase_notice_t *
ngx_http_fanbase_notice_alloc_locked(ngx_http_fanbase_main_conf_t *mcf,
    size_t size)
{
    return ngx_http_fanbase_shm_alloc_locked(mcf,
                              offsetof(ngx_http_fanbase_notice_t, body)
                              + size);
}


/* due now; n->body and n->len are set */

void
ngx_http_fanbase_notice_queue_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_t *n, ngx_str_t *id, uint64_t created,
    uint32_t attempts)
{
    n->created = created;
    n->attempts = attempts;
    n->claim = 0;
    n->owner = 0;
    n->id_len = (u_char) ngx_min(id->len, NGX_HTTP_FANBASE_NOTICE_ID_MAX);
    ngx_memcpy(n->id, id->data, n->id_len);

    n->due.key = ngx_current_msec;
    ngx_rbtree_insert(&mcf->sh->notices, &n->due);
    ngx_queue_insert_tail(&mcf->sh->notices_all, &n->queue);
    mcf->sh->notice_count++;

    (void) ngx_atomic_fetch_add(&mcf->sh->changes, 1);
}


ngx_int_t
ngx_http_fanbase_notify_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_queue_init(&ngx_http_fanbase_notify_jobs);
    ngx_http_fanbase_notify_n = 0;

    if (mcf->notify_url.len == 0) {
        return NGX_OK;
    }

    ngx_http_fanbase_notify_mcf = mcf;
    ngx_http_fanbase_notify_lease = 2 * mcf->notify_lcf->upstream.timeout
                                    + 5000;

    ngx_http_fanbase_notify_conn.fd = (ngx_socket_t) -1;
    ngx_http_fanbase_notify_event.data = &ngx_http_fanbase_notify_conn;
    ngx_http_fanbase_notify_event.handler = ngx_http_fanbase_notify_tick;
    ngx_http_fanbase_notify_event.log = cycle->log;
    ngx_http_fanbase_notify_event.cancelable = 1;

    ngx_add_timer(&ngx_http_fanbase_notify_event, 1);

    return NGX_OK;
}


/* at exit, notices in flight are given back: they will be sent again */

void
ngx_http_fanbase_notify_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                    *q;
    ngx_http_fanbase_notify_job_t  *job;

    if (ngx_http_fanbase_notify_mcf == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_fanbase_notify_jobs)) {
        q = ngx_queue_head(&ngx_http_fanbase_notify_jobs);
        job = ngx_queue_data(q, ngx_http_fanbase_notify_job_t, queue);

        ngx_http_fanbase_notify_finish(job, 0, NULL);
    }

    if (ngx_http_fanbase_notify_event.timer_set) {
        ngx_del_timer(&ngx_http_fanbase_notify_event);
    }

    if (ngx_http_fanbase_notify_event.posted) {
        ngx_delete_posted_event(&ngx_http_fanbase_notify_event);
    }

    ngx_http_fanbase_notify_mcf = NULL;
}


static void
ngx_http_fanbase_notify_kick(void)
{
    ngx_event_t  *ev;

    ev = &ngx_http_fanbase_notify_event;

    if (ngx_http_fanbase_notify_mcf == NULL || ev->posted || ngx_exiting) {
        return;
    }

    if (ev->timer_set) {
        ngx_del_timer(ev);
    }

    ngx_post_event(ev, &ngx_posted_events);
}


static void
ngx_http_fanbase_notify_tick(ngx_event_t *ev)
{
    ngx_msec_t                      next;
    ngx_http_fanbase_notify_job_t  *job;
    ngx_http_fanbase_main_conf_t   *mcf;

    mcf = ngx_http_fanbase_notify_mcf;

    if (mcf == NULL || ngx_exiting) {
        return;
    }

    next = NGX_HTTP_FANBASE_NOTIFY_TICK;

    while (ngx_http_fanbase_notify_n < mcf->notify_concurrency) {

        job = ngx_http_fanbase_notify_claim(mcf, &next);
        if (job == NULL) {
            break;
        }

        ngx_queue_insert_tail(&ngx_http_fanbase_notify_jobs, &job->queue);
        ngx_http_fanbase_notify_n++;

        ngx_http_fanbase_notify_send(job);

        next = NGX_HTTP_FANBASE_NOTIFY_TICK;
    }

    if (ngx_http_fanbase_notify_n >= mcf->notify_concurrency
        || next > NGX_HTTP_FANBASE_NOTIFY_TICK)
    {
        next = NGX_HTTP_FANBASE_NOTIFY_TICK;
    }

    if (!ev->timer_set && !ev->posted) {
        ngx_add_timer(ev, ngx_max(next, 1));
    }
}


/* the earliest due notice, claimed until the lease runs out */

static ngx_http_fanbase_notify_job_t *
ngx_http_fanbase_notify_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_msec_t *next)
{
    u_char                         *p;
    ngx_msec_t                      now;
    ngx_rbtree_node_t              *node, *root, *sentinel;
    ngx_http_fanbase_notice_t      *n;
    ngx_http_fanbase_shctx_t       *sh;
    ngx_http_fanbase_notify_job_t  *job;

    sh = mcf->sh;
    now = ngx_current_msec;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    root = sh->notices.root;
    sentinel = sh->notices.sentinel;

    if (root == sentinel) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        *next = NGX_TIMER_INFINITE;
        return NULL;
    }

    node = ngx_rbtree_min(root, sentinel);

    if ((ngx_msec_int_t) (node->key - now) > 0) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        *next = node->key - now;
        return NULL;
    }

    n = (ngx_http_fanbase_notice_t *) node;

    job = ngx_alloc(offsetof(ngx_http_fanbase_notify_job_t, data)
                    + n->id_len + n->len, ngx_cycle->log);
    if (job == NULL) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        *next = 1000;
        return NULL;
    }

    ngx_rbtree_delete(&sh->notices, &n->due);
    n->due.key = now + ngx_http_fanbase_notify_lease;
    ngx_rbtree_insert(&sh->notices, &n->due);

    n->owner = ngx_pid;
    n->claim++;

    job->claim = n->claim;
    job->attempts = n->attempts;
    job->created = n->created;
    job->http = NULL;

    p = job->data;
    job->id.data = p;
    job->id.len = n->id_len;
    p = ngx_cpymem(p, n->id, n->id_len);
    job->body.data = p;
    job->body.len = n->len;
    ngx_memcpy(p, n->body, n->len);

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    return job;
}


static void
ngx_http_fanbase_notify_send(ngx_http_fanbase_notify_job_t *job)
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

    ngx_http_fanbase_curl_post(h, job->body.data, job->body.len);

    if (ngx_http_fanbase_curl_start(h) != NGX_OK) {
        ngx_http_fanbase_notify_finish(job, 0, "the transfer was not started");
    }
}


static void
ngx_http_fanbase_notify_done(ngx_http_fanbase_curl_t *h)
{
    u_char                         *p;
    ngx_http_fanbase_notify_job_t  *job = h->data;
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
ngx_http_fanbase_notify_finish(ngx_http_fanbase_notify_job_t *job,
    ngx_uint_t sent, const char *why)
{
    uint64_t                       now;
    ngx_msec_t                     delay;
    ngx_uint_t                     drop;
    ngx_http_fanbase_notice_t     *n;
    ngx_http_fanbase_shctx_t      *sh;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_fanbase_notify_mcf;
    sh = mcf->sh;
    now = ngx_http_fanbase_time_now();

    drop = sent
           || (why != NULL
               && now >= job->created + (uint64_t) mcf->notify_horizon * 1000);

    delay = 0;

    if (why != NULL && !drop) {
        delay = (job->attempts < 20) ? (ngx_msec_t) 1000 << job->attempts
                                     : NGX_HTTP_FANBASE_NOTIFY_BACKOFF;
        delay = ngx_min(delay, NGX_HTTP_FANBASE_NOTIFY_BACKOFF);
        delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);
    }

    ngx_shmtx_lock(&mcf->shpool->mutex);

    n = ngx_http_fanbase_notice_find(sh, job);

    if (n != NULL) {
        n->owner = 0;

        if (drop) {
            ngx_rbtree_delete(&sh->notices, &n->due);
            ngx_queue_remove(&n->queue);
            ngx_slab_free_locked(mcf->shpool, n);
            sh->notice_count--;

        } else {
            if (why != NULL) {
                n->attempts++;
            }

            ngx_rbtree_delete(&sh->notices, &n->due);
            n->due.key = ngx_current_msec + delay;
            ngx_rbtree_insert(&sh->notices, &n->due);
        }

        (void) ngx_atomic_fetch_add(&sh->changes, 1);
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    if (sent) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fanbase: notification \"%V\" delivered to the site",
                      &job->id);

    } else if (drop) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: notification \"%V\" dropped after %uD "
                      "attempts over fanbase_notify_horizon; last: %s",
                      &job->id, job->attempts + 1, why);

    } else if (why != NULL) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: notification \"%V\" not delivered: %s; "
                      "next attempt in %M ms", &job->id, why, delay);
    }

    ngx_http_fanbase_notify_free(job);

    ngx_http_fanbase_notify_kick();
}


/* the job's notice, if it still holds the claim */

static ngx_http_fanbase_notice_t *
ngx_http_fanbase_notice_find(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_notify_job_t *job)
{
    ngx_queue_t                *q;
    ngx_http_fanbase_notice_t  *n;

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_fanbase_notice_t, queue);

        if (n->claim == job->claim && n->owner == ngx_pid
            && n->id_len == job->id.len
            && ngx_memcmp(n->id, job->id.data, job->id.len) == 0)
        {
            return n;
        }
    }

    return NULL;
}


static void
ngx_http_fanbase_notify_free(ngx_http_fanbase_notify_job_t *job)
{
    if (job->http != NULL) {
        ngx_http_fanbase_curl_destroy(job->http);
    }

    ngx_queue_remove(&job->queue);
    ngx_http_fanbase_notify_n--;

    ngx_free(job);
}
