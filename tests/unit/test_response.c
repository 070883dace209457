/*
 * test_response.c -- unit tests of src/response.c: what a handler's calls
 * (grace_response_*) put on the wire, through grace__response_reset /
 * grace__response_finish and, for streaming, grace_response_flush.
 *
 * No connection: each test builds what conn.c would hand over -- a server
 * (its Server header and its state, RUNNING or DRAINING), a parsed request
 * (method, HTTP/1.0 or 1.1, the client's keep-alive wish, HEAD or not) --
 * and a response whose streaming writes go to a fake write function that
 * collects the bytes. The head is compared byte for byte, except the Date
 * line's value, whose shape is checked and then replaced by "<date>".
 */
#include "internal.h"
#include "test.h"

#include <errno.h>

/* ---- A request and its response, without a connection -------------------------- */

typedef struct {
    grace_server_t *server;
    grace_request_t *req;
    grace_response_t res;
    grace__buf_t wire; /* what the fake write function was given */
    int n_writes;      /* calls of it */
    int write_result;  /* what it returns */
} exchange_t;

static char server_grace[] = "grace", server_none[] = "";

static int fake_write(void *ctx, const char *data, size_t len)
{
    exchange_t *x = ctx;
    x->n_writes++;
    if (x->write_result < 0)
        return x->write_result;
    EXPECT_EQ(grace__buf_append(&x->wire, data, len), 0);
    return 0;
}

/* method: "GET", "HEAD", "CONNECT" ...; minor: 0 or 1; keep_alive: what the
 * parser derived from the version and the Connection header. */
static exchange_t *exchange_new(const char *method, int minor, bool keep_alive)
{
    exchange_t *x = calloc(1, sizeof *x);
    x->server = calloc(1, sizeof *x->server);
    x->req = calloc(1, sizeof *x->req);
    if (x->server == NULL || x->req == NULL) {
        perror("calloc");
        exit(2);
    }
    x->server->server_header = server_grace;
    atomic_store(&x->server->state, GRACE__SRV_RUNNING);
    x->req->server = x->server;
    x->req->h.method = (grace_str_t){method, strlen(method)};
    x->req->h.minor_version = minor;
    x->req->h.keep_alive = keep_alive;
    x->req->h.content_length = -1;
    x->req->is_head = strcmp(method, "HEAD") == 0;
    x->res.write = fake_write;
    x->res.write_ctx = x;
    grace__response_reset(&x->res, x->req);
    return x;
}

static void exchange_free(exchange_t *x)
{
    grace__buf_free(&x->res.headers);
    grace__buf_free(&x->res.body);
    grace__buf_free(&x->wire);
    free(x->req);
    free(x->server);
    free(x);
}

static bool is_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* An IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
static bool is_http_date(const char *d)
{
    static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    bool day = false, month = false;
    for (int i = 0; i < 7; i++)
        day |= memcmp(d, days[i], 3) == 0;
    for (int i = 0; i < 12; i++)
        month |= memcmp(d + 8, months[i], 3) == 0;
    return day && month && memcmp(d + 3, ", ", 2) == 0 && is_digits(d + 5, 2) && d[7] == ' ' &&
           d[11] == ' ' && is_digits(d + 12, 4) && d[16] == ' ' && is_digits(d + 17, 2) &&
           d[19] == ':' && is_digits(d + 20, 2) && d[22] == ':' && is_digits(d + 23, 2) &&
           memcmp(d + 25, " GMT", 4) == 0;
}

/* out[0..len) as a C string with the one Date line's value replaced by
 * "<date>" after checking its shape; NULL (and a failure) if the head has
 * no Date line, two, or a malformed one. Caller frees. */
static char *without_date(const char *out, size_t len)
{
    char *s = malloc(len + 1);
    memcpy(s, out, len);
    s[len] = '\0';
    char *head_end = strstr(s, "\r\n\r\n");
    char *date = strstr(s, "\r\nDate: ");
    if (head_end == NULL || date == NULL || date > head_end) {
        TEST_FAIL_("no Date line in \"%s\"", s);
        free(s);
        return NULL;
    }
    char *next = strstr(date + 2, "\r\nDate: ");
    if (next && next < head_end) {
        TEST_FAIL_("two Date lines in \"%s\"", s);
        free(s);
        return NULL;
    }
    char *value = date + 8;
    if (strlen(value) < 31 || !is_http_date(value) || memcmp(value + 29, "\r\n", 2) != 0) {
        TEST_FAIL_("bad Date line in \"%s\"", s);
        free(s);
        return NULL;
    }
    memcpy(value, "<date>", 6);
    memmove(value + 6, value + 29, strlen(value + 29) + 1);
    return s;
}

/* Compare bytes from the wire, Date normalised, with want. */
#define EXPECT_WIRE(ptr, len, want)                                                                \
    do {                                                                                           \
        char *got_ = without_date((ptr), (len));                                                   \
        if (got_ && strcmp(got_, (want)) != 0)                                                     \
            TEST_FAIL_("got\n%s\nwant\n%s", got_, (want));                                         \
        free(got_);                                                                                \
    } while (0)

#define SV "Server: grace\r\n"
#define D "Date: <date>\r\n"
#define CT "Content-Type: text/plain; charset=utf-8\r\n"

/* ---- Buffered answers: grace__response_finish ------------------------------------ */

typedef struct {
    const char *what;
    const char *method;
    int minor;
    bool keep_alive; /* the client's wish */
    bool draining;   /* the server's state: DRAINING instead of RUNNING */
    bool no_server;  /* server_header "" */
    int status;
    const char *content_type, *content_length, *connection; /* set by the handler; NULL: not */
    const char *body;
    const char *want;
} finish_case_t;

static const finish_case_t finish_cases[] = {
    {"GET, HTTP/1.1", "GET", 1, true, false, false, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\n\r\nhello"},
    {"empty body", "GET", 1, true, false, false, 200, NULL, NULL, NULL, "",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\n\r\n"},
    {"no Server header", "GET", 1, true, false, true, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" D CT "Content-Length: 5\r\n\r\nhello"},
    {"status text", "GET", 1, true, false, false, 404, NULL, NULL, NULL, "no\n",
     "HTTP/1.1 404 Not Found\r\n" SV D CT "Content-Length: 3\r\n\r\nno\n"},
    {"unknown status", "GET", 1, true, false, false, 299, NULL, NULL, NULL, "",
     "HTTP/1.1 299 Unknown\r\n" SV D CT "Content-Length: 0\r\n\r\n"},
    {"Content-Type set", "GET", 1, true, false, false, 201, "application/json", NULL, NULL, "{}",
     "HTTP/1.1 201 Created\r\n" SV D
     "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"},
    /* Connection: the one keep-alive rule. */
    {"client asked to close", "GET", 1, false, false, false, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\nConnection: close\r\n\r\nhello"},
    {"HTTP/1.0 keep-alive", "GET", 0, true, false, false, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"},
    {"HTTP/1.0", "GET", 0, false, false, false, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\nConnection: close\r\n\r\nhello"},
    {"draining", "GET", 1, true, true, false, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\nConnection: close\r\n\r\nhello"},
    {"draining, HTTP/1.0 keep-alive", "GET", 0, true, true, false, 200, NULL, NULL, NULL, "",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {"CONNECT", "CONNECT", 1, true, false, false, 405, NULL, NULL, NULL, "",
     "HTTP/1.1 405 Method Not Allowed\r\n" SV D CT
     "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {"handler asked to close", "GET", 1, true, false, false, 200, NULL, NULL, "close", "",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {"handler's Connection: Close", "GET", 0, true, false, false, 200, NULL, NULL, "Close", "",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    {"handler's keep-alive changes nothing", "GET", 1, true, false, false, 200, NULL, NULL,
     "keep-alive", "", "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\n\r\n"},
    {"handler's keep-alive cannot keep a draining server's", "GET", 1, true, true, false, 200, NULL,
     NULL, "keep-alive", "",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\nConnection: close\r\n\r\n"},
    /* No content: 204 and 304 without framing, 205 with Content-Length: 0. */
    {"204", "GET", 1, true, false, false, 204, NULL, NULL, NULL, "dropped",
     "HTTP/1.1 204 No Content\r\n" SV D "\r\n"},
    {"304", "GET", 1, true, false, false, 304, NULL, NULL, NULL, "dropped",
     "HTTP/1.1 304 Not Modified\r\n" SV D "\r\n"},
    {"304, HTTP/1.0 keep-alive", "GET", 0, true, false, false, 304, NULL, NULL, NULL, "",
     "HTTP/1.1 304 Not Modified\r\n" SV D "Connection: keep-alive\r\n\r\n"},
    {"304 with a handler's Content-Length", "GET", 1, true, false, false, 304, NULL, "10", NULL, "",
     "HTTP/1.1 304 Not Modified\r\n" SV D "\r\n"},
    {"205", "GET", 1, true, false, false, 205, NULL, NULL, NULL, "dropped",
     "HTTP/1.1 205 Reset Content\r\n" SV D "Content-Length: 0\r\n\r\n"},
    {"205 with a handler's Content-Length", "GET", 1, true, false, false, 205, NULL, "10", NULL, "",
     "HTTP/1.1 205 Reset Content\r\n" SV D "Content-Length: 0\r\n\r\n"},
    /* HEAD: the head a GET would get, no body. */
    {"HEAD with a handler's Content-Length", "HEAD", 1, true, false, false, 200, NULL, "1234", NULL,
     "", "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 1234\r\n\r\n"},
    {"HEAD with a body written", "HEAD", 1, true, false, false, 200, NULL, NULL, NULL, "hello",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\n\r\n"},
    {"HEAD, nothing", "HEAD", 1, true, false, false, 200, NULL, NULL, NULL, "",
     "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 0\r\n\r\n"},
    {"HEAD, 204", "HEAD", 1, true, false, false, 204, NULL, "5", NULL, "",
     "HTTP/1.1 204 No Content\r\n" SV D "\r\n"},
    /* A buffered body's own length wins over a handler's Content-Length:
     * the frame never disagrees with the bytes. */
    {"GET with a handler's Content-Length", "GET", 1, true, false, false, 200, NULL, "3", NULL,
     "hello", "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 5\r\n\r\nhello"},
};

static void test_finish_table(void)
{
    for (size_t i = 0; i < sizeof finish_cases / sizeof finish_cases[0]; i++) {
        const finish_case_t *c = &finish_cases[i];
        exchange_t *x = exchange_new(c->method, c->minor, c->keep_alive);
        if (c->draining)
            atomic_store(&x->server->state, GRACE__SRV_DRAINING);
        if (c->no_server)
            x->server->server_header = server_none;
        grace_response_t *res = &x->res;
        int r = grace_response_set_status(res, c->status);
        if (c->content_type)
            r |= grace_response_set_header(res, "Content-Type", c->content_type);
        if (c->content_length)
            r |= grace_response_set_header(res, "Content-Length", c->content_length);
        if (c->connection)
            r |= grace_response_set_header(res, "Connection", c->connection);
        r |= grace_response_write(res, c->body, strlen(c->body));
        if (r != 0)
            TEST_FAIL_("finish case %zu (%s): the handler's calls failed", i, c->what);
        const bool keep = grace__response_keep_alive(res);
        grace__buf_t out = {0};
        EXPECT_EQ(grace__response_finish(res, &out), 0);
        char *got = without_date(out.ptr, out.len);
        if (got && strcmp(got, c->want) != 0)
            TEST_FAIL_("finish case %zu (%s): got\n%s\nwant\n%s", i, c->what, got, c->want);
        /* The head says what the connection will do. */
        const bool says_close = got && strstr(got, "Connection: close\r\n") != NULL;
        if (keep == says_close || res->conn_close != says_close)
            TEST_FAIL_("finish case %zu (%s): keep-alive %d, conn_close %d, head says close %d", i,
                       c->what, keep, res->conn_close, says_close);
        EXPECT_EQ(x->n_writes, 0); /* buffered: nothing written directly */
        free(got);
        grace__buf_free(&out);
        exchange_free(x);
    }
}

/* The response is reset for every request of a connection: nothing of the
 * previous answer (status, headers, body, wishes) leaks into the next. */
static void test_reset_between_requests(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    grace_response_t *res = &x->res;
    EXPECT_EQ(grace_response_set_status(res, 404), 0);
    EXPECT_EQ(grace_response_set_header(res, "X-Old", "1"), 0);
    EXPECT_EQ(grace_response_set_header(res, "Content-Type", "text/html"), 0);
    EXPECT_EQ(grace_response_set_header(res, "Content-Length", "7"), 0);
    EXPECT_EQ(grace_response_set_header(res, "Connection", "close"), 0);
    EXPECT_EQ(grace_response_write(res, "old", 3), 0);
    grace__response_reset(res, x->req);
    EXPECT_EQ(grace_response_status(res), 200);
    EXPECT_EQ(grace_response_write(res, "new", 3), 0);
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(res, &out), 0);
    EXPECT_WIRE(out.ptr, out.len, "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 3\r\n\r\nnew");
    grace__buf_free(&out);
    exchange_free(x);
}

/* ---- Headers ------------------------------------------------------------------------ */

static void test_set_and_add_header(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    grace_response_t *res = &x->res;
    EXPECT_EQ(grace_response_add_header(res, "Set-Cookie", "a=1"), 0);
    EXPECT_EQ(grace_response_add_header(res, "Set-Cookie", "b=2"), 0); /* add keeps both */
    EXPECT_EQ(grace_response_add_header(res, "X-A", "1"), 0);
    EXPECT_EQ(grace_response_add_header(res, "X-AB", "keep"), 0);
    EXPECT_EQ(grace_response_add_header(res, "x-a", "2"), 0);
    EXPECT_STRN(res->headers.ptr, res->headers.len,
                "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-A: 1\r\nX-AB: keep\r\nx-a: 2\r\n");
    /* set replaces every earlier one, whatever its case, and only that name
     * (not X-AB, which starts with it). */
    EXPECT_EQ(grace_response_set_header(res, "X-a", "3"), 0);
    EXPECT_STRN(res->headers.ptr, res->headers.len,
                "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-AB: keep\r\nX-a: 3\r\n");
    EXPECT_EQ(grace_response_set_header(res, "set-cookie", "c=3"), 0);
    EXPECT_STRN(res->headers.ptr, res->headers.len, "X-AB: keep\r\nX-a: 3\r\nset-cookie: c=3\r\n");
    /* A value may be empty, and may hold spaces and tabs. */
    EXPECT_EQ(grace_response_set_header(res, "X-Empty", ""), 0);
    EXPECT_EQ(grace_response_set_header(res, "X-Tab", "a\tb c"), 0);
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(res, &out), 0);
    EXPECT_WIRE(out.ptr, out.len,
                "HTTP/1.1 200 OK\r\n" SV D
                "X-AB: keep\r\nX-a: 3\r\nset-cookie: c=3\r\nX-Empty: \r\nX-Tab: a\tb c\r\n" CT
                "Content-Length: 0\r\n\r\n");
    grace__buf_free(&out);
    exchange_free(x);
}

static void test_header_refused(void)
{
    static const char *const bad_values[] = {
        "a\r\nX-Evil: 1", "a\rb", "a\nb", "\r", "\n", "\r\n", "a\r\n\r\n<html>",
    };
    static const char *const bad_names[] = {
        "", "X A", "X:A", "X-A:", "X\r\nY", "X\n", "(x)", "a/b", "\xc3\xa4", "X\x7f", "\t",
    };
    static const char *const bad_lengths[] = {
        "", "-1", "+5", " 5", "5 ", "5x", "0x10", "1e3", "99999999999999999999", "5\r\n",
    };
    exchange_t *x = exchange_new("GET", 1, true);
    grace_response_t *res = &x->res;
    for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
        EXPECT_EQ(grace_response_set_header(res, "X-A", bad_values[i]), GRACE_EINVAL);
        EXPECT_EQ(grace_response_add_header(res, "X-A", bad_values[i]), GRACE_EINVAL);
        EXPECT_EQ(grace_response_set_header(res, "Connection", bad_values[i]), GRACE_EINVAL);
    }
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        EXPECT_EQ(grace_response_set_header(res, bad_names[i], "v"), GRACE_EINVAL);
        EXPECT_EQ(grace_response_add_header(res, bad_names[i], "v"), GRACE_EINVAL);
    }
    for (size_t i = 0; i < sizeof bad_lengths / sizeof bad_lengths[0]; i++)
        EXPECT_EQ(grace_response_set_header(res, "Content-Length", bad_lengths[i]), GRACE_EINVAL);
    /* Framing is grace's. */
    EXPECT_EQ(grace_response_set_header(res, "Transfer-Encoding", "chunked"), GRACE_EINVAL);
    EXPECT_EQ(grace_response_add_header(res, "transfer-encoding", "gzip"), GRACE_EINVAL);
    EXPECT_EQ(grace_response_set_header(res, NULL, "v"), GRACE_EINVAL);
    EXPECT_EQ(grace_response_set_header(res, "X-A", NULL), GRACE_EINVAL);
    /* Nothing of it reached the response. */
    EXPECT_EQ(res->headers.len, 0);
    EXPECT_EQ(res->fixed_length, -1);
    EXPECT_TRUE(!res->conn_close && !res->has_content_type);
    EXPECT_EQ(grace_response_set_status(res, 199), GRACE_EINVAL); /* 1xx are grace's */
    EXPECT_EQ(grace_response_set_status(res, 1000), GRACE_EINVAL);
    EXPECT_EQ(grace_response_set_status(res, -200), GRACE_EINVAL);
    EXPECT_EQ(grace_response_status(res), 200);
    EXPECT_EQ(grace_response_set_status(res, 999), 0);
    exchange_free(x);
}

/* ---- Streaming: grace_response_flush ---------------------------------------------- */

static void test_flush_chunked(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    grace_response_t *res = &x->res;
    EXPECT_EQ(grace_response_set_header(res, "X-A", "1"), 0);
    EXPECT_EQ(grace_response_write(res, "hello", 5), 0);
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_EQ(x->n_writes, 1);
    EXPECT_WIRE(x->wire.ptr, x->wire.len,
                "HTTP/1.1 200 OK\r\n" SV D "X-A: 1\r\n" CT
                "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    /* Each flush sends what was written since, as one chunk. */
    x->wire.len = 0;
    char big[300];
    memset(big, 'b', sizeof big);
    EXPECT_EQ(grace_response_write(res, big, sizeof big), 0);
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_EQ(x->n_writes, 2);
    EXPECT_TRUE(x->wire.len == 5 + 300 + 2 && memcmp(x->wire.ptr, "12c\r\n", 5) == 0 &&
                memcmp(x->wire.ptr + 305, "\r\n", 2) == 0);
    /* A flush with nothing new writes nothing (an empty chunk would end the body). */
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_EQ(x->n_writes, 2);
    /* The head is gone: no more status or headers, no clearing. */
    EXPECT_EQ(grace_response_set_status(res, 500), GRACE_ESENT);
    EXPECT_EQ(grace_response_set_header(res, "X-B", "2"), GRACE_ESENT);
    EXPECT_EQ(grace_response_add_header(res, "X-B", "2"), GRACE_ESENT);
    EXPECT_EQ(grace_response_clear(res), GRACE_ESENT);
    EXPECT_EQ(grace_response_status(res), 200);
    /* finish: what is left, then the terminating zero-size chunk. */
    EXPECT_EQ(grace_response_write(res, "end", 3), 0);
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(res, &out), 0);
    EXPECT_STRN(out.ptr, out.len, "3\r\nend\r\n0\r\n\r\n");
    EXPECT_TRUE(!res->conn_close && grace__response_keep_alive(res));
    EXPECT_EQ(x->n_writes, 2);
    grace__buf_free(&out);
    exchange_free(x);
}

/* A flush before anything was written sends the head alone; the body may
 * still be empty: finish ends it with the zero-size chunk only. */
static void test_flush_head_only(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    EXPECT_EQ(grace_response_flush(&x->res), 0);
    EXPECT_EQ(x->n_writes, 1);
    EXPECT_WIRE(x->wire.ptr, x->wire.len,
                "HTTP/1.1 200 OK\r\n" SV D CT "Transfer-Encoding: chunked\r\n\r\n");
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(&x->res, &out), 0);
    EXPECT_STRN(out.ptr, out.len, "0\r\n\r\n");
    grace__buf_free(&out);
    exchange_free(x);
}

/* With the handler's Content-Length: that frame, the bytes as they are, and
 * nothing added at the end. */
static void test_flush_fixed_length(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    grace_response_t *res = &x->res;
    EXPECT_EQ(grace_response_set_header(res, "Content-Length", "8"), 0);
    EXPECT_EQ(grace_response_write(res, "abcd", 4), 0);
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_WIRE(x->wire.ptr, x->wire.len,
                "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 8\r\n\r\nabcd");
    x->wire.len = 0;
    EXPECT_EQ(grace_response_write(res, "efgh", 4), 0);
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_STRN(x->wire.ptr, x->wire.len, "efgh");
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(res, &out), 0);
    EXPECT_EQ(out.len, 0);
    EXPECT_TRUE(grace__response_keep_alive(res));
    grace__buf_free(&out);
    exchange_free(x);
}

/* HTTP/1.0 has no chunked coding: the end of the body is the close, even
 * for a client that asked for keep-alive. */
static void test_flush_http10_close_delimited(void)
{
    exchange_t *x = exchange_new("GET", 0, true);
    grace_response_t *res = &x->res;
    EXPECT_EQ(grace_response_write(res, "hello", 5), 0);
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_WIRE(x->wire.ptr, x->wire.len,
                "HTTP/1.1 200 OK\r\n" SV D CT "Connection: close\r\n\r\nhello");
    EXPECT_TRUE(res->conn_close && !grace__response_keep_alive(res));
    EXPECT_EQ(grace_response_write(res, " world", 6), 0);
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(res, &out), 0);
    EXPECT_STRN(out.ptr, out.len, " world"); /* no chunk framing, no terminator */
    grace__buf_free(&out);
    exchange_free(x);

    /* ... unless the handler gave the length: then it may stay open. */
    x = exchange_new("GET", 0, true);
    res = &x->res;
    EXPECT_EQ(grace_response_set_header(res, "Content-Length", "5"), 0);
    EXPECT_EQ(grace_response_write(res, "hello", 5), 0);
    EXPECT_EQ(grace_response_flush(res), 0);
    EXPECT_WIRE(x->wire.ptr, x->wire.len,
                "HTTP/1.1 200 OK\r\n" SV D CT
                "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello");
    EXPECT_TRUE(!res->conn_close);
    exchange_free(x);
}

/* A draining server streams too, and closes after. */
static void test_flush_draining(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    atomic_store(&x->server->state, GRACE__SRV_DRAINING);
    EXPECT_EQ(grace_response_write(&x->res, "hi", 2), 0);
    EXPECT_EQ(grace_response_flush(&x->res), 0);
    EXPECT_WIRE(x->wire.ptr, x->wire.len,
                "HTTP/1.1 200 OK\r\n" SV D CT
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n");
    EXPECT_TRUE(x->res.conn_close);
    exchange_free(x);
}

/* No body on the wire for HEAD, 204 and 304 (so no chunk and no
 * terminator); 205 is framed with Content-Length: 0, as when buffered. */
static void test_flush_bodiless(void)
{
    static const struct {
        const char *method;
        int status;
        const char *length; /* the handler's Content-Length, or NULL */
        const char *want;
    } cases[] = {
        {"HEAD", 200, NULL, "HTTP/1.1 200 OK\r\n" SV D CT "\r\n"},
        {"HEAD", 200, "1234", "HTTP/1.1 200 OK\r\n" SV D CT "Content-Length: 1234\r\n\r\n"},
        {"GET", 204, NULL, "HTTP/1.1 204 No Content\r\n" SV D "\r\n"},
        {"GET", 304, "10", "HTTP/1.1 304 Not Modified\r\n" SV D "\r\n"},
        {"GET", 205, NULL, "HTTP/1.1 205 Reset Content\r\n" SV D "Content-Length: 0\r\n\r\n"},
        {"HEAD", 205, NULL, "HTTP/1.1 205 Reset Content\r\n" SV D "Content-Length: 0\r\n\r\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange_t *x = exchange_new(cases[i].method, 1, true);
        grace_response_t *res = &x->res;
        EXPECT_EQ(grace_response_set_status(res, cases[i].status), 0);
        if (cases[i].length)
            EXPECT_EQ(grace_response_set_header(res, "Content-Length", cases[i].length), 0);
        EXPECT_EQ(grace_response_write(res, "dropped", 7), 0);
        EXPECT_EQ(grace_response_flush(res), 0);
        EXPECT_EQ(grace_response_write(res, "dropped", 7), 0);
        EXPECT_EQ(grace_response_flush(res), 0);
        grace__buf_t out = {0};
        EXPECT_EQ(grace__response_finish(res, &out), 0);
        grace__buf_append(&x->wire, out.ptr, out.len);
        char *got = without_date(x->wire.ptr, x->wire.len);
        if (got && strcmp(got, cases[i].want) != 0)
            TEST_FAIL_("flush case %zu (%s %d): got\n%s\nwant\n%s", i, cases[i].method,
                       cases[i].status, got, cases[i].want);
        /* Every one of these is framed (or bodiless by rule): the
         * connection stays open. */
        if (res->conn_close)
            TEST_FAIL_("flush case %zu (%s %d): closes the connection", i, cases[i].method,
                       cases[i].status);
        free(got);
        grace__buf_free(&out);
        exchange_free(x);
    }
}

/* A failed write: the error, once, and no write is tried again. */
static void test_flush_write_fails(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    x->write_result = -EPIPE;
    EXPECT_EQ(grace_response_write(&x->res, "hello", 5), 0);
    EXPECT_EQ(grace_response_flush(&x->res), -EPIPE);
    EXPECT_EQ(x->n_writes, 1);
    EXPECT_TRUE(x->res.failed);
    x->write_result = 0;
    EXPECT_EQ(grace_response_write(&x->res, "more", 4), 0);
    EXPECT_EQ(grace_response_flush(&x->res), -EPIPE);
    EXPECT_EQ(x->n_writes, 1);

    exchange_free(x);
    x = exchange_new("GET", 1, true);
    x->write_result = -ETIMEDOUT;
    EXPECT_EQ(grace_response_flush(&x->res), -ETIMEDOUT);
    EXPECT_EQ(grace_response_flush(&x->res), -EPIPE);
    EXPECT_EQ(x->n_writes, 1);
    exchange_free(x);
}

/* ---- Error answers and JSON --------------------------------------------------------- */

static void test_error_answer(void)
{
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_error(&out, 400, "grace"), 0);
    EXPECT_WIRE(out.ptr, out.len,
                "HTTP/1.1 400 Bad Request\r\n" SV D CT
                "Content-Length: 12\r\nConnection: close\r\n\r\nBad Request\n");
    out.len = 0;
    EXPECT_EQ(grace__response_error(&out, 503, ""), 0);
    EXPECT_WIRE(out.ptr, out.len,
                "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n" D CT
                "Content-Length: 20\r\nConnection: close\r\n\r\nService Unavailable\n");
    grace__buf_free(&out);
}

typedef struct {
    const char *in;
    size_t len;
    const char *want;
} json_case_t;

#define J(s) s, sizeof(s) - 1

static const json_case_t json_cases[] = {
    {J(""), "\"\""},
    {J("plain text"), "\"plain text\""},
    {J("a\"b\\c"), "\"a\\\"b\\\\c\""},
    {J("\n\r\t"), "\"\\n\\r\\t\""},
    {J("\x01\x1f\b\f"), "\"\\u0001\\u001f\\u0008\\u000c\""},
    {J("\0x"), "\"\\u0000x\""},
    {J("\x7f/"), "\"\x7f/\""}, /* DEL and '/' need no escape */
    {J("\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80"), "\"\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80\""},
    {J("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""}, /* U+FFFF, U+10FFFF */
    {J("\xff"), "\"\xef\xbf\xbd\""},                                         /* invalid byte */
    {J("\x80x"), "\"\xef\xbf\xbdx\""},                                       /* lone continuation */
    {J("\xc3"), "\"\xef\xbf\xbd\""},                                 /* cut short at the end */
    {J("\xe2\x82"), "\"\xef\xbf\xbd\xef\xbf\xbd\""},                 /* lead + continuation */
    {J("\xc0\xaf"), "\"\xef\xbf\xbd\xef\xbf\xbd\""},                 /* overlong '/' */
    {J("\xe0\x80\xaf"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* overlong, 3 bytes */
    {J("\xed\xa0\x80"), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate U+D800 */
    {J("\xf4\x90\x80\x80"),
     "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* > U+10FFFF */
    {J("\xc3(a"), "\"\xef\xbf\xbd(a\""},                      /* bad continuation */
};

static void test_json_string(void)
{
    for (size_t i = 0; i < sizeof json_cases / sizeof json_cases[0]; i++) {
        exchange_t *x = exchange_new("GET", 1, true);
        EXPECT_EQ(grace_response_write_json_string(&x->res, json_cases[i].in, json_cases[i].len),
                  0);
        const grace__buf_t *b = &x->res.body;
        if (b->len != strlen(json_cases[i].want) || memcmp(b->ptr, json_cases[i].want, b->len) != 0)
            TEST_FAIL_("json case %zu: got %.*s, want %s", i, (int)b->len, b->ptr,
                       json_cases[i].want);
        exchange_free(x);
    }

    exchange_t *x = exchange_new("GET", 1, true);
    EXPECT_EQ(grace_response_set_header(&x->res, "Content-Type", "text/html"), 0);
    EXPECT_EQ(grace_response_json(&x->res, 201, "{\"ok\":true}"), 0);
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(&x->res, &out), 0);
    EXPECT_WIRE(out.ptr, out.len,
                "HTTP/1.1 201 Created\r\n" SV D
                "Content-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}");
    grace__buf_free(&out);
    exchange_free(x);
}

/* clear drops the body written so far, not the status or headers. */
static void test_clear(void)
{
    exchange_t *x = exchange_new("GET", 1, true);
    EXPECT_EQ(grace_response_set_status(&x->res, 500), 0);
    EXPECT_EQ(grace_response_set_header(&x->res, "X-A", "1"), 0);
    EXPECT_EQ(grace_response_writef(&x->res, "%s-%d", "partial", 1), 0);
    EXPECT_EQ(grace_response_clear(&x->res), 0);
    EXPECT_EQ(grace_response_writeln(&x->res, "error"), 0);
    grace__buf_t out = {0};
    EXPECT_EQ(grace__response_finish(&x->res, &out), 0);
    EXPECT_WIRE(out.ptr, out.len,
                "HTTP/1.1 500 Internal Server Error\r\n" SV D "X-A: 1\r\n" CT
                "Content-Length: 6\r\n\r\nerror\n");
    grace__buf_free(&out);
    exchange_free(x);
}

TEST_MAIN(TEST(test_finish_table), TEST(test_reset_between_requests), TEST(test_set_and_add_header),
          TEST(test_header_refused), TEST(test_flush_chunked), TEST(test_flush_head_only),
          TEST(test_flush_fixed_length), TEST(test_flush_http10_close_delimited),
          TEST(test_flush_draining), TEST(test_flush_bodiless), TEST(test_flush_write_fails),
          TEST(test_error_answer), TEST(test_json_string), TEST(test_clear))
