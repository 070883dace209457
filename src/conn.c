/*
 * conn.c -- one connection's life: read, parse, run the handler chain,
 * write, keep alive or close.
 *
 * conn_process() is the state machine; it runs on whichever thread holds the
 * connection's busy flag (workers.c explains who may) and does all the work
 * the connection has: flush pending output, answer every complete request in
 * the buffer (at most MAX_REQUESTS_PER_WAKE, then it yields), read more.
 * Requests are parsed in place; a head's views point into c->in, so when the
 * buffer must grow for a body the head is parsed again (run_request). Errors
 * in the client's bytes get their 4xx, one log line, and a lingering close:
 * FIN first, then input is drained so no reset destroys the answer. Plain
 * and TLS connections share everything but conn_send/conn_recv.
 */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Connections ---------------------------------------------------------- */

/* Send: bytes written, or -EAGAIN, or another -errno. */
static ssize_t conn_send(grace__conn_t *c, const char *p, size_t len)
{
    if (c->ssl)
        return grace__tls_write(c->ssl, p, len);
    /* The last answer before we close: MSG_MORE keeps its tail in the
     * socket until the close (or shutdown) right after, which then sends
     * the FIN in the same segment -- one packet fewer per connection, for
     * us, the network and the client. Nothing else is ever held back:
     * every path that sets close_after_write closes or shuts down as soon
     * as the answer is written (conn_process). */
    int flags = MSG_NOSIGNAL | (c->close_after_write ? MSG_MORE : 0);
    ssize_t n;
    do
        n = send(c->fd, p, len, flags);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

enum { SNIFF_WAIT, SNIFF_TLS, SNIFF_PLAIN };

/* Look at a TLS connection's first byte before OpenSSL reads anything. A
 * plain HTTP request sent to an HTTPS port gets a plain answer that says so
 * (a TLS alert would mean nothing to that client). Until the first byte is
 * here, nothing may be read: SSL_read would take the ClientHello unseen and
 * the next record would be mistaken for plain text. */
static int sniff_tls(grace__conn_t *c)
{
    unsigned char first;
    ssize_t one = recv(c->fd, &first, 1, MSG_PEEK);
    if (one < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return SNIFF_WAIT;
    c->tls_checked = true;
    if (one != 1 || first == 0x16) /* EOF/error (SSL_read will say), or a handshake record */
        return SNIFF_TLS;
    static const char answer[] = "HTTP/1.1 400 Bad Request\r\n"
                                 "Content-Type: text/plain; charset=utf-8\r\n"
                                 "Connection: close\r\nContent-Length: 48\r\n\r\n"
                                 "Client sent an HTTP request to an HTTPS server.\n";
    char sample[64];
    ssize_t got = recv(c->fd, sample, sizeof sample, MSG_PEEK);
    size_t n = got > 0 ? (size_t)got : 0;
    /* Say what it is: an HTTP request line starts with a method token and
     * a space; anything else is some other protocol (or noise). */
    size_t tok = 0;
    while (tok < n && sample[tok] >= 'A' && sample[tok] <= 'Z')
        tok++;
    bool http = tok > 0 && (tok == n || sample[tok] == ' ');
    char why[64];
    if (http)
        snprintf(why, sizeof why, "plain HTTP sent to an HTTPS port");
    else
        snprintf(why, sizeof why, "not TLS (first byte 0x%02x) sent to an HTTPS port", first);
    if (c->server->opt.error_log >= 0)
        grace__log_bad_input(c->client_ip, http ? 400 : 0, why, sample, n);
    if (http)
        grace__buf_append(&c->out, answer, sizeof answer - 1);
    grace__tls_free(c->ssl); /* no close_notify: there is no TLS session */
    c->ssl = NULL;
    c->close_after_write = true;
    return SNIFF_PLAIN;
}

/* Receive: bytes read, 0 at the peer's end, -EAGAIN, or another -errno. */
static ssize_t conn_recv(grace__conn_t *c, char *p, size_t len)
{
    if (c->ssl && !c->tls_checked && sniff_tls(c) != SNIFF_TLS)
        return -EAGAIN; /* wait for the first byte, or send the plain answer queued */
    if (c->ssl) {
        ssize_t n = grace__tls_read(c->ssl, p, len);
        if (n == -EPROTO && !grace__tls_handshake_done(c->ssl))
            grace_log("TLS handshake with %s failed", c->client_ip);
        return n;
    }
    ssize_t n;
    do
        n = recv(c->fd, p, len, 0);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

void grace__conn_close(grace__conn_t *c)
{
    grace__loop_t *L = c->loop;
    c->closed = true;
    /* Explicit DEL: a forked child could still hold the fd, and epoll only
     * forgets an fd when its last reference is closed. */
    if (c->in_epoll)
        epoll_ctl(L->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    pthread_mutex_lock(&L->mu);
    c->next_closed = L->closed;
    L->closed = c;
    pthread_mutex_unlock(&L->mu);
    atomic_store_explicit(&L->fd_freed, true, memory_order_relaxed); /* see resume_accepting */
    grace_server_t *s = c->server;
    long left = atomic_fetch_sub(&s->n_conns, 1) - 1;
    if (atomic_load_explicit(&s->over_limit, memory_order_relaxed) &&
        (size_t)left < s->opt.max_connections - s->opt.max_connections / 10 &&
        atomic_exchange(&s->over_limit, false))
        grace_log("server %s: below max_connections again; %ld connections were answered 503",
                  s->name, atomic_exchange(&s->n_refused, 0));
    if (left == 0)
        grace__engine_conn_closed(s);
}

/* Write c->out without blocking. Returns 1 when all is written, 0 on EAGAIN,
 * -1 when the peer is gone. */
int grace__conn_flush(grace__conn_t *c)
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

/* Shut our side (TLS close_notify, then FIN) and from now on only drain
 * what the client sends, until it closes or LINGER_MS pass. */
void grace__conn_linger(grace__conn_t *c, int64_t now)
{
    if (c->ssl)
        grace__tls_close_notify(c->ssl);
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->deadline_ms = now + LINGER_MS;
}

/* True if the client sent bytes we have not read. Closing a socket with
 * unread input makes the kernel answer with a reset, which can destroy the
 * response before the client reads it. */
static bool has_unread_input(const grace__conn_t *c)
{
    char b;
    ssize_t n;
    do
        n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n > 0;
}

/* Queue an error answer and mark the connection to close after it. */
static void queue_error(grace__conn_t *c, int status)
{
    grace__response_error(&c->out, status, c->server->server_header);
    c->close_after_write = true;
}

static void bad_input(grace__conn_t *c, int status)
{
    if (c->server->opt.error_log >= 0) /* (errorLogEnabled: false turns these off) */
        grace__log_bad_input(c->client_ip, status, grace__status_text(status), c->in.ptr,
                             c->in.len);
    queue_error(c, status);
}

static int write_blocking(grace__conn_t *c, const char *data, size_t len);

/* Streaming writes from the handler's thread (grace_response_flush): the
 * one function request/response code reaches the connection through. */
static int write_from_handler(void *ctx, const char *data, size_t len)
{
    return write_blocking(ctx, data, len);
}

/* Fill in the exchange for the request whose head (and body) is in c->in:
 * what request.c and response.c need of the connection. */
static void prepare_exchange(grace__conn_t *c)
{
    grace_request_t *req = &c->ex->req;
    grace_response_t *res = &c->ex->res;
    if (c->in.ptr != c->head_base) {
        /* The buffer moved while the body was read: the head's views point
         * into the old memory. Parsing the same bytes again is cheaper and
         * safer than rebasing every pointer. */
        req->h.headers = c->ex->headers;
        req->h.n_headers = c->server->opt.max_headers;
        grace__http_parse_request(c->in.ptr, c->head_len, c->server->opt.max_header_bytes, &req->h);
    }
    /* No memset of the request (over a kilobyte, on every request): the
     * router fills req->match and dispatch sets the chain; the rest is here. */
    req->server = c->server;
    req->arena = &c->ex->arena;
    req->client_ip = c->client_ip;
    req->client_port = c->client_port;
    req->body.ptr = c->in.ptr + c->head_len;
    req->body.len = c->body_len;
    grace__response_reset(res, req);
    res->write = write_from_handler;
    res->write_ctx = c;
}

/* Decode the path routes are matched on; false (and a 400 queued) if it
 * has a bad %XX. */
static bool decode_path(grace__conn_t *c)
{
    grace_request_t *req = &c->ex->req;
    grace_str_t path = req->h.path;
    if (path.len && memchr(path.ptr, '%', path.len)) {
        char *d = grace__arena_alloc(&c->ex->arena, path.len + 1);
        ssize_t n = d ? grace__url_decode(d, path.ptr, path.len, false) : -1;
        if (n < 0) {
            bad_input(c, 400);
            return false;
        }
        path.ptr = d;
        path.len = (size_t)n;
    }
    req->path = path;
    return true;
}

static void access_log(const grace__conn_t *c, int64_t t0)
{
    const grace_request_t *req = &c->ex->req;
    const grace__http_request_t *h = &req->h;
    grace_str_t ua = grace_request_header(req, "User-Agent");
    grace_str_t ref = grace_request_header(req, "Referer");
    grace_str_t host = grace_request_host(req);
    grace_log("%d \"%.*s %s %.*s %.*s HTTP/1.%d\" %.3f, %s, \"%.*s\", \"%.*s\"", c->ex->res.status,
              (int)h->method.len, h->method.ptr, c->ssl ? "https" : "http", (int)host.len,
              host.ptr ? host.ptr : "", (int)h->target.len, h->target.ptr, h->minor_version,
              (double)(grace__now_ms() - t0) / 1000.0, c->client_ip, (int)ref.len,
              ref.ptr ? ref.ptr : "", (int)ua.len, ua.ptr ? ua.ptr : "");
}

/* Queue the handler's answer and decide what becomes of the connection. */
static void queue_answer(grace__conn_t *c, size_t consumed)
{
    grace_response_t *res = &c->ex->res;
    if (c->served && !c->nodelay) {
        /* A second request: now small answers may follow unacknowledged ones
         * (keep-alive, pipelining), which Nagle would hold back. A connection
         * used once never pays for the call. */
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->nodelay = true;
    }
    if (grace__response_finish(res, &c->out) < 0) { /* (decides keep-alive) */
        c->out.len = c->out_off = 0;
        queue_error(c, 500);
        return;
    }
    if (res->conn_close) {
        c->close_after_write = true;
        /* The client itself asked to close ("Connection: close", HTTP/1.0)
         * and sent nothing after this request: it will send no more, so the
         * connection can close without lingering (see conn_process). */
        c->client_closes = !c->ex->req.h.keep_alive && c->in.len == consumed;
    }
}

/* Run one complete request (head parsed, body in place) and queue its
 * answer. */
static void run_request(grace__conn_t *c, size_t consumed)
{
    prepare_exchange(c);
    grace_response_t *res = &c->ex->res;
    if (decode_path(c)) {
        grace_server_t *s = c->server;
        /* The coarse clock (engine.h) for the handler's time: a precise
         * read per request showed in keep-alive profiles. */
        int64_t t0 = now_ms(), t0_log = s->opt.access_log ? grace__now_ms() : 0;
        atomic_fetch_add_explicit(&s->n_inflight, 1, memory_order_relaxed);
        grace__handler_enter();
        grace__request_dispatch(&c->ex->req, res);
        grace__handler_leave();
        atomic_fetch_sub_explicit(&s->n_inflight, 1, memory_order_relaxed);
        /* (A handler that took a while gave the client time to send more
         * than c->in has: see conn_process.) */
        c->handler_took_ms = now_ms() > t0;
        if (res->failed) { /* a streaming write failed: the peer is gone */
            c->close_after_write = true;
            c->out.len = c->out_off = 0;
        } else {
            queue_answer(c, consumed);
            if (s->opt.access_log)
                access_log(c, t0_log);
        }
    }
    grace__arena_reset(&c->ex->arena);
    grace__buf_consume(&c->in, consumed);
    /* A large request or answer must not pin its buffers for the rest of a
     * keep-alive connection's life. */
    if (res->body.cap > BUF_KEEP)
        grace__buf_free(&res->body);
    if (res->headers.cap > BUF_KEEP)
        grace__buf_free(&res->headers);
    if (c->in.len == 0 && c->in.cap > BUF_KEEP)
        grace__buf_free(&c->in);
    c->state = ST_HEAD;
    c->req_started = false;
    c->served = true;
    c->head_len = c->body_len = 0;
}

enum { REQ_NEED, REQ_DONE, REQ_BODY };

/* Parse the head in c->in. REQ_NEED: more bytes; REQ_DONE: answered (a
 * request without a body, or an error); REQ_BODY: a body follows, c->state
 * says how it is framed. */
static int read_head(grace__conn_t *c)
{
    const grace_server_options_t *o = &c->server->opt;
    if (c->in.len == 0)
        return REQ_NEED;
    if (!c->req_started) {
        c->req_started = true;
        c->req_start_ms = now_ms();
    }
    /* Allocated at the first request, not at accept: idle connections stay
     * small (see grace__conn_trim). */
    grace__exchange_t *x = grace__exchange_get(c, o->max_headers);
    if (x == NULL) {
        queue_error(c, 503);
        return REQ_DONE;
    }
    x->req.h.headers = x->headers;
    x->req.h.n_headers = o->max_headers;
    int r = grace__http_parse_request(c->in.ptr, c->in.len, o->max_header_bytes, &x->req.h);
    if (r == 0)
        return REQ_NEED;
    if (r < 0) {
        bad_input(c, -r);
        return REQ_DONE;
    }
    c->head_len = (size_t)r;
    c->head_base = c->in.ptr;
    c->body_len = 0;
    const grace__http_request_t *h = &x->req.h;
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
    return REQ_BODY;
}

/* A chunked body: decoded in place, right after the head. */
static int read_chunked(grace__conn_t *c)
{
    size_t start = c->head_len + c->body_len;
    size_t n = c->in.len - start;
    if (n == 0)
        return REQ_NEED;
    size_t len = n;
    ssize_t r = grace__chunked_decode(&c->chunked, c->in.ptr + start, &len,
                                      (uint64_t)c->server->opt.client_max_body_size);
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

/* Parse and run at most one request from the buffered input. */
static int try_request(grace__conn_t *c)
{
    if (c->state == ST_HEAD) {
        int r = read_head(c);
        if (r != REQ_BODY)
            return r;
    }
    if (c->state == ST_CHUNKED)
        return read_chunked(c);
    /* ST_BODY: Content-Length bytes after the head. */
    size_t want = c->head_len + (size_t)c->ex->req.h.content_length;
    if (c->in.len < want) {
        if (grace__buf_reserve(&c->in, want - c->in.len) < 0) {
            queue_error(c, 500);
            return REQ_DONE;
        }
        return REQ_NEED;
    }
    c->body_len = (size_t)c->ex->req.h.content_length;
    run_request(c, want);
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
    /* A connection with no buffer reads into the stack first, so one that
     * is woken with nothing to read (a new or idle one) allocates nothing. */
    char first[READ_CHUNK];
    bool on_stack = c->in.cap == 0;
    if (!on_stack && grace__buf_reserve(&c->in, READ_CHUNK) < 0)
        return -1;
    size_t room = on_stack ? sizeof first : c->in.cap - c->in.len;
    if (room > limit - c->in.len)
        room = limit - c->in.len;
    ssize_t n = conn_recv(c, on_stack ? first : c->in.ptr + c->in.len, room);
    if (n > 0) {
        if (on_stack) {
            if (grace__buf_reserve(&c->in, READ_CHUNK) < 0)
                return -1;
            memcpy(c->in.ptr, first, (size_t)n);
        }
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
        return c->close_after_write ? 1 : 0; /* an answer to send (sniff_tls) */
    }
    return -1;
}

static void set_deadline(grace__conn_t *c)
{
    const grace_server_options_t *o = &c->server->opt;
    int64_t now = now_ms();
    if (c->lingering)
        return; /* set when lingering began */
    if (c->ssl && !grace__tls_handshake_done(c->ssl))
        return; /* the handshake's limit runs from the accept */
    if (c->out.len > c->out_off)
        c->deadline_ms = now + o->write_timeout_ms;
    else if (c->req_started)
        c->deadline_ms = c->req_start_ms + o->read_timeout_ms;
    else
        c->deadline_ms = now + o->idle_timeout_ms;
}

/* Lingering: throw away what the client still sends until it closes
 * (then close: false) or nothing more is there now (true). */
static bool discard_input(grace__conn_t *c)
{
    for (;;) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        grace__conn_close(c);
        return false;
    }
}

/* Do all the work the connection has. Returns false if it was closed (then
 * c must not be touched). */
static bool conn_process(grace__conn_t *c)
{
    int handled = 0;
    for (;;) {
        if (c->out.len > c->out_off) {
            int r = grace__conn_flush(c);
            if (r < 0) {
                grace__conn_close(c);
                return false;
            }
            if (r == 0) {
                set_deadline(c);
                return true; /* EPOLLOUT will bring us back */
            }
        }
        if (c->close_after_write && !c->lingering) {
            if (c->client_closes && (!c->handler_took_ms || !has_unread_input(c))) {
                /* The client asked to close and sent nothing after its
                 * request; it may not send more (RFC 9112 9.6), so close at
                 * once, as nginx does, with no lingering. Bytes that came
                 * while the handler ran (c->in did not see them) would turn
                 * the close into a reset: so after a handler that ran
                 * across a tick of the coarse clock (a few ms), look (one
                 * recv); after a quicker one, do not -- the look would
                 * cost a fifth of the system calls of such a connection,
                 * and only a client breaking the RFC within that instant
                 * could notice. A
                 * close we decide (errors, a drain) lingers instead: that
                 * client may have its next request on the wire. */
                if (c->ssl)
                    grace__tls_close_notify(c->ssl);
                grace__conn_close(c);
                return false;
            }
            /* Shut our side and drain what the client still sends, so the
             * kernel does not answer it with a reset that could destroy the
             * response we just wrote. */
            grace__conn_linger(c, now_ms());
            c->maybe_readable = true;
        }
        if (c->lingering)
            return discard_input(c);
        if (try_request(c) == REQ_DONE) {
            if (++handled >= MAX_REQUESTS_PER_WAKE && c->in.len > 0) {
                /* Fairness: let other connections run. MOD re-queues the
                 * (writable) socket, so we come back in the next batch. */
                struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = c}};
                if (c->out.len > c->out_off || grace__conn_flush(c) >= 0)
                    epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev);
                set_deadline(c);
                return true;
            }
            continue;
        }
        if (c->out.len > c->out_off && grace__conn_flush(c) < 0) { /* e.g. 100 Continue */
            grace__conn_close(c);
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
            grace__conn_close(c);
            return false;
        }
        if (r == 0) {
            set_deadline(c);
            return true;
        }
    }
}

/* A connection just accepted. Its client usually sent the request right
 * behind the handshake, so try it now, before epoll knows the socket: a
 * connection that is done after one answer (the client asked to close)
 * then costs no epoll_ctl at all, and one that stays open joins the epoll
 * set afterwards (an edge-triggered ADD reports what is pending already, so
 * nothing is missed). Nobody else can have an event for it yet. */
void grace__conn_start(grace__conn_t *c)
{
    atomic_store(&c->busy, 1);
    c->maybe_readable = true;
    if (!conn_process(c))
        return;
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = c}};
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        grace_log("epoll_ctl: %s; closing the connection from %s", strerror(errno), c->client_ip);
        grace__conn_close(c);
        return;
    }
    c->in_epoll = true;
    atomic_store(&c->busy, 0);
    /* If its handler ran long, another thread owns the loop now and may
     * have had an event for it since the ADD: take it up (as
     * grace__conn_event's own loop would). */
    if (atomic_load(&c->pending))
        grace__conn_event(c);
}

/* An event for c: run it unless another thread holds it (then that thread
 * sees pending). */
void grace__conn_event(grace__conn_t *c)
{
    atomic_store(&c->pending, 1);
    if (atomic_exchange(&c->busy, 1))
        return;
    for (;;) {
        atomic_store(&c->pending, 0);
        c->maybe_readable = true;
        c->active_ms = now_ms();
        if (!conn_process(c))
            return;
        atomic_store(&c->busy, 0);
        if (!atomic_load(&c->pending) || atomic_exchange(&c->busy, 1))
            return;
    }
}

/* ---- Timers ------------------------------------------------------------------ */

/* The drain's rule for a connection between two requests (SPEC G9, B2). A
 * client that uses the connection may have its next request on the wire
 * already: a FIN now would meet it, and a client that does not retry (wrk, a
 * load balancer, any POST) would see a failure. So such a connection stays
 * open and its next request is answered, with "Connection: close" (conn.c
 * run_request; HAProxy's idle-close-on-response). Only a connection that
 * has carried nothing for drain_idle_ms is closed early: its client is not
 * using it. Each one waits a further share of drain_idle_ms of its own, so a
 * drain does not make every idle client reconnect in the same millisecond.
 * What remains is the race HTTP/1.1 cannot close: a client that sends on a
 * connection idle that long at the very moment the FIN goes out (there is
 * no GOAWAY in HTTP/1.1); RFC 9112 9.3.1 lets clients retry those. */
static bool drain_closes(const grace__conn_t *c, int64_t now)
{
    const grace_server_t *s = c->server;
    if (atomic_load(&s->state) == GRACE__SRV_RUNNING)
        return false;
    int64_t idle_ms = atomic_load(&s->drain_idle_ms);
    int64_t from = c->active_ms + idle_ms;
    int64_t start = atomic_load(&s->drain_start_ms);
    if (from < start)
        from = start; /* idle long before the drain: the spread starts now */
    uint32_t h = ((uint32_t)c->client_port * 2654435761u) ^ (uint32_t)c->fd;
    return now >= from + (int64_t)(h % (uint32_t)(idle_ms + 1));
}

bool grace__conn_tick(grace__conn_t *c, int64_t now)
{
    bool between =
        !c->req_started && !c->lingering && !c->close_after_write && c->out.len == c->out_off;
    /* (A request already in the socket is not idle: its event comes, and it
     * is answered with Connection: close.) */
    if (between && drain_closes(c, now) && !has_unread_input(c)) {
        /* FIN, then read until the client closes: a close() now would
         * answer bytes already on their way with a reset. */
        grace__conn_linger(c, now);
        return true;
    }
    if (now >= c->deadline_ms) {
        if (c->ssl && !c->lingering && !grace__tls_handshake_done(c->ssl))
            grace_log("TLS handshake with %s not done within %lld ms: connection closed",
                      c->client_ip, (long long)c->server->opt.tls_handshake_timeout_ms);
        if (c->req_started && c->out.len == c->out_off && !c->lingering && !c->close_after_write) {
            if (c->server->opt.error_log >= 0)
                grace_log("request from %s timed out after %lld ms", c->client_ip,
                          (long long)c->server->opt.read_timeout_ms);
            grace__response_error(&c->out, 408, c->server->server_header);
            if (grace__conn_flush(c) == 1) {
                /* Sent: FIN, then discard what the client still sends for a
                 * while, so no reset destroys the 408 before it is read. */
                grace__conn_linger(c, now);
                return true;
            }
        }
        grace__conn_close(c);
        return false;
    }
    /* Between requests for IDLE_TRIM_MS or more: free the buffers until the
     * client speaks again. */
    if (between && (c->in.cap || c->ex) && now - c->active_ms >= IDLE_TRIM_MS)
        grace__conn_trim(c);
    return true;
}

/* ---- Streaming writes ------------------------------------------------------ */

/* Write all of data to the connection from a handler thread (streaming),
 * waiting up to the write timeout. 0 or a negative error. */
static int write_blocking(grace__conn_t *c, const char *data, size_t len)
{
    int64_t timeout = c->server->opt.write_timeout_ms;
    /* Whatever is queued (a 100 Continue) goes first. */
    const char *parts[2] = {c->out.ptr ? c->out.ptr + c->out_off : NULL, data};
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
