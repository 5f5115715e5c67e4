/*
 * bench/json_render.c: the JSON documents the module renders on its hot
 * paths, rendered many times by its own hand-written functions
 * (src/ngx_http_fanbase_json.c, linked in) and by yajl_gen, with the same
 * input.  Built and run by bench/run.pl ("make bench"): the row "JSON
 * rendering: hand / yajl_gen" of docs/performance.md, and the numbers of
 * docs/decisions.md ("JSON output: by hand or yajl_gen").
 *
 * The documents, with the values of bench/run.pl's rows:
 *
 *   error        {"error":{...}}: every refusal (503 token_unavailable)
 *   item         a queue item as GET answers it from the zone (the row
 *                "status, terminal transaction"; "msg" null, the default)
 *   accepted     the 202 of an async submission (the row "async accept")
 *   event        an event as a transaction keeps it (every status change)
 *   transaction  GET of a transaction: its head and three kept events
 *   strings      informative, not a document the module writes: the six
 *                strings of the item in an array, that is the escaper
 *                (fanbase_json_escape) against yajl_gen's string encoder
 *                ("json_render-info: " for bench/run.pl, which leaves it)
 *
 * Each side does what the module would do per document: the hand side
 * computes the size and renders into a buffer (the module's buffer is a
 * bump in the request's pool); yajl_gen makes the document and its buffer
 * is copied out, either with a generator allocated and freed for each
 * document ("new") or with one kept and reset ("reused", the cheapest way
 * to use it).  Kept events and the data of an event are JSON already: the
 * module stores them so; yajl_gen puts such text in with yajl_gen_number(),
 * which writes its bytes as they are (yajl 2 has no other way).
 *
 * Before timing, the outputs of all three are compared: byte-identical, or
 * else semantically equal (the same tree by yajl's tree parser), or the
 * program fails.  Then rounds of each side in turn, the order rotated
 * every round; the time of a round is the CPU time of the thread
 * (CLOCK_THREAD_CPUTIME_ID: what other processes take of the CPUs does not
 * count) over a loop of renders calibrated to about 20 ms of it.  Printed,
 * per document: its bytes, how the outputs compare, the median over the
 * rounds of ns per render for each side, the ratio of yajl_gen's faster
 * side to hand (above 1: faster by hand) and its lowest and highest in a
 * single round; and one line a document starting "json_render: " for
 * bench/run.pl.
 *
 * Usage: json_render [-r rounds] [-t ms per round]   (defaults 9, 20)
 */

#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_json.h"


#define BUF_SIZE     8192
#define ROUNDS_MAX   99
#define NSIDES       3

#define S(s)         { (const unsigned char *) (s), sizeof(s) - 1 }

#define ID           "0f8fad5b-d9cb-469f-a165-70867728950e"
#define QUEUE_ID     "7c9e6679-7425-40de-944b-e07fc1f90ae7"


typedef size_t (*render_pt)(unsigned char *buf);
typedef yajl_gen_status (*gen_pt)(yajl_gen g);

typedef struct {
    const char           *name;
    render_pt             hand;
    gen_pt                gen;
    int                   informative;
} doc_t;


static size_t hand_error(unsigned char *buf);
static size_t hand_item(unsigned char *buf);
static size_t hand_accepted(unsigned char *buf);
static size_t hand_event(unsigned char *buf);
static size_t hand_transaction(unsigned char *buf);
static size_t hand_strings(unsigned char *buf);
static yajl_gen_status gen_error(yajl_gen g);
static yajl_gen_status gen_item(yajl_gen g);
static yajl_gen_status gen_accepted(yajl_gen g);
static yajl_gen_status gen_event(yajl_gen g);
static yajl_gen_status gen_transaction(yajl_gen g);
static yajl_gen_status gen_strings(yajl_gen g);
static yajl_gen_status gen_key(yajl_gen g, const char *key);
static yajl_gen_status gen_field(yajl_gen g, const char *key,
    const fanbase_str_t *s);
static yajl_gen_status gen_cfield(yajl_gen g, const char *key,
    const char *s);
static yajl_gen_status gen_str(yajl_gen g, const fanbase_str_t *s);
static yajl_gen_status gen_raw(yajl_gen g, const fanbase_str_t *s);
static size_t yajl_new(unsigned char *buf);
static size_t yajl_reused(unsigned char *buf);
static size_t yajl_out(yajl_gen g, yajl_gen_status rc, unsigned char *buf);
static void setup(void);
static const char *compare(const unsigned char *a, size_t alen,
    const unsigned char *b, size_t blen);
static int same_tree(yajl_val a, yajl_val b);
static double measure(render_pt fn, double ms);
static double median(double *v, int n);
static double now_ns(void);


/* the document the yajl_gen sides render now */
static gen_pt               doc_gen;
static yajl_gen             reused;
static volatile size_t      sink;

static const char          *err_code = "token_unavailable";
static const char          *err_message = "no Fanbase token can be had now";

static fanbase_item_t       item;
static fanbase_str_t        status_name = S("completed");
static fanbase_str_t        txn_id = S(ID);
static fanbase_str_t        txn_path = S("/transactions/" ID);
static fanbase_event_t      event;
static fanbase_txn_head_t   head;

/* a transaction's kept events: accepted, delivered, completed */
static fanbase_event_t      kept[3];
static fanbase_str_t        kept_json[3];
static unsigned char        kept_buf[3][512];


static const doc_t  docs[] = {
    { "error", hand_error, gen_error, 0 },
    { "item", hand_item, gen_item, 0 },
    { "accepted", hand_accepted, gen_accepted, 0 },
    { "event", hand_event, gen_event, 0 },
    { "transaction", hand_transaction, gen_transaction, 0 },
    { "strings", hand_strings, gen_strings, 1 },
    { NULL, NULL, NULL, 0 }
};


int
main(int argc, char **argv)
{
    int             c, rounds, r, s, k, failed;
    char            lines[1024];
    size_t          n, len[NSIDES];
    double          ms, t[NSIDES][ROUNDS_MAX], med[NSIDES], best, lo, hi, x;
    render_pt       side[NSIDES];
    const char     *how;
    const doc_t    *d;
    unsigned char  *out[NSIDES];

    rounds = 9;
    ms = 20;

    while ((c = getopt(argc, argv, "r:t:")) != -1) {
        switch (c) {
        case 'r':
            rounds = atoi(optarg);
            break;
        case 't':
            ms = atof(optarg);
            break;
        default:
            fprintf(stderr, "usage: json_render [-r rounds] [-t ms]\n");
            return 2;
        }
    }

    if (rounds < 1 || rounds > ROUNDS_MAX || ms <= 0) {
        fprintf(stderr, "json_render: 1 to %d rounds of more than 0 ms\n",
                ROUNDS_MAX);
        return 2;
    }

    setup();

    reused = yajl_gen_alloc(NULL);
    if (reused == NULL) {
        fprintf(stderr, "json_render: yajl_gen_alloc() failed\n");
        return 1;
    }

    for (s = 0; s < NSIDES; s++) {
        out[s] = malloc(BUF_SIZE);
        if (out[s] == NULL) {
            fprintf(stderr, "json_render: out of memory\n");
            return 1;
        }
    }

    printf("%-12s %6s  %-19s %9s %14s %17s %7s %10s\n", "document",
           "bytes", "outputs", "hand ns", "yajl_gen new", "yajl_gen reused",
           "ratio", "(rounds)");

    failed = 0;
    n = 0;
    lines[0] = '\0';

    for (d = docs; d->name != NULL; d++) {
        doc_gen = d->gen;
        side[0] = d->hand;
        side[1] = yajl_new;
        side[2] = yajl_reused;

        for (s = 0; s < NSIDES; s++) {
            len[s] = side[s](out[s]);
        }

        how = compare(out[0], len[0], out[1], len[1]);

        if (strcmp(how, "DIFFERENT") != 0
            && strcmp(compare(out[0], len[0], out[2], len[2]), how) != 0)
        {
            how = "DIFFERENT";
        }

        if (strcmp(how, "DIFFERENT") == 0) {
            failed = 1;
            printf("%-12s: the outputs differ\n  hand:     %.*s\n"
                   "  yajl_gen: %.*s\n", d->name, (int) len[0], out[0],
                   (int) len[1], out[1]);
            continue;
        }

        for (r = 0; r < rounds; r++) {
            for (k = 0; k < NSIDES; k++) {
                s = (r + k) % NSIDES;
                t[s][r] = measure(side[s], ms);
            }
        }

        /* the spread: each round's faster yajl_gen over its hand */

        lo = 1e300;
        hi = 0;

        for (r = 0; r < rounds; r++) {
            x = ((t[1][r] < t[2][r]) ? t[1][r] : t[2][r]) / t[0][r];
            lo = (x < lo) ? x : lo;
            hi = (x > hi) ? x : hi;
        }

        for (s = 0; s < NSIDES; s++) {
            med[s] = median(t[s], rounds);
        }

        best = (med[1] < med[2]) ? med[1] : med[2];

        printf("%-12s %6zu  %-19s %9.1f %14.1f %17.1f %7.2f %5.2f-%.2f\n",
               d->name, len[0], how, med[0], med[1], med[2], best / med[0],
               lo, hi);

        n += snprintf(lines + n, sizeof(lines) - n,
                      "json_render%s: %s %zu %s %.1f %.1f %.1f %.2f %.2f "
                      "%.2f\n", d->informative ? "-info" : "", d->name,
                      len[0], how, med[0], med[1], med[2], best / med[0],
                      lo, hi);
    }

    fputs(lines, stdout);

    printf("json_render: %s, ratio = the faster yajl_gen side / hand, median"
           " of %d rounds of %.0f ms\n", failed ? "FAILED" : "done", rounds,
           ms);

    yajl_gen_free(reused);

    for (s = 0; s < NSIDES; s++) {
        free(out[s]);
    }

    return failed;
}


/* the values of bench/run.pl's rows; the kept events rendered by hand */

static void
setup(void)
{
    int                   i;
    static fanbase_str_t  created = S("2026-01-01T00:00:00.000Z");
    static fanbase_str_t  updated = S("2026-01-01T00:00:05.000Z");

    item.id = (fanbase_str_t) S(ID);
    item.created = (fanbase_str_t) S("2026-01-01T00:00:00Z");
    item.icode = 0;
    item.icode_set = 1;
    item.imsg = (fanbase_str_t) S("Objeto criado com sucesso");
    item.process_date = (fanbase_str_t) S("2026-01-01T00:00:05Z");
    item.status = FANBASE_STATUS_COMPLETED;
    item.process_msg = (fanbase_str_t) S("Ingresso criado");

    event.kind = "transition";
    event.message = (fanbase_str_t) S("completed at Fanbase");
    event.data = (fanbase_str_t) S("{\"queue_id\":\"" QUEUE_ID "\","
                                   "\"process_msg\":\"Ingresso criado\"}");
    event.status = FANBASE_STATUS_COMPLETED;
    event.created_at = updated;

    kept[0].kind = "transition";
    kept[0].message = (fanbase_str_t) S("accepted by the edge");
    kept[0].status = FANBASE_STATUS_PENDING;
    kept[0].created_at = created;

    kept[1].kind = "transition";
    kept[1].message = (fanbase_str_t) S("delivered to Fanbase");
    kept[1].data = (fanbase_str_t) S("{\"queue_id\":\"" QUEUE_ID "\"}");
    kept[1].status = FANBASE_STATUS_PROCESSING;
    kept[1].created_at = (fanbase_str_t) S("2026-01-01T00:00:01.000Z");

    kept[2] = event;

    for (i = 0; i < 3; i++) {
        kept_json[i].data = kept_buf[i];
        kept_json[i].len = fanbase_json_render_event(kept_buf[i], &kept[i])
                           - kept_buf[i];
    }

    head.id = txn_id;
    head.created_at = created;
    head.updated_at = updated;
    head.status = FANBASE_STATUS_COMPLETED;
}


/* by hand: the size, as the module asks for it, then the document */

static size_t
hand_error(unsigned char *buf)
{
    if (fanbase_json_error_size(err_code, err_message) > BUF_SIZE) {
        abort();
    }

    return fanbase_json_render_error(buf, 503, err_code, err_message) - buf;
}


static size_t
hand_item(unsigned char *buf)
{
    if (fanbase_json_item_size(&item, 0) > BUF_SIZE) {
        abort();
    }

    return fanbase_json_render_item(buf, &item, 0) - buf;
}


static size_t
hand_accepted(unsigned char *buf)
{
    if (fanbase_json_accepted_size(&txn_id, &txn_path) > BUF_SIZE) {
        abort();
    }

    return fanbase_json_render_accepted(buf, &txn_id, &txn_path) - buf;
}


static size_t
hand_event(unsigned char *buf)
{
    if (fanbase_json_event_size(&event) > BUF_SIZE) {
        abort();
    }

    return fanbase_json_render_event(buf, &event) - buf;
}


/* as txn.c does: the head, the kept events joined by ',', then "]}" */

static size_t
hand_transaction(unsigned char *buf)
{
    int             i;
    size_t          size;
    unsigned char  *p;

    size = fanbase_json_txn_head_size(&head) + sizeof("]}");

    for (i = 0; i < 3; i++) {
        size += kept_json[i].len + 1;
    }

    if (size > BUF_SIZE) {
        abort();
    }

    p = fanbase_json_render_txn_head(buf, &head);

    for (i = 0; i < 3; i++) {
        if (i) {
            *p++ = ',';
        }

        memcpy(p, kept_json[i].data, kept_json[i].len);
        p += kept_json[i].len;
    }

    *p++ = ']';
    *p++ = '}';

    return p - buf;
}


/* the item's strings, escaped one after the other */

static size_t
hand_strings(unsigned char *buf)
{
    int                   i;
    unsigned char        *p;
    const fanbase_str_t  *str[6];

    str[0] = &item.id;
    str[1] = &item.created;
    str[2] = &item.imsg;
    str[3] = &item.process_date;
    str[4] = &status_name;
    str[5] = &item.process_msg;

    p = buf;
    *p++ = '[';

    for (i = 0; i < 6; i++) {
        if (i) {
            *p++ = ',';
        }

        *p++ = '"';
        p = fanbase_json_escape(p, str[i]->data, str[i]->len);
        *p++ = '"';
    }

    *p++ = ']';

    return p - buf;
}


/*
 * yajl_gen: the same documents, one call a statement (the operands of '|'
 * are evaluated in no set order); the statuses or'ed, ok is 0
 */

static yajl_gen_status
gen_error(yajl_gen g)
{
    int  rc;

    rc = yajl_gen_map_open(g);
    rc |= gen_key(g, "error");
    rc |= yajl_gen_map_open(g);
    rc |= gen_key(g, "status");
    rc |= yajl_gen_integer(g, 503);
    rc |= gen_cfield(g, "code", err_code);
    rc |= gen_cfield(g, "message", err_message);
    rc |= yajl_gen_map_close(g);

    return rc | yajl_gen_map_close(g);
}


static yajl_gen_status
gen_item(yajl_gen g)
{
    int  rc;

    rc = yajl_gen_map_open(g);
    rc |= gen_field(g, "id", &item.id);
    rc |= gen_field(g, "created", &item.created);
    rc |= gen_key(g, "iCode");
    rc |= item.icode_set ? yajl_gen_integer(g, item.icode)
                         : yajl_gen_null(g);
    rc |= gen_field(g, "iMsg", &item.imsg);
    rc |= gen_field(g, "processDate", &item.process_date);
    rc |= gen_cfield(g, "processStatus",
                     fanbase_json_status_name(item.status));
    rc |= gen_field(g, "processMsg", &item.process_msg);
    rc |= gen_key(g, "msg");
    rc |= yajl_gen_null(g);

    return rc | yajl_gen_map_close(g);
}


static yajl_gen_status
gen_accepted(yajl_gen g)
{
    int  rc;

    rc = yajl_gen_map_open(g);
    rc |= gen_field(g, "transaction_id", &txn_id);
    rc |= gen_key(g, "links");
    rc |= yajl_gen_array_open(g);
    rc |= yajl_gen_map_open(g);
    rc |= gen_field(g, "path", &txn_path);
    rc |= yajl_gen_map_close(g);
    rc |= yajl_gen_array_close(g);

    return rc | yajl_gen_map_close(g);
}


static yajl_gen_status
gen_event(yajl_gen g)
{
    int  rc;

    static fanbase_str_t  empty = S("{}");

    rc = yajl_gen_map_open(g);
    rc |= gen_cfield(g, "event", event.kind);
    rc |= gen_field(g, "message", &event.message);
    rc |= gen_key(g, "data");
    rc |= gen_raw(g, event.data.len ? &event.data : &empty);
    rc |= gen_cfield(g, "status", fanbase_json_status_name(event.status));
    rc |= gen_field(g, "created_at", &event.created_at);

    return rc | yajl_gen_map_close(g);
}


static yajl_gen_status
gen_transaction(yajl_gen g)
{
    int            i, rc;
    unsigned char  code[8];
    fanbase_str_t  c;

    static fanbase_str_t  trigger = S(FANBASE_JSON_TRIGGER);

    for (i = 0; i < 8; i++) {
        code[i] = head.id.data[i];

        if (code[i] >= 'a' && code[i] <= 'z') {
            code[i] -= 'a' - 'A';
        }
    }

    c.data = code;
    c.len = 8;

    rc = yajl_gen_map_open(g);
    rc |= gen_field(g, "created_at", &head.created_at);
    rc |= gen_field(g, "updated_at", &head.updated_at);
    rc |= gen_field(g, "id", &head.id);
    rc |= gen_field(g, "code", &c);
    rc |= gen_cfield(g, "operation", "create");
    rc |= gen_field(g, "trigger_endpoint", &trigger);
    rc |= gen_cfield(g, "status", fanbase_json_status_name(head.status));
    rc |= gen_key(g, "events");
    rc |= yajl_gen_array_open(g);

    for (i = 0; i < 3; i++) {
        rc |= gen_raw(g, &kept_json[i]);
    }

    rc |= yajl_gen_array_close(g);

    return rc | yajl_gen_map_close(g);
}


static yajl_gen_status
gen_strings(yajl_gen g)
{
    int  rc;

    rc = yajl_gen_array_open(g);
    rc |= gen_str(g, &item.id);
    rc |= gen_str(g, &item.created);
    rc |= gen_str(g, &item.imsg);
    rc |= gen_str(g, &item.process_date);
    rc |= gen_str(g, &status_name);
    rc |= gen_str(g, &item.process_msg);

    return rc | yajl_gen_array_close(g);
}


static yajl_gen_status
gen_key(yajl_gen g, const char *key)
{
    return yajl_gen_string(g, (const unsigned char *) key, strlen(key));
}


static yajl_gen_status
gen_field(yajl_gen g, const char *key, const fanbase_str_t *s)
{
    int  rc;

    rc = gen_key(g, key);

    return rc | gen_str(g, s);
}


static yajl_gen_status
gen_cfield(yajl_gen g, const char *key, const char *s)
{
    int  rc;

    rc = gen_key(g, key);

    return rc | yajl_gen_string(g, (const unsigned char *) s, strlen(s));
}


static yajl_gen_status
gen_str(yajl_gen g, const fanbase_str_t *s)
{
    if (s->data == NULL) {
        return yajl_gen_null(g);
    }

    return yajl_gen_string(g, s->data, s->len);
}


/* JSON text put in as it is */

static yajl_gen_status
gen_raw(yajl_gen g, const fanbase_str_t *s)
{
    return yajl_gen_number(g, (const char *) s->data, s->len);
}


static size_t
yajl_new(unsigned char *buf)
{
    size_t    len;
    yajl_gen  g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        abort();
    }

    len = yajl_out(g, doc_gen(g), buf);

    yajl_gen_free(g);

    return len;
}


static size_t
yajl_reused(unsigned char *buf)
{
    size_t  len;

    len = yajl_out(reused, doc_gen(reused), buf);

    yajl_gen_clear(reused);
    yajl_gen_reset(reused, NULL);

    return len;
}


static size_t
yajl_out(yajl_gen g, yajl_gen_status rc, unsigned char *buf)
{
    size_t                len;
    const unsigned char  *p;

    if (rc != yajl_gen_status_ok
        || yajl_gen_get_buf(g, &p, &len) != yajl_gen_status_ok
        || len > BUF_SIZE)
    {
        abort();
    }

    memcpy(buf, p, len);

    return len;
}


/* "byte-identical", "semantically-equal" or "DIFFERENT" */

static const char *
compare(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
    int       same;
    char     *sa, *sb;
    yajl_val  ta, tb;

    if (alen == blen && memcmp(a, b, alen) == 0) {
        return "byte-identical";
    }

    sa = strndup((const char *) a, alen);
    sb = strndup((const char *) b, blen);

    if (sa == NULL || sb == NULL) {
        abort();
    }

    ta = yajl_tree_parse(sa, NULL, 0);
    tb = yajl_tree_parse(sb, NULL, 0);

    same = (ta != NULL && tb != NULL && same_tree(ta, tb));

    yajl_tree_free(ta);
    yajl_tree_free(tb);
    free(sa);
    free(sb);

    return same ? "semantically-equal" : "DIFFERENT";
}


static int
same_tree(yajl_val a, yajl_val b)
{
    size_t  i;

    if (a->type != b->type) {
        return 0;
    }

    switch (a->type) {

    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;

    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0;

    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            return 0;
        }

        for (i = 0; i < a->u.object.len; i++) {
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0
                || !same_tree(a->u.object.values[i], b->u.object.values[i]))
            {
                return 0;
            }
        }

        return 1;

    case yajl_t_array:
        if (a->u.array.len != b->u.array.len) {
            return 0;
        }

        for (i = 0; i < a->u.array.len; i++) {
            if (!same_tree(a->u.array.values[i], b->u.array.values[i])) {
                return 0;
            }
        }

        return 1;

    default:
        return 1;      /* true, false, null: the type says it all */
    }
}


/* ns of CPU time per render over a loop of about "ms" milliseconds */

static double
measure(render_pt fn, double ms)
{
    size_t          i, n;
    double          start, t;
    unsigned char   buf[BUF_SIZE];

    /* calibration: double the loop until it takes a tenth of the time */

    for (n = 64; /* void */ ; n *= 2) {
        start = now_ns();

        for (i = 0; i < n; i++) {
            sink += fn(buf);
        }

        t = now_ns() - start;

        if (t > ms * 1e5) {
            break;
        }
    }

    n = (size_t) (n * (ms * 1e6) / t) + 1;

    start = now_ns();

    for (i = 0; i < n; i++) {
        sink += fn(buf);
    }

    return (now_ns() - start) / n;
}


static double
median(double *v, int n)
{
    int     i, j;
    double  x;

    for (i = 1; i < n; i++) {
        x = v[i];

        for (j = i; j > 0 && v[j - 1] > x; j--) {
            v[j] = v[j - 1];
        }

        v[j] = x;
    }

    return (n % 2) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);

    return ts.tv_sec * 1e9 + ts.tv_nsec;
}
