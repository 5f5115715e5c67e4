
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_json_parse_update(): the body of an inbound webhook, Fanbase's
 * queue item or a transaction with events.
 *
 * Checks: on FANBASE_JSON_OK an id and a known status, the fields of the
 * other shape absent, "cancelled" only from a transaction, every string a
 * whole C string of valid UTF-8; the same body parsed twice gives the same
 * update; a body is invalid exactly when the submission check finds it
 * invalid (bodies without a '/': yajl's tree parser allows comments).  The
 * free function is always called, whatever the answer, as webhook.c does,
 * and called twice.
 *
 * The input is at most libFuzzer's -max_len (4096 by default): the
 * recursion of yajl_tree_free() on deep nesting (issue 11, item 2) needs
 * far more, see t/fuzz/crashes/update-deep-nesting.
 */


#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


static void fuzz_update_str(const fanbase_str_t *s);
static void fuzz_update_same(const fanbase_update_t *a,
    const fanbase_update_t *b);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int               rc, rc2;
    uint8_t          *p;
    const char       *err;
    fanbase_update_t  u, u2;

    p = fuzz_copy(data, size);

    rc = fanbase_json_parse_update(p, size, &u);

    fuzz_check(rc == FANBASE_JSON_OK || rc == FANBASE_JSON_INVALID
               || rc == FANBASE_JSON_SHAPE);
    fuzz_check(rc != FANBASE_JSON_INVALID || u.tree == NULL);

    if (rc == FANBASE_JSON_OK) {
        fuzz_check(u.id.data != NULL && u.id.len > 0);
        fuzz_check(u.status >= FANBASE_STATUS_PENDING
                   && u.status <= FANBASE_STATUS_CANCELLED);

        if (u.queue_item) {
            fuzz_check(u.status != FANBASE_STATUS_CANCELLED);
            fuzz_check(u.message.data == NULL);
            fuzz_check(u.error_message.data == NULL);

        } else {
            fuzz_check(u.process_date.data == NULL);
            fuzz_check(u.process_msg.data == NULL);
            fuzz_check(u.imsg.data == NULL);
            fuzz_check(!u.icode_set);
        }
    }

    fuzz_update_str(&u.id);
    fuzz_update_str(&u.process_date);
    fuzz_update_str(&u.process_msg);
    fuzz_update_str(&u.imsg);
    fuzz_update_str(&u.message);
    fuzz_update_str(&u.error_message);

    if (memchr(p, '/', size) == NULL && fuzz_plain_json(p, size)) {
        fuzz_check((rc == FANBASE_JSON_INVALID)
                   == (fanbase_json_check_submission(p, size, &err)
                       == FANBASE_JSON_INVALID));
    }

    rc2 = fanbase_json_parse_update(p, size, &u2);

    fuzz_check(rc2 == rc);
    fuzz_update_same(&u, &u2);

    fanbase_json_update_free(&u);
    fanbase_json_update_free(&u2);
    fanbase_json_update_free(&u);

    fuzz_check(u.tree == NULL);

    free(p);

    return 0;
}


static void
fuzz_update_str(const fanbase_str_t *s)
{
    if (s->data == NULL) {
        fuzz_check(s->len == 0);
        return;
    }

    fuzz_check(strlen((const char *) s->data) == s->len);
    fuzz_check(fuzz_utf8(s->data, s->len));
}


static void
fuzz_update_same(const fanbase_update_t *a, const fanbase_update_t *b)
{
    fuzz_check(fuzz_str_eq(a->id.data, a->id.len, b->id.data, b->id.len));
    fuzz_check(fuzz_str_eq(a->process_date.data, a->process_date.len,
                           b->process_date.data, b->process_date.len));
    fuzz_check(fuzz_str_eq(a->process_msg.data, a->process_msg.len,
                           b->process_msg.data, b->process_msg.len));
    fuzz_check(fuzz_str_eq(a->imsg.data, a->imsg.len,
                           b->imsg.data, b->imsg.len));
    fuzz_check(fuzz_str_eq(a->message.data, a->message.len,
                           b->message.data, b->message.len));
    fuzz_check(fuzz_str_eq(a->error_message.data, a->error_message.len,
                           b->error_message.data, b->error_message.len));
    fuzz_check(a->icode_set == b->icode_set && a->icode == b->icode);
    fuzz_check(a->status == b->status && a->queue_item == b->queue_item);
}
