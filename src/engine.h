/*
 * engine.h -- what workers.c (loops, threads, accept, timeouts) and conn.c
 * (one connection's life: read, parse, run, write) share. Private to those
 * two files; see workers.c for the threading design and its invariants.
 */
#ifndef GRACE_ENGINE_H
#define GRACE_ENGINE_H

#include "internal.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
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
    ACCEPTS_PER_WAKE = 64,
    READ_CHUNK = 4096,
    BUF_KEEP = 65536,    /* per-connection buffers above this are freed after use */
    CONN_POOL = 256,     /* closed connections that keep their buffers for reuse */
    CONN_POOL_IDLE = 8,  /* ... when the loop has accepted nothing for a while */
    CONN_SLAB = 32,      /* connection structs allocated together (conn_pool.c) */
    IDLE_TRIM_MS = 1000, /* idle this long: a connection's buffers are freed */
};

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
    bool in_epoll;       /* registered with loop->epfd (grace__conn_start) */
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
};

struct grace__loop {
    int id;
    int epfd;
    struct {
        int kind; /* GRACE__EV_WAKE */
        int fd;
    } wake;
    struct epoll_event events[BATCH];
    int n_events, idx;
    _Atomic uint64_t busy_seq; /* 0: not in a handler */
    atomic_int_fast64_t busy_start_ms;
    uint64_t seq_counter;
    grace__conn_t conns; /* list head (sentinel), owner only */
    pthread_mutex_t mu;  /* guards closed */
    grace__conn_t *closed;
    grace__conn_t spare; /* owner only: list head of free structs (conn_pool.c) */
    int n_spare;
    int n_pooled;           /* spare structs that kept their buffers */
    int64_t last_accept_ms; /* owner only: pool shrinks when accepts stop */
    long n_released;        /* connections freed to malloc since the last trim */
    int64_t trimmed_ms;     /* last malloc_trim() by this loop */
    atomic_bool check_drain;
    int64_t next_scan_ms;
    /* Out of descriptors (EMFILE): listeners taken out of this loop's epoll
     * set until resume_ms, or until a connection of this loop closes. */
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

/* conn_pool.c (owner only) */
grace__conn_t *grace__conn_new(grace__loop_t *L, grace_server_t *s);
void grace__conn_free(grace__conn_t *c);
/* Free the buffers of spare structs beyond keep. */
void grace__conn_pool_shrink(grace__loop_t *L, int keep);
/* Free an idle connection's buffers and exchange; the next request
 * allocates them again. */
void grace__conn_trim(grace__conn_t *c);
/* c's exchange, with room for max_headers (before a head is parsed: it may
 * move). NULL when out of memory. */
grace__exchange_t *grace__exchange_get(grace__conn_t *c, size_t max_headers);

/* conn.c */
void grace__conn_start(grace__conn_t *c);
void grace__conn_event(grace__conn_t *c);
void grace__conn_close(grace__conn_t *c);
int grace__conn_flush(grace__conn_t *c);
void grace__conn_linger(grace__conn_t *c, int64_t now);
/* Timers of one connection, run by the loop owner between batches with the
 * connection's busy flag held: the drain's idle rule, the read / write /
 * idle deadlines (408), buffer trimming. Returns false if c was closed. */
bool grace__conn_tick(grace__conn_t *c, int64_t now);

/* workers.c: lifecycle's hook, for conn.c: s's connection count reached 0. */
void grace__engine_conn_closed(grace_server_t *s);
/* workers.c: mark the calling loop thread as inside a handler (the monitor
 * may hand its loop to another thread meanwhile). */
void grace__handler_enter(void);
void grace__handler_leave(void);

#endif /* GRACE_ENGINE_H */
