/* test_buf.c -- growable buffers, the per-request arena (src/buf.c), log
 * line shape, printable samples, the Date header and error texts
 * (src/log.c). */
#include "internal.h"
#include "test.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

/* ---- Buffers ------------------------------------------------------------------ */

/* Appending grows the buffer and keeps every byte written before; appending
 * nothing allocates nothing; free leaves an empty buffer. */
static void test_append_grows(void)
{
    grace__buf_t b = {0};
    EXPECT_EQ(grace__buf_append(&b, "", 0), 0);
    EXPECT_TRUE(b.ptr == NULL && b.len == 0 && b.cap == 0);
    size_t last_cap = 0;
    int n_grown = 0;
    for (int i = 0; i < 1000; i++) {
        char chunk[3] = {'a', 'b', (char)('0' + i % 10)};
        EXPECT_EQ(grace__buf_append(&b, chunk, 3), 0);
        EXPECT_TRUE(b.cap >= b.len);
        n_grown += b.cap != last_cap;
        last_cap = b.cap;
    }
    EXPECT_EQ(b.len, 3000);
    EXPECT_TRUE(n_grown < 10); /* doubling, not one realloc per append */
    for (int i = 0; i < 1000; i++) {
        const char *p = b.ptr + 3 * i;
        if (p[0] != 'a' || p[1] != 'b' || p[2] != '0' + i % 10) {
            TEST_FAIL_("bytes %d..%d: \"%.3s\"", 3 * i, 3 * i + 2, p);
            break;
        }
    }
    EXPECT_EQ(grace__buf_appends(&b, "xyz"), 0);
    EXPECT_TRUE(b.len == 3003 && memcmp(b.ptr + 3000, "xyz", 3) == 0);
    grace__buf_free(&b);
    EXPECT_TRUE(b.ptr == NULL && b.len == 0 && b.cap == 0);
    grace__buf_free(&b); /* twice is harmless */
}

/* appendf formats into a small stack buffer first and, when the text does
 * not fit (256 bytes and more), straight into the buffer: both paths, at
 * their boundary, after earlier content that must be kept. */
static void test_appendf_long(void)
{
    static const size_t lens[] = {0, 1, 254, 255, 256, 257, 999, 5000};
    char *big = malloc(5001);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        const size_t n = lens[k];
        for (size_t i = 0; i < n; i++)
            big[i] = (char)('a' + i % 26);
        big[n] = '\0';
        grace__buf_t b = {0};
        EXPECT_EQ(grace__buf_appends(&b, "head:"), 0);
        EXPECT_EQ(grace__buf_appendf(&b, "<%s|%d>", big, 42), 0);
        const size_t want = 5 + 1 + n + 4;
        if (b.len != want || memcmp(b.ptr, "head:<", 6) != 0 || memcmp(b.ptr + 6, big, n) != 0 ||
            memcmp(b.ptr + 6 + n, "|42>", 4) != 0)
            TEST_FAIL_("appendf of %zu bytes: length %zu, want %zu, or wrong bytes", n, b.len,
                       want);
        grace__buf_free(&b);
    }
    free(big);
}

static void test_append_u64(void)
{
    static const uint64_t values[] = {
        0, 1, 9, 10, 99, 100, UINT32_MAX, 1ull << 32, UINT64_MAX / 10, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        grace__buf_t b = {0};
        char want[32];
        snprintf(want, sizeof want, "x%" PRIu64, values[i]);
        EXPECT_EQ(grace__buf_append(&b, "x", 1), 0);
        EXPECT_EQ(grace__buf_append_u64(&b, values[i]), 0);
        EXPECT_STRN(b.ptr, b.len, want);
        grace__buf_free(&b);
    }
}

static void test_consume(void)
{
    grace__buf_t b = {0};
    EXPECT_EQ(grace__buf_appends(&b, "hello world"), 0);
    const size_t cap = b.cap;
    grace__buf_consume(&b, 0);
    EXPECT_STRN(b.ptr, b.len, "hello world");
    grace__buf_consume(&b, 6);
    EXPECT_STRN(b.ptr, b.len, "world");
    grace__buf_consume(&b, 5); /* exactly all */
    EXPECT_EQ(b.len, 0);
    EXPECT_EQ(grace__buf_appends(&b, "abc"), 0);
    grace__buf_consume(&b, 100); /* more than there is */
    EXPECT_EQ(b.len, 0);
    EXPECT_EQ(b.cap, cap); /* consuming keeps the memory for the next bytes */
    grace__buf_free(&b);
}

/* A reserve that cannot be met fails with GRACE_ENOMEM and leaves the
 * buffer exactly as it was, empty or not; it stays usable. */
static void test_reserve_overflow(void)
{
    grace__buf_t b = {0};
    EXPECT_EQ(grace__buf_reserve(&b, SIZE_MAX - 10), GRACE_ENOMEM);
    EXPECT_EQ(grace__buf_reserve(&b, SIZE_MAX / 2 + 1), GRACE_ENOMEM);
    EXPECT_TRUE(b.ptr == NULL && b.len == 0 && b.cap == 0);

    EXPECT_EQ(grace__buf_appends(&b, "keep me"), 0);
    const grace__buf_t before = b;
    EXPECT_EQ(grace__buf_reserve(&b, SIZE_MAX - 10), GRACE_ENOMEM);
    EXPECT_EQ(grace__buf_reserve(&b, SIZE_MAX / 2 - 3), GRACE_ENOMEM);
    EXPECT_EQ(grace__buf_append(&b, "x", SIZE_MAX - 3), GRACE_ENOMEM);
    EXPECT_TRUE(b.ptr == before.ptr && b.len == before.len && b.cap == before.cap);
    EXPECT_STRN(b.ptr, b.len, "keep me");
    /* Room already there: no move. */
    EXPECT_EQ(grace__buf_reserve(&b, b.cap - b.len), 0);
    EXPECT_TRUE(b.ptr == before.ptr && b.cap == before.cap);
    EXPECT_EQ(grace__buf_appends(&b, "!"), 0);
    EXPECT_STRN(b.ptr, b.len, "keep me!");
    grace__buf_free(&b);
}

/* ---- Arena -------------------------------------------------------------------- */

static bool was_handed_out(char *const *seen, size_t n, const char *p)
{
    for (size_t i = 0; i < n; i++)
        if (seen[i] == p)
            return true;
    return false;
}

/* Allocations are 16-byte aligned and never overlap, across blocks, for
 * sizes around the alignment. */
static void test_arena_alloc(void)
{
    static const size_t sizes[] = {1, 15, 16, 17, 100, 1000, 4000};
    grace__arena_t a = {0};
    char *p[70];
    size_t len[70];
    for (int i = 0; i < 70; i++) {
        len[i] = sizes[i % 7];
        p[i] = grace__arena_alloc(&a, len[i]);
        EXPECT_TRUE(p[i] != NULL);
        EXPECT_EQ((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, len[i]); /* ASan: the whole size is ours */
    }
    for (int i = 0; i < 70; i++)
        for (size_t k = 0; k < len[i]; k++)
            if (p[i][k] != (char)i) {
                TEST_FAIL_("allocation %d byte %zu overwritten", i, k);
                break;
            }
    grace__arena_free(&a);
    grace__arena_free(&a); /* twice is harmless */
}

/* After a reset the memory is reused: the same allocations again get the
 * same addresses, starting from the first block's first byte. */
static void test_arena_reset_reuses(void)
{
    grace__arena_t a = {0};
    char *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = grace__arena_alloc(&a, 100);
    for (int request = 0; request < 20; request++) {
        grace__arena_reset(&a);
        for (int i = 0; i < 10; i++) {
            char *q = grace__arena_alloc(&a, 100);
            if (q != p[i]) {
                TEST_FAIL_("request %d allocation %d: %p, before %p", request, i, (void *)q,
                           (void *)p[i]);
                request = 20;
                break;
            }
            memset(q, request, 100);
        }
    }
    grace__arena_free(&a);
}

/* A request that ended with an allocation larger than a block: the huge
 * block must not stay behind as the one the next requests' memory comes
 * from (pinned for the connection's life); they get the first block's
 * addresses again, in order. */
static void test_arena_reset_after_huge(void)
{
    enum { BIG = 1 << 20 };
    grace__arena_t a = {0};
    char *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = grace__arena_alloc(&a, 100);
    char *big = grace__arena_alloc(&a, BIG);
    EXPECT_TRUE(big != NULL);
    memset(big, 1, BIG);
    grace__arena_reset(&a);
    for (int i = 0; i < 10; i++) {
        char *q = grace__arena_alloc(&a, 100);
        if (q != p[i]) {
            TEST_FAIL_("allocation %d after the reset: %p, before %p%s", i, (void *)q, (void *)p[i],
                       q >= big && q < big + BIG ? " (in the huge block)" : "");
            break;
        }
    }
    grace__arena_free(&a);
}

/* Requests that need several blocks: the spare blocks are taken again after
 * each reset, so past the first two requests (which between them have used
 * every byte of every block) no request gets an address not seen before. */
static void test_arena_reset_several_blocks(void)
{
    enum { N = 100, REQUESTS = 20 };
    grace__arena_t a = {0};
    char *seen[REQUESTS * N];
    size_t n_seen = 0;
    for (int request = 0; request < REQUESTS; request++) {
        for (int i = 0; i < N; i++) {
            char *q = grace__arena_alloc(&a, 100);
            memset(q, request, 100);
            if (request >= 2 && !was_handed_out(seen, n_seen, q)) {
                TEST_FAIL_("request %d allocation %d is new memory", request, i);
                request = REQUESTS;
                break;
            }
            if (!was_handed_out(seen, n_seen, q))
                seen[n_seen++] = q;
        }
        grace__arena_reset(&a);
    }
    EXPECT_TRUE(n_seen > N); /* several blocks, and their unused tails, were used */
    grace__arena_free(&a);
}

/* A size near SIZE_MAX is NULL, never a block smaller than asked for (the
 * rounding to 16 and the block header must not wrap around). Sizes that do
 * not wrap but cannot be met are left out: ASan aborts on those mallocs
 * instead of returning NULL. */
static void test_arena_huge(void)
{
    grace__arena_t a = {0};
    EXPECT_TRUE(grace__arena_alloc(&a, SIZE_MAX) == NULL);
    EXPECT_TRUE(grace__arena_alloc(&a, SIZE_MAX - 15) == NULL);
    EXPECT_TRUE(grace__arena_alloc(&a, SIZE_MAX - 31) == NULL); /* + the header wraps to 0 */
    char *p = grace__arena_alloc(&a, 32);                       /* still usable */
    EXPECT_TRUE(p != NULL);
    memset(p, 0, 32);
    grace__arena_free(&a);
}

/* ---- Log lines ------------------------------------------------------------------ */

static size_t fmt(char *out, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    size_t n = grace__log_format(out, cap, f, ap);
    va_end(ap);
    return n;
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

static void test_log_format(void)
{
    char line[256];
    size_t n = fmt(line, sizeof line, "http server started listening on [%s]", ":8199");
    /* "2018-05-18 11:02:04.812 11511: http server started listening on [:8199]\n" */
    EXPECT_EQ(strlen(line), n);
    EXPECT_TRUE(all_digits(line, 4) && line[4] == '-' && all_digits(line + 5, 2) &&
                line[7] == '-' && all_digits(line + 8, 2) && line[10] == ' ' &&
                all_digits(line + 11, 2) && line[13] == ':' && all_digits(line + 14, 2) &&
                line[16] == ':' && all_digits(line + 17, 2) && line[19] == '.' &&
                all_digits(line + 20, 3));
    char want[128];
    snprintf(want, sizeof want, " %ld: http server started listening on [:8199]\n", (long)getpid());
    EXPECT_STRN(line + 23, n - 23, want);

    /* A message longer than the buffer is cut, but the line still ends
     * with '\n', NUL-terminated, at the last byte it may use. */
    char small[40];
    n = fmt(small, sizeof small, "%s", "a very long message that does not fit at all");
    EXPECT_EQ(n, sizeof small - 1);
    EXPECT_EQ(small[n - 1], '\n');
    EXPECT_EQ(small[n], '\0');
    snprintf(want, sizeof want, " %ld: a very long", (long)getpid());
    const size_t kept = n - 1 - 23; /* what is left of " PID: message" */
    EXPECT_TRUE(memcmp(small + 23, want, kept < strlen(want) ? kept : strlen(want)) == 0);

    /* A message that fits exactly is not cut. */
    char exact[64];
    const size_t prefix = 23 + (size_t)snprintf(want, sizeof want, " %ld: ", (long)getpid());
    const size_t room = sizeof exact - prefix - 2; /* message + '\n' + NUL */
    char msg[64];
    memset(msg, 'm', room);
    msg[room] = '\0';
    n = fmt(exact, sizeof exact, "%s", msg);
    EXPECT_EQ(n, sizeof exact - 1);
    EXPECT_TRUE(memcmp(exact + prefix, msg, room) == 0 && exact[n - 1] == '\n');
}

/* grace__printable: printable ASCII kept, anything else (and '"') replaced,
 * at most cap - 1 bytes, always NUL-terminated. */
static void test_printable(void)
{
    static const struct {
        const char *in;
        size_t len, cap;
        const char *want;
    } cases[] = {
        {"GET / HTTP/1.1", 14, 64, "GET / HTTP/1.1"},
        {"a\"b", 3, 64, "a.b"},
        {"\r\n\t\x01\x1f\x7f\x80\xff", 8, 64, "........"},
        {"a\0b", 3, 64, "a.b"},
        {" ~", 2, 64, " ~"},
        {"abcdef", 6, 4, "abc"},
        {"abcdef", 6, 1, ""},
        {"", 0, 8, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        memset(out, 'X', sizeof out);
        const size_t n = grace__printable(out, cases[i].cap, cases[i].in, cases[i].len, '.');
        if (n != strlen(cases[i].want) || strcmp(out, cases[i].want) != 0)
            TEST_FAIL_("printable case %zu: got %zu \"%s\", want \"%s\"", i, n, out, cases[i].want);
        if (cases[i].cap < sizeof out && out[cases[i].cap] != 'X')
            TEST_FAIL_("printable case %zu: wrote past cap", i);
    }
}

/* ---- Errors and version ------------------------------------------------------------ */

static void test_errors(void)
{
    EXPECT_EQ(GRACE_EADDRINUSE, -EADDRINUSE);
    EXPECT_EQ(GRACE_EINVAL, -EINVAL);
    EXPECT_EQ(GRACE_ENOMEM, -ENOMEM);
    EXPECT_EQ(GRACE_EAGAIN, -EAGAIN);
    /* Every entry of the list: its own text and name. */
#define CHECK_ENTRY(name, val, text)                                                               \
    do {                                                                                           \
        if (strcmp(grace_strerror(val), text) != 0 || strcmp(grace_err_name(val), #name) != 0)     \
            TEST_FAIL_("GRACE_" #name ": \"%s\" %s", grace_strerror(val), grace_err_name(val));    \
        if ((val) != GRACE_##name)                                                                 \
            TEST_FAIL_("GRACE_" #name " is not its value");                                        \
    } while (0);
    GRACE_ERRNO_MAP(CHECK_ENTRY)
#undef CHECK_ENTRY
    EXPECT_TRUE(strcmp(grace_strerror(GRACE_EADDRINUSE), "address already in use") == 0);
    EXPECT_TRUE(strcmp(grace_err_name(GRACE_EBADPATTERN), "EBADPATTERN") == 0);
    /* Other system errors: the C library's text; no name. */
    EXPECT_TRUE(strcmp(grace_strerror(-EPIPE), strerror(EPIPE)) == 0);
    EXPECT_TRUE(strcmp(grace_strerror(-ECONNRESET), strerror(ECONNRESET)) == 0);
    EXPECT_TRUE(strcmp(grace_strerror(-ETIMEDOUT), strerror(ETIMEDOUT)) == 0);
    EXPECT_TRUE(strcmp(grace_err_name(-EPIPE), "UNKNOWN") == 0);
    /* Not an error code at all. */
    EXPECT_TRUE(strcmp(grace_err_name(12345), "UNKNOWN") == 0);
    EXPECT_TRUE(strcmp(grace_strerror(12345), "unknown error") == 0);
    EXPECT_TRUE(strcmp(grace_strerror(EPIPE), "unknown error") == 0); /* positive: not -errno */
    EXPECT_TRUE(strcmp(grace_strerror(-5000), "unknown error") == 0);
}

static void test_version(void)
{
    EXPECT_EQ(grace_version(), GRACE_VERSION_HEX);
    EXPECT_EQ(GRACE_VERSION_HEX,
              (GRACE_VERSION_MAJOR << 16) | (GRACE_VERSION_MINOR << 8) | GRACE_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", GRACE_VERSION_MAJOR, GRACE_VERSION_MINOR,
             GRACE_VERSION_PATCH);
    EXPECT_TRUE(strcmp(grace_version_string(), want) == 0);
}

/* ---- Date header ------------------------------------------------------------------- */

/* "Sun, 06 Nov 1994 08:49:37 GMT", and the current time: between a clock
 * read before and one after (a second either way, for the coarse clock). */
static void test_http_date(void)
{
    const time_t before = time(NULL);
    char d[32];
    grace__http_date(d);
    const time_t after = time(NULL);
    EXPECT_EQ(strlen(d), 29);
    struct tm tm = {0};
    const char *end = strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    EXPECT_TRUE(end != NULL && *end == '\0');
    if (end == NULL)
        return;
    const time_t t = timegm(&tm);
    if (t < before - 1 || t > after + 1)
        TEST_FAIL_("Date \"%s\" is %lld, the clock said %lld..%lld", d, (long long)t,
                   (long long)before, (long long)after);
    /* The same text again: strftime's "%a" and "%b" are the English names
     * in the C locale, which the test runs in, as does grace. */
    char again[32];
    strftime(again, sizeof again, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    EXPECT_TRUE(strcmp(again, d) == 0);
}

TEST_MAIN(TEST(test_append_grows), TEST(test_appendf_long), TEST(test_append_u64),
          TEST(test_consume), TEST(test_reserve_overflow), TEST(test_arena_alloc),
          TEST(test_arena_reset_reuses), TEST(test_arena_reset_after_huge),
          TEST(test_arena_reset_several_blocks), TEST(test_arena_huge), TEST(test_log_format),
          TEST(test_printable), TEST(test_errors), TEST(test_version), TEST(test_http_date))
