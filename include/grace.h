/*
 * grace.h -- the whole public API of grace, an HTTP/1.1 server library whose
 * servers can be restarted, upgraded and shut down without failing a request.
 *
 * Read it top-down: version, errors, types, then one section per object in
 * the order a program meets them: server -> routes/middleware -> request ->
 * response -> process (wait/shutdown) -> log.
 *
 * Conventions used by every declaration below:
 *  - Functions that can fail return int: >= 0 on success, a negative GRACE_E*
 *    code on failure. System errors are exactly -errno (GRACE_EADDRINUSE ==
 *    -EADDRINUSE). grace_strerror() turns a code into text.
 *  - Strings handed out as grace_str_t are views (pointer + length, not NUL
 *    terminated) and say how long they live.
 *  - Handlers and middleware run on grace's worker threads and may block
 *    (sleep, call a database): a blocked handler never delays other requests.
 *  - Configuration calls (set_*, bind_*, use) are meant for start-up, before
 *    grace_server_start(); they are not synchronised with running workers.
 */
#ifndef GRACE_H
#define GRACE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GRACE_API __attribute__((visibility("default")))
#define GRACE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define GRACE_API
#define GRACE_PRINTF(f, a)
#endif

/* ---- Version ------------------------------------------------------------
 * Same major version = same API and ABI. grace_version() is the number of the
 * library actually linked; compare it with GRACE_VERSION_HEX to catch a header
 * and library that do not match. */
#define GRACE_VERSION_MAJOR 0
#define GRACE_VERSION_MINOR 1
#define GRACE_VERSION_PATCH 0
#define GRACE_VERSION_HEX                                                                          \
    ((GRACE_VERSION_MAJOR << 16) | (GRACE_VERSION_MINOR << 8) | GRACE_VERSION_PATCH)

GRACE_API unsigned grace_version(void);
GRACE_API const char *grace_version_string(void);

/* ---- Errors -------------------------------------------------------------
 * System errors are -errno; grace's own errors live at -1000 and below. */
/* System errors: exactly -errno (checked at build time in log.c). */
#define GRACE_ERRNO_SYS_MAP(XX)                                                                    \
    XX(EINVAL, -22, "invalid argument")                                                            \
    XX(ENOMEM, -12, "out of memory")                                                               \
    XX(EEXIST, -17, "already exists")                                                              \
    XX(ENOENT, -2, "no such file or directory")                                                    \
    XX(EACCES, -13, "permission denied")                                                           \
    XX(EADDRINUSE, -98, "address already in use")                                                  \
    XX(EADDRNOTAVAIL, -99, "cannot assign requested address")                                      \
    XX(EAGAIN, -11, "resource temporarily unavailable")

/* grace's own conditions: -1000 and below. */
#define GRACE_ERRNO_OWN_MAP(XX)                                                                    \
    XX(ESTATE, -1000, "operation not allowed in the server's current state")                       \
    XX(EBADADDR, -1001, "bad listen address")                                                      \
    XX(EBADPATTERN, -1002, "bad route pattern")                                                    \
    XX(ENOLISTEN, -1003, "server has no address to listen on")                                     \
    XX(ESENT, -1004, "response headers already sent")                                              \
    XX(ENOTREADY, -1005, "new process did not become ready in time")                               \
    XX(ECHILDEXIT, -1006, "new process exited before it was ready")                                \
    XX(EBADEXE, -1007, "executable not allowed or not executable")                                 \
    XX(ETLS, -1008, "TLS configuration error (certificate or key)")                                \
    XX(ERESTARTING, -1009, "a restart is already in progress")                                     \
    XX(EHANDEDOVER, -1010, "this process has handed over to a newer one and is draining")          \
    XX(EMAXDRAINING, -1011, "too many old processes still draining (max_draining)")         \
    XX(ECONFIG, -1012, "bad configuration file")

#define GRACE_ERRNO_MAP(XX) GRACE_ERRNO_SYS_MAP(XX) GRACE_ERRNO_OWN_MAP(XX)

typedef enum {
#define GRACE_XX_(name, val, text) GRACE_##name = (val),
    GRACE_ERRNO_MAP(GRACE_XX_)
#undef GRACE_XX_
} grace_errno_t;

/* Text for an error code (negative), e.g. "address already in use". For a
 * negative errno not in the list, the C library's strerror text. Never NULL;
 * the string is static. */
GRACE_API const char *grace_strerror(int err);
/* Name of an error code, e.g. "EADDRINUSE"; "UNKNOWN" if not in the list. */
GRACE_API const char *grace_err_name(int err);

/* ---- Types -------------------------------------------------------------- */
typedef struct grace_server grace_server_t;
typedef struct grace_request grace_request_t;
typedef struct grace_response grace_response_t;

/* A string view: ptr is not NUL terminated; {NULL, 0} means "absent". */
typedef struct {
    const char *ptr;
    size_t len;
} grace_str_t;

/* A request header as received: name in its original case. */
typedef struct {
    grace_str_t name;
    grace_str_t value;
} grace_header_t;

/* A handler answers one request. It runs on a worker thread, may block, and
 * must not keep req or res (or any view from them) after it returns. user is
 * the pointer given at registration, untouched. Return 0; a negative return
 * with nothing written yet becomes a 500 answer. */
typedef int (*grace_handler_cb)(grace_request_t *req, grace_response_t *res, void *user);

/* A middleware runs before the route's handler. It calls grace_next() to run
 * the rest of the chain (later middleware, then the handler) and may work
 * after it returns; if it does not call grace_next(), the chain stops there
 * and the middleware's own answer is sent (e.g. 403 from an auth check). */
typedef void (*grace_middleware_cb)(grace_request_t *req, grace_response_t *res, void *user);

/* ---- Server ------------------------------------------------------------- */

/* Limits and timeouts of a server. Zero in any field means the default given
 * beside it (gf's defaults). Pass to grace_server_set_options(). */
typedef struct {
    size_t max_header_bytes;     /* request line + headers: 10240 bytes */
    size_t max_headers;          /* header count: 100 */
    size_t client_max_body_size; /* request body: 8 MiB (8388608) */
    int64_t read_timeout_ms;     /* whole request, first byte to last: 60000 */
    int64_t idle_timeout_ms;     /* keep-alive wait for the next request: 60000 */
    int64_t write_timeout_ms;    /* a stalled response write: 60000 */
    int64_t tls_handshake_timeout_ms; /* HTTPS: accept to handshake done: 10000 */
    int access_log;              /* 1: one line per request to stderr; 0 off (default) */
    int error_log;               /* clients' bad requests and timeouts logged: 0 or 1 (default); -1 off */
    const char *server_header;   /* "Server:" value: "grace"; "" sends none */
    /* Open connections at once; a connection beyond it is answered "503
     * Service Unavailable" (Retry-After: 1) and closed, and the log says so
     * once per episode. Default: 3/4 of the process's RLIMIT_NOFILE (the
     * rest is left for listeners, files and the program), at most 1024 fewer. */
    size_t max_connections;
} grace_server_options_t;

/* The server named name, created on first use: a process-wide singleton, so
 * every call with the same name returns the same object (gf's g.Server(name)).
 * NULL or "" is the default server. Thread-safe. Returns NULL only when out
 * of memory. The server lives until the process exits. */
GRACE_API grace_server_t *grace_server(const char *name);

/* The server's name ("default" for the default server). Static storage. */
GRACE_API const char *grace_server_name(const grace_server_t *s);

/* Replace the server's listen ports with ports[0..n_ports) on every address
 * (IPv6 and IPv4, like gf's ":8199"). Port 0 asks the kernel for a free port;
 * the port chosen is logged and given by grace_server_ports(). */
GRACE_API int grace_server_set_ports(grace_server_t *s, const int *ports, size_t n_ports);

/* Add one listen address: "8199", ":8199" (all addresses), "127.0.0.1:8199",
 * "[::1]:8199", "[::]:8199". Returns GRACE_EBADADDR for anything else. */
GRACE_API int grace_server_add_address(grace_server_t *s, const char *addr);

/* HTTPS (gf's EnableHTTPS): load a certificate chain (PEM, leaf first) and
 * its private key (PEM, not encrypted) when the server starts -- and again in
 * the new process of every graceful restart, which is how a renewed
 * certificate goes live. TLS 1.2 and 1.3 only, modern ciphers, ALPN
 * "http/1.1". The files are only recorded here; a missing, unreadable,
 * encrypted or mismatched key or certificate makes grace_server_start() fail
 * with GRACE_ETLS and a log line that says which. If no HTTPS address is set
 * when the server starts, its plain addresses serve HTTPS instead (as gf:
 * EnableHTTPS + SetPort(8200) serves https on 8200). */
GRACE_API int grace_server_enable_https(grace_server_t *s, const char *cert_path,
                                        const char *key_path);
/* HTTPS listen ports (every address), added to the server's addresses: one
 * server may serve HTTP on some ports and HTTPS on others. */
GRACE_API int grace_server_set_https_ports(grace_server_t *s, const int *ports, size_t n_ports);
/* One HTTPS listen address, same forms as grace_server_add_address(). */
GRACE_API int grace_server_add_https_address(grace_server_t *s, const char *addr);

/* Set limits and timeouts (see grace_server_options_t). grace copies opt and
 * the string it points to. */
GRACE_API int grace_server_set_options(grace_server_t *s, const grace_server_options_t *opt);
/* The server's options as they stand, defaults filled in (server_header
 * lives as long as the server, or until the next set_options). */
GRACE_API void grace_server_get_options(const grace_server_t *s, grace_server_options_t *out);

/* Start listening and serving without blocking. Logs one line per address,
 * "http server started listening on [:8199]". Fails, listening on nothing,
 * if any address cannot be bound (GRACE_EADDRINUSE, ...). Starts the process's
 * worker threads on first use. */
GRACE_API int grace_server_start(grace_server_t *s);

/* grace_server_start() then grace_wait(): blocks until every server of the
 * process has shut down. Returns 0, or the start error. */
GRACE_API int grace_server_run(grace_server_t *s);

/* Graceful shutdown of one server: stop accepting, finish requests in flight
 * (each keep-alive connection is closed after its current response, idle ones
 * at once), then release the ports. Returns at once; grace_wait() waits. May
 * be called from any thread, including a handler. */
GRACE_API int grace_server_shutdown(grace_server_t *s);

/* Number of listen addresses and the port actually bound for each (after
 * start; before start, the configured port). Returns the count, fills up to
 * cap entries of ports. */
GRACE_API size_t grace_server_ports(const grace_server_t *s, int *ports, size_t cap);

/* true while the server is started and not fully shut down. */
GRACE_API bool grace_server_is_running(const grace_server_t *s);

// ---- Routes and middleware ----------------------------------------------
// Pattern syntax (gf's BindHandler):
//   "/user/list"          exact path
//   "/user/{id}"          named parameter: one path segment
//   "/user/:id"           the same, colon form
//   "/static/*path"       wildcard: the rest of the path (may be empty); "*"
//                         alone names it "any"
//   "POST:/user/{id}"     method prefix: only that method (GET also answers
//                         HEAD); without one, any method.
// The most specific route wins: at the first segment where two routes differ,
// an exact segment beats a parameter, which beats a wildcard. A path that no
// route matches gets 404; a path that matches only with other methods gets 405
// with an Allow header.
GRACE_API int grace_server_bind_handler(grace_server_t *s, const char *pattern, grace_handler_cb fn,
                                        void *user);

/* Add middleware for requests to this server whose path starts with prefix
 * (NULL or "/" for all; "/debug/admin" covers "/debug/admin" and
 * "/debug/admin/..." but not "/debug/administrator"). Runs in the order added,
 * global middleware first, for routed and unrouted (404/405) requests alike. */
GRACE_API int grace_server_use(grace_server_t *s, const char *prefix, grace_middleware_cb fn,
                               void *user);

/* Middleware for every server of the process (added before any server
 * starts). */
GRACE_API int grace_use_global(grace_middleware_cb fn, void *user);

/* From a middleware: run the rest of the chain now. */
GRACE_API void grace_next(grace_request_t *req, grace_response_t *res);

/* ---- Request ------------------------------------------------------------
 * Every grace_str_t below is valid until the handler returns. Lookups by
 * name are case-insensitive for headers and exact for query and route
 * parameters. */
GRACE_API grace_str_t grace_request_method(const grace_request_t *r);
/* The request target exactly as received ("/a%20b?x=1"). */
GRACE_API grace_str_t grace_request_target(const grace_request_t *r);
/* The path part of the target, percent-decoded ("/a b"). */
GRACE_API grace_str_t grace_request_path(const grace_request_t *r);
/* The raw query string after '?', without it ("x=1"); {NULL,0} if none. */
GRACE_API grace_str_t grace_request_query_string(const grace_request_t *r);
/* A query parameter, percent- and '+'-decoded; {NULL,0} if absent. The first
 * occurrence wins. */
GRACE_API grace_str_t grace_request_query(grace_request_t *r, const char *name);
/* A header's value (the first one if repeated); {NULL,0} if absent. For a
 * request whose target is in absolute form ("GET http://a.example/x"),
 * "Host" gives the target's authority, not the Host header (RFC 9112 3.2.2);
 * grace_request_headers() still lists the headers as received. */
GRACE_API grace_str_t grace_request_header(const grace_request_t *r, const char *name);
/* The host[:port] the request is addressed to: the authority of an
 * absolute-form target, else the Host header; {NULL,0} if neither (HTTP/1.0
 * without Host). */
GRACE_API grace_str_t grace_request_host(const grace_request_t *r);
/* All headers in received order: returns the count and sets *out to an array
 * valid until the handler returns. */
GRACE_API size_t grace_request_headers(const grace_request_t *r, const grace_header_t **out);
/* A route parameter ("id" of "/user/{id}"), percent-decoded; {NULL,0} if the
 * route has none of that name. */
GRACE_API grace_str_t grace_request_param(const grace_request_t *r, const char *name);
/* The whole body, chunked encoding removed; {"",0} if none. */
GRACE_API grace_str_t grace_request_body(const grace_request_t *r);
/* The client's address as text, "127.0.0.1" or "::1" (NUL terminated, valid
 * until the handler returns), and its port. */
GRACE_API const char *grace_request_client_ip(const grace_request_t *r);
GRACE_API int grace_request_client_port(const grace_request_t *r);
/* HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1. */
GRACE_API int grace_request_http_minor(const grace_request_t *r);
/* The server this request came to. */
GRACE_API grace_server_t *grace_request_server(const grace_request_t *r);
/* Memory that lives until the response is done (freed by grace). NULL if out
 * of memory. */
GRACE_API void *grace_request_alloc(grace_request_t *r, size_t size);

/* ---- Response -----------------------------------------------------------
 * Buffered by default, like gf: what a handler writes is kept and sent, with
 * Content-Length, when the handler returns. grace_response_flush() switches
 * to streaming: headers go out at once (chunked for HTTP/1.1 when no
 * Content-Length was set) and every later flush sends what was written since.
 * A flush blocks the handler until the data is written or the write timeout
 * passes. */
GRACE_API int grace_response_set_status(grace_response_t *res, int status);
GRACE_API int grace_response_status(const grace_response_t *res);
/* Set a header, replacing any earlier one of the same name (case-insensitive).
 * grace copies name and value; CR, LF and NUL are refused (GRACE_EINVAL). */
GRACE_API int grace_response_set_header(grace_response_t *res, const char *name, const char *value);
/* Add a header, keeping earlier ones of the same name (Set-Cookie). */
GRACE_API int grace_response_add_header(grace_response_t *res, const char *name, const char *value);
GRACE_API int grace_response_write(grace_response_t *res, const void *data, size_t len);
/* Write s and "\n" (gf's Writeln). */
GRACE_API int grace_response_writeln(grace_response_t *res, const char *s);
GRACE_API int grace_response_writef(grace_response_t *res, const char *fmt, ...) GRACE_PRINTF(2, 3);
GRACE_API int grace_response_vwritef(grace_response_t *res, const char *fmt, va_list ap);
/* Write data as a JSON string literal: quotes added, '"', '\\' and control
 * characters escaped, invalid UTF-8 replaced by U+FFFD. */
GRACE_API int grace_response_write_json_string(grace_response_t *res, const char *data, size_t len);
/* Set status, "Content-Type: application/json" and write json (a complete
 * JSON text the caller built). */
GRACE_API int grace_response_json(grace_response_t *res, int status, const char *json);
/* Send headers and everything written so far now (see above). */
GRACE_API int grace_response_flush(grace_response_t *res);
/* Discard the body written so far (not possible once flushed: GRACE_ESENT). */
GRACE_API int grace_response_clear(grace_response_t *res);

/* ---- Process ------------------------------------------------------------ */

/* Block until every started server of the process has shut down. Returns
 * at once if none was started. */
GRACE_API void grace_wait(void);

/* Graceful shutdown of every server (see grace_server_shutdown()). Safe from
 * any thread, including a handler. */
GRACE_API void grace_shutdown_all(void);

/* ---- Restart (SPEC G1-G5, G7, G8, G9, B1, B2) -----------------------------
 * One restart restarts every server of the process.
 *
 * Graceful restart (self-replacing, gf v2): a new process of the program is
 * started with the same argv, working directory and stdio; it inherits every
 * listening socket (no TCP port, no file: descriptors and an environment
 * variable), and its servers take them over by server name and address. When
 * the new process is ready (it calls grace_wait(), grace_server_run() or
 * grace_ready()), the old one stops accepting and drains: requests in flight
 * are answered with "Connection: close"; a keep-alive connection between two
 * requests is left open so that its next request -- perhaps already on the
 * wire -- is answered too, with "Connection: close"; only a connection that
 * has carried nothing for drain_idle_ms is closed early (spread over the next
 * drain_idle_ms, so clients do not all reconnect at once). The old process
 * reaps the new one if it exits first, and exits when grace_wait() returns in
 * it, or at graceful_shutdown_timeout_ms, cutting what is left. If the new
 * process cannot start, exits, or is not ready within graceful_timeout_ms,
 * the old one keeps serving (rollback). Probation: for probation_ms after
 * "ready" the old process keeps its listening sockets open (it does not
 * accept on them); if the new process crashes meanwhile (a signal or a
 * non-zero exit status), the old one takes them back and serves again.
 *
 * Full restart: the servers stop accepting and drain, their sockets close,
 * and the program is executed afresh in the same process (same PID), binding
 * its ports again. Requests cannot pass over; this is what a restart does
 * when graceful mode is off. */
typedef struct {
    int graceful;                         /* 1: restarts are graceful; 0 (default): full */
    int64_t graceful_timeout_ms;          /* new process must be ready within: 30000 */
    int64_t graceful_shutdown_timeout_ms; /* drain limit of an old process: 5000 */
    int max_draining;                     /* old processes draining at once: 8 */
    int64_t drain_idle_ms; /* draining: close a connection idle this long: 1000 (max 1 day) */
    int64_t probation_ms;  /* old process keeps its sockets while the new one proves itself: 2000 */
    /* After a shutdown signal, keep serving this long before draining (the
     * readiness probe says "draining" at once, so load balancers stop
     * sending): 0 (default), max 1 hour. */
    int64_t shutdown_delay_ms;
} grace_restart_options_t;

/* Set the process's restart options (zero fields keep defaults). Call before
 * the first server starts. Returns 0 or GRACE_EINVAL. */
GRACE_API int grace_set_restart_options(const grace_restart_options_t *opt);
GRACE_API void grace_get_restart_options(grace_restart_options_t *out);

/* Which restart grace_restart_ex() does. */
typedef enum {
    GRACE_RESTART_AUTO = 0, /* graceful when graceful mode is on, otherwise full */
    GRACE_RESTART_GRACEFUL, /* always graceful (gf v1's Reload) */
    GRACE_RESTART_FULL,     /* always full (SIGUSR2) */
} grace_restart_kind_t;

/* What became of a restart, for people and programs (the admin page). */
typedef struct {
    int pid;           /* graceful: the new process's PID once it serves; else 0 */
    int retry_after_s; /* refused for now (GRACE_ERESTARTING, GRACE_EHANDEDOVER,
                          GRACE_EMAXDRAINING): seconds after which a retry can
                          succeed; else 0 */
    char why[512];     /* why it failed or was refused, one line; "" on success */
} grace_restart_outcome_t;

/* Restart the process. new_exe_path: NULL or "" restarts the running
 * executable (as found on disk now, so a binary replaced in place is picked
 * up); otherwise that file (SPEC G4). It must be an executable regular file:
 * GRACE_EBADEXE if not.
 * Graceful: blocks until the new process is ready and this one has stopped
 * accepting, so that every new connection reaches the new process (returns
 * its PID, > 0), or
 * the restart failed and was rolled back (GRACE_ECHILDEXIT, GRACE_ENOTREADY,
 * GRACE_EBADEXE, -errno). It is refused, and nothing changes, when another
 * restart is under way (GRACE_ERESTARTING), when this process has already
 * handed over and only drains (GRACE_EHANDEDOVER: a retry reaches the new
 * process), when graceful mode is off for a GRACEFUL restart (GRACE_ESTATE),
 * and when max_draining old processes are still draining
 * (GRACE_EMAXDRAINING): a restart never cuts a request of an older process
 * before its own graceful_shutdown_timeout_ms.
 * Full: returns 0 at once; the drain and re-exec happen in the background.
 * out (may be NULL) receives the details. Callable from any thread,
 * including a handler. Logs the outcome. */
GRACE_API int grace_restart_ex(const char *new_exe_path, grace_restart_kind_t kind,
                               grace_restart_outcome_t *out);
/* grace_restart_ex(new_exe_path, GRACE_RESTART_AUTO, NULL). */
GRACE_API int grace_restart(const char *new_exe_path);
/* Always graceful (gf v1's Reload); GRACE_ESTATE if graceful mode is off. */
GRACE_API int grace_reload(const char *new_exe_path);
/* Always a full restart (SIGUSR2). */
GRACE_API int grace_restart_full(const char *new_exe_path);
/* The server-level names of gf (s.Restart(), s.Reload()): the whole process
 * restarts, as in gf. */
GRACE_API int grace_server_restart(grace_server_t *s, const char *new_exe_path);
GRACE_API int grace_server_reload(grace_server_t *s, const char *new_exe_path);

/* ---- Health probes -------------------------------------------------------------
 * For load balancers and Kubernetes: GET ready_pattern answers 200 "ready"
 * while the server takes new work, and 503 "draining" from the moment a
 * drain (a restart's, or a shutdown's, shutdown_delay_ms included) begins;
 * GET live_pattern answers 200 "alive" while the process runs. Neither needs
 * authentication or reveals anything. NULL for either: not registered. */
GRACE_API int grace_server_enable_probes(grace_server_t *s, const char *ready_pattern,
                                         const char *live_pattern);

/* ---- Configuration file (SPEC B7) ------------------------------------------
 * gf's config.yaml: a `server` section for the default server (and the
 * process: graceful, gracefulTimeout, gracefulShutdownTimeout, pidFile,
 * master, workers, ...), `server.NAME` sections (or NAME mappings inside
 * `server`) for named servers, whose values override the default section's.
 * docs/operations.md lists every key. path NULL: $GRACE_CONFIG, else
 * ./config.yaml, else ./config/config.yaml, else nothing. Call before
 * starting servers; the program's own calls made before it are overridden
 * where the file gives a value, calls made after it override the file.
 * Returns 1 (a file was applied), 0 (no file found; path was NULL), or
 * GRACE_ECONFIG with why (file, line, key, value, what is expected), e.g.
 *   config.yaml:12: server.readTimeout: "6O s" is not a duration (like "60s", ...)
 * In a process started by a graceful restart, the old process gets why too
 * and rolls back with it. Uses libyaml. */
GRACE_API int grace_config_load(const char *path, char *why, size_t why_len);

/* ---- Master mode and supervisors (SPEC G6, B3) ------------------------------
 * Master mode (gf v1's): the program runs as a small master that owns the
 * listening sockets and starts `workers` children -- the same executable
 * and argv, plus GRACE_CHILD_FLAG -- which serve. The master runs no
 * handler and its PID never changes, so supervisors and people signal it:
 * SIGUSR1 restarts the children gracefully (each new child ready before
 * the old ones drain; rollback if one fails), SIGUSR2 is a full restart (the
 * master re-executes itself in place), SIGINT/SIGQUIT/SIGHUP/SIGTERM drain
 * the children and exit 0. A child's admin page, grace_restart() and
 * grace_shutdown_all() act through the master and answer with its outcome.
 * A child that dies unasked is replaced after a pause that doubles (100 ms to
 * 10 s) while children keep dying quickly; the master keeps trying.
 * The same main() works in both modes: call grace_enable_master() before
 * the first server starts; in a child it only marks the child. A program
 * with a strict argument parser must accept (and ignore) GRACE_CHILD_FLAG. */
#define GRACE_CHILD_FLAG "--grace-child"

/* Run in master mode with workers children (0: 1; at most 64). Call before
 * the first server starts. Returns 0, GRACE_EINVAL or -errno. */
GRACE_API int grace_enable_master(int workers);

/* Write this PID file (created or replaced atomically): the master's PID in
 * master mode, else the serving process's, rewritten at every hand-over by
 * the old process. Removed at exit by the process it names. Call before the
 * first server starts. Under systemd, $NOTIFY_SOCKET is used by itself
 * (READY, RELOADING, MAINPID, STOPPING, STATUS), and sockets passed by socket
 * activation ($LISTEN_FDS) are taken by the server whose address (or name,
 * $LISTEN_FDNAMES) they match, and never closed by a restart. */
GRACE_API int grace_set_pid_file(const char *path);

/* Tell the parent of a graceful restart that this process serves. Called by
 * grace_wait() and grace_server_run() for you; call it yourself only if your
 * program never calls them. Inherited sockets no server took are closed.
 * Does nothing in a process not started by a restart. */
GRACE_API void grace_ready(void);

/* Process facts for status pages. */
GRACE_API int64_t grace_uptime_ms(void);
GRACE_API const char *grace_executable_path(void); /* of the running process */
/* Requests being answered right now by server s. */
GRACE_API long grace_server_inflight(const grace_server_t *s);
/* Number of listen addresses of s; the i-th's text (":8199") and scheme
 * ("http" or "https"). Strings live as long as the server. */
GRACE_API size_t grace_server_address_count(const grace_server_t *s);
GRACE_API const char *grace_server_address(const grace_server_t *s, size_t i);
GRACE_API const char *grace_server_address_scheme(const grace_server_t *s, size_t i);
/* Call fn for every server of the process, in creation order. */
GRACE_API void grace_servers_foreach(void (*fn)(grace_server_t *s, void *user), void *user);

/* ---- Admin (SPEC A1-A3, B4) ----------------------------------------------
 * enable_admin registers, under pattern (default "/debug/admin"):
 *   pattern            an HTML page: PID, executable, uptime, servers and
 *                      addresses, requests in flight, restart/shutdown links
 *   pattern/status     the same as JSON, for programs
 *   pattern/restart    restart (graceful if enabled); ?newExeFilePath=PATH
 *   pattern/reload     the same (gf v1's name)
 *   pattern/shutdown   graceful shutdown of every server
 * A restart answers after the outcome is known: the new PID, or why it
 * failed. Safe by default: requests are refused (403, and one log line)
 * unless they come from a trusted network (loopback by default) -- or, when
 * a token or an auth hook is configured, unless they pass it. Whatever the
 * authentication, also refused:
 *  - a Host (grace_request_host(): an absolute-form target's host wins)
 *    that does not name this server, the mark of DNS rebinding (a foreign
 *    site's name re-pointed at this address). It must be an IP address (IPv4, or bracketed IPv6),
 *    "localhost" (any case, also "localhost."), or a name in allowed_hosts;
 *    an optional ":port" is ignored. An HTTP/1.0 request without Host is
 *    refused too. Behind a reverse proxy that passes the client's Host on,
 *    list the public name in allowed_hosts;
 *  - Host, Authorization, Origin, Referer, Sec-Fetch-Site or Sec-Fetch-Dest
 *    sent twice (two Host headers are a 400 already, from the parser);
 *  - cross-site requests (Fetch Metadata Sec-Fetch-Site, Origin, Referer).
 * newExeFilePath must resolve to an executable in the running executable's
 * directory or in allowed_exe_dirs, and neither the file nor that directory
 * may be group- or world-writable or owned by a user other than root and the
 * process's effective user. */

/* Auth hook: return true to allow the admin request. */
typedef bool (*grace_admin_auth_cb)(grace_request_t *req, void *user);

typedef struct {
    const char *pattern;      /* NULL: "/debug/admin" */
    const char *token;        /* if set: "Authorization: Bearer T" or ?token=T required */
    grace_admin_auth_cb auth; /* if set: decides instead of the network check */
    void *auth_user;
    const char *const *trusted_networks; /* NULL-terminated CIDRs; NULL: 127.0.0.0/8, ::1/128 */
    const char *const *allowed_exe_dirs; /* NULL-terminated extra directories for newExeFilePath */
    /* NULL-terminated host names (besides IP addresses and localhost) that a
     * request's Host may give, compared without the port and ignoring case:
     * "admin.example.com". A name only: GRACE_EINVAL for one with a port,
     * brackets or characters other than letters, digits, '-', '.', '_'. */
    const char *const *allowed_hosts;
} grace_admin_options_t;

/* gf's EnableAdmin: pattern NULL or "" for "/debug/admin". Enabling it
 * again on the same server with the same pattern replaces its settings (a
 * configuration file adding a token to the page the program enabled);
 * another pattern: GRACE_EEXIST. */
GRACE_API int grace_server_enable_admin(grace_server_t *s, const char *pattern);
GRACE_API int grace_server_enable_admin_ex(grace_server_t *s, const grace_admin_options_t *opt);

/* ---- Log ----------------------------------------------------------------
 * grace logs to stderr in gf's shape, one line per write(2) so lines from
 * threads and processes never interleave:
 *   "2018-05-18 11:02:04.812 11511: http server started listening on [:8199]"
 */
GRACE_API void grace_log(const char *fmt, ...) GRACE_PRINTF(1, 2);

#ifdef __cplusplus
}
#endif
#endif /* GRACE_H */
