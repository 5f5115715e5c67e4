
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Reading the client's request: the body in one piece, as it came, a
 * header by name, and the id it names.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_request.h"


/*
 * The exact bytes of a request body read by nginx, in one piece (also
 * used by ngx_http_fanbase_webhook.c, which verifies signatures over it).
 */

ngx_int_t
ngx_http_fanbase_request_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    /*
     * a body larger than client_body_buffer_size was written to a
     * temporary file; it is read back once, from the page cache
     */

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        /* a chunked body may leave empty buffers with no memory */

        if (b->last != b->pos) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}


/* the first header of that name, or NULL */

ngx_table_elt_t *
ngx_http_fanbase_request_header_in(ngx_http_request_t *r, const char *name,
    size_t len)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        /*
         * the first characters compared inline first, with the case bit
         * set (equal for any pair ngx_strncasecmp() takes as equal): no
         * call for a name of the same length, such as Content-Type for
         * X-Request-ID (nginx keeps no header with an empty name)
         */

        if (h[i].key.len == len
            && (h[i].key.data[0] | 0x20) == (u_char) (name[0] | 0x20)
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/* the id: the location's complex value, or the last segment of the path */

ngx_int_t
ngx_http_fanbase_request_id(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char                       *p;
    ngx_http_fanbase_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_fanbase_module);

    if (lcf->status_id != NULL) {
        return ngx_http_complex_value(r, lcf->status_id, id);
    }

    /* after the last '/': glibc's memrchr() reads a word at a time */

#if (__GLIBC__)
    p = memrchr(r->uri.data, '/', r->uri.len);
    p = (p == NULL) ? r->uri.data : p + 1;
#else
    p = r->uri.data + r->uri.len;

    while (p > r->uri.data && *(p - 1) != '/') {
        p--;
    }
#endif

    id->data = p;
    id->len = r->uri.data + r->uri.len - p;

    return NGX_OK;
}
