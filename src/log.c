/*
 * log.c -- gf-shaped log lines, errors, version and clocks.
 *
 * A log line is "YYYY-MM-DD HH:MM:SS.mmm PID: message" (SPEC S5), local time,
 * written with a single write(2) to stderr so that lines from many threads,
 * and from old and new processes during a restart, never interleave.
 * Client mistakes are logged once with a short printable sample of the
 * offending bytes (STYLE.md 3).
 */
#include "internal.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

unsigned grace_version(void)
{
    return GRACE_VERSION_HEX;
}

#define GRACE_STR2_(x) #x
#define GRACE_STR_(x) GRACE_STR2_(x)
const char *grace_version_string(void)
{
    return GRACE_STR_(GRACE_VERSION_MAJOR) "." GRACE_STR_(GRACE_VERSION_MINOR) "." GRACE_STR_(
        GRACE_VERSION_PATCH);
}

/* Every system entry is exactly -errno; grace's own sit at -1000 and below,
 * clear of every errno. */
#define GRACE_CHECK_SYS_(name, val, text) static_assert((val) == -name, "GRACE_" #name " != -" #name);
GRACE_ERRNO_SYS_MAP(GRACE_CHECK_SYS_)
#undef GRACE_CHECK_SYS_
#define GRACE_CHECK_OWN_(name, val, text) static_assert((val) <= -1000, "GRACE_" #name " not in grace's range");
GRACE_ERRNO_OWN_MAP(GRACE_CHECK_OWN_)
#undef GRACE_CHECK_OWN_

const char *grace_strerror(int err)
{
    switch (err) {
#define XX(name, val, text)                                                                        \
    case val:                                                                                      \
        return text;
        GRACE_ERRNO_MAP(XX)
#undef XX
    default:
        break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc's table is static and thread-safe for known codes */
    return "unknown error";
}

const char *grace_err_name(int err)
{
    switch (err) {
#define XX(name, val, text)                                                                        \
    case val:                                                                                      \
        return #name;
        GRACE_ERRNO_MAP(XX)
#undef XX
    default:
        return "UNKNOWN";
    }
}

int64_t grace__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void grace__http_date(char out[32])
{
    /* Each thread formats the date at most once a second: no lock, no
     * shared cache line on the request path. */
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof cached, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_sec = ts.tv_sec;
    }
    memcpy(out, cached, sizeof cached);
}

size_t grace__log_format(char *out, size_t cap, const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %ld: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, (long)getpid());
    if (n < 0 || (size_t)n >= cap)
        return 0;
    int m = vsnprintf(out + n, cap - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > cap - 2)
        len = cap - 2; /* truncated: still end the line */
    out[len++] = '\n';
    out[len] = '\0';
    return len;
}

void grace_log(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    size_t len = grace__log_format(line, sizeof line, fmt, ap);
    va_end(ap);
    const char *p = line;
    while (len > 0) {
        ssize_t w = write(STDERR_FILENO, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to log to: nothing better to do */
        p += w;
        len -= (size_t)w;
    }
}

size_t grace__printable(char *out, size_t cap, const char *data, size_t len, char repl)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)data[i];
        out[n++] = (ch >= 0x20 && ch < 0x7f && ch != '"') ? (char)ch : repl;
    }
    out[n] = '\0';
    return n;
}

void grace__log_bad_input(const char *client_ip, int status, const char *why, const char *data,
                          size_t len)
{
    char sample[65];
    size_t n = grace__printable(sample, sizeof sample, data, len, '.');
    if (status == 0) /* nothing can be answered: the connection just closes */
        grace_log("bad request from %s: %s, closed, input \"%s\"%s", client_ip, why, sample,
                  len > n ? "..." : "");
    else
        grace_log("bad request from %s: %d %s, input \"%s\"%s", client_ip, status, why, sample,
                  len > n ? "..." : "");
}
