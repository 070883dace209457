/*
 * accept.c -- new connections: accept, the client's address, the
 * max_connections answer, and the pause when descriptors run out (SPEC B8).
 *
 * Both backends end here: epoll's loops call grace__accept_all when a
 * listener is readable (accept4, ACCEPTS_PER_WAKE at a time: the
 * level-triggered listener brings the rest with the next batch), io_uring's
 * multishot accept hands over each accepted socket (grace__accept_one) and
 * calls grace__accept_all only when a pause ends; a drain's sweep takes what
 * waits (ACCEPTS_PER_SWEEP), and so does a loop after a pause, to EAGAIN. Everything here runs on
 * the loop's owner thread; a new connection gets its first pass at once
 * (conn.c grace__conn_start), which may run a handler, so after each one
 * the thread may have lost the loop to a hand-off (then it stops).
 */
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- Out of descriptors -------------------------------------------------- */

/* Out of descriptors (EMFILE, ENFILE) or kernel memory: the connection stays
 * in the kernel's queue, and the listener stays readable, so taking it again
 * at once would spin. Stop accepting on the listener in this loop for a
 * pause that doubles (10 ms to 1 s) while the episode lasts; a connection
 * closing on this loop ends the pause early (maintenance). Other loops do
 * the same when they hit the limit. One log line per episode. (libuv and
 * nginx keep a spare descriptor to accept and close instead: with several
 * loops sharing one listener that trick races, and a refused connection is
 * worse than one that waits a few milliseconds in the queue.) */
static void pause_accepting(grace__loop_t *L, grace__listener_t *l, int err)
{
    int64_t now = now_ms();
    if (L->episode_ms == 0) {
        L->episode_ms = now;
        L->n_pauses = 0;
        L->pause_ms = 10;
        grace_log("accept on [%s]: %s: loop %d pauses accepting; new connections wait in the "
                  "kernel queue",
                  l->shown, strerror(err), L->id);
    } else if (L->resume_ms <= now) {
        L->pause_ms = L->pause_ms >= 500 ? 1000 : L->pause_ms * 2;
    }
    L->n_pauses++;
    if (!grace__accept_is_paused(L, l) && L->n_paused < GRACE__MAX_LISTENERS) {
        grace__be->listen_stop(L, l);
        L->paused[L->n_paused++] = l;
    }
    L->resume_ms = now + L->pause_ms;
    if (L->next_scan_ms > L->resume_ms)
        L->next_scan_ms = L->resume_ms;
}

bool grace__accept_is_paused(const grace__loop_t *L, const grace__listener_t *l)
{
    for (int i = 0; i < L->n_paused; i++)
        if (L->paused[i] == l)
            return true;
    return false;
}

bool grace__accept_failed(grace__loop_t *L, grace__listener_t *l, int err)
{
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return false;
    pause_accepting(L, l, err);
    return true;
}

/* Take paused listeners back when the pause is over or a descriptor was
 * freed; a listener whose server has begun to drain stays out. */
void grace__accept_resume(grace__loop_t *L, int64_t now)
{
    if (L->n_paused == 0)
        return;
    bool freed = atomic_exchange(&L->fd_freed, false);
    if (!freed && now < L->resume_ms)
        return;
    grace__listener_t *back[GRACE__MAX_LISTENERS];
    int n = L->n_paused;
    memcpy(back, L->paused, (size_t)n * sizeof back[0]);
    L->n_paused = 0; /* (listen_resume may pause one again) */
    for (int i = 0; i < n; i++)
        if (atomic_load(&back[i]->server->state) == GRACE__SRV_RUNNING && back[i]->fd >= 0)
            grace__be->listen_resume(L, back[i]);
}

/* ---- A new connection ------------------------------------------------------ */

/* max_connections passed: the connection gets "503 Service Unavailable"
 * and is closed (conn.c lingers, so the answer is not lost to a reset). One
 * log line per episode; conn.c logs its end. */
static void over_limit(grace__conn_t *c)
{
    grace_server_t *s = c->server;
    atomic_fetch_add(&s->n_refused, 1);
    if (!atomic_exchange(&s->over_limit, true))
        grace_log("server %s: max_connections (%zu) reached: new connections are answered 503",
                  s->name, s->opt.max_connections);
    grace__response_error(&c->out, 503, s->server_header);
    c->close_after_write = true;
}

/* Dotted quad, as inet_ntop writes it, without its trip through
 * snprintf (once per connection: it showed in profiles of short ones). */
static void ipv4_text(const unsigned char b[4], char *out)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

static void client_address(grace__conn_t *c, const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
            ipv4_text(&a6->sin6_addr.s6_addr[12], c->client_ip);
        else
            inet_ntop(AF_INET6, &a6->sin6_addr, c->client_ip, sizeof c->client_ip);
        c->client_port = ntohs(a6->sin6_port);
    } else if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        ipv4_text((const unsigned char *)&a4->sin_addr, c->client_ip);
        c->client_port = ntohs(a4->sin_port);
    } else {
        strcpy(c->client_ip, "unknown"); /* (the peer is gone already) */
    }
}

/* Give the accepted socket fd a connection and its first pass. */
static void serve(grace__loop_t *L, grace__listener_t *l, int fd, const struct sockaddr_storage *sa)
{
    grace_server_t *s = l->server;
    grace__conn_t *c = grace__conn_new(L, s);
    if (c == NULL) {
        close(fd);
        return;
    }
    L->last_accept_ms = c->active_ms = now_ms();
    if (l->tls && (c->ssl = grace__tls_new(s->tls_ctx, fd)) == NULL) {
        c->fd = -1;
        c->prev = c->next = c; /* not listed yet: conn_free unlinks nothing */
        grace__conn_free(c);
        close(fd);
        return;
    }
    c->fd = fd;
    c->nodelay = c->ssl != NULL; /* (grace__tls_new set it) */
    /* OpenSSL reads and writes the socket itself: TLS stays on readiness. */
    c->io = grace__be->conn_send && c->ssl == NULL ? IO_COMPLETION : IO_READY;
    /* HTTPS: the handshake has its own limit, from the accept, which no
     * trickle of bytes extends (conn.c set_deadline). */
    c->deadline_ms =
        c->active_ms + (c->ssl ? s->opt.tls_handshake_timeout_ms : s->opt.idle_timeout_ms);
    client_address(c, sa);
    if ((size_t)atomic_fetch_add(&s->n_conns, 1) >= s->opt.max_connections)
        over_limit(c);
    c->next = L->conns.next;
    c->prev = &L->conns;
    L->conns.next->prev = c;
    L->conns.next = c;
    if (grace__be->conn_start)
        grace__be->conn_start(c);
    else
        grace__conn_start(c);
}

void grace__accept_one(grace__loop_t *L, grace__listener_t *l, int fd)
{
    /* A multishot accept has no room for each peer's address: ask. */
    struct sockaddr_storage sa;
    socklen_t sa_len = sizeof sa;
    if (getpeername(fd, (struct sockaddr *)&sa, &sa_len) < 0)
        sa.ss_family = AF_UNSPEC;
    serve(L, l, fd, &sa);
}

void grace__accept_all(grace__loop_t *L, grace__listener_t *l, int max)
{
    grace_server_t *s = l->server;
    /* A draining server keeps accepting until this loop has dropped its
     * listeners: a wake-up taken here (EPOLLEXCLUSIVE) was not given to the
     * new process after a restart, so the connection must not be left in
     * the queue. */
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    /* After a pause (an episode), on until the queue is empty: only the
     * EAGAIN below ends the episode, and a call that stopped at max with
     * the queue just emptied would never be woken to see it. (A flood
     * meanwhile ends it too: out of descriptors again, a new pause.) */
    for (int i = 0; i < max || L->episode_ms; i++) {
        if (atomic_load(&s->released_mask) & bit)
            return;
        struct sockaddr_storage sa;
        socklen_t sa_len = sizeof sa;
        int fd = accept4(l->fd, (struct sockaddr *)&sa, &sa_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (!grace__accept_failed(L, l, errno) && errno == EAGAIN && L->episode_ms) {
                /* The queue is empty: this loop has caught up. */
                grace_log("accept on [%s]: loop %d accepts normally again after %lld ms "
                          "(%ld pauses)",
                          l->shown, L->id, (long long)(now_ms() - L->episode_ms), L->n_pauses);
                L->episode_ms = 0;
            }
            return;
        }
        serve(L, l, fd, &sa);
        if (!grace__loop_owned(L))
            return; /* its handler ran long: another thread has this loop now */
    }
}
