/* test_buf.c -- growable buffers, the per-request arena, log line shape and
 * error texts. */
#include "internal.h"
#include "test.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

static void test_append_grows(void)
{
    grace__buf_t b = {0};
    for (int i = 0; i < 1000; i++)
        EXPECT_EQ(grace__buf_append(&b, "abc", 3), 0);
    EXPECT_EQ(b.len, 3000);
    EXPECT_TRUE(b.cap >= 3000);
    EXPECT_TRUE(memcmp(b.ptr + 2997, "abc", 3) == 0);
    grace__buf_free(&b);
    EXPECT_TRUE(b.ptr == NULL && b.len == 0 && b.cap == 0);
}

static void test_appendf_long(void)
{
    grace__buf_t b = {0};
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    EXPECT_EQ(grace__buf_appendf(&b, "<%s|%d>", big, 42), 0);
    EXPECT_EQ(b.len, 999 + 5);
    EXPECT_TRUE(b.ptr[0] == '<' && memcmp(b.ptr + 1000, "|42>", 4) == 0);
    grace__buf_free(&b);
}

static void test_append_u64(void)
{
    grace__buf_t b = {0};
    grace__buf_append_u64(&b, 0);
    grace__buf_append(&b, " ", 1);
    grace__buf_append_u64(&b, UINT64_MAX);
    EXPECT_STRN(b.ptr, b.len, "0 18446744073709551615");
    grace__buf_free(&b);
}

static void test_consume(void)
{
    grace__buf_t b = {0};
    grace__buf_appends(&b, "hello world");
    grace__buf_consume(&b, 6);
    EXPECT_STRN(b.ptr, b.len, "world");
    grace__buf_consume(&b, 100);
    EXPECT_EQ(b.len, 0);
    grace__buf_free(&b);
}

static void test_reserve_overflow(void)
{
    grace__buf_t b = {0};
    EXPECT_EQ(grace__buf_reserve(&b, SIZE_MAX - 10), GRACE_ENOMEM);
    EXPECT_TRUE(b.ptr == NULL); /* unchanged on failure */
}

static void test_arena(void)
{
    grace__arena_t a = {0};
    char *p[100];
    for (int i = 0; i < 100; i++) {
        p[i] = grace__arena_alloc(&a, 100);
        EXPECT_TRUE(p[i] != NULL);
        EXPECT_EQ((uintptr_t)p[i] % 16, 0);
        memset(p[i], i, 100);
    }
    for (int i = 0; i < 100; i++)
        EXPECT_TRUE(p[i][0] == (char)i && p[i][99] == (char)i); /* no overlap */
    char *big = grace__arena_alloc(&a, 1 << 20);                /* larger than a block */
    EXPECT_TRUE(big != NULL);
    memset(big, 1, 1 << 20);
    grace__arena_reset(&a);
    /* After a reset the memory is reused, and still usable. */
    for (int i = 0; i < 100; i++)
        EXPECT_TRUE(grace__arena_alloc(&a, 100) != NULL);
    grace__arena_free(&a);
    grace__arena_free(&a); /* twice is harmless */
}

static size_t fmt(char *out, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    size_t n = grace__log_format(out, cap, f, ap);
    va_end(ap);
    return n;
}

static void test_log_format(void)
{
    char line[256];
    size_t n = fmt(line, sizeof line, "http server started listening on [%s]", ":8199");
    /* "2018-05-18 11:02:04.812 11511: ..." */
    EXPECT_EQ(line[n - 1], '\n');
    EXPECT_TRUE(line[4] == '-' && line[7] == '-' && line[10] == ' ' && line[13] == ':' &&
                line[16] == ':' && line[19] == '.' && line[23] == ' ');
    char pid[32];
    int k = snprintf(pid, sizeof pid, " %ld: ", (long)getpid());
    EXPECT_TRUE(memcmp(line + 23, pid, (size_t)k) == 0);
    EXPECT_TRUE(strstr(line, "http server started listening on [:8199]\n") != NULL);
    /* A message longer than the buffer is cut but still ends the line. */
    char small[40];
    n = fmt(small, sizeof small, "%s", "a very long message that does not fit at all");
    EXPECT_EQ(n, sizeof small - 1);
    EXPECT_EQ(small[n - 1], '\n');
}

static void test_errors(void)
{
    EXPECT_EQ(GRACE_EADDRINUSE, -EADDRINUSE);
    EXPECT_EQ(GRACE_EINVAL, -EINVAL);
    EXPECT_TRUE(strcmp(grace_strerror(GRACE_EADDRINUSE), "address already in use") == 0);
    EXPECT_TRUE(strcmp(grace_err_name(GRACE_EBADPATTERN), "EBADPATTERN") == 0);
    EXPECT_TRUE(strcmp(grace_err_name(12345), "UNKNOWN") == 0);
    EXPECT_TRUE(grace_strerror(-EPIPE) != NULL && strlen(grace_strerror(-EPIPE)) > 0);
    EXPECT_EQ(grace_version(), GRACE_VERSION_HEX);
}

static void test_http_date(void)
{
    char d[32];
    grace__http_date(d);
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    EXPECT_EQ(strlen(d), 29);
    EXPECT_TRUE(d[3] == ',' && strcmp(d + 26, "GMT") == 0);
}

TEST_MAIN(TEST(test_append_grows), TEST(test_appendf_long), TEST(test_append_u64),
          TEST(test_consume), TEST(test_reserve_overflow), TEST(test_arena), TEST(test_log_format),
          TEST(test_errors), TEST(test_http_date))
