/*
 * gracectl.h -- what gracectl's files share (not installed, not API).
 *
 * gracectl.c  main: the commands and their options
 * help.c      the --help texts
 * local.c     status / restart / shutdown of a local program, by PID file or PID
 * watch.c     following a signalled restart to its outcome
 * proc.c      what /proc says about a process: alive, executable, uptime,
 *             children, listening sockets
 * remote.c    status / restart / shutdown through the admin URL, and the
 *             reading of the admin's answers (shared with rolling.c)
 * rolling.c   rolling-restart of a fleet
 * http.c      the HTTP client: libcurl, one GET at a time per thread
 * json.c      the admin's JSON answers, through cJSON
 * ui.c        output: progress while waiting, durations, times
 */
#ifndef GRACECTL_H
#define GRACECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifdef __GNUC__
#define CTL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CTL_PRINTF(f, a)
#endif

/* Exit status of every command; gracectl --help and docs/operations.md list
 * them, and scripts rely on them. */
enum {
    CTL_OK = 0,          /* done: restarted, shut down, status shown */
    CTL_FAILED = 1,      /* the operation failed: rolled back, a node failed, no outcome in time */
    CTL_USAGE = 2,       /* bad command line */
    CTL_UNREACHABLE = 3, /* no such process / PID file, connection refused, no admin there */
    CTL_BUSY = 4,        /* refused for now (503 + Retry-After): retry later */
    CTL_DENIED = 5,      /* not allowed: 403 (token), not permitted to signal */
};

enum { CTL_DEFAULT_TIMEOUT_S = 60, CTL_STATUS_TIMEOUT_S = 10 };

/* The admin token when --token is not given: keeps it out of `ps`. */
#define CTL_TOKEN_ENV "GRACECTL_TOKEN"

/* What status, restart and shutdown act on: a PID file, a PID or a URL. */
typedef struct {
    const char *pid_file; /* --pid-file */
    pid_t pid;            /* --pid; 0: none */
    const char *url;      /* --url, as given */
    const char *token;    /* --token or $GRACECTL_TOKEN; NULL: none */
    const char *cacert;   /* --cacert: CA file for https:// */
    const char *exe;      /* restart --exe */
    bool full;            /* restart --full */
    double timeout_s;     /* --timeout; 0: the command's default */
} ctl_target_t;

/* help.c: the --help texts */
extern const char help_main[], help_exit_codes[], help_target[], help_status[], help_restart[],
    help_shutdown[], help_rolling[];

/* local.c */
int local_status(const ctl_target_t *t);
int local_restart(const ctl_target_t *t);
int local_shutdown(const ctl_target_t *t);

/* watch.c: following a signalled restart to its outcome */
typedef struct watch watch_t;
/* Notes how things are before the signal; NULL if out of memory. free() it. */
watch_t *watch_new(const ctl_target_t *t, pid_t pid);
/* Waits (t->timeout_s) for the outcome, prints it; returns the exit code. */
int watch_wait(watch_t *w);
/* The last restart's outcome in PIDFILE.outcome, for a person. */
void outcome_last(const char *pid_file, char *out, size_t cap);

/* remote.c */
int remote_status(const ctl_target_t *t);
int remote_restart(const ctl_target_t *t);
int remote_shutdown(const ctl_target_t *t);

/* ---- rolling.c ---------------------------------------------------------------- */

typedef struct {
    char **urls; /* admin base URLs as given; borrowed */
    size_t n_urls;
    int parallel;       /* nodes at a time, >= 1 */
    const char *token;  /* NULL: none */
    const char *cacert; /* NULL: the system's CAs */
    const char *health; /* a path on each node that must answer 200; NULL: the status route */
    const char *exe;    /* newExeFilePath for every node; NULL: none */
    double timeout_s;   /* per node */
} rolling_opts_t;

int rolling_restart(const rolling_opts_t *o);

/* ---- proc.c --------------------------------------------------------------------- */

enum { PROC_MAX = 256 }; /* children or listening sockets looked at, per process */

/* Reads the PID in path into *pid; returns CTL_OK, or CTL_UNREACHABLE
 * (no file) or CTL_FAILED (not a PID) with why filled. */
int proc_read_pid_file(const char *path, pid_t *pid, char *why, size_t why_len);
/* Runs: exists and is not a zombie (a PID of another user counts). */
bool proc_alive(pid_t pid);
/* /proc/PID/exe into out ("" if unknown, e.g. another user's process). */
void proc_exe(pid_t pid, char *out, size_t cap);
/* Page faults of the children pid has reaped (cminflt + cmajflt): grows
 * when pid waits for a child that ran, however briefly; 0 if unknown. */
unsigned long long proc_reaped_faults(pid_t pid);
/* Milliseconds since pid started; -1 if unknown. */
int64_t proc_uptime_ms(pid_t pid);
/* Children of pid (any state but zombie), at most cap, in PID order. */
size_t proc_children(pid_t pid, pid_t *out, size_t cap);
/* True if pid's command line holds arg (a master's child: "--grace-child"). */
bool proc_has_arg(pid_t pid, const char *arg);
/* Inodes of the listening TCP sockets pid holds open, at most cap; -1 if
 * its descriptors cannot be read (another user's process). */
int proc_listeners(pid_t pid, unsigned long *out, size_t cap);
/* How many: > 0 serving, 0 draining (or not a server), -1 unknown. */
int proc_n_listeners(pid_t pid);

#define GRACE_CHILD_ARG "--grace-child" /* GRACE_CHILD_FLAG of grace.h */
/* Children of pid (at most PROC_MAX); only a master's (GRACE_CHILD_ARG in
 * their command line) if master. */
size_t proc_grace_children(pid_t pid, bool master, pid_t *out);
/* pid has a child running with GRACE_CHILD_ARG: a master. */
bool proc_is_master(pid_t pid);

/* ---- http.c --------------------------------------------------------------------- */

typedef struct {
    const char *token;  /* "Authorization: Bearer TOKEN"; NULL: none */
    const char *cacert; /* NULL: the system's CAs */
    double timeout_s;   /* the whole request */
    /* Called about every 100 ms to 1 s while the request waits (progress);
     * NULL: none. */
    void (*tick)(void *user);
    void *tick_user;
} http_opts_t;

typedef struct {
    long status; /* HTTP status; 0 when no answer came */
    char *body;  /* NUL-terminated (NULL when no answer); http_reply_free() */
    size_t body_len;
    int retry_after_s; /* Retry-After in seconds; -1: none */
    char error[256];   /* why no answer came */
    bool refused;      /* no answer: nothing listens there (connection refused) */
} http_reply_t;

/* Global set-up and clean-up of libcurl: once, before any thread starts. */
int http_init(void);
void http_cleanup(void);
/* GET url with "Accept: application/json". Returns CTL_OK when an answer
 * came (any status), CTL_UNREACHABLE (cannot connect, resolve, TLS) or
 * CTL_FAILED (timeout, broken answer) with r->error filled. Thread-safe. */
int http_get(const char *url, const http_opts_t *o, http_reply_t *r);
void http_reply_free(http_reply_t *r);
/* The admin base URL of a URL as given: "http://h:8199" and "h:8199" become
 * "http://h:8199/debug/admin", a trailing '/' goes. CTL_OK or CTL_USAGE. */
int http_admin_base(const char *in, char *out, size_t cap, char *why, size_t why_len);
/* base with its path (and query) replaced by path, e.g. "/readyz". */
int http_with_path(const char *base, const char *path, char *out, size_t cap);
/* base + "/" + action, and "?newExeFilePath=" + exe percent-encoded if exe. */
int http_action_url(const char *base, const char *action, const char *exe, char *out, size_t cap);

/* ---- json.c --------------------------------------------------------------------- */

typedef struct json json_t;
/* Parse text (len bytes); NULL if it is not one JSON value. json_free() it. */
json_t *json_parse(const char *text, size_t len);
void json_free(json_t *v);
/* The member key of object obj; NULL if obj is not an object or has none. */
const json_t *json_get(const json_t *obj, const char *key);
/* The i-th element of array arr; NULL past the end or if not an array. */
const json_t *json_at(const json_t *arr, size_t i);
bool json_is_number(const json_t *v);
double json_number(const json_t *v, double otherwise);
const char *json_string(const json_t *v); /* NULL if v is not a string */
bool json_bool(const json_t *v, bool otherwise);

/* ---- remote.c, for rolling.c ---------------------------------------------------- */

/* Read an admin action's answer: CTL_OK with *pid (0 for "restarting (full
 * restart)" or a shutdown), or the CTL code for its status, with msg saying
 * what happened ("restart failed: ...", "refused for now: ... (retry after
 * 2 s)"). */
int admin_answer(const http_reply_t *r, long *pid, char *msg, size_t cap);

/* ---- ui.c ----------------------------------------------------------------------- */

/* Seconds on the monotonic clock. */
double ui_now(void);
void ui_sleep(double seconds);
/* "1.4 s", "2 min 05 s", "3 h 12 min", "5 d 02 h" */
void ui_duration(double seconds, char *out, size_t cap);
/* Print a whole line to f, under the output lock, first clearing a
 * progress line being redrawn on the terminal. */
void ui_line(FILE *f, const char *fmt, ...) CTL_PRINTF(2, 3);

/* A wait shown to a person: on a terminal (live), one stderr line redrawn
 * in place with the elapsed time; otherwise a line every 5 s. */
typedef struct {
    double start;
    double next_line; /* not live: when the next line is due */
    double drawn;     /* live: when last drawn */
    bool live;
    char what[300];
} ui_wait_t;

/* live_ok: the caller is the only one printing (not several nodes at once). */
void ui_wait_begin(ui_wait_t *w, bool live_ok, const char *fmt, ...) CTL_PRINTF(3, 4);
void ui_wait_tick(ui_wait_t *w);
double ui_wait_elapsed(const ui_wait_t *w);
void ui_wait_end(ui_wait_t *w);

#endif /* GRACECTL_H */
