
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_submit: the drop-in for POST {connect}/api/v1/integration/queue.
 * The body is checked (a JSON object with a string "action" and an object
 * "data"), a place in the zone is reserved, the body goes unchanged to
 * Fanbase with the edge's token, and Fanbase's answer is relayed and
 * recorded.  A POST that may have reached Fanbase is never sent again,
 * except after a token rejection.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_metrics.h"
#include "ngx_http_fanbase_accept.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_item.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_proxy.h"
#include "ngx_http_fanbase_request.h"
#include "ngx_http_fanbase_response.h"
#include "ngx_http_fanbase_rid.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_submit.h"


typedef struct {
    ngx_http_fanbase_proxy_t       proxy;
    ngx_http_fanbase_main_conf_t  *mcf;
    void                          *reserved;
} ngx_http_fanbase_submit_ctx_t;


static ngx_int_t ngx_http_fanbase_submit_content_type(ngx_http_request_t *r);
static void ngx_http_fanbase_submit_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_fanbase_submit_answer(ngx_http_fanbase_proxy_t *p);
static ngx_int_t ngx_http_fanbase_submit_accepted(
    ngx_http_fanbase_submit_ctx_t *ctx);
static ngx_uint_t ngx_http_fanbase_submit_plain_path(u_char *p, size_t len);
static void ngx_http_fanbase_submit_cleanup(void *data);


/*
 * what ngx_escape_uri(NGX_ESCAPE_URI) leaves as it is, and more: letters,
 * digits, '-', '.', '/', '_', '~'
 */

static const u_char  ngx_http_fanbase_submit_path_chars[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1,        /* 0x20 -./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,        /* 0x30 */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,        /* 0x50 _ */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0         /* 0x70 ~ */
};


static ngx_str_t  ngx_http_fanbase_submit_method = ngx_string("POST");
static ngx_str_t  ngx_http_fanbase_submit_path =
    ngx_string(NGX_HTTP_FANBASE_QUEUE_PATH);


ngx_int_t
ngx_http_fanbase_submit_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    if (ngx_http_fanbase_rid_set(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & NGX_HTTP_POST)) {
        return ngx_http_fanbase_response_not_allowed(r, "POST",
                                                     "submissions are POST "
                                                     "only");
    }

    if (ngx_http_fanbase_submit_content_type(r) != NGX_OK) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_fanbase_response_error(r,
                                               NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                               "unsupported_media_type",
                                               "the body must be "
                                               "application/json");
    }

    /*
     * nginx refuses a Content-Length over client_max_body_size before this
     * handler runs; the response filter makes that answer JSON
     */

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_fanbase_submit_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static ngx_int_t
ngx_http_fanbase_submit_content_type(ngx_http_request_t *r)
{
    u_char           *p, *last;
    ngx_table_elt_t  *h;

    h = r->headers_in.content_type;

    if (h == NULL) {
        return NGX_DECLINED;
    }

    p = h->value.data;
    last = p + h->value.len;

    /* as clients send it, at once; in other cases, case-insensitively */

    if (h->value.len < sizeof("application/json") - 1
        || (ngx_memcmp(p, "application/json", sizeof("application/json") - 1)
            != 0
            && ngx_strncasecmp(p, (u_char *) "application/json",
                               sizeof("application/json") - 1)
               != 0))
    {
        return NGX_DECLINED;
    }

    p += sizeof("application/json") - 1;

    /* parameters, such as charset, may follow */

    if (p == last || *p == ';' || *p == ' ' || *p == '\t') {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_fanbase_submit_body(ngx_http_request_t *r)
{
    size_t                          payload;
    ngx_int_t                       rc;
    const char                     *err;
    ngx_str_t                       body;
    ngx_http_cleanup_t             *cln;
    ngx_http_fanbase_loc_conf_t    *lcf;
    ngx_http_fanbase_submit_ctx_t  *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    if (ngx_http_fanbase_request_read_body(r, &body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = fanbase_json_check_submission(body.data, body.len, &err);

    if (rc != FANBASE_JSON_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: submission refused: %s", err);

        rc = ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_REQUEST,
                                             rc == FANBASE_JSON_INVALID
                                             ? "invalid_json"
                                             : "invalid_submission", err);
        ngx_http_finalize_request(r, rc);
        return;
    }

    if (lcf->async) {
        /* accepted at once, delivered in the background */
        ngx_http_finalize_request(r, ngx_http_fanbase_accept(r, &body));
        return;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_fanbase_submit_ctx_t));
    if (ctx == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->mcf = ngx_http_get_module_main_conf(r, ngx_http_fanbase_module);

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    cln->handler = ngx_http_fanbase_submit_cleanup;
    cln->data = ctx;

    /* a place in the zone first: a full zone refuses before Fanbase */

    payload = lcf->store_payload ? body.len : 0;

    ctx->reserved = ngx_http_fanbase_item_reserve(ctx->mcf, payload,
                                                   r->connection->log);
    if (ctx->reserved == NULL) {
        rc = ngx_http_fanbase_response_unavailable(r, "zone_full",
                                                   "the transaction store is "
                                                   "full", 5);
        ngx_http_finalize_request(r, rc);
        return;
    }

    ctx->proxy.request = r;
    ctx->proxy.lcf = lcf;
    ctx->proxy.method = ngx_http_fanbase_submit_method;
    ctx->proxy.path = ngx_http_fanbase_submit_path;
    ctx->proxy.body = body;
    ctx->proxy.kind = NGX_HTTP_FANBASE_CALL_SUBMIT;
    ctx->proxy.answer = ngx_http_fanbase_submit_answer;
    ctx->proxy.data = ctx;
    ctx->proxy.what = "submission";

    ngx_http_fanbase_proxy_start(&ctx->proxy);
}


/* Fanbase answered: what the client gets */

static ngx_int_t
ngx_http_fanbase_submit_answer(ngx_http_fanbase_proxy_t *p)
{
    ngx_http_request_t             *r;
    ngx_http_fanbase_submit_ctx_t  *ctx;

    ctx = p->data;
    r = p->request;

    if (p->status >= 200 && p->status < 300) {
        return ngx_http_fanbase_submit_accepted(ctx);
    }

    if (p->status >= 400 && p->status < 500) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: Fanbase refused the submission with %ui",
                      p->status);

        return ngx_http_fanbase_proxy_relay(p);
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "fanbase: submission: Fanbase answered %ui", p->status);

    return ngx_http_fanbase_proxy_error(p, NGX_HTTP_BAD_GATEWAY,
                                        "upstream_error",
                                        "Fanbase failed to process the "
                                        "request");
}


static ngx_int_t
ngx_http_fanbase_submit_accepted(ngx_http_fanbase_submit_ctx_t *ctx)
{
    u_char                   *p;
    size_t                    len;
    uintptr_t                 escape;
    ngx_int_t                 rc;
    ngx_uint_t                valid;
    ngx_str_t                 id, location;
    fanbase_item_t            item;
    ngx_http_request_t       *r;

    r = ctx->proxy.request;

    if (fanbase_json_parse_item(ctx->proxy.response.data,
                                ctx->proxy.response.len, &item)
        != FANBASE_JSON_OK)
    {
        /* it reached Fanbase: say so, and never send it again */

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: Fanbase answered the submission with %ui "
                      "and a body that is not a queue item",
                      ctx->proxy.status);

        return ngx_http_fanbase_proxy_error(&ctx->proxy, NGX_HTTP_BAD_GATEWAY,
                                            "upstream_invalid_response",
                                            "Fanbase accepted the "
                                            "submission with an answer "
                                            "that cannot be read; "
                                            "do not resend it");
    }

    if (item.icode_set && item.icode != 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "fanbase: submission accepted with iCode %L",
                      item.icode);
    }

    /* the original payload is the queue item's "msg" */

    item.msg.data = ctx->proxy.body.data;
    item.msg.len = ctx->proxy.body.len;

    id.data = (u_char *) item.id.data;
    id.len = item.id.len;

    ngx_http_fanbase_variables_id(r, 1, id.data, id.len);

    /* the id is checked once: item_update() would check it again */

    valid = (ngx_http_fanbase_id_valid(&id) == NGX_OK);

    rc = valid
         ? ngx_http_fanbase_item_store(ctx->mcf, ctx->proxy.lcf->scope, &item,
                                       ctx->proxy.lcf->store_payload, 1,
                                       ctx->reserved, r->connection->log)
         : ngx_http_fanbase_item_update(ctx->mcf, ctx->proxy.lcf->scope,
                                        &item, ctx->proxy.lcf->store_payload,
                                        1, ctx->reserved, r->connection->log);
    ctx->reserved = NULL;

    if (valid) {
        len = r->uri.len;

        while (len && r->uri.data[len - 1] == '/') {
            len--;
        }

        /*
         * r->uri is decoded: what the client sent as %0D%0A is CR LF
         * there.  As nginx's static module does for its redirects, the
         * path is escaped again before it goes into a header; mostly it
         * has nothing to escape, and a quick look at its characters,
         * four at a time, says so without ngx_escape_uri()'s count.
         */

        escape = ngx_http_fanbase_submit_plain_path(r->uri.data, len)
                 ? 0
                 : 2 * ngx_escape_uri(NULL, r->uri.data, len,
                                      NGX_ESCAPE_URI);

        location.len = len + escape + 1 + id.len;
        location.data = ngx_pnalloc(r->pool, location.len);

        if (location.data == NULL) {
            fanbase_json_item_free(&item);
            return NGX_ERROR;
        }

        /* mostly nothing to escape: a copy, not a second pass */

        p = escape ? (u_char *) ngx_escape_uri(location.data, r->uri.data,
                                               len, NGX_ESCAPE_URI)
                   : ngx_cpymem(location.data, r->uri.data, len);
        *p++ = '/';
        ngx_memcpy(p, id.data, id.len);

        if (ngx_http_fanbase_response_add_header(r, "Location", &location)
            != NGX_OK)
        {
            fanbase_json_item_free(&item);
            return NGX_ERROR;
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "fanbase: submission accepted as \"%V\"%s", &id,
                  rc == NGX_DECLINED ? ", not kept in the zone" : "");

    fanbase_json_item_free(&item);

    return ngx_http_fanbase_proxy_relay(&ctx->proxy);
}


/* 1: a path ngx_escape_uri(NGX_ESCAPE_URI) would leave as it is */

static ngx_uint_t
ngx_http_fanbase_submit_plain_path(u_char *p, size_t len)
{
    u_char  *last;

    last = p + len;

    for ( /* void */ ; last - p >= 4; p += 4) {
        if (!(ngx_http_fanbase_submit_path_chars[p[0]]
              & ngx_http_fanbase_submit_path_chars[p[1]]
              & ngx_http_fanbase_submit_path_chars[p[2]]
              & ngx_http_fanbase_submit_path_chars[p[3]]))
        {
            return 0;
        }
    }

    for ( /* void */ ; p < last; p++) {
        if (!ngx_http_fanbase_submit_path_chars[*p]) {
            return 0;
        }
    }

    return 1;
}


static void
ngx_http_fanbase_submit_cleanup(void *data)
{
    ngx_http_fanbase_submit_ctx_t  *ctx = data;

    if (ctx->reserved != NULL) {
        ngx_http_fanbase_item_unreserve(ctx->mcf, ctx->reserved);
        ctx->reserved = NULL;
    }
}
