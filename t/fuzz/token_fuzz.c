
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_json_parse_token(): the Security endpoint's token answer.
 *
 * Checks: on FANBASE_JSON_OK a token inside the answer's pool, of visible
 * ASCII only (it goes into a header), and a positive lifetime; on failure
 * nothing left to free; the same answer parsed twice gives the same token;
 * an answer is invalid exactly when the submission check finds it invalid.
 * The free function is always called, and called twice.
 */


#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              rc, rc2;
    size_t           i;
    uint8_t         *p;
    const char      *err;
    fanbase_token_t  token, token2;

    p = fuzz_copy(data, size);

    rc = fanbase_json_parse_token(p, size, &token);

    fuzz_check(rc == FANBASE_JSON_OK || rc == FANBASE_JSON_INVALID
               || rc == FANBASE_JSON_SHAPE);

    if (rc == FANBASE_JSON_OK) {
        fuzz_check(token.pool != NULL && token.pool_len <= token.pool_size);
        fuzz_check(token.access_token.data != NULL);
        fuzz_check(token.access_token.len > 0);
        fuzz_check(fuzz_within(token.access_token.data,
                               token.access_token.len, token.pool,
                               token.pool_len));
        fuzz_check(token.expires_in > 0);

        for (i = 0; i < token.access_token.len; i++) {
            fuzz_check(token.access_token.data[i] > 0x20
                       && token.access_token.data[i] < 0x7f);
        }

    } else {
        fuzz_check(token.pool == NULL && token.access_token.data == NULL);
    }

    fuzz_check(!fuzz_plain_json(p, size)
               || (rc == FANBASE_JSON_INVALID)
                  == (fanbase_json_check_submission(p, size, &err)
                      == FANBASE_JSON_INVALID));

    rc2 = fanbase_json_parse_token(p, size, &token2);

    fuzz_check(rc2 == rc);
    fuzz_check(fuzz_str_eq(token.access_token.data, token.access_token.len,
                           token2.access_token.data,
                           token2.access_token.len));
    fuzz_check(rc != FANBASE_JSON_OK || token.expires_in == token2.expires_in);

    fanbase_json_token_free(&token);
    fanbase_json_token_free(&token2);
    fanbase_json_token_free(&token);

    free(p);

    return 0;
}
