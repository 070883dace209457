/*
 * test_tickets.c -- the TLS session-ticket key ring (src/tickets.c), with
 * the time given, never waited for: rotation slot by slot, the window of
 * three keys, the same keys in every process holding the ring however it
 * advanced, the memfd payload (round trip; each kind of bad payload refused
 * with its reason, read from right before an inaccessible page), the sealed
 * memfd, a process started with a good or a bad ring (a forked child, its
 * log line read back), and real OpenSSL handshakes in memory (TLS 1.2 and
 * 1.3) that resume, renew after a rotation, and stop resuming once the key
 * has expired.
 */
#include "internal.h"
#include "tickets.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

enum { P = 3600, T0 = 1000 };

static const unsigned char SEED[32] = "0123456789abcdef0123456789abcde";

static grace__ticket_ring_t ring_at(int64_t now)
{
    grace__ticket_ring_t r;
    grace__ticket_ring_init(&r, SEED, T0, P);
    grace__ticket_ring_advance(&r, now);
    return r;
}

/* ---- The ring ------------------------------------------------------------------ */

static void test_rotation_keeps_three_keys_newest_first(void)
{
    grace__ticket_ring_t r = ring_at(T0);
    EXPECT_EQ(r.n_keys, 1);
    EXPECT_EQ(r.keys[0].created_s, T0);
    grace__ticket_key_t first = r.keys[0];
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 + P - 1), 0); /* same slot */
    EXPECT_EQ(r.n_keys, 1);
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 + P), 1);
    EXPECT_EQ(r.n_keys, 2);
    EXPECT_EQ(r.keys[0].created_s, T0 + P);
    EXPECT_TRUE(memcmp(&r.keys[1], &first, sizeof first) == 0); /* the old one, second */
    EXPECT_TRUE(memcmp(r.keys[0].name, first.name, 16) != 0);
    EXPECT_TRUE(memcmp(r.keys[0].aes_key, first.aes_key, 32) != 0);
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 + 2 * P + 5), 1);
    EXPECT_EQ(r.n_keys, 3);
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 + 3 * P), 1);
    EXPECT_EQ(r.n_keys, 3); /* never more */
    EXPECT_EQ(r.slot, 3);
    EXPECT_EQ(r.keys[2].created_s, T0 + P);
}

static void test_a_key_decrypts_for_two_slots_after_its_own(void)
{
    grace__ticket_ring_t r = ring_at(T0);
    unsigned char name[16];
    memcpy(name, r.keys[0].name, 16);
    for (int slot = 0; slot < 6; slot++) {
        grace__ticket_ring_advance(&r, T0 + (int64_t)slot * P);
        EXPECT_EQ(grace__ticket_ring_find(&r, name), slot < 3 ? slot : -1);
    }
    unsigned char unknown[16] = {0};
    EXPECT_EQ(grace__ticket_ring_find(&r, unknown), -1);
}

static void test_every_holder_derives_the_same_keys(void)
{
    /* Slot by slot (a busy process), in one jump (an idle one), or from a
     * copy taken midway (a child started later): the same ring. */
    grace__ticket_ring_t steps = ring_at(T0), jump = ring_at(T0), later;
    for (int s = 1; s <= 10; s++) {
        grace__ticket_ring_advance(&steps, T0 + (int64_t)s * P + 7);
        if (s == 4)
            later = steps;
    }
    grace__ticket_ring_advance(&jump, T0 + 10 * P + 100);
    grace__ticket_ring_advance(&later, T0 + 10 * P);
    EXPECT_TRUE(memcmp(&steps, &jump, sizeof steps) == 0);
    EXPECT_TRUE(memcmp(&steps, &later, sizeof steps) == 0);
    EXPECT_EQ(jump.n_keys, 3);
    EXPECT_EQ(jump.keys[2].created_s, T0 + 8 * P);
    /* Another seed, other keys. */
    unsigned char other_seed[32] = {1};
    grace__ticket_ring_t other;
    grace__ticket_ring_init(&other, other_seed, T0, P);
    EXPECT_TRUE(memcmp(other.keys[0].name, ring_at(T0).keys[0].name, 16) != 0);
}

static void test_clock_before_the_slot_changes_nothing(void)
{
    grace__ticket_ring_t r = ring_at(T0 + 2 * P), before = r;
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 + 2 * P - 1), 0);
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 - 50), 0);
    EXPECT_TRUE(memcmp(&r, &before, sizeof r) == 0);
}

static void test_wipe_leaves_nothing(void)
{
    grace__ticket_ring_t r = ring_at(T0 + 5 * P);
    grace__ticket_ring_wipe(&r);
    static const grace__ticket_ring_t zero;
    EXPECT_TRUE(memcmp(&r, &zero, sizeof r) == 0);
    EXPECT_EQ(grace__ticket_ring_advance(&r, T0 + 9 * P), 0); /* empty stays empty */
}

/* ---- The payload ----------------------------------------------------------------- */

/* len bytes of data ending right before an inaccessible page. */
static const unsigned char *guarded(const unsigned char *data, size_t len)
{
    static unsigned char *area;
    long page = sysconf(_SC_PAGESIZE);
    if (area == NULL) {
        area = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                    0);
        mprotect(area + page, (size_t)page, PROT_NONE);
    }
    unsigned char *at = area + page - len;
    memcpy(at, data, len);
    return at;
}

static void test_payload_round_trip(void)
{
    for (int slots = 0; slots < 5; slots++) {
        grace__ticket_ring_t r = ring_at(T0 + (int64_t)slots * P), back;
        unsigned char buf[GRACE__TICKET_PAYLOAD_MAX];
        size_t len = grace__ticket_ring_encode(&r, buf);
        EXPECT_EQ(len, 72 + 88 * (size_t)r.n_keys);
        char why[200] = "";
        EXPECT_EQ(grace__ticket_ring_decode(&back, guarded(buf, len), len, T0 + slots * P, why,
                                            sizeof why),
                  0);
        EXPECT_TRUE(memcmp(&r, &back, sizeof r) == 0);
        EXPECT_EQ(grace__ticket_ring_decode(&back, buf, len, T0 + 50 * P, why, sizeof why), 0);
    }
}

typedef struct {
    const char *what;
    size_t offset; /* byte to change (SIZE_MAX: none) */
    unsigned char value;
    int len_delta;
    int64_t now_delta;
    const char *why;
} bad_t;

static void test_bad_payloads_are_refused_with_a_reason(void)
{
    static const bad_t bad[] = {
        {"magic", 0, 'G', 0, 0, "not a grace ticket-key payload (336 bytes)"},
        {"empty", SIZE_MAX, 0, -336, 0, "not a grace ticket-key payload (0 bytes)"},
        {"header cut", SIZE_MAX, 0, -265, 0, "not a grace ticket-key payload (71 bytes)"},
        {"version", 11, 2, 0, 0, "format version 2 (this program reads 1)"},
        {"no keys", 15, 0, 0, 0, "336 bytes for 0 keys"},
        {"four keys", 15, 4, 0, 0, "336 bytes for 4 keys"},
        {"cut short", SIZE_MAX, 0, -1, 0, "335 bytes for 3 keys"},
        {"one more byte", SIZE_MAX, 0, 1, 0, "337 bytes for 3 keys"},
        {"two keys", 15, 2, -88, 0, "2 keys at slot 4"},
        {"period", 22, 0, 0, 0, "rotation period 16 s"},
        {"from the future", SIZE_MAX, 0, 0, -P - 1, "made in the future"},
        {"slot", 39, 9, 0, 0, "made in the future"},
        {"key time", 335, 1, 0, 0, "key 2 does not start its slot"},
        {"newest key", 100, 0x55, 0, 0, "the newest key is not the one its secret derives"},
        {"secret", 40, 0x55, 0, 0, "the newest key is not the one its secret derives"},
    };
    grace__ticket_ring_t r = ring_at(T0 + 4 * P), out;
    unsigned char good[GRACE__TICKET_PAYLOAD_MAX + 1] = {0};
    size_t len = grace__ticket_ring_encode(&r, good);
    EXPECT_EQ(len, 336);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char buf[sizeof good];
        memcpy(buf, good, sizeof buf);
        if (bad[i].offset != SIZE_MAX)
            buf[bad[i].offset] = bad[i].value;
        size_t n = (size_t)((int)len + bad[i].len_delta);
        char why[200] = "";
        int rc = grace__ticket_ring_decode(&out, guarded(buf, n), n, T0 + 4 * P + bad[i].now_delta,
                                           why, sizeof why);
        if (rc != GRACE_EINVAL || strcmp(why, bad[i].why) != 0)
            TEST_FAIL_("%s: rc %d why \"%s\", want \"%s\"", bad[i].what, rc, why, bad[i].why);
        EXPECT_EQ(out.n_keys, 0); /* nothing half-read is left */
    }
}

/* ---- The memfd ------------------------------------------------------------------- */

static void test_memfd_is_sealed_and_reads_back(void)
{
    grace__ticket_ring_t r = ring_at(T0 + 7 * P), back;
    int fd = grace__ticket_memfd_write(&r);
    EXPECT_TRUE(fd > 2);
    EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    EXPECT_EQ(fcntl(fd, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
              F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    EXPECT_TRUE(write(fd, "x", 1) < 0 && errno == EPERM); /* nobody can change it */
    EXPECT_TRUE(ftruncate(fd, 0) < 0);
    char why[200] = "";
    EXPECT_EQ(grace__ticket_memfd_read(fd, &back, T0 + 7 * P, why, sizeof why), 0);
    EXPECT_TRUE(memcmp(&r, &back, sizeof r) == 0);
    close(fd);
}

static void test_memfd_other_descriptors_refused(void)
{
    grace__ticket_ring_t r = ring_at(T0), out;
    unsigned char buf[GRACE__TICKET_PAYLOAD_MAX];
    size_t len = grace__ticket_ring_encode(&r, buf);
    char why[200], want[100];
    int pipe_fd[2];
    EXPECT_EQ(pipe(pipe_fd), 0);
    EXPECT_EQ(grace__ticket_memfd_read(pipe_fd[0], &out, T0, why, sizeof why), GRACE_EINVAL);
    snprintf(want, sizeof want, "descriptor %d is not a sealed memfd", pipe_fd[0]);
    EXPECT_STRN(why, strlen(why), want);
    close(pipe_fd[0]);
    close(pipe_fd[1]);
    /* A memfd anyone could still write to is not trusted either. */
    int open_fd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_EQ(write(open_fd, buf, len), (ssize_t)len);
    EXPECT_EQ(grace__ticket_memfd_read(open_fd, &out, T0, why, sizeof why), GRACE_EINVAL);
    close(open_fd);
    int junk = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_EQ(write(junk, "hello", 5), 5);
    EXPECT_EQ(fcntl(junk, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
              0);
    EXPECT_EQ(grace__ticket_memfd_read(junk, &out, T0, why, sizeof why), GRACE_EINVAL);
    EXPECT_STRN(why, strlen(why), "not a grace ticket-key payload (5 bytes)");
    close(junk);
}

/* ---- This process's ring --------------------------------------------------------- */

static int64_t fake_now = T0;
static int64_t fake_clock(void)
{
    return fake_now;
}

/* What a forked child is started with, and what it must do with it. */
typedef struct {
    const char *fd_text;              /* GRACE_TICKET_FD's value, or NULL */
    int closed_fd;                    /* must be closed once read (-1: none) */
    int open_fd;                      /* not ours: must stay open (-1: none) */
    const grace__ticket_ring_t *sent; /* the ring it must pass on, advanced; NULL: any other */
} child_t;

/* The child's side: exit 0 if all went as c says. */
static void child_main(const child_t *c)
{
    grace__tickets_set_clock(fake_clock);
    grace__tickets_inherit(c->fd_text);
    if ((c->closed_fd >= 0 && fcntl(c->closed_fd, F_GETFD) >= 0) ||
        (c->open_fd >= 0 && fcntl(c->open_fd, F_GETFD) < 0))
        _exit(3);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[200];
    grace__ticket_ring_t passed, expect = {0};
    if (ctx == NULL || grace__tickets_attach(ctx, why, sizeof why) != 0)
        _exit(2);
    int fd = grace__tickets_pass_fd(why, sizeof why);
    if (fd < 0 || grace__ticket_memfd_read(fd, &passed, fake_now, why, sizeof why) != 0)
        _exit(2);
    if (c->sent)
        expect = *c->sent;
    grace__ticket_ring_advance(&expect, fake_now);
    bool same = memcmp(&passed, &expect, sizeof passed) == 0;
    SSL_CTX_free(ctx);
    _exit(same == (c->sent != NULL) ? 0 : 1);
}

/* Run child_main(c) in a forked process, its stderr (the log) into log;
 * returns its exit status (-1: it did not exit). */
static int run_child(const child_t *c, char *log, size_t cap)
{
    int p[2];
    EXPECT_EQ(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 2);
        child_main(c);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(p[0], log + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    log[len] = '\0';
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_a_process_started_with_the_ring_uses_it(void)
{
    grace__ticket_ring_t sent = ring_at(T0 + 2 * P);
    int fd = grace__ticket_memfd_write(&sent);
    char fd_text[16], log[2048];
    snprintf(fd_text, sizeof fd_text, "%d", fd);
    fake_now = T0 + 3 * P + 10; /* a slot later: it rotates in step */
    EXPECT_EQ(run_child(&(child_t){fd_text, fd, -1, &sent}, log, sizeof log), 0);
    if (strstr(log, "TLS session tickets: 3 keys inherited from the process that started "
                    "this one") == NULL)
        TEST_FAIL_("log: %s", log);
    close(fd);
}

static void test_a_bad_ring_is_refused_with_a_clear_line(void)
{
    int junk = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    EXPECT_EQ(write(junk, "not keys", 8), 8);
    EXPECT_EQ(fcntl(junk, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK), 0);
    char fd_text[16], log[2048];
    snprintf(fd_text, sizeof fd_text, "%d", junk);
    EXPECT_EQ(run_child(&(child_t){fd_text, junk, -1, NULL}, log, sizeof log), 0);
    if (strstr(log, "TLS session tickets: the keys passed by the process that started this "
                    "one are unusable (not a grace ticket-key payload (8 bytes)): new keys "
                    "generated") == NULL)
        TEST_FAIL_("log: %s", log);
    close(junk);
    /* Not a number, or a descriptor that is not a memfd: said, left alone. */
    EXPECT_EQ(run_child(&(child_t){"12x", -1, -1, NULL}, log, sizeof log), 0);
    EXPECT_TRUE(strstr(log, "(GRACE_TICKET_FD=\"12x\" names no descriptor)") != NULL);
    int p[2];
    EXPECT_EQ(pipe(p), 0);
    snprintf(fd_text, sizeof fd_text, "%d", p[0]);
    EXPECT_EQ(run_child(&(child_t){fd_text, -1, p[0], NULL}, log, sizeof log), 0);
    char want[80];
    snprintf(want, sizeof want, "(descriptor %d is not a sealed memfd)", p[0]);
    EXPECT_TRUE(strstr(log, want) != NULL);
    close(p[0]);
    close(p[1]);
}

static void test_a_fresh_process_generates_keys(void)
{
    char log[2048];
    EXPECT_EQ(run_child(&(child_t){NULL, -1, -1, NULL}, log, sizeof log), 0);
    if (strstr(log, "TLS session tickets: new keys generated (a new key every 3600 s, each "
                    "accepted 7200 s more)") == NULL)
        TEST_FAIL_("log: %s", log);
}

/* ---- Real handshakes, in memory ------------------------------------------------------ */

/* A server context with a throw-away self-signed P-256 certificate and
 * grace's ticket keys. */
static SSL_CTX *server_ctx(void)
{
    EVP_PKEY *pkey = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, pkey, EVP_sha256());
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[200] = "";
    EXPECT_EQ(SSL_CTX_use_certificate(ctx, x), 1);
    EXPECT_EQ(SSL_CTX_use_PrivateKey(ctx, pkey), 1);
    EXPECT_EQ(grace__tickets_attach(ctx, why, sizeof why), 0);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return ctx;
}

/* One connection through a BIO pair, offering session (may be NULL): the
 * handshake, one byte from the server (which brings TLS 1.3's tickets),
 * then the client's session. *reused: whether it resumed. */
static SSL_SESSION *connect_once(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *session, bool *reused)
{
    SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
    BIO *sb, *cb;
    BIO_new_bio_pair(&sb, 0, &cb, 0);
    SSL_set_bio(s, sb, sb);
    SSL_set_bio(c, cb, cb);
    SSL_set_accept_state(s);
    SSL_set_connect_state(c);
    if (session)
        SSL_set_session(c, session);
    int done = 0;
    for (int i = 0; i < 50 && done != 2; i++)
        done = (SSL_do_handshake(c) == 1) + (SSL_do_handshake(s) == 1);
    EXPECT_EQ(done, 2);
    char byte = 0;
    EXPECT_EQ(SSL_write(s, "x", 1), 1);
    EXPECT_EQ(SSL_read(c, &byte, 1), 1);
    *reused = SSL_session_reused(c);
    SSL_SESSION *out = SSL_get1_session(c);
    SSL_shutdown(c); /* (freed without it, the session would be marked not resumable) */
    SSL_free(c);
    SSL_free(s);
    return out;
}

/* The ticket a session carries, to see whether the server renewed it. */
static bool same_ticket(const SSL_SESSION *a, const SSL_SESSION *b)
{
    const unsigned char *ta, *tb;
    size_t la, lb;
    SSL_SESSION_get0_ticket(a, &ta, &la);
    SSL_SESSION_get0_ticket(b, &tb, &lb);
    return la == lb && la > 0 && memcmp(ta, tb, la) == 0;
}

static void resume_across_rotations(SSL_CTX *sctx, int version)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(cctx, version);
    SSL_CTX_set_max_proto_version(cctx, version);
    int64_t start = fake_now;
    bool reused = true;
    SSL_SESSION *first = connect_once(sctx, cctx, NULL, &reused), *again;
    EXPECT_TRUE(!reused && SSL_SESSION_has_ticket(first));
    /* Same slot: resumed; TLS 1.2 keeps the ticket (the newest key), TLS 1.3
     * gets a fresh one (its tickets are for one use). */
    again = connect_once(sctx, cctx, first, &reused);
    EXPECT_TRUE(reused);
    EXPECT_TRUE(same_ticket(first, again) == (version == TLS1_2_VERSION));
    SSL_SESSION_free(again);
    /* Two rotations later the key still decrypts, and the ticket is renewed. */
    fake_now = start + 2 * P;
    again = connect_once(sctx, cctx, first, &reused);
    EXPECT_TRUE(reused);
    EXPECT_TRUE(!same_ticket(first, again));
    SSL_SESSION_free(again);
    /* Three: the key is gone, a full handshake. */
    fake_now = start + 3 * P;
    again = connect_once(sctx, cctx, first, &reused);
    EXPECT_TRUE(!reused);
    SSL_SESSION_free(again);
    SSL_SESSION_free(first);
    SSL_CTX_free(cctx);
}

static void test_handshakes_resume_renew_and_expire(void)
{
    fake_now = 5 * P + 17;
    grace__tickets_set_clock(fake_clock);
    SSL_CTX *sctx = server_ctx();
    resume_across_rotations(sctx, TLS1_2_VERSION);
    resume_across_rotations(sctx, TLS1_3_VERSION);
    SSL_CTX_free(sctx);
    grace__tickets_set_clock(NULL);
}

TEST_MAIN(TEST(test_rotation_keeps_three_keys_newest_first),
          TEST(test_a_key_decrypts_for_two_slots_after_its_own),
          TEST(test_every_holder_derives_the_same_keys),
          TEST(test_clock_before_the_slot_changes_nothing), TEST(test_wipe_leaves_nothing),
          TEST(test_payload_round_trip), TEST(test_bad_payloads_are_refused_with_a_reason),
          TEST(test_memfd_is_sealed_and_reads_back), TEST(test_memfd_other_descriptors_refused),
          TEST(test_a_process_started_with_the_ring_uses_it),
          TEST(test_a_bad_ring_is_refused_with_a_clear_line),
          TEST(test_a_fresh_process_generates_keys), TEST(test_handshakes_resume_renew_and_expire))
