/*
 * workers.c -- event loops, worker threads, accept, timeouts and drain.
 * (One connection's life -- read, parse, run, write -- is in conn.c.)
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
#include "engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- Types ----------------------------------------------------------------- */

typedef struct grace__worker grace__worker_t;

struct grace__worker {
    grace__loop_t *loop; /* loop to run; NULL while spare (under eng.mu) */
    bool lost;           /* lost its loop to a handoff while in a handler */
    uint64_t busy_seq;
    pthread_cond_t cond;
    grace__worker_t *next_spare;
};

/* The engine is a deliberate process-wide singleton: one set of loops and
 * threads serves every server of the process. */
enum { MAX_TICKS = 4, MAX_REGISTERED = 1024 };

static struct {
    pthread_once_t once;
    int err;
    grace__loop_t *loops;
    int n_loops;
    pthread_mutex_t mu; /* spares, n_threads, listener registration */
    grace__worker_t *spares;
    int n_threads;
    grace__engine_hooks_t hooks;       /* lifecycle.c's; set once, before the loops run */
    void (*ticks[MAX_TICKS])(int64_t); /* more monitor work, set before start */
    int n_ticks;
    /* Every server whose listeners the loops serve, in start order;
     * entries never change once counted, so loops read them unlocked. */
    grace_server_t *servers[MAX_REGISTERED];
    atomic_int n_servers;
} eng = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local grace__worker_t *self;

void grace__handler_enter(void)
{
    grace__worker_t *w = self;
    if (w == NULL || w->lost)
        return;
    grace__loop_t *L = w->loop;
    w->busy_seq = ++L->seq_counter;
    /* The coarse clock, as on the rest of the request path: the monitor's
     * precise one may then see a handler up to a tick older than it is. */
    atomic_store_explicit(&L->busy_start_ms, now_ms(), memory_order_relaxed);
    atomic_store_explicit(&L->busy_seq, w->busy_seq, memory_order_release);
}

void grace__handler_leave(void)
{
    grace__worker_t *w = self;
    if (w == NULL || w->lost)
        return;
    uint64_t seq = w->busy_seq;
    if (!atomic_compare_exchange_strong(&w->loop->busy_seq, &seq, 0))
        w->lost = true; /* the monitor gave our loop to another thread */
}

/* ---- Accept ---------------------------------------------------------------- */

/* Out of descriptors (EMFILE, ENFILE) or kernel memory: the connection stays
 * in the kernel's queue, and the listener stays readable, so taking it again
 * at once would spin. Take the listener out of this loop's epoll set for a
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
    for (int i = 0; i < L->n_paused; i++)
        if (L->paused[i] == l)
            goto timer;
    if (L->n_paused < GRACE__MAX_LISTENERS && epoll_ctl(L->epfd, EPOLL_CTL_DEL, l->fd, NULL) == 0)
        L->paused[L->n_paused++] = l;
timer:
    L->resume_ms = now + L->pause_ms;
    if (L->next_scan_ms > L->resume_ms)
        L->next_scan_ms = L->resume_ms;
}

/* Put paused listeners back when the pause is over or a descriptor was
 * freed; a listener whose server has begun to drain stays out. */
static void resume_accepting(grace__loop_t *L, int64_t now)
{
    if (L->n_paused == 0)
        return;
    bool freed = atomic_exchange(&L->fd_freed, false);
    if (!freed && now < L->resume_ms)
        return;
    for (int i = 0; i < L->n_paused; i++) {
        grace__listener_t *l = L->paused[i];
        struct epoll_event ev = {EPOLLIN | EPOLLEXCLUSIVE, {.ptr = l}};
        if (atomic_load(&l->server->state) == GRACE__SRV_RUNNING && l->fd >= 0)
            epoll_ctl(L->epfd, EPOLL_CTL_ADD, l->fd, &ev);
    }
    L->n_paused = 0;
}

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
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)sa;
        ipv4_text((const unsigned char *)&a4->sin_addr, c->client_ip);
        c->client_port = ntohs(a4->sin_port);
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
                pause_accepting(L, l, errno);
            } else if (errno == EAGAIN && L->episode_ms) {
                /* The queue is empty: this loop has caught up. */
                grace_log("accept on [%s]: loop %d accepts normally again after %lld ms "
                          "(%ld pauses)",
                          l->shown, L->id, (long long)(now_ms() - L->episode_ms), L->n_pauses);
                L->episode_ms = 0;
            }
            return;
        }
        grace__conn_t *c = grace__conn_new(L, s);
        if (c == NULL) {
            close(fd);
            continue;
        }
        L->last_accept_ms = c->active_ms = now_ms();
        if (l->tls && (c->ssl = grace__tls_new(s->tls_ctx, fd)) == NULL) {
            c->fd = -1;
            c->prev = c->next = c; /* not listed yet: conn_free unlinks nothing */
            grace__conn_free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->nodelay = c->ssl != NULL; /* (grace__tls_new set it) */
        /* HTTPS: the handshake has its own limit, from the accept, which
         * no trickle of bytes extends (conn.c set_deadline). */
        c->deadline_ms =
            c->active_ms + (c->ssl ? s->opt.tls_handshake_timeout_ms : s->opt.idle_timeout_ms);
        client_address(c, &sa);
        if ((size_t)atomic_fetch_add(&s->n_conns, 1) >= s->opt.max_connections)
            over_limit(c);
        c->next = L->conns.next;
        c->prev = &L->conns;
        L->conns.next->prev = c;
        L->conns.next = c;
        grace__conn_start(c);
        if (self->lost)
            return; /* its handler ran long: another thread has this loop now */
    }
}

/* ---- Loop ------------------------------------------------------------------ */

/* Make this loop's epoll set match the servers' states: a draining server's
 * listeners leave it (once every loop has let go, lifecycle.c closes them --
 * after the probation of a restart); a server running again after a
 * probation rollback gets its listeners back. */
static void sync_listeners(grace__loop_t *L)
{
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    uint_fast64_t all =
        eng.n_loops == 64 ? ~(uint_fast64_t)0 : (((uint_fast64_t)1 << eng.n_loops) - 1);
    int n = atomic_load(&eng.n_servers);
    for (int i = 0; i < n; i++) {
        grace_server_t *s = eng.servers[i];
        int st = atomic_load(&s->state);
        bool released = atomic_load(&s->released_mask) & bit;
        if (st == GRACE__SRV_DRAINING && !released) {
            for (size_t k = 0; k < s->n_listeners; k++)
                epoll_ctl(L->epfd, EPOLL_CTL_DEL, s->listeners[k].fd, NULL);
            if ((atomic_fetch_or(&s->released_mask, bit) | bit) == all) {
                atomic_store(&s->all_released, true);
                eng.hooks.listeners_released(s);
            }
        } else if (st == GRACE__SRV_RUNNING && released) {
            for (size_t k = 0; k < s->n_listeners; k++) {
                struct epoll_event ev = {EPOLLIN | EPOLLEXCLUSIVE, {.ptr = &s->listeners[k]}};
                epoll_ctl(L->epfd, EPOLL_CTL_ADD, s->listeners[k].fd, &ev);
            }
            atomic_fetch_and(&s->released_mask, ~bit);
            atomic_store(&s->all_released, false);
        }
    }
}

/* Memory comes back after a crowd of connections is gone or gone idle:
 * once a loop has accepted nothing for IDLE_TRIM_MS its pool of closed
 * connections shrinks to a few, and when many connections have been freed
 * or trimmed since, malloc_trim() hands the free pages back to the system
 * (glibc keeps them otherwise, so RSS would stay at its peak). At most once
 * a second per loop. */
static void give_memory_back(grace__loop_t *L, int64_t now)
{
    if (now - L->last_accept_ms >= IDLE_TRIM_MS)
        grace__conn_pool_shrink(L, CONN_POOL_IDLE);
    if (L->n_released >= 64 && now - L->trimmed_ms >= 1000) {
        L->n_released = 0;
        L->trimmed_ms = now;
        malloc_trim(0);
    }
}

/* Between batches: free closed connections, release listeners of draining
 * servers, and run every connection's timers (grace__conn_tick: timeouts,
 * the drain's idle rule). No handler runs here, so the owner cannot change
 * under it. */
static void maintenance(grace__loop_t *L)
{
    pthread_mutex_lock(&L->mu);
    grace__conn_t *dead = L->closed;
    L->closed = NULL;
    pthread_mutex_unlock(&L->mu);
    while (dead) {
        grace__conn_t *n = dead->next_closed;
        grace__conn_free(dead);
        dead = n;
    }
    bool drain = atomic_exchange(&L->check_drain, false);
    if (drain)
        sync_listeners(L);
    int64_t now = now_ms();
    resume_accepting(L, now);
    if (!drain && now < L->next_scan_ms)
        return;
    L->next_scan_ms = now + SCAN_MS;
    if (L->n_paused && L->resume_ms < L->next_scan_ms)
        L->next_scan_ms = L->resume_ms;
    give_memory_back(L, now);
    for (grace__conn_t *c = L->conns.next, *n; c != &L->conns; c = n) {
        n = c->next;
        if (atomic_exchange(&c->busy, 1))
            continue; /* in use by a handler thread, or closed */
        if (!grace__conn_tick(c, now))
            continue; /* closed */
        atomic_store(&c->busy, 0);
        if (atomic_load(&c->pending)) {
            /* Cannot happen while we own the loop (only the owner delivers
             * events), but be safe: process it now. */
            grace__conn_event(c);
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
            grace__conn_event(ev.data.ptr);
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
    if (grace__thread_detached(worker_main, w) < 0) {
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
        eng.hooks.tick(now);
        for (int i = 0; i < eng.n_ticks; i++)
            eng.ticks[i](now);
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
    /* A peer that closes while we write must be an error return, not a
     * signal that kills the process. Plain sockets use MSG_NOSIGNAL, but
     * OpenSSL writes with write(2); so, as nginx does, ignore SIGPIPE -- unless
     * the program already chose a handler of its own. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ign, NULL);
    }
    /* One loop per CPU the process may use -- not per CPU online: in a
     * container limited to 2 CPUs on a 64-core host, 2 loops. */
    long n = grace__usable_cpus();
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
        L->spare.next = L->spare.prev = &L->spare;
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
    if (eng.err == 0 && grace__thread_detached(monitor_main, NULL) < 0)
        eng.err = GRACE_ENOMEM;
}

int grace__engine_start(const grace__engine_hooks_t *hooks)
{
    pthread_mutex_lock(&eng.mu);
    if (eng.hooks.tick == NULL)
        eng.hooks = *hooks; /* before any loop runs: engine_init starts them */
    pthread_mutex_unlock(&eng.mu);
    pthread_once(&eng.once, engine_init);
    return eng.err;
}

int grace__engine_on_tick(void (*fn)(int64_t now))
{
    pthread_mutex_lock(&eng.mu);
    int r = eng.n_ticks < MAX_TICKS && eng.loops == NULL ? 0 : GRACE_ESTATE;
    if (r == 0)
        eng.ticks[eng.n_ticks++] = fn;
    pthread_mutex_unlock(&eng.mu);
    return r;
}

int grace__engine_add_server(grace_server_t *s)
{
    grace__listener_t *ls = s->listeners;
    size_t n = s->n_listeners;
    pthread_mutex_lock(&eng.mu);
    int r = 0, have = atomic_load(&eng.n_servers);
    if (have == MAX_REGISTERED)
        r = GRACE_ENOMEM;
    int done = 0; /* loops that took every listener */
    for (; r == 0 && done < eng.n_loops; done++) {
        for (size_t i = 0; i < n && r == 0; i++) {
            struct epoll_event ev = {EPOLLIN | EPOLLEXCLUSIVE, {.ptr = &ls[i]}};
            if (epoll_ctl(eng.loops[done].epfd, EPOLL_CTL_ADD, ls[i].fd, &ev) < 0) {
                r = -errno;
                for (size_t k = 0; k < i; k++) /* this loop: undo its part */
                    epoll_ctl(eng.loops[done].epfd, EPOLL_CTL_DEL, ls[k].fd, NULL);
            }
        }
        if (r < 0)
            break;
    }
    for (int k = 0; r < 0 && k < done; k++) /* all or none */
        for (size_t i = 0; i < n; i++)
            epoll_ctl(eng.loops[k].epfd, EPOLL_CTL_DEL, ls[i].fd, NULL);
    if (r == 0) {
        eng.servers[have] = s;
        atomic_store(&eng.n_servers, have + 1);
    }
    pthread_mutex_unlock(&eng.mu);
    return r;
}

void grace__engine_sync_listeners(void)
{
    for (int i = 0; i < eng.n_loops; i++) {
        atomic_store(&eng.loops[i].check_drain, true);
        uint64_t one = 1;
        ssize_t r = write(eng.loops[i].wake.fd, &one, sizeof one);
        (void)r;
    }
}

void grace__engine_conn_closed(grace_server_t *s)
{
    eng.hooks.conn_closed(s);
}
