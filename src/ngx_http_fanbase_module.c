
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The module: directives, configuration and process hooks, and the table
 * of the zone's parts.  The work is done in the files named after it, in
 * layers (docs/architecture.md draws them): the handlers (submit, accept,
 * status, transaction, webhook) over the background work (deliver,
 * notify, state) and the call to Fanbase (call), over the records in the
 * zone (item, txn, notice, token), over the zone (zone), the scheduler
 * (sched), the libcurl bridge (curl), the waiters (wait), and the helpers
 * every layer uses (id, time, request, response, json, signature).
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_deliver.h"
#include "ngx_http_fanbase_health.h"
#include "ngx_http_fanbase_journal.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_item.h"
#include "ngx_http_fanbase_l1.h"
#include "ngx_http_fanbase_logsum.h"
#include "ngx_http_fanbase_notice.h"
#include "ngx_http_fanbase_notify.h"
#include "ngx_http_fanbase_peer.h"
#include "ngx_http_fanbase_proxy.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_signature.h"
#include "ngx_http_fanbase_state.h"
#include "ngx_http_fanbase_status.h"
#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_store.h"
#include "ngx_http_fanbase_store_redis.h"
#include "ngx_http_fanbase_submit.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_transaction.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_webhook.h"
#include "ngx_http_fanbase_zone.h"


static ngx_int_t ngx_http_fanbase_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_fanbase_init_process(ngx_cycle_t *cycle);
static void ngx_http_fanbase_exit_process(ngx_cycle_t *cycle);
static void ngx_http_fanbase_exit_master(ngx_cycle_t *cycle);
static char *ngx_http_fanbase_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_fanbase_add_target(ngx_conf_t *cf,
    ngx_http_fanbase_main_conf_t *mcf, ngx_http_fanbase_loc_conf_t *conf);
static void *ngx_http_fanbase_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_fanbase_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_fanbase_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_fanbase_check_handler(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf);
static char *ngx_http_fanbase_set_scope(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf, const char *name);
static void ngx_http_fanbase_handler_error(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf, const char *fmt, ...);
static char *ngx_http_fanbase_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_set_url_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_fanbase_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_redis_password(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_fanbase_set_file_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_fanbase_read_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *field);
static char *ngx_http_fanbase_webhook(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_health(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_fanbase_url_check(ngx_conf_t *cf,
    ngx_command_t *cmd, ngx_str_t *url);
static char *ngx_http_fanbase_notify(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_webhook_secret(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_fanbase_webhook_auth(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_fanbase_webhook_keys(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf);
static ngx_int_t ngx_http_fanbase_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_fanbase_set_readable_slot(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_fanbase_submit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_transaction(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_fanbase_transaction_path(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_fanbase_set_id_value(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *lcf);
static char *ngx_http_fanbase_set_handler(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *lcf, ngx_uint_t handler,
    ngx_http_handler_pt h);


static ngx_conf_post_handler_pt  ngx_http_fanbase_transaction_path_p =
    ngx_http_fanbase_transaction_path;

static ngx_conf_num_bounds_t  ngx_http_fanbase_events_bounds = {
    ngx_conf_check_num_bounds, 1, 255
};

static ngx_conf_num_bounds_t  ngx_http_fanbase_concurrency_bounds = {
    ngx_conf_check_num_bounds, 1, 4096
};

static ngx_conf_num_bounds_t  ngx_http_fanbase_connections_bounds = {
    ngx_conf_check_num_bounds, 1, 4096
};

static ngx_conf_num_bounds_t  ngx_http_fanbase_keepalive_bounds = {
    ngx_conf_check_num_bounds, 0, 4096
};


static ngx_command_t  ngx_http_fanbase_commands[] = {

    { ngx_string("fanbase_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_fanbase_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_api"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_set_url_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, api),
      NULL },

    { ngx_string("fanbase_token_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_set_url_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, token_url),
      NULL },

    { ngx_string("fanbase_client_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, client_id),
      NULL },

    { ngx_string("fanbase_client_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_set_file_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, client_secret),
      NULL },

    { ngx_string("fanbase_access_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_set_file_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, access_token),
      NULL },

    { ngx_string("fanbase_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, upstream.connect_timeout),
      NULL },

    { ngx_string("fanbase_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, upstream.timeout),
      NULL },

    { ngx_string("fanbase_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, upstream.ssl_verify),
      NULL },

    { ngx_string("fanbase_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_set_readable_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, upstream.ssl_trusted_certificate),
      NULL },

    { ngx_string("fanbase_status_refresh"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, status_refresh),
      NULL },

    { ngx_string("fanbase_store_payload"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, store_payload),
      NULL },

    { ngx_string("fanbase_submit"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_fanbase_submit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_transaction"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_fanbase_transaction,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_transaction_path"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, transaction_path),
      &ngx_http_fanbase_transaction_path_p },

    { ngx_string("fanbase_idempotency_window"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, idempotency_window),
      NULL },

    { ngx_string("fanbase_deliver_horizon"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, deliver_horizon),
      NULL },

    { ngx_string("fanbase_track_horizon"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, track_horizon),
      NULL },

    { ngx_string("fanbase_transaction_events"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, transaction_events),
      &ngx_http_fanbase_events_bounds },

    { ngx_string("fanbase_long_poll"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, long_poll),
      NULL },

    { ngx_string("fanbase_webhook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fanbase_webhook,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fanbase_health,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_fanbase_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_webhook_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_webhook_secret,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_webhook_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_fanbase_webhook_auth,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_webhook_tolerance"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, webhook_tolerance),
      NULL },

    { ngx_string("fanbase_webhook_dedup"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, webhook_dedup),
      NULL },

    { ngx_string("fanbase_webhook_create"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_fanbase_loc_conf_t, webhook_create),
      NULL },

    { ngx_string("fanbase_notify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_notify,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, notify_url),
      NULL },

    { ngx_string("fanbase_notify_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_set_file_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, notify_secret),
      NULL },

    { ngx_string("fanbase_notify_horizon"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, notify_horizon),
      NULL },

    { ngx_string("fanbase_notify_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, notify_concurrency),
      &ngx_http_fanbase_concurrency_bounds },

    { ngx_string("fanbase_state_sync"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, state_sync),
      NULL },

    { ngx_string("fanbase_deliver_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, deliver_concurrency),
      &ngx_http_fanbase_concurrency_bounds },

    { ngx_string("fanbase_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_fanbase_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_fanbase_redis_password,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("fanbase_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, redis_timeout),
      NULL },

    { ngx_string("fanbase_max_connections"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, max_connections),
      &ngx_http_fanbase_connections_bounds },

    { ngx_string("fanbase_keepalive"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_fanbase_main_conf_t, keepalive),
      &ngx_http_fanbase_keepalive_bounds },

    { ngx_string("fanbase_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_fanbase_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_fanbase_module_ctx = {
    ngx_http_fanbase_variables_add,        /* preconfiguration */
    ngx_http_fanbase_postconfiguration,    /* postconfiguration */

    ngx_http_fanbase_create_main_conf,     /* create main configuration */
    ngx_http_fanbase_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_fanbase_create_loc_conf,      /* create location configuration */
    ngx_http_fanbase_merge_loc_conf        /* merge location configuration */
};


/*
 * The parts of the shared zone, in the order the zone sets them up (the
 * state file last: it fills the others) and asks them for memory when it
 * runs short: queue items first (a cache of what Fanbase holds), then
 * finished transactions.
 */

ngx_http_fanbase_zone_part_t  ngx_http_fanbase_zone_parts[] = {

    { "counters of the shared engine", 0,
      ngx_http_fanbase_metrics_init_zone,
      ngx_http_fanbase_metrics_attach_zone,
      NULL },

    { "cache of the shared engine", 0,
      ngx_http_fanbase_l1_init_zone,
      NULL,
      ngx_http_fanbase_l1_evict },

    { "queue items", 0,
      ngx_http_fanbase_item_init_zone,
      NULL,
      ngx_http_fanbase_item_evict },

    { "transactions", sizeof(ngx_http_fanbase_txn_t),
      ngx_http_fanbase_txn_init_zone,
      NULL,
      ngx_http_fanbase_txn_evict },

    { "notices", sizeof(ngx_http_fanbase_notice_t),
      ngx_http_fanbase_notice_init_zone,
      NULL,
      NULL },

    { "tokens", 0,
      ngx_http_fanbase_token_init_zone,
      ngx_http_fanbase_token_attach_zone,
      NULL },

    { "state file", 0,
      ngx_http_fanbase_state_init_zone,
      NULL,
      NULL },

    { NULL, 0, NULL, NULL, NULL }
};


ngx_module_t  ngx_http_fanbase_module = {
    NGX_MODULE_V1,
    &ngx_http_fanbase_module_ctx,          /* module context */
    ngx_http_fanbase_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_fanbase_init_module,          /* init module */
    ngx_http_fanbase_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_fanbase_exit_process,         /* exit process */
    ngx_http_fanbase_exit_master,          /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_fanbase_init_module(ngx_cycle_t *cycle)
{
    static ngx_uint_t  initialized;

    /* once, in the master, before any worker or thread exists */

    if (!initialized) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "fanbase: curl_global_init() failed");
            return NGX_ERROR;
        }

        initialized = 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_init_process(ngx_cycle_t *cycle)
{
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanbase_module);

    if (mcf == NULL || mcf->shm_zone == NULL) {
        return NGX_OK;
    }

    /* the master allocated the pages; this maps them in this worker */

    if (mcf->prefault) {
        (void) ngx_http_fanbase_zone_prefault(mcf->shm_zone, cycle->log);
        ngx_http_fanbase_zone_touch(mcf->shm_zone, cycle->log);
    }

    ngx_http_fanbase_metrics_init_process(mcf);

    if (ngx_http_fanbase_curl_init_process(cycle, mcf) != NGX_OK
        || ngx_http_fanbase_wait_init_process(cycle) != NGX_OK
        || ngx_http_fanbase_journal_init_process(cycle, mcf) != NGX_OK
        || ngx_http_fanbase_token_init_process(cycle, mcf) != NGX_OK
        || ngx_http_fanbase_store_redis_init_process(cycle, mcf) != NGX_OK
        || ngx_http_fanbase_deliver_init_process(cycle, mcf) != NGX_OK
        || ngx_http_fanbase_notify_init_process(cycle, mcf) != NGX_OK
        || ngx_http_fanbase_state_init_process(cycle, mcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_fanbase_exit_process(ngx_cycle_t *cycle)
{
    /* deliveries give back their claims before their transfers go */
    ngx_http_fanbase_deliver_exit_process(cycle);
    ngx_http_fanbase_notify_exit_process(cycle);
    ngx_http_fanbase_store_redis_exit_process(cycle);
    ngx_http_fanbase_curl_exit_process(cycle);
    ngx_http_fanbase_journal_exit_process(cycle);

    /* the spare reservations of submissions, given back */
    ngx_http_fanbase_item_exit_process(cycle);

    /* what was counted and not said yet */
    ngx_http_fanbase_logsum_exit_process(cycle);
}


/* the workers are gone: the zone is saved once more */

static void
ngx_http_fanbase_exit_master(ngx_cycle_t *cycle)
{
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_fanbase_module);

    if (mcf != NULL && mcf->shm_zone != NULL) {
        ngx_http_fanbase_state_save(mcf, 1, cycle->log);
    }
}


static void *
ngx_http_fanbase_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     mcf->shm_zone = NULL;
     *     mcf->sh = NULL;
     *     mcf->shpool = NULL;
     */

    if (ngx_array_init(&mcf->creds, cf->pool, 4,
                       sizeof(ngx_http_fanbase_cred_t *))
        != NGX_OK
        || ngx_array_init(&mcf->targets, cf->pool, 4,
                          sizeof(ngx_http_fanbase_loc_conf_t *))
           != NGX_OK
        || ngx_array_init(&mcf->pools, cf->pool, 2,
                          sizeof(ngx_http_fanbase_peer_pool_t *))
           != NGX_OK)
    {
        return NULL;
    }

    /* the embedded engine: the shared memory zone alone */
    mcf->store = &ngx_http_fanbase_store_zone;

    mcf->deliver_concurrency = NGX_CONF_UNSET_UINT;
    mcf->max_connections = NGX_CONF_UNSET_UINT;
    mcf->keepalive = NGX_CONF_UNSET_UINT;
    mcf->state_sync = NGX_CONF_UNSET;
    mcf->notify_horizon = NGX_CONF_UNSET;
    mcf->notify_concurrency = NGX_CONF_UNSET_UINT;
    mcf->redis_timeout = NGX_CONF_UNSET_MSEC;

    return mcf;
}


static char *
ngx_http_fanbase_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_fanbase_main_conf_t *mcf = conf;

    ngx_conf_init_uint_value(mcf->deliver_concurrency, 16);
    ngx_conf_init_uint_value(mcf->max_connections, 32);

    /*
     * every connection the cap lets a worker open may stay idle: a smaller
     * cache closes and reopens connections whenever more are in flight
     * than it keeps (decisions.md)
     */

    if (mcf->keepalive == NGX_CONF_UNSET_UINT) {
        mcf->keepalive = mcf->max_connections;

    } else if (mcf->keepalive > mcf->max_connections) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanbase_keepalive %ui\" keeps more idle "
                           "connections than \"fanbase_max_connections "
                           "%ui\" lets a worker open",
                           mcf->keepalive, mcf->max_connections);
        return NGX_CONF_ERROR;
    }
    ngx_conf_init_value(mcf->notify_horizon, 24 * 3600);
    ngx_conf_init_uint_value(mcf->notify_concurrency, 8);

    /*
     * libcurl holds transfers beyond fanbase_max_connections in a queue
     * where their timeout runs: more at once than that would fail
     * deliveries that only waited
     */

    if (mcf->deliver_concurrency > mcf->max_connections) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"fanbase_deliver_concurrency %ui\" is more "
                           "than \"fanbase_max_connections %ui\": %ui "
                           "deliveries at once", mcf->deliver_concurrency,
                           mcf->max_connections, mcf->max_connections);
        mcf->deliver_concurrency = mcf->max_connections;
    }

    if (mcf->notify_concurrency > mcf->max_connections) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"fanbase_notify_concurrency %ui\" is more "
                           "than \"fanbase_max_connections %ui\": %ui "
                           "notifications at once", mcf->notify_concurrency,
                           mcf->max_connections, mcf->max_connections);
        mcf->notify_concurrency = mcf->max_connections;
    }

    if (mcf->state_sync == 1 && mcf->state.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"fanbase_state_sync on\" requires \"state=\" "
                           "in \"fanbase_zone\"");
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(mcf->state_sync, 0);

    ngx_conf_init_msec_value(mcf->redis_timeout, 1000);

    if (mcf->redis == NULL) {
        if (mcf->redis_password.data) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"fanbase_redis_password_file\" is set but "
                               "\"fanbase_redis\" is not");
            return NGX_CONF_ERROR;
        }

    } else {
        if (mcf->shm_zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"fanbase_redis\" requires \"fanbase_zone\": "
                               "the zone holds the tokens and the cache in "
                               "front of Redis");
            return NGX_CONF_ERROR;
        }

        mcf->redis->password = mcf->redis_password;
        mcf->redis->timeout = mcf->redis_timeout;
        mcf->store = &ngx_http_fanbase_store_redis;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_fanbase_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_fanbase_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->api = { 0, NULL };
     *     conf->queue_url = { 0, NULL };
     *     conf->token_url = { 0, NULL };
     *     conf->client_id = { 0, NULL };
     *     conf->client_secret = { 0, NULL };
     *     conf->access_token = { 0, NULL };
     *     conf->access_token_path = { 0, NULL };
     *     conf->scope = 0;
     *     conf->upstream.ssl_trusted_certificate = { 0, NULL };
     *     conf->cred = NULL;
     *     conf->status_id = NULL;
     *     conf->handler = 0;
     */

    conf->upstream.connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.ssl_verify = NGX_CONF_UNSET;
    conf->status_refresh = NGX_CONF_UNSET_MSEC;
    conf->store_payload = NGX_CONF_UNSET;
    conf->idempotency_window = NGX_CONF_UNSET;
    conf->deliver_horizon = NGX_CONF_UNSET;
    conf->track_horizon = NGX_CONF_UNSET;
    conf->transaction_events = NGX_CONF_UNSET_UINT;
    conf->long_poll = NGX_CONF_UNSET_MSEC;
    conf->webhook_secrets = NGX_CONF_UNSET_PTR;
    conf->webhook_auth = NGX_CONF_UNSET_UINT;
    conf->webhook_tolerance = NGX_CONF_UNSET;
    conf->webhook_dedup = NGX_CONF_UNSET;
    conf->webhook_create = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_fanbase_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_fanbase_loc_conf_t *prev = parent;
    ngx_http_fanbase_loc_conf_t *conf = child;

    ngx_conf_merge_str_value(conf->api, prev->api, "");
    ngx_conf_merge_str_value(conf->token_url, prev->token_url, "");
    ngx_conf_merge_str_value(conf->client_id, prev->client_id, "");
    ngx_conf_merge_str_value(conf->client_secret, prev->client_secret, "");
    ngx_conf_merge_str_value(conf->access_token, prev->access_token, "");
    ngx_conf_merge_str_value(conf->access_token_path,
                             prev->access_token_path, "");

    ngx_conf_merge_msec_value(conf->upstream.connect_timeout,
                              prev->upstream.connect_timeout, 5000);
    ngx_conf_merge_msec_value(conf->upstream.timeout,
                              prev->upstream.timeout, 15000);
    ngx_conf_merge_value(conf->upstream.ssl_verify,
                         prev->upstream.ssl_verify, 1);
    ngx_conf_merge_str_value(conf->upstream.ssl_trusted_certificate,
                             prev->upstream.ssl_trusted_certificate, "");

    ngx_conf_merge_msec_value(conf->status_refresh, prev->status_refresh,
                              1000);
    ngx_conf_merge_value(conf->store_payload, prev->store_payload, 0);

    ngx_conf_merge_str_value(conf->transaction_path, prev->transaction_path,
                             "/transactions");
    conf->transaction_path_plain =
        fanbase_json_is_plain(conf->transaction_path.data,
                              conf->transaction_path.len);
    ngx_conf_merge_sec_value(conf->idempotency_window,
                             prev->idempotency_window, 86400);
    ngx_conf_merge_sec_value(conf->deliver_horizon, prev->deliver_horizon,
                             6 * 3600);
    ngx_conf_merge_sec_value(conf->track_horizon, prev->track_horizon,
                             24 * 3600);
    ngx_conf_merge_uint_value(conf->transaction_events,
                              prev->transaction_events, 16);
    ngx_conf_merge_msec_value(conf->long_poll, prev->long_poll, 30000);

    ngx_conf_merge_ptr_value(conf->webhook_secrets, prev->webhook_secrets,
                             NULL);

    if (conf->webhook_auth == NGX_CONF_UNSET_UINT) {
        conf->webhook_auth = prev->webhook_auth;
        conf->webhook_header = prev->webhook_header;
        conf->webhook_encoding = prev->webhook_encoding;
    }

    if (conf->webhook_auth == NGX_CONF_UNSET_UINT) {
        conf->webhook_auth = NGX_HTTP_FANBASE_AUTH_STANDARD;
    }

    ngx_conf_merge_sec_value(conf->webhook_tolerance,
                             prev->webhook_tolerance, 300);
    ngx_conf_merge_sec_value(conf->webhook_dedup, prev->webhook_dedup,
                             3 * 86400);
    ngx_conf_merge_value(conf->webhook_create, prev->webhook_create, 1);

    if (conf->handler == 0) {
        return NGX_CONF_OK;
    }

    return ngx_http_fanbase_check_handler(cf, conf);
}


/* a location with a handler has all it needs, or nginx -t says what lacks */

static char *
ngx_http_fanbase_check_handler(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf)
{
    u_char                        *p;
    const char                    *name;
    ngx_http_fanbase_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanbase_module);

    name = (conf->handler == NGX_HTTP_FANBASE_SUBMIT) ? "fanbase_submit"
           : (conf->handler == NGX_HTTP_FANBASE_STATUS) ? "fanbase_status"
           : (conf->handler == NGX_HTTP_FANBASE_WEBHOOK) ? "fanbase_webhook"
           : (conf->handler == NGX_HTTP_FANBASE_HEALTH) ? "fanbase_health"
           : (conf->handler == NGX_HTTP_FANBASE_METRICS) ? "fanbase_metrics"
           : "fanbase_transaction";

    if (mcf->shm_zone == NULL) {
        ngx_http_fanbase_handler_error(cf, conf,
                           "\"%s\" requires \"fanbase_zone\" in the http "
                           "block", name);
        return NGX_CONF_ERROR;
    }

    /*
     * health and metrics read the zone and every credential set: they
     * need nothing
     */

    if (conf->handler == NGX_HTTP_FANBASE_HEALTH
        || conf->handler == NGX_HTTP_FANBASE_METRICS)
    {
        return NGX_CONF_OK;
    }

    /*
     * transactions are read from the zone only, and webhooks update it:
     * neither calls Fanbase, both see the records of one credential set
     */

    if (conf->handler == NGX_HTTP_FANBASE_TRANSACTION
        || conf->handler == NGX_HTTP_FANBASE_WEBHOOK)
    {
        if (ngx_http_fanbase_set_scope(cf, conf, name) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }

        if (conf->handler == NGX_HTTP_FANBASE_TRANSACTION) {
            return NGX_CONF_OK;
        }

        return ngx_http_fanbase_webhook_keys(cf, conf);
    }

    if (conf->api.len == 0) {
        ngx_http_fanbase_handler_error(cf, conf,
                           "\"%s\" requires \"fanbase_api\"", name);
        return NGX_CONF_ERROR;
    }

    if (conf->access_token.len && conf->client_secret.len) {
        ngx_http_fanbase_handler_error(cf, conf,
                           "\"%s\": \"fanbase_access_token_file\" and "
                           "\"fanbase_client_secret_file\" both apply; "
                           "keep one", name);
        return NGX_CONF_ERROR;
    }

    if (conf->access_token.len == 0) {

        if (conf->client_secret.len == 0) {
            ngx_http_fanbase_handler_error(cf, conf,
                               "\"%s\" requires credentials: "
                               "\"fanbase_client_secret_file\" (with "
                               "\"fanbase_client_id\" and "
                               "\"fanbase_token_url\") or "
                               "\"fanbase_access_token_file\"", name);
            return NGX_CONF_ERROR;
        }

        if (conf->client_id.len == 0) {
            ngx_http_fanbase_handler_error(cf, conf,
                               "\"%s\" requires \"fanbase_client_id\" with "
                               "\"fanbase_client_secret_file\"", name);
            return NGX_CONF_ERROR;
        }

        if (conf->token_url.len == 0) {
            ngx_http_fanbase_handler_error(cf, conf,
                               "\"%s\" requires \"fanbase_token_url\" with "
                               "\"fanbase_client_secret_file\"", name);
            return NGX_CONF_ERROR;
        }
    }

    conf->queue_url.len = conf->api.len
                          + sizeof(NGX_HTTP_FANBASE_QUEUE_PATH) - 1;
    conf->queue_url.data = ngx_pnalloc(cf->pool, conf->queue_url.len + 1);
    if (conf->queue_url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(conf->queue_url.data, conf->api.data, conf->api.len);
    p = ngx_cpymem(p, NGX_HTTP_FANBASE_QUEUE_PATH,
                   sizeof(NGX_HTTP_FANBASE_QUEUE_PATH) - 1);
    *p = '\0';

    conf->cred = ngx_http_fanbase_token_cred(cf, mcf, conf);
    if (conf->cred == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_fanbase_set_scope(cf, conf, name) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->async && ngx_http_fanbase_add_target(cf, mcf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->async && mcf->redis != NULL
        && ngx_http_fanbase_store_redis_loc_conf(cf, mcf, conf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* the synchronous submission goes through nginx's upstream */

    if (conf->handler == NGX_HTTP_FANBASE_SUBMIT && !conf->async
        && ngx_http_fanbase_proxy_conf(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The scope of the credential set in effect: whose records a location
 * sees in the zone.  The API and the client id name it (or the API and
 * the path of the fixed token's file): not the secret, so that a new
 * secret keeps the records, and not the token URL, which says where the
 * secret is traded, not whose the records are.
 */

static char *
ngx_http_fanbase_set_scope(ngx_conf_t *cf, ngx_http_fanbase_loc_conf_t *conf,
    const char *name)
{
    ngx_md5_t  md5;
    u_char     digest[16];

    if (conf->api.len == 0
        || (conf->client_id.len == 0 && conf->access_token_path.len == 0))
    {
        ngx_http_fanbase_handler_error(cf, conf,
                           "\"%s\" requires \"fanbase_api\" and "
                           "\"fanbase_client_id\" (or "
                           "\"fanbase_access_token_file\"): it sees the "
                           "transactions of that credential set only", name);
        return NGX_CONF_ERROR;
    }

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, conf->api.data, conf->api.len);

    /* a fixed token, when there is one, is the credential set in use */

    if (conf->access_token_path.len) {
        ngx_md5_update(&md5, "\0token file\0", sizeof("\0token file\0") - 1);
        ngx_md5_update(&md5, conf->access_token_path.data,
                       conf->access_token_path.len);

    } else {
        ngx_md5_update(&md5, "\0client\0", sizeof("\0client\0") - 1);
        ngx_md5_update(&md5, conf->client_id.data, conf->client_id.len);
    }

    ngx_md5_final(digest, &md5);

    ngx_memcpy(&conf->scope, digest, sizeof(uint64_t));

    return NGX_CONF_OK;
}


/*
 * A "fanbase_submit async" location delivers its transactions: they name
 * it in the zone (and the state file) by a digest of where and as whom
 * they go, which a reload or a restart with the same settings finds again.
 */

static ngx_int_t
ngx_http_fanbase_add_target(ngx_conf_t *cf, ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_loc_conf_t *conf)
{
    ngx_md5_t                          md5;
    ngx_uint_t                         i;
    ngx_http_fanbase_loc_conf_t      **lcfp;
    ngx_http_fanbase_upstream_conf_t  *u;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, conf->queue_url.data, conf->queue_url.len + 1);
    ngx_md5_update(&md5, conf->cred->key, sizeof(conf->cred->key));
    ngx_md5_final(conf->target, &md5);

    u = &conf->upstream;

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, &u->connect_timeout, sizeof(ngx_msec_t));
    ngx_md5_update(&md5, &u->timeout, sizeof(ngx_msec_t));
    ngx_md5_update(&md5, &u->ssl_verify, sizeof(ngx_flag_t));

    if (u->ssl_trusted_certificate.len) {
        ngx_md5_update(&md5, u->ssl_trusted_certificate.data,
                       u->ssl_trusted_certificate.len);
    }

    ngx_md5_final(conf->target + NGX_HTTP_FANBASE_ROUTE_LEN, &md5);

    lcfp = mcf->targets.elts;

    for (i = 0; i < mcf->targets.nelts; i++) {
        if (ngx_memcmp(lcfp[i]->target, conf->target,
                       NGX_HTTP_FANBASE_TARGET_LEN)
            == 0)
        {
            return NGX_OK;
        }
    }

    lcfp = ngx_array_push(&mcf->targets);
    if (lcfp == NULL) {
        return NGX_ERROR;
    }

    *lcfp = conf;

    return NGX_OK;
}


/*
 * A webhook location has secrets, in the format its scheme wants: never
 * a location that accepts everything by accident.
 */

static char *
ngx_http_fanbase_webhook_keys(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf)
{
    int             n;
    u_char         *key;
    ngx_uint_t      i, raw;
    ngx_keyval_t   *kv;

    if (conf->webhook_secrets == NULL) {
        ngx_http_fanbase_handler_error(cf, conf,
                           "\"fanbase_webhook\" requires at least one "
                           "\"fanbase_webhook_secret_file\"");
        return NGX_CONF_ERROR;
    }

    if (conf->webhook_secrets->nelts > NGX_HTTP_FANBASE_SECRETS_MAX) {
        ngx_http_fanbase_handler_error(cf, conf,
                           "\"fanbase_webhook\": more than %d "
                           "\"fanbase_webhook_secret_file\"",
                           NGX_HTTP_FANBASE_SECRETS_MAX);
        return NGX_CONF_ERROR;
    }

    conf->webhook_keys = ngx_pcalloc(cf->pool, conf->webhook_secrets->nelts
                                               * sizeof(fanbase_secret_t));
    if (conf->webhook_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    /* Standard Webhooks keys are "whsec_<base64>"; the others, any line */

    raw = (conf->webhook_auth != NGX_HTTP_FANBASE_AUTH_STANDARD);
    kv = conf->webhook_secrets->elts;

    for (i = 0; i < conf->webhook_secrets->nelts; i++) {
        key = ngx_pnalloc(cf->pool, FANBASE_SIG_KEY_MAX);
        if (key == NULL) {
            return NGX_CONF_ERROR;
        }

        n = fanbase_sig_parse_secret(kv[i].value.data, kv[i].value.len, raw,
                                     key, FANBASE_SIG_KEY_MAX);
        if (n <= 0) {
            ngx_http_fanbase_handler_error(cf, conf,
                               "\"fanbase_webhook_secret_file\": \"%V\" "
                               "must hold \"whsec_\" and the base64 of a "
                               "key", &kv[i].key);
            return NGX_CONF_ERROR;
        }

        conf->webhook_keys[i].data = key;
        conf->webhook_keys[i].len = n;
    }

    conf->webhook_nkeys = conf->webhook_secrets->nelts;

    return NGX_CONF_OK;
}


/* merging happens at the end of the http block: name the location */

static void
ngx_http_fanbase_handler_error(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *conf, const char *fmt, ...)
{
    u_char   *p;
    va_list   args;
    u_char    buf[NGX_MAX_CONF_ERRSTR];

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + NGX_MAX_CONF_ERRSTR, fmt, args);
    va_end(args);

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%*s in %V:%ui",
                  p - buf, buf, conf->handler_file, conf->handler_line);
}


static char *
ngx_http_fanbase_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanbase_main_conf_t *mcf = conf;

    u_char           *p;
    ssize_t           size;
    ngx_str_t        *value, name, s, dir;
    ngx_uint_t        i;
    ngx_file_info_t   fi;

    if (mcf->shm_zone != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected "
                           "\"zone=name:size\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 5;

    p = (u_char *) ngx_strchr(name.data, ':');

    if (p == NULL || p == name.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected "
                           "\"zone=name:size\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.len = p - name.data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, the least is %uzk",
                           &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_fanbase_module);
    if (mcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already used", &name);
        return NGX_CONF_ERROR;
    }

    mcf->shm_zone->init = ngx_http_fanbase_zone_init;
    mcf->parts = ngx_http_fanbase_zone_parts;
    mcf->shm_zone->data = mcf;

    /* prefault=on by default, by measurement: see docs/decisions.md */

    mcf->prefault = 1;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "prefault=on") == 0) {
            mcf->prefault = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "prefault=off") == 0) {
            mcf->prefault = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "state=", 6) != 0
            || value[i].len == 6
            || mcf->state.data != NULL)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected "
                               "\"state=path\" or \"prefault=on|off\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        mcf->state.data = value[i].data + 6;
        mcf->state.len = value[i].len - 6;

        /* ngx_conf_full_name() terminates it with "\0" */

        if (ngx_conf_full_name(cf->cycle, &mcf->state, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        dir = mcf->state;

        while (dir.len && dir.data[dir.len - 1] != '/') {
            dir.len--;
        }

        dir.data = ngx_pstrdup(cf->pool, &dir);
        if (dir.data == NULL || dir.len == 0) {
            return NGX_CONF_ERROR;
        }

        dir.data[dir.len - 1] = '\0';

#if (NGX_THREADS)
        /* the pool "default", 32 threads unless "thread_pool" says otherwise */

        mcf->state_pool = ngx_thread_pool_add(cf, NULL);
        if (mcf->state_pool == NULL) {
            return NGX_CONF_ERROR;
        }
#endif

        if (dir.len > 1 && ngx_file_info(dir.data, &fi) == NGX_FILE_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "the directory of \"state=%V\" does not "
                               "exist", &mcf->state);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * What libcurl will make of a URL (url->data ends with a '\0', as every
 * argument of a directive): a port it can use, and no credentials in it,
 * which would go to Fanbase with every call and into logs
 */

static ngx_int_t
ngx_http_fanbase_url_check(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t *url)
{
    char       *user;
    CURLU      *u;
    CURLUcode   rc;

    u = curl_url();
    if (u == NULL) {
        return NGX_ERROR;
    }

    rc = curl_url_set(u, CURLUPART_URL, (char *) url->data, 0);

    if (rc != CURLUE_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": %s", url,
                           &cmd->name, curl_url_strerror(rc));
        curl_url_cleanup(u);
        return NGX_ERROR;
    }

    user = NULL;

    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        curl_free(user);
        curl_url_cleanup(u);

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL in \"%V\": it holds a user name or "
                           "password; credentials go in "
                           "\"fanbase_client_id\" and "
                           "\"fanbase_client_secret_file\"", &cmd->name);
        return NGX_ERROR;
    }

    curl_url_cleanup(u);

    return NGX_OK;
}


static char *
ngx_http_fanbase_set_url_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    u_char     *host, *last;
    ngx_str_t  *field, *value, url;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    if (url.len >= 7
        && ngx_strncasecmp(url.data, (u_char *) "http://", 7) == 0)
    {
        host = url.data + 7;

    } else if (url.len >= 8
               && ngx_strncasecmp(url.data, (u_char *) "https://", 8) == 0)
    {
        host = url.data + 8;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": it must start with "
                           "\"http://\" or \"https://\"", &url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    last = url.data + url.len;

    if (host == last || *host == '/' || *host == ':' || *host == '?') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\" in \"%V\": no host",
                           &url, &cmd->name);
        return NGX_CONF_ERROR;
    }

    for (p = (char *) url.data; p < (char *) last; p++) {
        if ((u_char) *p <= 0x20 || (u_char) *p >= 0x7f || *p == '#') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid URL \"%V\" in \"%V\": invalid "
                               "character", &url, &cmd->name);
            return NGX_CONF_ERROR;
        }

        if (*p == '$') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid URL \"%V\" in \"%V\": the "
                               "directive takes no variables", &url,
                               &cmd->name);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_fanbase_url_check(cf, cmd, &url) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* "https://connect.fanbase.com.br/" is the base "...com.br" */

    while (url.len && url.data[url.len - 1] == '/'
           && cmd->offset == offsetof(ngx_http_fanbase_loc_conf_t, api))
    {
        url.len--;
    }

    *field = url;

    return NGX_CONF_OK;
}


/*
 * fanbase_redis URL [prefix=NAME] [fallback=off|local] [retain=TIME]: the
 * shared engine (ngx_http_fanbase_store_redis.c)
 */

static char *
ngx_http_fanbase_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanbase_main_conf_t *mcf = conf;

    char                           *rv;
    u_char                         *p;
    ngx_str_t                      *value, s;
    ngx_uint_t                      i;
    ngx_msec_t                      retain;
    ngx_http_fanbase_redis_conf_t  *rcf;

    if (mcf->redis != NULL) {
        return "is duplicate";
    }

    if (cf->args->nelts > 5) {
        return "takes an URL and at most \"prefix=\", \"fallback=\" and "
               "\"retain=\"";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_redis_conf_t));
    if (rcf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    rv = ngx_http_fanbase_redis_parse_url(cf, rcf, &value[1]);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    ngx_str_set(&rcf->prefix, "fanbase");
    rcf->fallback = NGX_HTTP_FANBASE_REDIS_FALLBACK_OFF;
    rcf->retain = 86400000;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "prefix=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            if (s.len == 0 || s.len > 64) {
                goto invalid;
            }

            /* within a hash tag: no braces, no blanks, no colons */

            for (p = s.data; p < s.data + s.len; p++) {
                if (*p <= ' ' || *p >= 0x7f || *p == '{' || *p == '}'
                    || *p == ':')
                {
                    goto invalid;
                }
            }

            rcf->prefix = s;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fallback=off") == 0) {
            rcf->fallback = NGX_HTTP_FANBASE_REDIS_FALLBACK_OFF;
            continue;
        }

        if (ngx_strcmp(value[i].data, "fallback=local") == 0) {
            rcf->fallback = NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL;
            continue;
        }

        if (ngx_strncmp(value[i].data, "retain=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            retain = ngx_parse_time(&s, 0);
            if (retain == (ngx_msec_t) NGX_ERROR || retain < 1000) {
                goto invalid;
            }

            rcf->retain = retain;
            continue;
        }

        goto invalid;
    }

    rcf->channel.len = rcf->prefix.len + sizeof(":changes") - 1;
    rcf->channel.data = ngx_pnalloc(cf->pool, rcf->channel.len + 1);
    if (rcf->channel.data == NULL) {
        return NGX_CONF_ERROR;
    }

    *ngx_sprintf(rcf->channel.data, "%V:changes", &rcf->prefix) = '\0';

    mcf->redis = rcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"fanbase_redis\": invalid parameter \"%V\" (known: "
                       "prefix=NAME without \"{}:\" nor blanks, at most 64 "
                       "characters; fallback=off|local; retain=TIME, at "
                       "least 1s)", &value[i]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_fanbase_redis_password(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_fanbase_main_conf_t *mcf = conf;

    if (mcf->redis_password.data) {
        return "is duplicate";
    }

    return ngx_http_fanbase_read_secret(cf, cmd, &mcf->redis_password);
}


/* a one-line secret: the secret or a token, read once, at startup */

static char *
ngx_http_fanbase_set_file_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char                         *rv;
    ngx_str_t                    *field, *value;
    ngx_http_fanbase_loc_conf_t  *lcf;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    rv = ngx_http_fanbase_read_secret(cf, cmd, field);

    if (rv != NGX_CONF_OK
        || cmd->offset != offsetof(ngx_http_fanbase_loc_conf_t, access_token))
    {
        return rv;
    }

    /* a fixed token's credential set is named by its file, not by it */

    lcf = conf;
    value = cf->args->elts;
    lcf->access_token_path = value[1];

    if (ngx_conf_full_name(cf->cycle, &lcf->access_token_path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the first argument names a file of one line: read it into *field */

static char *
ngx_http_fanbase_read_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *field)
{
    u_char           *buf;
    size_t            len, i;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t        *value, path;
    ngx_file_info_t   fi;

    value = cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot open \"%s\"", &cmd->name,
                           path.data);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot stat \"%s\"", &cmd->name,
                           path.data);
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    len = (size_t) ngx_file_size(&fi);

    if (len > NGX_HTTP_FANBASE_TOKEN_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%s\" is larger than %d bytes",
                           &cmd->name, path.data, NGX_HTTP_FANBASE_TOKEN_MAX);
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    buf = ngx_pnalloc(cf->pool, len + 1);
    if (buf == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = ngx_read_fd(fd, buf, len);

    ngx_close_file(fd);

    if (n == -1 || (size_t) n != len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot read \"%s\"", &cmd->name,
                           path.data);
        return NGX_CONF_ERROR;
    }

    /* trailing newlines and blanks are not part of it */

    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'
                   || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\": \"%s\" is empty", &cmd->name, path.data);
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < len; i++) {
        if (buf[i] < 0x20 || buf[i] == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"%s\" must hold one line",
                               &cmd->name, path.data);
            return NGX_CONF_ERROR;
        }

        if (cmd->offset == offsetof(ngx_http_fanbase_loc_conf_t, access_token)
            && (buf[i] == ' ' || buf[i] >= 0x80))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\": \"%s\" must hold a token of visible "
                               "ASCII characters", &cmd->name, path.data);
            return NGX_CONF_ERROR;
        }
    }

    buf[len] = '\0';

    field->data = buf;
    field->len = len;

    return NGX_CONF_OK;
}


static char *
ngx_http_fanbase_set_readable_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    char  *p = conf;

    ngx_fd_t    fd;
    ngx_str_t  *field, *value;

    field = (ngx_str_t *) (p + cmd->offset);

    if (field->data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    *field = value[1];

    if (ngx_conf_full_name(cf->cycle, field, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(field->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%V\": cannot open \"%s\"", &cmd->name,
                           field->data);
        return NGX_CONF_ERROR;
    }

    ngx_close_file(fd);

    return NGX_CONF_OK;
}


static char *
ngx_http_fanbase_submit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanbase_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (cf->args->nelts == 2) {
        value = cf->args->elts;

        if (ngx_strcmp(value[1].data, "async") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected "
                               "\"async\"", &value[1]);
            return NGX_CONF_ERROR;
        }

        lcf->async = 1;
    }

    return ngx_http_fanbase_set_handler(cf, lcf, NGX_HTTP_FANBASE_SUBMIT,
                                        ngx_http_fanbase_submit_handler);
}


static char *
ngx_http_fanbase_webhook(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_fanbase_set_handler(cf, conf, NGX_HTTP_FANBASE_WEBHOOK,
                                        ngx_http_fanbase_webhook_handler);
}


/* a URL, and where it was set: its errors come at the end of the block */

static char *
ngx_http_fanbase_notify(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanbase_main_conf_t *mcf = conf;

    char  *rv;

    rv = ngx_http_fanbase_set_url_slot(cf, cmd, conf);

    if (rv == NGX_CONF_OK) {
        mcf->notify_file = &cf->conf_file->file.name;
        mcf->notify_line = cf->conf_file->line;
    }

    return rv;
}


static char *
ngx_http_fanbase_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_fanbase_set_handler(cf, conf, NGX_HTTP_FANBASE_METRICS,
                                        ngx_http_fanbase_metrics_handler);
}


static char *
ngx_http_fanbase_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_fanbase_set_handler(cf, conf, NGX_HTTP_FANBASE_HEALTH,
                                        ngx_http_fanbase_health_handler);
}


/* repeatable: every file holds a secret that verifies (rotation) */

static char *
ngx_http_fanbase_webhook_secret(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_fanbase_loc_conf_t *lcf = conf;

    ngx_str_t     *value;
    ngx_keyval_t  *kv;

    if (lcf->webhook_secrets == NGX_CONF_UNSET_PTR) {
        lcf->webhook_secrets = ngx_array_create(cf->pool, 2,
                                                sizeof(ngx_keyval_t));
        if (lcf->webhook_secrets == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    kv = ngx_array_push(lcf->webhook_secrets);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;
    kv->key = value[1];
    ngx_str_null(&kv->value);

    return ngx_http_fanbase_read_secret(cf, cmd, &kv->value);
}


/* standard | hmac HEADER [hex|base64] | token HEADER */

static char *
ngx_http_fanbase_webhook_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanbase_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->webhook_auth != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    lcf->webhook_encoding = FANBASE_SIG_HEX;

    if (ngx_strcmp(value[1].data, "standard") == 0 && cf->args->nelts == 2) {
        lcf->webhook_auth = NGX_HTTP_FANBASE_AUTH_STANDARD;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "hmac") == 0 && cf->args->nelts >= 3) {
        lcf->webhook_auth = NGX_HTTP_FANBASE_AUTH_HMAC;
        lcf->webhook_header = value[2];

        if (cf->args->nelts == 4) {
            if (ngx_strcmp(value[3].data, "base64") == 0) {
                lcf->webhook_encoding = FANBASE_SIG_BASE64;

            } else if (ngx_strcmp(value[3].data, "hex") != 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid encoding \"%V\", expected "
                                   "\"hex\" or \"base64\"", &value[3]);
                return NGX_CONF_ERROR;
            }
        }

        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "token") == 0 && cf->args->nelts == 3) {
        lcf->webhook_auth = NGX_HTTP_FANBASE_AUTH_TOKEN;
        lcf->webhook_header = value[2];
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid \"%V\", expected \"standard\", \"hmac "
                       "HEADER [hex|base64]\" or \"token HEADER\"",
                       &cmd->name);

    return NGX_CONF_ERROR;
}


/*
 * After the http block: the response filter, $request_id for request ids,
 * and outbound webhooks, which need their secret and take the http level's
 * timeouts
 */

static ngx_int_t
ngx_http_fanbase_postconfiguration(ngx_conf_t *cf)
{
    int                            n;
    u_char                        *key;
    ngx_http_fanbase_loc_conf_t   *http, *lcf;
    ngx_http_fanbase_main_conf_t  *mcf;

    if (ngx_http_fanbase_response_filter_init(cf) != NGX_OK
        || ngx_http_fanbase_metrics_init(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_fanbase_rid_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanbase_module);

    if (mcf->notify_url.len == 0) {
        if (mcf->notify_secret.len) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"fanbase_notify_secret_file\" is set but "
                          "\"fanbase_notify\" is not");
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    if (mcf->shm_zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanbase_notify\" requires \"fanbase_zone\" in "
                      "%V:%ui", mcf->notify_file, mcf->notify_line);
        return NGX_ERROR;
    }

    key = ngx_pnalloc(cf->pool, FANBASE_SIG_KEY_MAX);
    if (key == NULL) {
        return NGX_ERROR;
    }

    n = (mcf->notify_secret.len == 0)
        ? -1
        : fanbase_sig_parse_secret(mcf->notify_secret.data,
                                   mcf->notify_secret.len, 0, key,
                                   FANBASE_SIG_KEY_MAX);
    if (n <= 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanbase_notify\" requires "
                      "\"fanbase_notify_secret_file\" with \"whsec_\" and "
                      "the base64 of a key in %V:%ui", mcf->notify_file,
                      mcf->notify_line);
        return NGX_ERROR;
    }

    mcf->notify_key.data = key;
    mcf->notify_key.len = n;

    /* the http level's settings, with the defaults of the directives */

    http = ngx_http_conf_get_module_loc_conf(cf, ngx_http_fanbase_module);

    lcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_loc_conf_t));
    if (lcf == NULL) {
        return NGX_ERROR;
    }

    lcf->upstream = http->upstream;

    if (lcf->upstream.connect_timeout == NGX_CONF_UNSET_MSEC) {
        lcf->upstream.connect_timeout = 5000;
    }

    if (lcf->upstream.timeout == NGX_CONF_UNSET_MSEC) {
        lcf->upstream.timeout = 15000;
    }

    if (lcf->upstream.ssl_verify == NGX_CONF_UNSET) {
        lcf->upstream.ssl_verify = 1;
    }

    if (lcf->upstream.ssl_trusted_certificate.data == NULL) {
        ngx_str_set(&lcf->upstream.ssl_trusted_certificate, "");
    }

    mcf->notify_lcf = lcf;

    return NGX_OK;
}


static char *
ngx_http_fanbase_transaction(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *rv;

    rv = ngx_http_fanbase_set_handler(cf, conf, NGX_HTTP_FANBASE_TRANSACTION,
                                      ngx_http_fanbase_transaction_handler);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_http_fanbase_set_id_value(cf, conf);
}


/* "/transactions/" and "/transactions" give the same links */

static char *
ngx_http_fanbase_transaction_path(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *path = data;

    while (path->len > 1 && path->data[path->len - 1] == '/') {
        path->len--;
    }

    if (path->len == 0 || path->data[0] != '/') {
        return "must start with \"/\"";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_fanbase_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_fanbase_loc_conf_t *lcf = conf;

    char  *rv;

    rv = ngx_http_fanbase_set_handler(cf, lcf, NGX_HTTP_FANBASE_STATUS,
                                      ngx_http_fanbase_status_handler);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    return ngx_http_fanbase_set_id_value(cf, lcf);
}


/* the optional id argument of fanbase_status and fanbase_transaction */

static char *
ngx_http_fanbase_set_id_value(ngx_conf_t *cf, ngx_http_fanbase_loc_conf_t *lcf)
{
    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (cf->args->nelts == 1) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    lcf->status_id = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lcf->status_id == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lcf->status_id;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_fanbase_set_handler(ngx_conf_t *cf, ngx_http_fanbase_loc_conf_t *lcf,
    ngx_uint_t handler, ngx_http_handler_pt h)
{
    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->handler) {
        return "is duplicate";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "another content handler is already set in this "
                           "location");
        return NGX_CONF_ERROR;
    }

    lcf->handler = handler;
    lcf->handler_file = &cf->conf_file->file.name;
    lcf->handler_line = cf->conf_file->line;
    clcf->handler = h;

    return NGX_CONF_OK;
}
