/*
 * lifecycle.c -- the process's life cycle: which servers run, how they drain
 * and stop, the drain limit, and waiting for the end (SPEC S4, G3, G7, B2).
 *
 * A server moves NEW -> RUNNING (server.c starts it and tells us) ->
 * DRAINING (grace_server_shutdown: its loops let go of its listeners, its
 * connections finish) -> STOPPED (listeners closed and no connection left).
 * The process runs while some server has not stopped; grace_wait() sleeps
 * on that count. A drain of the whole process (shutdown, or the old process
 * of a restart) has a limit, graceful_shutdown_timeout_ms, checked by the
 * engine's monitor tick; past it, what is left is cut. A restart's probation
 * (restart.c) holds the listeners open after the loops let go, so that the
 * old process can take them back (grace__lifecycle_undrain).
 *
 * The engine (workers.c, conn.c) reports a connection count reaching zero
 * and listeners let go through the hooks given to grace__engine_start(), so
 * calls run one way: lifecycle -> engine, never back. Everything here is
 * guarded by lc.mu, or atomic where the engine reads it.
 */
#include "internal.h"

#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_SERVERS = 256 };

/* A deliberate singleton: there is one process. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* grace_wait, grace__wait_stopped */
    grace_server_t *started[MAX_SERVERS];
    int n_started;
    int n_running;                     /* started, not yet stopped */
    int holds;                         /* grace__lifecycle_hold: grace_wait must not return */
    int64_t shutdown_timeout_ms;       /* drain limit */
    atomic_int_fast64_t drain_idle_ms; /* copied into each draining server */
    atomic_int_fast64_t deadline_ms;   /* monotonic; 0: not draining */
    atomic_int_fast64_t probation_ms;  /* monotonic end of a restart's probation; 0: none */
    void (*master_run)(void);          /* master mode: what grace_wait() runs */
    int64_t shutdown_delay_ms;         /* restart option shutdown_delay_ms */
    atomic_int_fast64_t stop_at_ms;    /* a delayed shutdown drains then; 0: none */
} lc = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .shutdown_timeout_ms = 5000,
    .drain_idle_ms = 1000,
};

void grace__lifecycle_set_drain(int64_t shutdown_timeout_ms, int64_t idle_ms, int64_t delay_ms)
{
    pthread_mutex_lock(&lc.mu);
    lc.shutdown_timeout_ms = shutdown_timeout_ms;
    lc.shutdown_delay_ms = delay_ms;
    atomic_store(&lc.drain_idle_ms, idle_ms);
    pthread_mutex_unlock(&lc.mu);
}

bool grace__lifecycle_stopping(void)
{
    return atomic_load(&lc.stop_at_ms) != 0;
}

/* ---- Stopping ------------------------------------------------------------------ */

/* A server is down when its listeners are closed and its last connection is
 * gone; both paths call here and the state CAS picks one. */
static void maybe_stopped(grace_server_t *s)
{
    if (atomic_load(&s->state) != GRACE__SRV_DRAINING || !atomic_load(&s->listeners_closed) ||
        atomic_load(&s->n_conns) != 0)
        return;
    int expected = GRACE__SRV_DRAINING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_STOPPED))
        return;
    pthread_mutex_lock(&lc.mu);
    if (--lc.n_running == 0)
        grace_log("all servers shutdown");
    pthread_cond_broadcast(&lc.cond);
    pthread_mutex_unlock(&lc.mu);
}

static bool in_probation(void)
{
    int64_t until = atomic_load(&lc.probation_ms);
    return until && grace__now_ms() < until;
}

/* Engine hook: every loop has let go of s's listeners. Close them -- unless
 * a probation keeps them -- and see whether s has stopped. */
static void listeners_released(grace_server_t *s)
{
    pthread_mutex_lock(&lc.mu);
    pthread_cond_broadcast(&lc.cond); /* grace__lifecycle_wait_released */
    pthread_mutex_unlock(&lc.mu);
    if (in_probation())
        return;                 /* grace__lifecycle_probation(0) comes back */
    pthread_mutex_lock(&lc.mu); /* against grace__lifecycle_undrain */
    if (atomic_load(&s->all_released) && !atomic_load(&s->listeners_closed) &&
        atomic_load(&s->state) == GRACE__SRV_DRAINING) {
        for (size_t i = 0; i < s->n_listeners; i++) {
            if (!grace__is_activated(s->listeners[i].fd)) /* systemd's stay ours */
                close(s->listeners[i].fd);
            s->listeners[i].fd = -1;
        }
        atomic_store(&s->listeners_closed, true);
    }
    pthread_mutex_unlock(&lc.mu);
    maybe_stopped(s);
}

/* Engine hook: s's connection count reached zero. */
static void conn_closed(grace_server_t *s)
{
    maybe_stopped(s);
}

/* Engine tick (monitor thread, every few ms): past the drain limit, stop
 * waiting for what is left; grace_wait() returns and the process exits,
 * which closes the remaining connections. Never during a probation. */
static void drain_now(void);

static void tick(int64_t now)
{
    int64_t stop_at = atomic_load(&lc.stop_at_ms);
    if (stop_at > 0 && now >= stop_at &&
        atomic_compare_exchange_strong(&lc.stop_at_ms, &stop_at, -1))
        drain_now(); /* the shutdown delay is over */
    int64_t deadline = atomic_load(&lc.deadline_ms);
    if (deadline == 0 || now < deadline || in_probation())
        return;
    atomic_store(&lc.deadline_ms, INT64_MAX); /* once */
    grace__force_stop("graceful_shutdown_timeout passed");
}

static void shutdown_here(void);

static void on_shutdown_signal(int sig)
{
    grace_log("received signal %d (%s): graceful shutdown", sig, strsignal(sig));
    shutdown_here();
}

/* A master's child leaves SIGINT, SIGQUIT and SIGHUP to its master (a
 * Ctrl-C reaches both; the master then tells the child, once): only
 * SIGTERM, from the master, drains it. */
static void on_child_ignored_signal(int sig)
{
    grace_log("received signal %d (%s): ignored (the master decides)", sig, strsignal(sig));
}

int grace__lifecycle_start(void)
{
    grace__role_t role = grace__role();
    if (role == GRACE__ROLE_MASTER) /* it serves nothing: no loops; master.c has the signals */
        return grace__signals_start();
    static const grace__engine_hooks_t hooks = {conn_closed, listeners_released, tick};
    int r = grace__engine_start(&hooks);
    static const int sigs[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM};
    for (size_t i = 0; r == 0 && i < sizeof sigs / sizeof sigs[0]; i++) {
        bool ignored = role == GRACE__ROLE_CHILD && sigs[i] != SIGTERM;
        r = grace__signal_on(sigs[i], ignored ? on_child_ignored_signal : on_shutdown_signal);
    }
    return r < 0 ? r : grace__signals_start();
}

void grace__lifecycle_set_master(void (*run)(void))
{
    pthread_mutex_lock(&lc.mu);
    lc.master_run = run;
    pthread_mutex_unlock(&lc.mu);
}

void grace__lifecycle_close_listeners(void)
{
    pthread_mutex_lock(&lc.mu);
    for (int i = 0; i < lc.n_started; i++) {
        grace_server_t *s = lc.started[i];
        for (size_t k = 0; k < s->n_listeners; k++) {
            if (s->listeners[k].fd >= 0 && !grace__is_activated(s->listeners[k].fd))
                close(s->listeners[k].fd);
            s->listeners[k].fd = -1;
        }
    }
    pthread_mutex_unlock(&lc.mu);
}

void grace__lifecycle_started(grace_server_t *s)
{
    pthread_mutex_lock(&lc.mu);
    if (lc.n_started < MAX_SERVERS)
        lc.started[lc.n_started++] = s;
    lc.n_running++;
    pthread_mutex_unlock(&lc.mu);
}

/* ---- Draining ----------------------------------------------------------------- */

int grace_server_shutdown(grace_server_t *s)
{
    if (s == NULL)
        return GRACE_EINVAL;
    int expected = GRACE__SRV_RUNNING;
    if (!atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_DRAINING))
        return expected == GRACE__SRV_NEW ? GRACE_ESTATE : 0; /* already going down */
    atomic_store(&s->drain_idle_ms, atomic_load(&lc.drain_idle_ms));
    atomic_store(&s->drain_start_ms, grace__now_ms());
    grace__engine_sync_listeners();
    return 0;
}

void grace__drain_all(void)
{
    pthread_mutex_lock(&lc.mu);
    int n = lc.n_started;
    pthread_mutex_unlock(&lc.mu);
    for (int i = 0; i < n; i++) /* entries never change once written */
        grace_server_shutdown(lc.started[i]);
}

void grace__drain_begin(void)
{
    int64_t zero = 0;
    pthread_mutex_lock(&lc.mu);
    int64_t deadline = grace__now_ms() + lc.shutdown_timeout_ms;
    pthread_mutex_unlock(&lc.mu);
    atomic_compare_exchange_strong(&lc.deadline_ms, &zero, deadline);
}

bool grace__is_draining(void)
{
    return atomic_load(&lc.deadline_ms) != 0;
}

static void drain_now(void)
{
    grace__drain_begin();
    grace__drain_all();
}

/* Shut this process's servers down (a signal, or the master's request):
 * after shutdown_delay_ms if one is set -- meanwhile every request is served
 * and the readiness probe says "draining", so load balancers stop sending --
 * then drain. */
static void shutdown_here(void)
{
    if (grace__is_draining() || atomic_load(&lc.stop_at_ms) != 0) {
        /* Asked again while going down: the operator wants it over now. */
        grace__force_stop("shutdown requested again while draining");
        return;
    }
    pthread_mutex_lock(&lc.mu);
    bool any = false;
    for (int i = 0; i < lc.n_started; i++)
        any |= atomic_load(&lc.started[i]->state) == GRACE__SRV_RUNNING;
    int64_t delay = lc.shutdown_delay_ms;
    pthread_mutex_unlock(&lc.mu);
    if (any) {
        grace_log("server shutting down");
        if (grace__role() == GRACE__ROLE_ALONE)
            grace__notify("STOPPING=1\nSTATUS=shutting down");
    }
    if (any && delay > 0) {
        /* State first, then the line: whoever reads the line (a test, an
         * operator) finds readiness saying draining already. */
        atomic_store(&lc.stop_at_ms, grace__now_ms() + delay);
        grace_log("serving %lld ms more before draining (shutdown_delay): readiness says draining",
                  (long long)delay);
        return;
    }
    drain_now();
}

void grace_shutdown_all(void)
{
    if (grace__role() == GRACE__ROLE_CHILD) {
        /* The whole service stops: the master tells every child. */
        char reply[64];
        if (grace__parent_ask("shutdown\n", reply, sizeof reply, 10000) == 0)
            return;
        grace_log("the master does not answer: shutting this child down alone");
    }
    shutdown_here();
}

void grace__shutdown_here(void)
{
    shutdown_here();
}

void grace__force_stop(const char *why)
{
    pthread_mutex_lock(&lc.mu);
    long conns = 0;
    for (int i = 0; i < lc.n_started; i++)
        conns += atomic_load(&lc.started[i]->n_conns);
    grace_log("%s: closing %ld remaining connections", why, conns);
    for (int i = 0; i < lc.n_started; i++) {
        grace_server_t *s = lc.started[i];
        int st = atomic_load(&s->state);
        while ((st == GRACE__SRV_RUNNING || st == GRACE__SRV_DRAINING) &&
               !atomic_compare_exchange_weak(&s->state, &st, GRACE__SRV_STOPPED))
            ;
        if (st == GRACE__SRV_RUNNING || st == GRACE__SRV_DRAINING)
            lc.n_running--;
    }
    if (lc.n_running == 0)
        grace_log("all servers shutdown");
    pthread_cond_broadcast(&lc.cond);
    pthread_mutex_unlock(&lc.mu);
}

/* ---- Probation (restart.c decides; here is what it changes) ---------------------- */

void grace__lifecycle_probation(int64_t until_ms)
{
    atomic_store(&lc.probation_ms, until_ms);
    if (until_ms)
        return;
    /* Over: close what listeners_released kept open. */
    pthread_mutex_lock(&lc.mu);
    int n = lc.n_started;
    pthread_mutex_unlock(&lc.mu);
    for (int i = 0; i < n; i++)
        if (atomic_load(&lc.started[i]->all_released))
            listeners_released(lc.started[i]);
}

int grace__lifecycle_undrain(void)
{
    int n = 0;
    pthread_mutex_lock(&lc.mu);
    for (int i = 0; i < lc.n_started; i++) {
        grace_server_t *s = lc.started[i];
        int expected = GRACE__SRV_DRAINING;
        if (atomic_load(&s->listeners_closed) ||
            !atomic_compare_exchange_strong(&s->state, &expected, GRACE__SRV_RUNNING))
            continue;
        atomic_store(&s->all_released, false);
        atomic_store(&s->drain_start_ms, 0);
        n++;
    }
    atomic_store(&lc.deadline_ms, 0); /* not draining any more */
    pthread_mutex_unlock(&lc.mu);
    grace__engine_sync_listeners(); /* every loop takes the listeners back */
    return n;
}

/* ---- Waiting -------------------------------------------------------------------- */

bool grace__lifecycle_wait_released(int64_t timeout_ms, bool all_servers)
{
    int64_t deadline = grace__now_ms() + timeout_ms;
    pthread_mutex_lock(&lc.mu);
    for (;;) {
        bool all = true;
        for (int i = 0; i < lc.n_started; i++) {
            int st = atomic_load(&lc.started[i]->state);
            if (st == GRACE__SRV_RUNNING)
                all &= !all_servers;
            else
                all &= st != GRACE__SRV_DRAINING || atomic_load(&lc.started[i]->all_released);
        }
        int64_t left = deadline - grace__now_ms();
        if (all || left <= 0) {
            pthread_mutex_unlock(&lc.mu);
            return all;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts); /* (the condition variable's clock) */
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&lc.cond, &lc.mu, &ts);
    }
}

void grace__lifecycle_hold(bool on)
{
    pthread_mutex_lock(&lc.mu);
    lc.holds += on ? 1 : -1;
    pthread_cond_broadcast(&lc.cond);
    pthread_mutex_unlock(&lc.mu);
}

void grace__wait_stopped(void)
{
    pthread_mutex_lock(&lc.mu);
    while (lc.n_running > 0)
        pthread_cond_wait(&lc.cond, &lc.mu);
    pthread_mutex_unlock(&lc.mu);
}

void grace_wait(void)
{
    /* Waiting means every server the program wanted is started: tell the
     * process that restarted us (if any) that we serve. */
    grace_ready();
    pthread_mutex_lock(&lc.mu);
    void (*master_run)(void) = lc.master_run;
    pthread_mutex_unlock(&lc.mu);
    if (master_run && grace__role() == GRACE__ROLE_MASTER && lc.n_running > 0) {
        master_run(); /* returns when the children have stopped */
        return;
    }
    pthread_mutex_lock(&lc.mu);
    /* A hold (a full restart re-executes the program from a grace thread
     * once the drain ends) keeps main() from returning first. */
    while (lc.n_running > 0 || lc.holds > 0)
        pthread_cond_wait(&lc.cond, &lc.mu);
    pthread_mutex_unlock(&lc.mu);
    grace__pid_file_remove(); /* (only if it still names this process) */
}
