
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_health: what a load balancer or an operator asks of the edge.
 * One JSON document from the zone: each credential set's token (its state,
 * never the token), the time of Fanbase's last answer, the zone's fill,
 * the transactions, the notices waiting, the open breakers, and the
 * engine of the transactions.  200 while the edge can take submissions,
 * 503 when it cannot: the zone refused the last new transaction, no
 * credential set can have a token, or the shared engine (fanbase_redis
 * without fallback=local) is not connected.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_redis.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_txn.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_health.h"


/* per credential set: its name and last error escaped, and the rest */
#define NGX_HTTP_FANBASE_HEALTH_CRED   (256 + 2 * 6 * 256)
#define NGX_HTTP_FANBASE_HEALTH_REST   1024
#define NGX_HTTP_FANBASE_HEALTH_BREAKER 160


static u_char *ngx_http_fanbase_health_creds(u_char *p,
    ngx_http_fanbase_main_conf_t *mcf, ngx_pool_t *pool,
    ngx_uint_t *usable);


ngx_int_t
ngx_http_fanbase_health_handler(ngx_http_request_t *r)
{
    u_char                         *p, *creds, *last;
    size_t                          len, used;
    uint64_t                        ok;
    ngx_int_t                       rc;
    ngx_str_t                       json, value;
    ngx_uint_t                      i, usable, status, up, alone;
    const char                     *state;
    ngx_http_fanbase_shctx_t       *sh;
    ngx_http_fanbase_main_conf_t   *mcf;
    ngx_http_fanbase_txn_health_t   th;

    if (ngx_http_fanbase_rid_set(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_fanbase_response_not_allowed(r, "GET, HEAD",
                                                     "health is GET or HEAD "
                                                     "only");
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);
    sh = mcf->sh;

    ngx_http_fanbase_txn_health(mcf, &th);

    /* the credential sets first: the verdict depends on them */

    creds = ngx_pnalloc(r->pool, sizeof("\"credentials\":[]")
                                 + mcf->creds.nelts
                                   * NGX_HTTP_FANBASE_HEALTH_CRED);
    if (creds == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = ngx_http_fanbase_health_creds(creds, mcf, r->pool, &usable);

    /*
     * the shared engine, as this worker's connection sees it: down, the
     * host answers accepts 503, or works alone with fallback=local
     */

    up = (mcf->redis == NULL) || ngx_http_fanbase_redis_up();
    alone = !up
            && mcf->redis->fallback == NGX_HTTP_FANBASE_REDIS_FALLBACK_LOCAL;

    if (th.full || (mcf->creds.nelts && usable == 0) || (!up && !alone)) {
        state = "unavailable";
        status = NGX_HTTP_SERVICE_UNAVAILABLE;

    } else if (th.nbreakers || usable < mcf->creds.nelts || alone) {
        state = "degraded";
        status = NGX_HTTP_OK;

    } else {
        state = "ok";
        status = NGX_HTTP_OK;
    }

    len = sizeof("{\"status\":\"unavailable\",") + (last - creds)
          + th.nbreakers * NGX_HTTP_FANBASE_HEALTH_BREAKER
          + NGX_HTTP_FANBASE_HEALTH_REST
          + FANBASE_JSON_ESCAPE_MAX * mcf->shm_zone->shm.name.len;

    json.data = ngx_pnalloc(r->pool, len);
    if (json.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_sprintf(json.data, "{\"status\":\"%s\",", state);
    p = ngx_cpymem(p, creds, last - creds);

    /* a word in shared memory, read without the lock */

    ok = sh->fanbase_ok;

    if (ok) {
        p = ngx_cpymem(p, ",\"fanbase_last_answer\":\"",
                       sizeof(",\"fanbase_last_answer\":\"") - 1);
        p = ngx_http_fanbase_time_iso(p, ok);
        *p++ = '"';

    } else {
        p = ngx_cpymem(p, ",\"fanbase_last_answer\":null",
                       sizeof(",\"fanbase_last_answer\":null") - 1);
    }

    used = mcf->shm_zone->shm.size - mcf->shpool->pfree * ngx_pagesize;

    p = ngx_cpymem(p, ",\"zone\":{\"name\":\"",
                   sizeof(",\"zone\":{\"name\":\"") - 1);
    p = fanbase_json_escape(p, mcf->shm_zone->shm.name.data,
                            mcf->shm_zone->shm.name.len);
    p = ngx_sprintf(p, "\",\"size_bytes\":%uz,\"used_bytes\":%uz,"
                    "\"full\":%s},\"transactions\":%ui,\"notices\":%ui,"
                    "\"breakers\":[",
                    mcf->shm_zone->shm.size, used,
                    th.full ? "true" : "false", th.transactions,
                    sh->notice_count);

    for (i = 0; i < th.nbreakers; i++) {
        p = ngx_sprintf(p, "%s{\"failures\":%ui,\"waiting\":%ui,"
                        "\"probing\":%s,\"next_probe_in_ms\":%M}",
                        i ? "," : "", th.breakers[i].failures,
                        th.breakers[i].waiting,
                        th.breakers[i].probing ? "true" : "false",
                        th.breakers[i].probe_in);
    }

    p = ngx_sprintf(p, "],\"engine\":{\"name\":\"%s\",\"connected\":%s,"
                    "\"fallback\":%s}}",
                    mcf->redis ? "redis" : "zone", up ? "true" : "false",
                    alone ? "true" : "false");

    json.len = p - json.data;

    /* a health answer is never cached on the way */

    ngx_str_set(&value, "no-store");

    if (ngx_http_fanbase_response_add_header(r, "Cache-Control", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fanbase_response_json(r, status, &json);
}


/*
 * "credentials":[{...},...] from p; *usable: how many can have a token
 * now (a valid one, a fixed one, or one being fetched with no failure)
 */

static u_char *
ngx_http_fanbase_health_creds(u_char *p, ngx_http_fanbase_main_conf_t *mcf,
    ngx_pool_t *pool, ngx_uint_t *usable)
{
    ngx_uint_t                        i;
    ngx_http_fanbase_cred_t         **credp;
    ngx_http_fanbase_token_health_t   th;

    *usable = 0;
    credp = mcf->creds.elts;

    p = ngx_cpymem(p, "\"credentials\":[", sizeof("\"credentials\":[") - 1);

    for (i = 0; i < mcf->creds.nelts; i++) {

        (void) ngx_http_fanbase_token_health(credp[i], pool, &th);

        if (th.failures == 0 || ngx_strcmp(th.state, "valid") == 0
            || ngx_strcmp(th.state, "fixed") == 0)
        {
            (*usable)++;
        }

        p = ngx_cpymem(p, i ? ",{\"name\":\"" : "{\"name\":\"",
                       i ? sizeof(",{\"name\":\"") - 1
                         : sizeof("{\"name\":\"") - 1);
        p = fanbase_json_escape(p, credp[i]->name.data,
                                fanbase_json_escape_cut(credp[i]->name.data,
                                                        credp[i]->name.len,
                                                        6 * 256));
        p = ngx_sprintf(p, "\",\"token\":\"%s\",\"expires_in_s\":%M,"
                        "\"failures\":%ui,\"retry_in_ms\":%M,"
                        "\"last_error\":",
                        th.state, th.expires_in / 1000, th.failures,
                        th.retry_in);

        if (th.error.len) {
            *p++ = '"';
            p = fanbase_json_escape(p, th.error.data,
                                    fanbase_json_escape_cut(th.error.data,
                                                            th.error.len,
                                                            6 * 256));
            *p++ = '"';

        } else {
            p = ngx_cpymem(p, "null", 4);
        }

        *p++ = '}';
    }

    *p++ = ']';

    return p;
}
