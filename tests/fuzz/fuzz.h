/*
 * fuzz.h -- what every libFuzzer harness here shares: CHECK, an invariant
 * that aborts (libFuzzer then saves the input as a crash) with the harness
 * file and line, and the plain hex-digit reference of the decoders.
 */
#ifndef GRACE_FUZZ_H
#define GRACE_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The value of hex digit c, or -1: as plainly as possible, to check the
 * library's table-driven decoding against. */
static inline int fuzz_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
