/*
 * workers.c -- event loops, worker threads, timeouts and drain, and the
 * choice of backend. (Accepting is in accept.c; one connection's life --
 * read, parse, run, write -- in conn.c and conn_io.c.)
 *
 * Design (DESIGN.md, second shape): one event loop per core. What a loop
 * waits with is a backend (engine.h grace__backend_t), chosen once at
 * start-up: io_uring (loop_uring.c) when the kernel allows it, else epoll
 * (loop_epoll.c); GRACE_BACKEND=epoll|io_uring forces one. Both deliver
 * a batch of events, and a loop runs them, handlers inline, so a
 * keep-alive request costs one read and one write with epoll, like nginx,
 * and no system call of its own with io_uring.
 *
 * Handlers may block (SPEC S3). Before a handler runs, the loop records a
 * sequence number (busy_seq: one per handler call, 0 when none runs). The
 * monitor thread wakes every few milliseconds; when it has seen a loop
 * inside the same handler call for HANDOFF_MS (the same busy_seq at looks
 * that far apart, by its precise clock: no clock is read per request, and
 * a coarse one's ticks cannot make a short handler look long -- they did,
 * and every hand-off costs the io_uring loop its efficiency for the rest of
 * its connections' lives, loop_uring.c) it claims the loop with a CAS on busy_seq
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
 *    pointing at it and the kernel holds no request for it (io_uring).
 *  - A thread that is not the owner never touches the loop's kernel side
 *    (an io_uring is not thread-safe): what it cannot do for a
 *    connection goes to the owner through the loop's kick list.
 */
#include "engine.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- Types ----------------------------------------------------------------- */

typedef struct grace__worker grace__worker_t;

struct grace__worker {
    grace__loop_t *loop; /* loop to run; NULL while spare (under eng.mu) */
    bool lost;           /* lost its loop to a handoff while in a handler */
    bool first_owner;    /* started for its loop (not as a spare) */
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

const grace__backend_t *grace__be = &grace__backend_epoll;

bool grace__loop_owned(const grace__loop_t *L)
{
    const grace__worker_t *w = self;
    return w != NULL && w->loop == L && !w->lost;
}

void grace__handler_enter(void)
{
    grace__worker_t *w = self;
    if (w == NULL || w->lost)
        return;
    grace__loop_t *L = w->loop;
    w->busy_seq = ++L->seq_counter;
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

/* ---- Loop ------------------------------------------------------------------ */

/* A draining server in this loop: stop accepting on its listeners; once
 * none is accepted on any more (an io_uring's accept ends only when its
 * cancellation comes back), accept once more what waits (sweep_listeners),
 * then mark the loop as released, and when every loop is, say so
 * (lifecycle.c then closes them -- after the probation of a restart).
 *
 * The sweep: the kernel wakes one waiter per new connection (EPOLLEXCLUSIVE,
 * and io_uring's accept). A wake-up given to this loop while it stops --
 * between it and epoll_wait, or while the ring cancels the accept -- is
 * given to no one else, so without the sweep that connection would wait in
 * the queue for the next one to wake the new process: forever, for a
 * client whose every connection waits there (wrk did, after a restart). */
static void release_listeners(grace__loop_t *L, grace_server_t *s)
{
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    uint_fast64_t all =
        eng.n_loops == 64 ? ~(uint_fast64_t)0 : (((uint_fast64_t)1 << eng.n_loops) - 1);
    bool gone = true;
    for (size_t k = 0; k < s->n_listeners; k++)
        gone &= grace__be->listen_stop(L, &s->listeners[k]);
    if (!gone)
        return; /* (grace__loop_recheck_listeners brings us back) */
    if (!(atomic_load(&s->swept_mask) & bit)) {
        L->sweep = true; /* (then the next maintenance comes back here) */
        return;
    }
    if ((atomic_fetch_or(&s->released_mask, bit) | bit) == all) {
        atomic_store(&s->all_released, true);
        eng.hooks.listeners_released(s);
    }
}

/* Make what this loop accepts on match the servers' states: a draining
 * server's listeners are let go (release_listeners); a running server's
 * are accepted on -- after a probation rollback, after an accept that
 * ended, and (io_uring) when the server starts -- unless out of descriptors
 * paused them. */
static void sync_listeners(grace__loop_t *L)
{
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    int n = atomic_load(&eng.n_servers);
    for (int i = 0; i < n; i++) {
        grace_server_t *s = eng.servers[i];
        int st = atomic_load(&s->state);
        bool released = atomic_load(&s->released_mask) & bit;
        if (st == GRACE__SRV_DRAINING && !released) {
            release_listeners(L, s);
        } else if (st == GRACE__SRV_RUNNING) {
            for (size_t k = 0; k < s->n_listeners; k++) {
                grace__listener_t *l = &s->listeners[k];
                if (!(atomic_load(&l->armed) & bit) && !grace__accept_is_paused(L, l) && l->fd >= 0)
                    grace__be->listen_start(L, l);
            }
            atomic_fetch_and(&s->swept_mask, ~bit);
            if (released) {
                atomic_fetch_and(&s->released_mask, ~bit);
                atomic_store(&s->all_released, false);
            }
        }
    }
}

void grace__loop_recheck_listeners(grace__loop_t *L)
{
    atomic_store(&L->check_drain, true);
}

/* Accept what waits on the listeners this loop has stopped for a drain
 * (release_listeners says why). Runs where a batch does, not in
 * maintenance: a connection's first pass may run a handler, and the thread
 * may lose the loop meanwhile (then the new owner sweeps again). */
static void sweep_listeners(grace__loop_t *L)
{
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    int n = atomic_load(&eng.n_servers);
    L->sweep = false;
    for (int i = 0; i < n; i++) {
        grace_server_t *s = eng.servers[i];
        if (atomic_load(&s->state) != GRACE__SRV_DRAINING ||
            (atomic_load(&s->released_mask) & bit) || (atomic_load(&s->swept_mask) & bit))
            continue;
        for (size_t k = 0; k < s->n_listeners; k++) {
            grace__listener_t *l = &s->listeners[k];
            if (l->fd >= 0 && !(atomic_load(&l->armed) & bit))
                grace__accept_all(L, l, ACCEPTS_PER_SWEEP);
            if (!grace__loop_owned(L)) {
                L->sweep = true;
                return;
            }
        }
        atomic_fetch_or(&s->swept_mask, bit);
    }
    grace__loop_recheck_listeners(L);
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

/* Free the connections closed since the last time, those the kernel is
 * done with (io_uring: their requests' last completions came back) and
 * that no kick still names; the others wait for the next time. */
static void free_closed(grace__loop_t *L)
{
    pthread_mutex_lock(&L->mu);
    grace__conn_t *dead = L->closed, *keep = NULL;
    L->closed = NULL;
    pthread_mutex_unlock(&L->mu);
    while (dead) {
        grace__conn_t *n = dead->next_closed;
        /* (kick_queued: set before the close, by whoever closed it, and
         * cleared by this thread: no lock needed to read it.) */
        if (!grace__be->conn_release(dead) || dead->kick_queued) {
            dead->next_closed = keep;
            keep = dead;
        } else {
            grace__conn_free(dead);
        }
        dead = n;
    }
    if (keep == NULL)
        return;
    pthread_mutex_lock(&L->mu);
    grace__conn_t *last = keep;
    while (last->next_closed)
        last = last->next_closed;
    last->next_closed = L->closed;
    L->closed = keep;
    pthread_mutex_unlock(&L->mu);
}

/* Every connection's timers (grace__conn_tick: timeouts, the drain's idle
 * rule). */
static void tick_conns(grace__loop_t *L, int64_t now)
{
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

/* Between batches: free closed connections, release listeners of draining
 * servers, and run every connection's timers. No handler runs here, so the
 * owner cannot change under it. */
static void maintenance(grace__loop_t *L)
{
    free_closed(L);
    bool drain = atomic_exchange(&L->check_drain, false);
    if (drain)
        sync_listeners(L);
    int64_t now = now_ms();
    grace__accept_resume(L, now);
    if (!drain && now < L->next_scan_ms)
        return;
    L->next_scan_ms = now + SCAN_MS;
    if (L->n_paused && L->resume_ms < L->next_scan_ms)
        L->next_scan_ms = L->resume_ms;
    give_memory_back(L, now);
    tick_conns(L, now);
}

static int loop_timeout(const grace__loop_t *L)
{
    int64_t t = L->next_scan_ms - now_ms();
    return t < 0 ? 0 : (t > SCAN_MS ? SCAN_MS : (int)t);
}

/* Run loop L until this thread loses it to a handoff. */
static void loop_run(grace__loop_t *L)
{
    const grace__backend_t *be = grace__be;
    for (;;) {
        if (!be->step(L)) {
            maintenance(L);
            if (self->lost)
                return;
            if (L->sweep) {
                sweep_listeners(L);
                if (self->lost)
                    return;
                continue; /* (its maintenance releases them) */
            }
            be->wait(L, loop_timeout(L));
            continue;
        }
        if (self->lost)
            return;
    }
}

/* ---- Threads ------------------------------------------------------------- */

/* A thread takes loop L over from one whose handler blocked: the
 * backend's requests of the old thread, and the listeners' accepts, are
 * submitted again from this one (sync_listeners re-arms what a stop ends). */
static void adopt(grace__loop_t *L)
{
    if (grace__be->loop_adopt == NULL)
        return;
    uint_fast64_t bit = (uint_fast64_t)1 << L->id;
    int n = atomic_load(&eng.n_servers);
    for (int i = 0; i < n; i++) {
        grace_server_t *s = eng.servers[i];
        if (atomic_load(&s->state) != GRACE__SRV_RUNNING)
            continue; /* (a drain stops them anyway) */
        for (size_t k = 0; k < s->n_listeners; k++)
            if (atomic_load(&s->listeners[k].armed) & bit)
                grace__be->listen_stop(L, &s->listeners[k]);
    }
    grace__be->loop_adopt(L);
}

static void *worker_main(void *arg)
{
    grace__worker_t *w = arg;
    self = w;
    pthread_mutex_lock(&eng.mu);
    bool taking_over = !w->first_owner; /* (a spare gets a loop by a hand-off) */
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
        if (taking_over)
            adopt(L);
        loop_run(L);
        pthread_mutex_lock(&eng.mu);
        w->loop = NULL;
        w->lost = false;
        w->next_spare = eng.spares;
        eng.spares = w;
        taking_over = true;
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
    w->first_owner = L != NULL;
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
            if (seq != L->seen_seq) { /* (another handler call, or none) */
                L->seen_seq = seq;
                L->seen_since_ms = now;
                continue;
            }
            if (seq == 0 || now - L->seen_since_ms < HANDOFF_MS)
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

/* GRACE_BACKEND=epoll or io_uring forces a backend; unset (or "auto"),
 * io_uring runs when it works here (grace__uring_probe: containers and
 * seccomp profiles often forbid it), else epoll. One log line says which,
 * and why. A forced io_uring that cannot run is an error, not a quiet
 * epoll: whoever forced it wants to know. */
static int choose_backend(int n_loops)
{
    const char *want = getenv("GRACE_BACKEND");
    bool epoll = want && strcmp(want, "epoll") == 0;
    bool uring = want && strcmp(want, "io_uring") == 0;
    if (want && *want && !epoll && !uring && strcmp(want, "auto") != 0) {
        grace_log("GRACE_BACKEND=%s: not a backend (epoll, io_uring or auto)", want);
        return GRACE_EINVAL;
    }
    char why[200] = "grace was built without io_uring (GRACE_IO_URING=OFF)";
    int r = GRACE_EINVAL;
#ifdef GRACE_HAVE_IO_URING
    if (!epoll && (r = grace__uring_probe(why, sizeof why)) == 0) {
        grace__be = &grace__backend_uring;
        grace_log("%d event loops on io_uring%s", n_loops,
                  uring ? " (GRACE_BACKEND=io_uring)" : "");
        return 0;
    }
#endif
    if (uring) {
        grace_log("GRACE_BACKEND=io_uring, but io_uring cannot run here: %s", why);
        return r;
    }
    grace__be = &grace__backend_epoll;
    if (epoll)
        grace_log("%d event loops on epoll (GRACE_BACKEND=epoll)", n_loops);
    else
        grace_log("%d event loops on epoll: io_uring cannot run here: %s", n_loops, why);
    return 0;
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
    if ((eng.err = choose_backend((int)n)) < 0)
        return;
    for (int i = 0; i < eng.n_loops; i++) {
        grace__loop_t *L = &eng.loops[i];
        L->id = i;
        L->conns.next = L->conns.prev = &L->conns;
        L->spare.next = L->spare.prev = &L->spare;
        pthread_mutex_init(&L->mu, NULL);
        L->wake.kind = GRACE__EV_WAKE;
        L->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        char why[200] = "eventfd";
        int r = L->wake.fd < 0 ? -errno : grace__be->loop_init(L, why, sizeof why);
        if (r < 0) {
            grace_log("event loop %d: %s: %s", i, why, strerror(-r));
            eng.err = r;
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

/* Accept on s's listeners in every loop, all or none (listen_any_thread
 * backends). Called with eng.mu held. */
static int listen_everywhere(grace_server_t *s)
{
    int r = 0, done = 0; /* loops that took every listener */
    for (; r == 0 && done < eng.n_loops; done++) {
        grace__loop_t *L = &eng.loops[done];
        for (size_t i = 0; i < s->n_listeners && r == 0; i++) {
            if ((r = grace__be->listen_start(L, &s->listeners[i])) < 0)
                for (size_t k = 0; k < i; k++) /* this loop: undo its part */
                    grace__be->listen_stop(L, &s->listeners[k]);
        }
        if (r < 0)
            break;
    }
    for (int k = 0; r < 0 && k < done; k++)
        for (size_t i = 0; i < s->n_listeners; i++)
            grace__be->listen_stop(&eng.loops[k], &s->listeners[i]);
    return r;
}

int grace__engine_add_server(grace_server_t *s)
{
    pthread_mutex_lock(&eng.mu);
    int r = 0, have = atomic_load(&eng.n_servers);
    if (have == MAX_REGISTERED)
        r = GRACE_ENOMEM;
    if (r == 0 && grace__be->listen_any_thread)
        r = listen_everywhere(s);
    if (r == 0) {
        eng.servers[have] = s;
        atomic_store(&eng.n_servers, have + 1);
    }
    pthread_mutex_unlock(&eng.mu);
    /* Otherwise each loop arms the listeners itself (sync_listeners). A
     * connection that comes first waits in the queue meanwhile. */
    if (r == 0 && !grace__be->listen_any_thread)
        grace__engine_sync_listeners();
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
