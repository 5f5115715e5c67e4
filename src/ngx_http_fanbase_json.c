
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * JSON shapes of the Fanbase wire contracts: the submission check and the
 * queue item read once by hand with yajl's grammar, the token answer (and
 * the queue item, as the oracle of the fuzzer) on yajl's event parser (one
 * pass, no tree, decoded strings copied into one buffer per document), the
 * webhook update on a depth-checked tree; and the UTF-8 and escaping rules
 * of every string the module keeps or writes as JSON.
 */


#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_json.h"

#if (defined __SSE2__)
#include <emmintrin.h>
#define FANBASE_JSON_SSE2  1
#else
#define FANBASE_JSON_SSE2  0
#endif

/*
 * What a plain submission does not need is kept out of the cache lines of
 * what it does
 */
#if (defined __GNUC__)
#define FANBASE_JSON_COLD      __attribute__((cold, noinline))
#define FANBASE_JSON_NOINLINE  __attribute__((noinline))
#else
#define FANBASE_JSON_COLD
#define FANBASE_JSON_NOINLINE
#endif


typedef struct {
    yajl_handle           handle;
    int                   depth;
    int                   key;
    int                   root_seen;
    int                   root_map;
    size_t                msg_start;
    size_t                msg_end;
    unsigned char        *pool;
    size_t               *pool_len;
    fanbase_item_t       *item;
    fanbase_token_t      *token;
} fanbase_doc_ctx_t;


/* "-9223372036854775808" */
#define FANBASE_JSON_INT_LEN   20

/* a transaction's "code": the first characters of its id */
#define FANBASE_JSON_CODE_LEN  8

#define fanbase_json_literal(p, s)                                           \
    ((unsigned char *) memcpy(p, s, sizeof(s) - 1) + sizeof(s) - 1)


/*
 * 8 bytes of a string at once (w: their 64 bits).  fanbase_json_special():
 * nonzero when one of them is a '"', a '\\' or a control, the bytes a JSON
 * string cannot hold as they are; fanbase_json_stop(): or above 0x7f.
 * Exact whether any byte is such (the borrows that could flag a byte
 * falsely start at a byte that is one).  Strings of a few bytes, as a
 * submission's are, read faster a byte at a time: not used there.
 */
#define FANBASE_JSON_ONES   0x0101010101010101ULL
#define FANBASE_JSON_HIGHS  0x8080808080808080ULL
#define fanbase_json_zero(v)  (((v) - FANBASE_JSON_ONES) & ~(v))
#define fanbase_json_special(w)                                              \
    ((fanbase_json_zero((w) ^ (FANBASE_JSON_ONES * '"'))                     \
      | fanbase_json_zero((w) ^ (FANBASE_JSON_ONES * '\\'))                  \
      | (((w) - FANBASE_JSON_ONES * 0x20) & ~(w)))                           \
     & FANBASE_JSON_HIGHS)
#define fanbase_json_stop(w)                                                 \
    (fanbase_json_special(w) | ((w) & FANBASE_JSON_HIGHS))


/*
 * Fanbase's queue item echoes the submission in "msg", one level down: a
 * submission as deep as we accept must not make its answer unreadable
 */
#define FANBASE_JSON_DOC_DEPTH_MAX  (FANBASE_JSON_DEPTH_MAX + 1)


enum {
    FANBASE_KEY_NONE = 0,
    FANBASE_KEY_ACTION,
    FANBASE_KEY_DATA,
    FANBASE_KEY_ID,
    FANBASE_KEY_CREATED,
    FANBASE_KEY_ICODE,
    FANBASE_KEY_IMSG,
    FANBASE_KEY_PROCESS_DATE,
    FANBASE_KEY_PROCESS_STATUS,
    FANBASE_KEY_PROCESS_MSG,
    FANBASE_KEY_MSG,
    FANBASE_KEY_ACCESS_TOKEN,
    FANBASE_KEY_EXPIRES_IN
};


typedef struct {
    const char           *name;
    size_t                len;
    int                   key;
} fanbase_key_t;


typedef struct {
    unsigned char        *last;
    unsigned char        *end;
    _Alignas(16) unsigned char  buf[4096];
} fanbase_arena_t;


static int fanbase_key_lookup(const fanbase_key_t *keys,
    const unsigned char *k, size_t len);
static int fanbase_parse(const unsigned char *p, size_t len,
    const yajl_callbacks *cb, void *ctx, yajl_handle *out, int utf8_checked);
static void *fanbase_arena_malloc(void *ctx, size_t size);
static void *fanbase_arena_realloc(void *ctx, void *ptr, size_t size);
static void fanbase_arena_free(void *ctx, void *ptr);

static inline const unsigned char *fanbase_sub_string(const unsigned char *p,
    const unsigned char *last, uintptr_t lim, int *plain);
static FANBASE_JSON_COLD const unsigned char *fanbase_sub_string_rest(
    const unsigned char *p, const unsigned char *last);
static inline int fanbase_sub_key(const unsigned char *k, size_t len);
static inline int fanbase_sub_key_name(const unsigned char *k, size_t len);
static FANBASE_JSON_COLD int fanbase_sub_key_escaped(const unsigned char *k,
    size_t len);
static inline int fanbase_sub_hex(unsigned int c);
static FANBASE_JSON_COLD const unsigned char *fanbase_sub_space(
    const unsigned char *p, const unsigned char *last);
static FANBASE_JSON_NOINLINE const unsigned char *fanbase_sub_scalar(
    const unsigned char *p, const unsigned char *last);
static const unsigned char *fanbase_sub_number(const unsigned char *p,
    const unsigned char *last);
static FANBASE_JSON_COLD int fanbase_sub_end(const unsigned char *p,
    const unsigned char *last);
static int fanbase_sub_open_string(const unsigned char *p,
    const unsigned char *last);

static int fanbase_item_read(const unsigned char *p, size_t len,
    fanbase_item_t *item, size_t *msg_start, size_t *msg_end);
static inline int fanbase_item_string(const unsigned char **pp,
    const unsigned char *last, int *flags);
static int fanbase_item_string_rest(const unsigned char **pp,
    const unsigned char *p, const unsigned char *last, int *flags);
static void fanbase_item_string_value(fanbase_item_t *item, int key,
    const unsigned char *s, size_t len, int flags);
static int fanbase_item_key(fanbase_item_t *item, const unsigned char *s,
    size_t len, int flags);
static size_t fanbase_item_decode(unsigned char *dst, const unsigned char *s,
    size_t len);
static unsigned int fanbase_item_hex(const unsigned char *p);
static fanbase_str_t *fanbase_item_field(fanbase_item_t *item, int key);

static int fanbase_doc_null(void *ctx);
static int fanbase_doc_boolean(void *ctx, int v);
static int fanbase_doc_number(void *ctx, const char *s, size_t len);
static int fanbase_doc_string(void *ctx, const unsigned char *s, size_t len);
static int fanbase_doc_start_map(void *ctx);
static int fanbase_doc_map_key(void *ctx, const unsigned char *k, size_t len);
static int fanbase_doc_end_map(void *ctx);
static int fanbase_doc_start_array(void *ctx);
static int fanbase_doc_end_array(void *ctx);
static int fanbase_doc_value(fanbase_doc_ctx_t *ctx);
static fanbase_str_t *fanbase_doc_field(fanbase_doc_ctx_t *ctx);
static int fanbase_parse_int(const char *s, size_t len, int64_t *out);
static yajl_val fanbase_tree_get(yajl_val obj, const char *name);
static int fanbase_json_depth_ok(const unsigned char *p, size_t len,
    size_t max);
static size_t fanbase_utf8_char(const unsigned char *p, size_t len);
static size_t fanbase_json_escaped(const unsigned char *p, size_t len,
    size_t *in);
static void fanbase_tree_str(yajl_val obj, const char *name,
    fanbase_str_t *s);
static unsigned char *fanbase_json_str(unsigned char *p,
    const unsigned char *s, size_t len);
static unsigned char *fanbase_json_str_plain(unsigned char *p,
    const unsigned char *s, size_t len);
static unsigned char *fanbase_json_raw(unsigned char *p, const void *s,
    size_t len);
static unsigned char *fanbase_json_int(unsigned char *p, int64_t n);


static const fanbase_key_t  fanbase_doc_keys[] = {
    { "id", sizeof("id") - 1, FANBASE_KEY_ID },
    { "created", sizeof("created") - 1, FANBASE_KEY_CREATED },
    { "iCode", sizeof("iCode") - 1, FANBASE_KEY_ICODE },
    { "iMsg", sizeof("iMsg") - 1, FANBASE_KEY_IMSG },
    { "processDate", sizeof("processDate") - 1, FANBASE_KEY_PROCESS_DATE },
    { "processStatus", sizeof("processStatus") - 1,
      FANBASE_KEY_PROCESS_STATUS },
    { "processMsg", sizeof("processMsg") - 1, FANBASE_KEY_PROCESS_MSG },
    { "msg", sizeof("msg") - 1, FANBASE_KEY_MSG },
    { "access_token", sizeof("access_token") - 1, FANBASE_KEY_ACCESS_TOKEN },
    { "expires_in", sizeof("expires_in") - 1, FANBASE_KEY_EXPIRES_IN },
    { NULL, 0, FANBASE_KEY_NONE }
};


static const yajl_callbacks  fanbase_doc_callbacks = {
    fanbase_doc_null,
    fanbase_doc_boolean,
    NULL,
    NULL,
    fanbase_doc_number,
    fanbase_doc_string,
    fanbase_doc_start_map,
    fanbase_doc_map_key,
    fanbase_doc_end_map,
    fanbase_doc_start_array,
    fanbase_doc_end_array
};


static const char  *fanbase_status_names[] = {
    NULL, "pending", "processing", "completed", "failed", "cancelled"
};


/*
 * The submission check reads the body once, by hand, with the grammar of
 * yajl's lexer and parser (whitespace includes \v and \f; a number is
 * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?), which is the oracle of
 * t/fuzz/submission_fuzz.c: yajl's lexer and callbacks were two thirds of
 * the instructions of an asynchronous acceptance.
 *
 * A label for each place in the grammar, and the next token read at once
 * where it follows without whitespace, as it mostly does; what a plain
 * submission does not hold (whitespace, escapes, bytes above 0x7f,
 * literals, numbers, anything after the document) is read by functions
 * apart, so that the common case is a few cache lines.  A value's kind is
 * its first byte: "action" and "data" of the root are told when their key
 * is read, and no value asks at what depth it is.  The strict UTF-8 of
 * the body needs no pass of its own when its strings are plain ASCII, as
 * the pass over them tells.
 */

#define FANBASE_SUB_VALUE          0       /* a value is due */
#define FANBASE_SUB_VALUE_OR_END   1       /* after '[' */
#define FANBASE_SUB_KEY_OR_END     2       /* after '{' */
#define FANBASE_SUB_KEY            3       /* after ',' in an object */
#define FANBASE_SUB_COLON          4
#define FANBASE_SUB_AFTER          5       /* after a value */


int
fanbase_json_check_submission(const unsigned char *p, size_t len,
    const char **err)
{
    int                   key, action, data, root_map, plain;
    uint64_t              maps;       /* bit 0: this level is a map, bit 1:
                                         the level above is, ... */
    uintptr_t             lim;
    unsigned int          depth;
    const unsigned char  *start, *last, *s;

    start = p;
    last = p + len;
    lim = (len >= 16) ? (uintptr_t) last - 16 : 0;
    depth = 0;
    maps = 0;
    action = 0;
    data = 0;
    plain = 1;

    if (p < last && *p <= ' ') {
        p = fanbase_sub_space(p, last);
    }

    if (p == last) {
        goto invalid;
    }

    root_map = (*p == '{');

    if (*p != '{' && *p != '[') {

        /* refused, but invalid JSON and invalid UTF-8 first */

        plain = 0;
        p = (*p == '"') ? fanbase_sub_string_rest(p + 1, last)
                        : fanbase_sub_scalar(p, last);
        if (p == NULL) {
            goto invalid;
        }

        goto end;
    }

value:

    /* p < last */

    if (*p == '"') {
        p = fanbase_sub_string(p + 1, last, lim, &plain);
        if (p == NULL) {
            goto invalid;
        }

        goto after;
    }

    if (*p == '{') {
        if (++depth > FANBASE_JSON_DEPTH_MAX) {
            goto too_deep;
        }

        maps = (maps << 1) | 1;
        p++;

        if (p < last && *p == '"') {
            goto key;
        }

        if (p < last && *p <= ' ') {
            p = fanbase_sub_space(p, last);
        }

        if (p < last && *p == '"') {
            goto key;
        }

        goto close;                        /* an empty object, or invalid */
    }

    if (*p == '[') {
        if (++depth > FANBASE_JSON_DEPTH_MAX) {
            goto too_deep;
        }

        maps <<= 1;
        p++;

        if (p < last && *p <= ' ') {
            p = fanbase_sub_space(p, last);
        }

        if (p < last && *p != ']') {
            goto value;
        }

        goto close;                        /* an empty array, or invalid */
    }

    if (*p <= ' ') {
        s = fanbase_sub_space(p, last);
        if (s == p || s == last) {
            goto invalid;
        }

        p = s;
        goto value;
    }

    p = fanbase_sub_scalar(p, last);
    if (p == NULL) {
        goto invalid;
    }

after:

    /* after a value in an array or an object */

    if (p == last) {
        goto invalid;
    }

    if (*p == ',') {
        p++;

        if (p == last) {
            goto invalid;
        }

        if (!(maps & 1)) {
            goto value;
        }

        if (*p == '"') {
            goto key;
        }

        if (*p <= ' ') {
            p = fanbase_sub_space(p, last);

            if (p < last && *p == '"') {
                goto key;
            }
        }

        goto invalid;
    }

close:

    /* '}' closes a map, ']' an array (0x7d, 0x5d) */

    if (p == last) {
        goto invalid;
    }

    if (*p == (']' | (maps & 1) << 5)) {
        p++;
        maps >>= 1;

        if (--depth != 0) {
            goto after;
        }

        goto end;
    }

    if (*p <= ' ') {
        s = fanbase_sub_space(p, last);
        if (s != p) {
            p = s;
            goto after;
        }
    }

    goto invalid;

key:

    /* *p is the quote of a key */

    s = p + 1;

    p = fanbase_sub_string(s, last, lim, &plain);
    if (p == NULL) {
        goto invalid;
    }

    key = (depth == 1) ? fanbase_sub_key(s, p - 1 - s) : FANBASE_KEY_NONE;

    if (p < last && *p == ':') {
        p++;

    } else {
        p = fanbase_sub_space(p, last);

        if (p == last || *p != ':') {
            goto invalid;
        }

        p++;
    }

    if (p == last) {
        goto invalid;
    }

    if (key != FANBASE_KEY_NONE) {

        /* a key of the root: its value's kind is its first byte */

        if (*p <= ' ') {
            p = fanbase_sub_space(p, last);

            if (p == last) {
                goto invalid;
            }
        }

        if (key == FANBASE_KEY_ACTION) {
            action = (*p == '"');

        } else {
            data = (*p == '{');
        }
    }

    goto value;

end:

    /* the document is complete */

    if (p != last) {
        if (!fanbase_sub_end(p, last)) {
            goto invalid;
        }

        plain = 0;
    }

    /*
     * the UTF-8 of the whole body: overlong forms, surrogates and code
     * points above U+10FFFF would reach Fanbase and the zone.  Outside
     * strings a byte above 0x7f is invalid JSON: a body whose strings
     * were all plain ASCII is UTF-8.
     */

    if (!plain && !fanbase_utf8_valid(start, len)) {
        *err = "the body is not valid UTF-8";
        return FANBASE_JSON_INVALID;
    }

    if (!root_map) {
        *err = "the body must be a JSON object";
        return FANBASE_JSON_SHAPE;
    }

    if (!action) {
        *err = "\"action\" must be present and be a string";
        return FANBASE_JSON_SHAPE;
    }

    if (!data) {
        *err = "\"data\" must be present and be an object";
        return FANBASE_JSON_SHAPE;
    }

    return FANBASE_JSON_OK;

too_deep:

    *err = "the body is nested more than 64 levels deep";
    return FANBASE_JSON_INVALID;

invalid:

    *err = "the body is not valid JSON";
    return FANBASE_JSON_INVALID;
}


/*
 * Fanbase's queue item, read once by hand with the grammar of yajl's lexer
 * and parser, as the submission check is, yajl's UTF-8 rule (the shape of
 * each sequence alone, in strings) and yajl's decoding of escapes
 * (fanbase_item_decode()); the string fields decoded into the item's pool.
 * Its oracle is fanbase_json_parse_item_yajl(), the same reading on yajl's
 * event parser, in t/fuzz/item_fuzz.c: yajl's lexer and callbacks were a
 * fifth of the instructions of a synchronous submission.
 */

int
fanbase_json_parse_item(const unsigned char *p, size_t len,
    fanbase_item_t *item)
{
    int     rc;
    size_t  msg_start, msg_end;

    memset(item, 0, sizeof(fanbase_item_t));

    item->pool = malloc(len + 1);
    if (item->pool == NULL) {
        return FANBASE_JSON_INVALID;
    }

    item->pool_size = len + 1;
    msg_start = 0;
    msg_end = 0;

    rc = fanbase_item_read(p, len, item, &msg_start, &msg_end);

    if (rc == FANBASE_JSON_OK
        && (item->id.data == NULL || item->id.len == 0
            || item->status == FANBASE_STATUS_UNKNOWN))
    {
        rc = FANBASE_JSON_SHAPE;
    }

    if (rc == FANBASE_JSON_OK && msg_end > msg_start
        && fanbase_utf8_valid(p + msg_start, msg_end - msg_start))
    {
        /* "msg" is kept as the raw bytes it arrived as, if valid UTF-8 */
        item->msg.data = p + msg_start;
        item->msg.len = msg_end - msg_start;
    }

    if (rc != FANBASE_JSON_OK) {
        fanbase_json_item_free(item);
    }

    return rc;
}


int
fanbase_json_parse_item_yajl(const unsigned char *p, size_t len,
    fanbase_item_t *item)
{
    int                rc;
    fanbase_doc_ctx_t  ctx;

    memset(item, 0, sizeof(fanbase_item_t));
    memset(&ctx, 0, sizeof(fanbase_doc_ctx_t));

    item->pool = malloc(len + 1);
    if (item->pool == NULL) {
        return FANBASE_JSON_INVALID;
    }

    item->pool_size = len + 1;
    ctx.pool = item->pool;
    ctx.pool_len = &item->pool_len;
    ctx.item = item;

    rc = fanbase_parse(p, len, &fanbase_doc_callbacks, &ctx, &ctx.handle, 0);

    if (rc == FANBASE_JSON_OK && !ctx.root_map) {
        rc = FANBASE_JSON_SHAPE;
    }

    if (rc == FANBASE_JSON_OK
        && (item->id.data == NULL || item->id.len == 0
            || item->status == FANBASE_STATUS_UNKNOWN))
    {
        rc = FANBASE_JSON_SHAPE;
    }

    if (rc == FANBASE_JSON_OK && ctx.msg_end > ctx.msg_start
        && fanbase_utf8_valid(p + ctx.msg_start, ctx.msg_end - ctx.msg_start))
    {
        /* "msg" is kept as the raw bytes it arrived as, if valid UTF-8 */
        item->msg.data = p + ctx.msg_start;
        item->msg.len = ctx.msg_end - ctx.msg_start;
    }

    if (rc != FANBASE_JSON_OK) {
        fanbase_json_item_free(item);
    }

    return rc;
}


void
fanbase_json_item_free(fanbase_item_t *item)
{
    free(item->pool);
    memset(item, 0, sizeof(fanbase_item_t));
}


int
fanbase_json_parse_token(const unsigned char *p, size_t len,
    fanbase_token_t *token)
{
    int                rc;
    size_t             i;
    fanbase_doc_ctx_t  ctx;

    memset(token, 0, sizeof(fanbase_token_t));
    memset(&ctx, 0, sizeof(fanbase_doc_ctx_t));

    token->pool = malloc(len + 1);
    if (token->pool == NULL) {
        return FANBASE_JSON_INVALID;
    }

    token->pool_size = len + 1;
    token->expires_in = -1;
    ctx.pool = token->pool;
    ctx.pool_len = &token->pool_len;
    ctx.token = token;

    rc = fanbase_parse(p, len, &fanbase_doc_callbacks, &ctx, &ctx.handle, 0);

    if (rc == FANBASE_JSON_OK
        && (!ctx.root_map
            || token->access_token.data == NULL
            || token->access_token.len == 0
            || token->expires_in <= 0))
    {
        rc = FANBASE_JSON_SHAPE;
    }

    /* the token goes into a header: visible ASCII only */

    for (i = 0; rc == FANBASE_JSON_OK && i < token->access_token.len; i++) {
        if (token->access_token.data[i] <= 0x20
            || token->access_token.data[i] >= 0x7f)
        {
            rc = FANBASE_JSON_SHAPE;
        }
    }

    if (rc != FANBASE_JSON_OK) {
        fanbase_json_token_free(token);
    }

    return rc;
}


void
fanbase_json_token_free(fanbase_token_t *token)
{
    if (token->pool != NULL) {
        /* it held a credential */
        memset(token->pool, 0, token->pool_size);
        free(token->pool);
    }

    memset(token, 0, sizeof(fanbase_token_t));
}


int
fanbase_json_status_code(const unsigned char *p, size_t len)
{
    int  i;

    for (i = FANBASE_STATUS_PENDING; i <= FANBASE_STATUS_FAILED; i++) {
        if (strlen(fanbase_status_names[i]) == len
            && memcmp(fanbase_status_names[i], p, len) == 0)
        {
            return i;
        }
    }

    return FANBASE_STATUS_UNKNOWN;
}


const char *
fanbase_json_status_name(int status)
{
    if (status < FANBASE_STATUS_PENDING || status > FANBASE_STATUS_CANCELLED) {
        return NULL;
    }

    return fanbase_status_names[status];
}


static int
fanbase_key_lookup(const fanbase_key_t *keys, const unsigned char *k,
    size_t len)
{
    for ( /* void */ ; keys->name != NULL; keys++) {
        if (keys->len == len && memcmp(keys->name, k, len) == 0) {
            return keys->key;
        }
    }

    return FANBASE_KEY_NONE;
}


static int
fanbase_parse(const unsigned char *p, size_t len, const yajl_callbacks *cb,
    void *ctx, yajl_handle *out, int utf8_checked)
{
    yajl_handle       h;
    yajl_status       st;
    fanbase_arena_t   arena;
    yajl_alloc_funcs  funcs;

    /*
     * yajl's handle, lexer and stacks come from an arena on this stack
     * (malloc() once it is used up): five malloc() and free() a parse
     * were a fifth of the submission check
     */

    arena.last = arena.buf;
    arena.end = arena.buf + sizeof(arena.buf);

    funcs.malloc = fanbase_arena_malloc;
    funcs.realloc = fanbase_arena_realloc;
    funcs.free = fanbase_arena_free;
    funcs.ctx = &arena;

    h = yajl_alloc(cb, &funcs, ctx);
    if (h == NULL) {
        return FANBASE_JSON_INVALID;
    }

    if (utf8_checked) {
        yajl_config(h, yajl_dont_validate_strings, 1);
    }

    if (out != NULL) {
        *out = h;
    }

    st = yajl_parse(h, p, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (st == yajl_status_ok) {
        return FANBASE_JSON_OK;
    }

    return (st == yajl_status_client_canceled) ? FANBASE_JSON_SHAPE
                                                : FANBASE_JSON_INVALID;
}


/*
 * The arena: blocks of 16-byte multiples, each after a header with its
 * size (realloc() must know what to copy); a block outside the arena came
 * from malloc().
 */

#define FANBASE_ARENA_ALIGN  16

static int
fanbase_arena_has(fanbase_arena_t *a, void *ptr)
{
    return (unsigned char *) ptr >= a->buf
           && (unsigned char *) ptr < a->buf + sizeof(a->buf);
}


static void *
fanbase_arena_malloc(void *ctx, size_t size)
{
    size_t            need;
    unsigned char    *p;
    fanbase_arena_t  *a = ctx;

    need = FANBASE_ARENA_ALIGN
           + ((size + FANBASE_ARENA_ALIGN - 1) & ~(FANBASE_ARENA_ALIGN - 1));

    if ((size_t) (a->end - a->last) < need) {
        return malloc(size);
    }

    p = a->last;
    a->last += need;

    memcpy(p, &size, sizeof(size_t));

    return p + FANBASE_ARENA_ALIGN;
}


static void *
fanbase_arena_realloc(void *ctx, void *ptr, size_t size)
{
    size_t            old;
    void             *p;
    fanbase_arena_t  *a = ctx;

    if (ptr == NULL) {
        return fanbase_arena_malloc(ctx, size);
    }

    if (!fanbase_arena_has(a, ptr)) {
        return realloc(ptr, size);
    }

    memcpy(&old, (unsigned char *) ptr - FANBASE_ARENA_ALIGN, sizeof(size_t));

    if (size <= old) {
        return ptr;
    }

    p = fanbase_arena_malloc(ctx, size);
    if (p == NULL) {
        return NULL;
    }

    memcpy(p, ptr, old);

    return p;
}


static void
fanbase_arena_free(void *ctx, void *ptr)
{
    fanbase_arena_t  *a = ctx;

    if (ptr != NULL && !fanbase_arena_has(a, ptr)) {
        free(ptr);
    }
}


/* the submission check */

/*
 * What stands for itself inside a JSON string: not '"', '\\', controls;
 * 1 for ASCII, 2 for the bytes of UTF-8 sequences, whose shape the queue
 * item's reader checks
 */

static const unsigned char  fanbase_json_strchar[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x20 '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,        /* 0x50 '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,        /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2         /* 0xf0 */
};


/*
 * A string after its opening quote: the end of it, or NULL.  Inline for
 * plain ASCII, sixteen bytes at a time where SSE2 is (a submission's
 * strings are mostly shorter: one test), else a table lookup a byte; the
 * rest apart.
 */

static inline const unsigned char *
fanbase_sub_string(const unsigned char *p, const unsigned char *last,
    uintptr_t lim, int *plain)
{
#if (FANBASE_JSON_SSE2)
    unsigned int  m;
    __m128i       v;

    /*
     * while sixteen bytes are left (p <= lim): the bytes that stand for
     * themselves are, their bit 1 flipped, above 0x20 as signed bytes (not
     * a '"', a control, or above 0x7f), and no '\\'
     */

    while ((uintptr_t) p <= lim) {
        v = _mm_loadu_si128((const __m128i *) p);

        m = _mm_movemask_epi8(
                _mm_andnot_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                    _mm_cmpgt_epi8(_mm_xor_si128(v, _mm_set1_epi8(0x02)),
                                   _mm_set1_epi8(0x20))))
            ^ 0xffff;

        if (m != 0) {
            p += (unsigned int) __builtin_ctz(m);

            if (*p == '"') {
                return p + 1;
            }

            *plain = 0;
            return fanbase_sub_string_rest(p, last);
        }

        p += 16;
    }

#else

    (void) lim;

#endif

    while (p < last && fanbase_json_strchar[*p] == 1) {
        p++;
    }

    if (p < last && *p == '"') {
        return p + 1;
    }

    *plain = 0;
    return fanbase_sub_string_rest(p, last);
}


/*
 * The rest of a string, from where plain ASCII stops: escapes, controls,
 * bytes above 0x7f (any of which the grammar takes)
 */

static const unsigned char *
fanbase_sub_string_rest(const unsigned char *p, const unsigned char *last)
{
    int           i;
    unsigned int  c;

    for ( ;; ) {

        if (p == last) {
            return NULL;
        }

        c = *p++;

        if (c == '"') {
            return p;
        }

        if (c < 0x20) {
            return NULL;
        }

        if (c != '\\') {
            continue;
        }

        if (p == last) {
            return NULL;
        }

        switch (*p++) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;

        case 'u':
            for (i = 0; i < 4; i++) {
                if (p == last || !fanbase_sub_hex(*p)) {
                    return NULL;
                }

                p++;
            }

            break;

        default:
            return NULL;
        }
    }
}


/*
 * A key of the root, compared as yajl hands it over, its escapes decoded:
 * "action", "data", or neither.  Only escapes of ASCII can make one of
 * them, and they make its raw text longer.
 */

static inline int
fanbase_sub_key(const unsigned char *k, size_t len)
{
    int  key;

    key = fanbase_sub_key_name(k, len);

    if (key == FANBASE_KEY_NONE
        && len > sizeof("action") - 1 && memchr(k, '\\', len) != NULL)
    {
        key = fanbase_sub_key_escaped(k, len);
    }

    return key;
}


static inline int
fanbase_sub_key_name(const unsigned char *k, size_t len)
{
    if (len == sizeof("action") - 1
        && memcmp(k, "action", sizeof("action") - 1) == 0)
    {
        return FANBASE_KEY_ACTION;
    }

    if (len == sizeof("data") - 1
        && memcmp(k, "data", sizeof("data") - 1) == 0)
    {
        return FANBASE_KEY_DATA;
    }

    return FANBASE_KEY_NONE;
}


/* a key with escapes: those of a string that fanbase_sub_string() read */

static int
fanbase_sub_key_escaped(const unsigned char *k, size_t len)
{
    int                   i;
    size_t                n;
    unsigned int          c, u;
    unsigned char         buf[sizeof("action") - 1];
    const unsigned char  *last;

    n = 0;
    last = k + len;

    while (k < last) {
        c = *k++;

        if (c >= 0x80) {
            return FANBASE_KEY_NONE;
        }

        if (c == '\\' && k < last) {
            c = *k++;

            switch (c) {
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;

            case 'u':
                u = 0;

                for (i = 0; i < 4 && k < last; i++) {
                    c = *k++;
                    u = u * 16 + ((c <= '9') ? c - '0'
                                             : (c | 0x20) - 'a' + 10);
                }

                if (u >= 0x80) {
                    return FANBASE_KEY_NONE;
                }

                c = u;
                break;

            default:                       /* '"', '\\', '/' */
                break;
            }
        }

        if (n == sizeof(buf)) {
            return FANBASE_KEY_NONE;
        }

        buf[n++] = (unsigned char) c;
    }

    return fanbase_sub_key_name(buf, n);
}


/* a hexadecimal digit */

static inline int
fanbase_sub_hex(unsigned int c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}


/*
 * A string that runs to the end of the body: none of its characters
 * refused, no escape left unfinished (the space yajl adds would make it
 * an invalid one)
 */

static int
fanbase_sub_open_string(const unsigned char *p, const unsigned char *last)
{
    int  i;

    while (p < last) {

        if (*p == '"' || *p < 0x20) {
            return 0;
        }

        if (*p++ != '\\') {
            continue;
        }

        if (p == last) {
            return 0;
        }

        switch (*p++) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            break;

        case 'u':
            for (i = 0; i < 4; i++) {
                if (p == last
                    || !((*p >= '0' && *p <= '9')
                         || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')))
                {
                    return 0;
                }

                p++;
            }

            break;

        default:
            return 0;
        }
    }

    return 1;
}


/* a number: its end, or NULL */

static const unsigned char *
fanbase_sub_number(const unsigned char *p, const unsigned char *last)
{
    const unsigned char  *q;

    if (p < last && *p == '-') {
        p++;
    }

    if (p == last) {
        return NULL;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return NULL;
    }

    if (p < last && *p == '.') {
        q = ++p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == q) {
            return NULL;
        }
    }

    if (p < last && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < last && (*p == '+' || *p == '-')) {
            p++;
        }

        q = p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        if (p == q) {
            return NULL;
        }
    }

    return p;
}


/* yajl's whitespace: ' ', '\t', '\n', '\v', '\f', '\r' */

static const unsigned char *
fanbase_sub_space(const unsigned char *p, const unsigned char *last)
{
    while (p < last && (*p == ' ' || (*p >= '\t' && *p <= '\r'))) {
        p++;
    }

    return p;
}


/* a literal or a number: its end, or NULL */

static const unsigned char *
fanbase_sub_scalar(const unsigned char *p, const unsigned char *last)
{
    switch (*p) {

    case 't':
        return ((size_t) (last - p) >= 4 && memcmp(p, "true", 4) == 0)
               ? p + 4 : NULL;

    case 'f':
        return ((size_t) (last - p) >= 5 && memcmp(p, "false", 5) == 0)
               ? p + 5 : NULL;

    case 'n':
        return ((size_t) (last - p) >= 4 && memcmp(p, "null", 4) == 0)
               ? p + 4 : NULL;

    default:
        return fanbase_sub_number(p, last);
    }
}


/*
 * What may follow the document: whitespace, and then a string that the
 * end of the body leaves open, which yajl takes for an unfinished token,
 * not a second document (yajl_complete_parse() feeds one space more)
 */

static int
fanbase_sub_end(const unsigned char *p, const unsigned char *last)
{
    p = fanbase_sub_space(p, last);

    if (p == last) {
        return 1;
    }

    /* else a second document */

    return *p == '"' && fanbase_sub_open_string(p + 1, last);
}


/* the queue item */

#define FANBASE_ITEM_CLOSED   0            /* a string and its quote */
#define FANBASE_ITEM_OPEN     1            /* a string the end leaves open */
#define FANBASE_ITEM_BAD      2

/* what a string holds */
#define FANBASE_ITEM_ESCAPES  1
#define FANBASE_ITEM_UTF8     2            /* bytes above 0x7f */


/*
 * The reading itself: FANBASE_JSON_INVALID where yajl finds an error,
 * FANBASE_JSON_SHAPE where the event parser cancels (nesting deeper than
 * FANBASE_JSON_DOC_DEPTH_MAX; what came before must have been valid) or
 * for a document that is not an object; the fields as the event parser
 * sets them: the root's keys alone, later duplicates win, null clears a
 * string field, a value of another type leaves it as it was, "iCode" an
 * integer of at most 18 characters, "msg" the bytes of its last object.
 */

static int
fanbase_item_read(const unsigned char *p, size_t len, fanbase_item_t *item,
    size_t *msg_start, size_t *msg_end)
{
    int                   state, key, depth, root_map, flags;
    int64_t               n;
    fanbase_str_t        *f;
    const unsigned char  *start, *last, *s;
    unsigned char         maps[FANBASE_JSON_DOC_DEPTH_MAX];

    start = p;
    last = p + len;
    state = FANBASE_SUB_VALUE;
    key = FANBASE_KEY_NONE;
    depth = 0;
    root_map = 0;

    for ( ;; ) {

        while (p < last && *p <= ' '
               && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'
                   || *p == '\v' || *p == '\f'))
        {
            p++;
        }

        if (p == last) {
            break;
        }

        /* an empty array or object */

        if ((state == FANBASE_SUB_VALUE_OR_END && *p == ']')
            || (state == FANBASE_SUB_KEY_OR_END && *p == '}'))
        {
            if (--depth == 1 && *p == '}' && key == FANBASE_KEY_MSG) {
                *msg_end = p + 1 - start;
            }

            p++;
            state = FANBASE_SUB_AFTER;
            continue;
        }

        switch (state) {

        case FANBASE_SUB_VALUE_OR_END:
        case FANBASE_SUB_VALUE:

            s = p;

            switch (*p) {

            case '{':
            case '[':
                if (depth == 0) {
                    root_map = (*p == '{');

                } else if (depth == 1 && *p == '{'
                           && key == FANBASE_KEY_MSG)
                {
                    *msg_start = p - start;
                }

                if (++depth > FANBASE_JSON_DOC_DEPTH_MAX) {
                    return FANBASE_JSON_SHAPE;
                }

                maps[depth - 1] = (*p == '{');
                state = (*p == '{') ? FANBASE_SUB_KEY_OR_END
                                    : FANBASE_SUB_VALUE_OR_END;
                p++;
                continue;

            case '"':
                p++;

                if (fanbase_item_string(&p, last, &flags)
                    != FANBASE_ITEM_CLOSED)
                {
                    goto invalid;
                }

                if (depth == 1) {
                    fanbase_item_string_value(item, key, s + 1,
                                              p - 1 - (s + 1), flags);
                }

                break;

            case 't':
                p = ((size_t) (last - p) >= 4 && memcmp(p, "true", 4) == 0)
                    ? p + 4 : NULL;
                break;

            case 'f':
                p = ((size_t) (last - p) >= 5 && memcmp(p, "false", 5) == 0)
                    ? p + 5 : NULL;
                break;

            case 'n':
                p = ((size_t) (last - p) >= 4 && memcmp(p, "null", 4) == 0)
                    ? p + 4 : NULL;

                if (p != NULL && depth == 1) {
                    f = fanbase_item_field(item, key);

                    if (f != NULL) {
                        f->data = NULL;
                        f->len = 0;
                    }
                }

                break;

            default:
                p = fanbase_sub_number(p, last);

                if (p != NULL && depth == 1 && key == FANBASE_KEY_ICODE
                    && fanbase_parse_int((const char *) s, p - s, &n) == 0)
                {
                    item->icode = n;
                    item->icode_set = 1;
                }

                break;
            }

            if (p == NULL) {
                goto invalid;
            }

            state = FANBASE_SUB_AFTER;
            continue;

        case FANBASE_SUB_AFTER:

            if (depth == 0) {

                /* as the submission check: an open string is no garbage */

                if (*p == '"') {
                    p++;

                    if (fanbase_item_string(&p, last, &flags)
                        == FANBASE_ITEM_OPEN)
                    {
                        p = last;
                        continue;
                    }
                }

                goto invalid;
            }

            if (*p == ',') {
                state = maps[depth - 1] ? FANBASE_SUB_KEY : FANBASE_SUB_VALUE;
                p++;
                continue;
            }

            if (*p != (maps[depth - 1] ? '}' : ']')) {
                goto invalid;
            }

            if (--depth == 1 && *p == '}' && key == FANBASE_KEY_MSG) {
                *msg_end = p + 1 - start;
            }

            p++;
            continue;

        case FANBASE_SUB_KEY_OR_END:
        case FANBASE_SUB_KEY:

            if (*p != '"') {
                goto invalid;
            }

            s = ++p;

            if (fanbase_item_string(&p, last, &flags)
                != FANBASE_ITEM_CLOSED)
            {
                goto invalid;
            }

            if (depth == 1) {
                key = fanbase_item_key(item, s, p - 1 - s, flags);
            }

            state = FANBASE_SUB_COLON;
            continue;

        default: /* FANBASE_SUB_COLON */

            if (*p != ':') {
                goto invalid;
            }

            p++;
            state = FANBASE_SUB_VALUE;
            continue;
        }
    }

    if (state != FANBASE_SUB_AFTER || depth != 0) {
        goto invalid;
    }

    return root_map ? FANBASE_JSON_OK : FANBASE_JSON_SHAPE;

invalid:

    return FANBASE_JSON_INVALID;
}


/*
 * A string after its opening quote, as yajl's lexer reads it: escapes
 * complete and known, no control character, and for a byte above 0x7f the
 * shape of a UTF-8 sequence (a lead byte of 2 to 4 bytes, then that many
 * continuation bytes: overlong forms and surrogates pass).  *pp moves past
 * the closing quote.  At the end of the input the string is open unless
 * an escape or a sequence is cut there: yajl_complete_parse() feeds one
 * space more, which makes them invalid.  *flags: FANBASE_ITEM_ESCAPES,
 * FANBASE_ITEM_UTF8.  Inline for plain ASCII, the rest apart, as the
 * submission's.
 */

static inline int
fanbase_item_string(const unsigned char **pp, const unsigned char *last,
    int *flags)
{
    const unsigned char  *p;
#if (FANBASE_JSON_SSE2)
    unsigned int          m;
    __m128i               v;
#else
    uint64_t              w;
#endif

    p = *pp;
    *flags = 0;

#if (FANBASE_JSON_SSE2)

    /*
     * sixteen bytes at a time, as fanbase_sub_string(): the first byte
     * that does not stand for itself ends the look
     */

    while (last - p >= 16) {
        v = _mm_loadu_si128((const __m128i *) p);

        m = _mm_movemask_epi8(
                _mm_andnot_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
                    _mm_cmpgt_epi8(_mm_xor_si128(v, _mm_set1_epi8(0x02)),
                                   _mm_set1_epi8(0x20))))
            ^ 0xffff;

        if (m != 0) {
            p += (unsigned int) __builtin_ctz(m);
            goto stop;
        }

        p += 16;
    }

#else

    while (last - p >= 8) {
        memcpy(&w, p, 8);

        if (fanbase_json_stop(w)) {
            break;
        }

        p += 8;
    }

#endif

    while (p < last && fanbase_json_strchar[*p] == 1) {
        p++;
    }

#if (FANBASE_JSON_SSE2)
stop:
#endif

    if (p < last && *p == '"') {
        *pp = p + 1;
        return FANBASE_ITEM_CLOSED;
    }

    return fanbase_item_string_rest(pp, p, last, flags);
}


/* the rest of a string from p, where plain ASCII stops */

static int
fanbase_item_string_rest(const unsigned char **pp, const unsigned char *p,
    const unsigned char *last, int *flags)
{
    int            i, n;
    uint64_t       w;
    unsigned int   c;

    for ( ;; ) {

        while (last - p >= 8) {
            memcpy(&w, p, 8);

            if (fanbase_json_stop(w)) {
                break;
            }

            p += 8;
        }

        while (p < last && fanbase_json_strchar[*p] == 1) {
            p++;
        }

        if (p == last) {
            return FANBASE_ITEM_OPEN;
        }

        c = *p++;

        if (c == '"') {
            *pp = p;
            return FANBASE_ITEM_CLOSED;
        }

        if (c < 0x20) {
            return FANBASE_ITEM_BAD;
        }

        if (c == '\\') {
            *flags |= FANBASE_ITEM_ESCAPES;

            if (p == last) {
                return FANBASE_ITEM_BAD;
            }

            switch (*p++) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                continue;

            case 'u':
                for (i = 0; i < 4; i++) {
                    if (p == last
                        || !((*p >= '0' && *p <= '9')
                             || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')))
                    {
                        return FANBASE_ITEM_BAD;
                    }

                    p++;
                }

                continue;

            default:
                return FANBASE_ITEM_BAD;
            }
        }

        *flags |= FANBASE_ITEM_UTF8;

        if ((c >> 5) == 0x06) {
            n = 1;

        } else if ((c >> 4) == 0x0e) {
            n = 2;

        } else if ((c >> 3) == 0x1e) {
            n = 3;

        } else {
            return FANBASE_ITEM_BAD;
        }

        while (n--) {
            if (p == last || (*p >> 6) != 0x02) {
                return FANBASE_ITEM_BAD;
            }

            p++;
        }
    }
}


/* a string value of the root object: as fanbase_doc_string() takes it */

static void
fanbase_item_string_value(fanbase_item_t *item, int key,
    const unsigned char *s, size_t len, int flags)
{
    unsigned char  *d;
    fanbase_str_t  *f;

    /* the pool has room: what it holds was at least as long in the input */

    d = item->pool + item->pool_len;

    if (key == FANBASE_KEY_PROCESS_STATUS) {
        if (flags & FANBASE_ITEM_ESCAPES) {
            len = fanbase_item_decode(d, s, len);
            s = d;
        }

        item->status = fanbase_json_status_code(s, len);
        return;
    }

    f = fanbase_item_field(item, key);
    if (f == NULL) {
        return;
    }

    if (flags & FANBASE_ITEM_ESCAPES) {
        len = fanbase_item_decode(d, s, len);

    } else {
        memcpy(d, s, len);
    }

    if (flags != 0) {
        /* what yajl lets through: overlong forms, surrogates, > U+10FFFF */
        fanbase_utf8_repair(d, len);
    }

    f->data = d;
    f->len = len;
    item->pool_len += len;
}


/* a key of the root object, decoded (in the pool, for a moment) */

static int
fanbase_item_key(fanbase_item_t *item, const unsigned char *s, size_t len,
    int flags)
{
    if (flags & FANBASE_ITEM_ESCAPES) {
        len = fanbase_item_decode(item->pool + item->pool_len, s, len);
        s = item->pool + item->pool_len;
    }

    /*
     * the keys of fanbase_doc_keys that a queue item reads, by length:
     * memcmp() of a constant length is a comparison or two inline
     */

#define fanbase_item_is(k)  (memcmp(s, k, sizeof(k) - 1) == 0)

    switch (len) {
    case sizeof("id") - 1:
        return fanbase_item_is("id") ? FANBASE_KEY_ID : FANBASE_KEY_NONE;
    case sizeof("msg") - 1:
        return fanbase_item_is("msg") ? FANBASE_KEY_MSG : FANBASE_KEY_NONE;
    case sizeof("iMsg") - 1:
        return fanbase_item_is("iMsg") ? FANBASE_KEY_IMSG : FANBASE_KEY_NONE;
    case sizeof("iCode") - 1:
        return fanbase_item_is("iCode") ? FANBASE_KEY_ICODE
                                        : FANBASE_KEY_NONE;
    case sizeof("created") - 1:
        return fanbase_item_is("created") ? FANBASE_KEY_CREATED
                                          : FANBASE_KEY_NONE;
    case sizeof("processMsg") - 1:
        return fanbase_item_is("processMsg") ? FANBASE_KEY_PROCESS_MSG
                                             : FANBASE_KEY_NONE;
    case sizeof("processDate") - 1:
        return fanbase_item_is("processDate") ? FANBASE_KEY_PROCESS_DATE
                                              : FANBASE_KEY_NONE;
    case sizeof("processStatus") - 1:
        return fanbase_item_is("processStatus") ? FANBASE_KEY_PROCESS_STATUS
                                                : FANBASE_KEY_NONE;
    default:
        return FANBASE_KEY_NONE;
    }

#undef fanbase_item_is
}


/*
 * A string's escapes decoded as yajl_string_decode() of Debian's yajl
 * 2.1.0 does: "\u0000" a NUL byte; "\ud800" to "\udbff" followed by
 * another "\u" escape, whatever it is, one code point of 4 bytes from the
 * two; not followed by one, "?"; "\udc00" to "\udfff" alone, 3 bytes (the
 * caller repairs them).  dst has room for len bytes.
 */

static size_t
fanbase_item_decode(unsigned char *dst, const unsigned char *s, size_t len)
{
    unsigned int          c;
    unsigned char        *d;
    const unsigned char  *end;

    d = dst;
    end = s + len;

    while (s < end) {

        if (*s != '\\') {
            *d++ = *s++;
            continue;
        }

        s++;

        switch (*s++) {
        case 'b':
            *d++ = '\b';
            continue;
        case 'f':
            *d++ = '\f';
            continue;
        case 'n':
            *d++ = '\n';
            continue;
        case 'r':
            *d++ = '\r';
            continue;
        case 't':
            *d++ = '\t';
            continue;
        case 'u':
            break;
        default:                       /* '"', '\\', '/' */
            *d++ = s[-1];
            continue;
        }

        c = fanbase_item_hex(s);
        s += 4;

        if ((c & 0xfc00) == 0xd800) {

            if (end - s < 2 || s[0] != '\\' || s[1] != 'u') {
                *d++ = '?';
                continue;
            }

            c = ((c & 0x3f) << 10) | ((((c >> 6) & 0xf) + 1) << 16)
                | (fanbase_item_hex(s + 2) & 0x3ff);
            s += 6;
        }

        if (c < 0x80) {
            *d++ = (unsigned char) c;

        } else if (c < 0x800) {
            *d++ = (unsigned char) (0xc0 | (c >> 6));
            *d++ = (unsigned char) (0x80 | (c & 0x3f));

        } else if (c < 0x10000) {
            *d++ = (unsigned char) (0xe0 | (c >> 12));
            *d++ = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (unsigned char) (0x80 | (c & 0x3f));

        } else {
            /* at most 0x10ffff */
            *d++ = (unsigned char) (0xf0 | (c >> 18));
            *d++ = (unsigned char) (0x80 | ((c >> 12) & 0x3f));
            *d++ = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (unsigned char) (0x80 | (c & 0x3f));
        }
    }

    return d - dst;
}


/* four hexadecimal digits, checked by fanbase_item_string() */

static unsigned int
fanbase_item_hex(const unsigned char *p)
{
    int           i;
    unsigned int  c, v;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];
        v = (v << 4) | (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }

    return v;
}


/* the string field of a key of the root object, or NULL */

static fanbase_str_t *
fanbase_item_field(fanbase_item_t *item, int key)
{
    switch (key) {
    case FANBASE_KEY_ID:
        return &item->id;
    case FANBASE_KEY_CREATED:
        return &item->created;
    case FANBASE_KEY_IMSG:
        return &item->imsg;
    case FANBASE_KEY_PROCESS_DATE:
        return &item->process_date;
    case FANBASE_KEY_PROCESS_MSG:
        return &item->process_msg;
    default:
        return NULL;
    }
}


/* queue items and token answers */

static fanbase_str_t *
fanbase_doc_field(fanbase_doc_ctx_t *ctx)
{
    if (ctx->depth != 1) {
        return NULL;
    }

    if (ctx->item != NULL) {
        return fanbase_item_field(ctx->item, ctx->key);
    }

    if (ctx->key == FANBASE_KEY_ACCESS_TOKEN) {
        return &ctx->token->access_token;
    }

    return NULL;
}


static int
fanbase_doc_value(fanbase_doc_ctx_t *ctx)
{
    if (ctx->depth == 0) {
        ctx->root_seen = 1;
    }

    return 1;
}


static int
fanbase_doc_null(void *data)
{
    fanbase_str_t      *f;
    fanbase_doc_ctx_t  *ctx = data;

    f = fanbase_doc_field(ctx);
    if (f != NULL) {
        f->data = NULL;
        f->len = 0;
    }

    return fanbase_doc_value(ctx);
}


static int
fanbase_doc_boolean(void *data, int v)
{
    (void) v;
    return fanbase_doc_value(data);
}


static int
fanbase_doc_number(void *data, const char *s, size_t len)
{
    int64_t             n;
    fanbase_doc_ctx_t  *ctx = data;

    if (ctx->depth == 1 && fanbase_parse_int(s, len, &n) == 0) {

        if (ctx->item != NULL && ctx->key == FANBASE_KEY_ICODE) {
            ctx->item->icode = n;
            ctx->item->icode_set = 1;

        } else if (ctx->token != NULL && ctx->key == FANBASE_KEY_EXPIRES_IN) {
            ctx->token->expires_in = n;
        }
    }

    return fanbase_doc_value(ctx);
}


static int
fanbase_doc_string(void *data, const unsigned char *s, size_t len)
{
    int64_t             n;
    fanbase_str_t      *f;
    fanbase_doc_ctx_t  *ctx = data;

    if (ctx->depth == 1 && ctx->item != NULL
        && ctx->key == FANBASE_KEY_PROCESS_STATUS)
    {
        ctx->item->status = fanbase_json_status_code(s, len);
        return 1;
    }

    /* some token servers send expires_in as a string */

    if (ctx->depth == 1 && ctx->token != NULL
        && ctx->key == FANBASE_KEY_EXPIRES_IN
        && fanbase_parse_int((const char *) s, len, &n) == 0)
    {
        ctx->token->expires_in = n;
        return 1;
    }

    f = fanbase_doc_field(ctx);

    if (f != NULL) {
        f->data = ctx->pool + *ctx->pool_len;
        f->len = len;
        memcpy(ctx->pool + *ctx->pool_len, s, len);
        fanbase_utf8_repair(ctx->pool + *ctx->pool_len, len);
        *ctx->pool_len += len;
    }

    return fanbase_doc_value(ctx);
}


static int
fanbase_doc_start_map(void *data)
{
    fanbase_doc_ctx_t  *ctx = data;

    if (ctx->depth == 0) {
        ctx->root_seen = 1;
        ctx->root_map = 1;

    } else if (ctx->depth == 1 && ctx->item != NULL
               && ctx->key == FANBASE_KEY_MSG)
    {
        /* yajl has consumed the '{' */
        ctx->msg_start = yajl_get_bytes_consumed(ctx->handle) - 1;
    }

    /* a canceled parse: FANBASE_JSON_SHAPE */
    return ++ctx->depth <= FANBASE_JSON_DOC_DEPTH_MAX;
}


static int
fanbase_doc_map_key(void *data, const unsigned char *k, size_t len)
{
    fanbase_doc_ctx_t  *ctx = data;

    if (ctx->depth == 1) {
        ctx->key = fanbase_key_lookup(fanbase_doc_keys, k, len);
    }

    return 1;
}


static int
fanbase_doc_end_map(void *data)
{
    fanbase_doc_ctx_t  *ctx = data;

    ctx->depth--;

    if (ctx->depth == 1 && ctx->item != NULL
        && ctx->key == FANBASE_KEY_MSG)
    {
        ctx->msg_end = yajl_get_bytes_consumed(ctx->handle);
    }

    return 1;
}


static int
fanbase_doc_start_array(void *data)
{
    fanbase_doc_ctx_t  *ctx = data;

    fanbase_doc_value(ctx);

    return ++ctx->depth <= FANBASE_JSON_DOC_DEPTH_MAX;
}


static int
fanbase_doc_end_array(void *data)
{
    fanbase_doc_ctx_t  *ctx = data;

    ctx->depth--;

    return 1;
}


static int
fanbase_parse_int(const char *s, size_t len, int64_t *out)
{
    int64_t  n;
    size_t   i;
    int      neg;

    if (len == 0 || len > 18) {
        return -1;
    }

    neg = (s[0] == '-');
    i = neg ? 1 : 0;

    if (i == len) {
        return -1;
    }

    for (n = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        n = n * 10 + (s[i] - '0');
    }

    *out = neg ? -n : n;

    return 0;
}


static yajl_val
fanbase_tree_get(yajl_val obj, const char *name)
{
    size_t  i;

    if (obj == NULL || !YAJL_IS_OBJECT(obj)) {
        return NULL;
    }

    for (i = 0; i < obj->u.object.len; i++) {
        if (strcmp(obj->u.object.keys[i], name) == 0) {
            return obj->u.object.values[i];
        }
    }

    return NULL;
}


static void
fanbase_tree_str(yajl_val obj, const char *name, fanbase_str_t *s)
{
    yajl_val  v;

    v = fanbase_tree_get(obj, name);

    if (v != NULL && YAJL_IS_STRING(v)) {
        s->len = strlen(v->u.string);
        fanbase_utf8_repair((unsigned char *) v->u.string, s->len);
        s->data = (const unsigned char *) v->u.string;
    }
}


int
fanbase_json_parse_update(const unsigned char *p, size_t len,
    fanbase_update_t *u)
{
    int        too_deep;
    yajl_val   root, v, ev;

    memset(u, 0, sizeof(fanbase_update_t));

    root = fanbase_json_tree(p, len, &too_deep);

    if (root == NULL) {
        return FANBASE_JSON_INVALID;
    }

    u->tree = root;

    if (!YAJL_IS_OBJECT(root)) {
        return FANBASE_JSON_SHAPE;
    }

    fanbase_tree_str(root, "id", &u->id);

    v = fanbase_tree_get(root, "processStatus");

    if (v != NULL) {
        u->queue_item = 1;

        if (YAJL_IS_STRING(v)) {
            u->status = fanbase_json_status_code(
                            (const unsigned char *) v->u.string,
                            strlen(v->u.string));
        }

        fanbase_tree_str(root, "processDate", &u->process_date);
        fanbase_tree_str(root, "processMsg", &u->process_msg);
        fanbase_tree_str(root, "iMsg", &u->imsg);

        v = fanbase_tree_get(root, "iCode");

        if (v != NULL && YAJL_IS_INTEGER(v)) {
            u->icode = YAJL_GET_INTEGER(v);
            u->icode_set = 1;
        }

    } else {
        v = fanbase_tree_get(root, "status");

        if (v != NULL && YAJL_IS_STRING(v)) {
            if (strcmp(v->u.string, "cancelled") == 0) {
                u->status = FANBASE_STATUS_CANCELLED;

            } else {
                u->status = fanbase_json_status_code(
                                (const unsigned char *) v->u.string,
                                strlen(v->u.string));
            }
        }

        /* the newest event holds the result */

        v = fanbase_tree_get(root, "events");

        if (v != NULL && YAJL_IS_ARRAY(v) && v->u.array.len) {
            ev = v->u.array.values[v->u.array.len - 1];
            fanbase_tree_str(ev, "message", &u->message);
            fanbase_tree_str(fanbase_tree_get(ev, "data"), "error_message",
                             &u->error_message);
        }
    }

    if (u->id.data == NULL || u->id.len == 0
        || u->status == FANBASE_STATUS_UNKNOWN)
    {
        return FANBASE_JSON_SHAPE;
    }

    return FANBASE_JSON_OK;
}


void
fanbase_json_update_free(fanbase_update_t *u)
{
    if (u->tree != NULL) {
        yajl_tree_free(u->tree);
        u->tree = NULL;
    }
}


/* 0 when a JSON text nests deeper than "max" (strings skipped) */

static int
fanbase_json_depth_ok(const unsigned char *p, size_t len, size_t max)
{
    size_t  i, depth;

    depth = 0;

    for (i = 0; i < len; i++) {
        switch (p[i]) {

        case '"':
            for (i++; i < len && p[i] != '"'; i++) {
                if (p[i] == '\\') {
                    i++;
                }
            }

            break;

        case '[':
        case '{':
            if (++depth > max) {
                return 0;
            }

            break;

        case ']':
        case '}':
            if (depth) {
                depth--;
            }

            break;
        }
    }

    return 1;
}


void *
fanbase_json_tree(const unsigned char *p, size_t len, int *too_deep)
{
    char      *text;
    yajl_val   root;

    *too_deep = 0;

    /* yajl's tree wants a C string; a NUL inside is not JSON anyway */

    if (len == 0 || memchr(p, '\0', len) != NULL) {
        return NULL;
    }

    if (!fanbase_json_depth_ok(p, len, FANBASE_JSON_DEPTH_MAX)) {
        *too_deep = 1;
        return NULL;
    }

    text = malloc(len + 1);
    if (text == NULL) {
        return NULL;
    }

    memcpy(text, p, len);
    text[len] = '\0';

    root = yajl_tree_parse(text, NULL, 0);
    free(text);

    return root;
}


/* the length of the valid UTF-8 character at p, 0 when there is none */

static size_t
fanbase_utf8_char(const unsigned char *p, size_t len)
{
    size_t         n, i;
    unsigned char  c, lo, hi;

    c = p[0];

    if (c < 0x80) {
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;                     /* no overlong forms */

        } else if (c == 0xed) {
            hi = 0x9f;                     /* no surrogates */
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;                     /* nothing above U+10FFFF */
        }

    } else {
        return 0;
    }

    if (len < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }

    return n;
}


int
fanbase_utf8_valid(const unsigned char *p, size_t len)
{
    size_t    i, n;
    uint64_t  w, v, any;

    /*
     * mostly ASCII: the bytes ORed sixteen at a time, and no byte read
     * twice unless one has its high bit set
     */

    any = 0;

    for (i = 0; len - i >= 16; i += 16) {
        memcpy(&w, p + i, 8);
        memcpy(&v, p + i + 8, 8);
        any |= w | v;
    }

    if (len - i >= 8) {
        memcpy(&w, p + i, 8);
        any |= w;
        i += 8;
    }

    while (i < len) {
        any |= p[i++];
    }

    if ((any & 0x8080808080808080ULL) == 0) {
        return 1;
    }

    for (i = 0; i < len; i += n) {

        /* ASCII eight bytes at a time */

        if (len - i >= 8) {
            memcpy(&w, p + i, 8);

            if ((w & 0x8080808080808080ULL) == 0) {
                n = 8;
                continue;
            }
        }

        n = (p[i] < 0x80) ? 1 : fanbase_utf8_char(p + i, len - i);

        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


void
fanbase_utf8_repair(unsigned char *p, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i += n) {
        n = (p[i] < 0x80) ? 1 : fanbase_utf8_char(p + i, len - i);

        if (n == 0) {
            p[i] = '?';
            n = 1;
        }
    }
}


size_t
fanbase_utf8_cut(const unsigned char *p, size_t len, size_t max)
{
    size_t  i, n;

    if (len <= max) {
        return len;
    }

    for (i = 0; i < len; i += n) {
        n = (p[i] < 0x80) ? 1 : fanbase_utf8_char(p + i, len - i);

        if (n == 0) {
            n = 1;
        }

        if (i + n > max) {
            break;
        }
    }

    return i;
}


/* how many bytes fanbase_json_escape() writes for the character at p */

static size_t
fanbase_json_escaped(const unsigned char *p, size_t len, size_t *in)
{
    size_t  n;

    if (p[0] >= 0x80) {
        n = fanbase_utf8_char(p, len);

        if (n == 0) {
            *in = 1;
            return 3;                      /* U+FFFD */
        }

        *in = n;
        return n;
    }

    *in = 1;

    switch (p[0]) {
    case '"':
    case '\\':
    case '\b':
    case '\f':
    case '\n':
    case '\r':
    case '\t':
        return 2;
    }

    return (p[0] < 0x20) ? 6 : 1;
}


/*
 * Runs of characters that stand for themselves (ASCII from the space up
 * but '"' and '\\', valid UTF-8) are copied at once: text is mostly such
 * runs, and a copy a character took most of the time of a document.
 */

/* ASCII that stands for itself in a JSON string */

static const unsigned char  fanbase_json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x20 '"' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,        /* 0x50 '\\' */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1         /* 0x70 */
};


int
fanbase_json_is_plain(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (!fanbase_json_plain[p[i]]) {
            return 0;
        }
    }

    return 1;
}


unsigned char *
fanbase_json_escape(unsigned char *dst, const unsigned char *p, size_t len)
{
    size_t                i, n, in, run;
    uint64_t              w;
    const unsigned char  *q, *last;
    static const char     hex[] = "0123456789abcdef";

    last = p + len;

    for (i = 0; i < len; i += in) {

        run = i;

        for ( ;; ) {
            q = p + run;

            while (last - q >= 8) {
                memcpy(&w, q, 8);

                if (fanbase_json_stop(w)) {
                    break;
                }

                q += 8;
            }

            while (q < last && fanbase_json_plain[*q]) {
                q++;
            }

            run = q - p;

            if (run == len || p[run] < 0x80) {
                break;
            }

            n = fanbase_utf8_char(p + run, len - run);

            if (n == 0) {
                break;
            }

            run += n;
        }

        if (run > i) {
            memcpy(dst, p + i, run - i);
            dst += run - i;
            in = run - i;
            continue;
        }

        /* a byte to escape, or one of invalid UTF-8 */

        in = 1;

        if (p[i] >= 0x80) {
            *dst++ = 0xef;
            *dst++ = 0xbf;
            *dst++ = 0xbd;
            continue;
        }

        *dst++ = '\\';

        switch (p[i]) {
        case '"':
        case '\\':
            *dst++ = p[i];
            break;
        case '\b':
            *dst++ = 'b';
            break;
        case '\f':
            *dst++ = 'f';
            break;
        case '\n':
            *dst++ = 'n';
            break;
        case '\r':
            *dst++ = 'r';
            break;
        case '\t':
            *dst++ = 't';
            break;
        default:
            *dst++ = 'u';
            *dst++ = '0';
            *dst++ = '0';
            *dst++ = hex[p[i] >> 4];
            *dst++ = hex[p[i] & 0xf];
        }
    }

    return dst;
}


size_t
fanbase_json_escape_cut(const unsigned char *p, size_t len, size_t max)
{
    size_t  i, n, in, out;

    out = 0;

    for (i = 0; i < len; i += in) {
        n = fanbase_json_escaped(p + i, len - i, &in);

        if (out + n > max) {
            break;
        }

        out += n;
    }

    return i;
}



size_t
fanbase_json_error_size(const char *code, const char *message)
{
    return sizeof("{\"error\":{\"status\":,\"code\":\"\",\"message\":\"\"}}")
           - 1 + FANBASE_JSON_INT_LEN + strlen(code)
           + FANBASE_JSON_ESCAPE_MAX * strlen(message);
}


unsigned char *
fanbase_json_render_error(unsigned char *p, unsigned status, const char *code,
    const char *message)
{
    p = fanbase_json_literal(p, "{\"error\":{\"status\":");
    p = fanbase_json_int(p, status);
    p = fanbase_json_literal(p, ",\"code\":\"");
    p = fanbase_json_raw(p, code, strlen(code));
    p = fanbase_json_literal(p, "\",\"message\":");
    p = fanbase_json_str(p, (const unsigned char *) message, strlen(message));

    return fanbase_json_literal(p, "}}");
}


size_t
fanbase_json_item_size(const fanbase_item_t *item, int show_msg)
{
    const char  *status;

    status = fanbase_json_status_name(item->status);

    /* each string: "" or null around it */

    return sizeof("{\"id\":,\"created\":,\"iCode\":,\"iMsg\":,"
                  "\"processDate\":,\"processStatus\":,\"processMsg\":,"
                  "\"msg\":}") - 1
           + FANBASE_JSON_INT_LEN + 7 * (sizeof("null") - 1)
           + (item->plain ? 1 : FANBASE_JSON_ESCAPE_MAX)
             * (item->id.len + item->created.len + item->imsg.len
                + item->process_date.len + item->process_msg.len
                + (status ? strlen(status) : 0))
           + (show_msg ? item->msg.len : 0);
}


unsigned char *
fanbase_json_render_item(unsigned char *p, const fanbase_item_t *item,
    int show_msg)
{
    const char  *status;
    unsigned char *(*str)(unsigned char *p, const unsigned char *s,
                          size_t len);

    status = fanbase_json_status_name(item->status);

    /* strings the zone found plain are copied as they are */

    str = item->plain ? fanbase_json_str_plain : fanbase_json_str;

    p = fanbase_json_literal(p, "{\"id\":");
    p = str(p, item->id.data, item->id.len);
    p = fanbase_json_literal(p, ",\"created\":");
    p = str(p, item->created.data, item->created.len);
    p = fanbase_json_literal(p, ",\"iCode\":");

    if (item->icode_set) {
        p = fanbase_json_int(p, item->icode);

    } else {
        p = fanbase_json_literal(p, "null");
    }

    p = fanbase_json_literal(p, ",\"iMsg\":");
    p = str(p, item->imsg.data, item->imsg.len);
    p = fanbase_json_literal(p, ",\"processDate\":");
    p = str(p, item->process_date.data, item->process_date.len);
    p = fanbase_json_literal(p, ",\"processStatus\":");

    /* a name of ours: plain */

    p = fanbase_json_str_plain(p, (const unsigned char *) status,
                               status ? strlen(status) : 0);
    p = fanbase_json_literal(p, ",\"processMsg\":");
    p = str(p, item->process_msg.data, item->process_msg.len);

    /* the original payload holds buyer data: shown only when kept */

    p = fanbase_json_literal(p, ",\"msg\":");

    if (show_msg && item->msg.data != NULL) {
        p = fanbase_json_raw(p, item->msg.data, item->msg.len);

    } else {
        p = fanbase_json_literal(p, "null");
    }

    *p++ = '}';

    return p;
}


size_t
fanbase_json_accepted_size(const fanbase_str_t *id, const fanbase_str_t *path)
{
    return sizeof("{\"transaction_id\":\"\",\"links\":[{\"path\":\"\"}]}") - 1
           + id->len + FANBASE_JSON_ESCAPE_MAX * path->len;
}


unsigned char *
fanbase_json_render_accepted(unsigned char *p, const fanbase_str_t *id,
    const fanbase_str_t *path)
{
    p = fanbase_json_literal(p, "{\"transaction_id\":\"");
    p = fanbase_json_raw(p, id->data, id->len);
    p = fanbase_json_literal(p, "\",\"links\":[{\"path\":");
    p = fanbase_json_str(p, path->data, path->len);

    return fanbase_json_literal(p, "}]}");
}


size_t
fanbase_json_accepted_plain_size(const fanbase_str_t *id,
    const fanbase_str_t *path)
{
    return sizeof("{\"transaction_id\":\"\",\"links\":[{\"path\":\"\"}]}") - 1
           + id->len + path->len;
}


unsigned char *
fanbase_json_render_accepted_plain(unsigned char *p, const fanbase_str_t *id,
    const fanbase_str_t *path)
{
    p = fanbase_json_literal(p, "{\"transaction_id\":\"");
    p = fanbase_json_raw(p, id->data, id->len);
    p = fanbase_json_literal(p, "\",\"links\":[{\"path\":\"");
    p = fanbase_json_raw(p, path->data, path->len);

    return fanbase_json_literal(p, "\"}]}");
}


size_t
fanbase_json_event_size(const fanbase_event_t *ev)
{
    const char  *status;

    status = fanbase_json_status_name(ev->status);

    return sizeof("{\"event\":\"\",\"message\":\"\",\"data\":,\"status\":\"\","
                  "\"created_at\":\"\"}") - 1
           + strlen(ev->kind) + FANBASE_JSON_ESCAPE_MAX * ev->message.len
           + (ev->data.len ? ev->data.len : sizeof("{}") - 1)
           + (status ? strlen(status) : 0) + ev->created_at.len;
}


unsigned char *
fanbase_json_render_event(unsigned char *p, const fanbase_event_t *ev)
{
    const char  *status;

    status = fanbase_json_status_name(ev->status);

    p = fanbase_json_literal(p, "{\"event\":\"");
    p = fanbase_json_raw(p, ev->kind, strlen(ev->kind));
    p = fanbase_json_literal(p, "\",\"message\":\"");
    p = fanbase_json_escape(p, ev->message.data, ev->message.len);
    p = fanbase_json_literal(p, "\",\"data\":");

    if (ev->data.len) {
        p = fanbase_json_raw(p, ev->data.data, ev->data.len);

    } else {
        p = fanbase_json_literal(p, "{}");
    }

    p = fanbase_json_literal(p, ",\"status\":\"");
    p = fanbase_json_raw(p, status ? status : "", status ? strlen(status) : 0);
    p = fanbase_json_literal(p, "\",\"created_at\":\"");
    p = fanbase_json_raw(p, ev->created_at.data, ev->created_at.len);

    return fanbase_json_literal(p, "\"}");
}


/* "processing" is the longest status name */

size_t
fanbase_json_txn_head_size(const fanbase_txn_head_t *head)
{
    return sizeof("{\"created_at\":\"\",\"updated_at\":\"\",\"id\":\"\","
                  "\"code\":\"\",\"operation\":\"create\","
                  "\"trigger_endpoint\":\"" FANBASE_JSON_TRIGGER "\","
                  "\"status\":\"processing\",\"events\":[") - 1
           + head->created_at.len + head->updated_at.len + head->id.len
           + FANBASE_JSON_CODE_LEN;
}


unsigned char *
fanbase_json_render_txn_head(unsigned char *p, const fanbase_txn_head_t *head)
{
    size_t          i, n;
    const char     *status;
    unsigned char   c;

    status = fanbase_json_status_name(head->status);

    p = fanbase_json_literal(p, "{\"created_at\":\"");
    p = fanbase_json_raw(p, head->created_at.data, head->created_at.len);
    p = fanbase_json_literal(p, "\",\"updated_at\":\"");
    p = fanbase_json_raw(p, head->updated_at.data, head->updated_at.len);
    p = fanbase_json_literal(p, "\",\"id\":\"");
    p = fanbase_json_raw(p, head->id.data, head->id.len);
    p = fanbase_json_literal(p, "\",\"code\":\"");

    /* the first characters of the id, upper case whatever the locale */

    n = (head->id.len < FANBASE_JSON_CODE_LEN) ? head->id.len
                                               : FANBASE_JSON_CODE_LEN;

    for (i = 0; i < n; i++) {
        c = head->id.data[i];
        *p++ = (c >= 'a' && c <= 'z') ? c - ('a' - 'A') : c;
    }

    p = fanbase_json_literal(p, "\",\"operation\":\"create\","
                                "\"trigger_endpoint\":\"" FANBASE_JSON_TRIGGER
                                "\",\"status\":\"");
    p = fanbase_json_raw(p, status ? status : "", status ? strlen(status) : 0);

    return fanbase_json_literal(p, "\",\"events\":[");
}


/* a JSON string, or null for a string that is absent */

static unsigned char *
fanbase_json_str(unsigned char *p, const unsigned char *s, size_t len)
{
    if (s == NULL) {
        return fanbase_json_literal(p, "null");
    }

    *p++ = '"';
    p = fanbase_json_escape(p, s, len);
    *p++ = '"';

    return p;
}


/* the same for a string fanbase_json_is_plain() accepts */

static unsigned char *
fanbase_json_str_plain(unsigned char *p, const unsigned char *s, size_t len)
{
    if (s == NULL) {
        return fanbase_json_literal(p, "null");
    }

    *p++ = '"';
    memcpy(p, s, len);
    p += len;
    *p++ = '"';

    return p;
}


static unsigned char *
fanbase_json_raw(unsigned char *p, const void *s, size_t len)
{
    memcpy(p, s, len);

    return p + len;
}


/*
 * An integer in decimal, its digits from the last one: snprintf() cost a
 * third of a queue item's rendering (650 instructions of a status HIT)
 */

static unsigned char *
fanbase_json_int(unsigned char *p, int64_t n)
{
    size_t          len;
    uint64_t        u;
    unsigned char  *d, buf[FANBASE_JSON_INT_LEN];

    /* the magnitude of INT64_MIN too, without an overflow */

    u = (n < 0) ? (uint64_t) 0 - (uint64_t) n : (uint64_t) n;

    d = buf + sizeof(buf);

    do {
        *--d = (unsigned char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (n < 0) {
        *--d = '-';
    }

    len = buf + sizeof(buf) - d;
    memcpy(p, d, len);

    return p + len;
}
