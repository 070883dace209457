/*
 * inflight.c -- what a client may be in the middle of when a deploy restarts
 * the server, one route each, so a restart can be watched (and tested) from
 * the client's side:
 *
 *   /pid                 this process's PID
 *   POST /echo           the request body, byte for byte (an upload: a
 *                        non-idempotent request no client will resend)
 *   /stream?seconds=S    a chunked response that lasts S seconds (default
 *                        20, at most 3600): "tick N pid P\n" every 100 ms
 *                        (&interval_ms=I to change), then "done N\n"
 *   /sleep               the seed's: PID, 10 s of sleep (--sleep-ms), PID
 *   /orphan              starts a process that outlives this one (as a handler
 *                        might start a daemon) and answers its PID: in master
 *                        mode as PID 1 of a container, the master reaps it
 *                        when it exits
 *   /restart             grace_restart() called by the handler itself -- the
 *                        API, as a program would call it -- answering
 *                        "restarted: new pid N" or why not (503 with
 *                        Retry-After when a retry can succeed, 500 if not)
 *   /debug/admin         the admin page
 *
 * Graceful restart is on, as in every example: a stream or an upload in
 * progress finishes in the old process while the new one serves.
 *
 * Run `inflight --port 8090`, then e.g.
 *   curl -N http://127.0.0.1:8090/stream?seconds=20 &
 *   curl http://127.0.0.1:8090/restart
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "grace.h"
#include "flags.h"
#include "seed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int handle_echo(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_str_t body = grace_request_body(req);
    grace_response_set_header(res, "Content-Type", "application/octet-stream");
    return grace_response_write(res, body.ptr, body.len);
}

/* A query parameter as a number from 1 to max; def when absent or bad. */
static long query_num(grace_request_t *req, const char *name, long def, long max)
{
    grace_str_t v = grace_request_query(req, name);
    char buf[24];
    if (v.len == 0 || v.len >= sizeof buf)
        return def;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    char *end;
    long n = strtol(buf, &end, 10);
    return *end == '\0' && n >= 1 && n <= max ? n : def;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int handle_stream(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    long seconds = query_num(req, "seconds", 20, 3600);
    long interval_ms = query_num(req, "interval_ms", 100, 60000);
    int64_t end = mono_ms() + seconds * 1000;
    grace_response_set_header(res, "Content-Type", "text/plain; charset=utf-8");
    long n = 0;
    for (;;) {
        int rc = grace_response_writef(res, "tick %ld pid %ld\n", n++, (long)getpid());
        if (rc >= 0)
            rc = grace_response_flush(res); /* blocks until written: a gone client ends it */
        if (rc < 0)
            return rc;
        if (mono_ms() >= end)
            break;
        struct timespec ts = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return grace_response_writef(res, "done %ld\n", n);
}

/* A grandchild that outlives the process that started it: fork twice, the
 * middle process exits at once, the grandchild sleeps a minute. */
static int handle_orphan(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t mid = fork();
    if (mid == 0) {
        pid_t grand = fork();
        if (grand == 0) {
            close(fds[0]);
            close(fds[1]);
            struct timespec ts = {60, 0};
            nanosleep(&ts, NULL);
            _exit(0);
        }
        ssize_t w = write(fds[1], &grand, sizeof grand);
        _exit(w == sizeof grand ? 0 : 1);
    }
    close(fds[1]);
    pid_t grand = -1;
    ssize_t n = read(fds[0], &grand, sizeof grand);
    close(fds[0]);
    waitpid(mid, NULL, 0);
    if (n != sizeof grand)
        return -1;
    return grace_response_writef(res, "%ld\n", (long)grand);
}

static int handle_restart(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    grace_restart_outcome_t out;
    int rc = grace_restart_ex(NULL, GRACE_RESTART_AUTO, &out);
    if (rc > 0)
        return grace_response_writef(res, "restarted: new pid %d\n", rc);
    if (rc == 0)
        return grace_response_writeln(res, "restarting (full restart)");
    if (out.retry_after_s > 0) {
        char after[16];
        snprintf(after, sizeof after, "%d", out.retry_after_s);
        grace_response_set_header(res, "Retry-After", after);
    }
    grace_response_set_status(res, out.retry_after_s > 0 ? 503 : 500);
    return grace_response_writef(res, "restart failed: %s\n", out.why);
}

int main(int argc, char **argv)
{
    static const int default_port = 8090;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "inflight [--port N]",
                   "Requests in flight across a restart: POST /echo, /stream?seconds=S,\n"
                   "/sleep, /pid, and /restart (grace_restart() from a handler).",
                   EX_FLAG_SLEEP | EX_FLAG_ADMIN);
    sleep_ms = f.sleep_ms;

    grace_server_t *s = grace_server(NULL);
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f.prog);
        return 1;
    }
    ex_check(&f, grace_server_bind_handler(s, "/pid", handle_pid, NULL), "bind /pid");
    ex_check(&f, grace_server_bind_handler(s, "POST:/echo", handle_echo, NULL), "bind /echo");
    ex_check(&f, grace_server_bind_handler(s, "GET:/stream", handle_stream, NULL), "bind /stream");
    ex_check(&f, grace_server_bind_handler(s, "/sleep", handle_sleep, NULL), "bind /sleep");
    ex_check(&f, grace_server_bind_handler(s, "/restart", handle_restart, NULL), "bind /restart");
    ex_check(&f, grace_server_bind_handler(s, "/orphan", handle_orphan, NULL), "bind /orphan");
    ex_enable_admin(s, &f);
    ex_configure(s, &f, f.ports, f.n_ports);

    int rc = grace_server_run(s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        return 1;
    }
    return 0;
}
