
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
 *
 * The input: a byte that sets the cut's maximum, then the text.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


static void fuzz_text_cut(const uint8_t *p, size_t len, size_t max);
static void fuzz_text_escape(const uint8_t *p, size_t len, size_t max);


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
