/*
 * restart.c -- graceful restart, full restart, and the cap on draining
 * generations (SPEC G1, G2, G4, G5, G8, B1, B2).
 *
 * Graceful restart, step by step (docs/architecture.md has it file by file):
 *  1. may_restart: refused, nothing changed, when another restart runs, this
 *     process has already handed over, the servers shut down, the
 *     executable is not one, or max_draining old processes still drain.
 *     Every outcome, refusals too, goes to PIDFILE.outcome for gracectl.
 *  2. spawn.c starts the new process with every listening socket and a
 *     socket to say "ready" on; the live older drainers go along
 *     (GRACE_DRAINING), so the count survives generations.
 *  3. On "ready": probation.c watches the new process; lifecycle.c drains
 *     this one (the loops let go of the listeners -- grace_restart returns
 *     once they have, so every new connection reaches the new process --
 *     requests in flight and the next request of each keep-alive
 *     connection are answered with "Connection: close", idle connections
 *     closed); grace_wait() returns when it is done, or at
 *     graceful_shutdown_timeout_ms.
 *  4. Not ready, or gone: spawn.c has killed and reaped it; this process
 *     keeps serving and says why (rollback).
 * Full restart drains every server, then execs the program in place (same
 * PID), which binds its ports again. A refusal or failure is written to
 * PIDFILE.outcome here; success only the program executed afresh can tell
 * (GRACE_FULL_RESTART, inherit.c), once it serves.
 */
#include "internal.h"
#include "tickets.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef grace__drainer_t drainer_t;

enum { MAX_DRAINERS = 64 };

/* Process facts and restart state: a deliberate singleton. */
static struct {
    pthread_mutex_t mu; /* one restart at a time; guards the fields below */
    grace_restart_options_t opt;

    atomic_bool full_pending; /* a full restart waits for the drain */
} rs = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .opt = {0, 30000, 5000, 8, 1000, 2000, 0},
};

static void on_restart_signal(int sig);

/* ---- Start-up: facts --------------------------------------------------------- */

__attribute__((constructor)) static void restart_init(void)
{
    /* What the signals mean for a restart; installed when the first
     * server starts. */
    grace__signal_on(SIGUSR1, on_restart_signal);
    grace__signal_on(SIGUSR2, on_restart_signal);
    /* An idle process's ticket keys rotate too (tickets.c says why). */
    grace__engine_on_tick(grace__tickets_tick);
}

/* ---- Options and facts ------------------------------------------------------ */

int grace_set_restart_options(const grace_restart_options_t *o)
{
    if (o == NULL || o->graceful_timeout_ms < 0 || o->graceful_shutdown_timeout_ms < 0 ||
        o->max_draining < 0 || o->max_draining >= MAX_DRAINERS || o->drain_idle_ms < 0 ||
        o->drain_idle_ms > 86400000 || o->probation_ms < 0 || o->shutdown_delay_ms < 0 ||
        o->shutdown_delay_ms > 3600000)
        return GRACE_EINVAL;
    pthread_mutex_lock(&rs.mu);
    rs.opt.graceful = o->graceful != 0;
    if (o->graceful_timeout_ms)
        rs.opt.graceful_timeout_ms = o->graceful_timeout_ms;
    if (o->graceful_shutdown_timeout_ms)
        rs.opt.graceful_shutdown_timeout_ms = o->graceful_shutdown_timeout_ms;
    if (o->max_draining)
        rs.opt.max_draining = o->max_draining;
    if (o->drain_idle_ms)
        rs.opt.drain_idle_ms = o->drain_idle_ms;
    if (o->probation_ms)
        rs.opt.probation_ms = o->probation_ms;
    if (o->shutdown_delay_ms)
        rs.opt.shutdown_delay_ms = o->shutdown_delay_ms;
    grace__lifecycle_set_drain(rs.opt.graceful_shutdown_timeout_ms, rs.opt.drain_idle_ms,
                               rs.opt.shutdown_delay_ms);
    pthread_mutex_unlock(&rs.mu);
    return 0;
}

void grace_get_restart_options(grace_restart_options_t *out)
{
    pthread_mutex_lock(&rs.mu);
    *out = rs.opt;
    pthread_mutex_unlock(&rs.mu);
}

/* ---- Spawning the new process ------------------------------------------------- */

/* Start time of a live pid (field 22 of /proc/PID/stat), to tell it from a
 * reused PID; 0 if it is gone or a zombie (exited, not yet reaped: it drains
 * nothing). */
static unsigned long long proc_start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return 0;
    unsigned long long start = 0;
    /* After ")": state is field 3; starttime is field 22. */
    int field = 2;
    char *save;
    for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (++field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    return start;
}

/* The older processes that still drain (alive, not zombies), oldest first. */
static int live_drainers(drainer_t *out)
{
    drainer_t all[MAX_DRAINERS];
    int n_all = grace__older_drainers(all, MAX_DRAINERS - 1), n = 0;
    for (int i = 0; i < n_all; i++)
        if (proc_start_time(all[i].pid) == all[i].start)
            out[n++] = all[i];
    return n;
}

static int cmp_deadline(const void *a, const void *b)
{
    const drainer_t *x = a, *y = b;
    return (x->deadline_ms > y->deadline_ms) - (x->deadline_ms < y->deadline_ms);
}

/* Refuse a restart that would make more than max_draining processes drain
 * at once (the live older ones plus this one): say which still drain and
 * until when, and when a retry can succeed -- when enough of them have
 * reached their drain limit. */
static int refuse_max_draining(drainer_t *live, int n_live, grace_restart_outcome_t *out)
{
    qsort(live, (size_t)n_live, sizeof *live, cmp_deadline);
    int64_t now = grace__wall_ms();
    int must_end = n_live + 1 - rs.opt.max_draining; /* >= 1 */
    int64_t wait_ms = live[must_end - 1].deadline_ms - now;
    out->retry_after_s = wait_ms <= 1000 ? 1 : (int)((wait_ms + 999) / 1000);
    size_t len = (size_t)snprintf(
        out->why, sizeof out->why,
        "%d older processes are still draining (max_draining %d):", n_live, rs.opt.max_draining);
    for (int i = 0; i < n_live && len < sizeof out->why; i++) {
        time_t t = (time_t)(live[i].deadline_ms / 1000);
        struct tm tm;
        char until[16] = "?";
        if (live[i].deadline_ms > 0 && localtime_r(&t, &tm))
            strftime(until, sizeof until, "%H:%M:%S", &tm);
        len += (size_t)snprintf(out->why + len, sizeof out->why - len, "%s %ld until %s",
                                i ? "," : "", live[i].pid, until);
    }
    if (len < sizeof out->why)
        snprintf(out->why + len, sizeof out->why - len, "; retry in %d s", out->retry_after_s);
    return GRACE_EMAXDRAINING;
}

/* GRACE_DRAINING for the child: the live older processes, then this one,
 * whose drain starts when the child is ready. */
static int format_drainers(grace__buf_t *b, const drainer_t *live, int n_live)
{
    drainer_t self = {(long)getpid(), proc_start_time(getpid()), 0,
                      rs.opt.graceful_shutdown_timeout_ms};
    int r = grace__drainers_format(b, live, n_live);
    if (r == 0 && n_live > 0)
        r = grace__buf_append(b, ",", 1);
    return r < 0 ? r : grace__drainers_format(b, &self, 1);
}

/* Checks before a graceful restart; fills out and returns an error if it
 * must not happen now. Called with rs.mu held. */
static int may_restart(const char *exe, drainer_t *live, int *n_live, grace_restart_outcome_t *out)
{
    if (grace__handed_over()) {
        /* A new process serves already; this one only drains. A retry
         * reaches the new process. */
        out->retry_after_s = 1;
        snprintf(out->why, sizeof out->why,
                 "this process has handed over to a new one and is draining");
        return GRACE_EHANDEDOVER;
    }
    if (atomic_load(&rs.full_pending)) { /* the program executed afresh takes the retry */
        out->retry_after_s = 1;
        snprintf(out->why, sizeof out->why, "a full restart is already in progress");
        return GRACE_ERESTARTING;
    }
    if (grace__is_draining()) {
        snprintf(out->why, sizeof out->why, "the servers are shutting down");
        return GRACE_ESTATE;
    }
    if (!grace__is_executable_file(exe)) {
        snprintf(out->why, sizeof out->why, "%s is not an executable file", exe);
        return GRACE_EBADEXE;
    }
    *n_live = live_drainers(live);
    if (*n_live + 1 > rs.opt.max_draining)
        return refuse_max_draining(live, *n_live, out);
    return 0;
}

/* The new process pid is ready: it serves from now on, this one drains. */
static void hand_over(pid_t pid, int chan, const char *pending)
{
    grace__probation_start(pid, chan, pending, rs.opt.probation_ms);
    grace__drain_begin();
    grace__drain_all();
    /* Once this returns, new connections reach the new process only:
     * the loops let go of the listeners within a tick or so. */
    grace__lifecycle_wait_released(1000, false);
    grace_log("new process %d is serving; this process finishes its requests and exits", (int)pid);
    grace__pid_file_write(pid);
    grace__notify("MAINPID=%ld\nREADY=1\nSTATUS=serving (new process %ld)", (long)pid, (long)pid);
    /* Our own parent may still be on probation watch: it need not
     * take the sockets back if we exit now. */
    grace__parent_handed_over();
}

static int graceful_restart(const char *exe, grace_restart_outcome_t *out)
{
    if (pthread_mutex_trylock(&rs.mu) != 0) {
        out->retry_after_s = 1;
        snprintf(out->why, sizeof out->why, "a restart is already in progress");
        grace_log("restart refused: %s", out->why);
        grace__outcome_write(out);
        return GRACE_ERESTARTING;
    }
    drainer_t live[MAX_DRAINERS];
    int n_live = 0;
    int r = may_restart(exe, live, &n_live, out);
    if (r < 0)
        goto out;
    grace_log("server reloading");
    grace__notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=restarting",
                  (unsigned long long)grace__monotonic_usec());
    grace__buf_t draining = {0};
    r = format_drainers(&draining, live, n_live);
    if (r < 0 || grace__buf_append(&draining, "", 1) < 0) {
        grace__buf_free(&draining);
        r = GRACE_ENOMEM;
        goto out;
    }
    char draining_env[sizeof GRACE__ENV_DRAINING + MAX_DRAINERS * 80];
    snprintf(draining_env, sizeof draining_env, GRACE__ENV_DRAINING "=%s", draining.ptr);
    grace__buf_free(&draining);
    const char *env[] = {draining_env, NULL};
    grace__spawn_t req = {exe, NULL, env, rs.opt.graceful_timeout_ms, NULL, NULL, NULL};
    int chan = -1;
    char pending[64] = "";
    r = grace__spawn_ready(&req, &chan, pending, out->why, sizeof out->why);
    if (r > 0) {
        out->pid = r;
        hand_over(r, chan, pending);
    }
out:
    if (r < 0 && out->why[0] == '\0')
        snprintf(out->why, sizeof out->why, "%s", grace_strerror(r));
    if (out->retry_after_s > 0)
        grace_log("restart refused: %s", out->why);
    else if (r < 0)
        grace_log("restart failed: %s; this process keeps serving", out->why);
    if (r < 0 && out->retry_after_s == 0)
        grace__notify("READY=1\nSTATUS=restart failed: %s", out->why);
    grace__outcome_write(out);
    pthread_mutex_unlock(&rs.mu);
    return r;
}

/* ---- Full restart ------------------------------------------------------------ */

static char full_exe[4096];

static void *full_restart_thread(void *arg)
{
    (void)arg;
    grace__wait_stopped(); /* every server drained (or the drain limit passed) */
    /* The program executed afresh writes the outcome once it serves; its
     * TLS clients resume their sessions (the ticket keys go along). */
    char **env = grace__env_afresh();
    char *const *argv = grace__argv();
    char *fallback[2] = {full_exe, NULL};
    if (argv == NULL || argv[0] == NULL)
        argv = fallback;
    grace_log("executing %s afresh", full_exe);
    grace__activated_pass_on(); /* systemd's sockets: the same PID takes them again */
    execve(full_exe, argv, env ? env : environ);
    grace_restart_outcome_t out = {0};
    snprintf(out.why, sizeof out.why, "cannot execute %.400s: %s; the process exited", full_exe,
             strerror(errno));
    grace_log("restart failed: %s", out.why);
    grace__outcome_write(&out);
    grace__env_free(env);
    _exit(1); /* the servers are already down: nothing to fall back to */
}

/* Checks before a full restart; fills out and returns an error if it must
 * not happen now. Called with rs.mu held. */
static int may_restart_full(const char *exe, grace_restart_outcome_t *out)
{
    if (!grace__is_executable_file(exe)) {
        snprintf(out->why, sizeof out->why, "%s is not an executable file", exe);
        return GRACE_EBADEXE;
    }
    out->retry_after_s = 1; /* the refusals below */
    if (grace__handed_over()) {
        snprintf(out->why, sizeof out->why,
                 "this process has handed over to a new one and is draining");
        return GRACE_EHANDEDOVER;
    }
    if (atomic_load(&rs.full_pending)) {
        snprintf(out->why, sizeof out->why, "a full restart is already in progress");
        return GRACE_ERESTARTING;
    }
    out->retry_after_s = 0;
    return 0;
}

static int full_restart(const char *exe, grace_restart_outcome_t *out)
{
    pthread_mutex_lock(&rs.mu);
    int r = may_restart_full(exe, out);
    if (r == 0) {
        atomic_store(&rs.full_pending, true);
        grace__lifecycle_hold(true); /* grace_wait() must not return before the exec */
        snprintf(full_exe, sizeof full_exe, "%s", exe);
    }
    pthread_mutex_unlock(&rs.mu);
    if (r == 0) {
        grace_log("server restarting");
        grace__notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=full restart",
                      (unsigned long long)grace__monotonic_usec());
        if (grace__thread_detached(full_restart_thread, NULL) == 0) {
            grace__drain_begin();
            grace__drain_all();
            return 0;
        }
        atomic_store(&rs.full_pending, false);
        grace__lifecycle_hold(false);
        snprintf(out->why, sizeof out->why, "cannot start a thread");
        r = GRACE_ENOMEM;
    }
    grace_log("restart %s: %s%s", out->retry_after_s ? "refused" : "failed", out->why,
              out->retry_after_s ? "" : "; this process keeps serving");
    grace__outcome_write(out);
    return r;
}

/* ---- API ----------------------------------------------------------------------- */

/* A master's child restarts nothing itself: the master restarts every child
 * (graceful unless kind is FULL) and answers with the outcome. */
static int ask_master(const char *new_exe_path, grace_restart_kind_t kind,
                      grace_restart_outcome_t *out)
{
    char req[4200], reply[700];
    snprintf(req, sizeof req, "restart %d %s\n", (int)kind,
             new_exe_path && *new_exe_path ? new_exe_path : "-");
    int r = grace__parent_ask(req, reply, sizeof reply, 4 * rs.opt.graceful_timeout_ms + 10000);
    int code = 0, retry = 0;
    if (r < 0) {
        snprintf(out->why, sizeof out->why, "the master does not answer: %s", grace_strerror(r));
    } else if (sscanf(reply, "ok %d", &code) == 1) {
        /* The master told this process to drain (SIGTERM) before it
         * answered: let the caller return only once it has stopped
         * accepting, as a self-replacing restart does (hand_over), so a
         * client that connects after the answer reaches a new child. (A
         * shutdown_delay keeps accepting: then this waits its second.) */
        grace__lifecycle_wait_released(1000, true);
        out->pid = code;
        return code;
    } else if (sscanf(reply, "err %d %d %511[^\n]", &code, &retry, out->why) >= 2 && code < 0) {
        r = code;
        out->retry_after_s = retry;
    } else {
        r = GRACE_EINVAL;
        snprintf(out->why, sizeof out->why, "the master answered \"%.60s\"", reply);
    }
    grace_log("restart %s: %s", out->retry_after_s ? "refused" : "failed", out->why);
    return r;
}

int grace_restart_ex(const char *new_exe_path, grace_restart_kind_t kind,
                     grace_restart_outcome_t *out)
{
    grace_restart_outcome_t local;
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);
    if (grace__role() == GRACE__ROLE_CHILD)
        return ask_master(new_exe_path, kind, out);
    const char *exe = new_exe_path && *new_exe_path ? new_exe_path : grace_executable_path();
    bool graceful = rs.opt.graceful; /* set before start, read-only since */
    switch (kind) {
    case GRACE_RESTART_AUTO:
        return graceful ? graceful_restart(exe, out) : full_restart(exe, out);
    case GRACE_RESTART_GRACEFUL:
        if (!graceful) {
            snprintf(out->why, sizeof out->why, "graceful restart is off (graceful = 0)");
            grace_log("restart refused: %s", out->why);
            grace__outcome_write(out);
            return GRACE_ESTATE;
        }
        return graceful_restart(exe, out);
    case GRACE_RESTART_FULL:
        return full_restart(exe, out);
    }
    return GRACE_EINVAL;
}

int grace_restart(const char *new_exe_path)
{
    return grace_restart_ex(new_exe_path, GRACE_RESTART_AUTO, NULL);
}

int grace_reload(const char *new_exe_path)
{
    return grace_restart_ex(new_exe_path, GRACE_RESTART_GRACEFUL, NULL);
}

int grace_restart_full(const char *new_exe_path)
{
    return grace_restart_ex(new_exe_path, GRACE_RESTART_FULL, NULL);
}

int grace_server_restart(grace_server_t *s, const char *new_exe_path)
{
    (void)s; /* one restart restarts every server, as in gf */
    return grace_restart(new_exe_path);
}

int grace_server_reload(grace_server_t *s, const char *new_exe_path)
{
    (void)s;
    return grace_reload(new_exe_path);
}

static void on_restart_signal(int sig)
{
    grace_log("received signal %d (%s): %s restart", sig, strsignal(sig),
              sig == SIGUSR1 ? "graceful" : "full");
    char exe[4096];
    const char *to = grace__exe_request_take(exe, sizeof exe) ? exe : NULL; /* (gracectl --exe) */
    if (sig == SIGUSR2) {
        grace_restart_full(to);
        return;
    }
    if (!rs.opt.graceful) {
        grace_log("SIGUSR1: graceful restart is off (graceful = 0): doing a full restart");
        grace_restart_full(to);
        return;
    }
    grace_reload(to);
}
