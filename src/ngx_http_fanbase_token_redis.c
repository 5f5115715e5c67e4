
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The cluster's part of edge token management (fanbase_redis): one token
 * fetch for every host that names the same Redis.  Before a worker
 * fetches, it asks Redis (src/lua/token.lua, in the credential set's hash
 * tag) for a token another host fetched; none there, the script gives it
 * the cluster's fetch lease, or says that another host holds it.  A
 * fetched token goes to Redis until its end, a rejected one is dropped
 * there if it is still the one held.  Times are Redis' own.  token.c
 * decides; this file only speaks to Redis.  When Redis does not answer,
 * each host fetches its own token, as without it, and says so once.  The
 * token travels in the commands and answers only: never in a log line,
 * and the buffers that held it are wiped.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_token_redis.h"
#include "ngx_http_fanbase_redis_scripts.h"


#define NGX_HTTP_FANBASE_TOKEN_REDIS_TAG_MAX  128


/* an ask under way */

typedef struct {
    ngx_http_fanbase_cred_t          *cred;
    ngx_http_fanbase_token_redis_pt   handler;
} ngx_http_fanbase_token_redis_ctx_t;


static ngx_int_t ngx_http_fanbase_token_redis_run(
    ngx_http_fanbase_cred_t *cred, int argc, const char **argv,
    size_t *argvlen, ngx_http_fanbase_redis_pt handler, void *data);
static void ngx_http_fanbase_token_redis_answered(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_token_redis_down(ngx_http_fanbase_cred_t *cred,
    redisReply *reply);


static u_char      ngx_http_fanbase_token_redis_owner[128];
static size_t      ngx_http_fanbase_token_redis_owner_len;
static ngx_uint_t  ngx_http_fanbase_token_redis_said;


ngx_int_t
ngx_http_fanbase_token_redis_init_process(ngx_cycle_t *cycle)
{
    /* the holder of a lease, as Redis keeps it: this worker */

    ngx_http_fanbase_token_redis_owner_len =
        ngx_snprintf(ngx_http_fanbase_token_redis_owner,
                     sizeof(ngx_http_fanbase_token_redis_owner), "%V %P",
                     &cycle->hostname, ngx_pid)
        - ngx_http_fanbase_token_redis_owner;

    ngx_http_fanbase_token_redis_said = 0;

    return NGX_OK;
}


/*
 * Asks Redis for a token other than "have" (the one this host has or
 * had) that can be used longer than have_left ms, or the fetch lease for
 * "lease" ms.  NGX_OK: the answer goes to handler; NGX_DECLINED: Redis
 * cannot be asked now, fetch alone.
 */

ngx_int_t
ngx_http_fanbase_token_redis_ask(ngx_http_fanbase_cred_t *cred,
    u_char *have, size_t len, ngx_msec_t have_left, ngx_msec_t lease,
    ngx_http_fanbase_token_redis_pt handler)
{
    u_char                              *p;
    const char                          *argv[6];
    size_t                               argvlen[6];
    ngx_http_fanbase_token_redis_ctx_t  *ctx;
    u_char                               nums[2][NGX_INT64_LEN];

    ctx = ngx_alloc(sizeof(ngx_http_fanbase_token_redis_ctx_t),
                    ngx_cycle->log);
    if (ctx == NULL) {
        return NGX_DECLINED;
    }

    ctx->cred = cred;
    ctx->handler = handler;

    argv[1] = "get";
    argvlen[1] = 3;
    argv[2] = len ? (const char *) have : "";
    argvlen[2] = len;

    p = ngx_sprintf(nums[0], "%M", have_left);
    argv[3] = (const char *) nums[0];
    argvlen[3] = p - nums[0];

    p = ngx_sprintf(nums[1], "%M", lease);
    argv[4] = (const char *) nums[1];
    argvlen[4] = p - nums[1];

    argv[5] = (const char *) ngx_http_fanbase_token_redis_owner;
    argvlen[5] = ngx_http_fanbase_token_redis_owner_len;

    if (ngx_http_fanbase_token_redis_run(cred, 6, argv, argvlen,
                                         ngx_http_fanbase_token_redis_answered,
                                         ctx)
        != NGX_OK)
    {
        ngx_free(ctx);
        ngx_http_fanbase_token_redis_down(cred, NULL);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* a token this host fetched, for the others; the lease released */

void
ngx_http_fanbase_token_redis_put(ngx_http_fanbase_cred_t *cred,
    const u_char *token, size_t len, ngx_msec_t life)
{
    u_char       *p;
    const char   *argv[5];
    size_t        argvlen[5];
    u_char        num[NGX_INT64_LEN];

    argv[1] = "put";
    argvlen[1] = 3;
    argv[2] = (const char *) token;
    argvlen[2] = len;

    p = ngx_sprintf(num, "%M", life);
    argv[3] = (const char *) num;
    argvlen[3] = p - num;

    argv[4] = (const char *) ngx_http_fanbase_token_redis_owner;
    argvlen[4] = ngx_http_fanbase_token_redis_owner_len;

    /* Redis down: this host keeps it to itself */

    (void) ngx_http_fanbase_token_redis_run(cred, 5, argv, argvlen, NULL,
                                            NULL);
}


/* a fetch that failed: the lease goes, another host may try */

void
ngx_http_fanbase_token_redis_release(ngx_http_fanbase_cred_t *cred)
{
    const char  *argv[3];
    size_t       argvlen[3];

    argv[1] = "release";
    argvlen[1] = sizeof("release") - 1;
    argv[2] = (const char *) ngx_http_fanbase_token_redis_owner;
    argvlen[2] = ngx_http_fanbase_token_redis_owner_len;

    (void) ngx_http_fanbase_token_redis_run(cred, 3, argv, argvlen, NULL,
                                            NULL);
}


/* Fanbase rejected the token: no host gets it from Redis any more */

void
ngx_http_fanbase_token_redis_drop(ngx_http_fanbase_cred_t *cred,
    const u_char *token, size_t len)
{
    const char  *argv[3];
    size_t       argvlen[3];

    argv[1] = "drop";
    argvlen[1] = 4;
    argv[2] = (const char *) token;
    argvlen[2] = len;

    (void) ngx_http_fanbase_token_redis_run(cred, 3, argv, argvlen, NULL,
                                            NULL);
}


/* token.lua with the credential set's tag as its key; the command wiped */

static ngx_int_t
ngx_http_fanbase_token_redis_run(ngx_http_fanbase_cred_t *cred, int argc,
    const char **argv, size_t *argvlen, ngx_http_fanbase_redis_pt handler,
    void *data)
{
    ngx_http_fanbase_redis_cmd_t  *cmd;
    u_char                         tag[NGX_HTTP_FANBASE_TOKEN_REDIS_TAG_MAX];

    argv[0] = (const char *) tag;
    argvlen[0] = ngx_snprintf(tag, sizeof(tag), "{%V:%016uxL}",
                              &cred->mcf->redis->prefix, cred->shared)
                 - tag;

    cmd = ngx_http_fanbase_redis_script(NGX_HTTP_FANBASE_REDIS_TOKEN, argc,
                                        argv, argvlen, handler, data);
    if (cmd == NULL) {
        return NGX_DECLINED;
    }

    cmd->wipe = 1;

    return NGX_OK;
}


static void
ngx_http_fanbase_token_redis_answered(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    redisReply                             *e;
    ngx_http_fanbase_cred_t                *cred;
    ngx_http_fanbase_token_redis_ctx_t     *ctx;
    ngx_http_fanbase_token_redis_pt         handler;
    ngx_http_fanbase_token_redis_answer_t   a;

    ctx = cmd->data;
    cred = ctx->cred;
    handler = ctx->handler;
    ngx_free(ctx);

    ngx_memzero(&a, sizeof(ngx_http_fanbase_token_redis_answer_t));
    a.rc = NGX_ERROR;

    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements >= 1
        && reply->element[0]->type == REDIS_REPLY_INTEGER)
    {
        switch (reply->element[0]->integer) {

        case 0:
            if (reply->elements != 4
                || reply->element[1]->type != REDIS_REPLY_STRING
                || reply->element[1]->len == 0
                || reply->element[1]->len > NGX_HTTP_FANBASE_TOKEN_MAX
                || reply->element[2]->type != REDIS_REPLY_INTEGER
                || reply->element[2]->integer <= 0
                || reply->element[3]->type != REDIS_REPLY_INTEGER
                || reply->element[3]->integer <= 0)
            {
                break;
            }

            e = reply->element[1];
            a.rc = NGX_OK;
            a.token = (u_char *) e->str;
            a.len = e->len;
            a.left = (ngx_msec_t) reply->element[2]->integer;
            a.life = (ngx_msec_t) reply->element[3]->integer;
            break;

        case 2:
            a.rc = NGX_DECLINED;
            break;

        case 3:
            a.rc = NGX_BUSY;
            break;
        }
    }

    if (a.rc == NGX_ERROR) {
        ngx_http_fanbase_token_redis_down(cred, reply);

    } else if (ngx_http_fanbase_token_redis_said) {
        ngx_http_fanbase_token_redis_said = 0;

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanbase: redis \"%V\" answers again: the Fanbase "
                      "tokens are shared again", &cred->mcf->redis->url);
    }

    handler(cred, &a);

    /* the reply is freed after this: the token does not stay behind */

    if (a.token != NULL) {
        ngx_explicit_memzero(a.token, a.len);
    }
}


/* Redis gave no answer: said once, until it answers again */

static void
ngx_http_fanbase_token_redis_down(ngx_http_fanbase_cred_t *cred,
    redisReply *reply)
{
    if (ngx_http_fanbase_token_redis_said) {
        return;
    }

    ngx_http_fanbase_token_redis_said = 1;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "fanbase: redis \"%V\" answered \"%*s\" about the "
                      "token of %V: this host fetches its own Fanbase "
                      "tokens until it answers", &cred->mcf->redis->url,
                      ngx_min(reply->len, 200), reply->str, &cred->name);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "fanbase: redis \"%V\" does not answer: this host fetches "
                  "its own Fanbase tokens until it does",
                  &cred->mcf->redis->url);
}
