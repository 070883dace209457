/*
 * fuzz_query.c -- libFuzzer harness for grace__query_find (src/url.c), the
 * lookup behind grace_request_query.
 *
 * Input: one configuration byte, the name, then the query string.
 *   bit 0-4  name length L (0..31): the next L bytes (fewer if the input
 *            ends); a NUL byte among them ends the name early, as it would
 *            end a C string
 *   bit 5    no query at all ({NULL,0}, a target without '?')
 *   bit 6    the allocator fails (returns NULL)
 * The rest of the input is the raw query, in a heap block of exactly its
 * length, so ASan catches any read past the end.
 *
 * Checked against a reference written as plainly as possible below (split at
 * '&' with the final empty piece dropped, decode each key in full, compare):
 *   - the result is 1, 0 or GRACE_ENOMEM, and exactly the reference's
 *     (GRACE_ENOMEM exactly when the allocator fails and the name is there);
 *   - *out is {NULL,0} unless the result is 1;
 *   - on 1: the allocator was called once, for the raw value's length + 1
 *     bytes (its block is exact-size, so ASan sees a write past it), *out
 *     points at that block, holds the reference's value (decoded, or as it
 *     came if malformed) and is NUL-terminated;
 *   - otherwise the allocator was not called (or once, when it failed);
 *   - the query bytes are not written.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Reference ------------------------------------------------------------ */

/* Form decoding ('+' is a space); -1 when a '%' lacks two hex digits. */
static ssize_t decode(uint8_t *out, const uint8_t *in, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '%') {
            if (i + 2 >= len)
                return -1;
            const int hi = fuzz_hex(in[i + 1]), lo = fuzz_hex(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[w++] = (uint8_t)(hi * 16 + lo);
            i += 2;
        } else {
            out[w++] = in[i] == '+' ? ' ' : in[i];
        }
    }
    return (ssize_t)w;
}

/* 1 and the value (malloc'd into *val, length *val_len, raw length
 * *raw_len) when found, else 0. */
static int reference(const uint8_t *q, size_t len, bool has_query, const char *name, uint8_t **val,
                     size_t *val_len, size_t *raw_len)
{
    if (!has_query)
        return 0;
    /* The pieces between '&'s; a last empty piece is no pair. */
    size_t start = 0;
    while (start < len) {
        size_t stop = start;
        while (stop < len && q[stop] != '&')
            stop++;
        size_t eq = start;
        while (eq < stop && q[eq] != '=')
            eq++;
        uint8_t *key = malloc(eq - start + 1);
        const ssize_t key_len = decode(key, q + start, eq - start);
        const bool match = key_len == (ssize_t)strlen(name) && memcmp(key, name, strlen(name)) == 0;
        free(key);
        if (match) {
            const size_t v = eq < stop ? eq + 1 : stop;
            *raw_len = stop - v;
            *val = malloc(*raw_len + 1);
            ssize_t n = decode(*val, q + v, *raw_len);
            if (n < 0) {
                memcpy(*val, q + v, *raw_len);
                n = (ssize_t)*raw_len;
            }
            *val_len = (size_t)n;
            return 1;
        }
        start = stop + 1; /* past the '&', or past the end: done */
    }
    return 0;
}

/* ---- The allocator ------------------------------------------------------- */

typedef struct {
    bool fail;
    int calls;
    size_t size;
    void *block;
} alloc_t;

static void *exact_alloc(void *ctx, size_t size)
{
    alloc_t *a = ctx;
    a->calls++;
    a->size = size;
    if (a->fail)
        return NULL;
    CHECK(a->block == NULL); /* at most one call that succeeds */
    return a->block = malloc(size ? size : 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t cfg = data[0];
    size_t name_raw = cfg & 31;
    if (name_raw > size - 1)
        name_raw = size - 1;
    const bool has_query = !(cfg & 32);
    alloc_t a = {.fail = (cfg & 64) != 0};

    char name[32];
    memcpy(name, data + 1, name_raw);
    name[name_raw] = '\0';

    const uint8_t *q = data + 1 + name_raw;
    const size_t len = size - 1 - name_raw;
    char *buf = malloc(len ? len : 1);
    memcpy(buf, q, len);

    uint8_t *want = NULL;
    size_t want_len = 0, raw_len = 0;
    const int r_ref = reference(q, len, has_query, name, &want, &want_len, &raw_len);

    grace_str_t out = {"x", 1};
    const grace_str_t query = {has_query ? buf : NULL, has_query ? len : 0};
    const int r = grace__query_find(query, name, exact_alloc, &a, &out);

    CHECK(r == 1 || r == 0 || r == GRACE_ENOMEM);
    CHECK(memcmp(buf, q, len) == 0);
    if (r_ref == 1) {
        CHECK(a.calls == 1 && a.size == raw_len + 1);
        CHECK(r == (a.fail ? GRACE_ENOMEM : 1));
    } else {
        CHECK(a.calls == 0 && r == 0);
    }
    if (r == 1) {
        CHECK(out.ptr == a.block && out.len == want_len);
        CHECK(memcmp(out.ptr, want, want_len) == 0);
        CHECK(out.ptr[out.len] == '\0');
    } else {
        CHECK(out.ptr == NULL && out.len == 0);
    }
    free(a.block);
    free(want);
    free(buf);
    return 0;
}
