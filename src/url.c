/*
 * url.c -- percent-decoding (RFC 3986 2.1) and the lookup of one parameter
 * in a query string (application/x-www-form-urlencoded pairs, as browsers
 * send them: "a=1&b=x+y").
 *
 * Both functions are pure: they read only their arguments, never outside
 * src[0..len) or the query view, and keep no state, so they are thread-safe
 * and are unit-tested (tests/unit/test_url.c) and fuzzed
 * (tests/fuzz/fuzz_url.c, fuzz_query.c) without a connection. The one
 * allocation, the decoded value of a query parameter, comes from an
 * allocator the caller passes: request.c gives the request's arena. conn.c
 * decodes the request path with grace__url_decode before routing.
 */
#include "internal.h"

#include <string.h>

/* Value of a hex digit, or -1. */
static int hex_digit(char c)
{
    const unsigned u = (unsigned char)c;
    if (u - '0' < 10)
        return (int)(u - '0');
    if ((u | 0x20) - 'a' < 6)
        return (int)((u | 0x20) - 'a' + 10);
    return -1;
}

ssize_t grace__url_decode(char *dst, const char *src, size_t len, bool plus_is_space)
{
    size_t w = 0;

    /* w never passes i, so decoding in place (dst == src) is safe. %00
     * yields a NUL byte: callers that build C strings must check for it. */
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = hex_digit(src[i + 1])) < 0 || (lo = hex_digit(src[i + 2])) < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        dst[w++] = c;
    }
    return (ssize_t)w;
}

/* Does the raw key k[0..len) decode ('+' as space) to exactly name[0..name_len)?
 * Compared while decoding, so no buffer and no limit on the key's length. A
 * key with a bad %XX equals no name, whatever came before the bad escape. */
static bool key_equals(const char *k, size_t len, const char *name, size_t name_len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++, w++) {
        char c = k[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3 || (hi = hex_digit(k[i + 1])) < 0 || (lo = hex_digit(k[i + 2])) < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (w == name_len || name[w] != c)
            return false;
    }
    return w == name_len;
}

int grace__query_find(grace_str_t query, const char *name, void *(*alloc)(void *ctx, size_t size),
                      void *ctx, grace_str_t *out)
{
    *out = (grace_str_t){NULL, 0};
    if (query.ptr == NULL)
        return 0;
    const char *p = query.ptr, *const end = query.ptr + query.len;
    const size_t name_len = strlen(name);
    /* Pairs are split at every '&'; nothing after a final '&' is a pair, but
     * an empty pair before another '&' is one (with an empty key). */
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        if (key_equals(p, (size_t)((eq ? eq : pair_end) - p), name, name_len)) {
            const char *v = eq ? eq + 1 : pair_end;
            const size_t v_len = (size_t)(pair_end - v);
            char *d = alloc(ctx, v_len + 1);
            if (d == NULL)
                return GRACE_ENOMEM;
            ssize_t n = grace__url_decode(d, v, v_len, true);
            if (n < 0) { /* keep a malformed value as it came */
                memcpy(d, v, v_len);
                n = (ssize_t)v_len;
            }
            d[n] = '\0';
            *out = (grace_str_t){d, (size_t)n};
            return 1;
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return 0;
}
