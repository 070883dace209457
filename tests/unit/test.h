/*
 * test.h -- a tiny unit-test helper: each test is a function in a table, the
 * runner calls them in order and prints TAP-like lines; a failed comparison
 * prints both sides. Exit status is the number of failed tests (capped).
 *
 *   static void test_x(void) { EXPECT_EQ(1 + 1, 2); }
 *   TEST_MAIN(TEST(test_x), TEST(test_y))
 */
#ifndef GRACE_TEST_H
#define GRACE_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_;
static const char *test_current_;

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  FAIL %s (%s:%d): ", test_current_, __FILE__, __LINE__);                \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        test_failures_++;                                                                          \
    } while (0)

#define EXPECT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c))                                                                                  \
            TEST_FAIL_("expected true: %s", #c);                                                   \
    } while (0)

#define EXPECT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                  \
    } while (0)

/* Compare a (ptr,len) view with a C string. */
#define EXPECT_STRN(ptr, len, s)                                                                   \
    do {                                                                                           \
        const char *p_ = (ptr), *s_ = (s);                                                         \
        size_t l_ = (len);                                                                         \
        if (l_ != strlen(s_) || (l_ && memcmp(p_, s_, l_) != 0))                                   \
            TEST_FAIL_("%s: \"%.*s\" != \"%s\"", #ptr, (int)l_, p_ ? p_ : "", s_);                 \
    } while (0)

#define EXPECT_STR(view, s) EXPECT_STRN((view).ptr, (view).len, s)

typedef struct {
    const char *name;
    void (*fn)(void);
} test_entry_t;

#define TEST(f) {#f, f}

#define TEST_MAIN(...)                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        static const test_entry_t tests_[] = {__VA_ARGS__};                                        \
        size_t n_ = sizeof tests_ / sizeof tests_[0], failed_ = 0;                                 \
        printf("1..%zu\n", n_);                                                                    \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                       \
            int before_ = test_failures_;                                                          \
            test_current_ = tests_[i_].name;                                                       \
            tests_[i_].fn();                                                                       \
            int ok_ = test_failures_ == before_;                                                   \
            failed_ += !ok_;                                                                       \
            printf("%s %zu - %s\n", ok_ ? "ok" : "not ok", i_ + 1, tests_[i_].name);               \
        }                                                                                          \
        printf("%zu passed, %zu failed\n", n_ - failed_, failed_);                                 \
        return failed_ ? 1 : 0;                                                                    \
    }

#endif
