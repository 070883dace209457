/*
 * fuzz_parse.c -- libFuzzer harness for grace__http_parse_request (src/http1.c).
 *
 * Input: one configuration byte, then the bytes handed to the parser.
 *   bit 0-2  header array capacity when bit 3 is clear: 0..7 fields
 *   bit 3    large header array (256 fields) instead
 *   bit 4-6  max_head_bytes: 8192, 16, 64, 256, 1024, 0, 100000, SIZE_MAX
 *   bit 7    also parse a prefix of an accepted head (must be incomplete)
 * The parser's bytes are copied into a heap block of exactly their length,
 * so ASan catches any read past the end.
 *
 * Invariants checked (abort on failure, so libFuzzer keeps the input):
 *   - the result is > 0, 0, or one of -400 -414 -431 -501 -505;
 *   - 0 only while len <= max_head_bytes (internal.h);
 *   - > 0: head length <= len and <= max_head_bytes, ends in CRLF CRLF;
 *     every view (method, target, path, query, names, values) lies inside
 *     the head (path may be the parser's static "/" for absolute-form);
 *     n_headers <= capacity; content_length >= -1; never chunked together
 *     with content_length >= 0; minor_version 0 or 1; names are non-empty
 *     tokens and values hold no CR, LF, NUL or edge whitespace;
 *   - a head is self-delimiting: its bytes alone parse to the same result
 *     and the same fields, and any shorter prefix is incomplete (0);
 *   - limits only ever cut a parse short: compared with a reference parse
 *     without limits (room for every field, max_head_bytes SIZE_MAX), the
 *     small array gives the same result or -431 (exactly -431 when the
 *     reference accepted more fields than fit), and max_head_bytes gives
 *     the same result when the input (or the accepted head) fits in it,
 *     else -414 or -431 (or the reference's own error; never 0).
 *
 * Build and run: see tests/fuzz/README.md.
 */
#include "fuzz.h"
#include "internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LARGE_CAP = 256, REF_CAP = 8192 }; /* a field takes >= 3 bytes: REF_CAP never binds */

static const size_t max_table[8] = {8192, 16, 64, 256, 1024, 0, 100000, SIZE_MAX};

static grace_header_t headers_a[LARGE_CAP], headers_b[LARGE_CAP], headers_ref[REF_CAP];

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A view is inside [lo, hi): a NULL view must be empty. */
static bool view_inside(grace_str_t v, const char *lo, const char *hi)
{
    if (v.ptr == NULL)
        return v.len == 0;
    return v.ptr >= lo && v.ptr <= hi && v.len <= (size_t)(hi - v.ptr);
}

static bool same_view(grace_str_t a, grace_str_t b, const char *base_a, const char *base_b)
{
    if (a.len != b.len || (a.ptr == NULL) != (b.ptr == NULL))
        return false;
    if (a.ptr == NULL)
        return true;
    /* Views into the buffer are at the same offset; the static "/" is the
     * same pointer in both. */
    return a.ptr - base_a == b.ptr - base_b || a.ptr == b.ptr;
}

static int parse(const char *buf, size_t len, size_t max, grace_header_t *h, size_t cap,
                 grace__http_request_t *req)
{
    memset(req, 0xa5, sizeof *req); /* the parser must set every field */
    req->headers = h;
    req->n_headers = cap;
    return grace__http_parse_request(buf, len, max, req);
}

static void check_accepted(const char *buf, size_t len, size_t max, size_t cap, int r,
                           const grace__http_request_t *req)
{
    const char *const end = buf + r;

    CHECK((size_t)r <= len);
    CHECK((size_t)r <= max);
    CHECK(r >= 4 && memcmp(end - 4, "\r\n\r\n", 4) == 0);
    CHECK(req->n_headers <= cap);
    CHECK(req->content_length >= -1);
    CHECK(!(req->chunked && req->content_length >= 0));
    CHECK(req->minor_version == 0 || req->minor_version == 1);
    CHECK(!(req->minor_version == 1 && !req->has_host));
    CHECK(req->method.len > 0 && view_inside(req->method, buf, end));
    for (size_t i = 0; i < req->method.len; i++)
        CHECK(is_tchar((unsigned char)req->method.ptr[i]));
    CHECK(req->target.len > 0 && view_inside(req->target, buf, end));
    CHECK(view_inside(req->query, buf, end));
    if (!view_inside(req->path, buf, end))
        CHECK(req->path.len == 1 && req->path.ptr[0] == '/' && req->target.ptr[0] != '/');
    for (size_t i = 0; i < req->n_headers; i++) {
        const grace_header_t *h = &req->headers[i];
        CHECK(h->name.len > 0 && view_inside(h->name, buf, end));
        CHECK(view_inside(h->value, buf, end));
        for (size_t k = 0; k < h->name.len; k++)
            CHECK(is_tchar((unsigned char)h->name.ptr[k]));
        for (size_t k = 0; k < h->value.len; k++) {
            const char c = h->value.ptr[k];
            CHECK(c != '\r' && c != '\n' && c != '\0');
        }
        if (h->value.len) {
            CHECK(h->value.ptr[0] != ' ' && h->value.ptr[0] != '\t');
            CHECK(h->value.ptr[h->value.len - 1] != ' ' && h->value.ptr[h->value.len - 1] != '\t');
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t cfg = data[0];
    const size_t cap = (cfg & 8) ? LARGE_CAP : (cfg & 7);
    const size_t max = max_table[(cfg >> 4) & 7];
    const bool try_prefix = (cfg & 0x80) != 0;
    const size_t len = size - 1;

    char *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, len);

    grace__http_request_t req, ref, lim;
    const bool too_big = len > REF_CAP; /* -max_len above 8192: skip the reference */
    const int r_ref = too_big ? 0 : parse(buf, len, SIZE_MAX, headers_ref, REF_CAP, &ref);
    const size_t n_ref = r_ref > 0 ? ref.n_headers : 0;
    if (r_ref > 0)
        check_accepted(buf, len, SIZE_MAX, REF_CAP, r_ref, &ref);

    /* Only the header array limited. */
    int r_lim = too_big ? 0 : parse(buf, len, SIZE_MAX, headers_a, cap, &lim);
    if (too_big) {
        /* nothing */
    } else if (r_ref > 0 && n_ref > cap) {
        CHECK(r_lim == -431);
    } else if (r_ref > 0) {
        CHECK(r_lim == r_ref && lim.n_headers == n_ref);
    } else {
        CHECK(r_lim == r_ref || r_lim == -431);
    }

    /* Only max_head_bytes limited. */
    r_lim = too_big ? 0 : parse(buf, len, max, headers_ref, REF_CAP, &lim);
    if (too_big) {
        /* nothing */
    } else if (r_ref > 0 ? (size_t)r_ref <= max : len <= max) {
        CHECK(r_lim == r_ref);
    } else {
        /* Too long: cut by a limit, unless a malformed byte came first. */
        CHECK(r_lim == -414 || r_lim == -431 || (r_ref < 0 && r_lim == r_ref));
    }

    const int r = parse(buf, len, max, headers_a, cap, &req);
    if (!too_big)
        CHECK(r == r_ref || r == -414 || r == -431);

    if (r < 0) {
        CHECK(r == -400 || r == -414 || r == -431 || r == -501 || r == -505);
    } else if (r == 0) {
        CHECK(len <= max);
        /* Incomplete stays incomplete for every shorter prefix too. */
        if (try_prefix && len > 0) {
            grace__http_request_t p;
            CHECK(parse(buf, len / 2, max, headers_b, cap, &p) == 0);
        }
    } else {
        check_accepted(buf, len, max, cap, r, &req);

        /* Exactly the head's bytes, in a block of their own size. */
        char *head = malloc((size_t)r);
        if (head == NULL) {
            free(buf);
            return 0;
        }
        memcpy(head, buf, (size_t)r);
        grace__http_request_t again;
        const int r2 = parse(head, (size_t)r, max, headers_b, cap, &again);
        CHECK(r2 == r);
        check_accepted(head, (size_t)r, max, cap, r2, &again);
        CHECK(same_view(req.method, again.method, buf, head));
        CHECK(same_view(req.target, again.target, buf, head));
        CHECK(same_view(req.path, again.path, buf, head));
        CHECK(same_view(req.query, again.query, buf, head));
        CHECK(req.n_headers == again.n_headers);
        for (size_t i = 0; i < req.n_headers; i++) {
            CHECK(same_view(req.headers[i].name, again.headers[i].name, buf, head));
            CHECK(same_view(req.headers[i].value, again.headers[i].value, buf, head));
        }
        CHECK(req.minor_version == again.minor_version);
        CHECK(req.content_length == again.content_length);
        CHECK(req.chunked == again.chunked && req.keep_alive == again.keep_alive);
        CHECK(req.expect_continue == again.expect_continue && req.has_host == again.has_host);

        /* A prefix of a good head is never complete nor malformed. */
        if (try_prefix) {
            grace__http_request_t p;
            CHECK(parse(head, (size_t)r - 1, max, headers_b, cap, &p) == 0);
            CHECK(parse(head, (size_t)r / 2, max, headers_b, cap, &p) == 0);
        }
        free(head);
    }
    free(buf);
    return 0;
}
