
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Unit tests of the JSON shapes (src/ngx_http_fanbase_json.c), without
 * nginx.  Prints TAP; built and run by t/005_json_unit.t.
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_fanbase_json.h"


static int  n;
static int  failed;


static void
ok(int cond, const char *name)
{
    n++;

    if (!cond) {
        failed++;
    }

    printf("%sok %d - %s\n", cond ? "" : "not ", n, name);
}


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
    fanbase_item_t   item;
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

    printf("1..%d\n", n);

    return failed ? 1 : 0;
}
