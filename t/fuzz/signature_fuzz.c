
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The webhook signature checks: fanbase_sig_standard_verify() with the
 * webhook-id, webhook-timestamp, webhook-signature headers and the body
 * all from the sender, fanbase_sig_body_verify() (hex and base64) and
 * fanbase_sig_token_verify().
 *
 * The input: a flags byte (bits 0-1: how many of the three keys below are
 * configured, bit 2: base64 rather than hex, bit 3: where a good signature
 * is inserted), then id, timestamp and signature header separated by NUL
 * bytes, then the body.
 *
 * Checks, with OpenSSL's one-shot HMAC() as the reference:
 * - fanbase_sig_standard_sign() writes "v1," and the base64 of HMAC-SHA256
 *   of "id.ts.body";
 * - accepted only if an entry of the header is that MAC under one of the
 *   configured keys (no forgery; decoded by a laxer decoder than the
 *   code's), and always accepted once a good entry is added to any header
 *   (no rejection of a valid signature);
 * - the same for an HMAC of the body alone, hex or base64, with or
 *   without "sha256=";
 * - a token is accepted exactly when it is one of the keys.
 */


#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ngx_http_fanbase_signature.h"
#include "fuzz.h"


#define FUZZ_NKEYS  3


static void fuzz_sig_keys(void);
static void fuzz_sig_standard(size_t nkeys, unsigned flags,
    const uint8_t *id, size_t id_len, const uint8_t *ts, size_t ts_len,
    const uint8_t *sig, size_t sig_len, const uint8_t *body,
    size_t body_len);
static void fuzz_sig_body(size_t nkeys, unsigned flags, const uint8_t *value,
    size_t value_len, const uint8_t *body, size_t body_len);
static void fuzz_sig_token(size_t nkeys, const uint8_t *value,
    size_t value_len);
static void fuzz_sig_hmac(size_t k, const uint8_t *id, size_t id_len,
    const uint8_t *ts, size_t ts_len, const uint8_t *body, size_t body_len,
    unsigned char *mac);
static int fuzz_sig_signed(size_t nkeys, const uint8_t *id, size_t id_len,
    const uint8_t *ts, size_t ts_len, const uint8_t *body, size_t body_len,
    const uint8_t *s, size_t len, int hex);
static int fuzz_sig_decode(const uint8_t *s, size_t len, int hex,
    unsigned char *mac);


/* the Standard Webhooks example, a second key, a key longer than a block */

static const char  *fuzz_sig_secrets[FUZZ_NKEYS] = {
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "whsec_c2Vjb25kLXNlY3JldC1rZXk=",
    "a-raw-secret-for-the-hmac-and-token-schemes-longer-than-sixty-four-bytes"
};

static unsigned char     fuzz_sig_key_data[FUZZ_NKEYS][FANBASE_SIG_KEY_MAX];
static fanbase_secret_t  fuzz_sig_key[FUZZ_NKEYS];


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          id_len, ts_len, sig_len, body_len, nkeys;
    uint8_t        *id, *ts, *sig, *body;
    unsigned        flags;
    const uint8_t  *p, *last, *f;

    if (size == 0) {
        return 0;
    }

    fuzz_sig_keys();

    flags = data[0];
    nkeys = 1 + (flags & 3) % FUZZ_NKEYS;

    p = data + 1;
    last = data + size;

    fuzz_field(&p, last, 0, &f, &id_len);
    id = fuzz_copy(f, id_len);
    fuzz_field(&p, last, 0, &f, &ts_len);
    ts = fuzz_copy(f, ts_len);
    fuzz_field(&p, last, 0, &f, &sig_len);
    sig = fuzz_copy(f, sig_len);
    fuzz_field(&p, last, 1, &f, &body_len);
    body = fuzz_copy(f, body_len);

    fuzz_sig_standard(nkeys, flags, id, id_len, ts, ts_len, sig, sig_len,
                      body, body_len);
    fuzz_sig_body(nkeys, flags, sig, sig_len, body, body_len);
    fuzz_sig_token(nkeys, sig, sig_len);

    free(id);
    free(ts);
    free(sig);
    free(body);

    return 0;
}


static void
fuzz_sig_keys(void)
{
    int     n;
    size_t  k;

    if (fuzz_sig_key[0].data != NULL) {
        return;
    }

    for (k = 0; k < FUZZ_NKEYS; k++) {
        n = fanbase_sig_parse_secret((const unsigned char *)
                                         fuzz_sig_secrets[k],
                                     strlen(fuzz_sig_secrets[k]), 1,
                                     fuzz_sig_key_data[k],
                                     FANBASE_SIG_KEY_MAX);
        fuzz_check(n > 0);

        fuzz_sig_key[k].data = fuzz_sig_key_data[k];
        fuzz_sig_key[k].len = n;
    }
}


static void
fuzz_sig_standard(size_t nkeys, unsigned flags, const uint8_t *id,
    size_t id_len, const uint8_t *ts, size_t ts_len, const uint8_t *sig,
    size_t sig_len, const uint8_t *body, size_t body_len)
{
    int            ok;
    size_t         k, n, len;
    uint8_t       *both;
    unsigned char  mac[FANBASE_SIG_MAC_LEN];
    unsigned char  want[FANBASE_SIG_LEN + 1], good[FANBASE_SIG_LEN + 1];

    ok = fanbase_sig_standard_verify(fuzz_sig_key, nkeys, id, id_len, ts,
                                     ts_len, body, body_len, sig, sig_len);

    fuzz_check(ok == 0 || ok == 1);
    fuzz_check(ok == fanbase_sig_standard_verify(fuzz_sig_key, nkeys, id,
                                                 id_len, ts, ts_len, body,
                                                 body_len, sig, sig_len));
    fuzz_check(!ok || fuzz_sig_signed(nkeys, id, id_len, ts, ts_len, body,
                                      body_len, sig, sig_len, 0));

    /* the early refusal never refuses what would verify */
    fuzz_check(!ok || fanbase_sig_standard_wellformed(sig, sig_len));

    /* a good entry, before or after whatever the sender put there */

    k = (flags >> 4) % nkeys;

    n = fanbase_sig_standard_sign(fuzz_sig_key[k].data, fuzz_sig_key[k].len,
                                  id, id_len, ts, ts_len, body, body_len,
                                  good);
    fuzz_check(n == FANBASE_SIG_LEN);

    fuzz_sig_hmac(k, id, id_len, ts, ts_len, body, body_len, mac);
    memcpy(want, "v1,", 3);
    fuzz_check(EVP_EncodeBlock(want + 3, mac, sizeof(mac))
               == FANBASE_SIG_LEN - 3);
    fuzz_check(memcmp(good, want, FANBASE_SIG_LEN) == 0);

    len = sig_len + 1 + n;
    both = malloc(len);
    fuzz_check(both != NULL);

    if (flags & 8) {
        memcpy(both, good, n);
        both[n] = ' ';
        memcpy(both + n + 1, sig, sig_len);

    } else {
        memcpy(both, sig, sig_len);
        both[sig_len] = ' ';
        memcpy(both + sig_len + 1, good, n);
    }

    fuzz_check(fanbase_sig_standard_verify(fuzz_sig_key, nkeys, id, id_len,
                                           ts, ts_len, body, body_len, both,
                                           len)
               == 1);

    free(both);
}


static void
fuzz_sig_body(size_t nkeys, unsigned flags, const uint8_t *value,
    size_t value_len, const uint8_t *body, size_t body_len)
{
    int            ok, hex;
    size_t         i, k, len;
    unsigned char  mac[FANBASE_SIG_MAC_LEN], good[7 + 64 + 1];

    static const char  digits[] = "0123456789abcdef";

    hex = !(flags & 4);

    ok = fanbase_sig_body_verify(fuzz_sig_key, nkeys, body, body_len, value,
                                 value_len,
                                 hex ? FANBASE_SIG_HEX : FANBASE_SIG_BASE64);

    fuzz_check(ok == 0 || ok == 1);
    fuzz_check(!ok || fuzz_sig_signed(nkeys, NULL, 0, NULL, 0, body,
                                      body_len, value, value_len, hex));
    fuzz_check(!ok || fanbase_sig_body_wellformed(value, value_len,
                                 hex ? FANBASE_SIG_HEX : FANBASE_SIG_BASE64));

    /* the good value, with or without "sha256=" */

    k = (flags >> 4) % nkeys;
    fuzz_sig_hmac(k, NULL, 0, NULL, 0, body, body_len, mac);

    len = 0;

    if (flags & 8) {
        memcpy(good, "sha256=", 7);
        len = 7;
    }

    if (hex) {
        for (i = 0; i < sizeof(mac); i++) {
            good[len++] = digits[mac[i] >> 4];
            good[len++] = digits[mac[i] & 0xf];
        }

    } else {
        len += EVP_EncodeBlock(good + len, mac, sizeof(mac));
    }

    fuzz_check(fanbase_sig_body_verify(fuzz_sig_key, nkeys, body, body_len,
                                       good, len,
                                       hex ? FANBASE_SIG_HEX
                                           : FANBASE_SIG_BASE64)
               == 1);
}


static void
fuzz_sig_token(size_t nkeys, const uint8_t *value, size_t value_len)
{
    int     ok, want;
    size_t  k;

    ok = fanbase_sig_token_verify(fuzz_sig_key, nkeys, value, value_len);

    want = 0;

    for (k = 0; k < nkeys; k++) {
        want |= fuzz_str_eq(value, value_len, fuzz_sig_key[k].data,
                            fuzz_sig_key[k].len);

        fuzz_check(fanbase_sig_token_verify(fuzz_sig_key, nkeys,
                                            fuzz_sig_key[k].data,
                                            fuzz_sig_key[k].len)
                   == 1);
    }

    fuzz_check(ok == want);
}


/* HMAC-SHA256 of "id.ts.body", or of the body alone when id is NULL */

static void
fuzz_sig_hmac(size_t k, const uint8_t *id, size_t id_len, const uint8_t *ts,
    size_t ts_len, const uint8_t *body, size_t body_len, unsigned char *mac)
{
    size_t          len;
    uint8_t        *msg;
    unsigned int    n;

    if (id == NULL) {
        msg = fuzz_copy(body, body_len);
        len = body_len;

    } else {
        len = id_len + 1 + ts_len + 1 + body_len;
        msg = malloc(len);
        fuzz_check(msg != NULL);

        memcpy(msg, id, id_len);
        msg[id_len] = '.';
        memcpy(msg + id_len + 1, ts, ts_len);
        msg[id_len + 1 + ts_len] = '.';
        memcpy(msg + id_len + 1 + ts_len + 1, body, body_len);
    }

    fuzz_check(HMAC(EVP_sha256(), fuzz_sig_key[k].data,
                    (int) fuzz_sig_key[k].len, msg, len, mac, &n)
               != NULL);
    fuzz_check(n == FANBASE_SIG_MAC_LEN);

    free(msg);
}


/*
 * Whether s carries a MAC under one of the first nkeys keys: for Standard
 * Webhooks a space-separated "v1,<base64>" entry, for the body HMAC the
 * whole value, hex or base64, after an optional "sha256=".
 */

static int
fuzz_sig_signed(size_t nkeys, const uint8_t *id, size_t id_len,
    const uint8_t *ts, size_t ts_len, const uint8_t *body, size_t body_len,
    const uint8_t *s, size_t len, int hex)
{
    size_t          k, i, j;
    unsigned char   got[FANBASE_SIG_MAC_LEN], mac[FUZZ_NKEYS][32];

    for (k = 0; k < nkeys; k++) {
        fuzz_sig_hmac(k, id, id_len, ts, ts_len, body, body_len, mac[k]);
    }

    if (id == NULL) {
        if (len > 7 && memcmp(s, "sha256=", 7) == 0) {
            s += 7;
            len -= 7;
        }

        if (!fuzz_sig_decode(s, len, hex, got)) {
            return 0;
        }

        for (k = 0; k < nkeys; k++) {
            if (memcmp(got, mac[k], sizeof(got)) == 0) {
                return 1;
            }
        }

        return 0;
    }

    for (i = 0; i < len; i = j + 1) {
        for (j = i; j < len && s[j] != ' '; j++) { /* void */ }

        if (j - i < 3 || memcmp(s + i, "v1,", 3) != 0
            || !fuzz_sig_decode(s + i + 3, j - i - 3, 0, got))
        {
            continue;
        }

        for (k = 0; k < nkeys; k++) {
            if (memcmp(got, mac[k], sizeof(got)) == 0) {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * A MAC from hex (64 digits) or base64 (its 43 significant characters,
 * whatever else surrounds them): laxer than any decoder should be, so
 * that whatever the code accepts, this finds too.
 */

static int
fuzz_sig_decode(const uint8_t *s, size_t len, int hex, unsigned char *mac)
{
    size_t         i, n;
    uint32_t       bits;
    unsigned       nbits;
    unsigned char  c, v;

    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    if (hex) {
        if (len != 64) {
            return 0;
        }

        for (i = 0; i < len; i++) {
            c = s[i] | 0x20;

            if (s[i] >= '0' && s[i] <= '9') {
                v = s[i] - '0';

            } else if (c >= 'a' && c <= 'f') {
                v = c - 'a' + 10;

            } else {
                return 0;
            }

            mac[i / 2] = (i % 2) ? (mac[i / 2] | v) : (unsigned char) (v << 4);
        }

        return 1;
    }

    bits = 0;
    nbits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        if (s[i] == '\0' || strchr(b64, s[i]) == NULL) {
            continue;
        }

        if (n == FANBASE_SIG_MAC_LEN) {
            return 0;
        }

        bits = (bits << 6) | (uint32_t) (strchr(b64, s[i]) - b64);
        nbits += 6;

        if (nbits >= 8) {
            mac[n++] = (unsigned char) (bits >> (nbits - 8));
            nbits -= 8;
        }
    }

    return n == FANBASE_SIG_MAC_LEN;
}
