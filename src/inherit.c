/*
 * inherit.c -- the inherited-socket protocol between an old process and
 * the new one it starts (SPEC G1, B4: descriptors and the environment, no
 * TCP port, no file).
 *
 *   GRACE_LISTEN_FDS  one line per listening socket: "FD|SPEC|SERVER\n",
 *                     SPEC as the server was configured (":8199",
 *                     "127.0.0.1:8100"), SERVER its name. Neither may hold
 *                     '|' or a newline (format refuses them).
 *   GRACE_DRAINING    the older processes that still drain, oldest first:
 *                     "PID:STARTTIME:DEADLINE_MS:TIMEOUT_MS,..." (STARTTIME
 *                     from /proc tells a live process from a reused PID;
 *                     DEADLINE_MS is wall-clock, 0 while the drain has not
 *                     begun: our parent's, which begins when we say ready;
 *                     restart.c decides what to do with them).
 *   GRACE_READY_FD    our end of a stream socket to the parent: we write
 *                     "ready PID\n" when we serve, and keep it open while
 *                     the parent may watch us (its probation, restart.c):
 *                     "handed over\n" if we pass the sockets on in turn;
 *                     our exit closes it. A master's child also sends,
 *                     before its ready, "bound SERVER|SPEC\n" with the
 *                     descriptor of a socket it bound itself (and waits
 *                     for "ok\n") and "unused SERVER|SPEC\n" for each
 *                     inherited socket it closed (master.c).
 *   GRACE_FULL_RESTART "1": a full restart executed us afresh (same PID,
 *                     no parent to tell): the outcome of that restart is
 *                     ours to write, "ok" once we serve (grace_ready()) or
 *                     "failed" if we cannot start (grace__parent_fail()).
 *   GRACE_TICKET_FD   a sealed memfd with the TLS session-ticket key ring:
 *                     tickets.c reads and closes it before main() (its own
 *                     constructor, so this file's parsers need no OpenSSL).
 *
 * The parsers are pure (no system call), so they are fuzzed
 * (tests/fuzz/fuzz_inherit.c) and unit-tested; the new process's side --
 * checking that each descriptor is a listening stream socket, handing them
 * to servers by (server, spec), closing the ones nobody took, the channel to
 * the parent -- is at the end. The environment is read before main() (a
 * constructor), and the variables leave the environment then, so the
 * program's own children never see them.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- GRACE_LISTEN_FDS ------------------------------------------------------ */

/* One line of at most len bytes at p: "FD|SPEC|SERVER". */
static bool parse_listen_line(const char *p, size_t len, grace__inherited_t *out)
{
    const char *end = p + len;
    const char *bar1 = memchr(p, '|', len);
    const char *bar2 = bar1 ? memchr(bar1 + 1, '|', (size_t)(end - bar1 - 1)) : NULL;
    /* Up to 10 digits: every fd format writes (any int >= 0) comes back. */
    if (bar1 == NULL || bar2 == NULL || bar1 == p || bar1 - p > 10)
        return false;
    int64_t fd = 0;
    for (const char *d = p; d < bar1; d++) {
        if (*d < '0' || *d > '9')
            return false;
        fd = fd * 10 + (*d - '0');
    }
    size_t spec_len = (size_t)(bar2 - bar1 - 1), name_len = (size_t)(end - bar2 - 1);
    if (fd > INT32_MAX || spec_len == 0 || spec_len >= sizeof out->spec ||
        name_len >= sizeof out->name || memchr(bar2 + 1, '|', name_len))
        return false;
    memset(out, 0, sizeof *out);
    out->fd = (int)fd;
    memcpy(out->spec, bar1 + 1, spec_len);
    memcpy(out->name, bar2 + 1, name_len);
    return true;
}

int grace__listen_fds_parse(const char *env, grace__inherited_t *out, int cap)
{
    int n = 0;
    while (env && *env && n < cap) {
        const char *eol = strchr(env, '\n');
        size_t len = eol ? (size_t)(eol - env) : strlen(env);
        if (parse_listen_line(env, len, &out[n]))
            n++;
        env += len + (eol != NULL);
    }
    return n;
}

int grace__listen_fds_format(grace__buf_t *b, int fd, const char *spec, const char *name)
{
    if (fd < 0 || !spec[0] || strpbrk(spec, "|\n") || strpbrk(name, "|\n") ||
        strlen(spec) >= sizeof((grace__inherited_t *)0)->spec ||
        strlen(name) >= sizeof((grace__inherited_t *)0)->name)
        return GRACE_EINVAL;
    return grace__buf_appendf(b, "%d|%s|%s\n", fd, spec, name);
}

/* ---- GRACE_DRAINING --------------------------------------------------------- */

/* A decimal number at *p (no sign), stopping at the first non-digit. */
static bool parse_u64(const char **p, uint64_t max, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return true;
}

int grace__drainers_parse(const char *env, grace__drainer_t *out, int cap)
{
    int n = 0;
    while (env && *env && n < cap) {
        const char *p = env;
        uint64_t v[4];
        bool ok = true;
        for (int i = 0; i < 4 && ok; i++) {
            ok = parse_u64(&p, i == 0 ? INT32_MAX : INT64_MAX, &v[i]) &&
                 (i == 3 ? (*p == ',' || *p == '\0') : *p++ == ':');
        }
        if (ok && v[0] > 0 && v[1] > 0) {
            out[n++] = (grace__drainer_t){(long)v[0], (unsigned long long)v[1], (int64_t)v[2],
                                          (int64_t)v[3]};
        }
        const char *comma = strchr(env, ',');
        if (comma == NULL)
            break;
        env = comma + 1;
    }
    return n;
}

int grace__drainers_format(grace__buf_t *b, const grace__drainer_t *d, int n)
{
    int r = 0;
    for (int i = 0; i < n; i++)
        r |= grace__buf_appendf(b, "%s%ld:%llu:%lld:%lld", i ? "," : "", d[i].pid, d[i].start,
                                (long long)d[i].deadline_ms, (long long)d[i].timeout_ms);
    return r < 0 ? GRACE_ENOMEM : 0;
}

/* ---- The new process's side ------------------------------------------------------ */

enum { MAX_INHERITED = 256, MAX_DRAINERS = 64 };

static struct {
    pthread_mutex_t mu;
    grace__inherited_t inh[MAX_INHERITED];
    int n;
    int parent_fd; /* GRACE_READY_FD; -1: none, or closed */
    bool ready_sent;
    grace__drainer_t drainers[MAX_DRAINERS];
    int n_drainers;
    _Atomic int role;           /* grace__role_t */
    pid_t master;               /* a child's master */
    atomic_bool full_restarted; /* GRACE_FULL_RESTART, until its outcome is written */
} in = {.mu = PTHREAD_MUTEX_INITIALIZER, .parent_fd = -1};

/* Only a listening stream socket is taken; anything else named in the
 * variable is not ours, and is left alone. */
static bool is_listening_stream(int fd)
{
    int type = 0, listening = 0;
    socklen_t l1 = sizeof type, l2 = sizeof listening;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) == 0 &&
           getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) == 0 &&
           type == SOCK_STREAM && listening;
}

__attribute__((constructor)) static void inherit_init(void)
{
    grace__inherited_t all[MAX_INHERITED];
    int n = grace__listen_fds_parse(getenv(GRACE__ENV_LISTEN_FDS), all, MAX_INHERITED);
    for (int i = 0; i < n; i++) {
        if (!is_listening_stream(all[i].fd))
            continue;
        fcntl(all[i].fd, F_SETFD, FD_CLOEXEC); /* only the next restart passes it on */
        in.inh[in.n++] = all[i];
    }
    const char *ready = getenv(GRACE__ENV_READY_FD);
    if (ready) {
        int fd = atoi(ready);
        if (fd > 2 && fcntl(fd, F_GETFD) >= 0) {
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            in.parent_fd = fd;
        }
    }
    in.n_drainers = grace__drainers_parse(getenv(GRACE__ENV_DRAINING), in.drainers, MAX_DRAINERS);
    if (getenv(GRACE__ENV_MASTER) && in.parent_fd >= 0) {
        atomic_store(&in.role, GRACE__ROLE_CHILD);
        in.master = getppid();
    }
    atomic_store(&in.full_restarted, getenv(GRACE__ENV_FULL_RESTART) != NULL);
    unsetenv(GRACE__ENV_FULL_RESTART);
    unsetenv(GRACE__ENV_MASTER);
    unsetenv(GRACE__ENV_LISTEN_FDS);
    unsetenv(GRACE__ENV_READY_FD);
    unsetenv(GRACE__ENV_DRAINING);
}

int grace__inherit_take(const char *server, const char *spec)
{
    pthread_mutex_lock(&in.mu);
    int fd = -1;
    for (int i = 0; i < in.n && fd < 0; i++) {
        grace__inherited_t *e = &in.inh[i];
        if (!e->taken && strcmp(e->name, server) == 0 && strcmp(e->spec, spec) == 0) {
            e->taken = true;
            fd = e->fd;
        }
    }
    pthread_mutex_unlock(&in.mu);
    return fd;
}

/* A line to the parent (a stream socket: no SIGPIPE if it is gone), with
 * a descriptor attached when fd >= 0. Called with in.mu held. */
static ssize_t tell_parent_fd(const char *msg, int fd)
{
    struct iovec iov = {(void *)msg, strlen(msg)};
    union { /* (aligned for the header) */
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof ctl.b;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    ssize_t w;
    do
        w = sendmsg(in.parent_fd, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    return w;
}

static void tell_parent(const char *msg)
{
    tell_parent_fd(msg, -1);
}

void grace_ready(void)
{
    bool alone = atomic_load(&in.role) == GRACE__ROLE_ALONE && in.parent_fd < 0;
    if (alone && !in.ready_sent) {
        /* The first process: systemd (if any) learns it serves. */
        grace__pid_file_write(getpid());
        grace__notify("READY=1\nMAINPID=%ld\nSTATUS=serving", (long)getpid());
    }
    if (alone && grace__full_restart_take()) {
        /* Executed afresh by a full restart, and serving: it is over. (A
         * master says so once its children serve: master.c.) */
        grace_restart_outcome_t ok = {.pid = (int)getpid()};
        grace__outcome_write(&ok);
    }
    pthread_mutex_lock(&in.mu);
    if (in.ready_sent || in.parent_fd < 0) {
        in.ready_sent = true;
        pthread_mutex_unlock(&in.mu);
        return;
    }
    in.ready_sent = true;
    /* Our parent starts draining now: its drain limit runs from here. */
    int64_t now = grace__wall_ms();
    for (int i = 0; i < in.n_drainers; i++)
        if (in.drainers[i].deadline_ms == 0)
            in.drainers[i].deadline_ms = now + in.drainers[i].timeout_ms;
    bool child = atomic_load(&in.role) == GRACE__ROLE_CHILD;
    for (int i = 0; i < in.n; i++) {
        if (!in.inh[i].taken) {
            grace_log("closing inherited socket [%s] of server %s: no server uses it",
                      in.inh[i].spec, in.inh[i].name);
            close(in.inh[i].fd);
            in.inh[i].taken = true;
            if (child) { /* the master closes its copy once the restart is done */
                char msg[200];
                snprintf(msg, sizeof msg, "unused %s|%s\n", in.inh[i].name, in.inh[i].spec);
                tell_parent(msg);
            }
        }
    }
    char msg[32];
    snprintf(msg, sizeof msg, "ready %ld\n", (long)getpid());
    tell_parent(msg);
    pthread_mutex_unlock(&in.mu);
}

bool grace__full_restart_take(void)
{
    return atomic_exchange(&in.full_restarted, false);
}

void grace__parent_fail(const char *why)
{
    if (grace__full_restart_take()) { /* no parent: the outcome file says it */
        grace_restart_outcome_t o = {0};
        snprintf(o.why, sizeof o.why, "the program, executed afresh, cannot start: %.400s", why);
        grace__outcome_write(&o);
    }
    pthread_mutex_lock(&in.mu);
    if (in.parent_fd >= 0 && !in.ready_sent) {
        char msg[600];
        snprintf(msg, sizeof msg, "fail %.580s\n", why);
        for (char *p = msg + 5; *p && p[1]; p++) /* one line */
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        tell_parent(msg);
    }
    pthread_mutex_unlock(&in.mu);
}

void grace__parent_handed_over(void)
{
    pthread_mutex_lock(&in.mu);
    if (in.parent_fd >= 0 && in.ready_sent) {
        tell_parent("handed over\n");
        close(in.parent_fd);
        in.parent_fd = -1;
    }
    pthread_mutex_unlock(&in.mu);
}

bool grace__parent_forget(void)
{
    if (pthread_mutex_trylock(&in.mu) != 0)
        return false; /* (called from a tick: never wait) */
    char b;
    bool gone = in.parent_fd >= 0 && in.ready_sent &&
                recv(in.parent_fd, &b, 1, MSG_DONTWAIT | MSG_PEEK) == 0;
    if (gone) {
        close(in.parent_fd); /* the parent has exited: nobody watches */
        in.parent_fd = -1;
    }
    pthread_mutex_unlock(&in.mu);
    return gone;
}

/* ---- Roles ------------------------------------------------------------------- */

grace__role_t grace__role(void)
{
    return atomic_load(&in.role);
}

void grace__set_role_master(void)
{
    int alone = GRACE__ROLE_ALONE;
    atomic_compare_exchange_strong(&in.role, &alone, GRACE__ROLE_MASTER);
}

pid_t grace__master_pid(void)
{
    return in.master;
}

/* One request line (with fd attached if >= 0) and its one-line answer. */
static int parent_ask_fd(const char *request, int fd, char *reply, size_t cap, int64_t timeout_ms)
{
    pthread_mutex_lock(&in.mu); /* one question at a time */
    int r = 0;
    if (in.parent_fd < 0) {
        r = GRACE_ESTATE;
        goto out;
    }
    if (tell_parent_fd(request, fd) < 0) {
        r = -errno;
        goto out;
    }
    size_t len = 0;
    int64_t deadline = grace__now_ms() + timeout_ms;
    while (len + 1 < cap && (len == 0 || reply[len - 1] != '\n')) {
        int64_t left = deadline - grace__now_ms();
        struct pollfd pfd = {in.parent_fd, POLLIN, 0};
        int p = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0) {
            r = p == 0 ? -ETIMEDOUT : -errno;
            goto out;
        }
        ssize_t n = recv(in.parent_fd, reply + len, cap - 1 - len, 0);
        if (n <= 0) {
            r = n == 0 ? -EPIPE : -errno;
            goto out;
        }
        len += (size_t)n;
    }
    reply[len] = '\0';
out:
    if (r < 0 && cap)
        reply[0] = '\0';
    pthread_mutex_unlock(&in.mu);
    return r;
}

int grace__parent_ask(const char *request, char *reply, size_t cap, int64_t timeout_ms)
{
    return parent_ask_fd(request, -1, reply, cap, timeout_ms);
}

void grace__master_adopt(const char *server, const char *spec, int fd)
{
    if (atomic_load(&in.role) != GRACE__ROLE_CHILD)
        return;
    char msg[200], reply[64];
    snprintf(msg, sizeof msg, "bound %s|%s\n", server, spec);
    int r = parent_ask_fd(msg, fd, reply, sizeof reply, 10000);
    if (r < 0 || strcmp(reply, "ok\n") != 0)
        grace_log("cannot hand the socket [%s] of server %s to the master (%s): the next "
                  "restart cannot bind it while this child holds it",
                  spec, server, r < 0 ? grace_strerror(r) : "no answer");
}

int grace__older_drainers(grace__drainer_t *out, int cap)
{
    pthread_mutex_lock(&in.mu);
    int n = in.n_drainers < cap ? in.n_drainers : cap;
    memcpy(out, in.drainers, (size_t)n * sizeof *out);
    pthread_mutex_unlock(&in.mu);
    return n;
}
