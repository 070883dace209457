/*
 * master.c -- master mode (gf v1's master and child; SPEC G6, B3, B6).
 *
 * grace_enable_master(n) makes this process a small master: its servers
 * bind their listening sockets as usual, but no event loop runs and no
 * handler either; when the program calls grace_wait(), the master starts n
 * children -- the same executable, the same argv plus GRACE_CHILD_FLAG --
 * which inherit every socket (spawn.c) and serve, and it supervises them
 * until it is told to stop. Its PID never changes, so every command targets
 * it:
 *
 *   SIGUSR1          graceful restart: a new child per slot, each ready
 *                    before the old ones are told to drain (SIGTERM); if a
 *                    new one fails, they are all killed and the old ones
 *                    serve on (rollback)
 *   SIGUSR2          full restart: the children drain and exit, the master
 *                    closes its sockets and executes itself (or PIDFILE.exe)
 *                    afresh, with the same PID
 *   SIGINT, SIGQUIT, SIGHUP, SIGTERM
 *                    the children drain and exit, then the master exits 0
 *   a child's request  (admin page, grace_restart(), grace_shutdown_all()
 *                    in a child) arrives on its channel ("restart KIND EXE",
 *                    "shutdown"); the answer goes back on it ("ok PID",
 *                    "err CODE RETRY WHY").
 *
 * Ports the configuration file adds or drops go live with a graceful
 * restart, as without a master: a child that binds an address the master
 * does not hold hands it a copy ("bound SERVER|SPEC" with the descriptor,
 * answered "ok"), which the master passes to the children it starts from
 * then on (held); a child says which inherited sockets it closed unused
 * ("unused SERVER|SPEC", before its ready), and once every new child of a
 * restart said so of one, the master closes its copy. A rollback closes
 * what the restart's children bound.
 *
 * Restarts write their outcome to PIDFILE.outcome (supervisor.c); a full
 * restart's success is written by the master executed afresh, once its
 * children serve.
 *
 * A child that dies unasked is replaced, after a pause that doubles with
 * every quick death (100 ms up to 10 s; reset once a child has lived 10 s):
 * a child that crashes at once on every start costs the master a start
 * every 10 s, never a spin; the master keeps trying and logs each death.
 * Probation: a new child started from a new executable that dies within
 * probation_ms of its ready is replaced from the previous executable.
 *
 * The master's own work runs on one thread, in master_run() (called by
 * grace_wait()): signals and children's channels are polled there, so none
 * of the state below is shared. As PID 1 (a container), it also reaps every
 * orphan the kernel gives it.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    MAX_WORKERS = 64,
    BACKOFF_FIRST_MS = 100,
    BACKOFF_MAX_MS = 10000,
    STABLE_MS = 10000, /* a child that lived this long resets the backoff */
};

typedef struct {
    pid_t pid;           /* 0: none (waiting for its start) */
    int chan;            /* our end of its channel */
    char exe[4096];      /* what it runs */
    char prev_exe[4096]; /* what the slot ran before a restart to a new one */
    int64_t ready_ms;
    int64_t start_at_ms; /* when to (re)start it; 0: not scheduled */
    int quick_deaths;
} slot_t;

typedef struct {
    pid_t pid;
    int chan; /* kept until it exits: an answer to its request goes there */
} old_t;

/* A listening socket a child bound because the master held none for its
 * address (the configuration file gained one): the master keeps a copy and
 * passes it to the children it starts from then on, like its own. */
typedef struct {
    char name[64], spec[80]; /* (grace__inherited_t's sizes) */
    int fd;
    int gen; /* the restart that brought it; 0: kept for good */
} held_t;

/* What one child said while it started (spawn.c on_line). */
typedef struct {
    held_t bound[8];
    int n_bound;
    char unused[16][150]; /* "SERVER|SPEC" of inherited sockets it closed */
    int n_unused;
} talk_t;

/* A deliberate singleton, touched by the master's thread only (the signal
 * thread writes to cmd[1], nothing else). */
static struct {
    int workers;
    slot_t slot[MAX_WORKERS];
    old_t old[4 * MAX_WORKERS]; /* children told to drain, not yet exited */
    int n_old;
    int cmd[2]; /* signal thread -> master: one byte per signal */
    bool stopping;
    char full_exe[4096]; /* a full restart pending: exec this */
    char start_why[512]; /* why the last start of a child failed */
    held_t held[32];
    int n_held;
    int gen; /* restarts of the children so far */
} ms = {.cmd = {-1, -1}};

/* ---- Sockets the children bound ------------------------------------------------------ */

/* The held sockets as GRACE_LISTEN_FDS lines, for a child's start. */
static void held_fds(grace__buf_t *b)
{
    for (int i = 0; i < ms.n_held; i++)
        grace__listen_fds_format(b, ms.held[i].fd, ms.held[i].spec, ms.held[i].name);
}

/* "SERVER|SPEC" into name and spec; false if malformed. */
static bool split_address(const char *p, char name[64], char spec[80])
{
    const char *bar = strchr(p, '|');
    if (bar == NULL || bar == p || bar - p >= 64 || !bar[1] || strlen(bar + 1) >= 80)
        return false;
    memcpy(name, p, (size_t)(bar - p));
    name[bar - p] = '\0';
    snprintf(spec, 80, "%s", bar + 1);
    return true;
}

/* A child's line about sockets ("bound SERVER|SPEC" with its descriptor,
 * "unused SERVER|SPEC"): while it starts (arg: its talk_t; spawn.c
 * on_line) or later (NULL: a bound socket is kept at once). */
static void child_said(void *arg, int chan, const char *line, int fd)
{
    talk_t *t = arg;
    char name[64], spec[80];
    if (strncmp(line, "bound ", 6) == 0 && fd >= 0 && split_address(line + 6, name, spec)) {
        held_t h = {.fd = fd, .gen = 0};
        snprintf(h.name, sizeof h.name, "%s", name);
        snprintf(h.spec, sizeof h.spec, "%s", spec);
        if (t && t->n_bound < (int)(sizeof t->bound / sizeof t->bound[0])) {
            t->bound[t->n_bound++] = h;
            fd = -1;
        } else if (!t && ms.n_held < (int)(sizeof ms.held / sizeof ms.held[0])) {
            ms.held[ms.n_held++] = h;
            fd = -1;
        }
        if (fd >= 0)
            grace_log("master: too many sockets bound by the children: [%s] of server %s is not "
                      "kept; a restart will bind it again",
                      spec, name);
        if (send(chan, "ok\n", 3, MSG_NOSIGNAL) < 0)
            grace_log("master: cannot answer a child: %s", strerror(errno));
    } else if (strncmp(line, "unused ", 7) == 0 && t &&
               t->n_unused < (int)(sizeof t->unused / sizeof t->unused[0])) {
        snprintf(t->unused[t->n_unused++], sizeof t->unused[0], "%s", line + 7);
    } else if (strncmp(line, "unused ", 7) != 0) {
        grace_log("master: a child sent \"%.80s\": not understood", line);
    }
    if (fd >= 0)
        close(fd);
}

/* A child started: what it bound is kept (tagged gen, for a rollback). */
static void keep_bound(talk_t *t, int gen)
{
    for (int i = 0; i < t->n_bound; i++) {
        if (ms.n_held < (int)(sizeof ms.held / sizeof ms.held[0])) {
            t->bound[i].gen = gen;
            ms.held[ms.n_held++] = t->bound[i];
            grace_log("master: keeps [%s] of server %s, bound by a child, for the next ones",
                      t->bound[i].spec, t->bound[i].name);
        } else {
            close(t->bound[i].fd);
        }
    }
    t->n_bound = 0;
}

static void drop_bound(talk_t *t)
{
    for (int i = 0; i < t->n_bound; i++)
        close(t->bound[i].fd);
    t->n_bound = 0;
}

static void close_own(grace_server_t *s, void *user)
{
    const char *const *a = user; /* name, spec */
    for (size_t k = 0; strcmp(s->name, a[0]) == 0 && k < s->n_listeners; k++) {
        grace__listener_t *l = &s->listeners[k];
        if (l->fd >= 0 && strcmp(l->spec, a[1]) == 0 && !grace__is_activated(l->fd)) {
            close(l->fd);
            l->fd = -1;
            grace_log("master: closed [%s] of server %s: its children no longer listen there",
                      l->shown, s->name);
        }
    }
}

/* Close the master's copy of server name's socket for spec (its own, or
 * one it holds): the children no longer listen there. */
static void close_address(const char *name, const char *spec)
{
    for (int i = 0; i < ms.n_held; i++) {
        if (strcmp(ms.held[i].name, name) == 0 && strcmp(ms.held[i].spec, spec) == 0) {
            close(ms.held[i].fd);
            ms.held[i--] = ms.held[--ms.n_held];
            grace_log("master: closed [%s] of server %s: its children no longer listen there", spec,
                      name);
        }
    }
    const char *a[2] = {name, spec};
    grace_servers_foreach(close_own, a);
}

/* Every new child of a restart closed the inherited socket of an address:
 * the master closes its copy, so the port refuses connections once the
 * old children have drained (instead of queueing them for nobody). */
static void close_unused(talk_t *talks, int n)
{
    for (int u = 0; n > 0 && u < talks[0].n_unused; u++) {
        const char *a = talks[0].unused[u];
        bool all = true;
        for (int i = 1; i < n && all; i++) {
            bool found = false;
            for (int k = 0; k < talks[i].n_unused && !found; k++)
                found = strcmp(talks[i].unused[k], a) == 0;
            all = found;
        }
        char name[64], spec[80];
        if (all && split_address(a, name, spec))
            close_address(name, spec);
    }
}

/* A restart rolled back: the sockets its children bound go too. */
static void drop_held(int gen)
{
    for (int i = 0; i < ms.n_held; i++)
        if (ms.held[i].gen == gen) {
            close(ms.held[i].fd);
            ms.held[i--] = ms.held[--ms.n_held];
        }
}

/* ---- Children -------------------------------------------------------------------- */

/* Start a child for slot s from exe; 0 or a negative error (why filled).
 * t: what it says while it starts; the sockets it bound are kept, tagged
 * gen, once it is ready. */
static int start_child(slot_t *s, const char *exe, talk_t *t, int gen, char *why, size_t why_len)
{
    grace_restart_options_t ro;
    grace_get_restart_options(&ro);
    static const char *const env[] = {GRACE__ENV_MASTER "=1", NULL};
    grace__buf_t held = {0};
    held_fds(&held);
    grace__spawn_t req = {.exe = exe,
                          .extra_arg = GRACE_CHILD_FLAG,
                          .env = env,
                          .ready_timeout_ms = ro.graceful_timeout_ms,
                          .on_line = child_said,
                          .arg = t,
                          .more_fds = &held};
    char pending[64];
    int chan = -1;
    memset(t, 0, sizeof *t);
    pid_t pid = grace__spawn_ready(&req, &chan, pending, why, why_len);
    grace__buf_free(&held);
    if (pid < 0) {
        drop_bound(t);
        return pid;
    }
    keep_bound(t, gen);
    s->pid = pid;
    s->chan = chan;
    s->ready_ms = grace__now_ms();
    s->start_at_ms = 0;
    if (strcmp(s->exe, exe) != 0) {
        snprintf(s->prev_exe, sizeof s->prev_exe, "%s", s->exe);
        snprintf(s->exe, sizeof s->exe, "%s", exe);
    }
    grace_log("master: child %d is serving (%s)", (int)pid, exe);
    return 0;
}

/* Tell a child to drain and exit (it finishes its requests). */
static void retire(slot_t *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    if (ms.n_old < (int)(sizeof ms.old / sizeof ms.old[0]))
        ms.old[ms.n_old++] = (old_t){s->pid, s->chan};
    else
        close(s->chan);
    s->pid = 0;
    s->chan = -1;
}

static void describe_exit(int status, char *out, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
}

/* A child that died unasked: schedule its replacement. */
static void child_died(slot_t *s, int status, int64_t now)
{
    char how[96];
    describe_exit(status, how, sizeof how);
    bool quick = now - s->ready_ms < STABLE_MS;
    s->quick_deaths = quick ? s->quick_deaths + 1 : 0;
    int64_t pause = 0;
    if (s->quick_deaths > 0) {
        pause = BACKOFF_FIRST_MS << (s->quick_deaths - 1 < 7 ? s->quick_deaths - 1 : 7);
        pause = pause > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pause;
    }
    grace_restart_options_t ro;
    grace_get_restart_options(&ro);
    if (s->prev_exe[0] && now - s->ready_ms < ro.probation_ms) {
        grace_log("master: child %d %s %lld ms after it was ready (probation %lld ms): "
                  "going back to %s",
                  (int)s->pid, how, (long long)(now - s->ready_ms), (long long)ro.probation_ms,
                  s->prev_exe);
        snprintf(s->exe, sizeof s->exe, "%s", s->prev_exe);
    } else {
        grace_log("master: child %d %s; a new one starts in %lld ms", (int)s->pid, how,
                  (long long)pause);
    }
    s->prev_exe[0] = '\0';
    close(s->chan);
    s->pid = 0;
    s->chan = -1;
    s->start_at_ms = now + pause;
}

/* Reap every child that exited: ours, or (as PID 1) any orphan. */
static void reap(int64_t now)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < ms.workers; i++)
            if (ms.slot[i].pid == pid)
                child_died(&ms.slot[i], status, now);
        for (int i = 0; i < ms.n_old; i++) {
            if (ms.old[i].pid == pid) {
                char how[96];
                describe_exit(status, how, sizeof how);
                grace_log("master: child %d %s", (int)pid, how);
                close(ms.old[i].chan);
                ms.old[i--] = ms.old[--ms.n_old];
            }
        }
    }
}

/* ---- Restarts ----------------------------------------------------------------------- */

/* A restart while the master stops: refused during a full restart (the
 * master executed afresh takes the retry), failed during a shutdown. */
static int refuse_stopping(grace_restart_outcome_t *out)
{
    bool full = ms.full_exe[0] != '\0';
    out->retry_after_s = full ? 1 : 0;
    snprintf(out->why, sizeof out->why, "%s",
             full ? "a full restart is already in progress" : "the master is shutting down");
    grace_log("master: restart %s: %s", full ? "refused" : "failed", out->why);
    grace__outcome_write(out);
    return full ? GRACE_ERESTARTING : GRACE_ESTATE;
}

/* New children for every slot, then the old ones drain; all or none. The
 * outcome is written to PIDFILE.outcome. */
static int restart_children(const char *exe, grace_restart_outcome_t *out)
{
    if (ms.stopping)
        return refuse_stopping(out);
    if (!grace__is_executable_file(exe)) {
        snprintf(out->why, sizeof out->why, "%s is not an executable file", exe);
        grace_log("master: restart failed: %s; the children serve on", out->why);
        grace__outcome_write(out);
        return GRACE_EBADEXE;
    }
    grace_log("master: restarting the children");
    grace__notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=restarting",
                  (unsigned long long)grace__monotonic_usec());
    slot_t fresh[MAX_WORKERS];
    static talk_t talks[MAX_WORKERS]; /* (big: the master's thread alone) */
    int n = 0, r = 0, gen = ++ms.gen;
    for (; n < ms.workers && r == 0; n++) {
        memset(&fresh[n], 0, sizeof fresh[n]);
        snprintf(fresh[n].exe, sizeof fresh[n].exe, "%s", ms.slot[n].exe);
        r = start_child(&fresh[n], exe, &talks[n], gen, out->why, sizeof out->why);
    }
    if (r < 0) { /* rollback: the new ones go, the old ones serve on */
        for (int i = 0; i < n - 1; i++) {
            kill(fresh[i].pid, SIGKILL);
            waitpid(fresh[i].pid, NULL, 0);
            close(fresh[i].chan);
        }
        drop_held(gen);
        grace_log("master: restart failed: %s; the children serve on", out->why);
        grace__notify("READY=1\nSTATUS=restart failed: %s", out->why);
        grace__outcome_write(out);
        return r;
    }
    for (int i = 0; i < ms.workers; i++) {
        retire(&ms.slot[i]);
        fresh[i].quick_deaths = 0;
        ms.slot[i] = fresh[i];
    }
    for (int i = 0; i < ms.n_held; i++)
        ms.held[i].gen = 0; /* kept for good now */
    close_unused(talks, ms.workers);
    out->pid = ms.slot[0].pid;
    grace__notify("READY=1\nSTATUS=serving (children restarted)");
    grace__outcome_write(out);
    return out->pid;
}

/* A full restart to exe: the loop ends, the children drain, then the master
 * executes exe (exec_afresh). A refusal or failure is written at once. */
static int full_restart(const char *exe, grace_restart_outcome_t *out)
{
    if (ms.stopping)
        return refuse_stopping(out);
    if (!grace__is_executable_file(exe)) {
        snprintf(out->why, sizeof out->why, "%s is not an executable file", exe);
        grace_log("master: full restart failed: %s", out->why);
        grace__outcome_write(out);
        return GRACE_EBADEXE;
    }
    snprintf(ms.full_exe, sizeof ms.full_exe, "%s", exe);
    ms.stopping = true;
    return 0;
}

static void stop_children(void)
{
    for (int i = 0; i < ms.workers; i++) {
        retire(&ms.slot[i]);
        ms.slot[i].start_at_ms = 0;
    }
}

/* A child's request line, read from chan: answer it there. */
static void serve_request(int chan, pid_t from)
{
    char line[4200];
    int fd;
    ssize_t n = grace__recv_line_fd(chan, line, sizeof line - 1, &fd);
    if (n <= 0) {
        if (fd >= 0)
            close(fd);
        return; /* EOF: it is exiting; reap() deals with it */
    }
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "bound ", 6) == 0 || strncmp(line, "unused ", 7) == 0 || fd >= 0) {
        child_said(NULL, chan, line, fd); /* (a server the child started late) */
        return;
    }
    char reply[700];
    int kind = 0, r = 0;
    char exe[4096] = "";
    grace_restart_outcome_t out = {0};
    if (strcmp(line, "shutdown") == 0) {
        grace_log("master: shutdown asked by child %d", (int)from);
        ms.stopping = true;
    } else if (sscanf(line, "restart %d %4095[^\n]", &kind, exe) >= 1) {
        const char *use = exe[0] && strcmp(exe, "-") != 0 ? exe : grace_executable_path();
        bool full = kind == GRACE_RESTART_FULL;
        grace_log("master: %s restart asked by child %d", full ? "full" : "graceful", (int)from);
        r = full ? full_restart(use, &out) : restart_children(use, &out);
    } else {
        grace_log("master: child %d sent \"%.80s\": not understood", (int)from, line);
        r = GRACE_EINVAL;
        snprintf(out.why, sizeof out.why, "request not understood");
    }
    if (r >= 0)
        snprintf(reply, sizeof reply, "ok %d\n", r);
    else
        snprintf(reply, sizeof reply, "err %d %d %s\n", r, out.retry_after_s, out.why);
    if (send(chan, reply, strlen(reply), MSG_NOSIGNAL) < 0)
        grace_log("master: cannot answer child %d: %s", (int)from, strerror(errno));
}

/* ---- The master's loop ------------------------------------------------------------- */

enum { CMD_RESTART = 'R', CMD_FULL = 'F', CMD_STOP = 'S', CMD_CHILD = 'C' };

static void on_signal(int sig)
{
    char c = sig == SIGUSR1   ? CMD_RESTART
             : sig == SIGUSR2 ? CMD_FULL
             : sig == SIGCHLD ? CMD_CHILD
                              : CMD_STOP;
    if (c != CMD_CHILD)
        grace_log("received signal %d (%s): %s", sig, strsignal(sig),
                  c == CMD_RESTART ? "graceful restart of the children"
                  : c == CMD_FULL  ? "full restart"
                                   : "shutting the children down");
    ssize_t w = write(ms.cmd[1], &c, 1);
    (void)w;
}

/* Start what is due; returns how long the loop may sleep (ms, -1: no timer). */
static int start_due(int64_t now)
{
    int64_t next = -1;
    for (int i = 0; i < ms.workers && !ms.stopping; i++) {
        slot_t *s = &ms.slot[i];
        if (s->pid > 0 || s->start_at_ms == 0)
            continue;
        if (now >= s->start_at_ms) {
            char *why = ms.start_why;
            static talk_t t; /* (a replacement: what it bound is kept, nothing closed) */
            if (start_child(s, s->exe, &t, 0, why, sizeof ms.start_why) == 0)
                continue;
            s->quick_deaths++;
            int64_t pause = BACKOFF_FIRST_MS << (s->quick_deaths - 1 < 7 ? s->quick_deaths - 1 : 7);
            pause = pause > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pause;
            s->start_at_ms = now + pause;
            grace_log("master: starting a child failed: %s; trying again in %lld ms", why,
                      (long long)pause);
        }
        int64_t wait = s->start_at_ms - now;
        if (next < 0 || wait < next)
            next = wait;
    }
    return next < 0 ? -1 : (int)(next > 1000 ? 1000 : next);
}

/* A signal's command (also while the children stop: a restart is refused). */
static void handle_command(char c, int64_t now)
{
    grace_restart_outcome_t out = {0};
    char exe[4096]; /* gracectl --exe left one beside the PID file */
    if (c == CMD_RESTART || c == CMD_FULL) {
        const char *use = grace__exe_request_take(exe, sizeof exe) ? exe : grace_executable_path();
        if (c == CMD_FULL)
            full_restart(use, &out);
        else
            restart_children(use, &out);
    } else if (c == CMD_STOP) {
        ms.stopping = true;
    } else {
        reap(now);
    }
}

/* One round of the loop: wait for a signal, a child's request or a timer. */
static void loop_once(void)
{
    struct pollfd pfd[1 + MAX_WORKERS + 4 * MAX_WORKERS];
    pid_t from[1 + MAX_WORKERS + 4 * MAX_WORKERS];
    int n = 0;
    pfd[n++] = (struct pollfd){ms.cmd[0], POLLIN, 0};
    for (int i = 0; i < ms.workers; i++)
        if (ms.slot[i].pid > 0) {
            from[n] = ms.slot[i].pid;
            pfd[n++] = (struct pollfd){ms.slot[i].chan, POLLIN, 0};
        }
    for (int i = 0; i < ms.n_old; i++) {
        from[n] = ms.old[i].pid;
        pfd[n++] = (struct pollfd){ms.old[i].chan, POLLIN, 0};
    }
    int timeout = start_due(grace__now_ms());
    if (poll(pfd, (nfds_t)n, timeout) <= 0)
        return;
    if (pfd[0].revents & POLLIN) {
        char c;
        while (read(ms.cmd[0], &c, 1) == 1)
            handle_command(c, grace__now_ms());
    }
    for (int i = 1; i < n; i++)
        if (pfd[i].revents & POLLIN)
            serve_request(pfd[i].fd, from[i]);
}

/* Drain and wait for every child; SIGKILL past the drain limit. */
static void wait_children(void)
{
    stop_children();
    grace_restart_options_t ro;
    grace_get_restart_options(&ro);
    int64_t deadline = grace__now_ms() + ro.graceful_shutdown_timeout_ms + 5000;
    while (ms.n_old > 0) {
        reap(grace__now_ms());
        if (grace__now_ms() > deadline) {
            for (int i = 0; i < ms.n_old; i++) {
                grace_log("master: child %d still runs past the drain limit: killed",
                          (int)ms.old[i].pid);
                kill(ms.old[i].pid, SIGKILL);
            }
            deadline = INT64_MAX;
        }
        struct pollfd pfd = {ms.cmd[0], POLLIN, 0};
        if (poll(&pfd, 1, 50) > 0) {
            char c;
            while (read(ms.cmd[0], &c, 1) == 1)
                handle_command(c, grace__now_ms()); /* a restart is refused now */
        }
    }
}

/* Executed afresh by a full restart, with the children started (start_child
 * waits for each one's ready): that restart's outcome, ok with the same PID. */
static void full_restart_done(void)
{
    grace_restart_outcome_t out = {.pid = (int)getpid()};
    for (int i = 0; i < ms.workers; i++)
        out.pid = ms.slot[i].pid > 0 ? out.pid : 0;
    snprintf(out.why, sizeof out.why, /* (unused when ok) */
             "master executed afresh, but a child did not start: %.400s; it keeps trying",
             ms.start_why);
    grace__outcome_write(&out);
}

static void master_run(void)
{
    grace_log("master %d: starting %d child%s", (int)getpid(), ms.workers,
              ms.workers == 1 ? "" : "ren");
    int64_t now = grace__now_ms();
    for (int i = 0; i < ms.workers; i++) {
        snprintf(ms.slot[i].exe, sizeof ms.slot[i].exe, "%s", grace_executable_path());
        ms.slot[i].start_at_ms = now;
    }
    start_due(now);
    grace__pid_file_write(getpid());
    grace__notify("READY=1\nMAINPID=%ld\nSTATUS=serving (%d children)", (long)getpid(),
                  ms.workers);
    if (grace__full_restart_take())
        full_restart_done();
    while (!ms.stopping)
        loop_once();
    grace__notify("STOPPING=1\nSTATUS=stopping");
    wait_children();
    if (ms.full_exe[0]) { /* the master executed afresh writes the outcome */
        grace_log("master: executing %s afresh", ms.full_exe);
        grace__lifecycle_close_listeners();
        grace__activated_pass_on();
        char **env = grace__env_afresh(); /* (with the ticket keys) */
        char *const *argv = grace__argv();
        char *fallback[2] = {ms.full_exe, NULL};
        execve(ms.full_exe, argv ? argv : fallback, env);
        grace_restart_outcome_t out = {0};
        snprintf(out.why, sizeof out.why, "cannot execute %.400s: %s; the master exited",
                 ms.full_exe, strerror(errno));
        grace_log("master: %s", out.why);
        grace__outcome_write(&out);
        _exit(1);
    }
    grace__pid_file_remove();
    grace_log("master %d: all children stopped", (int)getpid());
}

/* ---- API ----------------------------------------------------------------------------- */

int grace_enable_master(int workers)
{
    if (workers < 0 || workers > MAX_WORKERS)
        return GRACE_EINVAL;
    if (grace__role() == GRACE__ROLE_CHILD) {
        grace__supervisor_quiet(); /* the master speaks to supervisors */
        return 0;
    }
    if (ms.cmd[0] < 0 && pipe2(ms.cmd, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    ms.workers = workers ? workers : 1;
    grace__set_role_master();
    static const int sigs[] = {SIGUSR1, SIGUSR2, SIGCHLD, SIGINT, SIGQUIT, SIGHUP, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        grace__signal_on(sigs[i], on_signal);
    grace__lifecycle_set_master(master_run);
    return 0;
}
