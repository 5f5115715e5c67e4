
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_TXN_H_INCLUDED_
#define _NGX_HTTP_FANBASE_TXN_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_wait.h"


/* an asynchronous transaction in the zone */

typedef struct {
    ngx_queue_t                   queue;
    uint32_t                      len;
    u_char                        json[1];     /* one event object */
} ngx_http_fanbase_event_t;


/* a transaction's status, and the zone's count of each, under the lock */
#define ngx_http_fanbase_txn_set_status(sh, t, s)                            \
    do {                                                                     \
        (sh)->txn_status[(t)->status]--;                                     \
        (t)->status = (u_char) (s);                                          \
        (sh)->txn_status[(t)->status]++;                                     \
    } while (0)


#define NGX_HTTP_FANBASE_UNSCHEDULED   0
#define NGX_HTTP_FANBASE_SCHEDULED     1       /* in sh->schedule */
#define NGX_HTTP_FANBASE_READY         2       /* in sh->ready */
#define NGX_HTTP_FANBASE_PARKED        3       /* in a breaker's parked,
                                                  by "due" */

struct ngx_http_fanbase_txn_s {
    ngx_http_fanbase_txn_t       *hash_next;   /* sh->txn_hash chain */
    uint64_t                      scope;       /* its credential set */
    ngx_rbtree_node_t             due;         /* sh->schedule: msec */
    ngx_queue_t                   ready;       /* sh->ready */
    ngx_queue_t                   queue;       /* txn_live or txn_done */
    ngx_queue_t                   events;      /* oldest first */
    u_char                       *data;        /* payload, then queue id */
    uint32_t                      payload_len; /* 0 once delivered */
    uint32_t                      version;     /* the ETag */
    uint32_t                      claim;
    uint32_t                      attempts;
    uint64_t                      created;     /* ms since the epoch */
    uint64_t                      updated;
    uint64_t                      deliver_by;
    uint64_t                      track_by;
    ngx_pid_t                     owner;       /* worker with the claim */
    uint32_t                      hash;        /* of the scope and the id */
    u_char                        target[NGX_HTTP_FANBASE_TARGET_LEN];
    u_char                        id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    u_char                        queue_id_len;
    u_char                        status;
    u_char                        nevents;
    u_char                        max_events;
    unsigned                      sent:1;      /* a POST may have left */
    unsigned                      scheduled:2; /* NGX_HTTP_FANBASE_... */
    unsigned                      accepted:1;  /* the first event, implied */
    unsigned                      request_id_len:7;
    uint32_t                      request_id;  /* the accepting request's
                                                  id: its chunk's offset in
                                                  the zone, 0: none */
    ngx_http_fanbase_qid_t       *qid;         /* its queue id's index */
};


/* the index of Fanbase's queue ids, for webhooks that name a transaction so */

struct ngx_http_fanbase_qid_s {
    ngx_http_fanbase_qid_t       *hash_next;   /* sh->qid_hash */
    ngx_http_fanbase_qid_t      **hash_prev;   /* what points here */
    ngx_http_fanbase_txn_t       *txn;
    uint32_t                      hash;
    u_char                        len;
    u_char                        queue_id[1];
};


/* a transaction copied out of the zone */

typedef struct {
    ngx_str_t                     json;        /* the downstream shape */
    uint64_t                      updated;     /* ms since the epoch */
    uint32_t                      version;
    ngx_uint_t                    status;
    ngx_uint_t                    stale;       /* the shared engine was
                                                  away: as last read */
} ngx_http_fanbase_txn_view_t;


/* a new transaction */

typedef struct {
    u_char                        id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    ngx_str_t                     payload;
    ngx_str_t                     idem_key;    /* empty: none */
    ngx_str_t                     request_id;  /* empty: none */
    u_char                        digest[16];  /* MD5 of the payload */
    ngx_http_fanbase_loc_conf_t  *lcf;
    uint64_t                      seq;         /* its journal record */
} ngx_http_fanbase_txn_new_t;


/* one delivery or status poll of a transaction, claimed by this worker */

#define NGX_HTTP_FANBASE_JOB_DELIVER   1
#define NGX_HTTP_FANBASE_JOB_TRACK     2

typedef struct {
    ngx_queue_t                   queue;
    ngx_uint_t                    kind;
    u_char                        id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    ngx_str_t                     id_str;
    u_char                        request_id[NGX_HTTP_FANBASE_REQUEST_ID_MAX];
    ngx_str_t                     request_id_str; /* empty: none */
    u_char                        queue_id[NGX_HTTP_FANBASE_ID_MAX];
    size_t                        queue_id_len;
    uint32_t                      claim;
    uint32_t                      attempts;
    uint64_t                      deadline;    /* ms since the epoch */
    uint64_t                      scope;
    u_char                       *payload;     /* ngx_alloc()ed copy */
    size_t                        payload_len;
    u_char                        target[NGX_HTTP_FANBASE_TARGET_LEN];
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_http_fanbase_curl_t      *http;
    ngx_http_fanbase_store_op_t   op;          /* "sending" */
    uint64_t                      seq;         /* "sent"'s journal record */
    ngx_pool_t                   *pool;
    char                         *url;
    ngx_http_fanbase_waiter_t     waiter;      /* for a token */
    unsigned                      sent:1;      /* an earlier owner sent it */
    unsigned                      token_retried:1;
    unsigned                      local:1;     /* a shared engine's
                                                  fallback claimed it */
} ngx_http_fanbase_job_t;


/* a status update from a webhook */

typedef struct {
    ngx_str_t                     msg_id;      /* for deduplication */
    uint64_t                      expires;
    uint64_t                      scope;       /* the location's */
    ngx_str_t                     id;          /* the edge's or Fanbase's */
    ngx_uint_t                    status;
    ngx_str_t                     event;       /* rendered */
    ngx_uint_t                    max_events;
    unsigned                      create:1;    /* unknown: a new one */
} ngx_http_fanbase_hook_t;


/* a transaction as the state file carries it, checked */

typedef struct {
    uint64_t                      scope;
    ngx_str_t                     id;
    u_char                       *target;      /* TARGET_LEN bytes */
    ngx_uint_t                    status;
    ngx_str_t                     payload;     /* empty: none */
    ngx_str_t                     queue_id;    /* empty: not delivered */
    ngx_str_t                     request_id;  /* empty: none */
    uint64_t                      created;
    uint64_t                      updated;
    uint64_t                      deliver_by;
    uint64_t                      track_by;
    uint32_t                      version;
    uint32_t                      attempts;
    ngx_uint_t                    max_events;
    ngx_uint_t                    sent;
} ngx_http_fanbase_txn_saved_t;


/* what a finished job does to its transaction */

typedef struct {
    ngx_uint_t                    status;      /* FANBASE_STATUS_*, or 0 */
    ngx_str_t                     queue_id;    /* delivered as */
    ngx_str_t                     event;       /* rendered, or empty */
    ngx_msec_t                    retry;       /* not terminal: due after */
    ngx_msec_t                    wait;        /* down: Fanbase asked for
                                                  this pause (Retry-After) */
    unsigned                      delivered:1;
    unsigned                      not_sent:1;  /* provably never sent */
    unsigned                      attempt:1;   /* counts for the backoff */
    unsigned                      down:1;      /* Fanbase or its token
                                                  endpoint did not answer:
                                                  its breaker opens */
    unsigned                      answered:1;  /* Fanbase answered: its
                                                  breaker closes */
} ngx_http_fanbase_txn_update_t;


/* the transactions' part of fanbase_health */

typedef struct {
    ngx_uint_t                    failures;    /* 0: closed */
    ngx_uint_t                    waiting;     /* parked */
    ngx_msec_t                    probe_in;    /* 0: due, or out */
    unsigned                      probing:1;
} ngx_http_fanbase_txn_breaker_health_t;

typedef struct {
    ngx_uint_t                    transactions;
    ngx_uint_t                    full;        /* the last new one failed */
    ngx_uint_t                    by_status[6]; /* FANBASE_STATUS_* */
    ngx_uint_t                    idempotency_keys;
    ngx_uint_t                    nbreakers;
    ngx_http_fanbase_txn_breaker_health_t  breakers[NGX_HTTP_FANBASE_BREAKERS];
} ngx_http_fanbase_txn_health_t;


ngx_int_t ngx_http_fanbase_txn_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_txn_create(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_new_t *nt, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_txn_get(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_pool_t *pool,
    ngx_http_fanbase_txn_view_t *v);
ngx_int_t ngx_http_fanbase_txn_cancel(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_txn_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_msec_t lease, ngx_msec_t *next);
ngx_int_t ngx_http_fanbase_txn_sending(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job);
void ngx_http_fanbase_txn_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_http_fanbase_txn_update_t *u,
    ngx_log_t *log);
ngx_int_t ngx_http_fanbase_txn_event(ngx_pool_t *pool, const char *kind,
    const char *message, ngx_uint_t status, ngx_str_t *data,
    ngx_str_t *out);
ngx_uint_t ngx_http_fanbase_txn_evict(ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_txn_health(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_health_t *th);
ngx_int_t ngx_http_fanbase_txn_hook(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_hook_t *hk, ngx_log_t *log);
void ngx_http_fanbase_txn_hook_release(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *msg_id);
void ngx_http_fanbase_txn_forget_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t);


/*
 * Where the changes go (the zone locked): the journal's, set by it in a
 * worker with a state file; appends "t" and "k" if not NULL and returns
 * the number of the last record it holds.  NULL: nowhere.
 */

typedef uint64_t (*ngx_http_fanbase_txn_journal_pt)(ngx_http_fanbase_txn_t *t,
    ngx_http_fanbase_idem_t *k);

extern ngx_http_fanbase_txn_journal_pt  ngx_http_fanbase_txn_journal;
ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_find_locked(
    ngx_http_fanbase_shctx_t *sh, uint64_t scope, u_char *id, size_t len);
u_char *ngx_http_fanbase_txn_accepted(u_char *p, uint64_t created);
ngx_int_t ngx_http_fanbase_txn_cancel_event(ngx_pool_t *pool,
    ngx_str_t *event);
void ngx_http_fanbase_txn_request_id(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, ngx_str_t *id);
ngx_int_t ngx_http_fanbase_txn_restore_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_saved_t *s,
    ngx_http_fanbase_txn_t **tp);
ngx_int_t ngx_http_fanbase_txn_restore_event_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t,
    ngx_str_t *event);
void ngx_http_fanbase_txn_restore_end_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t);


#endif /* _NGX_HTTP_FANBASE_TXN_H_INCLUDED_ */
