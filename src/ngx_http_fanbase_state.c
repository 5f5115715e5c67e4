
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The state file of "fanbase_zone ... state=PATH": the zone's
 * transactions, Idempotency-Key claims, webhook message ids and outbound
 * notifications, one JSON record a line.  A zone that starts empty loads
 * it (in the master, at configuration time), checking every field of every
 * record and skipping, with a warning, a record that fails.  While nginx
 * runs, one worker at a time saves it at most once a second when
 * something changed, and the master saves it once more when nginx stops,
 * after its workers are gone.  It is written to PATH.PID.tmp, fsynced,
 * renamed over PATH and its directory fsynced, so a reader never sees half
 * a file and a power loss leaves this save or the one before.  A worker
 * renders the file under the zone's lock and hands the writing to nginx's
 * thread pool "default", so that a slow disk never stalls its event loop;
 * the master writes it itself.
 */


#include <dirent.h>
#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_keys.h"
#include "ngx_http_fanbase_logsum.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_state.h"


#define NGX_HTTP_FANBASE_STATE_VERSION   2
#define NGX_HTTP_FANBASE_SAVE_INTERVAL   1000
#define NGX_HTTP_FANBASE_SAVE_LEASE      10000

/* a snapshot this small is taken whenever due, however little changed */
#define NGX_HTTP_FANBASE_SNAPSHOT_SMALL  (1024 * 1024)

/*
 * a snapshot holds the zone's lock for this many hash buckets at a time:
 * with no more transactions than buckets (the zone's sizing), a few
 * records each time
 */
#define NGX_HTTP_FANBASE_STATE_BUCKETS   8
#define NGX_HTTP_FANBASE_STATE_CHUNK_MIN 65536
#define NGX_HTTP_FANBASE_STATE_MAX       (1024 * 1024 * 1024)


/* one load: where it is, and what it counted */

typedef struct {
    ngx_http_fanbase_main_conf_t  *mcf;
    ngx_log_t                     *log;
    uint64_t                       now;
    ngx_uint_t                     txns;
    ngx_uint_t                     keys;
    ngx_uint_t                     notices;
    ngx_uint_t                     skipped;
    ngx_uint_t                     full;      /* not loaded for want of room */
    ngx_uint_t                     lost;      /* events, for want of room */
    ngx_uint_t                     line;      /* the record being loaded */
    ngx_uint_t                     replayed;  /* journal records applied */
    ngx_uint_t                     torn;      /* journal files cut short */
    ngx_str_t                      file;      /* the file being loaded */
    unsigned                       journal:1; /* newest version wins */
} ngx_http_fanbase_state_load_t;


/* a snapshot being rendered: a buffer that grows */

typedef struct {
    u_char                        *data;
    u_char                        *last;
    size_t                         size;
    ngx_log_t                     *log;
} ngx_http_fanbase_state_buf_t;


/* one save's writing: it may run in a thread, so it logs nothing itself */

typedef struct {
    ngx_http_fanbase_main_conf_t  *mcf;
    u_char                        *buf;
    size_t                         len;
    ngx_atomic_uint_t              changes;
    uint64_t                       gen;        /* journals below: in it */
    ngx_msec_t                     cost;       /* of the rendering */
    ngx_log_t                     *log;
    ngx_int_t                      rc;
    ngx_err_t                      err;
    const char                    *failed;     /* the call that failed */
    u_char                        *path;       /* on tmp or dir */
    u_char                         tmp[NGX_MAX_PATH];
    u_char                         dir[NGX_MAX_PATH];
} ngx_http_fanbase_state_io_t;


static ngx_int_t ngx_http_fanbase_state_load(
    ngx_http_fanbase_main_conf_t *mcf, ngx_log_t *log);
static ngx_int_t ngx_http_fanbase_state_load_file(
    ngx_http_fanbase_state_load_t *ld, u_char **bufp, size_t *sizep);
static void ngx_http_fanbase_state_replay(ngx_http_fanbase_state_load_t *ld);
static u_char *ngx_http_fanbase_state_render(ngx_http_fanbase_main_conf_t *mcf,
    size_t *len, ngx_log_t *log);
static u_char *ngx_http_fanbase_state_rid(u_char *p, ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_state_room(ngx_http_fanbase_state_buf_t *b,
    size_t size);
static ngx_int_t ngx_http_fanbase_state_journals(ngx_str_t *state,
    ngx_pool_t *pool, ngx_array_t *files, uint64_t *max_gen);
static void ngx_http_fanbase_state_prune(ngx_str_t *state, uint64_t below);
static ngx_int_t ngx_http_fanbase_state_generation(ngx_str_t *base,
    u_char *name, uint64_t *gen);
static void ngx_http_fanbase_state_make(ngx_http_fanbase_state_io_t *io);
static void ngx_http_fanbase_state_write(ngx_http_fanbase_state_io_t *io);
static void ngx_http_fanbase_state_written(ngx_http_fanbase_state_io_t *io,
    ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_fanbase_state_thread(void *data, ngx_log_t *log);
static void ngx_http_fanbase_state_thread_done(ngx_event_t *ev);
#endif
static void ngx_http_fanbase_state_timer(ngx_event_t *ev);
static ngx_msec_t ngx_http_fanbase_state_clock(void);
static ngx_int_t ngx_http_fanbase_state_lines(
    ngx_http_fanbase_state_load_t *ld, u_char *buf, size_t size);
static ngx_int_t ngx_http_fanbase_state_legacy(
    ngx_http_fanbase_state_load_t *ld, u_char *buf, size_t size);
static void ngx_http_fanbase_state_record(ngx_http_fanbase_state_load_t *ld,
    ngx_uint_t line, const char *type, yajl_val v);
static void ngx_http_fanbase_state_skip(ngx_http_fanbase_state_load_t *ld,
    ngx_uint_t line, const char *why);
static ngx_int_t ngx_http_fanbase_state_load_txn(
    ngx_http_fanbase_state_load_t *ld, yajl_val v, const char **why);
static ngx_uint_t ngx_http_fanbase_state_valid_event(yajl_val ev);
static ngx_int_t ngx_http_fanbase_state_load_key(
    ngx_http_fanbase_state_load_t *ld, ngx_http_fanbase_keys_t *keys,
    yajl_val v, const char **why);
static ngx_int_t ngx_http_fanbase_state_load_notice(
    ngx_http_fanbase_state_load_t *ld, yajl_val v, const char **why);
static ngx_int_t ngx_http_fanbase_state_scope(
    ngx_http_fanbase_main_conf_t *mcf, yajl_val v, u_char *target,
    u_char *txn_id, uint64_t *scope, const char **why);
static yajl_val ngx_http_fanbase_state_get(yajl_val obj, const char *name,
    yajl_type type);
static uint64_t ngx_http_fanbase_state_uint(yajl_val obj, const char *name);
static ngx_int_t ngx_http_fanbase_state_str(yajl_val obj, const char *name,
    ngx_str_t *s);
static ngx_int_t ngx_http_fanbase_state_load_rid(yajl_val obj, ngx_str_t *id);
static ngx_int_t ngx_http_fanbase_state_hex(ngx_str_t *hex, u_char *out,
    size_t len);


/* a failing save is said once a minute by each worker, not every second */
#define NGX_HTTP_FANBASE_STATE_SAY_EVERY  60000


static ngx_http_fanbase_main_conf_t  *ngx_http_fanbase_state_mcf;
static ngx_http_fanbase_logsum_t      ngx_http_fanbase_state_failures;
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

    ngx_http_fanbase_logsum_init(&ngx_http_fanbase_state_failures,
                                 "failed save of the state",
                                 "failed saves of the state", NGX_LOG_ERR,
                                 NGX_HTTP_FANBASE_STATE_SAY_EVERY, cycle->log);

    ngx_http_fanbase_time_timer(&ngx_http_fanbase_state_event,
                                &ngx_http_fanbase_state_conn, NULL,
                                ngx_http_fanbase_state_timer, cycle->log);

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

    /* the journal has every change: a snapshot only compacts it */

    if (!force && (ngx_msec_int_t) (sh->save_next - ngx_current_msec) > 0) {
        return;
    }

    /*
     * nor before the journal has grown by a quarter of a large snapshot:
     * a backlog that only waits (a probe now and then) is not rewritten
     */

    if (!force && sh->snap_bytes > NGX_HTTP_FANBASE_SNAPSHOT_SMALL
        && sh->journal_bytes - sh->snap_journal < sh->snap_bytes / 4)
    {
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

    /*
     * records made from now on go to journal files of a newer generation;
     * the older ones hold nothing this snapshot does not
     */

    io->gen = ++sh->journal_gen;
    sh->snap_journal = sh->journal_bytes;

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    io->log = log;

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

    ngx_http_fanbase_state_make(io);
    ngx_http_fanbase_state_written(io, log);
}


/*
 * The snapshot's making, in a thread of the pool when there is one (so
 * that a large zone's rendering never holds up the worker's event loop):
 * rendered a few records at a time under the lock, never all at once,
 * then written.
 */

static void
ngx_http_fanbase_state_make(ngx_http_fanbase_state_io_t *io)
{
    ngx_msec_t  start;

    start = ngx_http_fanbase_state_clock();

    io->buf = ngx_http_fanbase_state_render(io->mcf, &io->len, io->log);

    io->cost = ngx_http_fanbase_state_clock() - start;

    if (io->buf == NULL) {
        io->rc = NGX_ERROR;
        return;
    }

    ngx_http_fanbase_state_write(io);
}


/* a monotonic clock in ms, read afresh (nginx's is cached per event) */

static ngx_msec_t
ngx_http_fanbase_state_clock(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (ngx_msec_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


#if (NGX_THREADS)

static void
ngx_http_fanbase_state_thread(void *data, ngx_log_t *log)
{
    ngx_http_fanbase_state_make(data);
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
    u_char                    *p, *last;
    u_char                     why[NGX_MAX_PATH + 256];
    ngx_http_fanbase_shctx_t  *sh;

    if (io->failed != NULL) {
        last = why + sizeof(why) - 1;
        p = ngx_slprintf(why, last, "%s \"%s\" failed", io->failed,
                         io->path);

        if (io->err && last - p > 8) {
            p = ngx_slprintf(p, last, " (%d: ", io->err);
            p = ngx_strerror(io->err, p, last - p - 1);
            *p++ = ')';
        }

        *p = '\0';

        /* said at once, then once a minute with how many */

        if (ngx_http_fanbase_logsum_count(&ngx_http_fanbase_state_failures,
                                          &io->mcf->state, (char *) why)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: cannot save the state to \"%V\": %s "
                          "(the failed saves that follow are counted, and "
                          "said once a minute)", &io->mcf->state, why);
        }

    } else if (io->rc == NGX_OK) {
        if (ngx_http_fanbase_logsum_end(&ngx_http_fanbase_state_failures)) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "fanbase: the state is saved to \"%V\" again",
                          &io->mcf->state);
        }

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

    /*
     * the next snapshot no sooner than 50 times this one's rendering: a
     * large zone is rendered less often, and a worker spends at most 2% of
     * its time on it
     */

    sh->save_next = ngx_current_msec
                    + ngx_max(NGX_HTTP_FANBASE_SAVE_INTERVAL, 50 * io->cost);
    sh->snap_bytes = io->len;
    sh->saving = 0;

    ngx_shmtx_unlock(&io->mcf->shpool->mutex);
}


/*
 * Takes the zone's lock for a few hash buckets at a time, so that a large
 * zone never holds up the workers for long.  One record a line, so that a
 * record the loader cannot read costs that record alone:
 *
 *     {"version":2}
 *     {"type":"transaction","id":...}
 *     {"type":"idempotency","key":...}
 *     {"type":"webhook","key":...}
 *     {"type":"notification","id":...}
 *     {"end":N}                      N records: the file is whole
 */

static u_char *
ngx_http_fanbase_state_render(ngx_http_fanbase_main_conf_t *mcf, size_t *len,
    ngx_log_t *log)
{
    size_t                          size;
    ngx_str_t                       rid;
    ngx_uint_t                      i, j, records;
    ngx_queue_t                    *q;
    ngx_http_fanbase_txn_t         *t;
    ngx_http_fanbase_idem_t        *k;
    ngx_http_fanbase_keys_t        *keys;
    ngx_http_fanbase_notice_t      *n;
    ngx_http_fanbase_shctx_t       *sh;
    ngx_http_fanbase_state_buf_t    b;

    sh = mcf->sh;
    records = 0;

    ngx_memzero(&b, sizeof(ngx_http_fanbase_state_buf_t));
    b.log = log;

    if (ngx_http_fanbase_state_room(&b, NGX_HTTP_FANBASE_STATE_CHUNK_MIN)
        != NGX_OK)
    {
        return NULL;
    }

    b.last = ngx_sprintf(b.last, "{\"version\":%d}\n",
                         NGX_HTTP_FANBASE_STATE_VERSION);

    /*
     * the transactions, a few hash buckets at a time, each run under the
     * lock: a change between two runs is in the journal, of a newer
     * generation than this snapshot
     */

    for (i = 0; i <= sh->txn_hash_mask; /* void */) {

        ngx_shmtx_lock(&mcf->shpool->mutex);

        size = 0;

        for (j = i;
             j <= sh->txn_hash_mask && j < i + NGX_HTTP_FANBASE_STATE_BUCKETS;
             j++)
        {
            for (t = sh->txn_hash[j].head; t; t = t->hash_next) {
                size += ngx_http_fanbase_state_txn_size(t);
            }
        }

        if (ngx_http_fanbase_state_room(&b, size) != NGX_OK) {
            ngx_shmtx_unlock(&mcf->shpool->mutex);
            ngx_free(b.data);
            return NULL;
        }

        for (j = i;
             j <= sh->txn_hash_mask && j < i + NGX_HTTP_FANBASE_STATE_BUCKETS;
             j++)
        {
            for (t = sh->txn_hash[j].head; t; t = t->hash_next) {
                b.last = ngx_http_fanbase_state_txn(b.last, mcf, t);
                records++;
            }
        }

        ngx_shmtx_unlock(&mcf->shpool->mutex);

        i = j;
    }

    /* the claimed keys, the same way */

    for (keys = &sh->idem; keys; keys = (keys == &sh->idem) ? &sh->hooks
                                                            : NULL)
    {
        for (i = 0; i <= keys->mask; /* void */) {

            ngx_shmtx_lock(&mcf->shpool->mutex);

            size = 0;

            for (j = i;
                 j <= keys->mask && j < i + NGX_HTTP_FANBASE_STATE_BUCKETS;
                 j++)
            {
                for (k = keys->hash[j]; k; k = k->hash_next) {
                    size += ngx_http_fanbase_state_key_size(k);
                }
            }

            if (ngx_http_fanbase_state_room(&b, size) != NGX_OK) {
                ngx_shmtx_unlock(&mcf->shpool->mutex);
                ngx_free(b.data);
                return NULL;
            }

            for (j = i;
                 j <= keys->mask && j < i + NGX_HTTP_FANBASE_STATE_BUCKETS;
                 j++)
            {
                for (k = keys->hash[j]; k; k = k->hash_next) {
                    b.last = ngx_http_fanbase_state_key(b.last, k,
                                                        keys == &sh->idem);
                    records++;
                }
            }

            ngx_shmtx_unlock(&mcf->shpool->mutex);

            i = j;
        }
    }

    /* the notices waiting, few, in one run */

    ngx_shmtx_lock(&mcf->shpool->mutex);

    size = sizeof("{\"end\":}\n") + NGX_INT_T_LEN;

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_fanbase_notice_t, queue);
        size += 192 + sizeof(",\"request_id\":\"\"")
                + FANBASE_JSON_ESCAPE_MAX
                  * (n->id_len + n->len + n->request_id_len);
    }

    if (ngx_http_fanbase_state_room(&b, size) != NGX_OK) {
        ngx_shmtx_unlock(&mcf->shpool->mutex);
        ngx_free(b.data);
        return NULL;
    }

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        n = ngx_queue_data(q, ngx_http_fanbase_notice_t, queue);

        b.last = ngx_cpymem(b.last, "{\"type\":\"notification\",\"id\":\"",
                         sizeof("{\"type\":\"notification\",\"id\":\"") - 1);
        b.last = fanbase_json_escape(b.last, n->id, n->id_len);
        b.last = ngx_sprintf(b.last, "\",\"created\":%uL,\"attempts\":%uD,"
                             "\"body\":\"", n->created, n->attempts);
        b.last = fanbase_json_escape(b.last, n->body, n->len);
        *b.last++ = '"';

        rid.data = n->body + n->len;
        rid.len = n->request_id_len;
        b.last = ngx_http_fanbase_state_rid(b.last, &rid);

        b.last = ngx_cpymem(b.last, "}\n", 2);
        records++;
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);

    b.last = ngx_sprintf(b.last, "{\"end\":%ui}\n", records);

    *len = b.last - b.data;

    return b.data;
}


/* room for "size" more bytes in a snapshot's buffer, which grows */

static ngx_int_t
ngx_http_fanbase_state_room(ngx_http_fanbase_state_buf_t *b, size_t size)
{
    u_char  *data;
    size_t   want, used;

    used = b->last - b->data;

    if (used + size <= b->size) {
        return NGX_OK;
    }

    want = ngx_max(2 * b->size, used + size);

    data = ngx_alloc(want, b->log);
    if (data == NULL) {
        return NGX_ERROR;
    }

    if (b->data != NULL) {
        ngx_memcpy(data, b->data, used);
        ngx_free(b->data);
    }

    b->data = data;
    b->last = data + used;
    b->size = want;

    return NGX_OK;
}


/* the most a key's record takes */

size_t
ngx_http_fanbase_state_key_size(ngx_http_fanbase_idem_t *k)
{
    return 224 + FANBASE_JSON_ESCAPE_MAX * k->len;
}


u_char *
ngx_http_fanbase_state_key(u_char *p, ngx_http_fanbase_idem_t *k,
    ngx_uint_t full)
{
    p = full ? ngx_cpymem(p, "{\"type\":\"idempotency\",\"key\":\"",
                    sizeof("{\"type\":\"idempotency\",\"key\":\"") - 1)
             : ngx_cpymem(p, "{\"type\":\"webhook\",\"key\":\"",
                    sizeof("{\"type\":\"webhook\",\"key\":\"") - 1);
    p = fanbase_json_escape(p, k->key, k->len);
    p = ngx_cpymem(p, "\",\"scope\":\"", sizeof("\",\"scope\":\"") - 1);
    p = ngx_hex_dump(p, (u_char *) &k->scope, sizeof(uint64_t));

    if (full) {
        p = ngx_cpymem(p, "\",\"digest\":\"", sizeof("\",\"digest\":\"") - 1);
        p = ngx_hex_dump(p, k->digest, 16);
        p = ngx_sprintf(p, "\",\"id\":\"%*s",
                        (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, k->txn_id);
    }

    return ngx_sprintf(p, "\",\"expires\":%uL}\n", k->expires);
}


/* the most a transaction's record takes */

size_t
ngx_http_fanbase_state_txn_size(ngx_http_fanbase_txn_t *t)
{
    size_t                     size;
    ngx_queue_t               *e;
    ngx_http_fanbase_event_t  *ev;

    size = 544 + FANBASE_JSON_ESCAPE_MAX
                 * (NGX_HTTP_FANBASE_ACCEPTED_LEN
                    + ngx_max(t->payload_len, NGX_HTTP_FANBASE_ID_MAX))
           + sizeof(",\"request_id\":\"\"")
           + FANBASE_JSON_ESCAPE_MAX * t->request_id_len;

    for (e = ngx_queue_head(&t->events);
         e != ngx_queue_sentinel(&t->events);
         e = ngx_queue_next(e))
    {
        ev = ngx_queue_data(e, ngx_http_fanbase_event_t, queue);
        size += 3 + FANBASE_JSON_ESCAPE_MAX * ev->len;
    }

    return size;
}


u_char *
ngx_http_fanbase_state_txn(u_char *p, ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_txn_t *t)
{
    ngx_str_t                  rid;
    ngx_uint_t                 first;
    ngx_queue_t               *q;
    ngx_http_fanbase_event_t  *ev;
    u_char                     buf[NGX_HTTP_FANBASE_ACCEPTED_LEN];

    p = ngx_sprintf(p, "{\"type\":\"transaction\",\"id\":\"%*s\","
                    "\"target\":\"",
                    (size_t) NGX_HTTP_FANBASE_TXN_ID_LEN, t->id);
    p = ngx_hex_dump(p, t->target, NGX_HTTP_FANBASE_TARGET_LEN);
    p = ngx_cpymem(p, "\",\"scope\":\"", sizeof("\",\"scope\":\"") - 1);
    p = ngx_hex_dump(p, (u_char *) &t->scope, sizeof(uint64_t));
    p = ngx_sprintf(p, "\",\"status\":\"%s\",\"created\":%uL,"
                    "\"updated\":%uL,\"deliver_by\":%uL,\"track_by\":%uL,"
                    "\"version\":%uD,\"attempts\":%uD,\"sent\":%s,"
                    "\"max_events\":%ui",
                    fanbase_json_status_name(t->status), t->created,
                    t->updated, t->deliver_by, t->track_by, t->version,
                    t->attempts, t->sent ? "true" : "false",
                    (ngx_uint_t) t->max_events);

    if (t->data != NULL && t->queue_id_len) {
        p = ngx_cpymem(p, ",\"queue_id\":\"", sizeof(",\"queue_id\":\"") - 1);
        p = fanbase_json_escape(p, t->data, t->queue_id_len);
        *p++ = '"';

    } else if (t->data != NULL) {
        p = ngx_cpymem(p, ",\"payload\":\"", sizeof(",\"payload\":\"") - 1);
        p = fanbase_json_escape(p, t->data, t->payload_len);
        *p++ = '"';
    }

    ngx_http_fanbase_txn_request_id(mcf, t, &rid);
    p = ngx_http_fanbase_state_rid(p, &rid);

    p = ngx_cpymem(p, ",\"events\":[", sizeof(",\"events\":[") - 1);

    first = 1;

    if (t->accepted) {
        *p++ = '"';
        p = fanbase_json_escape(p, buf,
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
        p = fanbase_json_escape(p, ev->json, ev->len);
        *p++ = '"';
    }

    return ngx_cpymem(p, "]}\n", 3);
}


/* a record's "request_id" field, when it has one */

static u_char *
ngx_http_fanbase_state_rid(u_char *p, ngx_str_t *id)
{
    if (id->len == 0) {
        return p;
    }

    p = ngx_cpymem(p, ",\"request_id\":\"", sizeof(",\"request_id\":\"") - 1);
    p = fanbase_json_escape(p, id->data, id->len);
    *p++ = '"';

    return p;
}


/*
 * The file's writing alone: it runs in a thread, so it logs nothing.  The
 * data reaches the disk before the rename, and the rename before the save
 * counts as done: after a power loss the file is this save or the one
 * before it, never an empty or a half-written one.
 */

static void
ngx_http_fanbase_state_write(ngx_http_fanbase_state_io_t *io)
{
    ssize_t    n;
    ngx_fd_t   fd;
    ngx_str_t  base;

    io->rc = NGX_ERROR;
    io->path = io->tmp;

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
        goto failed;
    }

    if (fsync(fd) == -1) {
        io->err = ngx_errno;
        io->failed = "fsync()";
        goto failed;
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

    /* the rename is an entry of the directory: it is made durable there */

    io->path = io->dir;

    if (ngx_http_fanbase_state_dir(&io->mcf->state, io->dir, sizeof(io->dir),
                                   &base)
        != NGX_OK)
    {
        io->err = NGX_ENAMETOOLONG;
        io->failed = ngx_open_file_n;
        return;
    }

    fd = ngx_open_file(io->dir, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        io->err = ngx_errno;
        io->failed = ngx_open_file_n;
        return;
    }

    if (fsync(fd) == -1) {
        io->err = ngx_errno;
        io->failed = "fsync()";
        (void) ngx_close_file(fd);
        return;
    }

    (void) ngx_close_file(fd);

    io->rc = NGX_OK;

    /* what the journal files before this snapshot hold, it holds */

    if (io->gen) {
        ngx_http_fanbase_state_prune(&io->mcf->state, io->gen);
    }

    return;

failed:

    (void) ngx_close_file(fd);
    (void) ngx_delete_file(io->tmp);
}


/* the directory of a state file, "\0"-terminated ("/fb.state" is in "/"), and
 * the file's name in it */

ngx_int_t
ngx_http_fanbase_state_dir(ngx_str_t *state, u_char *dir, size_t size,
    ngx_str_t *base)
{
    u_char  *p;
    size_t   len;

    for (p = state->data + state->len; p > state->data && p[-1] != '/'; p--) {
        /* void */
    }

    base->data = p;
    base->len = state->data + state->len - p;

    if (p == state->data) {
        ngx_memcpy(dir, ".", sizeof("."));
        return NGX_OK;
    }

    len = ngx_max((size_t) (p - 1 - state->data), 1);

    if (len + 1 > size) {
        return NGX_ERROR;
    }

    ngx_memcpy(dir, state->data, len);
    dir[len] = '\0';

    return NGX_OK;
}


/*
 * Into a new, empty zone, in the master.  A missing file is a first start.
 * A record that cannot be read is skipped, and said so at "warn"; the rest
 * is loaded.  A file that is not a state file at all is set aside as
 * PATH.bad and the zone starts empty, so that the next save does not
 * overwrite it.
 */

/* the state file's part of a new zone: what it holds, loaded */

ngx_int_t
ngx_http_fanbase_state_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    if (mcf->state.len == 0) {
        return NGX_OK;
    }

    return ngx_http_fanbase_state_load(mcf, log);
}


static ngx_int_t
ngx_http_fanbase_state_load(ngx_http_fanbase_main_conf_t *mcf,
    ngx_log_t *log)
{
    u_char                        *buf;
    size_t                         size;
    ngx_int_t                      rc;
    ngx_uint_t                     level, found;
    ngx_http_fanbase_state_load_t  ld;
    u_char                         bad[NGX_MAX_PATH];

    ngx_memzero(&ld, sizeof(ngx_http_fanbase_state_load_t));
    ld.mcf = mcf;
    ld.log = log;
    ld.now = ngx_http_fanbase_time_now();
    ld.file = mcf->state;

    rc = ngx_http_fanbase_state_load_file(&ld, &buf, &size);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    found = (rc == NGX_OK);

    if (rc == NGX_DECLINED) {

        /* nginx -t writes no line of a running nginx in its log */

        if (!ngx_test_config) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "fanbase: no state file \"%V\" yet, the zone "
                          "starts empty", &mcf->state);
        }

        rc = NGX_OK;

    } else {
        if (size >= sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1
            && ngx_strncmp(buf, NGX_HTTP_FANBASE_STATE_HEADER,
                           sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1)
               == 0)
        {
            rc = ngx_http_fanbase_state_lines(&ld, buf, size);

        } else {
            rc = ngx_http_fanbase_state_legacy(&ld, buf, size);
        }

        ngx_free(buf);
    }

    if (rc != NGX_OK) {
        (void) ngx_snprintf(bad, sizeof(bad), "%V.bad%Z", &mcf->state);

        if (ngx_test_config) {
            /* nginx -t says so, and changes nothing */
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "fanbase: \"%V\" is not a state file; nginx "
                          "would keep it as \"%s\" and start with an empty "
                          "zone", &mcf->state, bad);
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: \"%V\" is not a state file; it is kept as "
                      "\"%s\" and the zone starts empty", &mcf->state, bad);

        (void) ngx_rename_file(mcf->state.data, bad);
    }

    /* then what the journals hold that the snapshot does not */

    ngx_http_fanbase_state_replay(&ld);

    /* what was loaded is saved as it is: nothing to write yet */
    mcf->sh->saved = mcf->sh->changes;

    if (!found && ld.replayed + ld.skipped == 0) {
        return NGX_OK;
    }

    level = (ld.skipped || ld.full || ld.lost) ? NGX_LOG_WARN
                                               : NGX_LOG_NOTICE;

    /* nginx -t checks the file, but reports only what is wrong */

    if (level == NGX_LOG_NOTICE && ngx_test_config) {
        return NGX_OK;
    }

    ngx_log_error(level, log, 0,
                  "fanbase: state file \"%V\": %ui transactions, %ui "
                  "Idempotency-Keys and %ui notifications loaded, %ui "
                  "records of the journal replayed, %ui records skipped, "
                  "%ui records and %ui events not loaded for want of room",
                  &mcf->state, ld.txns, ld.keys, ld.notices, ld.replayed,
                  ld.skipped, ld.full, ld.lost);

    return NGX_OK;
}


/*
 * The whole of ld->file into *bufp ("\0"-terminated): NGX_OK, NGX_DECLINED
 * when it does not exist, NGX_ERROR (said) when it cannot be read.
 */

static ngx_int_t
ngx_http_fanbase_state_load_file(ngx_http_fanbase_state_load_t *ld,
    u_char **bufp, size_t *sizep)
{
    u_char           *buf;
    size_t            size;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;

    fd = ngx_open_file(ld->file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        if (ngx_errno == NGX_ENOENT) {
            return NGX_DECLINED;
        }

        ngx_log_error(NGX_LOG_EMERG, ld->log, ngx_errno,
                      "fanbase: cannot open the state file \"%V\"",
                      &ld->file);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > NGX_HTTP_FANBASE_STATE_MAX)
    {
        ngx_log_error(NGX_LOG_EMERG, ld->log, ngx_errno,
                      "fanbase: cannot read the state file \"%V\"",
                      &ld->file);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    size = (size_t) ngx_file_size(&fi);

    buf = ngx_alloc(size + 1, ld->log);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, buf, size);
    (void) ngx_close_file(fd);

    if (n == -1 || (size_t) n != size) {
        ngx_log_error(NGX_LOG_EMERG, ld->log, ngx_errno,
                      "fanbase: cannot read the state file \"%V\"",
                      &ld->file);
        ngx_free(buf);
        return NGX_ERROR;
    }

    buf[size] = '\0';

    *bufp = buf;
    *sizep = size;

    return NGX_OK;
}


/*
 * Every journal file of the state file, after it: each transaction ends
 * at its newest version, whichever file holds it.  A file whose last
 * record was cut short by a crash loses that record (it never counted:
 * its sync had not returned).  The next journal generation is above all
 * of theirs.
 */

static void
ngx_http_fanbase_state_replay(ngx_http_fanbase_state_load_t *ld)
{
    u_char       *buf;
    size_t        size;
    uint64_t      gen;
    ngx_str_t    *files;
    ngx_uint_t    i;
    ngx_pool_t   *pool;
    ngx_array_t   list;

    pool = ngx_create_pool(4096, ld->log);
    if (pool == NULL) {
        return;
    }

    if (ngx_array_init(&list, pool, 8, sizeof(ngx_str_t)) != NGX_OK
        || ngx_http_fanbase_state_journals(&ld->mcf->state, pool, &list, &gen)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, ld->log, ngx_errno,
                      "fanbase: cannot read the journal files of \"%V\"",
                      &ld->mcf->state);
        ngx_destroy_pool(pool);
        return;
    }

    ld->mcf->sh->journal_gen = gen + 1;
    ld->journal = 1;
    files = list.elts;

    for (i = 0; i < list.nelts; i++) {
        ld->file = files[i];

        if (ngx_http_fanbase_state_load_file(ld, &buf, &size) != NGX_OK) {
            continue;
        }

        if (size >= sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1
            && ngx_strncmp(buf, NGX_HTTP_FANBASE_STATE_HEADER,
                           sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1)
               == 0)
        {
            (void) ngx_http_fanbase_state_lines(ld, buf, size);

        } else if (size) {
            ngx_log_error(NGX_LOG_WARN, ld->log, 0,
                          "fanbase: \"%V\" is not a journal file: it is "
                          "not replayed", &ld->file);
        }

        ngx_free(buf);
    }

    ld->journal = 0;
    ld->file = ld->mcf->state;

    ngx_destroy_pool(pool);
}


/* the file of today: one record a line after the header */

static ngx_int_t
ngx_http_fanbase_state_lines(ngx_http_fanbase_state_load_t *ld, u_char *buf,
    size_t size)
{
    int         too_deep;
    u_char     *p, *last, *eol;
    yajl_val    v, type;
    ngx_int_t   end;
    ngx_uint_t  line, records;

    p = buf + sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1;
    last = buf + size;
    line = 1;
    records = 0;
    end = -1;

    for ( /* void */ ; p < last; p = eol + 1) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {

            /* a journal's last record cut short by a crash: never synced */

            if (ld->journal) {
                ld->torn++;
                break;
            }

            eol = last;
        }

        line++;

        if (eol == p) {
            continue;
        }

        if (end != -1) {
            ngx_http_fanbase_state_skip(ld, line, "it follows the end");
            continue;
        }

        records++;

        v = fanbase_json_tree(p, eol - p, &too_deep);

        if (v == NULL) {
            ngx_http_fanbase_state_skip(ld, line,
                                        too_deep ? "it is nested too deep"
                                        : "it is not valid JSON in UTF-8");
            continue;
        }

        if (!YAJL_IS_OBJECT(v)) {
            ngx_http_fanbase_state_skip(ld, line, "it is not an object");
            yajl_tree_free(v);
            continue;
        }

        type = ngx_http_fanbase_state_get(v, "type", yajl_t_string);

        if (type == NULL && ngx_http_fanbase_state_get(v, "end",
                                                       yajl_t_number))
        {
            end = (ngx_int_t) ngx_http_fanbase_state_uint(v, "end");
            records--;
            yajl_tree_free(v);
            continue;
        }

        ngx_http_fanbase_state_record(ld, line,
                                      type ? YAJL_GET_STRING(type) : "", v);
        yajl_tree_free(v);
    }

    if (ld->journal) {
        /* a journal has no end: it is whole up to its last line */

    } else if (end == -1) {
        ngx_log_error(NGX_LOG_WARN, ld->log, 0,
                      "fanbase: the state file \"%V\" ends early, after "
                      "%ui records: the rest is lost", &ld->file,
                      records);

    } else if ((ngx_uint_t) end != records) {
        ngx_log_error(NGX_LOG_WARN, ld->log, 0,
                      "fanbase: the state file \"%V\" holds %ui records, "
                      "its end says %i", &ld->file, records, end);
    }

    return NGX_OK;
}


/*
 * The file of earlier versions: one JSON document.  A byte of invalid
 * UTF-8 that their writer let through becomes '?', or yajl would refuse
 * the whole document.
 */

static ngx_int_t
ngx_http_fanbase_state_legacy(ngx_http_fanbase_state_load_t *ld,
    u_char *buf, size_t size)
{
    int          too_deep;
    size_t       i, j;
    yajl_val     root, list;
    ngx_uint_t   line;
    const char  *type;
    static const char  *sections[] = {
        "transactions", "transaction", "idempotency", "idempotency",
        "webhooks", "webhook", "notifications", "notification"
    };

    fanbase_utf8_repair(buf, size);

    root = fanbase_json_tree(buf, size, &too_deep);

    if (root == NULL) {
        return NGX_DECLINED;
    }

    if (!YAJL_IS_OBJECT(root)
        || ngx_http_fanbase_state_uint(root, "version") != 1
        || ngx_http_fanbase_state_get(root, "transactions", yajl_t_array)
           == NULL)
    {
        yajl_tree_free(root);
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_NOTICE, ld->log, 0,
                  "fanbase: the state file \"%V\" is of version 1: it is "
                  "read, and written as version %d from the next save on",
                  &ld->mcf->state, NGX_HTTP_FANBASE_STATE_VERSION);

    line = 0;

    for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i += 2) {
        list = ngx_http_fanbase_state_get(root, sections[i], yajl_t_array);
        type = sections[i + 1];

        for (j = 0; list != NULL && j < list->u.array.len; j++) {
            /* the writer put each record on a line of its own */
            line++;

            if (!YAJL_IS_OBJECT(list->u.array.values[j])) {
                ngx_http_fanbase_state_skip(ld, line, "it is not an object");
                continue;
            }

            ngx_http_fanbase_state_record(ld, line, type,
                                          list->u.array.values[j]);
        }
    }

    yajl_tree_free(root);

    return NGX_OK;
}


static void
ngx_http_fanbase_state_record(ngx_http_fanbase_state_load_t *ld,
    ngx_uint_t line, const char *type, yajl_val v)
{
    ngx_int_t    rc;
    const char  *why;

    why = NULL;
    ld->line = line;

    if (ngx_strcmp(type, "transaction") == 0) {
        rc = ngx_http_fanbase_state_load_txn(ld, v, &why);
        ld->txns += (rc == NGX_OK && !ld->journal);

    } else if (ngx_strcmp(type, "idempotency") == 0) {
        rc = ngx_http_fanbase_state_load_key(ld, &ld->mcf->sh->idem, v, &why);
        ld->keys += (rc == NGX_OK);

    } else if (ngx_strcmp(type, "webhook") == 0) {
        rc = ngx_http_fanbase_state_load_key(ld, &ld->mcf->sh->hooks, v,
                                             &why);

    } else if (ngx_strcmp(type, "notification") == 0) {
        rc = ngx_http_fanbase_state_load_notice(ld, v, &why);
        ld->notices += (rc == NGX_OK);

    } else {
        rc = NGX_DECLINED;
        why = "its type is unknown";
    }

    if (rc == NGX_BUSY) {
        if (ld->full++ == 0) {
            ngx_log_error(NGX_LOG_ERR, ld->log, 0,
                          "fanbase: zone \"%V\" is too small for the state "
                          "file \"%V\": records from line %ui on are not "
                          "loaded", &ld->mcf->shm_zone->shm.name,
                          &ld->mcf->state, line);
        }

        return;
    }

    if (rc == NGX_DECLINED && why != NULL) {
        ngx_http_fanbase_state_skip(ld, line, why);
    }
}


/* a record that cannot be loaded: which, and why, never what it holds */

static void
ngx_http_fanbase_state_skip(ngx_http_fanbase_state_load_t *ld,
    ngx_uint_t line, const char *why)
{
    ld->skipped++;

    ngx_log_error(NGX_LOG_WARN, ld->log, 0,
                  "fanbase: state file \"%V\", line %ui: the record is "
                  "skipped: %s", &ld->file, line, why);
}


/*
 * NGX_OK, NGX_DECLINED: not valid ("why"), NGX_BUSY: the zone is full.
 * Every field is checked before anything goes into the zone.
 */

static ngx_int_t
ngx_http_fanbase_state_load_txn(ngx_http_fanbase_state_load_t *ld,
    yajl_val v, const char **why)
{
    size_t                         i;
    yajl_val                       events, ev;
    ngx_str_t                      target, status, event;
    ngx_int_t                      rc;
    const char                    *err;
    ngx_http_fanbase_txn_t        *t;
    ngx_http_fanbase_txn_saved_t   s;
    u_char                         tgt[NGX_HTTP_FANBASE_TARGET_LEN];
    static const char       *numbers[] = {
        "created", "updated", "deliver_by", "track_by", "version",
        "attempts", "max_events"
    };

    ngx_memzero(&s, sizeof(ngx_http_fanbase_txn_saved_t));

    if (ngx_http_fanbase_state_str(v, "id", &s.id) != NGX_OK
        || ngx_http_fanbase_id_valid_txn(&s.id) != NGX_OK)
    {
        *why = "a transaction without a valid id";
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_str(v, "target", &target) != NGX_OK
        || ngx_http_fanbase_state_hex(&target, tgt,
                                      NGX_HTTP_FANBASE_TARGET_LEN)
           != NGX_OK)
    {
        *why = "a transaction without a valid target";
        return NGX_DECLINED;
    }

    s.target = tgt;

    if (ngx_http_fanbase_state_scope(ld->mcf, v, tgt, NULL, &s.scope, why)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    s.status = FANBASE_STATUS_UNKNOWN;

    if (ngx_http_fanbase_state_str(v, "status", &status) == NGX_OK) {
        s.status = fanbase_json_status_code(status.data, status.len);

        if (status.len == sizeof("cancelled") - 1
            && ngx_strncmp(status.data, "cancelled", status.len) == 0)
        {
            s.status = FANBASE_STATUS_CANCELLED;
        }
    }

    if (s.status == FANBASE_STATUS_UNKNOWN) {
        *why = "a transaction without a known status";
        return NGX_DECLINED;
    }

    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        ev = ngx_http_fanbase_state_get(v, numbers[i], yajl_t_number);

        if (ev == NULL || !YAJL_IS_INTEGER(ev) || YAJL_GET_INTEGER(ev) < 0
            || (i >= 4 && YAJL_GET_INTEGER(ev) > 0xffffffff))
        {
            *why = "a transaction with a missing or invalid number";
            return NGX_DECLINED;
        }
    }

    if (ngx_http_fanbase_state_uint(v, "max_events") == 0) {
        *why = "a transaction without room for events";
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_get(v, "queue_id", yajl_t_string) != NULL
        && (ngx_http_fanbase_state_str(v, "queue_id", &s.queue_id) != NGX_OK
            || ngx_http_fanbase_id_valid(&s.queue_id) != NGX_OK))
    {
        *why = "a transaction with an invalid queue_id";
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_load_rid(v, &s.request_id) != NGX_OK) {
        *why = "a transaction with an invalid request_id";
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_get(v, "payload", yajl_t_string) != NULL) {
        (void) ngx_http_fanbase_state_str(v, "payload", &s.payload);

        if (fanbase_json_check_submission(s.payload.data, s.payload.len, &err)
            != FANBASE_JSON_OK)
        {
            *why = "a transaction whose payload is not a submission";
            return NGX_DECLINED;
        }
    }

    events = ngx_http_fanbase_state_get(v, "events", yajl_t_array);

    for (i = 0; events != NULL && i < events->u.array.len; i++) {
        if (!ngx_http_fanbase_state_valid_event(events->u.array.values[i])) {
            *why = "a transaction with an event that is not a JSON object";
            return NGX_DECLINED;
        }
    }

    s.created = ngx_http_fanbase_state_uint(v, "created");
    s.updated = ngx_http_fanbase_state_uint(v, "updated");
    s.deliver_by = ngx_http_fanbase_state_uint(v, "deliver_by");
    s.track_by = ngx_http_fanbase_state_uint(v, "track_by");
    s.version = (uint32_t) ngx_http_fanbase_state_uint(v, "version");
    s.attempts = (uint32_t) ngx_http_fanbase_state_uint(v, "attempts");
    s.max_events = (ngx_uint_t) ngx_min(ngx_http_fanbase_state_uint(v,
                                                              "max_events"),
                                        255);
    s.sent = (ngx_http_fanbase_state_get(v, "sent", yajl_t_true) != NULL);

    /* a journal's record replaces an older version of its transaction */

    if (ld->journal) {
        t = ngx_http_fanbase_txn_find_locked(ld->mcf->sh, s.scope, s.id.data,
                                             s.id.len);
        if (t != NULL) {
            /* "sent" changes no version: at a tie, a record with it wins */

            if (t->version > s.version
                || (t->version == s.version && (t->sent || !s.sent)))
            {
                return NGX_DONE;
            }

            ngx_http_fanbase_txn_forget_locked(ld->mcf, t);
        }

        ld->replayed++;
    }

    rc = ngx_http_fanbase_txn_restore_locked(ld->mcf, &s, &t);

    if (rc == NGX_DECLINED) {
        *why = "a transaction whose id is taken";
        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_BUSY;
    }

    /*
     * a transaction keeps its newest "max_events" events, and its count of
     * them (a u_char) must never pass 255: the older ones are not loaded
     */

    i = 0;

    if (events != NULL && events->u.array.len > ngx_max(s.max_events, 1)) {
        i = events->u.array.len - ngx_max(s.max_events, 1);
    }

    for ( /* void */ ; events != NULL && i < events->u.array.len; i++) {
        event.data = (u_char *) YAJL_GET_STRING(events->u.array.values[i]);
        event.len = ngx_strlen(event.data);

        /* once, not once an event: a full zone would flood the log */

        if (ngx_http_fanbase_txn_restore_event_locked(ld->mcf, t, &event)
            != NGX_OK
            && ld->lost++ == 0)
        {
            ngx_log_error(NGX_LOG_ERR, ld->log, 0,
                          "fanbase: zone \"%V\" is too small for the state "
                          "file \"%V\": events from line %ui on are not all "
                          "loaded", &ld->mcf->shm_zone->shm.name,
                          &ld->mcf->state, ld->line);
        }
    }

    ngx_http_fanbase_txn_restore_end_locked(ld->mcf, t);

    return NGX_OK;
}


/* an event: a JSON object, kept as the text it is */

static ngx_uint_t
ngx_http_fanbase_state_valid_event(yajl_val ev)
{
    int        too_deep;
    yajl_val   obj;
    u_char    *text;

    text = (u_char *) YAJL_GET_STRING(ev);

    if (text == NULL) {
        return 0;
    }

    obj = fanbase_json_tree(text, ngx_strlen(text), &too_deep);

    if (obj == NULL) {
        return 0;
    }

    too_deep = YAJL_IS_OBJECT(obj);
    yajl_tree_free(obj);

    return too_deep;
}


/* an Idempotency-Key (with digest and id) or a webhook message id */

static ngx_int_t
ngx_http_fanbase_state_load_key(ngx_http_fanbase_state_load_t *ld,
    ngx_http_fanbase_keys_t *keys, yajl_val v, const char **why)
{
    size_t     i;
    uint64_t   expires, scope;
    ngx_int_t  rc;
    ngx_str_t  key, digest, id;
    u_char     d[16], none[NGX_HTTP_FANBASE_TXN_ID_LEN];

    if (ngx_http_fanbase_state_str(v, "key", &key) != NGX_OK
        || key.len == 0 || key.len > NGX_HTTP_FANBASE_IDEM_KEY_MAX)
    {
        *why = "a key without a valid key";
        return NGX_DECLINED;
    }

    /* what the doors let in: visible ASCII */

    for (i = 0; i < key.len; i++) {
        if (key.data[i] <= 0x20 || key.data[i] >= 0x7f) {
            *why = "a key that is not visible ASCII";
            return NGX_DECLINED;
        }
    }

    ngx_memzero(d, sizeof(d));
    ngx_memzero(none, sizeof(none));

    id.data = none;

    if (keys == &ld->mcf->sh->idem
        && (ngx_http_fanbase_state_str(v, "digest", &digest) != NGX_OK
            || ngx_http_fanbase_state_hex(&digest, d, 16) != NGX_OK
            || ngx_http_fanbase_state_str(v, "id", &id) != NGX_OK
            || ngx_http_fanbase_id_valid_txn(&id) != NGX_OK))
    {
        *why = "an Idempotency-Key without a valid digest and id";
        return NGX_DECLINED;
    }

    expires = ngx_http_fanbase_state_uint(v, "expires");

    if (expires <= ld->now) {
        /* its window is over: nothing to keep, nothing to say */
        *why = NULL;
        return NGX_DECLINED;
    }

    /* a webhook's message id without a scope is not kept: only a replay */

    if (ngx_http_fanbase_state_scope(ld->mcf, v, NULL,
                                     (keys == &ld->mcf->sh->idem) ? id.data
                                                                  : NULL,
                                     &scope, why)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    rc = ngx_http_fanbase_keys_restore_locked(ld->mcf, keys, scope, &key, d,
                                              id.data, expires, ld->now);

    if (rc == NGX_DECLINED) {
        if (ld->journal) {
            /* the snapshot, or another journal, has it already */
            return NGX_DONE;
        }

        *why = "a key that is taken";
    }

    return rc;
}


static ngx_int_t
ngx_http_fanbase_state_load_notice(ngx_http_fanbase_state_load_t *ld,
    yajl_val v, const char **why)
{
    int                         too_deep;
    yajl_val                    obj;
    ngx_str_t                   id, body, rid;

    if (ngx_http_fanbase_state_str(v, "id", &id) != NGX_OK
        || ngx_http_fanbase_id_valid(&id) != NGX_OK
        || id.len > NGX_HTTP_FANBASE_NOTICE_ID_MAX)
    {
        *why = "a notification without a valid id";
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_str(v, "body", &body) != NGX_OK) {
        *why = "a notification without a body";
        return NGX_DECLINED;
    }

    if (ngx_http_fanbase_state_load_rid(v, &rid) != NGX_OK) {
        *why = "a notification with an invalid request_id";
        return NGX_DECLINED;
    }

    /* a transaction, as the site is sent it */

    obj = fanbase_json_tree(body.data, body.len, &too_deep);

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        if (obj != NULL) {
            yajl_tree_free(obj);
        }

        *why = "a notification whose body is not a JSON object";
        return NGX_DECLINED;
    }

    yajl_tree_free(obj);

    return ngx_http_fanbase_notice_restore_locked(ld->mcf, &id, &body, &rid,
                              ngx_http_fanbase_state_uint(v, "created"),
                              (uint32_t) ngx_http_fanbase_state_uint(v,
                                                                "attempts"));
}


/*
 * The credential set a record belongs to: its "scope".  A file written
 * before records had one gives a transaction the scope of the
 * "fanbase_submit async" location its target names, and an Idempotency-Key
 * that of its transaction (loaded first).  NGX_DECLINED: none is found
 * ("why" NULL: a webhook message id, silently forgotten).
 */

static ngx_int_t
ngx_http_fanbase_state_scope(ngx_http_fanbase_main_conf_t *mcf, yajl_val v,
    u_char *target, u_char *txn_id, uint64_t *scope, const char **why)
{
    ngx_str_t                      hex;
    ngx_uint_t                     i;
    ngx_http_fanbase_loc_conf_t  **lcfp;
    u_char                         buf[sizeof(uint64_t)];

    if (ngx_http_fanbase_state_get(v, "scope", yajl_t_string) != NULL) {
        (void) ngx_http_fanbase_state_str(v, "scope", &hex);

        if (ngx_http_fanbase_state_hex(&hex, buf, sizeof(uint64_t))
            != NGX_OK)
        {
            *why = "a record with an invalid scope";
            return NGX_DECLINED;
        }

        ngx_memcpy(scope, buf, sizeof(uint64_t));

        return NGX_OK;
    }

    lcfp = mcf->targets.elts;

    for (i = 0; i < mcf->targets.nelts; i++) {

        if ((target != NULL
             && ngx_memcmp(lcfp[i]->target, target,
                           NGX_HTTP_FANBASE_ROUTE_LEN)
                == 0)
            || (txn_id != NULL
                && ngx_http_fanbase_txn_find_locked(mcf->sh, lcfp[i]->scope,
                                                 txn_id,
                                                 NGX_HTTP_FANBASE_TXN_ID_LEN)
                   != NULL))
        {
            *scope = lcfp[i]->scope;
            return NGX_OK;
        }
    }

    *why = (target != NULL || txn_id != NULL)
           ? "a record without a scope that belongs to no credential set "
             "of this configuration"
           : NULL;

    return NGX_DECLINED;
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


/*
 * "request_id", optional (files written before request ids have none):
 * absent, or a string that is a valid request id; NGX_DECLINED otherwise
 */

static ngx_int_t
ngx_http_fanbase_state_load_rid(yajl_val obj, ngx_str_t *id)
{
    size_t  i;

    ngx_str_null(id);

    for (i = 0; i < obj->u.object.len; i++) {
        if (ngx_strcmp(obj->u.object.keys[i], "request_id") != 0) {
            continue;
        }

        if (!YAJL_IS_STRING(obj->u.object.values[i])) {
            return NGX_DECLINED;
        }

        id->data = (u_char *) YAJL_GET_STRING(obj->u.object.values[i]);
        id->len = ngx_strlen(id->data);

        return ngx_http_fanbase_id_valid_request(id);
    }

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


/*
 * The journal files of a state path (into "files", ngx_str_t paths, if
 * not NULL) and the newest generation among them.
 */

static ngx_int_t
ngx_http_fanbase_state_journals(ngx_str_t *state, ngx_pool_t *pool,
    ngx_array_t *files, uint64_t *max_gen)
{
    DIR            *d;
    uint64_t        gen;
    ngx_str_t       base, *path;
    struct dirent  *de;
    u_char          dir[NGX_MAX_PATH];

    *max_gen = 0;

    if (ngx_http_fanbase_state_dir(state, dir, sizeof(dir), &base) != NGX_OK) {
        return NGX_ERROR;
    }

    d = opendir((char *) dir);
    if (d == NULL) {
        return (ngx_errno == NGX_ENOENT) ? NGX_OK : NGX_ERROR;
    }

    while ((de = readdir(d)) != NULL) {
        if (ngx_http_fanbase_state_generation(&base, (u_char *) de->d_name, &gen)
            != NGX_OK)
        {
            continue;
        }

        *max_gen = ngx_max(*max_gen, gen);

        if (files == NULL) {
            continue;
        }

        path = ngx_array_push(files);
        if (path == NULL) {
            closedir(d);
            return NGX_ERROR;
        }

        path->len = ngx_strlen(dir) + 1 + ngx_strlen(de->d_name);
        path->data = ngx_pnalloc(pool, path->len + 1);
        if (path->data == NULL) {
            closedir(d);
            return NGX_ERROR;
        }

        (void) ngx_sprintf(path->data, "%s/%s%Z", dir, de->d_name);
    }

    closedir(d);

    return NGX_OK;
}


/*
 * Removes the journal files of generations below "below": the snapshot
 * that moved the generation on is on disk and holds what they hold.  In
 * the thread that wrote the snapshot, or the master at its exit.
 */

static void
ngx_http_fanbase_state_prune(ngx_str_t *state, uint64_t below)
{
    DIR            *d;
    uint64_t        gen;
    ngx_str_t       base;
    struct dirent  *de;
    u_char          dir[NGX_MAX_PATH], path[NGX_MAX_PATH];

    if (ngx_http_fanbase_state_dir(state, dir, sizeof(dir), &base) != NGX_OK) {
        return;
    }

    d = opendir((char *) dir);
    if (d == NULL) {
        return;
    }

    while ((de = readdir(d)) != NULL) {
        if (ngx_http_fanbase_state_generation(&base, (u_char *) de->d_name, &gen)
            != NGX_OK
            || gen >= below
            || ngx_strlen(dir) + 1 + ngx_strlen(de->d_name) + 1 > sizeof(path))
        {
            continue;
        }

        (void) ngx_sprintf(path, "%s/%s%Z", dir, de->d_name);
        (void) ngx_delete_file(path);
    }

    closedir(d);
}


/* "<base>.journal.<generation>.<pid>": NGX_OK and its generation */

static ngx_int_t
ngx_http_fanbase_state_generation(ngx_str_t *base, u_char *name, uint64_t *gen)
{
    u_char  *p;

    if (ngx_strncmp(name, base->data, base->len) != 0
        || ngx_strncmp(name + base->len, NGX_HTTP_FANBASE_STATE_JOURNAL,
                       sizeof(NGX_HTTP_FANBASE_STATE_JOURNAL) - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    p = name + base->len + sizeof(NGX_HTTP_FANBASE_STATE_JOURNAL) - 1;

    if (*p < '0' || *p > '9') {
        return NGX_DECLINED;
    }

    for (*gen = 0; *p >= '0' && *p <= '9'; p++) {
        if (*gen >= ((uint64_t) 1 << 59)) {
            return NGX_DECLINED;
        }

        *gen = *gen * 10 + (*p - '0');
    }

    if (*p++ != '.' || *p < '0' || *p > '9') {
        return NGX_DECLINED;
    }

    while (*p >= '0' && *p <= '9') {
        p++;
    }

    return (*p == '\0') ? NGX_OK : NGX_DECLINED;
}
