/*
 * internal.h -- declarations shared between grace's source files; nothing
 * here is API. Non-static internals are named grace__x.
 */
#ifndef GRACE_INTERNAL_H
#define GRACE_INTERNAL_H

#include "grace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Growable byte buffer (buf.c) ---------------------------------------
 * A plain {ptr,len,cap}; functions return 0 or GRACE_ENOMEM and never leave
 * the buffer in a broken state. ptr may move on growth. {0} is an empty
 * buffer. */
typedef struct {
    char *ptr;
    size_t len, cap;
} grace__buf_t;

int grace__buf_reserve(grace__buf_t *b, size_t extra); /* room for extra more bytes */
int grace__buf_append(grace__buf_t *b, const void *data, size_t len);
int grace__buf_appends(grace__buf_t *b, const char *s);
int grace__buf_appendf(grace__buf_t *b, const char *fmt, ...) GRACE_PRINTF(2, 3);
int grace__buf_vappendf(grace__buf_t *b, const char *fmt, va_list ap);
/* Append an unsigned decimal number (fast path for Content-Length etc.). */
int grace__buf_append_u64(grace__buf_t *b, uint64_t v);
/* Remove the first n bytes (memmove the rest down). */
void grace__buf_consume(grace__buf_t *b, size_t n);
void grace__buf_free(grace__buf_t *b);

/* ---- Per-request arena (buf.c) ------------------------------------------
 * Bump allocator: blocks are kept and reused across requests of a connection;
 * reset frees nothing but makes all memory available again. */
typedef struct grace__arena_block grace__arena_block_t;
typedef struct {
    grace__arena_block_t *head; /* current block */
    grace__arena_block_t *full; /* other blocks, reused after reset */
} grace__arena_t;

void *grace__arena_alloc(grace__arena_t *a, size_t size); /* 16-byte aligned; NULL on OOM */
void grace__arena_reset(grace__arena_t *a);
void grace__arena_free(grace__arena_t *a);

/* ---- HTTP/1.1 request parser (http1.c) ----------------------------------
 * Strict RFC 9112 parser in the spirit of picohttpparser: it parses in place
 * and fills views into the caller's buffer; it allocates nothing. */
typedef struct {
    grace_str_t method;
    grace_str_t target;      /* as received */
    grace_str_t path;        /* target up to '?' (raw, not decoded) */
    grace_str_t query;       /* after '?', {NULL,0} if no '?' */
    grace_str_t authority;   /* absolute-form: the target's host[:port]; else {NULL,0} */
    int minor_version;       /* 0 or 1 */
    grace_header_t *headers; /* caller's array */
    size_t n_headers;
    /* Derived from the headers by the parser: */
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked (final coding) */
    bool keep_alive;        /* persistent per version + Connection header */
    bool expect_continue;   /* Expect: 100-continue */
    bool has_host;
} grace__http_request_t;

/* Parse a request head (request line + header fields + empty line) at buf.
 * On entry req->headers points to the caller's array and req->n_headers
 * holds its capacity; on return n_headers is the count.
 * max_head_bytes: the limit of request line + headers.
 * Returns:
 *   > 0  complete: number of bytes of the head (body starts there);
 *   0    incomplete (and len <= max_head_bytes): call again with more data;
 *   < 0  malformed: minus the HTTP status to answer, then close:
 *        -400 syntax, bare CR/LF misuse, obs-fold, invalid characters, bad or
 *             conflicting Content-Length, Content-Length with
 *             Transfer-Encoding, missing Host on HTTP/1.1, duplicate Host;
 *        -414 request line longer than max_head_bytes;
 *        -431 head longer than max_head_bytes or more than max_headers fields;
 *             a Transfer-Encoding whose last coding is not chunked
 *             (RFC 9112 6.3);
 *        -501 codings besides a final chunked (gzip, chunked; chunked twice);
 *             any token is accepted as a method (routing decides);
 *        -505 HTTP version other than 1.0/1.1.
 * Leading empty lines (CRLF) before the request line are skipped (RFC 9112
 * 2.2); their bytes are included in the count returned. */
int grace__http_parse_request(const char *buf, size_t len, size_t max_head_bytes,
                              grace__http_request_t *req);

/* Incremental, in-place chunked body decoder. Zero-fill before first use. */
typedef struct {
    uint64_t chunk_left; /* bytes left in the current chunk */
    int state;           /* private */
    size_t consumed;     /* private */
    uint64_t total;      /* decoded body bytes so far */
} grace__chunked_t;

/* Decode the chunked bytes in buf[0..*len). Decoded data is moved to the
 * front of buf; *len is set to the number of decoded bytes now at the front.
 * Returns:
 *   >= 0 the body is complete; the value is the number of bytes following the
 *        body (start of the next request), which the decoder leaves right
 *        after the decoded data at buf + *len;
 *   -2   more data needed (every byte given has been used);
 *   -1   malformed (bad chunk size, overflow, missing CRLF, bad trailer).
 * max_body: total decoded size allowed; exceeding it returns -3. */
ssize_t grace__chunked_decode(grace__chunked_t *d, char *buf, size_t *len, uint64_t max_body);

/* Reason phrase of a status code ("Not Found"); "Unknown" if none. */
const char *grace__status_text(int status);

/* ---- Percent-decoding and query strings (url.c) ----------------------------
 * Pure functions (no state, no system call), fuzzed without a connection. */

/* Percent-decode src into dst (may be the same memory); '+' becomes ' ' only
 * when plus_is_space. Returns the decoded length (<= len), or -1 on a bad %XX
 * ('%' not followed by two hex digits); dst is then partly written. %00
 * decodes to a NUL byte. */
ssize_t grace__url_decode(char *dst, const char *src, size_t len, bool plus_is_space);

/* Find the parameter name in a raw query string ("a=1&b=x+y", without the
 * '?'): the first pair whose key, percent-decoded with '+' as space, equals
 * name exactly. A key with a bad %XX matches nothing; a pair without '=' has
 * the empty value. The value is decoded the same way into alloc(ctx,
 * value_len + 1), or copied as it came when it holds a bad %XX, and
 * NUL-terminated; *out views it (it may hold NUL bytes from %00). query.ptr
 * NULL (no '?') finds nothing.
 * Returns 1 (found, *out set), 0 (absent, *out = {NULL,0}) or GRACE_ENOMEM
 * (alloc returned NULL, *out = {NULL,0}). alloc is called at most once, and
 * only when the name is found. */
int grace__query_find(grace_str_t query, const char *name, void *(*alloc)(void *ctx, size_t size),
                      void *ctx, grace_str_t *out);

/* ---- Networks in CIDR notation (cidr.c) -------------------------------------
 * The admin's trusted networks. Pure functions (inet_pton, no state), fuzzed.
 * Addresses are 16 bytes in network order; an IPv4 one uses the first 4
 * (the rest zero). */
typedef struct {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* the network's address, host bits cleared */
    unsigned prefix;        /* bits: 0..32 (AF_INET) or 0..128 (AF_INET6) */
} grace__cidr_t;

/* Parse "10.0.0.0/8", "::1/128" or a bare address (a host route, /32 or
 * /128). The prefix is one to three decimal digits, at most the family's
 * bits. An IPv4-mapped IPv6 network of /96 or longer ("::ffff:10.0.0.0/104")
 * becomes the IPv4 one ("10.0.0.0/8"), as grace__cidr_parse_ip reports mapped
 * clients as IPv4. Host bits are cleared ("10.1.2.3/8" is 10.0.0.0/8).
 * Returns 0, or GRACE_EINVAL with *out untouched. */
int grace__cidr_parse(const char *s, grace__cidr_t *out);
/* Parse a client's address ("10.1.2.3", "::1"; an IPv4-mapped IPv6 one,
 * "::ffff:10.1.2.3", gives AF_INET and the IPv4 address) into *family and
 * addr (16 bytes). false if s is not an address (nothing written). */
bool grace__cidr_parse_ip(const char *s, int *family, unsigned char addr[16]);
/* Is addr, of family (AF_INET: 4 bytes read, AF_INET6: 16), inside n? An
 * address of the other family never is. */
bool grace__cidr_contains(const grace__cidr_t *n, int family, const unsigned char *addr);

/* ---- Router (router.c) --------------------------------------------------- */
#define GRACE__MAX_PARAMS 16

typedef struct grace__router grace__router_t;

typedef struct {
    grace_handler_cb fn;
    void *user;
    size_t n_params;
    grace_str_t names[GRACE__MAX_PARAMS];  /* owned by the router */
    grace_str_t values[GRACE__MAX_PARAMS]; /* views into the path given */
    char allow[96];                        /* for 405: "GET, HEAD, POST" */
} grace__route_match_t;

grace__router_t *grace__router_new(void);
void grace__router_free(grace__router_t *r);
/* Add a route. GRACE_EBADPATTERN for a bad pattern (no leading '/', empty or
 * duplicate parameter name, '*' not last, unknown method), GRACE_EEXIST if an
 * equivalent route (same method, same shape) exists, GRACE_ENOMEM. */
int grace__router_add(grace__router_t *r, const char *pattern, grace_handler_cb fn, void *user);
/* Match a (decoded) path. Returns 200 with m filled, 404, or 405 with
 * m->allow set. */
int grace__router_match(const grace__router_t *r, grace_str_t method, grace_str_t path,
                        grace__route_match_t *m);

/* ---- Inherited-socket protocol (inherit.c) ---------------------------------
 * GRACE_LISTEN_FDS and GRACE_DRAINING between an old and a new process;
 * inherit.c explains the formats. The parsers are pure (fuzzed). */
/* The variables, named once. */
#define GRACE__ENV_LISTEN_FDS "GRACE_LISTEN_FDS"
#define GRACE__ENV_READY_FD "GRACE_READY_FD"
#define GRACE__ENV_DRAINING "GRACE_DRAINING"
#define GRACE__ENV_MASTER "GRACE_MASTER"             /* set by a master for its children */
#define GRACE__ENV_FULL_RESTART "GRACE_FULL_RESTART" /* set by a full restart for its exec */

typedef struct {
    int fd;
    char spec[80]; /* the listen address as configured: ":8199" */
    char name[64]; /* the server's name */
    bool taken;
} grace__inherited_t;

typedef struct {
    long pid;
    unsigned long long start; /* /proc start time: tells it from a reused PID */
    int64_t deadline_ms;      /* wall clock (epoch ms) its drain limit passes; 0: not begun */
    int64_t timeout_ms;       /* its graceful_shutdown_timeout_ms */
} grace__drainer_t;

/* Parse into out (at most cap entries); malformed entries are skipped.
 * Returns the count. */
int grace__listen_fds_parse(const char *env, grace__inherited_t *out, int cap);
int grace__drainers_parse(const char *env, grace__drainer_t *out, int cap);
/* Append one GRACE_LISTEN_FDS line; GRACE_EINVAL if spec or name cannot be
 * carried ('|', newline, too long). */
int grace__listen_fds_format(grace__buf_t *b, int fd, const char *spec, const char *name);
/* Append n GRACE_DRAINING entries, comma-separated. */
int grace__drainers_format(grace__buf_t *b, const grace__drainer_t *d, int n);
/* The new process's side: the inherited socket of (server, spec), or -1
 * (grace_ready() closes those no server took). */
int grace__inherit_take(const char *server, const char *spec);
/* To the parent: we passed the sockets on (it stops watching us). */
void grace__parent_handed_over(void);
/* Close the channel to a parent that has exited (a tick; never blocks);
 * true when it found the parent gone just now. */
bool grace__parent_forget(void);
/* The process's role: alone (self-replacing), a master, or a master's child
 * (GRACE_MASTER in the environment it was started with). */
typedef enum { GRACE__ROLE_ALONE = 0, GRACE__ROLE_MASTER, GRACE__ROLE_CHILD } grace__role_t;
grace__role_t grace__role(void);
void grace__set_role_master(void); /* (does nothing in a child) */
pid_t grace__master_pid(void);     /* a child's master, else 0 */
/* A process started by a restart (or a master's child) that cannot start:
 * tell the parent why ("fail WHY"), so its rollback says it. */
void grace__parent_fail(const char *why);
/* A child: one request line to the master, and its one-line answer into
 * reply (NUL-terminated). 0 or a negative error (-ETIMEDOUT, -EPIPE). */
int grace__parent_ask(const char *request, char *reply, size_t cap, int64_t timeout_ms);
/* A master's child that bound a listening socket itself (an address its
 * master does not hold: the configuration file gained it): hand a copy to
 * the master ("bound SERVER|SPEC" with the descriptor), which passes it to
 * the children it starts from now on. Nothing in another role. */
void grace__master_adopt(const char *server, const char *spec, int fd);
/* True once, in a program a full restart executed afresh (GRACE_FULL_RESTART):
 * it writes that restart's outcome once it serves (a master: its children). */
bool grace__full_restart_take(void);

/* The older processes that still drain (from GRACE_DRAINING), oldest
 * first, our parent's deadline known once we said ready. */
int grace__older_drainers(grace__drainer_t *out, int cap);

/* ---- Log (log.c) --------------------------------------------------------- */
/* Format "YYYY-MM-DD HH:MM:SS.mmm PID: " + message + "\n" into out (at most
 * cap bytes, always NUL terminated); returns the length. */
size_t grace__log_format(char *out, size_t cap, const char *fmt, va_list ap);
/* Copy len bytes of data into out (cap bytes, NUL-terminated), each byte
 * that is not printable ASCII (or is a '"') replaced by repl: a client's
 * bytes made safe for a log line. Returns the length written. */
size_t grace__printable(char *out, size_t cap, const char *data, size_t len, char repl);
/* Log a client's protocol error once: message plus a short, printable sample
 * of the offending input. status 0: not answered, the connection closes. */
void grace__log_bad_input(const char *client_ip, int status, const char *why, const char *data,
                          size_t len);

/* ---- Time ---------------------------------------------------------------- */
int64_t grace__now_ms(void); /* CLOCK_MONOTONIC milliseconds */
/* Current "Date:" header value (IMF-fixdate, 29 chars + NUL), cached per
 * second. Thread-safe. */
void grace__http_date(char out[32]);

/* ==== Servers, the engine and the process =================================
 * Layers, lowest first (docs/architecture.md): buf, log, sys, http1,
 * chunked, url, router, tls, inherit, signals -> request, response -> conn,
 * conn_pool -> workers (the engine: loops, threads, accept) -> lifecycle ->
 * server -> restart, admin. A layer calls only the layers below it; the
 * engine reports upward through the hooks lifecycle.c gives it.
 *
 * Threads: a fixed set of event loops (one per core), each an epoll set with
 * edge-triggered connections or an io_uring (workers.c chooses the backend
 * at start-up). A loop is run by exactly one thread at a time;
 * when that thread stays inside a handler longer than a few milliseconds the
 * monitor thread hands the loop to a spare thread (workers.c explains). */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

enum { GRACE__EV_LISTENER = 1, GRACE__EV_CONN, GRACE__EV_WAKE };

/* OpenSSL's types, declared here so only tls.c needs its headers (C11
 * allows the same typedef twice). */
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

typedef struct grace__loop grace__loop_t;
typedef struct grace__conn grace__conn_t;

typedef struct {
    int kind; /* GRACE__EV_LISTENER; first, as in every object a backend watches */
    int fd;
    /* Loops accepting on it (bit per loop; each loop sets and clears its
     * own): in an epoll set, or with an accept outstanding in a ring. */
    atomic_uint_fast64_t armed;
    grace_server_t *server;
    char spec[80];  /* as configured: ":8199", "127.0.0.1:8199" */
    char shown[80]; /* for logs, after bind: ":8199", "127.0.0.1:41234" */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int port; /* bound port */
    bool all_addrs;
    bool inherited; /* taken over from the process before a restart */
    bool tls;       /* HTTPS */
} grace__listener_t;

typedef struct {
    const char *prefix; /* NULL: all */
    size_t prefix_len;
    grace_middleware_cb fn;
    void *user;
} grace__middleware_t;

enum { GRACE__SRV_NEW, GRACE__SRV_RUNNING, GRACE__SRV_DRAINING, GRACE__SRV_STOPPED };

#define GRACE__MAX_LISTENERS 32
#define GRACE__MAX_MIDDLEWARE 32

/* A server (server.c makes it; its configuration is read-only once it has
 * started, so every layer reads it without locks; the atomics are its life
 * (lifecycle.c) and counts (the engine)). */
struct grace_server {
    char name[64];
    grace_server_options_t opt; /* defaults filled in */
    char *server_header;        /* owned copy; "" for none */
    grace__router_t *router;
    grace__middleware_t mw[GRACE__MAX_MIDDLEWARE];
    size_t n_mw;
    const grace__middleware_t *global_mw; /* the process's, fixed at start */
    size_t n_global_mw;
    grace__listener_t listeners[GRACE__MAX_LISTENERS];
    size_t n_listeners;
    _Atomic int state;
    atomic_long n_conns;                /* open connections */
    atomic_bool over_limit;             /* max_connections reached: 503 episode */
    atomic_long n_refused;              /* 503s of the current episode */
    atomic_long n_inflight;             /* requests inside the handler chain */
    atomic_uint_fast64_t released_mask; /* loops that dropped the listeners (drain) */
    atomic_uint_fast64_t swept_mask;    /* loops that stopped and then swept them (workers.c) */
    atomic_bool all_released;           /* every loop dropped them */
    atomic_bool listeners_closed;       /* ... and the fds are closed (after probation) */
    atomic_int_fast64_t drain_start_ms; /* when the drain began (monotonic); 0 before */
    atomic_int_fast64_t drain_idle_ms;  /* draining: close connections idle this long */
    char *cert_path, *key_path;         /* HTTPS, set by enable_https */
    SSL_CTX *tls_ctx;                   /* built at start */
    void *admin;                        /* admin.c's settings, once enabled */
    struct grace_server *next;          /* process list (server.c) */
};

/* Request and response as handlers see them; kept in the connection's
 * exchange (engine.h) and reset for every request. conn.c fills in what
 * they need from the connection, so request.c and response.c never call
 * into it: the server, the arena, the client's address, and the one narrow
 * function a streaming response writes through. */
struct grace_request {
    grace_server_t *server;
    grace__arena_t *arena; /* per-request memory, reset after the answer */
    const char *client_ip; /* NUL-terminated, lives as long as the connection */
    int client_port;
    grace__http_request_t h;
    grace_str_t path; /* decoded */
    grace_str_t body;
    grace__route_match_t match;
    const grace__middleware_t *chain[2 * GRACE__MAX_MIDDLEWARE];
    size_t n_chain, chain_pos;
    int route_status; /* 200, 404, 405 */
    bool is_head;
};

struct grace_response {
    const grace_request_t *req; /* the request this answers */
    /* Streaming: write all of data to the client now, from the handler's
     * thread (blocking up to the write timeout). 0 or a negative error. */
    int (*write)(void *ctx, const char *data, size_t len);
    void *write_ctx;
    int status;
    grace__buf_t headers; /* "Name: value\r\n" lines set by the handler */
    grace__buf_t body;
    bool has_content_type;
    bool conn_close;      /* handler asked for Connection: close */
    bool streaming;       /* head sent by grace_response_flush */
    bool chunked;         /* streaming with chunked encoding */
    bool failed;          /* a streaming write failed: drop the connection */
    int64_t fixed_length; /* Content-Length set by the handler, -1 if none */
};

/* workers.c: the engine. It reports upward only through these hooks, given
 * once by lifecycle.c: a server's last connection closed; every loop let go
 * of a draining server's listeners; the monitor's tick (every few ms). */
typedef struct {
    void (*conn_closed)(grace_server_t *s);
    void (*listeners_released)(grace_server_t *s);
    void (*tick)(int64_t now);
} grace__engine_hooks_t;
int grace__engine_start(const grace__engine_hooks_t *hooks); /* once; loops + monitor */
/* More work for the monitor tick (restart.c's children); before start. */
int grace__engine_on_tick(void (*fn)(int64_t now));
/* Serve s's listeners (open) in every loop, all or none (0 or -errno). */
int grace__engine_add_server(grace_server_t *s);
/* Wake every loop to match its listeners with their servers' states: a
 * draining server's are no longer accepted on, a running one's are again. */
void grace__engine_sync_listeners(void);

/* lifecycle.c: the process's life (see the file). */
int grace__lifecycle_start(void);                 /* first server start: engine, signals */
void grace__lifecycle_started(grace_server_t *s); /* s runs: count it */
void grace__lifecycle_set_drain(int64_t shutdown_timeout_ms, int64_t idle_ms, int64_t delay_ms);
bool grace__lifecycle_stopping(void); /* a delayed shutdown is under way */
void grace__drain_begin(void);        /* start the drain limit's clock */
void grace__drain_all(void);          /* drain every running server */
bool grace__is_draining(void);
void grace__force_stop(const char *why);             /* the drain is over: stop waiting */
void grace__wait_stopped(void);                      /* until every server stopped */
void grace__lifecycle_hold(bool on);                 /* grace_wait() must not return */
void grace__lifecycle_set_master(void (*run)(void)); /* master mode: grace_wait() runs it */
void grace__lifecycle_close_listeners(void);         /* (a master's full restart) */
void grace__shutdown_here(void); /* this process only (a child's master is gone) */
/* Wait until every draining server's listeners have left every loop (no
 * new connection is accepted here any more); false after timeout_ms. With
 * all, until every server is draining too (a drain asked for by a signal
 * that may not have been seen yet). */
bool grace__lifecycle_wait_released(int64_t timeout_ms, bool all);
/* A restart's probation: until (monotonic ms) the listeners of draining
 * servers stay open; 0 ends it and closes them. */
void grace__lifecycle_probation(int64_t until_ms);
/* Probation rollback: draining servers whose listeners are open run again
 * (their loops take the listeners back); the drain is off. Returns how many. */
int grace__lifecycle_undrain(void);

/* spawn.c: the program's facts, and starting a new process of it. */
char *const *grace__argv(void); /* our argv as started (NULL-terminated), or NULL */
typedef struct {
    const char *exe;        /* the executable to start */
    const char *extra_arg;  /* appended to our argv (a master's child flag), or NULL */
    const char *const *env; /* NULL-terminated "NAME=value" to add (at most 8), or NULL */
    int64_t ready_timeout_ms;
    /* A line the child sends before its ready, other than "fail", with the
     * descriptor that came with it (-1: none; the callee owns it), and its
     * argument; NULL: such lines are dropped. */
    void (*on_line)(void *arg, int chan, const char *line, int fd);
    void *arg;
    /* More GRACE_LISTEN_FDS lines beyond the servers' own sockets (those a
     * master holds for its children), or NULL. */
    const grace__buf_t *more_fds;
} grace__spawn_t;
/* Start a new process that inherits every listening socket of every running
 * server and one end of a stream socket, and wait until it says ready.
 * Returns its PID, with *chan our end of the socket (the caller owns it) and
 * pending what the child sent after its ready line; or a negative error with
 * why (the child, if any, killed and reaped): GRACE_ESTATE (no server runs),
 * GRACE_ENOTREADY, GRACE_ECHILDEXIT, GRACE_ENOMEM, -errno. */
pid_t grace__spawn_ready(const grace__spawn_t *sp, int *chan, char pending[64], char *why,
                         size_t why_len);
/* Our environment without grace's variables, plus extra; free with
 * grace__env_free(). NULL when out of memory. grace__env_afresh: the same for
 * a full restart's exec in place (GRACE_FULL_RESTART, the ticket keys' fd). */
char **grace__env_build(const char *const *extra, size_t n_extra);
/* recvmsg(2) of what is there (MSG_DONTWAIT), a descriptor that came with
 * it into *fd (close-on-exec; -1: none). */
ssize_t grace__recv_line_fd(int fd, char *buf, size_t cap, int *got_fd);
char **grace__env_afresh(void);
void grace__env_free(char **env);

/* supervisor.c: the PID file, systemd notifications, socket activation. */
void grace__pid_file_write(pid_t pid); /* atomically; nothing if no PID file is set */
void grace__pid_file_remove(void);     /* if it names this process */
void grace__supervisor_quiet(void);    /* a master's child: never notify or write */
/* For gracectl: the last restart's outcome beside the PID file (out->pid > 0:
 * ok; else refused if out->retry_after_s > 0, else failed); an executable
 * gracectl asked the next restart by signal to restart to (absolute, taken once). */
void grace__outcome_write(const grace_restart_outcome_t *out);
bool grace__exe_request_take(char *out, size_t cap);
void grace__notify(const char *fmt, ...) GRACE_PRINTF(1, 2); /* $NOTIFY_SOCKET */
uint64_t grace__monotonic_usec(void);
/* A socket systemd passed that listens on l's address (or is named like the
 * server), or -1. */
int grace__activated_take(const grace__listener_t *l, const char *server);
bool grace__is_activated(int fd);
void grace__activated_pass_on(void); /* before a full restart's exec */

/* probation.c: the old process watches the new one (pid, its channel fd
 * and what it already said) after a hand-over; see the file. */
void grace__probation_start(pid_t pid, int fd, const char *pending, int64_t probation_ms);
bool grace__handed_over(void); /* true once a new process serves (until a take-back) */

/* signals.c: fn runs on the signal thread when sig arrives (registered
 * before start); start installs the handlers, once. */
int grace__signal_on(int sig, void (*fn)(int sig));
int grace__signals_start(void);

/* sys.c */
int grace__thread_detached(void *(*fn)(void *), void *arg); /* 0 or -errno */
bool grace__is_executable_file(const char *path);           /* a regular file we may execute */
/* CPUs this process may use: its affinity mask, capped by a cgroup cpu.max
 * quota (rounded up). At least 1. */
int grace__usable_cpus(void);
/* Parse a cgroup v2 cpu.max ("200000 100000" -> 2, "max 100000" -> 0). */
int grace__cpu_quota(const char *cpu_max);
int64_t grace__wall_ms(void); /* CLOCK_REALTIME milliseconds */

/* tls.c: context (error text in why), connections, non-blocking I/O that
 * returns bytes, 0 at a clean end, -EAGAIN, or another -errno. */
int grace__tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *why, size_t why_len);
void grace__tls_ctx_free(SSL_CTX *ctx);
SSL *grace__tls_new(SSL_CTX *ctx, int fd);
void grace__tls_free(SSL *ssl);
/* *drained: the socket is empty and OpenSSL holds no record unread, so
 * new bytes bring a new readiness event. */
ssize_t grace__tls_read(SSL *ssl, char *buf, size_t len, bool *drained);
ssize_t grace__tls_write(SSL *ssl, const char *buf, size_t len);
bool grace__tls_handshake_done(SSL *ssl);
void grace__tls_close_notify(SSL *ssl);

/* request.c: route and run the chain for req (head parsed, body read). */
void grace__request_dispatch(grace_request_t *req, grace_response_t *res);

/* response.c */
void grace__response_reset(grace_response_t *res, const grace_request_t *req);
/* The one keep-alive rule: may the connection carry another request after
 * this answer? (The client's wish, the handler's, not a CONNECT, and the
 * server not draining.) */
bool grace__response_keep_alive(const grace_response_t *res);
/* Serialize the finished response into out: the head (unless streaming
 * sent it) and the body, or what is left of a streamed one. */
int grace__response_finish(grace_response_t *res, grace__buf_t *out);
/* Serialize a complete error answer (status + short text body) into out;
 * always with "Connection: close". */
int grace__response_error(grace__buf_t *out, int status, const char *server_header);

#endif /* GRACE_INTERNAL_H */
