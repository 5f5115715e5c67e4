
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Webhook signatures in plain C on OpenSSL's libcrypto: Standard Webhooks
 * (HMAC-SHA256 of "id.timestamp.body", base64, "v1," entries), an HMAC of
 * the body alone (hex or base64), and a shared token.  Every comparison is
 * constant-time.  No nginx structures: unit tests and fuzzers call these.
 */


#ifndef _NGX_HTTP_FANBASE_SIGNATURE_H_INCLUDED_
#define _NGX_HTTP_FANBASE_SIGNATURE_H_INCLUDED_


#include <stddef.h>


#define FANBASE_SIG_KEY_MAX      256
#define FANBASE_SIG_MAC_LEN      32
/* "v1," and the base64 of a MAC */
#define FANBASE_SIG_LEN          (3 + 44)

#define FANBASE_SIG_HEX          0
#define FANBASE_SIG_BASE64       1


typedef struct {
    const unsigned char  *data;
    size_t                len;
} fanbase_secret_t;


/*
 * A secret file's line: "whsec_<base64>" is the Standard Webhooks format
 * (the key is the decoded bytes); with "raw" set, any other line is the
 * key as it is.  Returns the key's length, or -1.
 */
int fanbase_sig_parse_secret(const unsigned char *s, size_t len, int raw,
    unsigned char *key, size_t size);

/*
 * Standard Webhooks: writes "v1,<base64>" (FANBASE_SIG_LEN bytes) for the
 * message id, timestamp and body.
 */
size_t fanbase_sig_standard_sign(const unsigned char *key, size_t klen,
    const unsigned char *id, size_t id_len, const unsigned char *ts,
    size_t ts_len, const unsigned char *body, size_t body_len,
    unsigned char *out);

/*
 * 1 when one of the space-separated "v1,<base64>" entries of "sig" is the
 * signature of id.ts.body with one of the keys; 0 otherwise.
 */
int fanbase_sig_standard_verify(const fanbase_secret_t *keys, size_t nkeys,
    const unsigned char *id, size_t id_len, const unsigned char *ts,
    size_t ts_len, const unsigned char *body, size_t body_len,
    const unsigned char *sig, size_t sig_len);

/*
 * 1 when "sig" has a "v1,<base64>" entry of a MAC's length: anything else
 * can be refused without reading the body or computing an HMAC.
 */
int fanbase_sig_standard_wellformed(const unsigned char *sig,
    size_t sig_len);

/*
 * 1 when "value" (hex or base64, an optional "sha256=" prefix) is the
 * HMAC-SHA256 of the body with one of the keys.
 */
int fanbase_sig_body_verify(const fanbase_secret_t *keys, size_t nkeys,
    const unsigned char *body, size_t body_len, const unsigned char *value,
    size_t value_len, int encoding);

/* 1 when "value" decodes as fanbase_sig_body_verify() wants */
int fanbase_sig_body_wellformed(const unsigned char *value, size_t value_len,
    int encoding);

/* 1 when "value" is one of the keys */
int fanbase_sig_token_verify(const fanbase_secret_t *keys, size_t nkeys,
    const unsigned char *value, size_t value_len);

/* SHA-256 of data, as 64 lower-case hex digits: 0, or -1 */
int fanbase_sig_sha256_hex(const unsigned char *data, size_t len,
    unsigned char *out);


#endif /* _NGX_HTTP_FANBASE_SIGNATURE_H_INCLUDED_ */
