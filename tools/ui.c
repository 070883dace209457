/*
 * ui.c -- what gracectl shows while it works: whole lines, and progress
 * while it waits (a restart's outcome, a node's health).
 *
 * Results go to stdout, progress and errors to stderr. On a terminal a wait
 * is one stderr line redrawn in place ("\r" and erase-to-end) with the time
 * elapsed; elsewhere (a pipe, a CI log) nothing is redrawn: a plain line
 * every 5 s, so a short wait prints nothing and a long one shows it is
 * alive. One lock serialises every line, so the threads of a parallel
 * rolling restart never interleave within a line; they never draw live.
 */
#include "gracectl.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { LINE_EVERY_S = 5 };

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static bool line_drawn; /* a live progress line is on the terminal now */

double ui_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ui_sleep(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void ui_duration(double s, char *out, size_t cap)
{
    long t = (long)s;
    if (s < 60)
        snprintf(out, cap, "%.1f s", s);
    else if (t < 3600)
        snprintf(out, cap, "%ld min %02ld s", t / 60, t % 60);
    else if (t < 86400)
        snprintf(out, cap, "%ld h %02ld min", t / 3600, t / 60 % 60);
    else
        snprintf(out, cap, "%ld d %02ld h", t / 86400, t / 3600 % 24);
}

/* Called with out_mu held. */
static void clear_drawn(void)
{
    if (line_drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        line_drawn = false;
    }
}

void ui_line(FILE *f, const char *fmt, ...)
{
    pthread_mutex_lock(&out_mu);
    clear_drawn();
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&out_mu);
}

void ui_wait_begin(ui_wait_t *w, bool live_ok, const char *fmt, ...)
{
    memset(w, 0, sizeof *w);
    w->start = ui_now();
    w->next_line = w->start + LINE_EVERY_S;
    w->live = live_ok && isatty(STDERR_FILENO);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->what, sizeof w->what, fmt, ap);
    va_end(ap);
    ui_wait_tick(w);
}

double ui_wait_elapsed(const ui_wait_t *w)
{
    return ui_now() - w->start;
}

void ui_wait_tick(ui_wait_t *w)
{
    double now = ui_now();
    char took[32];
    ui_duration(now - w->start, took, sizeof took);
    if (w->live) {
        if (w->drawn > 0 && now - w->drawn < 0.1)
            return; /* a tenth of a second is as fine as a person reads */
        w->drawn = now;
        pthread_mutex_lock(&out_mu);
        fprintf(stderr, "\r\033[K%s %s", w->what, took);
        fflush(stderr);
        line_drawn = true;
        pthread_mutex_unlock(&out_mu);
    } else if (now >= w->next_line) {
        w->next_line += LINE_EVERY_S;
        ui_line(stderr, "%s %s", w->what, took);
    }
}

void ui_wait_end(ui_wait_t *w)
{
    if (!w->live)
        return;
    pthread_mutex_lock(&out_mu);
    clear_drawn();
    pthread_mutex_unlock(&out_mu);
}
