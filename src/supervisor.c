/*
 * supervisor.c -- life under a supervisor (SPEC B3): the PID file, systemd's
 * notification socket, and systemd's socket activation.
 *
 * PID file: always holds the PID to signal -- the master's in master mode,
 * the serving process's in the self-replacing mode (rewritten at each
 * hand-over by the old process, which knows the new PID first). Written to a
 * temporary file in the same directory and renamed, so a reader never sees
 * a half-written number; removed at exit only by the process it names.
 *
 * Notifications (sd_notify's protocol, written here: one datagram of
 * "KEY=VALUE" lines to the AF_UNIX socket in $NOTIFY_SOCKET; a leading '@'
 * names an abstract socket): only the process systemd knows as the main one
 * sends -- the first process, or after a hand-over the new one, whose PID
 * the old one announced with MAINPID=; a master's children never send.
 *
 * Socket activation: $LISTEN_PID is ours and $LISTEN_FDS says how many
 * listening sockets start at descriptor 3 ($LISTEN_FDNAMES may name them).
 * server.c asks for each address it would bind (grace__activated_take): a
 * socket whose address is the one configured, or whose name is the
 * server's, is taken instead. A full restart (exec in place, same PID)
 * passes them on again, so sockets systemd passed are never closed by a
 * restart.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { MAX_ACTIVATED = 64 };

/* A deliberate singleton: one process, one supervisor. */
static struct {
    pthread_mutex_t mu;
    char pid_file[4096]; /* "" : none */
    bool quiet;          /* a master's child: never notify, never write the PID file */
    int n_activated;
    int activated[MAX_ACTIVATED]; /* the descriptors ($LISTEN_FDS from 3) */
    bool taken[MAX_ACTIVATED];
    char names[1024];    /* $LISTEN_FDNAMES as received */
} sv = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- PID file ------------------------------------------------------------------- */

int grace_set_pid_file(const char *path)
{
    if (path == NULL || strlen(path) >= sizeof sv.pid_file - 16)
        return GRACE_EINVAL;
    pthread_mutex_lock(&sv.mu);
    snprintf(sv.pid_file, sizeof sv.pid_file, "%s", path);
    pthread_mutex_unlock(&sv.mu);
    return 0;
}

void grace__pid_file_write(pid_t pid)
{
    pthread_mutex_lock(&sv.mu);
    if (sv.pid_file[0] == '\0' || sv.quiet) {
        pthread_mutex_unlock(&sv.mu);
        return;
    }
    char tmp[sizeof sv.pid_file + 32];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", sv.pid_file, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char line[32];
    int n = snprintf(line, sizeof line, "%ld\n", (long)pid);
    bool ok = fd >= 0 && write(fd, line, (size_t)n) == n;
    if (fd >= 0)
        ok &= close(fd) == 0;
    if (!ok || rename(tmp, sv.pid_file) != 0) {
        grace_log("cannot write the PID file %s: %s", sv.pid_file, strerror(errno));
        unlink(tmp);
    }
    pthread_mutex_unlock(&sv.mu);
}

void grace__pid_file_remove(void)
{
    pthread_mutex_lock(&sv.mu);
    char buf[32] = "";
    int fd = sv.pid_file[0] && !sv.quiet ? open(sv.pid_file, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
        if (atol(buf) == (long)getpid()) /* only the process it names */
            unlink(sv.pid_file);
    }
    pthread_mutex_unlock(&sv.mu);
}

/* Beside the PID file, for gracectl (tools/gracectl.c), which signals and
 * then needs the outcome: PIDFILE.outcome holds the last restart's, one
 * line (written atomically) in one of three kinds:
 *   EPOCH_MS ok PID                a new process serves (a graceful restart:
 *                                  the new one, or a master's new child; a
 *                                  full restart: the same PID, written by
 *                                  the program executed afresh)
 *   EPOCH_MS refused RETRY_S WHY   nothing changed; a retry after RETRY_S
 *                                  seconds can succeed
 *   EPOCH_MS failed WHY            it failed or cannot be done (rolled back,
 *                                  not an executable, a full restart whose
 *                                  program cannot start); a retry alone
 *                                  will not help
 * WHY is one line of text for a person, never parsed.
 * PIDFILE.exe, if gracectl left one, names the executable the next restart
 * by signal (SIGUSR1 or SIGUSR2) restarts to (taken and removed by it). */
void grace__outcome_write(const grace_restart_outcome_t *out)
{
    char line[700];
    int n;
    if (out->pid > 0)
        n = snprintf(line, sizeof line, "%lld ok %d\n", (long long)grace__wall_ms(), out->pid);
    else if (out->retry_after_s > 0)
        n = snprintf(line, sizeof line, "%lld refused %d %.600s\n", (long long)grace__wall_ms(),
                     out->retry_after_s, out->why[0] ? out->why : "(no reason given)");
    else
        n = snprintf(line, sizeof line, "%lld failed %.600s\n", (long long)grace__wall_ms(),
                     out->why[0] ? out->why : "(no reason given)");
    for (char *p = line; p[0] && p[1]; p++) /* one line, whatever WHY holds */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    pthread_mutex_lock(&sv.mu);
    if (sv.pid_file[0] && !sv.quiet) {
        char path[sizeof sv.pid_file + 16], tmp[sizeof sv.pid_file + 48];
        snprintf(path, sizeof path, "%s.outcome", sv.pid_file);
        snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        bool ok = fd >= 0 && write(fd, line, (size_t)n) == n;
        if (fd >= 0)
            ok &= close(fd) == 0;
        if (!ok || rename(tmp, path) != 0)
            unlink(tmp);
    }
    pthread_mutex_unlock(&sv.mu);
}

bool grace__exe_request_take(char *out, size_t cap)
{
    pthread_mutex_lock(&sv.mu);
    bool got = false;
    if (sv.pid_file[0] && !sv.quiet) {
        char path[sizeof sv.pid_file + 16];
        snprintf(path, sizeof path, "%s.exe", sv.pid_file);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) {
            ssize_t n = read(fd, out, cap - 1);
            close(fd);
            unlink(path);
            if (n > 0) {
                out[n] = '\0';
                out[strcspn(out, "\r\n")] = '\0';
                got = out[0] == '/';
            }
        }
    }
    pthread_mutex_unlock(&sv.mu);
    return got;
}

/* ---- Notifications ---------------------------------------------------------------- */

void grace__supervisor_quiet(void)
{
    pthread_mutex_lock(&sv.mu);
    sv.quiet = true;
    pthread_mutex_unlock(&sv.mu);
}

void grace__notify(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0' || sv.quiet)
        return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@'))
        return;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, sl) < 0)
        grace_log("systemd notification to %s failed: %s", path, strerror(errno));
    close(fd);
}

uint64_t grace__monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- Socket activation ------------------------------------------------------------ */

__attribute__((constructor)) static void supervisor_init(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
        return;
    long n = atol(fds);
    for (long i = 0; i < n && i < MAX_ACTIVATED; i++) {
        int fd = 3 + (int)i;
        fcntl(fd, F_SETFD, FD_CLOEXEC); /* only a full restart passes them on */
        sv.activated[sv.n_activated++] = fd;
    }
    const char *names = getenv("LISTEN_FDNAMES");
    snprintf(sv.names, sizeof sv.names, "%s", names ? names : "");
    /* (The variables stay: a full restart re-executes us with the same
     * PID and the same descriptors, and reads them again.) */
}

/* The i-th name of $LISTEN_FDNAMES (colon-separated) equals name? */
static bool name_is(int i, const char *name)
{
    const char *p = sv.names;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, ':');
        p = p ? p + 1 : NULL;
    }
    if (p == NULL)
        return false;
    size_t len = strcspn(p, ":");
    return len == strlen(name) && strncmp(p, name, len) == 0;
}

/* Does the socket fd listen on the address l was configured with? */
static bool same_address(int fd, const grace__listener_t *l)
{
    struct sockaddr_storage got;
    socklen_t got_len = sizeof got;
    if (getsockname(fd, (struct sockaddr *)&got, &got_len) != 0)
        return false;
    int port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                               : ((struct sockaddr_in *)&got)->sin_port);
    if (port != l->port)
        return false;
    if (got.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&got)->sin6_addr;
        if (l->all_addrs)
            return IN6_IS_ADDR_UNSPECIFIED(a);
        return l->addr.ss_family == AF_INET6 &&
               memcmp(a, &((const struct sockaddr_in6 *)&l->addr)->sin6_addr, sizeof *a) == 0;
    }
    const struct in_addr *a = &((struct sockaddr_in *)&got)->sin_addr;
    if (l->all_addrs)
        return a->s_addr == htonl(INADDR_ANY);
    return l->addr.ss_family == AF_INET &&
           a->s_addr == ((const struct sockaddr_in *)&l->addr)->sin_addr.s_addr;
}

int grace__activated_take(const grace__listener_t *l, const char *server)
{
    int fd = -1;
    pthread_mutex_lock(&sv.mu);
    for (int i = 0; i < sv.n_activated && fd < 0; i++) {
        if (!sv.taken[i] && (same_address(sv.activated[i], l) || name_is(i, server))) {
            sv.taken[i] = true;
            fd = sv.activated[i];
        }
    }
    pthread_mutex_unlock(&sv.mu);
    return fd;
}

bool grace__is_activated(int fd)
{
    for (int i = 0; i < sv.n_activated; i++)
        if (sv.activated[i] == fd)
            return true;
    return false;
}

void grace__activated_pass_on(void)
{
    for (int i = 0; i < sv.n_activated; i++)
        fcntl(sv.activated[i], F_SETFD, 0); /* the same PID reads them again after exec */
}
