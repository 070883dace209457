/*
 * rolling.c -- gracectl rolling-restart: restart a fleet through each
 * node's admin URL, one node at a time (or --parallel N at a time).
 *
 * For each node: GET PATTERN/status (the old PID), GET PATTERN/restart
 * (which answers once the outcome is known), then wait until the node's
 * status answers from the new process -- its PID is the one the restart
 * named, or it started after the restart was asked for (a master with
 * several children answers from any of them) -- and the health check
 * passes (--health PATH on the node's origin must answer 200; by default
 * the status answering is the check). A 503 (refused for now: a restart
 * still running, max_draining) is retried after its Retry-After while the
 * node's --timeout lasts. The first node that fails stops the run: nodes
 * not yet started stay untouched, nodes already under way (--parallel)
 * finish. A summary table follows.
 *
 * Threads: with --parallel N > 1, N workers take the next node under the
 * fleet's lock; each node's record is written by the one worker running it
 * and read by main() after every worker has been joined.
 */
#include "gracectl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { NODE_WAITING, NODE_RUNNING, NODE_OK, NODE_FAILED };

typedef struct {
    char base[4096]; /* the admin base URL */
    long old_pid, new_pid;
    double seconds;
    int state;
    char why[700];
} node_t;

typedef struct {
    const rolling_opts_t *o;
    node_t *nodes;
    size_t n;
    pthread_mutex_t mu;
    size_t next; /* the next node to start */
    bool stop;   /* a node failed: start no more */
} fleet_t;

typedef struct {
    const fleet_t *f;
    node_t *nd;
    size_t i;
    double deadline; /* of this node, ui_now() seconds */
    bool live;       /* progress may be redrawn in place */
} run_t;

static void tick(void *user)
{
    ui_wait_tick(user);
}

static double left_of(const run_t *r)
{
    return r->deadline - ui_now();
}

/* GET status: the answering process's PID and uptime. */
static int node_status(const run_t *r, double timeout_s, long *pid, double *uptime_s, char *why,
                       size_t cap)
{
    char url[4200];
    http_action_url(r->nd->base, "status", NULL, url, sizeof url);
    http_opts_t o = {r->f->o->token, r->f->o->cacert, timeout_s, NULL, NULL};
    http_reply_t rep;
    int code = http_get(url, &o, &rep);
    json_t *j = code == CTL_OK && rep.status == 200 ? json_parse(rep.body, rep.body_len) : NULL;
    if (code != CTL_OK) {
        snprintf(why, cap, "status: %s", rep.error);
    } else if (!json_is_number(json_get(j, "pid"))) {
        long ignored;
        char msg[600];
        code = admin_answer(&rep, &ignored, msg, sizeof msg);
        snprintf(why, cap, "status: %s", code == CTL_OK ? "not grace's JSON status" : msg);
        code = code == CTL_OK ? CTL_FAILED : code;
    } else {
        *pid = (long)json_number(json_get(j, "pid"), 0);
        *uptime_s = json_number(json_get(j, "uptime_ms"), 0) / 1000.0;
    }
    json_free(j);
    http_reply_free(&rep);
    return code;
}

/* GET restart, again after Retry-After while the node's time lasts. */
static int node_restart(const run_t *r)
{
    char url[4096 + 3 * 4096 + 64];
    if (http_action_url(r->nd->base, "restart", r->f->o->exe, url, sizeof url) != CTL_OK) {
        snprintf(r->nd->why, sizeof r->nd->why, "the URL with --exe is too long");
        return CTL_USAGE;
    }
    for (;;) {
        ui_wait_t w;
        ui_wait_begin(&w, r->live, "[%zu/%zu] %s: restarting ...", r->i + 1, r->f->n, r->nd->base);
        http_opts_t o = {r->f->o->token, r->f->o->cacert, left_of(r), tick, &w};
        http_reply_t rep;
        int code = o.timeout_s > 0 ? http_get(url, &o, &rep) : CTL_FAILED;
        ui_wait_end(&w);
        if (o.timeout_s <= 0 || code != CTL_OK) {
            snprintf(r->nd->why, sizeof r->nd->why, "restart: %s",
                     o.timeout_s > 0 ? rep.error : "no time left");
            return code;
        }
        code = admin_answer(&rep, &r->nd->new_pid, r->nd->why, sizeof r->nd->why);
        int after = rep.retry_after_s > 0 ? rep.retry_after_s : 1;
        http_reply_free(&rep);
        if (code != CTL_BUSY || left_of(r) <= after)
            return code;
        ui_line(stderr, "[%zu/%zu] %s: %s; trying again in %d s", r->i + 1, r->f->n, r->nd->base,
                r->nd->why, after);
        ui_sleep(after);
    }
}

/* GET --health on the node's origin: 200 or why not (no token: the probe
 * needs none, and it may be another server's route). */
static bool node_healthy(const run_t *r, double timeout_s, char *why, size_t cap)
{
    char url[4200];
    if (http_with_path(r->nd->base, r->f->o->health, url, sizeof url) != CTL_OK) {
        snprintf(why, cap, "health: cannot make a URL of %s", r->f->o->health);
        return false;
    }
    http_opts_t o = {NULL, r->f->o->cacert, timeout_s, NULL, NULL};
    http_reply_t rep;
    bool ok = http_get(url, &o, &rep) == CTL_OK && rep.status == 200;
    if (!ok && rep.status)
        snprintf(why, cap, "health: %.300s answered %ld", url, rep.status);
    else if (!ok)
        snprintf(why, cap, "health: %.300s: %s", url, rep.error);
    http_reply_free(&rep);
    return ok;
}

/* Until the status answers from the new process and the health check
 * passes, or the node's time is up. began: when the restart was asked. */
static int node_wait_ready(const run_t *r, double began)
{
    char why[700] = "no answer yet";
    ui_wait_t w;
    ui_wait_begin(&w, r->live, "[%zu/%zu] %s: waiting until it serves and is healthy ...", r->i + 1,
                  r->f->n, r->nd->base);
    int code = CTL_FAILED;
    for (double left; code != CTL_OK && (left = left_of(r)) > 0;) {
        long pid = 0;
        double uptime = 0, t = left < 5 ? left : 5;
        bool up = node_status(r, t, &pid, &uptime, why, sizeof why) == CTL_OK;
        if (up && pid != r->nd->new_pid && uptime > ui_now() - began) {
            snprintf(why, sizeof why, "the status still answers from pid %ld", pid);
            up = false;
        }
        if (up && r->f->o->health && !node_healthy(r, t, why, sizeof why))
            up = false;
        if (up) {
            code = CTL_OK;
            r->nd->new_pid = r->nd->new_pid > 0 ? r->nd->new_pid : pid;
        } else {
            ui_wait_tick(&w);
            ui_sleep(0.1);
        }
    }
    ui_wait_end(&w);
    if (code != CTL_OK)
        snprintf(r->nd->why, sizeof r->nd->why, "not ready within %g s: %s", r->f->o->timeout_s,
                 why);
    return code;
}

static bool run_node(fleet_t *f, size_t i)
{
    node_t *nd = &f->nodes[i];
    double start = ui_now();
    run_t r = {f, nd, i, start + f->o->timeout_s, f->o->parallel == 1};
    double uptime;
    int code = node_status(&r, f->o->timeout_s < 10 ? f->o->timeout_s : 10, &nd->old_pid, &uptime,
                           nd->why, sizeof nd->why);
    if (code == CTL_OK) {
        ui_line(stderr, "[%zu/%zu] %s: pid %ld, restarting", i + 1, f->n, nd->base, nd->old_pid);
        double began = ui_now();
        code = node_restart(&r);
        if (code == CTL_OK)
            code = node_wait_ready(&r, began);
    }
    nd->seconds = ui_now() - start;
    nd->state = code == CTL_OK ? NODE_OK : NODE_FAILED;
    if (code == CTL_OK)
        ui_line(stderr, "[%zu/%zu] %s: restarted: new pid %ld, serving%s after %.2f s", i + 1, f->n,
                nd->base, nd->new_pid, f->o->health ? " and healthy" : "", nd->seconds);
    else
        ui_line(stderr, "[%zu/%zu] %s: FAILED after %.2f s: %s", i + 1, f->n, nd->base, nd->seconds,
                nd->why);
    return code == CTL_OK;
}

static void *worker(void *arg)
{
    fleet_t *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        size_t i = f->next;
        bool go = !f->stop && i < f->n;
        if (go)
            f->nodes[f->next++].state = NODE_RUNNING;
        pthread_mutex_unlock(&f->mu);
        if (!go)
            return NULL;
        if (!run_node(f, i)) {
            pthread_mutex_lock(&f->mu);
            f->stop = true;
            pthread_mutex_unlock(&f->mu);
        }
    }
}

/* ---- the summary ----------------------------------------------------------------- */

static void print_summary(const fleet_t *f)
{
    int w = 4;
    for (size_t i = 0; i < f->n; i++) {
        int len = (int)strlen(f->nodes[i].base);
        w = len > w ? len : w;
    }
    printf("\n%-*s  %8s  %8s  %7s  %s\n", w, "node", "old pid", "new pid", "seconds", "result");
    for (size_t i = 0; i < f->n; i++) {
        const node_t *nd = &f->nodes[i];
        char old[24] = "-", new[24] = "-", secs[24] = "-";
        if (nd->old_pid > 0)
            snprintf(old, sizeof old, "%ld", nd->old_pid);
        if (nd->state == NODE_OK)
            snprintf(new, sizeof new, "%ld", nd->new_pid);
        if (nd->state != NODE_WAITING)
            snprintf(secs, sizeof secs, "%.2f", nd->seconds);
        printf("%-*s  %8s  %8s  %7s  %s%s\n", w, nd->base, old, new, secs,
               nd->state == NODE_OK       ? "restarted"
               : nd->state == NODE_FAILED ? "FAILED: "
                                          : "not restarted",
               nd->state == NODE_FAILED ? nd->why : "");
    }
    fflush(stdout);
}

/* The first failed node (index), or f->n if none failed. */
static size_t first_failure(const fleet_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->nodes[i].state == NODE_FAILED)
            return i;
    return f->n;
}

static int verdict(const fleet_t *f, double seconds)
{
    size_t bad = first_failure(f), untouched = 0;
    for (size_t i = 0; i < f->n; i++)
        untouched += f->nodes[i].state == NODE_WAITING;
    if (bad == f->n) {
        printf("all %zu node%s restarted in %.2f s\n", f->n, f->n == 1 ? "" : "s", seconds);
        return CTL_OK;
    }
    ui_line(stderr,
            "gracectl: rolling restart stopped at node %zu of %zu (%s): %s; %zu node%s not "
            "restarted",
            bad + 1, f->n, f->nodes[bad].base, f->nodes[bad].why, untouched,
            untouched == 1 ? "" : "s");
    return CTL_FAILED;
}

/* ---- entry ------------------------------------------------------------------------- */

static void run_all(fleet_t *f)
{
    size_t n_threads = (size_t)f->o->parallel < f->n ? (size_t)f->o->parallel : f->n;
    if (n_threads <= 1) {
        worker(f);
        return;
    }
    pthread_t *t = calloc(n_threads, sizeof *t);
    size_t started = 0;
    while (t && started < n_threads && pthread_create(&t[started], NULL, worker, f) == 0)
        started++;
    if (started == 0)
        worker(f); /* no thread to be had: one at a time */
    for (size_t i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
}

int rolling_restart(const rolling_opts_t *o)
{
    fleet_t f = {.o = o, .n = o->n_urls, .mu = PTHREAD_MUTEX_INITIALIZER};
    f.nodes = calloc(o->n_urls, sizeof *f.nodes);
    if (f.nodes == NULL)
        return CTL_FAILED;
    for (size_t i = 0; i < f.n; i++) {
        char why[600];
        if (http_admin_base(o->urls[i], f.nodes[i].base, sizeof f.nodes[i].base, why, sizeof why) !=
            CTL_OK) {
            ui_line(stderr, "gracectl rolling-restart: node %zu: %s", i + 1, why);
            free(f.nodes);
            return CTL_USAGE;
        }
    }
    double start = ui_now();
    run_all(&f);
    print_summary(&f);
    int code = verdict(&f, ui_now() - start);
    free(f.nodes);
    return code;
}
