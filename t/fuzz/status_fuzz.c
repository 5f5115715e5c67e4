
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * fanbase_json_status_code(): a processStatus or status string, from
 * Fanbase, a webhook or the state file.
 *
 * Checks: the code is one of Fanbase's four statuses or unknown, and a
 * known code's name is exactly the input (fanbase_json_status_name() and
 * fanbase_json_status_code() agree both ways); the same input gives the
 * same code.
 */


#include "ngx_http_fanbase_json.h"
#include "fuzz.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          code;
    uint8_t     *p;
    const char  *name;

    p = fuzz_copy(data, size);

    code = fanbase_json_status_code(p, size);

    fuzz_check(code >= FANBASE_STATUS_UNKNOWN
               && code <= FANBASE_STATUS_FAILED);
    fuzz_check(fanbase_json_status_code(p, size) == code);

    name = fanbase_json_status_name(code);

    if (code == FANBASE_STATUS_UNKNOWN) {
        fuzz_check(name == NULL);

    } else {
        fuzz_check(name != NULL && strlen(name) == size
                   && memcmp(name, p, size) == 0);
    }

    for (code = FANBASE_STATUS_PENDING; code <= FANBASE_STATUS_FAILED; code++)
    {
        name = fanbase_json_status_name(code);

        fuzz_check(fanbase_json_status_code((const unsigned char *) name,
                                            strlen(name))
                   == code);
    }

    free(p);

    return 0;
}
