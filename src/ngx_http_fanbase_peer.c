
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The connections of a worker to one Fanbase API, for the synchronous
 * locations that reach it through nginx's upstream: at most
 * fanbase_max_connections at once, requests beyond that waiting in order
 * for a slot (up to their timeout), and up to fanbase_keepalive idle
 * connections kept open for the next requests.
 *
 * A slot is held by a request from before its connection is chosen until
 * its upstream is finalized; a request uses one connection at a time and
 * opens a new one only when none is idle, so the connections open are
 * never more than the slots.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_peer.h"


#define NGX_HTTP_FANBASE_PEER_REQUESTS  1000   /* per connection */


typedef struct {
    ngx_queue_t                    queue;
    ngx_http_fanbase_peer_pool_t  *pool;
    ngx_connection_t              *connection;
    socklen_t                      socklen;
    ngx_sockaddr_t                 sockaddr;
    ngx_str_t                     *name;
} ngx_http_fanbase_peer_idle_t;


typedef struct {
    ngx_http_fanbase_peer_pool_t  *pool;
    ngx_http_upstream_t           *upstream;
} ngx_http_fanbase_peer_data_t;


static ngx_int_t ngx_http_fanbase_peer_init(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *uscf);
static ngx_int_t ngx_http_fanbase_peer_get(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_fanbase_peer_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static void ngx_http_fanbase_peer_idle_handler(ngx_event_t *ev);
static void ngx_http_fanbase_peer_idle_close(
    ngx_http_fanbase_peer_idle_t *item);
static void ngx_http_fanbase_peer_close(ngx_connection_t *c);
static void ngx_http_fanbase_peer_dummy_handler(ngx_event_t *ev);
static void ngx_http_fanbase_peer_wait_handler(ngx_event_t *ev);
static void ngx_http_fanbase_peer_grant(ngx_http_fanbase_peer_pool_t *pool);
static void ngx_http_fanbase_peer_ready(ngx_http_fanbase_peer_pool_t *pool);


/*
 * The pool of an API, shared by every location that reaches the same
 * scheme, host and port with the same TLS settings (key).
 */

ngx_http_fanbase_peer_pool_t *
ngx_http_fanbase_peer_pool(ngx_conf_t *cf, ngx_array_t *pools, ngx_url_t *url,
    ngx_str_t *key, ngx_uint_t max, ngx_uint_t keepalive)
{
    ngx_uint_t                      i;
    ngx_http_fanbase_peer_pool_t  **pp, *pool;

    pp = pools->elts;

    for (i = 0; i < pools->nelts; i++) {
        if (pp[i]->key.len == key->len
            && ngx_strncmp(pp[i]->key.data, key->data, key->len) == 0)
        {
            return pp[i];
        }
    }

    pool = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_peer_pool_t));
    if (pool == NULL) {
        return NULL;
    }

    pool->key = *key;
    pool->addrs = url->addrs;
    pool->naddrs = url->naddrs;
    pool->max = max;
    pool->keepalive = keepalive;
    pool->idle_timeout = 30000;

    pool->uscf.peer.init = ngx_http_fanbase_peer_init;
    pool->uscf.host = url->host;
    pool->uscf.port = url->port;
    pool->uscf.file_name = cf->conf_file->file.name.data;
    pool->uscf.line = cf->conf_file->line;

    pp = ngx_array_push(pools);
    if (pp == NULL) {
        return NULL;
    }

    *pp = pool;

    return pool;
}


static void
ngx_http_fanbase_peer_ready(ngx_http_fanbase_peer_pool_t *pool)
{
    if (pool->ready) {
        return;
    }

    ngx_queue_init(&pool->idle);
    ngx_queue_init(&pool->cache);
    ngx_queue_init(&pool->waiting);

    pool->ready = 1;
}


/* NGX_OK: the slot is the request's; NGX_AGAIN: w->handler tells later */

ngx_int_t
ngx_http_fanbase_peer_acquire(ngx_http_fanbase_peer_wait_t *w)
{
    ngx_http_fanbase_peer_pool_t  *pool = w->pool;

    ngx_http_fanbase_peer_ready(pool);

    if (w->granted) {
        return NGX_OK;
    }

    if (pool->busy < pool->max && ngx_queue_empty(&pool->waiting)) {
        pool->busy++;
        w->granted = 1;
        return NGX_OK;
    }

    w->event.handler = ngx_http_fanbase_peer_wait_handler;
    w->event.data = w;
    w->event.log = ngx_cycle->log;

    ngx_queue_insert_tail(&pool->waiting, &w->queue);
    w->waiting = 1;

    ngx_add_timer(&w->event, w->timeout);

    return NGX_AGAIN;
}


/* the slot goes back, or a wait ends: a request that is done or gone */

void
ngx_http_fanbase_peer_release(ngx_http_fanbase_peer_wait_t *w)
{
    ngx_http_fanbase_peer_pool_t  *pool = w->pool;

    if (w->waiting) {
        ngx_queue_remove(&w->queue);
        w->waiting = 0;
    }

    if (w->event.timer_set) {
        ngx_del_timer(&w->event);
    }

    if (w->event.posted) {
        ngx_delete_posted_event(&w->event);
    }

    if (!w->granted) {
        return;
    }

    w->granted = 0;
    pool->busy--;

    ngx_http_fanbase_peer_grant(pool);
}


/* the first in line gets the slot freed, from the event loop */

static void
ngx_http_fanbase_peer_grant(ngx_http_fanbase_peer_pool_t *pool)
{
    ngx_queue_t                   *q;
    ngx_http_fanbase_peer_wait_t  *w;

    if (pool->busy >= pool->max || ngx_queue_empty(&pool->waiting)) {
        return;
    }

    q = ngx_queue_head(&pool->waiting);
    ngx_queue_remove(q);

    w = ngx_queue_data(q, ngx_http_fanbase_peer_wait_t, queue);
    w->waiting = 0;
    w->granted = 1;
    pool->busy++;

    if (w->event.timer_set) {
        ngx_del_timer(&w->event);
    }

    ngx_post_event(&w->event, &ngx_posted_events);
}


static void
ngx_http_fanbase_peer_wait_handler(ngx_event_t *ev)
{
    ngx_http_fanbase_peer_wait_t  *w = ev->data;

    if (ev->timedout) {
        ev->timedout = 0;

        if (w->waiting) {
            ngx_queue_remove(&w->queue);
            w->waiting = 0;
        }

        w->handler(w, NGX_DECLINED);
        return;
    }

    w->handler(w, NGX_OK);
}


/* nginx's upstream asks for the peer of a request that holds a slot */

static ngx_int_t
ngx_http_fanbase_peer_init(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *uscf)
{
    ngx_http_upstream_t           *u;
    ngx_http_fanbase_peer_data_t  *pd;

    pd = ngx_palloc(r->pool, sizeof(ngx_http_fanbase_peer_data_t));
    if (pd == NULL) {
        return NGX_ERROR;
    }

    u = r->upstream;

    pd->pool = (ngx_http_fanbase_peer_pool_t *) uscf;
    pd->upstream = u;

    ngx_http_fanbase_peer_ready(pd->pool);

    u->peer.get = ngx_http_fanbase_peer_get;
    u->peer.free = ngx_http_fanbase_peer_free;
    u->peer.data = pd;
    u->peer.tries = pd->pool->naddrs;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_peer_get(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_fanbase_peer_data_t  *pd = data;

    ngx_addr_t                    *addr;
    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_http_fanbase_peer_idle_t  *item;
    ngx_http_fanbase_peer_pool_t  *pool;

    pool = pd->pool;

    pc->cached = 0;
    pc->connection = NULL;

    /* an idle connection first: any of them reaches the same API */

    if (!ngx_queue_empty(&pool->idle)) {
        q = ngx_queue_head(&pool->idle);
        ngx_queue_remove(q);
        ngx_queue_insert_head(&pool->cache, q);
        pool->nidle--;

        item = ngx_queue_data(q, ngx_http_fanbase_peer_idle_t, queue);
        c = item->connection;

        c->idle = 0;
        c->sent = 0;
        c->data = NULL;
        c->log = pc->log;
        c->read->log = pc->log;
        c->write->log = pc->log;
        c->pool->log = pc->log;

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        pc->connection = c;
        pc->cached = 1;
        pc->sockaddr = &item->sockaddr.sockaddr;
        pc->socklen = item->socklen;
        pc->name = item->name;

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                       "fanbase peer: kept connection %p", c);

        return NGX_DONE;
    }

    addr = &pool->addrs[pool->next++ % pool->naddrs];

    pc->sockaddr = addr->sockaddr;
    pc->socklen = addr->socklen;
    pc->name = &addr->name;

    return NGX_OK;
}


static void
ngx_http_fanbase_peer_free(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_fanbase_peer_data_t  *pd = data;

    ngx_queue_t                   *q;
    ngx_connection_t              *c;
    ngx_http_upstream_t           *u;
    ngx_http_fanbase_peer_idle_t  *item;
    ngx_http_fanbase_peer_pool_t  *pool;

    if (pc->tries) {
        pc->tries--;
    }

    pool = pd->pool;
    u = pd->upstream;
    c = pc->connection;

    if (state & NGX_PEER_FAILED
        || c == NULL
        || c->read->eof
        || c->read->error
        || c->read->timedout
        || c->write->error
        || c->write->timedout
        || !u->keepalive
        || !u->request_body_sent
        || ngx_terminate
        || ngx_exiting
        || c->requests >= NGX_HTTP_FANBASE_PEER_REQUESTS
        || pool->nidle >= pool->keepalive)
    {
        return;
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        return;
    }

    if (!ngx_queue_empty(&pool->cache)) {
        q = ngx_queue_head(&pool->cache);
        ngx_queue_remove(q);
        item = ngx_queue_data(q, ngx_http_fanbase_peer_idle_t, queue);

    } else {
        item = ngx_palloc(ngx_cycle->pool,
                          sizeof(ngx_http_fanbase_peer_idle_t));
        if (item == NULL) {
            return;
        }

        item->pool = pool;
    }

    ngx_queue_insert_head(&pool->idle, &item->queue);
    pool->nidle++;

    item->connection = c;
    item->socklen = pc->socklen;
    ngx_memcpy(&item->sockaddr, pc->sockaddr, pc->socklen);
    item->name = pc->name;

    pc->connection = NULL;

    c->read->delayed = 0;
    ngx_add_timer(c->read, pool->idle_timeout);

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->write->handler = ngx_http_fanbase_peer_dummy_handler;
    c->read->handler = ngx_http_fanbase_peer_idle_handler;

    c->data = item;
    c->idle = 1;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->pool->log = ngx_cycle->log;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "fanbase peer: keeping connection %p", c);

    if (c->read->ready) {
        ngx_http_fanbase_peer_idle_handler(c->read);
    }
}


/* an idle connection that Fanbase closed, timed out, or a shutdown */

static void
ngx_http_fanbase_peer_idle_handler(ngx_event_t *ev)
{
    int                            n;
    char                           buf[1];
    ngx_connection_t              *c;
    ngx_http_fanbase_peer_idle_t  *item;

    c = ev->data;
    item = c->data;

    if (c->close || ev->timedout) {
        goto close;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        ev->ready = 0;

        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            goto close;
        }

        return;
    }

close:

    ngx_http_fanbase_peer_idle_close(item);
}


static void
ngx_http_fanbase_peer_idle_close(ngx_http_fanbase_peer_idle_t *item)
{
    ngx_connection_t              *c;
    ngx_http_fanbase_peer_pool_t  *pool;

    pool = item->pool;
    c = item->connection;

    ngx_queue_remove(&item->queue);
    ngx_queue_insert_head(&pool->cache, &item->queue);
    pool->nidle--;

    ngx_http_fanbase_peer_close(c);
}


static void
ngx_http_fanbase_peer_close(ngx_connection_t *c)
{
#if (NGX_HTTP_SSL)

    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->handler = ngx_http_fanbase_peer_close;
            return;
        }
    }

#endif

    ngx_destroy_pool(c->pool);
    ngx_close_connection(c);
}


static void
ngx_http_fanbase_peer_dummy_handler(ngx_event_t *ev)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "fanbase peer: dummy handler");
}
