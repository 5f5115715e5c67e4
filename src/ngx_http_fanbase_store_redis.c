
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The storage interface's shared engine: Redis (fanbase_redis), the truth
 * of every host that names the same one.  Each operation is one Lua script
 * (src/lua/, embedded by src/lua/embed.pl), atomic in Redis, run with
 * EVALSHA through the worker's client (ngx_http_fanbase_redis.c); its
 * answer comes back on the event loop.  Every key of a credential set
 * shares the hash tag {PREFIX:SCOPE}, the scripts' one key.  Changes are
 * published on PREFIX:changes; every worker of every host moves the
 * change stamps of its zone on them, which wakes its long polls.
 * docs/cluster.md has the keys, the scripts and what failures cost.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_l1.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_outcome.h"
#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_redis_batch.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_store_redis.h"
#include "ngx_http_fanbase_redis_scripts.h"


#define NGX_HTTP_FANBASE_REDIS_OK        0
#define NGX_HTTP_FANBASE_REDIS_DONE      1
#define NGX_HTTP_FANBASE_REDIS_DECLINED  2
#define NGX_HTTP_FANBASE_REDIS_BUSY      3
#define NGX_HTTP_FANBASE_REDIS_ABORT     4

/* a host that finds nothing due looks again within this */
#define NGX_HTTP_FANBASE_REDIS_POLL      1000

#define NGX_HTTP_FANBASE_REDIS_TAG_MAX   128
#define NGX_HTTP_FANBASE_REDIS_ARGS      FANBASE_OUTCOME_ARGS_MAX


/* one operation under way: what its answer fills in */

typedef struct {
    ngx_http_fanbase_store_op_t    *op;
    ngx_http_fanbase_redis_cmd_t   *cmd;
    ngx_http_fanbase_redis_item_t  *item;       /* txn_create's, or NULL */
    ngx_http_fanbase_main_conf_t   *mcf;
    void                           *out;        /* nt, view, job, job ** */
    ngx_pool_t                     *pool;       /* txn_get's JSON */
    ngx_msec_t                      lease;      /* claims */
    ngx_msec_t                      next;
    ngx_uint_t                      tried;      /* claims: scopes asked */
    uint64_t                        scope;
    ngx_atomic_uint_t               stamp;      /* txn_get's: of the L1 */
    size_t                          id_len;     /* txn_get's */
    u_char                          id[NGX_HTTP_FANBASE_ID_MAX];
    void                           *free_next;  /* on the free list */
} ngx_http_fanbase_store_redis_call_t;

/* freed calls kept for the next ones: a batch's answer frees many at once */
#define NGX_HTTP_FANBASE_REDIS_CALLS_KEEP  256


/* the end of a claim that Redis did not take: sent again until it does */

typedef struct {
    ngx_queue_t                     queue;
    ngx_uint_t                      journalled; /* in the outcomes file */
    ngx_uint_t                      argc;
    size_t                          len[NGX_HTTP_FANBASE_REDIS_ARGS];
    u_char                         *arg[NGX_HTTP_FANBASE_REDIS_ARGS];
    u_char                          data[1];
} ngx_http_fanbase_store_redis_finish_t;


typedef struct {
    ngx_uint_t                      argc;
    const char                     *argv[NGX_HTTP_FANBASE_REDIS_ARGS];
    size_t                          argvlen[NGX_HTTP_FANBASE_REDIS_ARGS];
    u_char                          tag[NGX_HTTP_FANBASE_REDIS_TAG_MAX];
    u_char                          nums[NGX_HTTP_FANBASE_REDIS_ARGS]
                                        [NGX_INT64_LEN + 1];
    ngx_uint_t                      nnums;
    u_char                          hex[256];   /* targets, digests */
    size_t                          nhex;
} ngx_http_fanbase_store_redis_args_t;


static ngx_int_t ngx_http_fanbase_store_redis_txn_create(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_new_t *nt,
    ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_redis_created(void *data,
    redisReply *reply, ngx_uint_t sent);
static ngx_int_t ngx_http_fanbase_store_redis_txn_get(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *id,
    ngx_pool_t *pool, ngx_http_fanbase_txn_view_t *v,
    ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_redis_got(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply);
static ngx_int_t ngx_http_fanbase_store_redis_txn_cancel(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *id,
    ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_redis_txn_hook(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_hook_t *hk,
    ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_redis_hooked(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_store_redis_cancelled(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_store_redis_touch(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *id);
static void ngx_http_fanbase_store_redis_coded(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_store_redis_txn_hook_release(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *msg_id);
static ngx_int_t ngx_http_fanbase_store_redis_txn_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_job_t *job,
    ngx_msec_t lease, ngx_http_fanbase_store_op_t *op);
static ngx_int_t ngx_http_fanbase_store_redis_claim_start(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_store_op_t *op,
    void *out, ngx_msec_t lease, ngx_uint_t script,
    ngx_http_fanbase_redis_pt handler);
static ngx_int_t ngx_http_fanbase_store_redis_claim_next(
    ngx_http_fanbase_store_redis_call_t *call, ngx_uint_t script,
    ngx_http_fanbase_redis_pt handler);
static void ngx_http_fanbase_store_redis_claim_none(
    ngx_http_fanbase_store_redis_call_t *call, redisReply *reply,
    ngx_uint_t script, ngx_http_fanbase_redis_pt handler);
static void ngx_http_fanbase_store_redis_claimed(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static ngx_int_t ngx_http_fanbase_store_redis_txn_sending(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_redis_txn_finish(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_job_t *job,
    ngx_http_fanbase_txn_update_t *u, ngx_log_t *log);
static void ngx_http_fanbase_store_redis_finish_send(
    ngx_http_fanbase_store_redis_finish_t *f);
static void ngx_http_fanbase_store_redis_finished(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_store_redis_finish_retry(ngx_event_t *ev);
static void ngx_http_fanbase_store_redis_finish_wait(
    ngx_http_fanbase_store_redis_finish_t *f);
static void ngx_http_fanbase_store_redis_journal(
    ngx_http_fanbase_store_redis_finish_t *f);
static void ngx_http_fanbase_store_redis_replay(ngx_cycle_t *cycle);
static void ngx_http_fanbase_store_redis_unjournal(
    ngx_http_fanbase_store_redis_finish_t *f);
static ngx_http_fanbase_store_redis_finish_t *
    ngx_http_fanbase_store_redis_finish_alloc(ngx_uint_t argc, size_t *len,
    u_char **arg, ngx_log_t *log);
static ngx_int_t ngx_http_fanbase_store_redis_notice_claim(
    ngx_http_fanbase_main_conf_t *mcf, ngx_msec_t lease,
    ngx_http_fanbase_notice_job_t **job, ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_redis_notice_claimed(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_store_redis_notice_finish(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_notice_job_t *job,
    ngx_uint_t drop, ngx_msec_t delay, ngx_uint_t failed);
static void ngx_http_fanbase_store_redis_cancel(
    ngx_http_fanbase_store_op_t *op);
static void ngx_http_fanbase_store_redis_push(ngx_str_t *message);
static ngx_uint_t ngx_http_fanbase_store_redis_local(
    ngx_http_fanbase_main_conf_t *mcf, ngx_int_t rc);

static ngx_int_t ngx_http_fanbase_store_redis_call(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_store_op_t *op,
    ngx_uint_t script, ngx_http_fanbase_store_redis_args_t *a,
    ngx_http_fanbase_redis_pt handler, void *out,
    ngx_http_fanbase_store_redis_call_t **callp);
static ngx_http_fanbase_store_redis_call_t *
    ngx_http_fanbase_store_redis_call_new(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_store_op_t *op, void *out);
static void ngx_http_fanbase_store_redis_call_free(
    ngx_http_fanbase_store_redis_call_t *call);
static ngx_int_t ngx_http_fanbase_store_redis_pending(
    ngx_http_fanbase_store_redis_call_t *call);
static void ngx_http_fanbase_store_redis_answer(
    ngx_http_fanbase_store_redis_call_t *call, ngx_int_t rc);
static void ngx_http_fanbase_store_redis_args(
    ngx_http_fanbase_store_redis_args_t *a, uint64_t scope);
static void ngx_http_fanbase_store_redis_str(
    ngx_http_fanbase_store_redis_args_t *a, u_char *data, size_t len);
static void ngx_http_fanbase_store_redis_num(
    ngx_http_fanbase_store_redis_args_t *a, int64_t n);
static void ngx_http_fanbase_store_redis_hex(
    ngx_http_fanbase_store_redis_args_t *a, u_char *data, size_t len);
static ngx_int_t ngx_http_fanbase_store_redis_code(redisReply *reply);
static ngx_int_t ngx_http_fanbase_store_redis_int(redisReply *reply,
    size_t i, int64_t *n);
static ngx_int_t ngx_http_fanbase_store_redis_string(redisReply *reply,
    size_t i, ngx_str_t *s);
static ngx_int_t ngx_http_fanbase_store_redis_unhex(u_char *dst,
    ngx_str_t *hex);


const ngx_http_fanbase_store_t  ngx_http_fanbase_store_redis = {
    "redis",
    ngx_http_fanbase_store_redis_txn_create,
    ngx_http_fanbase_store_redis_txn_get,
    ngx_http_fanbase_store_redis_txn_cancel,
    ngx_http_fanbase_store_redis_txn_hook,
    ngx_http_fanbase_store_redis_txn_hook_release,
    ngx_http_fanbase_store_redis_txn_claim,
    ngx_http_fanbase_store_redis_txn_sending,
    ngx_http_fanbase_store_redis_txn_finish,
    ngx_http_fanbase_store_redis_notice_claim,
    ngx_http_fanbase_store_redis_notice_finish,
    ngx_http_fanbase_store_redis_cancel
};


static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_store_redis_mcf;
static ngx_http_fanbase_store_redis_call_t
                                     *ngx_http_fanbase_store_redis_calls;
static ngx_uint_t                     ngx_http_fanbase_store_redis_ncalls;
static ngx_fd_t                       ngx_http_fanbase_store_redis_fd =
                                          NGX_INVALID_FILE;
static ngx_uint_t                     ngx_http_fanbase_store_redis_unsure;
static u_char                         ngx_http_fanbase_store_redis_path[
                                          NGX_MAX_PATH];
static ngx_array_t                    ngx_http_fanbase_store_redis_scopes;
static ngx_uint_t                     ngx_http_fanbase_store_redis_rr;
static ngx_queue_t                    ngx_http_fanbase_store_redis_finishes;
static ngx_event_t                    ngx_http_fanbase_store_redis_retry_ev;
static ngx_connection_t               ngx_http_fanbase_store_redis_retry_conn;
static u_char                         ngx_http_fanbase_store_redis_owner[128];
static size_t                         ngx_http_fanbase_store_redis_owner_len;


ngx_int_t
ngx_http_fanbase_store_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_uint_t                     i, j;
    uint64_t                      *scope;
    ngx_http_fanbase_loc_conf_t  **lcfp;

    if (mcf->redis == NULL) {
        return NGX_OK;
    }

    ngx_http_fanbase_store_redis_mcf = mcf;

    /* the credential sets whose transactions this host may deliver */

    if (ngx_array_init(&ngx_http_fanbase_store_redis_scopes, cycle->pool, 4,
                       sizeof(uint64_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    lcfp = mcf->targets.elts;

    for (i = 0; i < mcf->targets.nelts; i++) {
        scope = ngx_http_fanbase_store_redis_scopes.elts;

        for (j = 0; j < ngx_http_fanbase_store_redis_scopes.nelts; j++) {
            if (scope[j] == lcfp[i]->scope) {
                break;
            }
        }

        if (j < ngx_http_fanbase_store_redis_scopes.nelts) {
            continue;
        }

        scope = ngx_array_push(&ngx_http_fanbase_store_redis_scopes);
        if (scope == NULL) {
            return NGX_ERROR;
        }

        *scope = lcfp[i]->scope;
    }

    ngx_http_fanbase_store_redis_owner_len =
        ngx_snprintf(ngx_http_fanbase_store_redis_owner,
                     sizeof(ngx_http_fanbase_store_redis_owner), "%V %P",
                     &cycle->hostname, ngx_pid)
        - ngx_http_fanbase_store_redis_owner;

    ngx_queue_init(&ngx_http_fanbase_store_redis_finishes);

    ngx_http_fanbase_time_timer(&ngx_http_fanbase_store_redis_retry_ev,
                                &ngx_http_fanbase_store_redis_retry_conn,
                                NULL, ngx_http_fanbase_store_redis_finish_retry,
                                cycle->log);

    /* the outcomes in flight are not for a timer that may be cancelled */
    ngx_http_fanbase_store_redis_retry_ev.cancelable = 0;

    /* with a state file, outcomes waiting for Redis survive the worker */

    ngx_http_fanbase_store_redis_fd = NGX_INVALID_FILE;
    ngx_http_fanbase_store_redis_unsure = 0;

    if (mcf->state.len) {
        ngx_snprintf(ngx_http_fanbase_store_redis_path,
                     sizeof(ngx_http_fanbase_store_redis_path),
                     "%V.redis.%P%Z", &mcf->state, ngx_pid);

        ngx_http_fanbase_store_redis_fd = ngx_open_file(
                                           ngx_http_fanbase_store_redis_path,
                                           NGX_FILE_RDWR,
                                           NGX_FILE_TRUNCATE,
                                           NGX_FILE_DEFAULT_ACCESS);

        if (ngx_http_fanbase_store_redis_fd == NGX_INVALID_FILE) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_errno,
                          "fanbase: cannot open \"%s\": outcomes waiting "
                          "for redis will be kept in memory only",
                          ngx_http_fanbase_store_redis_path);

        } else if (ngx_trylock_fd(ngx_http_fanbase_store_redis_fd) != 0) {
            /* held for the worker's life: it says the file is in use */
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          ngx_trylock_fd_n " \"%s\" failed",
                          ngx_http_fanbase_store_redis_path);
        }

        ngx_http_fanbase_store_redis_replay(cycle);
    }

    return ngx_http_fanbase_redis_init_process(cycle, mcf->redis,
                                           ngx_http_fanbase_store_redis_scripts,
                                           NGX_HTTP_FANBASE_REDIS_NSCRIPTS,
                                           ngx_http_fanbase_store_redis_push,
                                           ngx_http_fanbase_metrics_redis);
}


void
ngx_http_fanbase_store_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_queue_t                            *q;
    ngx_http_fanbase_store_redis_call_t    *call;
    ngx_http_fanbase_store_redis_finish_t  *f;

    if (ngx_http_fanbase_store_redis_mcf == NULL) {
        return;
    }

    ngx_http_fanbase_redis_batch_exit();
    ngx_http_fanbase_redis_exit_process(cycle);

    while (!ngx_queue_empty(&ngx_http_fanbase_store_redis_finishes)) {
        q = ngx_queue_head(&ngx_http_fanbase_store_redis_finishes);
        ngx_queue_remove(q);
        f = ngx_queue_data(q, ngx_http_fanbase_store_redis_finish_t, queue);

        if (f->journalled) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "fanbase: the outcome of transaction \"%*s\" has "
                          "not reached redis yet; the next worker to start "
                          "sends it", f->len[1], f->arg[1]);

        } else {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "fanbase: the outcome of transaction \"%*s\" "
                          "never reached redis; its claim will run out and "
                          "another host will end it", f->len[1], f->arg[1]);
        }

        ngx_free(f);
    }

    while (ngx_http_fanbase_store_redis_calls != NULL) {
        call = ngx_http_fanbase_store_redis_calls;
        ngx_http_fanbase_store_redis_calls = call->free_next;
        ngx_free(call);
    }

    ngx_http_fanbase_store_redis_ncalls = 0;

    if (ngx_http_fanbase_store_redis_fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(ngx_http_fanbase_store_redis_fd);
        ngx_http_fanbase_store_redis_fd = NGX_INVALID_FILE;

        if (ngx_http_fanbase_store_redis_unsure == 0) {
            (void) ngx_delete_file(ngx_http_fanbase_store_redis_path);
        }
    }

    if (ngx_http_fanbase_store_redis_retry_ev.timer_set) {
        ngx_del_timer(&ngx_http_fanbase_store_redis_retry_ev);
    }

    ngx_http_fanbase_store_redis_mcf = NULL;
}


/*
 * txn_create: KEYS {P:S}; target, route, deliver and track horizons, max
 * events, key window, shared by the accepts of a location that one turn of
 * the loop gathers into one call (ngx_http_fanbase_redis_batch.c); then
 * each one's id, payload, key, digest, request id
 */

#define NGX_HTTP_FANBASE_REDIS_CREATE_COMMON  7

static ngx_int_t
ngx_http_fanbase_store_redis_txn_create(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_new_t *nt, ngx_http_fanbase_store_op_t *op)
{
    ngx_http_fanbase_loc_conf_t          *lcf;
    ngx_http_fanbase_store_redis_call_t  *call;
    ngx_http_fanbase_store_redis_args_t   a;

    lcf = nt->lcf;

    a.nnums = 0;
    a.nhex = 0;

    for (a.argc = 0; a.argc < NGX_HTTP_FANBASE_REDIS_CREATE_COMMON; a.argc++) {
        a.argv[a.argc] = (const char *) lcf->redis_create[a.argc].data;
        a.argvlen[a.argc] = lcf->redis_create[a.argc].len;
    }

    ngx_http_fanbase_store_redis_str(&a, nt->id, NGX_HTTP_FANBASE_TXN_ID_LEN);
    ngx_http_fanbase_store_redis_str(&a, nt->payload.data, nt->payload.len);
    ngx_http_fanbase_store_redis_str(&a, nt->idem_key.data, nt->idem_key.len);

    /* the digest tells a repeat of a key: none without a key */

    if (nt->idem_key.len) {
        ngx_http_fanbase_store_redis_hex(&a, nt->digest, 16);

    } else {
        ngx_http_fanbase_store_redis_str(&a, NULL, 0);
    }

    ngx_http_fanbase_store_redis_str(&a, nt->request_id.data,
                                     nt->request_id.len);

    call = ngx_http_fanbase_store_redis_call_new(mcf, op, nt);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->item = ngx_http_fanbase_redis_batch_add(
                                     NGX_HTTP_FANBASE_REDIS_CREATE,
                                     NGX_HTTP_FANBASE_REDIS_CREATE_COMMON,
                                     a.argc, a.argv, a.argvlen,
                                     ngx_http_fanbase_store_redis_created,
                                     call);
    if (call->item == NULL) {
        ngx_http_fanbase_store_redis_call_free(call);

        if (ngx_http_fanbase_store_redis_local(mcf,
                                           NGX_HTTP_FANBASE_ENGINE_DOWN))
        {
            return ngx_http_fanbase_store_zone.txn_create(mcf, nt, op);
        }

        return NGX_HTTP_FANBASE_ENGINE_DOWN;
    }

    return ngx_http_fanbase_store_redis_pending(call);
}


/*
 * create.lua's arguments that every accept of "lcf" shares: its key, where
 * and as whom they go, the horizons and limits.  Made once here: formatted
 * for each accept (the tag, 96 hex digits, four numbers), they cost about
 * 2,300 of an accept's 20,200 instructions.
 */

ngx_int_t
ngx_http_fanbase_store_redis_loc_conf(ngx_conf_t *cf,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_loc_conf_t *lcf)
{
    u_char     *p;
    ngx_str_t  *args;

    args = ngx_palloc(cf->pool, NGX_HTTP_FANBASE_REDIS_CREATE_COMMON
                                * sizeof(ngx_str_t));
    if (args == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(cf->pool, NGX_HTTP_FANBASE_REDIS_TAG_MAX
                              + 2 * NGX_HTTP_FANBASE_TARGET_LEN
                              + 2 * NGX_HTTP_FANBASE_ROUTE_LEN
                              + 4 * NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    args[0].data = p;
    p = ngx_snprintf(p, NGX_HTTP_FANBASE_REDIS_TAG_MAX, "{%V:%016uxL}",
                     &mcf->redis->prefix, lcf->scope);
    args[0].len = p - args[0].data;

    args[1].data = p;
    p = ngx_hex_dump(p, lcf->target, NGX_HTTP_FANBASE_TARGET_LEN);
    args[1].len = p - args[1].data;

    args[2].data = p;
    p = ngx_hex_dump(p, lcf->target, NGX_HTTP_FANBASE_ROUTE_LEN);
    args[2].len = p - args[2].data;

    args[3].data = p;
    p = ngx_sprintf(p, "%L", (int64_t) lcf->deliver_horizon * 1000);
    args[3].len = p - args[3].data;

    args[4].data = p;
    p = ngx_sprintf(p, "%L", (int64_t) lcf->track_horizon * 1000);
    args[4].len = p - args[4].data;

    args[5].data = p;
    p = ngx_sprintf(p, "%ui", lcf->transaction_events);
    args[5].len = p - args[5].data;

    args[6].data = p;
    p = ngx_sprintf(p, "%L", (int64_t) lcf->idempotency_window * 1000);
    args[6].len = p - args[6].data;

    lcf->redis_create = args;

    return NGX_OK;
}


static void
ngx_http_fanbase_store_redis_created(void *data, redisReply *reply,
    ngx_uint_t sent)
{
    ngx_int_t                             rc;
    ngx_str_t                             id;
    ngx_http_fanbase_txn_new_t           *nt;
    ngx_http_fanbase_store_op_t          *op;
    ngx_http_fanbase_main_conf_t         *mcf;
    ngx_http_fanbase_store_redis_call_t  *call = data;

    nt = call->out;

    /*
     * only a call that never left may fall back: one that left and got no
     * answer may have made the transaction in Redis
     */

    if (reply == NULL && !sent
        && ngx_http_fanbase_store_redis_local(call->mcf,
                                              NGX_HTTP_FANBASE_ENGINE_DOWN))
    {
        op = call->op;
        mcf = call->mcf;

        op->pending = 0;
        op->event.data = NULL;
        ngx_http_fanbase_store_redis_call_free(call);

        rc = ngx_http_fanbase_store_zone.txn_create(mcf, nt, op);

        if (rc != NGX_AGAIN) {
            op->rc = rc;
            op->done(op);
        }

        return;
    }

    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_DONE) {
        if (ngx_http_fanbase_store_redis_string(reply, 1, &id) != NGX_OK
            || id.len != NGX_HTTP_FANBASE_TXN_ID_LEN)
        {
            rc = NGX_ERROR;

        } else {
            ngx_memcpy(nt->id, id.data, NGX_HTTP_FANBASE_TXN_ID_LEN);
        }
    }

    ngx_http_fanbase_store_redis_answer(call, rc);
}


static ngx_int_t
ngx_http_fanbase_store_redis_txn_get(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_pool_t *pool,
    ngx_http_fanbase_txn_view_t *v, ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t                             rc;
    ngx_atomic_uint_t                     stamp;
    ngx_http_fanbase_store_redis_args_t   a;
    ngx_http_fanbase_store_redis_call_t  *call;

    /*
     * the zone's copy, while this worker hears of every change; the stamp
     * first, so that a change while Redis is asked is not missed
     */

    stamp = ngx_http_fanbase_l1_stamp(mcf, scope, id);

    if (ngx_http_fanbase_redis_listening()
        && ngx_http_fanbase_l1_get(mcf, scope, id, 0, pool, v) == NGX_OK)
    {
        return NGX_OK;
    }

    ngx_http_fanbase_store_redis_args(&a, scope);
    ngx_http_fanbase_store_redis_str(&a, id->data, id->len);

    rc = ngx_http_fanbase_store_redis_call(mcf, op, NGX_HTTP_FANBASE_REDIS_GET,
                                           &a, ngx_http_fanbase_store_redis_got,
                                           v, &call);

    if (ngx_http_fanbase_store_redis_local(mcf, rc)) {
        rc = ngx_http_fanbase_txn_get(mcf, scope, id, pool, v);

        /* not here: it may be in Redis */
        if (rc != NGX_DECLINED) {
            return rc;
        }
    }

    if (rc == NGX_HTTP_FANBASE_ENGINE_DOWN) {
        /* as last read, said to be so; else nothing can be said */
        return (ngx_http_fanbase_l1_get(mcf, scope, id, 1, pool, v) == NGX_OK)
               ? NGX_OK : NGX_HTTP_FANBASE_ENGINE_DOWN;
    }

    if (rc == NGX_AGAIN) {
        call->stamp = stamp;
        call->pool = pool;
        call->scope = scope;
        call->id_len = ngx_min(id->len, NGX_HTTP_FANBASE_ID_MAX);
        ngx_memcpy(call->id, id->data, call->id_len);
    }

    return rc;
}


/* {0, status, version, created, updated, accepted, event, ...} */

static void
ngx_http_fanbase_store_redis_got(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    u_char                               *p, *start;
    size_t                                len, i;
    int64_t                               st, ver, cr, up, acc;
    ngx_int_t                             rc;
    ngx_str_t                             ev, id;
    fanbase_txn_head_t                    head;
    ngx_http_fanbase_txn_view_t          *v;
    ngx_http_fanbase_store_redis_call_t  *call = cmd->data;
    u_char                                created[FANBASE_JSON_TIME_LEN];
    u_char                                updated[FANBASE_JSON_TIME_LEN];

    v = call->out;
    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_DECLINED
        && call->mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL)
    {
        /* accepted by this host alone while Redis was away */

        id.data = call->id;
        id.len = call->id_len;

        rc = ngx_http_fanbase_txn_get(call->mcf, call->scope, &id, call->pool,
                                      v);
    }

    if (rc == NGX_HTTP_FANBASE_ENGINE_DOWN) {
        id.data = call->id;
        id.len = call->id_len;

        if (ngx_http_fanbase_l1_get(call->mcf, call->scope, &id, 1,
                                    call->pool, v)
            == NGX_OK)
        {
            rc = NGX_OK;
        }
    }

    if (rc != NGX_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 6)
    {
        ngx_http_fanbase_store_redis_answer(call, rc);
        return;
    }

    if (ngx_http_fanbase_store_redis_int(reply, 1, &st) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 2, &ver) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 3, &cr) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 4, &up) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 5, &acc) != NGX_OK
        || st < FANBASE_STATUS_PENDING || st > FANBASE_STATUS_CANCELLED)
    {
        ngx_http_fanbase_store_redis_answer(call, NGX_ERROR);
        return;
    }

    v->status = (ngx_uint_t) st;
    v->version = (uint32_t) ver;
    v->updated = (uint64_t) up;
    v->stale = 0;
    ngx_str_null(&v->json);

    if (call->pool == NULL) {
        ngx_http_fanbase_store_redis_answer(call, NGX_OK);
        return;
    }

    /* the downstream shape, the same bytes as txn.c renders from the zone */

    head.id.data = call->id;
    head.id.len = call->id_len;
    head.created_at.data = created;
    head.created_at.len = ngx_http_fanbase_time_iso(created, cr) - created;
    head.updated_at.data = updated;
    head.updated_at.len = ngx_http_fanbase_time_iso(updated, up) - updated;
    head.status = (int) st;

    len = fanbase_json_txn_head_size(&head) + sizeof("]}")
          + (acc ? NGX_HTTP_FANBASE_ACCEPTED_LEN + 1 : 0);

    for (i = 6; i < reply->elements; i++) {
        if (ngx_http_fanbase_store_redis_string(reply, i, &ev) != NGX_OK) {
            ngx_http_fanbase_store_redis_answer(call, NGX_ERROR);
            return;
        }

        len += ev.len + 1;
    }

    p = ngx_pnalloc(call->pool, len);
    if (p == NULL) {
        ngx_http_fanbase_store_redis_answer(call, NGX_ERROR);
        return;
    }

    v->json.data = p;

    p = fanbase_json_render_txn_head(p, &head);
    start = p;

    if (acc) {
        p = ngx_http_fanbase_txn_accepted(p, (uint64_t) cr);
    }

    for (i = 6; i < reply->elements; i++) {
        (void) ngx_http_fanbase_store_redis_string(reply, i, &ev);

        if (p != start) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, ev.data, ev.len);
    }

    p = ngx_cpymem(p, "]}", 2);
    v->json.len = p - v->json.data;

    if (ngx_http_fanbase_redis_listening()) {
        id.data = call->id;
        id.len = call->id_len;

        ngx_http_fanbase_l1_put(call->mcf, call->scope, &id, call->stamp, v);
    }

    ngx_http_fanbase_store_redis_answer(call, NGX_OK);
}


/* txn_cancel: KEYS {P:S}; id, the cancellation's event, notify, retain */

static ngx_int_t
ngx_http_fanbase_store_redis_txn_cancel(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id, ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t                             rc;
    ngx_str_t                             event;
    ngx_pool_t                           *pool;
    ngx_http_fanbase_store_redis_args_t   a;
    ngx_http_fanbase_store_redis_call_t  *call;

    pool = ngx_create_pool(1024, op->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_fanbase_txn_cancel_event(pool, &event) != NGX_OK) {
        ngx_destroy_pool(pool);
        return NGX_ERROR;
    }

    ngx_http_fanbase_store_redis_args(&a, scope);
    ngx_http_fanbase_store_redis_str(&a, id->data, id->len);
    ngx_http_fanbase_store_redis_str(&a, event.data, event.len);
    ngx_http_fanbase_store_redis_num(&a, mcf->notify_url.len ? 1 : 0);
    ngx_http_fanbase_store_redis_num(&a, mcf->redis->retain);

    /* the command holds its own copy of the arguments */

    rc = ngx_http_fanbase_store_redis_call(mcf, op,
                                        NGX_HTTP_FANBASE_REDIS_CANCEL, &a,
                                        ngx_http_fanbase_store_redis_cancelled,
                                        NULL, &call);
    ngx_destroy_pool(pool);

    if (rc == NGX_AGAIN) {
        call->scope = scope;
        call->id_len = ngx_min(id->len, NGX_HTTP_FANBASE_ID_MAX);
        ngx_memcpy(call->id, id->data, call->id_len);
    }

    if (ngx_http_fanbase_store_redis_local(mcf, rc)) {
        rc = ngx_http_fanbase_txn_cancel(mcf, scope, id, op->log);
        return (rc == NGX_DECLINED) ? NGX_HTTP_FANBASE_ENGINE_DOWN : rc;
    }

    return rc;
}


/* txn_hook: KEYS {P:S}; message id, its ms to live, id, status, event,
 * max events, create, notify, retain */

static ngx_int_t
ngx_http_fanbase_store_redis_txn_hook(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_hook_t *hk, ngx_http_fanbase_store_op_t *op)
{
    int64_t                               ttl;
    ngx_int_t                             rc;
    ngx_http_fanbase_store_redis_args_t   a;

    ttl = (int64_t) (hk->expires - ngx_http_fanbase_time_now());
    if (ttl < 1000) {
        ttl = 1000;
    }

    ngx_http_fanbase_store_redis_args(&a, hk->scope);
    ngx_http_fanbase_store_redis_str(&a, hk->msg_id.data, hk->msg_id.len);
    ngx_http_fanbase_store_redis_num(&a, ttl);
    ngx_http_fanbase_store_redis_str(&a, hk->id.data, hk->id.len);
    ngx_http_fanbase_store_redis_num(&a, hk->status);
    ngx_http_fanbase_store_redis_str(&a, hk->event.data, hk->event.len);
    ngx_http_fanbase_store_redis_num(&a, hk->max_events);
    ngx_http_fanbase_store_redis_num(&a, hk->create);
    ngx_http_fanbase_store_redis_num(&a, mcf->notify_url.len ? 1 : 0);
    ngx_http_fanbase_store_redis_num(&a, mcf->redis->retain);

    rc = ngx_http_fanbase_store_redis_call(mcf, op,
                                           NGX_HTTP_FANBASE_REDIS_HOOK, &a,
                                           ngx_http_fanbase_store_redis_hooked,
                                           hk, NULL);

    if (ngx_http_fanbase_store_redis_local(mcf, rc)) {
        return ngx_http_fanbase_store_zone.txn_hook(mcf, hk, op);
    }

    return rc;
}


/* a webhook for none of Redis' transactions may be for a local one */

static void
ngx_http_fanbase_store_redis_hooked(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_int_t                             rc;
    ngx_str_t                             id;
    ngx_http_fanbase_hook_t              *hk;
    ngx_http_fanbase_store_redis_call_t  *call = cmd->data;

    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_ABORT
        && call->mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL)
    {
        rc = ngx_http_fanbase_txn_hook(call->mcf, call->out, call->op->log);

    } else if (rc == NGX_OK
               && ngx_http_fanbase_store_redis_string(reply, 1, &id) == NGX_OK)
    {
        hk = call->out;
        ngx_http_fanbase_store_redis_touch(call->mcf, hk->scope, &id);
    }

    ngx_http_fanbase_store_redis_answer(call, rc);
}


static void
ngx_http_fanbase_store_redis_cancelled(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_int_t                             rc;
    ngx_str_t                             id;
    ngx_http_fanbase_store_redis_call_t  *call = cmd->data;

    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_OK) {
        id.data = call->id;
        id.len = call->id_len;
        ngx_http_fanbase_store_redis_touch(call->mcf, call->scope, &id);
    }

    ngx_http_fanbase_store_redis_answer(call, rc);
}


/*
 * This worker changed a transaction: what its zone holds of it is out of
 * date now, before Redis' message about it arrives (a cancellation's
 * answer reads the transaction at once)
 */

static void
ngx_http_fanbase_store_redis_touch(ngx_http_fanbase_main_conf_t *mcf,
    uint64_t scope, ngx_str_t *id)
{
    uint32_t  hash;

    hash = ngx_http_fanbase_id_hash(scope, id->data, id->len)
           & mcf->sh->txn_hash_mask;

    (void) ngx_atomic_fetch_add(&mcf->sh->txn_hash[hash].stamp, 1);
}


/* an answer that is its code alone */

static void
ngx_http_fanbase_store_redis_coded(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_fanbase_store_redis_answer(cmd->data,
                                    ngx_http_fanbase_store_redis_code(reply));
}


static void
ngx_http_fanbase_store_redis_txn_hook_release(
    ngx_http_fanbase_main_conf_t *mcf, uint64_t scope, ngx_str_t *msg_id)
{
    ngx_http_fanbase_store_redis_args_t  a;

    ngx_http_fanbase_store_redis_args(&a, scope);
    ngx_http_fanbase_store_redis_str(&a, msg_id->data, msg_id->len);

    if (mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL) {
        ngx_http_fanbase_txn_hook_release(mcf, scope, msg_id);
    }

    /* nobody waits: a release that is lost leaves the id until it expires */

    (void) ngx_http_fanbase_redis_script(NGX_HTTP_FANBASE_REDIS_HOOK_RELEASE,
                                         a.argc, a.argv, a.argvlen, NULL,
                                         NULL);
}


/*
 * txn_claim: KEYS {P:S}; lease, owner.  Each credential set is a hash tag
 * of its own, so one script asks one of them: the sets are asked in turn,
 * starting after the one that gave the last claim.
 */

static ngx_int_t
ngx_http_fanbase_store_redis_txn_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_msec_t lease,
    ngx_http_fanbase_store_op_t *op)
{
    ngx_msec_t                            next;

    op->next = NGX_HTTP_FANBASE_REDIS_POLL;

    /* what this host accepted alone, while Redis was away, goes first */

    if (mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL
        && ngx_http_fanbase_txn_claim(mcf, job, lease, &next) == NGX_OK)
    {
        job->local = 1;
        return NGX_OK;
    }

    return ngx_http_fanbase_store_redis_claim_start(mcf, op, job, lease,
                                      NGX_HTTP_FANBASE_REDIS_CLAIM,
                                      ngx_http_fanbase_store_redis_claimed);
}


/* a claim (txn_claim, notice_claim) asks the credential sets in turn */

static ngx_int_t
ngx_http_fanbase_store_redis_claim_start(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_store_op_t *op, void *out, ngx_msec_t lease,
    ngx_uint_t script, ngx_http_fanbase_redis_pt handler)
{
    ngx_http_fanbase_store_redis_call_t  *call;

    if (ngx_http_fanbase_store_redis_scopes.nelts == 0) {
        return NGX_DECLINED;
    }

    call = ngx_http_fanbase_store_redis_call_new(mcf, op, out);
    if (call == NULL) {
        return NGX_DECLINED;
    }

    call->lease = lease;
    call->next = NGX_HTTP_FANBASE_REDIS_POLL;

    if (ngx_http_fanbase_store_redis_claim_next(call, script, handler)
        != NGX_AGAIN)
    {
        ngx_http_fanbase_store_redis_call_free(call);
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


/* nothing due in this set: the next one, or the answer "none" */

static void
ngx_http_fanbase_store_redis_claim_none(
    ngx_http_fanbase_store_redis_call_t *call, redisReply *reply,
    ngx_uint_t script, ngx_http_fanbase_redis_pt handler)
{
    int64_t  next;

    if (ngx_http_fanbase_store_redis_int(reply, 1, &next) == NGX_OK
        && next >= 0)
    {
        call->next = ngx_min(call->next, (ngx_msec_t) next);
    }

    if (call->tried < ngx_http_fanbase_store_redis_scopes.nelts
        && ngx_http_fanbase_store_redis_claim_next(call, script, handler)
           == NGX_AGAIN)
    {
        return;
    }

    call->op->next = call->next;
    ngx_http_fanbase_store_redis_answer(call, NGX_DECLINED);
}


/* the next credential set's claim script, for txn_claim and notice_claim */

static ngx_int_t
ngx_http_fanbase_store_redis_claim_next(
    ngx_http_fanbase_store_redis_call_t *call, ngx_uint_t script,
    ngx_http_fanbase_redis_pt handler)
{
    uint64_t                             *scopes;
    ngx_uint_t                            n;
    ngx_http_fanbase_store_redis_args_t   a;

    scopes = ngx_http_fanbase_store_redis_scopes.elts;
    n = ngx_http_fanbase_store_redis_scopes.nelts;

    call->scope = scopes[(ngx_http_fanbase_store_redis_rr + call->tried) % n];
    call->tried++;

    ngx_http_fanbase_store_redis_args(&a, call->scope);
    ngx_http_fanbase_store_redis_num(&a, call->lease);

    if (script == NGX_HTTP_FANBASE_REDIS_CLAIM) {
        ngx_http_fanbase_store_redis_str(&a,
                                         ngx_http_fanbase_store_redis_owner,
                                         ngx_http_fanbase_store_redis_owner_len);
    }

    call->cmd = ngx_http_fanbase_redis_script(script, a.argc, a.argv,
                                              a.argvlen, handler, call);
    if (call->cmd == NULL) {
        return NGX_ERROR;
    }

    call->op->pending = 1;
    call->op->store = &ngx_http_fanbase_store_redis;
    call->op->event.data = call;

    return NGX_AGAIN;
}


/*
 * {0, id, kind, payload or queue id, request id, target, claim, attempts,
 * sent, deadline} or {2, ms until one is due, -1: none}
 */

static void
ngx_http_fanbase_store_redis_claimed(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    int64_t                               kind, cl, att, sent, deadline;
    ngx_int_t                             rc;
    ngx_str_t                             id, data, rid, target;
    ngx_http_fanbase_job_t               *job;
    ngx_http_fanbase_store_redis_call_t  *call = cmd->data;

    job = call->out;
    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_DECLINED) {
        ngx_http_fanbase_store_redis_claim_none(call, reply, NGX_HTTP_FANBASE_REDIS_CLAIM,
                                   ngx_http_fanbase_store_redis_claimed);
        return;
    }

    if (rc != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 1, &id) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 2, &kind) != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 3, &data) != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 4, &rid) != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 5, &target) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 6, &cl) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 7, &att) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 8, &sent) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 9, &deadline) != NGX_OK
        || id.len != NGX_HTTP_FANBASE_TXN_ID_LEN
        || rid.len > NGX_HTTP_FANBASE_REQUEST_ID_MAX
        || target.len != 2 * NGX_HTTP_FANBASE_TARGET_LEN
        || ngx_http_fanbase_store_redis_unhex(job->target, &target)
           != NGX_OK
        || (kind != NGX_HTTP_FANBASE_JOB_DELIVER
            && kind != NGX_HTTP_FANBASE_JOB_TRACK)
        || (kind == NGX_HTTP_FANBASE_JOB_TRACK
            && (data.len == 0 || data.len > NGX_HTTP_FANBASE_ID_MAX)))
    {
        if (rc == NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, call->op->log, 0,
                          "fanbase: redis answered a claim in a shape this "
                          "module does not know; is another version of it "
                          "sharing the prefix \"%V\"?",
                          &call->mcf->redis->prefix);
        }

        call->op->next = NGX_HTTP_FANBASE_REDIS_POLL;
        ngx_http_fanbase_store_redis_answer(call, NGX_DECLINED);
        return;
    }

    job->kind = (ngx_uint_t) kind;

    if (kind == NGX_HTTP_FANBASE_JOB_DELIVER) {
        job->payload = ngx_alloc(data.len ? data.len : 1, ngx_cycle->log);
        if (job->payload == NULL) {
            call->op->next = NGX_HTTP_FANBASE_REDIS_POLL;
            ngx_http_fanbase_store_redis_answer(call, NGX_DECLINED);
            return;
        }

        ngx_memcpy(job->payload, data.data, data.len);
        job->payload_len = data.len;

    } else {
        ngx_memcpy(job->queue_id, data.data, data.len);
        job->queue_id_len = data.len;
    }

    ngx_memcpy(job->id, id.data, NGX_HTTP_FANBASE_TXN_ID_LEN);
    job->id_str.data = job->id;
    job->id_str.len = NGX_HTTP_FANBASE_TXN_ID_LEN;
    ngx_memcpy(job->request_id, rid.data, rid.len);
    job->request_id_str.data = job->request_id;
    job->request_id_str.len = rid.len;
    job->scope = call->scope;
    job->claim = (uint32_t) cl;
    job->attempts = (uint32_t) att;
    job->sent = sent ? 1 : 0;
    job->deadline = (uint64_t) deadline;

    /* the next claim starts with the next credential set */
    ngx_http_fanbase_store_redis_rr++;

    if (ngx_http_fanbase_store_redis_string(reply, 10, &data) == NGX_OK
        && data.len)
    {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%V\": the claim of %V ran "
                      "out, taken over", &job->id_str, &data);
    }

    ngx_http_fanbase_store_redis_answer(call, NGX_OK);
}


/* txn_sending: KEYS {P:S}; id, claim.  No answer: nothing is sent */

static ngx_int_t
ngx_http_fanbase_store_redis_txn_sending(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_http_fanbase_store_op_t *op)
{
    ngx_int_t                            rc;
    ngx_http_fanbase_store_redis_args_t  a;

    if (job->local) {
        return ngx_http_fanbase_store_zone.txn_sending(mcf, job, op);
    }

    ngx_http_fanbase_store_redis_args(&a, job->scope);
    ngx_http_fanbase_store_redis_str(&a, job->id, NGX_HTTP_FANBASE_TXN_ID_LEN);
    ngx_http_fanbase_store_redis_num(&a, job->claim);

    rc = ngx_http_fanbase_store_redis_call(mcf, op,
                                           NGX_HTTP_FANBASE_REDIS_SENDING, &a,
                                           ngx_http_fanbase_store_redis_coded,
                                           NULL, NULL);

    return (rc == NGX_AGAIN) ? NGX_AGAIN : NGX_DECLINED;
}


/*
 * txn_finish: KEYS {P:S}; id, claim, status, queue id, event, retry ms,
 * wait ms, flags, notify, retain, max events.  An outcome is never
 * dropped because Redis did not answer: it is sent again, every second,
 * until Redis takes it (or the worker ends; then its claim runs out and
 * another host ends the transaction as a worker's death would).
 */

#define NGX_HTTP_FANBASE_REDIS_DELIVERED  1
#define NGX_HTTP_FANBASE_REDIS_NOT_SENT   2
#define NGX_HTTP_FANBASE_REDIS_ATTEMPT    4
#define NGX_HTTP_FANBASE_REDIS_DOWN       8
#define NGX_HTTP_FANBASE_REDIS_ANSWERED   16

static void
ngx_http_fanbase_store_redis_txn_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_job_t *job, ngx_http_fanbase_txn_update_t *u,
    ngx_log_t *log)
{
    ngx_uint_t                              flags, max_events;
    ngx_http_fanbase_store_redis_args_t     a;
    ngx_http_fanbase_store_redis_finish_t  *f;

    if (job->local) {
        ngx_http_fanbase_txn_finish(mcf, job, u, log);
        return;
    }

    flags = (u->delivered ? NGX_HTTP_FANBASE_REDIS_DELIVERED : 0)
            | (u->not_sent ? NGX_HTTP_FANBASE_REDIS_NOT_SENT : 0)
            | (u->attempt ? NGX_HTTP_FANBASE_REDIS_ATTEMPT : 0)
            | (u->down ? NGX_HTTP_FANBASE_REDIS_DOWN : 0)
            | (u->answered ? NGX_HTTP_FANBASE_REDIS_ANSWERED : 0);

    max_events = job->lcf ? job->lcf->transaction_events : 0;

    ngx_http_fanbase_store_redis_args(&a, job->scope);
    ngx_http_fanbase_store_redis_str(&a, job->id, NGX_HTTP_FANBASE_TXN_ID_LEN);
    ngx_http_fanbase_store_redis_num(&a, job->claim);
    ngx_http_fanbase_store_redis_num(&a, u->status);
    ngx_http_fanbase_store_redis_str(&a, u->queue_id.data, u->queue_id.len);
    ngx_http_fanbase_store_redis_str(&a, u->event.data, u->event.len);
    ngx_http_fanbase_store_redis_num(&a, u->retry);
    ngx_http_fanbase_store_redis_num(&a, u->wait);
    ngx_http_fanbase_store_redis_num(&a, flags);
    ngx_http_fanbase_store_redis_num(&a, mcf->notify_url.len ? 1 : 0);
    ngx_http_fanbase_store_redis_num(&a, mcf->redis->retain);
    ngx_http_fanbase_store_redis_num(&a, max_events);

    /* a copy of its own: the caller frees the job when this returns */

    f = ngx_http_fanbase_store_redis_finish_alloc(a.argc, a.argvlen,
                                                  (u_char **) a.argv, log);
    if (f == NULL) {
        return;
    }

    ngx_http_fanbase_store_redis_finish_send(f);
}


static void
ngx_http_fanbase_store_redis_finish_send(
    ngx_http_fanbase_store_redis_finish_t *f)
{
    if (ngx_http_fanbase_redis_script(NGX_HTTP_FANBASE_REDIS_FINISH,
                                      (int) f->argc,
                                      (const char **) f->arg, f->len,
                                      ngx_http_fanbase_store_redis_finished, f)
        != NULL)
    {
        return;
    }

    ngx_http_fanbase_store_redis_finish_wait(f);
}


/*
 * An outcome Redis did not take: kept, in memory and (with a state file)
 * in this worker's outcomes file, and sent again every second.  The file
 * is what a restart replays if the worker dies before Redis answers.
 */

static void
ngx_http_fanbase_store_redis_finish_wait(
    ngx_http_fanbase_store_redis_finish_t *f)
{
    if (!f->journalled) {
        ngx_http_fanbase_store_redis_journal(f);
    }

    ngx_queue_insert_tail(&ngx_http_fanbase_store_redis_finishes, &f->queue);

    if (!ngx_http_fanbase_store_redis_retry_ev.timer_set) {
        ngx_add_timer(&ngx_http_fanbase_store_redis_retry_ev, 1000);
    }
}


static ngx_http_fanbase_store_redis_finish_t *
ngx_http_fanbase_store_redis_finish_alloc(ngx_uint_t argc, size_t *len,
    u_char **arg, ngx_log_t *log)
{
    u_char                                 *p;
    size_t                                  size;
    ngx_uint_t                              i;
    ngx_http_fanbase_store_redis_finish_t  *f;

    size = 0;

    for (i = 0; i < argc; i++) {
        size += len[i];
    }

    f = ngx_alloc(offsetof(ngx_http_fanbase_store_redis_finish_t, data)
                  + size + 1, log);
    if (f == NULL) {
        return NULL;
    }

    f->argc = argc;
    f->journalled = 0;
    p = f->data;

    for (i = 0; i < argc; i++) {
        f->arg[i] = p;
        f->len[i] = len[i];
        p = ngx_cpymem(p, arg[i], len[i]);
    }

    return f;
}


/*
 * "ARGC\n" then "LEN\n" and the bytes of each argument: appended with
 * write(2), no sync (a worker's death, not the machine's, is what it
 * covers; rare: only while Redis does not answer)
 */

static void
ngx_http_fanbase_store_redis_journal(ngx_http_fanbase_store_redis_finish_t *f)
{
    u_char  *p, *buf;
    size_t   size;

    if (ngx_http_fanbase_store_redis_fd == NGX_INVALID_FILE) {
        return;
    }

    size = fanbase_outcome_size(f->argc, f->len);

    buf = ngx_alloc(size, ngx_cycle->log);
    if (buf == NULL) {
        return;
    }

    p = fanbase_outcome_write(buf, f->argc, f->arg, f->len);

    if (ngx_write_fd(ngx_http_fanbase_store_redis_fd, buf, p - buf)
        == p - buf)
    {
        f->journalled = 1;
        ngx_http_fanbase_store_redis_unsure++;

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, ngx_errno,
                      "fanbase: cannot write \"%s\": an outcome waiting for "
                      "redis is kept in memory only",
                      ngx_http_fanbase_store_redis_path);
    }

    ngx_free(buf);
}


/* Redis took a journalled outcome; none left: the file starts again */

static void
ngx_http_fanbase_store_redis_unjournal(
    ngx_http_fanbase_store_redis_finish_t *f)
{
    if (!f->journalled || ngx_http_fanbase_store_redis_unsure == 0) {
        return;
    }

    if (--ngx_http_fanbase_store_redis_unsure == 0
        && ngx_http_fanbase_store_redis_fd != NGX_INVALID_FILE)
    {
        if (ftruncate(ngx_http_fanbase_store_redis_fd, 0) == -1) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                          "ftruncate(\"%s\") failed",
                          ngx_http_fanbase_store_redis_path);
        }
    }
}


/*
 * At a worker's start: the outcomes files of workers that are gone (a
 * kill -9, a crash) are taken, one worker each, and their outcomes sent
 * again.  An outcome Redis already took is refused by its claim's fence
 * and changes nothing.
 */

static void
ngx_http_fanbase_store_redis_replay(ngx_cycle_t *cycle)
{
    u_char                                 *p, *buf;
    size_t                                  argc, len[FANBASE_OUTCOME_ARGS_MAX];
    const u_char                           *rp, *arg[FANBASE_OUTCOME_ARGS_MAX];
    ssize_t                                 n;
    ngx_fd_t                                fd;
    ngx_pid_t                               pid;
    ngx_str_t                               dir, base;
    ngx_uint_t                              replayed;
    ngx_dir_t                               d;
    ngx_file_info_t                         fi, fi2;
    ngx_http_fanbase_store_redis_finish_t  *f;
    u_char                                  from[NGX_MAX_PATH];

    /* the directory of the outcomes files, and their common start */

    p = ngx_http_fanbase_store_redis_path
        + ngx_strlen(ngx_http_fanbase_store_redis_path);

    while (p > ngx_http_fanbase_store_redis_path && p[-1] != '/') {
        p--;
    }

    dir.data = ngx_pnalloc(cycle->pool, p - ngx_http_fanbase_store_redis_path
                                        + 2);
    if (dir.data == NULL) {
        return;
    }

    dir.len = p - ngx_http_fanbase_store_redis_path;
    ngx_memcpy(dir.data, ngx_http_fanbase_store_redis_path, dir.len);

    if (dir.len == 0) {
        dir.data[dir.len++] = '.';
    }

    dir.data[dir.len] = '\0';

    /* "STATE.redis." without the pid */

    base.data = p;
    base.len = ngx_strlen(p);

    while (base.len && base.data[base.len - 1] != '.') {
        base.len--;
    }

    if (ngx_open_dir(&dir, &d) == NGX_ERROR) {
        return;
    }

    replayed = 0;

    while (ngx_read_dir(&d) == NGX_OK) {
        p = ngx_de_name(&d);

        if (ngx_de_namelen(&d) <= base.len
            || ngx_strncmp(p, base.data, base.len) != 0)
        {
            continue;
        }

        pid = ngx_atoi(p + base.len, ngx_de_namelen(&d) - base.len);

        if (pid == NGX_ERROR || pid == ngx_pid) {
            continue;
        }

        ngx_snprintf(from, sizeof(from), "%V%*s%Z", &dir, ngx_de_namelen(&d),
                     p);

        fd = ngx_open_file(from, NGX_FILE_RDWR, NGX_FILE_OPEN, 0);
        if (fd == NGX_INVALID_FILE) {
            continue;
        }

        /*
         * its worker holds a lock on it for as long as it lives (an old
         * worker after a reload keeps its own); the lock is free once it
         * is gone, even as a zombie.  Still there once locked: no other
         * worker took it first.
         */

        if (ngx_trylock_fd(fd) != 0
            || ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
            || ngx_file_info(from, &fi2) == NGX_FILE_ERROR
            || ngx_file_uniq(&fi) != ngx_file_uniq(&fi2)
            || ngx_file_size(&fi) > 64 * 1024 * 1024)
        {
            ngx_close_file(fd);
            continue;
        }

        buf = ngx_alloc((size_t) ngx_file_size(&fi) + 1, cycle->log);
        n = buf ? ngx_read_fd(fd, buf, (size_t) ngx_file_size(&fi)) : -1;

        if (n < 0) {
            ngx_free(buf);
            ngx_close_file(fd);
            continue;
        }

        /* whole records only: the last one may have been cut short */

        rp = buf;

        while (fanbase_outcome_read(&rp, buf + n, &argc, arg, len)) {

            f = ngx_http_fanbase_store_redis_finish_alloc(argc, len,
                                                          (u_char **) arg,
                                                          cycle->log);
            if (f == NULL) {
                break;
            }

            /* into this worker's own file until Redis takes it */
            ngx_http_fanbase_store_redis_finish_wait(f);
            replayed++;
        }

        ngx_free(buf);

        /* deleted before the lock goes: nobody else reads it again */
        (void) ngx_delete_file(from);
        ngx_close_file(fd);
    }

    ngx_close_dir(&d);

    if (replayed) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "fanbase: %ui outcomes of deliveries that a stopped "
                      "worker could not give to redis are sent again",
                      replayed);
    }
}


static void
ngx_http_fanbase_store_redis_finished(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    int64_t                                 pause, probes, waiting;
    ngx_int_t                               rc;
    ngx_http_fanbase_store_redis_finish_t  *f = cmd->data;

    if (reply == NULL) {
        /* again later; nothing said yet, Redis' client said why */
        ngx_http_fanbase_store_redis_finish_wait(f);
        return;
    }

    ngx_http_fanbase_store_redis_unjournal(f);

    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_OK
        && ngx_http_fanbase_store_redis_int(reply, 1, &pause) == NGX_OK
        && ngx_http_fanbase_store_redis_int(reply, 2, &probes) == NGX_OK
        && ngx_http_fanbase_store_redis_int(reply, 3, &waiting) == NGX_OK)
    {
        /* what the route's breaker did, in the words of the zone's */

        if (pause > 0) {
            ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                          "fanbase: Fanbase did not answer the delivery of "
                          "transaction \"%*s\": deliveries on its route "
                          "wait, in order; next probe in %L ms",
                          f->len[1], f->arg[1], pause);
        }

        if (probes >= 0) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "fanbase: Fanbase answers again after %L failed "
                          "probes: %L waiting transactions are due, in "
                          "order", probes, waiting);
        }

    } else if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: transaction \"%*s\" was taken over while "
                      "this worker worked on it", f->len[1], f->arg[1]);

    } else if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: redis refused the outcome of transaction "
                      "\"%*s\"", f->len[1], f->arg[1]);
    }

    ngx_free(f);
}


static void
ngx_http_fanbase_store_redis_finish_retry(ngx_event_t *ev)
{
    ngx_queue_t                             *q, retry;
    ngx_http_fanbase_store_redis_finish_t  *f;

    ngx_queue_init(&retry);

    if (!ngx_queue_empty(&ngx_http_fanbase_store_redis_finishes)) {
        ngx_queue_add(&retry, &ngx_http_fanbase_store_redis_finishes);
        ngx_queue_init(&ngx_http_fanbase_store_redis_finishes);
    }

    while (!ngx_queue_empty(&retry)) {
        q = ngx_queue_head(&retry);
        ngx_queue_remove(q);
        f = ngx_queue_data(q, ngx_http_fanbase_store_redis_finish_t, queue);

        ngx_http_fanbase_store_redis_finish_send(f);
    }
}


/* notice_claim: KEYS {P:S}; lease.  {0, id, body, request id, created,
 * attempts, claim} or {2, ms until one is due, -1: none} */

static ngx_int_t
ngx_http_fanbase_store_redis_notice_claim(ngx_http_fanbase_main_conf_t *mcf,
    ngx_msec_t lease, ngx_http_fanbase_notice_job_t **job,
    ngx_http_fanbase_store_op_t *op)
{
    ngx_msec_t                            next;

    op->next = NGX_HTTP_FANBASE_REDIS_POLL;

    if (mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL) {
        *job = ngx_http_fanbase_notice_claim(mcf, lease, &next);

        if (*job != NULL) {
            (*job)->local = 1;
            return NGX_OK;
        }
    }

    *job = NULL;

    return ngx_http_fanbase_store_redis_claim_start(mcf, op, job, lease,
                                  NGX_HTTP_FANBASE_REDIS_NOTICE_CLAIM,
                                  ngx_http_fanbase_store_redis_notice_claimed);
}


static void
ngx_http_fanbase_store_redis_notice_claimed(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    u_char                               *p;
    int64_t                               created, att, cl;
    ngx_int_t                             rc;
    ngx_str_t                             id, body, rid;
    ngx_http_fanbase_notice_job_t        *job;
    ngx_http_fanbase_store_redis_call_t  *call = cmd->data;

    rc = ngx_http_fanbase_store_redis_code(reply);

    if (rc == NGX_DECLINED) {
        ngx_http_fanbase_store_redis_claim_none(call, reply, NGX_HTTP_FANBASE_REDIS_NOTICE_CLAIM,
                                   ngx_http_fanbase_store_redis_notice_claimed);
        return;
    }

    if (rc != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 1, &id) != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 2, &body) != NGX_OK
        || ngx_http_fanbase_store_redis_string(reply, 3, &rid) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 4, &created) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 5, &att) != NGX_OK
        || ngx_http_fanbase_store_redis_int(reply, 6, &cl) != NGX_OK
        || id.len == 0 || id.len > NGX_HTTP_FANBASE_NOTICE_ID_MAX)
    {
        call->op->next = NGX_HTTP_FANBASE_REDIS_POLL;
        ngx_http_fanbase_store_redis_answer(call, NGX_DECLINED);
        return;
    }

    job = ngx_alloc(offsetof(ngx_http_fanbase_notice_job_t, data)
                    + id.len + body.len + rid.len + 1, ngx_cycle->log);
    if (job == NULL) {
        call->op->next = NGX_HTTP_FANBASE_REDIS_POLL;
        ngx_http_fanbase_store_redis_answer(call, NGX_DECLINED);
        return;
    }

    ngx_memzero(job, offsetof(ngx_http_fanbase_notice_job_t, data));

    job->claim = (uint32_t) cl;
    job->attempts = (uint32_t) att;
    job->created = (uint64_t) created;
    job->scope = call->scope;

    p = job->data;
    job->id.data = p;
    job->id.len = id.len;
    p = ngx_cpymem(p, id.data, id.len);
    job->body.data = p;
    job->body.len = body.len;
    p = ngx_cpymem(p, body.data, body.len);
    job->request_id.data = p;
    job->request_id.len = rid.len;
    (void) ngx_cpymem(p, rid.data, rid.len);

    *(ngx_http_fanbase_notice_job_t **) call->out = job;

    ngx_http_fanbase_store_redis_rr++;

    ngx_http_fanbase_store_redis_answer(call, NGX_OK);
}


/* notice_finish: KEYS {P:S}; id, claim, drop, delay, failed; a lost one
 * lets the claim run out, and the notice is sent again (the site
 * deduplicates by its webhook-id) */

static void
ngx_http_fanbase_store_redis_notice_finish(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_notice_job_t *job, ngx_uint_t drop, ngx_msec_t delay,
    ngx_uint_t failed)
{
    ngx_http_fanbase_store_redis_args_t  a;

    if (job->local) {
        ngx_http_fanbase_notice_finish(mcf, job, drop, delay, failed);
        return;
    }

    ngx_http_fanbase_store_redis_args(&a, job->scope);
    ngx_http_fanbase_store_redis_str(&a, job->id.data, job->id.len);
    ngx_http_fanbase_store_redis_num(&a, job->claim);
    ngx_http_fanbase_store_redis_num(&a, drop ? 1 : 0);
    ngx_http_fanbase_store_redis_num(&a, delay);
    ngx_http_fanbase_store_redis_num(&a, failed ? 1 : 0);

    (void) ngx_http_fanbase_redis_script(NGX_HTTP_FANBASE_REDIS_NOTICE_FINISH,
                                         a.argc, a.argv, a.argvlen, NULL,
                                         NULL);
}


static void
ngx_http_fanbase_store_redis_cancel(ngx_http_fanbase_store_op_t *op)
{
    ngx_http_fanbase_store_redis_call_t  *call;

    call = op->event.data;

    if (call != NULL) {
        if (call->item != NULL) {
            ngx_http_fanbase_redis_batch_cancel(call->item);

        } else {
            ngx_http_fanbase_redis_cancel(call->cmd);
        }

        ngx_http_fanbase_store_redis_call_free(call);
        op->event.data = NULL;
    }

    op->pending = 0;
}


/*
 * A change on any host: "SCOPE ID VERSION".  The change stamp of the
 * transaction's bucket moves, and the long polls that watch it look
 * again.  NULL: changes may have been missed, every stamp moves.
 */

static void
ngx_http_fanbase_store_redis_push(ngx_str_t *message)
{
    u_char                    *p, *last, *id;
    uint32_t                   hash;
    uint64_t                   scope;
    ngx_uint_t                 i;
    ngx_http_fanbase_shctx_t  *sh;

    if (ngx_http_fanbase_store_redis_mcf == NULL) {
        return;
    }

    sh = ngx_http_fanbase_store_redis_mcf->sh;

    if (message == NULL) {
        for (i = 0; i <= sh->txn_hash_mask; i++) {
            (void) ngx_atomic_fetch_add(&sh->txn_hash[i].stamp, 1);
        }

        (void) ngx_atomic_fetch_add(&sh->changes, 1);
        return;
    }

    p = message->data;
    last = p + message->len;
    scope = 0;

    for ( /* void */ ; p < last && *p != ' '; p++) {
        if (*p >= '0' && *p <= '9') {
            scope = (scope << 4) | (uint64_t) (*p - '0');

        } else if (*p >= 'a' && *p <= 'f') {
            scope = (scope << 4) | (uint64_t) (*p - 'a' + 10);

        } else {
            return;
        }
    }

    if (p == last) {
        return;
    }

    id = ++p;

    while (p < last && *p != ' ') {
        p++;
    }

    hash = ngx_http_fanbase_id_hash(scope, id, p - id) & sh->txn_hash_mask;

    (void) ngx_atomic_fetch_add(&sh->txn_hash[hash].stamp, 1);
}


/*
 * fallback=local: Redis did not take the command ("rc", NGX_HTTP_FANBASE_
 * ENGINE_DOWN at once: it never left), and the zone engine answers it
 */

static ngx_uint_t
ngx_http_fanbase_store_redis_local(ngx_http_fanbase_main_conf_t *mcf,
    ngx_int_t rc)
{
    static ngx_msec_t  said;

    if (rc != NGX_HTTP_FANBASE_ENGINE_DOWN
        || mcf->redis->fallback != NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL)
    {
        return 0;
    }

    if (said == 0 || ngx_current_msec - said > 60000) {
        said = ngx_current_msec;

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: redis \"%V\" does not answer: this host "
                      "works alone (fallback=local); what it accepts now "
                      "stays on it", &mcf->redis->url);
    }

    return 1;
}


/*
 * Send script "script" for "op": NGX_AGAIN, and handler answers later; or
 * NGX_HTTP_FANBASE_ENGINE_DOWN at once.
 */

static ngx_int_t
ngx_http_fanbase_store_redis_call(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_store_op_t *op, ngx_uint_t script,
    ngx_http_fanbase_store_redis_args_t *a, ngx_http_fanbase_redis_pt handler,
    void *out, ngx_http_fanbase_store_redis_call_t **callp)
{
    ngx_http_fanbase_store_redis_call_t  *call;

    call = ngx_http_fanbase_store_redis_call_new(mcf, op, out);
    if (call == NULL) {
        return NGX_ERROR;
    }

    call->cmd = ngx_http_fanbase_redis_script(script, a->argc, a->argv,
                                              a->argvlen, handler, call);
    if (call->cmd == NULL) {
        ngx_http_fanbase_store_redis_call_free(call);
        return NGX_HTTP_FANBASE_ENGINE_DOWN;
    }

    if (callp) {
        *callp = call;
    }

    return ngx_http_fanbase_store_redis_pending(call);
}


/* an operation's record, before its command or batch call is made */

static ngx_http_fanbase_store_redis_call_t *
ngx_http_fanbase_store_redis_call_new(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_store_op_t *op, void *out)
{
    ngx_http_fanbase_store_redis_call_t  *call;

    call = ngx_http_fanbase_store_redis_calls;

    if (call != NULL) {
        ngx_http_fanbase_store_redis_calls = call->free_next;
        ngx_http_fanbase_store_redis_ncalls--;
        ngx_memzero(call, sizeof(ngx_http_fanbase_store_redis_call_t));

    } else {
        call = ngx_calloc(sizeof(ngx_http_fanbase_store_redis_call_t),
                          op->log);
        if (call == NULL) {
            return NULL;
        }
    }

    call->op = op;
    call->mcf = mcf;
    call->out = out;

    return call;
}


static void
ngx_http_fanbase_store_redis_call_free(
    ngx_http_fanbase_store_redis_call_t *call)
{
    if (ngx_http_fanbase_store_redis_ncalls
        >= NGX_HTTP_FANBASE_REDIS_CALLS_KEEP)
    {
        ngx_free(call);
        return;
    }

    call->free_next = ngx_http_fanbase_store_redis_calls;
    ngx_http_fanbase_store_redis_calls = call;
    ngx_http_fanbase_store_redis_ncalls++;
}


/* the operation waits for Redis: its answer comes through op->done */

static ngx_int_t
ngx_http_fanbase_store_redis_pending(ngx_http_fanbase_store_redis_call_t *call)
{
    ngx_http_fanbase_store_op_t  *op = call->op;

    op->pending = 1;
    op->store = &ngx_http_fanbase_store_redis;
    op->event.data = call;

    return NGX_AGAIN;
}


static void
ngx_http_fanbase_store_redis_answer(ngx_http_fanbase_store_redis_call_t *call,
    ngx_int_t rc)
{
    ngx_http_fanbase_store_op_t  *op;

    op = call->op;

    op->rc = rc;
    op->pending = 0;
    op->event.data = NULL;

    ngx_http_fanbase_store_redis_call_free(call);

    op->done(op);
}


/* the arguments of a script: the tag of the credential set first */

static void
ngx_http_fanbase_store_redis_args(ngx_http_fanbase_store_redis_args_t *a,
    uint64_t scope)
{
    ngx_http_fanbase_redis_conf_t  *rcf;

    rcf = ngx_http_fanbase_store_redis_mcf->redis;

    a->argc = 1;
    a->nnums = 0;
    a->nhex = 0;
    a->argv[0] = (const char *) a->tag;
    a->argvlen[0] = ngx_snprintf(a->tag, NGX_HTTP_FANBASE_REDIS_TAG_MAX,
                                 "{%V:%016uxL}", &rcf->prefix, scope)
                    - a->tag;
}


static void
ngx_http_fanbase_store_redis_str(ngx_http_fanbase_store_redis_args_t *a,
    u_char *data, size_t len)
{
    a->argv[a->argc] = len ? (const char *) data : "";
    a->argvlen[a->argc] = len;
    a->argc++;
}


static void
ngx_http_fanbase_store_redis_num(ngx_http_fanbase_store_redis_args_t *a,
    int64_t n)
{
    u_char  *p;

    p = a->nums[a->nnums++];

    a->argv[a->argc] = (const char *) p;
    a->argvlen[a->argc] = ngx_sprintf(p, "%L", n) - p;
    a->argc++;
}


static void
ngx_http_fanbase_store_redis_hex(ngx_http_fanbase_store_redis_args_t *a,
    u_char *data, size_t len)
{
    u_char  *p;

    p = a->hex + a->nhex;
    a->nhex += 2 * len;

    a->argv[a->argc] = (const char *) p;
    a->argvlen[a->argc] = ngx_hex_dump(p, data, len) - p;
    a->argc++;
}


/* the first element of a script's answer; no answer: the engine is down */

static ngx_int_t
ngx_http_fanbase_store_redis_code(redisReply *reply)
{
    int64_t  code;

    if (reply == NULL) {
        return NGX_HTTP_FANBASE_ENGINE_DOWN;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: redis: %*s", ngx_min(reply->len, 256),
                      reply->str);
        return NGX_HTTP_FANBASE_ENGINE_DOWN;
    }

    if (ngx_http_fanbase_store_redis_int(reply, 0, &code) != NGX_OK) {
        return NGX_ERROR;
    }

    switch (code) {
    case NGX_HTTP_FANBASE_REDIS_OK:
        return NGX_OK;
    case NGX_HTTP_FANBASE_REDIS_DONE:
        return NGX_DONE;
    case NGX_HTTP_FANBASE_REDIS_DECLINED:
        return NGX_DECLINED;
    case NGX_HTTP_FANBASE_REDIS_BUSY:
        return NGX_BUSY;
    case NGX_HTTP_FANBASE_REDIS_ABORT:
        return NGX_ABORT;
    default:
        return NGX_ERROR;
    }
}


static ngx_int_t
ngx_http_fanbase_store_redis_int(redisReply *reply, size_t i, int64_t *n)
{
    u_char      *p, *last;
    ngx_uint_t   neg;
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements) {
        return NGX_ERROR;
    }

    e = reply->element[i];

    if (e->type == REDIS_REPLY_INTEGER) {
        *n = e->integer;
        return NGX_OK;
    }

    if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > 19) {
        return NGX_ERROR;
    }

    p = (u_char *) e->str;
    last = p + e->len;
    neg = (*p == '-');
    p += neg;
    *n = 0;

    if (p == last) {
        return NGX_ERROR;
    }

    for ( /* void */ ; p < last; p++) {
        if (*p < '0' || *p > '9') {
            return NGX_ERROR;
        }

        *n = *n * 10 + (*p - '0');
    }

    if (neg) {
        *n = -*n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_store_redis_string(redisReply *reply, size_t i,
    ngx_str_t *s)
{
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY || i >= reply->elements) {
        return NGX_ERROR;
    }

    e = reply->element[i];

    if (e->type == REDIS_REPLY_NIL) {
        ngx_str_null(s);
        return NGX_OK;
    }

    if (e->type != REDIS_REPLY_STRING && e->type != REDIS_REPLY_STATUS) {
        return NGX_ERROR;
    }

    s->data = (u_char *) e->str;
    s->len = e->len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_store_redis_unhex(u_char *dst, ngx_str_t *hex)
{
    u_char      *p, c;
    ngx_uint_t   i, n;

    p = hex->data;

    for (i = 0; i < hex->len / 2; i++) {
        n = 0;

        for (c = 0; c < 2; c++, p++) {
            if (*p >= '0' && *p <= '9') {
                n = (n << 4) | (ngx_uint_t) (*p - '0');

            } else if (*p >= 'a' && *p <= 'f') {
                n = (n << 4) | (ngx_uint_t) (*p - 'a' + 10);

            } else {
                return NGX_ERROR;
            }
        }

        dst[i] = (u_char) n;
    }

    return NGX_OK;
}
