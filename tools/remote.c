/*
 * remote.c -- status, restart and shutdown through a program's admin URL
 * (docs/admin.md): GET PATTERN/status, PATTERN/restart[?newExeFilePath=],
 * PATTERN/shutdown, asking for JSON ("Accept: application/json") and
 * sending the token as "Authorization: Bearer T".
 *
 * The admin answers a restart only once its outcome is known, so one GET
 * is the whole restart: 200 {"ok":true,"pid":N}, or an error whose status
 * says what kind -- 503 + Retry-After refused for now, 403 not allowed, 409
 * and 500 failed. admin_answer() turns an answer into gracectl's exit code
 * and a line for a person; rolling.c uses it too.
 */
#include "gracectl.h"

#include <string.h>

static const char *admin_base(const ctl_target_t *t, char *base, size_t cap, int *code)
{
    char why[512] = "";
    *code = http_admin_base(t->url, base, cap, why, sizeof why);
    if (*code != CTL_OK)
        ui_line(stderr, "gracectl: %s", why);
    return *code == CTL_OK ? base : NULL;
}

static double timeout_or(const ctl_target_t *t, double dflt)
{
    return t->timeout_s > 0 ? t->timeout_s : dflt;
}

/* The reason an answer gives: the JSON "error", else the body's first line. */
static void reason_of(const http_reply_t *r, const json_t *j, char *out, size_t cap)
{
    const char *err = json_string(json_get(j, "error"));
    if (err == NULL)
        err = r->body ? r->body : "";
    size_t len = strcspn(err, "\r\n");
    snprintf(out, cap, "%.*s", (int)(len < 500 ? len : 500), err);
}

int admin_answer(const http_reply_t *r, long *pid, char *msg, size_t cap)
{
    json_t *j = r->body ? json_parse(r->body, r->body_len) : NULL;
    char why[512];
    reason_of(r, j, why, sizeof why);
    *pid = 0;
    int ret = CTL_FAILED;
    if (r->status == 200 && json_bool(json_get(j, "ok"), false)) {
        *pid = (long)json_number(json_get(j, "pid"), 0);
        snprintf(msg, cap, *pid > 0 ? "restarted: new pid %ld" : "done", *pid);
        ret = CTL_OK;
    } else if (r->status == 200) {
        snprintf(msg, cap, "not a grace admin answer (HTTP 200): %s", why);
    } else if (r->status == 503) {
        /* grace says "restart failed: <why>"; for now is the news here */
        const char *w = strncmp(why, "restart failed: ", 16) == 0 ? why + 16 : why;
        if (r->retry_after_s >= 0)
            snprintf(msg, cap, "refused for now: %s (HTTP 503, retry after %d s)", w,
                     r->retry_after_s);
        else
            snprintf(msg, cap, "refused for now: %s (HTTP 503)", w);
        ret = CTL_BUSY;
    } else if (r->status == 401 || r->status == 403) {
        snprintf(msg, cap, "not allowed: %s (HTTP %ld)", why, r->status);
        ret = CTL_DENIED;
    } else if (r->status == 404) {
        snprintf(msg, cap, "no admin page there (HTTP 404): check the URL and the admin pattern");
        ret = CTL_UNREACHABLE;
    } else {
        snprintf(msg, cap, "%s (HTTP %ld)", why[0] ? why : "failed", r->status);
    }
    json_free(j);
    return ret;
}

/* A transfer that brought no answer: say so; returns its code. */
static int no_answer(const char *url, int code, const http_reply_t *r, double timeout_s)
{
    if (code == CTL_UNREACHABLE)
        ui_line(stderr, "gracectl: cannot reach %s: %s", url, r->error);
    else
        ui_line(stderr, "gracectl: no answer from %s (timeout %g s): %s", url, timeout_s, r->error);
    return code;
}

/* ---- status ---------------------------------------------------------------------- */

static void print_servers(const json_t *j)
{
    const char *answering = json_string(json_get(j, "server"));
    const json_t *s;
    for (size_t i = 0; (s = json_at(json_get(j, "servers"), i)) != NULL; i++) {
        const char *name = json_string(json_get(s, "name"));
        char addrs[1024] = "";
        const json_t *a;
        for (size_t k = 0; (a = json_at(json_get(s, "addresses"), k)) != NULL; k++) {
            size_t len = strlen(addrs);
            snprintf(addrs + len, sizeof addrs - len, "%s%s", k ? ", " : "",
                     json_string(a) ? json_string(a) : "?");
        }
        long inflight = (long)json_number(json_get(s, "inflight"), 0);
        if (name && answering && strcmp(name, answering) == 0 && inflight > 0)
            inflight--; /* the status request itself */
        printf("%-13s %s  %s  %s  in flight %ld\n", i ? "" : "servers:", name ? name : "?",
               json_bool(json_get(s, "running"), false) ? "running" : "stopped",
               addrs[0] ? addrs : "(no address)", inflight);
    }
}

static void print_status(const json_t *j)
{
    printf("%-13s %.0f\n", "pid:", json_number(json_get(j, "pid"), 0));
    if (json_is_number(json_get(j, "master_pid")))
        printf("%-13s %.0f (master mode: the PID to signal)\n",
               "master pid:", json_number(json_get(j, "master_pid"), 0));
    const char *exe = json_string(json_get(j, "executable"));
    printf("%-13s %s\n", "executable:", exe ? exe : "?");
    char up[32];
    ui_duration(json_number(json_get(j, "uptime_ms"), 0) / 1000.0, up, sizeof up);
    printf("%-13s %s\n", "uptime:", up);
    printf("%-13s %s\n", "graceful:", json_bool(json_get(j, "graceful"), false) ? "on" : "off");
    const char *v = json_string(json_get(j, "version"));
    printf("%-13s %s\n", "grace:", v ? v : "?");
    print_servers(j);
    fflush(stdout);
}

/* GET base/action (base from --url) within the timeout (dflt unless
 * --timeout): CTL_OK with *r, or what no_answer() made of it (url is
 * named). */
static int admin_get(const ctl_target_t *t, const char *action, double dflt, char *base,
                     size_t base_cap, char *url, size_t url_cap, http_reply_t *r)
{
    int code;
    if (admin_base(t, base, base_cap, &code) == NULL)
        return code;
    http_action_url(base, action, NULL, url, url_cap);
    http_opts_t o = {t->token, t->cacert, timeout_or(t, dflt), NULL, NULL};
    code = http_get(url, &o, r);
    return code == CTL_OK ? CTL_OK : no_answer(url, code, r, o.timeout_s);
}

int remote_status(const ctl_target_t *t)
{
    char base[4096], url[4200];
    http_reply_t r;
    int code = admin_get(t, "status", CTL_STATUS_TIMEOUT_S, base, sizeof base, url, sizeof url, &r);
    if (code != CTL_OK)
        return code;
    json_t *j = r.status == 200 ? json_parse(r.body, r.body_len) : NULL;
    if (j && json_is_number(json_get(j, "pid"))) {
        print_status(j);
    } else if (r.status == 200) {
        ui_line(stderr, "gracectl: %s did not answer with grace's JSON status", url);
        code = CTL_FAILED;
    } else {
        long pid;
        char msg[700];
        code = admin_answer(&r, &pid, msg, sizeof msg);
        ui_line(stderr, "gracectl: %s: %s", url, msg);
    }
    json_free(j);
    http_reply_free(&r);
    return code;
}

/* ---- restart, shutdown ---------------------------------------------------------- */

static void tick(void *user)
{
    ui_wait_tick(user);
}

int remote_restart(const ctl_target_t *t)
{
    char base[4096], url[4096 + 3 * 4096 + 64];
    int code;
    if (admin_base(t, base, sizeof base, &code) == NULL)
        return code;
    if (http_action_url(base, "restart", t->exe, url, sizeof url) != CTL_OK) {
        ui_line(stderr, "gracectl: --exe is too long");
        return CTL_USAGE;
    }
    ui_wait_t w;
    ui_wait_begin(&w, true, "restarting %s ...", base);
    http_opts_t o = {t->token, t->cacert, timeout_or(t, CTL_DEFAULT_TIMEOUT_S), tick, &w};
    http_reply_t r;
    code = http_get(url, &o, &r);
    ui_wait_end(&w);
    if (code != CTL_OK) {
        no_answer(base, code, &r, o.timeout_s);
        if (code == CTL_FAILED)
            ui_line(stderr, "gracectl: the restart may still be under way: see the program's log");
        return code;
    }
    long pid;
    char msg[700];
    code = admin_answer(&r, &pid, msg, sizeof msg);
    http_reply_free(&r);
    if (code == CTL_OK && pid <= 0)
        snprintf(msg, sizeof msg, "restarting (full restart)");
    ui_line(code == CTL_OK ? stdout : stderr, "%s%s", code == CTL_OK ? "" : "gracectl: ", msg);
    return code;
}

/* After "shutting down": wait until nothing accepts connections at base. A
 * draining master still holds its listening sockets without accepting, so
 * a status request that gets no answer in a second proves nothing; only a
 * refused connection does. */
static int wait_stopped(const ctl_target_t *t, const char *base)
{
    char url[4200];
    http_action_url(base, "status", NULL, url, sizeof url);
    double limit = timeout_or(t, CTL_DEFAULT_TIMEOUT_S);
    ui_wait_t w;
    ui_wait_begin(&w, true, "waiting for %s to stop ...", base);
    http_opts_t o = {t->token, t->cacert, 1.0, tick, &w};
    for (;;) {
        http_reply_t r;
        http_get(url, &o, &r);
        http_reply_free(&r);
        double took = ui_wait_elapsed(&w);
        if (r.refused || took >= limit) {
            ui_wait_end(&w);
            if (!r.refused) {
                ui_line(stderr, "gracectl: %s still accepts connections %g s later", base, limit);
                return CTL_FAILED;
            }
            char d[32];
            ui_duration(took, d, sizeof d);
            ui_line(stdout, "shut down: %s accepts no more connections (after %s)", base, d);
            return CTL_OK;
        }
        ui_wait_tick(&w);
        ui_sleep(0.1);
    }
}

int remote_shutdown(const ctl_target_t *t)
{
    char base[4096], url[4200];
    http_reply_t r;
    int code =
        admin_get(t, "shutdown", CTL_DEFAULT_TIMEOUT_S, base, sizeof base, url, sizeof url, &r);
    if (code != CTL_OK)
        return code;
    long pid;
    char msg[700];
    code = admin_answer(&r, &pid, msg, sizeof msg);
    http_reply_free(&r);
    if (code != CTL_OK) {
        ui_line(stderr, "gracectl: %s", msg);
        return code;
    }
    ui_line(stdout, "shutting down: %s", base);
    return wait_stopped(t, base);
}
