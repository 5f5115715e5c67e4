
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_STATE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_STATE_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* the first line of the state file and of each journal file */
#define NGX_HTTP_FANBASE_STATE_HEADER    "{\"version\":2}\n"

/* the journal's files: "<state>.journal.<generation>.<pid>" */
#define NGX_HTTP_FANBASE_STATE_JOURNAL   ".journal."


ngx_int_t ngx_http_fanbase_state_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log);
ngx_int_t ngx_http_fanbase_state_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_state_save(ngx_http_fanbase_main_conf_t *mcf,
    ngx_uint_t force, ngx_log_t *log);
size_t ngx_http_fanbase_state_txn_size(ngx_http_fanbase_txn_t *t);
u_char *ngx_http_fanbase_state_txn(u_char *p,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_txn_t *t);
size_t ngx_http_fanbase_state_key_size(ngx_http_fanbase_idem_t *k);
u_char *ngx_http_fanbase_state_key(u_char *p, ngx_http_fanbase_idem_t *k,
    ngx_uint_t full);
ngx_int_t ngx_http_fanbase_state_dir(ngx_str_t *state, u_char *dir,
    size_t size, ngx_str_t *base);


#endif /* _NGX_HTTP_FANBASE_STATE_H_INCLUDED_ */
