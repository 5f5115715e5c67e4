
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The journal of "fanbase_zone ... state=PATH": every change of a
 * transaction, as the state file's own record of it (state.c renders
 * it), appended by the worker that made the change to a file of its own,
 * "PATH.journal.<generation>.<pid>".  The records are rendered into a
 * buffer under the zone's lock (the lock the change already holds); the
 * buffer is written and fdatasync()ed by nginx's thread pool "default",
 * one write and one sync for every record that came while the last one
 * was on its way: a group commit.  A caller that must know its record is
 * on disk (fanbase_state_sync on: a 202, and a delivery's "sent" mark
 * before its POST) waits for it with ngx_http_fanbase_journal_wait().
 *
 * The state file is the snapshot the journal is replayed on: when one
 * is taken (state.c), the zone's journal generation moves on under the
 * lock, so every record in a file of an older generation was made before
 * the snapshot's rendering and is in it; once the snapshot is on disk,
 * those files are removed.  A record put in a file of a newer generation
 * than it needs is kept longer, never lost.  Loading reads the snapshot,
 * then every journal file, and keeps each transaction's newest version;
 * a record cut short by a crash is the last of its file and is skipped.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_logsum.h"
#include "ngx_http_fanbase_state.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_journal.h"


#define NGX_HTTP_FANBASE_JOURNAL_MIN       65536

/* a failing write is said at once, then counted and said once a minute */
#define NGX_HTTP_FANBASE_JOURNAL_SAY_EVERY 60000


typedef struct {
    u_char                        *data;
    size_t                         len;
    size_t                         size;
    uint64_t                       gen;        /* the newest of its records */
    uint64_t                       last;       /* its last record's number */
} ngx_http_fanbase_journal_buf_t;


typedef struct {
    ngx_http_fanbase_main_conf_t  *mcf;
    ngx_http_fanbase_journal_buf_t bufs[2];
    ngx_http_fanbase_journal_buf_t *pending;   /* records are added here */
    ngx_http_fanbase_journal_buf_t *writing;   /* on its way to the disk */
    uint64_t                       seq;        /* the last record's number */
    uint64_t                       durable;    /* synced up to this one */
    ngx_uint_t                     lost;       /* records with no room */
    ngx_queue_t                    waiters;    /* store ops, by number */
    ngx_event_t                    flush;
    ngx_connection_t               dummy;

    /* the file, touched by the writing alone (in a thread) */
    ngx_fd_t                       fd;
    uint64_t                       fd_gen;
    ngx_err_t                      err;
    const char                    *failed;     /* the call that failed */
    u_char                         path[NGX_MAX_PATH];

    ngx_http_fanbase_logsum_t      failures;
    unsigned                       busy:1;
} ngx_http_fanbase_journal_t;


static ngx_http_fanbase_journal_buf_t *ngx_http_fanbase_journal_room(
    size_t size);
static void ngx_http_fanbase_journal_flush(ngx_event_t *ev);
static void ngx_http_fanbase_journal_write(void);
static void ngx_http_fanbase_journal_written(ngx_log_t *log);
#if (NGX_THREADS)
static void ngx_http_fanbase_journal_thread(void *data, ngx_log_t *log);
static void ngx_http_fanbase_journal_thread_done(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_fanbase_journal_open(void);
static uint64_t ngx_http_fanbase_journal_append_locked(
    ngx_http_fanbase_txn_t *t, ngx_http_fanbase_idem_t *k);


static ngx_http_fanbase_journal_t  ngx_http_fanbase_journal;

#if (NGX_THREADS)
static ngx_thread_task_t          *ngx_http_fanbase_journal_task;
#endif


ngx_int_t
ngx_http_fanbase_journal_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_http_fanbase_journal_t  *j;

    j = &ngx_http_fanbase_journal;

    j->fd = NGX_INVALID_FILE;
    ngx_queue_init(&j->waiters);

    if (mcf->state.len == 0) {
        return NGX_OK;
    }

    j->pending = &j->bufs[0];
    j->writing = &j->bufs[1];

    ngx_http_fanbase_logsum_init(&j->failures, "failed write of the journal",
                                 "failed writes of the journal", NGX_LOG_ERR,
                                 NGX_HTTP_FANBASE_JOURNAL_SAY_EVERY,
                                 cycle->log);

    j->dummy.fd = (ngx_socket_t) -1;
    j->flush.data = &j->dummy;
    j->flush.handler = ngx_http_fanbase_journal_flush;
    j->flush.log = cycle->log;

#if (NGX_THREADS)
    if (mcf->state_pool != NULL) {
        ngx_http_fanbase_journal_task = ngx_thread_task_alloc(cycle->pool, 0);
        if (ngx_http_fanbase_journal_task == NULL) {
            return NGX_ERROR;
        }

        ngx_http_fanbase_journal_task->handler =
                                          ngx_http_fanbase_journal_thread;
        ngx_http_fanbase_journal_task->event.handler =
                                          ngx_http_fanbase_journal_thread_done;
        ngx_http_fanbase_journal_task->event.data =
                                          ngx_http_fanbase_journal_task;
        ngx_http_fanbase_journal_task->event.log = cycle->log;
    }
#endif

    /* set last: from now on, changes are journaled */

    j->mcf = mcf;
    ngx_http_fanbase_txn_journal = ngx_http_fanbase_journal_append_locked;

    return NGX_OK;
}


/*
 * A worker that leaves: what is not written yet is written now, in the
 * worker (it serves nothing more).  A write still in a thread is left to
 * it; the master's last snapshot, after its workers are gone, has both.
 */

void
ngx_http_fanbase_journal_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_http_fanbase_journal_t  *j;

    j = &ngx_http_fanbase_journal;

    if (j->mcf == NULL) {
        return;
    }

    if (!j->busy && j->pending->len) {
        ngx_http_fanbase_journal_buf_t  *b;

        b = j->writing;
        j->writing = j->pending;
        j->pending = b;

        ngx_http_fanbase_journal_write();
        ngx_http_fanbase_journal_written(cycle->log);
    }

    if (j->flush.posted) {
        ngx_delete_posted_event(&j->flush);
    }

    if (!j->busy) {
        if (j->fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(j->fd);
            j->fd = NGX_INVALID_FILE;
        }

        for (i = 0; i < 2; i++) {
            if (j->bufs[i].data != NULL) {
                ngx_free(j->bufs[i].data);
                j->bufs[i].data = NULL;
            }
        }
    }

    ngx_http_fanbase_txn_journal = NULL;
    j->mcf = NULL;
}


/*
 * ngx_http_fanbase_txn_journal (the zone is locked): the records of "t"
 * and of "k" (an Idempotency-Key claimed with a new transaction), each if
 * not NULL, appended; the number of the last record.  A record that finds
 * no memory is lost to the journal, not to the zone: the next snapshot
 * has it.
 */

static uint64_t
ngx_http_fanbase_journal_append_locked(ngx_http_fanbase_txn_t *t,
    ngx_http_fanbase_idem_t *k)
{
    u_char                          *p;
    ngx_http_fanbase_journal_t      *j;
    ngx_http_fanbase_journal_buf_t  *b;

    j = &ngx_http_fanbase_journal;

    if (t != NULL) {
        b = ngx_http_fanbase_journal_room(ngx_http_fanbase_state_txn_size(t));

        if (b != NULL) {
            p = ngx_http_fanbase_state_txn(b->data + b->len, j->mcf, t);
            b->len = p - b->data;
            b->last = ++j->seq;
        }
    }

    if (k != NULL) {
        b = ngx_http_fanbase_journal_room(ngx_http_fanbase_state_key_size(k));

        if (b != NULL) {
            p = ngx_http_fanbase_state_key(b->data + b->len, k, 1);
            b->len = p - b->data;
            b->last = ++j->seq;
        }
    }

    return j->seq;
}


/*
 * Room for a record of "size" bytes in the buffer being filled; the
 * buffer takes the zone's generation, and is on its way at the end of
 * this turn of the event loop.  NULL: no memory (the record is lost to
 * the journal, not to the zone: the next snapshot has it).
 */

static ngx_http_fanbase_journal_buf_t *
ngx_http_fanbase_journal_room(size_t size)
{
    u_char                          *data;
    size_t                           want;
    ngx_http_fanbase_journal_t      *j;
    ngx_http_fanbase_journal_buf_t  *b;

    j = &ngx_http_fanbase_journal;
    b = j->pending;

    if (b->len + size > b->size) {
        want = ngx_max(ngx_max(2 * b->size, b->len + size),
                       NGX_HTTP_FANBASE_JOURNAL_MIN);

        data = ngx_alloc(want, ngx_cycle->log);
        if (data == NULL) {
            j->lost++;
            return NULL;
        }

        if (b->data != NULL) {
            ngx_memcpy(data, b->data, b->len);
            ngx_free(b->data);
        }

        b->data = data;
        b->size = want;
    }

    b->gen = ngx_max(b->gen, j->mcf->sh->journal_gen);

    if (!j->flush.posted) {
        ngx_post_event(&j->flush, &ngx_posted_events);
    }

    return b;
}


/*
 * A store operation answers once the record "seq" is on disk: NGX_AGAIN
 * and op->done later (with "rc", or NGX_HTTP_FANBASE_NOT_DURABLE when the
 * journal could not be written), or at once.
 */

ngx_int_t
ngx_http_fanbase_journal_wait(ngx_http_fanbase_store_op_t *op, uint64_t seq,
    ngx_int_t rc)
{
    ngx_http_fanbase_journal_t  *j;

    j = &ngx_http_fanbase_journal;

    if (j->mcf == NULL) {
        return rc;
    }

    if (seq == 0) {
        return NGX_HTTP_FANBASE_NOT_DURABLE;
    }

    if (seq <= j->durable) {
        return rc;
    }

    op->rc = rc;
    op->seq = seq;
    op->journal = 1;
    op->pending = 1;

    ngx_queue_insert_tail(&j->waiters, &op->queue);

    return NGX_AGAIN;
}


void
ngx_http_fanbase_journal_cancel(ngx_http_fanbase_store_op_t *op)
{
    if (op->journal) {
        ngx_queue_remove(&op->queue);
        op->journal = 0;
    }
}


static void
ngx_http_fanbase_journal_flush(ngx_event_t *ev)
{
    ngx_http_fanbase_journal_t      *j;
    ngx_http_fanbase_journal_buf_t  *b;

    j = &ngx_http_fanbase_journal;

    if (j->mcf == NULL || j->busy || j->pending->len == 0) {
        return;
    }

    b = j->writing;
    j->writing = j->pending;
    j->pending = b;
    j->busy = 1;

#if (NGX_THREADS)

    if (ngx_http_fanbase_journal_task != NULL
        && ngx_thread_task_post(j->mcf->state_pool,
                                ngx_http_fanbase_journal_task)
           == NGX_OK)
    {
        return;
    }

    /* no thread pool, or its queue is full: written here */

#endif

    ngx_http_fanbase_journal_write();
    ngx_http_fanbase_journal_written(ev->log);
}


#if (NGX_THREADS)

static void
ngx_http_fanbase_journal_thread(void *data, ngx_log_t *log)
{
    ngx_http_fanbase_journal_write();
}


static void
ngx_http_fanbase_journal_thread_done(ngx_event_t *ev)
{
    ngx_http_fanbase_journal_written(ev->log);
}

#endif


/* the writing alone: it may run in a thread, so it logs nothing */

static void
ngx_http_fanbase_journal_write(void)
{
    u_char                          *p;
    size_t                           left;
    ssize_t                          n;
    ngx_http_fanbase_journal_t      *j;
    ngx_http_fanbase_journal_buf_t  *b;

    j = &ngx_http_fanbase_journal;
    b = j->writing;

    j->failed = NULL;
    j->err = 0;

    if ((j->fd == NGX_INVALID_FILE || j->fd_gen != b->gen)
        && ngx_http_fanbase_journal_open() != NGX_OK)
    {
        return;
    }

    for (p = b->data, left = b->len; left; p += n, left -= n) {
        n = write(j->fd, p, left);

        if (n == -1) {
            if (ngx_errno == NGX_EINTR) {
                n = 0;
                continue;
            }

            j->err = ngx_errno;
            j->failed = "write()";
            return;
        }
    }

    if (fdatasync(j->fd) == -1) {
        j->err = ngx_errno;
        j->failed = "fdatasync()";
    }
}


/*
 * This worker's file of the buffer's generation, made if it is new: its
 * header, and its name made durable in the directory.
 */

static ngx_int_t
ngx_http_fanbase_journal_open(void)
{
    ngx_fd_t                         fd;
    ngx_str_t                        base;
    ngx_file_info_t                  fi;
    ngx_http_fanbase_journal_t      *j;
    ngx_http_fanbase_journal_buf_t  *b;
    u_char                           dir[NGX_MAX_PATH];

    j = &ngx_http_fanbase_journal;
    b = j->writing;

    if (j->fd != NGX_INVALID_FILE) {
        (void) ngx_close_file(j->fd);
        j->fd = NGX_INVALID_FILE;
    }

    if (j->mcf->state.len + sizeof(NGX_HTTP_FANBASE_STATE_JOURNAL)
        + 2 * NGX_INT64_LEN + 2 > NGX_MAX_PATH)
    {
        j->err = NGX_ENAMETOOLONG;
        j->failed = ngx_open_file_n;
        return NGX_ERROR;
    }

    (void) ngx_sprintf(j->path, "%V" NGX_HTTP_FANBASE_STATE_JOURNAL "%uL.%P%Z",
                       &j->mcf->state, b->gen, ngx_pid);

    /* payloads hold buyer data: the file is for nginx's user alone */

    fd = ngx_open_file(j->path, NGX_FILE_APPEND, NGX_FILE_CREATE_OR_OPEN,
                       NGX_FILE_OWNER_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        j->err = ngx_errno;
        j->failed = ngx_open_file_n;
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        j->err = ngx_errno;
        j->failed = ngx_fd_info_n;
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_file_size(&fi) == 0) {
        if (write(fd, NGX_HTTP_FANBASE_STATE_HEADER,
                  sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1)
            != (ssize_t) sizeof(NGX_HTTP_FANBASE_STATE_HEADER) - 1)
        {
            j->err = ngx_errno;
            j->failed = "write()";
            (void) ngx_close_file(fd);
            return NGX_ERROR;
        }

        /* a new name: durable in its directory before a record counts */

        if (ngx_http_fanbase_state_dir(&j->mcf->state, dir, sizeof(dir),
                                       &base)
            == NGX_OK)
        {
            ngx_fd_t  dfd;

            dfd = ngx_open_file(dir, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

            if (dfd == NGX_INVALID_FILE || fsync(dfd) == -1) {
                j->err = ngx_errno;
                j->failed = "fsync()";

                if (dfd != NGX_INVALID_FILE) {
                    (void) ngx_close_file(dfd);
                }

                (void) ngx_close_file(fd);
                return NGX_ERROR;
            }

            (void) ngx_close_file(dfd);
        }
    }

    j->fd = fd;
    j->fd_gen = b->gen;

    return NGX_OK;
}


/* the writing's outcome, in the event loop: the waiters are answered */

static void
ngx_http_fanbase_journal_written(ngx_log_t *log)
{
    ngx_int_t                        rc;
    ngx_str_t                        path;
    ngx_queue_t                     *q, *next;
    ngx_http_fanbase_journal_t      *j;
    ngx_http_fanbase_journal_buf_t  *b;
    ngx_http_fanbase_store_op_t     *op;

    j = &ngx_http_fanbase_journal;
    b = j->writing;

    j->busy = 0;

    if (j->mcf == NULL) {
        /* the worker left while the thread wrote */
        return;
    }

    if (j->failed != NULL) {
        path.data = j->path;
        path.len = ngx_strlen(j->path);

        if (ngx_http_fanbase_logsum_count(&j->failures, &path, j->failed)
            == NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, log, j->err,
                          "fanbase: cannot write the journal \"%s\": %s "
                          "failed; the changes stay in the zone for the "
                          "next snapshot (the failed writes that follow are "
                          "counted, and said once a minute)",
                          j->path, j->failed);
        }

        /* opened again next time */

        if (j->fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(j->fd);
            j->fd = NGX_INVALID_FILE;
        }

        rc = NGX_HTTP_FANBASE_NOT_DURABLE;

    } else {
        if (ngx_http_fanbase_logsum_end(&j->failures)) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "fanbase: the journal \"%s\" is written again",
                          j->path);
        }

        j->durable = b->last;
        (void) ngx_atomic_fetch_add(&j->mcf->sh->journal_bytes, b->len);

        rc = NGX_OK;
    }

    /* every waiter whose record was in this buffer */

    for (q = ngx_queue_head(&j->waiters);
         q != ngx_queue_sentinel(&j->waiters);
         q = next)
    {
        next = ngx_queue_next(q);
        op = ngx_queue_data(q, ngx_http_fanbase_store_op_t, queue);

        if (op->seq > b->last) {
            continue;
        }

        ngx_queue_remove(q);
        op->journal = 0;
        op->pending = 0;

        if (rc != NGX_OK) {
            op->rc = rc;
        }

        op->done(op);

        /* op->done may have answered and freed more: look from the head */
        next = ngx_queue_head(&j->waiters);
    }

    b->len = 0;
    b->gen = 0;

    if (j->pending->len && !j->flush.posted) {
        ngx_post_event(&j->flush, &ngx_posted_events);
    }
}
