/*
 * hello.c -- the smallest grace server: "/" answers "Hello, World!" (13
 * bytes, no newline). The benchmarks in bench/ run it side by side with
 * nginx serving the same 13 bytes, so its handler does nothing else.
 * It runs with graceful restart on, like every example, and has the admin
 * page (/debug/admin), so a benchmark can restart it under load.
 *
 * Run `hello --port 8080`.
 */
#include "grace.h"
#include "flags.h"

#include <stdio.h>

static int handle_hello(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_write(res, "Hello, World!", 13);
}

int main(int argc, char **argv)
{
    static const int default_port = 8080;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "hello [--port N]",
                   "Answers \"Hello, World!\" on / (for benchmarks); admin page at /debug/admin.",
                   EX_FLAG_ADMIN);

    grace_server_t *s = grace_server(NULL);
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f.prog);
        return 1;
    }
    ex_check(&f, grace_server_bind_handler(s, "/", handle_hello, NULL), "bind /");
    ex_enable_admin(s, &f);
    ex_configure(s, &f, f.ports, f.n_ports);

    int rc = grace_server_run(s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        return 1;
    }
    return 0;
}
