
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The module's configuration, as every part of it reads it, and the
 * names of the types that parts hand each other by pointer.
 */


#ifndef _NGX_HTTP_FANBASE_CONF_H_INCLUDED_
#define _NGX_HTTP_FANBASE_CONF_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <ngx_md5.h>

#include "ngx_http_fanbase_signature.h"


#define NGX_HTTP_FANBASE_VERSION        "0.1.0"

#define NGX_HTTP_FANBASE_ID_MAX         64
#define NGX_HTTP_FANBASE_TOKEN_MAX      8192
#define NGX_HTTP_FANBASE_RESPONSE_MAX   (1024 * 1024)
#define NGX_HTTP_FANBASE_QUEUE_PATH     "/api/v1/integration/queue"

#define NGX_HTTP_FANBASE_SUBMIT         1
#define NGX_HTTP_FANBASE_STATUS         2
#define NGX_HTTP_FANBASE_TRANSACTION    3
#define NGX_HTTP_FANBASE_WEBHOOK        4
#define NGX_HTTP_FANBASE_HEALTH         5
#define NGX_HTTP_FANBASE_METRICS        6

#define NGX_HTTP_FANBASE_AUTH_STANDARD  1
#define NGX_HTTP_FANBASE_AUTH_HMAC      2
#define NGX_HTTP_FANBASE_AUTH_TOKEN     3

#define NGX_HTTP_FANBASE_SECRETS_MAX    8
/* "msg_" ID "_" STATUS */
#define NGX_HTTP_FANBASE_NOTICE_ID_MAX  56

#define NGX_HTTP_FANBASE_TXN_ID_LEN     36         /* a UUID */
#define NGX_HTTP_FANBASE_IDEM_KEY_MAX   255
#define NGX_HTTP_FANBASE_REQUEST_ID_MAX 64         /* X-Request-ID */

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
typedef struct ngx_http_fanbase_idem_s        ngx_http_fanbase_idem_t;
typedef struct ngx_http_fanbase_shctx_s       ngx_http_fanbase_shctx_t;
typedef struct ngx_http_fanbase_zone_part_s   ngx_http_fanbase_zone_part_t;
typedef struct ngx_http_fanbase_store_s       ngx_http_fanbase_store_t;


/*
 * One operation of the storage interface (ngx_http_fanbase_store.h): an
 * engine answers it at once, or returns NGX_AGAIN and later sets rc and
 * calls done(op) from the event loop.
 */

typedef struct ngx_http_fanbase_store_op_s  ngx_http_fanbase_store_op_t;

typedef void (*ngx_http_fanbase_store_done_pt)(
    ngx_http_fanbase_store_op_t *op);

struct ngx_http_fanbase_store_op_s {
    ngx_http_fanbase_store_done_pt  done;      /* set by the caller */
    void                         *data;
    ngx_log_t                    *log;
    ngx_int_t                     rc;          /* the answer, for done */
    ngx_msec_t                    next;        /* claims: ms until one */
    ngx_event_t                   event;       /* the engine's */
    const ngx_http_fanbase_store_t *store;     /* holds it while pending */
    ngx_queue_t                   queue;       /* waiting for the journal */
    uint64_t                      seq;         /* ... for this record */
    unsigned                      pending:1;   /* NGX_AGAIN, not done yet */
    unsigned                      cleanup:1;   /* a request's, set */
    unsigned                      journal:1;   /* in the journal's queue */
};


/* a store operation's answer: done, but its journal record is not on disk */
#define NGX_HTTP_FANBASE_NOT_DURABLE    -100

/* a store operation's answer: the engine (Redis) cannot be reached */
#define NGX_HTTP_FANBASE_ENGINE_DOWN    -101


/* settings of outbound transfers */

typedef struct {
    ngx_msec_t                    connect_timeout;
    ngx_msec_t                    timeout;
    ngx_flag_t                    ssl_verify;
    ngx_str_t                     ssl_trusted_certificate;
} ngx_http_fanbase_upstream_conf_t;


/*
 * A credential set (ngx_http_fanbase_token.c): where and as whom a token
 * is had, shared by the locations that name the same ones
 */

struct ngx_http_fanbase_cred_s {
    u_char                        key[16];     /* MD5 of the credential set */
    ngx_str_t                     url;         /* token request, "\0" */
    ngx_str_t                     fixed;       /* fanbase_access_token_file */
    ngx_str_t                     name;        /* for logs: no secret */
    ngx_str_t                     client_id;   /* for metrics: "fixed" */
    ngx_str_t                     host;        /* the token endpoint's, or
                                                  the fixed token's file */
    ngx_str_t                     secret[2];   /* as read, as sent: never
                                                  logged, even if echoed */
    ngx_http_fanbase_main_conf_t *mcf;
    ngx_http_fanbase_upstream_conf_t *upstream;
    uint64_t                      shared;      /* its tag in Redis: of
                                                  the token endpoint and
                                                  the client id */

    /* this worker's view */
    void                         *slot;
    ngx_http_fanbase_headers_t *hdr;
    ngx_msec_t                    fresh;       /* until then, hdr is used
                                                  without the lock while
                                                  the zone still says it
                                                  is current */
    ngx_http_fanbase_curl_t      *fetch;
};


struct ngx_http_fanbase_main_conf_s {
    ngx_shm_zone_t               *shm_zone;
    ngx_http_fanbase_zone_part_t *parts;       /* the zone's, in order */
    const ngx_http_fanbase_store_t *store;     /* the records' engine */
    struct ngx_http_fanbase_redis_conf_s *redis; /* fanbase_redis, or NULL */
    ngx_str_t                     redis_password;
    ngx_msec_t                    redis_timeout;
    ngx_http_fanbase_shctx_t     *sh;
    ngx_slab_pool_t              *shpool;
    ngx_array_t                   creds;       /* ngx_http_fanbase_cred_t * */
    ngx_array_t                   targets;     /* async locations: lcf * */
    ngx_str_t                     state;       /* state file, "\0" */
    ngx_uint_t                    prefault;    /* map the zone at start */
    ngx_flag_t                    state_sync;  /* a 202 waits for the disk */
#if (NGX_THREADS)
    ngx_thread_pool_t            *state_pool;  /* writes the state file */
#endif
    ngx_uint_t                    deliver_concurrency;

    /* connections to Fanbase, per worker */
    ngx_uint_t                    max_connections;
    ngx_uint_t                    keepalive;
    ngx_array_t                   pools;       /* synchronous locations':
                                                  peer_pool_t * */

    /* outbound webhooks */
    ngx_str_t                     notify_url;  /* "\0" */
    ngx_str_t                    *notify_file; /* where it was set */
    ngx_uint_t                    notify_line;
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
    struct ngx_http_fanbase_proxy_conf_s  *proxy; /* nginx's upstream */
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
    ngx_flag_t                    transaction_path_plain; /* no escape in
                                                  JSON */
    time_t                        idempotency_window;
    time_t                        deliver_horizon;
    time_t                        track_horizon;
    ngx_uint_t                    transaction_events;
    ngx_msec_t                    long_poll;
    ngx_str_t                    *redis_create; /* with fanbase_redis:
                                                  create.lua's arguments
                                                  common to its accepts */

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


extern ngx_module_t  ngx_http_fanbase_module;


#endif /* _NGX_HTTP_FANBASE_CONF_H_INCLUDED_ */
