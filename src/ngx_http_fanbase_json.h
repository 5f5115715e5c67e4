
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * JSON shapes of the Fanbase wire contracts, in plain C on top of yajl:
 * no nginx structures here, so that unit tests and fuzzers can call them.
 */


#ifndef _NGX_HTTP_FANBASE_JSON_H_INCLUDED_
#define _NGX_HTTP_FANBASE_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define FANBASE_JSON_OK          0
#define FANBASE_JSON_INVALID    -1      /* not JSON at all */
#define FANBASE_JSON_SHAPE      -2      /* JSON, but not the expected shape */

/*
 * The deepest nesting of arrays and objects any parse accepts: the JSON of
 * Fanbase and of a site is a few levels deep, and .NET's JSON readers stop
 * at 64 as well.
 */
#define FANBASE_JSON_DEPTH_MAX  64

/* the most bytes fanbase_json_escape() writes for one byte it reads */
#define FANBASE_JSON_ESCAPE_MAX  6


/* processStatus of a queue item */

#define FANBASE_STATUS_UNKNOWN      0
#define FANBASE_STATUS_PENDING      1
#define FANBASE_STATUS_PROCESSING   2
#define FANBASE_STATUS_COMPLETED    3
#define FANBASE_STATUS_FAILED       4
#define FANBASE_STATUS_CANCELLED    5      /* the edge's transactions only */

#define fanbase_status_terminal(s)                                           \
    ((s) >= FANBASE_STATUS_COMPLETED)

/*
 * The state machine of a transaction: pending < processing < {completed,
 * failed, cancelled}.  A status only moves forward, and a terminal one
 * never changes.
 */
#define fanbase_status_rank(s)                                               \
    ((s) >= FANBASE_STATUS_COMPLETED ? FANBASE_STATUS_COMPLETED : (s))
#define fanbase_status_advances(from, to)                                    \
    (!fanbase_status_terminal(from)                                          \
     && fanbase_status_rank(to) > fanbase_status_rank(from))


typedef struct {
    const unsigned char  *data;
    size_t                len;
} fanbase_str_t;


/* a string field that may be absent or null: data == NULL */

typedef struct {
    fanbase_str_t         id;
    fanbase_str_t         created;
    fanbase_str_t         imsg;
    fanbase_str_t         process_date;
    fanbase_str_t         process_msg;
    fanbase_str_t         msg;              /* raw JSON text of "msg" */
    int64_t               icode;
    unsigned              icode_set:1;
    unsigned              status:3;         /* FANBASE_STATUS_* */

    /* decoded strings live here; freed by fanbase_json_item_free() */
    unsigned char        *pool;
    size_t                pool_len;
    size_t                pool_size;
} fanbase_item_t;


typedef struct {
    fanbase_str_t         access_token;
    int64_t               expires_in;
    unsigned char        *pool;
    size_t                pool_len;
    size_t                pool_size;
} fanbase_token_t;


/*
 * A submission is a JSON object with a string "action" and an object
 * "data"; anything else is refused.  Returns FANBASE_JSON_* and, on
 * failure, a static message for the client.
 */
int fanbase_json_check_submission(const unsigned char *p, size_t len,
    const char **err);

/* a Connect queue item (201 of POST, 200 of GET) */
int fanbase_json_parse_item(const unsigned char *p, size_t len,
    fanbase_item_t *item);
void fanbase_json_item_free(fanbase_item_t *item);

/* a Security token answer */
int fanbase_json_parse_token(const unsigned char *p, size_t len,
    fanbase_token_t *token);
void fanbase_json_token_free(fanbase_token_t *token);

/*
 * A status update, as a webhook brings it: Fanbase's queue item (id,
 * processStatus, processDate, processMsg, iCode, iMsg) or a transaction
 * (id, status, events: the last event's message and data.error_message).
 * FANBASE_JSON_SHAPE without an id or a known status.
 */

typedef struct {
    fanbase_str_t         id;
    fanbase_str_t         process_date;
    fanbase_str_t         process_msg;
    fanbase_str_t         imsg;
    fanbase_str_t         message;
    fanbase_str_t         error_message;
    int64_t               icode;
    unsigned              icode_set:1;
    unsigned              status:3;
    unsigned              queue_item:1;     /* Fanbase's shape */

    void                 *tree;             /* the strings live here */
} fanbase_update_t;

int fanbase_json_parse_update(const unsigned char *p, size_t len,
    fanbase_update_t *u);
void fanbase_json_update_free(fanbase_update_t *u);

/*
 * A yajl tree of a document no deeper than FANBASE_JSON_DEPTH_MAX, or NULL
 * (*too_deep set when that was why).  yajl builds and frees its trees
 * recursively: the depth is checked before.  Free it with yajl_tree_free().
 */
void *fanbase_json_tree(const unsigned char *p, size_t len, int *too_deep);


/*
 * UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF).  fanbase_utf8_valid() is 1 when all of p is; fanbase_utf8_cut()
 * is the length of the longest prefix of at most "max" bytes that ends on a
 * character boundary (an invalid byte counts as a character of its own).
 */
int fanbase_utf8_valid(const unsigned char *p, size_t len);
size_t fanbase_utf8_cut(const unsigned char *p, size_t len, size_t max);

/*
 * Text that came in as JSON: yajl checks only the shape of UTF-8
 * sequences, so each byte of what RFC 3629 forbids becomes '?' in place.
 */
void fanbase_utf8_repair(unsigned char *p, size_t len);

/*
 * The contents of a JSON string for any bytes: '"', '\\' and control
 * characters escaped, every byte of an invalid UTF-8 sequence replaced by
 * U+FFFD.  Writes at most FANBASE_JSON_ESCAPE_MAX * len bytes; returns the
 * end.  fanbase_json_escape_cut() is the length of the longest prefix of p,
 * cut on a character boundary, whose escaped form takes at most "max" bytes.
 */
unsigned char *fanbase_json_escape(unsigned char *dst, const unsigned char *p,
    size_t len);
size_t fanbase_json_escape_cut(const unsigned char *p, size_t len,
    size_t max);

int fanbase_json_status_code(const unsigned char *p, size_t len);
const char *fanbase_json_status_name(int status);


#endif /* _NGX_HTTP_FANBASE_JSON_H_INCLUDED_ */
