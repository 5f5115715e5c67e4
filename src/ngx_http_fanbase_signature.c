
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Webhook signatures: see ngx_http_fanbase_signature.h.  A signature is
 * decoded to its bytes and compared to the computed MAC with
 * CRYPTO_memcmp(), so that the time taken says nothing about how much of
 * it was right.
 */


#include <ctype.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
#include <openssl/core_names.h>
#include <openssl/params.h>
#endif

#include "ngx_http_fanbase_signature.h"


static int fanbase_sig_mac(const unsigned char *key, size_t klen,
    const unsigned char *id, size_t id_len, const unsigned char *ts,
    size_t ts_len, const unsigned char *body, size_t body_len,
    unsigned char *mac);
static int fanbase_sig_base64_decode(const unsigned char *s, size_t len,
    unsigned char *out, size_t size);
static int fanbase_sig_hex_decode(const unsigned char *s, size_t len,
    unsigned char *out, size_t size);
static int fanbase_sig_next_v1(const unsigned char **pp,
    const unsigned char *last, unsigned char *got);
static int fanbase_sig_body_decode(const unsigned char *value,
    size_t value_len, int encoding, unsigned char *got);


int
fanbase_sig_parse_secret(const unsigned char *s, size_t len, int raw,
    unsigned char *key, size_t size)
{
    if (len > 6 && memcmp(s, "whsec_", 6) == 0) {
        return fanbase_sig_base64_decode(s + 6, len - 6, key, size);
    }

    if (!raw || len == 0 || len > size) {
        return -1;
    }

    memcpy(key, s, len);

    return (int) len;
}


size_t
fanbase_sig_standard_sign(const unsigned char *key, size_t klen,
    const unsigned char *id, size_t id_len, const unsigned char *ts,
    size_t ts_len, const unsigned char *body, size_t body_len,
    unsigned char *out)
{
    unsigned char  mac[FANBASE_SIG_MAC_LEN];

    if (fanbase_sig_mac(key, klen, id, id_len, ts, ts_len, body, body_len,
                        mac)
        != 0)
    {
        return 0;
    }

    memcpy(out, "v1,", 3);

    return 3 + (size_t) EVP_EncodeBlock(out + 3, mac, sizeof(mac));
}


int
fanbase_sig_standard_verify(const fanbase_secret_t *keys, size_t nkeys,
    const unsigned char *id, size_t id_len, const unsigned char *ts,
    size_t ts_len, const unsigned char *body, size_t body_len,
    const unsigned char *sig, size_t sig_len)
{
    int                   ok;
    size_t                k;
    const unsigned char  *p, *last;
    unsigned char         got[FANBASE_SIG_MAC_LEN + 8];
    unsigned char         macs[8][FANBASE_SIG_MAC_LEN];

    if (nkeys == 0 || nkeys > 8) {
        return 0;
    }

    p = sig;
    last = sig + sig_len;

    /* nothing that could match: no pass over the body at all */

    if (!fanbase_sig_next_v1(&p, last, got)) {
        return 0;
    }

    for (k = 0; k < nkeys; k++) {
        if (fanbase_sig_mac(keys[k].data, keys[k].len, id, id_len, ts,
                            ts_len, body, body_len, macs[k])
            != 0)
        {
            return 0;
        }
    }

    ok = 0;

    do {
        for (k = 0; k < nkeys; k++) {
            ok |= (CRYPTO_memcmp(got, macs[k], FANBASE_SIG_MAC_LEN) == 0);
        }

    } while (fanbase_sig_next_v1(&p, last, got));

    return ok;
}


int
fanbase_sig_standard_wellformed(const unsigned char *sig, size_t sig_len)
{
    const unsigned char  *p;
    unsigned char         got[FANBASE_SIG_MAC_LEN + 8];

    p = sig;

    return fanbase_sig_next_v1(&p, sig + sig_len, got);
}


/*
 * The next space-separated "v1,<base64>" entry of [*pp, last) that decodes
 * to a MAC's length, into "got"; other versions are not ours to check.
 */

static int
fanbase_sig_next_v1(const unsigned char **pp, const unsigned char *last,
    unsigned char *got)
{
    const unsigned char  *p, *start;

    p = *pp;

    while (p < last) {

        while (p < last && *p == ' ') {
            p++;
        }

        start = p;

        while (p < last && *p != ' ') {
            p++;
        }

        if (p - start < 4 || memcmp(start, "v1,", 3) != 0) {
            continue;
        }

        if (fanbase_sig_base64_decode(start + 3, p - start - 3, got,
                                      FANBASE_SIG_MAC_LEN + 8)
            == FANBASE_SIG_MAC_LEN)
        {
            *pp = p;
            return 1;
        }
    }

    *pp = p;

    return 0;
}


int
fanbase_sig_body_verify(const fanbase_secret_t *keys, size_t nkeys,
    const unsigned char *body, size_t body_len, const unsigned char *value,
    size_t value_len, int encoding)
{
    int            ok;
    size_t         k;
    unsigned char  got[FANBASE_SIG_MAC_LEN + 8];
    unsigned char  mac[FANBASE_SIG_MAC_LEN];

    if (fanbase_sig_body_decode(value, value_len, encoding, got)
        != FANBASE_SIG_MAC_LEN)
    {
        return 0;
    }

    ok = 0;

    for (k = 0; k < nkeys; k++) {
        if (fanbase_sig_mac(keys[k].data, keys[k].len, NULL, 0, NULL, 0,
                            body, body_len, mac)
            != 0)
        {
            return 0;
        }

        ok |= (CRYPTO_memcmp(got, mac, FANBASE_SIG_MAC_LEN) == 0);
    }

    return ok;
}


int
fanbase_sig_body_wellformed(const unsigned char *value, size_t value_len,
    int encoding)
{
    unsigned char  got[FANBASE_SIG_MAC_LEN + 8];

    return fanbase_sig_body_decode(value, value_len, encoding, got)
           == FANBASE_SIG_MAC_LEN;
}


/* hex or base64, an optional "sha256=" prefix: the length decoded */

static int
fanbase_sig_body_decode(const unsigned char *value, size_t value_len,
    int encoding, unsigned char *got)
{
    if (value_len > 7 && memcmp(value, "sha256=", 7) == 0) {
        value += 7;
        value_len -= 7;
    }

    return (encoding == FANBASE_SIG_HEX)
           ? fanbase_sig_hex_decode(value, value_len, got,
                                    FANBASE_SIG_MAC_LEN + 8)
           : fanbase_sig_base64_decode(value, value_len, got,
                                       FANBASE_SIG_MAC_LEN + 8);
}


int
fanbase_sig_token_verify(const fanbase_secret_t *keys, size_t nkeys,
    const unsigned char *value, size_t value_len)
{
    int            ok;
    size_t         k;
    unsigned char  a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];

    /* digests of both sides: equal lengths, and no length leaks */

    SHA256(value, value_len, a);

    ok = 0;

    for (k = 0; k < nkeys; k++) {
        SHA256(keys[k].data, keys[k].len, b);
        ok |= (CRYPTO_memcmp(a, b, sizeof(a)) == 0);
    }

    return ok;
}


/*
 * OpenSSL writes hex in upper case (and, before 3.0, with ':' between the
 * bytes): the digits are taken in lower case, as the message ids that a
 * state file keeps were written.
 */

int
fanbase_sig_sha256_hex(const unsigned char *data, size_t len,
    unsigned char *out)
{
    char           *hex, *s;
    unsigned char   md[SHA256_DIGEST_LENGTH];
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    char            buf[2 * SHA256_DIGEST_LENGTH + 1];
#endif

    SHA256(data, len, md);

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    hex = buf;

    if (OPENSSL_buf2hexstr_ex(buf, sizeof(buf), NULL, md, sizeof(md), '\0')
        != 1)
    {
        return -1;
    }

#else
    hex = OPENSSL_buf2hexstr(md, sizeof(md));
    if (hex == NULL) {
        return -1;
    }
#endif

    for (s = hex; *s != '\0'; s++) {
        if (*s != ':') {
            *out++ = (unsigned char) tolower((unsigned char) *s);
        }
    }

#if (OPENSSL_VERSION_NUMBER < 0x30000000L)
    OPENSSL_free(hex);
#endif

    return 0;
}


/*
 * HMAC-SHA256 of "id.ts.body" (or of the body alone, without an id) by
 * OpenSSL's HMAC, fed in pieces so that the body is not copied together
 * with the rest.
 *
 * A keyed context is kept for each key (by its bytes) as long as the
 * process lives, and set back to its key for each message
 * (EVP_MAC_init() with no key, HMAC_Init_ex() likewise): a context made,
 * fetched a digest for and keyed for every message took four fifths of
 * a verified webhook's instructions.  A process holds a handful of keys
 * (the webhook secrets, the notification secret); past FANBASE_SIG_CACHE
 * the oldest is dropped.
 */

#define FANBASE_SIG_CACHE  16

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
typedef EVP_MAC_CTX  fanbase_sig_ctx_t;
#else
typedef HMAC_CTX     fanbase_sig_ctx_t;
#endif

typedef struct {
    fanbase_sig_ctx_t    *ctx;
    size_t                len;
    unsigned char         key[FANBASE_SIG_KEY_MAX];
} fanbase_sig_keyed_t;


static fanbase_sig_keyed_t  fanbase_sig_cache[FANBASE_SIG_CACHE];
static size_t               fanbase_sig_cached;    /* the next to replace */


static void
fanbase_sig_ctx_free(fanbase_sig_ctx_t *ctx)
{
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    EVP_MAC_CTX_free(ctx);
#else
    HMAC_CTX_free(ctx);
#endif
}


/* the keyed context of a key, ready for a message; NULL on failure */

static fanbase_sig_ctx_t *
fanbase_sig_keyed(const unsigned char *key, size_t klen)
{
    size_t                i;
    fanbase_sig_ctx_t    *ctx;
    fanbase_sig_keyed_t  *k;
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    OSSL_PARAM            params[2];

    static EVP_MAC       *hmac;
#endif

    if (klen > FANBASE_SIG_KEY_MAX) {
        return NULL;
    }

    for (i = 0; i < FANBASE_SIG_CACHE; i++) {
        k = &fanbase_sig_cache[i];

        if (k->ctx != NULL && k->len == klen
            && memcmp(k->key, key, klen) == 0)
        {
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
            if (EVP_MAC_init(k->ctx, NULL, 0, NULL) == 1) {
#else
            if (HMAC_Init_ex(k->ctx, NULL, 0, NULL, NULL) == 1) {
#endif
                return k->ctx;
            }

            fanbase_sig_ctx_free(k->ctx);
            k->ctx = NULL;
            return NULL;
        }
    }

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)

    if (hmac == NULL) {
        hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (hmac == NULL) {
            return NULL;
        }
    }

    ctx = EVP_MAC_CTX_new(hmac);
    if (ctx == NULL) {
        return NULL;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(ctx, key, klen, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }

#else

    ctx = HMAC_CTX_new();
    if (ctx == NULL) {
        return NULL;
    }

    if (HMAC_Init_ex(ctx, key, (int) klen, EVP_sha256(), NULL) != 1) {
        HMAC_CTX_free(ctx);
        return NULL;
    }

#endif

    k = &fanbase_sig_cache[fanbase_sig_cached];
    fanbase_sig_cached = (fanbase_sig_cached + 1) % FANBASE_SIG_CACHE;

    if (k->ctx != NULL) {
        fanbase_sig_ctx_free(k->ctx);
    }

    k->ctx = ctx;
    k->len = klen;
    memcpy(k->key, key, klen);

    return ctx;
}


static int
fanbase_sig_mac(const unsigned char *key, size_t klen,
    const unsigned char *id, size_t id_len, const unsigned char *ts,
    size_t ts_len, const unsigned char *body, size_t body_len,
    unsigned char *mac)
{
    int                 rc;
    fanbase_sig_ctx_t  *ctx;
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    size_t              len;
#else
    unsigned int        len;
#endif

    ctx = fanbase_sig_keyed(key, klen);
    if (ctx == NULL) {
        return -1;
    }

    len = 0;

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)

    rc = ((id == NULL
           || (EVP_MAC_update(ctx, id, id_len) == 1
               && EVP_MAC_update(ctx, (const unsigned char *) ".", 1) == 1
               && EVP_MAC_update(ctx, ts, ts_len) == 1
               && EVP_MAC_update(ctx, (const unsigned char *) ".", 1) == 1))
          && EVP_MAC_update(ctx, body, body_len) == 1
          && EVP_MAC_final(ctx, mac, &len, FANBASE_SIG_MAC_LEN) == 1
          && len == FANBASE_SIG_MAC_LEN);

#else

    rc = ((id == NULL
           || (HMAC_Update(ctx, id, id_len) == 1
               && HMAC_Update(ctx, (const unsigned char *) ".", 1) == 1
               && HMAC_Update(ctx, ts, ts_len) == 1
               && HMAC_Update(ctx, (const unsigned char *) ".", 1) == 1))
          && HMAC_Update(ctx, body, body_len) == 1
          && HMAC_Final(ctx, mac, &len) == 1
          && len == FANBASE_SIG_MAC_LEN);

#endif

    return rc ? 0 : -1;
}


/* standard base64 with padding; the decoded length, or -1 */

static int
fanbase_sig_base64_decode(const unsigned char *s, size_t len,
    unsigned char *out, size_t size)
{
    int            n;
    size_t         i, pad;
    unsigned char  c, buf[512];

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > sizeof(buf)) {
        return -1;
    }

    pad = (s[len - 1] == '=') + (s[len - 1] == '=' && s[len - 2] == '=');

    /*
     * EVP_DecodeBlock() skips leading blanks and takes an '=' anywhere for
     * zero bits: only the alphabet, and '=' only as the padding at the end
     */

    for (i = 0; i < len - pad; i++) {
        c = s[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '+' || c == '/'))
        {
            return -1;
        }
    }

    n = EVP_DecodeBlock(buf, s, (int) len);

    if (n < 0 || (size_t) n < pad || (size_t) n - pad > size) {
        return -1;
    }

    n -= (int) pad;
    memcpy(out, buf, n);

    /* a secret's key goes through here too: what was written is wiped */

    OPENSSL_cleanse(buf, len / 4 * 3);

    return n;
}


/*
 * Hex digits, either case, no separators: the decoded length, or -1.
 * OpenSSL's decoders read a C string, so the digits are copied with a NUL
 * after them: a NUL among them ends the string early, and the decoded
 * length then falls short.  What they refuse they also push on the
 * thread's OpenSSL error queue, where nginx would find it at its next TLS
 * operation and log it as a stale error: that is taken off again.
 */

static int
fanbase_sig_hex_decode(const unsigned char *s, size_t len,
    unsigned char *out, size_t size)
{
    char            str[2 * (FANBASE_SIG_MAC_LEN + 8) + 1];
#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    size_t          n;
#else
    long            n;
    unsigned char  *buf;
#endif

    if (len % 2 != 0 || len / 2 > size || len >= sizeof(str)) {
        return -1;
    }

    if (len == 0) {
        return 0;
    }

    memcpy(str, s, len);
    str[len] = '\0';

    ERR_set_mark();

#if (OPENSSL_VERSION_NUMBER >= 0x30000000L)
    if (OPENSSL_hexstr2buf_ex(out, size, &n, str, '\0') != 1) {
        ERR_pop_to_mark();
        return -1;
    }
#else
    /* before 3.0 a ':' may stand between the bytes: not in a signature */

    if (memchr(str, ':', len) != NULL) {
        ERR_pop_to_mark();
        return -1;
    }

    buf = OPENSSL_hexstr2buf(str, &n);
    if (buf == NULL) {
        ERR_pop_to_mark();
        return -1;
    }

    memcpy(out, buf, n);
    OPENSSL_free(buf);
#endif

    ERR_clear_last_mark();

    return ((size_t) n == len / 2) ? (int) n : -1;
}
