
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Edge token management.  One token per credential set for the whole
 * host, kept in the zone: one worker at a time fetches it (a lease in the
 * zone), the others wait for its result.  The token is refreshed ahead of
 * expiry while it keeps serving, never used past its expiry, dropped on a
 * rejection only if it is still the one that was rejected, and failed
 * fetches back off exponentially.  The secret and the tokens never reach
 * a log line.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_wait.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_token_redis.h"

#include <ngx_md5.h>


#define NGX_HTTP_FANBASE_BACKOFF_MIN   1000
#define NGX_HTTP_FANBASE_TOKEN_ERROR_MAX  256
#define NGX_HTTP_FANBASE_TOKEN_EXCERPT    160
#define NGX_HTTP_FANBASE_BACKOFF_MAX   60000
#define NGX_HTTP_FANBASE_SKEW_MAX      30000
#define NGX_HTTP_FANBASE_LIFETIME_MAX  (30 * 86400)

/* another host fetches the token: this host looks in Redis again after */
#define NGX_HTTP_FANBASE_TOKEN_PAUSE   100

#define ngx_http_fanbase_before(a, b)  ((ngx_msec_int_t) ((a) - (b)) < 0)


typedef struct {
    ngx_queue_t                   queue;
    u_char                        key[16];
    uint64_t                      generation;
    ngx_msec_t                    expires;
    ngx_msec_t                    refresh;
    ngx_msec_t                    lease;
    ngx_msec_t                    backoff;
    ngx_msec_t                    pause;       /* another host fetches */
    ngx_uint_t                    failures;
    uint64_t                      fetched[2];  /* ok, failed */
    unsigned                      valid:1;
    unsigned                      leased:1;
    size_t                        error_len;
    u_char                        error[NGX_HTTP_FANBASE_TOKEN_ERROR_MAX];
    size_t                        len;
    u_char                        token[NGX_HTTP_FANBASE_TOKEN_MAX];
} ngx_http_fanbase_token_slot_t;


static ngx_http_fanbase_token_slot_t *ngx_http_fanbase_token_slot(
    ngx_http_fanbase_cred_t *cred);
static ngx_int_t ngx_http_fanbase_token_start(ngx_http_fanbase_cred_t *cred,
    u_char *have, size_t len, ngx_msec_t have_left, ngx_log_t *log);
static void ngx_http_fanbase_token_asked(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_token_redis_answer_t *a);
static ngx_int_t ngx_http_fanbase_token_fetch(ngx_http_fanbase_cred_t *cred,
    ngx_log_t *log);
static void ngx_http_fanbase_token_install(ngx_http_fanbase_cred_t *cred,
    const u_char *token, size_t len, ngx_msec_t left, ngx_msec_t life,
    ngx_uint_t fetched);
static void ngx_http_fanbase_token_done(ngx_http_fanbase_curl_t *h);
static void ngx_http_fanbase_token_failed(ngx_http_fanbase_cred_t *cred,
    const char *reason, long status);
static size_t ngx_http_fanbase_token_upstream_line(const char *line);
static ngx_http_fanbase_headers_t *ngx_http_fanbase_token_hdr(
    u_char *token, size_t len, uint64_t generation, ngx_log_t *log);
static u_char *ngx_http_fanbase_token_escape(ngx_conf_t *cf, u_char *dst,
    ngx_str_t *src);
static u_char *ngx_http_fanbase_token_excerpt(ngx_http_fanbase_cred_t *cred,
    u_char *buf, size_t size, u_char *body, size_t len);


ngx_http_fanbase_cred_t *
ngx_http_fanbase_token_cred(ngx_conf_t *cf, ngx_http_fanbase_main_conf_t *mcf,
    ngx_http_fanbase_loc_conf_t *lcf)
{
    u_char                    *p, *host, *last;
    u_char                     digest[16];
    ngx_md5_t                  md5;
    ngx_uint_t                 i;
    ngx_http_fanbase_cred_t   *cred, **credp;

    cred = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_cred_t));
    if (cred == NULL) {
        return NULL;
    }

    ngx_md5_init(&md5);

    if (lcf->access_token.len) {
        ngx_md5_update(&md5, "fixed", sizeof("fixed"));
        ngx_md5_update(&md5, lcf->access_token.data, lcf->access_token.len);

    } else {
        ngx_md5_update(&md5, lcf->token_url.data, lcf->token_url.len + 1);
        ngx_md5_update(&md5, lcf->client_id.data, lcf->client_id.len);
        ngx_md5_update(&md5, "", 1);
        ngx_md5_update(&md5, lcf->client_secret.data,
                       lcf->client_secret.len);
    }

    ngx_md5_final(cred->key, &md5);

    /*
     * its name in Redis: the token endpoint and the client id, not the
     * secret (whose digest stays out of Redis), nor the API: a location
     * with another token endpoint has a token of its own
     */

    if (lcf->access_token.len == 0) {
        ngx_md5_init(&md5);
        ngx_md5_update(&md5, "token\0", sizeof("token\0") - 1);
        ngx_md5_update(&md5, lcf->token_url.data, lcf->token_url.len + 1);
        ngx_md5_update(&md5, lcf->client_id.data, lcf->client_id.len);
        ngx_md5_final(digest, &md5);

        ngx_memcpy(&cred->shared, digest, sizeof(uint64_t));
    }

    credp = mcf->creds.elts;

    for (i = 0; i < mcf->creds.nelts; i++) {
        if (ngx_memcmp(credp[i]->key, cred->key, 16) == 0) {
            return credp[i];
        }
    }

    cred->mcf = mcf;
    cred->upstream = &lcf->upstream;

    if (lcf->access_token.len) {
        cred->fixed = lcf->access_token;
        ngx_str_set(&cred->name, "fixed token");
        ngx_str_set(&cred->client_id, "fixed");
        cred->host = lcf->access_token_path;

    } else {
        /*
         * POST {token_url}?grant_type=client_credentials
         *                 &client_id=..&client_secret=..
         */

        cred->url.len = lcf->token_url.len
                        + sizeof("?grant_type=client_credentials") - 1
                        + sizeof("&client_id=") - 1 + 3 * lcf->client_id.len
                        + sizeof("&client_secret=") - 1
                        + 3 * lcf->client_secret.len;

        cred->url.data = ngx_pnalloc(cf->pool, cred->url.len + 1);
        if (cred->url.data == NULL) {
            return NULL;
        }

        p = ngx_cpymem(cred->url.data, lcf->token_url.data,
                       lcf->token_url.len);

        if (ngx_strlchr(lcf->token_url.data,
                        lcf->token_url.data + lcf->token_url.len, '?')
            == NULL)
        {
            *p++ = '?';

        } else {
            *p++ = '&';
        }

        p = ngx_cpymem(p, "grant_type=client_credentials",
                       sizeof("grant_type=client_credentials") - 1);
        p = ngx_cpymem(p, "&client_id=", sizeof("&client_id=") - 1);

        p = ngx_http_fanbase_token_escape(cf, p, &lcf->client_id);
        if (p == NULL) {
            return NULL;
        }

        p = ngx_cpymem(p, "&client_secret=", sizeof("&client_secret=") - 1);

        cred->secret[0] = lcf->client_secret;
        cred->secret[1].data = p;

        p = ngx_http_fanbase_token_escape(cf, p, &lcf->client_secret);
        if (p == NULL) {
            return NULL;
        }

        *p = '\0';

        cred->secret[1].len = p - cred->secret[1].data;

        cred->url.len = p - cred->url.data;

        /* "client ID at host" names the set in logs */

        host = (u_char *) ngx_strstr(lcf->token_url.data, "://") + 3;
        for (last = host; *last && *last != '/' && *last != '?'; last++) {
            /* void */
        }

        cred->name.len = sizeof("client \"\" at ") - 1 + lcf->client_id.len
                         + (last - host);
        cred->name.data = ngx_pnalloc(cf->pool, cred->name.len);
        if (cred->name.data == NULL) {
            return NULL;
        }

        ngx_sprintf(cred->name.data, "client \"%V\" at %*s",
                    &lcf->client_id, (size_t) (last - host), host);

        cred->client_id = lcf->client_id;
        cred->host.data = host;
        cred->host.len = last - host;
    }

    credp = ngx_array_push(&mcf->creds);
    if (credp == NULL) {
        return NULL;
    }

    *credp = cred;

    return cred;
}


ngx_int_t
ngx_http_fanbase_token_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    ngx_uint_t                i;
    ngx_http_fanbase_cred_t **credp;

    if (mcf->redis != NULL
        && ngx_http_fanbase_token_redis_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    credp = mcf->creds.elts;

    for (i = 0; i < mcf->creds.nelts; i++) {
        if (credp[i]->fixed.len == 0) {
            continue;
        }

        credp[i]->hdr = ngx_http_fanbase_token_hdr(credp[i]->fixed.data,
                                                   credp[i]->fixed.len, 0,
                                                   cycle->log);
        if (credp[i]->hdr == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* the tokens' part of a new zone */

ngx_int_t
ngx_http_fanbase_token_init_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    ngx_queue_init(&mcf->sh->tokens);

    return ngx_http_fanbase_token_attach_zone(mcf, size, log);
}


/*
 * Every credential set's token slot is taken when the zone is set up (in
 * the master, at start and reload): a zone that fills up with
 * transactions must still have room for the token that delivers them.
 */

ngx_int_t
ngx_http_fanbase_token_attach_zone(ngx_http_fanbase_main_conf_t *mcf,
    size_t size, ngx_log_t *log)
{
    void                      *slot;
    ngx_uint_t                 i;
    ngx_http_fanbase_cred_t  **credp;

    credp = mcf->creds.elts;

    for (i = 0; i < mcf->creds.nelts; i++) {
        if (credp[i]->fixed.len) {
            continue;
        }

        ngx_shmtx_lock(&mcf->shpool->mutex);
        slot = ngx_http_fanbase_token_slot(credp[i]);
        ngx_shmtx_unlock(&mcf->shpool->mutex);

        if (slot == NULL) {
            ngx_log_error(NGX_LOG_EMERG, log, 0,
                          "fanbase: zone \"%V\" has no room for the token "
                          "of %V", &mcf->shm_zone->shm.name,
                          &credp[i]->name);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * NGX_OK: *hdr holds a reference to the current token's headers;
 * NGX_AGAIN: a fetch is under way, wait for it;
 * NGX_DECLINED: no token can be had now, *retry_after tells when to retry.
 */

ngx_int_t
ngx_http_fanbase_token_get(ngx_http_fanbase_cred_t *cred, ngx_log_t *log,
    ngx_http_fanbase_headers_t **hdr, time_t *retry_after)
{
    size_t                          len, have_len;
    uint64_t                        generation;
    ngx_int_t                       rc;
    ngx_msec_t                      now, have_left;
    ngx_uint_t                      refresh;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_headers_t   *h;
    ngx_http_fanbase_token_slot_t  *slot;
    u_char                          token[NGX_HTTP_FANBASE_TOKEN_MAX];
    u_char                          have[NGX_HTTP_FANBASE_TOKEN_MAX];

    if (cred->fixed.len) {
        cred->hdr->refs++;
        *hdr = cred->hdr;
        return NGX_OK;
    }

    now = ngx_current_msec;

    /*
     * Mostly the token this worker holds is current and not yet due for
     * a refresh: two aligned words of its slot say so, read without the
     * lock that every submission would otherwise take (bench: the lock's
     * cache line moving between the workers, and a worker spinning on it
     * while the holder is off the CPU).  A token rejected or replaced
     * meanwhile is seen at the next look; a request that took it just
     * before is answered 401 and retried, as with the lock.
     */

    slot = cred->slot;

    if (slot != NULL
        && cred->hdr != NULL
        && ngx_http_fanbase_before(now, cred->fresh)
        && ((volatile ngx_http_fanbase_token_slot_t *) slot)->valid
        && ((volatile ngx_http_fanbase_token_slot_t *) slot)->generation
           == cred->hdr->tag)
    {
        cred->hdr->refs++;
        *hdr = cred->hdr;
        return NGX_OK;
    }

    shpool = cred->mcf->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_fanbase_token_slot(cred);
    if (slot == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        *retry_after = 1;
        return NGX_DECLINED;
    }

    if (slot->leased && !ngx_http_fanbase_before(now, slot->lease)) {
        /* the worker that held it died or hung */
        slot->leased = 0;
    }

    if (slot->valid && ngx_http_fanbase_before(now, slot->expires)) {

        generation = slot->generation;
        len = 0;

        if (cred->hdr == NULL || cred->hdr->tag != generation) {
            len = slot->len;
            ngx_memcpy(token, slot->token, len);
        }

        refresh = !ngx_http_fanbase_before(now, slot->refresh)
                  && !slot->leased
                  && !(slot->failures
                       && ngx_http_fanbase_before(now, slot->backoff))
                  && !ngx_http_fanbase_before(now, slot->pause);

        have_len = 0;
        have_left = 0;

        /* not due: the lock is not needed again before the refresh time */

        cred->fresh = refresh ? now : slot->refresh;

        if (refresh) {
            slot->leased = 1;
            slot->lease = now + cred->upstream->timeout + 1000;

            /* Redis may hold a later one: not this one */

            if (cred->mcf->redis != NULL) {
                have_len = slot->len;
                ngx_memcpy(have, slot->token, have_len);
                have_left = slot->expires - now;
            }
        }

        ngx_shmtx_unlock(&shpool->mutex);

        if (len) {
            h = ngx_http_fanbase_token_hdr(token, len, generation, log);
            ngx_explicit_memzero(token, len);

            if (h == NULL) {
                return NGX_ERROR;
            }

            if (cred->hdr != NULL) {
                ngx_http_fanbase_curl_headers_release(cred->hdr);
            }

            cred->hdr = h;
        }

        if (refresh) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "fanbase: refreshing the token of %V ahead of "
                          "expiry", &cred->name);

            (void) ngx_http_fanbase_token_start(cred, have, have_len,
                                                have_left, log);
            ngx_explicit_memzero(have, have_len);
        }

        cred->hdr->refs++;
        *hdr = cred->hdr;

        return NGX_OK;
    }

    /* a fetch under way, on this host or (Redis says) on another */

    if (slot->leased || ngx_http_fanbase_before(now, slot->pause)) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_AGAIN;
    }

    if (slot->failures && ngx_http_fanbase_before(now, slot->backoff)) {
        *retry_after = (slot->backoff - now + 999) / 1000;
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    slot->leased = 1;
    slot->lease = now + cred->upstream->timeout + 1000;

    /* the token that expired or was rejected: not that one from Redis */

    have_len = 0;

    if (cred->mcf->redis != NULL) {
        have_len = slot->len;
        ngx_memcpy(have, slot->token, have_len);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    rc = ngx_http_fanbase_token_start(cred, have, have_len, 0, log);
    ngx_explicit_memzero(have, have_len);

    if (rc != NGX_OK) {
        *retry_after = 1;
        return NGX_DECLINED;
    }

    return NGX_AGAIN;
}


void
ngx_http_fanbase_token_reject(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_headers_t *hdr, ngx_log_t *log)
{
    size_t                          len;
    ngx_uint_t                      dropped;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_token_slot_t  *slot;
    u_char                          token[NGX_HTTP_FANBASE_TOKEN_MAX];

    if (cred->fixed.len) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "fanbase: Fanbase rejected the token of "
                      "\"fanbase_access_token_file\"");
        return;
    }

    shpool = cred->mcf->shpool;
    dropped = 0;
    len = 0;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_fanbase_token_slot(cred);

    /* another worker may have replaced it already */

    if (slot != NULL && slot->valid && slot->generation == hdr->tag) {
        slot->valid = 0;
        dropped = 1;

        if (cred->mcf->redis != NULL) {
            len = slot->len;
            ngx_memcpy(token, slot->token, len);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    /* nor do the other hosts use it, if Redis still holds that one */

    if (len) {
        ngx_http_fanbase_token_redis_drop(cred, token, len);
        ngx_explicit_memzero(token, len);
    }

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "fanbase: Fanbase rejected the token of %V%s", &cred->name,
                  dropped ? ", dropping it" : ", already replaced");
}


/*
 * At most "size" bytes of what the token endpoint answered, for the log:
 * the secret, as read or as sent, replaced by "***" wherever the answer
 * echoes it; double quotes as single ones, bytes that are not printable
 * ASCII as "?".
 */

static u_char *
ngx_http_fanbase_token_excerpt(ngx_http_fanbase_cred_t *cred, u_char *buf,
    size_t size, u_char *body, size_t len)
{
    u_char      *p, *last, *end;
    ngx_uint_t   i, hit;

    p = buf;
    end = buf + size;
    last = body + ngx_min(len, NGX_HTTP_FANBASE_TOKEN_EXCERPT);

    while (body < last && p < end) {

        hit = 0;

        for (i = 0; i < 2; i++) {
            if (cred->secret[i].len
                && (size_t) (last - body) >= cred->secret[i].len
                && ngx_memcmp(body, cred->secret[i].data,
                              cred->secret[i].len)
                   == 0)
            {
                hit = cred->secret[i].len;
                break;
            }
        }

        if (hit) {
            if (end - p < 3) {
                break;
            }

            p = ngx_cpymem(p, "***", 3);
            body += hit;
            continue;
        }

        *p++ = (*body == '"') ? '\''
               : (*body >= 0x20 && *body < 0x7f) ? *body : '?';
        body++;
    }

    return p;
}


/* a credential set's token as fanbase_health shows it: never the token */

ngx_int_t
ngx_http_fanbase_token_health(ngx_http_fanbase_cred_t *cred, ngx_pool_t *pool,
    ngx_http_fanbase_token_health_t *th)
{
    ngx_msec_t                      now;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_token_slot_t  *slot;

    ngx_memzero(th, sizeof(ngx_http_fanbase_token_health_t));

    if (cred->fixed.len) {
        th->state = "fixed";
        return NGX_OK;
    }

    th->state = "none";
    shpool = cred->mcf->shpool;
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_fanbase_token_slot(cred);

    if (slot != NULL) {
        th->failures = slot->failures;
        th->fetched_ok = slot->fetched[0];
        th->fetched_failed = slot->fetched[1];

        if (slot->valid && ngx_http_fanbase_before(now, slot->expires)) {
            th->state = "valid";
            th->expires_in = slot->expires - now;

        } else if (slot->leased
                   || ngx_http_fanbase_before(now, slot->pause))
        {
            th->state = "fetching";

        } else if (slot->failures) {
            th->state = "failing";
        }

        if (slot->failures && ngx_http_fanbase_before(now, slot->backoff)) {
            th->retry_in = slot->backoff - now;
        }

        if (slot->error_len) {
            th->error.data = ngx_pnalloc(pool, slot->error_len);

            if (th->error.data != NULL) {
                ngx_memcpy(th->error.data, slot->error, slot->error_len);
                th->error.len = slot->error_len;
            }
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return NGX_OK;
}


static ngx_http_fanbase_token_slot_t *
ngx_http_fanbase_token_slot(ngx_http_fanbase_cred_t *cred)
{
    ngx_queue_t                    *q;
    ngx_http_fanbase_shctx_t       *sh;
    ngx_http_fanbase_token_slot_t  *slot;

    if (cred->slot != NULL) {
        return cred->slot;
    }

    sh = cred->mcf->sh;

    for (q = ngx_queue_head(&sh->tokens);
         q != ngx_queue_sentinel(&sh->tokens);
         q = ngx_queue_next(q))
    {
        slot = ngx_queue_data(q, ngx_http_fanbase_token_slot_t, queue);

        if (ngx_memcmp(slot->key, cred->key, 16) == 0) {
            cred->slot = slot;
            return slot;
        }
    }

    slot = ngx_http_fanbase_zone_alloc_locked(cred->mcf,
                                     sizeof(ngx_http_fanbase_token_slot_t));
    if (slot == NULL) {
        return NULL;
    }

    ngx_memzero(slot, offsetof(ngx_http_fanbase_token_slot_t, token));
    ngx_memcpy(slot->key, cred->key, 16);
    ngx_queue_insert_tail(&sh->tokens, &slot->queue);

    cred->slot = slot;

    return slot;
}


/*
 * This worker holds the zone's lease: with Redis, a token another host
 * fetched, or the cluster's lease first; without it (or Redis down), the
 * fetch.
 */

static ngx_int_t
ngx_http_fanbase_token_start(ngx_http_fanbase_cred_t *cred, u_char *have,
    size_t len, ngx_msec_t have_left, ngx_log_t *log)
{
    if (cred->mcf->redis != NULL
        && ngx_http_fanbase_token_redis_ask(cred, have, len, have_left,
                                            cred->upstream->timeout + 1000,
                                            ngx_http_fanbase_token_asked)
           == NGX_OK)
    {
        return NGX_OK;
    }

    return ngx_http_fanbase_token_fetch(cred, log);
}


static void
ngx_http_fanbase_token_asked(ngx_http_fanbase_cred_t *cred,
    ngx_http_fanbase_token_redis_answer_t *a)
{
    ngx_msec_t                      now;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_token_slot_t  *slot;

    if (a->rc == NGX_OK) {

        /* as if fetched: the waiters of this worker go at once */

        ngx_http_fanbase_token_install(cred, a->token, a->len, a->left,
                                       a->life, 0);

        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "fanbase: token for %V from redis, fetched by another "
                      "host, valid for %M s more", &cred->name,
                      a->left / 1000);

        ngx_http_fanbase_wait_kick();
        return;
    }

    shpool = cred->mcf->shpool;
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_fanbase_token_slot(cred);

    if (slot != NULL) {
        if (a->rc == NGX_BUSY) {
            /* the requests wait as for a fetch, this host looks again */
            slot->leased = 0;
            slot->pause = now + NGX_HTTP_FANBASE_TOKEN_PAUSE;

        } else {
            /* the time Redis took is not the fetch's */
            slot->lease = now + cred->upstream->timeout + 1000;
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (a->rc == NGX_BUSY) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "fanbase: another host fetches the token of %V",
                       &cred->name);
        return;
    }

    /* the cluster's lease is this worker's, or Redis did not answer */

    (void) ngx_http_fanbase_token_fetch(cred, ngx_cycle->log);
}


/*
 * A token in the slot, "left" ms of its "life" to go: used until a skew
 * before its end, refreshed around 80% of its life, spread over the last
 * tenth.  "fetched" by this host, or taken from Redis.
 */

static void
ngx_http_fanbase_token_install(ngx_http_fanbase_cred_t *cred,
    const u_char *token, size_t len, ngx_msec_t left, ngx_msec_t life,
    ngx_uint_t fetched)
{
    ngx_msec_t                      now, skew;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_token_slot_t  *slot;

    skew = ngx_min(life / 10, NGX_HTTP_FANBASE_SKEW_MAX);

    shpool = cred->mcf->shpool;
    now = ngx_current_msec;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_fanbase_token_slot(cred);

    if (slot != NULL) {
        slot->generation++;
        slot->len = len;
        ngx_memcpy(slot->token, token, len);
        slot->expires = now + left - skew;
        slot->refresh = now + left - life * 2 / 10
                        - ngx_random() % (life / 10 + 1);
        slot->valid = 1;
        slot->leased = 0;
        slot->pause = now;
        slot->failures = 0;
        slot->error_len = 0;

        if (fetched) {
            slot->fetched[0]++;
            ngx_http_fanbase_zone_answered(cred->mcf->sh);
        }
    }

    ngx_shmtx_unlock(&shpool->mutex);
}


static ngx_int_t
ngx_http_fanbase_token_fetch(ngx_http_fanbase_cred_t *cred, ngx_log_t *log)
{
    ngx_http_fanbase_curl_t  *h;

    /* not tied to a request: it outlives the one that started it */

    h = ngx_http_fanbase_curl_create(ngx_cycle->log, cred->upstream,
                                     (char *) cred->url.data);
    if (h == NULL) {
        ngx_http_fanbase_token_failed(cred, "no memory", 0);
        return NGX_ERROR;
    }

    curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE, 0L);

    h->handler = ngx_http_fanbase_token_done;
    h->data = cred;
    h->kind = NGX_HTTP_FANBASE_CALL_TOKEN;

    if (ngx_http_fanbase_curl_start(h) != NGX_OK) {
        ngx_http_fanbase_curl_destroy(h);
        ngx_http_fanbase_token_failed(cred, "transfer not started", 0);
        return NGX_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                   "fanbase: token request for %V", &cred->name);

    cred->fetch = h;

    return NGX_OK;
}


static void
ngx_http_fanbase_token_done(ngx_http_fanbase_curl_t *h)
{
    u_char                         *p;
    int64_t                         lifetime;
    fanbase_token_t                 token;
    ngx_http_fanbase_cred_t        *cred;
    u_char                          reason[NGX_HTTP_FANBASE_TOKEN_ERROR_MAX];

    cred = h->data;
    cred->fetch = NULL;

    if (h->result != CURLE_OK) {
        ngx_http_fanbase_token_failed(cred,
                                      h->error[0] ? h->error
                                      : curl_easy_strerror(h->result), 0);
        goto done;
    }

    if (h->status != 200) {

        /* what it said, for the operator: an excerpt, secrets redacted */

        p = ngx_snprintf(reason, sizeof(reason) - 1, "answered %l",
                         h->status);

        if (h->len) {
            p = ngx_cpymem(p, ": \"", 3);
            p = ngx_http_fanbase_token_excerpt(cred, p,
                                               reason + sizeof(reason) - 2 - p,
                                               h->body, h->len);
            *p++ = '"';
        }

        *p = '\0';

        ngx_http_fanbase_token_failed(cred, (char *) reason, 0);
        goto done;
    }

    if (fanbase_json_parse_token(h->body, h->len, &token) != FANBASE_JSON_OK
        || token.access_token.len > NGX_HTTP_FANBASE_TOKEN_MAX)
    {
        if (token.pool != NULL) {
            fanbase_json_token_free(&token);
        }

        ngx_http_fanbase_token_failed(cred, "answered 200 without a usable "
                                      "token", 0);
        goto done;
    }

    lifetime = ngx_min(token.expires_in, NGX_HTTP_FANBASE_LIFETIME_MAX)
               * 1000;

    ngx_http_fanbase_token_install(cred, token.access_token.data,
                                   token.access_token.len,
                                   (ngx_msec_t) lifetime,
                                   (ngx_msec_t) lifetime, 1);

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "fanbase: new token for %V, valid for %L s",
                  &cred->name, token.expires_in);

    /* for the other hosts, until its end; the cluster's lease released */

    if (cred->mcf->redis != NULL) {
        ngx_http_fanbase_token_redis_put(cred, token.access_token.data,
                                         token.access_token.len,
                                         (ngx_msec_t) lifetime);
    }

    fanbase_json_token_free(&token);

done:

    ngx_http_fanbase_curl_destroy(h);
    ngx_http_fanbase_wait_kick();
}


static void
ngx_http_fanbase_token_failed(ngx_http_fanbase_cred_t *cred,
    const char *reason, long status)
{
    ngx_msec_t                      delay, now;
    ngx_slab_pool_t                *shpool;
    ngx_http_fanbase_token_slot_t  *slot;

    shpool = cred->mcf->shpool;
    now = ngx_current_msec;
    delay = NGX_HTTP_FANBASE_BACKOFF_MIN;

    ngx_shmtx_lock(&shpool->mutex);

    slot = ngx_http_fanbase_token_slot(cred);

    if (slot != NULL) {
        slot->failures++;
        slot->fetched[1]++;
        delay = NGX_HTTP_FANBASE_BACKOFF_MIN
                << ngx_min(slot->failures - 1, 6);
        delay = ngx_min(delay, NGX_HTTP_FANBASE_BACKOFF_MAX);
        slot->backoff = now + delay;
        slot->leased = 0;

        /* for fanbase_health: what the log says, no secret in it */

        slot->error_len = (status ? ngx_snprintf(slot->error,
                                                 sizeof(slot->error),
                                                 "%s %l", reason, status)
                                  : ngx_snprintf(slot->error,
                                                 sizeof(slot->error), "%s",
                                                 reason))
                          - slot->error;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    /* another host may try while this one backs off */

    if (cred->mcf->redis != NULL) {
        ngx_http_fanbase_token_redis_release(cred);
    }

    if (status) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: token request for %V failed: %s %l, "
                      "next attempt in %M ms", &cred->name, reason, status,
                      delay);

    } else {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: token request for %V failed: %s, "
                      "next attempt in %M ms", &cred->name, reason, delay);
    }
}


static ngx_http_fanbase_headers_t *
ngx_http_fanbase_token_hdr(u_char *token, size_t len, uint64_t generation,
    ngx_log_t *log)
{
    u_char                        *line, *p;
    size_t                         n, size;
    const char                   **f;
    struct curl_slist             *list, *next, *h;
    ngx_http_fanbase_headers_t  *hdr;

    static const char  *fixed[] = {
        "Content-Type: application/json",
        "Accept: application/json",
        "Expect:",
        NULL
    };

    line = ngx_alloc(sizeof("AccessToken: ") + len, log);
    if (line == NULL) {
        return NULL;
    }

    p = ngx_cpymem(line, "AccessToken: ", sizeof("AccessToken: ") - 1);
    p = ngx_cpymem(p, token, len);
    *p = '\0';

    list = curl_slist_append(NULL, (char *) line);

    ngx_explicit_memzero(line, p - line);
    ngx_free(line);

    for (f = fixed; list != NULL && *f != NULL; f++) {
        next = curl_slist_append(list, *f);
        if (next == NULL) {
            curl_slist_free_all(list);
            list = NULL;
        }

        list = next;
    }

    if (list == NULL) {
        return NULL;
    }

    /*
     * the lines for nginx's upstream (ngx_http_fanbase_proxy.c), joined
     * once here rather than measured and copied one by one for every
     * request: an empty header is libcurl's way to leave one out.  The
     * submission has no Accept: Fanbase answers JSON only, and a header
     * is bytes Fanbase reads on every sale (libcurl's calls keep it, or
     * libcurl would send its own, which accepts anything)
     */

    size = 0;

    for (h = list; h; h = h->next) {
        n = ngx_http_fanbase_token_upstream_line(h->data);
        size += n ? n + sizeof(CRLF) - 1 : 0;
    }

    hdr = ngx_alloc(sizeof(ngx_http_fanbase_headers_t) + size, log);
    if (hdr == NULL) {
        curl_slist_free_all(list);
        return NULL;
    }

    hdr->lines.data = (u_char *) hdr + sizeof(ngx_http_fanbase_headers_t);
    p = hdr->lines.data;

    for (h = list; h; h = h->next) {
        n = ngx_http_fanbase_token_upstream_line(h->data);

        if (n) {
            p = ngx_cpymem(p, h->data, n);
            *p++ = CR; *p++ = LF;
        }
    }

    hdr->lines.len = p - hdr->lines.data;
    hdr->refs = 1;
    hdr->tag = generation;
    hdr->headers = list;

    return hdr;
}


/* a header of libcurl's list as nginx's upstream sends it: its length, 0 */

static size_t
ngx_http_fanbase_token_upstream_line(const char *line)
{
    size_t  n;

    n = ngx_strlen(line);

    if (n == 0
        || line[n - 1] == ':'
        || ngx_strncmp(line, "Accept:", sizeof("Accept:") - 1) == 0)
    {
        return 0;
    }

    return n;
}


/*
 * curl_easy_escape(): RFC 3986 unreserved characters pass, every other
 * byte is %XX in upper case.  It needs no curl_global_init() (not called
 * yet while the configuration is read), takes a length of 0 for "up to
 * the NUL", and allocates: the copy that may hold the secret is wiped
 * before it is freed.  NULL when it fails (out of memory).
 */

static u_char *
ngx_http_fanbase_token_escape(ngx_conf_t *cf, u_char *dst, ngx_str_t *src)
{
    char    *escaped;
    size_t   len;

    if (src->len == 0) {
        return dst;
    }

    escaped = curl_easy_escape(NULL, (char *) src->data, (int) src->len);
    if (escaped == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "curl_easy_escape() failed");
        return NULL;
    }

    len = ngx_strlen(escaped);
    dst = ngx_cpymem(dst, escaped, len);

    ngx_explicit_memzero(escaped, len);
    curl_free(escaped);

    return dst;
}
