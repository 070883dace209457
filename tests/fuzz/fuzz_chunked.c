/*
 * fuzz_chunked.c -- libFuzzer harness for grace__chunked_decode (src/chunked.c).
 *
 * Input: three configuration bytes, then the chunked body bytes.
 *   byte 0   max_body: 0, 1, 5, 16, 64, 1000, 1 MiB, UINT64_MAX (low 3 bits)
 *   byte 1-2 split point (big-endian, modulo the body length + 1)
 *
 * The body is decoded three ways, each following the call protocol written
 * above grace__chunked_decode (only new bytes per call, placed right after
 * the decoded ones, in heap blocks sized exactly, so ASan sees overreads):
 * whole, split in two at the chosen point, and one byte at a time. All three
 * must agree on the status, the decoded bytes and the bytes after the body.
 *
 * The limit is checked against an unlimited decode of the same bytes. The
 * size announced so far (decoded bytes + what is left of the current chunk)
 * only grows; if it ends above max_body the limited decode must return -3,
 * otherwise it must return exactly what the unlimited decode returned (which
 * is -3 only for sizes adding up past 2^64 - 1). The decoded total never
 * passes the limit.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t max_table[8] = {0, 1, 5, 16, 64, 1000, 1u << 20, UINT64_MAX};

typedef struct {
    ssize_t status; /* -1, -2, -3, or bytes after the body (all of them) */
    char *body;     /* decoded bytes (malloc'd, len bytes of input at most) */
    size_t body_len;
    char *rest; /* bytes after the body: the decoder's leftover + unfed input */
    size_t rest_len;
    uint64_t announced; /* total + chunk_left at the end */
    uint64_t total;
} result_t;

/* Feed in[0..len) in pieces ending at cuts[0..n_cuts) (increasing, the last
 * == len). Each call gets a fresh heap block holding the decoded bytes so far
 * followed by exactly the new bytes, as a caller that keeps the body in place
 * would have. */
static void feed(const uint8_t *in, size_t len, const size_t *cuts, size_t n_cuts, uint64_t max,
                 result_t *out)
{
    grace__chunked_t d;
    memset(&d, 0, sizeof d);
    char *body = malloc(len + 1);
    size_t body_len = 0, fed = 0;
    ssize_t r = -2;

    out->rest = NULL;
    out->rest_len = 0;
    for (size_t k = 0; k < n_cuts && r == -2; k++) {
        size_t n = cuts[k] - fed;
        char *blk = malloc(body_len + n + 1);
        memcpy(blk, body, body_len);
        memcpy(blk + body_len, in + fed, n);
        fed = cuts[k];
        const size_t before = n;
        r = grace__chunked_decode(&d, blk + body_len, &n, max);
        if (r == -2 || r >= 0) {
            CHECK(n <= before);
            memcpy(body + body_len, blk + body_len, n);
            body_len += n;
        }
        if (r >= 0) {
            CHECK((size_t)r <= before - n);
            out->rest_len = (size_t)r + (len - fed);
            out->rest = malloc(out->rest_len + 1);
            memcpy(out->rest, blk + body_len, (size_t)r);
            memcpy(out->rest + r, in + fed, len - fed);
            r = (ssize_t)out->rest_len; /* as if all input had come at once */
        }
        free(blk);
        CHECK(r >= -3);
    }
    out->status = r;
    out->body = body;
    out->body_len = body_len;
    out->total = d.total;
    out->announced = d.total + d.chunk_left;
    if (r == -2 || r >= 0)
        CHECK(d.total == body_len);
    if (r == -2)
        CHECK(fed == len);
}

static void release(result_t *r)
{
    free(r->body);
    free(r->rest);
}

static void expect_same(const result_t *a, const result_t *b)
{
    CHECK(a->status == b->status);
    if (a->status == -1 || a->status == -3)
        return; /* *len is meaningless after an error */
    CHECK(a->body_len == b->body_len && memcmp(a->body, b->body, a->body_len) == 0);
    if (a->status >= 0)
        CHECK(a->rest_len == b->rest_len && memcmp(a->rest, b->rest, a->rest_len) == 0);
}

/* Whole, split at `split` and byte by byte; all three must agree. */
static void decode_3ways(const uint8_t *in, size_t len, size_t split, uint64_t max, result_t *whole)
{
    size_t cuts2[2] = {split, len};
    result_t two, bytes;

    feed(in, len, &len, 1, max, whole);
    if (split > 0 && split < len) {
        feed(in, len, cuts2, 2, max, &two);
        expect_same(whole, &two);
        release(&two);
    }
    if (len > 1) {
        size_t *cuts = malloc(len * sizeof *cuts);
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        feed(in, len, cuts, len, max, &bytes);
        expect_same(whole, &bytes);
        release(&bytes);
        free(cuts);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size > 4096 + 3) /* byte-by-byte feeding is quadratic */
        return 0;
    const uint64_t max = max_table[data[0] & 7];
    const uint8_t *in = data + 3;
    const size_t len = size - 3;
    const size_t split = len ? (((size_t)data[1] << 8) | data[2]) % (len + 1) : 0;

    result_t lim, unl;
    decode_3ways(in, len, split, max, &lim);
    decode_3ways(in, len, split, UINT64_MAX, &unl);

    if (lim.status == -2 || lim.status >= 0)
        CHECK(lim.total <= max);
    /* Even "unlimited" is -3 once the sizes add up past 2^64 - 1; then
     * every smaller limit was passed too. */
    if (unl.status == -3 || unl.announced > max) {
        CHECK(lim.status == -3);
    } else {
        expect_same(&lim, &unl);
    }
    release(&lim);
    release(&unl);
    return 0;
}
