/*
 * conn_pool.c -- where connections live in memory (SPEC B8: memory comes
 * back).
 *
 * A connection is a small struct (grace__conn_t, a few hundred bytes) plus
 * what it needs while it answers requests: read and write buffers and the
 * exchange (request, response, arena, header array), several kilobytes.
 * Idle keep-alive connections drop the second part (grace__conn_trim), so
 * 10,000 of them must cost little more than their structs -- but only if
 * the structs do not sit scattered between freed buffers, where glibc can
 * give no page back. So structs come from per-loop slabs of CONN_SLAB, and
 * buffers from malloc elsewhere; a slab whose structs are all free is
 * released (keeping two slabs' worth of spares), and the loop calls
 * malloc_trim() after a crowd is gone (workers.c give_memory_back).
 *
 * Spare structs (closed connections) wait on the loop's spare list; up to
 * CONN_POOL of them keep their buffers, so a new connection allocates
 * nothing (the new-connection-per-request case). All of this is touched by
 * the loop's owner thread only.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

struct grace__slab {
    int n_used;
    grace__conn_t slot[CONN_SLAB];
};

static void unlink_conn(grace__conn_t *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
}

static void push_spare(grace__loop_t *L, grace__conn_t *c)
{
    c->next = L->spare.next;
    c->prev = &L->spare;
    L->spare.next->prev = c;
    L->spare.next = c;
    L->n_spare++;
}

static void exchange_free(grace__exchange_t *x)
{
    if (x == NULL)
        return;
    grace__buf_free(&x->res.headers);
    grace__buf_free(&x->res.body);
    grace__arena_free(&x->arena);
    free(x);
}

grace__exchange_t *grace__exchange_get(grace__conn_t *c, size_t max_headers)
{
    grace__exchange_t *x = c->ex;
    if (x && x->headers_cap >= max_headers)
        return x;
    x = realloc(x, sizeof *x + max_headers * sizeof x->headers[0]);
    if (x == NULL)
        return NULL;
    if (c->ex == NULL)
        memset(x, 0, sizeof *x);
    x->headers_cap = max_headers;
    c->ex = x;
    return x;
}

/* Free what a (spare or idle) connection holds besides its struct. */
static void drop_buffers(grace__conn_t *c)
{
    grace__buf_free(&c->in);
    grace__buf_free(&c->out);
    exchange_free(c->ex);
    c->ex = NULL;
    c->loop->n_released++; /* (for malloc_trim) */
}

static bool has_buffers(const grace__conn_t *c)
{
    return c->in.cap || c->out.cap || c->ex;
}

static bool slab_new(grace__loop_t *L)
{
    grace__slab_t *sl = calloc(1, sizeof *sl);
    if (sl == NULL)
        return false;
    for (int i = CONN_SLAB - 1; i >= 0; i--) {
        sl->slot[i].slab = sl;
        sl->slot[i].loop = L;
        push_spare(L, &sl->slot[i]);
    }
    return true;
}

static void slab_release(grace__loop_t *L, grace__slab_t *sl)
{
    for (int i = 0; i < CONN_SLAB; i++) {
        grace__conn_t *c = &sl->slot[i];
        unlink_conn(c);
        L->n_spare--;
        if (has_buffers(c)) {
            drop_buffers(c);
            L->n_pooled--;
        }
    }
    free(sl);
    L->n_released += CONN_SLAB; /* (for malloc_trim) */
}

grace__conn_t *grace__conn_new(grace__loop_t *L, grace_server_t *s)
{
    if (L->spare.next == &L->spare && !slab_new(L))
        return NULL;
    grace__conn_t *c = L->spare.next; /* the last closed: it may keep buffers */
    unlink_conn(c);
    L->n_spare--;
    if (has_buffers(c))
        L->n_pooled--;
    c->slab->n_used++;
    c->kind = GRACE__EV_CONN;
    c->server = s;
    return c;
}

void grace__conn_free(grace__conn_t *c)
{
    grace__loop_t *L = c->loop;
    unlink_conn(c);
    grace__tls_free(c->ssl);
    grace__buf_free(&c->inbox);
    /* Forget the connection; keep the buffers if the pool has room. */
    grace__conn_t keep = *c;
    memset(c, 0, sizeof *c);
    c->loop = L;
    c->slab = keep.slab;
    c->in = keep.in;
    c->out = keep.out;
    c->ex = keep.ex;
    if (has_buffers(c) && L->n_pooled >= CONN_POOL) {
        drop_buffers(c);
    } else if (has_buffers(c)) {
        c->in.len = c->out.len = 0;
        if (c->ex) {
            c->ex->res.headers.len = c->ex->res.body.len = 0;
            grace__arena_reset(&c->ex->arena);
        }
        L->n_pooled++;
    }
    push_spare(L, c);
    if (--c->slab->n_used == 0 && L->n_spare > 2 * CONN_SLAB)
        slab_release(L, c->slab);
}

void grace__conn_pool_shrink(grace__loop_t *L, int keep)
{
    for (grace__conn_t *c = L->spare.next; c != &L->spare && L->n_pooled > keep; c = c->next) {
        if (has_buffers(c)) {
            drop_buffers(c);
            L->n_pooled--;
        }
    }
}

void grace__conn_trim_input(grace__conn_t *c)
{
    if (c->in.len)
        return;
    grace__buf_free(&c->in);
    exchange_free(c->ex);
    c->ex = NULL;
}

void grace__conn_trim(grace__conn_t *c)
{
    if (c->in.len || c->out.len > c->out_off)
        return;
    drop_buffers(c);
}
