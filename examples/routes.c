/*
 * routes.c -- grace's route patterns and middleware in one small server
 * (gf's BindHandler syntax):
 *
 *   /user/list           -> "list"            exact path
 *   /user/{id}           -> "user <id>"       named parameter (one segment)
 *   /user/:id/profile    -> "profile <id>"    the same, colon form
 *   /files/ + "*path"    -> "files <path>"    wildcard: the rest, slashes too
 *   POST:/form           -> "posted <body>"   POST only (GET gets 405)
 *   GET:/only-get        -> "get"             GET and HEAD only
 *   /private/data        -> "data"            behind the "/private" middleware
 *
 * "/user/list" beats "/user/{id}": an exact segment is more specific than a
 * parameter. Parameters arrive percent-decoded ("/user/a%20b" -> "a b").
 *
 * Middleware: one global (grace_use_global) adds "X-Mw: 1" to every answer,
 * 404 and 405 included; one on prefix "/private" answers 403 "forbidden"
 * unless the request has "X-Token: secret".
 *
 * Responses (what a handler can do with grace_response_t):
 *
 *   /stream          streaming: "part 1\n", flush, "part 2\n", flush, then
 *                    "part 3\n" sent when the handler returns. HTTP/1.1 gets
 *                    it chunked; HTTP/1.0 gets it close-delimited.
 *   /stream-len      "Content-Length: 12" set first, then "hello ", flush,
 *                    "world\n": streaming with a fixed length, not chunked.
 *   /json            201 {"ok":true} via grace_response_json().
 *   /json-string?s=  the query parameter s as a JSON string literal
 *                    (grace_response_write_json_string(): quotes, backslashes
 *                    and control characters escaped, invalid UTF-8 -> U+FFFD).
 *   /query?a=&b=     "a=<a>|b=<b>|missing=<length of absent parameter c>",
 *                    parameters '+'- and %XX-decoded.
 *   /status/{code}   status <code> (204, 304, 418, ...) with body "x"; grace
 *                    drops the body (and Content-Length) for 204 and 304.
 *                    A code that is not a number from 100 to 999 gets 400.
 *   /fail            the handler returns -1 having written nothing: 500.
 *   /headers         "X-One: 1", two "Set-Cookie" (add_header keeps both),
 *                    "X-Rep" set twice (set_header replaces: "new"), and a
 *                    value with CRLF that grace must refuse: body "einval=1"
 *                    when set_header returned GRACE_EINVAL, else "einval=0".
 *   /close           "Connection: close": grace closes after the answer.
 *   /client          "<client ip> <HTTP minor version>", e.g. "127.0.0.1 1".
 *
 * Run `routes --port 8082`. The route answers above the "Responses" list end
 * with a newline (gf's Writeln); the response routes write exactly what is
 * shown.
 */
#include "grace.h"
#include "flags.h"

#include <stdio.h>
#include <string.h>

/* Write prefix, a view and "\n". */
static int write_line(grace_response_t *res, const char *prefix, grace_str_t s)
{
    int rc = grace_response_write(res, prefix, strlen(prefix));
    if (rc >= 0 && s.len > 0)
        rc = grace_response_write(res, s.ptr, s.len);
    if (rc >= 0)
        rc = grace_response_write(res, "\n", 1);
    return rc;
}

/* Routes whose answer is fixed: the text is the user pointer. */
static int handle_text(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    return grace_response_writeln(res, (const char *)user);
}

static int handle_user(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    return write_line(res, "user ", grace_request_param(req, "id"));
}

static int handle_profile(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    return write_line(res, "profile ", grace_request_param(req, "id"));
}

static int handle_files(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    return write_line(res, "files ", grace_request_param(req, "path"));
}

static int handle_form(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    return write_line(res, "posted ", grace_request_body(req));
}

/* ---- Responses -------------------------------------------------------------- */

/* Write a NUL-terminated string. */
static int write_str(grace_response_t *res, const char *s)
{
    return grace_response_write(res, s, strlen(s));
}

/* Three parts, the first two flushed as they are written: the head goes out
 * with the first flush (chunked for HTTP/1.1), the last part when the
 * handler returns. */
static int handle_stream(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    int rc = write_str(res, "part 1\n");
    if (rc >= 0)
        rc = grace_response_flush(res);
    if (rc >= 0)
        rc = write_str(res, "part 2\n");
    if (rc >= 0)
        rc = grace_response_flush(res);
    if (rc >= 0)
        rc = write_str(res, "part 3\n");
    return rc < 0 ? rc : 0;
}

/* Streaming with a length known in advance: no chunked coding. */
static int handle_stream_len(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    int rc = grace_response_set_header(res, "Content-Length", "12");
    if (rc >= 0)
        rc = write_str(res, "hello ");
    if (rc >= 0)
        rc = grace_response_flush(res);
    if (rc >= 0)
        rc = write_str(res, "world\n");
    return rc < 0 ? rc : 0;
}

static int handle_json(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_json(res, 201, "{\"ok\":true}");
}

static int handle_json_string(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_str_t s = grace_request_query(req, "s");
    int rc = grace_response_set_header(res, "Content-Type", "application/json");
    if (rc >= 0)
        rc = grace_response_write_json_string(res, s.ptr ? s.ptr : "", s.len);
    return rc;
}

/* Views are written with grace_response_write(), not "%.*s", which would
 * stop at a decoded NUL ("%00"). */
static int handle_query(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_str_t a = grace_request_query(req, "a");
    grace_str_t b = grace_request_query(req, "b");
    grace_str_t c = grace_request_query(req, "c"); /* never sent by the tests */
    int rc = write_str(res, "a=");
    if (rc >= 0 && a.len > 0)
        rc = grace_response_write(res, a.ptr, a.len);
    if (rc >= 0)
        rc = write_str(res, "|b=");
    if (rc >= 0 && b.len > 0)
        rc = grace_response_write(res, b.ptr, b.len);
    if (rc >= 0)
        rc = grace_response_writef(res, "|missing=%zu", c.len);
    return rc;
}

/* Any status from the path; "x" as the body, which grace must not send for
 * 204 and 304 (nor for HEAD). A bad code gets 400. */
static int handle_status(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_str_t p = grace_request_param(req, "code");
    int code = 0;
    for (size_t i = 0; i < p.len; i++) {
        if (p.ptr[i] < '0' || p.ptr[i] > '9' || code > 999) {
            code = -1;
            break;
        }
        code = code * 10 + (p.ptr[i] - '0');
    }
    if (p.len == 0 || code < 0 || grace_response_set_status(res, code) < 0) {
        grace_response_set_status(res, 400);
        return grace_response_writeln(res, "bad status");
    }
    return write_str(res, "x");
}

/* A handler failing before it wrote anything: grace answers 500. */
static int handle_fail(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)res;
    (void)user;
    return -1;
}

static int handle_headers(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    int rc = grace_response_set_header(res, "X-One", "1");
    if (rc >= 0)
        rc = grace_response_add_header(res, "Set-Cookie", "a=1");
    if (rc >= 0)
        rc = grace_response_add_header(res, "Set-Cookie", "b=2");
    if (rc >= 0)
        rc = grace_response_set_header(res, "X-Rep", "old");
    if (rc >= 0)
        rc = grace_response_set_header(res, "X-Rep", "new");
    if (rc < 0)
        return rc;
    /* Response splitting must be impossible: CR/LF in a value is refused. */
    int bad = grace_response_set_header(res, "X-Bad", "a\r\nInjected: yes");
    return write_str(res, bad == GRACE_EINVAL ? "einval=1" : "einval=0");
}

static int handle_close(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    int rc = grace_response_set_header(res, "Connection", "close");
    if (rc >= 0)
        rc = write_str(res, "bye");
    return rc;
}

static int handle_client(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    return grace_response_writef(res, "%s %d", grace_request_client_ip(req),
                                 grace_request_http_minor(req));
}

/* Global middleware: mark every answer, then let the chain run. */
static void mw_mark(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    grace_response_set_header(res, "X-Mw", "1");
    grace_next(req, res);
}

/* "/private" middleware: a (toy) token check. Not calling grace_next() stops
 * the chain, and the 403 written here is the answer. */
static void mw_auth(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)user;
    static const char token[] = "secret";
    grace_str_t got = grace_request_header(req, "X-Token");
    if (got.len == sizeof(token) - 1 && memcmp(got.ptr, token, got.len) == 0) {
        grace_next(req, res);
        return;
    }
    grace_response_set_status(res, 403);
    grace_response_writeln(res, "forbidden");
}

int main(int argc, char **argv)
{
    static const int default_port = 8082;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "routes [--port N]",
                   "Route patterns and middleware: /user/{id}, /files/..., POST:/form, ...", 0);

    grace_server_t *s = grace_server(NULL);
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f.prog);
        return 1;
    }
    /* clang-format off */
    static const struct {
        const char *pattern;
        grace_handler_cb fn;
        const char *text; /* handle_text's answer */
    } routes[] = {
        {"/user/list", handle_text, "list"},
        {"/user/{id}", handle_user, NULL},
        {"/user/:id/profile", handle_profile, NULL},
        {"/files/*path", handle_files, NULL},
        {"POST:/form", handle_form, NULL},
        {"GET:/only-get", handle_text, "get"},
        {"/private/data", handle_text, "data"},
        {"/stream", handle_stream, NULL},
        {"/stream-len", handle_stream_len, NULL},
        {"/json", handle_json, NULL},
        {"/json-string", handle_json_string, NULL},
        {"/query", handle_query, NULL},
        {"/status/{code}", handle_status, NULL},
        {"/fail", handle_fail, NULL},
        {"/headers", handle_headers, NULL},
        {"/close", handle_close, NULL},
        {"/client", handle_client, NULL},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc =
            grace_server_bind_handler(s, routes[i].pattern, routes[i].fn, (void *)routes[i].text);
        if (rc < 0) {
            fprintf(stderr, "%s: bind %s: %s\n", f.prog, routes[i].pattern, grace_strerror(rc));
            return 1;
        }
    }
    ex_check(&f, grace_use_global(mw_mark, NULL), "global middleware");
    ex_check(&f, grace_server_use(s, "/private", mw_auth, NULL), "/private middleware");
    ex_configure(s, &f, f.ports, f.n_ports);

    int rc = grace_server_run(s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        return 1;
    }
    return 0;
}
