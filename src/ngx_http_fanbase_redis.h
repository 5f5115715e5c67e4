
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_REDIS_H_INCLUDED_
#define _NGX_HTTP_FANBASE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>


/* where the shared engine lives: fanbase_redis and its companions */

#define NGX_HTTP_FANBASE_REDIS_FALLBACK_OFF    0
#define NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL  1

typedef struct ngx_http_fanbase_redis_conf_s {
    ngx_str_t                     url;         /* as configured */
    ngx_addr_t                    addr;
    ngx_uint_t                    db;
    ngx_str_t                     password;    /* empty: no AUTH */
    ngx_str_t                     prefix;
    ngx_str_t                     channel;     /* prefix ":changes" */
    ngx_uint_t                    fallback;
    ngx_msec_t                    timeout;
    ngx_msec_t                    retain;
} ngx_http_fanbase_redis_conf_t;


typedef struct ngx_http_fanbase_redis_cmd_s  ngx_http_fanbase_redis_cmd_t;

/*
 * A command's answer: reply is NULL when the command failed without one
 * (the connection broke, timed out or could not be made).  The reply and
 * the command are freed when the handler returns.
 */
typedef void (*ngx_http_fanbase_redis_pt)(ngx_http_fanbase_redis_cmd_t *cmd,
    redisReply *reply);

/*
 * a command that carries a caller's handler ended: answered (reply), or not
 * (reply NULL; cmd NULL too: there was no connection to queue it on)
 */
typedef void (*ngx_http_fanbase_redis_count_pt)(
    ngx_http_fanbase_redis_cmd_t *cmd, redisReply *reply);

/* a message on the changes channel; NULL: messages may have been missed */
typedef void (*ngx_http_fanbase_redis_push_pt)(ngx_str_t *message);


struct ngx_http_fanbase_redis_cmd_s {
    ngx_queue_t                   queue;       /* its connection's, in order */
    ngx_http_fanbase_redis_pt     handler;     /* NULL: nobody waits */
    void                         *data;
    ngx_buf_t                     buf;         /* the command, RESP */
    ngx_chain_t                   chain;
    ngx_int_t                     script;      /* -1: not EVALSHA */
    uint64_t                      queued;      /* metrics.c's clock; 0: the
                                                  client's own command */
    unsigned                      retried:1;   /* after NOSCRIPT */
    unsigned                      wipe:1;      /* holds a secret: zeroed
                                                  before it is freed */
};


/* the Lua scripts the engine runs, loaded on every connection */

typedef struct {
    ngx_str_t                     text;
    const char                   *sha1;        /* 40 hex digits */
    const char                   *name;
} ngx_http_fanbase_redis_script_t;


ngx_int_t ngx_http_fanbase_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_redis_conf_t *rcf,
    const ngx_http_fanbase_redis_script_t *scripts, ngx_uint_t nscripts,
    ngx_http_fanbase_redis_push_pt push,
    ngx_http_fanbase_redis_count_pt count);
void ngx_http_fanbase_redis_exit_process(ngx_cycle_t *cycle);

ngx_uint_t ngx_http_fanbase_redis_can_send(void);
ngx_http_fanbase_redis_cmd_t *ngx_http_fanbase_redis_command(int argc,
    const char **argv, const size_t *argvlen,
    ngx_http_fanbase_redis_pt handler, void *data);
ngx_http_fanbase_redis_cmd_t *ngx_http_fanbase_redis_script(ngx_uint_t n,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_fanbase_redis_pt handler, void *data);
void ngx_http_fanbase_redis_cancel(ngx_http_fanbase_redis_cmd_t *cmd);
ngx_uint_t ngx_http_fanbase_redis_up(void);
ngx_uint_t ngx_http_fanbase_redis_listening(void);

char *ngx_http_fanbase_redis_parse_url(ngx_conf_t *cf,
    ngx_http_fanbase_redis_conf_t *rcf, ngx_str_t *url);


#endif /* _NGX_HTTP_FANBASE_REDIS_H_INCLUDED_ */
