/*
 * tickets.c -- TLS session-ticket keys that outlive a process (SPEC B5; issue 12
 * item 4): a key ring grace owns, handed to the next process of a restart and to
 * every child of a master, so a client's ticket resumes its session there.
 *
 * Design. Time is cut into slots of period_s (an hour) on the boot clock
 * (CLOCK_BOOTTIME: shared by every process of the machine, and never stepped
 * like the wall clock). The key of a slot is derived (HMAC-SHA256 with a
 * label per part) from that slot's ratchet secret, and the secret of the next
 * slot is HMAC(secret, "next"): a one-way ratchet started from RAND_bytes
 * when the first process makes the ring. So every process holding the ring
 * derives the same key for the same slot without talking to the others (the
 * children of a master rotate in step), and a secret, once ratcheted past and
 * wiped, cannot be recovered from what is left. The newest key encrypts; the
 * two before it still decrypt (OpenSSL then renews the ticket); older keys
 * are wiped. A ticket is thus accepted for at least 2 h, the session
 * lifetime grace sets. The catch: whoever reads a process's memory can derive
 * the keys of the slots to come, until the program is started afresh.
 *
 * Rotation happens when a key is needed (the callback looks at the clock
 * first, so a ticket from a process already in the next slot is never
 * refused: the clock is shared) and at the monitor's tick. One mutex guards
 * the ring; it is held for a key lookup and a cipher init per ticket.
 *
 * Passing: a sealed memfd (never a file, never key bytes in the
 * environment) whose number is GRACE_TICKET_FD, made for each new process
 * by spawn.c (and for a full restart's exec), read and closed here before
 * main(). A master makes the ring with its TLS context and gives the same
 * one to every child it starts.
 */
#include "tickets.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

enum { HEAD_LEN = 72, KEY_LEN = 88, PERIOD_MIN_S = 60, PERIOD_MAX_S = 7 * 86400 };
static const char MAGIC[] = "grace-tk"; /* (its 8 letters, not the NUL) */
enum { MAGIC_LEN = sizeof MAGIC - 1 };
static const uint32_t VERSION = 1;

/* ---- The ring ------------------------------------------------------------------ */

static void prf(const unsigned char *secret, const char *label, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), secret, GRACE__TICKET_SECRET_LEN, (const unsigned char *)label,
         strlen(label), out, &len);
}

static void derive_key(const unsigned char *seed, int64_t created_s, grace__ticket_key_t *k)
{
    unsigned char name[32];
    prf(seed, "grace ticket name", name);
    memcpy(k->name, name, sizeof k->name);
    prf(seed, "grace ticket aes", k->aes_key);
    prf(seed, "grace ticket hmac", k->hmac_key);
    k->created_s = created_s;
    OPENSSL_cleanse(name, sizeof name);
}

void grace__ticket_ring_init(grace__ticket_ring_t *r, const unsigned char *seed, int64_t now_s,
                             int64_t period_s)
{
    memset(r, 0, sizeof *r);
    r->period_s = period_s;
    r->epoch_s = now_s;
    memcpy(r->seed, seed, sizeof r->seed);
    derive_key(r->seed, now_s, &r->keys[0]);
    r->n_keys = 1;
}

uint64_t grace__ticket_ring_advance(grace__ticket_ring_t *r, int64_t now_s)
{
    if (r->n_keys == 0 || now_s < r->epoch_s)
        return 0;
    uint64_t want = (uint64_t)(now_s - r->epoch_s) / (uint64_t)r->period_s;
    if (want <= r->slot)
        return 0;
    uint64_t steps = want - r->slot;
    for (uint64_t i = 0; i < steps; i++) {
        unsigned char next[32];
        prf(r->seed, "grace ticket next", next);
        memcpy(r->seed, next, sizeof next);
        OPENSSL_cleanse(next, sizeof next);
        r->slot++;
        if (want - r->slot >= GRACE__TICKET_KEYS)
            continue; /* a slot long past: only its secret is needed, to go on */
        OPENSSL_cleanse(&r->keys[GRACE__TICKET_KEYS - 1], sizeof r->keys[0]);
        memmove(&r->keys[1], &r->keys[0], (GRACE__TICKET_KEYS - 1) * sizeof r->keys[0]);
        derive_key(r->seed, r->epoch_s + (int64_t)r->slot * r->period_s, &r->keys[0]);
        if (r->n_keys < GRACE__TICKET_KEYS)
            r->n_keys++;
    }
    return steps;
}

int grace__ticket_ring_find(const grace__ticket_ring_t *r, const unsigned char *name)
{
    for (int i = 0; i < r->n_keys; i++)
        if (CRYPTO_memcmp(r->keys[i].name, name, GRACE__TICKET_NAME_LEN) == 0)
            return i;
    return -1;
}

void grace__ticket_ring_wipe(grace__ticket_ring_t *r)
{
    OPENSSL_cleanse(r, sizeof *r);
}

/* ---- The payload ----------------------------------------------------------------
 * Big-endian: "grace-tk", version (4), number of keys (4), period_s,
 * epoch_s, slot (8 each), the slot's secret (32), then per key, newest
 * first: name (16), AES key (32), HMAC key (32), created_s (8). */

static unsigned char *put(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
    return p + n;
}

static uint64_t get(const unsigned char **p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | (*p)[i];
    *p += n;
    return v;
}

size_t grace__ticket_ring_encode(const grace__ticket_ring_t *r, unsigned char *out)
{
    unsigned char *p = out;
    memcpy(p, MAGIC, MAGIC_LEN);
    p = put(p + MAGIC_LEN, VERSION, 4);
    p = put(p, (uint64_t)r->n_keys, 4);
    p = put(p, (uint64_t)r->period_s, 8);
    p = put(p, (uint64_t)r->epoch_s, 8);
    p = put(p, r->slot, 8);
    memcpy(p, r->seed, 32);
    p += 32;
    for (int i = 0; i < r->n_keys; i++) {
        const grace__ticket_key_t *k = &r->keys[i];
        memcpy(p, k->name, 16);
        memcpy(p + 16, k->aes_key, 32);
        memcpy(p + 48, k->hmac_key, 32);
        p = put(p + 80, (uint64_t)k->created_s, 8);
    }
    return (size_t)(p - out);
}

/* The fields after the header: the keys, checked against the header. */
static bool decode_keys(grace__ticket_ring_t *r, const unsigned char *p, char *why, size_t why_len)
{
    for (int i = 0; i < r->n_keys; i++) {
        grace__ticket_key_t *k = &r->keys[i];
        memcpy(k->name, p, 16);
        memcpy(k->aes_key, p + 16, 32);
        memcpy(k->hmac_key, p + 48, 32);
        p += 80;
        k->created_s = (int64_t)get(&p, 8);
        if (k->created_s != r->epoch_s + (int64_t)(r->slot - (uint64_t)i) * r->period_s) {
            snprintf(why, why_len, "key %d does not start its slot", i);
            return false;
        }
    }
    grace__ticket_key_t check;
    derive_key(r->seed, r->keys[0].created_s, &check);
    bool same = CRYPTO_memcmp(&check, &r->keys[0], sizeof check) == 0;
    OPENSSL_cleanse(&check, sizeof check);
    if (!same)
        snprintf(why, why_len, "the newest key is not the one its secret derives");
    return same;
}

/* The header: sizes, times and counts that make sense at now_s. */
static bool decode_head(grace__ticket_ring_t *r, const unsigned char *in, size_t len, int64_t now_s,
                        char *why, size_t why_len)
{
    const unsigned char *p = in + MAGIC_LEN;
    uint64_t version = get(&p, 4), n = get(&p, 4);
    r->period_s = (int64_t)get(&p, 8);
    r->epoch_s = (int64_t)get(&p, 8);
    r->slot = get(&p, 8);
    memcpy(r->seed, p, 32);
    if (version != VERSION)
        snprintf(why, why_len, "format version %llu (this program reads %u)",
                 (unsigned long long)version, (unsigned)VERSION);
    else if (n < 1 || n > GRACE__TICKET_KEYS || len != HEAD_LEN + n * KEY_LEN)
        snprintf(why, why_len, "%zu bytes for %llu keys", len, (unsigned long long)n);
    else if (r->period_s < PERIOD_MIN_S || r->period_s > PERIOD_MAX_S)
        snprintf(why, why_len, "rotation period %lld s", (long long)r->period_s);
    else if (r->epoch_s < 0 || r->epoch_s > now_s ||
             r->slot > (uint64_t)(now_s - r->epoch_s) / (uint64_t)r->period_s)
        snprintf(why, why_len, "made in the future");
    else if (n != (r->slot + 1 < GRACE__TICKET_KEYS ? r->slot + 1 : GRACE__TICKET_KEYS))
        snprintf(why, why_len, "%llu keys at slot %llu", (unsigned long long)n,
                 (unsigned long long)r->slot);
    else {
        r->n_keys = (int)n;
        return true;
    }
    return false;
}

int grace__ticket_ring_decode(grace__ticket_ring_t *r, const unsigned char *in, size_t len,
                              int64_t now_s, char *why, size_t why_len)
{
    memset(r, 0, sizeof *r);
    if (len < HEAD_LEN || memcmp(in, MAGIC, MAGIC_LEN) != 0) {
        snprintf(why, why_len, "not a grace ticket-key payload (%zu bytes)", len);
        return GRACE_EINVAL;
    }
    if (decode_head(r, in, len, now_s, why, why_len) && decode_keys(r, in + HEAD_LEN, why, why_len))
        return 0;
    grace__ticket_ring_wipe(r);
    return GRACE_EINVAL;
}

/* ---- The memfd ----------------------------------------------------------------- */

/* What makes the content immutable: checked by the reader. */
enum { IMMUTABLE = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE };

int grace__ticket_memfd_write(const grace__ticket_ring_t *r)
{
    unsigned char buf[GRACE__TICKET_PAYLOAD_MAX];
    size_t len = grace__ticket_ring_encode(r, buf);
    int fd = memfd_create("grace-ticket-keys", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int err = fd < 0 ? -errno : 0;
    size_t off = 0;
    while (err == 0 && off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w > 0)
            off += (size_t)w;
        else if (w == 0 || errno != EINTR)
            err = w < 0 ? -errno : -EIO;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    if (err == 0 && fcntl(fd, F_ADD_SEALS, IMMUTABLE | F_SEAL_SEAL) < 0)
        err = -errno;
    if (err < 0 && fd >= 0)
        close(fd);
    return err < 0 ? err : fd;
}

int grace__ticket_memfd_read(int fd, grace__ticket_ring_t *r, int64_t now_s, char *why,
                             size_t why_len)
{
    int seals = fcntl(fd, F_GET_SEALS);
    struct stat st;
    if (seals < 0 || (seals & IMMUTABLE) != IMMUTABLE || fstat(fd, &st) < 0) {
        snprintf(why, why_len, "descriptor %d is not a sealed memfd", fd);
        return GRACE_EINVAL;
    }
    unsigned char buf[GRACE__TICKET_PAYLOAD_MAX + 1];
    size_t len = 0;
    ssize_t n = 1;
    while (n != 0 && len < sizeof buf) {
        n = pread(fd, buf + len, sizeof buf - len, (off_t)len);
        if (n < 0 && errno != EINTR) {
            int err = errno;
            snprintf(why, why_len, "cannot read descriptor %d: %s", fd, strerror(err));
            return -err;
        }
        len += n > 0 ? (size_t)n : 0;
    }
    int rc = grace__ticket_ring_decode(r, buf, len, now_s, why, why_len);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

/* ---- This process's ring ----------------------------------------------------------- */

enum { ORIGIN_NONE, ORIGIN_INHERITED, ORIGIN_REJECTED };

static struct {
    pthread_mutex_t mu; /* guards everything below but next_s */
    grace__ticket_ring_t ring;
    int origin;
    char why[200]; /* ORIGIN_REJECTED: why */
    bool said;     /* the start-up line is logged */
    int64_t (*clock)(void);
    _Atomic int_fast64_t next_s; /* when the ring rotates next (0: no ring) */
} tk = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t boot_clock_s(void)
{
    if (tk.clock)
        return tk.clock();
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t)ts.tv_sec;
}

void grace__tickets_set_clock(int64_t (*clock)(void))
{
    tk.clock = clock;
}

/* Rotate to now; called with tk.mu held. */
static void advance_locked(int64_t now_s)
{
    grace__ticket_ring_t *r = &tk.ring;
    if (r->n_keys == 0)
        return;
    grace__ticket_ring_advance(r, now_s);
    atomic_store(&tk.next_s, r->epoch_s + (int64_t)(r->slot + 1) * r->period_s);
}

void grace__tickets_inherit(const char *fd_text)
{
    if (fd_text == NULL)
        return;
    char *end;
    long fd = strtol(fd_text, &end, 10);
    pthread_mutex_lock(&tk.mu);
    if (tk.ring.n_keys > 0) {
        pthread_mutex_unlock(&tk.mu);
        return;
    }
    int r = GRACE_EINVAL;
    if (fd > 2 && fd < INT32_MAX && *end == '\0' && fd_text[0] != '+') {
        r = grace__ticket_memfd_read((int)fd, &tk.ring, boot_clock_s(), tk.why, sizeof tk.why);
        if (r != 0 && fcntl((int)fd, F_GET_SEALS) < 0)
            fd = -1; /* not a memfd: not ours to close */
    } else {
        snprintf(tk.why, sizeof tk.why, "%s=\"%.40s\" names no descriptor", GRACE__ENV_TICKET_FD,
                 fd_text);
        fd = -1;
    }
    if (fd > 2)
        close((int)fd);
    tk.origin = r == 0 ? ORIGIN_INHERITED : ORIGIN_REJECTED;
    advance_locked(boot_clock_s());
    pthread_mutex_unlock(&tk.mu);
}

/* Before main(), as inherit.c reads its variables: the variable leaves the
 * environment, so the program's own children never see it. */
__attribute__((constructor)) static void tickets_init(void)
{
    grace__tickets_inherit(getenv(GRACE__ENV_TICKET_FD));
    unsetenv(GRACE__ENV_TICKET_FD);
}

/* The one start-up line: where the keys came from (never a key byte). */
static void say_origin(int n_inherited)
{
    long long every = tk.ring.period_s, more = (GRACE__TICKET_KEYS - 1) * every;
    if (tk.origin == ORIGIN_INHERITED)
        grace_log("TLS session tickets: %d key%s inherited from the process that started this "
                  "one, whose sessions resume here (a new key every %lld s, each accepted %lld s "
                  "more)",
                  n_inherited, n_inherited == 1 ? "" : "s", every, more);
    else if (tk.origin == ORIGIN_REJECTED)
        grace_log("TLS session tickets: the keys passed by the process that started this one are "
                  "unusable (%s): new keys generated; earlier sessions do a full handshake",
                  tk.why);
    else
        grace_log("TLS session tickets: new keys generated (a new key every %lld s, each accepted "
                  "%lld s more)",
                  every, more);
}

/* Make the ring if there is none; called with tk.mu held. */
static int ensure_ring_locked(char *why, size_t why_len)
{
    int n_inherited = tk.ring.n_keys;
    if (tk.ring.n_keys == 0) {
        unsigned char seed[GRACE__TICKET_SECRET_LEN];
        if (RAND_bytes(seed, sizeof seed) != 1) {
            snprintf(why, why_len, "no random bytes for the session-ticket keys");
            return GRACE_ETLS;
        }
        grace__ticket_ring_init(&tk.ring, seed, boot_clock_s(), GRACE__TICKET_PERIOD_S);
        OPENSSL_cleanse(seed, sizeof seed);
    }
    if (!tk.said) {
        tk.said = true;
        say_origin(n_inherited);
    }
    advance_locked(boot_clock_s());
    return 0;
}

static int set_mac_key(EVP_MAC_CTX *hctx, unsigned char *key)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, GRACE__TICKET_SECRET_LEN),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params);
}

/* OpenSSL's ticket callback: enc, the newest key (IV made here); else the
 * key the ticket names: 1 = use it, 2 = use it and issue a fresh ticket (an
 * older key, or any TLS 1.3 resumption), 0 = unknown or expired (full
 * handshake), -1 = error. A TLS 1.3 client should use a ticket once (RFC
 * 8446 C.4; OpenSSL's client drops a used session when it keeps a session
 * cache, as wrk does), so a resumed TLS 1.3 session gets a fresh ticket, as
 * OpenSSL does with its own keys (and so nginx): without it such a client
 * resumed every other connection only, and one with Nagle on waited for our
 * delayed ACK before its request. */
static int ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    if (enc && RAND_bytes(iv, 16) != 1) /* AES-CBC's IV */
        return -1;
    int rc = 0;
    pthread_mutex_lock(&tk.mu);
    advance_locked(boot_clock_s());
    int i = enc ? 0 : grace__ticket_ring_find(&tk.ring, name);
    if (i >= 0 && tk.ring.n_keys > 0) {
        grace__ticket_key_t *k = &tk.ring.keys[i];
        if (enc)
            memcpy(name, k->name, GRACE__TICKET_NAME_LEN);
        bool ok = set_mac_key(hctx, k->hmac_key) == 1 &&
                  EVP_CipherInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes_key, iv, enc) == 1;
        rc = !ok ? -1 : i == 0 && SSL_version(ssl) < TLS1_3_VERSION ? 1 : 2;
    }
    pthread_mutex_unlock(&tk.mu);
    return rc;
}

int grace__tickets_attach(SSL_CTX *ctx, char *why, size_t why_len)
{
    pthread_mutex_lock(&tk.mu);
    int r = ensure_ring_locked(why, why_len);
    int64_t lifetime_s = (GRACE__TICKET_KEYS - 1) * tk.ring.period_s;
    pthread_mutex_unlock(&tk.mu);
    if (r < 0)
        return r;
    /* A session outlives no key that could decrypt its ticket. */
    SSL_CTX_set_timeout(ctx, (long)lifetime_s);
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1) {
        snprintf(why, why_len, "cannot set the session-ticket callback");
        return GRACE_ETLS;
    }
    return 0;
}

int grace__tickets_pass_fd(char *why, size_t why_len)
{
    pthread_mutex_lock(&tk.mu);
    int fd = -1;
    if (tk.ring.n_keys > 0) {
        advance_locked(boot_clock_s());
        fd = grace__ticket_memfd_write(&tk.ring);
        if (fd < 0)
            snprintf(why, why_len, "memfd: %s", strerror(-fd));
    }
    pthread_mutex_unlock(&tk.mu);
    return fd;
}

void grace__tickets_tick(int64_t now_ms)
{
    (void)now_ms; /* the monotonic clock; slots are on the boot clock */
    int64_t next = atomic_load(&tk.next_s);
    if (next == 0 || boot_clock_s() < next || pthread_mutex_trylock(&tk.mu) != 0)
        return;
    advance_locked(boot_clock_s());
    pthread_mutex_unlock(&tk.mu);
}
