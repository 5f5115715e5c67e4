
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The state file of "fanbase_zone ... state=PATH": the zone's
 * transactions and Idempotency-Key claims as JSON.  A zone that starts
 * empty loads it (in the master, at configuration time).  While nginx
 * runs, one worker at a time saves it at most once a second when
 * something changed, and the master saves it once more when nginx stops,
 * after its workers are gone.  It is written to PATH.PID.tmp and renamed
 * over PATH, so a reader never sees half a file.  A worker renders the
 * file under the zone's lock and hands the writing to nginx's thread pool
 * "default", so that a slow disk never stalls its event loop; the master
 * writes it itself.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_module.h"


#define NGX_HTTP_FANBASE_STATE_VERSION   1
#define NGX_HTTP_FANBASE_SAVE_INTERVAL   1000
#define NGX_HTTP_FANBASE_SAVE_LEASE      10000
#define NGX_HTTP_FANBASE_STATE_MAX       (1024 * 1024 * 1024)


/* one save's writing: it may run in a thread, so it logs nothing itself */

typedef struct {
    ngx_http_fanbase_main_conf_t  *mcf;
    u_char                        *buf;
    size_t                         len;
    ngx_atomic_uint_t              changes;
    ngx_int_t                      rc;
    ngx_err_t                      err;
    const char                    *failed;     /* the call that failed */
    u_char                         tmp[NGX_MAX_PATH];
} ngx_http_fanbase_state_io_t;


static u_char *ngx_http_fanbase_state_render(ngx_http_fanbase_main_conf_t *mcf,
    size_t *len, ngx_log_t *log);
static u_char *ngx_http_fanbase_state_txn(u_char *p,
    ngx_http_fanbase_txn_t *t);
static u_char *ngx_http_fanbase_state_keys(u_char *p,
    ngx_http_fanbase_keys_t *keys, ngx_uint_t full);
static ngx_int_t ngx_http_fanbase_state_load_notice(
    ngx_http_fanbase_main_conf_t *mcf, yajl_val v);
static void ngx_http_fanbase_state_write(ngx_http_fanbase_state_io_t *io);
static void ngx_http_fanbase_state_written(ngx_http_fanbase_state_io_t *io,
    ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_fanbase_state_thread(void *data, ngx_log_t *log);
static void ngx_http_fanbase_state_thread_done(ngx_event_t *ev);
#endif
static void ngx_http_fanbase_state_timer(ngx_event_t *ev);
static ngx_int_t ngx_http_fanbase_state_parse(
    ngx_http_fanbase_main_conf_t *mcf, yajl_val root, ngx_log_t *log);
static ngx_int_t ngx_http_fanbase_state_load_txn(
    ngx_http_fanbase_main_conf_t *mcf, yajl_val v, ngx_log_t *log);
static ngx_int_t ngx_http_fanbase_state_load_idem(
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_keys_t *keys,
    yajl_val v, uint64_t now);
static yajl_val ngx_http_fanbase_state_get(yajl_val obj, const char *name,
    yajl_type type);
static uint64_t ngx_http_fanbase_state_uint(yajl_val obj, const char *name);
static ngx_int_t ngx_http_fanbase_state_str(yajl_val obj, const char *name,
    ngx_str_t *s);
static ngx_int_t ngx_http_fanbase_state_hex(ngx_str_t *hex, u_char *out,
    size_t len);


static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_state_mcf;
static ngx_event_t                    ngx_http_fanbase_state_event;
static ngx_connection_t               ngx_http_fanbase_state_conn;
#if (NGX_THREADS)
static ngx_thread_task_t             *ngx_http_fanbase_state_task;
static ngx_uint_t                     ngx_http_fanbase_state_busy;
#endif


ngx_int_t
ngx_http_fanbase_state_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    if (mcf->state.len == 0) {
        return NGX_OK;
    }

    ngx_http_fanbase_state_mcf = mcf;

#if (NGX_THREADS)
    if (mcf->state_pool != NULL) {
        ngx_http_fanbase_state_task = ngx_thread_task_alloc(cycle->pool,
                                          sizeof(ngx_http_fanbase_state_io_t));
        if (ngx_http_fanbase_state_task == NULL) {
            return NGX_ERROR;
        }

        ngx_http_fanbase_state_task->handler = ngx_http_fanbase_state_thread;
        ngx_http_fanbase_state_task->event.handler =
                                          ngx_http_fanbase_state_thread_done;
        ngx_http_fanbase_state_task->event.data = ngx_http_fanbase_state_task;
        ngx_http_fanbase_state_task->event.log = cycle->log;
    }
#endif

    ngx_http_fanbase_state_conn.fd = (ngx_socket_t) -1;
    ngx_http_fanbase_state_event.data = &ngx_http_fanbase_state_conn;
    ngx_http_fanbase_state_event.handler = ngx_http_fanbase_state_timer;
    ngx_http_fanbase_state_event.log = cycle->log;
    ngx_http_fanbase_state_event.cancelable = 1;

    ngx_add_timer(&ngx_http_fanbase_state_event,
                  NGX_HTTP_FANBASE_SAVE_INTERVAL);

    return NGX_OK;
}


static void
ngx_http_fanbase_state_timer(ngx_event_t *ev)
{
    ngx_http_fanbase_state_save(ngx_http_fanbase_state_mcf, 0, ev->log);

    if (!ngx_exiting) {
        ngx_add_timer(ev, NGX_HTTP_FANBASE_SAVE_INTERVAL);
    }
}


/*
 * Saves the zone if it changed since the last save and nobody else is
 * saving it (or "force": the master, its workers gone).  The file is
 * written by the calling process: a worker's timer or the master at exit,
 * never a request.
 */

void
ngx_http_fanbase_state_save(ngx_http_fanbase_main_conf_t *mcf,
    ngx_uint_t force, ngx_log_t *log)
{
    ngx_http_fanbase_shctx_t     *sh;
    ngx_http_fanbase_state_io_t  *io, local;

    if (mcf == NULL || mcf->state.len == 0 || mcf->sh == NULL) {
        return;
    }

    sh = mcf->sh;

    if (sh->changes == sh->saved) {
        return;
    }

    io = &local;

#if (NGX_THREADS)

    /* this worker's last save is still being written */

    if (ngx_http_fanbase_state_busy) {
        return;
    }

    if (!force && ngx_http_fanbase_state_task != NULL) {
        io = ngx_http_fanbase_state_task->ctx;
    }

#endif

    ngx_memzero(io, sizeof(ngx_http_fanbase_state_io_t));
    io->mcf = mcf;

    if (mcf->state.len + sizeof(".tmp") + NGX_INT_T_LEN + 1 > NGX_MAX_PATH) {
        return;
    }

    (void) ngx_sprintf(io->tmp, "%V.%P.tmp%Z", &mcf->state, ngx_pid);

    ngx_shmtx_lock(&mcf->shpool->mutex);

    /* a worker killed while saving held the lease: the master saves anyway */

    if (!force && sh->saving
        && (ngx_msec_int_t) (sh->save_lease - ngx_current_msec) > 0)
    {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        return;
    }

    io->changes = sh->changes;
    sh->saving = 1;
    sh->save_lease = ngx_current_msec + NGX_HTTP_FANBASE_SAVE_LEASE;

    io->buf = ngx_http_fanbase_state_render(mcf, &io->len, log);

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    if (io->buf == NULL) {
        io->rc = NGX_ERROR;
        ngx_http_fanbase_state_written(io, log);
        return;
    }

#if (NGX_THREADS)

    if (io != &local) {
        if (ngx_thread_task_post(mcf->state_pool, ngx_http_fanbase_state_task)
            == NGX_OK)
        {
            ngx_http_fanbase_state_busy = 1;
            return;
        }

        /* the pool's queue is full: written here, as without threads */
    }

#endif

    ngx_http_fanbase_state_write(io);
    ngx_http_fanbase_state_written(io, log);
}


#if (NGX_THREADS)

static void
ngx_http_fanbase_state_thread(void *data, ngx_log_t *log)
{
    ngx_http_fanbase_state_write(data);
}


static void
ngx_http_fanbase_state_thread_done(ngx_event_t *ev)
{
    ngx_thread_task_t  *task = ev->data;

    ngx_http_fanbase_state_busy = 0;

    ngx_http_fanbase_state_written(task->ctx, ev->log);
}

#endif


/* the writing's outcome: logged, recorded in the zone, the buffer freed */

static void
ngx_http_fanbase_state_written(ngx_http_fanbase_state_io_t *io,
    ngx_log_t *log)
{
    ngx_http_fanbase_shctx_t  *sh;

    if (io->failed != NULL) {
        ngx_log_error(NGX_LOG_ERR, log, io->err,
                      "fanbase: cannot save the state to \"%V\": %s "
                      "\"%s\" failed", &io->mcf->state, io->failed,
                      io->tmp);

    } else if (io->rc == NGX_OK) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "fanbase: state saved to \"%V\", %uz bytes",
                       &io->mcf->state, io->len);
    }

    if (io->buf != NULL) {
        ngx_free(io->buf);
        io->buf = NULL;
    }

    sh = io->mcf->sh;

    ngx_shmtx_lock(&io->mcf->shpool->mutex);

    if (io->rc == NGX_OK) {
        sh->saved = io->changes;
    }

    sh->saving = 0;

    ngx_shmtx_unlock(&io->mcf->shpool->mutex);
}


/* called with the zone locked */

static u_char *
ngx_http_fanbase_state_render(ngx_http_fanbase_main_conf_t *mcf, size_t *len,
    ngx_log_t *log)
{
    u_char                    *buf, *p;
    size_t                     size;
    ngx_uint_t                 first, i;
    ngx_queue_t                *q, *e, *queues[2];
    ngx_http_fanbase_txn_t     *t;
    ngx_http_fanbase_idem_t    *k;
    ngx_http_fanbase_keys_t    *keys;
    ngx_http_fanbase_event_t   *ev;
    ngx_http_fanbase_notice_t  *n;
    ngx_http_fanbase_shctx_t   *sh;

    sh = mcf->sh;
    queues[0] = &sh->txn_live;
    queues[1] = &sh->txn_done;

    size = sizeof("{\"version\":,\"transactions\":[],\"idempotency\":[],"
                  "\"webhooks\":[],\"notifications\":[]}\n")
           + NGX_INT_T_LEN;

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            t = ngx_queue_data(q, ngx_http_fanbase_txn_t, queue);

            size += 512 + 6 * NGX_HTTP_FANBASE_ACCEPTED_LEN
                    + 6 * ngx_max(t->payload_len,
                                      NGX_HTTP_FANBASE_ID_MAX);

            for (e = ngx_queue_head(&t->events);
                 e != ngx_queue_sentinel(&t->events);
                 e = ngx_queue_next(e))
            {
                ev = ngx_queue_data(e, ngx_http_fanbase_event_t, queue);
                size += 3 + 6 * ev->len;
            }
        }
    }

    for (i = 0; i < 2; i++) {
        keys = i ? &sh->hooks : &sh->idem;

        for (q = ngx_queue_head(&keys->lru);
             q != ngx_queue_sentinel(&keys->lru);
             q = ngx_queue_next(q))
        {
            k = ngx_queue_data(q, ngx_http_fanbase_idem_t, queue);
            size += 160 + 6 * k->len;
        }
    }

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_fanbase_notice_t, queue);
        size += 160 + n->id_len + 6 * n->len;
    }

    buf = ngx_alloc(size, log);
    if (buf == NULL) {
        return NULL;
    }

    p = ngx_sprintf(buf, "{\"version\":%d,\"transactions\":[",
                    NGX_HTTP_FANBASE_STATE_VERSION);

    first = 1;

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            if (!first) {
                *p++ = ',';
            }

            first = 0;

            *p++ = '\n';
            p = ngx_http_fanbase_state_txn(p,
                              ngx_queue_data(q, ngx_http_fanbase_txn_t,
                                             queue));
        }
    }

    p = ngx_cpymem(p, "],\"idempotency\":[", sizeof("],\"idempotency\":[") - 1);
    p = ngx_http_fanbase_state_keys(p, &sh->idem, 1);
    p = ngx_cpymem(p, "],\"webhooks\":[", sizeof("],\"webhooks\":[") - 1);
    p = ngx_http_fanbase_state_keys(p, &sh->hooks, 0);
    p = ngx_cpymem(p, "],\"notifications\":[",
                   sizeof("],\"notifications\":[") - 1);

    first = 1;

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_fanbase_notice_t, queue);

        if (!first) {
            *p++ = ',';
        }

        first = 0;

        p = ngx_sprintf(p, "\n{\"id\":\"%*s\",\"created\":%uL,"
                        "\"attempts\":%uD,\"body\":\"",
                        (size_t) n->id_len, n->id, n->created, n->attempts);
        p = (u_char *) ngx_escape_json(p, n->body, n->len);
        p = ngx_cpymem(p, "\"}", 2);
    }

    p = ngx_cpymem(p, "]}\n", 3);

    *len = p - buf;

    return buf;
}


/* claimed keys: Idempotency-Keys ("full": with digest and id), webhooks */

static u_char *
ngx_http_fanbase_state_keys(u_char *p, ngx_http_fanbase_keys_t *keys,
    ngx_uint_t full)
{
    ngx_queue_t              *q;
    ngx_http_fanbase_idem_t  *k;

    for (q = ngx_queue_head(&keys->lru);
         q != ngx_queue_sentinel(&keys->lru);
         q = ngx_queue_next(q))
    {
        k = ngx_queue_data(q, ngx_http_fanbase_idem_t, queue);

        if (q != ngx_queue_head(&keys->lru)) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, "\n{\"key\":\"", sizeof("\n{\"key\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, k->key, k->len);

        if (full) {
            p = ngx_cpymem(p, "\",\"digest\":\"",
                           sizeof("\",\"digest\":\"") - 1);
            p = ngx_hex_dump(p, k->digest, 16);
            p = ngx_sprintf(p, "\",\"id\":\"%*s",
                            (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, k->txn_id);
        }

        p = ngx_sprintf(p, "\",\"expires\":%uL}", k->expires);
    }

    return p;
}


static u_char *
ngx_http_fanbase_state_txn(u_char *p, ngx_http_fanbase_txn_t *t)
{
    ngx_uint_t                 first;
    ngx_queue_t               *q;
    ngx_http_fanbase_event_t  *ev;
    u_char                     buf[NGX_HTTP_FANBASE_ACCEPTED_LEN];

    p = ngx_sprintf(p, "{\"id\":\"%*s\",\"target\":\"",
                    (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, t->id);
    p = ngx_hex_dump(p, t->target, NGX_HTTP_FANBASE_TARGET_LEN);
    p = ngx_sprintf(p, "\",\"status\":\"%s\",\"created\":%uL,"
                    "\"updated\":%uL,\"deliver_by\":%uL,\"track_by\":%uL,"
                    "\"version\":%uD,\"attempts\":%uD,\"sent\":%s,"
                    "\"max_events\":%ui",
                    fanbase_json_status_name(t->status), t->created,
                    t->updated, t->deliver_by, t->track_by, t->version,
                    t->attempts, t->sent ? "true" : "false",
                    (ngx_uint_t) t->max_events);

    if (t->data != NULL && t->queue_id_len) {
        p = ngx_sprintf(p, ",\"queue_id\":\"%*s\"", (size_t) t->queue_id_len,
                        t->data);

    } else if (t->data != NULL) {
        p = ngx_cpymem(p, ",\"payload\":\"", sizeof(",\"payload\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, t->data, t->payload_len);
        *p++ = '"';
    }

    p = ngx_cpymem(p, ",\"events\":[", sizeof(",\"events\":[") - 1);

    first = 1;

    if (t->accepted) {
        *p++ = '"';
        p = (u_char *) ngx_escape_json(p, buf,
                                 ngx_http_fanbase_txn_accepted(buf, t->created)
                                 - buf);
        *p++ = '"';
        first = 0;
    }

    for (q = ngx_queue_head(&t->events);
         q != ngx_queue_sentinel(&t->events);
         q = ngx_queue_next(q))
    {
        ev = ngx_queue_data(q, ngx_http_fanbase_event_t, queue);

        if (!first) {
            *p++ = ',';
        }

        first = 0;

        *p++ = '"';
        p = (u_char *) ngx_escape_json(p, ev->json, ev->len);
        *p++ = '"';
    }

    return ngx_cpymem(p, "]}", 2);
}


/* the file's writing alone: it runs in a thread, so it logs nothing */

static void
ngx_http_fanbase_state_write(ngx_http_fanbase_state_io_t *io)
{
    ssize_t   n;
    ngx_fd_t  fd;

    io->rc = NGX_ERROR;

    /* payloads hold buyer data: the file is for nginx's user alone */

    fd = ngx_open_file(io->tmp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_OWNER_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        io->err = ngx_errno;
        io->failed = ngx_open_file_n;
        return;
    }

    n = ngx_write_fd(fd, io->buf, io->len);

    if (n == -1 || (size_t) n != io->len) {
        io->err = (n == -1) ? ngx_errno : 0;
        io->failed = ngx_write_fd_n;
        (void) ngx_close_file(fd);
        (void) ngx_delete_file(io->tmp);
        return;
    }

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        io->err = ngx_errno;
        io->failed = ngx_close_file_n;
        (void) ngx_delete_file(io->tmp);
        return;
    }

    if (ngx_rename_file(io->tmp, io->mcf->state.data) == NGX_FILE_ERROR) {
        io->err = ngx_errno;
        io->failed = ngx_rename_file_n;
        (void) ngx_delete_file(io->tmp);
        return;
    }

    io->rc = NGX_OK;
}


/*
 * Into a new, empty zone, in the master.  A missing file is a first start;
 * a file that cannot be read is set aside as PATH.bad and the zone starts
 * empty, so that the next save does not overwrite it.
 */

ngx_int_t
ngx_http_fanbase_state_load(ngx_http_fanbase_main_conf_t *mcf,
    ngx_log_t *log)
{
    u_char           *buf;
    size_t            size;
    ssize_t           n;
    yajl_val          root;
    ngx_fd_t          fd;
    ngx_int_t         rc;
    ngx_file_info_t   fi;
    u_char            bad[NGX_MAX_PATH];
    char              err[256];

    fd = ngx_open_file(mcf->state.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno == NGX_ENOENT) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "fanbase: no state file \"%V\" yet, the zone "
                          "starts empty", &mcf->state);
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "fanbase: cannot open the state file \"%V\"",
                      &mcf->state);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_HTTP_FANBASE_STATE_MAX)
    {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "fanbase: cannot read the state file \"%V\"",
                      &mcf->state);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_alloc(size + 1, log);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, buf, size);
    (void) ngx_close_file(fd);

    if (n == -1 || (size_t) n != size) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      "fanbase: cannot read the state file \"%V\"",
                      &mcf->state);
        ngx_free(buf);
        return NGX_ERROR;
    }

    buf[size] = '\0';
    err[0] = '\0';

    root = yajl_tree_parse((const char *) buf, err, sizeof(err));
    ngx_free(buf);

    rc = (root != NULL) ? ngx_http_fanbase_state_parse(mcf, root, log)
                        : NGX_DECLINED;

    if (root != NULL) {
        yajl_tree_free(root);
    }

    if (rc == NGX_DECLINED) {
        (void) ngx_snprintf(bad, sizeof(bad), "%V.bad%Z", &mcf->state);

        if (ngx_test_config) {
            /* nginx -t says so, and changes nothing */
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: the state file \"%V\" cannot be "
                          "read%s%s; nginx would keep it as \"%s\" and "
                          "start with an empty zone", &mcf->state,
                          err[0] ? ": " : "", err, bad);
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: the state file \"%V\" cannot be read%s%s; "
                      "it is kept as \"%s\" and the zone starts empty",
                      &mcf->state, err[0] ? ": " : "", err, bad);

        (void) ngx_rename_file(mcf->state.data, bad);
        return NGX_OK;
    }

    return rc;
}


static ngx_int_t
ngx_http_fanbase_state_parse(ngx_http_fanbase_main_conf_t *mcf,
    yajl_val root, ngx_log_t *log)
{
    size_t      i;
    uint64_t    now;
    yajl_val    txns, idem, hooks, notices;
    ngx_uint_t  loaded, skipped, keys, notes;

    if (!YAJL_IS_OBJECT(root)
        || ngx_http_fanbase_state_uint(root, "version")
           != NGX_HTTP_FANBASE_STATE_VERSION)
    {
        return NGX_DECLINED;
    }

    txns = ngx_http_fanbase_state_get(root, "transactions", yajl_t_array);
    idem = ngx_http_fanbase_state_get(root, "idempotency", yajl_t_array);

    if (txns == NULL || idem == NULL) {
        return NGX_DECLINED;
    }

    loaded = 0;
    skipped = 0;

    for (i = 0; i < txns->u.array.len; i++) {
        switch (ngx_http_fanbase_state_load_txn(mcf, txns->u.array.values[i],
                                                log))
        {
        case NGX_OK:
            loaded++;
            break;

        case NGX_BUSY:
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: zone \"%V\" is too small for the state "
                          "file \"%V\": %uz transactions not loaded",
                          &mcf->shm_zone->shm.name, &mcf->state,
                          txns->u.array.len - i);
            skipped += txns->u.array.len - i;
            i = txns->u.array.len;
            break;

        default:
            skipped++;
        }
    }

    now = ngx_http_fanbase_txn_now();
    keys = 0;

    for (i = 0; i < idem->u.array.len; i++) {
        if (ngx_http_fanbase_state_load_idem(mcf, &mcf->sh->idem,
                                             idem->u.array.values[i], now)
            == NGX_OK)
        {
            keys++;
        }
    }

    /* files of earlier versions of the module have neither */

    hooks = ngx_http_fanbase_state_get(root, "webhooks", yajl_t_array);

    for (i = 0; hooks != NULL && i < hooks->u.array.len; i++) {
        (void) ngx_http_fanbase_state_load_idem(mcf, &mcf->sh->hooks,
                                                hooks->u.array.values[i],
                                                now);
    }

    notices = ngx_http_fanbase_state_get(root, "notifications",
                                         yajl_t_array);
    notes = 0;

    for (i = 0; notices != NULL && i < notices->u.array.len; i++) {
        if (ngx_http_fanbase_state_load_notice(mcf,
                                               notices->u.array.values[i])
            == NGX_OK)
        {
            notes++;
        }
    }

    /* what was loaded is saved as it is: nothing to write yet */
    mcf->sh->saved = mcf->sh->changes;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "fanbase: state file \"%V\": %ui transactions, %ui "
                  "Idempotency-Keys and %ui notifications loaded, %ui "
                  "skipped", &mcf->state, loaded, keys, notes, skipped);

    return NGX_OK;
}


/* NGX_OK, NGX_DECLINED: malformed, NGX_BUSY: the zone is full */

static ngx_int_t
ngx_http_fanbase_state_load_txn(ngx_http_fanbase_main_conf_t *mcf,
    yajl_val v, ngx_log_t *log)
{
    size_t                   i;
    yajl_val                 events, ev;
    ngx_str_t                id, target, status, queue_id, payload, event;
    ngx_uint_t               st;
    ngx_http_fanbase_txn_t  *t;
    u_char                   tgt[NGX_HTTP_FANBASE_TARGET_LEN];

    if (!YAJL_IS_OBJECT(v)
        || ngx_http_fanbase_state_str(v, "id", &id) != NGX_OK
        || id.len != NGX_HTTP_FANBASE_TXN_ID_LEN
        || ngx_http_fanbase_valid_id(&id) != NGX_OK
        || ngx_http_fanbase_state_str(v, "target", &target) != NGX_OK
        || ngx_http_fanbase_state_hex(&target, tgt,
                                      NGX_HTTP_FANBASE_TARGET_LEN)
           != NGX_OK
        || ngx_http_fanbase_state_str(v, "status", &status) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    st = fanbase_json_status_code(status.data, status.len);

    if (status.len == sizeof("cancelled") - 1
        && ngx_strncmp(status.data, "cancelled", status.len) == 0)
    {
        st = FANBASE_STATUS_CANCELLED;
    }

    if (st == FANBASE_STATUS_UNKNOWN) {
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_str(v, "queue_id", &queue_id) != NGX_OK
        || queue_id.len > NGX_HTTP_FANBASE_ID_MAX)
    {
        ngx_str_null(&queue_id);
    }

    if (ngx_http_fanbase_state_str(v, "payload", &payload) != NGX_OK) {
        ngx_str_null(&payload);
    }

    if (fanbase_status_terminal(st)) {
        ngx_str_null(&payload);

    } else if (queue_id.len) {
        /* delivered: the queue id takes the payload's place */
        payload = queue_id;
    }

    t = ngx_http_fanbase_txn_insert_locked(mcf, id.data,
                                           ngx_crc32_short(id.data, id.len),
                                           &payload, 0);
    if (t == NULL) {
        return NGX_BUSY;
    }

    ngx_memcpy(t->target, tgt, NGX_HTTP_FANBASE_TARGET_LEN);
    t->status = (u_char) st;
    t->created = ngx_http_fanbase_state_uint(v, "created");
    t->updated = ngx_http_fanbase_state_uint(v, "updated");
    t->deliver_by = ngx_http_fanbase_state_uint(v, "deliver_by");
    t->track_by = ngx_http_fanbase_state_uint(v, "track_by");
    t->version = (uint32_t) ngx_http_fanbase_state_uint(v, "version");
    t->attempts = (uint32_t) ngx_http_fanbase_state_uint(v, "attempts");
    t->max_events = (u_char) ngx_min(ngx_http_fanbase_state_uint(v,
                                                             "max_events"),
                                     255);

    ev = ngx_http_fanbase_state_get(v, "sent", yajl_t_true);
    t->sent = (ev != NULL) ? 1 : 0;

    if (queue_id.len) {
        t->queue_id_len = (u_char) queue_id.len;
        t->payload_len = 0;

        if (ngx_http_fanbase_txn_index_locked(mcf, t, t->data, queue_id.len)
            != NGX_OK)
        {
            return NGX_BUSY;
        }
    }

    if (t->data == NULL) {
        /* a webhook's record: nothing to deliver, nothing to track */
        ngx_http_fanbase_txn_unschedule_locked(mcf->sh, t);
    }

    events = ngx_http_fanbase_state_get(v, "events", yajl_t_array);

    for (i = 0; events != NULL && i < events->u.array.len; i++) {
        ev = events->u.array.values[i];

        if (!YAJL_IS_STRING(ev)) {
            continue;
        }

        event.data = (u_char *) YAJL_GET_STRING(ev);
        event.len = ngx_strlen(event.data);

        if (ngx_http_fanbase_txn_add_event_locked(mcf, t, &event) != NGX_OK) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "fanbase: an event of transaction \"%V\" is not "
                          "loaded: the zone is full", &id);
        }
    }

    if (fanbase_status_terminal(st)) {
        ngx_http_fanbase_txn_terminal_locked(mcf, t);

    } else if (t->data == NULL) {
        ngx_http_fanbase_txn_unowned_locked(mcf, t);
    }

    return NGX_OK;
}


/* an Idempotency-Key (with digest and id) or a webhook message id */

static ngx_int_t
ngx_http_fanbase_state_load_idem(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys, yajl_val v, uint64_t now)
{
    uint64_t   expires;
    ngx_str_t  key, digest, id;
    u_char     d[16], none[NGX_HTTP_FANBASE_TXN_ID_LEN];

    if (!YAJL_IS_OBJECT(v)
        || ngx_http_fanbase_state_str(v, "key", &key) != NGX_OK
        || key.len == 0 || key.len > NGX_HTTP_FANBASE_IDEM_KEY_MAX)
    {
        return NGX_DECLINED;
    }

    ngx_memzero(d, sizeof(d));
    ngx_memzero(none, sizeof(none));

    id.data = none;

    if (keys == &mcf->sh->idem
        && (ngx_http_fanbase_state_str(v, "digest", &digest) != NGX_OK
            || ngx_http_fanbase_state_hex(&digest, d, 16) != NGX_OK
            || ngx_http_fanbase_state_str(v, "id", &id) != NGX_OK
            || id.len != NGX_HTTP_FANBASE_TXN_ID_LEN))
    {
        return NGX_DECLINED;
    }

    expires = ngx_http_fanbase_state_uint(v, "expires");

    if (expires <= now) {
        return NGX_DECLINED;
    }

    return ngx_http_fanbase_keys_insert_locked(mcf, keys, &key,
                                    ngx_crc32_short(key.data, key.len),
                                    d, id.data, expires)
           ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_http_fanbase_state_load_notice(ngx_http_fanbase_main_conf_t *mcf,
    yajl_val v)
{
    ngx_str_t                   id, body;
    ngx_http_fanbase_notice_t  *n;

    if (!YAJL_IS_OBJECT(v)
        || ngx_http_fanbase_state_str(v, "id", &id) != NGX_OK
        || id.len == 0 || id.len > NGX_HTTP_FANBASE_NOTICE_ID_MAX
        || ngx_http_fanbase_state_str(v, "body", &body) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    n = ngx_http_fanbase_notice_alloc_locked(mcf, body.len);
    if (n == NULL) {
        return NGX_DECLINED;
    }

    ngx_memcpy(n->body, body.data, body.len);
    n->len = (uint32_t) body.len;

    ngx_http_fanbase_notice_queue_locked(mcf, n, &id,
                              ngx_http_fanbase_state_uint(v, "created"),
                              (uint32_t) ngx_http_fanbase_state_uint(v,
                                                                "attempts"));

    return NGX_OK;
}


static yajl_val
ngx_http_fanbase_state_get(yajl_val obj, const char *name, yajl_type type)
{
    size_t  i;

    for (i = 0; i < obj->u.object.len; i++) {
        if (ngx_strcmp(obj->u.object.keys[i], name) == 0) {
            return (obj->u.object.values[i] != NULL
                    && obj->u.object.values[i]->type == type)
                   ? obj->u.object.values[i] : NULL;
        }
    }

    return NULL;
}


static uint64_t
ngx_http_fanbase_state_uint(yajl_val obj, const char *name)
{
    yajl_val  v;

    v = ngx_http_fanbase_state_get(obj, name, yajl_t_number);

    if (v == NULL || !YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0) {
        return 0;
    }

    return (uint64_t) YAJL_GET_INTEGER(v);
}


static ngx_int_t
ngx_http_fanbase_state_str(yajl_val obj, const char *name, ngx_str_t *s)
{
    yajl_val  v;

    v = ngx_http_fanbase_state_get(obj, name, yajl_t_string);

    if (v == NULL) {
        return NGX_DECLINED;
    }

    s->data = (u_char *) YAJL_GET_STRING(v);
    s->len = ngx_strlen(s->data);

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_state_hex(ngx_str_t *hex, u_char *out, size_t len)
{
    size_t     i;
    ngx_int_t  n;

    if (hex->len != 2 * len) {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        n = ngx_hextoi(hex->data + 2 * i, 2);

        if (n == NGX_ERROR) {
            return NGX_DECLINED;
        }

        out[i] = (u_char) n;
    }

    return NGX_OK;
}
