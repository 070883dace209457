/*
 * local.c -- status, restart and shutdown of a program on this machine,
 * named by its PID file (--pid-file) or its PID (--pid), by signals:
 * SIGUSR1 a graceful restart, SIGUSR2 a full one, SIGTERM a graceful
 * shutdown (docs/production.md). In master mode the PID is the master's.
 *
 * restart --exe hands the executable over in PIDFILE.exe, beside the PID
 * file (src/supervisor.c): written before the signal, taken and removed by
 * the restart. That is why --exe needs --pid-file. watch.c follows the
 * restart to its outcome; status reads the same files and /proc (proc.c).
 */
#include "gracectl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { POLL_MS = 50 };

/* ---- PIDFILE.exe ------------------------------------------------------------------ */

/* Hand the executable to the next restart: PIDFILE.exe, written to a
 * temporary file and renamed, so grace never reads half a path. */
static int exe_request(const char *pid_file, const char *exe)
{
    char abs[PATH_MAX], path[PATH_MAX + 16], tmp[PATH_MAX + 64];
    struct stat st;
    if (realpath(exe, abs) == NULL || stat(abs, &st) != 0) {
        ui_line(stderr, "gracectl: --exe %s: %s", exe, strerror(errno));
        return CTL_USAGE;
    }
    if (!S_ISREG(st.st_mode)) {
        ui_line(stderr, "gracectl: --exe %s: not a regular file", exe);
        return CTL_USAGE;
    }
    snprintf(path, sizeof path, "%s.exe", pid_file);
    snprintf(tmp, sizeof tmp, "%s.gracectl-%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    size_t len = strlen(abs);
    abs[len++] = '\n';
    bool ok = fd >= 0 && write(fd, abs, len) == (ssize_t)len;
    if (fd >= 0)
        ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) != 0) {
        ui_line(stderr, "gracectl: cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return CTL_FAILED;
    }
    return CTL_OK;
}

/* PIDFILE.exe still there after the restart: no restart took it (every
 * restart by signal does, a refused one too), so the program looks for it
 * elsewhere -- it names its PID file by another path, a symlink -- or never
 * handled the signal. Left, it would steer a later restart. */
static void exe_request_cleanup(const char *pid_file, bool warn)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s.exe", pid_file);
    if (unlink(path) == 0 && warn)
        ui_line(stderr, "gracectl: the program did not take --exe (%s was left); removed it", path);
}

/* ---- the target ------------------------------------------------------------------ */

static int target_pid(const ctl_target_t *t, pid_t *pid)
{
    char why[PATH_MAX + 100];
    *pid = t->pid;
    if (t->pid_file) {
        int code = proc_read_pid_file(t->pid_file, pid, why, sizeof why);
        if (code != CTL_OK) {
            ui_line(stderr, "gracectl: %s", why);
            return code;
        }
    }
    return CTL_OK;
}

/* The PID that runs, or an error code. */
static int running_pid(const ctl_target_t *t, pid_t *pid)
{
    int code = target_pid(t, pid);
    if (code == CTL_OK && !proc_alive(*pid)) {
        ui_line(stderr, "gracectl: process %ld%s%s%s is not running", (long)*pid,
                t->pid_file ? " (named by " : "", t->pid_file ? t->pid_file : "",
                t->pid_file ? ")" : "");
        code = CTL_UNREACHABLE;
    }
    return code;
}

static int send_signal(pid_t pid, int sig)
{
    if (kill(pid, sig) == 0)
        return CTL_OK;
    int e = errno;
    ui_line(stderr, "gracectl: cannot signal process %ld: %s%s", (long)pid, strerror(e),
            e == EPERM ? " (run gracectl as the program's user, or root)" : "");
    return e == EPERM ? CTL_DENIED : CTL_UNREACHABLE;
}

/* ---- status ---------------------------------------------------------------------- */

static void print_children(pid_t pid)
{
    pid_t kids[PROC_MAX];
    size_t n = proc_grace_children(pid, true, kids);
    printf("%-13s master, %zu child%s\n", "mode:", n, n == 1 ? "" : "ren");
    for (size_t i = 0; i < n; i++) {
        char up[32];
        ui_duration((double)proc_uptime_ms(kids[i]) / 1000.0, up, sizeof up);
        int l = proc_n_listeners(kids[i]);
        printf("%-13s %-7ld up %-12s %s\n", i ? "" : "children:", (long)kids[i], up,
               l > 0    ? "serving"
               : l == 0 ? "draining"
                        : "");
    }
}

static void print_process(pid_t pid)
{
    char exe[PATH_MAX], up[32];
    proc_exe(pid, exe, sizeof exe);
    ui_duration((double)proc_uptime_ms(pid) / 1000.0, up, sizeof up);
    printf("%-13s %s\n", "executable:", exe[0] ? exe : "(hidden: another user's process)");
    printf("%-13s %s\n", "uptime:", up);
    if (proc_is_master(pid)) {
        print_children(pid);
        return;
    }
    int l = proc_n_listeners(pid);
    printf("%-13s self-replacing, %s\n", "mode:",
           l > 0    ? "serving"
           : l == 0 ? "draining (no listening socket: it has handed over or is stopping)"
                    : "running");
}

int local_status(const ctl_target_t *t)
{
    pid_t pid = 0;
    int code = target_pid(t, &pid);
    if (code == CTL_OK) {
        bool alive = proc_alive(pid);
        printf("%-13s %ld%s%s%s, %s\n", "pid:", (long)pid, t->pid_file ? " (from " : "",
               t->pid_file ? t->pid_file : "", t->pid_file ? ")" : "",
               alive ? "running" : "NOT RUNNING");
        if (alive)
            print_process(pid);
        else
            code = CTL_UNREACHABLE;
    }
    if (t->pid_file) {
        char line[1100];
        outcome_last(t->pid_file, line, sizeof line);
        printf("%-13s %s\n", "last restart:", line);
    } else if (code == CTL_OK) {
        printf("%-13s unknown without --pid-file (PIDFILE.outcome keeps it)\n", "last restart:");
    }
    fflush(stdout);
    return code;
}

int local_restart(const ctl_target_t *t)
{
    pid_t pid;
    int code = running_pid(t, &pid);
    if (code != CTL_OK)
        return code;
    watch_t *w = watch_new(t, pid); /* how things are before the signal */
    if (w == NULL)
        return CTL_FAILED;
    if (t->exe && (code = exe_request(t->pid_file, t->exe)) != CTL_OK) {
        free(w);
        return code;
    }
    code = send_signal(pid, t->full ? SIGUSR2 : SIGUSR1);
    if (code == CTL_OK)
        code = watch_wait(w);
    if (t->exe)
        exe_request_cleanup(t->pid_file, code == CTL_OK);
    free(w);
    return code;
}

/* ---- shutdown -------------------------------------------------------------------- */

int local_shutdown(const ctl_target_t *t)
{
    pid_t pid;
    int code = running_pid(t, &pid);
    if (code != CTL_OK || (code = send_signal(pid, SIGTERM)) != CTL_OK)
        return code;
    double limit = t->timeout_s > 0 ? t->timeout_s : CTL_DEFAULT_TIMEOUT_S;
    ui_wait_t u;
    ui_wait_begin(&u, true, "waiting for process %ld to finish its requests and exit ...",
                  (long)pid);
    while (proc_alive(pid) && ui_wait_elapsed(&u) < limit) {
        ui_wait_tick(&u);
        ui_sleep(POLL_MS / 1000.0);
    }
    ui_wait_end(&u);
    if (proc_alive(pid)) {
        ui_line(stderr, "gracectl: process %ld still runs %g s after SIGTERM", (long)pid, limit);
        return CTL_FAILED;
    }
    char took[32];
    ui_duration(ui_wait_elapsed(&u), took, sizeof took);
    ui_line(stdout, "shut down: process %ld has exited (after %s)", (long)pid, took);
    return CTL_OK;
}
