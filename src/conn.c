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
 * FIN first, then input is drained so no reset destroys the answer. How
 * bytes reach the socket (recv/send, OpenSSL, or the io_uring's receives
 * and sends) is conn_io.c's; this file is the same for all of them, except
 * that with an owner-only backend a connection runs only on its loop's
 * owner thread (step_owner).
 */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Connections ---------------------------------------------------------- */

void grace__conn_close(grace__conn_t *c)
{
    grace__loop_t *L = c->loop;
    c->closed = true;
    grace__be->conn_forget(c);
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
    res->write = grace__conn_write_blocking;
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
    return grace__conn_read(c, limit);
}

/* A connection that waits for its next request keeps its buffers for
 * IDLE_TRIM_MS, so a busy keep-alive client allocates nothing per request.
 * On a crowded server it gives them back at once: a burst of 10,000 new
 * keep-alive connections would otherwise hold about 9 KiB each for a
 * second (docs/benchmarks.md, idle). */
static void trim_if_crowded(grace__conn_t *c)
{
    if (!(c->in.cap || c->ex || c->out.cap) || c->req_started || c->in.len != 0 ||
        atomic_load_explicit(&c->server->n_conns, memory_order_relaxed) <= CROWD_CONNS)
        return;
    /* An answer still on its way (io_uring: its send completes in a later
     * batch, maybe behind a crowd of accepts) keeps only c->out. */
    if (c->out.len == c->out_off)
        grace__conn_trim(c);
    else
        grace__conn_trim_input(c);
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

enum { STEP_ON, STEP_WAIT, STEP_CLOSED };

/* Output first: what is queued goes out; after the last answer, close or
 * linger. */
static int step_output(grace__conn_t *c)
{
    if (c->out.len > c->out_off) {
        int r = grace__conn_flush(c);
        if (r < 0) {
            grace__conn_close(c);
            return STEP_CLOSED;
        }
        if (r == 0) {
            trim_if_crowded(c);
            set_deadline(c);
            return STEP_WAIT; /* writable again, or the send's completion, brings us back */
        }
    }
    if (c->close_after_write && !c->lingering) {
        if (c->client_closes && (!c->handler_took_ms || !grace__conn_unread_input(c))) {
            /* The client asked to close and sent nothing after its
             * request; it may not send more (RFC 9112 9.6), so close at
             * once, as nginx does, with no lingering. Bytes that came
             * while the handler ran (c->in did not see them) would turn
             * the close into a reset: so after a handler that ran across
             * a tick of the coarse clock (a few ms), look (one recv);
             * after a quicker one, do not -- the look would cost a fifth
             * of the system calls of such a connection, and only a client
             * breaking the RFC within that instant could notice. A close we decide (errors, a
             * drain) lingers instead: that client may have its next
             * request on the wire. */
            if (c->ssl)
                grace__tls_close_notify(c->ssl);
            grace__conn_close(c);
            return STEP_CLOSED;
        }
        /* Shut our side and drain what the client still sends, so the
         * kernel does not answer it with a reset that could destroy the
         * response we just wrote. */
        grace__conn_linger(c, now_ms());
        c->maybe_readable = true;
    }
    if (c->lingering)
        return grace__conn_discard(c) ? STEP_WAIT : STEP_CLOSED;
    return STEP_ON;
}

/* Then input: answer a request that is complete, or read more. */
static int step_input(grace__conn_t *c, int *handled)
{
    if (try_request(c) == REQ_DONE) {
        if (grace__be->owner_only && !grace__loop_owned(c->loop))
            return STEP_ON; /* the handler lost us the loop: step_owner hands c over */
        if (++*handled >= MAX_REQUESTS_PER_WAKE && c->in.len > 0) {
            /* Fairness: let other connections run; we come back in the
             * next batch. */
            if (c->out.len > c->out_off || grace__conn_flush(c) >= 0)
                grace__be->conn_again(c);
            set_deadline(c);
            return STEP_WAIT;
        }
        return STEP_ON;
    }
    if (c->out.len > c->out_off && grace__conn_flush(c) < 0) { /* e.g. 100 Continue */
        grace__conn_close(c);
        return STEP_CLOSED;
    }
    if (!c->maybe_readable) {
        /* Completion mode: the first pass's recv(2) took a part of the
         * request (a head, its body to follow); from now on the ring
         * receives. */
        if (c->io == IO_COMPLETION && !c->recv_armed && !c->rd_end)
            grace__be->conn_recv(c);
        trim_if_crowded(c);
        set_deadline(c);
        return STEP_WAIT;
    }
    int r = read_more(c);
    if (r < 0 && c->out.len > c->out_off) {
        c->close_after_write = true; /* half-closed client: answer first */
        return STEP_ON;
    }
    if (r < 0) {
        grace__conn_close(c);
        return STEP_CLOSED;
    }
    if (r == 0) {
        trim_if_crowded(c);
        set_deadline(c);
    }
    return r == 0 ? STEP_WAIT : STEP_ON;
}

/* A backend whose connections only the loop's owner may run (io_uring):
 * a thread that lost the loop while its handler ran hands c over, and
 * the owner watches a connection whose first pass ended on such a
 * thread. */
static int step_owner(grace__conn_t *c)
{
    if (!grace__conn_on_owner(c))
        return STEP_WAIT;
    if (!c->watched && !c->fresh && !grace__be->conn_watch(c)) {
        grace__conn_close(c);
        return STEP_CLOSED;
    }
    return STEP_ON;
}

/* Do all the work the connection has. Returns false if it was closed (then
 * c must not be touched). */
static bool conn_process(grace__conn_t *c)
{
    int handled = 0, r = STEP_ON;
    while (r == STEP_ON) {
        if (grace__be->owner_only && (r = step_owner(c)) != STEP_ON)
            break;
        if ((r = step_output(c)) == STEP_ON)
            r = step_input(c, &handled);
    }
    return r != STEP_CLOSED;
}

/* A connection just accepted. Its client usually sent the request right
 * behind the handshake, so try it now, before the backend watches the
 * socket: a connection that is done after one answer (the client asked to
 * close) then costs no epoll_ctl (or receive in the ring) at all, and one
 * that stays open is watched afterwards (an edge-triggered ADD reports
 * what is pending already, so nothing is missed). Nobody else can have an
 * event for it yet. */
void grace__conn_start(grace__conn_t *c)
{
    atomic_store(&c->busy, 1);
    c->maybe_readable = true;
    c->fresh = true;
    if (!conn_process(c))
        return;
    c->fresh = false;
    /* (With an owner-only backend, a thread that lost the loop during the
     * first pass has handed c over: the owner watches it, step_owner.) */
    if ((!grace__be->owner_only || grace__loop_owned(c->loop)) && !grace__be->conn_watch(c)) {
        grace__conn_close(c);
        return;
    }
    atomic_store(&c->busy, 0);
    /* If its handler ran long, another thread owns the loop now and may
     * have had an event for it since: take it up (as grace__conn_run's own
     * loop would). */
    if (atomic_load(&c->pending))
        grace__conn_event(c);
}

void grace__conn_event(grace__conn_t *c)
{
    atomic_store(&c->pending, 1);
    if (atomic_exchange(&c->busy, 1))
        return;
    grace__conn_run(c);
}

void grace__conn_run(grace__conn_t *c)
{
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

/* The deadline passed: a request that is not complete gets its 408 (then
 * FIN, and what the client still sends is discarded for a while, so no
 * reset destroys the 408 before it is read); anything else closes. */
static bool timed_out(grace__conn_t *c, int64_t now)
{
    if (c->ssl && !c->lingering && !grace__tls_handshake_done(c->ssl))
        grace_log("TLS handshake with %s not done within %lld ms: connection closed", c->client_ip,
                  (long long)c->server->opt.tls_handshake_timeout_ms);
    if (c->req_started && c->out.len == c->out_off && !c->lingering && !c->close_after_write) {
        if (c->server->opt.error_log >= 0)
            grace_log("request from %s timed out after %lld ms", c->client_ip,
                      (long long)c->server->opt.read_timeout_ms);
        grace__response_error(&c->out, 408, c->server->server_header);
        int r = grace__conn_flush(c);
        if (r == 1) {
            grace__conn_linger(c, now);
            return true;
        }
        if (r == 0 && c->io == IO_COMPLETION) {
            /* In the ring: conn_process lingers once it is sent. */
            c->close_after_write = true;
            c->deadline_ms = now + LINGER_MS;
            return true;
        }
    }
    grace__conn_close(c);
    return false;
}

bool grace__conn_tick(grace__conn_t *c, int64_t now)
{
    bool between =
        !c->req_started && !c->lingering && !c->close_after_write && c->out.len == c->out_off;
    /* (A request already in the socket is not idle: its event comes, and it
     * is answered with Connection: close.) */
    if (between && drain_closes(c, now) && !grace__conn_unread_input(c)) {
        /* FIN, then read until the client closes: a close() now would
         * answer bytes already on their way with a reset. */
        grace__conn_linger(c, now);
        return true;
    }
    if (now >= c->deadline_ms)
        return timed_out(c, now);
    /* Between requests for IDLE_TRIM_MS or more: free the buffers until the
     * client speaks again. */
    if (between && (c->in.cap || c->ex) && now - c->active_ms >= IDLE_TRIM_MS)
        grace__conn_trim(c);
    return true;
}
