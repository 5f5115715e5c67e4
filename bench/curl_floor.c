/*
 * bench/curl_floor.c: the libcurl work of one submission, and nothing else
 * (no nginx, no JSON, no zone).  Built and run by bench/run.pl ("make
 * bench"): the row "libcurl floor (submission)" of docs/performance.md.
 *
 * It does what ngx_http_fanbase_module's libcurl bridge
 * (src/ngx_http_fanbase_curl.c) does per submission, the way it does it:
 *
 *   - one multi handle per process, driven through the multi-socket
 *     interface (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION,
 *     curl_multi_socket_action, curl_multi_info_read) from a level-
 *     triggered epoll loop, as nginx's event loop drives the module;
 *     connections kept alive in the multi handle's cache
 *     (CURLMOPT_MAXCONNECTS 256);
 *   - easy handles reused with their settings: the fixed options (write
 *     function, NOSIGNAL, NOPROGRESS, HTTP/1.1, TCP keep-alive, no
 *     redirects, the module's User-Agent, connect timeout 5 s, timeout
 *     10 s, protocols http and https, a close-socket callback) are set once
 *     per handle; per transfer: URL, PRIVATE, WRITEDATA, ERRORBUFFER, POST,
 *     POSTFIELDSIZE_LARGE, POSTFIELDS, PREREQFUNCTION (the POST is never
 *     sent twice), PREREQDATA, HTTPHEADER (the same four headers as the
 *     module: "AccessToken: ...", "Content-Type: application/json",
 *     "Accept: application/json", "Expect:"), then curl_multi_add_handle;
 *   - at the end of a transfer: CURLINFO_RESPONSE_CODE,
 *     CURLINFO_CONTENT_TYPE, curl_easy_header("Retry-After"),
 *     curl_multi_remove_handle;
 *   - the answer appended by the write callback to a buffer (one per
 *     transfer slot, kept: no allocation per transfer).
 *
 * It leaves out what the module does around libcurl (the per-transfer
 * allocations, resetting options between transfers, its nginx connection
 * for each libcurl socket): it is a floor, the least any module that drives
 * libcurl this way must spend.
 *
 * Usage:
 *   curl_floor [-P processes] [-c concurrency] [-w warm-up requests]
 *              (-n requests | -d seconds) [-b body] [-t token]
 *              [-H header]... [-A user-agent] URL
 *
 *   -P  processes, each with its own multi handle, like nginx workers (1)
 *   -c  transfers kept in flight by each process (32)
 *   -w  requests of each process before the measurement (2000): they open
 *       the connections; then every process waits until all are ready
 *   -n  requests measured, over all processes (split evenly)
 *   -d  or: seconds measured (each process keeps its transfers in flight
 *       that long, then lets them finish)
 *   -b  the body POSTed (default: bench/post.lua's)
 *   -t  the token of the "AccessToken:" header (bench.token.x)
 *   -H  a request header; the first -H replaces the module's four
 *   -A  the User-Agent ("" for none; default the module's)
 *
 * It prints one line: requests measured, requests per second, and the CPU
 * time (getrusage: user + system) of the processes over the measurement,
 * per request.  Every answer must be 201: the exit status is 1 otherwise.
 */

#define _GNU_SOURCE

#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#define MAX_FD       65536
#define MAX_EVENTS   512             /* as nginx's epoll_events */


typedef struct {
    CURL    *easy;
    char    *buf;
    size_t   len;
    size_t   size;
    int      attempts;
    char     error[CURL_ERROR_SIZE];
} slot_t;


typedef struct {
    long     requests;               /* measured */
    long     total;                  /* with the warm-up */
    long     errors;
    long     waits;                  /* epoll_wait() calls, measured */
    double   seconds;
    double   user;
    double   sys;
} result_t;


static const char  *url;
static const char  *body = "{\"action\":\"ticket-create\",\"data\":{\"event\":"
                           "\"bench-2026\",\"sector\":\"A\",\"seat\":\"A1\","
                           "\"buyer\":{\"name\":\"Bench\",\"cpf\":null}}}";
static const char  *token = "bench.token.x";
static const char  *agent = "ngx_http_fanbase_module/0.1.0";
static const char  *headers[16];
static int          nheaders;

static CURLM               *multi;
static struct curl_slist   *hdrs;
static int                  epfd;
static unsigned char        watched[MAX_FD];
static long                 deadline_ms = -1;   /* libcurl's timer */

static long      issue_left;       /* transfers still to start */
static double    stop_at;          /* -d: no new transfer after this */
static long      done_n;
static long      inflight;
static long      errors_n;
static int       error_shown;


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static long
now_ms(void)
{
    return (long) (now() * 1000);
}


static double
cpu(double *user, double *sys)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);
    *user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    *sys = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    return *user + *sys;
}


static void
die(const char *what)
{
    perror(what);
    exit(2);
}


static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    size_t   n = size * nmemb, want;
    slot_t  *s = userdata;

    if (s->len + n > s->size) {
        want = s->size * 2 > s->len + n ? s->size * 2 : s->len + n;
        s->buf = realloc(s->buf, want);
        if (s->buf == NULL) {
            return 0;
        }
        s->size = want;
    }

    memcpy(s->buf + s->len, ptr, n);
    s->len += n;

    return n;
}


static int
prereq_cb(void *userdata, char *primary_ip, char *local_ip, int primary_port,
    int local_port)
{
    slot_t  *s = userdata;

    (void) primary_ip; (void) local_ip; (void) primary_port;
    (void) local_port;

    return s->attempts++ == 0 ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}


static int
close_cb(void *clientp, curl_socket_t fd)
{
    (void) clientp;

    /* closing the descriptor takes it out of epoll */
    if (fd >= 0 && fd < MAX_FD) {
        watched[fd] = 0;
    }

    return close(fd);
}


static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    unsigned            want;
    struct epoll_event  ev;

    (void) easy; (void) userp; (void) socketp;

    if (fd < 0 || fd >= MAX_FD) {
        return -1;
    }

    want = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        want |= EPOLLIN;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        want |= EPOLLOUT;
    }

    if (want == watched[fd]) {
        return 0;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.fd = fd;

    if (want == 0) {
        if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev) == -1 && errno != EBADF
            && errno != ENOENT)
        {
            return -1;
        }

    } else if (epoll_ctl(epfd, watched[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                         fd, &ev) == -1)
    {
        return -1;
    }

    watched[fd] = (unsigned char) want;

    return 0;
}


static int
timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void) m; (void) userp;

    deadline_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

    return 0;
}


static void
easy_setup(slot_t *s)
{
    CURL  *e;

    e = curl_easy_init();
    if (e == NULL) {
        fprintf(stderr, "curl_floor: curl_easy_init() failed\n");
        exit(2);
    }

    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (*agent) {
        curl_easy_setopt(e, CURLOPT_USERAGENT, agent);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
#if (LIBCURL_VERSION_NUM >= 0x075500)
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif

    s->easy = e;
    s->size = 1024;
    s->buf = malloc(s->size);
    if (s->buf == NULL) {
        die("malloc");
    }
}


/* what the module sets for each submission, then the transfer starts */

static void
start(slot_t *s)
{
    CURL  *e = s->easy;

    s->len = 0;
    s->attempts = 0;
    s->error[0] = '\0';

    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->error);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t) strlen(body));
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, s);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);

    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        fprintf(stderr, "curl_floor: curl_multi_add_handle() failed\n");
        exit(2);
    }

    inflight++;
}


static int
may_start(void)
{
    if (stop_at > 0) {
        return now() < stop_at;
    }

    if (issue_left > 0) {
        issue_left--;
        return 1;
    }

    return 0;
}


static void
finished(void)
{
    int                  left;
    long                 status;
    char                *ct;
    slot_t              *s;
    CURLMsg             *msg;
    CURLcode             result;
    struct curl_header  *hv;

    while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        result = msg->data.result;
        s = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);

        status = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        ct = NULL;
        curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ct);
        (void) curl_easy_header(s->easy, "Retry-After", 0, CURLH_HEADER, -1,
                                &hv);

        curl_multi_remove_handle(multi, s->easy);

        inflight--;
        done_n++;

        if (result != CURLE_OK || status != 201 || s->len == 0) {
            errors_n++;
            if (!error_shown++) {
                fprintf(stderr, "curl_floor: a transfer ended with %s %s, "
                        "status %ld\n", curl_easy_strerror(result), s->error,
                        status);
            }
        }

        if (may_start()) {
            start(s);
        }
    }
}


static void
action(curl_socket_t fd, int flags)
{
    int  running;

    if (curl_multi_socket_action(multi, fd, flags, &running) != CURLM_OK) {
        fprintf(stderr, "curl_floor: curl_multi_socket_action() failed\n");
        exit(2);
    }

    finished();
}


/* runs until every transfer started has ended; returns epoll_wait calls */

static long
loop(slot_t *slots, int conc)
{
    int                 i, n, flags;
    long                waits, wait_ms, t;
    struct epoll_event  evs[MAX_EVENTS];

    for (i = 0; i < conc; i++) {
        if (may_start()) {
            start(&slots[i]);
        }
    }

    waits = 0;

    /* libcurl asks for a first kick of the new transfers by its timer */

    while (inflight > 0) {
        if (deadline_ms == -1) {
            wait_ms = -1;
        } else {
            t = now_ms();
            wait_ms = deadline_ms > t ? deadline_ms - t : 0;
        }

        n = epoll_wait(epfd, evs, MAX_EVENTS, (int) wait_ms);
        waits++;

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }

        for (i = 0; i < n; i++) {
            flags = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP)) {
                flags |= CURL_CSELECT_IN;
            }
            if (evs[i].events & EPOLLOUT) {
                flags |= CURL_CSELECT_OUT;
            }
            if (evs[i].events & EPOLLERR) {
                flags |= CURL_CSELECT_ERR;
            }
            action(evs[i].data.fd, flags);
        }

        if (deadline_ms != -1 && now_ms() >= deadline_ms) {
            deadline_ms = -1;
            action(CURL_SOCKET_TIMEOUT, 0);
        }
    }

    return waits;
}


static void
run(int conc, long warmup, long requests, double seconds, int ready_fd,
    int go_fd, result_t *r)
{
    int      i;
    char     c;
    long     waits;
    double   t0, u0, s0, u1, s1;
    slot_t  *slots;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "curl_floor: curl_global_init() failed\n");
        exit(2);
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd == -1) {
        die("epoll_create1");
    }

    multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 256L);

    if (nheaders == 0) {
        char  line[512];

        snprintf(line, sizeof(line), "AccessToken: %s", token);
        hdrs = curl_slist_append(NULL, line);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        hdrs = curl_slist_append(hdrs, "Accept: application/json");
        hdrs = curl_slist_append(hdrs, "Expect:");

    } else {
        for (i = 0; i < nheaders; i++) {
            hdrs = curl_slist_append(hdrs, headers[i]);
        }
    }

    slots = calloc(conc, sizeof(slot_t));
    if (slots == NULL || hdrs == NULL) {
        die("malloc");
    }

    for (i = 0; i < conc; i++) {
        easy_setup(&slots[i]);
    }

    /* the warm-up opens the connections; they stay in libcurl's cache */

    issue_left = warmup;
    stop_at = 0;
    loop(slots, conc);
    r->total = done_n;

    if (ready_fd != -1) {
        if (write(ready_fd, "r", 1) != 1) {
            die("write");
        }
        /* every process is ready when the parent closes the pipe */
        if (read(go_fd, &c, 1) == -1) {
            die("read");
        }
    }

    done_n = 0;
    errors_n = 0;
    error_shown = 0;

    if (seconds > 0) {
        issue_left = 0;
        stop_at = now() + seconds;
    } else {
        issue_left = requests;
        stop_at = 0;
    }

    t0 = now();
    cpu(&u0, &s0);

    waits = loop(slots, conc);

    cpu(&u1, &s1);
    r->seconds = now() - t0;
    r->user = u1 - u0;
    r->sys = s1 - s0;
    r->requests = done_n;
    r->errors = errors_n;
    r->waits = waits;
    r->total += done_n;

    for (i = 0; i < conc; i++) {
        curl_easy_cleanup(slots[i].easy);
        free(slots[i].buf);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(hdrs);
    free(slots);
    curl_global_cleanup();
}


static void
usage(void)
{
    fprintf(stderr, "usage: curl_floor [-P processes] [-c concurrency] "
            "[-w warm-up] (-n requests | -d seconds) [-b body] [-t token] "
            "[-H header]... [-A user-agent] URL\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int       opt, procs, conc, i, ready[2], go[2], res[2], st, bad;
    long      warmup, requests;
    char      c;
    double    seconds, cpu_s, wall;
    pid_t     pid;
    result_t  r, sum;

    procs = 1;
    conc = 32;
    warmup = 2000;
    requests = 0;
    seconds = 0;

    while ((opt = getopt(argc, argv, "P:c:w:n:d:b:t:H:A:")) != -1) {
        switch (opt) {
        case 'P': procs = atoi(optarg); break;
        case 'c': conc = atoi(optarg); break;
        case 'w': warmup = atol(optarg); break;
        case 'n': requests = atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'b': body = optarg; break;
        case 't': token = optarg; break;
        case 'A': agent = optarg; break;
        case 'H':
            if (nheaders == (int) (sizeof(headers) / sizeof(headers[0]))) {
                usage();
            }
            headers[nheaders++] = optarg;
            break;
        default: usage();
        }
    }

    if (optind != argc - 1 || procs < 1 || conc < 1 || warmup < 0
        || (requests <= 0) == (seconds <= 0))
    {
        usage();
    }

    url = argv[optind];
    signal(SIGPIPE, SIG_IGN);
    memset(&sum, 0, sizeof(sum));

    if (procs == 1) {
        run(conc, warmup, requests, seconds, -1, -1, &sum);

    } else {
        if (pipe(ready) == -1 || pipe(go) == -1 || pipe(res) == -1) {
            die("pipe");
        }

        for (i = 0; i < procs; i++) {
            pid = fork();
            if (pid == -1) {
                die("fork");
            }
            if (pid == 0) {
                close(ready[0]);
                close(go[1]);
                close(res[0]);
                memset(&r, 0, sizeof(r));
                run(conc, warmup,
                    requests / procs + (i < requests % procs), seconds,
                    ready[1], go[0], &r);
                if (write(res[1], &r, sizeof(r)) != (ssize_t) sizeof(r)) {
                    _exit(2);
                }
                _exit(r.errors ? 1 : 0);
            }
        }

        close(ready[1]);
        close(go[0]);
        close(res[1]);

        for (i = 0; i < procs; i++) {
            if (read(ready[0], &c, 1) != 1) {
                fprintf(stderr, "curl_floor: a process failed\n");
                return 2;
            }
        }
        close(go[1]);   /* go */

        bad = 0;
        for (i = 0; i < procs; i++) {
            if (read(res[0], &r, sizeof(r)) != (ssize_t) sizeof(r)) {
                bad = 1;
                break;
            }
            sum.requests += r.requests;
            sum.total += r.total;
            sum.errors += r.errors;
            sum.waits += r.waits;
            sum.user += r.user;
            sum.sys += r.sys;
            if (r.seconds > sum.seconds) {
                sum.seconds = r.seconds;
            }
        }

        while (wait(&st) > 0) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) > 1) {
                bad = 1;
            }
        }

        if (bad) {
            fprintf(stderr, "curl_floor: a process failed\n");
            return 2;
        }
    }

    cpu_s = sum.user + sum.sys;
    wall = sum.seconds > 0 ? sum.seconds : 1e-9;

    printf("curl_floor: processes=%d concurrency=%d requests=%ld "
           "seconds=%.3f rps=%.0f user_us_per_req=%.3f sys_us_per_req=%.3f "
           "cpu_us_per_req=%.3f epoll_waits_per_req=%.3f errors=%ld "
           "total_requests=%ld\n",
           procs, conc, sum.requests, sum.seconds, sum.requests / wall,
           sum.requests ? sum.user * 1e6 / sum.requests : 0,
           sum.requests ? sum.sys * 1e6 / sum.requests : 0,
           sum.requests ? cpu_s * 1e6 / sum.requests : 0,
           sum.requests ? (double) sum.waits / sum.requests : 0,
           sum.errors, sum.total);

    return sum.errors ? 1 : 0;
}
