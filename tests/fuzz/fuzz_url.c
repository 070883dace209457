/*
 * fuzz_url.c -- libFuzzer harness for grace__url_decode (src/url.c).
 *
 * Input: one configuration byte (bit 0: plus_is_space), then the bytes to
 * decode. They are decoded out of place (source and destination in heap
 * blocks of exactly len bytes, so ASan sees any access past either) and in
 * place, and both must equal a plain reference decoder: -1 exactly when a
 * '%' is not followed by two hex digits, otherwise the decoded bytes, never
 * more than the input.
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 3986 2.1 percent-decoding, written as plainly as possible. */
static ssize_t reference(uint8_t *out, const uint8_t *in, size_t len, bool plus)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '%') {
            if (i + 2 >= len) /* fewer than two bytes left */
                return -1;
            const int hi = fuzz_hex(in[i + 1]), lo = fuzz_hex(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[w++] = (uint8_t)(hi * 16 + lo);
            i += 2;
        } else {
            out[w++] = plus && in[i] == '+' ? ' ' : in[i];
        }
    }
    return (ssize_t)w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const bool plus = data[0] & 1;
    const size_t len = size - 1;
    const size_t blk = len ? len : 1;

    char *src = malloc(blk), *dst = malloc(blk), *inplace = malloc(blk);
    uint8_t *want = malloc(blk);
    memcpy(src, data + 1, len);
    memcpy(inplace, data + 1, len);

    const ssize_t r_ref = reference(want, data + 1, len, plus);
    const ssize_t r_out = grace__url_decode(dst, src, len, plus);
    const ssize_t r_in = grace__url_decode(inplace, inplace, len, plus);

    CHECK(r_out == r_ref);
    CHECK(r_in == r_ref);
    CHECK(memcmp(src, data + 1, len) == 0); /* the source is not written */
    if (r_ref >= 0) {
        CHECK((size_t)r_ref <= len);
        CHECK(memcmp(dst, want, (size_t)r_ref) == 0);
        CHECK(memcmp(inplace, want, (size_t)r_ref) == 0);
    }
    free(src);
    free(dst);
    free(inplace);
    free(want);
    return 0;
}
