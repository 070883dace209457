/*
 * engine.h -- what the engine's files share: workers.c (loops, threads,
 * timeouts), accept.c, conn.c (one connection's life: parse, run, answer),
 * conn_io.c (its bytes to and from the socket), conn_pool.c (its memory)
 * and the two backends behind grace__backend_t, loop_epoll.c and
 * loop_uring.c. Private to those files; see workers.c for the threading
 * design and its invariants, and the backend files for what each kernel
 * interface does.
 */
#ifndef GRACE_ENGINE_H
#define GRACE_ENGINE_H

#include "internal.h"

#include <arpa/inet.h>
#include <time.h>

enum {
    MAX_LOOPS = 64,
    BATCH = 64,
    HANDOFF_MS = 5,        /* a handler blocked this long gets its loop handed off */
    MONITOR_TICK_MS = 5,   /* how often the monitor looks */
    MAX_THREADS = 4096,    /* bound on worker threads (blocked handlers) */
    SPARE_IDLE_MS = 30000, /* a spare thread unused this long exits */
    SCAN_MS = 250,         /* timeout scan period */
    LINGER_MS = 2000,      /* after an error answer, how long to drain input */
    MAX_REQUESTS_PER_WAKE = 32,
    /* New connections one wake takes (epoll: its listener is level-
     * triggered, so it comes back with the next batch). Few, as nginx takes
     * one: a new connection's first pass may be a TLS handshake, and the
     * requests of connections already under way should not wait behind a
     * crowd of them (HTTPS new-connection p99: 10 ms with 64, 4.8 with 4;
     * docs/benchmarks.md). A drain's sweep, and io_uring after a pause,
     * take more (ACCEPTS_PER_SWEEP). */
    ACCEPTS_PER_WAKE = 4, /* (io_uring: TLS first passes per batch) */
    ACCEPTS_PER_SWEEP = 64,
    READ_CHUNK = 4096,
    BUF_KEEP = 65536,    /* per-connection buffers above this are freed after use */
    CONN_POOL = 256,     /* closed connections that keep their buffers for reuse */
    CONN_POOL_IDLE = 8,  /* ... when the loop has accepted nothing for a while */
    CONN_SLAB = 32,      /* connection structs allocated together (conn_pool.c) */
    IDLE_TRIM_MS = 1000, /* idle this long: a connection's buffers are freed */
    CROWD_CONNS = 1024,  /* ... at once, when its server has more open (conn.c) */
    INPUT_HIGH = 65536,  /* completion mode: input held this large pauses receiving */
};

/* How a connection's bytes move (c->io, fixed at accept). Readiness: the
 * backend says when the socket is ready and conn_io.c calls recv/send (or
 * OpenSSL does); every epoll connection, and TLS ones under io_uring.
 * Completion: the io_uring backend receives into its buffers and sends
 * c->out itself; conn_io.c only hands bytes over (see loop_uring.c). */
enum { IO_READY, IO_COMPLETION };

enum { ST_HEAD, ST_BODY, ST_CHUNKED };

/* What a connection needs while it answers requests: the request and
 * response objects, the per-request arena and the parsed-header array (the
 * server's max_headers entries), in one block. Allocated at a connection's
 * first request and kept across its keep-alive requests; freed when the
 * connection idles (conn_trim), so an idle connection costs its
 * grace__conn_t alone. */
typedef struct {
    grace_request_t req;
    grace_response_t res;
    grace__arena_t arena;
    size_t headers_cap;
    grace_header_t headers[];
} grace__exchange_t;

typedef struct grace__slab grace__slab_t;

struct grace__conn {
    int kind; /* GRACE__EV_CONN */
    int fd;
    grace__loop_t *loop;
    grace__slab_t *slab; /* where the struct lives (conn_pool.c) */
    grace_server_t *server;
    grace__conn_t *prev, *next; /* loop's list (or its spare list), owner only */
    grace__conn_t *next_closed; /* loop's closed list, under loop->mu */
    atomic_int busy, pending;
    bool closed;
    bool watched;        /* the backend watches it (grace__conn_start) */
    bool maybe_readable; /* an event came since the last short read */
    bool close_after_write;
    bool lingering; /* write side shut, discarding input until EOF */
    bool req_started;
    bool served;          /* answered a request (TCP_NODELAY is set on the second) */
    bool client_closes;   /* the client asked to close and sent nothing after */
    bool handler_took_ms; /* the last handler ran across a tick of now_ms() */
    int state;
    grace__buf_t in, out;
    size_t out_off;
    size_t head_len, body_len; /* body_len: decoded body bytes so far */
    const char *head_base;     /* in.ptr when the head was parsed */
    grace__chunked_t chunked;
    int64_t req_start_ms, deadline_ms;
    int64_t active_ms;     /* last socket event, or the accept: idle since then */
    grace__exchange_t *ex; /* NULL while idle (trimmed) or never used */
    bool nodelay;          /* TCP_NODELAY set (once reused; TLS: from the accept) */
    char client_ip[INET6_ADDRSTRLEN];
    int client_port;
    SSL *ssl;         /* HTTPS connection, else NULL */
    bool tls_checked; /* first bytes looked at: a TLS record, not plain HTTP */
    uint8_t io;       /* IO_READY or IO_COMPLETION */
    /* Completion mode, the loop owner's alone (loop_uring.c and conn_io.c
     * on the owner thread; the busy flag does not guard these): */
    bool recv_armed;    /* a multishot receive is outstanding */
    bool recv_tried;    /* the first read was tried with recv(2) */
    bool fresh;         /* in its first pass (grace__conn_start) */
    bool sending;       /* a send of c->out is outstanding */
    bool cancelled;     /* closed: its outstanding requests were cancelled */
    int8_t ops;         /* requests outstanding in the ring; freed only at 0 */
    int rd_end;         /* the receive ended: 1 at EOF, else -errno; 0 while open */
    int wr_err;         /* a send failed: -errno */
    size_t sent;        /* bytes a send completion reported, not yet taken off c->out */
    grace__buf_t inbox; /* received while another thread held the connection */
    /* Under loop->mu: the loop's kick list (grace__conn_kick). Also, on
     * io_uring, the link of the owner's queue of new TLS connections
     * awaiting their first pass (busy held: nobody can kick them). */
    bool kick_queued;
    grace__conn_t *next_kick;
};

struct grace__loop {
    int id;
    void *be; /* the backend's own state for this loop */
    struct {
        int kind; /* GRACE__EV_WAKE */
        int fd;   /* eventfd: a write wakes the loop */
    } wake;
    _Atomic uint64_t busy_seq; /* 0: not in a handler */
    uint64_t seq_counter;
    /* The monitor's alone: the busy_seq it saw at its last look, and since
     * when (its precise clock). */
    uint64_t seen_seq;
    int64_t seen_since_ms;
    grace__conn_t conns; /* list head (sentinel), owner only */
    pthread_mutex_t mu;  /* guards closed, kicked and the connections' inboxes */
    grace__conn_t *closed;
    grace__conn_t *kicked; /* to be run by the owner (grace__conn_kick) */
    atomic_bool has_kicked;
    grace__conn_t spare; /* owner only: list head of free structs (conn_pool.c) */
    int n_spare;
    int n_pooled;           /* spare structs that kept their buffers */
    int64_t last_accept_ms; /* owner only: pool shrinks when accepts stop */
    long n_released;        /* connections freed to malloc since the last trim */
    int64_t trimmed_ms;     /* last malloc_trim() by this loop */
    atomic_bool check_drain;
    bool sweep; /* owner: accept once more on stopped listeners (workers.c) */
    int64_t next_scan_ms;
    /* Out of descriptors (EMFILE): listeners this loop stopped accepting on
     * until resume_ms, or until a connection of this loop closes. */
    grace__listener_t *paused[GRACE__MAX_LISTENERS];
    int n_paused;
    int64_t resume_ms;
    int64_t pause_ms;     /* current backoff: doubles per pause, to 1 s */
    int64_t episode_ms;   /* when this episode of EMFILE began; 0: none */
    long n_pauses;        /* pauses in the episode, for its log line */
    atomic_bool fd_freed; /* a connection of this loop closed */
};

static inline int64_t now_ms(void)
{
    /* The coarse clock costs a few ns and ticks every few ms: plenty for
     * timeouts measured in seconds. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Backends ------------------------------------------------------------
 * The kernel interface a loop waits with, chosen once at start-up
 * (workers.c engine_init): loop_epoll.c or loop_uring.c. Every function
 * runs on the loop's owner thread unless it says otherwise. */
typedef struct {
    const char *name;
    /* Set up L (its wake eventfd is open): 0, or -errno with the failing
     * call in why. */
    int (*loop_init)(grace__loop_t *L, char *why, size_t why_len);
    /* Send what the last batch queued, wait up to timeout_ms, and make
     * what happened L's next batch. */
    void (*wait)(grace__loop_t *L, int timeout_ms);
    /* Run the next event of the batch (it may run handlers, and the
     * thread may lose the loop meanwhile); false when the batch is done. */
    bool (*step)(grace__loop_t *L);
    /* Accept on l in L: 0 or -errno. any_thread: may be called by any
     * thread (grace__engine_add_server does, all or none); if not, the
     * loop arms its listeners itself (workers.c sync_listeners). */
    int (*listen_start)(grace__loop_t *L, grace__listener_t *l);
    bool listen_any_thread;
    /* Stop accepting on l in L; true once it has stopped (l->armed says
     * so later when it takes a while). */
    bool (*listen_stop)(grace__loop_t *L, grace__listener_t *l);
    /* After an EMFILE pause: accept what waits, then watch l again. */
    void (*listen_resume)(grace__loop_t *L, grace__listener_t *l);
    /* A new connection, counted and listed: give it its first pass
     * (grace__conn_start), now or soon. NULL: now. */
    void (*conn_start)(grace__conn_t *c);
    /* c has had its first pass (grace__conn_start): watch it from now on.
     * Busy holder; false if it could not (c is then closed by the caller). */
    bool (*conn_watch)(grace__conn_t *c);
    /* Come back to c in the next batch (fairness). Busy holder. */
    void (*conn_again)(grace__conn_t *c);
    /* c is closing (its fd is still open). Busy holder, any thread. */
    void (*conn_forget)(grace__conn_t *c);
    /* c is closed: may its memory go now? (Cancels what is outstanding.) */
    bool (*conn_release)(grace__conn_t *c);
    /* Completion mode: send c->out from out_off; receive. */
    void (*conn_send)(grace__conn_t *c);
    void (*conn_recv)(grace__conn_t *c);
    /* Completion mode: has the kernel received bytes for c that the loop
     * has not seen yet (which a look at the socket would miss)? */
    bool (*conn_input_pending)(const grace__conn_t *c);
    /* Only the owner thread may run a connection (conn.c hands it over). */
    bool owner_only;
    /* This thread has just taken L over (a hand-off): what the previous
     * owner submitted and still runs (io_uring's multishot receives, polls,
     * the wake poll) completes through that thread -- woken for every
     * completion, a fifth of the loop's CPU. Submit it again from here.
     * (Listeners: workers.c stops and re-arms them.) NULL: nothing to do. */
    void (*loop_adopt)(grace__loop_t *L);
} grace__backend_t;

extern const grace__backend_t grace__backend_epoll;
#ifdef GRACE_HAVE_IO_URING
extern const grace__backend_t grace__backend_uring;
/* Can this process use io_uring as loop_uring.c does? 0, or -errno with
 * the failing call in why (workers.c logs the choice). */
int grace__uring_probe(char *why, size_t why_len);
#endif
extern const grace__backend_t *grace__be; /* the one in use (workers.c) */

/* workers.c: is the calling thread L's owner (not one that lost L to a
 * hand-off while its handler ran)? */
bool grace__loop_owned(const grace__loop_t *L);

/* ---- accept.c (owner) -------------------------------------------------- */
/* accept4() on l until the queue is empty, or max connections (or a pause,
 * or a hand-off). */
void grace__accept_all(grace__loop_t *L, grace__listener_t *l, int max);
/* A connection the backend accepted on l (its address unknown yet). */
void grace__accept_one(grace__loop_t *L, grace__listener_t *l, int fd);
/* Accepting on l failed with err: EMFILE and kin pause it; false for any
 * other error (the backend decides). */
bool grace__accept_failed(grace__loop_t *L, grace__listener_t *l, int err);
/* Paused listeners come back (maintenance). */
void grace__accept_resume(grace__loop_t *L, int64_t now);
bool grace__accept_is_paused(const grace__loop_t *L, const grace__listener_t *l);

/* ---- conn_pool.c (owner only) ---------------------------------------- */
grace__conn_t *grace__conn_new(grace__loop_t *L, grace_server_t *s);
void grace__conn_free(grace__conn_t *c);
/* Free the buffers of spare structs beyond keep. */
void grace__conn_pool_shrink(grace__loop_t *L, int keep);
/* Free an idle connection's buffers and exchange; the next request
 * allocates them again. */
void grace__conn_trim(grace__conn_t *c);
/* Only the input buffer and the exchange (an answer may still be sending
 * from c->out). */
void grace__conn_trim_input(grace__conn_t *c);
/* c's exchange, with room for max_headers (before a head is parsed: it may
 * move). NULL when out of memory. */
grace__exchange_t *grace__exchange_get(grace__conn_t *c, size_t max_headers);

/* ---- conn.c ------------------------------------------------------------ */
void grace__conn_start(grace__conn_t *c);
/* An event for c: run it unless another thread holds it (then that thread
 * sees pending). */
void grace__conn_event(grace__conn_t *c);
/* Run c, whose busy flag the caller took. */
void grace__conn_run(grace__conn_t *c);
void grace__conn_close(grace__conn_t *c);
/* Timers of one connection, run by the loop owner between batches with the
 * connection's busy flag held: the drain's idle rule, the read / write /
 * idle deadlines (408), buffer trimming. Returns false if c was closed. */
bool grace__conn_tick(grace__conn_t *c, int64_t now);

/* ---- conn_io.c --------------------------------------------------------- */
/* Write c->out: 1 when all is written, 0 when the rest goes later (EAGAIN,
 * or a send in the ring), -1 when the peer is gone. Busy holder. */
int grace__conn_flush(grace__conn_t *c);
/* Read more into c->in, up to limit bytes in all: 1 (got bytes, or an
 * answer to send), 0 (nothing now), -1 (EOF or error). Busy holder. */
int grace__conn_read(grace__conn_t *c, size_t limit);
void grace__conn_linger(grace__conn_t *c, int64_t now);
/* Lingering: throw away input; false if c closed (the client's EOF). */
bool grace__conn_discard(grace__conn_t *c);
/* Has the client sent bytes that c->in does not hold? */
bool grace__conn_unread_input(const grace__conn_t *c);
/* Streaming writes from the handler's thread (grace_response_flush). */
int grace__conn_write_blocking(void *ctx, const char *data, size_t len);
/* Completion mode: may this thread do c's I/O now? If not (a thread that
 * lost the loop while its handler ran), c goes to the owner: false. */
bool grace__conn_on_owner(grace__conn_t *c);
/* Hand c to its loop's owner, which runs it in its next batch. Any thread
 * holding c's busy flag, or the owner. */
void grace__conn_kick(grace__conn_t *c);
/* The backend (owner) received data or the end (res: bytes, 0 for EOF,
 * -errno) for c. Copies; true when it took c's busy flag: then call
 * grace__conn_run (after giving the buffer back), else grace__conn_event. */
bool grace__conn_input(grace__conn_t *c, const char *data, int res);
/* The backend (owner) finished a send of c->out: res bytes or -errno. */
void grace__conn_sent(grace__conn_t *c, int res);

/* workers.c: lifecycle's hook, for conn.c: s's connection count reached 0. */
void grace__engine_conn_closed(grace_server_t *s);
/* workers.c: mark the calling loop thread as inside a handler (the monitor
 * may hand its loop to another thread meanwhile). */
void grace__handler_enter(void);
void grace__handler_leave(void);
/* workers.c: the loop must run sync_listeners soon (a listener stopped). */
void grace__loop_recheck_listeners(grace__loop_t *L);

#endif /* GRACE_ENGINE_H */
