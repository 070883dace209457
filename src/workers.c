/*
 * workers.c -- event loops, worker threads, and the connection life cycle.
 *
 * Design (DESIGN.md, second shape): one event loop per core, each an epoll
 * set in which connections are registered once, edge-triggered, for
 * EPOLLIN|EPOLLOUT|EPOLLRDHUP; listening sockets sit in every loop's set with
 * EPOLLEXCLUSIVE so the kernel wakes one loop per new connection. A loop
 * processes a batch of events and runs handlers inline, so a keep-alive
 * request costs one read and one write, like nginx.
 *
 * Handlers may block (SPEC S3). Before a handler runs, the loop records a
 * sequence number and a start time (busy_seq, busy_start_ms). The monitor
 * thread wakes every few milliseconds; when a loop has been inside one
 * handler longer than HANDOFF_MS it claims the loop with a CAS on busy_seq
 * and gives it to a spare thread, which carries on with the rest of the
 * batch (the batch lives in the loop, not on a stack). When the blocked
 * handler returns, its CAS fails: the thread, now an orphan, finishes that
 * one connection and then parks as a spare. Threads are created on demand up
 * to MAX_THREADS and retire after SPARE_IDLE_MS unused.
 *
 * Invariants:
 *  - A loop (its batch, connection list, timers) is touched only by its
 *    current owner thread; the monitor only reads busy_* and CASes busy_seq.
 *  - A connection is touched only by the thread holding its busy flag. A
 *    thread that finds the flag taken sets pending; the holder re-checks
 *    pending after dropping the flag (seq_cst store/load pair, so no event
 *    is lost).
 *  - A closed connection keeps busy set forever; its memory is freed by the
 *    loop owner between batches, when no thread can still hold an event
 *    pointing at it.
 */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum {
    MAX_LOOPS = 64,
    BATCH = 64,
    HANDOFF_MS = 5,        /* a handler blocked this long gets its loop handed off */
    MONITOR_TICK_MS = 2,   /* how often the monitor looks */
    MAX_THREADS = 4096,    /* bound on worker threads (blocked handlers) */
    SPARE_IDLE_MS = 30000, /* a spare thread unused this long exits */
    SCAN_MS = 250,         /* timeout scan period */
    LINGER_MS = 2000,      /* after an error answer, how long to drain input */
    MAX_REQUESTS_PER_WAKE = 32,
    ACCEPTS_PER_WAKE = 64,
    READ_CHUNK = 4096,
    BUF_KEEP = 65536, /* per-connection buffers above this are freed after use */
};

/* ---- Types ----------------------------------------------------------------- */

typedef struct grace__worker grace__worker_t;

enum { ST_HEAD, ST_BODY, ST_CHUNKED };

struct grace__conn {
    int kind; /* GRACE__EV_CONN */
    int fd;
    grace__loop_t *loop;
    grace_server_t *server;
    grace__conn_t *prev, *next; /* loop's list, owner only */
    grace__conn_t *next_closed; /* loop's closed list, under loop->mu */
    atomic_int busy, pending;
    bool closed;
    bool maybe_readable; /* an event came since the last short read */
    bool close_after_write;
    bool lingering; /* write side shut, discarding input until EOF */
    bool req_started;
    int state;
    grace__buf_t in, out;
    size_t out_off;
    size_t head_len, body_len; /* body_len: decoded body bytes so far */
    const char *head_base;     /* in.ptr when the head was parsed */
    grace__chunked_t chunked;
    int64_t req_start_ms, deadline_ms;
    grace__arena_t arena;
    grace_header_t *headers; /* max_headers entries */
    grace_request_t req;
    grace_response_t res;
    char client_ip[INET6_ADDRSTRLEN];
    int client_port;
    SSL *ssl;         /* HTTPS connection, else NULL */
    bool tls_checked; /* first bytes looked at: a TLS record, not plain HTTP */
};

struct grace__loop {
    int id;
    int epfd;
    struct {
        int kind; /* GRACE__EV_WAKE */
        int fd;
    } wake;
    struct epoll_event events[BATCH];
    int n_events, idx;
    _Atomic uint64_t busy_seq; /* 0: not in a handler */
    atomic_int_fast64_t busy_start_ms;
    uint64_t seq_counter;
    grace__conn_t conns; /* list head (sentinel), owner only */
    pthread_mutex_t mu;  /* guards closed */
    grace__conn_t *closed;
    atomic_bool check_drain;
    int64_t next_scan_ms;
};

struct grace__worker {
    grace__loop_t *loop; /* loop to run; NULL while spare (under eng.mu) */
    bool lost;           /* lost its loop to a handoff while in a handler */
    uint64_t busy_seq;
    pthread_cond_t cond;
    grace__worker_t *next_spare;
};

/* The engine is a deliberate process-wide singleton: one set of loops and
 * threads serves every server of the process. */
static struct {
    pthread_once_t once;
    int err;
    grace__loop_t *loops;
    int n_loops;
    pthread_mutex_t mu; /* spares, n_threads */
    grace__worker_t *spares;
    int n_threads;
} eng = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local grace__worker_t *self;

static int64_t now_ms(void)
{
    /* The coarse clock costs a few ns and ticks every few ms: plenty for
     * timeouts measured in seconds. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Connections ---------------------------------------------------------- */

/* Send: bytes written, or -EAGAIN, or another -errno. */
static ssize_t conn_send(grace__conn_t *c, const char *p, size_t len)
{
    if (c->ssl)
        return grace__tls_write(c->ssl, p, len);
    ssize_t n;
    do
        n = send(c->fd, p, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

/* A plain HTTP request sent to an HTTPS port gets a plain answer that says
 * so (a TLS alert would mean nothing to that client). Returns true if the
 * connection's first bytes are not TLS. */
static bool plain_on_tls_port(grace__conn_t *c)
{
    unsigned char first;
    ssize_t n = recv(c->fd, &first, 1, MSG_PEEK);
    if (n != 1)
        return false; /* nothing yet, or EOF: the TLS read will tell */
    c->tls_checked = true;
    if (first == 0x16) /* TLS handshake record */
        return false;
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Connection: close\r\nContent-Length: 48\r\n\r\n"
                                 "Client sent an HTTP request to an HTTPS server.\n";
    char sample[64];
    ssize_t got = recv(c->fd, sample, sizeof sample, MSG_PEEK);
    grace__log_bad_input(c->client_ip, 400, "plain HTTP sent to an HTTPS port", sample,
                         got > 0 ? (size_t)got : 0);
    if (first >= 'A' && first <= 'Z')
        grace__buf_append(&c->out, answer, sizeof answer - 1);
    grace__tls_free(c->ssl); /* no close_notify: there is no TLS session */
    c->ssl = NULL;
    c->close_after_write = true;
    return true;
}

/* Receive: bytes read, 0 at the peer's end, -EAGAIN, or another -errno. */
static ssize_t conn_recv(grace__conn_t *c, char *p, size_t len)
{
    if (c->ssl && !c->tls_checked && plain_on_tls_port(c))
        return -EAGAIN; /* the plain answer is queued; the caller flushes */
    if (c->ssl) {
        ssize_t n = grace__tls_read(c->ssl, p, len);
        if (n == -EPROTO && !c->req_started)
            grace_log("TLS handshake with %s failed", c->client_ip);
        return n;
    }
    ssize_t n;
    do
        n = recv(c->fd, p, len, 0);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static void conn_close(grace__conn_t *c)
{
    grace__loop_t *L = c->loop;
    c->closed = true;
    /* Explicit DEL: a forked child could still hold the fd, and epoll only
     * forgets an fd when its last reference is closed. */
    epoll_ctl(L->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_lock(&L->mu);
    c->next_closed = L->closed;
    L->closed = c;
    pthread_mutex_unlock(&L->mu);
    grace_server_t *s = c->server;
    if (atomic_fetch_sub(&s->n_conns, 1) == 1)
        grace__server_conn_closed(s);
}

static void conn_free(grace__conn_t *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    grace__buf_free(&c->in);
    grace__buf_free(&c->out);
    grace__buf_free(&c->res.headers);
    grace__buf_free(&c->res.body);
    grace__arena_free(&c->arena);
    grace__tls_free(c->ssl);
    free(c->headers);
    free(c);
}

/* Write c->out without blocking. Returns 1 when all is written, 0 on EAGAIN,
 * -1 when the peer is gone. */
static int flush_out(grace__conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = conn_send(c, c->out.ptr + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            return 0;
        return -1;
    }
    c->out.len = c->out_off = 0;
    if (c->out.cap > BUF_KEEP)
        grace__buf_free(&c->out);
    return 1;
}

/* Queue an error answer and mark the connection to close after it. */
static void queue_error(grace__conn_t *c, int status)
{
    grace__response_error(&c->out, status, c->server->server_header);
    c->close_after_write = true;
}

static void bad_input(grace__conn_t *c, int status)
{
    grace__log_bad_input(c->client_ip, status, grace__status_text(status), c->in.ptr, c->in.len);
    queue_error(c, status);
}

static void handler_enter(void)
{
    grace__worker_t *w = self;
    if (w == NULL || w->lost)
        return;
    grace__loop_t *L = w->loop;
    w->busy_seq = ++L->seq_counter;
    atomic_store_explicit(&L->busy_start_ms, grace__now_ms(), memory_order_relaxed);
    atomic_store_explicit(&L->busy_seq, w->busy_seq, memory_order_release);
}

static void handler_leave(void)
{
    grace__worker_t *w = self;
    if (w == NULL || w->lost)
        return;
    uint64_t seq = w->busy_seq;
    if (!atomic_compare_exchange_strong(&w->loop->busy_seq, &seq, 0))
        w->lost = true; /* the monitor gave our loop to another thread */
}

/* Run one complete request (head parsed, body in place) and queue its
 * answer. */
static void run_request(grace__conn_t *c, size_t consumed)
{
    grace_request_t *req = &c->req;
    grace_response_t *res = &c->res;
    if (c->in.ptr != c->head_base) {
        /* The buffer moved while the body was read: the head's views point
         * into the old memory. Parsing the same bytes again is cheaper and
         * safer than rebasing every pointer. */
        req->h.headers = c->headers;
        req->h.n_headers = c->server->opt.max_headers;
        grace__http_parse_request(c->in.ptr, c->head_len, c->server->opt.max_header_bytes,
                                  &req->h);
    }
    grace__http_request_t h = req->h;
    memset(req, 0, sizeof *req);
    req->h = h;
    req->conn = c;
    req->body.ptr = c->in.ptr + c->head_len;
    req->body.len = c->body_len;
    grace__response_reset(res);
    res->conn = c;

    /* Route on the decoded path. */
    grace_str_t path = h.path;
    if (path.len && memchr(path.ptr, '%', path.len)) {
        char *d = grace__arena_alloc(&c->arena, path.len + 1);
        ssize_t n = d ? grace__url_decode(d, path.ptr, path.len, false) : -1;
        if (n < 0) {
            bad_input(c, 400);
            goto done;
        }
        path.ptr = d;
        path.len = (size_t)n;
    }
    req->path = path;

    int64_t t0 = c->server->opt.access_log ? grace__now_ms() : 0;
    atomic_fetch_add_explicit(&c->server->n_inflight, 1, memory_order_relaxed);
    handler_enter();
    grace__request_dispatch(req, res);
    handler_leave();
    atomic_fetch_sub_explicit(&c->server->n_inflight, 1, memory_order_relaxed);

    if (res->failed) { /* a streaming write failed: the peer is gone */
        c->close_after_write = true;
        c->out.len = c->out_off = 0;
        goto done;
    }
    bool keep = h.keep_alive && !res->conn_close && !grace__conn_draining(c);
    if (grace__response_finish(res, req, keep, &c->out) < 0) {
        c->out.len = c->out_off = 0;
        queue_error(c, 500);
    }
    if (!keep)
        c->close_after_write = true;
    if (c->server->opt.access_log) {
        grace_str_t ua = grace_request_header(req, "User-Agent");
        grace_str_t ref = grace_request_header(req, "Referer");
        grace_log("%d \"%.*s http %.*s %.*s HTTP/1.%d\" %.3f, %s, \"%.*s\", \"%.*s\"",
                  res->status, (int)h.method.len, h.method.ptr,
                  (int)grace_request_header(req, "Host").len,
                  grace_request_header(req, "Host").ptr, (int)h.target.len, h.target.ptr,
                  h.minor_version, (double)(grace__now_ms() - t0) / 1000.0, c->client_ip,
                  (int)ref.len, ref.ptr ? ref.ptr : "", (int)ua.len, ua.ptr ? ua.ptr : "");
    }
done:
    grace__arena_reset(&c->arena);
    grace__buf_consume(&c->in, consumed);
    /* A large request or answer must not pin its buffers for the rest of a
     * keep-alive connection's life. */
    if (c->res.body.cap > BUF_KEEP)
        grace__buf_free(&c->res.body);
    if (c->res.headers.cap > BUF_KEEP)
        grace__buf_free(&c->res.headers);
    if (c->in.len == 0 && c->in.cap > BUF_KEEP)
        grace__buf_free(&c->in);
    c->state = ST_HEAD;
    c->req_started = false;
    c->head_len = c->body_len = 0;
}

enum { REQ_NEED, REQ_DONE };

/* Parse and run at most one request from the buffered input. */
static int try_request(grace__conn_t *c)
{
    const grace_server_options_t *o = &c->server->opt;
    if (c->state == ST_HEAD) {
        if (c->in.len == 0)
            return REQ_NEED;
        if (!c->req_started) {
            c->req_started = true;
            c->req_start_ms = now_ms();
        }
        c->req.h.headers = c->headers;
        c->req.h.n_headers = o->max_headers;
        int r = grace__http_parse_request(c->in.ptr, c->in.len, o->max_header_bytes, &c->req.h);
        if (r == 0)
            return REQ_NEED;
        if (r < 0) {
            bad_input(c, -r);
            return REQ_DONE;
        }
        c->head_len = (size_t)r;
        c->head_base = c->in.ptr;
        c->body_len = 0;
        const grace__http_request_t *h = &c->req.h;
        if (h->chunked) {
            memset(&c->chunked, 0, sizeof c->chunked);
            c->state = ST_CHUNKED;
        } else if (h->content_length > 0) {
            if ((uint64_t)h->content_length > o->client_max_body_size) {
                bad_input(c, 413);
                return REQ_DONE;
            }
            c->state = ST_BODY;
        } else {
            run_request(c, c->head_len);
            return REQ_DONE;
        }
        if (h->expect_continue && h->minor_version == 1 && c->in.len == c->head_len)
            grace__buf_appends(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    if (c->state == ST_BODY) {
        size_t want = c->head_len + (size_t)c->req.h.content_length;
        if (c->in.len < want) {
            if (grace__buf_reserve(&c->in, want - c->in.len) < 0) {
                queue_error(c, 500);
                return REQ_DONE;
            }
            return REQ_NEED;
        }
        c->body_len = (size_t)c->req.h.content_length;
        run_request(c, want);
        return REQ_DONE;
    }
    /* ST_CHUNKED: decoded body accumulates right after the head. */
    size_t start = c->head_len + c->body_len;
    size_t n = c->in.len - start;
    if (n == 0)
        return REQ_NEED;
    size_t len = n;
    ssize_t r = grace__chunked_decode(&c->chunked, c->in.ptr + start, &len,
                                      (uint64_t)o->client_max_body_size);
    if (r == -2) {
        c->body_len += len;
        c->in.len = c->head_len + c->body_len;
        return REQ_NEED;
    }
    if (r < 0) {
        bad_input(c, r == -3 ? 413 : 400);
        return REQ_DONE;
    }
    c->body_len += len;
    /* The r bytes after the body (a pipelined request) follow the decoded
     * data; drop the encoding overhead in between. */
    size_t consumed = c->head_len + c->body_len;
    c->in.len = consumed + (size_t)r;
    run_request(c, consumed);
    return REQ_DONE;
}

/* Read more input. Returns 1 (got bytes), 0 (nothing now), -1 (EOF/error). */
static int read_more(grace__conn_t *c)
{
    const grace_server_options_t *o = &c->server->opt;
    /* Bound the buffer: a head may not outgrow max_header_bytes (the parser
     * answers 431/414 first), a body not its limit plus chunk overhead. */
    size_t limit = o->max_header_bytes + o->client_max_body_size + 65536;
    if (c->in.len >= limit) {
        bad_input(c, 413);
        return 1;
    }
    if (grace__buf_reserve(&c->in, READ_CHUNK) < 0)
        return -1;
    size_t room = c->in.cap - c->in.len;
    if (room > limit - c->in.len)
        room = limit - c->in.len;
    ssize_t n = conn_recv(c, c->in.ptr + c->in.len, room);
    if (n > 0) {
        c->in.len += (size_t)n;
        /* A short read drained the socket: with edge triggering, new data
         * brings a new event, so skip the read that would say EAGAIN. Not
         * so with TLS, where one read returns one record. */
        if ((size_t)n < room && c->ssl == NULL)
            c->maybe_readable = false;
        return 1;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        c->maybe_readable = false;
        return c->close_after_write ? 1 : 0; /* an answer to send (plain_on_tls_port) */
    }
    return -1;
}

static void set_deadline(grace__conn_t *c)
{
    const grace_server_options_t *o = &c->server->opt;
    int64_t now = now_ms();
    if (c->lingering)
        return; /* set when lingering began */
    if (c->out.len > c->out_off)
        c->deadline_ms = now + o->write_timeout_ms;
    else if (c->req_started)
        c->deadline_ms = c->req_start_ms + o->read_timeout_ms;
    else
        c->deadline_ms = now + o->idle_timeout_ms;
}

/* Do all the work the connection has. Returns false if it was closed (then
 * c must not be touched). */
static bool conn_process(grace__conn_t *c)
{
    int handled = 0;
    for (;;) {
        if (c->out.len > c->out_off) {
            int r = flush_out(c);
            if (r < 0) {
                conn_close(c);
                return false;
            }
            if (r == 0) {
                set_deadline(c);
                return true; /* EPOLLOUT will bring us back */
            }
        }
        if (c->close_after_write && !c->lingering) {
            /* Shut our side and drain what the client still sends, so the
             * kernel does not answer it with a reset that could destroy the
             * response we just wrote. */
            if (c->ssl)
                grace__tls_close_notify(c->ssl);
            shutdown(c->fd, SHUT_WR);
            c->lingering = true;
            c->deadline_ms = now_ms() + LINGER_MS;
            c->maybe_readable = true;
        }
        if (c->lingering) {
            for (;;) {
                char sink[4096];
                ssize_t n = recv(c->fd, sink, sizeof sink, 0);
                if (n > 0)
                    continue;
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    return true;
                conn_close(c);
                return false;
            }
        }
        if (try_request(c) == REQ_DONE) {
            if (++handled >= MAX_REQUESTS_PER_WAKE && c->in.len > 0) {
                /* Fairness: let other connections run. MOD re-queues the
                 * (writable) socket, so we come back in the next batch. */
                struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = c}};
                if (c->out.len > c->out_off || flush_out(c) >= 0)
                    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                set_deadline(c);
                return true;
            }
            continue;
        }
        if (c->out.len > c->out_off && flush_out(c) < 0) { /* e.g. 100 Continue */
            conn_close(c);
            return false;
        }
        if (!c->maybe_readable) {
            set_deadline(c);
            return true;
        }
        int r = read_more(c);
        if (r < 0) {
            if (c->out.len > c->out_off) {
                c->close_after_write = true; /* half-closed client: answer first */
                continue;
            }
            conn_close(c);
            return false;
        }
        if (r == 0) {
            set_deadline(c);
            return true;
        }
    }
}

/* An event for c: run it unless another thread holds it (then that thread
 * sees pending). */
static void conn_event(grace__conn_t *c)
{
    atomic_store(&c->pending, 1);
    if (atomic_exchange(&c->busy, 1))
        return;
    for (;;) {
        atomic_store(&c->pending, 0);
        c->maybe_readable = true;
        if (!conn_process(c))
            return;
        atomic_store(&c->busy, 0);
        if (!atomic_load(&c->pending) || atomic_exchange(&c->busy, 1))
            return;
    }
}

static void do_accept(grace__loop_t *L, grace__listener_t *l)
{
    grace_server_t *s = l->server;
    /* A draining server keeps accepting until this loop has dropped its
     * listeners: an EPOLLEXCLUSIVE wakeup taken here was not given to the
     * new process after a restart, so the connection must not be left in
     * the queue. */
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        if (atomic_load(&s->released_mask) & bit)
            return;
        struct sockaddr_storage sa;
        socklen_t sa_len = sizeof sa;
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &sa_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the connection waits in the kernel
                 * queue; log and let other loops work. */
                static _Atomic int64_t last_log;
                int64_t now = now_ms();
                if (now - atomic_load(&last_log) > 1000) {
                    atomic_store(&last_log, now);
                    grace_log("accept on [%s]: %s", l->shown, strerror(errno));
                }
            }
            return;
        }
        grace__conn_t *c = calloc(1, sizeof *c);
        grace_header_t *hdrs = c ? malloc(s->opt.max_headers * sizeof *hdrs) : NULL;
        if (hdrs == NULL) {
            free(c);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (l->tls && (c->ssl = grace__tls_new(s->tls_ctx, fd)) == NULL) {
            free(hdrs);
            free(c);
            close(fd);
            continue;
        }
        c->kind = GRACE__EV_CONN;
        c->fd = fd;
        c->loop = L;
        c->server = s;
        c->headers = hdrs;
        c->deadline_ms = now_ms() + s->opt.idle_timeout_ms;
        if (sa.ss_family == AF_INET6) {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&sa;
            if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
                inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], c->client_ip, sizeof c->client_ip);
            else
                inet_ntop(AF_INET6, &a6->sin6_addr, c->client_ip, sizeof c->client_ip);
            c->client_port = ntohs(a6->sin6_port);
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&sa;
            inet_ntop(AF_INET, &a4->sin_addr, c->client_ip, sizeof c->client_ip);
            c->client_port = ntohs(a4->sin_port);
        }
        atomic_fetch_add(&s->n_conns, 1);
        c->next = L->conns.next;
        c->prev = &L->conns;
        L->conns.next->prev = c;
        L->conns.next = c;
        struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = c}};
        if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            atomic_store(&c->busy, 1);
            conn_close(c);
        }
    }
}

/* ---- Loop ------------------------------------------------------------------ */

/* Drop the listeners of draining servers from this loop; the last loop to do
 * so closes them. */
static void release_listeners(grace__loop_t *L)
{
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    uint_fast64_t all = eng.n_loops == 64 ? ~(uint_fast64_t)0
                                          : (((uint_fast64_t)1 << eng.n_loops) - 1);
    pthread_mutex_lock(&grace__proc.mu);
    grace_server_t *head = grace__proc.servers;
    pthread_mutex_unlock(&grace__proc.mu);
    for (grace_server_t *s = head; s; s = s->next) {
        if (atomic_load(&s->state) != GRACE__SRV_DRAINING || (atomic_load(&s->released_mask) & bit))
            continue;
        for (size_t i = 0; i < s->n_listeners; i++)
            epoll_ctl(L->epfd, EPOLL_CTL_DEL, s->listeners[i].fd, NULL);
        if ((atomic_fetch_or(&s->released_mask, bit) | bit) == all) {
            for (size_t i = 0; i < s->n_listeners; i++) {
                close(s->listeners[i].fd);
                s->listeners[i].fd = -1;
            }
            atomic_store(&s->listeners_closed, true);
            grace__server_listeners_released(s);
        }
    }
}

/* Between batches: free closed connections, release listeners, enforce
 * timeouts and close idle connections of draining servers. No handler runs
 * here, so the owner cannot change under it. */
static void maintenance(grace__loop_t *L)
{
    pthread_mutex_lock(&L->mu);
    grace__conn_t *dead = L->closed;
    L->closed = NULL;
    pthread_mutex_unlock(&L->mu);
    while (dead) {
        grace__conn_t *n = dead->next_closed;
        conn_free(dead);
        dead = n;
    }
    bool drain = atomic_exchange(&L->check_drain, false);
    if (drain)
        release_listeners(L);
    int64_t now = now_ms();
    if (!drain && now < L->next_scan_ms)
        return;
    L->next_scan_ms = now + SCAN_MS;
    for (grace__conn_t *c = L->conns.next, *n; c != &L->conns; c = n) {
        n = c->next;
        if (atomic_exchange(&c->busy, 1))
            continue; /* in use by a handler thread, or closed */
        bool idle = !c->req_started && c->out.len == c->out_off;
        char peek;
        if (idle && !c->lingering && atomic_load(&c->server->state) != GRACE__SRV_RUNNING &&
            recv(c->fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) != 1) {
            /* (A request already in the socket is not idle: its event is
             * pending and it will be answered, with Connection: close.) */
            /* FIN, then read until the client closes: a close() now would
             * answer a request already on its way with a reset. A request
             * that crosses the FIN is not answered; clients retry those
             * (RFC 9112 9.3.1). */
            if (c->ssl)
                grace__tls_close_notify(c->ssl);
            shutdown(c->fd, SHUT_WR);
            c->lingering = true;
            c->deadline_ms = now + LINGER_MS;
        }
        if (now >= c->deadline_ms) {
            if (c->req_started && c->out.len == c->out_off && !c->lingering &&
                !c->close_after_write) {
                grace_log("request from %s timed out after %lld ms", c->client_ip,
                          (long long)c->server->opt.read_timeout_ms);
                grace__response_error(&c->out, 408, c->server->server_header);
                flush_out(c); /* best effort: the client is slow anyway */
            }
            conn_close(c);
            continue;
        }
        atomic_store(&c->busy, 0);
        if (atomic_load(&c->pending)) {
            /* Cannot happen while we own the loop (only the owner delivers
             * events), but be safe: process it now. */
            conn_event(c);
        }
    }
}

static int loop_timeout(const grace__loop_t *L)
{
    int64_t t = L->next_scan_ms - now_ms();
    return t < 0 ? 0 : (t > SCAN_MS ? SCAN_MS : (int)t);
}

/* Run loop L until this thread loses it to a handoff. */
static void loop_run(grace__loop_t *L)
{
    for (;;) {
        if (L->idx >= L->n_events) {
            maintenance(L);
            if (self->lost)
                return;
            int n = epoll_wait(L->epfd, L->events, BATCH, loop_timeout(L));
            if (n < 0) {
                if (errno != EINTR)
                    grace_log("epoll_wait: %s", strerror(errno));
                n = 0;
            }
            L->n_events = n;
            L->idx = 0;
            continue;
        }
        struct epoll_event ev = L->events[L->idx++];
        switch (*(int *)ev.data.ptr) {
        case GRACE__EV_CONN:
            conn_event(ev.data.ptr);
            break;
        case GRACE__EV_LISTENER:
            do_accept(L, ev.data.ptr);
            break;
        case GRACE__EV_WAKE: {
            uint64_t v;
            ssize_t r = read(L->wake.fd, &v, sizeof v);
            (void)r;
            break;
        }
        }
        if (self->lost)
            return;
    }
}

/* ---- Threads ------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    grace__worker_t *w = arg;
    self = w;
    pthread_mutex_lock(&eng.mu);
    for (;;) {
        while (w->loop == NULL) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += SPARE_IDLE_MS / 1000;
            if (pthread_cond_timedwait(&w->cond, &eng.mu, &ts) == ETIMEDOUT && w->loop == NULL) {
                /* Retire: unlink from the spare list. */
                for (grace__worker_t **pp = &eng.spares; *pp; pp = &(*pp)->next_spare) {
                    if (*pp == w) {
                        *pp = w->next_spare;
                        eng.n_threads--;
                        pthread_mutex_unlock(&eng.mu);
                        pthread_cond_destroy(&w->cond);
                        free(w);
                        return NULL;
                    }
                }
            }
        }
        grace__loop_t *L = w->loop;
        pthread_mutex_unlock(&eng.mu);
        loop_run(L);
        pthread_mutex_lock(&eng.mu);
        w->loop = NULL;
        w->lost = false;
        w->next_spare = eng.spares;
        eng.spares = w;
    }
}

/* Start a thread for loop L (NULL: as a spare). Called with eng.mu held. */
static grace__worker_t *spawn_worker(grace__loop_t *L)
{
    if (eng.n_threads >= MAX_THREADS)
        return NULL;
    grace__worker_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    pthread_cond_init(&w->cond, NULL);
    w->loop = L;
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        pthread_cond_destroy(&w->cond);
        free(w);
        return NULL;
    }
    eng.n_threads++;
    return w;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    const struct timespec tick = {0, MONITOR_TICK_MS * 1000000L};
    for (;;) {
        nanosleep(&tick, NULL);
        int64_t now = grace__now_ms();
        grace__drain_tick(now);
        for (int i = 0; i < eng.n_loops; i++) {
            grace__loop_t *L = &eng.loops[i];
            uint64_t seq = atomic_load_explicit(&L->busy_seq, memory_order_acquire);
            if (seq == 0 ||
                now - atomic_load_explicit(&L->busy_start_ms, memory_order_relaxed) < HANDOFF_MS)
                continue;
            /* Have a thread ready before claiming, so a claimed loop is
             * never left without one. */
            pthread_mutex_lock(&eng.mu);
            grace__worker_t *w = eng.spares;
            if (w)
                eng.spares = w->next_spare;
            else
                w = spawn_worker(NULL);
            if (w && atomic_compare_exchange_strong(&L->busy_seq, &seq, 0)) {
                w->loop = L;
                pthread_cond_signal(&w->cond);
            } else if (w) {
                w->next_spare = eng.spares;
                eng.spares = w;
            }
            pthread_mutex_unlock(&eng.mu);
        }
    }
    return NULL;
}

static void engine_init(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("GRACE_LOOPS");
    if (env && atoi(env) > 0)
        n = atoi(env);
    if (n < 1)
        n = 1;
    if (n > MAX_LOOPS)
        n = MAX_LOOPS;
    eng.loops = calloc((size_t)n, sizeof *eng.loops);
    if (eng.loops == NULL) {
        eng.err = GRACE_ENOMEM;
        return;
    }
    eng.n_loops = (int)n;
    for (int i = 0; i < eng.n_loops; i++) {
        grace__loop_t *L = &eng.loops[i];
        L->id = i;
        L->conns.next = L->conns.prev = &L->conns;
        pthread_mutex_init(&L->mu, NULL);
        L->epfd = epoll_create1(EPOLL_CLOEXEC);
        L->wake.kind = GRACE__EV_WAKE;
        L->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {EPOLLIN, {.ptr = &L->wake}};
        if (L->epfd < 0 || L->wake.fd < 0 || epoll_ctl(L->epfd, EPOLL_CTL_ADD, L->wake.fd, &ev)) {
            eng.err = -errno;
            return;
        }
    }
    pthread_mutex_lock(&eng.mu);
    for (int i = 0; i < eng.n_loops; i++) {
        if (spawn_worker(&eng.loops[i]) == NULL) {
            eng.err = GRACE_ENOMEM;
            break;
        }
    }
    pthread_mutex_unlock(&eng.mu);
    pthread_t t;
    if (eng.err == 0 && pthread_create(&t, NULL, monitor_main, NULL) != 0)
        eng.err = GRACE_ENOMEM;
    else if (eng.err == 0)
        pthread_detach(t);
}

int grace__engine_start(void)
{
    pthread_once(&eng.once, engine_init);
    return eng.err;
}

int grace__engine_add_listener(grace__listener_t *l)
{
    for (int i = 0; i < eng.n_loops; i++) {
        struct epoll_event ev = {EPOLLIN | EPOLLEXCLUSIVE, {.ptr = l}};
        if (epoll_ctl(eng.loops[i].epfd, EPOLL_CTL_ADD, l->fd, &ev) < 0)
            return -errno;
    }
    return 0;
}

void grace__engine_drain_server(grace_server_t *s)
{
    (void)s; /* each loop finds every draining server itself */
    for (int i = 0; i < eng.n_loops; i++) {
        atomic_store(&eng.loops[i].check_drain, true);
        uint64_t one = 1;
        ssize_t r = write(eng.loops[i].wake.fd, &one, sizeof one);
        (void)r;
    }
}

/* ---- Accessors for request.c / response.c ------------------------------- */

int grace__conn_write_blocking(grace__conn_t *c, const char *data, size_t len)
{
    int64_t timeout = c->server->opt.write_timeout_ms;
    /* Whatever is queued (a 100 Continue) goes first. */
    const char *parts[2] = {c->out.ptr + c->out_off, data};
    size_t lens[2] = {c->out.len - c->out_off, len};
    for (int i = 0; i < 2; i++) {
        const char *p = parts[i];
        size_t n = lens[i];
        while (n > 0) {
            ssize_t w = conn_send(c, p, n);
            if (w > 0) {
                p += w;
                n -= (size_t)w;
                continue;
            }
            if (w == -EAGAIN || w == -EWOULDBLOCK) {
                /* (TLS may want to read first: wait for either.) */
                struct pollfd pfd = {c->fd, (short)(POLLOUT | (c->ssl ? POLLIN : 0)), 0};
                int r = poll(&pfd, 1, (int)timeout);
                if (r > 0 && !(pfd.revents & (POLLERR | POLLHUP)))
                    continue;
                if (r < 0 && errno == EINTR)
                    continue;
                return r == 0 ? -ETIMEDOUT : -EPIPE;
            }
            return w < 0 ? (int)w : -EPIPE;
        }
    }
    c->out.len = c->out_off = 0;
    return 0;
}

const char *grace__conn_client_ip(const grace__conn_t *c)
{
    return c->client_ip;
}

int grace__conn_client_port(const grace__conn_t *c)
{
    return c->client_port;
}

grace_server_t *grace__conn_server(const grace__conn_t *c)
{
    return c->server;
}

grace__arena_t *grace__conn_arena(grace__conn_t *c)
{
    return &c->arena;
}

bool grace__conn_draining(const grace__conn_t *c)
{
    return atomic_load(&c->server->state) != GRACE__SRV_RUNNING;
}

const grace_request_t *grace__conn_request(const grace__conn_t *c)
{
    return &c->req;
}
