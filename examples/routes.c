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
 * Run `routes --port 8082`. Every answer ends with a newline (gf's Writeln).
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
