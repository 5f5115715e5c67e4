
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Unit tests of the webhook signatures (src/ngx_http_fanbase_signature.c)
 * and of the webhook update shapes (src/ngx_http_fanbase_json.c), without
 * nginx.  Prints TAP; built and run by t/006_signature_unit.t.
 */


#include <string.h>

#include <openssl/err.h>

#include "ngx_http_fanbase_json.h"
#include "ngx_http_fanbase_signature.h"

#include "tap.h"


/* the example of the Standard Webhooks specification */

#define SPEC_SECRET  "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID      "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS      "1614265330"
#define SPEC_BODY    "{\"test\": 2432232314}"
#define SPEC_SIG     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


#define U(s)  (const unsigned char *) (s), strlen(s)


static int
verify(fanbase_secret_t *keys, size_t nkeys, const char *id, const char *ts,
    const char *body, const char *sig)
{
    return fanbase_sig_standard_verify(keys, nkeys, U(id), U(ts), U(body),
                                       U(sig));
}


static int
update(const char *json, fanbase_update_t *u)
{
    return fanbase_json_parse_update(U(json), u);
}


int
main(void)
{
    int               klen, klen2;
    size_t            len;
    fanbase_update_t  u;
    fanbase_secret_t  keys[2];
    unsigned char     key[FANBASE_SIG_KEY_MAX], key2[FANBASE_SIG_KEY_MAX];
    unsigned char     sig[FANBASE_SIG_LEN + 1], hex[65];

    /* secrets */

    klen = fanbase_sig_parse_secret(U(SPEC_SECRET), 0, key, sizeof(key));
    ok(klen == 24, "whsec_ secret decodes to its 24 bytes");
    ok(fanbase_sig_parse_secret(U("plain-secret"), 0, key2, sizeof(key2))
       == -1, "a line without whsec_ is no Standard Webhooks secret");
    ok(fanbase_sig_parse_secret(U("plain-secret"), 1, key2, sizeof(key2))
       == 12, "... but is a raw secret for the other schemes");
    ok(fanbase_sig_parse_secret(U("whsec_not*base64"), 0, key2, sizeof(key2))
       == -1, "whsec_ with bad base64 is refused");
    ok(fanbase_sig_parse_secret(U("whsec_"), 0, key2, sizeof(key2)) == -1,
       "whsec_ alone is refused");
    ok(fanbase_sig_parse_secret(U("whsec_1111111111111=3166se"), 0, key2,
                                sizeof(key2))
       == -1, "whsec_ with an '=' inside is refused (found by fuzzing)");
    ok(fanbase_sig_parse_secret(U("whsec_AB=A"), 0, key2, sizeof(key2)) == -1,
       "whsec_ with an '=' before the last character alone is refused");
    ok(fanbase_sig_parse_secret(U("whsec_    AAAAAAAA"), 0, key2, sizeof(key2))
       == -1, "whsec_ with leading blanks is refused");

    keys[0].data = key;
    keys[0].len = klen;

    /* signing: the specification's example */

    len = fanbase_sig_standard_sign(key, klen, U(SPEC_ID), U(SPEC_TS),
                                    U(SPEC_BODY), sig);
    sig[len] = '\0';
    ok(len == FANBASE_SIG_LEN && strcmp((char *) sig, SPEC_SIG) == 0,
       "signs the specification's example exactly");

    /* verifying */

    ok(verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG),
       "verifies the specification's example");
    ok(verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY,
              "v1,bad v2,x " SPEC_SIG " v1,AAAA"),
       "one good entry among bad ones");
    ok(!verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY,
               "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
       "another version is not taken for v1");
    ok(!verify(keys, 1, SPEC_ID, SPEC_TS, "{\"test\": 2432232315}",
               SPEC_SIG), "a changed body fails");
    ok(!verify(keys, 1, SPEC_ID, "1614265331", SPEC_BODY, SPEC_SIG),
       "a changed timestamp fails");
    ok(!verify(keys, 1, "msg_other", SPEC_TS, SPEC_BODY, SPEC_SIG),
       "a changed id fails");
    ok(!verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY,
               "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
       "a signature one bit off fails");
    ok(!verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY, ""),
       "an empty header fails");
    ok(!verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY, "v1,"),
       "an empty signature fails");

    /* what can be refused before the body is read */

    ok(fanbase_sig_standard_wellformed(U("v1,bad " SPEC_SIG)),
       "a header with a v1 entry of a MAC's length is well-formed");
    ok(!fanbase_sig_standard_wellformed(U("v1,AAAA v2,"
                                          "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= "
                                          "v1,not*base64")),
       "short, other versions, not base64: not well-formed");
    ok(!fanbase_sig_standard_wellformed(U("")), "an empty header is not");
    ok(fanbase_sig_body_wellformed(U("sha256=" "0123456789abcdef0123456789abcdef"
                                     "0123456789abcdef0123456789abcdef"),
                                   FANBASE_SIG_HEX),
       "64 hex digits after sha256= are a well-formed body HMAC");
    ok(!fanbase_sig_body_wellformed(U("sha256=zz"), FANBASE_SIG_HEX),
       "anything else is not");
    ok(!fanbase_sig_body_wellformed(U("0123456789abcdef0123456789abcdef"
                                      "0123456789abcdef0123456789abcdeg"),
                                    FANBASE_SIG_HEX)
       && !fanbase_sig_body_wellformed((const unsigned char *)
                                       "0123456789abcdef0123456789abcdef"
                                       "0123456789abcdef\0"
                                       "123456789abcdef", 64,
                                       FANBASE_SIG_HEX),
       "nor 64 characters with one that is not a hex digit, or a NUL");
    ok(ERR_peek_error() == 0,
       "what OpenSSL's hex decoder refused is not left on its error queue");

    /* rotation: any of the secrets */

    klen2 = fanbase_sig_parse_secret(U("whsec_c2Vjb25kLXNlY3JldC1rZXk="), 0,
                                     key2, sizeof(key2));
    keys[1] = keys[0];
    keys[0].data = key2;
    keys[0].len = klen2;
    ok(verify(keys, 2, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG),
       "the second of two secrets verifies");
    ok(!verify(keys, 1, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIG),
       "the other secret alone does not");

    /* HMAC of the body */

    keys[0].data = (const unsigned char *) "It's a Secret to Everybody";
    keys[0].len = strlen((const char *) keys[0].data);

    /* GitHub's documented example */
    ok(fanbase_sig_body_verify(keys, 1, U("Hello, World!"),
           U("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c"
             "8b043e17"), FANBASE_SIG_HEX),
       "body HMAC, hex with sha256= (GitHub's example)");
    ok(fanbase_sig_body_verify(keys, 1, U("Hello, World!"),
           U("757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C"
             "8B043E17"), FANBASE_SIG_HEX),
       "body HMAC, upper-case hex");
    ok(fanbase_sig_body_verify(keys, 1, U("Hello, World!"),
           U("dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc="),
           FANBASE_SIG_BASE64),
       "body HMAC, base64");
    ok(!fanbase_sig_body_verify(keys, 1, U("Hello, World?"),
           U("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c"
             "8b043e17"), FANBASE_SIG_HEX),
       "body HMAC of another body fails");
    ok(!fanbase_sig_body_verify(keys, 1, U("Hello, World!"), U("757107"),
                                FANBASE_SIG_HEX),
       "a short body HMAC fails");

    /* token */

    ok(fanbase_sig_token_verify(keys, 1, U("It's a Secret to Everybody")),
       "token matches");
    ok(!fanbase_sig_token_verify(keys, 1, U("It's a Secret to Everybod")),
       "a prefix of the token does not");
    ok(!fanbase_sig_token_verify(keys, 1, U("")), "an empty token does not");

    fanbase_sig_sha256_hex(U("abc"), hex);
    hex[64] = '\0';
    ok(strcmp((char *) hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
                            "b410ff61f20015ad") == 0, "SHA-256 in hex");

    /* updates: both shapes */

    ok(update("{\"id\":\"q1\",\"processStatus\":\"completed\","
              "\"processMsg\":\"ok\",\"iCode\":0,\"iMsg\":\"m\"}", &u)
       == FANBASE_JSON_OK && u.queue_item && u.status == 3 && u.icode_set
       && u.process_msg.len == 2, "a queue item");
    fanbase_json_update_free(&u);

    ok(update("{\"id\":\"t1\",\"status\":\"failed\",\"events\":["
              "{\"message\":\"first\"},{\"message\":\"last\",\"data\":"
              "{\"error_message\":\"boom\"}}]}", &u)
       == FANBASE_JSON_OK && !u.queue_item && u.status == 4
       && u.message.len == 4 && u.error_message.len == 4,
       "a transaction: the last event's message and error");
    fanbase_json_update_free(&u);

    ok(update("{\"id\":\"t1\",\"status\":\"cancelled\"}", &u)
       == FANBASE_JSON_OK && u.status == FANBASE_STATUS_CANCELLED,
       "a cancelled transaction");
    fanbase_json_update_free(&u);

    ok(update("{\"id\":\"t1\",\"status\":\"done\"}", &u)
       == FANBASE_JSON_SHAPE, "an unknown status");
    fanbase_json_update_free(&u);

    ok(update("{\"processStatus\":\"completed\"}", &u) == FANBASE_JSON_SHAPE,
       "no id");
    fanbase_json_update_free(&u);

    ok(update("{\"id\":7,\"status\":\"failed\"}", &u) == FANBASE_JSON_SHAPE,
       "a number for an id");
    fanbase_json_update_free(&u);

    ok(update("[1,2]", &u) == FANBASE_JSON_SHAPE, "an array");
    fanbase_json_update_free(&u);

    ok(update("{\"id\":", &u) == FANBASE_JSON_INVALID, "not JSON");
    fanbase_json_update_free(&u);

    ok(fanbase_json_parse_update((const unsigned char *) "{\"id\":\"a\0\"}",
                                 10, &u)
       == FANBASE_JSON_INVALID, "a NUL byte");
    fanbase_json_update_free(&u);

    return tap_plan();
}
