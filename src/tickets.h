/*
 * tickets.h -- the TLS session-ticket key ring (tickets.c): internals shared
 * by tls.c, inherit.c, spawn.c and restart.c. A header of its own, as
 * engine.h is, because internal.h is past its size; nothing here is API.
 */
#ifndef GRACE_TICKETS_H
#define GRACE_TICKETS_H

#include "internal.h"

#define GRACE__ENV_TICKET_FD "GRACE_TICKET_FD" /* a sealed memfd with the key ring */

enum {
    GRACE__TICKET_NAME_LEN = 16,   /* what a ticket carries to name its key */
    GRACE__TICKET_SECRET_LEN = 32, /* AES-256 key, HMAC-SHA256 key, ratchet secret */
    GRACE__TICKET_KEYS = 3,        /* the newest encrypts, the older two only decrypt */
    GRACE__TICKET_PERIOD_S = 3600, /* a new key every hour ... */
    /* ... so a key is accepted for 2 h after its hour: the session lifetime. */
    GRACE__TICKET_PAYLOAD_MAX = 72 + GRACE__TICKET_KEYS * 88,
};

typedef struct {
    unsigned char name[GRACE__TICKET_NAME_LEN];
    unsigned char aes_key[GRACE__TICKET_SECRET_LEN];
    unsigned char hmac_key[GRACE__TICKET_SECRET_LEN];
    int64_t created_s; /* boot-clock seconds: the start of its slot */
} grace__ticket_key_t;

/* Slot k runs from epoch_s + k * period_s for period_s seconds. Its key is
 * derived from the ratchet secret of slot k; the secret of slot k + 1 is a
 * one-way function of it. keys[0] is the current slot's (it encrypts),
 * keys[1] and keys[2] the two before (they still decrypt). n_keys 0: empty. */
typedef struct {
    int64_t period_s;
    int64_t epoch_s;
    uint64_t slot; /* keys[0]'s */
    unsigned char seed[GRACE__TICKET_SECRET_LEN];
    grace__ticket_key_t keys[GRACE__TICKET_KEYS];
    int n_keys;
} grace__ticket_ring_t;

/* ---- The ring: pure functions of their arguments (time is given) ---------- */

/* A new ring at now_s from 32 random bytes: one key, slot 0. */
void grace__ticket_ring_init(grace__ticket_ring_t *r, const unsigned char *seed, int64_t now_s,
                             int64_t period_s);
/* Rotate to the slot of now_s, one slot at a time (every process holding the
 * ring derives the same keys); a key past its window is wiped. Returns the
 * number of slots advanced (0: now_s is in the current slot or before it). */
uint64_t grace__ticket_ring_advance(grace__ticket_ring_t *r, int64_t now_s);
/* Index of the key named name (0 = the newest), or -1. */
int grace__ticket_ring_find(const grace__ticket_ring_t *r, const unsigned char *name);
/* OPENSSL_cleanse everything; the ring is empty afterwards. */
void grace__ticket_ring_wipe(grace__ticket_ring_t *r);
/* The payload of the memfd, at most GRACE__TICKET_PAYLOAD_MAX bytes.
 * Returns its length. */
size_t grace__ticket_ring_encode(const grace__ticket_ring_t *r, unsigned char *out);
/* Read a payload made at or before now_s into *r (left empty on error).
 * Returns 0, or GRACE_EINVAL with why said in why. */
int grace__ticket_ring_decode(grace__ticket_ring_t *r, const unsigned char *in, size_t len,
                              int64_t now_s, char *why, size_t why_len);

/* ---- The memfd that carries a ring to the next process --------------------- */

/* A sealed memfd (CLOEXEC) holding r's payload: its fd, or -errno. */
int grace__ticket_memfd_write(const grace__ticket_ring_t *r);
/* Read a ring from fd, a sealed memfd, at now_s: 0, or a negative error with
 * why (GRACE_EINVAL: not a sealed memfd, or a bad payload). */
int grace__ticket_memfd_read(int fd, grace__ticket_ring_t *r, int64_t now_s, char *why,
                             size_t why_len);

/* ---- This process's ring ----------------------------------------------------- */

/* Adopt the ring in the memfd fd_text names (GRACE_TICKET_FD, read before
 * main(); NULL: none) and close it, unless this process has a ring already.
 * A bad one is remembered, and said when the first TLS context is made. */
void grace__tickets_inherit(const char *fd_text);
/* Give ctx the ring's ticket callback and the session lifetime it implies;
 * the first call makes the ring unless one was inherited, and logs which.
 * 0, or GRACE_ETLS with why. Thread-safe. */
int grace__tickets_attach(SSL_CTX *ctx, char *why, size_t why_len);
/* A sealed memfd with the ring, as it is now, for a new process: its fd
 * (CLOEXEC, the caller closes it), -1 when this process has no ring, or
 * another negative error with why. */
int grace__tickets_pass_fd(char *why, size_t why_len);
/* The monitor's tick: rotate when a slot ends, so that an idle process does
 * not keep a secret that could still derive the keys of past slots. */
void grace__tickets_tick(int64_t now_ms);
/* Tests: seconds on the boot clock from clock instead (NULL: the real one). */
void grace__tickets_set_clock(int64_t (*clock)(void));

#endif /* GRACE_TICKETS_H */
