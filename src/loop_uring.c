/*
 * loop_uring.c -- the io_uring backend: completion. Each loop has a ring;
 * every request it submits carries a pointer to its object and an op in
 * the pointer's low bits (tag), which is how a completion finds its way.
 *
 *  - Listeners: one multishot accept per listener per loop (the kernel
 *    wakes one waiter per connection). Stopping it (a drain) is a cancel;
 *    the listener counts as let go only when the accept's last completion
 *    is back (l->armed), so no connection is accepted after "is serving".
 *  - Plain connections (IO_COMPLETION): one multishot receive into the
 *    loop's ring of provided buffers; each completion is copied to the
 *    connection and the buffer given back at once. c->out goes out in one
 *    send (MSG_WAITALL), queued while the batch runs and submitted with
 *    everything else when the loop waits: a keep-alive request costs no
 *    system call of its own. A receive is armed with the first send (or
 *    when the first recv(2) found nothing), and cancelled while input piles
 *    up that the connection cannot take (INPUT_HIGH).
 *  - TLS connections (IO_READY): OpenSSL reads and writes the socket
 *    itself, so they keep readiness semantics, from a multishot poll
 *    (edge-like: a completion per wake-up), as with epoll.
 *  - The wake eventfd: a multishot poll; it is never read (a write wakes
 *    the poll whatever the count).
 *
 * A multishot request can end by itself (the completion queue was full, a
 * thread that submitted it exited, no buffer was free): whatever ends
 * without us asking is armed again. A closed connection is freed only when
 * its last request is back (conn_release).
 *
 * The ring is used by the owner thread only (workers.c), but the owner
 * changes on a hand-off: so no IORING_SETUP_SINGLE_ISSUER (nor
 * DEFER_TASKRUN, which needs it). The kernel finishes a request in the
 * thread that submitted it, which may now be blocked in a handler: with
 * COOP_TASKRUN it is woken from an interruptible sleep to do so (the
 * system call it sleeps in goes on unnoticed) and, busy in user space, at
 * its next entry into the kernel (a timer tick at the latest), instead of
 * being interrupted at once -- which costs every loop an interrupt per
 * completion while it runs. The thread that takes a loop over cancels the
 * multishot requests of the old one (ur_loop_adopt), which are armed again
 * from it as they end: else every completion would go on waking the old
 * thread, parked as a spare, for the rest of the connection's life.
 */
#include "engine.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

enum {
    SQ_ENTRIES = 512,
    CQ_ENTRIES = 8192, /* multishot requests end when it is full */
    BUF_COUNT = 128,   /* provided receive buffers per loop (a power of 2) */
    BUF_SIZE = 2048,
    BGID = 0, /* the buffer group */
    FLAGS_ACCEPT = SOCK_NONBLOCK | SOCK_CLOEXEC,
    FLAGS_SEND = MSG_NOSIGNAL | MSG_WAITALL,
};

/* What a request is, in the low 3 bits of its user_data (objects are at
 * least 8-aligned). 0: a cancellation, whose completion says nothing. */
enum { OP_NONE, OP_RECV, OP_SEND, OP_POLL, OP_ACCEPT, OP_WAKE, OP_MASK = 7 };

typedef struct {
    uint64_t data;
    int32_t res;
    uint32_t flags;
} ur_cqe_t;

typedef struct {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    /* The batch, as workers.c wants it: in the loop, so a thread that
     * takes the loop over after a hand-off carries on from idx. */
    ur_cqe_t cqes[BATCH];
    int n, idx;
    grace__conn_t *kicked; /* this batch's share of the loop's kick list */
    grace__listener_t *resume[GRACE__MAX_LISTENERS]; /* paused ones coming back */
    int n_resume;
    /* New TLS connections awaiting their first pass (a handshake), in
     * accept order, linked by next_kick; this batch has started n_started. */
    grace__conn_t *fresh, *fresh_last;
    int n_started;
    bool wait_failed; /* logged once */
} ur_loop_t;

static uint64_t tag(const void *p, int op)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

static void *untag(uint64_t data)
{
    return (void *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
}

/* ---- The ring and its buffers -------------------------------------------- */

static struct io_uring_sqe *get_sqe(ur_loop_t *U)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&U->ring);
    while (sqe == NULL) { /* full: send what is queued now */
        io_uring_submit(&U->ring);
        sqe = io_uring_get_sqe(&U->ring);
    }
    return sqe;
}

static void cancel(ur_loop_t *U, uint64_t data)
{
    struct io_uring_sqe *sqe = get_sqe(U);
    io_uring_prep_cancel64(sqe, data, 0);
    io_uring_sqe_set_data64(sqe, tag(NULL, OP_NONE));
}

static int ring_init(struct io_uring *ring, unsigned sq, unsigned cq, char *why, size_t why_len)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = cq;
    int r = io_uring_queue_init_params(sq, ring, &p);
    if (r < 0) {
        snprintf(why, why_len, "io_uring_setup: %s", strerror(-r));
        return r;
    }
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_EXT_ARG)) {
        snprintf(why, why_len, "io_uring: kernel too old (no NODROP or EXT_ARG)");
        io_uring_queue_exit(ring);
        return GRACE_EINVAL;
    }
    io_uring_ring_dontfork(ring); /* restarts fork: the child needs none of it */
    return 0;
}

/* n buffers of size bytes in group BGID: *br (the ring the kernel takes
 * them from) and *bufs. */
static int bufs_init(struct io_uring *ring, unsigned n, size_t size, struct io_uring_buf_ring **br,
                     char **bufs, char *why, size_t why_len)
{
    size_t ring_len = n * sizeof(struct io_uring_buf), len = ring_len + n * size;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        snprintf(why, why_len, "mmap: %s", strerror(errno));
        return -errno;
    }
    madvise(mem, len, MADV_DONTFORK);
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)mem, .ring_entries = n, .bgid = BGID};
    int r = io_uring_register_buf_ring(ring, &reg, 0);
    if (r < 0) {
        snprintf(why, why_len, "io_uring_register_buf_ring: %s", strerror(-r));
        munmap(mem, len);
        return r;
    }
    *br = (struct io_uring_buf_ring *)mem;
    *bufs = mem + ring_len;
    io_uring_buf_ring_init(*br);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(*br, *bufs + i * size, (unsigned)size, (unsigned short)i,
                              io_uring_buf_ring_mask(n), (int)i);
    io_uring_buf_ring_advance(*br, (int)n);
    return 0;
}

static void give_back(ur_loop_t *U, unsigned bid)
{
    io_uring_buf_ring_add(U->br, U->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(BUF_COUNT), 0);
    io_uring_buf_ring_advance(U->br, 1);
}

static void arm_recv(ur_loop_t *U, grace__conn_t *c)
{
    struct io_uring_sqe *sqe = get_sqe(U);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
    c->recv_armed = c->recv_tried = true;
    c->ops++;
}

static void arm_poll(ur_loop_t *U, int fd, uint64_t data, unsigned mask)
{
    struct io_uring_sqe *sqe = get_sqe(U);
    io_uring_prep_poll_multishot(sqe, fd, mask);
    io_uring_sqe_set_data64(sqe, data);
}

static int ur_loop_init(grace__loop_t *L, char *why, size_t why_len)
{
    ur_loop_t *U = calloc(1, sizeof *U);
    if (U == NULL)
        return GRACE_ENOMEM;
    int r = ring_init(&U->ring, SQ_ENTRIES, CQ_ENTRIES, why, why_len);
    if (r == 0 &&
        (r = bufs_init(&U->ring, BUF_COUNT, BUF_SIZE, &U->br, &U->bufs, why, why_len)) < 0)
        io_uring_queue_exit(&U->ring);
    if (r < 0) {
        free(U);
        return r;
    }
    L->be = U;
    arm_poll(U, L->wake.fd, tag(&L->wake, OP_WAKE), POLLIN);
    return 0;
}

/* ---- Waiting and the batch ---------------------------------------------- */

static void take_kicked(grace__loop_t *L, ur_loop_t *U)
{
    if (!atomic_exchange(&L->has_kicked, false))
        return;
    pthread_mutex_lock(&L->mu);
    grace__conn_t *list = L->kicked;
    L->kicked = NULL;
    pthread_mutex_unlock(&L->mu);
    while (list) { /* (onto this batch's list; the owner alone reads next_kick there) */
        grace__conn_t *n = list->next_kick;
        list->next_kick = U->kicked;
        U->kicked = list;
        list = n;
    }
}

static void ur_wait(grace__loop_t *L, int timeout_ms)
{
    ur_loop_t *U = L->be;
    if (atomic_load(&L->has_kicked) || U->n_resume || U->fresh)
        timeout_ms = 0;
    U->n_started = 0;
    struct __kernel_timespec ts = {timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000};
    struct io_uring_cqe *cqe;
    int r = io_uring_submit_and_wait_timeout(&U->ring, &cqe, 1, &ts, NULL);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && !U->wait_failed) {
        U->wait_failed = true;
        grace_log("event loop %d: io_uring_enter: %s", L->id, strerror(-r));
    }
    unsigned head;
    int n = 0;
    io_uring_for_each_cqe(&U->ring, head, cqe)
    {
        if (n == BATCH)
            break;
        U->cqes[n++] = (ur_cqe_t){cqe->user_data, cqe->res, cqe->flags};
    }
    io_uring_cq_advance(&U->ring, (unsigned)n);
    U->n = n;
    U->idx = 0;
    take_kicked(L, U);
}

/* A completion of c's receive: bytes (in a provided buffer), or its end. */
static void on_recv(grace__loop_t *L, grace__conn_t *c, const ur_cqe_t *e)
{
    ur_loop_t *U = L->be;
    bool more = e->flags & IORING_CQE_F_MORE;
    if (!more) { /* (a read that wants more arms it again: conn_io.c) */
        c->recv_armed = false;
        c->ops--;
    }
    /* Ended without an end of the stream: out of buffers, the queue full,
     * our own cancel (a pause), its submitter gone. Not an end. */
    bool stopped = e->res == -ENOBUFS || e->res == -ECANCELED;
    const char *data = NULL;
    if (e->flags & IORING_CQE_F_BUFFER)
        data = U->bufs + (size_t)(e->flags >> IORING_CQE_BUFFER_SHIFT) * BUF_SIZE;
    bool held = !stopped && grace__conn_input(c, data, e->res);
    if (data)
        give_back(U, e->flags >> IORING_CQE_BUFFER_SHIFT);
    if (c->closed)
        return;
    /* Input the connection cannot take now (a send outstanding, or its
     * handler blocked): stop receiving until it can (TCP pushes back). */
    if (c->recv_armed &&
        ((held && c->sending && c->in.len >= INPUT_HIGH) || (!held && c->inbox.len >= INPUT_HIGH)))
        cancel(U, tag(c, OP_RECV));
    if (held)
        grace__conn_run(c);
    else if (!stopped || !more)
        grace__conn_event(c);
}

/* A completion of c's readiness poll (TLS): as an epoll event. */
static void on_poll(grace__loop_t *L, grace__conn_t *c, const ur_cqe_t *e)
{
    if (!(e->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->ops--;
        if (!c->closed && !c->cancelled) {
            arm_poll(L->be, c->fd, tag(c, OP_POLL), POLLIN | POLLOUT | POLLRDHUP);
            c->recv_armed = true;
            c->ops++;
        }
    }
    if (!c->closed && e->res != -ECANCELED)
        grace__conn_event(c);
}

static void on_send(grace__conn_t *c, const ur_cqe_t *e)
{
    c->ops--;
    grace__conn_sent(c, e->res);
    if (!c->closed)
        grace__conn_event(c);
}

/* A completion of l's multishot accept: a new connection, or its end. */
static void on_accept(grace__loop_t *L, grace__listener_t *l, const ur_cqe_t *e)
{
    if (!(e->flags & IORING_CQE_F_MORE)) {
        atomic_fetch_and(&l->armed, ~((uint_fast64_t)1 << L->id));
        int err = e->res < 0 ? -e->res : 0;
        /* Out of descriptors: a pause (accept.c); a drain's cancel, or any
         * other end: sync_listeners decides (released, or armed again). */
        if (!(err && grace__accept_failed(L, l, err)) && err && err != ECANCELED &&
            err != ECONNABORTED && err != EPROTO && err != EINTR)
            grace_log("accept on [%s]: %s", l->shown, strerror(err));
        grace__loop_recheck_listeners(L);
    }
    if (e->res >= 0)
        grace__accept_one(L, l, e->res);
}

static void dispatch(grace__loop_t *L, const ur_cqe_t *e)
{
    void *p = untag(e->data);
    switch (e->data & OP_MASK) {
    case OP_RECV:
        on_recv(L, p, e);
        break;
    case OP_SEND:
        on_send(p, e);
        break;
    case OP_POLL:
        on_poll(L, p, e);
        break;
    case OP_ACCEPT:
        on_accept(L, p, e);
        break;
    case OP_WAKE:
        if (!(e->flags & IORING_CQE_F_MORE))
            arm_poll(L->be, L->wake.fd, e->data, POLLIN);
        break;
    }
}

static bool ur_step(grace__loop_t *L)
{
    ur_loop_t *U = L->be;
    if (U->kicked) {
        grace__conn_t *c = U->kicked;
        pthread_mutex_lock(&L->mu);
        U->kicked = c->next_kick;
        c->kick_queued = false;
        pthread_mutex_unlock(&L->mu);
        grace__conn_event(c);
        return true;
    }
    if (U->n_resume) {
        /* Accept what waited (and log the end of the episode), then
         * sync_listeners arms the accept again unless it paused anew. */
        grace__listener_t *l = U->resume[--U->n_resume];
        grace__loop_recheck_listeners(L);
        grace__accept_all(L, l, ACCEPTS_PER_SWEEP); /* (to its end: EAGAIN) */
        return true;
    }
    if (U->idx >= U->n) {
        if (U->fresh == NULL || U->n_started == ACCEPTS_PER_WAKE)
            return false;
        grace__conn_t *c = U->fresh;
        if ((U->fresh = c->next_kick) == NULL)
            U->fresh_last = NULL;
        c->next_kick = NULL;
        U->n_started++;
        grace__conn_start(c);
        return true;
    }
    ur_cqe_t e = U->cqes[U->idx++];
    dispatch(L, &e);
    return true;
}

/* ---- Listeners ------------------------------------------------------------ */

static int ur_listen_start(grace__loop_t *L, grace__listener_t *l)
{
    struct io_uring_sqe *sqe = get_sqe(L->be);
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, FLAGS_ACCEPT);
    io_uring_sqe_set_data64(sqe, tag(l, OP_ACCEPT));
    atomic_fetch_or(&l->armed, (uint_fast64_t)1 << L->id);
    return 0;
}

static bool ur_listen_stop(grace__loop_t *L, grace__listener_t *l)
{
    if (!(atomic_load(&l->armed) & ((uint_fast64_t)1 << L->id)))
        return true;
    cancel(L->be, tag(l, OP_ACCEPT)); /* its last completion calls us back */
    return false;
}

static void ur_listen_resume(grace__loop_t *L, grace__listener_t *l)
{
    ur_loop_t *U = L->be;
    if (U->n_resume < GRACE__MAX_LISTENERS)
        U->resume[U->n_resume++] = l;
}

/* ---- Connections ---------------------------------------------------------- */

/* A multishot accept takes every connection as it comes, and a TLS
 * connection's first pass is a handshake (a few hundred microseconds of
 * crypto): started at once, a crowd of them would make the requests of the
 * connections already under way wait, as 64 accepts per wake did with
 * epoll (engine.h ACCEPTS_PER_WAKE). So they queue, and each batch starts
 * ACCEPTS_PER_WAKE of them after its completions. A plain connection's
 * first pass (a read, and its request if it came) is cheap: at once. */
static void ur_conn_start(grace__conn_t *c)
{
    if (c->ssl == NULL) {
        grace__conn_start(c);
        return;
    }
    ur_loop_t *U = c->loop->be;
    atomic_store(&c->busy, 1); /* (no timer nor drain touches it meanwhile) */
    c->next_kick = NULL;
    if (U->fresh_last)
        U->fresh_last->next_kick = c;
    else
        U->fresh = c;
    U->fresh_last = c;
}

static bool ur_conn_watch(grace__conn_t *c)
{
    /* Completion mode needs nothing more: receiving is armed when a read
     * finds nothing, or with the first send. */
    if (c->io == IO_READY) {
        arm_poll(c->loop->be, c->fd, tag(c, OP_POLL), POLLIN | POLLOUT | POLLRDHUP);
        c->recv_armed = true;
        c->ops++;
    }
    c->watched = true;
    return true;
}

static void ur_conn_again(grace__conn_t *c)
{
    grace__conn_kick(c);
}

static void ur_conn_forget(grace__conn_t *c)
{
    (void)c; /* conn_release cancels what is outstanding */
}

static bool ur_conn_release(grace__conn_t *c)
{
    if (c->ops == 0)
        return true;
    if (!c->cancelled) {
        ur_loop_t *U = c->loop->be;
        c->cancelled = true;
        if (c->recv_armed)
            cancel(U, tag(c, c->io == IO_READY ? OP_POLL : OP_RECV));
        if (c->sending)
            cancel(U, tag(c, OP_SEND));
    }
    return false;
}

static void ur_conn_send(grace__conn_t *c)
{
    ur_loop_t *U = c->loop->be;
    struct io_uring_sqe *sqe = get_sqe(U);
    io_uring_prep_send(sqe, c->fd, c->out.ptr + c->out_off, c->out.len - c->out_off,
                       FLAGS_SEND | (c->close_after_write ? MSG_MORE : 0));
    io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
    c->sending = true;
    c->ops++;
    /* The next request's receive goes in the same submission. */
    if (!c->recv_armed && !c->rd_end && !c->close_after_write && !c->lingering)
        arm_recv(U, c);
}

static void ur_conn_recv(grace__conn_t *c)
{
    arm_recv(c->loop->be, c);
}

static bool ur_conn_input_pending(const grace__conn_t *c)
{
    ur_loop_t *U = c->loop->be;
    uint64_t want = tag(c, OP_RECV);
    for (int i = U->idx; i < U->n; i++)
        if (U->cqes[i].data == want && U->cqes[i].res > 0)
            return true;
    unsigned head;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&U->ring, head, cqe)
    {
        if (cqe->user_data == want && cqe->res > 0)
            return true;
    }
    return false;
}

/* Cancelled, each ends without us asking and is armed again from this
 * thread: a receive by the connection's next read (conn_io.c), a poll and
 * the wake poll by their completion (on_poll, dispatch). */
static void ur_loop_adopt(grace__loop_t *L)
{
    ur_loop_t *U = L->be;
    cancel(U, tag(&L->wake, OP_WAKE));
    for (grace__conn_t *c = L->conns.next; c != &L->conns; c = c->next)
        if (!c->closed && !c->cancelled && c->recv_armed)
            cancel(U, tag(c, c->io == IO_READY ? OP_POLL : OP_RECV));
}

const grace__backend_t grace__backend_uring = {
    .name = "io_uring",
    .loop_init = ur_loop_init,
    .wait = ur_wait,
    .step = ur_step,
    .listen_start = ur_listen_start,
    .listen_stop = ur_listen_stop,
    .listen_resume = ur_listen_resume,
    .conn_start = ur_conn_start,
    .conn_watch = ur_conn_watch,
    .conn_again = ur_conn_again,
    .conn_forget = ur_conn_forget,
    .conn_release = ur_conn_release,
    .conn_send = ur_conn_send,
    .conn_recv = ur_conn_recv,
    .conn_input_pending = ur_conn_input_pending,
    .owner_only = true,
    .loop_adopt = ur_loop_adopt,
};

/* ---- Can we? --------------------------------------------------------------- */

/* What this backend relies on, tried once on a socket pair: a ring (which
 * seccomp or io_uring_disabled forbid with EPERM, an old kernel with
 * ENOSYS), a provided-buffer ring, and a multishot receive into it. */
int grace__uring_probe(char *why, size_t why_len)
{
    struct io_uring ring;
    int r = ring_init(&ring, 4, 8, why, why_len), sv[2] = {-1, -1};
    if (r < 0)
        return r;
    struct io_uring_buf_ring *br = NULL;
    char *bufs;
    if ((r = bufs_init(&ring, 2, 64, &br, &bufs, why, why_len)) < 0)
        goto out;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        r = -errno;
        snprintf(why, why_len, "socketpair: %s", strerror(errno));
        goto out;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {1, 0};
    if (write(sv[1], "x", 1) != 1 ||
        (r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL)) < 0) {
        snprintf(why, why_len, "io_uring_enter: %s", strerror(r < 0 ? -r : errno));
        r = r < 0 ? r : -errno;
        goto out;
    }
    if (cqe->res != 1 || !(cqe->flags & IORING_CQE_F_MORE) || !(cqe->flags & IORING_CQE_F_BUFFER)) {
        snprintf(why, why_len, "io_uring: no multishot receive (res %d, flags %#x)", cqe->res,
                 cqe->flags);
        r = GRACE_EINVAL;
    }
out:
    if (sv[0] >= 0) {
        close(sv[0]);
        close(sv[1]);
    }
    io_uring_queue_exit(&ring); /* (cancels the receive) */
    if (br != NULL)
        munmap(br, 2 * (sizeof(struct io_uring_buf) + 64));
    return r < 0 ? r : 0;
}
