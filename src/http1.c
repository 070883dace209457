/*
 * http1.c -- the HTTP/1.1 wire format: request-head parser and reason
 * phrases (RFC 9112, RFC 9110). The chunked body decoder is in chunked.c;
 * both share the character classes of http_chars.h. Percent-decoding of the
 * path and the query is in url.c.
 *
 * Design: like picohttpparser, the parser is stateless and works in place.
 * Each call rescans the head from the first byte in one pass (a table lookup
 * per byte, a word at a time over long values) and fills views into the
 * caller's buffer; it allocates nothing. Malformed bytes are rejected as soon as they are seen, so
 * a prefix of a bad request can already fail, but a prefix of a good request always returns 0. It
 * is strict on purpose: whatever another hop could read differently (bare LF, obs-fold, CL with TE,
 * odd lengths) is refused, because that is how request smuggling starts. Invariants: no
 * function here keeps state outside its arguments, so all are thread-safe; none reads outside
 * buf[0..len).
 */
#include "internal.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "http_chars.h"

/* Word-at-a-time skipping over the long runs (target, field values). A
 * 64-bit load is tested with the classic "has a byte less than n" and "has a
 * zero byte" tricks (both exact for "any"); a word that might hold a byte
 * ending the run is left to the byte loop after it, so these only ever
 * return early, never wrong. Loads stay within [p, end). */
static const uint64_t ONES = UINT64_C(0x0101010101010101);
static const uint64_t HIGHS = UINT64_C(0x8080808080808080);

static inline uint64_t load64(const char *p)
{
    uint64_t x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline bool has_less(uint64_t x, unsigned n)
{
    return ((x - ONES * n) & ~x & HIGHS) != 0;
}

static inline bool has_byte(uint64_t x, unsigned b)
{
    return has_less(x ^ (ONES * b), 1);
}

/* Skip bytes 0x20-0x7E and 0x80-0xFF (field-value minus HTAB). */
static inline const char *skip_value_words(const char *p, const char *end)
{
    while (end - p >= 8) {
        const uint64_t x = load64(p);
        if (has_less(x, 0x20) || has_byte(x, 0x7f))
            break;
        p += 8;
    }
    return p;
}

/* Skip bytes 0x21-0x7E (request-target). */
static inline const char *skip_target_words(const char *p, const char *end)
{
    while (end - p >= 8) {
        const uint64_t x = load64(p);
        if ((x & HIGHS) || has_less(x, 0x21) || has_byte(x, 0x7f))
            break;
        p += 8;
    }
    return p;
}

/* Compare a token with a lowercase literal of the same length, ignoring
 * case. Folding with | 0x20 is exact for tchars: besides the letters, the
 * only byte that folds onto a literal's letter or '-' is CR (onto '-'), and
 * CR is not a tchar. */
static bool token_is(const char *p, const char *lower, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((p[i] | 0x20) != lower[i])
            return false;
    return true;
}

/* ---- Authority ------------------------------------------------------------
 * host [":" port] (RFC 9110 7.2, RFC 3986 3.2.2): used for Host, for the
 * authority of absolute-form and for CONNECT's authority-form. userinfo ('@')
 * is refused, as RFC 9110 4.2.4 advises. */
static bool authority_is_valid(const char *p, size_t n, bool allow_empty, bool require_port)
{
    const char *const e = p + n;

    if (p == e)
        return allow_empty;
    if (*p == '[') {
        const char *const s = ++p;
        while (p < e && *p != ']') {
            if (!is_class(*p, C_HOST) && *p != ':' && *p != '%')
                return false;
            p++;
        }
        if (p == e || p == s)
            return false;
        p++;
    } else {
        const char *const s = p;
        while (p < e && *p != ':') {
            if (*p == '%') {
                if (e - p < 3 || !is_class(p[1], C_HEX) || !is_class(p[2], C_HEX))
                    return false;
                p += 3;
                continue;
            }
            if (!is_class(*p, C_HOST))
                return false;
            p++;
        }
        if (p == s)
            return false;
    }
    if (p == e)
        return !require_port;
    if (*p++ != ':')
        return false;
    if (p == e)
        return !require_port; /* RFC 3986: port = *DIGIT, so "host:" is legal */
    for (; p < e; p++)
        if (!is_class(*p, C_DIGIT))
            return false;
    return true;
}

/* ---- Request line --------------------------------------------------------- */

static const char slash[] = "/";

/* Split an origin-form path [ "?" query ] at s[0..n). */
static void split_path(grace__http_request_t *req, const char *s, size_t n)
{
    const char *const q = memchr(s, '?', n);

    if (q == NULL) {
        req->path = (grace_str_t){s, n};
        return;
    }
    req->path = (grace_str_t){s, (size_t)(q - s)};
    req->query = (grace_str_t){q + 1, n - (size_t)(q - s) - 1};
}

/* Classify the request-target (RFC 9112 3.2) and set path and query. The
 * bytes are already known to be visible ASCII. */
static int parse_target(grace__http_request_t *req)
{
    const char *t = req->target.ptr;
    const size_t n = req->target.len;
    const grace_str_t m = req->method;

    /* Methods are case-sensitive (RFC 9110 9.1): "connect" is just a token. */
    if (m.len == 7 && memcmp(m.ptr, "CONNECT", 7) == 0) {
        if (!authority_is_valid(t, n, false, true))
            return -400;
        req->path = req->target;
        return 1;
    }
    if (t[0] == '/') {
        split_path(req, t, n);
        return 1;
    }
    if (n == 1 && t[0] == '*') {
        if (m.len != 7 || memcmp(m.ptr, "OPTIONS", 7) != 0)
            return -400;
        req->path = req->target;
        return 1;
    }

    /* absolute-form. The scheme is case-insensitive (RFC 3986 3.1); the
     * target's authority wins over Host (RFC 9112 3.2.2): it is kept in
     * req->authority, and must be well formed. */
    size_t skip;
    if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
        skip = 7;
    else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
        skip = 8;
    else
        return -400;
    const char *const e = t + n;
    const char *a = t + skip, *p = a;
    while (p < e && *p != '/' && *p != '?')
        p++;
    if (!authority_is_valid(a, (size_t)(p - a), false, false))
        return -400;
    req->authority = (grace_str_t){a, (size_t)(p - a)};
    if (p == e) {
        req->path = (grace_str_t){slash, 1};
    } else if (*p == '?') {
        req->path = (grace_str_t){slash, 1};
        req->query = (grace_str_t){p + 1, (size_t)(e - p - 1)};
    } else {
        split_path(req, p, (size_t)(e - p));
    }
    return 1;
}

/* Parse method SP request-target SP HTTP-version CRLF at *pp. Returns 1 and
 * moves *pp past the CRLF, 0 if the data ends first, or -status. */
static int parse_request_line(const char **pp, const char *end, grace__http_request_t *req)
{
    const char *p = *pp;
    const char *const method = p;

    while (p < end && is_class(*p, C_TCHAR))
        p++;
    if (p == end)
        return 0;
    if (*p != ' ' || p == method)
        return -400;
    req->method = (grace_str_t){method, (size_t)(p - method)};

    const char *const target = ++p;
    p = skip_target_words(p, end);
    while (p < end && is_class(*p, C_TARGET))
        p++;
    if (p == end)
        return 0;
    /* A second SP (empty target), a CR (HTTP/0.9 style) or any byte outside
     * visible ASCII all land here. */
    if (*p != ' ' || p == target)
        return -400;
    req->target = (grace_str_t){target, (size_t)(p - target)};
    const int r = parse_target(req);
    if (r < 0)
        return r;
    p++;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive; checked byte by
     * byte so that a wrong byte fails before the line is complete. */
    static const char pattern[] = "HTTP/9.9\r\n";
    for (size_t i = 0; i < sizeof pattern - 1; i++) {
        if (p + i == end)
            return 0;
        const bool ok = pattern[i] == '9' ? is_class(p[i], C_DIGIT) : p[i] == pattern[i];
        if (!ok)
            return -400;
    }
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return -505;
    req->minor_version = p[7] - '0';
    *pp = p + sizeof pattern - 1;
    return 1;
}

/* ---- Header fields --------------------------------------------------------- */

/* What the header fields seen so far imply; finished by finish_head(). */
typedef struct {
    bool te_seen;         /* a Transfer-Encoding field was present */
    bool te_other;        /* some coding other than chunked */
    bool te_last_chunked; /* the last coding so far is chunked */
    unsigned te_chunked;  /* how many times chunked was listed */
    bool conn_close;
    bool conn_keep_alive;
} derived_t;

static int on_content_length(grace__http_request_t *req, const char *v, size_t n)
{
    /* 1*DIGIT exactly: no sign, no inner space, no list. RFC 9110 8.6 lets a
     * recipient accept "5, 5" but rejecting it is safer and allowed. */
    if (n == 0)
        return -400;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_class(v[i], C_DIGIT))
            return -400;
        const int d = v[i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return -400;
        x = x * 10 + d;
    }
    if (req->content_length >= 0 && req->content_length != x)
        return -400;
    req->content_length = x;
    return 1;
}

/* Skip *( OWS ";" OWS transfer-parameter ) after a coding, where
 * transfer-parameter = token BWS "=" BWS ( token / quoted-string ) (RFC 9112
 * 7, RFC 9110 5.6.6). Returns where they end, or NULL if one is malformed.
 * The bytes are already known to be field-value bytes (no CTL but HTAB). */
static const char *skip_params(const char *p, const char *e)
{
    for (;;) {
        const char *q = p;
        while (q < e && is_ows(*q))
            q++;
        if (q == e || *q != ';')
            return p;
        q++;
        while (q < e && is_ows(*q))
            q++;
        const char *t = q;
        while (q < e && is_class(*q, C_TCHAR))
            q++;
        if (q == t)
            return NULL;
        while (q < e && is_ows(*q))
            q++;
        if (q == e || *q++ != '=')
            return NULL;
        while (q < e && is_ows(*q))
            q++;
        if (q < e && *q == '"') {
            for (q++; q < e && *q != '"'; q++)
                if (*q == '\\' && ++q == e) /* quoted-pair */
                    return NULL;
            if (q == e)
                return NULL;
            q++;
        } else {
            t = q;
            while (q < e && is_class(*q, C_TCHAR))
                q++;
            if (q == t)
                return NULL;
        }
        p = q;
    }
}

static int on_transfer_encoding(derived_t *st, const char *p, size_t n)
{
    const char *const e = p + n;
    unsigned elements = 0;

    /* #transfer-coding: empty list elements must be tolerated (RFC 9110
     * 5.6.1.2) but a field with no coding at all is refused. */
    st->te_seen = true;
    for (;;) {
        while (p < e && (is_ows(*p) || *p == ','))
            p++;
        if (p == e)
            break;
        const char *const tok = p;
        while (p < e && is_class(*p, C_TCHAR))
            p++;
        if (p == tok)
            return -400;
        const bool chunked = p - tok == 7 && token_is(tok, "chunked", 7);
        elements++;
        /* Parameters are parsed only to find where the next coding starts:
         * whether chunked is last decides between 400 and 501. chunked
         * takes none. */
        const char *const after = skip_params(p, e);
        if (after == NULL || (chunked && after != p))
            return -400;
        p = after;
        while (p < e && is_ows(*p))
            p++;
        if (p < e && *p != ',')
            return -400;
        if (chunked) {
            st->te_chunked++;
        } else {
            st->te_other = true;
        }
        st->te_last_chunked = chunked;
    }
    return elements ? 1 : -400;
}

static void on_connection(derived_t *st, const char *p, size_t n)
{
    const char *const e = p + n;

    while (p < e) {
        while (p < e && (is_ows(*p) || *p == ','))
            p++;
        const char *const tok = p;
        while (p < e && *p != ',' && !is_ows(*p))
            p++;
        const size_t len = (size_t)(p - tok);
        if (len == 5 && strncasecmp(tok, "close", 5) == 0)
            st->conn_close = true;
        else if (len == 10 && strncasecmp(tok, "keep-alive", 10) == 0)
            st->conn_keep_alive = true;
    }
}

/* Derive request fields from one header. Names are compared only when their
 * length matches one we care about, which keeps the common case one switch. */
static int on_header(grace__http_request_t *req, derived_t *st, const grace_header_t *h)
{
    const char *const name = h->name.ptr, *const v = h->value.ptr;
    const size_t n = h->value.len;

    switch (h->name.len) {
    case 4:
        if (!token_is(name, "host", 4))
            break;
        if (req->has_host || !authority_is_valid(v, n, true, false))
            return -400;
        req->has_host = true;
        break;
    case 6:
        if (token_is(name, "expect", 6) && n == 12 && strncasecmp(v, "100-continue", 12) == 0)
            req->expect_continue = true;
        break;
    case 10:
        if (token_is(name, "connection", 10))
            on_connection(st, v, n);
        break;
    case 14:
        if (token_is(name, "content-length", 14))
            return on_content_length(req, v, n);
        break;
    case 17:
        if (!token_is(name, "transfer-encoding", 17))
            break;
        /* RFC 9112 6.1: TE in HTTP/1.0 means a faulty hop; the body length
         * cannot be trusted either way. */
        if (req->minor_version == 0)
            return -400;
        return on_transfer_encoding(st, v, n);
    }
    return 1;
}

/* Parse header fields up to and including the empty line. Returns 1 and
 * moves *pp past the final CRLF, 0 if the data ends first, or -status. */
static int parse_headers(const char **pp, const char *end, size_t cap, grace__http_request_t *req,
                         derived_t *st)
{
    const char *p = *pp;

    for (;;) {
        if (p == end)
            return 0;
        if (*p == '\r') {
            if (p + 1 == end)
                return 0;
            if (p[1] != '\n')
                return -400;
            *pp = p + 2;
            return 1;
        }
        /* One field too many fails at its first byte, not once it is
         * complete, so a stream of fields cannot keep the connection busy. */
        if (req->n_headers == cap && is_class(*p, C_TCHAR))
            return -431;
        /* A leading SP/HTAB is obs-fold (or whitespace before the first
         * field, RFC 9112 2.2); both are refused along with bare LF here. */
        const char *const name = p;
        while (p < end && is_class(*p, C_TCHAR))
            p++;
        if (p == end)
            return 0;
        if (p == name || *p != ':')
            return -400;
        const size_t name_len = (size_t)(p - name);

        p++;
        while (p < end && is_ows(*p))
            p++;
        const char *const value = p;
        p = skip_value_words(p, end);
        while (p < end && is_class(*p, C_VALUE))
            p++;
        if (p == end)
            return 0;
        /* NUL, DEL, bare LF and other CTLs stop the scan short of CR. */
        if (*p != '\r')
            return -400;
        if (p + 1 == end)
            return 0;
        if (p[1] != '\n')
            return -400;
        const char *vend = p;
        while (vend > value && is_ows(vend[-1]))
            vend--;
        p += 2;

        grace_header_t *const h = &req->headers[req->n_headers++];
        h->name = (grace_str_t){name, name_len};
        h->value = (grace_str_t){value, (size_t)(vend - value)};
        const int r = on_header(req, st, h);
        if (r < 0)
            return r;
    }
}

/* Checks that need the whole head: framing (RFC 9112 6.1-6.3), Host and
 * persistence (RFC 9112 9.3). */
static int finish_head(grace__http_request_t *req, const derived_t *st)
{
    if (st->te_seen) {
        if (req->content_length >= 0)
            return -400;
        /* RFC 9112 6.3: when chunked is not the final coding of a request
         * the body length cannot be known: MUST be 400. When it is, any
         * other coding (or chunked twice) is one grace does not implement:
         * 501 (RFC 9112 6.1). */
        if (!st->te_last_chunked)
            return -400;
        if (st->te_other || st->te_chunked != 1)
            return -501;
        req->chunked = true;
    }
    if (req->minor_version == 1 && !req->has_host)
        return -400;
    if (st->conn_close)
        req->keep_alive = false;
    else
        req->keep_alive = req->minor_version == 1 || st->conn_keep_alive;
    /* RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
    if (req->minor_version == 0)
        req->expect_continue = false;
    return 1;
}

int grace__http_parse_request(const char *buf, size_t len, size_t max_head_bytes,
                              grace__http_request_t *req)
{
    /* On entry n_headers is the capacity of req->headers; on return, the
     * number of fields parsed. */
    const size_t cap = req->n_headers;
    const char *const end = buf + len;
    const char *p = buf;
    derived_t st = {0};
    int r;

    req->method = req->target = req->path = req->query = req->authority = (grace_str_t){NULL, 0};
    req->minor_version = 0;
    req->n_headers = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->expect_continue = req->has_host = false;

    /* Empty lines before the request line are skipped (RFC 9112 2.2) but
     * still count against max_head_bytes, so endless CRLFs hit -431. */
    while (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;
    const char *const line = p;
    if (end - p == 1 && *p == '\r') {
        r = 0;
    } else {
        r = parse_request_line(&p, end, req);
        if (r < 0)
            return r;
    }
    if (r == 0) {
        /* The line is incomplete; a CR at the very end can only be its
         * terminator, which is not part of its length. */
        size_t line_len = (size_t)(end - line);
        if (line_len > 0 && end[-1] == '\r')
            line_len--;
        if (line_len > max_head_bytes)
            return -414;
        return len > max_head_bytes ? -431 : 0;
    }
    if ((size_t)(p - line) - 2 > max_head_bytes)
        return -414;

    r = parse_headers(&p, end, cap, req, &st);
    if (r < 0)
        return r;
    const size_t head_len = (size_t)(p - buf);
    if (r == 0 ? len > max_head_bytes : head_len > max_head_bytes)
        return -431;
    if (r == 0)
        return 0;
    r = finish_head(req, &st);
    if (r < 0)
        return r;
    /* Heads are bounded by max_head_bytes, which no sane caller sets near
     * INT_MAX; refuse rather than overflow the return value. */
    if (head_len > INT_MAX)
        return -431;
    return (int)head_len;
}

/* ---- Reason phrases --------------------------------------------------------- */

/* Reason phrases of RFC 9110 section 15 plus a few registered extensions
 * (IANA registry). A switch compiles to a jump table; clang-format is off
 * only to keep it one line per code. */
const char *grace__status_text(int status)
{
    /* clang-format off */
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
    }
    /* clang-format on */
}
