/*
 * chunked.c -- the chunked transfer coding of request bodies (RFC 9112 7.1):
 * an incremental, in-place decoder.
 *
 * Unlike the head parser, which rescans from the first byte, the decoder is
 * a byte-level state machine that never needs to see a byte twice: a body
 * may arrive in many reads, and only the new bytes are passed each time
 * (protocol below). Decoded data is moved to the front of the buffer, so no
 * copy of the body is ever made. Extensions are validated and dropped,
 * trailer fields validated like header fields and dropped; both are bounded.
 * Thread-safe: all state is in the caller's grace__chunked_t.
 */
#include "internal.h"
#include "http_chars.h"

#include <string.h>

/* ---- Chunked body ---------------------------------------------------------- */

enum {
    CH_SIZE_FIRST = 0, /* zero-filled decoder starts here */
    CH_SIZE,
    CH_SIZE_BWS, /* whitespace after the size: only ';' may follow */
    CH_EXT,
    CH_SIZE_LF,
    CH_DATA,
    CH_DATA_CR,
    CH_DATA_LF,
    CH_TRAILER_LINE,
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_END_LF,
    CH_DONE,
    CH_ERROR,
};

/* Limits on bytes that carry no body data, so a peer cannot keep a
 * connection busy forever with extensions or trailers. */
enum { MAX_CHUNK_EXT = 4096, MAX_TRAILER = 8192, MAX_SIZE_DIGITS = 16 };

/*
 * Call protocol (as phr_decode_chunked, but all input is always used):
 *   grace__chunked_t d = {0};  char *base = start of the body bytes;
 *   size_t body = 0;           // decoded bytes, kept at base[0..body)
 *   size_t n = bytes at base;  // everything received after the head
 *   for (;;) {
 *       ssize_t r = grace__chunked_decode(&d, base + body, &n, max_body);
 *       body += n;
 *       if (r >= 0) break;      // done: body at base[0..body), next request
 *                               //       bytes at base[body .. body + r)
 *       if (r != -2) fail;      // -1 malformed (400), -3 too large (413)
 *       n = receive NEW bytes into base + body;   // nothing else is kept
 *   }
 * -2 means every given byte was consumed: *len decoded bytes are at buf and
 * the decoder remembers where it is, so the next call gets only new bytes,
 * placed right after those decoded bytes. On -1 or -3 *len is meaningless
 * and every later call returns -1. Besides bad syntax, -1 also answers a
 * chunk-size of more than 16 digits, more than MAX_CHUNK_EXT bytes of
 * extensions on one size line and a trailer section over MAX_TRAILER bytes.
 */
enum { STEP_OK, STEP_MALFORMED, STEP_TOO_LARGE };

/* One byte of a chunk-size line: the hex size, whitespace before ';',
 * extensions, and the line's CRLF. */
static int size_line_byte(grace__chunked_t *d, char c, uint64_t max_body)
{
    switch (d->state) {
    case CH_SIZE_FIRST:
    case CH_SIZE:
        if (is_class(c, C_HEX)) {
            if (d->state == CH_SIZE_FIRST) {
                d->state = CH_SIZE;
                d->chunk_left = 0;
                d->consumed = 0;
            }
            if (++d->consumed > MAX_SIZE_DIGITS)
                return STEP_MALFORMED;
            d->chunk_left = d->chunk_left << 4 | hex_value(c);
            /* The size only grows with more digits: fail early. */
            if (d->total > max_body || d->chunk_left > max_body - d->total)
                return STEP_TOO_LARGE;
            return STEP_OK;
        }
        if (d->state == CH_SIZE_FIRST)
            return STEP_MALFORMED;
        if (c == '\r') {
            d->state = CH_SIZE_LF;
        } else if (c == ';') {
            d->state = CH_EXT;
            d->consumed = 0;
        } else if (is_ows(c)) {
            d->state = CH_SIZE_BWS; /* BWS before ';' (RFC 9112 7.1.1) */
        } else {
            return STEP_MALFORMED;
        }
        return STEP_OK;
    case CH_SIZE_BWS:
        if (c == ';') {
            d->state = CH_EXT;
            d->consumed = 0;
            return STEP_OK;
        }
        return is_ows(c) ? STEP_OK : STEP_MALFORMED;
    case CH_EXT:
        /* Extensions are ignored; checked loosely for what could
         * desynchronise another parser: CTLs and bare CR/LF. */
        if (c == '\r')
            d->state = CH_SIZE_LF;
        else if (!is_class(c, C_VALUE) || ++d->consumed > MAX_CHUNK_EXT)
            return STEP_MALFORMED;
        return STEP_OK;
    default: /* CH_SIZE_LF */
        if (c != '\n')
            return STEP_MALFORMED;
        d->consumed = 0;
        d->state = d->chunk_left ? CH_DATA : CH_TRAILER_LINE;
        return STEP_OK;
    }
}

/* One byte of the CRLF after chunk data, or of the trailer section (bounded
 * by MAX_TRAILER), up to the final empty line. */
static int framing_byte(grace__chunked_t *d, char c)
{
    bool ok;
    switch (d->state) {
    case CH_DATA_CR:
        ok = c == '\r';
        d->state = CH_DATA_LF;
        break;
    case CH_DATA_LF:
        ok = c == '\n';
        d->state = CH_SIZE_FIRST;
        break;
    case CH_TRAILER_LINE: /* obs-fold and bare LF are malformed */
        ok = c == '\r' || is_class(c, C_TCHAR);
        d->state = c == '\r' ? CH_END_LF : CH_TRAILER_NAME;
        break;
    case CH_TRAILER_NAME:
        ok = c == ':' || is_class(c, C_TCHAR);
        if (c == ':')
            d->state = CH_TRAILER_VALUE;
        break;
    case CH_TRAILER_VALUE:
        ok = c == '\r' || is_class(c, C_VALUE);
        if (c == '\r')
            d->state = CH_TRAILER_LF;
        break;
    case CH_TRAILER_LF:
        ok = c == '\n';
        d->state = CH_TRAILER_LINE;
        break;
    case CH_END_LF:
        ok = c == '\n';
        d->state = CH_DONE;
        break;
    default:
        ok = false; /* unreachable: CH_DATA/CH_DONE are handled by the caller */
    }
    if (ok && d->state >= CH_TRAILER_LINE && d->state <= CH_END_LF && ++d->consumed > MAX_TRAILER)
        ok = false;
    return ok ? STEP_OK : STEP_MALFORMED;
}

ssize_t grace__chunked_decode(grace__chunked_t *d, char *buf, size_t *len, uint64_t max_body)
{
    const size_t n = *len;
    size_t r = 0, w = 0; /* read and write offsets, w <= r */

    if (d->state == CH_ERROR)
        return -1;
    while (r < n && d->state != CH_DONE) {
        if (d->state == CH_DATA) {
            const size_t avail = n - r;
            const size_t take = d->chunk_left < avail ? (size_t)d->chunk_left : avail;
            if (w != r)
                memmove(buf + w, buf + r, take);
            w += take;
            r += take;
            d->chunk_left -= take;
            d->total += take;
            if (d->chunk_left == 0)
                d->state = CH_DATA_CR;
            continue;
        }
        const char c = buf[r++];
        int st = d->state <= CH_SIZE_LF ? size_line_byte(d, c, max_body) : framing_byte(d, c);
        if (st != STEP_OK) {
            d->state = CH_ERROR;
            *len = w;
            return st == STEP_TOO_LARGE ? -3 : -1;
        }
    }

    if (d->state != CH_DONE) {
        *len = w;
        return -2;
    }
    /* Slide what follows the body down next to it for the next request. */
    const size_t rest = n - r;
    if (w != r && rest)
        memmove(buf + w, buf + r, rest);
    *len = w;
    return (ssize_t)rest;
}
