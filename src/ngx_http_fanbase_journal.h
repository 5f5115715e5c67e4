
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 */


#ifndef _NGX_HTTP_FANBASE_JOURNAL_H_INCLUDED_
#define _NGX_HTTP_FANBASE_JOURNAL_H_INCLUDED_


#include "ngx_http_fanbase_conf.h"


/* the journal's files: "<state>.journal.<generation>.<pid>" */
#define NGX_HTTP_FANBASE_JOURNAL_INFIX   ".journal."


ngx_int_t ngx_http_fanbase_journal_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf);
void ngx_http_fanbase_journal_exit_process(ngx_cycle_t *cycle);
uint64_t ngx_http_fanbase_journal_txn_locked(ngx_http_fanbase_txn_t *t);
void ngx_http_fanbase_journal_key_locked(ngx_http_fanbase_idem_t *k);
uint64_t ngx_http_fanbase_journal_seq(void);
ngx_int_t ngx_http_fanbase_journal_wait(ngx_http_fanbase_store_op_t *op,
    uint64_t seq, ngx_int_t rc);
void ngx_http_fanbase_journal_cancel(ngx_http_fanbase_store_op_t *op);
ngx_int_t ngx_http_fanbase_journal_files(ngx_str_t *state, ngx_pool_t *pool,
    ngx_array_t *files, uint64_t *max_gen);
void ngx_http_fanbase_journal_prune(ngx_str_t *state, uint64_t below);


#endif /* _NGX_HTTP_FANBASE_JOURNAL_H_INCLUDED_ */
