
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_json_check_submission(): a client's request body, read by the
 * module's own one-pass reader (the hot path of every submission), which
 * must answer what yajl would.
 *
 * Checks: the answer is one of FANBASE_JSON_*, with a message exactly when
 * it refuses; the same body gets the same answer twice; and the answer is
 * the one that yajl's tree parser, a different way to read the same JSON,
 * implies: invalid JSON, or an object whose last "action" is a string and
 * whose last "data" is an object (later duplicates win, as they do in the
 * event parser), no deeper than FANBASE_JSON_DEPTH_MAX and in strict
 * UTF-8 (else invalid).  The tree parser allows comments, and its keys are
 * C strings ("action\u0000" reads as "action"): bodies with a '/' or a
 * "\u0000" skip that comparison.
 */


#include <yajl/yajl_tree.h>

#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


static int fuzz_submission_oracle(const uint8_t *data, size_t size);
static size_t fuzz_depth(yajl_val v);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          rc, rc2, want;
    uint8_t     *p;
    const char  *err, *err2;

    p = fuzz_copy(data, size);

    err = NULL;
    rc = fanbase_json_check_submission(p, size, &err);

    fuzz_check(rc == FANBASE_JSON_OK || rc == FANBASE_JSON_INVALID
               || rc == FANBASE_JSON_SHAPE);
    fuzz_check((rc == FANBASE_JSON_OK) == (err == NULL));
    fuzz_check(err == NULL || strlen(err) > 0);

    err2 = NULL;
    rc2 = fanbase_json_check_submission(p, size, &err2);

    fuzz_check(rc2 == rc && err2 == err);

    if (memchr(p, '/', size) == NULL
        && fuzz_memmem(p, size, "\\u0000") == NULL)
    {
        want = fuzz_submission_oracle(p, size);
        fuzz_check(rc == want);
    }

    free(p);

    return 0;
}


static int
fuzz_submission_oracle(const uint8_t *data, size_t size)
{
    int        action, object, map;
    char      *text;
    size_t     i;
    yajl_val   root, v;

    /* the tree parser reads C strings: a NUL is not JSON anyway */

    if (memchr(data, '\0', size) != NULL) {
        return FANBASE_JSON_INVALID;
    }

    text = malloc(size + 1);
    fuzz_check(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';

    root = yajl_tree_parse(text, NULL, 0);
    free(text);

    if (root == NULL) {
        return FANBASE_JSON_INVALID;
    }

    if (fuzz_depth(root) > FANBASE_JSON_DEPTH_MAX || !fuzz_utf8(data, size)) {
        yajl_tree_free(root);
        return FANBASE_JSON_INVALID;
    }

    action = 0;
    object = 0;
    map = YAJL_IS_OBJECT(root);

    if (map) {
        for (i = 0; i < root->u.object.len; i++) {
            v = root->u.object.values[i];

            if (strcmp(root->u.object.keys[i], "action") == 0) {
                action = YAJL_IS_STRING(v);

            } else if (strcmp(root->u.object.keys[i], "data") == 0) {
                object = YAJL_IS_OBJECT(v);
            }
        }
    }

    yajl_tree_free(root);

    return (map && action && object) ? FANBASE_JSON_OK
                                                  : FANBASE_JSON_SHAPE;
}


/* how many arrays and objects nest at the deepest point of a tree */

static size_t
fuzz_depth(yajl_val v)
{
    size_t   i, d, max;

    if (v == NULL || !(YAJL_IS_OBJECT(v) || YAJL_IS_ARRAY(v))) {
        return 0;
    }

    max = 0;

    if (YAJL_IS_OBJECT(v)) {
        for (i = 0; i < v->u.object.len; i++) {
            d = fuzz_depth(v->u.object.values[i]);
            max = (d > max) ? d : max;
        }

    } else {
        for (i = 0; i < v->u.array.len; i++) {
            d = fuzz_depth(v->u.array.values[i]);
            max = (d > max) ? d : max;
        }
    }

    return max + 1;
}
