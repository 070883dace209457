/*
 * spawn.c -- the program's own facts (its executable, argv and start time,
 * read before main()) and starting a new process of it that takes over the
 * listening sockets: restart.c does it for a graceful restart (the
 * self-replacing model), master.c for each child it supervises.
 *
 * The new process gets every listening socket of every running server
 * (GRACE_LISTEN_FDS, inherit.c explains the protocol), one end of a stream
 * socket for its "ready" (GRACE_READY_FD), the TLS session-ticket keys in a
 * sealed memfd made for it (GRACE_TICKET_FD, tickets.c), and what the caller
 * adds to its environment. Everything the child needs is computed before
 * fork; between fork and exec only async-signal-safe calls run. A child that exits, closes
 * the socket or is not ready in time is killed and reaped here, and the
 * reason is said, so the caller can roll back.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

enum { MAX_LISTENERS_PASSED = 256, MAX_MORE_ENV = 8 };

/* The program as it was started: a deliberate singleton, set before main(). */
static struct {
    int64_t start_ms;
    char exe[4096];
    char **argv; /* NULL-terminated copy of our argv */
} sp;

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
    sp.argv = calloc(argc + 1, sizeof *sp.argv);
    if (sp.argv == NULL) {
        grace__buf_free(&b);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < b.len && k < argc; k++) {
        sp.argv[k] = strdup(b.ptr + i);
        i += strlen(b.ptr + i) + 1;
    }
    grace__buf_free(&b);
}

/* Runs when the program loads, before main(): the executable path must be
 * read before a deploy replaces the file. */
__attribute__((constructor)) static void spawn_init(void)
{
    sp.start_ms = grace__now_ms();
    ssize_t n = readlink("/proc/self/exe", sp.exe, sizeof sp.exe - 1);
    sp.exe[n > 0 ? n : 0] = '\0';
    read_argv();
}

int64_t grace_uptime_ms(void)
{
    return grace__now_ms() - sp.start_ms;
}

const char *grace_executable_path(void)
{
    return sp.exe;
}

char *const *grace__argv(void)
{
    return sp.argv;
}

/* ---- The new process --------------------------------------------------------- */

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
 * Returns a NULL-terminated array (free with grace__env_free). */
char **grace__env_build(const char *const *extra, size_t n_extra)
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
            is_env(environ[i], GRACE__ENV_DRAINING) || is_env(environ[i], GRACE__ENV_MASTER) ||
            is_env(environ[i], GRACE__ENV_FULL_RESTART) || is_env(environ[i], GRACE__ENV_TICKET_FD))
            continue;
        env[k++] = strdup(environ[i]);
    }
    for (size_t i = 0; i < n_extra; i++)
        env[k++] = strdup(extra[i]);
    return env;
}

void grace__env_free(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

/* fork + exec the new process with the listening sockets, the ready pipe
 * and the ticket keys' memfd (-1: none). Returns the child's PID or a
 * negative error. */
static pid_t spawn(const char *exe, char *const *argv, const grace__buf_t *fds, int ready_w,
                   int ticket_fd, char **env)
{
    /* Everything the child needs is computed before fork. */
    int keep[MAX_LISTENERS_PASSED + 2], n_keep = 0;
    for (const char *p = fds->ptr, *end = fds->ptr + fds->len;
         p < end && n_keep < MAX_LISTENERS_PASSED;) {
        keep[n_keep++] = atoi(p);
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        p = eol ? eol + 1 : end;
    }
    keep[n_keep++] = ready_w;
    if (ticket_fd >= 0)
        keep[n_keep++] = ticket_fd;
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

ssize_t grace__recv_line_fd(int fd, char *buf, size_t cap, int *got_fd)
{
    struct iovec iov = {buf, cap};
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    *got_fd = -1;
    ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int k = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            int fds[4] = {-1, -1, -1, -1};
            memcpy(fds, CMSG_DATA(cm), (size_t)(k < 4 ? k : 4) * sizeof(int));
            for (int i = 0; i < k && i < 4; i++) { /* one is meant: keep the first */
                if (*got_fd < 0)
                    *got_fd = fds[i];
                else
                    close(fds[i]);
            }
        }
    return n;
}

/* Wait for "ready" from the child. Returns its PID, or an error after
 * killing and reaping it. What came after the ready line goes to pending
 * (64 bytes), for the probation. Other lines before it (a master's child's
 * "bound", "unused") go to req->on_line, with the descriptor that came
 * with them. */
static int wait_ready(const grace__spawn_t *req, pid_t pid, int ready_r, char pending[64],
                      char *why, size_t why_len)
{
    int64_t timeout_ms = req->ready_timeout_ms, deadline = grace__now_ms() + timeout_ms;
    char buf[700]; /* "ready PID", or "fail WHY" */
    size_t len = 0;
    for (;;) {
        int64_t left = deadline - grace__now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            snprintf(why, why_len, "new process %d was not ready within %lld ms and was killed",
                     (int)pid, (long long)timeout_ms);
            return GRACE_ENOTREADY;
        }
        struct pollfd pfd = {ready_r, POLLIN, 0};
        int r = poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        int got_fd;
        ssize_t n = grace__recv_line_fd(ready_r, buf + len, sizeof buf - 1 - len, &got_fd);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            char *eol = strchr(buf, '\n');
            /* The child waits for the answer to a line that carries a
             * descriptor: nothing else comes with it. */
            while (eol && strncmp(buf, "ready ", 6) != 0 && strncmp(buf, "fail ", 5) != 0) {
                *eol = '\0';
                if (req->on_line)
                    req->on_line(req->arg, ready_r, buf, got_fd);
                else if (got_fd >= 0)
                    close(got_fd);
                got_fd = -1;
                len -= (size_t)(eol + 1 - buf);
                memmove(buf, eol + 1, len + 1);
                eol = strchr(buf, '\n');
            }
            if (got_fd >= 0)
                close(got_fd);
            if (strncmp(buf, "ready ", 6) == 0 && eol) {
                snprintf(pending, 64, "%s", eol + 1);
                return pid;
            }
            if (strncmp(buf, "fail ", 5) == 0 && eol) { /* it says why it cannot start */
                *eol = '\0';
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                snprintf(why, why_len, "new process %d cannot start: %s", (int)pid, buf + 5);
                return GRACE_ECHILDEXIT;
            }
            if (len < sizeof buf - 1)
                continue;
        }
        /* EOF (or garbage): the child exited or closed the pipe. */
        reap_failed(pid, why, why_len);
        return GRACE_ECHILDEXIT;
    }
}

/* The child's environment: ours, plus the listening sockets, the ready pipe,
 * the ticket keys' memfd (if ticket_fd >= 0) and the draining generations.
 * NULL when out of memory. */
static char **child_env(const grace__buf_t *fds, int ready_w, int ticket_fd,
                        const char *const *more)
{
    grace__buf_t v[3] = {{0}, {0}, {0}};
    grace__buf_appendf(&v[0], GRACE__ENV_LISTEN_FDS "=%.*s", (int)fds->len, fds->ptr);
    grace__buf_appendf(&v[1], GRACE__ENV_READY_FD "=%d", ready_w);
    int n_v = ticket_fd >= 0 ? 3 : 2;
    if (ticket_fd >= 0)
        grace__buf_appendf(&v[2], GRACE__ENV_TICKET_FD "=%d", ticket_fd);
    const char *extra[3 + MAX_MORE_ENV];
    size_t n = 0;
    bool ok = true;
    for (int i = 0; i < n_v; i++) {
        grace__buf_append(&v[i], "", 1); /* appendf does not terminate */
        ok &= v[i].ptr != NULL;
        extra[n++] = v[i].ptr;
    }
    for (size_t i = 0; more && more[i] && i < MAX_MORE_ENV; i++)
        extra[n++] = more[i];
    char **env = ok ? grace__env_build(extra, n) : NULL;
    for (int i = 0; i < 3; i++)
        grace__buf_free(&v[i]);
    return env;
}

/* The ticket keys for a new process: a memfd, or -1 (none, or it cannot be
 * made: the new process makes its own keys, and clients their handshakes). */
static int ticket_fd_for_child(void)
{
    char why[128];
    int fd = grace__tickets_pass_fd(why, sizeof why);
    if (fd < -1)
        grace_log("cannot pass the TLS session-ticket keys on (%s): the new process makes "
                  "new ones",
                  why);
    return fd < 0 ? -1 : fd;
}

char **grace__env_afresh(void)
{
    const char *extra[2] = {GRACE__ENV_FULL_RESTART "=1", NULL};
    char ticket[48];
    int fd = ticket_fd_for_child();
    /* execve follows at once: the descriptor must survive it (the only
     * window in which another thread's fork could take it along too). */
    if (fd >= 0 && fcntl(fd, F_SETFD, 0) == 0) {
        snprintf(ticket, sizeof ticket, GRACE__ENV_TICKET_FD "=%d", fd);
        extra[1] = ticket;
    } else if (fd >= 0) {
        close(fd);
    }
    return grace__env_build(extra, extra[1] ? 2 : 1);
}

/* Our argv, with extra appended when given; NULL-terminated; free() it
 * (the strings are borrowed). NULL when out of memory. */
static char **child_argv(const char *exe, const char *extra)
{
    size_t n = 0;
    while (sp.argv && sp.argv[n])
        n++;
    char **argv = calloc(n + 3, sizeof *argv);
    if (argv == NULL)
        return NULL;
    size_t k = 0;
    for (; k < n; k++)
        argv[k] = sp.argv[k];
    if (k == 0)
        argv[k++] = (char *)exe;
    if (extra)
        argv[k++] = (char *)extra;
    return argv;
}

pid_t grace__spawn_ready(const grace__spawn_t *req, int *chan_out, char pending[64], char *why,
                         size_t why_len)
{
    grace__buf_t fds = {0};
    char **env = NULL;
    int chan[2] = {-1, -1}, ticket_fd = -1; /* chan: [0] ours, [1] the child's */
    char **argv = NULL;
    pid_t r;
    grace_servers_foreach(add_listener_fd, &fds);
    if (req->more_fds)
        grace__buf_append(&fds, req->more_fds->ptr, req->more_fds->len);
    if (fds.len == 0) {
        snprintf(why, why_len, "no server is running");
        r = GRACE_ESTATE;
        goto out;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0) {
        r = -errno;
        snprintf(why, why_len, "socketpair: %s", grace_strerror(r));
        goto out;
    }
    ticket_fd = ticket_fd_for_child();
    env = child_env(&fds, chan[1], ticket_fd, req->env);
    argv = child_argv(req->exe, req->extra_arg);
    if (env == NULL || argv == NULL) {
        r = GRACE_ENOMEM;
        goto out;
    }
    r = spawn(req->exe, argv, &fds, chan[1], ticket_fd, env);
    close(chan[1]);
    chan[1] = -1;
    if (r < 0) {
        snprintf(why, why_len, "fork: %s", grace_strerror(r));
        goto out;
    }
    r = wait_ready(req, r, chan[0], pending, why, why_len);
    if (r > 0) {
        *chan_out = chan[0];
        chan[0] = -1;
    }
out:
    for (int i = 0; i < 2; i++)
        if (chan[i] >= 0)
            close(chan[i]);
    if (ticket_fd >= 0)
        close(ticket_fd); /* the child has its copy, read once at its start */
    grace__env_free(env);
    free(argv);
    grace__buf_free(&fds);
    return r;
}
