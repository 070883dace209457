/*
 * loop_epoll.c -- the epoll backend: readiness, with the system calls made
 * by conn_io.c (recv, send, OpenSSL) and accept.c (accept4).
 *
 * Each loop is an epoll set. Connections are registered once, edge-
 * triggered, for EPOLLIN|EPOLLOUT|EPOLLRDHUP, after their first pass
 * (conn.c grace__conn_start): a connection done after one answer costs no
 * epoll_ctl at all. Listening sockets sit in every loop's set with
 * EPOLLEXCLUSIVE, so the kernel wakes one loop per new connection; each is
 * level-triggered, so a loop that stops early (ACCEPTS_PER_WAKE, a pause)
 * is woken again. Registered objects start with an int kind
 * (GRACE__EV_CONN, _LISTENER, _WAKE), which is how an event finds its way.
 *
 * epoll_ctl is thread-safe, so listeners are added by whichever thread
 * starts a server (grace__engine_add_server: all loops or none), and a
 * connection is added by whichever thread holds it.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct {
    int epfd;
    struct epoll_event events[BATCH];
    int n_events, idx;
} ep_loop_t;

static int ep_fd(const grace__loop_t *L)
{
    return ((const ep_loop_t *)L->be)->epfd;
}

static int ep_loop_init(grace__loop_t *L, char *why, size_t why_len)
{
    ep_loop_t *E = calloc(1, sizeof *E);
    if (E == NULL)
        return GRACE_ENOMEM;
    E->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {EPOLLIN, {.ptr = &L->wake}};
    if (E->epfd < 0 || epoll_ctl(E->epfd, EPOLL_CTL_ADD, L->wake.fd, &ev) < 0) {
        int err = -errno;
        snprintf(why, why_len, "%s: %s", E->epfd < 0 ? "epoll_create1" : "epoll_ctl",
                 strerror(-err));
        if (E->epfd >= 0)
            close(E->epfd);
        free(E);
        return err;
    }
    L->be = E;
    return 0;
}

static void ep_wait(grace__loop_t *L, int timeout_ms)
{
    ep_loop_t *E = L->be;
    int n = epoll_wait(E->epfd, E->events, BATCH, timeout_ms);
    if (n < 0) {
        if (errno != EINTR)
            grace_log("epoll_wait: %s", strerror(errno));
        n = 0;
    }
    E->n_events = n;
    E->idx = 0;
}

static bool ep_step(grace__loop_t *L)
{
    ep_loop_t *E = L->be;
    if (E->idx >= E->n_events)
        return false;
    /* The batch lives in the loop, not on this stack: a thread that takes
     * the loop over after a hand-off carries on from idx. */
    struct epoll_event ev = E->events[E->idx++];
    switch (*(int *)ev.data.ptr) {
    case GRACE__EV_CONN:
        grace__conn_event(ev.data.ptr);
        break;
    case GRACE__EV_LISTENER:
        grace__accept_all(L, ev.data.ptr, ACCEPTS_PER_WAKE);
        break;
    case GRACE__EV_WAKE: {
        uint64_t v;
        ssize_t r = read(L->wake.fd, &v, sizeof v);
        (void)r;
        break;
    }
    }
    return true;
}

/* Any thread. */
static int ep_listen_start(grace__loop_t *L, grace__listener_t *l)
{
    struct epoll_event ev = {EPOLLIN | EPOLLEXCLUSIVE, {.ptr = l}};
    if (epoll_ctl(ep_fd(L), EPOLL_CTL_ADD, l->fd, &ev) < 0)
        return -errno;
    atomic_fetch_or(&l->armed, (uint_fast64_t)1 << L->id);
    return 0;
}

static bool ep_listen_stop(grace__loop_t *L, grace__listener_t *l)
{
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    if (atomic_fetch_and(&l->armed, ~bit) & bit)
        epoll_ctl(ep_fd(L), EPOLL_CTL_DEL, l->fd, NULL);
    return true;
}

static void ep_listen_resume(grace__loop_t *L, grace__listener_t *l)
{
    /* Level-triggered: what waits in the queue wakes a loop at once. */
    ep_listen_start(L, l);
}

static bool ep_conn_watch(grace__conn_t *c)
{
    /* An edge-triggered ADD reports what is pending already: nothing read
     * since the first pass is missed. */
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = c}};
    if (epoll_ctl(ep_fd(c->loop), EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        grace_log("epoll_ctl: %s; closing the connection from %s", strerror(errno), c->client_ip);
        return false;
    }
    c->watched = true;
    return true;
}

static void ep_conn_again(grace__conn_t *c)
{
    /* MOD re-queues the (writable) socket: the next batch has it. */
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, {.ptr = c}};
    epoll_ctl(ep_fd(c->loop), EPOLL_CTL_MOD, c->fd, &ev);
}

static void ep_conn_forget(grace__conn_t *c)
{
    /* Explicit DEL: a forked child could still hold the fd, and epoll only
     * forgets an fd when its last reference is closed. */
    if (c->watched)
        epoll_ctl(ep_fd(c->loop), EPOLL_CTL_DEL, c->fd, NULL);
}

static bool ep_conn_release(grace__conn_t *c)
{
    (void)c;
    return true; /* nothing of it is left in the kernel */
}

const grace__backend_t grace__backend_epoll = {
    .name = "epoll",
    .loop_init = ep_loop_init,
    .wait = ep_wait,
    .step = ep_step,
    .listen_start = ep_listen_start,
    .listen_any_thread = true,
    .listen_stop = ep_listen_stop,
    .listen_resume = ep_listen_resume,
    .conn_watch = ep_conn_watch,
    .conn_again = ep_conn_again,
    .conn_forget = ep_conn_forget,
    .conn_release = ep_conn_release,
};
