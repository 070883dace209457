/*
 * restart.c -- graceful restart, full restart, drain limits, and the
 * inherited-socket protocol between an old and a new process.
 *
 * Graceful restart, step by step (SPEC G1, G4, G5, B1, B2, B4):
 *  1. The old process builds, before fork, everything the child needs: argv
 *     (its own, from /proc/self/cmdline at start-up), the environment plus
 *     GRACE_LISTEN_FDS ("fd|spec|server name" lines, one per listening
 *     socket of every running server) and GRACE_READY_FD (the write end of a
 *     pipe). No TCP port and no file: the descriptors are the channel.
 *  2. fork(); the child clears FD_CLOEXEC on exactly those descriptors and
 *     execs the executable (the same path, or new_exe_path). Between fork and
 *     exec only async-signal-safe calls run.
 *  3. The new process's servers take inherited sockets by (server name,
 *     address) and bind only what they did not inherit; when the program
 *     calls grace_wait() (or grace_ready()) it closes inherited sockets no
 *     server took and writes "ready PID" on the pipe.
 *  4. The old process, on "ready", drains: it keeps accepting until each of
 *     its loops has dropped the listeners (an EPOLLEXCLUSIVE wakeup it took
 *     must not strand a queued connection), answers requests in flight and
 *     the next request of every keep-alive connection with "Connection:
 *     close", closes connections idle for drain_idle_ms (conn.c), and exits
 *     when grace_wait() returns -- or when graceful_shutdown_timeout_ms
 *     passes, cutting what is left. It reaps the new process if that one
 *     exits first (SIGCHLD, see reap_children): no zombie, ever.
 *  5. If the child exits, or is not ready within graceful_timeout_ms (then
 *     it is killed and reaped), the old process keeps serving (rollback).
 * Draining generations are counted, live ones only, through GRACE_DRAINING
 * (each process passes the list on to its successor): a restart that would
 * make more than max_draining drain at once is refused, never done by
 * cutting an older process's requests short.
 * Full restart (G2) drains every server, then execs the program in place.
 */
#include "internal.h"

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

enum { MAX_LISTENERS_PASSED = 256, MAX_DRAINERS = 64, MAX_CHILDREN = 64 };

/* Process facts and restart state: a deliberate singleton. */
static struct {
    pthread_mutex_t mu; /* one restart at a time; guards the fields below */
    grace_restart_options_t opt;
    int64_t start_ms;
    char exe[4096];
    char **argv; /* NULL-terminated copy of our argv */

    atomic_bool full_pending;              /* a full restart waits for the drain */
} rs = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .opt = {0, 30000, 5000, 8, 1000, 2000},
};

static void on_restart_signal(int sig);

/* ---- Start-up: facts --------------------------------------------------------- */

static void read_argv(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    grace__buf_t b = {0};
    char chunk[4096];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        grace__buf_append(&b, chunk, (size_t)n);
    close(fd);
    size_t argc = 0;
    for (size_t i = 0; i < b.len; i++)
        argc += b.ptr[i] == '\0';
    rs.argv = calloc(argc + 1, sizeof *rs.argv);
    if (rs.argv == NULL) {
        grace__buf_free(&b);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < b.len && k < argc; k++) {
        rs.argv[k] = strdup(b.ptr + i);
        i += strlen(b.ptr + i) + 1;
    }
    grace__buf_free(&b);
}

/* Runs when the program loads, before main(): the executable path must be
 * read before a deploy replaces the file, and the grace variables must leave
 * the environment before the program can start children of its own. */
__attribute__((constructor)) static void restart_init(void)
{
    rs.start_ms = grace__now_ms();
    ssize_t n = readlink("/proc/self/exe", rs.exe, sizeof rs.exe - 1);
    rs.exe[n > 0 ? n : 0] = '\0';
    read_argv();
    /* What the signals mean for a restart; installed when the first
     * server starts. */
    grace__signal_on(SIGUSR1, on_restart_signal);
    grace__signal_on(SIGUSR2, on_restart_signal);

}

/* ---- Options and facts ------------------------------------------------------ */

int grace_set_restart_options(const grace_restart_options_t *o)
{
    if (o == NULL || o->graceful_timeout_ms < 0 || o->graceful_shutdown_timeout_ms < 0 ||
        o->max_draining < 0 || o->max_draining >= MAX_DRAINERS || o->drain_idle_ms < 0 ||
        o->drain_idle_ms > 86400000 || o->probation_ms < 0)
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
    grace__lifecycle_set_drain(rs.opt.graceful_shutdown_timeout_ms, rs.opt.drain_idle_ms);
    pthread_mutex_unlock(&rs.mu);
    return 0;
}

void grace_get_restart_options(grace_restart_options_t *out)
{
    pthread_mutex_lock(&rs.mu);
    *out = rs.opt;
    pthread_mutex_unlock(&rs.mu);
}

int64_t grace_uptime_ms(void)
{
    return grace__now_ms() - rs.start_ms;
}

const char *grace_executable_path(void)
{
    return rs.exe;
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
    size_t len = (size_t)snprintf(out->why, sizeof out->why,
                                  "%d older processes are still draining (max_draining %d):",
                                  n_live, rs.opt.max_draining);
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

/* GRACE_LISTEN_FDS: every listening socket of every running server. A
 * server whose name cannot be carried is not passed on (its addresses are
 * bound afresh by the new process, or fail there, loudly). */
static void add_listener_fd(grace_server_t *s, void *user)
{
    grace__buf_t *b = user;
    if (atomic_load(&s->state) != GRACE__SRV_RUNNING)
        return;
    for (size_t i = 0; i < s->n_listeners; i++)
        if (s->listeners[i].fd >= 0)
            grace__listen_fds_format(b, s->listeners[i].fd, s->listeners[i].spec, s->name);
}

/* entry is "NAME=..." */
static bool is_env(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Build the child's environment: ours without grace's variables, plus extra.
 * Returns a NULL-terminated array (free with free_env). */
static char **build_env(const char *const *extra, size_t n_extra)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + n_extra + 1, sizeof *env);
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_env(environ[i], GRACE__ENV_LISTEN_FDS) || is_env(environ[i], GRACE__ENV_READY_FD) ||
            is_env(environ[i], GRACE__ENV_DRAINING))
            continue;
        env[k++] = strdup(environ[i]);
    }
    for (size_t i = 0; i < n_extra; i++)
        env[k++] = strdup(extra[i]);
    return env;
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* fork + exec the new process with the listening sockets and the ready pipe.
 * Returns the child's PID or a negative error. */
static pid_t spawn(const char *exe, const grace__buf_t *fds, int ready_w, char **env)
{
    /* Everything the child needs is computed before fork. */
    int keep[MAX_LISTENERS_PASSED + 1], n_keep = 0;
    for (const char *p = fds->ptr, *end = fds->ptr + fds->len;
         p < end && n_keep < MAX_LISTENERS_PASSED;) {
        keep[n_keep++] = atoi(p);
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        p = eol ? eol + 1 : end;
    }
    keep[n_keep++] = ready_w;
    char *const *argv = rs.argv;
    char *fallback[2] = {(char *)exe, NULL};
    if (argv == NULL || argv[0] == NULL)
        argv = fallback;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* no handler runs in the child */
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < n_keep; i++)
            fcntl(keep[i], F_SETFD, 0);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL/STOP */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execve(exe, argv, env);
        _exit(127);
    }
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pid < 0 ? -err : pid;
}

/* Reap a child that closed its ready pipe (or sent garbage) and say why it
 * will never be ready. */
static void reap_failed(pid_t pid, char *why, size_t why_len)
{
    int status = 0;
    pid_t w;
    int64_t reap_deadline = grace__now_ms() + 2000;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && grace__now_ms() < reap_deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (w == 0) { /* alive but closed the pipe: it will never be ready */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        snprintf(why, why_len, "new process %d closed its ready pipe and was killed", (int)pid);
    } else if (w > 0 && WIFEXITED(status)) {
        snprintf(why, why_len, "new process %d exited with status %d before it was ready",
                 (int)pid, WEXITSTATUS(status));
    } else if (w > 0 && WIFSIGNALED(status)) {
        snprintf(why, why_len, "new process %d was killed by signal %d (%s) before it was ready",
                 (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
    } else {
        snprintf(why, why_len, "new process %d closed its ready pipe", (int)pid);
    }
}

/* Wait for "ready" from the child. Returns its PID, or an error after
 * killing and reaping it. What came after the ready line goes to pending
 * (64 bytes), for the probation. */
static int wait_ready(pid_t pid, int ready_r, char pending[64], char *why, size_t why_len)
{
    int64_t deadline = grace__now_ms() + rs.opt.graceful_timeout_ms;
    char buf[64];
    size_t len = 0;
    for (;;) {
        int64_t left = deadline - grace__now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            snprintf(why, why_len, "new process %d was not ready within %lld ms and was killed",
                     (int)pid, (long long)rs.opt.graceful_timeout_ms);
            return GRACE_ENOTREADY;
        }
        struct pollfd pfd = {ready_r, POLLIN, 0};
        int r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        ssize_t n = read(ready_r, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            char *eol = strchr(buf, '\n');
            if (strncmp(buf, "ready ", 6) == 0 && eol) {
                snprintf(pending, 64, "%s", eol + 1);
                return pid;
            }
            if (len < sizeof buf - 1)
                continue;
        }
        /* EOF (or garbage): the child exited or closed the pipe. */
        reap_failed(pid, why, why_len);
        return GRACE_ECHILDEXIT;
    }
}

/* The child's environment: ours, plus the listening sockets, the ready pipe
 * and the draining generations. NULL when out of memory. */
static char **child_env(const grace__buf_t *fds, int ready_w, const grace__buf_t *draining)
{
    grace__buf_t v[3] = {{0}, {0}, {0}};
    grace__buf_appendf(&v[0], GRACE__ENV_LISTEN_FDS "=%.*s", (int)fds->len, fds->ptr);
    grace__buf_appendf(&v[1], GRACE__ENV_READY_FD "=%d", ready_w);
    grace__buf_appendf(&v[2], GRACE__ENV_DRAINING "=%.*s", (int)draining->len, draining->ptr);
    for (int i = 0; i < 3; i++)
        grace__buf_append(&v[i], "", 1); /* appendf does not terminate */
    char **env = NULL;
    if (v[0].ptr && v[1].ptr && v[2].ptr) {
        const char *extra[3] = {v[0].ptr, v[1].ptr, v[2].ptr};
        env = build_env(extra, 3);
    }
    for (int i = 0; i < 3; i++)
        grace__buf_free(&v[i]);
    return env;
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

static int graceful_restart(const char *exe, grace_restart_outcome_t *out)
{
    if (pthread_mutex_trylock(&rs.mu) != 0) {
        out->retry_after_s = 1;
        snprintf(out->why, sizeof out->why, "a restart is already in progress");
        grace_log("restart refused: %s", out->why);
        return GRACE_ERESTARTING;
    }
    grace__buf_t fds = {0};
    char **env = NULL;
    int chan[2] = {-1, -1}; /* the ready channel: [0] ours, [1] the child's */
    drainer_t live[MAX_DRAINERS];
    int n_live = 0;
    int r = may_restart(exe, live, &n_live, out);
    if (r < 0)
        goto out;
    grace_servers_foreach(add_listener_fd, &fds);
    if (fds.len == 0) {
        r = GRACE_ESTATE;
        snprintf(out->why, sizeof out->why, "no server is running");
        goto out;
    }
    grace_log("server reloading");
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0) {
        r = -errno;
        snprintf(out->why, sizeof out->why, "socketpair: %s", grace_strerror(r));
        goto out;
    }
    grace__buf_t draining = {0};
    if (format_drainers(&draining, live, n_live) == 0)
        env = child_env(&fds, chan[1], &draining);
    grace__buf_free(&draining);
    if (env == NULL) {
        r = GRACE_ENOMEM;
        goto out;
    }
    pid_t pid = spawn(exe, &fds, chan[1], env);
    close(chan[1]);
    chan[1] = -1;
    if (pid < 0) {
        r = pid;
        snprintf(out->why, sizeof out->why, "fork: %s", grace_strerror(r));
        goto out;
    }
    char pending[64] = "";
    r = wait_ready(pid, chan[0], pending, out->why, sizeof out->why);
    if (r > 0) {
        out->pid = r;
        grace__probation_start(pid, chan[0], pending, rs.opt.probation_ms);
        chan[0] = -1; /* the probation owns it now */
        grace__drain_begin();
        grace__drain_all();
        /* Once this returns, new connections reach the new process only:
         * the loops let go of the listeners within a tick or so. */
        grace__lifecycle_wait_released(1000);
        grace_log("new process %d is serving; this process finishes its requests and exits",
                  (int)pid);
        /* Our own parent may still be on probation watch: it need not
         * take the sockets back if we exit now. */
        grace__parent_handed_over();
    }
out:
    if (r < 0 && out->why[0] == '\0')
        snprintf(out->why, sizeof out->why, "%s", grace_strerror(r));
    if (out->retry_after_s > 0)
        grace_log("restart refused: %s", out->why);
    else if (r < 0)
        grace_log("restart failed: %s; this process keeps serving", out->why);
    if (chan[0] >= 0)
        close(chan[0]);
    if (chan[1] >= 0)
        close(chan[1]);
    free_env(env);
    grace__buf_free(&fds);
    pthread_mutex_unlock(&rs.mu);
    return r;
}

/* ---- Full restart ------------------------------------------------------------ */

static char full_exe[4096];

static void *full_restart_thread(void *arg)
{
    (void)arg;
    grace__wait_stopped(); /* every server drained (or the drain limit passed) */
    char **env = build_env(NULL, 0);
    char *const *argv = rs.argv;
    char *fallback[2] = {full_exe, NULL};
    if (argv == NULL || argv[0] == NULL)
        argv = fallback;
    grace_log("executing %s afresh", full_exe);
    execve(full_exe, argv, env ? env : environ);
    grace_log("restart failed: cannot execute %s: %s; exiting", full_exe, strerror(errno));
    free_env(env);
    _exit(1); /* the servers are already down: nothing to fall back to */
}

static int full_restart(const char *exe, grace_restart_outcome_t *out)
{
    int r = 0;
    pthread_mutex_lock(&rs.mu);
    if (!grace__is_executable_file(exe)) {
        r = GRACE_EBADEXE;
        snprintf(out->why, sizeof out->why, "%s is not an executable file", exe);
    } else if (grace__handed_over()) {
        r = GRACE_EHANDEDOVER;
        out->retry_after_s = 1;
        snprintf(out->why, sizeof out->why,
                 "this process has handed over to a new one and is draining");
    } else if (atomic_load(&rs.full_pending)) {
        r = GRACE_ERESTARTING;
        out->retry_after_s = 1;
        snprintf(out->why, sizeof out->why, "a full restart is already in progress");
    } else {
        atomic_store(&rs.full_pending, true);
        grace__lifecycle_hold(true); /* grace_wait() must not return before the exec */
        snprintf(full_exe, sizeof full_exe, "%s", exe);
    }
    pthread_mutex_unlock(&rs.mu);
    if (r < 0) {
        grace_log("restart %s: %s%s", out->retry_after_s ? "refused" : "failed", out->why,
                  out->retry_after_s ? "" : "; this process keeps serving");
        return r;
    }
    grace_log("server restarting");
    if (grace__thread_detached(full_restart_thread, NULL) < 0) {
        atomic_store(&rs.full_pending, false);
        grace__lifecycle_hold(false);
        snprintf(out->why, sizeof out->why, "cannot start a thread");
        grace_log("restart failed: %s; this process keeps serving", out->why);
        return GRACE_ENOMEM;
    }
    grace__drain_begin();
    grace__drain_all();
    return 0;
}

/* ---- API ----------------------------------------------------------------------- */

int grace_restart_ex(const char *new_exe_path, grace_restart_kind_t kind,
                     grace_restart_outcome_t *out)
{
    grace_restart_outcome_t local;
    if (out == NULL)
        out = &local;
    memset(out, 0, sizeof *out);
    const char *exe = new_exe_path && *new_exe_path ? new_exe_path : rs.exe;
    bool graceful = rs.opt.graceful; /* set before start, read-only since */
    switch (kind) {
    case GRACE_RESTART_AUTO:
        return graceful ? graceful_restart(exe, out) : full_restart(exe, out);
    case GRACE_RESTART_GRACEFUL:
        if (!graceful) {
            snprintf(out->why, sizeof out->why, "graceful restart is off (graceful = 0)");
            grace_log("restart refused: %s", out->why);
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
    if (sig == SIGUSR2) {
        grace_restart_full(NULL);
        return;
    }
    if (!rs.opt.graceful) {
        grace_log("SIGUSR1: graceful restart is off (graceful = 0): doing a full restart");
        grace_restart_full(NULL);
        return;
    }
    grace_reload(NULL);
}
