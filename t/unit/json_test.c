
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Unit tests of the JSON shapes (src/ngx_http_fanbase_json.c), without
 * nginx.  Prints TAP; built and run by t/005_json_unit.t.
 */


#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ngx_http_fanbase_json.h"

#include "tap.h"


static int
str_is(fanbase_str_t *s, const char *want)
{
    if (want == NULL) {
        return s->data == NULL;
    }

    return s->data != NULL && s->len == strlen(want)
           && memcmp(s->data, want, s->len) == 0;
}


static int
check(const char *json, int want, const char *name)
{
    int          rc;
    const char  *err = NULL;

    rc = fanbase_json_check_submission((const unsigned char *) json,
                                       strlen(json), &err);
    ok(rc == want && (rc == FANBASE_JSON_OK || err != NULL), name);

    return rc;
}


/* "open" n times, then a string, then "close" n times, into buf */

static char  buf[1024 * 1024];

static void
deep_doc(char *b, size_t depth, const char *open, const char *close)
{
    size_t  i, ol, cl;

    ol = strlen(open);
    cl = strlen(close);

    for (i = 0; i < depth; i++) {
        memcpy(b, open, ol);
        b += ol;
    }

    *b++ = '1';

    for (i = 0; i < depth; i++) {
        memcpy(b, close, cl);
        b += cl;
    }

    *b = '\0';
}


static int
update_parse(const char *json, fanbase_update_t *u)
{
    return fanbase_json_parse_update((const unsigned char *) json,
                                     strlen(json), u);
}


static int
token_parse(const char *json, fanbase_token_t *token)
{
    return fanbase_json_parse_token((const unsigned char *) json,
                                    strlen(json), token);
}


static int
item_parse(const char *json, fanbase_item_t *item)
{
    return fanbase_json_parse_item((const unsigned char *) json,
                                   strlen(json), item);
}


int
main(void)
{
    fanbase_item_t    item;
    fanbase_update_t  u;
    fanbase_token_t  token;

    const char  *seed_get =
        "{\"id\": \"uuid-do-objeto\", \"created\": \"2025-01-01T00:00:00Z\","
        " \"iCode\": 0, \"iMsg\": \"Processado com sucesso\","
        " \"processDate\": \"2025-01-01T00:05:00Z\","
        " \"processStatus\": \"completed\","
        " \"processMsg\": \"Processamento conclu\\u00eddo\","
        " \"msg\": {\"action\": \"ticket-create\","
        " \"data\": {\"a\": [1, {}]}}}";

    const char  *seed_post =
        "{\"id\":\"u1\",\"created\":\"2025-01-01T00:00:00Z\",\"iCode\":7,"
        "\"iMsg\":\"Objeto criado com sucesso\",\"processDate\":null,"
        "\"processStatus\":\"pending\",\"processMsg\":null}";

    /* submissions */

    check("{\"action\":\"ticket-create\",\"data\":{}}", FANBASE_JSON_OK,
          "seed submission");
    check("{\"data\":{\"x\":{\"action\":1}},\"action\":\"update_fandata\"}",
          FANBASE_JSON_OK, "keys in any order, nested action ignored");
    check("", FANBASE_JSON_INVALID, "empty body");
    check("{\"action\":\"a\",\"data\":{}", FANBASE_JSON_INVALID, "truncated");
    check("{\"action\":\"a\",\"data\":{}} x", FANBASE_JSON_INVALID,
          "trailing garbage");
    check("[1]", FANBASE_JSON_SHAPE, "array root");
    check("\"s\"", FANBASE_JSON_SHAPE, "string root");
    check("{\"data\":{}}", FANBASE_JSON_SHAPE, "no action");
    check("{\"action\":1,\"data\":{}}", FANBASE_JSON_SHAPE, "numeric action");
    check("{\"action\":{},\"data\":{}}", FANBASE_JSON_SHAPE, "object action");
    check("{\"action\":\"a\"}", FANBASE_JSON_SHAPE, "no data");
    check("{\"action\":\"a\",\"data\":[]}", FANBASE_JSON_SHAPE, "array data");
    check("{\"action\":\"a\",\"data\":null}", FANBASE_JSON_SHAPE, "null data");
    check("{\"action\":\"a\",\"data\":\"x\"}", FANBASE_JSON_SHAPE,
          "string data");
    check("{\"action\":\"\\xff\",\"data\":{}}", FANBASE_JSON_INVALID,
          "bad escape");

    /* queue items */

    ok(fanbase_json_parse_item((const unsigned char *) seed_get,
                               strlen(seed_get), &item) == FANBASE_JSON_OK,
       "seed GET answer parses");
    ok(str_is(&item.id, "uuid-do-objeto"), "id");
    ok(str_is(&item.created, "2025-01-01T00:00:00Z"), "created");
    ok(item.icode_set && item.icode == 0, "iCode");
    ok(str_is(&item.imsg, "Processado com sucesso"), "iMsg");
    ok(str_is(&item.process_date, "2025-01-01T00:05:00Z"), "processDate");
    ok(item.status == FANBASE_STATUS_COMPLETED, "processStatus");
    ok(str_is(&item.process_msg, "Processamento conclu\xc3\xad" "do"),
       "processMsg decoded from \\u escape");
    ok(str_is(&item.msg, "{\"action\": \"ticket-create\", "
                         "\"data\": {\"a\": [1, {}]}}"),
       "msg kept as its raw bytes");
    fanbase_json_item_free(&item);

    ok(fanbase_json_parse_item((const unsigned char *) seed_post,
                               strlen(seed_post), &item) == FANBASE_JSON_OK,
       "seed POST answer parses");
    ok(str_is(&item.process_date, NULL) && str_is(&item.process_msg, NULL)
       && str_is(&item.msg, NULL), "nulls stay null");
    ok(item.icode == 7 && item.status == FANBASE_STATUS_PENDING,
       "iCode 7, pending");
    fanbase_json_item_free(&item);

    ok(item_parse("{\"id\": \"", &item) == FANBASE_JSON_INVALID,
       "truncated item refused");
    ok(item_parse("{\"id\":\"x\"}", &item) == FANBASE_JSON_SHAPE,
       "item without processStatus refused");
    ok(item_parse("{\"processStatus\":\"done\",\"id\":\"x\"}", &item)
       == FANBASE_JSON_SHAPE,
       "unknown processStatus refused");

    /* token answers */

    ok(token_parse("{\"access_token\":\"a.b.c\","
           "\"token_type\":\"Bearer\",\"expires_in\":3600}", &token)
       == FANBASE_JSON_OK && str_is(&token.access_token, "a.b.c")
       && token.expires_in == 3600, "token answer");
    fanbase_json_token_free(&token);

    ok(token_parse("{\"access_token\":\"a\",\"expires_in\":\"60\"}",
                   &token)
       == FANBASE_JSON_OK && token.expires_in == 60,
       "expires_in as a string");
    fanbase_json_token_free(&token);

    ok(token_parse("{\"token_type\":\"Bearer\"}", &token)
       == FANBASE_JSON_SHAPE, "no access_token refused");
    ok(token_parse("{\"access_token\":\"a\"}", &token)
       == FANBASE_JSON_SHAPE, "no expires_in refused");
    ok(token_parse("{\"access_token\":\"a b\",\"expires_in\":1}", &token)
       == FANBASE_JSON_SHAPE, "token with a space refused");
    ok(token_parse("{\"access_token\":\"a\\r\\nX: y\","
           "\"expires_in\":1}", &token)
       == FANBASE_JSON_SHAPE, "token with CR LF refused");
    ok(token_parse("{\"access_token\":\"a\",\"expires_in\":0}", &token)
       == FANBASE_JSON_SHAPE, "expires_in 0 refused");

    /* nesting: at most FANBASE_JSON_DEPTH_MAX levels, for every parser */

    deep_doc(buf, 64, "{\"action\":\"a\",\"data\":", "}");
    check(buf, FANBASE_JSON_OK, "submission 64 levels deep accepted");
    deep_doc(buf, 65, "{\"action\":\"a\",\"data\":", "}");
    check(buf, FANBASE_JSON_INVALID, "submission 65 levels deep refused");
    deep_doc(buf, 64, "{\"action\":\"a\",\"data\":", "}");
    {
        static char  item_doc[sizeof(buf) + 64];

        strcpy(item_doc, "{\"id\":\"q\",\"processStatus\":\"pending\","
               "\"msg\":");
        strcat(item_doc, buf);
        strcat(item_doc, "}");
        ok(item_parse(item_doc, &item) == FANBASE_JSON_OK,
           "item echoing a 64-level submission in msg: readable");
        fanbase_json_item_free(&item);
    }
    deep_doc(buf, 100000, "[", "]");
    ok(item_parse(buf, &item) != FANBASE_JSON_OK, "deep item refused");
    ok(update_parse(buf, &u) == FANBASE_JSON_INVALID,
       "100000 nested arrays: update refused, no stack overflow");
    fanbase_json_update_free(&u);
    deep_doc(buf, 40, "{\"id\":\"x\",\"status\":\"failed\",\"events\":",
             "}");
    ok(update_parse(buf, &u) == FANBASE_JSON_OK && u.id.len == 1,
       "update 40 levels deep parsed");
    fanbase_json_update_free(&u);

    /* UTF-8 (RFC 3629) */

    ok(fanbase_utf8_valid((const unsigned char *) "a\xc3\xa7\xe2\x82\xac"
                          "\xf0\x9f\x8e\xab", 10), "valid UTF-8");
    ok(!fanbase_utf8_valid((const unsigned char *) "\xc3", 1),
       "a cut character is invalid");
    ok(!fanbase_utf8_valid((const unsigned char *) "\xc0\x80", 2),
       "an overlong form is invalid");
    ok(!fanbase_utf8_valid((const unsigned char *) "\xed\xa0\x80", 3),
       "a surrogate is invalid");
    ok(!fanbase_utf8_valid((const unsigned char *) "\xf4\x90\x80\x80", 4),
       "above U+10FFFF is invalid");
    ok(fanbase_utf8_cut((const unsigned char *) "ab\xc3\xa7", 4, 3) == 2,
       "a cut never splits a character");
    ok(fanbase_utf8_cut((const unsigned char *) "ab\xc3\xa7", 4, 4) == 4,
       "a cut of what fits is no cut");
    ok(fanbase_utf8_cut((const unsigned char *) "a\xff\xff", 3, 2) == 2,
       "an invalid byte is a character of its own");

    check("{\"action\":\"a\",\"data\":{\"k\":\"\xed\xa0\x80\"}}",
          FANBASE_JSON_INVALID, "submission with a surrogate refused");

    ok(item_parse("{\"id\":\"x\",\"processStatus\":\"failed\","
                  "\"processMsg\":\"a\xc0\x80z\"}", &item) == FANBASE_JSON_OK
       && str_is(&item.process_msg, "a??z"),
       "item: an overlong form is replaced at the door");
    fanbase_json_item_free(&item);

    /* a queue item's rendering: integers, plain strings and escaped ones */

    {
        size_t          i;
        unsigned char   out[512], *e;
        fanbase_item_t  it;
        const char     *want;

        static const struct {
            int64_t      n;
            const char  *s;
        } icodes[] = {
            { 0, "0" }, { 7, "7" }, { -1, "-1" }, { 10, "10" },
            { -90, "-90" }, { 1234567890123LL, "1234567890123" },
            { INT64_MAX, "9223372036854775807" },
            { INT64_MIN, "-9223372036854775808" }
        };

        memset(&it, 0, sizeof(it));
        it.id.data = (const unsigned char *) "u1";
        it.id.len = 2;
        it.icode_set = 1;
        it.status = FANBASE_STATUS_COMPLETED;
        it.process_msg.data = (const unsigned char *) "a\"b\n";
        it.process_msg.len = 4;

        for (i = 0; i < sizeof(icodes) / sizeof(icodes[0]); i++) {
            char  buf[256], name[64];

            it.icode = icodes[i].n;
            e = fanbase_json_render_item(out, &it, 0);
            snprintf(buf, sizeof(buf),
                     "{\"id\":\"u1\",\"created\":null,\"iCode\":%s,"
                     "\"iMsg\":null,\"processDate\":null,"
                     "\"processStatus\":\"completed\","
                     "\"processMsg\":\"a\\\"b\\n\",\"msg\":null}",
                     icodes[i].s);
            snprintf(name, sizeof(name),
                     "item: iCode %s rendered, processMsg escaped",
                     icodes[i].s);
            ok((size_t) (e - out) == strlen(buf)
               && (size_t) (e - out) <= fanbase_json_item_size(&it, 0)
               && memcmp(out, buf, e - out) == 0, name);
        }

        it.icode = 0;
        it.process_msg.data = (const unsigned char *) "Ingresso criado";
        it.process_msg.len = 15;
        it.plain = 1;
        want = "{\"id\":\"u1\",\"created\":null,\"iCode\":0,"
               "\"iMsg\":null,\"processDate\":null,"
               "\"processStatus\":\"completed\","
               "\"processMsg\":\"Ingresso criado\",\"msg\":null}";
        e = fanbase_json_render_item(out, &it, 0);
        ok((size_t) (e - out) == strlen(want)
           && (size_t) (e - out) <= fanbase_json_item_size(&it, 0)
           && memcmp(out, want, e - out) == 0,
           "item: plain strings copied as they are");
    }

    /* escaping */

    {
        unsigned char  out[64], *e;
        const char    *in = "\"\\\x01\n\xc3\xa7\xff" "d";

        e = fanbase_json_escape(out, (const unsigned char *) in, strlen(in));
        ok((size_t) (e - out) == 18
           && memcmp(out, "\\\"\\\\\\u0001\\n\xc3\xa7\xef\xbf\xbd" "d", 18)
              == 0,
           "escape: quotes, controls, UTF-8 kept, invalid bytes U+FFFD");

        ok(fanbase_json_escape_cut((const unsigned char *) "\x01\x01\x01",
                                   3, 17) == 2,
           "escape cut by the escaped length");
        ok(fanbase_json_escape_cut((const unsigned char *) "a\xc3\xa7", 3, 2)
           == 1, "escape cut on a character boundary");
    }

    return tap_plan();
}
