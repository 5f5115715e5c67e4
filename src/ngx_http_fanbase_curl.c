
/*
 * Copyright (C) 2026 The ngx_http_fanbase_module authors.
 *
 * The libcurl bridge: one multi handle per worker, driven by nginx's
 * event loop through the multi-socket interface.  libcurl sockets are
 * wrapped in nginx connections; libcurl's single timeout is one nginx
 * timer.  Finished transfers go back to their owners from the event
 * handlers, never from inside a libcurl callback.
 */


#include "ngx_http_fanbase_conf.h"
#include "ngx_http_fanbase_id.h"
#include "ngx_http_fanbase_curl.h"
#include "ngx_http_fanbase_metrics.h"


#define NGX_HTTP_FANBASE_EASY_CACHE   64
#define NGX_HTTP_FANBASE_SOCKS_MAX    (1024 * 1024)


typedef struct {
    CURL                              *easy;
    ngx_http_fanbase_upstream_conf_t  *conf;
} ngx_http_fanbase_easy_t;


/* a descriptor libcurl uses, and the socket it was taken for */

typedef struct {
    ngx_connection_t                  *conn;
    ino_t                              ino;
    unsigned                           adopted:1;  /* not opened here */
} ngx_http_fanbase_sock_t;


static curl_socket_t ngx_http_fanbase_curl_open(void *clientp,
    curlsocktype purpose, struct curl_sockaddr *address);
static int ngx_http_fanbase_curl_close(void *clientp, curl_socket_t s);
static ngx_connection_t *ngx_http_fanbase_curl_sock(curl_socket_t s);
static ngx_connection_t *ngx_http_fanbase_curl_sock_add(curl_socket_t s,
    ngx_uint_t adopted);
static void ngx_http_fanbase_curl_sock_drop(curl_socket_t s);
static int ngx_http_fanbase_curl_socket(CURL *easy, curl_socket_t s,
    int what, void *userp, void *socketp);
static int ngx_http_fanbase_curl_timer(CURLM *multi, long timeout_ms,
    void *userp);
static void ngx_http_fanbase_curl_event_handler(ngx_event_t *ev);
static void ngx_http_fanbase_curl_timer_handler(ngx_event_t *ev);
static ngx_inline void ngx_http_fanbase_curl_clear_ssl(void);
static void ngx_http_fanbase_curl_action(curl_socket_t s, int action);
static void ngx_http_fanbase_curl_done(void);
static ngx_int_t ngx_http_fanbase_curl_watch(ngx_event_t *ev,
    ngx_int_t event, ngx_uint_t want);
static size_t ngx_http_fanbase_curl_write(char *ptr, size_t size,
    size_t nmemb, void *userdata);
static int ngx_http_fanbase_curl_prereq(void *userdata,
    char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
    int conn_local_port);
static CURL *ngx_http_fanbase_curl_easy_get(
    ngx_http_fanbase_upstream_conf_t *conf);
static void ngx_http_fanbase_curl_easy_put(CURL *easy,
    ngx_http_fanbase_upstream_conf_t *conf);


static CURLM             *ngx_http_fanbase_multi;
static ngx_event_t        ngx_http_fanbase_timer;
static ngx_connection_t   ngx_http_fanbase_timer_conn;
static ngx_queue_t        ngx_http_fanbase_running;
static ngx_http_fanbase_easy_t  ngx_http_fanbase_easy_cache[
                                    NGX_HTTP_FANBASE_EASY_CACHE];
static ngx_uint_t         ngx_http_fanbase_easy_cached;
static ngx_http_fanbase_sock_t  *ngx_http_fanbase_socks;
static ngx_uint_t         ngx_http_fanbase_socks_n;


ngx_int_t
ngx_http_fanbase_curl_init_process(ngx_cycle_t *cycle,
    ngx_http_fanbase_main_conf_t *mcf)
{
    struct rlimit  rlmt;

    ngx_http_fanbase_multi = curl_multi_init();
    if (ngx_http_fanbase_multi == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "fanbase: curl_multi_init() failed");
        return NGX_ERROR;
    }

    curl_multi_setopt(ngx_http_fanbase_multi, CURLMOPT_SOCKETFUNCTION,
                      ngx_http_fanbase_curl_socket);
    curl_multi_setopt(ngx_http_fanbase_multi, CURLMOPT_TIMERFUNCTION,
                      ngx_http_fanbase_curl_timer);
    /*
     * the cap of fanbase_max_connections holds for libcurl's transfers
     * too (per host: Fanbase's API, its token endpoint, the site); more
     * wait in libcurl's queue.  Idle connections kept: fanbase_keepalive,
     * and a few for the token endpoint and the site.
     */
    curl_multi_setopt(ngx_http_fanbase_multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long) mcf->max_connections);
    curl_multi_setopt(ngx_http_fanbase_multi, CURLMOPT_MAXCONNECTS,
                      (long) mcf->keepalive + 8);

    /* a slot for every descriptor the worker may open */

    if (getrlimit(RLIMIT_NOFILE, &rlmt) == -1
        || rlmt.rlim_cur == RLIM_INFINITY
        || rlmt.rlim_cur > NGX_HTTP_FANBASE_SOCKS_MAX)
    {
        ngx_http_fanbase_socks_n = NGX_HTTP_FANBASE_SOCKS_MAX;

    } else {
        ngx_http_fanbase_socks_n = (ngx_uint_t) rlmt.rlim_cur;
    }

    ngx_http_fanbase_socks = ngx_calloc(ngx_http_fanbase_socks_n
                                        * sizeof(ngx_http_fanbase_sock_t),
                                        cycle->log);
    if (ngx_http_fanbase_socks == NULL) {
        return NGX_ERROR;
    }

    /*
     * the timer's data must look like a connection: the debug log reads
     * its descriptor
     */

    ngx_http_fanbase_timer_conn.fd = (ngx_socket_t) -1;
    ngx_http_fanbase_timer.data = &ngx_http_fanbase_timer_conn;
    ngx_http_fanbase_timer.handler = ngx_http_fanbase_curl_timer_handler;
    ngx_http_fanbase_timer.log = cycle->log;

    /*
     * transfers in flight keep a worker that leaves after a reload alive
     * until they end: every transfer has a timeout, so it does end
     */

    ngx_http_fanbase_timer.cancelable = 0;

    ngx_queue_init(&ngx_http_fanbase_running);

    return NGX_OK;
}


void
ngx_http_fanbase_curl_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                s;
    ngx_queue_t              *q;
    ngx_http_fanbase_curl_t  *h;

    if (ngx_http_fanbase_multi == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ngx_http_fanbase_running)) {
        q = ngx_queue_head(&ngx_http_fanbase_running);
        h = ngx_queue_data(q, ngx_http_fanbase_curl_t, queue);

        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "fanbase: transfer abandoned at worker exit");

        ngx_http_fanbase_curl_destroy(h);
    }

    while (ngx_http_fanbase_easy_cached) {
        curl_easy_cleanup(
            ngx_http_fanbase_easy_cache[--ngx_http_fanbase_easy_cached].easy);
    }

    /* closes cached connections: their sockets are removed first */

    curl_multi_cleanup(ngx_http_fanbase_multi);
    ngx_http_fanbase_multi = NULL;

    /* what is left are sockets that libcurl closed by itself */

    for (s = 0; s < ngx_http_fanbase_socks_n; s++) {
        if (ngx_http_fanbase_socks[s].conn != NULL) {
            ngx_http_fanbase_curl_sock_drop(s);
        }
    }

    if (ngx_http_fanbase_timer.timer_set) {
        ngx_del_timer(&ngx_http_fanbase_timer);
    }

    if (ngx_http_fanbase_timer.posted) {
        ngx_delete_posted_event(&ngx_http_fanbase_timer);
    }
}


ngx_http_fanbase_curl_t *
ngx_http_fanbase_curl_create(ngx_log_t *log,
    ngx_http_fanbase_upstream_conf_t *conf, const char *url)
{
    CURL                     *easy;
    ngx_http_fanbase_curl_t  *h;

    h = ngx_calloc(sizeof(ngx_http_fanbase_curl_t), log);
    if (h == NULL) {
        return NULL;
    }

    easy = ngx_http_fanbase_curl_easy_get(conf);
    if (easy == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "fanbase: curl_easy_init() failed");
        ngx_free(h);
        return NULL;
    }

    h->easy = easy;
    h->log = log;
    h->conf = conf;

    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, h);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, h->error);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, h);

    return h;
}


/*
 * A POST sent at most once.  libcurl silently sends a request again on a
 * fresh connection when a reused keep-alive connection dies before any
 * answer, and Fanbase may have taken the first one (a duplicate sale).
 * The pre-request callback runs before each attempt: a second attempt is
 * aborted, and the transfer fails with CURLE_ABORTED_BY_CALLBACK.
 */

void
ngx_http_fanbase_curl_post(ngx_http_fanbase_curl_t *h, u_char *body,
    size_t len)
{
    h->attempts = 0;

    curl_easy_setopt(h->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h->easy, CURLOPT_PREREQFUNCTION,
                     ngx_http_fanbase_curl_prereq);
    curl_easy_setopt(h->easy, CURLOPT_PREREQDATA, h);
}


/*
 * X-Request-ID on this transfer: a list node of its own in front of its
 * other headers, so that a shared list (a token's) stays shared.  An id
 * that is not a valid request id is not sent; an empty one means none.
 */

void
ngx_http_fanbase_curl_request_id(ngx_http_fanbase_curl_t *h, ngx_str_t *id)
{
    u_char  *p;

    if (ngx_http_fanbase_id_valid_request(id) != NGX_OK) {
        return;
    }

    p = ngx_cpymem(h->request_id_line, "X-Request-ID: ",
                   sizeof("X-Request-ID: ") - 1);
    p = ngx_cpymem(p, id->data, id->len);
    *p = '\0';

    h->request_id.data = (char *) h->request_id_line;
}


ngx_int_t
ngx_http_fanbase_curl_start(ngx_http_fanbase_curl_t *h)
{
    CURLMcode           rc;
    struct curl_slist  *list;

    list = (h->headers != NULL) ? h->headers
           : (h->hdr != NULL) ? h->hdr->headers : NULL;

    if (h->request_id.data != NULL) {
        h->request_id.next = list;
        list = &h->request_id;
    }

    if (list != NULL) {
        curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, list);
    }

    h->len = 0;
    h->status = 0;
    h->result = CURLE_OK;
    h->error[0] = '\0';
    h->content_type[0] = '\0';
    h->retry_after[0] = '\0';

    rc = curl_multi_add_handle(ngx_http_fanbase_multi, h->easy);
    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "fanbase: curl_multi_add_handle() failed: %s",
                      curl_multi_strerror(rc));
        return NGX_ERROR;
    }

    h->running = 1;
    ngx_queue_insert_tail(&ngx_http_fanbase_running, &h->queue);

    return NGX_OK;
}


void
ngx_http_fanbase_curl_destroy(ngx_http_fanbase_curl_t *h)
{
    if (h->running) {
        /* the owner went away: libcurl closes an unfinished connection */

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, h->log, 0,
                       "fanbase: transfer cancelled");

        curl_multi_remove_handle(ngx_http_fanbase_multi, h->easy);

        ngx_http_fanbase_curl_clear_ssl();
        ngx_queue_remove(&h->queue);
        h->running = 0;
    }

    if (h->hdr != NULL) {
        ngx_http_fanbase_curl_headers_release(h->hdr);
    }

    ngx_http_fanbase_curl_easy_put(h->easy, h->conf);

    if (h->headers != NULL) {
        curl_slist_free_all(h->headers);
    }

    if (h->body != NULL) {
        ngx_free(h->body);
    }

    ngx_free(h);
}


/*
 * libcurl opens its sockets through the first callback, so the module
 * knows each socket's nginx connection from its descriptor alone
 * (ngx_http_fanbase_socks[fd]).  It closes a connected socket through the
 * second one, after it said CURL_POLL_REMOVE for it; but a socket that
 * never connected (a connect that timed out or was refused) it closes
 * itself, and may say CURL_POLL_REMOVE afterwards or never.  Sockets it
 * opens otherwise (the threaded resolver's socket pair) it shows the
 * socket callback only, and closes after CURL_POLL_REMOVE: the module
 * adopts them there and lets them go at REMOVE.  So a slot's
 * socket is checked before its events are touched: a descriptor that is
 * closed, or now another socket, is a stale slot, and its connection is
 * freed without a word to epoll (the kernel dropped the descriptor when
 * it was closed).  Without that, every such connect leaked one of the
 * worker's connections, and a late REMOVE made epoll_ctl() fail on a
 * closed descriptor, or delete another connection's events.  The socket
 * callback never returns -1: libcurl then marks the multi handle dead,
 * and the worker's every transfer after it fails.
 */

static curl_socket_t
ngx_http_fanbase_curl_open(void *clientp, curlsocktype purpose,
    struct curl_sockaddr *address)
{
    ngx_uint_t                read, write;
    ngx_socket_t              s;
    ngx_connection_t         *c;
    ngx_http_fanbase_sock_t  *sock;

    s = ngx_socket(address->family, address->socktype, address->protocol);

    if (s == (ngx_socket_t) -1) {
        return CURL_SOCKET_BAD;
    }

    if ((ngx_uint_t) s >= ngx_http_fanbase_socks_n) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: socket %d above the open files limit", s);
        ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    sock = &ngx_http_fanbase_socks[s];

    /*
     * the descriptor was free, so a socket in its slot was closed by
     * libcurl: libcurl may take the new one for the old one and not say
     * again what it waits for, so the new one waits for the same
     */

    read = 0;
    write = 0;

    if (sock->conn != NULL) {
        read = sock->conn->read->active;
        write = sock->conn->write->active;

        ngx_http_fanbase_curl_sock_drop(s);
    }

    c = ngx_http_fanbase_curl_sock_add(s, 0);
    if (c == NULL) {
        ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    if (ngx_http_fanbase_curl_watch(c->read, NGX_READ_EVENT, read) != NGX_OK
        || ngx_http_fanbase_curl_watch(c->write, NGX_WRITE_EVENT, write)
           != NGX_OK)
    {
        ngx_http_fanbase_curl_sock_drop(s);
        ngx_close_socket(s);
        return CURL_SOCKET_BAD;
    }

    return s;
}


static int
ngx_http_fanbase_curl_close(void *clientp, curl_socket_t s)
{
    if ((ngx_uint_t) s < ngx_http_fanbase_socks_n
        && ngx_http_fanbase_socks[s].conn != NULL)
    {
        ngx_http_fanbase_curl_sock_drop(s);
    }

    return ngx_close_socket(s) == -1 ? 1 : 0;
}


/* the connection of a socket libcurl has open, or NULL */

static ngx_connection_t *
ngx_http_fanbase_curl_sock(curl_socket_t s)
{
    ngx_file_info_t           fi;
    ngx_http_fanbase_sock_t  *sock;

    if ((ngx_uint_t) s >= ngx_http_fanbase_socks_n) {
        return NULL;
    }

    sock = &ngx_http_fanbase_socks[s];

    if (sock->conn == NULL) {
        return NULL;
    }

    if (ngx_fd_info(s, &fi) == NGX_FILE_ERROR || fi.st_ino != sock->ino) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "fanbase: socket %d was closed by libcurl", s);

        ngx_http_fanbase_curl_sock_drop(s);
        return NULL;
    }

    return sock->conn;
}


static ngx_connection_t *
ngx_http_fanbase_curl_sock_add(curl_socket_t s, ngx_uint_t adopted)
{
    ngx_file_info_t           fi;
    ngx_connection_t         *c;
    ngx_http_fanbase_sock_t  *sock;

    if (ngx_fd_info(s, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, ngx_errno,
                      "fanbase: " ngx_fd_info_n " of socket %d failed", s);
        return NULL;
    }

    c = ngx_get_connection(s, ngx_cycle->log);
    if (c == NULL) {
        return NULL;
    }

    c->read->handler = ngx_http_fanbase_curl_event_handler;
    c->write->handler = ngx_http_fanbase_curl_event_handler;
    c->read->log = c->log;
    c->write->log = c->log;

    sock = &ngx_http_fanbase_socks[s];
    sock->conn = c;
    sock->ino = fi.st_ino;
    sock->adopted = adopted;

    return c;
}


/*
 * Frees a slot's connection.  Its descriptor is closed, or about to be:
 * closing it takes it out of epoll, so epoll is not told.
 */

static void
ngx_http_fanbase_curl_sock_drop(curl_socket_t s)
{
    ngx_connection_t  *c;

    c = ngx_http_fanbase_socks[s].conn;
    ngx_http_fanbase_socks[s].conn = NULL;

    if (c->read->active || c->read->disabled) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active || c->write->disabled) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
}


static int
ngx_http_fanbase_curl_socket(CURL *easy, curl_socket_t s, int what,
    void *userp, void *socketp)
{
    ngx_connection_t  *c;

    c = ngx_http_fanbase_curl_sock(s);

    if (c == NULL) {
        if (what == CURL_POLL_REMOVE) {
            /* closed already */
            return 0;
        }

        if ((ngx_uint_t) s >= ngx_http_fanbase_socks_n) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "fanbase: libcurl's socket %d is above the open "
                          "files limit, it is polled on a timer", s);
            return 0;
        }

        /* a socket libcurl opened by other means: its resolver's */

        c = ngx_http_fanbase_curl_sock_add(s, 1);
        if (c == NULL) {
            return 0;
        }
    }

    /* an error was logged: libcurl's own timeouts end the transfer */

    (void) ngx_http_fanbase_curl_watch(c->read, NGX_READ_EVENT,
                                       what & CURL_POLL_IN);
    (void) ngx_http_fanbase_curl_watch(c->write, NGX_WRITE_EVENT,
                                       what & CURL_POLL_OUT);

    if (what == CURL_POLL_REMOVE && ngx_http_fanbase_socks[s].adopted) {
        /* libcurl closes it next */
        ngx_http_fanbase_curl_sock_drop(s);
    }

    return 0;
}


static ngx_int_t
ngx_http_fanbase_curl_watch(ngx_event_t *ev, ngx_int_t event, ngx_uint_t want)
{
    /* level-triggered: libcurl need not drain a socket in one call */

    if (want && !ev->active) {
        return ngx_add_event(ev, event, NGX_LEVEL_EVENT);
    }

    if (!want && ev->active) {
        return ngx_del_event(ev, event, 0);
    }

    return NGX_OK;
}


static int
ngx_http_fanbase_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    if (ngx_http_fanbase_timer.timer_set) {
        ngx_del_timer(&ngx_http_fanbase_timer);
    }

    if (timeout_ms < 0) {
        return 0;
    }

    if (timeout_ms == 0) {
        /* never act from inside a libcurl callback */
        if (!ngx_http_fanbase_timer.posted) {
            ngx_post_event(&ngx_http_fanbase_timer, &ngx_posted_events);
        }

        return 0;
    }

    ngx_add_timer(&ngx_http_fanbase_timer, (ngx_msec_t) timeout_ms);

    return 0;
}


static void
ngx_http_fanbase_curl_event_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_http_fanbase_curl_action(c->fd,
                                 ev->write ? CURL_CSELECT_OUT
                                           : CURL_CSELECT_IN);
}


static void
ngx_http_fanbase_curl_timer_handler(ngx_event_t *ev)
{
    ngx_http_fanbase_curl_action(CURL_SOCKET_TIMEOUT, 0);
}


/*
 * libcurl and nginx share this thread's OpenSSL error queue: what libcurl
 * leaves there (SSL_shutdown() of a handshake it gave up, say) would be
 * found by nginx's next TLS operation, for the upstream of a synchronous
 * submission, and logged as "ignoring stale global SSL error" [alert]
 */

static ngx_inline void
ngx_http_fanbase_curl_clear_ssl(void)
{
#if (NGX_OPENSSL)
    ERR_clear_error();
#endif
}


static void
ngx_http_fanbase_curl_action(curl_socket_t s, int action)
{
    int        running;
    CURLMcode  rc;

    if (ngx_http_fanbase_multi == NULL) {
        return;
    }

    rc = curl_multi_socket_action(ngx_http_fanbase_multi, s, action,
                                  &running);
    if (rc != CURLM_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "fanbase: curl_multi_socket_action() failed: %s",
                      curl_multi_strerror(rc));
    }

    ngx_http_fanbase_curl_clear_ssl();

    ngx_http_fanbase_curl_done();
}


static void
ngx_http_fanbase_curl_done(void)
{
    int                       left;
    char                     *ct;
    CURL                     *easy;
    CURLMsg                  *msg;
    CURLcode                  result;
    curl_off_t                usec;
    struct curl_header       *hv;
    ngx_http_fanbase_curl_t  *h;

    for ( ;; ) {
        msg = curl_multi_info_read(ngx_http_fanbase_multi, &left);
        if (msg == NULL) {
            break;
        }

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        result = msg->data.result;

        h = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &h);

        if (h == NULL) {
            curl_multi_remove_handle(ngx_http_fanbase_multi, easy);
            ngx_http_fanbase_curl_clear_ssl();
            continue;
        }

        h->result = result;
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &h->status);

        ct = NULL;
        curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct);
        if (ct != NULL) {
            ngx_cpystrn(h->content_type, (u_char *) ct,
                        sizeof(h->content_type));
        }

        if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &hv)
            == CURLHE_OK)
        {
            ngx_cpystrn(h->retry_after, (u_char *) hv->value,
                        sizeof(h->retry_after));
        }

        if (h->kind != NGX_HTTP_FANBASE_CALL_NONE
            && curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &usec)
               == CURLE_OK)
        {
            ngx_http_fanbase_metrics_call(h->kind, (ngx_msec_t) usec);
        }

        curl_multi_remove_handle(ngx_http_fanbase_multi, easy);

        ngx_http_fanbase_curl_clear_ssl();
        ngx_queue_remove(&h->queue);
        h->running = 0;

        /* the owner may start new transfers or destroy this one */

        h->handler(h);
    }
}


static size_t
ngx_http_fanbase_curl_write(char *ptr, size_t size, size_t nmemb,
    void *userdata)
{
    size_t                    n, want;
    u_char                   *p;
    ngx_http_fanbase_curl_t  *h = userdata;

    n = size * nmemb;

    if (h->len + n > NGX_HTTP_FANBASE_RESPONSE_MAX) {
        ngx_log_error(NGX_LOG_ERR, h->log, 0,
                      "fanbase: response larger than %uz bytes",
                      (size_t) NGX_HTTP_FANBASE_RESPONSE_MAX);
        return 0;
    }

    if (h->len + n > h->size) {
        want = ngx_max(h->size * 2, h->len + n);
        want = ngx_max(want, 1024);

        p = ngx_alloc(want, h->log);
        if (p == NULL) {
            return 0;
        }

        if (h->body != NULL) {
            ngx_memcpy(p, h->body, h->len);
            ngx_free(h->body);
        }

        h->body = p;
        h->size = want;
    }

    ngx_memcpy(h->body + h->len, ptr, n);
    h->len += n;

    return n;
}


static int
ngx_http_fanbase_curl_prereq(void *userdata, char *conn_primary_ip,
    char *conn_local_ip, int conn_primary_port, int conn_local_port)
{
    ngx_http_fanbase_curl_t  *h = userdata;

    if (h->attempts++ == 0) {
        return CURL_PREREQFUNC_OK;
    }

    ngx_log_error(NGX_LOG_WARN, h->log, 0,
                  "fanbase: the connection to Fanbase died before an "
                  "answer; the POST is not sent again");

    return CURL_PREREQFUNC_ABORT;
}


/*
 * Easy handles are kept with the settings of the last transfer: one with
 * the same upstream settings only needs what differs per transfer.
 */

static CURL *
ngx_http_fanbase_curl_easy_get(ngx_http_fanbase_upstream_conf_t *conf)
{
    CURL        *easy;
    ngx_uint_t   i;

    for (i = ngx_http_fanbase_easy_cached; i > 0; i--) {

        if (ngx_http_fanbase_easy_cache[i - 1].conf != conf) {
            continue;
        }

        easy = ngx_http_fanbase_easy_cache[i - 1].easy;

        ngx_http_fanbase_easy_cache[i - 1] =
            ngx_http_fanbase_easy_cache[--ngx_http_fanbase_easy_cached];

        /* a GET without a pre-request check unless the caller says more */

        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, NULL);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);

        return easy;
    }

    if (ngx_http_fanbase_easy_cached) {
        easy = ngx_http_fanbase_easy_cache[--ngx_http_fanbase_easy_cached].easy;
        curl_easy_reset(easy);

    } else {
        easy = curl_easy_init();
        if (easy == NULL) {
            return NULL;
        }
    }

    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION,
                     ngx_http_fanbase_curl_write);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION,
                     ngx_http_fanbase_curl_open);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION,
                     ngx_http_fanbase_curl_close);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT,
                     "ngx_http_fanbase_module/" NGX_HTTP_FANBASE_VERSION);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) conf->connect_timeout);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) conf->timeout);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, conf->ssl_verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, conf->ssl_verify ? 2L : 0L);

#if (LIBCURL_VERSION_NUM >= 0x075500)
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS,
                     (long) (CURLPROTO_HTTP|CURLPROTO_HTTPS));
#endif

    if (conf->ssl_trusted_certificate.len) {
        curl_easy_setopt(easy, CURLOPT_CAINFO,
                         (char *) conf->ssl_trusted_certificate.data);
    }

    return easy;
}


static void
ngx_http_fanbase_curl_easy_put(CURL *easy,
    ngx_http_fanbase_upstream_conf_t *conf)
{
    ngx_http_fanbase_easy_t  *e;

    if (ngx_http_fanbase_multi != NULL
        && ngx_http_fanbase_easy_cached < NGX_HTTP_FANBASE_EASY_CACHE)
    {
        /* nothing may point into a finished transfer */

        curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, NULL);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, NULL);
        curl_easy_setopt(easy, CURLOPT_PREREQDATA, NULL);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);

        e = &ngx_http_fanbase_easy_cache[ngx_http_fanbase_easy_cached++];
        e->easy = easy;
        e->conf = conf;
        return;
    }

    curl_easy_cleanup(easy);
    ngx_http_fanbase_curl_clear_ssl();
}


void
ngx_http_fanbase_curl_headers_release(ngx_http_fanbase_headers_t *hdr)
{
    if (--hdr->refs) {
        return;
    }

    curl_slist_free_all(hdr->headers);

    /* the token is in them */
    ngx_explicit_memzero(hdr->lines.data, hdr->lines.len);

    ngx_free(hdr);
}
