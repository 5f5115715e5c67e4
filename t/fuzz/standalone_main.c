
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * A main() for a libFuzzer harness built without libFuzzer (by gcc, with
 * the sanitizers): it feeds LLVMFuzzerTestOneInput() every file named on
 * the command line and every file of every directory named there (in
 * name order), once each, and exits 0 when all returned.  A sanitizer
 * report or an abort() in the harness ends it first.
 *
 *     state_fuzz t/fuzz/corpus/state
 */


#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path);
static int run_dir(const char *path);
static int skip_entry(const struct dirent *de);


static unsigned long  runs;


int
main(int argc, char **argv)
{
    int          i, rc;
    struct stat  st;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }

    if (LLVMFuzzerInitialize != NULL) {
        (void) LLVMFuzzerInitialize(&argc, &argv);
    }

    for (i = 1; i < argc; i++) {
        if (stat(argv[i], &st) == -1) {
            perror(argv[i]);
            return 1;
        }

        rc = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]);

        if (rc != 0) {
            return rc;
        }
    }

    printf("%s: %lu inputs run\n", argv[0], runs);

    return 0;
}


static int
run_dir(const char *path)
{
    int              i, n, rc;
    char            *name;
    size_t           len;
    struct dirent  **list;

    n = scandir(path, &list, skip_entry, alphasort);

    if (n == -1) {
        perror(path);
        return 1;
    }

    rc = 0;

    for (i = 0; i < n; i++) {
        len = strlen(path) + strlen(list[i]->d_name) + 2;

        name = malloc(len);
        if (name == NULL) {
            perror("malloc");
            return 1;
        }

        snprintf(name, len, "%s/%s", path, list[i]->d_name);

        if (rc == 0) {
            rc = run_file(name);
        }

        free(name);
        free(list[i]);
    }

    free(list);

    return rc;
}


static int
skip_entry(const struct dirent *de)
{
    return de->d_name[0] != '.';
}


static int
run_file(const char *path)
{
    FILE     *f;
    long      size;
    uint8_t  *data;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }

    if (fseek(f, 0, SEEK_END) == -1 || (size = ftell(f)) == -1
        || fseek(f, 0, SEEK_SET) == -1)
    {
        perror(path);
        fclose(f);
        return 1;
    }

    /* exactly its size, so that ASan sees a read past the end */

    data = malloc(size ? size : 1);
    if (data == NULL) {
        perror("malloc");
        fclose(f);
        return 1;
    }

    if (size && fread(data, 1, size, f) != (size_t) size) {
        perror(path);
        free(data);
        fclose(f);
        return 1;
    }

    fclose(f);

    (void) LLVMFuzzerTestOneInput(data, size);
    runs++;

    free(data);

    return 0;
}
