
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_json_parse_item(): Fanbase's queue item, the answer to POST and
 * GET /api/v1/integration/queue, read by the module's own one-pass reader,
 * which must answer what yajl would.
 *
 * Checks: the answer and every field are those of
 * fanbase_json_parse_item_yajl(), the same reading on yajl's event parser
 * (the oracle: the same answer, the same decoded bytes, null and "" told
 * apart, "msg" the same bytes of the input); on FANBASE_JSON_OK an id and
 * a known status, every string inside the item's pool (and valid UTF-8),
 * "msg" inside the input and one whole JSON object; on failure an item
 * with nothing left to free; the same input parsed twice gives the same
 * item; an input is invalid exactly when the submission check finds it
 * invalid (the same JSON grammar).  The free function is always called,
 * and called twice.  An item rendered back (as the edge answers a status,
 * with and without "msg") fits in its size and is an object that yajl
 * reads, with the item's id.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


static void fuzz_item_str(const fanbase_item_t *item, const fanbase_str_t *s);
static void fuzz_item_render(const fanbase_item_t *item, int show_msg);
static void fuzz_item_same(const fanbase_item_t *a, const fanbase_item_t *b);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc, rc2;
    uint8_t        *p;
    const char     *err;
    fanbase_item_t  item, item2;

    p = fuzz_copy(data, size);

    rc = fanbase_json_parse_item(p, size, &item);

    fuzz_check(rc == FANBASE_JSON_OK || rc == FANBASE_JSON_INVALID
               || rc == FANBASE_JSON_SHAPE);

    if (rc == FANBASE_JSON_OK) {
        fuzz_check(item.id.data != NULL && item.id.len > 0);
        fuzz_check(item.status >= FANBASE_STATUS_PENDING
                   && item.status <= FANBASE_STATUS_FAILED);
        fuzz_check(item.pool != NULL && item.pool_len <= item.pool_size);

        fuzz_item_str(&item, &item.id);
        fuzz_item_str(&item, &item.created);
        fuzz_item_str(&item, &item.imsg);
        fuzz_item_str(&item, &item.process_date);
        fuzz_item_str(&item, &item.process_msg);

        if (item.msg.data != NULL) {
            fuzz_check(fuzz_within(item.msg.data, item.msg.len, p, size));
            fuzz_check(item.msg.len >= 2);
            fuzz_check(item.msg.data[0] == '{');
            fuzz_check(item.msg.data[item.msg.len - 1] == '}');
            fuzz_check(fanbase_json_check_submission(item.msg.data,
                                                     item.msg.len, &err)
                       != FANBASE_JSON_INVALID);
        }

        fuzz_item_render(&item, 0);
        fuzz_item_render(&item, 1);

    } else {
        fuzz_check(item.pool == NULL && item.id.data == NULL);
    }

    fuzz_check(!fuzz_plain_json(p, size)
               || (rc == FANBASE_JSON_INVALID)
                  == (fanbase_json_check_submission(p, size, &err)
                      == FANBASE_JSON_INVALID));

    rc2 = fanbase_json_parse_item(p, size, &item2);

    fuzz_check(rc2 == rc);
    fuzz_item_same(&item, &item2);

    fanbase_json_item_free(&item2);

    /* the oracle */

    rc2 = fanbase_json_parse_item_yajl(p, size, &item2);

    if (rc2 != rc) {
        fprintf(stderr, "parse_item %d, yajl %d\n", rc, rc2);
    }

    fuzz_check(rc2 == rc);
    fuzz_item_same(&item, &item2);

    fanbase_json_item_free(&item);
    fanbase_json_item_free(&item2);
    fanbase_json_item_free(&item);

    free(p);

    return 0;
}


static void
fuzz_item_str(const fanbase_item_t *item, const fanbase_str_t *s)
{
    fuzz_check(fuzz_within(s->data, s->len, item->pool, item->pool_len));
    fuzz_check(s->data == NULL || fuzz_utf8(s->data, s->len));
}


static void
fuzz_item_same(const fanbase_item_t *a, const fanbase_item_t *b)
{
    fuzz_check(fuzz_str_eq(a->id.data, a->id.len, b->id.data, b->id.len));
    fuzz_check(fuzz_str_eq(a->created.data, a->created.len,
                           b->created.data, b->created.len));
    fuzz_check(fuzz_str_eq(a->imsg.data, a->imsg.len,
                           b->imsg.data, b->imsg.len));
    fuzz_check(fuzz_str_eq(a->process_date.data, a->process_date.len,
                           b->process_date.data, b->process_date.len));
    fuzz_check(fuzz_str_eq(a->process_msg.data, a->process_msg.len,
                           b->process_msg.data, b->process_msg.len));
    fuzz_check(a->msg.data == b->msg.data && a->msg.len == b->msg.len);
    fuzz_check(a->icode_set == b->icode_set && a->icode == b->icode);
    fuzz_check(a->status == b->status);
}


static void
fuzz_item_render(const fanbase_item_t *item, int show_msg)
{
    size_t    size;
    uint8_t  *doc, *e;

    static const char  *id_path[] = { "id", NULL };

    size = fanbase_json_item_size(item, show_msg);
    doc = malloc(size + 1);
    fuzz_check(doc != NULL);

    e = fanbase_json_render_item(doc, item, show_msg);
    fuzz_rendered(doc, e - doc, size, id_path, item->id.data, item->id.len);

    free(doc);
}
