/*
 * basic.c -- the first example of gf's graceful-restart page, in C, exactly:
 *
 *   s := g.Server()
 *   s.BindHandler("/", ...)       -> r.Response.Writeln("哈喽！")
 *   s.BindHandler("/pid", ...)    -> r.Response.Writeln(gproc.Pid())
 *   s.BindHandler("/sleep", ...)  -> pid, sleep 10 s, pid again
 *   s.EnableAdmin()               -> the admin page at /debug/admin
 *   s.SetPort(8199)
 *   s.Run()
 *
 * Run `basic --port 8199`, then walk through the seed: open /pid, start
 * /sleep, open http://127.0.0.1:8199/debug/admin and click "restart" (or
 * `curl http://127.0.0.1:8199/debug/admin/restart`). A new process takes
 * over the port, the /sleep in progress finishes in the old one, and /pid
 * shows the new PID. Graceful restart is on (--no-graceful turns it off:
 * a restart is then a full one). /debug/admin/shutdown, or SIGTERM (SIGINT,
 * SIGHUP, SIGQUIT), stops accepting, lets a /sleep in progress finish, and
 * exits 0.
 *
 * The admin routes answer loopback clients only, unless --admin-token or
 * --admin-trusted says otherwise. --sleep-ms changes the 10 s of /sleep
 * (tests use a few seconds).
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "grace.h"
#include "flags.h"
#include "seed.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* "哈喽！" in UTF-8, spelled in bytes so the program does not depend on the
 * compiler's source character set. */
static const char hello_utf8[] = "\xe5\x93\x88\xe5\x96\xbd\xef\xbc\x81";

static int handle_root(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_writeln(res, hello_utf8);
}

int main(int argc, char **argv)
{
    static const int default_port = 8199;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "basic [--port N]",
                   "The first example of gf's graceful-restart page: /, /pid, /sleep and the\n"
                   "admin page /debug/admin (restart, reload, shutdown).",
                   EX_FLAG_SLEEP | EX_FLAG_ADMIN);
    sleep_ms = f.sleep_ms;

    grace_server_t *s = grace_server(NULL); /* g.Server() */
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f.prog);
        return 1;
    }
    ex_check(&f, grace_server_bind_handler(s, "/", handle_root, NULL), "bind /");
    ex_check(&f, grace_server_bind_handler(s, "/pid", handle_pid, NULL), "bind /pid");
    ex_check(&f, grace_server_bind_handler(s, "/sleep", handle_sleep, NULL), "bind /sleep");
    ex_enable_admin(s, &f); /* s.EnableAdmin() */
    ex_configure(s, &f, f.ports, f.n_ports);

    /* Blocks until the server has shut down (signal, admin page or API
     * call); after a graceful restart, until this old process has drained. */
    int rc = grace_server_run(s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        return 1;
    }
    return 0;
}
