
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * A call to Fanbase made for a client request on nginx's own upstream
 * machinery, the way the proxy and memcached modules are built: the
 * request line, Host, the edge's token and the body are written into one
 * buffer; Fanbase's answer is read whole (status line, headers, a body
 * framed by Content-Length or chunked) before anything goes to the
 * client, so that the caller can record it and choose what to answer; the
 * connection then goes back to this worker's pool (ngx_http_fanbase_peer.c)
 * to be used again.
 *
 * A token rejection (401 or 403) drops the token and sends the call once
 * more with a new one: the rejected answer is swallowed by the response
 * filter, the upstream ends, and a posted event starts another one.  A
 * POST whose bytes may have reached Fanbase is never sent again otherwise:
 * nginx's upstream does not retry a POST once it was sent.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_time.h"
#include "ngx_http_fanbase_token.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_zone.h"
#include "ngx_http_fanbase_proxy.h"


#define NGX_HTTP_FANBASE_PROXY_STATUS   0
#define NGX_HTTP_FANBASE_PROXY_HEADERS  1
#define NGX_HTTP_FANBASE_PROXY_BODY     2
#define NGX_HTTP_FANBASE_PROXY_DONE     3


static void ngx_http_fanbase_proxy_slot(ngx_http_fanbase_peer_wait_t *w,
    ngx_int_t rc);
static ngx_int_t ngx_http_fanbase_proxy_token(ngx_http_fanbase_proxy_t *p);
static ngx_int_t ngx_http_fanbase_proxy_wait(ngx_http_fanbase_waiter_t *w);
static void ngx_http_fanbase_proxy_fail(ngx_http_fanbase_proxy_t *p,
    ngx_int_t rc);
static void ngx_http_fanbase_proxy_upstream(ngx_http_fanbase_proxy_t *p);
static ngx_int_t ngx_http_fanbase_proxy_create_request(ngx_http_request_t *r);
static u_char *ngx_http_fanbase_proxy_number(u_char *p, size_t n);
static ngx_int_t ngx_http_fanbase_proxy_reinit_request(ngx_http_request_t *r);
static ngx_int_t ngx_http_fanbase_proxy_process_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_fanbase_proxy_header_line(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p);
static ngx_int_t ngx_http_fanbase_proxy_body(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p);
static ngx_int_t ngx_http_fanbase_proxy_append(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p, u_char *data, size_t len);
static ngx_int_t ngx_http_fanbase_proxy_complete(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p);
static ngx_int_t ngx_http_fanbase_proxy_filter_init(void *data);
static ngx_int_t ngx_http_fanbase_proxy_filter(void *data, ssize_t bytes);
static void ngx_http_fanbase_proxy_abort_request(ngx_http_request_t *r);
static void ngx_http_fanbase_proxy_finalize_request(ngx_http_request_t *r,
    ngx_int_t rc);
static void ngx_http_fanbase_proxy_restart(ngx_event_t *ev);
static void ngx_http_fanbase_proxy_cleanup(void *data);
static ngx_http_fanbase_proxy_t *ngx_http_fanbase_proxy_get(
    ngx_http_request_t *r);
#if (NGX_HTTP_SSL)
static char *ngx_http_fanbase_proxy_ssl(ngx_conf_t *cf,
    ngx_http_fanbase_loc_conf_t *lcf, ngx_http_fanbase_proxy_conf_t *pcf);
#endif


static ngx_str_t  ngx_http_fanbase_proxy_json = ngx_string("application/json");
static ngx_str_t  ngx_http_fanbase_proxy_retry = ngx_string("5");


/*
 * Configuration: the API's address, resolved now as proxy_pass resolves
 * its host, its Host header and path, the pool of connections it shares
 * with every location that reaches the same API, and TLS.
 */

char *
ngx_http_fanbase_proxy_conf(ngx_conf_t *cf, ngx_http_fanbase_loc_conf_t *lcf)
{
    u_char                         *p, *last;
    size_t                          skip;
    ngx_url_t                       url;
    ngx_str_t                       key;
    ngx_http_upstream_conf_t       *ucf;
    ngx_http_fanbase_proxy_conf_t  *pcf;
    ngx_http_fanbase_main_conf_t   *mcf;

    if (lcf->proxy != NULL) {
        return NGX_CONF_OK;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_fanbase_module);

    pcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_fanbase_proxy_conf_t));
    if (pcf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&url, sizeof(ngx_url_t));

    if (ngx_strncasecmp(lcf->api.data, (u_char *) "https://", 8) == 0) {
        skip = 8;
        url.default_port = 443;
        ngx_str_set(&pcf->schema, "https://");

    } else {
        skip = 7;
        url.default_port = 80;
        ngx_str_set(&pcf->schema, "http://");
    }

    url.url.data = lcf->api.data + skip;
    url.url.len = lcf->api.len - skip;
    url.uri_part = 1;

    if (ngx_parse_url(cf->pool, &url) != NGX_OK) {
        if (url.err) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "%s in \"fanbase_api\" \"%V\": a synchronous "
                          "\"fanbase_submit\" resolves it when the "
                          "configuration is loaded, as \"proxy_pass\" does, "
                          "in %V:%ui", url.err, &lcf->api,
                          lcf->handler_file, lcf->handler_line);
        }

        return NGX_CONF_ERROR;
    }

    if (url.naddrs == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "no address for the host of \"fanbase_api\" \"%V\" "
                      "in %V:%ui", &lcf->api, lcf->handler_file,
                      lcf->handler_line);
        return NGX_CONF_ERROR;
    }

    /* Host: the authority as configured */

    p = url.url.data;
    last = url.url.data + url.url.len;

    pcf->host.data = p;

    while (p < last && *p != '/' && *p != '?') {
        p++;
    }

    pcf->host.len = p - pcf->host.data;
    pcf->prefix.data = p;
    pcf->prefix.len = last - p;

    /* the pool's key: where, and how TLS is checked */

    key.len = lcf->api.len - pcf->prefix.len + sizeof("|verify|") - 1
              + lcf->upstream.ssl_trusted_certificate.len;
    key.data = ngx_pnalloc(cf->pool, key.len);
    if (key.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(key.data, lcf->api.data, lcf->api.len - pcf->prefix.len);
    p = ngx_cpymem(p, lcf->upstream.ssl_verify ? "|verify|" : "|noverf|",
                   sizeof("|verify|") - 1);
    ngx_memcpy(p, lcf->upstream.ssl_trusted_certificate.data,
               lcf->upstream.ssl_trusted_certificate.len);

    pcf->pool = ngx_http_fanbase_peer_pool(cf, &mcf->pools, &url, &key,
                                           mcf->max_connections,
                                           mcf->keepalive);
    if (pcf->pool == NULL) {
        return NGX_CONF_ERROR;
    }

    ucf = &pcf->upstream;

    ucf->upstream = &pcf->pool->uscf;
    ucf->connect_timeout = lcf->upstream.connect_timeout;
    ucf->send_timeout = lcf->upstream.timeout;
    ucf->read_timeout = lcf->upstream.timeout;
    ucf->next_upstream_timeout = 0;
    ucf->next_upstream_tries = 0;
    ucf->buffer_size = ngx_pagesize;
    ucf->buffering = 0;
    ucf->request_buffering = 1;
    ucf->ignore_client_abort = 0;
    ucf->intercept_errors = 0;
    ucf->pass_request_headers = 0;
    ucf->pass_request_body = 0;
    ucf->local = NULL;

    /*
     * a connection that fails before the request was sent tries the next
     * address; nginx never retries a POST that was sent
     */

    ucf->next_upstream = NGX_HTTP_UPSTREAM_FT_ERROR
                         |NGX_HTTP_UPSTREAM_FT_TIMEOUT;

    ngx_str_set(&ucf->module, "fanbase");

#if (NGX_HTTP_SSL)

    /*
     * nginx's upstream checks a certificate against a host name only
     * (X509_check_host): an address would never match
     */

    if (skip == 8 && lcf->upstream.ssl_verify
        && (url.host.data[0] == '['
            || ngx_inet_addr(url.host.data, url.host.len) != INADDR_NONE))
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"fanbase_api\" \"%V\" names Fanbase by its "
                      "address: a synchronous \"fanbase_submit\" checks "
                      "Fanbase's certificate against a host name; use the "
                      "name, or \"fanbase_ssl_verify off\", in %V:%ui",
                      &lcf->api, lcf->handler_file, lcf->handler_line);
        return NGX_CONF_ERROR;
    }

    if (skip == 8) {
        if (ngx_http_fanbase_proxy_ssl(cf, lcf, pcf) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

#endif

    lcf->proxy = pcf;

    return NGX_CONF_OK;
}


#if (NGX_HTTP_SSL)

static char *
ngx_http_fanbase_proxy_ssl(ngx_conf_t *cf, ngx_http_fanbase_loc_conf_t *lcf,
    ngx_http_fanbase_proxy_conf_t *pcf)
{
    ngx_str_t                  ciphers = ngx_string("DEFAULT");
    ngx_pool_cleanup_t        *cln;
    ngx_http_upstream_conf_t  *ucf;

    ucf = &pcf->upstream;

    ucf->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ucf->ssl == NULL) {
        return NGX_CONF_ERROR;
    }

    ucf->ssl->log = cf->log;

    if (ngx_ssl_create(ucf->ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ucf->ssl);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ucf->ssl;

    if (ngx_ssl_ciphers(cf, ucf->ssl, &ciphers, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ucf->ssl_session_reuse = 0;
    ucf->ssl_server_name = 1;
    ucf->ssl_verify = lcf->upstream.ssl_verify;

    if (!ucf->ssl_verify) {
        return NGX_CONF_OK;
    }

    /* as libcurl does: the system's authorities unless a file is named */

    if (lcf->upstream.ssl_trusted_certificate.len) {
        if (ngx_ssl_trusted_certificate(cf, ucf->ssl,
                                        &lcf->upstream.ssl_trusted_certificate,
                                        9)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (SSL_CTX_set_default_verify_paths(ucf->ssl->ctx) != 1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_default_verify_paths() failed");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}

#endif


/*
 * Called with the client's body read: takes a slot, a token, then sends.
 * The request is finalized later, by nginx's upstream or here.
 */

void
ngx_http_fanbase_proxy_start(ngx_http_fanbase_proxy_t *p)
{
    ngx_int_t                       rc;
    ngx_http_request_t             *r;
    ngx_http_cleanup_t             *cln;
    ngx_http_fanbase_ctx_t         *ctx;
    ngx_http_fanbase_proxy_conf_t  *pcf;

    r = p->request;
    pcf = p->lcf->proxy;

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->proxy = p;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_fanbase_proxy_cleanup;
    cln->data = p;

    p->waiter.handler = ngx_http_fanbase_proxy_wait;
    p->waiter.data = p;

    p->restart.handler = ngx_http_fanbase_proxy_restart;
    p->restart.data = p;
    p->restart.log = r->connection->log;

    p->slot.pool = pcf->pool;
    p->slot.handler = ngx_http_fanbase_proxy_slot;
    p->slot.data = p;
    p->slot.timeout = p->lcf->upstream.timeout;

    /* a client that goes away while this waits cancels it */

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    rc = ngx_http_fanbase_peer_acquire(&p->slot);

    if (rc == NGX_AGAIN) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "fanbase proxy: waiting for a connection");
        return;
    }

    if (ngx_http_fanbase_proxy_token(p) == NGX_AGAIN) {
        ngx_http_fanbase_wait_add(&p->waiter);
    }
}


static void
ngx_http_fanbase_proxy_slot(ngx_http_fanbase_peer_wait_t *w, ngx_int_t rc)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_fanbase_proxy_t  *p = w->data;

    r = p->request;
    c = r->connection;

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0,
                      "fanbase: %s: no connection to Fanbase came free "
                      "within %M ms (fanbase_max_connections %ui)", p->what,
                      w->timeout, w->pool->max);

        rc = ngx_http_fanbase_response_unavailable(r, "upstream_busy",
                                                   "every connection to "
                                                   "Fanbase is in use; try "
                                                   "again", 1);
        ngx_http_finalize_request(r, rc);

    } else if (ngx_http_fanbase_proxy_token(p) == NGX_AGAIN) {
        ngx_http_fanbase_wait_add(&p->waiter);
        return;
    }

    ngx_http_run_posted_requests(c);
}


/* NGX_AGAIN: a token is being fetched; NGX_OK: sent, or answered */

static ngx_int_t
ngx_http_fanbase_proxy_token(ngx_http_fanbase_proxy_t *p)
{
    ngx_int_t            rc;
    time_t               retry_after;
    ngx_http_request_t  *r;

    r = p->request;

    if (p->hdr != NULL) {
        ngx_http_fanbase_curl_headers_release(p->hdr);
        p->hdr = NULL;
    }

    rc = ngx_http_fanbase_token_get(p->lcf->cred, r->connection->log,
                                    &p->hdr, &retry_after);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_fanbase_peer_release(&p->slot);

        rc = ngx_http_fanbase_response_unavailable(r, "token_unavailable",
                                                   "no Fanbase token can be "
                                                   "had now", retry_after);
        ngx_http_finalize_request(r, rc);
        return NGX_OK;
    }

    if (rc != NGX_OK) {
        ngx_http_fanbase_proxy_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_OK;
    }

    ngx_http_fanbase_proxy_upstream(p);

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_proxy_wait(ngx_http_fanbase_waiter_t *w)
{
    ngx_connection_t          *c;
    ngx_http_fanbase_proxy_t  *p = w->data;

    c = p->request->connection;

    if (ngx_http_fanbase_proxy_token(p) == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    /* the request may be gone now */

    ngx_http_run_posted_requests(c);

    return NGX_OK;
}


static void
ngx_http_fanbase_proxy_fail(ngx_http_fanbase_proxy_t *p, ngx_int_t rc)
{
    ngx_http_fanbase_peer_release(&p->slot);

    ngx_http_finalize_request(p->request,
                              ngx_http_fanbase_response_error(p->request, rc,
                                  "internal_error",
                                  "the call to Fanbase was not made"));
}


/* a new upstream for the request, sent at once */

static void
ngx_http_fanbase_proxy_upstream(ngx_http_fanbase_proxy_t *p)
{
    ngx_http_request_t             *r;
    ngx_http_upstream_t            *u;
    ngx_http_fanbase_proxy_conf_t  *pcf;

    r = p->request;
    pcf = p->lcf->proxy;

    if (ngx_http_upstream_create(r) != NGX_OK) {
        ngx_http_fanbase_proxy_fail(p, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    u = r->upstream;

    u->conf = &pcf->upstream;
    u->schema = pcf->schema;
    u->output.tag = (ngx_buf_tag_t) &ngx_http_fanbase_module;

#if (NGX_HTTP_SSL)
    u->ssl = (pcf->upstream.ssl != NULL);
#endif

    u->create_request = ngx_http_fanbase_proxy_create_request;
    u->reinit_request = ngx_http_fanbase_proxy_reinit_request;
    u->process_header = ngx_http_fanbase_proxy_process_header;
    u->abort_request = ngx_http_fanbase_proxy_abort_request;
    u->finalize_request = ngx_http_fanbase_proxy_finalize_request;

    u->buffering = 0;
    u->input_filter_init = ngx_http_fanbase_proxy_filter_init;
    u->input_filter = ngx_http_fanbase_proxy_filter;
    u->input_filter_ctx = r;

    p->start = ngx_current_msec;

    ngx_http_upstream_init(r);
}


static ngx_int_t
ngx_http_fanbase_proxy_create_request(ngx_http_request_t *r)
{
    size_t                          len;
    u_char                         *q;
    ngx_str_t                       rid;
    ngx_buf_t                      *b, *body;
    ngx_chain_t                    *cl;
    ngx_http_fanbase_proxy_t       *p;
    ngx_http_fanbase_proxy_conf_t  *pcf;

    p = ngx_http_fanbase_proxy_get(r);
    pcf = p->lcf->proxy;

    /* valid: nginx's, or the client's as rid.c checked it */

    ngx_http_fanbase_rid_get(r, &rid);

    len = p->method.len + 1 + pcf->prefix.len + p->path.len
          + sizeof(" HTTP/1.1" CRLF) - 1
          + sizeof("Host: " CRLF) - 1 + pcf->host.len
          + sizeof("Content-Length: " CRLF) - 1 + NGX_OFF_T_LEN
          + sizeof(CRLF) - 1;

    if (rid.len) {
        len += sizeof("X-Request-ID: " CRLF) - 1 + rid.len;
    }

    /* the token's headers: AccessToken, Content-Type, Accept */

    len += p->hdr->lines.len;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(b->last, p->method.data, p->method.len);
    *q++ = ' ';
    q = ngx_cpymem(q, pcf->prefix.data, pcf->prefix.len);
    q = ngx_cpymem(q, p->path.data, p->path.len);
    q = ngx_cpymem(q, " HTTP/1.1" CRLF "Host: ",
                   sizeof(" HTTP/1.1" CRLF "Host: ") - 1);
    q = ngx_cpymem(q, pcf->host.data, pcf->host.len);
    *q++ = CR; *q++ = LF;

    q = ngx_cpymem(q, p->hdr->lines.data, p->hdr->lines.len);

    if (rid.len) {
        q = ngx_cpymem(q, "X-Request-ID: ", sizeof("X-Request-ID: ") - 1);
        q = ngx_cpymem(q, rid.data, rid.len);
        *q++ = CR; *q++ = LF;
    }

    q = ngx_cpymem(q, "Content-Length: ", sizeof("Content-Length: ") - 1);
    q = ngx_http_fanbase_proxy_number(q, p->body.len);
    *q++ = CR; *q++ = LF; *q++ = CR; *q++ = LF;

    b->last = q;

    /* for the error log's "upstream:" */

    r->upstream->uri.data = b->pos + p->method.len + 1;
    r->upstream->uri.len = pcf->prefix.len + p->path.len;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    r->upstream->request_bufs = cl;

    if (p->body.len) {
        body = ngx_calloc_buf(r->pool);
        if (body == NULL) {
            return NGX_ERROR;
        }

        body->start = p->body.data;
        body->pos = p->body.data;
        body->last = p->body.data + p->body.len;
        body->end = body->last;
        body->memory = 1;

        cl->next = ngx_alloc_chain_link(r->pool);
        if (cl->next == NULL) {
            return NGX_ERROR;
        }

        cl = cl->next;
        cl->buf = body;
        cl->next = NULL;
    }

    cl->buf->flush = 1;

    return ngx_http_fanbase_proxy_reinit_request(r);
}


/* a length in decimal, without ngx_sprintf()'s cost on every call */

static u_char *
ngx_http_fanbase_proxy_number(u_char *p, size_t n)
{
    u_char  *q, buf[NGX_SIZE_T_LEN];

    q = buf + sizeof(buf);

    do {
        *--q = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    return ngx_cpymem(p, q, buf + sizeof(buf) - q);
}


/* another address after a failed connection: the answer starts over */

static ngx_int_t
ngx_http_fanbase_proxy_reinit_request(ngx_http_request_t *r)
{
    ngx_http_fanbase_proxy_t  *p;

    p = ngx_http_fanbase_proxy_get(r);

    /* the parsers of nginx keep their state in the request */

    r->state = 0;

    p->phase = NGX_HTTP_FANBASE_PROXY_STATUS;
    p->status = 0;
    p->length = -1;
    p->in = NULL;
    p->chunked_body = 0;
    p->close = 0;
    p->invalid = 0;
    ngx_str_null(&p->content_type);
    ngx_str_null(&p->retry_after);
    ngx_memzero(&p->st, sizeof(ngx_http_status_t));
    ngx_memzero(&p->chunked, sizeof(ngx_http_chunked_t));

    return NGX_OK;
}


/*
 * Fanbase's answer, read whole before anything is answered: the status
 * line, the headers, then the body into a buffer of its own (u->buffer
 * stays the socket's).
 */

static ngx_int_t
ngx_http_fanbase_proxy_process_header(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_http_upstream_t       *u;
    ngx_http_fanbase_proxy_t  *p;

    p = ngx_http_fanbase_proxy_get(r);
    u = r->upstream;

    for ( ;; ) {

        switch (p->phase) {

        case NGX_HTTP_FANBASE_PROXY_STATUS:

            rc = ngx_http_parse_status_line(r, &u->buffer, &p->st);

            if (rc == NGX_AGAIN) {
                return NGX_AGAIN;
            }

            if (rc != NGX_OK) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "fanbase: %s: Fanbase sent an invalid status "
                              "line", p->what);
                p->invalid = 1;
                return NGX_HTTP_UPSTREAM_INVALID_HEADER;
            }

            p->status = p->st.code;

            if (u->state && u->state->status == 0) {
                u->state->status = p->status;
            }

            p->phase = NGX_HTTP_FANBASE_PROXY_HEADERS;
            break;

        case NGX_HTTP_FANBASE_PROXY_HEADERS:

            rc = ngx_http_fanbase_proxy_header_line(r, p);

            if (rc == NGX_AGAIN) {
                return NGX_AGAIN;
            }

            if (rc != NGX_OK) {
                p->invalid = 1;
                return NGX_HTTP_UPSTREAM_INVALID_HEADER;
            }

            break;

        case NGX_HTTP_FANBASE_PROXY_BODY:

            rc = ngx_http_fanbase_proxy_body(r, p);

            if (rc == NGX_AGAIN) {

                /* the socket's buffer is consumed: room for what follows */

                if (u->buffer.pos == u->buffer.last) {
                    u->buffer.pos = u->buffer.start;
                    u->buffer.last = u->buffer.start;
                }

                return NGX_AGAIN;
            }

            if (rc != NGX_OK) {
                p->invalid = 1;
                return NGX_HTTP_UPSTREAM_INVALID_HEADER;
            }

            p->phase = NGX_HTTP_FANBASE_PROXY_DONE;
            break;

        default: /* NGX_HTTP_FANBASE_PROXY_DONE */
            return ngx_http_fanbase_proxy_complete(r, p);
        }
    }
}


/* NGX_OK: a line, or the end of the headers (p->phase moves on) */

static ngx_int_t
ngx_http_fanbase_proxy_header_line(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p)
{
    size_t                name, len;
    u_char               *value;
    ngx_int_t             rc;
    ngx_uint_t            lowcase;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    rc = ngx_http_parse_header_line(r, &u->buffer, 1);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc == NGX_HTTP_PARSE_HEADER_DONE) {

        if (p->status == NGX_HTTP_NO_CONTENT
            || p->status == NGX_HTTP_NOT_MODIFIED
            || p->status < NGX_HTTP_OK)
        {
            p->length = 0;
            p->chunked_body = 0;
        }

        if (!p->chunked_body && p->length == -1) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanbase: %s: Fanbase answered %ui with neither "
                          "Content-Length nor chunked", p->what, p->status);
            return NGX_ERROR;
        }

        if (p->length > NGX_HTTP_FANBASE_RESPONSE_MAX) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanbase: %s: Fanbase's answer of %O bytes is "
                          "over %d", p->what, p->length,
                          NGX_HTTP_FANBASE_RESPONSE_MAX);
            return NGX_ERROR;
        }

        p->phase = NGX_HTTP_FANBASE_PROXY_BODY;

        return NGX_OK;
    }

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase sent an invalid header",
                      p->what);
        return NGX_ERROR;
    }

    name = r->header_name_end - r->header_name_start;
    value = r->header_start;
    len = r->header_end - r->header_start;

    /*
     * ngx_http_parse_header_line() has written the name in lower case, all
     * of it unless it is longer than NGX_HTTP_LC_HEADER_LEN or has a
     * character that it skips (r->invalid_header), none of which the names
     * below have: compared inline, not by ngx_strncasecmp(), which took a
     * fifth of the instructions of reading Fanbase's answer
     */

    lowcase = (!r->invalid_header && r->lowcase_index == name);

#define ngx_http_fanbase_proxy_is(h)                                         \
    (lowcase && name == sizeof(h) - 1                                        \
     && ngx_memcmp(r->lowcase_header, h, sizeof(h) - 1) == 0)

    if (ngx_http_fanbase_proxy_is("content-length")) {
        p->length = ngx_atoof(value, len);

        if (p->length == NGX_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanbase: %s: Fanbase sent an invalid "
                          "Content-Length", p->what);
            return NGX_ERROR;
        }

    } else if (ngx_http_fanbase_proxy_is("transfer-encoding")) {
        p->chunked_body = (len == sizeof("chunked") - 1
                           && ngx_strncasecmp(value, (u_char *) "chunked",
                                              len) == 0);

        if (!p->chunked_body) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanbase: %s: Fanbase sent an unknown "
                          "Transfer-Encoding", p->what);
            return NGX_ERROR;
        }

    } else if (ngx_http_fanbase_proxy_is("connection")) {
        p->close = (ngx_strlcasestrn(value, value + len, (u_char *) "close",
                                     sizeof("close") - 2)
                    != NULL);

    } else if (ngx_http_fanbase_proxy_is("content-type")) {
        p->content_type.data = ngx_pnalloc(r->pool, len);
        if (p->content_type.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p->content_type.data, value, len);
        p->content_type.len = len;

    } else if (ngx_http_fanbase_proxy_is("retry-after")) {
        p->retry_after.data = ngx_pnalloc(r->pool, len);
        if (p->retry_after.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(p->retry_after.data, value, len);
        p->retry_after.len = len;
    }

#undef ngx_http_fanbase_proxy_is

    return NGX_OK;
}


/* NGX_OK: the body is whole; NGX_AGAIN: more is to come */

static ngx_int_t
ngx_http_fanbase_proxy_body(ngx_http_request_t *r, ngx_http_fanbase_proxy_t *p)
{
    size_t                n;
    ngx_int_t             rc;
    ngx_buf_t            *b;
    ngx_http_upstream_t  *u;

    u = r->upstream;
    b = &u->buffer;

    if (!p->chunked_body) {
        n = ngx_min((off_t) (b->last - b->pos),
                    p->length - (p->in ? p->in->last - p->in->pos : 0));

        if (ngx_http_fanbase_proxy_append(r, p, b->pos, n) != NGX_OK) {
            return NGX_ERROR;
        }

        b->pos += n;

        if ((off_t) (p->in ? p->in->last - p->in->pos : 0) < p->length) {
            return NGX_AGAIN;
        }

        goto done;
    }

    for ( ;; ) {

        rc = ngx_http_parse_chunked(r, b, &p->chunked);

        if (rc == NGX_OK) {
            n = ngx_min((off_t) (b->last - b->pos), p->chunked.size);

            if (ngx_http_fanbase_proxy_append(r, p, b->pos, n) != NGX_OK) {
                return NGX_ERROR;
            }

            b->pos += n;
            p->chunked.size -= n;

            continue;
        }

        if (rc == NGX_DONE) {
            break;
        }

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase sent an invalid chunked body",
                      p->what);
        return NGX_ERROR;
    }

done:

    /* bytes past the answer: the connection is not kept */

    u->keepalive = !p->close && b->pos == b->last;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_proxy_append(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p, u_char *data, size_t len)
{
    size_t      size, have;
    ngx_buf_t  *b;

    have = p->in ? (size_t) (p->in->last - p->in->pos) : 0;

    if (p->in == NULL || (size_t) (p->in->end - p->in->last) < len) {

        if (have + len > NGX_HTTP_FANBASE_RESPONSE_MAX) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "fanbase: %s: Fanbase's answer is over %d bytes",
                          p->what, NGX_HTTP_FANBASE_RESPONSE_MAX);
            return NGX_ERROR;
        }

        size = p->chunked_body ? ngx_max(2 * (have + len), 1024)
                               : (size_t) p->length;

        b = ngx_create_temp_buf(r->pool, ngx_max(size, 1));
        if (b == NULL) {
            return NGX_ERROR;
        }

        if (have) {
            b->last = ngx_cpymem(b->last, p->in->pos, have);
        }

        p->in = b;
    }

    p->in->last = ngx_cpymem(p->in->last, data, len);

    return NGX_OK;
}


/*
 * Fanbase answered in full: a token rejection is retried once with a new
 * token (the answer is swallowed), anything else is for the caller.
 */

static ngx_int_t
ngx_http_fanbase_proxy_complete(ngx_http_request_t *r,
    ngx_http_fanbase_proxy_t *p)
{
    ngx_int_t                  rc;
    ngx_http_upstream_t       *u;
    ngx_http_fanbase_ctx_t    *ctx;
    ngx_http_fanbase_cred_t   *cred;

    u = r->upstream;
    cred = p->lcf->cred;

    if (p->in) {
        p->response.data = p->in->pos;
        p->response.len = p->in->last - p->in->pos;

    } else {
        ngx_str_null(&p->response);
    }

    if (p->status < NGX_HTTP_INTERNAL_SERVER_ERROR) {
        ngx_http_fanbase_zone_answered(cred->mcf->sh);
    }

    if (p->status == NGX_HTTP_UNAUTHORIZED || p->status == NGX_HTTP_FORBIDDEN) {

        if (!p->retried && cred->fixed.len == 0) {
            ngx_http_fanbase_token_reject(cred, p->hdr, r->connection->log);

            ctx = ngx_http_fanbase_variables_ctx(r);
            if (ctx == NULL) {
                return NGX_ERROR;
            }

            ctx->swallow = 1;
            p->retried = 1;

            ngx_str_null(&p->out);
            p->out_status = p->status;
            goto out;
        }

        if (cred->fixed.len) {
            ngx_http_fanbase_token_reject(cred, p->hdr, r->connection->log);
        }

        if (ngx_http_fanbase_response_add_header(r, "Retry-After",
                                                 &ngx_http_fanbase_proxy_retry)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        rc = ngx_http_fanbase_proxy_error(p, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "token_rejected",
                                          "Fanbase rejected the edge's "
                                          "token");

    } else {
        rc = p->answer(p);
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

out:

    u->headers_in.status_n = p->out_status;
    u->headers_in.content_length_n = p->out.len;

    if (p->out_type.len) {
        r->headers_out.content_type = p->out_type;
        r->headers_out.content_type_len = p->out_type.len;
        r->headers_out.content_type_lowcase = NULL;
    }

    /* what the client gets is what nginx's upstream sends on */

    u->buffer.start = p->out.data;
    u->buffer.pos = p->out.data;
    u->buffer.last = p->out.data + p->out.len;
    u->buffer.end = u->buffer.last;

    return NGX_OK;
}


ngx_int_t
ngx_http_fanbase_proxy_reply(ngx_http_fanbase_proxy_t *p, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body)
{
    p->out_status = status;
    p->out_type = *type;
    p->out = *body;

    return NGX_OK;
}


/* Fanbase's status, body and type, as they came */

ngx_int_t
ngx_http_fanbase_proxy_relay(ngx_http_fanbase_proxy_t *p)
{
    if (p->retry_after.len
        && ngx_http_fanbase_response_add_header(p->request, "Retry-After",
                                                &p->retry_after)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_fanbase_proxy_reply(p, p->status,
                                        p->content_type.len
                                        ? &p->content_type
                                        : &ngx_http_fanbase_proxy_json,
                                        &p->response);
}


ngx_int_t
ngx_http_fanbase_proxy_error(ngx_http_fanbase_proxy_t *p, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_str_t                json;
    ngx_http_fanbase_ctx_t  *ctx;

    if (ngx_http_fanbase_response_error_json(p->request->pool, status, code,
                                             message, &json)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx = ngx_http_fanbase_variables_ctx(p->request);
    if (ctx != NULL) {
        ctx->error = code;
    }

    return ngx_http_fanbase_proxy_reply(p, status,
                                        &ngx_http_fanbase_proxy_json, &json);
}


static ngx_int_t
ngx_http_fanbase_proxy_filter_init(void *data)
{
    ngx_http_request_t  *r = data;

    r->upstream->length = r->upstream->headers_in.content_length_n;

    return NGX_OK;
}


/* the reply, in u->buffer, goes on as it is */

static ngx_int_t
ngx_http_fanbase_proxy_filter(void *data, ssize_t bytes)
{
    ngx_http_request_t  *r = data;

    ngx_buf_t            *b;
    ngx_chain_t          *cl, **ll;
    ngx_http_upstream_t  *u;

    u = r->upstream;

    for (cl = u->out_bufs, ll = &u->out_bufs; cl; cl = cl->next) {
        ll = &cl->next;
    }

    cl = ngx_chain_get_free_buf(r->pool, &u->free_bufs);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    *ll = cl;

    b = cl->buf;

    b->flush = 1;
    b->memory = 1;
    b->pos = u->buffer.last;
    b->last = u->buffer.last + bytes;
    b->tag = u->output.tag;

    u->buffer.last += bytes;

    if (bytes > u->length) {
        b->last = b->pos + u->length;
        u->length = 0;
        return NGX_OK;
    }

    u->length -= bytes;

    return NGX_OK;
}


static void
ngx_http_fanbase_proxy_abort_request(ngx_http_request_t *r)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "fanbase proxy: abort request");
}


/*
 * The upstream ends: the call is counted and timed, the slot goes back,
 * and a failure of nginx's upstream (no connection, a timeout, an answer
 * that cannot be read) gets its JSON error from the response filter.
 */

static void
ngx_http_fanbase_proxy_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_msec_t                 ms;
    ngx_http_upstream_t       *u;
    ngx_http_fanbase_ctx_t    *ctx;
    ngx_http_fanbase_proxy_t  *p;

    p = ngx_http_fanbase_proxy_get(r);
    u = r->upstream;
    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    ms = ngx_current_msec - p->start;

    ngx_http_fanbase_variables_call(r, p->phase == NGX_HTTP_FANBASE_PROXY_DONE
                                       ? p->status : 0, p->start);

    ngx_http_fanbase_metrics_call(p->kind, ms * 1000);

    if (ctx != NULL && ctx->swallow && rc == 0) {

        /* a token rejection: sent again once the upstream is gone */

        r->main->count++;
        ngx_post_event(&p->restart, &ngx_posted_events);
        return;
    }

    ngx_http_fanbase_peer_release(&p->slot);

    if (p->hdr != NULL) {
        ngx_http_fanbase_curl_headers_release(p->hdr);
        p->hdr = NULL;
    }

    if (ctx == NULL || u->header_sent || rc < NGX_HTTP_BAD_GATEWAY) {
        return;
    }

    if (rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase timed out", p->what);

        ctx->failure = "upstream_timeout";
        ctx->failure_message = "Fanbase did not answer in time";

    } else if (p->invalid) {
        ctx->failure = "upstream_invalid_response";
        ctx->failure_message = "Fanbase answered something that cannot be "
                               "read";

    } else if (u->request_sent) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: the connection to Fanbase broke after "
                      "the request was sent; it is not sent again", p->what);

        ctx->failure = "upstream_unreachable";
        ctx->failure_message = "the connection to Fanbase broke after the "
                               "request was sent";

    } else {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase unreachable", p->what);

        ctx->failure = "upstream_unreachable";
        ctx->failure_message = "Fanbase could not be reached";
    }
}


static void
ngx_http_fanbase_proxy_restart(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_fanbase_ctx_t    *ctx;
    ngx_http_fanbase_proxy_t  *p = ev->data;

    r = p->request;
    c = r->connection;

    /*
     * the reference taken when the rejected upstream ended was dropped by
     * its ngx_http_finalize_request(): the request is this call's again
     */

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);
    ctx->swallow = 0;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "fanbase: %s: Fanbase rejected the token; sending once "
                  "more with a new one", p->what);

    if (ngx_http_fanbase_proxy_token(p) == NGX_AGAIN) {
        ngx_http_fanbase_wait_add(&p->waiter);
        return;
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_fanbase_proxy_cleanup(void *data)
{
    ngx_http_fanbase_proxy_t  *p = data;

    ngx_http_fanbase_wait_remove(&p->waiter);
    ngx_http_fanbase_peer_release(&p->slot);

    if (p->restart.posted) {
        ngx_delete_posted_event(&p->restart);
    }

    if (p->hdr != NULL) {
        ngx_http_fanbase_curl_headers_release(p->hdr);
        p->hdr = NULL;
    }
}


static ngx_http_fanbase_proxy_t *
ngx_http_fanbase_proxy_get(ngx_http_request_t *r)
{
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    return ctx->proxy;
}
