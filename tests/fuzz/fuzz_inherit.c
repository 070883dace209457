/*
 * fuzz_inherit.c -- libFuzzer harness for the inherited-socket protocol's
 * pure parsers and formatters (src/inherit.c): grace__listen_fds_parse /
 * _format (GRACE_LISTEN_FDS) and grace__drainers_parse / _format
 * (GRACE_DRAINING).
 *
 * Input: one configuration byte, then the variable's value.
 *   bit 0-3  cap, the entry array's size for the capped parse: 0..15
 * The value is what getenv() would return: the bytes up to the first NUL,
 * in a heap block of exactly that length + 1, so ASan catches any read past
 * the terminator. Both parsers read the same value.
 *
 * Invariants checked (abort on failure, so libFuzzer keeps the input):
 *   - counts: 0 <= n <= cap; at most one entry per line (GRACE_LISTEN_FDS)
 *     or per comma-separated item (GRACE_DRAINING); entries past n are not
 *     written; the capped parse gives exactly the first entries of a parse
 *     with room for all;
 *   - listen entries are well formed: 0 <= fd <= INT32_MAX; spec and name
 *     NUL-terminated inside their arrays; spec non-empty; neither holds '|'
 *     or '\n'; taken is false;
 *   - drainer entries: 1 <= pid <= INT32_MAX, 1 <= start <= INT64_MAX,
 *     deadline_ms and timeout_ms in 0..INT64_MAX;
 *   - round trips: format accepts every parsed entry, and parsing what it
 *     wrote gives the same entries again (the same count, fd, spec and name;
 *     the same four numbers), and formatting those gives the same text.
 *
 * inherit.c's constructor reads the real environment when the harness
 * starts; with no GRACE_* variables set it does nothing.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BIG = 2048 }; /* more than any input of -max_len 4096 can hold */

static grace__inherited_t fds_all[BIG], fds_cap[16], fds_again[BIG];
static grace__drainer_t dr_all[BIG], dr_cap[16], dr_again[BIG];

static size_t count_byte(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

static bool untouched(const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++)
        if (b[i] != 0xa5)
            return false;
    return true;
}

/* ---- GRACE_LISTEN_FDS ------------------------------------------------------------ */

static void check_listen_entry(const grace__inherited_t *e)
{
    CHECK(e->fd >= 0 && e->fd <= INT32_MAX);
    CHECK(memchr(e->spec, '\0', sizeof e->spec) != NULL);
    CHECK(memchr(e->name, '\0', sizeof e->name) != NULL);
    CHECK(e->spec[0] != '\0');
    CHECK(strpbrk(e->spec, "|\n") == NULL && strpbrk(e->name, "|\n") == NULL);
    CHECK(!e->taken);
}

static bool same_listen(const grace__inherited_t *a, const grace__inherited_t *b)
{
    return a->fd == b->fd && strcmp(a->spec, b->spec) == 0 && strcmp(a->name, b->name) == 0 &&
           a->taken == b->taken;
}

/* Format entries e[0..n) into b; every parsed entry must be accepted. */
static void format_listen(grace__buf_t *b, const grace__inherited_t *e, int n)
{
    b->len = 0;
    for (int i = 0; i < n; i++)
        CHECK(grace__listen_fds_format(b, e[i].fd, e[i].spec, e[i].name) == 0);
    CHECK(grace__buf_append(b, "", 1) == 0); /* NUL-terminate, for the parser */
}

static void listen_fds(const char *env, int cap)
{
    memset(fds_cap, 0xa5, sizeof fds_cap);
    const int n = grace__listen_fds_parse(env, fds_cap, cap);
    CHECK(n >= 0 && n <= cap);
    CHECK(
        untouched(&fds_cap[n], (sizeof fds_cap / sizeof fds_cap[0] - (size_t)n) * sizeof *fds_cap));

    const int n_all = grace__listen_fds_parse(env, fds_all, BIG);
    CHECK(n_all >= 0 && n_all < BIG);
    CHECK((size_t)n_all <= count_byte(env, '\n') + 1);
    CHECK(n == (n_all < cap ? n_all : cap));
    for (int i = 0; i < n_all; i++) {
        check_listen_entry(&fds_all[i]);
        if (i < n)
            CHECK(same_listen(&fds_cap[i], &fds_all[i]));
    }

    /* Round trip: format, parse again, format again. */
    grace__buf_t text = {0}, text2 = {0};
    format_listen(&text, fds_all, n_all);
    const int n_again = grace__listen_fds_parse(text.ptr, fds_again, BIG);
    CHECK(n_again == n_all);
    for (int i = 0; i < n_all; i++)
        CHECK(same_listen(&fds_again[i], &fds_all[i]));
    format_listen(&text2, fds_again, n_again);
    CHECK(text2.len == text.len && memcmp(text2.ptr, text.ptr, text.len) == 0);
    grace__buf_free(&text);
    grace__buf_free(&text2);
}

/* ---- GRACE_DRAINING ------------------------------------------------------------- */

static void check_drainer(const grace__drainer_t *d)
{
    CHECK(d->pid >= 1 && d->pid <= INT32_MAX);
    CHECK(d->start >= 1 && d->start <= (unsigned long long)INT64_MAX);
    CHECK(d->deadline_ms >= 0 && d->timeout_ms >= 0);
}

static bool same_drainer(const grace__drainer_t *a, const grace__drainer_t *b)
{
    return a->pid == b->pid && a->start == b->start && a->deadline_ms == b->deadline_ms &&
           a->timeout_ms == b->timeout_ms;
}

static void format_drainers(grace__buf_t *b, const grace__drainer_t *d, int n)
{
    b->len = 0;
    CHECK(grace__drainers_format(b, d, n) == 0);
    CHECK(grace__buf_append(b, "", 1) == 0);
}

static void drainers(const char *env, int cap)
{
    memset(dr_cap, 0xa5, sizeof dr_cap);
    const int n = grace__drainers_parse(env, dr_cap, cap);
    CHECK(n >= 0 && n <= cap);
    CHECK(untouched(&dr_cap[n], (sizeof dr_cap / sizeof dr_cap[0] - (size_t)n) * sizeof *dr_cap));

    const int n_all = grace__drainers_parse(env, dr_all, BIG);
    CHECK(n_all >= 0 && n_all < BIG);
    CHECK((size_t)n_all <= count_byte(env, ',') + 1);
    CHECK(n == (n_all < cap ? n_all : cap));
    for (int i = 0; i < n_all; i++) {
        check_drainer(&dr_all[i]);
        if (i < n)
            CHECK(same_drainer(&dr_cap[i], &dr_all[i]));
    }

    grace__buf_t text = {0}, text2 = {0};
    format_drainers(&text, dr_all, n_all);
    const int n_again = grace__drainers_parse(text.ptr, dr_again, BIG);
    CHECK(n_again == n_all);
    for (int i = 0; i < n_all; i++)
        CHECK(same_drainer(&dr_again[i], &dr_all[i]));
    format_drainers(&text2, dr_again, n_again);
    CHECK(text2.len == text.len && memcmp(text2.ptr, text.ptr, text.len) == 0);
    grace__buf_free(&text);
    grace__buf_free(&text2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) /* BIG entries always hold all of them */
        return 0;
    const int cap = data[0] & 15;
    const uint8_t *nul = memchr(data + 1, '\0', size - 1);
    const size_t len = (size_t)((nul ? nul : data + size) - (data + 1));
    char *env = malloc(len + 1);
    memcpy(env, data + 1, len);
    env[len] = '\0';

    listen_fds(env, cap);
    drainers(env, cap);
    free(env);
    return 0;
}
