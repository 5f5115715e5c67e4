
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

/* an ISO 8601 time as the edge writes it: 2026-01-01T00:00:00.000Z */
#define FANBASE_JSON_TIME_LEN    24

/* what a transaction names as its "trigger_endpoint" */
#define FANBASE_JSON_TRIGGER     "api/v1/integration/queue"


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

    /*
     * set by the zone (item.c): id, created, iMsg, processDate and
     * processMsg are known to need no escaping (fanbase_json_is_plain())
     */
    unsigned              plain:1;

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

/*
 * A Connect queue item (201 of POST, 200 of GET), read by hand;
 * fanbase_json_parse_item_yajl() reads it on yajl's event parser, the
 * oracle of the other in t/fuzz/item_fuzz.c: the same answer, the same
 * fields.
 */
int fanbase_json_parse_item(const unsigned char *p, size_t len,
    fanbase_item_t *item);
int fanbase_json_parse_item_yajl(const unsigned char *p, size_t len,
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


/*
 * The documents the edge writes on its hot paths, rendered by hand: the
 * literal parts copied, the strings from outside (Fanbase's, a sender's, a
 * client's, the configuration's) through fanbase_json_escape().  The
 * edge's own (error codes, event kinds, status names, times, and ids, all
 * of [A-Za-z0-9_-]) are copied as they are.  Each fanbase_json_render_*()
 * writes at p and returns the end; the matching fanbase_json_*_size() is
 * the most it can write.  docs/decisions.md ("JSON output: by hand or
 * yajl_gen") says why these are not yajl_gen's, with the numbers of
 * bench/json_render.c.
 */

/* {"error":{"status":N,"code":"...","message":"..."}} */
size_t fanbase_json_error_size(const char *code, const char *message);
unsigned char *fanbase_json_render_error(unsigned char *p, unsigned status,
    const char *code, const char *message);

/*
 * Fanbase's queue item, with the fields, types and nulls of its GET
 * answer; "msg" (raw JSON) is null unless show_msg.
 */
size_t fanbase_json_item_size(const fanbase_item_t *item, int show_msg);
unsigned char *fanbase_json_render_item(unsigned char *p,
    const fanbase_item_t *item, int show_msg);

/*
 * The 202 of an async submission:
 * {"transaction_id":"...","links":[{"path":"..."}]}
 */
size_t fanbase_json_accepted_size(const fanbase_str_t *id,
    const fanbase_str_t *path);
unsigned char *fanbase_json_render_accepted(unsigned char *p,
    const fanbase_str_t *id, const fanbase_str_t *path);

/*
 * The same bytes for a path fanbase_json_is_plain() accepts, copied without
 * a look at each character; its size is fanbase_json_accepted_plain_size()
 */
size_t fanbase_json_accepted_plain_size(const fanbase_str_t *id,
    const fanbase_str_t *path);
unsigned char *fanbase_json_render_accepted_plain(unsigned char *p,
    const fanbase_str_t *id, const fanbase_str_t *path);

/* 1: fanbase_json_escape() would copy these bytes as they are */
int fanbase_json_is_plain(const unsigned char *p, size_t len);


/*
 * A transaction's event: {"event":..,"message":..,"data":{..},"status":..,
 * "created_at":..}; data is a JSON object as it is, or empty for {}.
 */

typedef struct {
    const char           *kind;
    fanbase_str_t         message;
    fanbase_str_t         data;
    int                   status;
    fanbase_str_t         created_at;
} fanbase_event_t;

size_t fanbase_json_event_size(const fanbase_event_t *ev);
unsigned char *fanbase_json_render_event(unsigned char *p,
    const fanbase_event_t *ev);


/*
 * A transaction, up to its events: {"created_at":..,"updated_at":..,
 * "id":..,"code":..,"operation":"create","trigger_endpoint":..,"status":..,
 * "events":[ ; the events (JSON, joined by ',') and "]}" follow.  Its size
 * reads the lengths alone, and counts the longest status name.
 */

typedef struct {
    fanbase_str_t         id;
    fanbase_str_t         created_at;
    fanbase_str_t         updated_at;
    int                   status;
} fanbase_txn_head_t;

size_t fanbase_json_txn_head_size(const fanbase_txn_head_t *head);
unsigned char *fanbase_json_render_txn_head(unsigned char *p,
    const fanbase_txn_head_t *head);


#endif /* _NGX_HTTP_FANBASE_JSON_H_INCLUDED_ */
