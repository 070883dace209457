/*
 * conn_io.c -- a connection's bytes to and from its socket, in the two
 * modes of engine.h: readiness (recv/send, or OpenSSL, when the backend
 * says the socket is ready) and completion (io_uring receives and sends;
 * this file hands bytes over).
 *
 * Completion mode's invariant: its state (recv_armed, sending, sent, the
 * inbox, rd_end ...) belongs to the loop's owner thread. The backend's
 * completions arrive there; conn.c runs such a connection only there
 * (grace__conn_on_owner). A completion for a connection whose busy flag
 * another thread holds (a handler that blocked, on a thread that lost the
 * loop) goes to the inbox, and the holder finds it pending. What a
 * non-owner cannot do itself it hands to the owner: the loop's kick list,
 * under loop->mu, drained by the owner at its next batch.
 */
#include "engine.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- System calls ----------------------------------------------------------- */

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
/* *drained: what the socket held was all taken (a short read), so with edge
 * triggering new bytes bring a new event and no read need say EAGAIN. */
static ssize_t conn_recv(grace__conn_t *c, char *p, size_t len, bool *drained)
{
    *drained = false;
    if (c->ssl && !c->tls_checked && sniff_tls(c) != SNIFF_TLS)
        return -EAGAIN; /* wait for the first byte, or send the plain answer queued */
    if (c->ssl) {
        ssize_t n = grace__tls_read(c->ssl, p, len, drained);
        if (n == -EPROTO && !grace__tls_handshake_done(c->ssl))
            grace_log("TLS handshake with %s failed", c->client_ip);
        return n;
    }
    ssize_t n;
    do
        n = recv(c->fd, p, len, 0);
    while (n < 0 && errno == EINTR);
    *drained = n >= 0 && (size_t)n < len;
    return n < 0 ? -errno : n;
}

/* ---- Completion mode: the owner and the kick list ---------------------------- */

void grace__conn_kick(grace__conn_t *c)
{
    grace__loop_t *L = c->loop;
    pthread_mutex_lock(&L->mu);
    bool first = !c->kick_queued;
    if (first) {
        c->kick_queued = true;
        c->next_kick = L->kicked;
        L->kicked = c;
    }
    pthread_mutex_unlock(&L->mu);
    atomic_store(&L->has_kicked, true);
    if (first && !grace__loop_owned(L)) {
        uint64_t one = 1;
        ssize_t r = write(L->wake.fd, &one, sizeof one);
        (void)r;
    }
}

bool grace__conn_on_owner(grace__conn_t *c)
{
    if (grace__loop_owned(c->loop))
        return true;
    grace__conn_kick(c);
    return false;
}

/* Move what the inbox holds to c->in (owner, holding c). */
static int take_inbox(grace__conn_t *c)
{
    if (c->inbox.len == 0)
        return 0;
    int r = grace__buf_append(&c->in, c->inbox.ptr, c->inbox.len);
    grace__buf_free(&c->inbox);
    return r < 0 ? r : 1;
}

bool grace__conn_input(grace__conn_t *c, const char *data, int res)
{
    if (c->closed)
        return false;
    if (atomic_exchange(&c->busy, 1)) {
        /* Held by a thread whose handler blocked: keep it for that thread
         * (the caller's grace__conn_event marks it pending). Bounded: past
         * INPUT_HIGH, receiving pauses (loop_uring.c). */
        if (res > 0 && grace__buf_append(&c->inbox, data, (size_t)res) < 0)
            c->rd_end = -ENOMEM;
        else if (res <= 0 && c->rd_end == 0)
            c->rd_end = res == 0 ? 1 : res;
        return false;
    }
    if (take_inbox(c) < 0 ||
        (res > 0 && !c->lingering && grace__buf_append(&c->in, data, (size_t)res) < 0))
        c->rd_end = -ENOMEM;
    else if (res <= 0 && c->rd_end == 0)
        c->rd_end = res == 0 ? 1 : res;
    return true;
}

void grace__conn_sent(grace__conn_t *c, int res)
{
    c->sending = false;
    if (res >= 0)
        c->sent += (size_t)res;
    else
        c->wr_err = res;
}

/* ---- Writing ------------------------------------------------------------------ */

/* Completion mode: the ring sends c->out, one send at a time; its bytes
 * stay put until the completion (nothing appends meanwhile: conn.c waits
 * for it before it runs the next request). */
static int flush_ring(grace__conn_t *c)
{
    if (c->sending)
        return 0;
    c->out_off += c->sent;
    c->sent = 0;
    if (c->wr_err)
        return -1;
    if (c->out_off < c->out.len) {
        grace__be->conn_send(c);
        return 0;
    }
    return 1;
}

int grace__conn_flush(grace__conn_t *c)
{
    if (c->io == IO_COMPLETION) {
        int r = flush_ring(c);
        if (r <= 0)
            return r;
    }
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
    if (c->io == IO_COMPLETION && !c->recv_armed && !c->rd_end)
        grace__be->conn_recv(c); /* (to see the client's EOF) */
}

/* ---- Reading ------------------------------------------------------------------ */

/* recv (or SSL_read) into c->in, at most up to limit bytes in all. */
static int read_socket(grace__conn_t *c, size_t limit)
{
    /* A connection with no buffer reads into the stack first, so one that
     * is woken with nothing to read (a new or idle one) allocates nothing. */
    char first[READ_CHUNK];
    bool on_stack = c->in.cap == 0;
    if (!on_stack && grace__buf_reserve(&c->in, READ_CHUNK) < 0)
        return -1;
    size_t room = on_stack ? sizeof first : c->in.cap - c->in.len;
    if (room > limit - c->in.len)
        room = limit - c->in.len;
    bool drained;
    ssize_t n = conn_recv(c, on_stack ? first : c->in.ptr + c->in.len, room, &drained);
    if (n > 0) {
        if (on_stack) {
            if (grace__buf_reserve(&c->in, READ_CHUNK) < 0)
                return -1;
            memcpy(c->in.ptr, first, (size_t)n);
        }
        c->in.len += (size_t)n;
        /* The socket is drained (a short read; with TLS, one under SSL_read
         * and no record left in OpenSSL): with edge triggering, new data
         * brings a new event, so skip the read that would say EAGAIN. */
        if (drained)
            c->maybe_readable = false;
        return 1;
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK) {
        c->maybe_readable = false;
        return c->close_after_write ? 1 : 0; /* an answer to send (sniff_tls) */
    }
    return -1;
}

int grace__conn_read(grace__conn_t *c, size_t limit)
{
    if (c->io == IO_READY)
        return read_socket(c, limit);
    int r = take_inbox(c);
    if (r != 0)
        return r;
    if (c->rd_end)
        return -1;
    if (!c->recv_tried && !c->recv_armed) {
        /* A new connection's request is usually here already: one recv
         * takes it, and a connection closed after one answer never has a
         * receive in the ring at all. */
        c->recv_tried = true;
        if ((r = read_socket(c, limit)) != 0)
            return r;
    }
    c->maybe_readable = false;
    if (!c->recv_armed)
        grace__be->conn_recv(c);
    return 0;
}

bool grace__conn_discard(grace__conn_t *c)
{
    if (c->io == IO_COMPLETION) {
        c->in.len = 0;
        grace__buf_free(&c->inbox);
        if (c->rd_end) {
            grace__conn_close(c);
            return false;
        }
        if (!c->recv_armed)
            grace__be->conn_recv(c);
        return true;
    }
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

/* Closing a socket with unread input makes the kernel answer with a reset,
 * which can destroy the response before the client reads it. With a
 * receive in the ring, bytes the kernel took already are in the inbox or
 * in a completion not yet seen. */
bool grace__conn_unread_input(const grace__conn_t *c)
{
    char b;
    ssize_t n;
    do
        n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        return true;
    return c->io == IO_COMPLETION && (c->inbox.len > 0 || grace__be->conn_input_pending(c));
}

/* ---- Streaming writes ------------------------------------------------------ */

/* Write all of data to the connection from a handler thread (streaming),
 * waiting up to the write timeout. 0 or a negative error. Plain system
 * calls in either mode: a handler runs only when nothing of c->out is in
 * the ring (conn.c conn_process), so nothing can overtake these bytes. */
int grace__conn_write_blocking(void *ctx, const char *data, size_t len)
{
    grace__conn_t *c = ctx;
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
