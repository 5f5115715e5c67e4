
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The Redis client of a worker: hiredis parses the replies (redisReader),
 * the commands are written here in Redis' protocol, nginx does the socket
 * work on its event loop (ngx_event_connect_peer, its timers).  Two
 * connections per worker: one for commands, pipelined, their replies
 * matched in order; one subscribed to the engine's changes channel.  A
 * connection that breaks, times out or cannot be made answers every
 * command it holds with no reply, and is made again after a backoff
 * (100 ms, doubling up to 5 s); meanwhile a command fails at once.
 */


#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_redis_reply.h"
#include "ngx_http_fanbase_time.h"


#define NGX_HTTP_FANBASE_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_FANBASE_REDIS_BACKOFF_MAX   5000
#define NGX_HTTP_FANBASE_REDIS_CHAIN_MAX     64


typedef struct {
    ngx_peer_connection_t         peer;
    redisReader                  *reader;
    ngx_queue_t                   unsent;      /* commands, in order */
    ngx_queue_t                   sent;        /* ... waiting for replies */
    ngx_msec_t                    backoff;
    ngx_event_t                   retry;
    ngx_connection_t              retry_conn;  /* the timer's stand-in */
    const char                   *name;        /* for the log */
    unsigned                      subscriber:1;
    unsigned                      up:1;        /* the handshake answered */
    unsigned                      said:1;      /* its failure was logged */
} ngx_http_fanbase_redis_conn_t;


static void ngx_http_fanbase_redis_connect(ngx_http_fanbase_redis_conn_t *rc);
static ngx_int_t ngx_http_fanbase_redis_handshake(
    ngx_http_fanbase_redis_conn_t *rc);
static ngx_http_fanbase_redis_cmd_t *ngx_http_fanbase_redis_alloc(int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_fanbase_redis_pt handler, void *data);
static u_char *ngx_http_fanbase_redis_number(u_char *p, size_t n);
static void ngx_http_fanbase_redis_free(ngx_http_fanbase_redis_cmd_t *cmd);
static void ngx_http_fanbase_redis_counted(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_fanbase_redis_queue(ngx_http_fanbase_redis_conn_t *rc,
    ngx_http_fanbase_redis_cmd_t *cmd);
static ngx_int_t ngx_http_fanbase_redis_internal(
    ngx_http_fanbase_redis_conn_t *rc, int argc, const char **argv,
    const size_t *argvlen, ngx_http_fanbase_redis_pt handler);
static void ngx_http_fanbase_redis_write_handler(ngx_event_t *wev);
static void ngx_http_fanbase_redis_read_handler(ngx_event_t *rev);
static void ngx_http_fanbase_redis_dispatch(ngx_http_fanbase_redis_conn_t *rc,
    redisReply *reply);
static void ngx_http_fanbase_redis_fail(ngx_http_fanbase_redis_conn_t *rc,
    ngx_err_t err, const char *reason);
static void ngx_http_fanbase_redis_close(ngx_http_fanbase_redis_conn_t *rc);
static void ngx_http_fanbase_redis_retry(ngx_event_t *ev);
static void ngx_http_fanbase_redis_checked(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_fanbase_redis_ready(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_fanbase_redis_subscribed(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);


static ngx_http_fanbase_redis_conf_t          *ngx_http_fanbase_redis_conf;
static const ngx_http_fanbase_redis_script_t  *ngx_http_fanbase_redis_scripts;
static ngx_uint_t                              ngx_http_fanbase_redis_nscripts;
static ngx_http_fanbase_redis_push_pt          ngx_http_fanbase_redis_push;
static ngx_http_fanbase_redis_count_pt         ngx_http_fanbase_redis_count;
static ngx_http_fanbase_redis_conn_t           ngx_http_fanbase_redis_cmds;
static ngx_http_fanbase_redis_conn_t           ngx_http_fanbase_redis_sub;


ngx_int_t
ngx_http_fanbase_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_redis_conf_t *rcf,
    const ngx_http_fanbase_redis_script_t *scripts, ngx_uint_t nscripts,
    ngx_http_fanbase_redis_push_pt push,
    ngx_http_fanbase_redis_count_pt count)
{
    ngx_uint_t                      i;
    ngx_http_fanbase_redis_conn_t  *rc, *conns[2];

    ngx_http_fanbase_redis_conf = rcf;
    ngx_http_fanbase_redis_scripts = scripts;
    ngx_http_fanbase_redis_nscripts = nscripts;
    ngx_http_fanbase_redis_push = push;
    ngx_http_fanbase_redis_count = count;

    conns[0] = &ngx_http_fanbase_redis_cmds;
    conns[1] = &ngx_http_fanbase_redis_sub;

    for (i = 0; i < 2; i++) {
        rc = conns[i];

        ngx_memzero(rc, sizeof(ngx_http_fanbase_redis_conn_t));

        ngx_queue_init(&rc->unsent);
        ngx_queue_init(&rc->sent);
        rc->subscriber = (i == 1);
        rc->name = rc->subscriber ? "subscriber" : "commands";
        rc->backoff = NGX_HTTP_FANBASE_REDIS_BACKOFF_MIN;

        ngx_http_fanbase_time_timer(&rc->retry, &rc->retry_conn, rc,
                                         ngx_http_fanbase_redis_retry,
                                         cycle->log);

        ngx_http_fanbase_redis_connect(rc);
    }

    return NGX_OK;
}


void
ngx_http_fanbase_redis_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_queue_t                    *q;
    ngx_http_fanbase_redis_cmd_t   *cmd;
    ngx_http_fanbase_redis_conn_t  *rc, *conns[2];

    if (ngx_http_fanbase_redis_conf == NULL) {
        return;
    }

    conns[0] = &ngx_http_fanbase_redis_cmds;
    conns[1] = &ngx_http_fanbase_redis_sub;

    /* the worker goes: what is still unanswered goes with it, silently */

    for (i = 0; i < 2; i++) {
        rc = conns[i];

        if (rc->retry.timer_set) {
            ngx_del_timer(&rc->retry);
        }

        ngx_http_fanbase_redis_close(rc);

        ngx_queue_add(&rc->sent, &rc->unsent);
        ngx_queue_init(&rc->unsent);

        while (!ngx_queue_empty(&rc->sent)) {
            q = ngx_queue_head(&rc->sent);
            ngx_queue_remove(q);
            cmd = ngx_queue_data(q, ngx_http_fanbase_redis_cmd_t, queue);
            ngx_http_fanbase_redis_free(cmd);
        }
    }

    ngx_http_fanbase_redis_reply_exit();

    ngx_http_fanbase_redis_conf = NULL;
}


/* Redis answers the commands of this worker: fallback decisions, metrics */

ngx_uint_t
ngx_http_fanbase_redis_up(void)
{
    return ngx_http_fanbase_redis_conf != NULL
           && ngx_http_fanbase_redis_cmds.up;
}


/* this worker hears every change: what it read is good until one comes */

ngx_uint_t
ngx_http_fanbase_redis_listening(void)
{
    return ngx_http_fanbase_redis_conf != NULL
           && ngx_http_fanbase_redis_sub.up;
}


/*
 * a command would be queued now (a connection is up or being made); "no"
 * counts as a failed command, as ngx_http_fanbase_redis_command() does
 */

ngx_uint_t
ngx_http_fanbase_redis_can_send(void)
{
    if (ngx_http_fanbase_redis_conf == NULL
        || ngx_http_fanbase_redis_cmds.peer.connection == NULL)
    {
        ngx_http_fanbase_redis_counted(NULL, NULL);
        return 0;
    }

    return 1;
}


ngx_http_fanbase_redis_cmd_t *
ngx_http_fanbase_redis_command(int argc, const char **argv,
    const size_t *argvlen, ngx_http_fanbase_redis_pt handler, void *data)
{
    ngx_http_fanbase_redis_cmd_t   *cmd;
    ngx_http_fanbase_redis_conn_t  *rc;

    rc = &ngx_http_fanbase_redis_cmds;

    /* between two attempts to connect, a command fails at once */

    if (ngx_http_fanbase_redis_conf == NULL || rc->peer.connection == NULL) {
        ngx_http_fanbase_redis_counted(NULL, NULL);
        return NULL;
    }

    cmd = ngx_http_fanbase_redis_alloc(argc, argv, argvlen, handler, data);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->queued = ngx_http_fanbase_time_usec();

    ngx_http_fanbase_redis_queue(rc, cmd);

    return cmd;
}


/*
 * EVALSHA of script "n" with one key, argv[0], and the arguments that
 * follow it; a NOSCRIPT answer (Redis restarted, or SCRIPT FLUSH) loads
 * the scripts again and sends the command once more.
 */

ngx_http_fanbase_redis_cmd_t *
ngx_http_fanbase_redis_script(ngx_uint_t n, int argc, const char **argv,
    const size_t *argvlen, ngx_http_fanbase_redis_pt handler, void *data)
{
    int                             i;
    size_t                         *al, ashort[32];
    const char                    **av, *vshort[32];
    ngx_http_fanbase_redis_cmd_t   *cmd;

    if (n >= ngx_http_fanbase_redis_nscripts) {
        return NULL;
    }

    /* a batch's (ngx_http_fanbase_redis_batch.c) may be long */

    if (argc + 3 <= 32) {
        av = vshort;
        al = ashort;

    } else {
        av = ngx_alloc((argc + 3) * (sizeof(char *) + sizeof(size_t)),
                       ngx_cycle->log);
        if (av == NULL) {
            return NULL;
        }

        al = (size_t *) (av + argc + 3);
    }

    av[0] = "EVALSHA";
    al[0] = sizeof("EVALSHA") - 1;
    av[1] = ngx_http_fanbase_redis_scripts[n].sha1;
    al[1] = 40;
    av[2] = "1";
    al[2] = 1;

    for (i = 0; i < argc; i++) {
        av[i + 3] = argv[i];
        al[i + 3] = argvlen[i];
    }

    cmd = ngx_http_fanbase_redis_command(argc + 3, av, al, handler, data);
    if (cmd != NULL) {
        cmd->script = n;
    }

    if (av != vshort) {
        ngx_free(av);
    }

    return cmd;
}


/* the caller no longer waits: the reply, when it comes, is dropped */

void
ngx_http_fanbase_redis_cancel(ngx_http_fanbase_redis_cmd_t *cmd)
{
    cmd->handler = NULL;
    cmd->data = NULL;
}


/*
 * The command in RESP, written here: "*N\r\n", then "$LEN\r\nBYTES\r\n"
 * per argument.  hiredis' redisFormatCommandArgv() writes the same bytes,
 * but its sprintf() per length was a third of an accepted submission's
 * instructions with Redis (docs/decisions.md); hiredis still reads every
 * reply.  One allocation holds the command and its bytes.
 */

static ngx_http_fanbase_redis_cmd_t *
ngx_http_fanbase_redis_alloc(int argc, const char **argv,
    const size_t *argvlen, ngx_http_fanbase_redis_pt handler, void *data)
{
    int                            i;
    u_char                        *p;
    size_t                         len;
    ngx_http_fanbase_redis_cmd_t  *cmd;

    len = 1 + NGX_INT_T_LEN + 2;

    for (i = 0; i < argc; i++) {
        len += 1 + NGX_SIZE_T_LEN + 2 + argvlen[i] + 2;
    }

    cmd = ngx_alloc(sizeof(ngx_http_fanbase_redis_cmd_t) + len,
                    ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    p = (u_char *) cmd + sizeof(ngx_http_fanbase_redis_cmd_t);

    ngx_memzero(&cmd->buf, sizeof(ngx_buf_t));
    cmd->buf.start = p;

    *p++ = '*';
    p = ngx_http_fanbase_redis_number(p, argc);

    for (i = 0; i < argc; i++) {
        *p++ = '$';
        p = ngx_http_fanbase_redis_number(p, argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = '\r'; *p++ = '\n';
    }

    cmd->buf.pos = cmd->buf.start;
    cmd->buf.last = p;
    cmd->buf.end = p;
    cmd->buf.memory = 1;

    cmd->handler = handler;
    cmd->data = data;
    cmd->script = -1;
    cmd->retried = 0;
    cmd->wipe = 0;
    cmd->queued = 0;

    return cmd;
}


/* a command's end, for whoever counts them (metrics), if anyone */

static void
ngx_http_fanbase_redis_counted(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    if (ngx_http_fanbase_redis_count != NULL) {
        ngx_http_fanbase_redis_count(cmd, reply);
    }
}


/* a length and its "\r\n" */

static u_char *
ngx_http_fanbase_redis_number(u_char *p, size_t n)
{
    u_char  *q, digits[NGX_SIZE_T_LEN];

    q = digits + NGX_SIZE_T_LEN;

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    p = ngx_cpymem(p, q, digits + NGX_SIZE_T_LEN - q);
    *p++ = '\r';
    *p++ = '\n';

    return p;
}


static void
ngx_http_fanbase_redis_free(ngx_http_fanbase_redis_cmd_t *cmd)
{
    if (cmd->wipe) {
        ngx_explicit_memzero(cmd->buf.start, cmd->buf.end - cmd->buf.start);
    }

    ngx_free(cmd);
}


/* to the tail of the line; what a turn of the loop queues leaves at once */

static void
ngx_http_fanbase_redis_queue(ngx_http_fanbase_redis_conn_t *rc,
    ngx_http_fanbase_redis_cmd_t *cmd)
{
    ngx_connection_t  *c;

    ngx_queue_insert_tail(&rc->unsent, &cmd->queue);

    c = rc->peer.connection;

    if (c != NULL && !c->write->posted && !c->write->timer_set) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


static ngx_int_t
ngx_http_fanbase_redis_internal(ngx_http_fanbase_redis_conn_t *rc, int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_fanbase_redis_pt handler)
{
    ngx_http_fanbase_redis_cmd_t  *cmd;

    cmd = ngx_http_fanbase_redis_alloc(argc, argv, argvlen, handler, rc);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    ngx_http_fanbase_redis_queue(rc, cmd);

    return NGX_OK;
}


static void
ngx_http_fanbase_redis_connect(ngx_http_fanbase_redis_conn_t *rc)
{
    ngx_int_t                       rv;
    ngx_connection_t               *c;
    ngx_http_fanbase_redis_conf_t  *rcf;

    rcf = ngx_http_fanbase_redis_conf;

    ngx_memzero(&rc->peer, sizeof(ngx_peer_connection_t));

    rc->peer.sockaddr = rcf->addr.sockaddr;
    rc->peer.socklen = rcf->addr.socklen;
    rc->peer.name = &rcf->url;
    rc->peer.get = ngx_event_get_peer;
    rc->peer.log = ngx_cycle->log;
    rc->peer.log_error = NGX_ERROR_ERR;

    rv = ngx_event_connect_peer(&rc->peer);

    if (rv == NGX_ERROR || rv == NGX_BUSY || rv == NGX_DECLINED) {
        if (rc->peer.connection) {
            ngx_close_connection(rc->peer.connection);
            rc->peer.connection = NULL;
        }

        ngx_http_fanbase_redis_fail(rc, 0, "cannot connect");
        return;
    }

    c = rc->peer.connection;
    c->data = rc;
    c->read->handler = ngx_http_fanbase_redis_read_handler;
    c->write->handler = ngx_http_fanbase_redis_write_handler;

    rc->reader = ngx_http_fanbase_redis_reader_create();
    if (rc->reader == NULL) {
        ngx_http_fanbase_redis_fail(rc, 0, "out of memory");
        return;
    }

    if (ngx_http_fanbase_redis_handshake(rc) != NGX_OK) {
        ngx_http_fanbase_redis_fail(rc, 0, "out of memory");
        return;
    }

    if (rv == NGX_AGAIN) {
        ngx_add_timer(c->write, rcf->timeout);
        return;
    }

    ngx_post_event(c->write, &ngx_posted_events);
}


/*
 * The first commands of a connection, ahead of any other: AUTH, SELECT,
 * the scripts, then PING (commands) or SUBSCRIBE (subscriber), whose
 * answer says the connection is up.
 */

static ngx_int_t
ngx_http_fanbase_redis_handshake(ngx_http_fanbase_redis_conn_t *rc)
{
    u_char                          db[NGX_INT_T_LEN];
    ngx_uint_t                      i;
    ngx_queue_t                     early;
    const char                     *av[3];
    size_t                          al[3];
    ngx_http_fanbase_redis_conf_t  *rcf;

    rcf = ngx_http_fanbase_redis_conf;

    /* the commands that came while connecting go after the handshake */

    ngx_queue_init(&early);

    if (!ngx_queue_empty(&rc->unsent)) {
        ngx_queue_add(&early, &rc->unsent);
        ngx_queue_init(&rc->unsent);
    }

    if (rcf->password.len) {
        av[0] = "AUTH";
        al[0] = 4;
        av[1] = (const char *) rcf->password.data;
        al[1] = rcf->password.len;

        if (ngx_http_fanbase_redis_internal(rc, 2, av, al,
                                            ngx_http_fanbase_redis_checked)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (rcf->db) {
        av[0] = "SELECT";
        al[0] = 6;
        av[1] = (const char *) db;
        al[1] = ngx_sprintf(db, "%ui", rcf->db) - db;

        if (ngx_http_fanbase_redis_internal(rc, 2, av, al,
                                            ngx_http_fanbase_redis_checked)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (rc->subscriber) {
        av[0] = "SUBSCRIBE";
        al[0] = 9;
        av[1] = (const char *) rcf->channel.data;
        al[1] = rcf->channel.len;

        return ngx_http_fanbase_redis_internal(rc, 2, av, al,
                                            ngx_http_fanbase_redis_subscribed);
    }

    for (i = 0; i < ngx_http_fanbase_redis_nscripts; i++) {
        av[0] = "SCRIPT";
        al[0] = 6;
        av[1] = "LOAD";
        al[1] = 4;
        av[2] = (const char *) ngx_http_fanbase_redis_scripts[i].text.data;
        al[2] = ngx_http_fanbase_redis_scripts[i].text.len;

        if (ngx_http_fanbase_redis_internal(rc, 3, av, al,
                                            ngx_http_fanbase_redis_checked)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    av[0] = "PING";
    al[0] = 4;

    if (ngx_http_fanbase_redis_internal(rc, 1, av, al,
                                        ngx_http_fanbase_redis_ready)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!ngx_queue_empty(&early)) {
        ngx_queue_add(&rc->unsent, &early);
    }

    return NGX_OK;
}


/* a command of the handshake that must not fail (AUTH, SELECT, a script) */

static void
ngx_http_fanbase_redis_checked(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_fanbase_redis_conn_t  *rc = cmd->data;

    u_char  *p, buf[256];

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    /* Redis' own words; never the command, which may hold the password */

    p = ngx_snprintf(buf, sizeof(buf) - 1, "%*s",
                     ngx_min(reply->len, 200), reply->str);
    *p = '\0';

    ngx_http_fanbase_redis_fail(rc, 0, (const char *) buf);
}


static void
ngx_http_fanbase_redis_ready(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_fanbase_redis_conn_t  *rc = cmd->data;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        return;
    }

    if (rc->said) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanbase: redis \"%V\" answers again",
                      &ngx_http_fanbase_redis_conf->url);
    }

    rc->up = 1;
    rc->said = 0;
    rc->backoff = NGX_HTTP_FANBASE_REDIS_BACKOFF_MIN;
}


static void
ngx_http_fanbase_redis_subscribed(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_fanbase_redis_conn_t  *rc = cmd->data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply != NULL) {
            ngx_http_fanbase_redis_fail(rc, 0, "SUBSCRIBE refused");
        }

        return;
    }

    rc->up = 1;
    rc->said = 0;
    rc->backoff = NGX_HTTP_FANBASE_REDIS_BACKOFF_MIN;

    /* what changed while nobody listened is unknown: all of it, then */
    ngx_http_fanbase_redis_push(NULL);
}


static void
ngx_http_fanbase_redis_write_handler(ngx_event_t *wev)
{
    ngx_uint_t                      n;
    ngx_queue_t                    *q;
    ngx_chain_t                    *first, **last, *rest;
    ngx_connection_t               *c;
    ngx_http_fanbase_redis_cmd_t   *cmd;
    ngx_http_fanbase_redis_conn_t  *rc;

    c = wev->data;
    rc = c->data;

    if (wev->timedout) {
        ngx_http_fanbase_redis_fail(rc, NGX_ETIMEDOUT, "connect timed out");
        return;
    }

    if (wev->timer_set) {
        ngx_del_timer(wev);
    }

    /* every command queued in this turn of the loop, in one writev() */

    while (!ngx_queue_empty(&rc->unsent)) {

        first = NULL;
        last = &first;
        n = 0;

        for (q = ngx_queue_head(&rc->unsent);
             q != ngx_queue_sentinel(&rc->unsent)
             && n < NGX_HTTP_FANBASE_REDIS_CHAIN_MAX;
             q = ngx_queue_next(q), n++)
        {
            cmd = ngx_queue_data(q, ngx_http_fanbase_redis_cmd_t, queue);
            cmd->chain.buf = &cmd->buf;
            cmd->chain.next = NULL;
            *last = &cmd->chain;
            last = &cmd->chain.next;
        }

        rest = c->send_chain(c, first, 0);

        if (rest == NGX_CHAIN_ERROR) {
            ngx_http_fanbase_redis_fail(rc, ngx_socket_errno,
                                        "cannot send");
            return;
        }

        /* what went whole waits for its reply */

        while (!ngx_queue_empty(&rc->unsent)) {
            q = ngx_queue_head(&rc->unsent);
            cmd = ngx_queue_data(q, ngx_http_fanbase_redis_cmd_t, queue);

            if (cmd->buf.pos != cmd->buf.last) {
                break;
            }

            ngx_queue_remove(q);
            ngx_queue_insert_tail(&rc->sent, q);
        }

        if (!c->read->timer_set && !ngx_queue_empty(&rc->sent)
            && !(rc->subscriber && rc->up))
        {
            ngx_add_timer(c->read, ngx_http_fanbase_redis_conf->timeout);
        }

        if (rest != NULL) {
            /* the socket is full: the rest when it can take more */

            if (!c->write->timer_set) {
                ngx_add_timer(c->write, ngx_http_fanbase_redis_conf->timeout);
            }

            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_fanbase_redis_fail(rc, 0, "cannot send");
            }

            return;
        }
    }
}


static void
ngx_http_fanbase_redis_read_handler(ngx_event_t *rev)
{
    ssize_t                         n;
    void                           *reply;
    ngx_connection_t               *c;
    ngx_http_fanbase_redis_conn_t  *rc;
    u_char                          buf[16384];

    c = rev->data;
    rc = c->data;

    if (rev->timedout) {
        ngx_http_fanbase_redis_fail(rc, NGX_ETIMEDOUT, "timed out");
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_http_fanbase_redis_fail(rc, 0, "closed the connection");
            return;
        }

        if (n == NGX_ERROR) {
            ngx_http_fanbase_redis_fail(rc, 0, "cannot read");
            return;
        }

        if (redisReaderFeed(rc->reader, (const char *) buf, n) != REDIS_OK) {
            ngx_http_fanbase_redis_fail(rc, 0, "out of memory");
            return;
        }

        for ( ;; ) {
            reply = NULL;

            if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
                ngx_http_fanbase_redis_fail(rc, 0, "sent a malformed reply");
                return;
            }

            if (reply == NULL) {
                break;
            }

            ngx_http_fanbase_redis_dispatch(rc, reply);

            /* a handler may have ended the connection */

            if (rc->peer.connection != c) {
                return;
            }
        }

        if ((size_t) n < sizeof(buf)) {
            break;
        }
    }

    /* the timeout runs while something waits, from the last reply */

    if (!ngx_queue_empty(&rc->sent) && !(rc->subscriber && rc->up)) {
        ngx_add_timer(rev, ngx_http_fanbase_redis_conf->timeout);

    } else if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_fanbase_redis_fail(rc, 0, "cannot read");
    }
}


static void
ngx_http_fanbase_redis_dispatch(ngx_http_fanbase_redis_conn_t *rc,
    redisReply *reply)
{
    ngx_str_t                      message;
    ngx_queue_t                   *q;
    redisReply                    *kind;
    ngx_http_fanbase_redis_cmd_t  *cmd;

    /* a message of the channel: ["message", channel, payload] */

    if (rc->subscriber && rc->up && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 3)
    {
        kind = reply->element[0];

        if (kind->type == REDIS_REPLY_STRING && kind->len == 7
            && ngx_strncmp(kind->str, "message", 7) == 0
            && reply->element[2]->type == REDIS_REPLY_STRING)
        {
            message.data = (u_char *) reply->element[2]->str;
            message.len = reply->element[2]->len;

            ngx_http_fanbase_redis_push(&message);
        }

        ngx_http_fanbase_redis_reply_free(reply);
        return;
    }

    if (ngx_queue_empty(&rc->sent)) {
        ngx_http_fanbase_redis_reply_free(reply);
        ngx_http_fanbase_redis_fail(rc, 0, "sent a reply to no command");
        return;
    }

    q = ngx_queue_head(&rc->sent);
    ngx_queue_remove(q);
    cmd = ngx_queue_data(q, ngx_http_fanbase_redis_cmd_t, queue);

    /* the scripts are gone (a restart, SCRIPT FLUSH): load them, once more */

    if (reply->type == REDIS_REPLY_ERROR && cmd->script >= 0 && !cmd->retried
        && reply->len >= 8 && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        const char  *av[3];
        size_t       al[3];

        ngx_http_fanbase_redis_reply_free(reply);

        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "fanbase: redis \"%V\" does not know the script "
                      "\"%s\": loading it again",
                      &ngx_http_fanbase_redis_conf->url,
                      ngx_http_fanbase_redis_scripts[cmd->script].name);

        av[0] = "SCRIPT";
        al[0] = 6;
        av[1] = "LOAD";
        al[1] = 4;
        av[2] = (const char *)
                    ngx_http_fanbase_redis_scripts[cmd->script].text.data;
        al[2] = ngx_http_fanbase_redis_scripts[cmd->script].text.len;

        if (ngx_http_fanbase_redis_internal(rc, 3, av, al,
                                            ngx_http_fanbase_redis_checked)
            != NGX_OK)
        {
            ngx_http_fanbase_redis_counted(cmd, NULL);

            if (cmd->handler) {
                cmd->handler(cmd, NULL);
            }

            ngx_http_fanbase_redis_free(cmd);
            return;
        }

        cmd->retried = 1;
        cmd->buf.pos = cmd->buf.start;
        ngx_http_fanbase_redis_queue(rc, cmd);
        return;
    }

    ngx_http_fanbase_redis_counted(cmd, reply);

    if (cmd->handler) {
        cmd->handler(cmd, reply);
    }

    ngx_http_fanbase_redis_reply_free(reply);
    ngx_http_fanbase_redis_free(cmd);
}


/*
 * The connection is lost: every command it held is answered with no
 * reply, and the next attempt waits its backoff.
 */

static void
ngx_http_fanbase_redis_fail(ngx_http_fanbase_redis_conn_t *rc, ngx_err_t err,
    const char *reason)
{
    ngx_queue_t                    *q, failed;
    ngx_http_fanbase_redis_cmd_t   *cmd;

    if (!rc->said) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err,
                      "fanbase: redis \"%V\" (%s connection): %s; trying "
                      "again in %M ms, with growing pauses",
                      &ngx_http_fanbase_redis_conf->url, rc->name, reason,
                      rc->backoff);
        rc->said = 1;

    } else {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, err,
                      "fanbase: redis \"%V\" (%s connection): %s",
                      &ngx_http_fanbase_redis_conf->url, rc->name, reason);
    }

    ngx_http_fanbase_redis_close(rc);

    ngx_queue_init(&failed);
    ngx_queue_add(&failed, &rc->sent);
    ngx_queue_add(&failed, &rc->unsent);
    ngx_queue_init(&rc->sent);
    ngx_queue_init(&rc->unsent);

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(&rc->retry, rc->backoff);
        rc->backoff = ngx_min(rc->backoff * 2,
                              NGX_HTTP_FANBASE_REDIS_BACKOFF_MAX);
    }

    /* answered last: a handler's new command fails at once, not here */

    while (!ngx_queue_empty(&failed)) {
        q = ngx_queue_head(&failed);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_fanbase_redis_cmd_t, queue);

        ngx_http_fanbase_redis_counted(cmd, NULL);

        if (cmd->handler) {
            cmd->handler(cmd, NULL);
        }

        ngx_http_fanbase_redis_free(cmd);
    }
}


static void
ngx_http_fanbase_redis_close(ngx_http_fanbase_redis_conn_t *rc)
{
    rc->up = 0;

    if (rc->peer.connection) {
        ngx_close_connection(rc->peer.connection);
        rc->peer.connection = NULL;
    }

    if (rc->reader) {
        redisReaderFree(rc->reader);
        rc->reader = NULL;
    }
}


static void
ngx_http_fanbase_redis_retry(ngx_event_t *ev)
{
    ngx_connection_t               *c;
    ngx_http_fanbase_redis_conn_t  *rc;

    c = ev->data;
    rc = c->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_http_fanbase_redis_connect(rc);
}


/*
 * fanbase_redis URL: redis://HOST[:PORT][/DB] or unix:/PATH[:DB]; the
 * host is resolved now, as proxy_pass resolves its own: no worker ever
 * waits on DNS.
 */

char *
ngx_http_fanbase_redis_parse_url(ngx_conf_t *cf,
    ngx_http_fanbase_redis_conf_t *rcf, ngx_str_t *url)
{
    u_char     *p, *last, *db;
    ngx_int_t   n;
    ngx_url_t   u;

    rcf->url = *url;
    rcf->db = 0;

    ngx_memzero(&u, sizeof(ngx_url_t));

    last = url->data + url->len;
    db = NULL;

    if (url->len > 8 && ngx_strncasecmp(url->data, (u_char *) "redis://", 8)
                        == 0)
    {
        p = url->data + 8;
        db = ngx_strlchr(p, last, '/');

        u.url.data = p;
        u.url.len = (db ? db : last) - p;
        u.default_port = 6379;

        if (db) {
            db++;
        }

    } else if (url->len > 5
               && ngx_strncasecmp(url->data, (u_char *) "unix:", 5) == 0)
    {
        /* a last ":N" is the database */

        for (p = last; p > url->data + 5 && p[-1] >= '0' && p[-1] <= '9';
             p--)
        {
            /* void */
        }

        if (p < last && p[-1] == ':') {
            db = p;
            last = p - 1;
        }

        u.url.data = url->data;
        u.url.len = last - url->data;

    } else {
        return "needs an URL of the form \"redis://HOST[:PORT][/DB]\" or "
               "\"unix:/PATH[:DB]\"";
    }

    if (db != NULL && db < url->data + url->len) {
        n = ngx_atoi(db, url->data + url->len - db);
        if (n == NGX_ERROR || n > 15) {
            return "has an invalid database number (0 to 15)";
        }

        rcf->db = n;
    }

    if (u.url.len == 0) {
        return "has no host";
    }

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"fanbase_redis\": %s in \"%V\"", u.err, url);
        }

        return NGX_CONF_ERROR;
    }

    if (u.naddrs == 0) {
        return "names a host that does not resolve";
    }

    rcf->addr = u.addrs[0];

    if (u.naddrs > 1) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"fanbase_redis\": \"%V\" resolves to %ui "
                           "addresses, the first one is used: %V", url,
                           u.naddrs, &rcf->addr.name);
    }

    return NGX_CONF_OK;
}
