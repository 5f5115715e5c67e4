
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The rules of every string the module keeps or writes as JSON
 * (src/ngx_http_fanbase_json.c): strict UTF-8, cuts on a character
 * boundary and by the escaped length, the one escaper, the repair of what
 * yajl lets through, and the depth-checked tree.
 *
 * Checks: fanbase_utf8_valid() is the harness's own strict UTF-8 check; a
 * cut is a prefix no longer than asked, never inside a character of valid
 * text, and the longest such; the escaper's output, quoted, is a JSON
 * string that yajl reads back as strict UTF-8, the input itself when that
 * was valid, within FANBASE_JSON_ESCAPE_MAX bytes a byte; an escaped cut
 * fits and one more character would not; a repair leaves valid text as it
 * is and makes any text valid; the tree is refused exactly when the text
 * nests deeper than FANBASE_JSON_DEPTH_MAX, and freed without trouble.
 * The documents the edge renders by hand with the text in them (an error's
 * message, a 202's path, an event's message; a transaction's head around
 * one event) fit in their size and are JSON objects that yajl reads back,
 * the text (or the id) itself in its place when that was valid.
 *
 * The input: a byte that sets the cut's maximum, then the text.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


static void fuzz_text_cut(const uint8_t *p, size_t len, size_t max);
static void fuzz_text_escape(const uint8_t *p, size_t len, size_t max);
static void fuzz_text_render(const uint8_t *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int        valid, too_deep;
    size_t     max;
    uint8_t   *p, *q;
    yajl_val   tree;

    if (size < 2) {
        return 0;
    }

    max = data[0] * 3 % (size + 8);
    size--;
    p = malloc(size);
    fuzz_check(p != NULL);
    memcpy(p, data + 1, size);

    valid = fanbase_utf8_valid(p, size);
    fuzz_check(valid == fuzz_utf8(p, size));

    fuzz_text_cut(p, size, max);
    fuzz_text_escape(p, size, max);
    fuzz_text_render(p, size);

    q = malloc(size);
    fuzz_check(q != NULL);
    memcpy(q, p, size);
    fanbase_utf8_repair(q, size);
    fuzz_check(fanbase_utf8_valid(q, size));
    fuzz_check(!valid || size == 0 || memcmp(p, q, size) == 0);
    free(q);

    tree = fanbase_json_tree(p, size, &too_deep);
    fuzz_check(!too_deep || tree == NULL);
    fuzz_check(!valid || memchr(p, '\0', size) != NULL
               || too_deep == !fuzz_plain_json(p, size));

    if (tree != NULL) {
        yajl_tree_free(tree);
    }

    free(p);

    return 0;
}


static void
fuzz_text_cut(const uint8_t *p, size_t len, size_t max)
{
    size_t  n, next;

    n = fanbase_utf8_cut(p, len, max);

    fuzz_check(n <= len && (n <= max || n == len));
    fuzz_check(len > max || n == len);

    if (n < len && fanbase_utf8_valid(p, len)) {
        /* not inside a character, and the next one does not fit */
        fuzz_check((p[n] & 0xc0) != 0x80);
        fuzz_check(fanbase_utf8_valid(p, n));

        for (next = n + 1; next < len && (p[next] & 0xc0) == 0x80; next++) {
            /* void */
        }

        fuzz_check(next > max);
    }
}


static void
fuzz_text_escape(const uint8_t *p, size_t len, size_t max)
{
    char           *text;
    size_t          n, out, more;
    uint8_t        *buf, *e;
    yajl_val        v;
    const uint8_t  *s;

    buf = malloc(FANBASE_JSON_ESCAPE_MAX * len + 3);
    fuzz_check(buf != NULL);

    buf[0] = '"';
    e = fanbase_json_escape(buf + 1, p, len);
    out = e - (buf + 1);
    fuzz_check(out <= FANBASE_JSON_ESCAPE_MAX * len);
    *e++ = '"';
    *e = '\0';

    /* a JSON string, read back by another parser */

    fuzz_check(memchr(buf, '\0', out + 2) == NULL);
    text = (char *) buf;
    v = yajl_tree_parse(text, NULL, 0);
    fuzz_check(v != NULL && YAJL_IS_STRING(v));
    s = (const uint8_t *) YAJL_GET_STRING(v);

    if (fanbase_utf8_valid(p, len) && memchr(p, '\0', len) == NULL) {
        fuzz_check(strlen((const char *) s) == len && memcmp(s, p, len) == 0);
    }

    fuzz_check(fanbase_utf8_valid(s, strlen((const char *) s)));
    yajl_tree_free(v);

    /* the escaped cut fits, one more character would not */

    n = fanbase_json_escape_cut(p, len, max);
    fuzz_check(n <= len);
    out = fanbase_json_escape(buf, p, n) - buf;
    fuzz_check(out <= max);

    if (n < len) {
        more = fanbase_utf8_cut(p + n, len - n, 4);
        more = more ? more : 1;
        fuzz_check((size_t) (fanbase_json_escape(buf, p, n + more) - buf)
                   > max);
    }

    free(buf);
}


static void
fuzz_text_render(const uint8_t *p, size_t len)
{
    char                *message;
    size_t               size, n;
    uint8_t             *doc, *txn, *e, *plain, *pe;
    fanbase_str_t        id, path;
    fanbase_event_t      ev;
    fanbase_txn_head_t   head;

    static const char  *error_path[] = { "error", "message", NULL };
    static const char  *accepted_path[] = { "transaction_id", NULL };
    static const char  *event_path[] = { "message", NULL };
    static const char  *txn_path[] = { "id", NULL };

    /* an error's message is a C string: up to a NUL */

    message = malloc(len + 1);
    fuzz_check(message != NULL);
    memcpy(message, p, len);
    message[len] = '\0';

    size = fanbase_json_error_size("bad_request", message);
    doc = malloc(size + 1);
    fuzz_check(doc != NULL);
    e = fanbase_json_render_error(doc, 400, "bad_request", message);
    n = strlen(message);
    fuzz_rendered(doc, e - doc, size, error_path, p, n);
    free(doc);
    free(message);

    id.data = (const uint8_t *) "0f8fad5b-d9cb-469f-a165-70867728950e";
    id.len = 36;
    path.data = p;
    path.len = len;

    size = fanbase_json_accepted_size(&id, &path);
    doc = malloc(size + 1);
    fuzz_check(doc != NULL);
    e = fanbase_json_render_accepted(doc, &id, &path);
    fuzz_rendered(doc, e - doc, size, accepted_path, id.data, id.len);

    /* a plain path: the copy without escapes gives the same bytes */

    if (fanbase_json_is_plain(p, len)) {
        plain = malloc(fanbase_json_accepted_plain_size(&id, &path) + 1);
        fuzz_check(plain != NULL);
        pe = fanbase_json_render_accepted_plain(plain, &id, &path);
        fuzz_check((size_t) (pe - plain)
                   == fanbase_json_accepted_plain_size(&id, &path));
        fuzz_check(pe - plain == e - doc
                   && memcmp(plain, doc, e - doc) == 0);
        free(plain);
    }

    free(doc);

    ev.kind = "failure";
    ev.message.data = p;
    ev.message.len = len;
    ev.data.data = (const uint8_t *) "{\"queue_id\":\"q1\"}";
    ev.data.len = len % 2 ? sizeof("{\"queue_id\":\"q1\"}") - 1 : 0;
    ev.status = (int) (len % 7);
    ev.created_at.data = (const uint8_t *) "2026-01-01T00:00:00.000Z";
    ev.created_at.len = FANBASE_JSON_TIME_LEN;

    size = fanbase_json_event_size(&ev);
    doc = malloc(size + 1);
    fuzz_check(doc != NULL);
    e = fanbase_json_render_event(doc, &ev);
    n = e - doc;
    fuzz_rendered(doc, n, size, event_path, p, len);

    /* the transaction around that event */

    head.id = id;
    head.created_at = ev.created_at;
    head.updated_at = ev.created_at;
    head.status = ev.status;

    size = fanbase_json_txn_head_size(&head) + n + 2;
    txn = malloc(size + 1);
    fuzz_check(txn != NULL);
    e = fanbase_json_render_txn_head(txn, &head);
    memcpy(e, doc, n);
    e += n;
    *e++ = ']';
    *e++ = '}';
    fuzz_rendered(txn, e - txn, size, txn_path, id.data, id.len);
    free(txn);
    free(doc);
}
