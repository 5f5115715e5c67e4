
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * What the edge answers: JSON documents, JSON errors
 * {"error": {"status": N, "code": "...", "message": "..."}}, Fanbase's
 * answers relayed as they came, and the queue item in Fanbase's shape.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_call.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_variables.h"
#include "ngx_http_fanbase_response.h"


static ngx_int_t ngx_http_fanbase_response_upstream_failure(
    ngx_http_request_t *r, ngx_http_fanbase_curl_t *h, const char *what);
static ngx_int_t ngx_http_fanbase_response_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_fanbase_response_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_fanbase_response_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_str_t *body);


static ngx_http_output_header_filter_pt  ngx_http_fanbase_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_fanbase_next_body_filter;


ngx_int_t
ngx_http_fanbase_response_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *json)
{
    ngx_str_t  type = ngx_string("application/json");

    return ngx_http_fanbase_response_send(r, status, &type, json);
}


static ngx_int_t
ngx_http_fanbase_response_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only || body->len == 0) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_fanbase_response_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_str_t                json;
    ngx_http_fanbase_ctx_t  *ctx;

    if (ngx_http_fanbase_response_error_json(r->pool, status, code, message,
                                             &json)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* $fanbase_error: codes are literals */

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx != NULL) {
        ctx->error = code;
    }

    /* the error page machinery must not replace the JSON body */
    r->err_status = 0;

    return ngx_http_fanbase_response_json(r, status, &json);
}


ngx_int_t
ngx_http_fanbase_response_error_json(ngx_pool_t *pool, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *json)
{
    json->data = ngx_pnalloc(pool, fanbase_json_error_size(code, message));
    if (json->data == NULL) {
        return NGX_ERROR;
    }

    json->len = fanbase_json_render_error(json->data, status, code, message)
                - json->data;

    return NGX_OK;
}


/*
 * Errors nginx answers itself in a fanbase location (a body over
 * client_max_body_size, a malformed request, a timeout) are JSON too:
 * the header filter swaps the standard error page for a JSON error.
 */

ngx_int_t
ngx_http_fanbase_response_filter_init(ngx_conf_t *cf)
{
    ngx_http_fanbase_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_fanbase_response_header_filter;

    ngx_http_fanbase_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_fanbase_response_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_fanbase_response_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t                     status;
    const char                    *code, *message;
    ngx_http_fanbase_ctx_t        *ctx;
    ngx_http_fanbase_loc_conf_t   *lcf;

    status = r->headers_out.status;
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    if (lcf->handler == NGX_HTTP_FANBASE_SUBMIT) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

        /* a token rejection, sent again: not for the client */

        if (ctx != NULL && ctx->swallow) {
            return NGX_OK;
        }
    }

    if (lcf->handler == 0
        || r != r->main
        || status < NGX_HTTP_BAD_REQUEST
        || r->err_status != status)
    {
        return ngx_http_fanbase_next_header_filter(r);
    }

    ctx = ngx_http_fanbase_variables_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    switch (status) {

    case NGX_HTTP_BAD_GATEWAY:
    case NGX_HTTP_GATEWAY_TIME_OUT:

        /* nginx's upstream failed: ngx_http_fanbase_proxy.c said how */

        if (ctx->failure != NULL) {
            code = ctx->failure;
            message = ctx->failure_message;
            break;
        }

        code = "error";
        message = "the request cannot be processed";
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        code = "body_too_large";
        message = "the body is larger than client_max_body_size";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
        code = "request_timeout";
        message = "the request was not received in time";
        break;

    case NGX_HTTP_INTERNAL_SERVER_ERROR:
        code = "internal_error";
        message = "the edge failed to process the request";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        code = "unavailable";
        message = "the edge cannot take the request now";
        break;

    default:
        code = (status < NGX_HTTP_INTERNAL_SERVER_ERROR) ? "bad_request"
                                                         : "error";
        message = "the request cannot be processed";
        break;
    }

    if (ngx_http_fanbase_response_error_json(r->pool, status, code, message,
                                             &ctx->error_page)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->error = code;

    ngx_http_clear_content_length(r);
    r->headers_out.content_length_n = ctx->error_page.len;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    return ngx_http_fanbase_next_header_filter(r);
}


static ngx_int_t
ngx_http_fanbase_response_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t               *b;
    ngx_uint_t               last;
    ngx_chain_t             *cl, out;
    ngx_http_fanbase_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_fanbase_module);

    if (ctx == NULL) {
        return ngx_http_fanbase_next_body_filter(r, in);
    }

    if (ctx->swallow) {
        for (cl = in; cl; cl = cl->next) {
            cl->buf->pos = cl->buf->last;
            cl->buf->file_pos = cl->buf->file_last;
        }

        return NGX_OK;
    }

    if (ctx->error_page.len == 0) {
        return ngx_http_fanbase_next_body_filter(r, in);
    }

    /* the standard page is consumed and dropped */

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        last |= cl->buf->last_buf;
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (!last || ctx->error_page_sent) {
        return NGX_OK;
    }

    ctx->error_page_sent = 1;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = ctx->error_page.data;
    b->last = ctx->error_page.data + ctx->error_page.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_fanbase_next_body_filter(r, &out);
}


/* 405 with the methods allowed; the body, if any, is discarded */

ngx_int_t
ngx_http_fanbase_response_not_allowed(ngx_http_request_t *r, const char *allow,
    const char *message)
{
    ngx_str_t  value;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value.data = (u_char *) allow;
    value.len = ngx_strlen(allow);

    if (ngx_http_fanbase_response_add_header(r, "Allow", &value) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fanbase_response_error(r, NGX_HTTP_NOT_ALLOWED,
                                           "method_not_allowed", message);
}


ngx_int_t
ngx_http_fanbase_response_unavailable(ngx_http_request_t *r, const char *code,
    const char *message, time_t retry_after)
{
    ngx_str_t  value;
    u_char     buf[NGX_TIME_T_LEN];

    value.data = buf;
    value.len = ngx_sprintf(buf, "%T", ngx_max(retry_after, 1)) - buf;

    value.data = ngx_pstrdup(r->pool, &value);
    if (value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_fanbase_response_add_header(r, "Retry-After", &value)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_fanbase_response_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           code, message);
}


/*
 * A call to Connect that gave no usable answer: no token (503), the token
 * refused twice (503), an internal failure (500), or Fanbase's failure
 * (502, 504).
 */

ngx_int_t
ngx_http_fanbase_response_call_failure(ngx_http_request_t *r,
    ngx_http_fanbase_call_t *call, ngx_int_t rc, const char *what)
{
    if (rc == NGX_DECLINED) {
        return ngx_http_fanbase_response_unavailable(r, "token_unavailable",
                                                     "no Fanbase token can be "
                                                     "had now",
                                                     call->retry_after);
    }

    if (rc != NGX_OK) {
        return ngx_http_fanbase_response_error(r,
                                               NGX_HTTP_INTERNAL_SERVER_ERROR,
                                               "internal_error",
                                               "the call to Fanbase was not "
                                               "made");
    }

    if (call->rejected) {
        return ngx_http_fanbase_response_unavailable(r, "token_rejected",
                                                     "Fanbase rejected the "
                                                     "edge's token", 5);
    }

    return ngx_http_fanbase_response_upstream_failure(r, call->http, what);
}


/* 5xx, timeouts and failed connections become 502 or 504 */

static ngx_int_t
ngx_http_fanbase_response_upstream_failure(ngx_http_request_t *r,
    ngx_http_fanbase_curl_t *h, const char *what)
{
    if (h->result == CURLE_OPERATION_TIMEDOUT) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase timed out: %s", what, h->error);

        return ngx_http_fanbase_response_error(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                               "upstream_timeout",
                                               "Fanbase did not answer "
                                               "in time");
    }

    if (h->result == CURLE_ABORTED_BY_CALLBACK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: the connection to Fanbase broke after "
                      "the request was sent; it is not sent again", what);

        return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_GATEWAY,
                                               "upstream_unreachable",
                                               "the connection to Fanbase "
                                               "broke after the request was "
                                               "sent");
    }

    if (h->result != CURLE_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase unreachable: %s", what,
                      h->error[0] ? h->error : curl_easy_strerror(h->result));

        return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_GATEWAY,
                                               "upstream_unreachable",
                                               "Fanbase could not be reached");
    }

    if (h->status >= 500) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "fanbase: %s: Fanbase answered %l", what, h->status);

        return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_GATEWAY,
                                               "upstream_error",
                                               "Fanbase failed to process the "
                                               "request");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "fanbase: %s: Fanbase answered %l with an unusable body",
                  what, h->status);

    return ngx_http_fanbase_response_error(r, NGX_HTTP_BAD_GATEWAY,
                                           "upstream_invalid_response",
                                           "Fanbase answered something that "
                                           "cannot be read");
}


/* Fanbase's status, body and type, as they came */

ngx_int_t
ngx_http_fanbase_response_relay(ngx_http_request_t *r,
    ngx_http_fanbase_curl_t *h)
{
    ngx_str_t  body, type, value;

    if (h->retry_after[0]) {
        value.data = h->retry_after;
        value.len = ngx_strlen(h->retry_after);

        if (ngx_http_fanbase_response_add_header(r, "Retry-After", &value)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    /* the body stays in the transfer until the request is freed */

    body.data = h->body;
    body.len = h->len;

    if (h->content_type[0]) {
        type.data = h->content_type;
        type.len = ngx_strlen(h->content_type);

    } else {
        ngx_str_set(&type, "application/json");
    }

    return ngx_http_fanbase_response_send(r, h->status, &type, &body);
}


ngx_int_t
ngx_http_fanbase_response_add_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* Fanbase's queue item: the fields, types and nulls of its GET answer */

ngx_int_t
ngx_http_fanbase_response_render_item(ngx_pool_t *pool, fanbase_item_t *item,
    ngx_uint_t show_msg, ngx_str_t *out)
{
    out->data = ngx_pnalloc(pool, fanbase_json_item_size(item, show_msg));
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    out->len = fanbase_json_render_item(out->data, item, show_msg)
               - out->data;

    return NGX_OK;
}
