
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * Ids: what a Fanbase queue id, an edge transaction id and a request id
 * may look like, and the hash of an id in the scope of a credential set,
 * by which every table of the zone finds its records.
 */


#include <sys/random.h>

#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"


/* the two digits of byte j of src, at dst + i (ngx_http_fanbase_id_hex16()) */
#define ngx_http_fanbase_id_hex2(dst, i, src, j)                              \
    ngx_memcpy((dst) + (i), &ngx_http_fanbase_id_hex_pairs[(src)[j] * 2], 2)


static ngx_inline uint32_t ngx_http_fanbase_id_crc4(uint32_t crc, u_char *p);
static ngx_inline uint32_t ngx_http_fanbase_id_crc8(uint32_t crc, u_char *p);
static void ngx_http_fanbase_id_crc_init(void);


/* ngx_http_fanbase_id_hash(): CRC-32 8 bytes a step */

static uint32_t    ngx_http_fanbase_id_crc[8][256];
static ngx_uint_t  ngx_http_fanbase_id_crc_ready;


/* Fanbase's queue ids: 1 to 64 of [0-9A-Za-z_-] */

/*
 * what a queue id is made of: letters, digits, '-', '_' (bit 1); and the
 * hexadecimal digits of a transaction id (bit 2)
 */

#define NGX_HTTP_FANBASE_ID_CHAR  1
#define NGX_HTTP_FANBASE_ID_HEX   2

static const u_char  ngx_http_fanbase_id_chars[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,        /* 0x10 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0,        /* 0x20 '-' */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0,        /* 0x30 */
    0, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,        /* 0x50 '_' */
    0, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1,        /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0         /* 0x70 */
};


/* two hexadecimal digits a byte */

static const u_char  ngx_http_fanbase_id_hex_pairs[] =
    "000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f"
    "303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f"
    "505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f"
    "707172737475767778797a7b7c7d7e7f"
    "808182838485868788898a8b8c8d8e8f"
    "909192939495969798999a9b9c9d9e9f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
    "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
    "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
    "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";


ngx_int_t
ngx_http_fanbase_id_valid(ngx_str_t *id)
{
    u_char  c, *p, *last;

    if (id->len == 0 || id->len > NGX_HTTP_FANBASE_ID_MAX) {
        return NGX_DECLINED;
    }

    /*
     * a lookup a character, four at a time: a queue id is checked twice on
     * every submission
     */

    p = id->data;
    last = p + id->len;

    for ( /* void */ ; last - p >= 4; p += 4) {
        if (!(ngx_http_fanbase_id_chars[p[0]] & ngx_http_fanbase_id_chars[p[1]]
              & ngx_http_fanbase_id_chars[p[2]]
              & ngx_http_fanbase_id_chars[p[3]]))
        {
            return NGX_DECLINED;
        }
    }

    for ( /* void */ ; p < last; p++) {
        c = *p;

        if (!ngx_http_fanbase_id_chars[c]) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* the edge's transaction ids: a UUID, 8-4-4-4-12 hexadecimal digits */

ngx_int_t
ngx_http_fanbase_id_valid_txn(ngx_str_t *id)
{
    u_char      *p, hex;
    ngx_uint_t   i;

    if (id->len != NGX_HTTP_FANBASE_TXN_ID_LEN) {
        return NGX_DECLINED;
    }

    p = id->data;

    if (p[8] != '-' || p[13] != '-' || p[18] != '-' || p[23] != '-') {
        return NGX_DECLINED;
    }

    /*
     * every other character a hexadecimal digit, by the table: a '-'
     * among them fails too (a check a character cost 446 instructions of
     * a GET of a transaction)
     */

    hex = NGX_HTTP_FANBASE_ID_HEX;

    for (i = 0; i < 8; i++) {
        hex &= ngx_http_fanbase_id_chars[p[i]];
    }

    for (i = 9; i < 13; i++) {
        hex &= ngx_http_fanbase_id_chars[p[i]]
               & ngx_http_fanbase_id_chars[p[i + 5]]
               & ngx_http_fanbase_id_chars[p[i + 10]];
    }

    for (i = 24; i < 36; i++) {
        hex &= ngx_http_fanbase_id_chars[p[i]];
    }

    return hex ? NGX_OK : NGX_DECLINED;
}


/*
 * Request ids (X-Request-ID): 1 to 64 visible ASCII characters but the
 * double quote and the backslash.  Nothing that could end or split a
 * header (CR, LF, NUL, other controls), nor a quoted field of a log line
 * ('request_id: "..."'), nor a JSON string, nor bytes a log reader could
 * take for another encoding.
 */

ngx_int_t
ngx_http_fanbase_id_valid_request(ngx_str_t *id)
{
    u_char  c, *p, *last;

    if (id->len == 0 || id->len > NGX_HTTP_FANBASE_REQUEST_ID_MAX) {
        return NGX_DECLINED;
    }

    for (p = id->data, last = p + id->len; p < last; p++) {
        c = *p;

        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\') {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * The hash of an id in a scope: every table of the zone is keyed by it,
 * so one hash per operation finds a record of that scope only.  It is
 * nginx's CRC-32 of the scope's 8 bytes and the id, computed 8 bytes a
 * step ("slicing by 8", with tables derived from ngx_crc32_table256 at the
 * first call): the values of ngx_crc32_update(), which reads a byte a step
 * and took 360 instructions for a transaction's id (4 bytes a step: 210).
 */

uint32_t
ngx_http_fanbase_id_hash(uint64_t scope, u_char *id, size_t len)
{
    uint32_t  crc;

    if (!ngx_http_fanbase_id_crc_ready) {
        ngx_http_fanbase_id_crc_init();
    }

    ngx_crc32_init(crc);

    crc = ngx_http_fanbase_id_crc8(crc, (u_char *) &scope);

    while (len >= 8) {
        crc = ngx_http_fanbase_id_crc8(crc, id);
        id += 8;
        len -= 8;
    }

    while (len >= 4) {
        crc = ngx_http_fanbase_id_crc4(crc, id);
        id += 4;
        len -= 4;
    }

    while (len--) {
        crc = ngx_crc32_table256[(crc ^ *id++) & 0xff] ^ (crc >> 8);
    }

    ngx_crc32_final(crc);

    return crc;
}


/* the CRC of 4 more bytes */

static ngx_inline uint32_t
ngx_http_fanbase_id_crc4(uint32_t crc, u_char *p)
{
    crc ^= (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;

    return ngx_http_fanbase_id_crc[3][crc & 0xff]
           ^ ngx_http_fanbase_id_crc[2][(crc >> 8) & 0xff]
           ^ ngx_http_fanbase_id_crc[1][(crc >> 16) & 0xff]
           ^ ngx_http_fanbase_id_crc[0][crc >> 24];
}


/* the CRC of 8 more bytes */

static ngx_inline uint32_t
ngx_http_fanbase_id_crc8(uint32_t crc, u_char *p)
{
    uint32_t  hi;

    crc ^= (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
    hi = (uint32_t) p[4] | (uint32_t) p[5] << 8 | (uint32_t) p[6] << 16
         | (uint32_t) p[7] << 24;

    return ngx_http_fanbase_id_crc[7][crc & 0xff]
           ^ ngx_http_fanbase_id_crc[6][(crc >> 8) & 0xff]
           ^ ngx_http_fanbase_id_crc[5][(crc >> 16) & 0xff]
           ^ ngx_http_fanbase_id_crc[4][crc >> 24]
           ^ ngx_http_fanbase_id_crc[3][hi & 0xff]
           ^ ngx_http_fanbase_id_crc[2][(hi >> 8) & 0xff]
           ^ ngx_http_fanbase_id_crc[1][(hi >> 16) & 0xff]
           ^ ngx_http_fanbase_id_crc[0][hi >> 24];
}


/*
 * Table k: the CRC of a byte followed by k zero bytes, from table k - 1
 * one byte further; table 0 is ngx_crc32_table256
 */

static void
ngx_http_fanbase_id_crc_init(void)
{
    ngx_uint_t  i, k;
    uint32_t    c;

    for (i = 0; i < 256; i++) {
        ngx_http_fanbase_id_crc[0][i] = ngx_crc32_table256[i];
    }

    for (k = 1; k < 8; k++) {
        for (i = 0; i < 256; i++) {
            c = ngx_http_fanbase_id_crc[k - 1][i];
            ngx_http_fanbase_id_crc[k][i] = (c >> 8)
                                            ^ ngx_crc32_table256[c & 0xff];
        }
    }

    ngx_http_fanbase_id_crc_ready = 1;
}


/*
 * 16 random bytes into b, from the kernel's generator: a system call fills
 * a worker's supply for 64 of them at a time (transaction and request
 * ids: a system call or OpenSSL's RAND_bytes() for each costs more than
 * the rest of an accept's id work together).
 */

ngx_int_t
ngx_http_fanbase_id_random(u_char *b)
{
    u_char  *p;

    static u_char      supply[64 * 16];
    static ngx_uint_t  left;

    if (left == 0) {
        if (getrandom(supply, sizeof(supply), GRND_NONBLOCK)
            != (ssize_t) sizeof(supply))
        {
            return NGX_ERROR;
        }

        left = sizeof(supply) / 16;
    }

    p = &supply[--left * 16];
    ngx_memcpy(b, p, 16);

    /* never handed out twice */
    ngx_memzero(p, 16);

    return NGX_OK;
}


/*
 * Bytes as lower-case hexadecimal, as ngx_hex_dump() writes them, the two
 * digits of a byte at once and every byte written out, no loop: the ids
 * of every acceptance (a transaction's UUID, a request id) took 460
 * instructions through ngx_hex_dump(), 340 through a loop of such copies.
 */

/* 16 bytes, 32 digits (a request id) */

u_char *
ngx_http_fanbase_id_hex16(u_char *dst, u_char *src)
{
    ngx_http_fanbase_id_hex2(dst, 0, src, 0);
    ngx_http_fanbase_id_hex2(dst, 2, src, 1);
    ngx_http_fanbase_id_hex2(dst, 4, src, 2);
    ngx_http_fanbase_id_hex2(dst, 6, src, 3);
    ngx_http_fanbase_id_hex2(dst, 8, src, 4);
    ngx_http_fanbase_id_hex2(dst, 10, src, 5);
    ngx_http_fanbase_id_hex2(dst, 12, src, 6);
    ngx_http_fanbase_id_hex2(dst, 14, src, 7);
    ngx_http_fanbase_id_hex2(dst, 16, src, 8);
    ngx_http_fanbase_id_hex2(dst, 18, src, 9);
    ngx_http_fanbase_id_hex2(dst, 20, src, 10);
    ngx_http_fanbase_id_hex2(dst, 22, src, 11);
    ngx_http_fanbase_id_hex2(dst, 24, src, 12);
    ngx_http_fanbase_id_hex2(dst, 26, src, 13);
    ngx_http_fanbase_id_hex2(dst, 28, src, 14);
    ngx_http_fanbase_id_hex2(dst, 30, src, 15);

    return dst + 32;
}


/* 16 bytes as a UUID's 8-4-4-4-12 digits, NGX_HTTP_FANBASE_TXN_ID_LEN */

u_char *
ngx_http_fanbase_id_uuid(u_char *dst, u_char *src)
{
    ngx_http_fanbase_id_hex2(dst, 0, src, 0);
    ngx_http_fanbase_id_hex2(dst, 2, src, 1);
    ngx_http_fanbase_id_hex2(dst, 4, src, 2);
    ngx_http_fanbase_id_hex2(dst, 6, src, 3);
    dst[8] = '-';
    ngx_http_fanbase_id_hex2(dst, 9, src, 4);
    ngx_http_fanbase_id_hex2(dst, 11, src, 5);
    dst[13] = '-';
    ngx_http_fanbase_id_hex2(dst, 14, src, 6);
    ngx_http_fanbase_id_hex2(dst, 16, src, 7);
    dst[18] = '-';
    ngx_http_fanbase_id_hex2(dst, 19, src, 8);
    ngx_http_fanbase_id_hex2(dst, 21, src, 9);
    dst[23] = '-';
    ngx_http_fanbase_id_hex2(dst, 24, src, 10);
    ngx_http_fanbase_id_hex2(dst, 26, src, 11);
    ngx_http_fanbase_id_hex2(dst, 28, src, 12);
    ngx_http_fanbase_id_hex2(dst, 30, src, 13);
    ngx_http_fanbase_id_hex2(dst, 32, src, 14);
    ngx_http_fanbase_id_hex2(dst, 34, src, 15);

    return dst + 36;
}
