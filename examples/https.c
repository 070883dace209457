/*
 * https.c -- the second example of gf's graceful-restart page (HTTPS), in C:
 *
 *   s := g.Server()
 *   s.BindHandler("/", ...)                 -> r.Response.Writeln("哈罗！")
 *   s.EnableHTTPS("server.crt", "server.key")
 *   s.EnableAdmin()                         -> the admin page at /debug/admin
 *   s.SetPort(8200)
 *   s.Run()
 *
 * plus /pid and /sleep of the first example (basic.c), so that its
 * walkthrough can be repeated over TLS.
 *
 * Run `https --port 8200 --cert cert.pem --key key.pem` (or `make run-https`,
 * which makes a self-signed certificate for localhost first), then:
 *
 *   curl --cacert build/certs/ca.pem https://localhost:8200/pid
 *   curl --cacert build/certs/ca.pem https://localhost:8200/sleep &
 *   curl --cacert build/certs/ca.pem https://localhost:8200/debug/admin/restart
 *   curl --cacert build/certs/ca.pem https://localhost:8200/debug/admin/shutdown
 *
 * The log says "https server started listening on [:8200]", then, after the
 * restart, "https server reloaded listening on [:8200]" from the new PID.
 * The new process reads --cert and --key afresh: replacing the files and
 * restarting (SIGUSR1 or /debug/admin/restart) is how a renewed certificate
 * goes live without failing a request; if the new files are bad, the restart
 * fails and this process keeps serving the old certificate (docs/https.md).
 *
 * --http-port N adds a plain HTTP port to the same server (the same routes on
 * http://...:N and https://...:PORT). The shared flags of examples/flags.h
 * (--host, --sleep-ms, --no-graceful, --admin-*, timeouts...) work as in the
 * other examples.
 */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "grace.h"
#include "flags.h"
#include "seed.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* "哈罗！" in UTF-8, spelled in bytes so the program does not depend on the
 * compiler's source character set. */
static const char hello_utf8[] = "\xe5\x93\x88\xe7\xbd\x97\xef\xbc\x81";

static int handle_root(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_writeln(res, hello_utf8);
}

/* ---- This example's own flags: --cert, --key, --http-port ------------------
 * They are taken out of argv before the shared parser of flags.h sees the
 * rest. The value of a shared flag is copied as it is, so "--admin-token
 * --cert" still means a token "--cert". */

typedef struct {
    const char *cert;
    const char *key;
    int http_port; /* -1: none */
} https_flags_t;

/* If arg is "--NAME=VALUE" or "--NAME" (value in argv[*i + 1]), store the
 * value in *out and return true. */
static bool take_flag(int argc, char **argv, int *i, const char *name, const char **out)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return false;
    if (arg[n] == '=') {
        *out = arg + n + 1;
        return true;
    }
    if (arg[n] != '\0')
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value (see --help)\n", argv[0], name);
        exit(2);
    }
    *out = argv[++*i];
    return true;
}

/* Take --cert, --key and --http-port out of argv (compacting it in place,
 * argc updated). Exits 2 on a bad --http-port. */
static void take_https_flags(int *argc, char **argv, https_flags_t *h)
{
    h->cert = h->key = NULL;
    h->http_port = -1;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *port = NULL;
        if (take_flag(*argc, argv, &i, "--cert", &h->cert) ||
            take_flag(*argc, argv, &i, "--key", &h->key))
            continue;
        if (take_flag(*argc, argv, &i, "--http-port", &port)) {
            long long v;
            if (!ex_parse_num(port, 65535, &v)) {
                fprintf(stderr, "%s: bad value for --http-port: '%s' (see --help)\n", argv[0],
                        port);
                exit(2);
            }
            h->http_port = (int)v;
            continue;
        }
        argv[out++] = argv[i];
        if (ex_flag_takes_value(argv[i]) && i + 1 < *argc)
            argv[out++] = argv[++i];
    }
    argv[out] = NULL;
    *argc = out;
}

/* HTTPS on ports[0..n), on --host's address or on every address. */
static void add_https_ports(grace_server_t *s, const ex_flags_t *f, const int *ports, size_t n)
{
    if (f->host == NULL) {
        ex_check(f, grace_server_set_https_ports(s, ports, n), "cannot set HTTPS ports");
        return;
    }
    bool v6 = strchr(f->host, ':') != NULL && f->host[0] != '[';
    for (size_t i = 0; i < n; i++) {
        char addr[300];
        int len = snprintf(addr, sizeof(addr), v6 ? "[%s]:%d" : "%s:%d", f->host, ports[i]);
        if (len < 0 || (size_t)len >= sizeof(addr)) {
            fprintf(stderr, "%s: --host address too long\n", f->prog);
            exit(2);
        }
        int rc = grace_server_add_https_address(s, addr);
        if (rc < 0) {
            fprintf(stderr, "%s: bad listen address '%s': %s\n", f->prog, addr, grace_strerror(rc));
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    static const int default_port = 8200;
    https_flags_t h;
    take_https_flags(&argc, argv, &h);

    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1,
                   "https --cert FILE --key FILE [--port N] [--http-port N]",
                   "The second example of gf's graceful-restart page, over TLS: / (\""
                   "\xe5\x93\x88\xe7\xbd\x97\xef\xbc\x81\"),\n"
                   "/pid, /sleep and the admin page /debug/admin (restart, reload, shutdown).\n\n"
                   "  --port N                the HTTPS port (default 8200)\n"
                   "  --cert FILE             certificate chain, PEM, leaf first (required)\n"
                   "  --key FILE              its private key, PEM, not encrypted (required)\n"
                   "  --http-port N           also serve plain HTTP on port N, same server\n\n"
                   "The certificate files are read when the server starts, and again by the new\n"
                   "process of every restart: replace them, then restart (kill -USR1 PID or\n"
                   "/debug/admin/restart) to put a renewed certificate in service.",
                   EX_FLAG_SLEEP | EX_FLAG_ADMIN);
    sleep_ms = f.sleep_ms;
    if (h.cert == NULL || h.key == NULL || *h.cert == '\0' || *h.key == '\0') {
        fprintf(stderr,
                "%s: --cert FILE and --key FILE are required (make run-https creates a "
                "self-signed pair; see --help)\n",
                f.prog);
        return 2;
    }

    grace_server_t *s = grace_server(NULL); /* g.Server() */
    if (s == NULL) {
        fprintf(stderr, "%s: out of memory\n", f.prog);
        return 1;
    }
    ex_check(&f, grace_server_bind_handler(s, "/", handle_root, NULL), "bind /");
    ex_check(&f, grace_server_bind_handler(s, "/pid", handle_pid, NULL), "bind /pid");
    ex_check(&f, grace_server_bind_handler(s, "/sleep", handle_sleep, NULL), "bind /sleep");
    ex_enable_admin(s, &f); /* s.EnableAdmin() */
    /* s.EnableHTTPS(cert, key): the files are loaded (and checked) by
     * grace_server_run() below, in this process and in every new one. */
    ex_check(&f, grace_server_enable_https(s, h.cert, h.key), "cannot enable HTTPS");
    if (h.http_port < 0) {
        /* gf's way: EnableHTTPS + SetPort(8200) serves HTTPS on 8200. */
        ex_configure(s, &f, f.ports, f.n_ports);
    } else {
        /* HTTPS on --port, plain HTTP on --http-port: one server, both. */
        add_https_ports(s, &f, f.ports, f.n_ports);
        ex_configure(s, &f, &h.http_port, 1);
    }

    /* Blocks until the server has shut down. A bad certificate or key is
     * logged by grace ("https server default cannot start: ...") and ends
     * here: exit 1 -- and in the new process of a restart, a rollback. */
    int rc = grace_server_run(s);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", f.prog, grace_strerror(rc));
        return 1;
    }
    return 0;
}
