
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * A main() for the harnesses of t/fuzz/ without libFuzzer: every file
 * named, and every file in every directory named, is read into a buffer
 * of exactly its size and given once to LLVMFuzzerTestOneInput().  Built
 * with the sanitizers by t/007_fuzz_corpus.t, so that the corpus replays
 * with the project's usual compiler.  Prints how many inputs ran.
 */


#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#include "fuzz.h"


static int fuzz_run_path(const char *path, int top);
static int fuzz_run_file(const char *path, off_t size);


static unsigned long  fuzz_inputs;


int
main(int argc, char **argv)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (fuzz_run_path(argv[i], 1) != 0) {
            return 2;
        }
    }

    printf("%lu inputs\n", fuzz_inputs);

    return 0;
}


static int
fuzz_run_path(const char *path, int top)
{
    int             rc;
    DIR            *dir;
    char           *sub;
    size_t          len;
    struct stat     st;
    struct dirent  *de;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }

    if (S_ISREG(st.st_mode)) {
        return fuzz_run_file(path, st.st_size);
    }

    if (!S_ISDIR(st.st_mode) || !top) {
        return 0;
    }

    dir = opendir(path);
    if (dir == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }

    rc = 0;

    while (rc == 0 && (de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        len = strlen(path) + 1 + strlen(de->d_name) + 1;
        sub = malloc(len);
        if (sub == NULL) {
            rc = -1;
            break;
        }

        snprintf(sub, len, "%s/%s", path, de->d_name);
        rc = fuzz_run_path(sub, 0);
        free(sub);
    }

    closedir(dir);

    return rc;
}


static int
fuzz_run_file(const char *path, off_t size)
{
    FILE     *f;
    uint8_t  *buf;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }

    f = fopen(path, "rb");

    if (f == NULL || fread(buf, 1, size, f) != (size_t) size) {
        fprintf(stderr, "%s: cannot read\n", path);

        if (f != NULL) {
            fclose(f);
        }

        free(buf);
        return -1;
    }

    fclose(f);

    /* which input it was, should a sanitizer stop the run now */
    fprintf(stderr, "%s\n", path);

    LLVMFuzzerTestOneInput(buf, size);
    fuzz_inputs++;

    free(buf);

    return 0;
}
