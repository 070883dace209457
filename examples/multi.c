/*
 * multi.c -- gf's "many servers, many ports" example, in C:
 *
 *   s1 := g.Server("s1"); s1.EnableAdmin(); s1.SetPort(8100, 8200); s1.Start()
 *   s2 := g.Server("s2"); s2.EnableAdmin(); s2.SetPort(8300, 8400); s2.Start()
 *   g.Wait()
 *
 * Two named servers live in one process, each on two ports. "/" answers the
 * server's name ("s1" or "s2"), "/pid" the process's PID: both servers share
 * it. Both have the admin page, and any one admin URL acts on the whole
 * process: http://127.0.0.1:8100/debug/admin/restart restarts both servers
 * on all four ports (graceful restart is on: a new process takes over every
 * port), .../shutdown shuts them all down. One signal (SIGTERM, ...) does
 * the same; grace_wait() returns when the last server has finished.
 *
 * Run `multi --ports 8100,8200,8300,8400` (exactly four ports: the first
 * two for s1, the last two for s2).
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "grace.h"
#include "flags.h"

#include <stdio.h>
#include <unistd.h>

/* The user pointer is the server's name, given at registration. */
static int handle_name(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    return grace_response_writeln(res, (const char *)user);
}

static int handle_pid(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_writef(res, "%ld\n", (long)getpid());
}

/* Get server name, bind its routes and the admin page, give it two ports. */
static grace_server_t *make_server(const ex_flags_t *f, const char *name, const int *ports)
{
    grace_server_t *s = grace_server(name); /* g.Server(name) */
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f->prog);
        exit(1);
    }
    /* grace_server_name() is static storage, fine as the handler's user. */
    ex_check(f, grace_server_bind_handler(s, "/", handle_name, (void *)grace_server_name(s)),
             "bind /");
    ex_check(f, grace_server_bind_handler(s, "/pid", handle_pid, NULL), "bind /pid");
    ex_enable_admin(s, f); /* s.EnableAdmin() */
    ex_configure(s, f, ports, 2);
    return s;
}

int main(int argc, char **argv)
{
    static const int default_ports[] = {8100, 8200, 8300, 8400};
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--ports", default_ports, 4, "multi [--ports P1,P2,P3,P4]",
                   "Two servers in one process: s1 on P1,P2 and s2 on P3,P4, each with the\n"
                   "admin page /debug/admin (acting on both).",
                   EX_FLAG_ADMIN);
    if (f.n_ports != 4) {
        fprintf(stderr, "%s: --ports needs exactly 4 ports (s1: first two, s2: last two)\n",
                f.prog);
        return 2;
    }

    grace_server_t *s1 = make_server(&f, "s1", &f.ports[0]);
    grace_server_t *s2 = make_server(&f, "s2", &f.ports[2]);

    int rc = grace_server_start(s1);
    if (rc >= 0)
        rc = grace_server_start(s2);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        /* s1 may be running already: stop it cleanly before exiting. */
        grace_shutdown_all();
        grace_wait();
        return 1;
    }

    grace_wait(); /* g.Wait(): until both servers have shut down */
    return 0;
}
