
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * bench/first_touch.c: what a process pays the first time it touches a
 * page of a shared anonymous mapping (nginx's shared memory zones) that
 * has been populated, as fanbase_zone's prefault=on leaves the zone:
 *
 *   - the creator populates it (madvise(MADV_POPULATE_WRITE), the master);
 *   - a child (a worker) populates it again, mapping it in its own page
 *     tables, then reads one byte of every page, then a second time;
 *   - a second child reads without populating first.
 *
 * On a physical machine, or a virtual one with nested paging, the first
 * read after the populate costs a TLB miss (tens of ns a page); under a
 * hypervisor that keeps shadow page tables, each process's first touch of
 * each page is a trap into the hypervisor (microseconds), which no
 * madvise() of the guest's pays in advance.  docs/decisions.md, "Each
 * worker reads the zone".
 *
 *   make -C bench first-touch        (MiB of the mapping: FIRST_TOUCH_MB)
 */

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


static double
read_pages(volatile unsigned char *p, size_t pages)
{
    size_t  i;
    double  t;

    t = now_ns();

    for (i = 0; i < pages; i++) {
        (void) p[i * 4096];
    }

    return (now_ns() - t) / pages;
}


int
main(int argc, char **argv)
{
    size_t          mb, size, pages;
    double          t, populate, first, second;
    unsigned char  *p;

    mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    size = mb << 20;
    pages = size / 4096;

    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }

    t = now_ns();
    if (madvise(p, size, MADV_POPULATE_WRITE) != 0) {
        perror("madvise(MADV_POPULATE_WRITE)");
        return 1;
    }
    printf("%zu MiB, %zu pages of 4 KiB; ns per page:\n", mb, pages);
    printf("  creator: populate (allocate)                %8.0f\n",
           (now_ns() - t) / pages);
    fflush(stdout);

    if (fork() == 0) {
        t = now_ns();
        (void) madvise(p, size, MADV_POPULATE_WRITE);
        populate = (now_ns() - t) / pages;
        first = read_pages(p, pages);
        second = read_pages(p, pages);
        printf("  worker:  populate (map)                     %8.0f\n"
               "  worker:  first read from user space         %8.0f\n"
               "  worker:  second read                        %8.0f\n",
               populate, first, second);
        fflush(stdout);
        _exit(0);
    }

    (void) wait(NULL);

    if (fork() == 0) {
        printf("  worker without populate: first read         %8.0f\n",
               read_pages(p, pages));
        fflush(stdout);
        _exit(0);
    }

    (void) wait(NULL);

    return 0;
}
