/*
 * flags.h -- the command-line flags every grace example shares, so that each
 * example's .c file shows only what it is about: its routes and handlers.
 *
 * Flags (each also accepted as --flag=VALUE):
 *   --help                  print usage to stdout, exit 0
 *   --host ADDR             listen on ADDR only ("127.0.0.1", "::1");
 *                           default: every address (grace_server_set_ports)
 *   --port N / --ports LIST the example's port(s); 0 = any free port, the
 *                           port chosen is in the "started listening" line
 *   --access-log            one log line per request
 *   --max-body N            client_max_body_size in bytes
 *   --max-header-bytes N    max_header_bytes (request line + headers)
 *   --read-timeout-ms N     read_timeout_ms (a whole request)
 *   --idle-timeout-ms N     idle_timeout_ms (keep-alive wait)
 *   --max-connections N     max_connections (beyond: 503 and close)
 *   --tls-handshake-timeout-ms N  tls_handshake_timeout_ms (HTTPS)
 *   --sleep-ms N            only where the example has a /sleep route
 *   --no-graceful           graceful restart off (the examples turn it on)
 *   --graceful-timeout-ms N graceful_timeout_ms (new process must be ready)
 *   --shutdown-timeout-ms N graceful_shutdown_timeout_ms (old process drain;
 *                           30000 here, not grace's 5000, for the seed's
 *                           10 s /sleep)
 *   --max-draining N        max_draining (old processes draining at once)
 *   --drain-idle-ms N       drain_idle_ms (draining: close connections idle
 *                           this long)
 *   --probation-ms N        probation_ms (old process keeps its sockets while
 *                           the new one proves itself)
 *   --master                master mode: a master process and one child
 *   --workers N             master mode with N children
 *   --pid-file PATH         write the PID to signal there
 *   --config FILE           gf's config.yaml (docs/operations.md): addresses and
 *                           settings from the file; flags given override it
 * and, where the example has the admin page (EX_FLAG_ADMIN):
 *   --admin-token T         admin requests need "Bearer T" or ?token=T
 *   --admin-trusted CIDRS   trusted_networks (repeatable, or comma-separated)
 *   --admin-allow-dir DIR   allowed_exe_dirs for newExeFilePath (repeatable)
 *   --admin-allow-host NAME allowed_hosts: a Host name besides IP addresses
 *                           and localhost (repeatable)
 * A bad flag or value prints a message to stderr and exits 2. Options are
 * given to grace_server_set_options() only when one of them was set, so an
 * example run without flags uses grace's own defaults -- except graceful
 * restart, which every example turns on (ex_configure): they exist to show it.
 *
 * Everything here is static inline: each example includes it once and uses
 * only part of it, and inline keeps -Wunused-function quiet about the rest.
 */
#ifndef GRACE_EXAMPLE_FLAGS_H
#define GRACE_EXAMPLE_FLAGS_H

#include "grace.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_MAX_PORTS 16
#define EX_MAX_LIST 16 /* --admin-trusted networks, --admin-allow-dir dirs, --admin-allow-host */

enum {
    EX_FLAG_SLEEP = 1 << 0, /* the example accepts --sleep-ms */
    EX_FLAG_ADMIN = 1 << 1, /* the example has the admin page: --admin-* flags */
};

typedef struct {
    const char *prog; /* argv[0], for messages */
    const char *host; /* NULL: every address */
    int ports[EX_MAX_PORTS];
    size_t n_ports;
    grace_server_options_t opt;
    bool has_opt;                    /* some option flag was given */
    int64_t sleep_ms;                /* --sleep-ms, when the example takes it */
    grace_restart_options_t restart; /* graceful = 1 unless --no-graceful */
    int workers;                     /* --master / --workers N: master mode; 0: off */
    const char *pid_file;            /* --pid-file PATH */
    const char *config;              /* --config FILE: gf's config.yaml */
    bool ports_given;                /* --port / --ports on the command line */
    const char *admin_token;         /* NULL: none */
    /* NULL-terminated lists for grace_admin_options_t; the networks point
     * into admin_trusted_buf (a comma-separated value is split there). */
    const char *admin_trusted[EX_MAX_LIST + 1];
    size_t n_admin_trusted;
    char admin_trusted_buf[EX_MAX_LIST][64];
    const char *admin_dirs[EX_MAX_LIST + 1];
    size_t n_admin_dirs;
    const char *admin_hosts[EX_MAX_LIST + 1];
    size_t n_admin_hosts;
} ex_flags_t;

/* Print the usage message. usage_line is the example's own synopsis, e.g.
 * "basic [--port N]"; what is the one-line description. */
static inline void ex_usage(FILE *f, const char *usage_line, const char *what, unsigned accept)
{
    fprintf(f,
            "usage: %s [--host ADDR] [--access-log] [--max-body N] [--max-header-bytes N]\n"
            "          [--read-timeout-ms N] [--idle-timeout-ms N] [--max-connections N]\n"
            "          [--tls-handshake-timeout-ms N]%s\n"
            "          [--no-graceful] [--graceful-timeout-ms N] [--shutdown-timeout-ms N]\n"
            "          [--max-draining N] [--drain-idle-ms N] [--probation-ms N]\n"
            "          [--master] [--workers N] [--pid-file PATH] [--config FILE]\n%s"
            "%s\n\n"
            "  --host ADDR             listen on ADDR only (default: all addresses)\n"
            "  --access-log            log one line per request\n"
            "  --max-body N            largest request body, bytes (default 8 MiB)\n"
            "  --max-header-bytes N    largest request line + headers, bytes (default 10240)\n"
            "  --read-timeout-ms N     time to receive a whole request (default 60000)\n"
            "  --idle-timeout-ms N     keep-alive wait for the next request (default 60000)\n"
            "  --max-connections N     open connections at once; beyond, 503 and close\n"
            "                          (default: 3/4 of the open-files limit)\n"
            "  --tls-handshake-timeout-ms N  HTTPS: time from accept to a finished TLS\n"
            "                          handshake (default 10000)\n"
            "%s"
            "  --no-graceful           restarts are full restarts (the examples turn graceful\n"
            "                          restart on; grace's own default is off)\n"
            "  --graceful-timeout-ms N a new process must be ready within N ms (default 30000)\n"
            "  --shutdown-timeout-ms N an old process, or one shutting down, gets N ms to\n"
            "                          finish its requests (default here 30000, so the\n"
            "                          seed's 10 s /sleep survives a restart)\n"
            "  --max-draining N        old processes that may drain at once; a restart that\n"
            "                          would make more is refused (default 8)\n"
            "  --drain-idle-ms N       while draining, a keep-alive connection idle N ms is\n"
            "                          closed; busier ones get their next request answered\n"
            "                          with \"Connection: close\" (default 1000)\n"
            "  --probation-ms N        after a restart the old process keeps its sockets N ms\n"
            "                          and takes them back if the new one crashes (2000)\n"
            "  --master                master mode: a master that owns the ports and a child\n"
            "                          that serves (the child runs with --grace-child);\n"
            "                          signal the master's PID\n"
            "  --workers N             master mode with N children\n"
            "  --pid-file PATH         write the PID to signal to PATH (the master's, or\n"
            "                          the serving process's, rewritten at each restart)\n"
            "  --config FILE           read gf's config.yaml: addresses and settings from the\n"
            "                          file (docs/operations.md); flags given override it\n"
            "%s"
            "  Port 0 picks a free port; the log line \"http server started listening on\n"
            "  [ADDR:PORT]\" shows the one chosen.\n",
            usage_line, (accept & EX_FLAG_SLEEP) ? " [--sleep-ms N]" : "",
            (accept & EX_FLAG_ADMIN) ? "          [--admin-token T] [--admin-trusted CIDRS]"
                                       " [--admin-allow-dir DIR]\n"
                                       "          [--admin-allow-host NAME]\n"
                                     : "",
            what,
            (accept & EX_FLAG_SLEEP)
                ? "  --sleep-ms N            how long /sleep sleeps (default 10000)\n"
                : "",
            (accept & EX_FLAG_ADMIN)
                ? "  --admin-token T         admin routes (/debug/admin...) need the header\n"
                  "                          \"Authorization: Bearer T\" or ?token=T, from any\n"
                  "                          network unless --admin-trusted is given too\n"
                  "  --admin-trusted CIDRS   networks whose clients may use the admin routes\n"
                  "                          (repeatable or comma-separated; default\n"
                  "                          127.0.0.0/8,::1/128)\n"
                  "  --admin-allow-dir DIR   newExeFilePath may also name an executable in DIR\n"
                  "                          (repeatable; the running executable's directory\n"
                  "                          is always allowed)\n"
                  "  --admin-allow-host NAME the admin routes also answer requests whose Host\n"
                  "                          is NAME (any port); by default only IP addresses\n"
                  "                          and localhost, against DNS rebinding (repeatable)\n"
                : "");
}

/* Parse a whole non-negative decimal number no larger than max. */
static inline bool ex_parse_num(const char *s, long long max, long long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

/* Parse "8100,8200,..." into f->ports. */
static inline bool ex_parse_ports(const char *s, ex_flags_t *f)
{
    f->n_ports = 0;
    while (*s != '\0') {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char one[16];
        long long port;
        if (len == 0 || len >= sizeof(one) || f->n_ports == EX_MAX_PORTS)
            return false;
        memcpy(one, s, len);
        one[len] = '\0';
        if (!ex_parse_num(one, 65535, &port))
            return false;
        f->ports[f->n_ports++] = (int)port;
        if (comma == NULL)
            break;
        s = comma + 1;
        if (*s == '\0')
            return false; /* trailing comma */
    }
    return f->n_ports > 0;
}

/* Add the comma-separated networks of s to f->admin_trusted. */
static inline bool ex_parse_networks(const char *s, ex_flags_t *f)
{
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        if (len == 0 || len >= sizeof(f->admin_trusted_buf[0]) || f->n_admin_trusted == EX_MAX_LIST)
            return false;
        char *one = f->admin_trusted_buf[f->n_admin_trusted];
        memcpy(one, s, len);
        one[len] = '\0';
        f->admin_trusted[f->n_admin_trusted++] = one;
        s += len;
        if (*s == ',' && *++s == '\0')
            return false; /* trailing comma */
    }
    return f->n_admin_trusted > 0;
}

/* True for every shared flag that takes a value (the one list: an example
 * with flags of its own, like https, uses it to skip over ours). */
static inline bool ex_flag_takes_value(const char *name)
{
    static const char *const names[] = {
        "--host", "--port", "--ports", "--max-body", "--max-header-bytes", "--read-timeout-ms",
        "--idle-timeout-ms", "--max-connections", "--tls-handshake-timeout-ms", "--sleep-ms",
        "--graceful-timeout-ms", "--shutdown-timeout-ms", "--max-draining", "--drain-idle-ms",
        "--probation-ms", "--admin-token", "--admin-trusted", "--admin-allow-dir",
        "--admin-allow-host", "--workers", "--pid-file", "--config",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

static inline _Noreturn void ex_bad_flag(const ex_flags_t *f, const char *arg)
{
    fprintf(stderr, "%s: unknown flag '%s' (see --help)\n", f->prog, arg);
    exit(2);
}

/*
 * Parse argv. port_flag is "--port" (one port) or "--ports" (a list); the
 * ports default to default_ports. Returns normally on success; on --help
 * prints usage and exits 0, on a bad flag exits 2.
 */
static inline void ex_parse_flags(int argc, char **argv, ex_flags_t *f, const char *port_flag,
                                  const int *default_ports, size_t n_default,
                                  const char *usage_line, const char *what, unsigned accept)
{
    memset(f, 0, sizeof(*f));
    f->prog = argc > 0 ? argv[0] : "example";
    f->sleep_ms = 10000;
    f->restart.graceful = 1;
    /* Longer than grace's 5 s: the seed's /sleep (10 s) must be able to
     * finish in the old process after a restart. */
    f->restart.graceful_shutdown_timeout_ms = 30000;
    for (size_t i = 0; i < n_default && i < EX_MAX_PORTS; i++)
        f->ports[f->n_ports++] = default_ports[i];

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        char name[32];
        size_t name_len = strcspn(arg, "=");

        /* "--flag=VALUE" or "--flag VALUE": split off the name. */
        if (name_len >= sizeof(name))
            ex_bad_flag(f, arg);
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        if (arg[name_len] == '=')
            val = arg + name_len + 1;

        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            ex_usage(stdout, usage_line, what, accept);
            exit(0);
        }
        if (strcmp(name, "--access-log") == 0) {
            if (val != NULL)
                ex_bad_flag(f, arg);
            f->opt.access_log = 1;
            f->has_opt = true;
            continue;
        }
        if (strcmp(name, "--no-graceful") == 0) {
            if (val != NULL)
                ex_bad_flag(f, arg);
            f->restart.graceful = 0;
            continue;
        }
        if (strcmp(name, GRACE_CHILD_FLAG) == 0 && val == NULL)
            continue; /* grace marks a master's children with it */
        if (strcmp(name, "--master") == 0) {
            if (val != NULL)
                ex_bad_flag(f, arg);
            if (f->workers == 0)
                f->workers = 1;
            continue;
        }
        bool admin_flag =
            strcmp(name, "--admin-token") == 0 || strcmp(name, "--admin-trusted") == 0 ||
            strcmp(name, "--admin-allow-dir") == 0 || strcmp(name, "--admin-allow-host") == 0;
        if (admin_flag && !(accept & EX_FLAG_ADMIN))
            ex_bad_flag(f, arg);

        /* Every other flag takes a value. */
        bool known = strcmp(name, port_flag) == 0 || admin_flag ||
                     ((accept & EX_FLAG_SLEEP) && strcmp(name, "--sleep-ms") == 0) ||
                     (ex_flag_takes_value(name) && strncmp(name, "--admin-", 8) != 0 &&
                      strcmp(name, "--sleep-ms") != 0 && strcmp(name, "--port") != 0 &&
                      strcmp(name, "--ports") != 0);
        if (!known)
            ex_bad_flag(f, arg);
        if (val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: %s needs a value (see --help)\n", f->prog, name);
                exit(2);
            }
            val = argv[++i];
        }

        long long n = 0;
        bool ok = true;
        if (strcmp(name, "--host") == 0) {
            ok = *val != '\0';
            f->host = val;
        } else if (strcmp(name, port_flag) == 0) {
            ok = ex_parse_ports(val, f);
            f->ports_given = true;
            if (ok && strcmp(port_flag, "--port") == 0 && f->n_ports != 1)
                ok = false;
        } else if (strcmp(name, "--sleep-ms") == 0) {
            ok = ex_parse_num(val, INT64_MAX / 1000000, &n);
            f->sleep_ms = n;
        } else if (strcmp(name, "--admin-token") == 0) {
            ok = *val != '\0';
            f->admin_token = val;
        } else if (strcmp(name, "--admin-trusted") == 0) {
            ok = ex_parse_networks(val, f);
        } else if (strcmp(name, "--admin-allow-dir") == 0) {
            ok = *val != '\0' && f->n_admin_dirs < EX_MAX_LIST;
            if (ok)
                f->admin_dirs[f->n_admin_dirs++] = val;
        } else if (strcmp(name, "--admin-allow-host") == 0) {
            /* grace checks the name itself (ex_enable_admin exits 1). */
            ok = *val != '\0' && f->n_admin_hosts < EX_MAX_LIST;
            if (ok)
                f->admin_hosts[f->n_admin_hosts++] = val;
        } else if (strcmp(name, "--max-draining") == 0) {
            ok = ex_parse_num(val, 63, &n) && n > 0;
            f->restart.max_draining = (int)n;
        } else if (strcmp(name, "--config") == 0) {
            ok = *val != '\0';
            f->config = val;
        } else if (strcmp(name, "--workers") == 0) {
            ok = ex_parse_num(val, 64, &n) && n > 0;
            f->workers = (int)n;
        } else if (strcmp(name, "--pid-file") == 0) {
            ok = *val != '\0';
            f->pid_file = val;
        } else if (strcmp(name, "--probation-ms") == 0) {
            ok = ex_parse_num(val, 86400000, &n) && n > 0;
            f->restart.probation_ms = n;
        } else if (strcmp(name, "--drain-idle-ms") == 0) {
            ok = ex_parse_num(val, 86400000, &n) && n > 0;
            f->restart.drain_idle_ms = n;
        } else if (strcmp(name, "--graceful-timeout-ms") == 0 ||
                   strcmp(name, "--shutdown-timeout-ms") == 0) {
            ok = ex_parse_num(val, INT64_MAX, &n) && n > 0;
            if (strcmp(name, "--graceful-timeout-ms") == 0)
                f->restart.graceful_timeout_ms = n;
            else
                f->restart.graceful_shutdown_timeout_ms = n;
        } else {
            ok = ex_parse_num(val, INT64_MAX, &n);
            if (ok && n == 0)
                ok = false; /* zero would silently mean "default" */
            if (strcmp(name, "--max-body") == 0)
                f->opt.client_max_body_size = (size_t)n;
            else if (strcmp(name, "--max-header-bytes") == 0)
                f->opt.max_header_bytes = (size_t)n;
            else if (strcmp(name, "--read-timeout-ms") == 0)
                f->opt.read_timeout_ms = n;
            else if (strcmp(name, "--max-connections") == 0)
                f->opt.max_connections = (size_t)n;
            else if (strcmp(name, "--tls-handshake-timeout-ms") == 0)
                f->opt.tls_handshake_timeout_ms = n;
            else
                f->opt.idle_timeout_ms = n;
            f->has_opt = true;
        }
        if (!ok) {
            fprintf(stderr, "%s: bad value for %s: '%s' (see --help)\n", f->prog, name, val);
            exit(2);
        }
    }
}

/* Exit 1 with a message when a grace call failed. */
static inline void ex_check(const ex_flags_t *f, int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "%s: %s: %s\n", f->prog, what, grace_strerror(rc));
        exit(1);
    }
}

/*
 * Give server s the ports ports[0..n) (on --host's address, or on every
 * address) and the options from the flags, and set the process's restart
 * options (graceful on unless --no-graceful). Call before the first server
 * starts. Exits 1 on a configuration error.
 */
static inline void ex_configure(grace_server_t *s, const ex_flags_t *f, const int *ports, size_t n)
{
    ex_check(f, grace_set_restart_options(&f->restart), "cannot set restart options");
    if (f->workers > 0)
        ex_check(f, grace_enable_master(f->workers), "cannot enable master mode");
    if (f->pid_file != NULL)
        ex_check(f, grace_set_pid_file(f->pid_file), "bad --pid-file");
    static bool config_loaded; /* once, however many servers the example has */
    if (f->config != NULL && !config_loaded) {
        char why[600];
        config_loaded = true;
        if (grace_config_load(f->config, why, sizeof(why)) < 0) {
            fprintf(stderr, "%s: %s\n", f->prog, why);
            exit(2);
        }
    }
    if (f->config != NULL && !f->ports_given) {
        /* The file gives the addresses; flags for options still apply. */
    } else if (f->host == NULL) {
        ex_check(f, grace_server_set_ports(s, ports, n), "cannot set ports");
    } else {
        /* An IPv6 address must be bracketed before ":PORT" is added. */
        bool v6 = strchr(f->host, ':') != NULL && f->host[0] != '[';
        for (size_t i = 0; i < n; i++) {
            char addr[300];
            int len = snprintf(addr, sizeof(addr), v6 ? "[%s]:%d" : "%s:%d", f->host, ports[i]);
            if (len < 0 || (size_t)len >= sizeof(addr)) {
                fprintf(stderr, "%s: --host address too long\n", f->prog);
                exit(2);
            }
            int rc = grace_server_add_address(s, addr);
            if (rc < 0) {
                fprintf(stderr, "%s: bad listen address '%s': %s\n", f->prog, addr,
                        grace_strerror(rc));
                exit(2);
            }
        }
    }
    if (f->has_opt) {
        /* Only what the flags gave: the rest stays as it is (the file's). */
        grace_server_options_t o;
        grace_server_get_options(s, &o);
        if (f->opt.client_max_body_size)
            o.client_max_body_size = f->opt.client_max_body_size;
        if (f->opt.max_header_bytes)
            o.max_header_bytes = f->opt.max_header_bytes;
        if (f->opt.read_timeout_ms)
            o.read_timeout_ms = f->opt.read_timeout_ms;
        if (f->opt.idle_timeout_ms)
            o.idle_timeout_ms = f->opt.idle_timeout_ms;
        if (f->opt.max_connections)
            o.max_connections = f->opt.max_connections;
        if (f->opt.tls_handshake_timeout_ms)
            o.tls_handshake_timeout_ms = f->opt.tls_handshake_timeout_ms;
        if (f->opt.access_log)
            o.access_log = f->opt.access_log;
        ex_check(f, grace_server_set_options(s, &o), "cannot set options");
    }
}

/*
 * gf's s.EnableAdmin(): the admin page at /debug/admin on server s, with the
 * --admin-* flags. Exits 1 if grace refuses them (a bad network, say).
 */
static inline void ex_enable_admin(grace_server_t *s, const ex_flags_t *f)
{
    if (f->admin_token == NULL && f->n_admin_trusted == 0 && f->n_admin_dirs == 0 &&
        f->n_admin_hosts == 0) {
        ex_check(f, grace_server_enable_admin(s, NULL), "cannot enable the admin page");
        return;
    }
    grace_admin_options_t opt = {
        .token = f->admin_token,
        .trusted_networks = f->n_admin_trusted ? f->admin_trusted : NULL,
        .allowed_exe_dirs = f->n_admin_dirs ? f->admin_dirs : NULL,
        .allowed_hosts = f->n_admin_hosts ? f->admin_hosts : NULL,
    };
    ex_check(f, grace_server_enable_admin_ex(s, &opt), "cannot enable the admin page");
}

#endif /* GRACE_EXAMPLE_FLAGS_H */
