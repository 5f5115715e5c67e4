
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_MODULE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ngx_md5.h>

#include <curl/curl.h>

#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_signature.h"


#define NGX_HTTP_FANBASE_VERSION        "0.1.0"

#define NGX_HTTP_FANBASE_ID_MAX         64
#define NGX_HTTP_FANBASE_TOKEN_MAX      8192
#define NGX_HTTP_FANBASE_RESPONSE_MAX   (1024 * 1024)
#define NGX_HTTP_FANBASE_QUEUE_PATH     "/api/v1/integration/queue"

#define NGX_HTTP_FANBASE_TRIGGER        "api/v1/integration/queue"

#define NGX_HTTP_FANBASE_SUBMIT         1
#define NGX_HTTP_FANBASE_STATUS         2
#define NGX_HTTP_FANBASE_TRANSACTION    3
#define NGX_HTTP_FANBASE_WEBHOOK        4

#define NGX_HTTP_FANBASE_AUTH_STANDARD  1
#define NGX_HTTP_FANBASE_AUTH_HMAC      2
#define NGX_HTTP_FANBASE_AUTH_TOKEN     3

#define NGX_HTTP_FANBASE_SECRETS_MAX    8
/* "msg_" ID "_" STATUS */
#define NGX_HTTP_FANBASE_NOTICE_ID_MAX  56

#define NGX_HTTP_FANBASE_TXN_ID_LEN     36         /* a UUID */
#define NGX_HTTP_FANBASE_IDEM_KEY_MAX   255

/*
 * Which "fanbase_submit async" location delivers a transaction: the MD5
 * of where and as whom it goes (queue URL, credential set), then the MD5
 * of how (timeouts, TLS settings)
 */
/* the length of the implied first event of a transaction */
#define NGX_HTTP_FANBASE_ACCEPTED_LEN                                        \
    (sizeof("{\"event\":\"transition\",\"message\":\"accepted by the edge\","  \
            "\"data\":{},\"status\":\"pending\",\"created_at\":\"\"}") - 1 + 24)

#define NGX_HTTP_FANBASE_ROUTE_LEN      16
#define NGX_HTTP_FANBASE_TARGET_LEN     32

/*
 * The scope of a credential set: the first 8 bytes of the MD5 of the
 * Fanbase API and the client id (or the path of the fixed token's file),
 * never of a secret.  Every transaction, Idempotency-Key, webhook message
 * id and queue item in the zone carries the scope that made it, and is
 * found by (scope, id): another credential set does not see it.
 */


typedef struct ngx_http_fanbase_cred_s        ngx_http_fanbase_cred_t;
typedef struct ngx_http_fanbase_curl_s        ngx_http_fanbase_curl_t;
typedef struct ngx_http_fanbase_headers_s     ngx_http_fanbase_headers_t;
typedef struct ngx_http_fanbase_sched_s       ngx_http_fanbase_sched_t;
typedef struct ngx_http_fanbase_waiter_s      ngx_http_fanbase_waiter_t;
typedef struct ngx_http_fanbase_call_s        ngx_http_fanbase_call_t;
typedef struct ngx_http_fanbase_loc_conf_s    ngx_http_fanbase_loc_conf_t;
typedef struct ngx_http_fanbase_main_conf_s   ngx_http_fanbase_main_conf_t;
typedef struct ngx_http_fanbase_txn_s         ngx_http_fanbase_txn_t;
typedef struct ngx_http_fanbase_qid_s         ngx_http_fanbase_qid_t;


/* settings of outbound transfers */

typedef struct {
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    timeout;
    ngx_flag_t                    ssl_verify;
    ngx_str_t                     ssl_trusted_certificate;
} ngx_http_fanbase_upstream_conf_t;


/* the shared zone */

/* claimed keys that expire: Idempotency-Keys, webhook message ids */

typedef struct ngx_http_fanbase_idem_s  ngx_http_fanbase_idem_t;

typedef struct {
    ngx_http_fanbase_idem_t     **hash;        /* chained buckets */
    ngx_uint_t                    mask;
    ngx_queue_t                   lru;         /* oldest claim first */
} ngx_http_fanbase_keys_t;


/* a hint that memory is about to be read: a cache miss started early */
#if (defined __GNUC__ || defined __clang__)
#define ngx_http_fanbase_prefetch(p)  __builtin_prefetch(p)
#else
#define ngx_http_fanbase_prefetch(p)
#endif


/* bumped whenever the zone's layout changes */
#define NGX_HTTP_FANBASE_ZONE_VERSION   6

/*
 * per bucket of the hash tables, after the context: the heads of the
 * chains of transactions, Idempotency-Keys, webhook message ids and queue
 * ids, and a change stamp
 */
#define NGX_HTTP_FANBASE_BUCKET_SIZE                                         \
    (4 * sizeof(void *) + sizeof(ngx_atomic_t))

typedef struct {
    uint32_t                      layout;      /* what made the zone */
    ngx_uint_t                    buckets;     /* of each hash table */
    ngx_rbtree_t                  rbtree;
    ngx_rbtree_node_t             sentinel;
    ngx_queue_t                   evictable;   /* LRU: terminal and probes */
    ngx_queue_t                   active;      /* not terminal: kept */
    ngx_queue_t                   tokens;
    ngx_uint_t                    entries;
    ngx_uint_t                    evictions;

    /* asynchronous transactions (ngx_http_fanbase_txn.c) */
    ngx_http_fanbase_txn_t      **txn_hash;    /* by id: chained buckets */
    ngx_uint_t                    txn_hash_mask;
    ngx_queue_t                   ready;       /* due now, oldest first */
    ngx_rbtree_t                  schedule;    /* due later, or claimed */
    ngx_rbtree_node_t             schedule_sentinel;
    ngx_queue_t                   txn_live;    /* not terminal: kept */
    ngx_queue_t                   txn_done;    /* terminal: LRU, evictable */
    ngx_http_fanbase_keys_t       idem;        /* Idempotency-Keys */
    ngx_uint_t                    txn_count;

    ngx_http_fanbase_qid_t      **qid_hash;    /* Fanbase's id -> txn */
    ngx_http_fanbase_keys_t       hooks;       /* webhook message ids */
    ngx_rbtree_t                  notices;     /* outbound: by due time */
    ngx_rbtree_node_t             notices_sentinel;
    ngx_queue_t                   notices_all;
    ngx_uint_t                    notice_count;

    ngx_atomic_t                  changes;     /* bumped by every change */
    ngx_atomic_t                 *stamps;      /* per txn_hash bucket: the
                                                  same, of its transactions */
    ngx_atomic_uint_t             saved;       /* "changes" last saved */
    ngx_msec_t                    save_lease;
    ngx_uint_t                    saving;
} ngx_http_fanbase_shctx_t;


/*
 * a part of the zone (ngx_http_fanbase_zone.c): init sets up its records
 * in a new zone, attach checks in with a zone kept over a reload (NULL:
 * nothing to do), evict frees its least needed record and returns 1, or
 * returns 0 when it has none it may give (NULL: never)
 */

typedef ngx_int_t (*ngx_http_fanbase_zone_init_pt)(
    ngx_http_fanbase_main_conf_t *mcf, size_t size, ngx_log_t *log);
typedef ngx_uint_t (*ngx_http_fanbase_zone_evict_pt)(
    ngx_http_fanbase_main_conf_t *mcf);

typedef struct {
    const char                   *name;        /* NULL ends the table */
    ngx_http_fanbase_zone_init_pt init;
    ngx_http_fanbase_zone_init_pt attach;
    ngx_http_fanbase_zone_evict_pt evict;
} ngx_http_fanbase_zone_part_t;


struct ngx_http_fanbase_main_conf_s {
    ngx_shm_zone_t               *shm_zone;
    ngx_http_fanbase_zone_part_t *parts;       /* the zone's, in order */
    ngx_http_fanbase_shctx_t     *sh;
    ngx_slab_pool_t              *shpool;
    ngx_array_t                   creds;       /* ngx_http_fanbase_cred_t * */
    ngx_array_t                   targets;     /* async locations: lcf * */
    ngx_str_t                     state;       /* state file, "\0" */
    ngx_uint_t                    prefault;    /* map the zone at start */
#if (NGX_THREADS)
    ngx_thread_pool_t            *state_pool;  /* writes the state file */
#endif
    ngx_uint_t                    deliver_concurrency;

    /* outbound webhooks */
    ngx_str_t                     notify_url;  /* "\0" */
    ngx_str_t                     notify_secret;
    fanbase_secret_t              notify_key;
    time_t                        notify_horizon;
    ngx_uint_t                    notify_concurrency;
    ngx_http_fanbase_loc_conf_t  *notify_lcf;  /* http level: timeouts */
    ngx_http_fanbase_sched_t     *notify_sched; /* this worker's sender */
};


struct ngx_http_fanbase_loc_conf_s {
    ngx_str_t                     api;
    ngx_str_t                     queue_url;   /* api + queue path, "\0" */
    ngx_str_t                     token_url;
    ngx_str_t                     client_id;
    ngx_str_t                     client_secret;
    ngx_str_t                     access_token;
    ngx_str_t                     access_token_path;
    ngx_http_fanbase_cred_t      *cred;
    uint64_t                      scope;       /* whose records it sees */
    ngx_http_fanbase_upstream_conf_t  upstream;
    ngx_msec_t                    status_refresh;
    ngx_flag_t                    store_payload;
    ngx_http_complex_value_t     *status_id;
    ngx_uint_t                    handler;
    ngx_str_t                    *handler_file;
    ngx_uint_t                    handler_line;

    /* asynchronous transactions */
    ngx_flag_t                    async;
    u_char                        target[NGX_HTTP_FANBASE_TARGET_LEN];
    ngx_str_t                     transaction_path;
    time_t                        idempotency_window;
    time_t                        deliver_horizon;
    time_t                        track_horizon;
    ngx_uint_t                    transaction_events;
    ngx_msec_t                    long_poll;

    /* inbound webhooks */
    ngx_array_t                  *webhook_secrets; /* ngx_keyval_t */
    fanbase_secret_t             *webhook_keys;
    ngx_uint_t                    webhook_nkeys;
    ngx_uint_t                    webhook_auth;
    ngx_str_t                     webhook_header;
    ngx_uint_t                    webhook_encoding;
    time_t                        webhook_tolerance;
    time_t                        webhook_dedup;
    ngx_flag_t                    webhook_create;
};


/* a status lookup in the store */

typedef struct {
    ngx_msec_t                    refresh;
    ngx_msec_t                    lease;       /* a read-through may take */
    ngx_msec_t                    seen;        /* answer seen when waiting */
    unsigned                      waiting:1;
    unsigned                      want_msg:1;
} ngx_http_fanbase_lookup_t;


/* tokens */

struct ngx_http_fanbase_cred_s {
    u_char                        key[16];     /* MD5 of the credential set */
    ngx_str_t                     url;         /* token request, "\0" */
    ngx_str_t                     fixed;       /* fanbase_access_token_file */
    ngx_str_t                     name;        /* for logs: no secret */
    ngx_http_fanbase_main_conf_t *mcf;
    ngx_http_fanbase_upstream_conf_t *upstream;

    /* this worker's view */
    void                         *slot;
    ngx_http_fanbase_headers_t *hdr;
    ngx_http_fanbase_curl_t      *fetch;
};


/* a worker's scheduler of due work (ngx_http_fanbase_sched.c) */

/*
 * claim: the next due piece of work, claimed, or NULL and *next: the ms
 * until one may be due (0: one was passed over, look again); start: sets
 * it going, and it calls ngx_http_fanbase_sched_done() when it ends
 */
typedef ngx_queue_t *(*ngx_http_fanbase_sched_claim_pt)(
    ngx_http_fanbase_sched_t *s, ngx_msec_t *next);
typedef void (*ngx_http_fanbase_sched_start_pt)(ngx_queue_t *job);

struct ngx_http_fanbase_sched_s {
    ngx_http_fanbase_sched_claim_pt  claim;
    ngx_http_fanbase_sched_start_pt  start;
    ngx_uint_t                    concurrency; /* places of this worker */
    ngx_msec_t                    tick;        /* looks at least this often */
    void                         *data;        /* the kind's */

    ngx_queue_t                   jobs;        /* running here */
    ngx_uint_t                    running;
    ngx_event_t                   event;
    ngx_connection_t              conn;        /* the event's, for logs */
    unsigned                      active:1;
};


/* the libcurl bridge */

/*
 * request headers shared by many transfers (a token's AccessToken and
 * friends), counted: the last transfer to let go frees them; the tag is
 * its owner's (the token's generation)
 */

struct ngx_http_fanbase_headers_s {
    ngx_uint_t                    refs;
    uint64_t                      tag;
    struct curl_slist            *headers;
};

typedef void (*ngx_http_fanbase_curl_handler_pt)(ngx_http_fanbase_curl_t *h);

struct ngx_http_fanbase_curl_s {
    CURL                         *easy;
    ngx_queue_t                   queue;
    ngx_http_fanbase_curl_handler_pt  handler;
    void                         *data;
    ngx_log_t                    *log;
    ngx_http_fanbase_upstream_conf_t  *conf;
    ngx_http_fanbase_headers_t *hdr;
    struct curl_slist            *headers;     /* its own, freed with it */

    CURLcode                      result;
    long                          status;
    u_char                       *body;
    size_t                        len;
    size_t                        size;
    u_char                        content_type[128];
    u_char                        retry_after[32];
    char                          error[CURL_ERROR_SIZE];

    ngx_uint_t                    attempts;

    unsigned                      running:1;
};


/* waiting for another worker's (or this worker's) fetch */

typedef ngx_int_t (*ngx_http_fanbase_waiter_pt)(ngx_http_fanbase_waiter_t *w);

struct ngx_http_fanbase_waiter_s {
    ngx_queue_t                   queue;
    ngx_http_fanbase_waiter_pt    handler;     /* NGX_AGAIN: keep waiting */
    void                         *data;
    unsigned                      waiting:1;
};


/* an authenticated call to Fanbase Connect on behalf of a request */

typedef void (*ngx_http_fanbase_call_done_pt)(ngx_http_fanbase_call_t *call,
    ngx_int_t rc);

struct ngx_http_fanbase_call_s {
    ngx_http_request_t           *request;
    ngx_http_fanbase_loc_conf_t  *lcf;
    ngx_str_t                     url;         /* "\0"-terminated */
    ngx_str_t                     body;
    ngx_http_fanbase_curl_t      *http;
    ngx_http_fanbase_headers_t *hdr;
    ngx_http_fanbase_waiter_t     waiter;
    ngx_http_fanbase_call_done_pt done;
    void                         *data;
    time_t                        retry_after;
    unsigned                      post:1;
    unsigned                      retried:1;
    unsigned                      rejected:1;
};


/* an asynchronous transaction in the zone */

typedef struct {
    ngx_queue_t                   queue;
    uint32_t                      len;
    u_char                        json[1];     /* one event object */
} ngx_http_fanbase_event_t;


#define NGX_HTTP_FANBASE_UNSCHEDULED   0
#define NGX_HTTP_FANBASE_SCHEDULED     1       /* in sh->schedule */
#define NGX_HTTP_FANBASE_READY         2       /* in sh->ready */

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


/* an outbound webhook waiting to be sent */

typedef struct {
    ngx_rbtree_node_t             due;         /* sh->notices: msec */
    ngx_queue_t                   queue;       /* sh->notices_all */
    uint64_t                      created;     /* ms since the epoch */
    uint32_t                      attempts;
    uint32_t                      claim;
    uint32_t                      len;
    ngx_pid_t                     owner;
    u_char                        id_len;
    u_char                        id[NGX_HTTP_FANBASE_NOTICE_ID_MAX];
    u_char                        body[1];     /* the transaction, JSON */
} ngx_http_fanbase_notice_t;


/* a notice claimed by this worker, copied out of the zone */

typedef struct {
    ngx_queue_t                   queue;       /* its scheduler's jobs */
    uint32_t                      claim;
    uint32_t                      attempts;
    uint64_t                      created;
    ngx_str_t                     id;
    ngx_str_t                     body;
    ngx_http_fanbase_curl_t      *http;
    u_char                        data[1];     /* id, then body */
} ngx_http_fanbase_notice_job_t;


/* an Idempotency-Key claim, or a webhook message id */

struct ngx_http_fanbase_idem_s {
    ngx_http_fanbase_idem_t      *hash_next;   /* keys->hash chain */
    uint32_t                      hash;        /* of the scope and the key */
    ngx_queue_t                   queue;       /* keys->lru */
    uint64_t                      scope;       /* who claimed it */
    uint64_t                      expires;     /* ms since the epoch */
    u_char                        digest[16];
    u_char                        txn_id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    u_char                        len;
    u_char                        key[1];
};


/* a transaction copied out of the zone */

typedef struct {
    ngx_str_t                     json;        /* the downstream shape */
    uint64_t                      updated;     /* ms since the epoch */
    uint32_t                      version;
    ngx_uint_t                    status;
} ngx_http_fanbase_txn_view_t;


/* a new transaction */

typedef struct {
    u_char                        id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    ngx_str_t                     payload;
    ngx_str_t                     idem_key;    /* empty: none */
    u_char                        digest[16];  /* MD5 of the payload */
    ngx_http_fanbase_loc_conf_t  *lcf;
} ngx_http_fanbase_txn_new_t;


/* one delivery or status poll of a transaction, claimed by this worker */

#define NGX_HTTP_FANBASE_JOB_DELIVER   1
#define NGX_HTTP_FANBASE_JOB_TRACK     2

typedef struct {
    ngx_queue_t                   queue;
    ngx_uint_t                    kind;
    u_char                        id[NGX_HTTP_FANBASE_TXN_ID_LEN];
    ngx_str_t                     id_str;
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
    ngx_pool_t                   *pool;
    char                         *url;
    unsigned                      sent:1;      /* an earlier owner sent it */
    unsigned                      token_retried:1;
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


/* what a finished job does to its transaction */

typedef struct {
    ngx_uint_t                    status;      /* FANBASE_STATUS_*, or 0 */
    ngx_str_t                     queue_id;    /* delivered as */
    ngx_str_t                     event;       /* rendered, or empty */
    ngx_msec_t                    retry;       /* not terminal: due after */
    unsigned                      delivered:1;
    unsigned                      not_sent:1;  /* provably never sent */
    unsigned                      attempt:1;   /* counts for the backoff */
} ngx_http_fanbase_txn_update_t;


/* ngx_http_fanbase_zone.c */
ngx_int_t ngx_http_fanbase_zone_init(ngx_shm_zone_t *shm_zone, void *data);
ngx_int_t ngx_http_fanbase_zone_prefault(ngx_shm_zone_t *shm_zone,
    ngx_log_t *log);
void *ngx_http_fanbase_zone_alloc_locked(ngx_http_fanbase_main_conf_t *mcf,
    size_t size);

/* ngx_http_fanbase_sched.c */
void ngx_http_fanbase_sched_start(ngx_http_fanbase_sched_t *s,
    ngx_log_t *log);
void ngx_http_fanbase_sched_stop(ngx_http_fanbase_sched_t *s);
void ngx_http_fanbase_sched_kick(ngx_http_fanbase_sched_t *s);
void ngx_http_fanbase_sched_done(ngx_http_fanbase_sched_t *s,
    ngx_queue_t *job);
ngx_msec_t ngx_http_fanbase_sched_backoff(ngx_uint_t attempts,
    ngx_msec_t max, ngx_uint_t jitter);

/* ngx_http_fanbase_id.c */
ngx_int_t ngx_http_fanbase_id_valid(ngx_str_t *id);
ngx_int_t ngx_http_fanbase_id_valid_txn(ngx_str_t *id);
uint32_t ngx_http_fanbase_id_hash(uint64_t scope, u_char *id, size_t len);

/* ngx_http_fanbase_time.c */
uint64_t ngx_http_fanbase_time_now(void);
u_char *ngx_http_fanbase_time_iso(u_char *p, uint64_t ms);

/* ngx_http_fanbase_curl.c */
ngx_int_t ngx_http_fanbase_curl_init_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_curl_exit_process(ngx_cycle_t *cycle);
ngx_http_fanbase_curl_t *ngx_http_fanbase_curl_create(ngx_log_t *log,
    ngx_http_fanbase_upstream_conf_t *conf, const char *url);
void ngx_http_fanbase_curl_post(ngx_http_fanbase_curl_t *h, u_char *body,
    size_t len);
ngx_int_t ngx_http_fanbase_curl_start(ngx_http_fanbase_curl_t *h);
void ngx_http_fanbase_curl_destroy(ngx_http_fanbase_curl_t *h);
void ngx_http_fanbase_curl_headers_release(ngx_http_fanbase_headers_t *hdr);

/* ngx_http_fanbase_wait.c */
ngx_int_t ngx_http_fanbase_wait_init_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_wait_add(ngx_http_fanbase_waiter_t *w);
void ngx_http_fanbase_wait_remove(ngx_http_fanbase_waiter_t *w);
void ngx_http_fanbase_wait_kick(void);

/* ngx_http_fanbase_token.c */
ngx_int_t ngx_http_fanbase_token_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_token_attach_zone(
    ngx_http_fanbase_main_conf_t *mcf, size_t size, ngx_log_t *log);
ngx_http_fanbase_cred_t *ngx_http_fanbase_token_cred(ngx_conf_t *cf,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_loc_conf_t *lcf);
ngx_int_t ngx_http_fanbase_token_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_token_get(ngx_http_fanbase_cred_t *cred,
    ngx_log_t *log, ngx_http_fanbase_headers_t **hdr, time_t *retry_after);
void ngx_http_fanbase_token_reject(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_headers_t *hdr, ngx_log_t *log);

/* ngx_http_fanbase_connect.c */
ngx_int_t ngx_http_fanbase_call_start(ngx_http_fanbase_call_t *call);

/* ngx_http_fanbase_store.c */
ngx_int_t ngx_http_fanbase_store_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_uint_t ngx_http_fanbase_store_evict(ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_store_lookup(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_http_fanbase_lookup_t *lk,
    ngx_pool_t *pool, fanbase_item_t *item);
ngx_int_t ngx_http_fanbase_store_update(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, fanbase_item_t *item, ngx_uint_t keep_msg,
    ngx_uint_t owned, void *reserved, ngx_log_t *log);
ngx_uint_t ngx_http_fanbase_store_known(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id);
void ngx_http_fanbase_store_release(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_uint_t not_found);
void *ngx_http_fanbase_store_reserve(ngx_http_fanbase_main_conf_t *mcf,
    size_t payload, ngx_log_t *log);
void ngx_http_fanbase_store_unreserve(ngx_http_fanbase_main_conf_t *mcf,
    void *reserved);
size_t ngx_http_fanbase_store_entry_size(fanbase_item_t *item,
    ngx_uint_t keep_msg);

/* ngx_http_fanbase_txn.c */
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
void ngx_http_fanbase_txn_sending(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job);
void ngx_http_fanbase_txn_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_http_fanbase_txn_update_t *u,
    ngx_log_t *log);
ngx_int_t ngx_http_fanbase_txn_event(ngx_pool_t *pool, const char *kind,
    const char *message, ngx_uint_t status, ngx_str_t *data,
    ngx_str_t *out);
ngx_uint_t ngx_http_fanbase_txn_evict(ngx_http_fanbase_main_conf_t *mcf);
ngx_int_t ngx_http_fanbase_txn_hook(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_hook_t *hk, ngx_log_t *log);
void ngx_http_fanbase_txn_hook_release(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *msg_id);
ngx_int_t ngx_http_fanbase_txn_index_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t, u_char *queue_id, size_t len);
void ngx_http_fanbase_txn_schedule_locked(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t, ngx_msec_t delay);
void ngx_http_fanbase_txn_unschedule_locked(ngx_http_fanbase_shctx_t *sh,
    ngx_http_fanbase_txn_t *t);
ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_insert_locked(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, u_char *id,
    uint32_t hash, ngx_str_t *payload, ngx_msec_t due);
ngx_http_fanbase_txn_t *ngx_http_fanbase_txn_find_locked(
    ngx_http_fanbase_shctx_t *sh, uint64_t scope, u_char *id, size_t len);
u_char *ngx_http_fanbase_txn_accepted(u_char *p, uint64_t created);
size_t ngx_http_fanbase_txn_json_size(ngx_http_fanbase_txn_t *t);
u_char *ngx_http_fanbase_txn_json(u_char *p, ngx_http_fanbase_txn_t *t);
ngx_int_t ngx_http_fanbase_txn_add_event_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t,
    ngx_str_t *event);
ngx_http_fanbase_idem_t *ngx_http_fanbase_keys_insert_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_keys_t *keys,
    uint64_t scope, ngx_str_t *key, uint32_t hash, u_char *digest,
    u_char *txn_id, uint64_t expires);
ngx_http_fanbase_idem_t *ngx_http_fanbase_keys_find_locked(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_keys_t *keys,
    uint64_t scope, ngx_str_t *key, uint32_t hash, uint64_t now);
void ngx_http_fanbase_keys_delete_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, ngx_http_fanbase_idem_t *k);
void ngx_http_fanbase_txn_terminal_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t);
void ngx_http_fanbase_txn_unowned_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t);

/* ngx_http_fanbase_accept.c */
ngx_int_t ngx_http_fanbase_accept(ngx_http_request_t *r, ngx_str_t *body);

/* ngx_http_fanbase_deliver.c */
ngx_int_t ngx_http_fanbase_deliver_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_deliver_exit_process(ngx_cycle_t *cycle);
void ngx_http_fanbase_deliver_kick(void);

/* ngx_http_fanbase_webhook.c */
ngx_int_t ngx_http_fanbase_webhook_handler(ngx_http_request_t *r);

/* ngx_http_fanbase_notice.c */
ngx_int_t ngx_http_fanbase_notice_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_http_fanbase_notice_t *ngx_http_fanbase_notice_alloc_locked(
    ngx_http_fanbase_main_conf_t *mcf, size_t size);
void ngx_http_fanbase_notice_queue_locked(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_t *n, ngx_str_t *id, uint64_t created,
    uint32_t attempts);
ngx_http_fanbase_notice_job_t *ngx_http_fanbase_notice_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_msec_t lease, ngx_msec_t *next);
void ngx_http_fanbase_notice_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_job_t *job, ngx_uint_t drop, ngx_msec_t delay,
    ngx_uint_t failed);

/* ngx_http_fanbase_notify.c */
ngx_int_t ngx_http_fanbase_notify_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_notify_exit_process(ngx_cycle_t *cycle);

/* ngx_http_fanbase_transaction.c */
ngx_int_t ngx_http_fanbase_transaction_handler(ngx_http_request_t *r);

/* ngx_http_fanbase_state.c */
ngx_int_t ngx_http_fanbase_state_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_state_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_state_save(ngx_http_fanbase_main_conf_t *mcf,
    ngx_uint_t force, ngx_log_t *log);

/* ngx_http_fanbase_submit.c */
ngx_int_t ngx_http_fanbase_submit_handler(ngx_http_request_t *r);

/* ngx_http_fanbase_request.c */
ngx_int_t ngx_http_fanbase_read_body(ngx_http_request_t *r, ngx_str_t *body);
ngx_table_elt_t *ngx_http_fanbase_header_in(ngx_http_request_t *r,
    const char *name, size_t len);
ngx_int_t ngx_http_fanbase_request_id(ngx_http_request_t *r, ngx_str_t *id);

/* ngx_http_fanbase_status.c */
ngx_int_t ngx_http_fanbase_status_handler(ngx_http_request_t *r);

/* ngx_http_fanbase_response.c */
ngx_int_t ngx_http_fanbase_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *json);
ngx_int_t ngx_http_fanbase_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
ngx_int_t ngx_http_fanbase_send_not_allowed(ngx_http_request_t *r,
    const char *allow, const char *message);
ngx_int_t ngx_http_fanbase_send_unavailable(ngx_http_request_t *r,
    const char *code, const char *message, time_t retry_after);
ngx_int_t ngx_http_fanbase_send_call_failure(ngx_http_request_t *r,
    ngx_http_fanbase_call_t *call, ngx_int_t rc, const char *what);
ngx_int_t ngx_http_fanbase_relay(ngx_http_request_t *r,
    ngx_http_fanbase_curl_t *h);
ngx_int_t ngx_http_fanbase_add_header(ngx_http_request_t *r,
    const char *name, ngx_str_t *value);
ngx_int_t ngx_http_fanbase_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_http_fanbase_render_item(ngx_pool_t *pool,
    fanbase_item_t *item, ngx_uint_t show_msg, ngx_str_t *out);


extern ngx_module_t                  ngx_http_fanbase_module;
extern ngx_http_fanbase_zone_part_t  ngx_http_fanbase_zone_parts[];


#endif /* _NGX_HTTP_FANBASE_MODULE_H_INCLUDED_ */
