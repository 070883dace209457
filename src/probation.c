/*
 * probation.c -- the old process's watch over the new one after a graceful
 * restart (SPEC G9, B6): reaping the processes a restart started, the
 * probation, and taking the listening sockets back when the new process
 * crashes.
 *
 * Every new process that took over is a child of the old one until the old
 * one exits; it is reaped as soon as it exits (SIGCHLD, or a poll once a
 * second for programs that keep SIGCHLD for themselves), so no zombie is
 * ever left and none counts as a draining generation. The successor's
 * channel (the ready socket, kept open) is read at every tick of the
 * engine's monitor while the probation runs. restart.c starts the watch
 * (grace__probation_start); lifecycle.c is what the watch changes: the
 * probation gate and, on a crash, the undrain. pw.kids_mu guards the
 * fields below except the atomics.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_CHILDREN = 64 };

/* A deliberate singleton: one watch per process. */
static struct {
    pthread_mutex_t kids_mu;
    pid_t kids[MAX_CHILDREN]; /* new processes that took over: reaped on exit */
    int n_kids;
    int64_t next_reap_ms;     /* monitor thread: the once-a-second poll */
    atomic_bool handed_over;  /* a new process serves: this one only drains */
    /* The probation: the successor, its channel, what it said, how it
     * exited. */
    pid_t successor;
    int probation_fd;
    char probation_msg[64];
    size_t probation_len;
    int64_t ready_ms;
    int64_t probation_until_ms;
    atomic_int probing; /* a probation runs (the tick reads it unlocked) */
    bool successor_exited;
    int successor_status;
} pw = {.kids_mu = PTHREAD_MUTEX_INITIALIZER, .probation_fd = -1};

static void reap_children(void);
static void track_child(pid_t pid);

bool grace__handed_over(void)
{
    return atomic_load(&pw.handed_over);
}

/* ---- The monitor's tick ---------------------------------------------------------------------- */

/* The engine's monitor calls this every few milliseconds: during a probation
 * the successor is watched at every tick (its channel is read in
 * probation_check); otherwise, once a second, exited children are reaped
 * (for programs that keep SIGCHLD for themselves) and the channel to a
 * parent that has exited is closed. */
static void watch_tick(int64_t now)
{
    if (now >= pw.next_reap_ms) {
        pw.next_reap_ms = now + 1000;
        if (grace__parent_forget() && grace__role() == GRACE__ROLE_CHILD) {
            /* Orphaned: nobody supervises this child any more, and a
             * restarted master binds its ports afresh. */
            grace_log("the master (PID %d) is gone: shutting down", (int)grace__master_pid());
            grace__shutdown_here();
        }
    } else if (atomic_load(&pw.probing) == 0) {
        return;
    }
    reap_children(); /* (also checks the probation) */
}

/* ---- Probation ------------------------------------------------------------------ */

/* For probation_ms after its successor said ready, a draining process keeps
 * its listening sockets open without accepting on them (lifecycle.c holds
 * the close back while grace__lifecycle_probation() says so). The successor
 * keeps the ready channel open and writes "handed over" if it passes the
 * sockets on in turn: from then on it watches its own successor. If it
 * crashes first (a signal, or a non-zero exit status), this process takes
 * the sockets back and serves again: connections queued meanwhile were
 * waiting in the kernel queue both processes share, so only what the dead
 * process held is lost. A successor that exits with 0 was shut down on
 * purpose and is not replaced. Called with kids_mu held. */
static void probation_end(void)
{
    if (pw.probation_fd >= 0)
        close(pw.probation_fd);
    pw.probation_fd = -1;
    pw.successor = 0;
    pw.successor_exited = false;
    pw.probation_len = 0;
    atomic_store(&pw.probing, 0);
    grace__lifecycle_probation(0); /* close what the drain kept open */
}

static void take_back(int64_t now)
{
    int st = pw.successor_status;
    char how[96];
    if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "was killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(st));
    grace_log("new process %d %s %lld ms after it was ready (probation %lld ms): this process "
              "takes its sockets back and keeps serving",
              (int)pw.successor, how, (long long)(now - pw.ready_ms),
              (long long)(pw.probation_until_ms - pw.ready_ms));
    atomic_store(&pw.handed_over, false);
    grace__lifecycle_undrain(); /* before the probation ends: nothing may close */
    probation_end();
}

static void probation_check(int64_t now)
{
    if (pw.successor == 0)
        return;
    ssize_t n;
    while (pw.probation_len < sizeof pw.probation_msg - 1 &&
           (n = recv(pw.probation_fd, pw.probation_msg + pw.probation_len,
                     sizeof pw.probation_msg - 1 - pw.probation_len, MSG_DONTWAIT)) > 0)
        pw.probation_len += (size_t)n;
    pw.probation_msg[pw.probation_len] = '\0';
    int st = pw.successor_status;
    if (strstr(pw.probation_msg, "handed over\n"))
        probation_end(); /* it serves through a successor of its own */
    else if (pw.successor_exited && (WIFSIGNALED(st) || WEXITSTATUS(st) != 0))
        take_back(now);
    else if (pw.successor_exited || now >= pw.probation_until_ms)
        probation_end();
}

void grace__probation_start(pid_t pid, int fd, const char *pending, int64_t probation_ms)
{
    atomic_store(&pw.handed_over, true);
    pthread_mutex_lock(&pw.kids_mu);
    pw.successor = pid;
    pw.probation_fd = fd;
    pw.successor_exited = false;
    pw.ready_ms = grace__now_ms();
    snprintf(pw.probation_msg, sizeof pw.probation_msg, "%s", pending);
    pw.probation_len = strlen(pw.probation_msg);
    pw.probation_until_ms = pw.ready_ms + probation_ms;
    atomic_store(&pw.probing, 1);
    grace__lifecycle_probation(pw.probation_until_ms);
    pthread_mutex_unlock(&pw.kids_mu);
    track_child(pid);
}

/* ---- Children ------------------------------------------------------------------ */

static void on_child_signal(int sig)
{
    (void)sig;
    reap_children();
}

/* A new process that took over is our child until we exit: reap it if it
 * exits first (it may be restarted in turn while we still drain a long
 * request), so it never lingers as a zombie nor counts as a live draining
 * generation. Only PIDs grace started are waited for: the program's own
 * children are none of our business. */
static void track_child(pid_t pid)
{
    pthread_mutex_lock(&pw.kids_mu);
    if (pw.n_kids < MAX_CHILDREN)
        pw.kids[pw.n_kids++] = pid;
    pthread_mutex_unlock(&pw.kids_mu);
    reap_children(); /* it may have exited before it was listed */
}

static void reap_children(void)
{
    pthread_mutex_lock(&pw.kids_mu);
    for (int i = 0; i < pw.n_kids;) {
        int status;
        pid_t w;
        do
            w = waitpid(pw.kids[i], &status, WNOHANG);
        while (w < 0 && errno == EINTR);
        if (w == 0) {
            i++;
            continue;
        }
        if (w > 0 && WIFSIGNALED(status))
            grace_log("process %d (which took over from this one) was killed by signal %d (%s)",
                      (int)w, WTERMSIG(status), strsignal(WTERMSIG(status)));
        else if (w > 0)
            grace_log("process %d (which took over from this one) exited with status %d", (int)w,
                      WEXITSTATUS(status));
        if (w > 0 && w == pw.successor) {
            pw.successor_exited = true;
            pw.successor_status = status;
        }
        pw.kids[i] = pw.kids[--pw.n_kids]; /* reaped, or not ours any more (ECHILD) */
    }
    probation_check(grace__now_ms());
    pthread_mutex_unlock(&pw.kids_mu);
}


__attribute__((constructor)) static void probation_init(void)
{
    grace__signal_on(SIGCHLD, on_child_signal); /* installed at the first start */
    grace__engine_on_tick(watch_tick);
}
