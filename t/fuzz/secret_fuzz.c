
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_sig_parse_secret(): a line of a secret file
 * (fanbase_webhook_secret_file, fanbase_notify_secret_file).
 *
 * The input: a flags byte (bit 0: raw secrets allowed), a byte for the
 * size of the key buffer (1 to 256, allocated to exactly that size, so
 * that ASan sees a write beyond it), then the line.
 *
 * Checks: a key is never empty and never larger than the buffer; a
 * "whsec_" line is its base64 decoded (compared with a lax decoder of our
 * own), any other line is itself when raw secrets are allowed and refused
 * otherwise; the same line gives the same key twice.
 */


#include "ngx_http_fanbase_signature.h"
#include "fuzz.h"


static size_t fuzz_secret_base64(const uint8_t *s, size_t len,
    unsigned char *out);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             n, n2, raw;
    size_t          len, ksize, want_len;
    uint8_t        *line;
    unsigned char  *key, *key2, *want;

    if (size < 2) {
        return 0;
    }

    raw = data[0] & 1;
    ksize = (size_t) data[1] + 1;
    len = size - 2;
    line = fuzz_copy(data + 2, len);

    key = malloc(ksize);
    key2 = malloc(ksize);
    fuzz_check(key != NULL && key2 != NULL);

    n = fanbase_sig_parse_secret(line, len, raw, key, ksize);

    fuzz_check(n == -1 || (n > 0 && (size_t) n <= ksize));

    if (len > 6 && memcmp(line, "whsec_", 6) == 0) {

        if (n > 0) {
            want = malloc(len);
            fuzz_check(want != NULL);

            want_len = fuzz_secret_base64(line + 6, len - 6, want);

            fuzz_check(want_len == (size_t) n);
            fuzz_check(memcmp(want, key, n) == 0);

            free(want);
        }

    } else if (raw && len > 0 && len <= ksize) {
        fuzz_check(n == (int) len && memcmp(key, line, len) == 0);

    } else {
        fuzz_check(n == -1);
    }

    n2 = fanbase_sig_parse_secret(line, len, raw, key2, ksize);

    fuzz_check(n2 == n);
    fuzz_check(n <= 0 || memcmp(key, key2, n) == 0);

    free(key);
    free(key2);
    free(line);

    return 0;
}


/* the bytes of the base64 alphabet's characters, whatever surrounds them */

static size_t
fuzz_secret_base64(const uint8_t *s, size_t len, unsigned char *out)
{
    size_t       i, n;
    uint32_t     bits;
    unsigned     nbits;
    const char  *c;

    static const char  b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    bits = 0;
    nbits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        c = (s[i] == '\0') ? NULL : strchr(b64, s[i]);

        if (c == NULL) {
            continue;
        }

        bits = (bits << 6) | (uint32_t) (c - b64);
        nbits += 6;

        if (nbits >= 8) {
            out[n++] = (unsigned char) (bits >> (nbits - 8));
            nbits -= 8;
        }
    }

    return n;
}
