/*
 * test_http1.c -- unit tests of src/http1.c: the request-head parser, the
 * chunked decoder, percent-decoding and reason phrases.
 *
 * Parser inputs are copied so that they end exactly at a page boundary with
 * an inaccessible page after it: any read past buf + len faults. Tables hold
 * valid requests (checked whole, with a body after them, and cut short at
 * every byte), malformed requests with the status expected (and no prefix of
 * them may be accepted), and chunked bodies decoded whole, split in two at
 * every byte and fed one byte at a time through the documented protocol. A
 * small deterministic mutation fuzzer checks invariants on top.
 */
#include "internal.h"
#include "test.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Guard page ----------------------------------------------------------- */

enum { GUARD_PAGES = 32, DEFAULT_MAX = 8192, DEFAULT_CAP = 32 };

static char *guard_area;
static size_t guard_size;

/* Copy data so that it ends at the guard page; returns where it starts. The
 * copy is overwritten by the next call. */
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

static grace_header_t hdrs[256];

static int parse_n(const char *s, size_t len, size_t max, size_t cap, grace__http_request_t *req)
{
    const char *b = guard_put(s, len);
    memset(req, 0x5a, sizeof *req); /* the parser must set every field */
    req->headers = hdrs;
    req->n_headers = cap;
    return grace__http_parse_request(b, len, max, req);
}

/* ---- Valid requests --------------------------------------------------------- */

typedef struct {
    const char *head;
    const char *body; /* bytes after the head; must not change the result */
    const char *method, *target, *path;
    const char *query; /* NULL: no '?' */
    int minor;
    int64_t content_length;
    bool chunked, keep_alive, expect_continue, has_host;
    const char *headers; /* "name|value" lines joined by '\n' */
} valid_case_t;

#define GET11(t) "GET " t " HTTP/1.1\r\nHost: a\r\n\r\n"

static const valid_case_t valid_cases[] = {
    {.head = GET11("/"),
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = "POST /submit?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\n"
             "Content-Length: 5\r\n\r\n",
     .body = "hello",
     .method = "POST",
     .target = "/submit?x=1&y=2",
     .path = "/submit",
     .query = "x=1&y=2",
     .minor = 1,
     .content_length = 5,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|example.com:8080\nContent-Length|5"},
    {.head = "GET /index.html HTTP/1.0\r\n\r\n",
     .body = "GET / HTTP/1.0\r\n\r\n",
     .method = "GET",
     .target = "/index.html",
     .path = "/index.html",
     .minor = 0,
     .content_length = -1,
     .headers = ""},
    {.head = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 0,
     .content_length = -1,
     .keep_alive = true,
     .headers = "Connection|Keep-Alive"},
    {.head = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 0,
     .content_length = -1,
     .headers = "Connection|keep-alive, close"},
    {.head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .has_host = true,
     .headers = "Host|a\nConnection|close"},
    {.head = "GET / HTTP/1.1\r\nConnection: Upgrade, , CLOSE\r\nHost: a\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .has_host = true,
     .headers = "Connection|Upgrade, , CLOSE\nHost|a"},
    {.head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: closed\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nConnection|keep-alive\nConnection|closed"},
    {.head = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
     .body = "0\r\n\r\n",
     .method = "POST",
     .target = "/up",
     .path = "/up",
     .minor = 1,
     .content_length = -1,
     .chunked = true,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nTransfer-Encoding|chunked"},
    {.head = "POST / HTTP/1.1\r\nTransfer-Encoding: \t, CHUNKED \t\r\nHost: a\r\n\r\n",
     .method = "POST",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .chunked = true,
     .keep_alive = true,
     .has_host = true,
     .headers = "Transfer-Encoding|, CHUNKED\nHost|a"},
    {.head = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n",
     .method = "PUT",
     .target = "/x",
     .path = "/x",
     .minor = 1,
     .content_length = 0,
     .keep_alive = true,
     .expect_continue = true,
     .has_host = true,
     .headers = "Host|a\nExpect|100-Continue\nContent-Length|0"},
    {.head = "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-ish\r\n\r\n",
     .method = "PUT",
     .target = "/x",
     .path = "/x",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nExpect|100-continue-ish"},
    {.head = "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
     .method = "PUT",
     .target = "/x",
     .path = "/x",
     .minor = 0,
     .content_length = -1,
     .headers = "Expect|100-continue"},
    {.head = "\r\n\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .target = "/lead",
     .path = "/lead",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = "GET / HTTP/1.1\r\nHost:a\r\nX-A:  a b \t\r\nX-Empty:\r\nX-Ws: \t \r\n"
             "X-Obs: caf\xc3\xa9\x80\xff\r\nX-Tab:\tq\t\"v\"\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nX-A|a b\nX-Empty|\nX-Ws|\nX-Obs|caf\xc3\xa9\x80\xff\nX-Tab|q\t\"v\""},
    {.head = "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09AZaz: v\r\nhOsT: a\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "!#$%&'*+-.^_`|~09AZaz|v\nhOsT|a"},
    {.head = "GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n",
     .method = "GET",
     .target = "http://example.com/a/b?c=d",
     .path = "/a/b",
     .query = "c=d",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|other"},
    {.head = "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
     .method = "GET",
     .target = "http://example.com",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|example.com"},
    {.head = "GET HTTPS://Example.com:8443?q HTTP/1.1\r\nHost: x\r\n\r\n",
     .method = "GET",
     .target = "HTTPS://Example.com:8443?q",
     .path = "/",
     .query = "q",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|x"},
    {.head = "GET http://[::1]:80/p HTTP/1.0\r\n\r\n",
     .method = "GET",
     .target = "http://[::1]:80/p",
     .path = "/p",
     .minor = 0,
     .content_length = -1,
     .headers = ""},
    {.head = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "OPTIONS",
     .target = "*",
     .path = "*",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = "OPTIONS /o HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "OPTIONS",
     .target = "/o",
     .path = "/o",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
     .method = "CONNECT",
     .target = "example.com:443",
     .path = "example.com:443",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|example.com:443"},
    {.head = "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n",
     .method = "CONNECT",
     .target = "[2001:db8::1]:8443",
     .path = "[2001:db8::1]:8443",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|[2001:db8::1]:8443"},
    {.head = "M-SEARCH /x HTTP/1.1\r\nHost: \r\n\r\n",
     .method = "M-SEARCH",
     .target = "/x",
     .path = "/x",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|"},
    {.head = "get /lower HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "get",
     .target = "/lower",
     .path = "/lower",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = GET11("/?"),
     .method = "GET",
     .target = "/?",
     .path = "/",
     .query = "",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = GET11("/a%20b/c?x=1?y=%2F#f"),
     .method = "GET",
     .target = "/a%20b/c?x=1?y=%2F#f",
     .path = "/a%20b/c",
     .query = "x=1?y=%2F#f",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = GET11("/!$&'()*+,;=:@-._~\"<>[]^`{|}\\"),
     .method = "GET",
     .target = "/!$&'()*+,;=:@-._~\"<>[]^`{|}\\",
     .path = "/!$&'()*+,;=:@-._~\"<>[]^`{|}\\",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a"},
    {.head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length:\t005\r\n\r\n",
     .body = "hello",
     .method = "POST",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = 5,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nContent-Length|5\ncontent-length|005"},
    {.head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
     .method = "POST",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = INT64_C(9223372036854775807),
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nContent-Length|9223372036854775807"},
    {.head = "GET / HTTP/1.1\r\nHost: 192.168.0.1:\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|192.168.0.1:"},
    {.head = "GET / HTTP/1.1\r\nHost: xn--bcher-kva.example%2D.com\r\n\r\n",
     .method = "GET",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|xn--bcher-kva.example%2D.com"},
    /* OWS around a value is not part of it: these frame like plain ones
     * (tests/integration/test_smuggling.py sends the same). */
    {.head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \r\n\r\n",
     .body = "hello",
     .method = "POST",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = 5,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nContent-Length|5"},
    {.head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked \r\n\r\n",
     .body = "0\r\n\r\n",
     .method = "POST",
     .target = "/",
     .path = "/",
     .minor = 1,
     .content_length = -1,
     .chunked = true,
     .keep_alive = true,
     .has_host = true,
     .headers = "Host|a\nTransfer-Encoding|chunked"},
};

/* Compare req's headers with "name|value\n..." */
static void expect_headers(const grace__http_request_t *req, const char *want, size_t i)
{
    size_t n = 0;
    const char *p = want;

    while (*p) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            nl = p + strlen(p);
        /* The last '|' of the line: names may hold '|' (a tchar). */
        const char *bar = nl;
        while (bar > p && *bar != '|')
            bar--;
        if (n >= req->n_headers) {
            TEST_FAIL_("case %zu: missing header %.*s", i, (int)(nl - p), p);
            return;
        }
        const grace_header_t *h = &req->headers[n++];
        if (h->name.len != (size_t)(bar - p) || memcmp(h->name.ptr, p, h->name.len) != 0 ||
            h->value.len != (size_t)(nl - bar - 1) ||
            memcmp(h->value.ptr, bar + 1, h->value.len) != 0)
            TEST_FAIL_("case %zu: header %zu is \"%.*s\"=\"%.*s\", want %.*s", i, n - 1,
                       (int)h->name.len, h->name.ptr, (int)h->value.len, h->value.ptr,
                       (int)(nl - p), p);
        p = *nl ? nl + 1 : nl;
    }
    if (n != req->n_headers)
        TEST_FAIL_("case %zu: %zu headers, want %zu", i, req->n_headers, n);
}

static void check_valid(const valid_case_t *c, size_t i, const grace__http_request_t *r)
{
    EXPECT_STR(r->method, c->method);
    EXPECT_STR(r->target, c->target);
    EXPECT_STR(r->path, c->path);
    if (c->query == NULL) {
        EXPECT_TRUE(r->query.ptr == NULL && r->query.len == 0);
    } else {
        EXPECT_TRUE(r->query.ptr != NULL);
        EXPECT_STR(r->query, c->query);
    }
    EXPECT_EQ(r->minor_version, c->minor);
    EXPECT_EQ(r->content_length, c->content_length);
    EXPECT_EQ(r->chunked, c->chunked);
    EXPECT_EQ(r->keep_alive, c->keep_alive);
    EXPECT_EQ(r->expect_continue, c->expect_continue);
    EXPECT_EQ(r->has_host, c->has_host);
    expect_headers(r, c->headers, i);
}

static void test_valid_requests(void)
{
    grace__http_request_t req;
    char in[4096];

    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const valid_case_t *c = &valid_cases[i];
        const size_t hl = strlen(c->head);
        /* Exactly the head, then the head followed by body bytes. */
        int r = parse_n(c->head, hl, DEFAULT_MAX, DEFAULT_CAP, &req);
        if (r != (int)hl)
            TEST_FAIL_("case %zu (%s): returned %d, want %zu", i, c->head, r, hl);
        else
            check_valid(c, i, &req);
        if (c->body) {
            const size_t bl = strlen(c->body);
            memcpy(in, c->head, hl);
            memcpy(in + hl, c->body, bl);
            r = parse_n(in, hl + bl, DEFAULT_MAX, DEFAULT_CAP, &req);
            if (r != (int)hl)
                TEST_FAIL_("case %zu with body: returned %d, want %zu", i, r, hl);
            else
                check_valid(c, i, &req);
        }
        /* The limits are inclusive: a head of exactly max bytes passes. */
        r = parse_n(c->head, hl, hl, DEFAULT_CAP, &req);
        EXPECT_EQ(r, (int)hl);
    }
}

static void test_valid_prefixes(void)
{
    grace__http_request_t req;

    for (size_t i = 0; i < sizeof valid_cases / sizeof valid_cases[0]; i++) {
        const char *h = valid_cases[i].head;
        const size_t hl = strlen(h);
        for (size_t n = 0; n < hl; n++) {
            const int r = parse_n(h, n, DEFAULT_MAX, DEFAULT_CAP, &req);
            if (r != 0)
                TEST_FAIL_("case %zu cut at %zu/%zu: returned %d", i, n, hl, r);
        }
    }
}

/* ---- Malformed requests ------------------------------------------------------ */

typedef struct {
    const char *in;
    size_t len;
    int want;
    size_t max; /* 0: DEFAULT_MAX */
    size_t cap; /* 0: DEFAULT_CAP, ZERO_CAP: no room for any field */
} bad_case_t;

#define ZERO_CAP SIZE_MAX
#define BAD(lit, want)                                                                             \
    {                                                                                              \
        lit, sizeof(lit) - 1, want, 0, 0                                                           \
    }
#define BAD_LIM(lit, want, max, cap)                                                               \
    {                                                                                              \
        lit, sizeof(lit) - 1, want, max, cap                                                       \
    }

/* String literal with its length, so inputs may hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1
#define RL11 "GET / HTTP/1.1\r\n"
#define POST11 "POST / HTTP/1.1\r\nHost: a\r\n"

static const bad_case_t bad_cases[] = {
    /* Framing: Content-Length and Transfer-Encoding (RFC 9112 6). */
    BAD(POST11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", -400),
    BAD(POST11 "Content-Length: +5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: -5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 5 5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 5, 5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 5,5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: \r\n\r\n", -400),
    BAD(POST11 "Content-Length: 0x5\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 5\x0b\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 9223372036854775808\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 99999999999999999999999999\r\n\r\n", -400),
    BAD(POST11 "Content-Length : 5\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: gzip\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: identity\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: xchunked\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked, gzip\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: gzip, chunked\r\n\r\n", -501),
    BAD(POST11 "Transfer-Encoding: gzip;q=1, chunked\r\n\r\n", -501),
    BAD(POST11 "Transfer-Encoding: chunked, chunked\r\n\r\n", -501),
    BAD(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -501),
    BAD(POST11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: \r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: ,\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked;a=b\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked x\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: \"chunked\"\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding : chunked\r\n\r\n", -400),
    /* Smuggling shapes (the same as tests/integration/test_smuggling.py). */
    BAD(POST11 "Transfer\0-Encoding: chunked\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding:\vchunked\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding:\r\n chunked\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked\r\n , identity\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked\r\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked, identity\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: gzip;a=\"x, chunked\"\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: gzip;a=\"x, \\\"y\", chunked\r\n\r\n", -501),
    BAD(POST11 "Transfer-Encoding: gzip ; a = b ; c=\"\", chunked\r\n\r\n", -501),
    BAD(POST11 "Transfer-Encoding: gzip;a, chunked\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: gzip;a=\"x\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n", -400),
    BAD(POST11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 5.0\r\n\r\n", -400),
    BAD(POST11 "Content-Length: 1,1\r\n\r\n", -400),
    BAD(POST11 "Content-Length:\r\n 5\r\n\r\n", -400),
    BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    /* Header field syntax. */
    BAD(RL11 "Host: a\r\nX: a\r\n b\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: a\r\n\tb\r\n\r\n", -400),
    BAD(RL11 " Host: a\r\n\r\n", -400),
    BAD(RL11 "Host : a\r\n\r\n", -400),
    BAD(RL11 "Host\t: a\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\n: v\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX(Y): v\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX Y: v\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX\xc3\xa9: v\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: a\rb\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: a\r\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: a\nb\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: a\0b\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: a\x7f\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: \x01\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nX: \x1b\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\n\r\r", -400),
    BAD(RL11 "Host: a\r\n\n", -400),
    BAD(RL11 "Host: a\n\r\n", -400),
    BAD("GET / HTTP/1.1\nHost: a\n\n", -400),
    BAD("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", -400),
    BAD("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("\r\n\n", -400),
    /* Host (RFC 9110 7.2, RFC 9112 3.2). */
    BAD(RL11 "\r\n", -400),
    BAD(RL11 "Connection: close\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nHost: a\r\n\r\n", -400),
    BAD(RL11 "Host: a\r\nhost: b\r\n\r\n", -400),
    BAD(RL11 "Host: a b\r\n\r\n", -400),
    BAD(RL11 "Host: u@a\r\n\r\n", -400),
    BAD(RL11 "Host: a:8o\r\n\r\n", -400),
    BAD(RL11 "Host: a/b\r\n\r\n", -400),
    BAD(RL11 "Host: :80\r\n\r\n", -400),
    BAD(RL11 "Host: [::1\r\n\r\n", -400),
    BAD(RL11 "Host: []\r\n\r\n", -400),
    BAD(RL11 "Host: a%zz\r\n\r\n", -400),
    BAD("GET http://a/ HTTP/1.1\r\n\r\n", -400),
    /* Version. */
    BAD("GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505),
    BAD("GET / HTTP/1.2\r\nHost: a\r\n\r\n", -505),
    BAD("GET / HTTP/0.9\r\n\r\n", -505),
    BAD("GET / HTTP/3.1\r\n\r\n", -505),
    BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", -400),
    BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400),
    BAD("GET / HTTP/11\r\nHost: a\r\n\r\n", -400),
    BAD("GET / HTTP/1\r\nHost: a\r\n\r\n", -400),
    BAD("GET / http/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET / HTTP/1.x\r\nHost: a\r\n\r\n", -400),
    BAD("GET /\r\n\r\n", -400),
    BAD("GET\r\n\r\n", -400),
    /* Request line shape. */
    BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("G\xc3\xa9T / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET /a\001b HTTP/1.1\r\nHost: a\r\n\r\n", -400), /* octal: \x01b is one byte */
    BAD("GET /a\177b HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    /* Target forms (RFC 9112 3.2). */
    BAD("GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET a HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("CONNECT example.com: HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("CONNECT http://example.com/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET ftp://x/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET http:/x/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET http://u@h/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("GET http://h:x/ HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    /* Malformed bytes are refused before the head is complete. */
    BAD("GET /\x01", -400),
    BAD("GET /a\r", -400),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nX: \0", -400),
    BAD("GET / HTTP/1.1\r\nHost: a\r\n x", -400),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n", -400),
    BAD("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n", -400),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n", -400),
    BAD("GET / HTTPX", -400),
    BAD("GET * ", -400),
    /* Limits. */
    BAD_LIM("GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n", -414, 20, 0),
    BAD_LIM("GET /0123456789012345", -414, 20, 0),
    BAD_LIM("GET /0123456789 HTTP/", -414, 20, 0),
    BAD_LIM("GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n", -431, 40, 0),
    BAD_LIM("GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789", -431, 40, 0),
    BAD_LIM("\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", -431, 20, 0),
    BAD_LIM("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n", -431, 20, 0),
    BAD_LIM("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", -431, 0, 2),
    BAD_LIM("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB", -431, 0, 2),
    BAD_LIM("GET / HTTP/1.1\r\nHost: a\r\n\r\n", -431, 0, ZERO_CAP),
    BAD_LIM("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n", -431, 0, ZERO_CAP),
};

static void test_malformed_requests(void)
{
    grace__http_request_t req;

    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case_t *c = &bad_cases[i];
        const size_t max = c->max ? c->max : DEFAULT_MAX;
        const size_t cap = c->cap == ZERO_CAP ? 0 : c->cap ? c->cap : DEFAULT_CAP;
        const int r = parse_n(c->in, c->len, max, cap, &req);
        if (r != c->want)
            TEST_FAIL_("bad case %zu (%.*s): returned %d, want %d", i, (int)c->len, c->in, r,
                       c->want);
        /* No prefix of a malformed request may be accepted either. */
        for (size_t n = 0; n < c->len; n++) {
            const int rp = parse_n(c->in, n, max, cap, &req);
            if (rp > 0)
                TEST_FAIL_("bad case %zu cut at %zu: accepted (%d)", i, n, rp);
        }
    }
}

/* ---- Limits, built at run time ------------------------------------------------ */

static void test_limits(void)
{
    grace__http_request_t req;
    static char in[16384];
    const size_t path_len = 1000;

    /* "GET /aaa... HTTP/1.1" of line_len bytes, then Host and the end. */
    memcpy(in, "GET /", 5);
    memset(in + 5, 'a', path_len);
    size_t n = 5 + path_len;
    static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    memcpy(in + n, tail, sizeof tail - 1);
    const size_t line_len = n + 9, head_len = n + sizeof tail - 1;

    EXPECT_EQ(parse_n(in, head_len, head_len, DEFAULT_CAP, &req), (int)head_len);
    EXPECT_EQ(parse_n(in, head_len, head_len - 1, DEFAULT_CAP, &req), -431);
    EXPECT_EQ(parse_n(in, head_len, line_len, DEFAULT_CAP, &req), -431);
    EXPECT_EQ(parse_n(in, head_len, line_len - 1, DEFAULT_CAP, &req), -414);
    /* Incomplete: too long as soon as the line passes the limit. */
    EXPECT_EQ(parse_n(in, line_len - 1, line_len - 1, DEFAULT_CAP, &req), 0);
    EXPECT_EQ(parse_n(in, line_len, line_len - 1, DEFAULT_CAP, &req), -414);
    EXPECT_EQ(parse_n(in, 600, 599, DEFAULT_CAP, &req), -414);
    EXPECT_EQ(parse_n(in, 600, 600, DEFAULT_CAP, &req), 0);
    /* The line's CR is not part of the line: a line that fits followed by
     * more bytes than the limit is a head too long, not a line too long. */
    EXPECT_EQ(parse_n(in, line_len + 1, line_len + 1, DEFAULT_CAP, &req), 0);
    EXPECT_EQ(parse_n(in, line_len + 1, line_len, DEFAULT_CAP, &req), -431);
    EXPECT_EQ(parse_n(in, line_len + 2, line_len, DEFAULT_CAP, &req), -431);

    /* Header count: exactly the capacity passes, one more is -431. */
    n = 0;
    n += (size_t)sprintf(in + n, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 99; i++)
        n += (size_t)sprintf(in + n, "X-%d: %d\r\n", i, i);
    n += (size_t)sprintf(in + n, "\r\n");
    EXPECT_EQ(parse_n(in, n, DEFAULT_MAX, 100, &req), (int)n);
    EXPECT_EQ(req.n_headers, 100);
    EXPECT_STR(req.headers[99].name, "X-98");
    EXPECT_STR(req.headers[99].value, "98");
    EXPECT_EQ(parse_n(in, n, DEFAULT_MAX, 99, &req), -431);
    EXPECT_EQ(parse_n(in, n - 2, DEFAULT_MAX, 99, &req), -431);

    /* A head bigger than the default limit, all valid. */
    n = (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    memset(in + n, 'v', 9000);
    n += 9000;
    n += (size_t)sprintf(in + n, "\r\n\r\n");
    EXPECT_EQ(parse_n(in, n, DEFAULT_MAX, DEFAULT_CAP, &req), -431);
    EXPECT_EQ(parse_n(in, DEFAULT_MAX, DEFAULT_MAX, DEFAULT_CAP, &req), 0);
    EXPECT_EQ(parse_n(in, DEFAULT_MAX + 1, DEFAULT_MAX, DEFAULT_CAP, &req), -431);
    EXPECT_EQ(parse_n(in, n, 16384, DEFAULT_CAP, &req), (int)n);
    EXPECT_EQ(req.headers[1].value.len, 9000);
}

/* The target and field values are skipped a word at a time: put every
 * kind of byte at every offset of a long run, so each lane of a word and
 * the byte-wise tail after it are both exercised. */
static void test_word_scan(void)
{
    static const unsigned char bytes[] = {0x00, 0x01, '\t', '\n', '\r', 0x1f, ' ',  '!',
                                          '~',  0x7f, 0x80, 0xa0, 0xfe, 0xff, 0x20, 0x21};
    grace__http_request_t req;
    char in[256];

    for (size_t b = 0; b < sizeof bytes; b++) {
        const unsigned char c = bytes[b];
        const bool value_ok = c == '\t' || (c >= 0x20 && c != 0x7f);
        const bool target_ok = c >= 0x21 && c <= 0x7e;
        for (size_t at = 0; at < 40; at++) {
            /* Value: "X: " + 40 'v' with byte c at offset at (a leading or
             * trailing SP/HTAB is trimmed, not part of the value). */
            size_t n = (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
            char *v = in + n;
            memset(v, 'v', 40);
            v[at] = (char)c;
            n += 40;
            n += (size_t)sprintf(in + n, "\r\n\r\n");
            int r = parse_n(in, n, DEFAULT_MAX, DEFAULT_CAP, &req);
            if (value_ok ? r != (int)n : r != -400)
                TEST_FAIL_("value byte 0x%02x at %zu: %d", c, at, r);
            const bool trimmed = (c == ' ' || c == '\t') && (at == 0 || at == 39);
            if (value_ok && r > 0 && req.headers[1].value.len != (trimmed ? 39u : 40u))
                TEST_FAIL_("value byte 0x%02x at %zu: length %zu", c, at, req.headers[1].value.len);
            /* The same run cut right after the byte: incomplete or -400. */
            r = parse_n(in, (size_t)(v - in) + at + 1, DEFAULT_MAX, DEFAULT_CAP, &req);
            if (r != (value_ok || c == '\r' ? 0 : -400))
                TEST_FAIL_("value byte 0x%02x at %zu, cut: %d", c, at, r);

            /* Target: "/" + 40 't' with byte c at offset at. */
            n = (size_t)sprintf(in, "GET /");
            char *t = in + n;
            memset(t, 't', 40);
            t[at] = (char)c;
            n += 40;
            n += (size_t)sprintf(in + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
            r = parse_n(in, n, DEFAULT_MAX, DEFAULT_CAP, &req);
            if (target_ok ? r != (int)n || req.target.len != 41 : r != -400)
                TEST_FAIL_("target byte 0x%02x at %zu: %d", c, at, r);
        }
    }
}

/* Fields the parser derives must not leak from one call into the next. */
static void test_fields_reset(void)
{
    grace__http_request_t req;

    EXPECT_EQ(parse_n(S(POST11 "Content-Length: 7\r\nExpect: 100-continue\r\n\r\n"), DEFAULT_MAX,
                      DEFAULT_CAP, &req),
              (int)sizeof(POST11 "Content-Length: 7\r\nExpect: 100-continue\r\n\r\n") - 1);
    EXPECT_EQ(req.content_length, 7);
    EXPECT_TRUE(req.expect_continue);
    EXPECT_EQ(parse_n(S("GET / HTTP/1.0\r\n\r\n"), DEFAULT_MAX, DEFAULT_CAP, &req), 18);
    EXPECT_EQ(req.content_length, -1);
    EXPECT_EQ(req.n_headers, 0);
    EXPECT_TRUE(!req.expect_continue && !req.has_host && !req.chunked && !req.keep_alive);
    EXPECT_TRUE(req.query.ptr == NULL);
    /* Nothing yet, or only the start of the empty lines allowed first. */
    EXPECT_EQ(parse_n(S(""), DEFAULT_MAX, DEFAULT_CAP, &req), 0);
    EXPECT_EQ(parse_n(S("\r"), DEFAULT_MAX, DEFAULT_CAP, &req), 0);
    EXPECT_EQ(parse_n(S("\r\n\r"), DEFAULT_MAX, DEFAULT_CAP, &req), 0);
}

/* ---- Mutation fuzzing ------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void check_accepted(const char *b, size_t len, int r, const grace__http_request_t *req)
{
    if (r < 0) {
        if (r != -400 && r != -414 && r != -431 && r != -501 && r != -505)
            TEST_FAIL_("unexpected status %d", r);
        return;
    }
    if (r == 0)
        return;
    if ((size_t)r > len || r < 4 || memcmp(b + r - 4, "\r\n\r\n", 4) != 0) {
        TEST_FAIL_("accepted head of %d bytes does not end in an empty line", r);
        return;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const grace_str_t v = req->headers[i].value;
        if (req->headers[i].name.len == 0 || memchr(v.ptr, '\r', v.len) ||
            memchr(v.ptr, '\n', v.len) || memchr(v.ptr, '\0', v.len))
            TEST_FAIL_("accepted a header with CR, LF or NUL");
    }
    if (req->chunked && req->content_length >= 0)
        TEST_FAIL_("accepted both chunked and Content-Length");
}

static void test_fuzz_parser(void)
{
    static const char *const seeds[] = {
        POST11 "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello",
        POST11 "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n0\r\n\r\n",
        "\r\nGET http://h:1/p?q HTTP/1.0\r\nConnection: close\r\n\r\n",
    };
    static const char interesting[] = " \t\r\n:,;\0\x7f\x80/?*0aA";
    grace__http_request_t req;
    char in[512];

    for (int iter = 0; iter < 40000; iter++) {
        const char *seed = seeds[rng() % (sizeof seeds / sizeof seeds[0])];
        size_t n = strlen(seed);
        memcpy(in, seed, n);
        for (int m = (int)(rng() % 4) + 1; m > 0; m--) {
            const size_t at = (size_t)(rng() % (n + 1));
            const char c =
                rng() % 2 ? interesting[rng() % (sizeof interesting - 1)] : (char)(rng() & 0xff);
            switch (rng() % 3) {
            case 0: /* replace */
                if (at < n)
                    in[at] = c;
                break;
            case 1: /* insert */
                if (n < sizeof in) {
                    memmove(in + at + 1, in + at, n - at);
                    in[at] = c;
                    n++;
                }
                break;
            default: /* delete */
                if (at < n) {
                    memmove(in + at, in + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        const int r = parse_n(in, n, 256, 8, &req);
        check_accepted(guard_area + guard_size - n, n, r, &req);
        /* A head is self-delimiting: exactly its bytes parse the same. */
        if (r > 0 && parse_n(in, (size_t)r, 256, 8, &req) != r)
            TEST_FAIL_("head of %d bytes does not parse alone", r);
    }
}

/* ---- Chunked decoder ---------------------------------------------------------------- */

typedef struct {
    const char *in;
    size_t len;
    uint64_t max; /* 0: 1 MiB */
    ssize_t want; /* leftover byte count, or -1, -2, -3 */
    const char *body;
    size_t body_len;
    const char *leftover; /* NULL: "" */
} chunk_case_t;

#define MiB (1u << 20)
#define CH(in, max, want, body, rest)                                                              \
    {                                                                                              \
        in, sizeof(in) - 1, max, want, body, sizeof(body) - 1, rest                                \
    }

static const chunk_case_t chunk_cases[] = {
    CH("5\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", NULL),
    CH("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, 0, "hello world", NULL),
    CH("a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", 0, 0, "0123456789abcdefghij", NULL),
    CH("0005\r\nhello\r\n000\r\n\r\n", 0, 0, "hello", NULL),
    CH("5;foo=bar\r\nhello\r\n0;last\r\n\r\n", 0, 0, "hello", NULL),
    CH("5;a=\"b c;d\\\"\";e\r\nhello\r\n0\r\n\r\n", 0, 0, "hello", NULL),
    CH("5 ;a\r\nhello\r\n0\t ;b\r\n\r\n", 0, 0, "hello", NULL),
    CH("5\r\nhello\r\n0\r\nX-T: a\r\nY:b c\r\nZ:\r\n\r\n", 0, 0, "hello", NULL),
    CH("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 0, 16, "abc", "GET / HTTP/1.1\r\n"),
    CH("0\r\n\r\n0\r\n\r\n", 0, 5, "", "0\r\n\r\n"),
    CH("0\r\n\r\n", 0, 0, "", NULL),
    CH("4\r\n\r\n\r\n\r\n0\r\n\r\n", 0, 0, "\r\n\r\n", NULL),
    CH("3\r\n\0\x01\xff\r\n0\r\n\r\n", 0, 0, "\0\x01\xff", NULL),
    CH("5\r\nhello\r\n0\r\n\r\n", 5, 0, "hello", NULL),
    CH("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 10, 0, "helloworld", NULL),
    /* Incomplete. */
    CH("5\r\nhel", 0, -2, "hel", NULL),
    CH("5\r\nhello\r\n0\r\n\r", 0, -2, "hello", NULL),
    CH("5\r\nhello\r\n0\r\nX: y\r\n", 0, -2, "hello", NULL),
    CH("", 0, -2, "", NULL),
    /* Too large. */
    CH("5\r\nhello\r\n0\r\n\r\n", 4, -3, "", NULL),
    CH("3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", 5, -3, "abc", NULL),
    CH("6\r\nhello!", 5, -3, "", NULL), /* refused at the size, before any data */
    CH("ffffffffffffffff\r\n", 0, -3, "", NULL),
    CH("1000000000", 0, -3, "", NULL),
    /* Found by tests/fuzz/fuzz_chunked: even with no limit (UINT64_MAX),
     * sizes that add up past 2^64 - 1 are "too large", never a wrap. */
    CH("5\r\nhello\r\nffffffffffffffff\r\n", UINT64_MAX, -3, "", NULL),
    CH("5\r\nhello\r\nfffffffffffffffa\r\n", UINT64_MAX, -2, "hello", NULL),
    /* Malformed. */
    CH("00000000000000001\r\nx\r\n0\r\n\r\n", UINT64_MAX, -1, "", NULL),
    CH("x\r\n", 0, -1, "", NULL),
    CH("\r\n", 0, -1, "", NULL),
    CH("-1\r\n", 0, -1, "", NULL),
    CH("+5\r\nhello\r\n", 0, -1, "", NULL),
    CH(" 5\r\nhello\r\n", 0, -1, "", NULL),
    CH("0x5\r\nhello\r\n", 0, -1, "", NULL),
    CH("5 \r\nhello\r\n0\r\n\r\n", 0, -1, "", NULL),
    CH("5 5\r\nhello\r\n", 0, -1, "", NULL),
    CH("5\nhello\r\n0\r\n\r\n", 0, -1, "", NULL),
    CH("5\r\r\nhello\r\n", 0, -1, "", NULL),
    CH("5;a\x01\r\nhello\r\n", 0, -1, "", NULL),
    CH("5;a\nb\r\nhello\r\n", 0, -1, "", NULL),
    CH("5;a\0\r\nhello\r\n", 0, -1, "", NULL),
    CH("5\r\nhelloX\r\n0\r\n\r\n", 0, -1, "hello", NULL),
    CH("5\r\nhello\n0\r\n\r\n", 0, -1, "hello", NULL),
    CH("5\r\nhello\r0\r\n\r\n", 0, -1, "hello", NULL),
    CH("3\r\nabcd\r\n0\r\n\r\n", 0, -1, "abc", NULL),
    CH("5\r\nhello\r\n\r\n", 0, -1, "hello", NULL),
    CH("0\r\n\n", 0, -1, "", NULL),
    CH("0\r\nX: a\r\n b\r\n\r\n", 0, -1, "", NULL),
    CH("0\r\n X: a\r\n\r\n", 0, -1, "", NULL),
    CH("0\r\nX\r\n\r\n", 0, -1, "", NULL),
    CH("0\r\nX : a\r\n\r\n", 0, -1, "", NULL),
    CH("0\r\n: a\r\n\r\n", 0, -1, "", NULL),
    CH("0\r\nX: a\n\r\n", 0, -1, "", NULL),
    CH("0\r\nX: a\0\r\n\r\n", 0, -1, "", NULL),
    CH("0\r\nX: a\rb\r\n\r\n", 0, -1, "", NULL),
};

typedef struct {
    ssize_t status;
    char body[512];
    size_t body_len;
    char rest[512]; /* leftover bytes after the body, including unfed input */
    size_t rest_len;
} feed_result_t;

/* Feed in[0..len) in pieces ending at each cut (increasing, the last == len),
 * following the protocol documented at grace__chunked_decode literally, in a
 * heap buffer of exactly len bytes so ASan sees any access past it. */
static void feed_protocol(const char *in, size_t len, const size_t *cuts, size_t n_cuts,
                          uint64_t max, feed_result_t *out)
{
    grace__chunked_t d = {0};
    char *base = malloc(len ? len : 1);
    size_t body = 0, fed = 0;
    ssize_t r = -2;

    for (size_t k = 0; k < n_cuts && r == -2; k++) {
        size_t n = cuts[k] - fed;
        memcpy(base + body, in + fed, n); /* only NEW bytes, right after the body */
        fed = cuts[k];
        r = grace__chunked_decode(&d, base + body, &n, max);
        if (r == -1 || r == -3)
            break;
        body += n;
        if (r >= 0) {
            out->rest_len = (size_t)r + (len - fed);
            memcpy(out->rest, base + body, (size_t)r);
            memcpy(out->rest + r, in + fed, len - fed);
            r = (ssize_t)out->rest_len; /* as if all input had come at once */
        }
    }
    out->status = r;
    out->body_len = body;
    memcpy(out->body, base, body);
    free(base);
}

/* Feed in pieces, each copied to end at the guard page; the decoded bytes
 * are collected aside, since the decoder never looks before buf. */
static void feed_guarded(const char *in, size_t len, const size_t *cuts, size_t n_cuts,
                         uint64_t max, feed_result_t *out)
{
    grace__chunked_t d = {0};
    size_t fed = 0;
    ssize_t r = -2;

    out->body_len = 0;
    for (size_t k = 0; k < n_cuts && r == -2; k++) {
        size_t n = cuts[k] - fed;
        char *b = guard_put(in + fed, n);
        fed = cuts[k];
        r = grace__chunked_decode(&d, b, &n, max);
        if (r == -1 || r == -3)
            break;
        memcpy(out->body + out->body_len, b, n);
        out->body_len += n;
        if (r >= 0) {
            out->rest_len = (size_t)r + (len - fed);
            memcpy(out->rest, b + n, (size_t)r);
            memcpy(out->rest + r, in + fed, len - fed);
            r = (ssize_t)out->rest_len;
        }
    }
    out->status = r;
}

static void expect_feed(const chunk_case_t *c, size_t i, const char *how, const feed_result_t *f)
{
    if (f->status != c->want) {
        TEST_FAIL_("chunk case %zu (%s): status %zd, want %zd", i, how, f->status, c->want);
        return;
    }
    if (c->want == -1 || c->want == -3)
        return;
    if (f->body_len != c->body_len || memcmp(f->body, c->body, c->body_len) != 0)
        TEST_FAIL_("chunk case %zu (%s): body \"%.*s\", want \"%s\"", i, how, (int)f->body_len,
                   f->body, c->body);
    if (c->want >= 0) {
        const char *lo = c->leftover ? c->leftover : "";
        if (f->rest_len != strlen(lo) || memcmp(f->rest, lo, f->rest_len) != 0)
            TEST_FAIL_("chunk case %zu (%s): leftover \"%.*s\", want \"%s\"", i, how,
                       (int)f->rest_len, f->rest, lo);
    }
}

static void test_chunked_table(void)
{
    size_t cuts[512];
    feed_result_t f;

    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const chunk_case_t *c = &chunk_cases[i];
        const uint64_t max = c->max ? c->max : MiB;

        /* Whole. */
        cuts[0] = c->len;
        feed_guarded(c->in, c->len, cuts, 1, max, &f);
        expect_feed(c, i, "whole", &f);
        feed_protocol(c->in, c->len, cuts, 1, max, &f);
        expect_feed(c, i, "whole, protocol", &f);

        /* Split in two at every byte. */
        for (size_t k = 1; k < c->len; k++) {
            cuts[0] = k;
            cuts[1] = c->len;
            feed_protocol(c->in, c->len, cuts, 2, max, &f);
            expect_feed(c, i, "split", &f);
            feed_guarded(c->in, c->len, cuts, 2, max, &f);
            expect_feed(c, i, "split, guarded", &f);
        }

        /* One byte at a time. */
        for (size_t k = 0; k < c->len; k++)
            cuts[k] = k + 1;
        if (c->len) {
            feed_protocol(c->in, c->len, cuts, c->len, max, &f);
            expect_feed(c, i, "bytewise", &f);
            feed_guarded(c->in, c->len, cuts, c->len, max, &f);
            expect_feed(c, i, "bytewise, guarded", &f);
        }
    }
}

static void test_chunked_misc(void)
{
    /* Calls after the end: every byte given is "after the body". */
    grace__chunked_t d = {0};
    char buf[64];
    size_t n = (size_t)sprintf(buf, "1\r\nx\r\n0\r\n\r\nGET");
    EXPECT_EQ(grace__chunked_decode(&d, buf, &n, MiB), 3);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(d.total, 1);
    EXPECT_STRN(buf, 4, "xGET");
    n = 3;
    EXPECT_EQ(grace__chunked_decode(&d, buf + 1, &n, MiB), 3);
    EXPECT_EQ(n, 0);

    /* Failure is sticky. */
    grace__chunked_t e = {0};
    n = (size_t)sprintf(buf, "z\r\n");
    EXPECT_EQ(grace__chunked_decode(&e, buf, &n, MiB), -1);
    n = (size_t)sprintf(buf, "0\r\n\r\n");
    EXPECT_EQ(grace__chunked_decode(&e, buf, &n, MiB), -1);

    /* Extensions and trailers are bounded. */
    static char big[20000];
    grace__chunked_t f = {0};
    n = (size_t)sprintf(big, "1;");
    memset(big + n, 'e', 5000);
    n += 5000;
    EXPECT_EQ(grace__chunked_decode(&f, big, &n, MiB), -1);
    grace__chunked_t g = {0};
    n = (size_t)sprintf(big, "0\r\nX: ");
    memset(big + n, 'v', 10000);
    n += 10000;
    EXPECT_EQ(grace__chunked_decode(&g, big, &n, MiB), -1);

    /* A large body in many chunks reaches exactly max_body. */
    grace__chunked_t h = {0};
    n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(big + n, "64\r\n%0100d\r\n", i);
    n += (size_t)sprintf(big + n, "0\r\n\r\n");
    EXPECT_EQ(grace__chunked_decode(&h, big, &n, 10000), 0);
    EXPECT_EQ(n, 10000);
    EXPECT_EQ(h.total, 10000);
    char want[101];
    sprintf(want, "%0100d", 99);
    EXPECT_STRN(big + 9900, 100, want);
}

static void test_fuzz_chunked(void)
{
    static const char *const seeds[] = {
        "5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nT: v\r\n\r\nNEXT",
        "1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
    };
    static const char interesting[] = "\r\n;0aF \t:\0";
    char in[128];
    size_t cuts[128];
    feed_result_t whole, bytewise;

    for (int iter = 0; iter < 20000; iter++) {
        const char *seed = seeds[rng() % 2];
        size_t n = strlen(seed);
        memcpy(in, seed, n);
        for (int m = (int)(rng() % 3) + 1; m > 0; m--) {
            const size_t at = (size_t)(rng() % n);
            in[at] =
                rng() % 2 ? interesting[rng() % (sizeof interesting - 1)] : (char)(rng() & 0xff);
        }
        cuts[0] = n;
        feed_guarded(in, n, cuts, 1, 64, &whole);
        for (size_t k = 0; k < n; k++)
            cuts[k] = k + 1;
        feed_protocol(in, n, cuts, n, 64, &bytewise);
        if (whole.status != bytewise.status) {
            TEST_FAIL_("fuzz: whole %zd != bytewise %zd for \"%.*s\"", whole.status,
                       bytewise.status, (int)n, in);
            continue;
        }
        if (whole.status >= 0 && (whole.body_len != bytewise.body_len ||
                                  memcmp(whole.body, bytewise.body, whole.body_len) != 0 ||
                                  whole.rest_len != bytewise.rest_len ||
                                  memcmp(whole.rest, bytewise.rest, whole.rest_len) != 0))
            TEST_FAIL_("fuzz: whole and bytewise decode differ for \"%.*s\"", (int)n, in);
    }
}

/* ---- Percent-decoding and reason phrases -------------------------------------------- */

typedef struct {
    const char *in;
    bool plus;
    const char *want; /* NULL: -1 */
    size_t want_len;
} url_case_t;

static const url_case_t url_cases[] = {
    {"abc", false, S("abc")},       {"", false, S("")},
    {"a%20b", false, S("a b")},     {"%41%42", false, S("AB")},
    {"%4a%4A%6f", false, S("JJo")}, {"%e2%82%AC", false, S("\xe2\x82\xac")},
    {"a+b", true, S("a b")},        {"a+b", false, S("a+b")},
    {"%2B+", true, S("+ ")},        {"%00x", false, S("\0x")},
    {"%25", false, S("%")},         {"%252", false, S("%2")},
    {"%", false, NULL, 0},          {"%4", false, NULL, 0},
    {"abc%", false, NULL, 0},       {"abc%a", false, NULL, 0},
    {"%4g", false, NULL, 0},        {"%g4", false, NULL, 0},
    {"%%41", false, NULL, 0},       {"% 1", false, NULL, 0},
    {"%+1", true, NULL, 0},
};

static void test_url_decode(void)
{
    char out[64], inplace[64];

    for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
        const url_case_t *c = &url_cases[i];
        const size_t n = strlen(c->in);
        const char *src = guard_put(c->in, n);
        const ssize_t r = grace__url_decode(out, src, n, c->plus);
        memcpy(inplace, c->in, n);
        const ssize_t r2 = grace__url_decode(inplace, inplace, n, c->plus);
        if (c->want == NULL) {
            if (r != -1 || r2 != -1)
                TEST_FAIL_("url case %zu (%s): returned %zd/%zd, want -1", i, c->in, r, r2);
            continue;
        }
        if (r != (ssize_t)c->want_len || memcmp(out, c->want, c->want_len) != 0 || r2 != r ||
            memcmp(inplace, c->want, c->want_len) != 0)
            TEST_FAIL_("url case %zu (%s): got %zd \"%.*s\"", i, c->in, r, (int)(r < 0 ? 0 : r),
                       out);
    }
}

static void test_status_text(void)
{
    static const int codes[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302,
                                303, 304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406,
                                407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421,
                                422, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(grace__status_text(codes[i]), "Unknown") == 0)
            TEST_FAIL_("no reason phrase for %d", codes[i]);
    EXPECT_STRN(grace__status_text(200), 2, "OK");
    EXPECT_TRUE(strcmp(grace__status_text(404), "Not Found") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(413), "Content Too Large") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(431), "Request Header Fields Too Large") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(505), "HTTP Version Not Supported") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(0), "Unknown") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(306), "Unknown") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(-404), "Unknown") == 0);
    EXPECT_TRUE(strcmp(grace__status_text(999), "Unknown") == 0);
}

TEST_MAIN(TEST(test_valid_requests), TEST(test_valid_prefixes), TEST(test_malformed_requests),
          TEST(test_limits), TEST(test_word_scan), TEST(test_fields_reset), TEST(test_fuzz_parser),
          TEST(test_chunked_table), TEST(test_chunked_misc), TEST(test_fuzz_chunked),
          TEST(test_url_decode), TEST(test_status_text))
