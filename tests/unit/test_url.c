/*
 * test_url.c -- unit tests of src/url.c: percent-decoding (grace__url_decode)
 * and the query-parameter lookup behind grace_request_query
 * (grace__query_find), as tables of inputs.
 *
 * Every input is placed so that it ends exactly at a page boundary with an
 * inaccessible page after it (guard_put), so a read past the end faults. The
 * query lookup gets a counting allocator that hands out heap blocks of
 * exactly the size asked for, so ASan sees a write past the value.
 *
 * A crash or an invariant failure found by tests/fuzz/fuzz_url.c or
 * fuzz_query.c becomes a row of these tables (tests/fuzz/README.md).
 */
#include "internal.h"
#include "test.h"

#include <sys/mman.h>
#include <unistd.h>

#define S(s) s, sizeof(s) - 1

static grace_str_t sv_of(const char *s)
{
    return (grace_str_t){s, strlen(s)};
}

/* ---- Guard page ------------------------------------------------------------- */

enum { GUARD_PAGES = 4 };
static char *guard_area;
static size_t guard_size;

static char *guard_put(const void *data, size_t len)
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
    if (len > guard_size) {
        fprintf(stderr, "input of %zu bytes too large for the guard area\n", len);
        exit(2);
    }
    char *p = guard_area + guard_size - len;
    memcpy(p, data, len);
    return p;
}

/* ---- grace__url_decode ------------------------------------------------------ */

typedef struct {
    const char *in;
    bool plus;
    const char *want; /* NULL: -1 */
    size_t want_len;
} decode_case_t;

static const decode_case_t decode_cases[] = {
    {"", false, S("")},
    {"abc", false, S("abc")},
    {"/a/b", false, S("/a/b")},
    {"a%20b", false, S("a b")},
    {"%41%42", false, S("AB")},
    {"%4a%4A%6f%6F", false, S("JJoo")},
    {"%e2%82%AC", false, S("\xe2\x82\xac")},
    {"%ff%FF%fF", false, S("\xff\xff\xff")},
    {"%00", false, S("\0")},
    {"%00x%00", false, S("\0x\0")},
    {"%25", false, S("%")},
    {"%252", false, S("%2")},
    {"%2525", false, S("%25")},
    {"%2F", false, S("/")},
    {"+", false, S("+")},
    {"+", true, S(" ")},
    {"a+b", true, S("a b")},
    {"a+b", false, S("a+b")},
    {"%2B+", true, S("+ ")},
    {"%2B+", false, S("++")},
    {"\x80\xff ", false, S("\x80\xff ")}, /* any byte but '%' (and '+') passes through */
    {"%", false, NULL, 0},
    {"%4", false, NULL, 0},
    {"abc%", false, NULL, 0},
    {"abc%a", false, NULL, 0},
    {"%4g", false, NULL, 0},
    {"%g4", false, NULL, 0},
    {"%G0", false, NULL, 0},
    {"%0G", false, NULL, 0},
    {"%@0", false, NULL, 0}, /* '@' | 0x20 is '`', just below 'a' */
    {"%:0", false, NULL, 0}, /* ':' is just after '9' */
    {"%/0", false, NULL, 0}, /* '/' is just before '0' */
    {"%%41", false, NULL, 0},
    {"% 1", false, NULL, 0},
    {"%+1", true, NULL, 0},
    {"%-1", false, NULL, 0},
    {"%\xc1\x31", false, NULL, 0}, /* 0xc1 | 0x20 is 0xe1: not a hex digit */
    {"ok%41%", false, NULL, 0},    /* bad at the very end, after good escapes */
};

static void test_url_decode_table(void)
{
    char out[64], inplace[64];

    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        const decode_case_t *c = &decode_cases[i];
        const size_t n = strlen(c->in);
        const char *src = guard_put(c->in, n);
        const ssize_t r = grace__url_decode(out, src, n, c->plus);
        memcpy(inplace, c->in, n);
        const ssize_t r2 = grace__url_decode(inplace, inplace, n, c->plus);
        if (memcmp(src, c->in, n) != 0)
            TEST_FAIL_("decode case %zu (%s): the source was written", i, c->in);
        if (c->want == NULL) {
            if (r != -1 || r2 != -1)
                TEST_FAIL_("decode case %zu (%s): returned %zd/%zd, want -1", i, c->in, r, r2);
            continue;
        }
        if (r != (ssize_t)c->want_len || memcmp(out, c->want, c->want_len) != 0)
            TEST_FAIL_("decode case %zu (%s): got %zd \"%.*s\"", i, c->in, r, (int)(r < 0 ? 0 : r),
                       out);
        if (r2 != r || memcmp(inplace, c->want, c->want_len) != 0)
            TEST_FAIL_("decode case %zu (%s): in place got %zd", i, c->in, r2);
    }
}

/* Every byte value after '%': exactly the 22 hex digits decode. */
static void test_url_decode_every_byte(void)
{
    int n_ok = 0;
    for (int b = 0; b < 256; b++) {
        const char in[3] = {'%', (char)b, '0'};
        char out[3];
        const ssize_t r = grace__url_decode(out, guard_put(in, 3), 3, false);
        const bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
        if (r != (hex ? 1 : -1))
            TEST_FAIL_("\"%%\\x%02x0\": returned %zd", b, r);
        n_ok += r == 1;
    }
    EXPECT_EQ(n_ok, 22);
}

/* ---- grace__query_find ------------------------------------------------------ */

/* A counting allocator: exact-size heap blocks, freed by alloc_reset; fails
 * every call once fail is set. */
typedef struct {
    int calls;
    size_t last_size;
    bool fail;
    void *blocks[8];
    int n_blocks;
} alloc_t;

static void *counting_alloc(void *ctx, size_t size)
{
    alloc_t *a = ctx;
    a->calls++;
    a->last_size = size;
    if (a->fail || a->n_blocks == 8)
        return NULL;
    return a->blocks[a->n_blocks++] = malloc(size);
}

static void alloc_reset(alloc_t *a)
{
    for (int i = 0; i < a->n_blocks; i++)
        free(a->blocks[i]);
    memset(a, 0, sizeof *a);
}

typedef struct {
    const char *query; /* NULL: no '?' in the target */
    const char *name;
    const char *want; /* NULL: absent */
    size_t want_len;
} query_case_t;

#define ABSENT NULL, 0

static const query_case_t query_cases[] = {
    /* Pairs and the first occurrence. */
    {"a=1", "a", S("1")},
    {"a=1&b=2", "b", S("2")},
    {"a=1&b=2&c=3", "c", S("3")},
    {"a=1&a=2", "a", S("1")},
    {"b=0&a=1&a=2", "a", S("1")},
    {"a=1", "b", ABSENT},
    {"a=1", "A", ABSENT},      /* names are exact */
    {"xx=1&x=2", "x", S("2")}, /* no prefix match */
    {"x=1", "xx", ABSENT},
    {"a=1;b=2", "b", ABSENT}, /* ';' separates nothing */
    {"a=1;b=2", "a", S("1;b=2")},
    /* No query, empty query, empty pairs and keys. */
    {NULL, "a", ABSENT},
    {NULL, "", ABSENT},
    {"", "a", ABSENT},
    {"", "", ABSENT},     /* an empty query has no pair */
    {"&", "", S("")},     /* but an empty pair before '&' is one */
    {"a=1&", "", ABSENT}, /* nothing after a final '&' */
    {"a=1&&b=2", "", S("")},
    {"a=1&&b=2", "b", S("2")},
    {"=x", "", S("x")},
    {"=x&a=1", "a", S("1")},
    /* Values: none, empty, with '=', decoded. */
    {"a", "a", S("")},
    {"a&b=2", "a", S("")},
    {"a=", "a", S("")},
    {"a==", "a", S("=")},
    {"x=a=b", "x", S("a=b")},
    {"x=a+b%21", "x", S("a b!")},
    {"x=%E2%82%AC", "x", S("\xe2\x82\xac")},
    {"x=%00y", "x", S("\0y")}, /* a NUL byte stays in the view */
    {"x=%26%3D", "x", S("&=")},
    /* A malformed value is kept as it came ('+' included). */
    {"x=100%", "x", S("100%")},
    {"x=a+b%zz", "x", S("a+b%zz")},
    {"x=%4", "x", S("%4")},
    /* Keys are compared decoded, with '+' as space. */
    {"a%5Fb=1", "a_b", S("1")},
    {"a%5fb=1", "a_b", S("1")},
    {"a+b=1", "a b", S("1")},
    {"a%20b=1", "a b", S("1")},
    {"a%2Bb=1", "a+b", S("1")},
    {"a+b=1", "a+b", ABSENT},
    {"a%3D1=2", "a=1", S("2")},
    {"a%261=2", "a&1", S("2")},
    {"%61=1", "a", S("1")},
    {"a%00=1", "a", ABSENT}, /* the decoded key is two bytes */
    /* A key with a bad %XX matches nothing, not even its raw text. */
    {"a%zz=1&a%zz=2", "a%zz", ABSENT},
    {"a%=1&a=2", "a", S("2")},
    {"a%=1", "a%", ABSENT},
    {"a%2=1&a=3", "a", S("3")},
};

static void check_query(size_t i, const char *query, const char *name, const char *want,
                        size_t want_len)
{
    alloc_t a = {0};
    grace_str_t out = {"garbage", 7};
    const size_t qlen = query ? strlen(query) : 0;
    const grace_str_t q = {query ? guard_put(query, qlen) : NULL, qlen};
    const int r = grace__query_find(q, name, counting_alloc, &a, &out);

    if (want == NULL) {
        if (r != 0 || out.ptr != NULL || out.len != 0 || a.calls != 0)
            TEST_FAIL_("query case %zu (%s, %s): returned %d, %d allocations, want absent", i,
                       query ? query : "NULL", name, r, a.calls);
    } else if (r != 1 || out.ptr == NULL || out.len != want_len ||
               memcmp(out.ptr, want, want_len) != 0) {
        TEST_FAIL_("query case %zu (%s, %s): returned %d \"%.*s\", want \"%.*s\"", i, query, name,
                   r, (int)out.len, out.ptr ? out.ptr : "", (int)want_len, want);
    } else {
        /* One exact-size block: the raw value's length + 1, NUL at the end. */
        if (a.calls != 1 || out.ptr != a.blocks[0] || out.ptr[out.len] != '\0' ||
            a.last_size < want_len + 1)
            TEST_FAIL_("query case %zu (%s, %s): %d allocations of %zu bytes", i, query, name,
                       a.calls, a.last_size);
    }
    alloc_reset(&a);

    /* Out of memory: GRACE_ENOMEM exactly when the name is there. */
    a.fail = true;
    out = (grace_str_t){"garbage", 7};
    const int r2 = grace__query_find(q, name, counting_alloc, &a, &out);
    if (r2 != (want ? GRACE_ENOMEM : 0) || out.ptr != NULL || out.len != 0)
        TEST_FAIL_("query case %zu (%s, %s): out of memory returned %d", i, query ? query : "NULL",
                   name, r2);
    alloc_reset(&a);
}

static void test_query_table(void)
{
    for (size_t i = 0; i < sizeof query_cases / sizeof query_cases[0]; i++) {
        const query_case_t *c = &query_cases[i];
        check_query(i, c->query, c->name, c->want, c->want_len);
    }
}

/* Keys of any length: 300 bytes raw, and 300 bytes decoding to 100. */
static void test_query_long_keys(void)
{
    char query[1024], name[512];

    memset(name, 'k', 300);
    name[300] = '\0';
    memset(query, 'k', 300);
    memcpy(query + 300, "=v", 3);
    check_query(0, query, name, S("v"));
    name[299] = '\0';
    check_query(1, query, name, ABSENT);

    for (int i = 0; i < 100; i++)
        memcpy(query + 3 * i, "%6B", 3);
    memcpy(query + 300, "=w&kk=x", 8);
    name[100] = '\0';
    check_query(2, query, name, S("w"));
    check_query(3, query, "kk", S("x"));
}

/* The real allocator of grace_request_query: the request arena. */
static void *arena_alloc(void *arena, size_t size)
{
    return grace__arena_alloc(arena, size);
}

static void test_query_arena(void)
{
    grace__arena_t arena = {0};
    const char q[] = "name=J%C3%BCrgen+M&empty=&raw=%zz";
    grace_str_t v;

    EXPECT_EQ(grace__query_find(sv_of(q), "name", arena_alloc, &arena, &v), 1);
    EXPECT_STR(v, "J\xc3\xbcrgen M");
    EXPECT_EQ(v.ptr[v.len], '\0');
    EXPECT_EQ(grace__query_find(sv_of(q), "empty", arena_alloc, &arena, &v), 1);
    EXPECT_STR(v, "");
    EXPECT_TRUE(v.ptr != NULL);
    EXPECT_EQ(grace__query_find(sv_of(q), "raw", arena_alloc, &arena, &v), 1);
    EXPECT_STR(v, "%zz");
    EXPECT_EQ(grace__query_find(sv_of(q), "none", arena_alloc, &arena, &v), 0);
    EXPECT_TRUE(v.ptr == NULL && v.len == 0);
    grace__arena_free(&arena);
}

TEST_MAIN(TEST(test_url_decode_table), TEST(test_url_decode_every_byte), TEST(test_query_table),
          TEST(test_query_long_keys), TEST(test_query_arena))
