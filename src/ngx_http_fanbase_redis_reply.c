
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


/*
 * The objects of Redis' replies, for hiredis' reader: the same redisReply
 * trees as hiredis' own functions build, from a worker's list of freed
 * objects instead of malloc() each.  A batch's answer (ngx_http_fanbase_
 * redis_batch.c) is an array of one small array per accept: with hiredis'
 * functions four allocations per accept, freed together, more than
 * glibc's per-thread cache keeps, so that most went through malloc's slow
 * paths (about 730 instructions per accept).  An object here holds its
 * reply and room for a few elements; larger arrays and the strings are
 * allocated as hiredis does.  A handler never keeps a reply (they are
 * freed when it returns), so reusing the objects is safe.
 */


#include "ngx_http_fanbase_redis_reply.h"


#define NGX_HTTP_FANBASE_REDIS_REPLY_INLINE   4
#define NGX_HTTP_FANBASE_REDIS_REPLY_KEEP     1024


typedef struct ngx_http_fanbase_redis_obj_s  ngx_http_fanbase_redis_obj_t;

struct ngx_http_fanbase_redis_obj_s {
    redisReply                     reply;      /* first: its address */
    ngx_http_fanbase_redis_obj_t  *next;       /* on the free list */
    redisReply                    *element[
                                      NGX_HTTP_FANBASE_REDIS_REPLY_INLINE];
};


static redisReply *ngx_http_fanbase_redis_obj(const redisReadTask *task,
    int type);
static void *ngx_http_fanbase_redis_string(const redisReadTask *task,
    char *str, size_t len);
static void *ngx_http_fanbase_redis_array(const redisReadTask *task,
    int elements);
static void *ngx_http_fanbase_redis_integer(const redisReadTask *task,
    long long value);
static void *ngx_http_fanbase_redis_nil(const redisReadTask *task);
static void ngx_http_fanbase_redis_free_object(void *p);


static redisReplyObjectFunctions  ngx_http_fanbase_redis_reply_fns = {
    ngx_http_fanbase_redis_string,
    ngx_http_fanbase_redis_array,
    ngx_http_fanbase_redis_integer,
    ngx_http_fanbase_redis_nil,
    ngx_http_fanbase_redis_free_object
};


static ngx_http_fanbase_redis_obj_t  *ngx_http_fanbase_redis_free_objs;
static ngx_uint_t                      ngx_http_fanbase_redis_nfree;


redisReader *
ngx_http_fanbase_redis_reader_create(void)
{
    return redisReaderCreateWithFunctions(&ngx_http_fanbase_redis_reply_fns);
}


void
ngx_http_fanbase_redis_reply_free(redisReply *reply)
{
    ngx_http_fanbase_redis_free_object(reply);
}


/* the worker goes: its kept objects with it */

void
ngx_http_fanbase_redis_reply_exit(void)
{
    ngx_http_fanbase_redis_obj_t  *o;

    while (ngx_http_fanbase_redis_free_objs != NULL) {
        o = ngx_http_fanbase_redis_free_objs;
        ngx_http_fanbase_redis_free_objs = o->next;
        ngx_free(o);
    }

    ngx_http_fanbase_redis_nfree = 0;
}


/* a new object of "type", made the element of its parent array if any */

static redisReply *
ngx_http_fanbase_redis_obj(const redisReadTask *task, int type)
{
    redisReply                    *parent;
    ngx_http_fanbase_redis_obj_t  *o;

    o = ngx_http_fanbase_redis_free_objs;

    if (o != NULL) {
        ngx_http_fanbase_redis_free_objs = o->next;
        ngx_http_fanbase_redis_nfree--;

    } else {
        o = ngx_alloc(sizeof(ngx_http_fanbase_redis_obj_t),
                      ngx_cycle->log);
        if (o == NULL) {
            return NULL;
        }
    }

    ngx_memzero(&o->reply, sizeof(redisReply));
    o->reply.type = type;

    if (task->parent != NULL) {
        parent = task->parent->obj;
        parent->element[task->idx] = &o->reply;
    }

    return &o->reply;
}


static void *
ngx_http_fanbase_redis_string(const redisReadTask *task, char *str,
    size_t len)
{
    char        *buf;
    redisReply  *r;

    buf = ngx_alloc(len + 1, ngx_cycle->log);
    if (buf == NULL) {
        return NULL;
    }

    ngx_memcpy(buf, str, len);
    buf[len] = '\0';

    r = ngx_http_fanbase_redis_obj(task, task->type);
    if (r == NULL) {
        ngx_free(buf);
        return NULL;
    }

    r->str = buf;
    r->len = len;

    return r;
}


static void *
ngx_http_fanbase_redis_array(const redisReadTask *task, int elements)
{
    redisReply                    *r;
    redisReply                   **element;
    ngx_http_fanbase_redis_obj_t  *o;

    element = NULL;

    if (elements > NGX_HTTP_FANBASE_REDIS_REPLY_INLINE) {
        element = ngx_calloc(elements * sizeof(redisReply *),
                             ngx_cycle->log);
        if (element == NULL) {
            return NULL;
        }
    }

    r = ngx_http_fanbase_redis_obj(task, REDIS_REPLY_ARRAY);
    if (r == NULL) {
        ngx_free(element);
        return NULL;
    }

    if (elements > 0 && element == NULL) {
        o = (ngx_http_fanbase_redis_obj_t *) r;
        element = o->element;
        ngx_memzero(element, elements * sizeof(redisReply *));
    }

    r->element = element;
    r->elements = elements;

    return r;
}


static void *
ngx_http_fanbase_redis_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = ngx_http_fanbase_redis_obj(task, REDIS_REPLY_INTEGER);
    if (r == NULL) {
        return NULL;
    }

    r->integer = value;

    return r;
}


static void *
ngx_http_fanbase_redis_nil(const redisReadTask *task)
{
    return ngx_http_fanbase_redis_obj(task, REDIS_REPLY_NIL);
}


static void
ngx_http_fanbase_redis_free_object(void *p)
{
    size_t                         i;
    redisReply                    *r = p;
    ngx_http_fanbase_redis_obj_t  *o;

    if (r == NULL) {
        return;
    }

    o = (ngx_http_fanbase_redis_obj_t *) r;

    switch (r->type) {

    case REDIS_REPLY_ARRAY:

        /* a reply still being read may have elements not yet made */

        for (i = 0; r->element != NULL && i < r->elements; i++) {
            ngx_http_fanbase_redis_free_object(r->element[i]);
        }

        if (r->element != o->element) {
            ngx_free(r->element);
        }

        break;

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        ngx_free(r->str);
        break;

    default:
        break;
    }

    if (ngx_http_fanbase_redis_nfree >= NGX_HTTP_FANBASE_REDIS_REPLY_KEEP) {
        ngx_free(o);
        return;
    }

    o->next = ngx_http_fanbase_redis_free_objs;
    ngx_http_fanbase_redis_free_objs = o;
    ngx_http_fanbase_redis_nfree++;
}
