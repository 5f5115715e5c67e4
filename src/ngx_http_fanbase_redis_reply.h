
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_REDIS_REPLY_H_INCLUDED_
#define _NGX_HTTP_FANBASE_REDIS_REPLY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>


redisReader *ngx_http_fanbase_redis_reader_create(void);
void ngx_http_fanbase_redis_reply_free(redisReply *reply);
void ngx_http_fanbase_redis_reply_exit(void);


#endif /* _NGX_HTTP_FANBASE_REDIS_REPLY_H_INCLUDED_ */
