
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The state file loader (ngx_http_fanbase_state.c) under libFuzzer: each
 * input is written to a file, which the module's own zone init callback
 * loads into a fresh zone, as the master does at start.  Linked with
 * every object of an nginx built with the module (t/fuzz/link-nginx.sh).
 *
 * Not crashing is not enough.  The oracle:
 *
 *   - no line at "crit" or worse while loading (a slab allocator's
 *     complaint, a file that cannot be read);
 *   - the zone is consistent: every transaction is in its hash and in the
 *     queue its status says, its events are counted right, every key is
 *     found by its hash, the counters match the lists;
 *   - the loaded zone is saved as the master saves it when nginx stops,
 *     and that file, loaded into a second, larger zone, loads without a
 *     single "warn" or worse (nothing skipped, nothing cut short, nothing
 *     left for want of room: the module's own output is always readable
 *     whole) and gives the same counts;
 *   - saved again, it is the same file, line for line (in any order).
 *
 * Every failure prints what failed and aborts.  FANBASE_FUZZ_LOG=1 in the
 * environment copies the error log to stderr.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_keys.h"
#include "ngx_http_fanbase_state.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_zone.h"


/* the smallest zone "fanbase_zone" takes is 8 pages: this one fills up */
#define FUZZ_ZONE_SIZE      (64 * 1024)

/* the second zone: room for whatever the first held, in any order */
#define FUZZ_ZONE2_SIZE     (4 * FUZZ_ZONE_SIZE)

/* "now", fixed so that an input always does the same: 2026-01-01 */
#define FUZZ_NOW            1767225600


typedef struct {
    ngx_shm_zone_t                 shm_zone;
    ngx_http_fanbase_main_conf_t   mcf;
} fuzz_zone_t;


typedef struct {
    ngx_uint_t                     txns;
    ngx_uint_t                     events;
    ngx_uint_t                     keys;
    ngx_uint_t                     hooks;
    ngx_uint_t                     notices;
} fuzz_counts_t;


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
static void fuzz_init(void);
static void fuzz_log_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf,
    size_t len);
static void fuzz_fail(const char *what);
static void fuzz_write_file(u_char *path, const uint8_t *data, size_t size);
static u_char *fuzz_read_file(u_char *path, size_t *size);
static void fuzz_zone_open(fuzz_zone_t *z, void *addr, size_t size,
    u_char *path);
static void fuzz_zone_close(fuzz_zone_t *z);
static void fuzz_zone_check(fuzz_zone_t *z, fuzz_counts_t *c);
static ngx_uint_t fuzz_keys_check(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys);
static void fuzz_save(fuzz_zone_t *z, u_char *path);
static void fuzz_same_lines(u_char *a, u_char *b);
static ngx_str_t *fuzz_lines(u_char *buf, size_t size, ngx_uint_t *n);
static int fuzz_line_cmp(const void *one, const void *two);


static ngx_uint_t       fuzz_ready;
static ngx_uint_t       fuzz_verbose;
static ngx_cycle_t      fuzz_cycle;
static ngx_log_t        fuzz_log;
static ngx_open_file_t  fuzz_log_file;
static const char      *fuzz_phase;

/* lines at "warn" or worse in this phase, the first of them kept */
static ngx_uint_t       fuzz_complaints;
static u_char           fuzz_complaint[NGX_MAX_ERROR_STR + 1];

static u_char           fuzz_in[NGX_MAX_PATH];
static u_char           fuzz_bad[NGX_MAX_PATH];
static u_char           fuzz_out[NGX_MAX_PATH];
static u_char           fuzz_out2[NGX_MAX_PATH];

/*
 * the zones' memory, kept from one input to the next: a new mapping each
 * time would cost more in page faults than all the rest
 */
static void            *fuzz_mem1;
static void            *fuzz_mem2;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_zone_t    z1, z2;
    fuzz_counts_t  c1, c2;

    if (!fuzz_ready) {
        fuzz_init();
    }

    fuzz_write_file(fuzz_in, data, size);

    /* the input: anything may be said about it, short of "crit" */

    fuzz_phase = "loading the input";
    fuzz_complaints = 0;

    fuzz_zone_open(&z1, fuzz_mem1, FUZZ_ZONE_SIZE, fuzz_in);

    (void) ngx_delete_file(fuzz_in);
    (void) ngx_delete_file(fuzz_bad);

    fuzz_phase = "checking the zone";
    fuzz_zone_check(&z1, &c1);

    /* what the module makes of it: saved, loaded, saved again */

    fuzz_phase = "saving the zone";
    fuzz_complaints = 0;
    fuzz_save(&z1, fuzz_out);
    fuzz_zone_close(&z1);

    fuzz_phase = "loading the saved file";
    fuzz_zone_open(&z2, fuzz_mem2, FUZZ_ZONE2_SIZE, fuzz_out);

    if (fuzz_complaints) {
        fuzz_fail("the module's own file did not load cleanly");
    }

    fuzz_phase = "checking the second zone";
    fuzz_zone_check(&z2, &c2);

    if (ngx_memcmp(&c1, &c2, sizeof(fuzz_counts_t)) != 0) {
        (void) fprintf(stderr, "state_fuzz: first zone: %lu transactions, "
                       "%lu events, %lu keys, %lu webhook ids, "
                       "%lu notifications; second zone: %lu, %lu, %lu, %lu, "
                       "%lu\n",
                       (unsigned long) c1.txns, (unsigned long) c1.events,
                       (unsigned long) c1.keys, (unsigned long) c1.hooks,
                       (unsigned long) c1.notices, (unsigned long) c2.txns,
                       (unsigned long) c2.events, (unsigned long) c2.keys,
                       (unsigned long) c2.hooks, (unsigned long) c2.notices);
        fuzz_fail("the saved file did not load what was saved");
    }

    fuzz_phase = "saving the second zone";
    fuzz_save(&z2, fuzz_out2);
    fuzz_zone_close(&z2);

    fuzz_phase = "comparing the saved files";
    fuzz_same_lines(fuzz_out, fuzz_out2);

    (void) ngx_delete_file(fuzz_out);
    (void) ngx_delete_file(fuzz_out2);

    return 0;
}


/* once: what nginx's main() and ngx_os_init() set up before a zone */

static void
fuzz_init(void)
{
    u_char      *dir;
    ngx_uint_t   n;
    ngx_time_t  *tp;

    fuzz_verbose = (getenv("FANBASE_FUZZ_LOG") != NULL);

    ngx_pid = ngx_getpid();
    ngx_process = NGX_PROCESS_SINGLE;
    ngx_test_config = 0;

    ngx_pagesize = getpagesize();
    ngx_cacheline_size = NGX_CPU_CACHE_LINE;
    for (n = ngx_pagesize; n >>= 1; ngx_pagesize_shift++) { /* void */ }

    ngx_time_init();

    tp = (ngx_time_t *) ngx_cached_time;
    tp->sec = FUZZ_NOW;
    tp->msec = 0;

    /*
     * the error log: every line the module logs at "info" or worse is
     * formatted, and none reaches the terminal
     */

    fuzz_log_file.fd = ngx_open_file("/dev/null", NGX_FILE_WRONLY,
                                     NGX_FILE_OPEN, 0);
    if (fuzz_log_file.fd == NGX_INVALID_FILE) {
        fuzz_fail("cannot open /dev/null");
    }

    fuzz_log.file = &fuzz_log_file;
    fuzz_log.log_level = NGX_LOG_INFO;
    fuzz_log.writer = fuzz_log_writer;
    ngx_use_stderr = 0;

    fuzz_cycle.log = &fuzz_log;
    ngx_cycle = &fuzz_cycle;

    /* ngx_crc32_table_init() may allocate, logging to ngx_cycle->log */

    ngx_slab_sizes_init();

    if (ngx_crc32_table_init() != NGX_OK) {
        fuzz_fail("ngx_crc32_table_init() failed");
    }

    if (posix_memalign(&fuzz_mem1, ngx_pagesize, FUZZ_ZONE_SIZE) != 0
        || posix_memalign(&fuzz_mem2, ngx_pagesize, FUZZ_ZONE2_SIZE) != 0)
    {
        fuzz_fail("no memory for the zones");
    }

    /* files of this process alone, in memory where there is /dev/shm */

    dir = (u_char *) "/dev/shm";

    if (access((char *) dir, W_OK) != 0) {
        dir = (u_char *) getenv("TMPDIR");

        if (dir == NULL || *dir == '\0') {
            dir = (u_char *) "/tmp";
        }
    }

    (void) ngx_snprintf(fuzz_in, NGX_MAX_PATH - 1,
                        "%s/fanbase-fuzz.%P.state%Z", dir, ngx_pid);
    (void) ngx_snprintf(fuzz_bad, NGX_MAX_PATH - 1, "%s.bad%Z", fuzz_in);
    (void) ngx_snprintf(fuzz_out, NGX_MAX_PATH - 1, "%s.out%Z", fuzz_in);
    (void) ngx_snprintf(fuzz_out2, NGX_MAX_PATH - 1, "%s.out2%Z", fuzz_in);

    fuzz_ready = 1;
}


static void
fuzz_log_writer(ngx_log_t *log, ngx_uint_t level, u_char *buf, size_t len)
{
    if (fuzz_verbose) {
        (void) ngx_write_fd(ngx_stderr, buf, len);
    }

    if (level > NGX_LOG_WARN) {
        return;
    }

    if (fuzz_complaints++ == 0) {
        ngx_memcpy(fuzz_complaint, buf, len);
        fuzz_complaint[len] = '\0';
    }

    if (level <= NGX_LOG_CRIT) {
        fuzz_fail("a line at \"crit\" or worse");
    }
}


static void
fuzz_fail(const char *what)
{
    (void) fprintf(stderr, "state_fuzz: %s: %s\n", fuzz_phase, what);

    if (fuzz_complaints) {
        (void) fprintf(stderr, "state_fuzz: %lu lines at \"warn\" or worse, "
                       "the first: %s", (unsigned long) fuzz_complaints,
                       fuzz_complaint);
    }

    abort();
}


static void
fuzz_write_file(u_char *path, const uint8_t *data, size_t size)
{
    ssize_t   n;
    ngx_fd_t  fd;

    fd = ngx_open_file(path, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);
    if (fd == NGX_INVALID_FILE) {
        fuzz_fail("cannot create the input file");
    }

    n = (size == 0) ? 0 : ngx_write_fd(fd, (u_char *) data, size);

    if (ngx_close_file(fd) == NGX_FILE_ERROR || n == -1 || (size_t) n != size)
    {
        fuzz_fail("cannot write the input file");
    }
}


static u_char *
fuzz_read_file(u_char *path, size_t *size)
{
    u_char           *buf;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_file_info_t   fi;

    fd = ngx_open_file(path, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        fuzz_fail("a saved file is missing");
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        fuzz_fail("cannot stat a saved file");
    }

    *size = (size_t) ngx_file_size(&fi);

    buf = malloc(*size + 1);
    if (buf == NULL) {
        fuzz_fail("no memory");
    }

    n = ngx_read_fd(fd, buf, *size);
    (void) ngx_close_file(fd);

    if (n == -1 || (size_t) n != *size) {
        fuzz_fail("cannot read a saved file");
    }

    return buf;
}


/*
 * A new zone, as nginx makes it: zeroed memory, as a new mapping is, its
 * slab pool set up as ngx_init_zone_pool() does, then the module's init
 * callback, which loads the state file "path" into it.
 */

static void
fuzz_zone_open(fuzz_zone_t *z, void *addr, size_t size, u_char *path)
{
    ngx_slab_pool_t  *sp;

    ngx_memzero(z, sizeof(fuzz_zone_t));
    ngx_memzero(addr, size);

    z->shm_zone.shm.addr = addr;
    z->shm_zone.shm.size = size;
    ngx_str_set(&z->shm_zone.shm.name, "fanbase");
    z->shm_zone.shm.log = &fuzz_log;
    z->shm_zone.init = ngx_http_fanbase_zone_init;
    z->mcf.parts = ngx_http_fanbase_zone_parts;
    z->shm_zone.data = &z->mcf;
    z->shm_zone.tag = &ngx_http_fanbase_module;

    sp = addr;
    sp->end = (u_char *) addr + size;
    sp->min_shift = 3;
    sp->addr = addr;

    if (ngx_shmtx_create(&sp->mutex, &sp->lock, NULL) != NGX_OK) {
        fuzz_fail("ngx_shmtx_create() failed");
    }

    ngx_slab_init(sp);

    /* "fanbase_zone zone=fanbase:64k state=PATH prefault=off" */

    z->mcf.shm_zone = &z->shm_zone;
    z->mcf.state.data = path;
    z->mcf.state.len = ngx_strlen(path);
    z->mcf.prefault = 0;

    if (z->shm_zone.init(&z->shm_zone, NULL) != NGX_OK) {
        fuzz_fail("the zone's init failed");
    }
}


static void
fuzz_zone_close(fuzz_zone_t *z)
{
    ngx_slab_pool_t  *sp;

    sp = (ngx_slab_pool_t *) z->shm_zone.shm.addr;

    ngx_shmtx_destroy(&sp->mutex);
}


/* the zone's invariants, and what it holds */

static void
fuzz_zone_check(fuzz_zone_t *z, fuzz_counts_t *c)
{
    ngx_uint_t                     i, n;
    ngx_queue_t                   *q, *e, *queues[2];
    ngx_http_fanbase_txn_t        *t;
    ngx_http_fanbase_shctx_t      *sh;
    ngx_http_fanbase_main_conf_t  *mcf;

    ngx_memzero(c, sizeof(fuzz_counts_t));

    mcf = &z->mcf;
    sh = mcf->sh;
    queues[0] = &sh->txn_live;
    queues[1] = &sh->txn_done;

    ngx_shmtx_lock(&mcf->shpool->mutex);

    for (i = 0; i < 2; i++) {
        for (q = ngx_queue_head(queues[i]);
             q != ngx_queue_sentinel(queues[i]);
             q = ngx_queue_next(q))
        {
            t = ngx_queue_data(q, ngx_http_fanbase_txn_t, queue);
            c->txns++;

            /* the evictable queue: ended ones and those only webhooks made */

            if ((i == 0 && fanbase_status_terminal(t->status))
                || (i == 1 && !fanbase_status_terminal(t->status)
                    && t->data != NULL))
            {
                fuzz_fail("a transaction in the queue of another status");
            }

            if (ngx_http_fanbase_txn_find_locked(mcf->sh, t->scope, t->id,
                                                NGX_HTTP_FANBASE_TXN_ID_LEN)
                != t)
            {
                fuzz_fail("a transaction that its id does not find");
            }

            /* delivered: a webhook naming its queue id must find it */

            if (t->queue_id_len
                && (t->qid == NULL || t->qid->txn != t
                    || t->qid->len != t->queue_id_len
                    || ngx_memcmp(t->qid->queue_id, t->data,
                                  t->queue_id_len) != 0))
            {
                fuzz_fail("a delivered transaction its queue id does not "
                          "find");
            }

            n = t->accepted;

            for (e = ngx_queue_head(&t->events);
                 e != ngx_queue_sentinel(&t->events);
                 e = ngx_queue_next(e))
            {
                n++;
            }

            if (n != t->nevents || n > ngx_max(t->max_events, 1)) {
                (void) fprintf(stderr, "state_fuzz: transaction \"%.*s\": "
                               "%lu events, nevents %u, max_events %u\n",
                               NGX_HTTP_FANBASE_TXN_ID_LEN, t->id,
                               (unsigned long) n, t->nevents, t->max_events);
                fuzz_fail("a transaction's events are miscounted");
            }

            c->events += n;
        }
    }

    if (c->txns != sh->txn_count) {
        fuzz_fail("the count of transactions is wrong");
    }

    c->keys = fuzz_keys_check(mcf, &sh->idem);
    c->hooks = fuzz_keys_check(mcf, &sh->hooks);

    for (q = ngx_queue_head(&sh->notices_all);
         q != ngx_queue_sentinel(&sh->notices_all);
         q = ngx_queue_next(q))
    {
        c->notices++;
    }

    if (c->notices != sh->notice_count) {
        fuzz_fail("the count of notifications is wrong");
    }

    ngx_shmtx_unlock(&mcf->shpool->mutex);
}


static ngx_uint_t
fuzz_keys_check(ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_keys_t *keys)
{
    ngx_str_t                 key;
    ngx_uint_t                n;
    ngx_queue_t              *q;
    ngx_http_fanbase_idem_t  *k;

    n = 0;

    for (q = ngx_queue_head(&keys->lru);
         q != ngx_queue_sentinel(&keys->lru);
         q = ngx_queue_next(q))
    {
        k = ngx_queue_data(q, ngx_http_fanbase_idem_t, queue);
        n++;

        key.data = k->key;
        key.len = k->len;

        /* "now" is fixed: nothing loaded has expired since */

        if (ngx_http_fanbase_keys_find_locked(mcf, keys, k->scope, &key,
                                    ngx_http_fanbase_id_hash(k->scope,
                                                                key.data,
                                                                key.len),
                                    ngx_http_fanbase_time_now())
            != k)
        {
            fuzz_fail("a key that its hash does not find");
        }
    }

    return n;
}


/* as the master saves the zone when nginx stops, into "path" */

static void
fuzz_save(fuzz_zone_t *z, u_char *path)
{
    ngx_http_fanbase_shctx_t  *sh;

    sh = z->mcf.sh;

    /* the master saves what changed since the last save */
    sh->saved = sh->changes + 1;

    z->mcf.state.data = path;
    z->mcf.state.len = ngx_strlen(path);

    ngx_http_fanbase_state_save(&z->mcf, 1, &fuzz_log);

    if (fuzz_complaints || sh->saved != (ngx_atomic_uint_t) sh->changes) {
        fuzz_fail("the zone was not saved");
    }
}


/* two saves of the same zone: the same lines, in any order */

static void
fuzz_same_lines(u_char *a, u_char *b)
{
    u_char      *abuf, *bbuf;
    size_t       asize, bsize;
    ngx_str_t   *alines, *blines;
    ngx_uint_t   i, an, bn;

    abuf = fuzz_read_file(a, &asize);
    bbuf = fuzz_read_file(b, &bsize);

    alines = fuzz_lines(abuf, asize, &an);
    blines = fuzz_lines(bbuf, bsize, &bn);

    if (an != bn) {
        fuzz_fail("the second save has another number of lines");
    }

    for (i = 0; i < an; i++) {
        if (fuzz_line_cmp(&alines[i], &blines[i]) != 0) {
            (void) fprintf(stderr, "state_fuzz: first save:  %.*s\n"
                           "state_fuzz: second save: %.*s\n",
                           (int) alines[i].len, alines[i].data,
                           (int) blines[i].len, blines[i].data);
            fuzz_fail("the second save differs from the first");
        }
    }

    free(alines);
    free(blines);
    free(abuf);
    free(bbuf);
}


static ngx_str_t *
fuzz_lines(u_char *buf, size_t size, ngx_uint_t *n)
{
    u_char      *p, *last, *eol;
    ngx_str_t   *lines;
    ngx_uint_t   i;

    last = buf + size;
    *n = 0;

    for (p = buf; p < last; p++) {
        *n += (*p == '\n');
    }

    if (size && last[-1] != '\n') {
        fuzz_fail("a saved file does not end with a line feed");
    }

    lines = malloc((*n + 1) * sizeof(ngx_str_t));
    if (lines == NULL) {
        fuzz_fail("no memory");
    }

    for (p = buf, i = 0; p < last; p = eol + 1, i++) {
        eol = ngx_strlchr(p, last, '\n');
        lines[i].data = p;
        lines[i].len = eol - p;
    }

    qsort(lines, *n, sizeof(ngx_str_t), fuzz_line_cmp);

    return lines;
}


static int
fuzz_line_cmp(const void *one, const void *two)
{
    const ngx_str_t  *a = one;
    const ngx_str_t  *b = two;

    return ngx_memn2cmp(a->data, b->data, a->len, b->len);
}
