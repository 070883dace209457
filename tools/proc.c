/*
 * proc.c -- what Linux's /proc says about a process, for the local commands:
 * whether it runs, its executable, how long it has run, its children, and
 * the listening sockets it holds.
 *
 * The listening sockets are how gracectl tells a serving process from a
 * draining one without asking it: grace closes a process's listeners when
 * its drain begins (after the probation, for the old process of a
 * restart), and a full restart binds new ones. A socket is "listening" if
 * its inode is in /proc/PID/net/tcp or tcp6 with state 0A (TCP_LISTEN) and
 * /proc/PID/fd holds a link "socket:[INODE]". Another user's process hides
 * its descriptors: then nothing is known (-1), and callers say so.
 *
 * Known limit: children are found by scanning every /proc/N/stat, O(number
 * of processes) per call; gracectl calls it a few times a second at most.
 */
#include "gracectl.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /proc/PID/NAME into buf (NUL-terminated, cut at cap - 1): its length,
 * or -1 if it cannot be read. */
static ssize_t read_proc(pid_t pid, const char *name, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, name);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (ssize_t)n;
}

int proc_read_pid_file(const char *path, pid_t *pid, char *why, size_t why_len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, why_len, "cannot read the PID file %s: %s", path, strerror(errno));
        return errno == EACCES ? CTL_DENIED : CTL_UNREACHABLE;
    }
    char line[64] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *end = NULL;
    long v = got ? strtol(line, &end, 10) : 0;
    if (!got || end == line || v <= 0 || v > INT_MAX || (*end != '\n' && *end != '\0')) {
        snprintf(why, why_len, "the PID file %s does not hold a PID", path);
        return CTL_FAILED;
    }
    *pid = (pid_t)v;
    return CTL_OK;
}

typedef struct {
    char state;
    pid_t ppid;
    unsigned long long child_faults; /* cminflt + cmajflt */
    unsigned long long start;        /* starttime, clock ticks after boot */
} stat_t;

/* Fields of /proc/PID/stat after the command name (which may hold spaces
 * and parentheses, hence the last ')'): state is field 3, ppid 4, cminflt
 * 11, cmajflt 13, starttime 22. Returns false if there is no such process. */
static bool read_stat(pid_t pid, stat_t *st)
{
    char buf[1024];
    if (read_proc(pid, "stat", buf, sizeof buf) < 0)
        return false;
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return false;
    int pp = 0;
    unsigned long long cmin = 0, cmaj = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime priority nice threads itrealvalue starttime */
    if (sscanf(p + 1,
               " %c %d %*d %*d %*d %*d %*u %*u %llu %*u %llu %*u %*u %*d %*d %*d %*d %*d %*d %llu",
               &st->state, &pp, &cmin, &cmaj, &st->start) != 5)
        return false;
    st->ppid = pp;
    st->child_faults = cmin + cmaj;
    return true;
}

/* Does a thread of pid other than its first one still run? */
static bool other_thread_runs(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", (long)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    bool runs = false;
    struct dirent *e;
    while (!runs && (e = readdir(d)) != NULL) {
        char *end;
        long tid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || tid <= 0 || tid == (long)pid)
            continue;
        char name[64], buf[1024];
        snprintf(name, sizeof name, "task/%ld/stat", tid);
        const char *p = read_proc(pid, name, buf, sizeof buf) < 0 ? NULL : strrchr(buf, ')');
        runs = p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
    }
    closedir(d);
    return runs;
}

bool proc_alive(pid_t pid)
{
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return false;
    /* A stat that cannot be read (the process is in the middle of an
     * execve, as in a full restart) is a process still there. So is one
     * whose first thread is a zombie while another runs: an execve from
     * another thread leaves it so until the other threads are gone (with
     * io_uring, until their rings' requests are cancelled), and then that
     * thread takes over the PID. */
    stat_t st;
    return !read_stat(pid, &st) || (st.state != 'Z' && st.state != 'X') || other_thread_runs(pid);
}

unsigned long long proc_reaped_faults(pid_t pid)
{
    stat_t st;
    return read_stat(pid, &st) ? st.child_faults : 0;
}

void proc_exe(pid_t pid, char *out, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/exe", (long)pid);
    ssize_t n = readlink(path, out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
}

int64_t proc_uptime_ms(pid_t pid)
{
    stat_t st;
    if (!read_stat(pid, &st))
        return -1;
    FILE *f = fopen("/proc/uptime", "re");
    double up = 0;
    bool ok = f != NULL && fscanf(f, "%lf", &up) == 1;
    if (f)
        fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    if (!ok || hz <= 0)
        return -1;
    double ms = up * 1000.0 - (double)st.start * 1000.0 / (double)hz;
    return ms < 0 ? 0 : (int64_t)ms;
}

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

size_t proc_children(pid_t pid, pid_t *out, size_t cap)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        if (*end != '\0' || p <= 0)
            continue;
        stat_t st;
        if (read_stat((pid_t)p, &st) && st.ppid == pid && st.state != 'Z')
            out[n++] = (pid_t)p;
    }
    closedir(d);
    qsort(out, n, sizeof *out, cmp_pid);
    return n;
}

bool proc_has_arg(pid_t pid, const char *arg)
{
    char buf[8192];
    ssize_t got = read_proc(pid, "cmdline", buf, sizeof buf);
    if (got < 0)
        return false;
    size_t n = (size_t)got;
    for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
        if (strcmp(buf + i, arg) == 0)
            return true;
    return false;
}

/* Inodes of the sockets in LISTEN state in pid's network namespace. */
static size_t listen_table(pid_t pid, unsigned long *out, size_t cap)
{
    static const char *const files[] = {"tcp", "tcp6"};
    size_t n = 0;
    for (size_t k = 0; k < 2; k++) {
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/%ld/net/%s", (long)pid, files[k]);
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) && n < cap) {
            unsigned st;
            unsigned long ino;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &st, &ino) == 2 &&
                st == 0x0A)
                out[n++] = ino;
        }
        fclose(f);
    }
    return n;
}

int proc_listeners(pid_t pid, unsigned long *out, size_t cap)
{
    unsigned long table[4 * PROC_MAX];
    size_t n_table = listen_table(pid, table, sizeof table / sizeof table[0]);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        char path[sizeof dir + 256 + 2], link[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, link, sizeof link - 1);
        unsigned long ino;
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &ino) != 1)
            continue;
        for (size_t i = 0; i < n_table; i++)
            if (table[i] == ino) {
                out[n++] = ino;
                break;
            }
    }
    closedir(d);
    return (int)n;
}

/* ---- grace's processes ------------------------------------------------------------ */

size_t proc_grace_children(pid_t pid, bool master, pid_t *out)
{
    size_t n = proc_children(pid, out, PROC_MAX), k = 0;
    for (size_t i = 0; i < n; i++)
        if (!master || proc_has_arg(out[i], GRACE_CHILD_ARG))
            out[k++] = out[i];
    return k;
}

bool proc_is_master(pid_t pid)
{
    pid_t kids[PROC_MAX];
    return proc_grace_children(pid, true, kids) > 0;
}

int proc_n_listeners(pid_t pid)
{
    unsigned long l[PROC_MAX];
    return proc_listeners(pid, l, PROC_MAX);
}
