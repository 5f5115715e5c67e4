
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


/*
 * Calls of one script gathered over a turn of the event loop into one
 * EVALSHA.  A burst of accepts then costs Redis one script run for all the
 * accepts a worker read in that turn (one prelude, one TIME, one MULTI/EXEC
 * in the AOF, one fsync with appendfsync always) instead of one each, and
 * the worker one command to write and one reply to read.
 *
 * Calls join the open batch of the same script and the same common
 * arguments (KEYS[1] first); the batch leaves from a posted event, after
 * everything the loop read in this turn, or at once when it is full.  The
 * script takes the common arguments, then each call's, the same number
 * each, and answers an array with one element per call, in order.
 *
 * While a batch of this worker is in Redis, the next one waits for its
 * answer and grows meanwhile (a group commit): under a light load every
 * call leaves at the end of its turn, under a burst the batches grow with
 * Redis' latency (its fsync, with appendfsync always) instead of each turn
 * paying a script run of its own.  A call waits one answer of Redis at
 * most, its batch's timeout being fanbase_redis_timeout.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_redis_batch.h"


typedef struct {
    ngx_queue_t                      queue;    /* open batches */
    ngx_queue_t                      items;
    ngx_uint_t                       n;
    ngx_uint_t                       script;
    ngx_uint_t                       ncommon;
    ngx_uint_t                       nargs;    /* each call's */
    size_t                           len[NGX_HTTP_FANBASE_REDIS_BATCH_COMMON];
    u_char                          *arg[NGX_HTTP_FANBASE_REDIS_BATCH_COMMON];
    u_char                           data[1];
} ngx_http_fanbase_redis_batch_t;


struct ngx_http_fanbase_redis_item_s {
    ngx_queue_t                      queue;    /* its batch's, or the free */
    ngx_http_fanbase_redis_item_pt   handler;  /* NULL: nobody waits */
    void                            *data;
    size_t                           size;     /* of its bytes */
    size_t                           len[NGX_HTTP_FANBASE_REDIS_BATCH_ARGS];
    u_char                          *arg[NGX_HTTP_FANBASE_REDIS_BATCH_ARGS];
    u_char                           bytes[1];
};


static ngx_http_fanbase_redis_batch_t *ngx_http_fanbase_redis_batch_open(
    ngx_uint_t script, ngx_uint_t ncommon, ngx_uint_t nargs,
    const char **argv, const size_t *argvlen);
static ngx_http_fanbase_redis_item_t *ngx_http_fanbase_redis_item_alloc(
    size_t len);
static void ngx_http_fanbase_redis_item_free(
    ngx_http_fanbase_redis_item_t *item);
static void ngx_http_fanbase_redis_batch_post(void);
static void ngx_http_fanbase_redis_batch_flush(ngx_event_t *ev);
static void ngx_http_fanbase_redis_batch_send(
    ngx_http_fanbase_redis_batch_t *b);
static void ngx_http_fanbase_redis_batch_answer(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);
static void ngx_http_fanbase_redis_batch_end(ngx_http_fanbase_redis_batch_t *b,
    redisReply *reply, ngx_uint_t sent);


static ngx_queue_t   ngx_http_fanbase_redis_batches;
static ngx_event_t   ngx_http_fanbase_redis_batch_ev;
static ngx_uint_t    ngx_http_fanbase_redis_batch_inflight;

/*
 * answered calls kept for the next ones: a batch's answer frees all of
 * its calls at once, more than malloc's per-thread cache keeps
 */
static ngx_queue_t   ngx_http_fanbase_redis_items;
static ngx_uint_t    ngx_http_fanbase_redis_nitems;

#define NGX_HTTP_FANBASE_REDIS_ITEMS_KEEP  256

/* one batch's arguments: "EVALSHA sha 1" comes in front of them */
static const char   *ngx_http_fanbase_redis_batch_argv[
                         NGX_HTTP_FANBASE_REDIS_BATCH_COMMON
                         + NGX_HTTP_FANBASE_REDIS_BATCH_MAX
                           * NGX_HTTP_FANBASE_REDIS_BATCH_ARGS];
static size_t        ngx_http_fanbase_redis_batch_argvlen[
                         NGX_HTTP_FANBASE_REDIS_BATCH_COMMON
                         + NGX_HTTP_FANBASE_REDIS_BATCH_MAX
                           * NGX_HTTP_FANBASE_REDIS_BATCH_ARGS];


/*
 * A call of script "script": argv[0] is its key, argv[1 .. ncommon - 1]
 * the arguments every call of its batch shares, the rest its own (copied).
 * NULL: it cannot be sent now (no connection to Redis), or no memory.
 */

ngx_http_fanbase_redis_item_t *
ngx_http_fanbase_redis_batch_add(ngx_uint_t script, ngx_uint_t ncommon,
    ngx_uint_t argc, const char **argv, const size_t *argvlen,
    ngx_http_fanbase_redis_item_pt handler, void *data)
{
    size_t                           len;
    u_char                          *p;
    ngx_uint_t                       i, nargs;
    ngx_http_fanbase_redis_item_t   *item;
    ngx_http_fanbase_redis_batch_t  *b;

    nargs = argc - ncommon;

    if (ncommon == 0 || ncommon > NGX_HTTP_FANBASE_REDIS_BATCH_COMMON
        || argc <= ncommon || nargs > NGX_HTTP_FANBASE_REDIS_BATCH_ARGS)
    {
        return NULL;
    }

    if (!ngx_http_fanbase_redis_can_send()) {
        return NULL;
    }

    b = ngx_http_fanbase_redis_batch_open(script, ncommon, nargs, argv,
                                          argvlen);
    if (b == NULL) {
        return NULL;
    }

    len = 0;

    for (i = ncommon; i < argc; i++) {
        len += argvlen[i];
    }

    item = ngx_http_fanbase_redis_item_alloc(len);
    if (item == NULL) {
        return NULL;
    }

    p = item->bytes;

    for (i = 0; i < nargs; i++) {
        item->arg[i] = p;
        item->len[i] = argvlen[ncommon + i];
        p = ngx_cpymem(p, argv[ncommon + i], item->len[i]);
    }

    item->handler = handler;
    item->data = data;

    ngx_queue_insert_tail(&b->items, &item->queue);

    if (++b->n == NGX_HTTP_FANBASE_REDIS_BATCH_MAX) {
        ngx_queue_remove(&b->queue);
        ngx_http_fanbase_redis_batch_send(b);
        return item;
    }

    if (ngx_http_fanbase_redis_batch_inflight == 0) {
        ngx_http_fanbase_redis_batch_post();
    }

    return item;
}


/* a call with room for "len" bytes of arguments: a kept one if it fits */

static ngx_http_fanbase_redis_item_t *
ngx_http_fanbase_redis_item_alloc(size_t len)
{
    ngx_queue_t                    *q;
    ngx_http_fanbase_redis_item_t  *item;

    if (ngx_http_fanbase_redis_items.next == NULL) {
        ngx_queue_init(&ngx_http_fanbase_redis_items);
    }

    if (!ngx_queue_empty(&ngx_http_fanbase_redis_items)) {
        q = ngx_queue_head(&ngx_http_fanbase_redis_items);
        item = ngx_queue_data(q, ngx_http_fanbase_redis_item_t, queue);

        if (item->size >= len) {
            ngx_queue_remove(q);
            ngx_http_fanbase_redis_nitems--;
            return item;
        }
    }

    /* the bodies of a site have much the same length: a little room more */

    len = ngx_align(len, 256);

    item = ngx_alloc(sizeof(ngx_http_fanbase_redis_item_t) + len,
                     ngx_cycle->log);
    if (item == NULL) {
        return NULL;
    }

    item->size = len;

    return item;
}


static void
ngx_http_fanbase_redis_item_free(ngx_http_fanbase_redis_item_t *item)
{
    if (ngx_http_fanbase_redis_nitems >= NGX_HTTP_FANBASE_REDIS_ITEMS_KEEP) {
        ngx_free(item);
        return;
    }

    ngx_queue_insert_head(&ngx_http_fanbase_redis_items, &item->queue);
    ngx_http_fanbase_redis_nitems++;
}


/* the open batches leave at the end of this turn of the loop */

static void
ngx_http_fanbase_redis_batch_post(void)
{
    if (ngx_http_fanbase_redis_batch_ev.posted) {
        return;
    }

    ngx_http_fanbase_redis_batch_ev.handler =
                                           ngx_http_fanbase_redis_batch_flush;
    ngx_http_fanbase_redis_batch_ev.log = ngx_cycle->log;
    ngx_http_fanbase_redis_batch_ev.data = &ngx_http_fanbase_redis_batches;

    ngx_post_event(&ngx_http_fanbase_redis_batch_ev, &ngx_posted_events);
}


/*
 * the caller no longer waits: the call goes with its batch all the same
 * (it may have left already), its answer is dropped
 */

void
ngx_http_fanbase_redis_batch_cancel(ngx_http_fanbase_redis_item_t *item)
{
    item->handler = NULL;
    item->data = NULL;
}


/* the worker goes: batches that have not left go with it, silently */

void
ngx_http_fanbase_redis_batch_exit(void)
{
    ngx_queue_t                     *q;
    ngx_http_fanbase_redis_batch_t  *b;

    if (ngx_http_fanbase_redis_batch_ev.posted) {
        ngx_delete_posted_event(&ngx_http_fanbase_redis_batch_ev);
    }

    if (ngx_http_fanbase_redis_items.next != NULL) {
        while (!ngx_queue_empty(&ngx_http_fanbase_redis_items)) {
            q = ngx_queue_head(&ngx_http_fanbase_redis_items);
            ngx_queue_remove(q);
            ngx_free(ngx_queue_data(q, ngx_http_fanbase_redis_item_t, queue));
        }

        ngx_http_fanbase_redis_nitems = 0;
    }

    if (ngx_http_fanbase_redis_batches.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_fanbase_redis_batches)) {
        q = ngx_queue_head(&ngx_http_fanbase_redis_batches);
        ngx_queue_remove(q);
        b = ngx_queue_data(q, ngx_http_fanbase_redis_batch_t, queue);

        while (!ngx_queue_empty(&b->items)) {
            q = ngx_queue_head(&b->items);
            ngx_queue_remove(q);
            ngx_free(ngx_queue_data(q, ngx_http_fanbase_redis_item_t, queue));
        }

        ngx_free(b);
    }
}


/* the open batch these common arguments join, made if there is none */

static ngx_http_fanbase_redis_batch_t *
ngx_http_fanbase_redis_batch_open(ngx_uint_t script, ngx_uint_t ncommon,
    ngx_uint_t nargs, const char **argv, const size_t *argvlen)
{
    size_t                           len;
    u_char                          *p;
    ngx_uint_t                       i;
    ngx_queue_t                     *q;
    ngx_http_fanbase_redis_batch_t  *b;

    if (ngx_http_fanbase_redis_batches.next == NULL) {
        ngx_queue_init(&ngx_http_fanbase_redis_batches);
    }

    for (q = ngx_queue_head(&ngx_http_fanbase_redis_batches);
         q != ngx_queue_sentinel(&ngx_http_fanbase_redis_batches);
         q = ngx_queue_next(q))
    {
        b = ngx_queue_data(q, ngx_http_fanbase_redis_batch_t, queue);

        if (b->script != script || b->ncommon != ncommon
            || b->nargs != nargs)
        {
            continue;
        }

        for (i = 0; i < ncommon; i++) {
            if (b->len[i] != argvlen[i]
                || ngx_memcmp(b->arg[i], argv[i], argvlen[i]) != 0)
            {
                break;
            }
        }

        if (i == ncommon) {
            return b;
        }
    }

    len = 0;

    for (i = 0; i < ncommon; i++) {
        len += argvlen[i];
    }

    b = ngx_alloc(sizeof(ngx_http_fanbase_redis_batch_t) + len,
                  ngx_cycle->log);
    if (b == NULL) {
        return NULL;
    }

    b->script = script;
    b->ncommon = ncommon;
    b->nargs = nargs;
    b->n = 0;
    ngx_queue_init(&b->items);

    p = b->data;

    for (i = 0; i < ncommon; i++) {
        b->arg[i] = p;
        b->len[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    ngx_queue_insert_tail(&ngx_http_fanbase_redis_batches, &b->queue);

    return b;
}


/* the end of the loop's turn: every open batch leaves */

static void
ngx_http_fanbase_redis_batch_flush(ngx_event_t *ev)
{
    ngx_queue_t                     *q;
    ngx_http_fanbase_redis_batch_t  *b;

    /* one in Redis: these go when it is answered */

    while (ngx_http_fanbase_redis_batch_inflight == 0
           && !ngx_queue_empty(&ngx_http_fanbase_redis_batches))
    {
        q = ngx_queue_head(&ngx_http_fanbase_redis_batches);
        ngx_queue_remove(q);
        b = ngx_queue_data(q, ngx_http_fanbase_redis_batch_t, queue);

        ngx_http_fanbase_redis_batch_send(b);
    }
}


static void
ngx_http_fanbase_redis_batch_send(ngx_http_fanbase_redis_batch_t *b)
{
    ngx_uint_t                      i, j, argc;
    ngx_queue_t                    *q;
    const char                    **av;
    size_t                         *al;
    ngx_http_fanbase_redis_item_t  *item;

    av = ngx_http_fanbase_redis_batch_argv;
    al = ngx_http_fanbase_redis_batch_argvlen;

    for (i = 0; i < b->ncommon; i++) {
        av[i] = (const char *) b->arg[i];
        al[i] = b->len[i];
    }

    argc = b->ncommon;

    for (q = ngx_queue_head(&b->items);
         q != ngx_queue_sentinel(&b->items);
         q = ngx_queue_next(q))
    {
        item = ngx_queue_data(q, ngx_http_fanbase_redis_item_t, queue);

        for (j = 0; j < b->nargs; j++) {
            av[argc] = (const char *) item->arg[j];
            al[argc++] = item->len[j];
        }
    }

    if (ngx_http_fanbase_redis_script(b->script, argc, av, al,
                                      ngx_http_fanbase_redis_batch_answer, b)
        == NULL)
    {
        /* the connection went in this turn of the loop: nothing left */
        ngx_http_fanbase_redis_batch_end(b, NULL, 0);
        return;
    }

    ngx_http_fanbase_redis_batch_inflight++;
}


static void
ngx_http_fanbase_redis_batch_answer(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_fanbase_redis_batch_t  *b = cmd->data;

    ngx_http_fanbase_redis_batch_inflight--;

    ngx_http_fanbase_redis_batch_end(b, reply, 1);

    /* what gathered while it was in Redis */

    if (ngx_http_fanbase_redis_batch_inflight == 0
        && ngx_http_fanbase_redis_batches.next != NULL
        && !ngx_queue_empty(&ngx_http_fanbase_redis_batches))
    {
        ngx_http_fanbase_redis_batch_post();
    }
}


/* each call its element of the answer, in order; then the batch goes */

static void
ngx_http_fanbase_redis_batch_end(ngx_http_fanbase_redis_batch_t *b,
    redisReply *reply, ngx_uint_t sent)
{
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    redisReply                     *r;
    ngx_http_fanbase_redis_item_t  *item;

    if (reply != NULL
        && reply->type == REDIS_REPLY_ARRAY && reply->elements != b->n)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: redis answered %uz elements to a batch of "
                      "%ui calls", reply->elements, b->n);
        reply = NULL;
    }

    for (i = 0; !ngx_queue_empty(&b->items); i++) {
        q = ngx_queue_head(&b->items);
        ngx_queue_remove(q);
        item = ngx_queue_data(q, ngx_http_fanbase_redis_item_t, queue);

        if (reply == NULL) {
            r = NULL;

        } else if (reply->type == REDIS_REPLY_ARRAY) {
            r = reply->element[i];

        } else {
            /* an error (or anything else) is every call's answer */
            r = reply;
        }

        if (item->handler != NULL) {
            item->handler(item->data, r, sent);
        }

        ngx_http_fanbase_redis_item_free(item);
    }

    ngx_free(b);
}
