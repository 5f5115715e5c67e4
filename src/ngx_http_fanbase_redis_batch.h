
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_REDIS_BATCH_H_INCLUDED_
#define _NGX_HTTP_FANBASE_REDIS_BATCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>


/* the common arguments of a batch (its key among them), and each call's */
#define NGX_HTTP_FANBASE_REDIS_BATCH_COMMON  8
#define NGX_HTTP_FANBASE_REDIS_BATCH_ARGS    8

/* calls in one EVALSHA at most: one script run stays short */
#define NGX_HTTP_FANBASE_REDIS_BATCH_MAX     64


typedef struct ngx_http_fanbase_redis_item_s  ngx_http_fanbase_redis_item_t;

/*
 * A call's answer: its element of the script's array.  reply is NULL when
 * the batch got no answer: "sent" says whether it may have reached Redis
 * (it left) or surely did not (it never left).  The reply is freed when
 * the handler returns.
 */
typedef void (*ngx_http_fanbase_redis_item_pt)(void *data,
    redisReply *reply, ngx_uint_t sent);


ngx_http_fanbase_redis_item_t *ngx_http_fanbase_redis_batch_add(
    ngx_uint_t script, ngx_uint_t ncommon, ngx_uint_t argc,
    const char **argv, const size_t *argvlen,
    ngx_http_fanbase_redis_item_pt handler, void *data);
void ngx_http_fanbase_redis_batch_cancel(ngx_http_fanbase_redis_item_t *item);
void ngx_http_fanbase_redis_batch_exit(void);


#endif /* _NGX_HTTP_FANBASE_REDIS_BATCH_H_INCLUDED_ */
