/*
 * test_inherit.c -- unit tests of the inherited-socket protocol's pure
 * parsers and formatters (src/inherit.c): GRACE_LISTEN_FDS
 * (grace__listen_fds_parse / _format) and GRACE_DRAINING
 * (grace__drainers_parse / _format), one table per variable: valid entries,
 * every kind of malformed entry (skipped, the rest still read), the cap, and
 * round trips through the formatters.
 *
 * Each value is placed so that its terminating NUL is the last byte before
 * an inaccessible page (guard_put), so a read past the end faults. A crash
 * or an invariant failure found by tests/fuzz/fuzz_inherit.c becomes a row
 * of these tables (tests/fuzz/README.md).
 */
#include "internal.h"
#include "test.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Guard page ------------------------------------------------------------- */

enum { GUARD_PAGES = 4 };
static char *guard_area;
static size_t guard_size;

/* s, NUL included, ending right before a PROT_NONE page. */
static const char *guard_put(const char *s)
{
    if (guard_area == NULL) {
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        guard_size = GUARD_PAGES * page;
        guard_area = mmap(NULL, guard_size + page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guard_area == MAP_FAILED || mprotect(guard_area + guard_size, page, PROT_NONE) != 0) {
            perror("guard page");
            exit(2);
        }
    }
    const size_t len = strlen(s) + 1;
    if (len > guard_size) {
        fprintf(stderr, "value of %zu bytes too large for the guard area\n", len);
        exit(2);
    }
    char *p = guard_area + guard_size - len;
    memcpy(p, s, len);
    return p;
}

/* A string of n copies of c (n < 200), in a static buffer of its own. */
static const char *rep(char c, size_t n, char buf[200])
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* ---- GRACE_LISTEN_FDS: parse ------------------------------------------------ */

typedef struct {
    int fd;
    const char *spec, *name;
} fd_entry_t;

typedef struct {
    const char *env;
    int n;
    fd_entry_t want[3];
} listen_case_t;

static const listen_case_t listen_cases[] = {
    /* Valid. */
    {"3|:8199|web", 1, {{3, ":8199", "web"}}},
    {"3|:8199|web\n", 1, {{3, ":8199", "web"}}},
    {"0|127.0.0.1:80|a", 1, {{0, "127.0.0.1:80", "a"}}},
    {"3|:8199|web\n4|[::1]:8200|admin\n", 2, {{3, ":8199", "web"}, {4, "[::1]:8200", "admin"}}},
    {"3|:80|", 1, {{3, ":80", ""}}}, /* an empty name is a name */
    {"007|:80|x", 1, {{7, ":80", "x"}}},
    {"999999999|:80|x", 1, {{999999999, ":80", "x"}}},
    {"2147483647|:80|x", 1, {{INT32_MAX, ":80", "x"}}}, /* the largest fd format writes */
    {"3|a b|c d", 1, {{3, "a b", "c d"}}},
    {"3|:80|web\r", 1, {{3, ":80", "web\r"}}}, /* only '\n' ends a line */
    {"\n\n3|:80|x\n\n", 1, {{3, ":80", "x"}}}, /* empty lines skipped */
    /* Malformed lines are skipped; the lines after them still count. */
    {"", 0, {{0}}},
    {"\n", 0, {{0}}},
    {"|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},            /* no fd digits */
    {"x|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},           /* not a number */
    {"-3|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},          /* no sign */
    {"+3|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},          /* no sign */
    {" 3|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},          /* no space */
    {"3 |:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},          /* no space */
    {"3a|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},          /* digits only */
    {"2147483648|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},  /* fd past INT32_MAX */
    {"9999999999|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}},  /* fd past INT32_MAX */
    {"00000000003|:80|x\n5|:81|y", 1, {{5, ":81", "y"}}}, /* more than 10 digits */
    {"3\n5|:81|y", 1, {{5, ":81", "y"}}},                 /* no '|' */
    {"3|:80\n5|:81|y", 1, {{5, ":81", "y"}}},             /* one '|' */
    {"3:80:x\n5|:81|y", 1, {{5, ":81", "y"}}},            /* wrong separator */
    {"3||x\n5|:81|y", 1, {{5, ":81", "y"}}},              /* empty spec */
    {"3|:80|x|y\n5|:81|y", 1, {{5, ":81", "y"}}},         /* '|' in the name */
    {"3|:80|x\n3|:80|x|\n3|:80||", 1, {{3, ":80", "x"}}}, /* '|' in the name */
    {"3|:80|x\n", 1, {{3, ":80", "x"}}},
};

static bool same_fd(const grace__inherited_t *e, const fd_entry_t *w)
{
    return e->fd == w->fd && strcmp(e->spec, w->spec) == 0 && strcmp(e->name, w->name) == 0 &&
           !e->taken;
}

static void test_listen_fds_parse_table(void)
{
    for (size_t i = 0; i < sizeof listen_cases / sizeof listen_cases[0]; i++) {
        const listen_case_t *c = &listen_cases[i];
        grace__inherited_t out[4];
        memset(out, 0xa5, sizeof out);
        const int n = grace__listen_fds_parse(guard_put(c->env), out, 4);
        if (n != c->n) {
            TEST_FAIL_("listen case %zu: %d entries, want %d", i, n, c->n);
            continue;
        }
        for (int k = 0; k < n; k++)
            if (!same_fd(&out[k], &c->want[k]))
                TEST_FAIL_("listen case %zu entry %d: got %d|%.80s|%.64s", i, k, out[k].fd,
                           out[k].spec, out[k].name);
        /* Entries past the count are not written. */
        const unsigned char *rest = (const unsigned char *)&out[n];
        for (size_t b = 0; b < (4 - (size_t)n) * sizeof out[0]; b++)
            if (rest[b] != 0xa5) {
                TEST_FAIL_("listen case %zu: wrote past entry %d", i, n);
                break;
            }
    }
    EXPECT_EQ(grace__listen_fds_parse(NULL, NULL, 4), 0); /* the variable is not set */
}

/* The spec holds up to 79 bytes and the name up to 63 (the arrays keep
 * their NUL); one more and the line is skipped. */
static void test_listen_fds_parse_lengths(void)
{
    char spec[200], name[200], spec_long[200], name_long[200], env[600];
    rep('s', 79, spec);
    rep('n', 63, name);
    rep('s', 80, spec_long);
    rep('n', 64, name_long);
    grace__inherited_t out[4];

    snprintf(env, sizeof env, "3|%s|%s", spec, name);
    EXPECT_EQ(grace__listen_fds_parse(guard_put(env), out, 4), 1);
    EXPECT_TRUE(strcmp(out[0].spec, spec) == 0 && strcmp(out[0].name, name) == 0);
    EXPECT_EQ(out[0].spec[79], '\0');
    EXPECT_EQ(out[0].name[63], '\0');

    snprintf(env, sizeof env, "3|%s|x\n4|:80|y", spec_long);
    EXPECT_EQ(grace__listen_fds_parse(guard_put(env), out, 4), 1);
    EXPECT_EQ(out[0].fd, 4);
    snprintf(env, sizeof env, "3|:80|%s\n4|:80|y", name_long);
    EXPECT_EQ(grace__listen_fds_parse(guard_put(env), out, 4), 1);
    EXPECT_EQ(out[0].fd, 4);
}

/* At most cap entries; skipped lines do not use up the cap. */
static void test_listen_fds_parse_cap(void)
{
    const char *env = guard_put("bad\n3|:80|a\nbad\n4|:81|b\n5|:82|c\n");
    grace__inherited_t out[4];
    for (int cap = 0; cap <= 4; cap++) {
        memset(out, 0xa5, sizeof out);
        const int n = grace__listen_fds_parse(env, out, cap);
        EXPECT_EQ(n, cap < 3 ? cap : 3);
        for (int k = 0; k < n; k++)
            EXPECT_EQ(out[k].fd, 3 + k);
        if (cap < 4)
            EXPECT_EQ(((unsigned char *)&out[cap])[0], 0xa5);
    }
}

/* ---- GRACE_LISTEN_FDS: format ------------------------------------------------- */

static void test_listen_fds_format(void)
{
    char spec[200], name[200];
    grace__buf_t b = {0};
    EXPECT_EQ(grace__listen_fds_format(&b, 3, ":8199", "web"), 0);
    EXPECT_EQ(grace__listen_fds_format(&b, 4, "127.0.0.1:80", ""), 0);
    EXPECT_EQ(grace__listen_fds_format(&b, INT32_MAX, "[::1]:80", "x"), 0);
    EXPECT_STRN(b.ptr, b.len, "3|:8199|web\n4|127.0.0.1:80|\n2147483647|[::1]:80|x\n");

    /* Refused, and nothing appended: what the parser would skip or split. */
    const size_t len = b.len;
    EXPECT_EQ(grace__listen_fds_format(&b, -1, ":80", "x"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, "", "x"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, ":8|0", "x"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, ":80\n", "x"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, ":80", "a|b"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, ":80", "a\nb"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, rep('s', 80, spec), "x"), GRACE_EINVAL);
    EXPECT_EQ(grace__listen_fds_format(&b, 3, ":80", rep('n', 64, name)), GRACE_EINVAL);
    EXPECT_EQ(b.len, len);
    /* The longest of each is carried. */
    EXPECT_EQ(grace__listen_fds_format(&b, 3, rep('s', 79, spec), rep('n', 63, name)), 0);
    grace__buf_free(&b);
}

/* format then parse gives the entries back, for every fd format accepts. */
static void test_listen_fds_round_trip(void)
{
    static const fd_entry_t entries[] = {
        {0, ":80", "a"},
        {3, "127.0.0.1:8199", "web server"},
        {1000, "[::1]:443", ""},
        {999999999, ":1", "nine digits"},
        {1000000000, ":2", "ten digits"},
        {INT32_MAX, ":3", "largest"},
    };
    enum { N = sizeof entries / sizeof entries[0] };
    char spec[200], name[200];
    grace__buf_t b = {0};
    for (size_t i = 0; i < N; i++)
        EXPECT_EQ(grace__listen_fds_format(&b, entries[i].fd, entries[i].spec, entries[i].name), 0);
    EXPECT_EQ(grace__listen_fds_format(&b, 7, rep('s', 79, spec), rep('n', 63, name)), 0);
    grace__buf_append(&b, "", 1);
    grace__inherited_t out[N + 2];
    EXPECT_EQ(grace__listen_fds_parse(guard_put(b.ptr), out, N + 2), N + 1);
    for (size_t i = 0; i < N; i++)
        if (!same_fd(&out[i], &entries[i]))
            TEST_FAIL_("round trip entry %zu: got %d|%s|%s", i, out[i].fd, out[i].spec,
                       out[i].name);
    EXPECT_TRUE(out[N].fd == 7 && strcmp(out[N].spec, spec) == 0 && strcmp(out[N].name, name) == 0);
    grace__buf_free(&b);
}

/* ---- GRACE_DRAINING ------------------------------------------------------------ */

typedef struct {
    const char *env;
    int n;
    grace__drainer_t want[3];
} drainers_case_t;

static const drainers_case_t drainers_cases[] = {
    /* Valid. */
    {"123:456:789:1000", 1, {{123, 456, 789, 1000}}},
    {"1:1:0:0", 1, {{1, 1, 0, 0}}}, /* deadline 0: the drain has not begun */
    {"1:2:3:4,5:6:7:8", 2, {{1, 2, 3, 4}, {5, 6, 7, 8}}},
    {"2147483647:9223372036854775807:9223372036854775807:9223372036854775807",
     1,
     {{INT32_MAX, INT64_MAX, INT64_MAX, INT64_MAX}}},
    {"0012:034:0:05", 1, {{12, 34, 0, 5}}},
    /* Malformed items are skipped; the items after them still count. */
    {"", 0, {{0}}},
    {",", 0, {{0}}},
    {",,1:2:3:4,,", 1, {{1, 2, 3, 4}}},
    {"0:2:3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},                    /* pid 0 */
    {"1:0:3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},                    /* start 0 */
    {"1:2:3,5:6:7:8", 1, {{5, 6, 7, 8}}},                      /* three fields */
    {"1:2:3:4:5,5:6:7:8", 1, {{5, 6, 7, 8}}},                  /* five fields */
    {"1:2:3:,5:6:7:8", 1, {{5, 6, 7, 8}}},                     /* empty field */
    {"1::3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},                     /* empty field */
    {"-1:2:3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},                   /* no sign */
    {"1:2:-3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},                   /* no sign */
    {"1:2:3:+4,5:6:7:8", 1, {{5, 6, 7, 8}}},                   /* no sign */
    {" 1:2:3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},                   /* no space */
    {"1:2:3:4 ,5:6:7:8", 1, {{5, 6, 7, 8}}},                   /* no space */
    {"1:2:3:4x,5:6:7:8", 1, {{5, 6, 7, 8}}},                   /* junk after */
    {"1;2;3;4,5:6:7:8", 1, {{5, 6, 7, 8}}},                    /* wrong separator */
    {"2147483648:2:3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},           /* pid past INT32_MAX */
    {"1:9223372036854775808:3:4,5:6:7:8", 1, {{5, 6, 7, 8}}},  /* past INT64_MAX */
    {"1:2:9223372036854775808:4,5:6:7:8", 1, {{5, 6, 7, 8}}},  /* past INT64_MAX */
    {"1:2:3:99999999999999999999,5:6:7:8", 1, {{5, 6, 7, 8}}}, /* past UINT64_MAX */
    {"1:2:3:4\n5:6:7:8", 0, {{0}}}, /* one item: '\n' is not a separator */
};

static bool same_drainer(const grace__drainer_t *a, const grace__drainer_t *b)
{
    return a->pid == b->pid && a->start == b->start && a->deadline_ms == b->deadline_ms &&
           a->timeout_ms == b->timeout_ms;
}

static void test_drainers_parse_table(void)
{
    for (size_t i = 0; i < sizeof drainers_cases / sizeof drainers_cases[0]; i++) {
        const drainers_case_t *c = &drainers_cases[i];
        grace__drainer_t out[4];
        memset(out, 0xa5, sizeof out);
        const int n = grace__drainers_parse(guard_put(c->env), out, 4);
        if (n != c->n) {
            TEST_FAIL_("drainers case %zu (%s): %d entries, want %d", i, c->env, n, c->n);
            continue;
        }
        for (int k = 0; k < n; k++)
            if (!same_drainer(&out[k], &c->want[k]))
                TEST_FAIL_("drainers case %zu (%s) entry %d: got %ld:%llu:%lld:%lld", i, c->env, k,
                           out[k].pid, out[k].start, (long long)out[k].deadline_ms,
                           (long long)out[k].timeout_ms);
        const unsigned char *rest = (const unsigned char *)&out[n];
        for (size_t b = 0; b < (4 - (size_t)n) * sizeof out[0]; b++)
            if (rest[b] != 0xa5) {
                TEST_FAIL_("drainers case %zu: wrote past entry %d", i, n);
                break;
            }
    }
    EXPECT_EQ(grace__drainers_parse(NULL, NULL, 4), 0);
}

static void test_drainers_parse_cap(void)
{
    const char *env = guard_put("0:0:0:0,1:1:1:1,x,2:2:2:2,3:3:3:3");
    grace__drainer_t out[4];
    for (int cap = 0; cap <= 4; cap++) {
        memset(out, 0xa5, sizeof out);
        const int n = grace__drainers_parse(env, out, cap);
        EXPECT_EQ(n, cap < 3 ? cap : 3);
        for (int k = 0; k < n; k++)
            EXPECT_EQ(out[k].pid, 1 + k);
        if (cap < 4)
            EXPECT_EQ(((unsigned char *)&out[cap])[0], 0xa5);
    }
}

static void test_drainers_format_round_trip(void)
{
    static const grace__drainer_t d[] = {
        {1, 2, 0, 4},
        {4242, 123456789, 1700000000123, 30000},
        {INT32_MAX, INT64_MAX, INT64_MAX, INT64_MAX},
    };
    grace__buf_t b = {0};
    EXPECT_EQ(grace__drainers_format(&b, d, 0), 0);
    EXPECT_EQ(b.len, 0);
    EXPECT_EQ(grace__drainers_format(&b, d, 1), 0);
    EXPECT_STRN(b.ptr, b.len, "1:2:0:4");
    b.len = 0;
    EXPECT_EQ(grace__drainers_format(&b, d, 3), 0);
    EXPECT_STRN(b.ptr, b.len,
                "1:2:0:4,4242:123456789:1700000000123:30000,"
                "2147483647:9223372036854775807:9223372036854775807:9223372036854775807");
    grace__buf_append(&b, "", 1);
    grace__drainer_t out[4];
    EXPECT_EQ(grace__drainers_parse(guard_put(b.ptr), out, 4), 3);
    for (int k = 0; k < 3; k++)
        EXPECT_TRUE(same_drainer(&out[k], &d[k]));
    grace__buf_free(&b);
}

TEST_MAIN(TEST(test_listen_fds_parse_table), TEST(test_listen_fds_parse_lengths),
          TEST(test_listen_fds_parse_cap), TEST(test_listen_fds_format),
          TEST(test_listen_fds_round_trip), TEST(test_drainers_parse_table),
          TEST(test_drainers_parse_cap), TEST(test_drainers_format_round_trip))
