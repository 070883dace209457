/*
 * watch.c -- how gracectl learns the outcome of a restart it signalled to a
 * local program (local.c sends the signal).
 *
 * With a PID file, grace keeps PIDFILE.outcome beside it (src/supervisor.c):
 * the last restart's outcome, "EPOCH_MS ok PID", "EPOCH_MS refused RETRY_S
 * WHY" or "EPOCH_MS failed WHY", replaced atomically by whichever process
 * decided it (the old process, the master, or -- for a full restart that
 * worked -- the program executed afresh, once it serves: then PID is the
 * one gracectl signalled). The outcome is news when the line (or the
 * file's inode) differs from the one noted before the signal. Only the
 * kind is parsed: WHY is shown as grace wrote it.
 *
 * With only a PID, nothing reports an outcome, so gracectl watches /proc
 * (proc.c): a self-replacing process starts a child and, once the child
 * serves, closes its listening sockets (after its probation) and exits; a
 * master starts new children and the old ones close theirs; a full restart
 * listens on new sockets. A failure shows as new processes that vanish
 * while the old ones keep listening; its reason is only in the log.
 *
 * Known limits: a restart someone else triggers at the same moment has an
 * outcome too -- refused, if ours is under way -- and gracectl reports
 * whichever comes first. Without a PID file, a helper program the
 * application starts during the wait counts as the new process if it is
 * caught between its fork and its exec (it runs the same executable then);
 * if it then exits at once, the restart looks failed. With --pid-file none
 * of this guessing happens.
 */
#include "gracectl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum { POLL_MS = 50 };

typedef struct {
    bool exists;
    ino_t ino;
    char line[1024];
} sidecar_t;

typedef enum { OUTCOME_OK, OUTCOME_REFUSED, OUTCOME_FAILED } outcome_kind_t;

typedef struct {
    long long at_ms;
    outcome_kind_t kind;
    long pid;        /* ok */
    int retry_s;     /* refused */
    const char *why; /* refused, failed */
} outcome_t;

/* What a restart is judged against: how things were before the signal. */
struct watch {
    const ctl_target_t *t;
    pid_t pid;
    bool master;          /* its children run with --grace-child */
    char exe[PATH_MAX];   /* its executable */
    sidecar_t outcome;    /* PIDFILE.outcome */
    pid_t kids[PROC_MAX]; /* children */
    size_t n_kids;
    unsigned long lis[PROC_MAX]; /* listening sockets */
    int n_lis;
    unsigned long long reaped; /* proc_reaped_faults() */
    pid_t seen[PROC_MAX];      /* children that appeared since */
    size_t n_seen;
    char msg[1400]; /* the verdict */
};

/* ---- the files beside the PID file --------------------------------------------- */

static void outcome_read(const char *pid_file, sidecar_t *o)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s.outcome", pid_file);
    memset(o, 0, sizeof *o);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    struct stat st = {0};
    o->exists = fstat(fileno(f), &st) == 0 && fgets(o->line, sizeof o->line, f) != NULL;
    o->ino = st.st_ino;
    o->line[strcspn(o->line, "\n")] = '\0';
    fclose(f);
}

static bool outcome_parse(const char *line, outcome_t *o)
{
    int n = 0;
    memset(o, 0, sizeof *o);
    if (sscanf(line, "%lld ok %ld", &o->at_ms, &o->pid) == 2 && o->pid > 0) {
        o->kind = OUTCOME_OK;
        return true;
    }
    if (sscanf(line, "%lld refused %d %n", &o->at_ms, &o->retry_s, &n) == 2 && n > 0) {
        o->kind = OUTCOME_REFUSED;
        o->why = line + n;
        return true;
    }
    if (sscanf(line, "%lld failed %n", &o->at_ms, &n) == 1 && n > 0) {
        o->kind = OUTCOME_FAILED;
        o->why = line + n;
        return true;
    }
    return false;
}

void outcome_last(const char *pid_file, char *out, size_t cap)
{
    sidecar_t sc, *s = &sc;
    outcome_t o;
    outcome_read(pid_file, s);
    if (!s->exists) {
        snprintf(out, cap, "none recorded");
        return;
    }
    if (!outcome_parse(s->line, &o)) {
        snprintf(out, cap, "(unreadable: \"%.200s\")", s->line);
        return;
    }
    time_t t = (time_t)(o.at_ms / 1000);
    struct tm tm;
    char when[32] = "?", ago[32] = "?";
    if (localtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ui_duration((double)now.tv_sec - (double)o.at_ms / 1000.0 + (double)now.tv_nsec / 1e9, ago,
                sizeof ago);
    if (o.kind == OUTCOME_OK)
        snprintf(out, cap, "%s (%s ago): restarted, new pid %ld", when, ago, o.pid);
    else if (o.kind == OUTCOME_REFUSED)
        snprintf(out, cap, "%s (%s ago): refused: %.700s (retry after %d s)", when, ago, o.why,
                 o.retry_s);
    else
        snprintf(out, cap, "%s (%s ago): failed: %.700s", when, ago, o.why);
}

/* ---- watching ------------------------------------------------------------------- */

watch_t *watch_new(const ctl_target_t *t, pid_t pid)
{
    watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->t = t;
    w->pid = pid;
    w->master = proc_is_master(pid);
    if (t->pid_file)
        outcome_read(t->pid_file, &w->outcome);
    proc_exe(pid, w->exe, sizeof w->exe);
    w->n_kids = proc_grace_children(pid, w->master, w->kids);
    w->n_lis = proc_listeners(pid, w->lis, PROC_MAX);
    w->reaped = proc_reaped_faults(pid);
    return w;
}

static bool has_pid(const pid_t *v, size_t n, pid_t p)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == p)
            return true;
    return false;
}

/* A child of a self-replacing process that is grace's new process, not a
 * program of the application's own (a helper it runs): it runs the same
 * executable, or holds one of the listening sockets grace passed it. */
static bool is_successor(const watch_t *w, pid_t kid)
{
    char exe[PATH_MAX];
    proc_exe(kid, exe, sizeof exe);
    if (exe[0] && strcmp(exe, w->exe) == 0)
        return true;
    unsigned long l[PROC_MAX];
    int n = proc_listeners(kid, l, PROC_MAX);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < w->n_lis; k++)
            if (l[i] == w->lis[k])
                return true;
    return false;
}

/* Record children that were not there before the signal. */
static void note_new_children(watch_t *w)
{
    pid_t now[PROC_MAX];
    size_t n = proc_grace_children(w->pid, w->master, now);
    for (size_t i = 0; i < n && w->n_seen < PROC_MAX; i++)
        if (!has_pid(w->kids, w->n_kids, now[i]) && !has_pid(w->seen, w->n_seen, now[i]) &&
            (w->master || is_successor(w, now[i])))
            w->seen[w->n_seen++] = now[i];
}

/* The process listens, and on none of the sockets it had: a full restart
 * (re-executed, bound afresh) is over. */
static bool on_new_sockets(const watch_t *w)
{
    unsigned long now[PROC_MAX];
    int n = proc_listeners(w->pid, now, PROC_MAX);
    if (w->n_lis <= 0 || n <= 0)
        return false;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < w->n_lis; k++)
            if (now[i] == w->lis[k])
                return false;
    return true;
}

/* New children alive and serving, as "12 13"; returns how many. */
static int serving_new(const watch_t *w, char *list, size_t cap)
{
    int n = 0;
    list[0] = '\0';
    for (size_t i = 0; i < w->n_seen; i++)
        if (proc_alive(w->seen[i]) && proc_n_listeners(w->seen[i]) > 0) {
            size_t len = strlen(list);
            snprintf(list + len, cap - len, "%s%ld", n++ ? " " : "", (long)w->seen[i]);
        }
    return n;
}

static bool any_seen_alive(const watch_t *w)
{
    for (size_t i = 0; i < w->n_seen; i++)
        if (proc_alive(w->seen[i]))
            return true;
    return false;
}

/* The process has waited for a child since the signal: a new process that
 * died before we saw it (one that exits at once lives a millisecond). */
static bool has_reaped(const watch_t *w)
{
    return proc_reaped_faults(w->pid) > w->reaped;
}

static const char *const LOG_HINT = "the reason is in the program's log";

/* Self-replacing, no PID file: the verdict, or -1 while undecided. */
static int look_self(watch_t *w)
{
    char news[512];
    note_new_children(w);
    int n_new = serving_new(w, news, sizeof news);
    if (!proc_alive(w->pid)) {
        if (any_seen_alive(w) && n_new > 0) {
            snprintf(w->msg, sizeof w->msg, "restarted: new pid %s (pid %ld has exited)", news,
                     (long)w->pid);
            return CTL_OK;
        }
        snprintf(w->msg, sizeof w->msg,
                 "restart failed: process %ld exited and no new process took over; %s",
                 (long)w->pid, LOG_HINT);
        return CTL_FAILED;
    }
    if (on_new_sockets(w)) {
        snprintf(w->msg, sizeof w->msg, "restarted (full restart): pid %ld serves on new sockets",
                 (long)w->pid);
        return CTL_OK;
    }
    int old = proc_n_listeners(w->pid);
    if (n_new > 0 && old == 0) {
        snprintf(w->msg, sizeof w->msg, "restarted: new pid %s; pid %ld drains and exits", news,
                 (long)w->pid);
        return CTL_OK;
    }
    if (old > 0 && !any_seen_alive(w) && (w->n_seen > 0 || has_reaped(w))) {
        snprintf(w->msg, sizeof w->msg,
                 "restart failed: the new process exited before it took over; pid %ld serves "
                 "on; %s",
                 (long)w->pid, LOG_HINT);
        return CTL_FAILED;
    }
    return -1;
}

/* Old children of a master that still listen. */
static int old_serving(const watch_t *w)
{
    int n = 0;
    for (size_t i = 0; i < w->n_kids; i++)
        n += proc_alive(w->kids[i]) && proc_n_listeners(w->kids[i]) > 0;
    return n;
}

/* Master mode, no PID file: the verdict, or -1 while undecided. */
static int look_master(watch_t *w)
{
    char news[512];
    if (!proc_alive(w->pid)) {
        snprintf(w->msg, sizeof w->msg, "restart failed: master %ld exited; %s", (long)w->pid,
                 LOG_HINT);
        return CTL_FAILED;
    }
    note_new_children(w);
    int n_new = serving_new(w, news, sizeof news);
    if (n_new > 0 && on_new_sockets(w)) {
        snprintf(w->msg, sizeof w->msg, "restarted (full restart): master %ld, new children %s",
                 (long)w->pid, news);
        return CTL_OK;
    }
    int old = old_serving(w);
    if (n_new > 0 && old == 0) {
        snprintf(w->msg, sizeof w->msg, "restarted: new pid %s (master %ld)", news, (long)w->pid);
        return CTL_OK;
    }
    if (old > 0 && !any_seen_alive(w) && (w->n_seen > 0 || has_reaped(w))) {
        snprintf(w->msg, sizeof w->msg,
                 "restart failed: the new children exited; the old ones serve on; %s", LOG_HINT);
        return CTL_FAILED;
    }
    return -1;
}

/* With a PID file: the verdict of the new outcome line; -1 while there is
 * none. A full restart's "ok" names the PID gracectl signalled: the same
 * process serves again. (The PID file is not watched: the same PID rewrites
 * it after a full restart too, but only the outcome tells a refusal, or why
 * the program executed afresh could not start.) */
static int look_files(watch_t *w)
{
    sidecar_t now;
    outcome_read(w->t->pid_file, &now);
    if (!now.exists ||
        (w->outcome.exists && now.ino == w->outcome.ino && strcmp(now.line, w->outcome.line) == 0))
        return -1;
    outcome_t o;
    if (!outcome_parse(now.line, &o)) {
        snprintf(w->msg, sizeof w->msg, "%s.outcome holds \"%.200s\"", w->t->pid_file, now.line);
        return CTL_FAILED;
    }
    switch (o.kind) {
    case OUTCOME_OK:
        if (o.pid == (long)w->pid)
            snprintf(w->msg, sizeof w->msg, "restarted (full restart): pid %ld serves again",
                     o.pid);
        else
            snprintf(w->msg, sizeof w->msg, "restarted: new pid %ld", o.pid);
        return CTL_OK;
    case OUTCOME_REFUSED:
        snprintf(w->msg, sizeof w->msg, "refused for now: %.900s (retry after %d s)", o.why,
                 o.retry_s);
        return CTL_BUSY;
    case OUTCOME_FAILED:
        break;
    }
    snprintf(w->msg, sizeof w->msg, "restart failed: %.900s", o.why);
    return CTL_FAILED;
}

static int look(watch_t *w)
{
    int code = w->t->pid_file ? look_files(w) : w->master ? look_master(w) : look_self(w);
    if (code < 0 && w->t->pid_file && !proc_alive(w->pid)) {
        /* The outcome is written before a process exits: look once more. */
        code = look_files(w);
        if (code < 0) {
            snprintf(w->msg, sizeof w->msg,
                     "restart failed: process %ld exited without an outcome; %s", (long)w->pid,
                     LOG_HINT);
            code = CTL_FAILED;
        }
    }
    return code;
}

int watch_wait(watch_t *w)
{
    double limit = w->t->timeout_s > 0 ? w->t->timeout_s : CTL_DEFAULT_TIMEOUT_S;
    ui_wait_t u;
    ui_wait_begin(&u, true, "waiting for the restart of process %ld ...", (long)w->pid);
    int code;
    while ((code = look(w)) < 0 && ui_wait_elapsed(&u) < limit) {
        ui_wait_tick(&u);
        ui_sleep(POLL_MS / 1000.0);
    }
    ui_wait_end(&u);
    if (code < 0) {
        snprintf(w->msg, sizeof w->msg,
                 "no outcome within %g s: the restart may still be under way; %s", limit, LOG_HINT);
        code = CTL_FAILED;
    }
    ui_line(code == CTL_OK ? stdout : stderr, "%s%s", code == CTL_OK ? "" : "gracectl: ", w->msg);
    return code;
}
