/*
 * buf.c -- growable byte buffers and the per-request arena.
 *
 * grace__buf_t is a plain {ptr, len, cap}: every function returns 0 or
 * GRACE_ENOMEM and leaves the buffer valid either way. Buffers of a
 * connection are kept across requests, so steady-state requests allocate
 * nothing. The arena is a bump allocator whose blocks are reused after
 * grace__arena_reset(), which runs once per request (connection life cycle in
 * workers.c). Neither is thread-safe: each belongs to one connection, touched
 * only by the thread that owns that connection.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int grace__buf_reserve(grace__buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    if (extra > SIZE_MAX / 2 - b->len)
        return GRACE_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    char *p = realloc(b->ptr, cap);
    if (p == NULL)
        return GRACE_ENOMEM;
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int grace__buf_append(grace__buf_t *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (grace__buf_reserve(b, len) < 0)
        return GRACE_ENOMEM;
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
    return 0;
}

int grace__buf_appends(grace__buf_t *b, const char *s)
{
    return grace__buf_append(b, s, strlen(s));
}

int grace__buf_vappendf(grace__buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return GRACE_EINVAL;
    if ((size_t)n < sizeof small)
        return grace__buf_append(b, small, (size_t)n);
    if (grace__buf_reserve(b, (size_t)n + 1) < 0)
        return GRACE_ENOMEM;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int grace__buf_appendf(grace__buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = grace__buf_vappendf(b, fmt, ap);
    va_end(ap);
    return r;
}

int grace__buf_append_u64(grace__buf_t *b, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return grace__buf_append(b, tmp + i, sizeof tmp - i);
}

void grace__buf_consume(grace__buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->ptr, b->ptr + n, b->len - n);
    b->len -= n;
}

void grace__buf_free(grace__buf_t *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* ---- Arena ------------------------------------------------------------- */

struct grace__arena_block {
    grace__arena_block_t *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 4096 - sizeof(grace__arena_block_t) };

void *grace__arena_alloc(grace__arena_t *a, size_t size)
{
    /* A size this close to SIZE_MAX would wrap when rounded up or when the
     * block header is added, and hand out a block smaller than asked for. */
    if (size > SIZE_MAX - sizeof(grace__arena_block_t) - 15)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    grace__arena_block_t *h = a->head;
    if (h && h->cap - h->used >= size) {
        void *p = h->data + h->used;
        h->used += size;
        return p;
    }
    /* Reuse a spare block from before the last reset if one is big enough;
     * otherwise allocate. Oversized requests get a block of their own. */
    grace__arena_block_t **pp = &a->full, *b = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap >= size && (*pp)->used == 0) {
            b = *pp;
            *pp = b->next;
            break;
        }
    }
    if (b == NULL) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
    }
    b->used = size;
    if (h) { /* retire the current block to the used list */
        h->next = a->full;
        a->full = h;
    }
    b->next = NULL;
    a->head = b;
    return b->data;
}

void grace__arena_reset(grace__arena_t *a)
{
    /* The current block joins the spares and is judged like them: an
     * oversized one (a huge allocation made last) is freed too. */
    if (a->head) {
        a->head->next = a->full;
        a->full = a->head;
        a->head = NULL;
    }
    /* Keep at most a few blocks (the current one and four spares) so one
     * huge request does not pin memory for the connection's whole life. */
    int kept = 0;
    grace__arena_block_t **pp = &a->full;
    while (*pp) {
        grace__arena_block_t *b = *pp;
        if (kept < 5 && b->cap == ARENA_BLOCK) {
            b->used = 0;
            kept++;
            pp = &b->next;
        } else {
            *pp = b->next;
            free(b);
        }
    }
}

void grace__arena_free(grace__arena_t *a)
{
    grace__arena_block_t *b = a->full, *n;
    for (; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a->head);
    a->head = a->full = NULL;
}
